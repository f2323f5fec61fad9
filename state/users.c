/*
 * users.c -- write-back cache of per-user state and the timer heaps.
 *
 * DESIGN
 * The hot path of encore is "find this user's state, change it". The cache
 * keeps decoded state in memory, so a busy user costs a hash lookup, not a
 * RocksDB read and a parse per event. Changes are written back only at
 * commit (enc_users_flush), in the same batch as the offsets that produced
 * them.
 *
 * Invariants:
 *  - A dirty entry is never evicted: the store holds the state as of the last
 *    commit, and only the cache holds what happened since. So the LRU list
 *    holds clean entries only (a dirty one leaves it and comes back, as the
 *    most recent, when flush writes it): eviction takes from the tail
 *    without stepping over dirty entries (stepping over a commit's worth
 *    of them after every record was 8% of B1's processing thread).
 *  - A user read ahead (enc_users_prefetch: an event or a timer of it is
 *    about to be reached) sits on the pinned list, not the LRU, until it is
 *    used (a lookup, or made dirty), so it cannot be evicted in between:
 *    with state far larger than the cache, dirty users fill it and every
 *    record's eviction emptied the LRU, so half the users read ahead were
 *    evicted unused and read again, one Get each. The engine reads ahead
 *    only a few hundred events, and what the pinned list holds is capped at
 *    1/ENC_USERS_PIN_SHARE of the budget (beyond it a read-ahead user goes
 *    on the LRU like any other). Pinned users are held over the budget:
 *    eviction does not evict others to make room for them, nor does a
 *    commit become due for them.
 *  - For every entry, stored_wake is the timer key the store holds for it;
 *    flush moves that key to wake. For a user that is not cached, the store's
 *    timer key is its true wake. So "due timers" = due cached entries (the
 *    heaps) + due store keys of uncached users, and the engine never misses
 *    or double-fires a timer.
 *  - Heap order is (wake, user id): timers firing at the same time fire in a
 *    fixed order, whatever the order users entered the cache. An entry's
 *    heap key may lag behind its wake when the wake moved later (most plays
 *    push the session's end later): it stays put, a lower bound, and is
 *    put right when it comes due (enc_users_next_timer), so the top the
 *    engine sees is always the least (wake, user id). A play then costs no
 *    sift, but the stale key costs one when due: in B1 hot the sifts went
 *    down by 6% only, since a fired timer's new wake is put right at once.
 *
 * Never: read the clock, or decide anything from cache state that could
 * change output. What is cached changes speed only.
 */
#include "users.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "log.h"

/* What a cached user costs, charged against cache.max.bytes: the entry
 * (struct, id, state pointers, hash, heap and dirty slots, malloc headers)
 * and the heap its states hold, as each plug-in's state_bytes() counts it
 * (malloc's rounding and headers included), taken when the user is loaded
 * and when it is flushed (between the two, what a dirty user grows by is
 * bounded by the commit the dirty bytes force). A plug-in without
 * state_bytes() is charged five times its part of the record, the old
 * estimate from when decoded state was lists of separately allocated
 * strings: a process's resident set then grew about 2.1 bytes per byte
 * charged at twice the record (ops/bench `mem --in-process 1`). Charging
 * less than the truth lets the cache outgrow its budget; charging more
 * only caches fewer users. */
#define ENC_USER_OVERHEAD     200
#define ENC_USER_STATE_FACTOR 5
#define ENC_USER_NEW_REC      128 /* record guess before the first encode */
#define ENC_USERS_PIN_SHARE   4 /* users read ahead and not yet used hold
                                     at most 1/8 of the budget */

typedef struct enc_heap_s {
        enc_user_t **v;
        int cnt;
        int cap;
        int64_t evicted_min; /* smallest wake evicted since last asked */
} enc_heap_t;

struct enc_users_s {
        const enc_sig_instance_t *insts;
        int inst_cnt;
        enc_store_t *store;
        size_t max_bytes;
        size_t bytes;
        enc_user_t **buckets;
        size_t nbuckets; /* power of two */
        size_t cnt;
        enc_user_t lru; /* sentinel: lru.lru_next is most recent */
        enc_user_t pinned; /* sentinel: read ahead, not yet used */
        size_t pinned_bytes; /* their charges, also in bytes */
        enc_heap_t *heaps; /* by partition */
        int nheaps;
        enc_users_flush_cb_t on_flush; /* changelog hook */
        void *on_flush_opaque;
        enc_user_t **dirtyv; /* entries with dirty set, flush order */
        size_t ndirty;
        size_t capdirty;
        size_t dirty_bytes; /* what flushing them would stage, estimated */
        enc_users_stats_t stats;
        enc_buf_t scratch;
        /* timer key changes of one flush, staged in key order */
        struct enc_timer_op_s *tops;
        size_t ntops, captops;
        enc_buf_t tids; /* their user ids */
        enc_users_timer_cb_t on_timer; /* every timer key staged */
        void *on_timer_opaque;
};

