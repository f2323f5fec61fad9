/*
 * reorder.c -- the per-partition event-time buffer.
 *
 * DESIGN
 * A binary min-heap of owned event copies ordered by (event time, user id,
 * event id, arrival sequence), plus a ring of the offsets of held events in
 * arrival order, so the smallest held offset is found in O(1): offsets arrive
 * in increasing order, so the oldest arrival still held has the smallest.
 * Popping marks a ring slot done; the ring's head advances past done slots.
 * Each ring slot also keeps the caller's mark for that arrival (the engine
 * stores the stream time before the record), so the mark of the oldest held
 * arrival is as cheap as its offset.
 *
 * The id set counts the held copies of each (user, event id) hash and keeps
 * the latest event time among them, so "is a copy at or after time T held?"
 * is one probe. Copies leave earliest first, so the latest time stays true
 * until the last copy leaves; only undoing a failed push rescans.
 *
 * The order key is a function of the event alone (the arrival sequence only
 * separates byte-identical duplicates, which produce identical effects), so
 * the same set of events leaves in the same order however it arrived.
 */
#include "reorder.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct enc_held_s {
        enc_event_t *ev; /* owned (enc_event_dup) */
        uint64_t seq;    /* arrival number */
        uint64_t idh;    /* hash of (user id, event id), for lookups */
} enc_held_t;

/* A set of id hashes with counts, open addressing, linear probing;
 * deletion shifts the cluster back (no tombstones). Key 0 marks empty. */
typedef struct enc_idset_s {
        uint64_t *key;
        uint32_t *cnt;
        int64_t *tmax; /* latest event time among the copies */
        size_t cap; /* power of two or 0 */
        size_t used;
} enc_idset_t;

struct enc_reorder_s {
        enc_held_t *heap;
        size_t cnt;
        size_t cap;
        /* ring of arrivals: slot (seq & (rcap-1)) for seq in [head, tail) */
        int64_t *roff;
        int64_t *rmark;
        uint8_t *rdone;
        size_t rcap; /* power of two */
        uint64_t head;
        uint64_t tail;
        enc_idset_t ids;
};

static uint64_t enc_id_hash(const char *user, const char *event_id) {
        uint64_t h = XXH3_64bits_withSeed(event_id, strlen(event_id),
                                          XXH3_64bits(user, strlen(user)));
        return h ? h : 1;
}

static bool enc_idset_grow(enc_idset_t *s) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        uint64_t *k = calloc(ncap, sizeof(*k));
        uint32_t *c = calloc(ncap, sizeof(*c));
        int64_t *t = calloc(ncap, sizeof(*t));
        if (!k || !c || !t) {
                free(k);
                free(c);
                free(t);
                return false;
        }
        for (size_t i = 0; i < s->cap; i++) {
                if (!s->key[i])
                        continue;
                size_t j = s->key[i] & (ncap - 1);
                while (k[j])
                        j = (j + 1) & (ncap - 1);
                k[j] = s->key[i];
                c[j] = s->cnt[i];
                t[j] = s->tmax[i];
        }
        free(s->key);
        free(s->cnt);
        free(s->tmax);
        s->key = k;
        s->cnt = c;
        s->tmax = t;
        s->cap = ncap;
        return true;
}

static size_t enc_idset_find(const enc_idset_t *s, uint64_t h) {
        if (!s->cap)
                return (size_t)-1;
        size_t j = h & (s->cap - 1);
        while (s->key[j]) {
                if (s->key[j] == h)
                        return j;
                j = (j + 1) & (s->cap - 1);
        }
        return (size_t)-1;
}

static bool enc_idset_add(enc_idset_t *s, uint64_t h, int64_t time) {
        size_t j = enc_idset_find(s, h);
        if (j != (size_t)-1) {
                s->cnt[j]++;
                if (time > s->tmax[j])
                        s->tmax[j] = time;
                return true;
        }
        if ((s->used + 1) * 2 > s->cap && !enc_idset_grow(s))
                return false;
        j = h & (s->cap - 1);
        while (s->key[j])
                j = (j + 1) & (s->cap - 1);
        s->key[j] = h;
        s->cnt[j] = 1;
        s->tmax[j] = time;
        s->used++;
        return true;
}

