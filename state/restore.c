/*
 * restore.c -- rebuilding a partition's state from its changelog.
 *
 * DESIGN
 * A changelog partition is a sequence of commits, each "a begin record,
 * user records, then one position record". Restoring stages the records in
 * log order and writes them only up to a position record, so no user record
 * reaches the store without the position that covers it. A commit cut short
 * by a crash leaves user records with no position after them: they are
 * dropped (at the next begin record, or at the end), and the input is
 * reprocessed from the last whole commit (producing identical outputs, as
 * after any crash).
 *
 * Each write is whole commits and the position of the last of them, in one
 * RocksDB write through the WAL, as the commits themselves were written
 * (a full restore's table files: below): at every moment a store with a
 * position holds the state that some commit produced as a whole, with the
 * position that says where the input resumes, so a crash or a revoke at
 * any point of a restore leaves a store the next assignment resumes from
 * (incrementally, from that position) or, with no position, restores in
 * full. How many commits a write takes:
 *   - incremental (the store has a position): one, at each position
 *     record. Until one arrives the store's own last commit and its
 *     position stand; the local position is never deleted first. Such a
 *     restore reads what other processes wrote since, usually little.
 *   - full (nothing usable locally: the partition is dropped first,
 *     unless it holds no key at all, as after a lost disk): the
 *     bulk load. Whole commits are staged until ENC_RESTORE_INGEST_BYTES,
 *     then loaded at the next position record; enc_restore_complete
 *     loads the rest at the end. A full restore loads table files
 *     instead of writing batches (below).
 *
 * A full restore's batches are table files (store.h, enc_store_ingest_t):
 * the sorted records go into a users and a timers file that RocksDB
 * ingests, with no WAL, memtable insert or flush (those were most of a
 * restore's CPU: ops/bench/LIMITS.md, B3). An ingestion cannot share a
 * write with the position, so each load is three steps: (1) one write
 * deletes the position (and drops the partition if a reset is covered),
 * (2) the files are ingested, (3) one write puts the new position. A
 * crash in (2) or before (3) leaves user records and no position: the
 * next assignment restores the partition in full again (dropping them
 * first), never from a position that does not cover the store; a crash
 * after (3) resumes incrementally from that position. Ingested files take
 * sequence numbers above the drop of step 1, so they overlay it exactly
 * as a batch of the same records would. An incremental restore writes
 * batches: its commits are few, and an ingestion into a range the
 * memtables hold forces a flush.
 * Writing without the WAL (and marking completion after a flush) was
 * measured and rejected: the flush each finished partition then needs cost
 * more than the WAL saves (ops/bench/LIMITS.md, "B3: the changelog
 * restore").
 *
 * Each chunk is written sorted by key, one operation per user (the last of
 * the chunk: the same user appears in many commits of a changelog that is
 * not compacted yet) and one timer per user record kept: a table file
 * takes keys only in order, and RocksDB inserts keys in order into its
 * memtable far faster than in changelog order (the skip list reuses its
 * last position). The staged bytes live in one buffer
 * and one entry array, both reused: no allocation per record.
 *
 * Timers are not in the changelog: each user record carries its wake time,
 * and the timer key is rebuilt from it without decoding any signal state.
 * A stale timer key (an older wake of a user: local state an incremental
 * restore overwrites, or an earlier batch of a full one) is harmless: when it
 * fires, the engine loads the user, finds the true wake and moves the key.
 *
 * A user record of a version this encore does not read stops the restore
 * with an error naming the version: it is never stored, decoded or
 * skipped (skipping would lose that user's state without a word).
 *
 * Never: write a user record without the position that covers it, in the
 * same write, or (table files) with no position at all until it is
 * written; leave a position in place while loading records it does not
 * cover; trust a length or a position read from the topic.
 */
#include "restore.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "users.h"

/* Staged bytes (user ids and records) after which a full restore writes
 * the whole commits it holds, at the next position record. Several
 * commits a write; 128 KiB and 4 MiB restored at the same CPU per record
 * in b3 (1M users), so the memory a restoring partition holds (this, the
 * WriteBatch copy and the sort keys) stays small. */