typedef struct enc_timer_op_s {
        int32_t partition;
        bool put; /* else delete */
        int64_t time;
        size_t id_at;   /* user id: tids.data + id_at, */
        const char *id; /* set once tids stops moving */
        uint32_t ulen;
} enc_timer_op_t;

static void enc_lru_unlink(enc_user_t *u);
static void enc_users_unpin(enc_users_t *c, enc_user_t *u);

/* What flushing @p u stages into the store's batch: its record (as long as
 * when it was last read or written: the charge remembers it), its key and a
 * timer key moved (one delete, one put), with the batch's few bytes of
 * framing per operation. An estimate, as the state may have grown since;
 * it changes only while the entry is clean (the charge is set when it is
 * loaded and when it is flushed), so adding it when an entry becomes dirty
 * and taking it off when it is flushed or dropped keeps the sum exact. */
static size_t enc_user_stage_bytes(const enc_user_t *u) {
        return u->rec_len + (4 + u->ulen + 4) + 2 * (12 + u->ulen + 4);
}

/* What @p u holds now (see ENC_USER_OVERHEAD). */
static size_t enc_user_charge(const enc_users_t *c, const enc_user_t *u) {
        size_t n = ENC_USER_OVERHEAD + u->ulen;
        bool guess = false;
        for (int i = 0; i < c->inst_cnt; i++) {
                const enc_signal_plugin_t *pl = c->insts[i].plugin;
                if (!u->states[i])
                        continue;
                if (pl->state_bytes)
                        n += pl->state_bytes(c->insts[i].priv, u->states[i]);
                else
                        guess = true;
        }
        return n + (guess ? (size_t)u->rec_len * ENC_USER_STATE_FACTOR : 0);
}

/* Sets @p u's charge to what it holds now, keeping the cache's sum. */
static void enc_user_recharge(enc_users_t *c, enc_user_t *u) {
        c->bytes -= u->charge;
        u->charge = enc_user_charge(c, u);
        c->bytes += u->charge;
}

static bool enc_users_mark_dirty(enc_users_t *c, enc_user_t *u) {
        if (u->dirty)
                return true;
        if (c->ndirty == c->capdirty) {
                size_t ncap = c->capdirty ? c->capdirty * 2 : 1024;
                enc_user_t **n = realloc(c->dirtyv, ncap * sizeof(*n));
                if (!n)
                        return false;
                c->dirtyv = n;
                c->capdirty = ncap;
        }
        c->dirtyv[c->ndirty++] = u;
        u->dirty = true;
        c->stats.dirty++;
        c->dirty_bytes += enc_user_stage_bytes(u);
        enc_users_unpin(c, u);
        enc_lru_unlink(u); /* not evictable until flushed */
        return true;
}

/* ---- record format -------------------------------------------------- */

/* The earliest next_timer over the states, or ENC_NO_TIMER. */
static int64_t enc_states_wake(const enc_sig_instance_t *insts, int cnt,
                               void *const *states) {
        int64_t w = ENC_NO_TIMER;
        for (int i = 0; i < cnt; i++) {
                if (!states[i] || !insts[i].plugin->next_timer)
                        continue;
                int64_t t = insts[i].plugin->next_timer(insts[i].priv,
                                                        states[i]);
                if (t < w)
                        w = t;
        }
        return w;
}

enc_err_t enc_user_record_encode(const enc_sig_instance_t *insts, int cnt,
                                 void *const *states, enc_buf_t *out) {
        int n = 0;
        for (int i = 0; i < cnt; i++)
                n += states[i] != NULL;
        enc_buf_put_u8(out, ENC_USER_RECORD_VERSION);
        enc_buf_put_svarint(out, enc_states_wake(insts, cnt, states));
        enc_buf_put_varint(out, (uint64_t)n);
        for (int i = 0; i < cnt; i++) {
                if (!states[i])
                        continue;
                enc_buf_put_u32be(out, insts[i].id);
                /* Reserve a fixed 5-byte varint for the length, then fill it
                 * in, so the state is encoded straight into @p out. */
                size_t at = out->len;
                uint8_t pad[5] = {0x80, 0x80, 0x80, 0x80, 0x00};
                if (enc_buf_append(out, pad, 5) != ENC_OK)
                        return ENC_ERR_TOO_LARGE;
                enc_err_t err = insts[i].plugin->state_encode(
                        insts[i].priv, states[i], out);
                if (err)
                        return err;
                if (out->failed)
                        return ENC_ERR_TOO_LARGE;
                size_t len = out->len - at - 5;
                if (len > 0x7ffffff)
                        return ENC_ERR_TOO_LARGE;
                for (int k = 0; k < 5; k++)
                        out->data[at + k] =
                                (uint8_t)(((len >> (7 * k)) & 0x7f) |
                                          (k < 4 ? 0x80 : 0));
        }
        return out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
}