/* Removes one copy. Copies leave earliest first (pop), so the latest time
 * of those that remain is unchanged; a caller removing another (undoing a
 * push) recomputes it with enc_idset_rescan(). */
static void enc_idset_del(enc_idset_t *s, uint64_t h) {
        size_t j = enc_idset_find(s, h);
        if (j == (size_t)-1)
                return;
        if (--s->cnt[j])
                return;
        /* backward-shift deletion keeps every probe chain unbroken */
        size_t i = j;
        for (;;) {
                s->key[i] = 0;
                size_t k = i;
                for (;;) {
                        k = (k + 1) & (s->cap - 1);
                        if (!s->key[k]) {
                                s->used--;
                                return;
                        }
                        size_t home = s->key[k] & (s->cap - 1);
                        /* can key[k] move to i? only if home is not in
                         * the cyclic range (i, k] */
                        if (i <= k ? (home <= i || home > k)
                                   : (home <= i && home > k))
                                break;
                }
                s->key[i] = s->key[k];
                s->cnt[i] = s->cnt[k];
                s->tmax[i] = s->tmax[k];
                i = k;
        }
}

bool enc_reorder_contains(const enc_reorder_t *r, const char *user,
                          const char *event_id, int64_t since) {
        size_t j = enc_idset_find(&r->ids, enc_id_hash(user, event_id));
        return j != (size_t)-1 && r->ids.tmax[j] >= since;
}

/* Recomputes the latest time of @p h from the copies still held. */
static void enc_idset_rescan(enc_reorder_t *r, uint64_t h) {
        size_t j = enc_idset_find(&r->ids, h);
        if (j == (size_t)-1)
                return;
        int64_t m = INT64_MIN;
        for (size_t i = 0; i < r->cnt; i++)
                if (r->heap[i].idh == h && r->heap[i].ev->event_time > m)
                        m = r->heap[i].ev->event_time;
        r->ids.tmax[j] = m;
}

enc_reorder_t *enc_reorder_new(void) {
        return calloc(1, sizeof(enc_reorder_t));
}

void enc_reorder_destroy(enc_reorder_t *r) {
        if (!r)
                return;
        enc_reorder_clear(r);
        free(r->heap);
        free(r->roff);
        free(r->rmark);
        free(r->rdone);
        free(r->ids.key);
        free(r->ids.cnt);
        free(r->ids.tmax);
        free(r);
}

