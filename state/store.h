/*
 * store.h -- encore's RocksDB state store.
 *
 * Three column families, all keyed by input partition first so a partition's
 * state can be scanned, restored or dropped as one range:
 *   users   [u32be partition][user id]              -> user record
 *   timers  [u32be partition][u64be time][user id]  -> (empty)
 *   meta    [u32be partition]                       -> partition position
 *           [u32be partition][suffix]               -> the partition's other
 *                                                      records (id filter)
 *   default "encore.store.format"                    -> the format marker
 *
 * Writes are staged in one pending WriteBatch and become durable together in
 * enc_store_commit(): state and the input offsets that produced it are never
 * written apart. Single-threaded: the processing thread owns the store.
 */
#ifndef ENC_STORE_H
#define ENC_STORE_H

#include "config.h"
#include "enc.h"

typedef struct enc_store_s enc_store_t;

/*
 * The on-disk format of the whole store: its key layout and the encodings
 * of its records. Any change to either bumps ENC_STORE_FORMAT and adds a
 * migration step from the old number (enc_store_migrate_step in store.c) or
 * leaves older stores refused at open, never misread.
 *
 * The marker is one key of the default family, ENC_STORE_FORMAT_KEY, whose
 * value is the 8 bytes ENC_STORE_FORMAT_MAGIC and the format as a u32be.
 *   (none) a store written before the marker existed: the layout of
 *          format 1. Accepted once the default family is seen to be
 *          empty and the first users record, if any, to be version 2;
 *          the marker is then written (the step 0 -> 1).
 *   1      users records [u8 version=2] (ENC_USER_RECORD_VERSION), timer
 *          keys with sign-flipped big-endian times, position records
 *          [u8 3] (version 2 read), the families above. Optionally the
 *          duplicate check's id filter in the meta family
 *          ([partition]['I'...], state/idfilter.h): a reader that does not
 *          know those keys never reads them, and encore uses them only
 *          with the exact position they were saved with, so they need no
 *          format number of their own.
 * A store naming another format is refused at open with ENC_ERR_STATE.
 */
#define ENC_STORE_FORMAT 1
#define ENC_STORE_FORMAT_KEY "encore.store.format"
#define ENC_STORE_FORMAT_MAGIC "ENCSTORE"

/* The user record version format 1 holds (its encoding: state/users.h). */
#define ENC_USER_RECORD_VERSION 2

/* RocksDB's memory is the block cache plus the memtables; both are shares
 * of cache.max.bytes (state/budget.h). 0 = the share of the default
 * budget (16 MiB each). */
typedef struct enc_store_conf_s {
        bool sync;                /* fsync the WAL at each commit */
        size_t block_cache_bytes; /* RocksDB block cache */
        size_t memtable_bytes;    /* write buffers of all column families,
                                     counting one being flushed */
} enc_store_conf_t;

/** Fills @p sc from @p conf (borrowed for the call): state.sync, and the
 *  block cache and memtable shares of cache.max.bytes. */
void enc_store_conf_from(const enc_conf_t *conf, enc_store_conf_t *sc);

/** Opens (creating if missing) the store in @p dir, checks its format
 *  marker (writing it into a new store, or migrating an older format) and
 *  refuses a store of any other format with a message naming the format
 *  found and how to rebuild the state.
 *  Returns NULL and fills errstr on failure. Close with enc_store_close. */
enc_store_t *enc_store_open(const char *dir, const enc_store_conf_t *conf,
                            char *errstr, size_t errstr_size);
void enc_store_close(enc_store_t *st);

/** Reads a user record into @p out (reset first). *found tells whether it
 *  existed. Reads see committed data only, not the pending batch. */
enc_err_t enc_store_get_user(enc_store_t *st, int32_t partition,
                             const char *user, size_t ulen, enc_buf_t *out,
                             bool *found, char *errstr,
                             size_t errstr_size) ENC_WUR;

/* A partition's position, stored with its state (the meta family) and
 * mirrored to the changelog. */
typedef struct enc_store_meta_s {
        int64_t commit_offset; /* C: first input offset not fully in state */
        int64_t next_offset;   /* E: next input offset to consume */
        int64_t stream_time;   /* INT64_MIN: none yet */
        int64_t watermark;     /* INT64_MIN: none yet */
        int64_t changelog_end; /* changelog offset just past the meta record
                                  of this position; -1: none */
        int64_t stream_time_c; /* stream time before offset C was consumed
                                  (INT64_MIN: none or not recorded) */
} enc_store_meta_t;

/** [u8 3][sv C][sv E][sv stream time][sv watermark][sv changelog end]
 *  [sv stream time at C]; version 2 (without the last) still decodes. */