enc_err_t enc_user_record_wake(const uint8_t *buf, size_t len, int64_t *wake) {
        const uint8_t *p = buf, *end = buf + len;
        uint8_t ver;
        if (!enc_get_u8(&p, end, &ver) || ver != ENC_USER_RECORD_VERSION ||
            !enc_get_svarint(&p, end, wake))
                return ENC_ERR_CORRUPT;
        return ENC_OK;
}

enc_err_t enc_user_record_decode(const enc_sig_instance_t *insts, int cnt,
                                 const uint8_t *buf, size_t len,
                                 void **states) {
        const uint8_t *p = buf, *end = buf + len;
        uint8_t ver;
        uint64_t n;
        int64_t wake;
        for (int i = 0; i < cnt; i++)
                states[i] = NULL;
        /* The stored wake is a copy for restores; the states decide. */
        if (!enc_get_u8(&p, end, &ver) || ver != ENC_USER_RECORD_VERSION ||
            !enc_get_svarint(&p, end, &wake) ||
            !enc_get_varint(&p, end, &n) || n > 1024)
                return ENC_ERR_CORRUPT;
        for (uint64_t s = 0; s < n; s++) {
                uint32_t id;
                uint64_t slen;
                if (!enc_get_u32be(&p, end, &id) ||
                    !enc_get_varint(&p, end, &slen) ||
                    slen > (uint64_t)(end - p))
                        goto corrupt;
                for (int i = 0; i < cnt; i++) {
                        if (insts[i].id != id)
                                continue;
                        if (states[i] ||
                            insts[i].plugin->state_decode(insts[i].priv, p,
                                                          (size_t)slen,
                                                          &states[i]))
                                goto corrupt;
                        break;
                }
                p += slen;
        }
        if (p != end)
                goto corrupt;
        return ENC_OK;
corrupt:
        for (int i = 0; i < cnt; i++) {
                if (states[i])
                        insts[i].plugin->state_free(insts[i].priv, states[i]);
                states[i] = NULL;
        }
        return ENC_ERR_CORRUPT;
}

/* ---- heaps ---------------------------------------------------------- */

static bool enc_user_before(const enc_user_t *a, const enc_user_t *b) {
        if (a->hkey != b->hkey)
                return a->hkey < b->hkey;
        size_t n = a->ulen < b->ulen ? a->ulen : b->ulen;
        int c = memcmp(a->user_id, b->user_id, n);
        return c ? c < 0 : a->ulen < b->ulen;
}

static void enc_heap_swap(enc_heap_t *h, int i, int j) {
        enc_user_t *t = h->v[i];
        h->v[i] = h->v[j];
        h->v[j] = t;
        h->v[i]->heap_idx = i;
        h->v[j]->heap_idx = j;
}

static void enc_heap_up(enc_heap_t *h, int i) {
        while (i > 0) {
                int p = (i - 1) / 2;
                if (!enc_user_before(h->v[i], h->v[p]))
                        break;
                enc_heap_swap(h, i, p);
                i = p;
        }
}

static void enc_heap_down(enc_heap_t *h, int i) {
        for (;;) {
                int l = 2 * i + 1, r = l + 1, m = i;
                if (l < h->cnt && enc_user_before(h->v[l], h->v[m]))
                        m = l;
                if (r < h->cnt && enc_user_before(h->v[r], h->v[m]))
                        m = r;
                if (m == i)
                        break;
                enc_heap_swap(h, i, m);
                i = m;
        }
}

static enc_heap_t *enc_users_heap(enc_users_t *c, int32_t partition) {
        if (partition < 0)
                return NULL;
        if (partition >= c->nheaps) {
                int n = partition + 1;
                enc_heap_t *nh = realloc(c->heaps, (size_t)n * sizeof(*nh));
                if (!nh)
                        return NULL;
                memset(nh + c->nheaps, 0,
                       (size_t)(n - c->nheaps) * sizeof(*nh));
                for (int i = c->nheaps; i < n; i++)
                        nh[i].evicted_min = ENC_NO_TIMER;
                c->heaps = nh;
                c->nheaps = n;
        }
        return &c->heaps[partition];
}

