/*
 * users.h -- the write-back cache of per-user state, and the timer index.
 *
 * A user entry holds the decoded state of every signal instance for one
 * (partition, user). Entries are loaded from the store on first use, changed
 * in memory, and written back (staged into the store's batch) at commit.
 * Dirty entries are never evicted; clean ones are, least recently used
 * first, when the cache is over its byte budget.
 *
 * Timers: every entry knows its wake time (the earliest next_timer of its
 * states). Cached entries sit in a per-partition min-heap ordered by
 * (wake, user id); entries on disk only are found through the store's
 * timers column family. Single-threaded: the processing thread owns it.
 */
#ifndef ENC_USERS_H
#define ENC_USERS_H

#include "enc.h"
#include "plugin.h"
#include "store.h"

typedef struct enc_users_s enc_users_t;

typedef struct enc_user_s {
        /* cache internals */
        struct enc_user_s *hnext;
        struct enc_user_s *lru_prev, *lru_next;
        uint64_t hash;
        int heap_idx; /* -1: not in a heap */
        size_t charge;   /* against the cache budget: what it holds */
        uint32_t rec_len; /* its record's length when last read or written
                             (an estimate for a new user) */
        /* identity */
        int32_t partition;
        uint32_t ulen;
        /* timers */
        int64_t wake;        /* earliest next_timer; ENC_NO_TIMER if none */
        int64_t hkey;        /* its key in the timer heap: <= wake, equal
                                once it reaches the top (enc_users.c) */
        int64_t stored_wake; /* timer key in the store; ENC_NO_TIMER none */
        bool dirty;
        bool on_disk; /* a record exists in the store */
        uint8_t unused; /* read ahead (enc_users_prefetch), not yet
                           used: 1 pinned (on the pinned list), 2 past
                           the pinned share (on the LRU); else 0 */
        void **states; /* [instance count]; NULL = no state */
        char user_id[]; /* NUL-terminated, ulen bytes */
} enc_user_t;

/**
 * New cache over @p store for the instances @p insts (borrowed: must outlive
 * the cache). Returns NULL on allocation failure.
 */
enc_users_t *enc_users_new(const enc_sig_instance_t *insts, int inst_cnt,
                           enc_store_t *store, size_t max_bytes);
/** Frees every entry (dirty changes are lost: flush first). */
void enc_users_destroy(enc_users_t *c);

/**
 * Finds or loads (partition, user). A user with no stored record gets an
 * empty entry (all states NULL). @p known_timer is the time of a timer key
 * the caller saw in the store for this user (ENC_NO_TIMER if none): it keeps
 * an orphaned timer key from outliving a missing record. The entry is
 * borrowed until the next enc_users_evict or enc_users_drop_partition.
 * A stored record that fails to parse is logged, counted in stats.corrupt
 * and replaced by empty state (the input is not at fault).
 */
enc_err_t enc_users_get(enc_users_t *c, int32_t partition, const char *user,
                        size_t ulen, int64_t known_timer, enc_user_t **up,
                        char *errstr, size_t errstr_size) ENC_WUR;

/**
 * Loads the users (@p parts[i], @p users[i]) of @p ulens[i] bytes, i < @p n,
 * that are not cached, with one batched read of the store (a RocksDB
 * MultiGet), as clean entries, most recently used. For users whose events
 * wait in the reorder buffer, or whose timers are due: their lookup is then
 * a cache hit instead of a read each. @p timers[i] is the time of the
 * stored timer key users[i] was found by (see enc_users_get's known_timer;
 * ENC_NO_TIMER for none, or @p timers NULL for none at all). All borrowed
 * for the call. Changes which users are cached, never what any holds.
 */
enc_err_t enc_users_prefetch(enc_users_t *c, const int32_t *parts,
                             const char *const *users, const size_t *ulens,
                             const int64_t *timers, size_t n, char *errstr,
                             size_t errstr_size) ENC_WUR;

/** True if (partition, user) is in the cache. */
bool enc_users_cached(enc_users_t *c, int32_t partition, const char *user,
                      size_t ulen);

/** Marks @p u changed: recomputes its wake from the states, repositions it
 *  in the timer heap and marks it dirty. Returns the new wake. */
int64_t enc_users_changed(enc_users_t *c, enc_user_t *u);

