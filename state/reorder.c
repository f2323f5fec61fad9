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
 * arrival is as cheap as its offset, and the event's copy, so the
 * engine can look ahead at the arrivals about to leave (its read-ahead of
 * users, enc_reorder_next_arrival) without searching the heap. Arrivals
 * come in nearly in time order, so the held arrivals before a time T, in
 * arrival order, are nearly the events that leave next; the cursor stops
 * at the first arrival at or after T, so one arriving far out of order is
 * simply reached later.
 *
 * The id set counts the held copies of each (user, event id) hash and keeps
 * the latest event time among them, so "is a copy at or after time T held?"
 * is one probe. It is kept only for a buffer made to track ids: the engine
 * asks only when the duplicate check is on (dedup.window.ms > 0), and
 * without it the set is about a fifth of the buffer's memory and a hash
 * per push and pop. Copies leave earliest first, so the latest time stays true
 * until the last copy leaves; only undoing a failed push rescans.
 *
 * The order key is a function of the event alone (the arrival sequence only
 * separates byte-identical duplicates, which produce identical effects), so
 * the same set of events leaves in the same order however it arrived.
 *
 * Every accepted event is copied in and freed on the way out, a grace
 * period later, so the copies cycle through far more memory than malloc's
 * per-thread cache keeps: they come from free lists of slots. What the
 * buffer holds is bounded only by reorder.max.events (a count, which the
 * input decides), never by cache.max.bytes: a byte bound would have to let
 * events through early when it is reached, as the count bound does, and
 * then the output would depend on the budget, which must change speed
 * only. So what a held event costs is kept small instead; at the peak of
 * `encore-bench mem` (60 000 events in the grace, 8 partitions) it is
 * most of what encore holds beyond the budget (ops/bench/LIMITS.md):
 *   - a slot holds the event's numbers and its strings, each with its
 *     NUL, back to back (no enc_event_t and its seven pointers, 88 bytes:
 *     peek and the read-ahead rebuild one in a scratch struct), plus the
 *     arrival number: 36 bytes of fixed fields and about 60 of strings
 *     for `encore-bench`'s events (a 112-byte chunk instead of 176).
 *     Slot sizes are 16 * k + 24 bytes, the sizes glibc's malloc serves
 *     with no padding (a chunk is the request plus 8, rounded up to 16);
 *     an event takes the smallest that holds it, a larger one a block of
 *     its own;
 *   - the heap keeps (time, user id prefix, slot): 24 bytes; the id hash
 *     is computed again when the event leaves instead of being kept;
 *   - a ring entry is (offset, mark, slot): 24 bytes, done when the slot
 *     is NULL; the read-ahead reads the time from the slot.
 * With the id set (20 bytes an entry, at most half full) that is about
 * 210 bytes an event of `encore-bench mem`, against about 310 with an
 * enc_event_t and its strings in slots of 32-byte steps, 48-byte heap and
 * 40-byte ring entries (heaptrack: 17.5 -> 11.2 MiB at the peak; see
 * ops/bench/LIMITS.md). The free lists keep at most ENC_SLOTS_FREE_MAX
 * slots in all, so a burst that is over gives its memory back.
 */
#include "reorder.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Slot classes: class c is ENC_SLOT_SIZE(c) bytes, 24 to 264. glibc gives
 * a request of 16 * k + 24 bytes a chunk of 16 * k + 32 with nothing
 * unused; other allocators round them as they do any size. */
#define ENC_SLOT_CLASSES   16
#define ENC_SLOT_SIZE(c)   ((size_t)(c) * 16 + 24)
#define ENC_SLOTS_FREE_MAX 4096 /* free slots kept, all classes */

/* The event's strings, in the order a slot keeps them: the user id first,
 * so the read-ahead and the order find it without a walk. */
enum { ENC_NSTR = 7 };

/* One held event: its numbers, then its strings back to back, each with
 * its NUL, a NULL one (bit i of nulls) taking no byte. */
typedef struct enc_slot_s {
        int64_t event_time;
        int64_t ms_played;
        int64_t track_duration_ms;
        uint64_t seq; /* arrival number */
        uint8_t reason_end;
        uint8_t source;
        uint8_t nulls;
        int8_t cls; /* slot class, or -1: a block of its own */
        char str[];
} enc_slot_t;

typedef struct enc_held_s {
        int64_t time;  /* the event's time, here so sifting the heap does
                          not chase a pointer per comparison */
        uint64_t upfx; /* the user id's first 8 bytes, big-endian,
                          zero-padded: orders as strcmp does on them */
        enc_slot_t *s; /* owned */
} enc_held_t;