#define ENC_RESTORE_CHUNK_BYTES ((size_t)1 << 20)
/* The same for a full restore's table files: each ingestion costs a few
 * file syncs and a MANIFEST write whatever its size, so larger. */
#define ENC_RESTORE_INGEST_BYTES ((size_t)4 << 20)
/* Cap on the staged bytes: a single commit larger than this is refused
 * (commits are bounded by the writer's budget far below it). */
#define ENC_RESTORE_MAX_STAGED ((size_t)1 << 30)

/* One staged user record (or tombstone): the user id at arena + off, then
 * the record. Entries stay in log order: of a user's, the last wins. */
typedef struct enc_rs_ent_s {
        uint32_t off, ulen, vlen;
        int64_t wake; /* INT64_MAX: no timer */
        bool del;
} enc_rs_ent_t;

/* Sort key of an entry (scratch of enc_rs_write). */
typedef struct enc_rs_key_s {
        const uint8_t *user;
        uint32_t ulen, idx;
        int64_t wake;
} enc_rs_key_t;

struct enc_restore_s {
        enc_store_t *st;
        int32_t partition;
        bool full;
        enc_store_batch_t *batch;
        enc_store_ingest_t *ing; /* full: table files; NULL: batches */
        enc_buf_t arena;    /* staged user ids and records */
        enc_rs_ent_t *ents; /* staged entries, in log order */
        size_t nents, ents_cap;
        enc_rs_key_t *keys; /* sort scratch, reused */
        size_t keys_cap;
        size_t ncommitted; /* entries covered by a position record */
        size_t arena_committed;
        bool drop_committed; /* a reset covered by a position: drop first */
        bool drop_pending;   /* a reset not yet covered */
        bool meta_unwritten; /* meta (the last position record) is newer
                                than the store's */
        enc_store_meta_t meta;
        bool completed;
        uint64_t pending; /* user records staged, not yet covered */
        enc_restore_stats_t stats;
};

enc_restore_t *enc_restore_new(enc_store_t *st, int32_t partition, bool full,
                               char *errstr, size_t errstr_size) {
        enc_restore_t *r = calloc(1, sizeof(*r));
        if (!r || !(r->batch = enc_store_batch_new())) {
                free(r);
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
                return NULL;
        }
        r->st = st;
        r->partition = partition;
        r->full = full;
        enc_buf_init(&r->arena, ENC_RESTORE_MAX_STAGED);
        /* An incremental restore keeps the local position: the store holds
         * a whole commit with its own position until a whole commit of the
         * changelog replaces both. (Deleting it up front, as before, left a
         * partition with state but no position when the changelog's tail
         * was a commit cut short: the input was then read from the group
         * offset and events the store had applied were applied again.) A
         * full restore drops everything of the partition first. */
        enc_err_t err = ENC_OK;
        bool empty = false;
        if (full)
                err = enc_store_partition_empty(st, partition, &empty, errstr,
                                                errstr_size);
        if (full && !err) {
                /* Nothing to drop in an empty partition (a lost disk):
                 * without the range deletions, the memtables need no
                 * flush before the first ingestion and the table files
                 * can go below level 0 (no compaction to undo them). */
                if (!empty)
                        err = enc_store_drop_partition(st, partition, errstr,
                                                       errstr_size);
                if (!err && !(r->ing = enc_store_ingest_new(
                                      st, partition, errstr, errstr_size)))
                        err = ENC_ERR_NOMEM;
        }
        if (err) {
                enc_restore_destroy(r);
                return NULL;
        }
        return r;
}

