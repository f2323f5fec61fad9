/*
 * restore.c -- rebuilding a partition's state from its changelog.
 *
 * DESIGN
 * A changelog partition is a sequence of commits, each "a begin record,
 * user records, then one position record". Restoring applies it in log order into a batch of
 * its own and writes that batch only when a position record arrives, in the
 * same RocksDB write as the position. So at every moment the local store
 * holds a state that some commit produced as a whole, and the position
 * stored with it says where the input resumes. A commit cut short by a
 * crash leaves user records with no position after them: they are dropped
 * at the end, and the input is reprocessed from the last whole commit
 * (producing identical outputs, as after any crash). An incremental
 * restore never deletes the local position first: until a position record
 * arrives, the store's own last commit and its position stand.
 *
 * Timers are not in the changelog: each user record carries its wake time,
 * and the timer key is rebuilt from it without decoding any signal state.
 * A stale timer key left by an incremental restore is harmless: when it
 * fires, the engine loads the user, finds the true wake and moves the key.
 *
 * A user record of a version this encore does not read stops the restore
 * with an error naming the version: it is never stored, decoded or
 * skipped (skipping would lose that user's state without a word).
 *
 * Never: write a user record without the position that covers it; trust a
 * length or a position read from the topic.
 */
#include "restore.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "users.h"

struct enc_restore_s {
        enc_store_t *st;
        int32_t partition;
        enc_store_batch_t *batch;
        uint64_t pending; /* user records in batch, not yet durable */
        enc_restore_stats_t stats;
};

enc_restore_t *enc_restore_new(enc_store_t *st, int32_t partition, bool full,
                               char *errstr, size_t errstr_size) {
        enc_restore_t *r = calloc(1, sizeof(*r));
        if (!r || !(r->batch = enc_store_batch_new())) {
                free(r);
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return NULL;
        }
        r->st = st;
        r->partition = partition;
        /* An incremental restore keeps the local position: the store holds
         * a whole commit with its own position until a whole commit of the
         * changelog replaces both. (Deleting it up front, as before, left a
         * partition with state but no position when the changelog's tail
         * was a commit cut short: the input was then read from the group
         * offset and events the store had applied were applied again.) */
        enc_err_t err = ENC_OK;
        if (full)
                err = enc_store_drop_partition(st, partition, errstr,
                                               errstr_size);
        if (err) {
                enc_restore_destroy(r);
                return NULL;
        }
        return r;
}

enc_err_t enc_restore_record(enc_restore_t *r, const void *key, size_t klen,
                             const void *val, size_t vlen, int64_t offset,
                             char *errstr, size_t errstr_size) {
        const uint8_t *k = key;
        r->stats.records++;
        if (klen >= 2 && k[0] == ENC_CHANGELOG_KEY_USER) {
                const char *user = (const char *)k + 1;
                size_t ulen = klen - 1;
                if (!val) {
                        enc_store_batch_del_user(r->st, r->batch,
                                                 r->partition, user, ulen);
                } else {
                        int64_t wake;
                        /* A record of another version (a newer encore
                         * wrote this changelog) is named, not parsed. */
                        if (vlen && *(const uint8_t *)val !=
                                            ENC_USER_RECORD_VERSION)
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CORRUPT,
                                        "changelog partition %d offset "
                                        "%lld: user record of version %u, "
                                        "this encore reads version %d (was "
                                        "the changelog written by a newer "
                                        "encore?)",
                                        r->partition, (long long)offset,
                                        *(const uint8_t *)val,
                                        ENC_USER_RECORD_VERSION);
                        if (enc_user_record_wake(val, vlen, &wake))
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CORRUPT,
                                        "changelog partition %d offset "
                                        "%lld: user record does not parse",
                                        r->partition, (long long)offset);
                        enc_store_batch_put_user(r->st, r->batch,
                                                 r->partition, user, ulen,
                                                 val, vlen);
                        if (wake != INT64_MAX)
                                enc_store_batch_put_timer(r->st, r->batch,
                                                          r->partition, wake,
                                                          user, ulen);
                }
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
                enc_store_batch_clear(r->batch);
                r->stats.discarded += r->pending;
                r->pending = 0;
                return ENC_OK;
        }
        if (klen == 1 && k[0] == ENC_CHANGELOG_KEY_RESET) {
                /* Everything before is void: the next position record
                 * makes "nothing" durable. */
                enc_store_batch_clear(r->batch);
                enc_store_batch_drop_partition(r->st, r->batch, r->partition);
                r->pending = 1;
                return ENC_OK;
        }
        if (klen == 1 && k[0] == ENC_CHANGELOG_KEY_META && val) {
                enc_store_meta_t m;
                if (enc_store_meta_decode(val, vlen, &m))
                        return enc_seterr(errstr, errstr_size,
                                          ENC_ERR_CORRUPT,
                                          "changelog partition %d offset "
                                          "%lld: position record does not "
                                          "parse",
                                          r->partition, (long long)offset);
                m.changelog_end = offset + 1;
                enc_store_batch_put_meta(r->st, r->batch, r->partition, &m);
                enc_err_t err = enc_store_batch_write(r->st, r->batch, errstr,
                                                      errstr_size);
                if (err)
                        return err;
                r->stats.users += r->pending;
                r->stats.positions++;
                r->stats.has_position = true;
                r->pending = 0;
                return ENC_OK;
        }
        return enc_seterr(errstr, errstr_size, ENC_ERR_CORRUPT,
                          "changelog partition %d offset %lld: unknown "
                          "record key (is another application writing to "
                          "this topic?)",
                          r->partition, (long long)offset);
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
        enc_store_batch_clear(r->batch);
        r->pending = 0;
        *stats = r->stats;
}

void enc_restore_destroy(enc_restore_t *r) {
        if (!r)
                return;
        enc_store_batch_destroy(r->batch);
        free(r);
}