/**
 * Reads the records of users (@p parts[i], @p users[i]), i < @p n, in one
 * batched lookup, and calls @p cb for each in input order with its record
 * (borrowed for the call) or NULL if it has none. Stops at the first error
 * @p cb returns. The keys are built in one scratch allocation.
 */
typedef enc_err_t (*enc_store_user_cb_t)(void *opaque, size_t i,
                                         const void *rec, size_t rec_len);
enc_err_t enc_store_get_users(enc_store_t *st, const int32_t *parts,
                              const char *const *users, const size_t *ulens,
                              size_t n, enc_store_user_cb_t cb, void *opaque,
                              char *errstr, size_t errstr_size) ENC_WUR;

void enc_store_meta_encode(const enc_store_meta_t *m, enc_buf_t *b);
enc_err_t enc_store_meta_decode(const uint8_t *buf, size_t len,
                                enc_store_meta_t *m) ENC_WUR;

/** Reads a partition's position; *found false if none. A record that does
 *  not parse is ENC_ERR_CORRUPT. */
enc_err_t enc_store_get_meta(enc_store_t *st, int32_t partition,
                             enc_store_meta_t *m, bool *found, char *errstr,
                             size_t errstr_size) ENC_WUR;

/** Sets *any to whether @p partition has any committed user record (one
 *  seek: the engine asks on assignment when no position is stored). */
enc_err_t enc_store_has_users(enc_store_t *st, int32_t partition, bool *any,
                              char *errstr, size_t errstr_size) ENC_WUR;

/* Staging into the pending batch (copies the bytes). */
void enc_store_put_user(enc_store_t *st, int32_t partition, const char *user,
                        size_t ulen, const void *val, size_t vlen);
void enc_store_del_user(enc_store_t *st, int32_t partition, const char *user,
                        size_t ulen);
void enc_store_put_timer(enc_store_t *st, int32_t partition, int64_t time,
                         const char *user, size_t ulen);
void enc_store_del_timer(enc_store_t *st, int32_t partition, int64_t time,
                         const char *user, size_t ulen);
void enc_store_put_meta(enc_store_t *st, int32_t partition,
                        const enc_store_meta_t *m);

/*
 * Keys of a partition's own beside its position in the meta family:
 * [u32be partition][suffix], @p slen >= 1 (the position record is the
 * partition alone). The duplicate check's id filter is kept there
 * (state/idfilter.h). Staged into the pending batch (bytes copied); a
 * range delete covers [partition][lo] .. [partition][hi). Dropping a
 * partition drops them with the rest.
 */
void enc_store_put_meta_key(enc_store_t *st, int32_t partition,
                            const void *suffix, size_t slen, const void *val,
                            size_t vlen);
void enc_store_del_meta_key(enc_store_t *st, int32_t partition,
                            const void *suffix, size_t slen);
void enc_store_del_meta_keys(enc_store_t *st, int32_t partition, const void *lo,
                             size_t lolen, const void *hi, size_t hilen);
/** Reads a committed meta key into @p out (reset first; a value over
 *  @p out's max is ENC_ERR_TOO_LARGE). */
enc_err_t enc_store_get_meta_key(enc_store_t *st, int32_t partition,
                                 const void *suffix, size_t slen,
                                 enc_buf_t *out, bool *found, char *errstr,
                                 size_t errstr_size) ENC_WUR;

/** Bytes of the pending batch (RocksDB's serialised WriteBatch). */
size_t enc_store_pending_bytes(const enc_store_t *st);

/*
 * Batches of one's own, written apart from the pending batch: a restore
 * stages a partition's changelog records in one and writes it only at a
 * consistent point, while commits of other partitions go on. Caller owns
 * the batch (enc_store_batch_destroy).
 */
typedef struct enc_store_batch_s enc_store_batch_t;
enc_store_batch_t *enc_store_batch_new(void);
void enc_store_batch_destroy(enc_store_batch_t *b);
void enc_store_batch_clear(enc_store_batch_t *b);
int enc_store_batch_count(const enc_store_batch_t *b);
void enc_store_batch_put_user(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition, const char *user,
                              size_t ulen, const void *val, size_t vlen);
void enc_store_batch_del_user(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition, const char *user,
                              size_t ulen);
void enc_store_batch_put_timer(enc_store_t *st, enc_store_batch_t *b,
                               int32_t partition, int64_t time,
                               const char *user, size_t ulen);
void enc_store_batch_put_meta(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition, const enc_store_meta_t *m);
void enc_store_batch_del_meta(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition);
/** Stages the deletion of every key of @p partition into @p b. */
void enc_store_batch_drop_partition(enc_store_t *st, enc_store_batch_t *b,
                                    int32_t partition);
/** Writes @p b atomically and clears it. */
enc_err_t enc_store_batch_write(enc_store_t *st, enc_store_batch_t *b,
                                char *errstr, size_t errstr_size) ENC_WUR;