static int enc_rs_cmp_user(const void *a, const void *b) {
        const enc_rs_key_t *x = a, *y = b;
        size_t n = x->ulen < y->ulen ? x->ulen : y->ulen;
        int c = memcmp(x->user, y->user, n);
        if (c)
                return c;
        if (x->ulen != y->ulen)
                return x->ulen < y->ulen ? -1 : 1;
        return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Timer keys: [time][user id]; one entry per user, so no ties. */
static int enc_rs_cmp_timer(const void *a, const void *b) {
        const enc_rs_key_t *x = a, *y = b;
        if (x->wake != y->wake)
                return x->wake < y->wake ? -1 : 1;
        return enc_rs_cmp_user(a, b);
}

/* Drops the staged entries from @p n on (and their bytes from @p bytes). */
static void enc_rs_truncate(enc_restore_t *r, size_t n, size_t bytes) {
        r->nents = n;
        r->arena.len = bytes;
}

/*
 * Writes the whole commits staged (the partition's drop first if a reset is
 * committed, then one operation per user in key order, the timers in key
 * order, and the last position) in one RocksDB write.
 * The entries not yet committed move to the front.
 */
static enc_err_t enc_rs_write(enc_restore_t *r, char *errstr,
                              size_t errstr_size) {
        size_t n = r->ncommitted;
        enc_err_t err = ENC_OK;
        enc_store_batch_clear(r->batch);
        if (r->drop_committed)
                enc_store_batch_drop_partition(r->st, r->batch, r->partition);
        if (r->ing) {
                /* The position goes first, with the drop: no moment has a
                 * position that does not cover the store's users. */
                enc_store_batch_del_meta(r->st, r->batch, r->partition);
                if ((err = enc_store_batch_write(r->st, r->batch, errstr,
                                                 errstr_size)))
                        return err;
                r->drop_committed = false;
        }
        if (n > r->keys_cap) {
                size_t cap = r->keys_cap ? r->keys_cap : 1024;
                while (cap < n)
                        cap *= 2;
                enc_rs_key_t *k = realloc(r->keys, cap * sizeof(*k));
                if (!k)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                          "out of memory");
                r->keys = k;
                r->keys_cap = cap;
        }
        for (size_t i = 0; i < n; i++) {
                const enc_rs_ent_t *e = &r->ents[i];
                r->keys[i] = (enc_rs_key_t){r->arena.data + e->off, e->ulen,
                                            (uint32_t)i, e->wake};
        }
        if (n > 1) /* keys is NULL before the first commit */
                qsort(r->keys, n, sizeof(*r->keys), enc_rs_cmp_user);
        /* The last entry of each user, in key order; the kept user records
         * with a wake are gathered at the front of keys for the timers. */
        size_t ntimers = 0;
        for (size_t i = 0; i < n; i++) {
                if (i + 1 < n && r->keys[i + 1].ulen == r->keys[i].ulen &&
                    !memcmp(r->keys[i + 1].user, r->keys[i].user,
                            r->keys[i].ulen))
                        continue; /* a later record of the same user */
                const enc_rs_ent_t *e = &r->ents[r->keys[i].idx];
                const char *user = (const char *)r->arena.data + e->off;
                if (r->ing)
                        err = e->del ? enc_store_ingest_del_user(
                                               r->ing, user, e->ulen, errstr,
                                               errstr_size)
                                     : enc_store_ingest_put_user(
                                               r->ing, user, e->ulen,
                                               user + e->ulen, e->vlen,
                                               errstr, errstr_size);
                else if (e->del)
                        enc_store_batch_del_user(r->st, r->batch, r->partition,
                                                 user, e->ulen);
                else
                        enc_store_batch_put_user(r->st, r->batch, r->partition,
                                                 user, e->ulen, user + e->ulen,
                                                 e->vlen);
                if (err)
                        return err;
                if (!e->del && e->wake != INT64_MAX)
                        r->keys[ntimers++] = r->keys[i];
        }
        if (ntimers > 1)
                qsort(r->keys, ntimers, sizeof(*r->keys), enc_rs_cmp_timer);
        for (size_t i = 0; i < ntimers && !err; i++) {
                const char *user = (const char *)r->keys[i].user;
                if (r->ing)
                        err = enc_store_ingest_put_timer(
                                r->ing, r->keys[i].wake, user,
                                r->keys[i].ulen, errstr, errstr_size);
                else
                        enc_store_batch_put_timer(r->st, r->batch,
                                                  r->partition,
                                                  r->keys[i].wake, user,
                                                  r->keys[i].ulen);
        }
        if (!err && r->ing)
                err = enc_store_ingest_write(r->ing, errstr, errstr_size);
        if (err)
                return err;
        enc_store_batch_put_meta(r->st, r->batch, r->partition, &r->meta);
        err = enc_store_batch_write(r->st, r->batch, errstr, errstr_size);
        if (err)
                return err;
        r->drop_committed = false;
        r->meta_unwritten = false;
        /* what follows the last position moves to the front */
        size_t rest = r->nents - n, base = r->arena_committed;
        if (rest) /* ents and the arena are NULL before the first record */
                memmove(r->ents, r->ents + n, rest * sizeof(*r->ents));
        for (size_t i = 0; i < rest; i++)
                r->ents[i].off -= (uint32_t)base;
        if (r->arena.len > base)
                memmove(r->arena.data, r->arena.data + base,
                        r->arena.len - base);
        enc_rs_truncate(r, rest, r->arena.len - base);
        r->ncommitted = 0;
        r->arena_committed = 0;
        return ENC_OK;
}

