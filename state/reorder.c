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
 * arrival is as cheap as its offset, and the event's time and copy, so the
 * engine can look ahead at the arrivals about to leave (its read-ahead of
 * users, enc_reorder_next_arrival) without searching the heap. Arrivals
 * come in nearly in time order, so the held arrivals before a time T, in
 * arrival order, are nearly the events that leave next; the cursor stops
 * at the first arrival at or after T, so one arriving far out of order is
 * simply reached later.
 *
 * The id set counts the held copies of each (user, event id) hash and keeps
 * the latest event time among them, so "is a copy at or after time T held?"
 * is one probe. Copies leave earliest first, so the latest time stays true
 * until the last copy leaves; only undoing a failed push rescans.
 *
 * The order key is a function of the event alone (the arrival sequence only
 * separates byte-identical duplicates, which produce identical effects), so
 * the same set of events leaves in the same order however it arrived.
 *
 * Every accepted event is copied in and freed on the way out, a grace
 * period later, so the copies cycle through far more memory than malloc's
 * per-thread cache keeps: they come from free lists of slots (an event and
 * its strings in one slot; an event with longer strings gets a block of
 * its own). Slots come in sizes of ENC_SLOT_GRAIN steps up to
 * ENC_SLOT_BYTES, an event taking the smallest that holds it: with one
 * size of 256 bytes the slots were 15.7 of the 24 MiB the buffer held at
 * the peak of `encore-bench mem` (61 000 events of about 190 bytes;
 * heaptrack). Each list keeps at most ENC_SLOTS_FREE_MAX slots, so a burst
 * that is over gives its memory back.
 */
#include "reorder.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* An event and its strings, as most events are: 88 bytes of struct and
 * seven strings of a dozen or two bytes each (about 190 bytes for the
 * generator's events). Bigger events get a block of their own. */
#define ENC_SLOT_BYTES     256
#define ENC_SLOT_GRAIN     32
#define ENC_SLOT_CLASSES   (ENC_SLOT_BYTES / ENC_SLOT_GRAIN)
#define ENC_SLOTS_FREE_MAX 4096

typedef struct enc_held_s {
        int64_t time;    /* ev->event_time, here so sifting the heap does
                            not chase a pointer per comparison */
        enc_event_t *ev; /* owned: a slot of class cls, or malloc'ed */
        uint64_t seq;    /* arrival number */
        uint64_t idh;    /* hash of (user id, event id), for lookups */
        uint64_t upfx;   /* the user id's first 8 bytes, big-endian,
                            zero-padded: orders as strcmp does on them */
        int8_t cls;      /* ev's slot class, or -1: not a slot */
} enc_held_t;

/* One arrival, in the ring: what the commit position and the read-ahead
 * need without touching the heap. */
typedef struct enc_arrival_s {
        int64_t offset;
        int64_t mark;
        int64_t time;
        const enc_event_t *ev; /* the held copy; valid while !done */
        bool done;             /* popped */
} enc_arrival_t;

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
        enc_arrival_t *ring;
        size_t rcap; /* power of two */
        uint64_t head;
        uint64_t tail;
        uint64_t ahead; /* read-ahead cursor: arrivals before it were
                           handed out by enc_reorder_next_arrival */
        enc_idset_t ids;
        /* free slots by class (ENC_SLOT_GRAIN * (class + 1) bytes), linked
         * through each slot's start */
        void *free_slots[ENC_SLOT_CLASSES];
        size_t nfree[ENC_SLOT_CLASSES];
};

/* Copies @p s (@p n bytes and the NUL; NULL stays NULL) to *pos. */
static const char *enc_put_str(char **pos, const char *s, size_t n) {
        if (!s)
                return NULL;
        char *d = *pos;
        memcpy(d, s, n + 1);
        *pos += n + 1;
        return d;
}

/* A deep copy of @p ev in one block: a slot of class *cls if it fits,
 * else malloc'ed (*cls -1). NULL if out of memory. */
static enc_event_t *enc_reorder_copy(enc_reorder_t *r, const enc_event_t *ev,
                                     int8_t *cls) {
        const char *src[7] = {ev->event_id,  ev->user_id, ev->track_id,
                              ev->artist_id, ev->surface, ev->recommendation_id,
                              ev->cohort};
        size_t len[7], need = sizeof(*ev);
        for (int i = 0; i < 7; i++) {
                len[i] = src[i] ? strlen(src[i]) : 0;
                need += src[i] ? len[i] + 1 : 0;
        }
        enc_event_t *d;
        int c = need > ENC_SLOT_BYTES
                        ? -1
                        : (int)((need + ENC_SLOT_GRAIN - 1) / ENC_SLOT_GRAIN) -
                                  1;
        *cls = (int8_t)c;
        if (c >= 0 && r->free_slots[c]) {
                d = r->free_slots[c];
                r->free_slots[c] = *(void **)d;
                r->nfree[c]--;
        } else if (!(d = malloc(c < 0 ? need
                                      : (size_t)(c + 1) * ENC_SLOT_GRAIN))) {
                return NULL;
        }
        *d = *ev;
        char *pos = (char *)(d + 1);
        d->event_id = enc_put_str(&pos, src[0], len[0]);
        d->user_id = enc_put_str(&pos, src[1], len[1]);
        d->track_id = enc_put_str(&pos, src[2], len[2]);
        d->artist_id = enc_put_str(&pos, src[3], len[3]);
        d->surface = enc_put_str(&pos, src[4], len[4]);
        d->recommendation_id = enc_put_str(&pos, src[5], len[5]);
        d->cohort = enc_put_str(&pos, src[6], len[6]);
        return d;
}

