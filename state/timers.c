/*
 * timers.c -- a bounded in-memory window of the store's timer index.
 *
 * DESIGN
 * Users not cached keep their wake only as a key [partition][time][user]
 * in the store's timers family (state/users.c). Finding the due ones with
 * a RocksDB iterator each time the watermark passes one cost an iterator
 * seek per timer fired at 1M users (the timers are of distinct users at
 * distinct times). Holding the whole index in memory is not an option: at
 * 10M users it would be ~300 MiB against a 64 MiB budget. So each
 * partition keeps a window: the next few thousand keys past the
 * watermark, read by the same scan that finds the due ones, and kept
 * equal to the store by following every timer key the users cache puts
 * or deletes.
 *
 * Invariants, for a valid window of a partition:
 *  - it holds exactly the keys of the store's timers family (as the
 *    pending batch will leave it) with lo < time and key <= hi, where hi
 *    is the last key the filling scan read (or the partition's end when
 *    that scan reached it: complete);
 *  - so when hi's time is past W, every stored timer in (lo, W] is in it
 *    and no iterator is needed; otherwise the engine scans the store again
 *    and refills it;
 *  - every change of the store's timers family goes through
 *    enc_timers_note (users.c's flush is the only writer while a partition
 *    is owned; restores write partitions not yet assigned, and assignment
 *    drops the window), and a discarded batch drops every window;
 *  - it holds at most 2 * max keys: past that it is cut back to max and hi
 *    comes down to the last key kept, which keeps the first invariant;
 *    and at most 2 * max notes wait for it: past that it is dropped. So
 *    what it holds is bounded by max whatever a flush writes (and is
 *    charged to the cache budget by the engine).
 * A key in the window may belong to a cached user: the caller skips those
 * (the users cache's heap is authoritative for cached users), exactly as
 * it skipped them in a store scan.
 *
 * Never: decide anything an output depends on. The window only says where
 * stored timers are; which fire and in what order is the heap's (wake,
 * user id) order, as before. Any doubt (out of memory, a drop) makes the
 * window invalid, and an invalid window only costs a scan.
 */
#include "timers.h"

#include <stdlib.h>
#include <string.h>

typedef struct enc_tent_s {
        int64_t time;
        uint32_t at; /* id: ids + at */
        uint32_t len;
} enc_tent_t;

typedef struct enc_twin_s {
        bool valid;
        bool complete; /* hi is the partition's end */
        bool oom;      /* while filling */
        int64_t lo;    /* keys with time > lo */
        enc_tent_t *v; /* [head, n) live, in key order */
        size_t head, n, cap;
        char *ids;
        size_t idlen, idcap;
        int64_t hi_time; /* hi key when !complete */
        char *hi_id;
        size_t hi_len, hi_cap;
        size_t pending; /* notes held for it, not merged yet */
} enc_twin_t;

typedef struct enc_tnote_s {
        int32_t part;
        bool put;
        int64_t time;
        uint64_t seq;   /* the order noted: the last note of a key decides */
        uint32_t at;    /* id: nids + at, */
        const char *id; /* set once nids stops moving (enc_timers_settle) */
        uint32_t len;
} enc_tnote_t;

struct enc_timers_s {
        size_t max;
        enc_twin_t *w;
        int nw;
        enc_tnote_t *notes;
        size_t nnotes, capnotes;
        char *nids;
        size_t nidlen, nidcap;
        uint64_t seq;
        /* merge targets, swapped with a window's arrays */
        enc_tent_t *sv;
        size_t scap;
        char *sids;
        size_t sidcap;
};

enc_timers_t *enc_timers_new(size_t max_entries) {
        enc_timers_t *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->max = max_entries ? max_entries : 1;
        return t;
}

void enc_timers_destroy(enc_timers_t *t) {
        if (!t)
                return;
        for (int i = 0; i < t->nw; i++) {
                free(t->w[i].v);
                free(t->w[i].ids);
                free(t->w[i].hi_id);
        }
        free(t->w);
        free(t->notes);
        free(t->nids);
        free(t->sv);
        free(t->sids);
        free(t);
}

