/*
 * changelog.h -- the changelog topic of a pipeline: set-up, writing at
 * commits, and restoring partitions from it (see changelog.c).
 *
 * A narrow interface of its own: the changelog is given what it needs at
 * creation (the configuration, the store, the producer, the restore
 * consumer's configuration) and tells its owner, through a callback, when a
 * partition's state is restored; errors come back as return values. It
 * never reaches into the pipeline. All functions run on the processing
 * thread.
 */
#ifndef ENC_CHANGELOG_H
#define ENC_CHANGELOG_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "config.h"
#include "enc.h"
#include "store.h"

typedef struct enc_changelog_s enc_changelog_t;

/* Delivery-report tags (message opaque) of what the changelog produces;
 * the producer's owner passes position-record reports on with
 * enc_changelog_delivered(). */
#define ENC_TAG_CHANGELOG ((intptr_t)2)
#define ENC_TAG_META_BASE ((intptr_t)16) /* + partition: a position record */

/** Called when @p partition's restore is complete and its local state is
 *  current: the owner hands the partition to the engine and lets its
 *  consumer fetch it. A non-OK return (with @p errstr filled) stops
 *  enc_changelog_poll, which returns it. */
typedef enc_err_t (*enc_changelog_ready_cb_t)(void *opaque, int32_t partition,
                                              char *errstr,
                                              size_t errstr_size);

typedef struct enc_changelog_env_s {
        const enc_conf_t *conf; /* borrowed for the changelog's life */
        enc_store_t *store;     /* borrowed for the changelog's life */
        rd_kafka_t *producer;   /* borrowed: writes, watermarks, admin */
        /* The restore consumer's configuration with the user's kafka.* and
         * kafka.consumer.* keys applied; the changelog adds what a restore
         * relies on. Ownership is taken (also on failure). */
        rd_kafka_conf_t *restorer_conf;
        enc_changelog_ready_cb_t ready;
        void *opaque; /* passed to ready */
} enc_changelog_env_t;

/** Creates the changelog of a pipeline. With @p enabled false or
 *  changelog.enable false it is disabled: nothing is written or restored
 *  and every partition is current. Otherwise resolves the topic name and
 *  makes sure the topic exists with one partition per input partition
 *  (creating it compacted if missing). NULL with @p errstr on failure.
 *  Destroy with enc_changelog_destroy. */
enc_changelog_t *enc_changelog_new(const enc_changelog_env_t *env,
                                   bool enabled, char *errstr,
                                   size_t errstr_size);

/** True if the changelog is written and restored from. */
bool enc_changelog_enabled(const enc_changelog_t *cl);

/** Produces one changelog record of @p partition (the engine sink's
 *  changelog callback, forwarded by the owner). Key and value are copied. */
enc_err_t enc_changelog_write(enc_changelog_t *cl, int32_t partition,
                              const void *key, size_t klen, const void *val,
                              size_t vlen, bool is_meta) ENC_WUR;

/** From now until enc_changelog_release or enc_changelog_drop, records
 *  given to enc_changelog_write are copied and held, in order, not
 *  produced. Lets the owner stage a checkpoint while the outputs before it
 *  are still in flight, and write the checkpoint's records only once those
 *  are acknowledged. No-op when the changelog is disabled. */
void enc_changelog_hold(enc_changelog_t *cl);

/** True between enc_changelog_hold and its release or drop. */
bool enc_changelog_holding(const enc_changelog_t *cl);

/** Bytes of keys and values held (the owner bounds them: past its bound it
 *  makes sure of the outputs and releases early). */
size_t enc_changelog_held_bytes(const enc_changelog_t *cl);

/** Produces the held records, in the order they were given (each copy
 *  freed as librdkafka takes its own), and stops holding. Errors as
 *  enc_changelog_write; the records after a failed one are dropped. */
enc_err_t enc_changelog_release(enc_changelog_t *cl) ENC_WUR;

/** Forgets the held records without producing them (a commit that
 *  failed) and stops holding; NULL is a no-op. */
void enc_changelog_drop(enc_changelog_t *cl);

/** Delivery report of a position record of @p partition at @p offset. */
void enc_changelog_delivered(enc_changelog_t *cl, int32_t partition,
                             int64_t offset);

/** Forgets the delivered position records (before a checkpoint). */
void enc_changelog_meta_reset(enc_changelog_t *cl);

/** "Changelog end" by partition (offset past the last delivered position
 *  record, -1: none) for the checkpoint: borrowed until the next call on
 *  @p cl; *n is its length. */
const int64_t *enc_changelog_meta_ends(const enc_changelog_t *cl, int *n);

typedef enum enc_cl_plan_e {
        ENC_CL_CURRENT = 0, /* local state is current: process at once */
        ENC_CL_RESTORING,   /* restore started: keep the partition paused */
        ENC_CL_ERROR,
} enc_cl_plan_t;

/** Decides, for a newly assigned @p partition, whether its local state is
 *  current or must be restored, and starts the restore if so. */
enc_cl_plan_t enc_changelog_plan(enc_changelog_t *cl, int32_t partition,
                                 char *errstr, size_t errstr_size);

/** Does a bounded slice of restore work (processing loop); calls the ready
 *  callback for each partition whose restore completes. An error (restore
 *  failed, or the callback's) is returned with @p errstr filled. */
enc_err_t enc_changelog_poll(enc_changelog_t *cl, char *errstr,
                             size_t errstr_size) ENC_WUR;

/** Stops restoring @p partition (revoked). */
void enc_changelog_cancel(enc_changelog_t *cl, int32_t partition);

bool enc_changelog_restoring(const enc_changelog_t *cl, int32_t partition);

/** Partitions being restored. */
int enc_changelog_active(const enc_changelog_t *cl);

/** Changelog records still to read for @p partition (0 if it is not being
 *  restored), or over all restores with @p partition -1. */
int64_t enc_changelog_remaining(const enc_changelog_t *cl, int32_t partition);

typedef struct enc_changelog_stats_s {
        uint64_t restores;        /* restores completed */
        uint64_t restore_records; /* changelog records applied */
        uint64_t restore_users;   /* user records made durable */
        int64_t restore_first_ms; /* monotonic ms: first restore started */
        int64_t restore_last_ms;  /* monotonic ms: last restore completed */
        double wait_queue_s;      /* a changelog write waiting for room in
                                     the full producer queue */
} enc_changelog_stats_t;

void enc_changelog_stats(const enc_changelog_t *cl, enc_changelog_stats_t *st);

/** Closes the restore consumer and frees @p cl; NULL is a no-op. */
void enc_changelog_destroy(enc_changelog_t *cl);

#endif /* ENC_CHANGELOG_H */
