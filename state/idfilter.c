/*
 * idfilter.c -- a per-partition filter of recent event ids, so most events
 * are known not to be duplicates without loading their user.
 *
 * DESIGN
 * The exact duplicate check (state/dedup.c) asks whether the user's
 * applied ids hold the event's id with a time >= since (= the event's time
 * - dedup.window.ms); that needs the user, from the cache or RocksDB, at
 * arrival. Almost every answer is "no". This filter answers the same
 * question from memory of its own: "no copy can exist" or "maybe", and on
 * "maybe" the engine runs the exact check exactly as before. So outputs
 * cannot change as long as one invariant holds:
 *
 *   COMPLETE  For a partition with completeness point F, every event
 *             accepted on it (buffered for processing) with a time t >= F
 *             was added and is still held, with t inside the time range of
 *             the generation holding it; and every query with since < F
 *             answers "maybe".
 *
 * Then "no" (since >= F and no held entry of the key in a generation whose
 * newest time is >= since) means no accepted event of that key has a time
 * >= since; the user's applied ids are a subset of the accepted events
 * (pruned and capped, never added to otherwise), so the exact check would
 * have said "no" too. The key is derived from the same 64-bit hash of the
 * event id that the exact check compares, with the user id mixed in, so
 * two ids the exact check confuses share a key here too. Extra entries,
 * fingerprint collisions and coarse time ranges only make "maybe" more
 * frequent, never "no".
 *
 * F starts where the engine knows the state's history: INT64_MIN for a
 * partition with no stored state, the stored watermark W when resuming a
 * checkpoint (the user records hold only events applied before W; every
 * event at or after W is re-read in [C, E) or new, and both are added),
 * ENC_IDFILTER_UNKNOWN when nothing is known. F only moves up, and every
 * way of forgetting an entry moves F past the entry's time first.
 *
 * Layout: per partition, a ring of up to 8 generations, each an
 * open-addressing table of 32-bit fingerprints (the key's high half) in
 * buckets of 16, one cache line each (linear probing by bucket, at most
 * 3/4 full, so a lookup reads about one line per generation), with the
 * oldest and newest event time it holds. Adding goes to the newest generation;
 * a full one starts the next. Nothing is deleted or rehashed: a whole
 * generation goes when its newest time is before the horizon (watermark -
 * window: every later query is about a non-late event, time >= watermark, so
 * its since is at or after the horizon), or -- the memory cap -- when room is
 * needed and it is the oldest, and then F moves past its newest time: the
 * filter covers a shorter recent span, and checks older than it fall back to
 * the exact check. A query probes each generation whose newest time is >=
 * since, usually two or three. Generation sizes adapt to the event rate: a
 * table that filled within a quarter of the window is followed by one twice as
 * large, one that took more than a window by one half as large, so a
 * window is a few generations. The cap is cache.max.bytes' idfilter share
 * (state/budget.c), split evenly between the owned partitions; the engine
 * charges what the tables hold (enc_idfilter_bytes) to the users cache.
 *
 * Never: answer "no" for a since-time before F; forget an entry without
 * moving F past it; allocate per event; read the clock.
 */
#include "idfilter.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define ENC_IDF_GENS     8
#define ENC_IDF_MIN_SIZE 256u /* entries of a generation, at least */
#define ENC_IDF_BUCKET   16   /* entries of a bucket: one cache line */

typedef struct enc_idf_gen_s {
        uint32_t *tab; /* size fingerprints, 0 = empty, in buckets of 16
                          (64-byte aligned); owned */
        size_t size;   /* a power of two */
        size_t count;
        int64_t tmin, tmax; /* event times held (count > 0) */
} enc_idf_gen_t;

typedef struct enc_idf_part_s {
        bool active;
        int64_t complete_from;           /* F */
        enc_idf_gen_t gen[ENC_IDF_GENS]; /* [0] oldest .. [ngen-1] newest */
        int ngen;
        size_t bytes;
} enc_idf_part_t;

struct enc_idfilter_s {
        int64_t window;
        size_t max_bytes;
        enc_idf_part_t *parts;
        int nparts;
        int active;
        size_t bytes; /* all partitions' tables */
        uint64_t generations, evictions;
};

uint64_t enc_idfilter_key(const char *user_id, size_t ulen,
                          uint64_t dedup_hash) {
        return XXH3_64bits_withSeed(user_id, ulen, dedup_hash);
}

static uint32_t enc_idf_fp(uint64_t key) {
        uint32_t fp = (uint32_t)(key >> 32);
        return fp ? fp : 1;
}