static int enc_held_cmp(const enc_held_t *a, const enc_held_t *b) {
        if (a->ev->event_time != b->ev->event_time)
                return a->ev->event_time < b->ev->event_time ? -1 : 1;
        int c = strcmp(a->ev->user_id, b->ev->user_id);
        if (c)
                return c;
        c = strcmp(a->ev->event_id, b->ev->event_id);
        if (c)
                return c;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static enc_err_t enc_ring_push(enc_reorder_t *r, int64_t offset,
                               int64_t mark) {
        if (r->tail - r->head == r->rcap) {
                size_t ncap = r->rcap ? r->rcap * 2 : 1024;
                int64_t *no = malloc(ncap * sizeof(*no));
                int64_t *nm = malloc(ncap * sizeof(*nm));
                uint8_t *nd = malloc(ncap);
                if (!no || !nm || !nd) {
                        free(no);
                        free(nm);
                        free(nd);
                        return ENC_ERR_NOMEM;
                }
                for (uint64_t s = r->head; s < r->tail; s++) {
                        no[s & (ncap - 1)] = r->roff[s & (r->rcap - 1)];
                        nm[s & (ncap - 1)] = r->rmark[s & (r->rcap - 1)];
                        nd[s & (ncap - 1)] = r->rdone[s & (r->rcap - 1)];
                }
                free(r->roff);
                free(r->rmark);
                free(r->rdone);
                r->roff = no;
                r->rmark = nm;
                r->rdone = nd;
                r->rcap = ncap;
        }
        r->roff[r->tail & (r->rcap - 1)] = offset;
        r->rmark[r->tail & (r->rcap - 1)] = mark;
        r->rdone[r->tail & (r->rcap - 1)] = 0;
        r->tail++;
        return ENC_OK;
}

enc_err_t enc_reorder_push(enc_reorder_t *r, const enc_event_t *ev,
                           int64_t offset, int64_t mark) {
        if (r->cnt == r->cap) {
                size_t ncap = r->cap ? r->cap * 2 : 256;
                enc_held_t *nh = realloc(r->heap, ncap * sizeof(*nh));
                if (!nh)
                        return ENC_ERR_NOMEM;
                r->heap = nh;
                r->cap = ncap;
        }
        enc_event_t *copy = enc_event_dup(ev);
        if (!copy)
                return ENC_ERR_NOMEM;
        uint64_t idh = enc_id_hash(ev->user_id, ev->event_id);
        if (!enc_idset_add(&r->ids, idh, ev->event_time)) {
                free(copy);
                return ENC_ERR_NOMEM;
        }
        if (enc_ring_push(r, offset, mark)) {
                enc_idset_del(&r->ids, idh);
                enc_idset_rescan(r, idh);
                free(copy);
                return ENC_ERR_NOMEM;
        }
        size_t i = r->cnt++;
        r->heap[i].ev = copy;
        r->heap[i].seq = r->tail - 1;
        r->heap[i].idh = idh;
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (enc_held_cmp(&r->heap[i], &r->heap[p]) >= 0)
                        break;
                enc_held_t t = r->heap[i];
                r->heap[i] = r->heap[p];
                r->heap[p] = t;
                i = p;
        }
        return ENC_OK;
}

const enc_event_t *enc_reorder_peek(const enc_reorder_t *r) {
        return r->cnt ? r->heap[0].ev : NULL;
}

void enc_reorder_pop(enc_reorder_t *r) {
        if (!r->cnt)
                return;
        uint64_t seq = r->heap[0].seq;
        enc_idset_del(&r->ids, r->heap[0].idh);
        free(r->heap[0].ev);
        r->heap[0] = r->heap[--r->cnt];
        size_t i = 0;
        for (;;) {
                size_t l = 2 * i + 1, rr = l + 1, m = i;
                if (l < r->cnt && enc_held_cmp(&r->heap[l], &r->heap[m]) < 0)
                        m = l;
                if (rr < r->cnt &&
                    enc_held_cmp(&r->heap[rr], &r->heap[m]) < 0)
                        m = rr;
                if (m == i)
                        break;
                enc_held_t t = r->heap[i];
                r->heap[i] = r->heap[m];
                r->heap[m] = t;
                i = m;
        }
        r->rdone[seq & (r->rcap - 1)] = 1;
        while (r->head < r->tail && r->rdone[r->head & (r->rcap - 1)])
                r->head++;
}

size_t enc_reorder_count(const enc_reorder_t *r) {
        return r->cnt;
}

int64_t enc_reorder_min_offset(const enc_reorder_t *r) {
        return r->head < r->tail ? r->roff[r->head & (r->rcap - 1)] : -1;
}

int64_t enc_reorder_min_mark(const enc_reorder_t *r, int64_t none) {
        return r->head < r->tail ? r->rmark[r->head & (r->rcap - 1)] : none;
}

void enc_reorder_clear(enc_reorder_t *r) {
        for (size_t i = 0; i < r->cnt; i++)
                free(r->heap[i].ev);
        r->cnt = 0;
        if (r->ids.cap) {
                memset(r->ids.key, 0, r->ids.cap * sizeof(*r->ids.key));
                r->ids.used = 0;
        }
        r->head = r->tail = 0;
}
