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
 * partition with no stored state, the saved filter's F when resuming a
 * checkpoint that saved one (see Persistence), else the stored watermark W
 * (the user records hold only events applied before W; every event at or
 * after W is re-read in [C, E) or new, and both are added),
 * ENC_IDFILTER_UNKNOWN when nothing is known. Once a partition is in use
 * F only moves up, and every way of forgetting an entry moves F past the
 * entry's time first.
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
 * Persistence. Each checkpoint writes every owned partition's filter into
 * the same RocksDB batch as the position it was taken at (the engine calls
 * enc_idfilter_save from enc_engine_checkpoint_commit, next to the position
 * record), keys [partition]['I'...] of the meta family: a header (the
 * position as a tag, F, and per generation its number, size, count, time
 * range, whether it has a base, its count of deltas and the checksum of
 * its whole table, then a checksum of the header), and per generation a
 * base table and deltas. Only what changed since the last durable save is
 * written: entries are only ever appended to a bucket, after its last, so a
 * delta lists, for each bucket that gained entries, those entries (about 6
 * bytes an entry); a generation started since is written as deltas over an
 * empty table. The whole table (the base) is written again, and its deltas
 * deleted, when there would be more than 64 deltas or their bytes would
 * pass the table's: reading back stays bounded, and what a checkpoint
 * writes is a few bytes per event accepted since the last one plus the
 * header. A generation that filled gets its last delta and is never
 * written again. Keys of generations dropped since are deleted in the same
 * batch; a partition started without a saved filter deletes every key of
 * the filter at its first save (whatever is there is not its own). A
 * checkpoint batch that fails makes the next save write every generation
 * whole (what reached the store is not known).
 *   On assignment the engine loads it only if its tag equals the stored
 * position exactly; a filter saved at another position (the meta record
 * rewritten by a restore, a run with dedup off in between) says nothing
 * about this state. Loaded, it satisfies COMPLETE for its F: it held every
 * event accepted before the checkpoint with t >= F, and after the restart
 * every accepted event is added again or for the first time (the re-read
 * of [C, E) and the live path). Every accepted event at or after the
 * stored watermark W is re-read or new, so F is lowered to W if it was
 * above it (the memory cap had moved it). Everything read is checked --
 * lengths, sizes, every delta applying to free slots, the count of entries
 * and the checksum of each table rebuilt, the header's checksum -- and on
 * any doubt the filter is ignored with a log line: the partition starts as
 * without persistence (F = W), never with a table that could say a wrong
 * "no". The cap applies on load as when adding: the newest generations
 * that fit the partition's share are kept, the older go and F moves past
 * them; generations already before watermark - window go too.
 *   The changelog does not carry the filter: a restore from it writes a
 * position without one (or drops the partition), so the next assignment
 * finds no filter of that position and starts from W as before.
 *   A change to how keys are derived (enc_idfilter_key, enc_dedup_hash) or
 * to the table layout must change ENC_IDF_FORMAT: an old filter is then
 * ignored, never misread.
 *
 * Never: answer "no" for a since-time before F; forget an entry without
 * moving F past it; allocate per event; read the clock; trust a saved
 * filter that is not of the stored position or does not check out.
 */
#include "idfilter.h"

#include <stdio.h>
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
        uint64_t serial;    /* the partition's generation number: its keys */
        /* Persistence (see enc_idfilter_save). What is durably stored: a
         * base table (or, without one, all empty) and ndelta deltas of
         * delta_bytes; saved_fill holds each bucket's entries as they
         * stand there (NULL: nothing stored yet; owned). unknown: a batch
         * was dropped, what is stored is not known: the next save writes
         * the base and deletes every delta. */
        uint8_t *saved_fill;
        bool has_base, unknown;
        uint32_t ndelta;
        size_t delta_bytes;
        /* as staged by the last save, durable once confirmed */
        bool pend_base;
        uint32_t pend_ndelta;
        size_t pend_delta_bytes;
        uint64_t sum;     /* checksum of the whole table as staged */
        size_t sum_count; /* count when sum was taken; SIZE_MAX: none */
} enc_idf_gen_t;