static void enc_heap_remove(enc_users_t *c, enc_user_t *u) {
        if (u->heap_idx < 0)
                return;
        enc_heap_t *h = &c->heaps[u->partition];
        int i = u->heap_idx;
        h->cnt--;
        if (i != h->cnt) {
                h->v[i] = h->v[h->cnt];
                h->v[i]->heap_idx = i;
                enc_heap_up(h, i);
                enc_heap_down(h, h->v[i]->heap_idx);
        }
        u->heap_idx = -1;
}

static bool enc_heap_place(enc_users_t *c, enc_user_t *u) {
        if (u->wake == ENC_NO_TIMER) {
                enc_heap_remove(c, u);
                return true;
        }
        u->hkey = u->wake;
        if (u->heap_idx >= 0) {
                enc_heap_t *h = &c->heaps[u->partition];
                enc_heap_up(h, u->heap_idx);
                enc_heap_down(h, u->heap_idx);
                return true;
        }
        enc_heap_t *h = enc_users_heap(c, u->partition);
        if (!h)
                return false;
        if (h->cnt == h->cap) {
                int ncap = h->cap ? h->cap * 2 : 64;
                enc_user_t **nv = realloc(h->v, (size_t)ncap * sizeof(*nv));
                if (!nv)
                        return false;
                h->v = nv;
                h->cap = ncap;
        }
        h->v[h->cnt] = u;
        u->heap_idx = h->cnt++;
        enc_heap_up(h, u->heap_idx);
        return true;
}

/* ---- hash table and LRU --------------------------------------------- */

static uint64_t enc_user_hash(int32_t partition, const char *user,
                              size_t ulen) {
        return XXH3_64bits_withSeed(user, ulen, (uint64_t)(uint32_t)partition);
}

/* No-op for an entry not on the list (dirty, or not linked yet). */
static void enc_lru_unlink(enc_user_t *u) {
        if (!u->lru_next)
                return;
        u->lru_prev->lru_next = u->lru_next;
        u->lru_next->lru_prev = u->lru_prev;
        u->lru_next = u->lru_prev = NULL;
}

/* Puts @p u at the front of the list whose sentinel is @p head (the LRU
 * or the pinned list). */
static void enc_list_push_front(enc_user_t *head, enc_user_t *u) {
        u->lru_next = head->lru_next;
        u->lru_prev = head;
        head->lru_next->lru_prev = u;
        head->lru_next = u;
}

static void enc_lru_push_front(enc_users_t *c, enc_user_t *u) {
        enc_list_push_front(&c->lru, u);
}

enc_users_t *enc_users_new(const enc_sig_instance_t *insts, int inst_cnt,
                           enc_store_t *store, size_t max_bytes) {
        enc_users_t *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->insts = insts;
        c->inst_cnt = inst_cnt;
        c->store = store;
        c->max_bytes = max_bytes;
        c->nbuckets = 1024;
        c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
        c->lru.lru_next = c->lru.lru_prev = &c->lru;
        c->pinned.lru_next = c->pinned.lru_prev = &c->pinned;
        enc_buf_init(&c->scratch, 64 << 20);
        enc_buf_init(&c->tids, (size_t)64 << 20);
        if (!c->buckets) {
                free(c);
                return NULL;
        }
        return c;
}

static void enc_user_free(enc_users_t *c, enc_user_t *u) {
        for (int i = 0; i < c->inst_cnt; i++)
                if (u->states[i])
                        c->insts[i].plugin->state_free(c->insts[i].priv,
                                                       u->states[i]);
        free(u); /* the states array is in the same block */
}

void enc_users_destroy(enc_users_t *c) {
        if (!c)
                return;
        for (size_t b = 0; b < c->nbuckets; b++) {
                enc_user_t *u = c->buckets[b];
                while (u) {
                        enc_user_t *n = u->hnext;
                        enc_user_free(c, u);
                        u = n;
                }
        }
        for (int i = 0; i < c->nheaps; i++)
                free(c->heaps[i].v);
        free(c->heaps);
        free(c->buckets);
        free(c->dirtyv);
        free(c->tops);
        enc_buf_free(&c->scratch);
        enc_buf_free(&c->tids);
        free(c);
}

static enc_user_t **enc_users_slot(enc_users_t *c, uint64_t hash,
                                   int32_t partition, const char *user,
                                   size_t ulen) {
        enc_user_t **pp = &c->buckets[hash & (c->nbuckets - 1)];
        for (; *pp; pp = &(*pp)->hnext) {
                enc_user_t *u = *pp;
                if (u->hash == hash && u->partition == partition &&
                    u->ulen == ulen && !memcmp(u->user_id, user, ulen))
                        return pp;
        }
        return pp;
}