/* One arrival, in the ring: what the commit position and the read-ahead
 * need without touching the heap. */
typedef struct enc_arrival_s {
        int64_t offset;
        int64_t mark;
        const enc_slot_t *s; /* the held copy; NULL once popped */
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
        enc_idset_t ids; /* empty unless track_ids */
        bool track_ids;
        /* free slots by class, linked through each slot's start */
        void *free_slots[ENC_SLOT_CLASSES];
        size_t nfree; /* all classes */
        /* the first event rebuilt from its slot (peek), valid while
         * top is heap[0].s and no pop, push or clear came since */
        enc_event_t top_ev;
        const enc_slot_t *top;
        enc_event_t ahead_ev; /* the last one next_arrival handed out */
};

/* A slot keeps every field of enc_event_t: one added there must be added
 * to enc_slot_t, enc_reorder_copy and enc_slot_event. */
_Static_assert(sizeof(enc_event_t) ==
                       ENC_NSTR * sizeof(char *) + 3 * sizeof(int64_t) +
                               sizeof(enc_reason_end_t) + sizeof(enc_source_t),
               "enc_event_t changed: update the reorder buffer's slots");
_Static_assert(ENC_END__CNT <= 256 && ENC_SRC__CNT <= 256,
               "a slot keeps the enums in a byte each");

/* Rebuilds @p ev from @p s: its strings point into the slot. */
static void enc_slot_event(const enc_slot_t *s, enc_event_t *ev) {
        const char **dst[ENC_NSTR] = {
                &ev->user_id, &ev->event_id,          &ev->track_id,
                &ev->artist_id, &ev->surface, &ev->recommendation_id,
                &ev->cohort};
        const char *pos = s->str;
        for (int i = 0; i < ENC_NSTR; i++) {
                if (s->nulls & (1u << i)) {
                        *dst[i] = NULL;
                        continue;
                }
                *dst[i] = pos;
                pos += strlen(pos) + 1;
        }
        ev->event_time = s->event_time;
        ev->ms_played = s->ms_played;
        ev->track_duration_ms = s->track_duration_ms;
        ev->reason_end = (enc_reason_end_t)s->reason_end;
        ev->source = (enc_source_t)s->source;
}

static const char *enc_slot_user(const enc_slot_t *s) {
        return s->str; /* never NULL: validated events have a user id */
}

static const char *enc_slot_event_id(const enc_slot_t *s) {
        return s->str + strlen(s->str) + 1;
}

/* A copy of @p ev in one slot (or a block of its own, class -1), with
 * arrival number @p seq. NULL if out of memory. */
static enc_slot_t *enc_reorder_copy(enc_reorder_t *r, const enc_event_t *ev,
                                    uint64_t seq) {
        const char *src[ENC_NSTR] = {ev->user_id,  ev->event_id,
                                     ev->track_id, ev->artist_id,
                                     ev->surface,  ev->recommendation_id,
                                     ev->cohort};
        size_t len[ENC_NSTR], need = offsetof(enc_slot_t, str);
        uint8_t nulls = 0;
        for (int i = 0; i < ENC_NSTR; i++) {
                len[i] = src[i] ? strlen(src[i]) + 1 : 0;
                nulls |= src[i] ? 0 : (uint8_t)(1u << i);
                need += len[i];
        }
        int c = need > ENC_SLOT_SIZE(ENC_SLOT_CLASSES - 1)
                        ? -1
                : need <= ENC_SLOT_SIZE(0)
                        ? 0
                        : (int)((need - ENC_SLOT_SIZE(0) + 15) / 16);
        enc_slot_t *s;
        if (c >= 0 && r->free_slots[c]) {
                s = r->free_slots[c];
                r->free_slots[c] = *(void **)s;
                r->nfree--;
        } else if (!(s = malloc(c < 0 ? need : ENC_SLOT_SIZE(c)))) {
                return NULL;
        }
        s->event_time = ev->event_time;
        s->ms_played = ev->ms_played;
        s->track_duration_ms = ev->track_duration_ms;
        s->seq = seq;
        s->reason_end = (uint8_t)ev->reason_end;
        s->source = (uint8_t)ev->source;
        s->nulls = nulls;
        s->cls = (int8_t)c;
        char *pos = s->str;
        for (int i = 0; i < ENC_NSTR; i++) {
                memcpy(pos, src[i] ? src[i] : "", len[i]);
                pos += len[i];
        }
        return s;
}

