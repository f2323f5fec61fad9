/*
 * engine.h -- the event-time processing engine: records in, reward updates
 * and dead letters out, state in RocksDB. No Kafka here: the consumer feeds
 * it records and gives it a sink; benchmarks and tests feed it directly.
 *
 * Per input partition it keeps stream time (the largest event time seen),
 * the watermark (stream time - grace), an event-time reorder buffer and the
 * timers of its users. Processing depends on the records' content and order
 * within the partition only, never on the clock, so a replay gives
 * byte-identical output.
 *
 * Single-threaded: every function is called from the processing thread.
 */
#ifndef ENC_ENGINE_H
#define ENC_ENGINE_H

#include "codec.h"
#include "config.h"
#include "enc.h"
#include "event.h"
#include "store.h"

typedef struct enc_engine_s enc_engine_t;
struct enc_sig_instance_s;

/** One consumed input record. All pointers borrowed for the call. */
typedef struct enc_record_s {
        const char *topic;
        int32_t partition;
        int64_t offset;
        int64_t timestamp; /* broker/producer timestamp (ms) or -1 */
        const void *key;   /* NULL: no key */
        size_t key_len;
        const void *value; /* NULL: tombstone */
        size_t value_len;
} enc_record_t;

/* Why a record was dead-lettered. Names are the `reason` header values. */
typedef enum enc_dlq_reason_e {
        ENC_DLQ_DECODE = 0,   /* not Avro of the expected schema */
        ENC_DLQ_BAD_MAGIC,    /* Confluent framing: first byte not 0 */
        ENC_DLQ_UNKNOWN_SCHEMA,
        ENC_DLQ_TRUNCATED,
        ENC_DLQ_TOO_LARGE,
        ENC_DLQ_INVALID,      /* decoded, a field value is invalid */
        ENC_DLQ_KEY_MISMATCH, /* record key is not the event's user id */
        ENC_DLQ_TOMBSTONE,    /* null value */
        ENC_DLQ_LATE,         /* behind the watermark */
        ENC_DLQ_FUTURE,       /* too far ahead of stream time */
        ENC_DLQ_DUPLICATE,    /* event id seen within dedup.window.ms */
        ENC_DLQ__CNT
} enc_dlq_reason_t;

const char *enc_dlq_reason_name(enc_dlq_reason_t r);

typedef struct enc_dead_letter_s {
        const enc_record_t *rec; /* the original record, bytes unchanged */
        enc_dlq_reason_t reason;
        const char *detail; /* one line, for people */
} enc_dead_letter_t;

/* Where the engine's outputs go. Callbacks return non-zero only on a fatal
 * output error, which aborts the current record and is returned by
 * enc_engine_record. */
typedef struct enc_engine_sink_s {
        /** An encoded RewardUpdate, keyed by user id. @p up is the decoded
         *  form (for metrics). All borrowed for the call. */
        enc_err_t (*output)(void *opaque, int32_t in_partition,
                            const char *key, size_t key_len, const void *val,
                            size_t val_len, const enc_update_t *up);
        /** A record that could not be processed, and why. */
        enc_err_t (*dead_letter)(void *opaque, const enc_dead_letter_t *dl);
        /** Optional (NULL: no changelog). Called while a checkpoint is
         *  staged: each user written ('U' + user id; @p val NULL for a
         *  deleted user), then one position record per partition ("M",
         *  @p is_meta). All borrowed for the call; see restore.h. */
        enc_err_t (*changelog)(void *opaque, int32_t partition,
                               const void *key, size_t klen, const void *val,
                               size_t vlen, bool is_meta);
        /** Optional (NULL: only serde.play_event.schema.id is read, as
         *  encore's schema). The writer schema of a PlayEvent schema id the
         *  codec has not met (codec.h, enc_codec_schema_lookup_t). */
        enc_codec_schema_lookup_t schema_lookup;
        void *opaque;
} enc_engine_sink_t;

/**
 * Builds an engine over @p store (borrowed; must outlive the engine) with
 * the configuration @p conf (borrowed; must outlive it): signal instances,
 * grace, caps, serde. Returns NULL and fills errstr on failure.
 */
enc_engine_t *enc_engine_new(const enc_conf_t *conf, enc_store_t *store,
                             const enc_engine_sink_t *sink, char *errstr,
                             size_t errstr_size);
void enc_engine_destroy(enc_engine_t *e);

/** Frames the RewardUpdates it encodes from now on with schema id @p id
 *  (registered in a Schema Registry by the consumer). Thread: the
 *  engine's. */
void enc_engine_set_output_schema_id(enc_engine_t *e, int32_t id);

/**
 * Takes ownership of @p partition. Reads its stored position: *resume is
 * the offset to consume from, or -1 if the store has none (then the group's
 * committed offset or auto.offset.reset decides).
 */
enc_err_t enc_engine_assign(enc_engine_t *e, int32_t partition,
                            int64_t *resume, char *errstr,
                            size_t errstr_size) ENC_WUR;

/** Gives @p partition up: forgets its cached state and buffered events.
 *  Call enc_engine_checkpoint first or the work since it is lost (it will
 *  be redone by whoever resumes from the stored position). */