typedef struct enc_idf_part_s {
        bool active;
        int64_t complete_from;           /* F */
        enc_idf_gen_t gen[ENC_IDF_GENS]; /* [0] oldest .. [ngen-1] newest */
        int ngen;
        size_t bytes;
        uint64_t next_serial; /* of the next generation started */
        /* Keys of generations >= disk_lo may be stored; below it none
         * are. purge: what is stored is unknown (a fresh start): the next
         * save deletes every key of the filter first. */
        uint64_t disk_lo;
        bool purge;
        bool pending; /* staged by a save, not yet confirmed */
        uint64_t pend_lo;
} enc_idf_part_t;

struct enc_idfilter_s {
        int64_t window;
        size_t max_bytes;
        enc_idf_part_t *parts;
        int nparts;
        int active;
        size_t bytes; /* all partitions' tables */
        uint64_t generations, evictions;
        enc_buf_t scratch; /* a delta being staged */
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
        enc_buf_init(&f->scratch, (size_t)1 << 31);
        return f;
}

static void enc_idf_part_clear(enc_idf_part_t *p) {
        for (int i = 0; i < p->ngen; i++) {
                free(p->gen[i].tab);
                free(p->gen[i].saved_fill);
        }
        memset(p, 0, sizeof(*p));
}

void enc_idfilter_destroy(enc_idfilter_t *f) {
        if (!f)
                return;
        for (int i = 0; i < f->nparts; i++)
                enc_idf_part_clear(&f->parts[i]);
        free(f->parts);
        enc_buf_free(&f->scratch);
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
        p->purge = true; /* whatever is stored is not this filter */
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
        free(g->saved_fill);
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
        memset(g, 0, sizeof(*g));
        g->tab = tab;
        g->size = size;
        g->count = 0;
        g->serial = p->next_serial++;
        g->sum_count = SIZE_MAX;
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

/* ---- persistence ---------------------------------------------------- */

#define ENC_IDF_FORMAT   2
#define ENC_IDF_TAG_MAX  256
#define ENC_IDF_LOG2_MAX 28 /* 2^28 entries, 1 GiB: past any cap */
/* header: [u8 2][u8 tag length][tag][u64 F][u64 next generation][u8 ngen]
 *         ngen x [u64 generation][u8 log2 size][u8 has base][u32 count]
 *                [u64 tmin][u64 tmax][u64 table checksum][u8 deltas]
 *         [u64 checksum of all before]   (big-endian) */
#define ENC_IDF_GEN_REC 39
#define ENC_IDF_HDR_MAX                                                        \
        (2 + ENC_IDF_TAG_MAX + 17 + ENC_IDF_GENS * ENC_IDF_GEN_REC + 8)
/* Deltas of a generation before its base is written again. */
#define ENC_IDF_DELTAS_MAX 64

/* Keys, after the partition: 'I' the header; 'I' + u64be generation its
 * base table; that + u32be n its delta n. */
static size_t enc_idf_key(uint8_t k[13], uint64_t serial, int64_t delta) {
        k[0] = ENC_IDFILTER_KEY;
        enc_put_u64be(k + 1, serial);
        if (delta < 0)
                return 9;
        enc_put_u32be(k + 9, (uint32_t)delta);
        return 13;
}

/* Entries of bucket @p b: they fill it from its first slot. */
static unsigned enc_idf_fill(const enc_idf_gen_t *g, size_t b) {
        const uint32_t *bk = g->tab + b * ENC_IDF_BUCKET;
        unsigned j = 0;
        while (j < ENC_IDF_BUCKET && bk[j])
                j++;
        return j;
}

static void enc_idf_put_le32(uint8_t *q, uint32_t v) {
        q[0] = (uint8_t)v;
        q[1] = (uint8_t)(v >> 8);
        q[2] = (uint8_t)(v >> 16);
        q[3] = (uint8_t)(v >> 24);
}

static uint32_t enc_idf_get_le32(const uint8_t *q) {
        return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
               (uint32_t)q[3] << 24;
}

/* The table as stored: little-endian 32-bit fingerprints, into @p b. */
static bool enc_idf_table_le(const enc_idf_gen_t *g, enc_buf_t *b) {
        enc_buf_reset(b);
        if (enc_buf_reserve(b, g->size * sizeof(uint32_t)))
                return false;
        for (size_t i = 0; i < g->size; i++)
                enc_idf_put_le32(b->data + i * 4, g->tab[i]);
        b->len = g->size * sizeof(uint32_t);
        return true;
}

/*
 * A delta: for each bucket that gained entries since @p g->saved_fill, in
 * bucket order, [varint buckets skipped since the previous one][u8 n]
 * [n x u32le fingerprint], the entries in slot order. False if it would be
 * over @p max bytes (then the base is written instead).
 */
static bool enc_idf_delta(const enc_idf_gen_t *g, size_t max, enc_buf_t *b) {
        enc_buf_reset(b);
        size_t nb = g->size / ENC_IDF_BUCKET, last = 0;
        for (size_t k = 0; k < nb; k++) {
                unsigned from = g->saved_fill[k], to = enc_idf_fill(g, k);
                if (to <= from)
                        continue;
                enc_buf_put_varint(b, k - last);
                enc_buf_put_u8(b, (uint8_t)(to - from));
                for (unsigned j = from; j < to; j++) {
                        uint8_t le[4];
                        enc_idf_put_le32(le, g->tab[k * ENC_IDF_BUCKET + j]);
                        if (enc_buf_append(b, le, 4))
                                return false;
                }
                last = k + 1;
                if (b->failed || b->len > max)
                        return false;
        }
        return !b->failed;
}

/* Saves staged for @p p became durable (@p ok) or were dropped. */
static void enc_idfilter_saved_part(enc_idf_part_t *p, bool ok) {
        if (!p->active || !p->pending)
                return;
        for (int k = 0; k < p->ngen; k++) {
                enc_idf_gen_t *g = &p->gen[k];
                if (!ok) {
                        g->unknown = true;
                        continue;
                }
                g->has_base = g->pend_base;
                g->ndelta = g->pend_ndelta;
                g->delta_bytes = g->pend_delta_bytes;
                g->unknown = false;
                size_t nb = g->size / ENC_IDF_BUCKET;
                if (!g->saved_fill && !(g->saved_fill = malloc(nb))) {
                        g->unknown = true;
                        continue;
                }
                for (size_t b = 0; b < nb; b++)
                        g->saved_fill[b] = (uint8_t)enc_idf_fill(g, b);
        }
        if (ok) {
                p->disk_lo = p->pend_lo;
                p->purge = false;
        }
        p->pending = false;
}

size_t enc_idfilter_save(enc_idfilter_t *f, int32_t partition, const void *tag,
                         size_t tlen, const enc_idfilter_io_t *io) {
        if (!f || partition < 0 || partition >= f->nparts ||
            !f->parts[partition].active || tlen > ENC_IDF_TAG_MAX)
                return 0;
        enc_idf_part_t *p = &f->parts[partition];
        size_t staged = 0, kl;
        uint8_t k[13], hi[13];
        uint64_t first = p->ngen ? p->gen[0].serial : p->next_serial;
        if (p->purge) { /* every key of the filter, header too */
                k[0] = ENC_IDFILTER_KEY;
                hi[0] = ENC_IDFILTER_KEY + 1;
                io->del_range(io->opaque, partition, k, 1, hi, 1);
                staged += 2;
        } else if (first > p->disk_lo) { /* generations dropped since */
                enc_idf_key(k, p->disk_lo, -1);
                enc_idf_key(hi, first, -1);
                io->del_range(io->opaque, partition, k, 9, hi, 9);
                staged += 18;
        }
        enc_buf_t *sb = &f->scratch;
        for (int i = 0; i < p->ngen; i++) {
                enc_idf_gen_t *g = &p->gen[i];
                size_t tb = g->size * sizeof(uint32_t);
                bool known = !p->purge && !g->unknown;
                g->pend_base = known && g->has_base;
                g->pend_ndelta = known ? g->ndelta : 0;
                g->pend_delta_bytes = known ? g->delta_bytes : 0;
                if (known && !g->saved_fill) /* new: stored as empty */
                        g->saved_fill = calloc(g->size / ENC_IDF_BUCKET, 1);
                bool base = !known || !g->saved_fill;
                if (!base && g->count != g->sum_count) {
                        /* a delta, unless it would make the deltas as
                         * large as the table or too many to read back */
                        base = g->ndelta >= ENC_IDF_DELTAS_MAX ||
                               g->delta_bytes >= tb ||
                               !enc_idf_delta(g, tb - g->delta_bytes, sb);
                        if (!base && sb->len) {
                                kl = enc_idf_key(k, g->serial, g->ndelta);
                                io->put(io->opaque, partition, k, kl, sb->data,
                                        sb->len);
                                staged += kl + sb->len;
                                g->pend_ndelta = g->ndelta + 1;
                                g->pend_delta_bytes += sb->len;
                        }
                }
                if (base) {
                        if (!enc_idf_table_le(g, sb))
                                goto none;
                        if (!p->purge && (g->unknown || g->ndelta)) {
                                enc_idf_key(k, g->serial, 0);
                                enc_idf_key(hi, g->serial + 1, -1);
                                io->del_range(io->opaque, partition, k, 13, hi,
                                              9);
                                staged += 22;
                        }
                        kl = enc_idf_key(k, g->serial, -1);
                        io->put(io->opaque, partition, k, kl, sb->data,
                                sb->len);
                        staged += kl + sb->len;
                        g->pend_base = true;
                        g->pend_ndelta = 0;
                        g->pend_delta_bytes = 0;
                        g->sum = XXH3_64bits(sb->data, sb->len);
                        g->sum_count = g->count;
                } else if (g->count != g->sum_count) {
                        if (!enc_idf_table_le(g, sb))
                                goto none;
                        g->sum = XXH3_64bits(sb->data, sb->len);
                        g->sum_count = g->count;
                }
        }
        uint8_t hb[ENC_IDF_HDR_MAX];
        uint8_t *q = hb;
        *q++ = ENC_IDF_FORMAT;
        *q++ = (uint8_t)tlen;
        if (tlen)
                memcpy(q, tag, tlen);
        q += tlen;
        enc_put_u64be(q, (uint64_t)p->complete_from);
        enc_put_u64be(q + 8, p->next_serial);
        q[16] = (uint8_t)p->ngen;
        q += 17;
        for (int i = 0; i < p->ngen; i++) {
                const enc_idf_gen_t *g = &p->gen[i];
                enc_put_u64be(q, g->serial);
                q[8] = (uint8_t)__builtin_ctzll(g->size);
                q[9] = g->pend_base;
                enc_put_u32be(q + 10, (uint32_t)g->count);
                enc_put_u64be(q + 14, (uint64_t)g->tmin);
                enc_put_u64be(q + 22, (uint64_t)g->tmax);
                enc_put_u64be(q + 30, g->sum);
                q[38] = (uint8_t)g->pend_ndelta;
                q += ENC_IDF_GEN_REC;
        }
        enc_put_u64be(q, XXH3_64bits(hb, (size_t)(q - hb)));
        q += 8;
        k[0] = ENC_IDFILTER_KEY;
        io->put(io->opaque, partition, k, 1, hb, (size_t)(q - hb));
        staged += 1 + (size_t)(q - hb);
        p->pending = true;
        p->pend_lo = first;
        return staged;
none:
        /* Out of memory: no header, so whatever was staged is never read;
         * the next save starts over. */
        k[0] = ENC_IDFILTER_KEY;
        io->del(io->opaque, partition, k, 1);
        p->pending = true;
        p->pend_lo = p->disk_lo;
        for (int i = 0; i < p->ngen; i++)
                p->gen[i].sum_count = SIZE_MAX;
        enc_idfilter_saved_part(p, false);
        return staged + 1;
}

void enc_idfilter_saved(enc_idfilter_t *f, bool ok) {
        if (!f)
                return;
        for (int i = 0; i < f->nparts; i++)
                enc_idfilter_saved_part(&f->parts[i], ok);
}

/* One generation as the header describes it. */
typedef struct enc_idf_rec_s {
        uint64_t serial;
        size_t size, count;
        int64_t tmin, tmax;
        uint64_t sum;
        bool has_base;
        unsigned ndelta;
} enc_idf_rec_t;

typedef struct enc_idf_hdr_s {
        int64_t complete_from;
        uint64_t next_serial;
        int ngen;
        enc_idf_rec_t gen[ENC_IDF_GENS];
} enc_idf_hdr_t;

#define ENC_IDF_WHY(...) (snprintf(why, why_size, __VA_ARGS__), ENC_ERR_CORRUPT)

/* Parses and checks a header; ENC_ERR_NOT_FOUND if it was saved with
 * another tag, ENC_ERR_CORRUPT (why says what) if it does not parse. */
static enc_err_t enc_idf_parse_hdr(const uint8_t *b, size_t len,
                                   const void *tag, size_t tlen,
                                   enc_idf_hdr_t *h, char *why,
                                   size_t why_size) {
        if (len < 2 + 17 + 8)
                return ENC_IDF_WHY("header of %zu bytes is truncated", len);
        if (b[0] != ENC_IDF_FORMAT)
                return ENC_IDF_WHY("header format %u is unknown", b[0]);
        size_t hl = 2 + (size_t)b[1] + 17;
        if (len < hl + 8)
                return ENC_IDF_WHY("header of %zu bytes is truncated", len);
        int ngen = b[hl - 1];
        if (ngen > ENC_IDF_GENS)
                return ENC_IDF_WHY("header lists %d generations", ngen);
        if (len != hl + (size_t)ngen * ENC_IDF_GEN_REC + 8)
                return ENC_IDF_WHY("header of %zu bytes for %d generations",
                                   len, ngen);
        const uint8_t *end = b + len - 8, *q = end;
        uint64_t sum;
        if (!enc_get_u64be(&q, b + len, &sum) || sum != XXH3_64bits(b, len - 8))
                return ENC_IDF_WHY("header checksum does not match");
        if (b[1] != tlen || memcmp(b + 2, tag, tlen)) {
                snprintf(why, why_size,
                         "saved at another position than the stored one");
                return ENC_ERR_NOT_FOUND;
        }
        q = b + 2 + tlen;
        uint64_t v;
        (void)enc_get_u64be(&q, end, &v);
        h->complete_from = (int64_t)v;
        (void)enc_get_u64be(&q, end, &h->next_serial);
        q++;
        h->ngen = ngen;
        for (int i = 0; i < ngen; i++, q += ENC_IDF_GEN_REC) {
                enc_idf_rec_t *r = &h->gen[i];
                const uint8_t *x = q;
                (void)enc_get_u64be(&x, end, &r->serial);
                unsigned lg = q[8];
                if (lg < (unsigned)__builtin_ctz(ENC_IDF_MIN_SIZE) ||
                    lg > ENC_IDF_LOG2_MAX)
                        return ENC_IDF_WHY("generation %d: size 2^%u", i, lg);
                r->size = (size_t)1 << lg;
                if (q[9] > 1)
                        return ENC_IDF_WHY("generation %d: base flag %u", i,
                                           q[9]);
                r->has_base = q[9];
                uint32_t cnt = 0;
                uint64_t t0 = 0, t1 = 0;
                r->sum = 0;
                x = q + 10; /* the length was checked: these all read */
                (void)(enc_get_u32be(&x, end, &cnt) &&
                       enc_get_u64be(&x, end, &t0) &&
                       enc_get_u64be(&x, end, &t1) &&
                       enc_get_u64be(&x, end, &r->sum));
                r->count = cnt;
                r->tmin = (int64_t)t0;
                r->tmax = (int64_t)t1;
                r->ndelta = q[38];
                if (r->count > r->size / 4 * 3)
                        return ENC_IDF_WHY("generation %d: %zu entries in "
                                           "%zu",
                                           i, r->count, r->size);
                if (r->count && r->tmin > r->tmax)
                        return ENC_IDF_WHY("generation %d: times out of "
                                           "order",
                                           i);
                if (r->ndelta > ENC_IDF_DELTAS_MAX)
                        return ENC_IDF_WHY("generation %d: %u deltas", i,
                                           r->ndelta);
                if (r->serial >= h->next_serial ||
                    (i && r->serial <= h->gen[i - 1].serial))
                        return ENC_IDF_WHY("generation %d: number %llu out "
                                           "of order",
                                           i, (unsigned long long)r->serial);
        }
        return ENC_OK;
}

/* Applies delta @p d (@p len bytes) to @p tab of @p size entries: each
 * bucket named gains its entries in the slots after its last. A save never
 * writes an empty delta. */
static bool enc_idf_apply(uint32_t *tab, size_t size, const uint8_t *d,
                          size_t len) {
        if (!d || !len)
                return false;
        const uint8_t *q = d, *end = d + len;
        size_t nb = size / ENC_IDF_BUCKET, k = 0;
        while (q < end) {
                uint64_t skip;
                uint8_t n;
                if (!enc_get_varint(&q, end, &skip) || skip >= nb - k ||
                    !enc_get_u8(&q, end, &n) || n == 0 || n > ENC_IDF_BUCKET ||
                    (size_t)(end - q) < (size_t)n * 4)
                        return false;
                k += skip;
                uint32_t *bk = tab + k * ENC_IDF_BUCKET;
                unsigned j = 0;
                while (j < ENC_IDF_BUCKET && bk[j])
                        j++;
                if (j + n > ENC_IDF_BUCKET)
                        return false;
                for (unsigned i = 0; i < n; i++, q += 4) {
                        bk[j + i] = enc_idf_get_le32(q);
                        if (!bk[j + i])
                                return false;
                }
                k++;
        }
        return true;
}

/* Reads generation @p r (base, deltas) into a fresh table (caller frees);
 * NULL with why filled if any part is missing or does not match. *dbytes:
 * the deltas' bytes. */
static uint32_t *enc_idf_read_gen(int32_t partition, const enc_idf_rec_t *r,
                                  const enc_idfilter_io_t *io, enc_buf_t *buf,
                                  size_t *dbytes, enc_err_t *err, char *why,
                                  size_t why_size) {
        uint8_t k[13];
        bool found = false;
        size_t bytes = r->size * sizeof(uint32_t), kl;
        *dbytes = 0;
        uint32_t *tab = aligned_alloc(64, bytes);
        if (!tab) {
                snprintf(why, why_size, "out of memory");
                *err = ENC_ERR_NOMEM;
                return NULL;
        }
        memset(tab, 0, bytes);
        enc_buf_free(buf);
        enc_buf_init(buf, bytes);
        const char *bad = NULL;
        long part = -1;
        if (r->has_base) {
                kl = enc_idf_key(k, r->serial, -1);
                *err = io->get(io->opaque, partition, k, kl, buf, &found);
                if (*err || !found || buf->len != bytes)
                        bad = *err     ? "cannot be read"
                              : !found ? "is missing"
                                       : "has the wrong size";
                else
                        for (size_t i = 0; i < r->size; i++)
                                tab[i] = enc_idf_get_le32(buf->data + i * 4);
        }
        for (unsigned d = 0; !bad && d < r->ndelta; d++) {
                part = d;
                kl = enc_idf_key(k, r->serial, d);
                *err = io->get(io->opaque, partition, k, kl, buf, &found);
                if (*err || !found)
                        bad = *err ? "cannot be read" : "is missing";
                else if (!enc_idf_apply(tab, r->size, buf->data, buf->len))
                        bad = "does not apply";
                *dbytes += buf->len;
        }
        size_t used = 0;
        for (size_t i = 0; !bad && i < r->size; i++)
                used += tab[i] != 0;
        if (!bad && used != r->count) {
                snprintf(why, why_size,
                         "generation %llu: %zu entries, header says %zu",
                         (unsigned long long)r->serial, used, r->count);
                *err = ENC_ERR_CORRUPT;
                free(tab);
                return NULL;
        }
        if (!bad) {
                enc_buf_reset(buf);
                for (size_t i = 0; i < r->size; i++) {
                        uint8_t le[4];
                        enc_idf_put_le32(le, tab[i]);
                        if (enc_buf_append(buf, le, 4))
                                break;
                }
                if (buf->len != bytes ||
                    XXH3_64bits(buf->data, bytes) != r->sum)
                        bad = "checksum does not match";
                part = -1;
        }
        if (bad) {
                if (part >= 0)
                        snprintf(why, why_size, "generation %llu: delta %ld %s",
                                 (unsigned long long)r->serial, part, bad);
                else
                        snprintf(why, why_size, "generation %llu: table %s",
                                 (unsigned long long)r->serial, bad);
                if (!*err)
                        *err = ENC_ERR_CORRUPT;
                free(tab);
                return NULL;
        }
        return tab;
}

enc_err_t enc_idfilter_load(enc_idfilter_t *f, int32_t partition,
                            const void *tag, size_t tlen, int64_t complete_max,
                            int64_t horizon, const enc_idfilter_io_t *io,
                            char *why, size_t why_size) {
        if (why && why_size)
                why[0] = '\0';
        if (!f || partition < 0)
                return ENC_ERR_INVALID_ARG;
        if (partition < f->nparts && f->parts[partition].active)
                return ENC_OK; /* still complete for what it covers */
        uint8_t k[1] = {ENC_IDFILTER_KEY};
        enc_buf_t buf;
        enc_buf_init(&buf, ENC_IDF_HDR_MAX);
        bool found = false;
        enc_idf_hdr_t h;
        enc_err_t err = io->get(io->opaque, partition, k, 1, &buf, &found);
        if (err)
                snprintf(why, why_size, "header cannot be read");
        else if (!found) {
                snprintf(why, why_size, "none saved");
                err = ENC_ERR_NOT_FOUND;
        } else
                err = enc_idf_parse_hdr(buf.data, buf.len, tag, tlen, &h, why,
                                        why_size);
        if (err) {
                enc_buf_free(&buf);
                return err;
        }
        /* What is kept: the newest generations that fit this partition's
         * share of the cap (counting it as active) and what the filter may
         * still hold in all, less those expired at the oldest end; F moves
         * past every one left out, as enc_idf_new_gen does. */
        int active = f->active + 1;
        size_t cap = f->max_bytes / (size_t)active;
        if (cap < ENC_IDF_MIN_SIZE * sizeof(uint32_t))
                cap = ENC_IDF_MIN_SIZE * sizeof(uint32_t);
        size_t room = f->max_bytes > f->bytes ? f->max_bytes - f->bytes : 0;
        if (room > cap)
                room = cap;
        int keep_from = h.ngen;
        size_t bytes = 0;
        while (keep_from > 0 &&
               bytes + h.gen[keep_from - 1].size * sizeof(uint32_t) <= room) {
                bytes += h.gen[keep_from - 1].size * sizeof(uint32_t);
                keep_from--;
        }
        while (keep_from < h.ngen &&
               (!h.gen[keep_from].count || h.gen[keep_from].tmax < horizon))
                keep_from++;
        uint32_t *tabs[ENC_IDF_GENS] = {0};
        size_t dbytes[ENC_IDF_GENS] = {0};
        for (int i = keep_from; i < h.ngen && !err; i++)
                tabs[i] = enc_idf_read_gen(partition, &h.gen[i], io, &buf,
                                           &dbytes[i], &err, why, why_size);
        enc_buf_free(&buf);
        if (!err)
                err = enc_idfilter_assign(f, partition, h.complete_from);
        if (err) {
                for (int i = keep_from; i < h.ngen; i++)
                        free(tabs[i]);
                return err;
        }
        enc_idf_part_t *p = &f->parts[partition];
        for (int i = 0; i < keep_from; i++)
                if (h.gen[i].count)
                        enc_idf_raise(p, h.gen[i].tmax);
        for (int i = keep_from; i < h.ngen; i++) {
                const enc_idf_rec_t *r = &h.gen[i];
                enc_idf_gen_t *g = &p->gen[p->ngen++];
                memset(g, 0, sizeof(*g));
                g->tab = tabs[i];
                g->size = r->size;
                g->count = r->count;
                g->tmin = r->tmin;
                g->tmax = r->tmax;
                g->serial = r->serial;
                g->has_base = r->has_base;
                g->ndelta = r->ndelta;
                g->delta_bytes = dbytes[i];
                g->sum = r->sum;
                g->sum_count = r->count;
                size_t nb = r->size / ENC_IDF_BUCKET;
                if (!(g->saved_fill = malloc(nb)))
                        g->unknown = true; /* rewritten at the next save */
                for (size_t b = 0; g->saved_fill && b < nb; b++)
                        g->saved_fill[b] = (uint8_t)enc_idf_fill(g, b);
                p->bytes += r->size * sizeof(uint32_t);
                f->bytes += r->size * sizeof(uint32_t);
        }
        /* Every event at or after complete_max is added again as it is
         * re-read or arrives (the caller's promise), so F need not be
         * later than that. */
        if (p->complete_from > complete_max)
                p->complete_from = complete_max;
        p->next_serial = h.next_serial;
        p->disk_lo = h.ngen ? h.gen[0].serial : h.next_serial;
        p->purge = false;
        return ENC_OK;
}