static void enc_users_grow(enc_users_t *c) {
        size_t nb = c->nbuckets * 2;
        enc_user_t **b = calloc(nb, sizeof(*b));
        if (!b)
                return; /* keep the longer chains; still correct */
        for (size_t i = 0; i < c->nbuckets; i++) {
                enc_user_t *u = c->buckets[i];
                while (u) {
                        enc_user_t *n = u->hnext;
                        u->hnext = b[u->hash & (nb - 1)];
                        b[u->hash & (nb - 1)] = u;
                        u = n;
                }
        }
        free(c->buckets);
        c->buckets = b;
        c->nbuckets = nb;
}

bool enc_users_cached(enc_users_t *c, int32_t partition, const char *user,
                      size_t ulen) {
        uint64_t h = enc_user_hash(partition, user, ulen);
        return *enc_users_slot(c, h, partition, user, ulen) != NULL;
}

static int64_t enc_user_compute_wake(enc_users_t *c, const enc_user_t *u) {
        return enc_states_wake(c->insts, c->inst_cnt, u->states);
}

static enc_err_t enc_users_insert(enc_users_t *c, enc_user_t **slot,
                                  uint64_t h, int32_t partition,
                                  const char *user, size_t ulen,
                                  int64_t known_timer, const uint8_t *rec,
                                  size_t rec_len, enc_user_t **up,
                                  char *errstr, size_t errstr_size);

enc_err_t enc_users_get(enc_users_t *c, int32_t partition, const char *user,
                        size_t ulen, int64_t known_timer, enc_user_t **up,
                        char *errstr, size_t errstr_size) {
        uint64_t h = enc_user_hash(partition, user, ulen);
        enc_user_t **slot = enc_users_slot(c, h, partition, user, ulen);
        if (*slot) {
                enc_user_t *u = *slot;
                if (u->unused) {
                        enc_users_unpin(c, u);
                        u->unused = 0;
                }
                if (!u->dirty) {
                        enc_lru_unlink(u);
                        enc_lru_push_front(c, u);
                }
                c->stats.hits++;
                *up = u;
                return ENC_OK;
        }
        c->stats.misses++;

        bool found = false;
        enc_err_t err = enc_store_get_user(c->store, partition, user, ulen,
                                           &c->scratch, &found, errstr,
                                           errstr_size);
        if (err)
                return err;
        return enc_users_insert(c, slot, h, partition, user, ulen, known_timer,
                                found ? c->scratch.data : NULL,
                                c->scratch.len, up, errstr, errstr_size);
}

/* Builds the entry of (partition, user) from its stored record @p rec
 * (NULL: none; borrowed) and puts it in @p slot, clean unless its timer key
 * or a corrupt record needs a write. */
static enc_err_t enc_users_insert(enc_users_t *c, enc_user_t **slot,
                                  uint64_t h, int32_t partition,
                                  const char *user, size_t ulen,
                                  int64_t known_timer, const uint8_t *rec,
                                  size_t rec_len, enc_user_t **up,
                                  char *errstr, size_t errstr_size) {
        bool found = rec != NULL;
        /* One block: the entry, its id, then the state pointers. */
        size_t at = (sizeof(enc_user_t) + ulen + 1 + sizeof(void *) - 1) &
                    ~(sizeof(void *) - 1);
        enc_user_t *u =
                calloc(1, at + ((size_t)c->inst_cnt + 1) * sizeof(void *));
        if (!u)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory loading user state");
        u->states = (void **)((char *)u + at);
        u->hash = h;
        u->partition = partition;
        u->ulen = (uint32_t)ulen;
        memcpy(u->user_id, user, ulen);
        u->heap_idx = -1;
        u->on_disk = found;
        bool corrupt = false;
        if (found && enc_user_record_decode(c->insts, c->inst_cnt, rec,
                                            rec_len, u->states) != ENC_OK) {
                c->stats.corrupt++;
                corrupt = true;
                enc_log_error("state_corrupt",
                              "partition=%d user_bytes=%zu record_bytes=%zu "
                              "action=reset_user_state",
                              partition, ulen, rec_len);
        }
        u->wake = enc_user_compute_wake(c, u);
        /* The store's timer key for this user: the one the caller saw, or
         * (a consistent record) the record's own wake. */
        u->stored_wake = known_timer != ENC_NO_TIMER ? known_timer
                         : found                     ? u->wake
                                                     : ENC_NO_TIMER;
        bool need_write = u->stored_wake != u->wake || corrupt;
        u->rec_len = found && rec_len < UINT32_MAX ? (uint32_t)rec_len
                                                   : ENC_USER_NEW_REC;
        u->charge = enc_user_charge(c, u);
        if (!enc_heap_place(c, u)) {
                enc_user_free(c, u);
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory in timer heap");
        }
        *slot = u;
        c->cnt++;
        c->bytes += u->charge;
        if (!need_write || !enc_users_mark_dirty(c, u)) {
                enc_lru_push_front(c, u);
                if (need_write)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                          "out of memory");
        }
        if (c->cnt > c->nbuckets)
                enc_users_grow(c);
        *up = u;
        return ENC_OK;
}