static void enc_reorder_release(enc_reorder_t *r, enc_slot_t *s) {
        int c = s->cls;
        if (c < 0 || r->nfree >= ENC_SLOTS_FREE_MAX) {
                free(s);
                return;
        }
        *(void **)s = r->free_slots[c];
        r->free_slots[c] = s;
        r->nfree++;
}

static uint64_t enc_id_hash(const char *user, const char *event_id) {
        uint64_t h = XXH3_64bits_withSeed(event_id, strlen(event_id),
                                          XXH3_64bits(user, strlen(user)));
        return h ? h : 1;
}

static uint64_t enc_slot_id_hash(const enc_slot_t *s) {
        return enc_id_hash(enc_slot_user(s), enc_slot_event_id(s));
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
                if (r->heap[i].time > m && enc_slot_id_hash(r->heap[i].s) == h)
                        m = r->heap[i].time;
        r->ids.tmax[j] = m;
}

enc_reorder_t *enc_reorder_new(bool track_ids) {
        enc_reorder_t *r = calloc(1, sizeof(enc_reorder_t));
        if (r)
                r->track_ids = track_ids;
        return r;
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
 * chasing the slot pointers (strcmp was 7% of a hot B1 run). */
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
        int c = strcmp(enc_slot_user(a->s), enc_slot_user(b->s));
        if (c)
                return c;
        c = strcmp(enc_slot_event_id(a->s), enc_slot_event_id(b->s));
        if (c)
                return c;
        return a->s->seq < b->s->seq ? -1 : a->s->seq > b->s->seq;
}

static enc_err_t enc_ring_push(enc_reorder_t *r, const enc_slot_t *s,
                               int64_t offset, int64_t mark) {
        if (r->tail - r->head == r->rcap) {
                size_t ncap = r->rcap ? r->rcap * 2 : 1024;
                enc_arrival_t *nr = malloc(ncap * sizeof(*nr));
                if (!nr)
                        return ENC_ERR_NOMEM;
                for (uint64_t q = r->head; q < r->tail; q++)
                        nr[q & (ncap - 1)] = r->ring[q & (r->rcap - 1)];
                free(r->ring);
                r->ring = nr;
                r->rcap = ncap;
        }
        enc_arrival_t *a = &r->ring[r->tail & (r->rcap - 1)];
        a->offset = offset;
        a->mark = mark;
        a->s = s;
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
        enc_slot_t *copy = enc_reorder_copy(r, ev, r->tail);
        if (!copy)
                return ENC_ERR_NOMEM;
        uint64_t idh = 0;
        if (r->track_ids) {
                idh = enc_id_hash(ev->user_id, ev->event_id);
                if (!enc_idset_add(&r->ids, idh, ev->event_time)) {
                        enc_reorder_release(r, copy);
                        return ENC_ERR_NOMEM;
                }
        }
        if (enc_ring_push(r, copy, offset, mark)) {
                if (r->track_ids) {
                        enc_idset_del(&r->ids, idh);
                        enc_idset_rescan(r, idh);
                }
                enc_reorder_release(r, copy);
                return ENC_ERR_NOMEM;
        }
        r->top = NULL;
        size_t i = r->cnt++;
        r->heap[i].time = ev->event_time;
        r->heap[i].upfx = enc_id_prefix(ev->user_id);
        r->heap[i].s = copy;
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

const enc_event_t *enc_reorder_peek(enc_reorder_t *r) {
        if (!r->cnt)
                return NULL;
        if (r->top != r->heap[0].s) {
                enc_slot_event(r->heap[0].s, &r->top_ev);
                r->top = r->heap[0].s;
        }
        return &r->top_ev;
}

void enc_reorder_pop(enc_reorder_t *r) {
        if (!r->cnt)
                return;
        enc_slot_t *s = r->heap[0].s;
        uint64_t seq = s->seq;
        if (r->track_ids)
                enc_idset_del(&r->ids, enc_slot_id_hash(s));
        enc_reorder_release(r, s);
        r->top = NULL;
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
        r->ring[seq & (r->rcap - 1)].s = NULL;
        while (r->head < r->tail && !r->ring[r->head & (r->rcap - 1)].s)
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
                enc_reorder_release(r, r->heap[i].s);
        r->cnt = 0;
        r->top = NULL;
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
                if (!a->s) {
                        r->ahead++;
                        continue;
                }
                if (a->s->event_time >= before)
                        return NULL;
                r->ahead++;
                enc_slot_event(a->s, &r->ahead_ev);
                return &r->ahead_ev;
        }
        return NULL;
}