static void enc_idf_raise(enc_idf_part_t *p, int64_t t) {
        /* past t: t + 1, saturating */
        int64_t from = t == INT64_MAX ? INT64_MAX : t + 1;
        if (from > p->complete_from)
                p->complete_from = from;
}

/* ---- construction --------------------------------------------------- */

enc_idfilter_t *enc_idfilter_new(int64_t window, size_t max_bytes) {
        if (window <= 0)
                return NULL;
        enc_idfilter_t *f = calloc(1, sizeof(*f));
        if (!f)
                return NULL;
        f->window = window;
        f->max_bytes = max_bytes;
        return f;
}

static void enc_idf_part_clear(enc_idf_part_t *p) {
        for (int i = 0; i < p->ngen; i++)
                free(p->gen[i].tab);
        memset(p, 0, sizeof(*p));
}

void enc_idfilter_destroy(enc_idfilter_t *f) {
        if (!f)
                return;
        for (int i = 0; i < f->nparts; i++)
                enc_idf_part_clear(&f->parts[i]);
        free(f->parts);
        free(f);
}

enc_err_t enc_idfilter_assign(enc_idfilter_t *f, int32_t partition,
                              int64_t complete_from) {
        if (partition < 0)
                return ENC_ERR_INVALID_ARG;
        if (partition >= f->nparts) {
                int n = partition + 1;
                enc_idf_part_t *np = realloc(f->parts, (size_t)n * sizeof(*np));
                if (!np)
                        return ENC_ERR_NOMEM;
                memset(np + f->nparts, 0,
                       (size_t)(n - f->nparts) * sizeof(*np));
                f->parts = np;
                f->nparts = n;
        }
        enc_idf_part_t *p = &f->parts[partition];
        if (p->active)
                return ENC_OK; /* still complete for what it covers */
        enc_idf_part_clear(p);
        p->active = true;
        p->complete_from = complete_from;
        f->active++;
        return ENC_OK;
}

void enc_idfilter_revoke(enc_idfilter_t *f, int32_t partition) {
        if (!f || partition < 0 || partition >= f->nparts ||
            !f->parts[partition].active)
                return;
        f->bytes -= f->parts[partition].bytes;
        enc_idf_part_clear(&f->parts[partition]);
        f->active--;
}

/* ---- generations ---------------------------------------------------- */

/* Forgets the oldest generation; F moves past what it held. */
static void enc_idf_drop_oldest(enc_idfilter_t *f, enc_idf_part_t *p) {
        enc_idf_gen_t *g = &p->gen[0];
        if (g->count)
                enc_idf_raise(p, g->tmax);
        p->bytes -= g->size * sizeof(*g->tab);
        f->bytes -= g->size * sizeof(*g->tab);
        free(g->tab);
        p->ngen--;
        memmove(&p->gen[0], &p->gen[1], (size_t)p->ngen * sizeof(p->gen[0]));
        memset(&p->gen[p->ngen], 0, sizeof(p->gen[0]));
}

/* Bytes one partition's generations may take together. */
static size_t enc_idf_cap(const enc_idfilter_t *f) {
        size_t cap = f->max_bytes / (size_t)(f->active > 0 ? f->active : 1);
        return cap < ENC_IDF_MIN_SIZE * sizeof(uint32_t)
                       ? ENC_IDF_MIN_SIZE * sizeof(uint32_t)
                       : cap;
}

/*
 * Starts a new newest generation. Expired generations go first (F moves
 * past them, to at most the horizon); then, while the new one does not fit
 * the cap, the oldest. False if out of memory (then the partition holds
 * nothing and F is past @p t, so the caller's event needs no entry).
 */
static bool enc_idf_new_gen(enc_idfilter_t *f, enc_idf_part_t *p,
                            int64_t horizon, int64_t t) {
        size_t size = ENC_IDF_MIN_SIZE;
        if (p->ngen) {
                const enc_idf_gen_t *last = &p->gen[p->ngen - 1];
                int64_t span = 0;
                if (last->count &&
                    __builtin_sub_overflow(last->tmax, last->tmin, &span))
                        span = INT64_MAX;
                size = last->size;
                if (span < f->window / 4)
                        size *= 2;
                else if (span > f->window && size > ENC_IDF_MIN_SIZE)
                        size /= 2;
        }
        size_t cap = enc_idf_cap(f);
        while (size * sizeof(uint32_t) > cap && size > ENC_IDF_MIN_SIZE)
                size /= 2;
        while (p->ngen && (!p->gen[0].count || p->gen[0].tmax < horizon))
                enc_idf_drop_oldest(f, p); /* expired */
        while (p->ngen && (p->ngen == ENC_IDF_GENS ||
                           p->bytes + size * sizeof(uint32_t) > cap)) {
                enc_idf_drop_oldest(f, p); /* the cap */
                f->evictions++;
        }
        uint32_t *tab = aligned_alloc(64, size * sizeof(*tab));
        if (tab)
                memset(tab, 0, size * sizeof(*tab));
        if (!tab) {
                while (p->ngen)
                        enc_idf_drop_oldest(f, p);
                enc_idf_raise(p, t);
                return false;
        }
        enc_idf_gen_t *g = &p->gen[p->ngen++];
        g->tab = tab;
        g->size = size;
        g->count = 0;
        p->bytes += size * sizeof(*tab);
        f->bytes += size * sizeof(*tab);
        f->generations++;
        return true;
}