/** Number of operations staged since the last commit. */
int enc_store_pending(const enc_store_t *st);

/** Writes the pending batch atomically (WAL, fsync if conf.sync). */
enc_err_t enc_store_commit(enc_store_t *st, char *errstr,
                           size_t errstr_size) ENC_WUR;

/** Drops the pending batch (after a failed commit). */
void enc_store_discard(enc_store_t *st);

/**
 * Calls @p cb for each committed timer of @p partition with
 * from_excl < time <= to_incl, in (time, user) order. The user pointer is
 * borrowed for the call. A non-zero return from @p cb stops the scan and is
 * returned.
 */
typedef enc_err_t (*enc_store_timer_cb_t)(void *opaque, int64_t time,
                                          const char *user, size_t ulen);
enc_err_t enc_store_scan_timers(enc_store_t *st, int32_t partition,
                                int64_t from_excl, int64_t to_incl,
                                enc_store_timer_cb_t cb, void *opaque,
                                char *errstr, size_t errstr_size) ENC_WUR;

/** Deletes every key of @p partition in all column families (committed
 *  immediately). */
enc_err_t enc_store_drop_partition(enc_store_t *st, int32_t partition,
                                   char *errstr, size_t errstr_size) ENC_WUR;

/*
 * Table files for a bulk load: a full restore (state/restore.c) writes the
 * sorted records of a batch of whole commits into a users and a timers
 * table file (RocksDB's SstFileWriter, the families' own table options)
 * and ingests them, instead of writing them through the WAL and the
 * memtables. Ingested files take sequence numbers above everything the
 * store holds, so they overlay it as a write of the same records would.
 * Within one file keys must come in strictly increasing order (users by
 * id bytes, timers by time then id: the store's key order); out of order
 * is an error from RocksDB. The files are written in the state directory
 * (restore-<partition>-{users,timers}.sst.tmp, a leftover of a crash is
 * truncated by the next use) and moved into the store. Nothing is
 * written to the WAL: a caller that needs a record of what was loaded
 * writes it after enc_store_ingest_write returns.
 * Processing thread only (the store's owner). Free with
 * enc_store_ingest_destroy, which drops files not yet ingested.
 */
typedef struct enc_store_ingest_s enc_store_ingest_t;
enc_store_ingest_t *enc_store_ingest_new(enc_store_t *st, int32_t partition,
                                         char *errstr, size_t errstr_size);
enc_err_t enc_store_ingest_put_user(enc_store_ingest_t *in, const char *user,
                                    size_t ulen, const void *val, size_t vlen,
                                    char *errstr, size_t errstr_size) ENC_WUR;
enc_err_t enc_store_ingest_del_user(enc_store_ingest_t *in, const char *user,
                                    size_t ulen, char *errstr,
                                    size_t errstr_size) ENC_WUR;
enc_err_t enc_store_ingest_put_timer(enc_store_ingest_t *in, int64_t time,
                                     const char *user, size_t ulen,
                                     char *errstr, size_t errstr_size) ENC_WUR;
/** Finishes the files written since the last call and ingests them (the
 *  users file first); on error, drops what was not ingested. A family
 *  with nothing added makes no file. */
enc_err_t enc_store_ingest_write(enc_store_ingest_t *in, char *errstr,
                                 size_t errstr_size) ENC_WUR;
/** Table files ingested so far. */
uint64_t enc_store_ingest_files(const enc_store_ingest_t *in);
void enc_store_ingest_destroy(enc_store_ingest_t *in);

/** Sets *empty to whether @p partition has no key in any family (a
 *  seek in each): a full restore into it needs no drop first. */
enc_err_t enc_store_partition_empty(enc_store_t *st, int32_t partition,
                                    bool *empty, char *errstr,
                                    size_t errstr_size) ENC_WUR;
/** Table files in level 0, all families (tests, benchmarks). */
uint64_t enc_store_l0_files(enc_store_t *st);

typedef struct enc_store_stats_s {
        uint64_t user_keys;  /* estimate (rocksdb.estimate-num-keys) */
        uint64_t timer_keys; /* estimate */
        uint64_t sst_bytes;  /* total SST files size */
        uint64_t memtable_bytes;
        uint64_t commits;
        /* the users family's index and filter blocks, all partitions, in
         * its live table files (rocksdb.aggregated-table-properties) */
        uint64_t user_index_bytes;
        uint64_t user_filter_bytes;
        uint64_t block_cache_bytes;  /* in use (rocksdb.block-cache-usage) */
        uint64_t block_cache_pinned; /* of it, pinned */
} enc_store_stats_t;

void enc_store_stats(enc_store_t *st, enc_store_stats_t *stats);

/** Flushes memtables and compacts everything (tests, benchmarks). */
void enc_store_compact(enc_store_t *st);

#endif /* ENC_STORE_H */