static enc_err_t enc_rs_stage(enc_restore_t *r, const char *user, size_t ulen,
                              const void *val, size_t vlen, int64_t wake,
                              int64_t offset, char *errstr,
                              size_t errstr_size) {
        if (r->nents == r->ents_cap) {
                size_t cap = r->ents_cap ? 2 * r->ents_cap : 1024;
                enc_rs_ent_t *v = realloc(r->ents, cap * sizeof(*v));
                if (!v)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                          "out of memory");
                r->ents = v;
                r->ents_cap = cap;
        }
        size_t off = r->arena.len;
        if (enc_buf_append(&r->arena, user, ulen) ||
            (vlen && enc_buf_append(&r->arena, val, vlen))) {
                r->arena.len = off;
                r->arena.failed = false;
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "changelog partition %d offset %lld: one "
                                  "commit stages more than %zu bytes",
                                  r->partition, (long long)offset,
                                  (size_t)ENC_RESTORE_MAX_STAGED);
        }
        r->ents[r->nents++] = (enc_rs_ent_t){(uint32_t)off, (uint32_t)ulen,
                                             (uint32_t)vlen, wake, val == NULL};
        return ENC_OK;
}

enc_err_t enc_restore_record(enc_restore_t *r, const void *key, size_t klen,
                             const void *val, size_t vlen, int64_t offset,
                             char *errstr, size_t errstr_size) {
        const uint8_t *k = key;
        r->stats.records++;
        if (klen >= 2 && k[0] == ENC_CHANGELOG_KEY_USER) {
                const char *user = (const char *)k + 1;
                size_t ulen = klen - 1;
                int64_t wake = INT64_MAX;
                /* A record of another version (a newer encore wrote this
                 * changelog) is named, not parsed. */
                if (val && vlen &&
                    *(const uint8_t *)val != ENC_USER_RECORD_VERSION)
                        return enc_seterr(
                                errstr, errstr_size, ENC_ERR_CORRUPT,
                                "changelog partition %d offset %lld: user "
                                "record of version %u, this encore reads "
                                "version %d (was the changelog written by a "
                                "newer encore?)",
                                r->partition, (long long)offset,
                                *(const uint8_t *)val, ENC_USER_RECORD_VERSION);
                if (val && enc_user_record_wake(val, vlen, &wake))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CORRUPT,
                                          "changelog partition %d offset "
                                          "%lld: user record does not parse",
                                          r->partition, (long long)offset);
                enc_err_t err = enc_rs_stage(r, user, ulen, val, vlen, wake,
                                             offset, errstr, errstr_size);
                if (err)
                        return err;
                r->pending++;
                return ENC_OK;
        }
        if (klen == 1 && k[0] == ENC_CHANGELOG_KEY_BEGIN) {
                /* User records since the last position belong to a commit
                 * that never finished: they must not join this one. */
                if (r->pending)
                        enc_log_warn("restore_drop_unfinished",
                                     "partition=%d records=%llu offset=%lld",
                                     r->partition,
                                     (unsigned long long)r->pending,
                                     (long long)offset);
                enc_rs_truncate(r, r->ncommitted, r->arena_committed);
                r->drop_pending = false;
                r->stats.discarded += r->pending;
                r->pending = 0;
                return ENC_OK;
        }
        if (klen == 1 && k[0] == ENC_CHANGELOG_KEY_RESET) {
                /* Everything before is void once a position covers the
                 * reset. Whole commits still staged are written first, so
                 * they stand if none does. */
                if (r->meta_unwritten) {
                        enc_err_t err = enc_rs_write(r, errstr, errstr_size);
                        if (err)
                                return err;
                }
                enc_rs_truncate(r, 0, 0);
                r->drop_pending = true;
                r->pending = 1;
                return ENC_OK;
        }
        if (klen == 1 && k[0] == ENC_CHANGELOG_KEY_META && val) {
                enc_store_meta_t m;
                if (enc_store_meta_decode(val, vlen, &m))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CORRUPT,
                                          "changelog partition %d offset "
                                          "%lld: position record does not "
                                          "parse",
                                          r->partition, (long long)offset);
                m.changelog_end = offset + 1;
                r->meta = m;
                r->meta_unwritten = true;
                r->ncommitted = r->nents;
                r->arena_committed = r->arena.len;
                r->drop_committed = r->drop_committed || r->drop_pending;
                r->drop_pending = false;
                r->stats.users += r->pending;
                r->stats.positions++;
                r->stats.has_position = true;
                r->pending = 0;
                /* incremental: every whole commit with its position, as
                 * it was written; full: in chunks, the position at the
                 * end (enc_restore_complete) */
                if (!r->full)
                        return enc_rs_write(r, errstr, errstr_size);
                if (r->arena_committed >= (r->ing
                                                   ? ENC_RESTORE_INGEST_BYTES
                                                   : ENC_RESTORE_CHUNK_BYTES))
                        return enc_rs_write(r, errstr, errstr_size);
                return ENC_OK;
        }
        return enc_seterr(errstr, errstr_size, ENC_ERR_CORRUPT,
                          "changelog partition %d offset %lld: unknown "
                          "record key (is another application writing to "
                          "this topic?)",
                          r->partition, (long long)offset);
}