void enc_idfilter_add(enc_idfilter_t *f, int32_t partition, uint64_t key,
                      int64_t time, int64_t horizon) {
        if (!f || partition < 0 || partition >= f->nparts)
                return;
        enc_idf_part_t *p = &f->parts[partition];
        if (!p->active || time < p->complete_from)
                return; /* no query that could match it is answered here */
        /* give an expired generation back at once (its bytes are charged
         * to the users cache), not when the next one starts */
        if (p->ngen > 1 && p->gen[0].tmax < horizon)
                enc_idf_drop_oldest(f, p);
        enc_idf_gen_t *g = p->ngen ? &p->gen[p->ngen - 1] : NULL;
        if (!g || g->count + 1 > g->size / 4 * 3) {
                if (!enc_idf_new_gen(f, p, horizon, time))
                        return;
                if (time < p->complete_from)
                        return; /* older than what the cap left */
                g = &p->gen[p->ngen - 1];
        }
        size_t mask = g->size / ENC_IDF_BUCKET - 1, b = (size_t)key & mask;
        for (;; b = (b + 1) & mask) {
                uint32_t *bk = g->tab + b * ENC_IDF_BUCKET;
                int j = 0;
                while (j < ENC_IDF_BUCKET && bk[j])
                        j++;
                if (j < ENC_IDF_BUCKET) {
                        bk[j] = enc_idf_fp(key);
                        break;
                }
        }
        if (!g->count || time < g->tmin)
                g->tmin = time;
        if (!g->count || time > g->tmax)
                g->tmax = time;
        g->count++;
}

bool enc_idfilter_maybe(const enc_idfilter_t *f, int32_t partition,
                        uint64_t key, int64_t since) {
        if (!f || partition < 0 || partition >= f->nparts)
                return true;
        const enc_idf_part_t *p = &f->parts[partition];
        if (!p->active || since < p->complete_from)
                return true;
        uint32_t fp = enc_idf_fp(key);
        for (int k = p->ngen - 1; k >= 0; k--) {
                const enc_idf_gen_t *g = &p->gen[k];
                if (!g->count || g->tmax < since)
                        continue;
                /* An entry sits in the first bucket from its home that had
                 * room; nothing is ever removed from a table, so a bucket
                 * with room ends the search. */
                size_t mask = g->size / ENC_IDF_BUCKET - 1,
                       b = (size_t)key & mask;
                for (;; b = (b + 1) & mask) {
                        const uint32_t *bk = g->tab + b * ENC_IDF_BUCKET;
                        int hit = 0, room = 0;
                        for (int j = 0; j < ENC_IDF_BUCKET; j++) {
                                hit |= bk[j] == fp;
                                room |= bk[j] == 0;
                        }
                        if (hit)
                                return true;
                        if (room)
                                break;
                }
        }
        return false;
}

void enc_idfilter_stats(const enc_idfilter_t *f, enc_idfilter_stats_t *st) {
        memset(st, 0, sizeof(*st));
        if (!f)
                return;
        for (int i = 0; i < f->nparts; i++) {
                const enc_idf_part_t *p = &f->parts[i];
                for (int k = 0; k < p->ngen; k++)
                        st->entries += p->gen[k].count;
                st->bytes += p->bytes;
        }
        st->generations = f->generations;
        st->evictions = f->evictions;
}

size_t enc_idfilter_bytes(const enc_idfilter_t *f) {
        return f ? f->bytes : 0;
}

int64_t enc_idfilter_complete_from(const enc_idfilter_t *f, int32_t partition) {
        if (!f || partition < 0 || partition >= f->nparts ||
            !f->parts[partition].active)
                return ENC_IDFILTER_UNKNOWN;
        return f->parts[partition].complete_from;
}
