/*
 * restore.h -- rebuilding a partition's local state from its changelog.
 *
 * The changelog topic mirrors every commit: a begin record (key "B"), one
 * record per user written (key 'U' + user id, value = the user record, null
 * = deleted) and then one position record (key "M", value =
 * enc_store_meta_t). A restore applies a
 * changelog partition in log order and makes its work durable only up to
 * position records, so the local store's position always covers a state
 * that was committed as a whole; records after the last position record (a
 * commit cut short by a crash) are discarded.
 */
#ifndef ENC_RESTORE_H
#define ENC_RESTORE_H

#include "enc.h"
#include "store.h"

#define ENC_CHANGELOG_KEY_USER  'U'
#define ENC_CHANGELOG_KEY_META  'M'
#define ENC_CHANGELOG_KEY_RESET 'R' /* `encore reset`: drop all before */
#define ENC_CHANGELOG_KEY_BEGIN 'B' /* a commit starts: drop unfinished */

typedef struct enc_restore_s enc_restore_t;

/**
 * Starts restoring @p partition into @p st (borrowed). @p full drops every
 * local key of the partition first (nothing usable locally) and then
 * loads whole commits in large batches as table files (RocksDB ingestion;
 * restore.c says how a crash midway ends); otherwise (incremental) the local
 * position stands until a whole commit of the changelog replaces it, and
 * each commit is written at its position record. Returns NULL and fills errstr
 * on failure. Free with enc_restore_destroy.
 */
enc_restore_t *enc_restore_new(enc_store_t *st, int32_t partition, bool full,
                               char *errstr, size_t errstr_size);

/** Applies one changelog record (borrowed). @p val NULL is a tombstone.
 *  A key that is neither a user nor a position record is an error. */
enc_err_t enc_restore_record(enc_restore_t *r, const void *key, size_t klen,
                             const void *val, size_t vlen, int64_t offset,
                             char *errstr, size_t errstr_size) ENC_WUR;

typedef struct enc_restore_stats_s {
        uint64_t records;   /* changelog records read */
        uint64_t users;     /* user records covered by a position */
        uint64_t positions; /* position records (consistent points) */
        uint64_t discarded; /* records after the last position, dropped */
        uint64_t ingested;  /* table files ingested (a full restore) */
        bool has_position;  /* a position was restored */
} enc_restore_stats_t;

/** The restore reached its end: writes the whole commits still staged
 *  (a full restore's last batch) with their position. Call before
 *  enc_restore_finish; without it (a cancelled restore) the store keeps
 *  the last position written, a whole commit's. */
enc_err_t enc_restore_complete(enc_restore_t *r, char *errstr,
                               size_t errstr_size) ENC_WUR;

/** Ends the restore: drops what follows the last position record (and
 *  whatever enc_restore_complete did not write). */
void enc_restore_finish(enc_restore_t *r, enc_restore_stats_t *stats);

void enc_restore_destroy(enc_restore_t *r);

#endif /* ENC_RESTORE_H */