enc_err_t enc_restore_complete(enc_restore_t *r, char *errstr,
                               size_t errstr_size) {
        if (r->meta_unwritten) {
                enc_err_t err = enc_rs_write(r, errstr, errstr_size);
                if (err)
                        return err;
        }
        r->completed = true;
        return ENC_OK;
}

void enc_restore_finish(enc_restore_t *r, enc_restore_stats_t *stats) {
        r->stats.discarded += r->pending;
        if (r->pending)
                enc_log_warn("restore_discard_tail",
                             "partition=%d records=%llu reason=\"no position "
                             "record after them: a commit cut short; the "
                             "input is reprocessed from the last whole "
                             "commit\"",
                             r->partition, (unsigned long long)r->pending);
        if (!r->completed && r->meta_unwritten)
                enc_log_warn("restore_incomplete",
                             "partition=%d records=%zu reason=\"ended "
                             "before enc_restore_complete: the store keeps "
                             "the last position written\"",
                             r->partition, r->ncommitted);
        r->stats.ingested = enc_store_ingest_files(r->ing);
        enc_store_batch_clear(r->batch);
        enc_rs_truncate(r, 0, 0);
        r->ncommitted = 0;
        r->arena_committed = 0;
        r->pending = 0;
        *stats = r->stats;
}

void enc_restore_destroy(enc_restore_t *r) {
        if (!r)
                return;
        enc_store_batch_destroy(r->batch);
        enc_store_ingest_destroy(r->ing);
        enc_buf_free(&r->arena);
        free(r->ents);
        free(r->keys);
        free(r);
}