/** The cached entry with the smallest (wake, user id) in @p partition if
 *  its wake is at most @p upto, else NULL (no cached entry there has a
 *  timer due by @p upto). */
enc_user_t *enc_users_next_timer(enc_users_t *c, int32_t partition,
                                 int64_t upto);

/** Stages every dirty entry (record, timer moves, deletes of empty users)
 *  into the store's batch and marks them clean. Users whose states are all
 *  NULL are deleted from the store and dropped from the cache. */
enc_err_t enc_users_flush(enc_users_t *c, char *errstr,
                          size_t errstr_size) ENC_WUR;

/** Evicts clean entries, least recently used first, until the cache is
 *  within budget. Returns true if it is still over budget (too much dirty
 *  state: the caller should commit). */
bool enc_users_evict(enc_users_t *c);

/** Changes the byte budget (the engine charges the id filter's memory to
 *  the users share); the next enc_users_evict applies it. */
void enc_users_set_max_bytes(enc_users_t *c, size_t max_bytes);

/** About how many bytes enc_users_flush would stage now (records, keys,
 *  timer moves of the dirty entries): what the next commit writes. */
size_t enc_users_dirty_bytes(const enc_users_t *c);

/** The smallest wake of the entries of @p partition evicted since the last
 *  call (ENC_NO_TIMER if none), and resets it. */
int64_t enc_users_evicted_min(enc_users_t *c, int32_t partition);

/**
 * Called by enc_users_flush for every user it writes: @p rec is the new
 * record, or NULL when the user is deleted. Borrowed for the call. The
 * engine uses it to mirror state into the changelog topic.
 */
typedef void (*enc_users_flush_cb_t)(void *opaque, int32_t partition,
                                     const char *user, size_t ulen,
                                     const void *rec, size_t rec_len);
void enc_users_set_flush_cb(enc_users_t *c, enc_users_flush_cb_t cb,
                            void *opaque);

/**
 * Called for every timer key enc_users_flush stages into the store's batch
 * (@p put, else a delete), in key order within a flush. @p user is borrowed
 * for the call. The engine keeps its in-memory window of the store's timer
 * index (state/timers.h) equal to the store with it.
 */
typedef void (*enc_users_timer_cb_t)(void *opaque, int32_t partition,
                                     bool put, int64_t time, const char *user,
                                     size_t ulen);
void enc_users_set_timer_cb(enc_users_t *c, enc_users_timer_cb_t cb,
                            void *opaque);

/** Forgets every entry of @p partition (revocation). Dirty entries of it
 *  are discarded, so flush and commit first. */
void enc_users_drop_partition(enc_users_t *c, int32_t partition);

typedef struct enc_users_stats_s {
        uint64_t entries;
        uint64_t bytes;
        uint64_t dirty;
        uint64_t hits;
        uint64_t misses;
        uint64_t prefetched; /* loaded by enc_users_prefetch */
        uint64_t prefetch_wasted; /* of which evicted before a get */
        uint64_t evictions;
        uint64_t corrupt;
        uint64_t deleted; /* users whose state expired */
} enc_users_stats_t;

void enc_users_stats(const enc_users_t *c, enc_users_stats_t *stats);

/* The user record format, exposed for the fuzzer, restores and tests:
 * [u8 version=2][svarint wake][varint section count]
 *   { [u32be instance id][varint length][state bytes] } ...
 * Sections of instances not configured any more are skipped. wake is the
 * earliest next_timer of the states when encoded (INT64_MAX: none), kept so
 * a restore can rebuild the timer index without decoding any state. */
/* ENC_USER_RECORD_VERSION (store.h): part of the store's format; a new
 * version bumps ENC_STORE_FORMAT. */
enc_err_t enc_user_record_encode(const enc_sig_instance_t *insts, int cnt,
                                 void *const *states,
                                 enc_buf_t *out) ENC_WUR;
enc_err_t enc_user_record_decode(const enc_sig_instance_t *insts, int cnt,
                                 const uint8_t *buf, size_t len,
                                 void **states) ENC_WUR;
/** Reads only the wake of a record (no state is decoded). */
enc_err_t enc_user_record_wake(const uint8_t *buf, size_t len,
                               int64_t *wake) ENC_WUR;

#endif /* ENC_USERS_H */