/* Store key order: time, then the id bytewise, a prefix first. */
static int enc_tkey_cmp(int64_t ta, const char *a, size_t al, int64_t tb,
                        const char *b, size_t bl) {
        if (ta != tb)
                return ta < tb ? -1 : 1;
        int c = memcmp(a, b, al < bl ? al : bl);
        if (c)
                return c;
        return (al > bl) - (al < bl);
}

static bool enc_grow(void **p, size_t *cap, size_t need, size_t size) {
        if (need <= *cap)
                return true;
        size_t nc = *cap ? *cap : 64;
        while (nc < need)
                nc *= 2;
        void *np = realloc(*p, nc * size);
        if (!np)
                return false;
        *p = np;
        *cap = nc;
        return true;
}

static enc_twin_t *enc_timers_win(enc_timers_t *t, int32_t partition,
                                  bool create) {
        if (partition < 0)
                return NULL;
        if (partition >= t->nw) {
                if (!create || partition > 1 << 20)
                        return NULL;
                int n = partition + 1;
                enc_twin_t *nw = realloc(t->w, (size_t)n * sizeof(*nw));
                if (!nw)
                        return NULL;
                memset(nw + t->nw, 0, (size_t)(n - t->nw) * sizeof(*nw));
                t->w = nw;
                t->nw = n;
        }
        return &t->w[partition];
}

static void enc_twin_clear(enc_twin_t *w) {
        w->valid = w->complete = w->oom = false;
        w->head = w->n = 0;
        w->idlen = 0;
        w->pending = 0;
}

static bool enc_twin_push(enc_twin_t *w, int64_t time, const char *id,
                          size_t ulen) {
        if (ulen > UINT32_MAX || w->idlen + ulen > UINT32_MAX ||
            !enc_grow((void **)&w->v, &w->cap, w->n + 1, sizeof(*w->v)) ||
            !enc_grow((void **)&w->ids, &w->idcap, w->idlen + ulen, 1))
                return false;
        memcpy(w->ids + w->idlen, id, ulen);
        w->v[w->n++] = (enc_tent_t){time, (uint32_t)w->idlen, (uint32_t)ulen};
        w->idlen += ulen;
        return true;
}

/* Makes the key at v[i] the window's hi. */
static bool enc_twin_set_hi(enc_twin_t *w, size_t i) {
        const enc_tent_t *x = &w->v[i];
        if (!enc_grow((void **)&w->hi_id, &w->hi_cap, x->len ? x->len : 1, 1))
                return false;
        memcpy(w->hi_id, w->ids + x->at, x->len);
        w->hi_len = x->len;
        w->hi_time = x->time;
        w->complete = false;
        return true;
}

/* Whether a key lies in the window's range (lo, hi]. */
static bool enc_twin_in(const enc_twin_t *w, int64_t time, const char *id,
                        size_t ulen) {
        if (time <= w->lo)
                return false;
        return w->complete || enc_tkey_cmp(time, id, ulen, w->hi_time, w->hi_id,
                                           w->hi_len) <= 0;
}