typedef struct enc_prefetch_ctx_s {
        enc_users_t *c;
        const int32_t *parts;
        const char *const *users;
        const size_t *ulens;
        const int64_t *timers; /* NULL: ENC_NO_TIMER for all */
        char *errstr;
        size_t errstr_size;
} enc_prefetch_ctx_t;

static enc_err_t enc_users_prefetch_cb(void *opaque, size_t i,
                                       const void *rec, size_t rec_len) {
        enc_prefetch_ctx_t *x = opaque;
        enc_users_t *c = x->c;
        uint64_t h = enc_user_hash(x->parts[i], x->users[i], x->ulens[i]);
        enc_user_t **slot =
                enc_users_slot(c, h, x->parts[i], x->users[i], x->ulens[i]);
        if (*slot) /* twice in one batch */
                return ENC_OK;
        enc_user_t *u;
        c->stats.prefetched++;
        enc_err_t err = enc_users_insert(
                c, slot, h, x->parts[i], x->users[i], x->ulens[i],
                x->timers ? x->timers[i] : ENC_NO_TIMER, rec, rec_len, &u,
                x->errstr, x->errstr_size);
        if (err || u->dirty)
                return err;
        if (c->pinned_bytes + u->charge <=
            c->max_bytes / ENC_USERS_PIN_SHARE) {
                enc_lru_unlink(u);
                enc_list_push_front(&c->pinned, u);
                c->pinned_bytes += u->charge;
                u->unused = 1;
        } else {
                u->unused = 2;
        }
        return ENC_OK;
}

enc_err_t enc_users_prefetch(enc_users_t *c, const int32_t *parts,
                             const char *const *users, const size_t *ulens,
                             const int64_t *timers, size_t n, char *errstr,
                             size_t errstr_size) {
        if (n == 0)
                return ENC_OK;
        enc_prefetch_ctx_t x = {c,      parts,  users,      ulens,
                                timers, errstr, errstr_size};
        return enc_store_get_users(c->store, parts, users, ulens, n,
                                   enc_users_prefetch_cb, &x, errstr,
                                   errstr_size);
}

int64_t enc_users_changed(enc_users_t *c, enc_user_t *u) {
        int64_t wake = enc_user_compute_wake(c, u);
        /* A wake that moved later leaves the entry where it is: its key
         * stays a lower bound, put right when it reaches the top
         * (enc_users_next_timer). Most events do that: a play pushes the
         * session's end later. */
        bool placed = u->heap_idx >= 0 && wake != ENC_NO_TIMER &&
                      wake >= u->hkey;
        u->wake = wake;
        if (!placed && !enc_heap_place(c, u))
                enc_log_error("timer_heap_oom", "partition=%d",
                              u->partition);
        if (!enc_users_mark_dirty(c, u))
                enc_log_error("dirty_list_oom", "partition=%d", u->partition);
        return u->wake;
}

enc_user_t *enc_users_next_timer(enc_users_t *c, int32_t partition,
                                 int64_t upto) {
        if (partition < 0 || partition >= c->nheaps ||
            c->heaps[partition].cnt == 0)
                return NULL;
        enc_heap_t *h = &c->heaps[partition];
        /* Every key is at most its entry's wake: a top keyed past @p upto
         * means nothing is due, and once the top's key is its wake, the
         * top is the least (wake, id) of all. Only keys up to @p upto are
         * put right, so a stale key is fixed once, when its time comes. */
        while (h->v[0]->hkey <= upto && h->v[0]->hkey < h->v[0]->wake) {
                h->v[0]->hkey = h->v[0]->wake;
                enc_heap_down(h, 0);
        }
        return h->v[0]->wake <= upto ? h->v[0] : NULL;
}

/* Takes @p u off the pinned list if it is there (unused == 1): it is
 * being used, made dirty or dropped. */
static void enc_users_unpin(enc_users_t *c, enc_user_t *u) {
        if (u->unused != 1)
                return;
        enc_lru_unlink(u);
        u->unused = 0;
        c->pinned_bytes -= u->charge;
}

static void enc_users_unlink(enc_users_t *c, enc_user_t *u) {
        enc_user_t **slot =
                enc_users_slot(c, u->hash, u->partition, u->user_id, u->ulen);
        *slot = u->hnext;
        enc_users_unpin(c, u);
        enc_lru_unlink(u);
        enc_heap_remove(c, u);
        c->cnt--;
        c->bytes -= u->charge;
}