void enc_engine_revoke(enc_engine_t *e, int32_t partition);

/** True if the engine owns @p partition (assigned and not revoked): only
 *  then may enc_engine_record be given its records. Processing thread. */
bool enc_engine_owns(const enc_engine_t *e, int32_t partition);

/**
 * Processes one consumed record: decode, validate, buffer in event time,
 * advance the watermark, fire due timers and apply due events, emitting
 * through the sink. Bad input is dead-lettered and is not an error; the
 * return is non-zero only for fatal errors (store, sink).
 */
enc_err_t enc_engine_record(enc_engine_t *e, const enc_record_t *rec,
                            char *errstr, size_t errstr_size) ENC_WUR;

/** True when a commit should happen now regardless of the interval:
 *  commit.records reached, dirty state over the users cache's share of
 *  cache.max.bytes, or more staged by the next checkpoint than the budget's
 *  commit bound (state/budget.h). */
bool enc_engine_commit_due(const enc_engine_t *e);

/**
 * Writes all state changed since the last checkpoint, with every owned
 * partition's position, to the store in one atomic batch. Outputs emitted
 * so far must already be durable (the caller flushed its producer).
 * Equivalent to stage + commit with no changelog positions.
 */
enc_err_t enc_engine_checkpoint(enc_engine_t *e, char *errstr,
                                size_t errstr_size) ENC_WUR;

/**
 * A checkpoint in two steps, for a changelog: stage encodes every changed
 * user into the store's pending batch and hands it (and each partition's
 * position) to sink->changelog; the caller then makes outputs and changelog
 * records durable (producer flush) and calls commit with, per partition,
 * the changelog offset just past that partition's position record (-1 if
 * unknown), which is stored with the position so a restart can tell
 * whether its local state is as new as the changelog.
 */
enc_err_t enc_engine_checkpoint_stage(enc_engine_t *e, char *errstr,
                                      size_t errstr_size) ENC_WUR;
enc_err_t enc_engine_checkpoint_commit(enc_engine_t *e,
                                       const int64_t *changelog_end,
                                       int changelog_end_cnt, char *errstr,
                                       size_t errstr_size) ENC_WUR;

/** Drops a staged checkpoint (its outputs were not made durable). The
 *  in-memory state is then ahead of the store: the caller must revoke and
 *  re-assign every partition to go back to the stored state. */
void enc_engine_checkpoint_abort(enc_engine_t *e);

/** The offset to commit to the group for @p partition (the first record not
 *  fully reflected in stored state), or -1 if nothing was consumed. */
int64_t enc_engine_commit_offset(const enc_engine_t *e, int32_t partition);

typedef struct enc_engine_stats_s {
        uint64_t consumed;
        uint64_t accepted; /* valid events taken for processing */
        uint64_t applied;  /* events delivered to the signals */
        uint64_t skipped_restore; /* re-read after restart, already done */
        uint64_t dead_lettered[ENC_DLQ__CNT];
        uint64_t updates;
        uint64_t timers_fired;
        uint64_t timer_scans; /* RocksDB iterator seeks over the timers
                                 family (enc_engine_load_due) */
        uint64_t buffered; /* events waiting for the watermark now */
        uint64_t forced_watermark; /* reorder.max.events overruns */
        uint64_t cache_entries, cache_bytes, cache_hits, cache_misses;
        uint64_t cache_prefetched; /* users read ahead in batches */
        uint64_t cache_prefetch_wasted; /* of which evicted unused */
        uint64_t cache_evictions, state_corrupt, users_expired;
        uint64_t dedup_checks;    /* duplicate checks past the buffer */
        uint64_t dedup_filter_no; /* of which the id filter answered
                                     without loading the user */
        uint64_t checkpoint_bytes;     /* committed checkpoint batches, bytes */
        uint64_t idfilter_saved_bytes; /* of which the id filter's */
        uint64_t idfilter_loaded;      /* partitions resumed with a saved
                                          id filter */
        uint64_t idfilter_bytes; /* the id filter's tables now, all
                                    partitions (charged to the users
                                    share); 0 without a filter */
} enc_engine_stats_t;

void enc_engine_stats(const enc_engine_t *e, enc_engine_stats_t *stats);

/* Per-partition positions, for metrics and logs. Returns false if the
 * partition is not owned. Times are INT64_MIN before the first event. */
typedef struct enc_partition_info_s {
        int64_t next_offset;
        int64_t commit_offset;
        int64_t stream_time;
        int64_t watermark;
        uint64_t buffered;
        uint64_t consumed;      /* since assignment to this process */
        uint64_t accepted;      /* valid events taken for processing */
        uint64_t applied;       /* events delivered to the signals */
        uint64_t dead_lettered;
} enc_partition_info_t;

bool enc_engine_partition_info(const enc_engine_t *e, int32_t partition,
                               enc_partition_info_t *info);

/** The engine's signal instances (borrowed). */
int enc_engine_instances(const enc_engine_t *e,
                         const struct enc_sig_instance_s **insts);

#endif /* ENC_ENGINE_H */