static void enc_reorder_release(enc_reorder_t *r, enc_event_t *ev,
                                int8_t cls) {
        if (cls < 0 || r->nfree[cls] >= ENC_SLOTS_FREE_MAX) {
                free(ev);
                return;
        }
        *(void **)ev = r->free_slots[cls];
        r->free_slots[cls] = ev;
        r->nfree[cls]++;
}

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
                if (r->heap[i].idh == h && r->heap[i].time > m)
                        m = r->heap[i].time;
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
        free(r->ring);
        free(r->ids.key);
        free(r->ids.cnt);
        free(r->ids.tmax);
        for (int c = 0; c < ENC_SLOT_CLASSES; c++)
                while (r->free_slots[c]) {
                        void *next = *(void **)r->free_slots[c];
                        free(r->free_slots[c]);
                        r->free_slots[c] = next;
                }
        free(r);
}

/* The first 8 bytes of @p s (fewer if it is shorter, then zeros) as a
 * big-endian number: comparing two of them orders the strings as strcmp
 * orders their first 8 bytes, and equal prefixes of strings shorter than 8
 * bytes mean equal strings. Most ties in time are then settled without
 * chasing the event pointers (strcmp was 7% of a hot B1 run). */
static uint64_t enc_id_prefix(const char *s) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) {
                v <<= 8;
                if (*s)
                        v |= (unsigned char)*s++;
        }
        return v;
}

static int enc_held_cmp(const enc_held_t *a, const enc_held_t *b) {
        if (a->time != b->time)
                return a->time < b->time ? -1 : 1;
        if (a->upfx != b->upfx)
                return a->upfx < b->upfx ? -1 : 1;
        int c = strcmp(a->ev->user_id, b->ev->user_id);
        if (c)
                return c;
        c = strcmp(a->ev->event_id, b->ev->event_id);
        if (c)
                return c;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static enc_err_t enc_ring_push(enc_reorder_t *r, const enc_event_t *ev,
                               int64_t offset, int64_t mark) {
        if (r->tail - r->head == r->rcap) {
                size_t ncap = r->rcap ? r->rcap * 2 : 1024;
                enc_arrival_t *nr = malloc(ncap * sizeof(*nr));
                if (!nr)
                        return ENC_ERR_NOMEM;
                for (uint64_t s = r->head; s < r->tail; s++)
                        nr[s & (ncap - 1)] = r->ring[s & (r->rcap - 1)];
                free(r->ring);
                r->ring = nr;
                r->rcap = ncap;
        }
        enc_arrival_t *a = &r->ring[r->tail & (r->rcap - 1)];
        a->offset = offset;
        a->mark = mark;
        a->time = ev->event_time;
        a->ev = ev;
        a->done = false;
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
        int8_t cls;
        enc_event_t *copy = enc_reorder_copy(r, ev, &cls);
        if (!copy)
                return ENC_ERR_NOMEM;
        uint64_t idh = enc_id_hash(ev->user_id, ev->event_id);
        if (!enc_idset_add(&r->ids, idh, ev->event_time)) {
                enc_reorder_release(r, copy, cls);
                return ENC_ERR_NOMEM;
        }
        if (enc_ring_push(r, copy, offset, mark)) {
                enc_idset_del(&r->ids, idh);
                enc_idset_rescan(r, idh);
                enc_reorder_release(r, copy, cls);
                return ENC_ERR_NOMEM;
        }
        size_t i = r->cnt++;
        r->heap[i].time = ev->event_time;
        r->heap[i].ev = copy;
        r->heap[i].seq = r->tail - 1;
        r->heap[i].idh = idh;
        r->heap[i].upfx = enc_id_prefix(copy->user_id);
        r->heap[i].cls = cls;
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
        enc_reorder_release(r, r->heap[0].ev, r->heap[0].cls);
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
        r->ring[seq & (r->rcap - 1)].done = true;
        r->ring[seq & (r->rcap - 1)].ev = NULL;
        while (r->head < r->tail && r->ring[r->head & (r->rcap - 1)].done)
                r->head++;
}

size_t enc_reorder_count(const enc_reorder_t *r) {
        return r->cnt;
}

int64_t enc_reorder_min_offset(const enc_reorder_t *r) {
        return r->head < r->tail ? r->ring[r->head & (r->rcap - 1)].offset
                                 : -1;
}

int64_t enc_reorder_min_mark(const enc_reorder_t *r, int64_t none) {
        return r->head < r->tail ? r->ring[r->head & (r->rcap - 1)].mark
                                 : none;
}

void enc_reorder_clear(enc_reorder_t *r) {
        for (size_t i = 0; i < r->cnt; i++)
                enc_reorder_release(r, r->heap[i].ev, r->heap[i].cls);
        r->cnt = 0;
        if (r->ids.cap) {
                memset(r->ids.key, 0, r->ids.cap * sizeof(*r->ids.key));
                r->ids.used = 0;
        }
        r->head = r->tail = r->ahead = 0;
}

const enc_event_t *enc_reorder_next_arrival(enc_reorder_t *r,
                                            int64_t before) {
        if (r->ahead < r->head)
                r->ahead = r->head;
        while (r->ahead < r->tail) {
                const enc_arrival_t *a = &r->ring[r->ahead & (r->rcap - 1)];
                if (a->done) {
                        r->ahead++;
                        continue;
                }
                if (a->time >= before)
                        return NULL;
                r->ahead++;
                return a->ev;
        }
        return NULL;
}