/* Byte order of two user ids, a prefix first (as in store keys). */
static int enc_id_cmp(const char *a, size_t alen, const char *b,
                      size_t blen) {
        int c = memcmp(a, b, alen < blen ? alen : blen);
        if (c)
                return c;
        return (alen > blen) - (alen < blen);
}

/* Store key order: partition (big-endian in the key), then the id. */
static int enc_user_key_cmp(const void *pa, const void *pb) {
        const enc_user_t *a = *(enc_user_t *const *)pa;
        const enc_user_t *b = *(enc_user_t *const *)pb;
        if (a->partition != b->partition)
                return (uint32_t)a->partition < (uint32_t)b->partition ? -1 : 1;
        return enc_id_cmp(a->user_id, a->ulen, b->user_id, b->ulen);
}

/* Timer key order: partition, time, user id. */
static int enc_timer_op_cmp(const void *pa, const void *pb) {
        const enc_timer_op_t *a = pa, *b = pb;
        if (a->partition != b->partition)
                return (uint32_t)a->partition < (uint32_t)b->partition ? -1 : 1;
        if (a->time != b->time)
                return a->time < b->time ? -1 : 1;
        return enc_id_cmp(a->id, a->ulen, b->id, b->ulen);
}

static void enc_users_apply_timer_op(enc_users_t *c, int32_t partition,
                                     bool put, int64_t time, const char *id,
                                     size_t ulen) {
        if (put)
                enc_store_put_timer(c->store, partition, time, id, ulen);
        else
                enc_store_del_timer(c->store, partition, time, id, ulen);
        if (c->on_timer)
                c->on_timer(c->on_timer_opaque, partition, put, time, id,
                            ulen);
}

/* Stages a timer key change for enc_users_stage_timers, or at once if
 * there is no memory to hold it (the order is for speed only). */
static void enc_users_timer_op(enc_users_t *c, const enc_user_t *u,
                               int64_t time, bool put) {
        if (c->ntops == c->captops) {
                size_t ncap = c->captops ? c->captops * 2 : 1024;
                enc_timer_op_t *n = realloc(c->tops, ncap * sizeof(*n));
                if (n) {
                        c->tops = n;
                        c->captops = ncap;
                }
        }
        size_t at = c->tids.len;
        if (c->ntops == c->captops ||
            enc_buf_append(&c->tids, u->user_id, u->ulen) != ENC_OK) {
                enc_users_apply_timer_op(c, u->partition, put, time,
                                         u->user_id, u->ulen);
                return;
        }
        c->tops[c->ntops++] = (enc_timer_op_t){.partition = u->partition,
                                               .put = put,
                                               .time = time,
                                               .id_at = at,
                                               .ulen = u->ulen};
}

static void enc_users_stage_timers(enc_users_t *c) {
        for (size_t i = 0; i < c->ntops; i++)
                c->tops[i].id = (const char *)c->tids.data + c->tops[i].id_at;
        if (c->ntops > 1)
                qsort(c->tops, c->ntops, sizeof(*c->tops), enc_timer_op_cmp);
        for (size_t i = 0; i < c->ntops; i++) {
                const enc_timer_op_t *op = &c->tops[i];
                enc_users_apply_timer_op(c, op->partition, op->put, op->time,
                                         op->id, op->ulen);
        }
        c->ntops = 0;
        enc_buf_reset(&c->tids);
}