/* Note order: partition, key, then the order noted. */
static int enc_tnote_cmp(const void *pa, const void *pb) {
        const enc_tnote_t *a = pa, *b = pb;
        if (a->part != b->part)
                return a->part < b->part ? -1 : 1;
        int c = enc_tkey_cmp(a->time, a->id, a->len, b->time, b->id, b->len);
        if (c)
                return c;
        return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Merges @p cnt notes of one partition, in note order, into its window
 * (rebuilt into the spare arrays, which it then swaps with). */
static void enc_twin_merge(enc_timers_t *t, enc_twin_t *w,
                           const enc_tnote_t *nt, size_t cnt) {
        size_t live = w->n - w->head;
        size_t idbytes = 0;
        for (size_t k = 0; k < cnt; k++)
                idbytes += nt[k].len;
        for (size_t k = w->head; k < w->n; k++)
                idbytes += w->v[k].len;
        if (idbytes > UINT32_MAX ||
            !enc_grow((void **)&t->sv, &t->scap, live + cnt, sizeof(*t->sv)) ||
            !enc_grow((void **)&t->sids, &t->sidcap, idbytes ? idbytes : 1,
                      1)) {
                enc_twin_clear(w);
                return;
        }
        size_t on = 0, oid = 0, i = w->head, j = 0;
        while (i < w->n || j < cnt) {
                const enc_tent_t *x = i < w->n ? &w->v[i] : NULL;
                int c = -1;
                if (j < cnt)
                        c = x ? enc_tkey_cmp(x->time, w->ids + x->at, x->len,
                                             nt[j].time, nt[j].id, nt[j].len)
                              : 1;
                const char *id;
                int64_t time;
                uint32_t len;
                if (c < 0) {
                        id = w->ids + x->at;
                        time = x->time;
                        len = x->len;
                        i++;
                } else {
                        /* the run of notes of one key: the last decides */
                        size_t last = j;
                        while (last + 1 < cnt &&
                               nt[last + 1].time == nt[j].time &&
                               nt[last + 1].len == nt[j].len &&
                               !memcmp(nt[last + 1].id, nt[j].id, nt[j].len))
                                last++;
                        bool keep = nt[last].put;
                        j = last + 1;
                        if (c == 0)
                                i++;
                        if (!keep)
                                continue;
                        id = nt[last].id;
                        time = nt[last].time;
                        len = nt[last].len;
                }
                memcpy(t->sids + oid, id, len);
                t->sv[on++] = (enc_tent_t){time, (uint32_t)oid, len};
                oid += len;
        }
        enc_tent_t *v = w->v;
        size_t cap = w->cap;
        char *ids = w->ids;
        size_t idcap = w->idcap;
        w->v = t->sv;
        w->cap = t->scap;
        w->ids = t->sids;
        w->idcap = t->sidcap;
        t->sv = v;
        t->scap = cap;
        t->sids = ids;
        t->sidcap = idcap;
        w->head = 0;
        w->n = on;
        w->idlen = oid;
        if (w->n > 2 * t->max) {
                if (!enc_twin_set_hi(w, t->max - 1)) {
                        enc_twin_clear(w);
                        return;
                }
                w->n = t->max;
        }
}

/* Applies the notes to their windows. */
static void enc_timers_settle(enc_timers_t *t) {
        if (!t->nnotes)
                return;
        for (size_t k = 0; k < t->nnotes; k++)
                t->notes[k].id = t->nids + t->notes[k].at;
        /* The cache stages a flush's keys in key order: usually sorted. */
        bool sorted = true;
        for (size_t k = 1; k < t->nnotes && sorted; k++)
                sorted = enc_tnote_cmp(&t->notes[k - 1], &t->notes[k]) < 0;
        if (!sorted)
                qsort(t->notes, t->nnotes, sizeof(*t->notes), enc_tnote_cmp);
        for (size_t k = 0; k < t->nnotes;) {
                size_t end = k + 1;
                while (end < t->nnotes &&
                       t->notes[end].part == t->notes[k].part)
                        end++;
                enc_twin_t *w = enc_timers_win(t, t->notes[k].part, false);
                if (w && w->valid)
                        enc_twin_merge(t, w, t->notes + k, end - k);
                if (w)
                        w->pending = 0;
                k = end;
        }
        t->nnotes = 0;
        t->nidlen = 0;
}

void enc_timers_note(enc_timers_t *t, int32_t partition, bool put, int64_t time,
                     const char *id, size_t ulen) {
        enc_twin_t *w = enc_timers_win(t, partition, false);
        if (!w || !w->valid || !enc_twin_in(w, time, id, ulen))
                return;
        if (w->pending >= 2 * t->max) {
                /* a flush that moves more keys into the window than it
                 * holds: one scan refills it for less than holding them */
                enc_twin_clear(w);
                return;
        }
        if (ulen > UINT32_MAX || t->nidlen + ulen > UINT32_MAX ||
            !enc_grow((void **)&t->notes, &t->capnotes, t->nnotes + 1,
                      sizeof(*t->notes)) ||
            !enc_grow((void **)&t->nids, &t->nidcap, t->nidlen + ulen, 1)) {
                /* its window would stop mirroring the store */
                enc_twin_clear(w);
                return;
        }
        memcpy(t->nids + t->nidlen, id, ulen);
        w->pending++;
        t->notes[t->nnotes++] = (enc_tnote_t){.part = partition,
                                              .put = put,
                                              .time = time,
                                              .seq = t->seq++,
                                              .at = (uint32_t)t->nidlen,
                                              .len = (uint32_t)ulen};
        t->nidlen += ulen;
}

void enc_timers_drop(enc_timers_t *t, int32_t partition) {
        enc_timers_settle(t); /* the other partitions' notes stay true */
        enc_twin_t *w = enc_timers_win(t, partition, false);
        if (w)
                enc_twin_clear(w);
}

void enc_timers_drop_all(enc_timers_t *t) {
        t->nnotes = 0;
        t->nidlen = 0;
        for (int i = 0; i < t->nw; i++)
                enc_twin_clear(&t->w[i]);
}

bool enc_timers_covers(enc_timers_t *t, int32_t partition, int64_t from_excl,
                       int64_t upto) {
        enc_timers_settle(t);
        enc_twin_t *w = enc_timers_win(t, partition, false);
        if (!w || !w->valid || w->lo != from_excl)
                return false;
        return w->complete || w->hi_time > upto;
}

bool enc_timers_pop(enc_timers_t *t, int32_t partition, int64_t upto,
                    int64_t *time, const char **id, size_t *ulen) {
        enc_twin_t *w = enc_timers_win(t, partition, false);
        if (!w || !w->valid)
                return false;
        if (w->head < w->n && w->v[w->head].time <= upto) {
                const enc_tent_t *x = &w->v[w->head++];
                *time = x->time;
                *id = w->ids + x->at;
                *ulen = x->len;
                return true;
        }
        if (upto > w->lo)
                w->lo = upto;
        return false;
}

void enc_timers_refill_begin(enc_timers_t *t, int32_t partition,
                             int64_t from_excl) {
        enc_timers_settle(t);
        enc_twin_t *w = enc_timers_win(t, partition, true);
        if (!w)
                return;
        enc_twin_clear(w);
        w->lo = from_excl;
}

bool enc_timers_refill_add(enc_timers_t *t, int32_t partition, int64_t time,
                           const char *id, size_t ulen) {
        enc_twin_t *w = enc_timers_win(t, partition, false);
        if (!w || w->oom)
                return true;
        if (time <= w->lo)
                return false;
        if (!enc_twin_push(w, time, id, ulen)) {
                w->oom = true;
                return true;
        }
        return w->n >= t->max;
}

void enc_timers_refill_end(enc_timers_t *t, int32_t partition, bool at_end) {
        enc_twin_t *w = enc_timers_win(t, partition, false);
        if (!w)
                return;
        if (w->oom || (!at_end && (!w->n || !enc_twin_set_hi(w, w->n - 1)))) {
                enc_twin_clear(w);
                return;
        }
        w->complete = at_end;
        w->valid = true;
}

size_t enc_timers_bytes(const enc_timers_t *t) {
        size_t b = sizeof(*t) + (size_t)t->nw * sizeof(*t->w) +
                   t->capnotes * sizeof(*t->notes) + t->nidcap +
                   t->scap * sizeof(*t->sv) + t->sidcap;
        for (int i = 0; i < t->nw; i++)
                b += t->w[i].cap * sizeof(enc_tent_t) + t->w[i].idcap +
                     t->w[i].hi_cap;
        return b;
}