enc_err_t enc_users_flush(enc_users_t *c, char *errstr, size_t errstr_size) {
        size_t i;
        enc_err_t err = ENC_OK;
        /* In key order, users then timers: RocksDB inserts a batch into its
         * memtables (skip lists) next to the previous insert when the keys
         * come sorted, and walks down from the top for each key when they
         * come at random, which took a third of all processing time at 1M
         * users. The order of writes within a batch changes nothing else:
         * no two of them have the same key (and the changelog is keyed, so
         * its order does not matter either). */
        if (c->ndirty > 1) /* qsort(NULL, 0) is undefined */
                qsort(c->dirtyv, c->ndirty, sizeof(*c->dirtyv),
                      enc_user_key_cmp);
        for (i = 0; i < c->ndirty; i++) {
                enc_user_t *u = c->dirtyv[i];
                bool empty = true;
                for (int k = 0; k < c->inst_cnt && empty; k++)
                        empty = u->states[k] == NULL;
                if (!empty) {
                        enc_buf_reset(&c->scratch);
                        err = enc_user_record_encode(c->insts, c->inst_cnt,
                                                     u->states, &c->scratch);
                        if (err) {
                                enc_seterr(errstr, errstr_size, err,
                                           "cannot encode state of a user "
                                           "on partition %d: %s",
                                           u->partition, enc_err2str(err));
                                break;
                        }
                }
                if (u->stored_wake != u->wake) {
                        if (u->stored_wake != ENC_NO_TIMER)
                                enc_users_timer_op(c, u, u->stored_wake, false);
                        if (u->wake != ENC_NO_TIMER)
                                enc_users_timer_op(c, u, u->wake, true);
                        u->stored_wake = u->wake;
                }
                u->dirty = false;
                c->stats.dirty--;
                c->dirty_bytes -= enc_user_stage_bytes(u);
                if (c->on_flush && (!empty || u->on_disk))
                        c->on_flush(c->on_flush_opaque, u->partition,
                                    u->user_id, u->ulen,
                                    empty ? NULL : c->scratch.data,
                                    empty ? 0 : c->scratch.len);
                if (empty) {
                        if (u->on_disk)
                                enc_store_del_user(c->store, u->partition,
                                                   u->user_id, u->ulen);
                        c->stats.deleted++;
                        enc_users_unlink(c, u);
                        enc_user_free(c, u);
                        continue;
                }
                enc_store_put_user(c->store, u->partition, u->user_id,
                                   u->ulen, c->scratch.data, c->scratch.len);
                u->on_disk = true;
                enc_lru_push_front(c, u); /* clean: evictable again */
                u->rec_len = c->scratch.len < UINT32_MAX
                                     ? (uint32_t)c->scratch.len
                                     : UINT32_MAX;
                enc_user_recharge(c, u);
        }
        enc_users_stage_timers(c);
        /* On error keep the unflushed tail dirty (the commit fails anyway). */
        if (c->ndirty > i)
                memmove(c->dirtyv, c->dirtyv + i,
                        (c->ndirty - i) * sizeof(*c->dirtyv));
        c->ndirty -= i;
        return err;
}

bool enc_users_evict(enc_users_t *c) {
        /* Pinned users are about to be used (and then made dirty): they
         * are held over the budget, not evicted for. */
        while (c->bytes - c->pinned_bytes > c->max_bytes &&
               c->lru.lru_prev != &c->lru) {
                enc_user_t *u = c->lru.lru_prev; /* clean: see DESIGN */
                enc_heap_t *h = enc_users_heap(c, u->partition);
                if (h && u->wake < h->evicted_min)
                        h->evicted_min = u->wake;
                c->stats.prefetch_wasted += u->unused == 2;
                enc_users_unlink(c, u);
                enc_user_free(c, u);
                c->stats.evictions++;
        }
        return c->bytes - c->pinned_bytes > c->max_bytes;
}

void enc_users_set_max_bytes(enc_users_t *c, size_t max_bytes) {
        c->max_bytes = max_bytes;
}

size_t enc_users_dirty_bytes(const enc_users_t *c) {
        return c->dirty_bytes;
}

void enc_users_set_flush_cb(enc_users_t *c, enc_users_flush_cb_t cb,
                            void *opaque) {
        c->on_flush = cb;
        c->on_flush_opaque = opaque;
}

void enc_users_set_timer_cb(enc_users_t *c, enc_users_timer_cb_t cb,
                            void *opaque) {
        c->on_timer = cb;
        c->on_timer_opaque = opaque;
}

int64_t enc_users_evicted_min(enc_users_t *c, int32_t partition) {
        if (partition < 0 || partition >= c->nheaps)
                return ENC_NO_TIMER;
        int64_t m = c->heaps[partition].evicted_min;
        c->heaps[partition].evicted_min = ENC_NO_TIMER;
        return m;
}

void enc_users_drop_partition(enc_users_t *c, int32_t partition) {
        /* Dirty entries are on the dirty list only, clean ones on the LRU
         * or the pinned list only. */
        size_t keep = 0;
        for (size_t i = 0; i < c->ndirty; i++) {
                enc_user_t *u = c->dirtyv[i];
                if (u->partition != partition) {
                        c->dirtyv[keep++] = u;
                        continue;
                }
                c->stats.dirty--;
                c->dirty_bytes -= enc_user_stage_bytes(u);
                enc_users_unlink(c, u);
                enc_user_free(c, u);
        }
        c->ndirty = keep;
        enc_user_t *lists[2] = {&c->lru, &c->pinned};
        for (int l = 0; l < 2; l++) {
                enc_user_t *u = lists[l]->lru_next;
                while (u != lists[l]) {
                        enc_user_t *next = u->lru_next;
                        if (u->partition == partition) {
                                enc_users_unlink(c, u);
                                enc_user_free(c, u);
                        }
                        u = next;
                }
        }
}

void enc_users_stats(const enc_users_t *c, enc_users_stats_t *stats) {
        *stats = c->stats;
        stats->entries = c->cnt;
        stats->bytes = c->bytes;
}
