/*
 * test_idfilter.c -- the id filter in front of the duplicate check: exact
 * answers worked out by hand (probing, completeness point, expiry, the
 * memory cap), a sweep against a plain reference showing it never says
 * "no" where an added key could match, and saving and loading it: the
 * bytes written, checked by hand, and every kind of damage refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "idfilter.h"

#define HOUR 3600000

/* Generations start at 256 entries (at most 192 used: 3/4) in 16 buckets
 * of 16, so bucket = key & 15 and fingerprint = key >> 32 (0 stands as
 * 1). */
#define KA 0x1111111100000005ULL
#define KB 0x2222222200000005ULL /* A's bucket, another fingerprint */
#define KC 0x1111111100000009ULL /* A's fingerprint, an empty bucket */
#define KE 0x3333333300000005ULL /* A's bucket, its second entry */
#define KD 0x1111111100000006ULL /* A's fingerprint, bucket 6: empty */
#define KG 0x1111111100000015ULL /* never added; bucket 5, A's fp */
#define KH 0x4444444400000003ULL /* 17 keys of bucket 3: the 17th */

static void test_answers_no_only_for_keys_not_added(void **st) {
        (void)st;
        enc_idfilter_t *f = enc_idfilter_new(HOUR, 1 << 20);
        assert_non_null(f);
        /* not assigned: maybe */
        assert_true(enc_idfilter_maybe(f, 0, KA, 0));
        assert_int_equal(enc_idfilter_assign(f, 0, INT64_MIN), ENC_OK);
        assert_false(enc_idfilter_maybe(f, 0, KA, 0)); /* empty */
        enc_idfilter_add(f, 0, KA, 10000000, INT64_MIN);
        assert_true(enc_idfilter_maybe(f, 0, KA, 9000000));
        assert_true(enc_idfilter_maybe(f, 0, KA, 10000000));
        /* newest time held 10000000 < since */
        assert_false(enc_idfilter_maybe(f, 0, KA, 10000001));
        assert_false(enc_idfilter_maybe(f, 0, KB, 0));
        assert_false(enc_idfilter_maybe(f, 0, KC, 0));
        enc_idfilter_add(f, 0, KE, 10000000, INT64_MIN);
        assert_true(enc_idfilter_maybe(f, 0, KE, 0));
        assert_false(enc_idfilter_maybe(f, 0, KD, 0));
        /* a fingerprint collision in A's bucket: "maybe", the exact check
         * decides */
        assert_true(enc_idfilter_maybe(f, 0, KG, 0));
        /* a full bucket sends the 17th key of bucket 3 on to bucket 4, and
         * a search for it, or for an absent key of bucket 3, goes on
         * there; one of bucket 4 stops at 4 */
        for (uint64_t j = 0; j < 16; j++)
                enc_idfilter_add(f, 0, ((0x100 + j) << 32) | 3, 10000000,
                                 INT64_MIN);
        enc_idfilter_add(f, 0, KH, 10000000, INT64_MIN);
        assert_true(enc_idfilter_maybe(f, 0, KH, 0));
        assert_false(enc_idfilter_maybe(f, 0, 0x7777777700000003ULL, 0));
        assert_true(enc_idfilter_maybe(f, 0, 0x4444444400000004ULL, 0));
        assert_false(enc_idfilter_maybe(f, 0, 0x4444444400000006ULL, 0));
        /* another partition knows nothing of A */
        assert_int_equal(enc_idfilter_assign(f, 1, INT64_MIN), ENC_OK);
        assert_false(enc_idfilter_maybe(f, 1, KA, 0));
        enc_idfilter_stats_t s;
        enc_idfilter_stats(f, &s);
        assert_int_equal(s.entries, 19);
        assert_int_equal(s.bytes, 1024);
        assert_int_equal(s.generations, 1);
        enc_idfilter_destroy(f);
        enc_idfilter_destroy(NULL);
}

static void test_queries_before_the_completeness_point_fall_back(void **st) {
        (void)st;
        enc_idfilter_t *f = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_assign(f, 1, 5000000), ENC_OK);
        assert_int_equal(enc_idfilter_complete_from(f, 1), 5000000);
        assert_true(enc_idfilter_maybe(f, 1, KA, 4999999));
        assert_false(enc_idfilter_maybe(f, 1, KA, 5000000));
        /* an event older than the point is not needed: not added */
        enc_idfilter_add(f, 1, KB, 4000000, INT64_MIN);
        assert_true(enc_idfilter_maybe(f, 1, KB, 4000000));
        assert_false(enc_idfilter_maybe(f, 1, KB, 5000000));
        enc_idfilter_stats_t s;
        enc_idfilter_stats(f, &s);
        assert_int_equal(s.entries, 0);
        /* assigning an active partition keeps it as it is */
        enc_idfilter_add(f, 1, KA, 6000000, INT64_MIN);
        assert_int_equal(enc_idfilter_assign(f, 1, INT64_MIN), ENC_OK);
        assert_int_equal(enc_idfilter_complete_from(f, 1), 5000000);
        assert_true(enc_idfilter_maybe(f, 1, KA, 5000000));
        /* revoked: maybe; assigned again: empty, from the new point */
        assert_int_equal(enc_idfilter_bytes(f), 1024);
        enc_idfilter_revoke(f, 1);
        assert_int_equal(enc_idfilter_bytes(f), 0);
        assert_int_equal(enc_idfilter_complete_from(f, 1),
                         ENC_IDFILTER_UNKNOWN);
        assert_true(enc_idfilter_maybe(f, 1, KC, 5000000));
        assert_int_equal(enc_idfilter_assign(f, 1, INT64_MIN), ENC_OK);
        assert_false(enc_idfilter_maybe(f, 1, KA, 0));
        /* unknown history: always maybe, nothing kept */
        assert_int_equal(enc_idfilter_assign(f, 2, ENC_IDFILTER_UNKNOWN),
                         ENC_OK);
        enc_idfilter_add(f, 2, KA, 10000000, INT64_MIN);
        assert_true(enc_idfilter_maybe(f, 2, KC, 1000000000000));
        enc_idfilter_stats(f, &s);
        assert_int_equal(s.entries, 0);
        enc_idfilter_destroy(f);
}

static uint64_t k_i(int i) {
        return ((uint64_t)(i + 1) << 32) | (uint64_t)i;
}

/*
 * 192 keys at 1000..1191 fill the first generation (256 entries, 3/4).
 * The next event, at 10000000 with the horizon at 10000000 - 1 h =
 * 6400000, starts a second generation (512 entries: the first filled in
 * 191 ms, under a quarter of the window) and the first, newest time 1191,
 * has expired: F moves to 1192.
 */
static void test_expired_generations_go_and_move_the_point(void **st) {
        (void)st;
        enc_idfilter_t *f = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_assign(f, 0, INT64_MIN), ENC_OK);
        for (int i = 0; i < 192; i++)
                enc_idfilter_add(f, 0, k_i(i), 1000 + i, INT64_MIN);
        enc_idfilter_stats_t s;
        enc_idfilter_stats(f, &s);
        assert_int_equal(s.entries, 192);
        assert_int_equal(s.generations, 1);
        for (int i = 0; i < 192; i++)
                assert_true(enc_idfilter_maybe(f, 0, k_i(i), 1000 + i));
        const uint64_t z = 0xABCDEF0100000000ULL;
        enc_idfilter_add(f, 0, z, 10000000, 6400000);
        enc_idfilter_stats(f, &s);
        assert_int_equal(s.entries, 1);
        assert_int_equal(s.generations, 2);
        assert_int_equal(s.bytes, 2048);
        assert_int_equal(enc_idfilter_bytes(f), 2048);
        assert_int_equal(s.evictions, 0);
        assert_int_equal(enc_idfilter_complete_from(f, 0), 1192);
        assert_true(enc_idfilter_maybe(f, 0, k_i(0), 1000)); /* fallback */
        assert_false(enc_idfilter_maybe(f, 0, k_i(0), 1192));
        assert_true(enc_idfilter_maybe(f, 0, z, 6400000));
        enc_idfilter_destroy(f);
}

/*
 * A cap of 1024 bytes holds one generation of 256 entries. Keys at 0..191
 * fill it; the event at 192 needs a new one (512 wanted, 256 fit), so the
 * first goes before it expired: F moves past its newest time, to 192.
 */
static void test_the_memory_cap_shortens_the_span_covered(void **st) {
        (void)st;
        enc_idfilter_t *f = enc_idfilter_new(HOUR, 1024);
        assert_int_equal(enc_idfilter_assign(f, 0, INT64_MIN), ENC_OK);
        for (int i = 0; i < 192; i++)
                enc_idfilter_add(f, 0, k_i(i), i, INT64_MIN);
        const uint64_t z = 0xABCDEF0100000000ULL, q = 0x5555555500000001ULL;
        enc_idfilter_add(f, 0, z, 192, INT64_MIN);
        enc_idfilter_stats_t s;
        enc_idfilter_stats(f, &s);
        assert_int_equal(s.evictions, 1);
        assert_int_equal(s.entries, 1);
        assert_int_equal(s.bytes, 1024);
        assert_int_equal(enc_idfilter_complete_from(f, 0), 192);
        assert_true(enc_idfilter_maybe(f, 0, k_i(5), 5)); /* fallback */
        assert_false(enc_idfilter_maybe(f, 0, k_i(5), 192));
        assert_true(enc_idfilter_maybe(f, 0, z, 192));
        assert_false(enc_idfilter_maybe(f, 0, z, 193));
        /* out of order, behind the point: not kept, and not needed */
        enc_idfilter_add(f, 0, q, 100, INT64_MIN);
        assert_true(enc_idfilter_maybe(f, 0, q, 100));
        assert_false(enc_idfilter_maybe(f, 0, q, 192));
        enc_idfilter_destroy(f);
}

/*
 * A stream as the engine makes one -- times wandering +-5 min around a
 * rising line, 600 events a window per partition then 3000, late ones (before
 * the watermark, stream time - 10 min) dropped, ids repeating from a set of
 * 3000 -- over two partitions sharing a 16 KiB cap, so generations expire and
 * are evicted many times. Before each add, a query of a random key at a
 * since-time a window before a non-late time: whenever the reference (the
 * newest time each key was added) holds the key at or after since, the filter
 * must say "maybe".
 */
static void test_never_no_where_an_added_key_could_match(void **st) {
        (void)st;
        enum { KEYS = 3000, N = 60000 };
        const int64_t window = 600000, grace = 600000;
        enc_idfilter_t *f = enc_idfilter_new(window, 16384);
        int64_t *newest = malloc(2 * KEYS * sizeof(*newest));
        assert_non_null(newest);
        for (int i = 0; i < 2 * KEYS; i++)
                newest[i] = INT64_MIN;
        int64_t stream[2] = {INT64_MIN, INT64_MIN};
        assert_int_equal(enc_idfilter_assign(f, 0, INT64_MIN), ENC_OK);
        assert_int_equal(enc_idfilter_assign(f, 1, INT64_MIN), ENC_OK);
        uint64_t rng = 42, nos = 0, fallbacks = 0, matches = 0;
        for (int n = 0; n < N; n++) {
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                int part = (int)(rng >> 63);
                int key = (int)((rng >> 20) % KEYS);
                /* an event a second per partition, then five */
                int64_t line = n < N / 2 ? (int64_t)n * 1000
                                         : (int64_t)N / 2 * 1000 +
                                                   (int64_t)(n - N / 2) * 200;
                int64_t t = line + (int64_t)((rng >> 40) % 600000) - 300000;
                int64_t w = stream[part] == INT64_MIN ? INT64_MIN
                                                      : stream[part] - grace;
                if (w != INT64_MIN && t < w)
                        continue; /* late */
                if (stream[part] == INT64_MIN || t > stream[part])
                        stream[part] = t;
                uint64_t hk = XXH3_64bits(&key, sizeof(key));
                int64_t since = t - window;
                bool ref = newest[part * KEYS + key] >= since;
                bool maybe = enc_idfilter_maybe(f, part, hk, since);
                if (ref)
                        assert_true(maybe);
                if (!maybe)
                        nos++;
                if (since < enc_idfilter_complete_from(f, part))
                        fallbacks++;
                if (ref)
                        matches++;
                if (!ref) {
                        /* accepted: recorded, as the engine does */
                        int64_t h = w == INT64_MIN ? INT64_MIN : w - window;
                        enc_idfilter_add(f, part, hk, t, h);
                        if (t > newest[part * KEYS + key])
                                newest[part * KEYS + key] = t;
                }
        }
        enc_idfilter_stats_t s;
        enc_idfilter_stats(f, &s);
        /* the sweep went through what it is meant to test */
        assert_true(s.evictions > 0);
        assert_true(s.generations > 20);
        assert_true(matches > 100);
        assert_true(fallbacks > 0);
        assert_true(nos > (uint64_t)N / 4);
        free(newest);
        enc_idfilter_destroy(f);
}

/* ---- persistence ---------------------------------------------------- */

/* A store of keys in memory, applying each write at once. */
typedef struct t_kv_s {
        uint8_t key[16];
        size_t klen;
        uint8_t *val;
        size_t vlen;
} t_kv_t;

typedef struct t_mem_s {
        t_kv_t kv[96];
        int n;
        int puts, dels, ranges;
} t_mem_t;

static t_kv_t *t_mem_find(t_mem_t *m, const void *k, size_t klen) {
        for (int i = 0; i < m->n; i++)
                if (m->kv[i].klen == klen && !memcmp(m->kv[i].key, k, klen))
                        return &m->kv[i];
        return NULL;
}

static void t_mem_remove(t_mem_t *m, t_kv_t *kv) {
        free(kv->val);
        *kv = m->kv[--m->n];
}

static void t_mem_put(void *o, int32_t part, const void *k, size_t klen,
                      const void *v, size_t vlen) {
        t_mem_t *m = o;
        assert_int_equal(part, 0);
        assert_true(klen <= 16);
        t_kv_t *kv = t_mem_find(m, k, klen);
        if (!kv) {
                assert_true(m->n < 96);
                kv = &m->kv[m->n++];
                memcpy(kv->key, k, klen);
                kv->klen = klen;
                kv->val = NULL;
        }
        free(kv->val);
        kv->val = malloc(vlen ? vlen : 1);
        memcpy(kv->val, v, vlen);
        kv->vlen = vlen;
        m->puts++;
}

static void t_mem_del(void *o, int32_t part, const void *k, size_t klen) {
        t_mem_t *m = o;
        (void)part;
        t_kv_t *kv = t_mem_find(m, k, klen);
        if (kv)
                t_mem_remove(m, kv);
        m->dels++;
}

static int t_keycmp(const void *a, size_t al, const void *b, size_t bl) {
        int c = memcmp(a, b, al < bl ? al : bl);
        return c ? c : (al > bl) - (al < bl);
}

static void t_mem_del_range(void *o, int32_t part, const void *lo, size_t lolen,
                            const void *hi, size_t hilen) {
        t_mem_t *m = o;
        (void)part;
        for (int i = 0; i < m->n;) {
                t_kv_t *kv = &m->kv[i];
                if (t_keycmp(kv->key, kv->klen, lo, lolen) >= 0 &&
                    t_keycmp(kv->key, kv->klen, hi, hilen) < 0)
                        t_mem_remove(m, kv);
                else
                        i++;
        }
        m->ranges++;
}

static enc_err_t t_mem_get(void *o, int32_t part, const void *k, size_t klen,
                           enc_buf_t *out, bool *found) {
        t_mem_t *m = o;
        (void)part;
        enc_buf_reset(out);
        t_kv_t *kv = t_mem_find(m, k, klen);
        *found = kv != NULL;
        return kv ? enc_buf_append(out, kv->val, kv->vlen) : ENC_OK;
}

static void t_mem_free(t_mem_t *m) {
        while (m->n)
                t_mem_remove(m, &m->kv[0]);
}

static void t_mem_copy(t_mem_t *dst, const t_mem_t *src) {
        memset(dst, 0, sizeof(*dst));
        for (int i = 0; i < src->n; i++) {
                dst->kv[i] = src->kv[i];
                dst->kv[i].val = malloc(src->kv[i].vlen);
                memcpy(dst->kv[i].val, src->kv[i].val, src->kv[i].vlen);
        }
        dst->n = src->n;
}

static enc_idfilter_io_t t_io(t_mem_t *m) {
        enc_idfilter_io_t io = {t_mem_put, t_mem_del, t_mem_del_range,
                                t_mem_get, m};
        return io;
}

static const uint8_t T_HDR_KEY[1] = {'I'};

static void t_table_key(uint8_t k[9], uint64_t serial) {
        k[0] = 'I';
        for (int i = 0; i < 8; i++)
                k[1 + i] = (uint8_t)(serial >> (56 - 8 * i));
}

static uint8_t *t_be64(uint8_t *q, uint64_t v) {
        for (int i = 0; i < 8; i++)
                q[i] = (uint8_t)(v >> (56 - 8 * i));
        return q + 8;
}

/* A generation as the header lists it. */
typedef struct t_gen_s {
        uint64_t serial;
        int lg;
        bool base;
        uint32_t count;
        int64_t tmin, tmax;
        const uint8_t *table; /* the whole table, little-endian */
        int ndelta;
} t_gen_t;

/* The header, byte by byte as idfilter.c documents it (format 2). */
static size_t t_header(uint8_t *b, const char *tag, int64_t f, uint64_t next,
                       int ngen, const t_gen_t *g) {
        uint8_t *q = b;
        *q++ = 2;
        *q++ = (uint8_t)strlen(tag);
        memcpy(q, tag, strlen(tag));
        q += strlen(tag);
        q = t_be64(q, (uint64_t)f);
        q = t_be64(q, next);
        *q++ = (uint8_t)ngen;
        for (int i = 0; i < ngen; i++) {
                q = t_be64(q, g[i].serial);
                *q++ = (uint8_t)g[i].lg;
                *q++ = g[i].base;
                q[0] = (uint8_t)(g[i].count >> 24);
                q[1] = (uint8_t)(g[i].count >> 16);
                q[2] = (uint8_t)(g[i].count >> 8);
                q[3] = (uint8_t)g[i].count;
                q += 4;
                q = t_be64(q, (uint64_t)g[i].tmin);
                q = t_be64(q, (uint64_t)g[i].tmax);
                q = t_be64(q, XXH3_64bits(g[i].table, (size_t)4 << g[i].lg));
                *q++ = (uint8_t)g[i].ndelta;
        }
        q = t_be64(q, XXH3_64bits(b, (size_t)(q - b)));
        return (size_t)(q - b);
}

static void t_assert_header(t_mem_t *m, const uint8_t *want, size_t len) {
        t_kv_t *kv = t_mem_find(m, T_HDR_KEY, 1);
        assert_non_null(kv);
        assert_int_equal(kv->vlen, len);
        assert_memory_equal(kv->val, want, len);
}

static void t_le32(uint8_t *q, uint32_t v) {
        q[0] = (uint8_t)v;
        q[1] = (uint8_t)(v >> 8);
        q[2] = (uint8_t)(v >> 16);
        q[3] = (uint8_t)(v >> 24);
}

static void t_delta_key(uint8_t k[13], uint64_t serial, uint32_t n) {
        t_table_key(k, serial);
        k[9] = (uint8_t)(n >> 24);
        k[10] = (uint8_t)(n >> 16);
        k[11] = (uint8_t)(n >> 8);
        k[12] = (uint8_t)n;
}

/*
 * Keys k_i(i) = (i + 1) << 32 | i at 1000 + i, i < 192, fill generation 0
 * (256 entries, 16 buckets): key i goes to bucket i & 15, whose slots fill
 * in order, so slot j of bucket b holds fingerprint b + 16 j + 1 (12 a
 * bucket). z at 2000 starts generation 1 (512 entries, 32 buckets: the
 * first filled in 191 ms): bucket z & 31 = 0, slot 0, fingerprint
 * 0xABCDEF01. Saved with tag "T1" (nothing known stored: every key of the
 * filter deleted, both tables written whole):
 *   range delete "I" .. "J"                                  2 bytes
 *   "I"+u64 0 -> 1024 bytes, "I"+u64 1 -> 2048 bytes          9+1024 + 9+2048
 *   "I" -> header 2 + 2 + 17 + 2 x 39 + 8 = 107 bytes         1+107
 * = 3200 bytes. Then q at 2001 (bucket 1 of generation 1) and a save with
 * "T2": a delta of generation 1, "I"+u64 1+u32 0 -> [skip 1][1 entry]
 * [fingerprint 0x55555555 LE], 13 + 6, and the header: 127 bytes.
 */
static void test_save_and_load_round_trip_exact_bytes(void **st) {
        (void)st;
        const uint64_t z = 0xABCDEF0100000000ULL, q = 0x5555555500000001ULL,
                       r = 0x6666666600000002ULL,
                       absent = 0x7777777700000007ULL;
        static uint8_t g0[1024], g1[2048];
        for (int b = 0; b < 16; b++)
                for (int j = 0; j < 12; j++)
                        t_le32(g0 + (b * 16 + j) * 4,
                               (uint32_t)(b + 16 * j + 1));
        t_le32(g1, 0xABCDEF01);
        t_mem_t m = {0};
        enc_idfilter_io_t io = t_io(&m);
        enc_idfilter_t *f = enc_idfilter_new(HOUR, 1 << 20);
        /* nothing active: nothing saved */
        assert_int_equal(enc_idfilter_save(f, 0, "T0", 2, &io), 0);
        assert_int_equal(m.n, 0);
        assert_int_equal(enc_idfilter_assign(f, 0, INT64_MIN), ENC_OK);
        for (int i = 0; i < 192; i++)
                enc_idfilter_add(f, 0, k_i(i), 1000 + i, INT64_MIN);
        enc_idfilter_add(f, 0, z, 2000, INT64_MIN);
        assert_int_equal(enc_idfilter_save(f, 0, "T1", 2, &io), 3200);
        enc_idfilter_saved(f, true);
        assert_int_equal(m.ranges, 1);
        assert_int_equal(m.puts, 3);
        assert_int_equal(m.n, 3);
        uint8_t k[13];
        t_table_key(k, 0);
        t_kv_t *kv = t_mem_find(&m, k, 9);
        assert_non_null(kv);
        assert_int_equal(kv->vlen, 1024);
        assert_memory_equal(kv->val, g0, 1024);
        t_table_key(k, 1);
        kv = t_mem_find(&m, k, 9);
        assert_non_null(kv);
        assert_int_equal(kv->vlen, 2048);
        assert_memory_equal(kv->val, g1, 2048);
        uint8_t want[512];
        t_gen_t gens[2] = {{0, 8, true, 192, 1000, 1191, g0, 0},
                           {1, 9, true, 1, 2000, 2000, g1, 0}};
        size_t hl = t_header(want, "T1", INT64_MIN, 2, 2, gens);
        assert_int_equal(hl, 107);
        t_assert_header(&m, want, hl);

        /* loaded: the same answers, sizes and point */
        enc_idfilter_t *g = enc_idfilter_new(HOUR, 1 << 20);
        char why[160];
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        enc_idfilter_stats_t s;
        enc_idfilter_stats(g, &s);
        assert_int_equal(s.entries, 193);
        assert_int_equal(s.bytes, 3072);
        assert_int_equal(enc_idfilter_bytes(g), 3072);
        assert_int_equal(enc_idfilter_complete_from(g, 0), INT64_MIN);
        for (int i = 0; i < 192; i++) {
                assert_true(enc_idfilter_maybe(g, 0, k_i(i), 1000 + i));
                assert_false(enc_idfilter_maybe(g, 0, k_i(i), 2001));
        }
        assert_true(enc_idfilter_maybe(g, 0, z, 2000));
        assert_false(enc_idfilter_maybe(g, 0, absent, 0));
        assert_false(enc_idfilter_maybe(g, 0, z, 2001));
        enc_idfilter_add(g, 0, q, 2001, INT64_MIN);
        assert_true(enc_idfilter_maybe(g, 0, q, 2001));
        /* loading an active partition changes nothing */
        assert_int_equal(enc_idfilter_load(g, 0, "XX", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        enc_idfilter_destroy(g);

        /* the horizon drops generation 0 (F past 1191); F lowered to what
         * the caller re-adds */
        g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, 1500, &io,
                                           why, sizeof(why)),
                         ENC_OK);
        assert_int_equal(enc_idfilter_complete_from(g, 0), 1192);
        enc_idfilter_stats(g, &s);
        assert_int_equal(s.entries, 1);
        assert_int_equal(s.bytes, 2048);
        enc_idfilter_destroy(g);
        g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, 1000, 1500, &io, why,
                                           sizeof(why)),
                         ENC_OK);
        assert_int_equal(enc_idfilter_complete_from(g, 0), 1000);
        enc_idfilter_destroy(g);
        /* the cap: 2048 bytes keep generation 1 only (F past 1191), 1024
         * bytes keep nothing (F past 2000) */
        g = enc_idfilter_new(HOUR, 2048);
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        assert_int_equal(enc_idfilter_complete_from(g, 0), 1192);
        assert_int_equal(enc_idfilter_bytes(g), 2048);
        assert_true(enc_idfilter_maybe(g, 0, z, 1192));
        assert_false(enc_idfilter_maybe(g, 0, k_i(500), 1192));
        enc_idfilter_destroy(g);
        g = enc_idfilter_new(HOUR, 1024);
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        assert_int_equal(enc_idfilter_complete_from(g, 0), 2001);
        assert_int_equal(enc_idfilter_bytes(g), 0);
        assert_true(enc_idfilter_maybe(g, 0, absent, 2000));
        assert_false(enc_idfilter_maybe(g, 0, z, 2001));
        enc_idfilter_destroy(g);
        /* another tag: not this position's filter */
        g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T9", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_ERR_NOT_FOUND);
        assert_string_equal(why,
                            "saved at another position than the stored one");
        assert_int_equal(enc_idfilter_complete_from(g, 0),
                         ENC_IDFILTER_UNKNOWN);
        enc_idfilter_destroy(g);

        /* only what changed: a delta of generation 1 */
        m.puts = m.dels = m.ranges = 0;
        enc_idfilter_add(f, 0, q, 2001, INT64_MIN);
        t_le32(g1 + 16 * 4, 0x55555555);
        assert_int_equal(enc_idfilter_save(f, 0, "T2", 2, &io), 127);
        enc_idfilter_saved(f, true);
        assert_int_equal(m.puts, 2);
        assert_int_equal(m.dels + m.ranges, 0);
        t_delta_key(k, 1, 0);
        kv = t_mem_find(&m, k, 13);
        assert_non_null(kv);
        const uint8_t d0[] = {1, 1, 0x55, 0x55, 0x55, 0x55};
        assert_int_equal(kv->vlen, sizeof(d0));
        assert_memory_equal(kv->val, d0, sizeof(d0));
        gens[1] = (t_gen_t){1, 9, true, 2, 2000, 2001, g1, 1};
        hl = t_header(want, "T2", INT64_MIN, 2, 2, gens);
        t_assert_header(&m, want, hl);
        /* base and delta load back to the same table */
        g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T2", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        assert_true(enc_idfilter_maybe(g, 0, q, 2001));
        assert_false(enc_idfilter_maybe(g, 0, q, 2002));
        enc_idfilter_stats(g, &s);
        assert_int_equal(s.entries, 194);
        enc_idfilter_destroy(g);

        /* Nothing changed: the header alone (108). A dropped batch: the
         * next save writes both tables whole and deletes each one's deltas
         * ("I"+u64 s+u32 0 .. "I"+u64 s+1, 13 + 9): 22 + 1033 + 22 + 2057
         * + 108 = 3242. */
        m.puts = 0;
        assert_int_equal(enc_idfilter_save(f, 0, "T2", 2, &io), 108);
        enc_idfilter_saved(f, false);
        assert_int_equal(enc_idfilter_save(f, 0, "T2", 2, &io), 3242);
        enc_idfilter_saved(f, true);
        assert_int_equal(m.puts, 4);
        assert_int_equal(m.ranges, 2);
        assert_null(t_mem_find(&m, k, 13)); /* the delta went */
        assert_int_equal(m.n, 3);

        /* An event at 10000000, the horizon at 6400000: generation 0
         * expires (F 1192) and r joins generation 1 (bucket 2). Saved with
         * "T3": generation 0's keys deleted ("I"+u64 0 .. "I"+u64 1, 18),
         * a delta [skip 2][1][0x66666666] (13 + 6) and a header of one
         * generation (1 + 2 + 2 + 17 + 39 + 8): 106 bytes. */
        m.puts = m.dels = m.ranges = 0;
        enc_idfilter_add(f, 0, r, 10000000, 6400000);
        assert_int_equal(enc_idfilter_complete_from(f, 0), 1192);
        t_le32(g1 + 32 * 4, 0x66666666);
        assert_int_equal(enc_idfilter_save(f, 0, "T3", 2, &io), 106);
        enc_idfilter_saved(f, true);
        assert_int_equal(m.puts, 2);
        assert_int_equal(m.ranges, 1);
        assert_int_equal(m.dels, 0);
        assert_int_equal(m.n, 3);
        t_table_key(k, 0);
        assert_null(t_mem_find(&m, k, 9));
        t_delta_key(k, 1, 0);
        kv = t_mem_find(&m, k, 13);
        assert_non_null(kv);
        const uint8_t d1[] = {2, 1, 0x66, 0x66, 0x66, 0x66};
        assert_int_equal(kv->vlen, sizeof(d1));
        assert_memory_equal(kv->val, d1, sizeof(d1));
        t_gen_t g3 = {1, 9, true, 3, 2000, 10000000, g1, 1};
        hl = t_header(want, "T3", 1192, 2, 1, &g3);
        assert_int_equal(hl, 68);
        t_assert_header(&m, want, hl);
        g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T3", 2, INT64_MAX, 6400000,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        assert_int_equal(enc_idfilter_complete_from(g, 0), 1192);
        assert_true(enc_idfilter_maybe(g, 0, r, 9000000));
        assert_true(enc_idfilter_maybe(g, 0, q, 1192));
        assert_false(enc_idfilter_maybe(g, 0, k_i(0), 1192));
        /* its first save deletes nothing and writes only the header */
        m.puts = m.dels = m.ranges = 0;
        assert_int_equal(enc_idfilter_save(g, 0, "T4", 2, &io), 69);
        assert_int_equal(m.dels + m.ranges, 0);
        enc_idfilter_destroy(g);
        enc_idfilter_destroy(f);
        t_mem_free(&m);
}

/*
 * A generation started after the last save is written as deltas over an
 * empty table, never whole, until its deltas would be as large as the
 * table: 192 keys at 1000.. (generation 0, whole: nothing was known
 * stored), saved; then 20 keys at 5000.. in generation 1 (512 entries),
 * each save a delta of those since the last. Generation 1 is never written
 * whole while its deltas stay under 2048 bytes (20 keys in 20 buckets are
 * 20 x 6 bytes) and number fewer than 64.
 */
static void test_new_generations_are_written_as_deltas(void **st) {
        (void)st;
        t_mem_t m = {0};
        enc_idfilter_io_t io = t_io(&m);
        enc_idfilter_t *f = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_assign(f, 0, INT64_MIN), ENC_OK);
        for (int i = 0; i < 192; i++)
                enc_idfilter_add(f, 0, k_i(i), 1000 + i, INT64_MIN);
        (void)enc_idfilter_save(f, 0, "T1", 2, &io);
        enc_idfilter_saved(f, true);
        uint8_t k[13];
        size_t total = 0;
        for (int round = 0; round < 4; round++) {
                for (int i = 0; i < 5; i++) {
                        int n = round * 5 + i;
                        /* bucket n of 32, fingerprint 0x9000 + n */
                        enc_idfilter_add(f, 0,
                                         (uint64_t)(0x9000 + n) << 32 |
                                                 (uint64_t)n,
                                         5000 + n, INT64_MIN);
                }
                m.puts = m.ranges = m.dels = 0;
                /* delta: 5 x [skip][1][fp]: the first skips to its
                 * bucket from 0 (round 0) or from after the last one
                 * written before it in this delta: each skip is 0 but the
                 * first, 5 x round */
                size_t staged = enc_idfilter_save(f, 0, "T1", 2, &io);
                enc_idfilter_saved(f, true);
                assert_int_equal(m.puts, 2);
                assert_int_equal(m.ranges + m.dels, 0);
                /* 13 + 30 delta, header 2 + 2 + 17 + 2 x 39 + 8 + 1 */
                assert_int_equal(staged, 13 + 30 + 108);
                t_delta_key(k, 1, (uint32_t)round);
                t_kv_t *kv = t_mem_find(&m, k, 13);
                assert_non_null(kv);
                assert_int_equal(kv->vlen, 30);
                assert_int_equal(kv->val[0], round * 5);
                assert_int_equal(kv->val[6], 0);
                total += kv->vlen;
        }
        t_table_key(k, 1);
        assert_null(t_mem_find(&m, k, 9)); /* never whole */
        assert_int_equal(total, 120);
        char why[160];
        enc_idfilter_t *g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        for (int n = 0; n < 20; n++)
                assert_true(enc_idfilter_maybe(
                        g, 0, (uint64_t)(0x9000 + n) << 32 | (uint64_t)n,
                        5000 + n));
        enc_idfilter_stats_t s;
        enc_idfilter_stats(g, &s);
        assert_int_equal(s.entries, 212);
        enc_idfilter_destroy(g);
        /* 60 more saves of a key each: deltas 4..63; the 65th save finds
         * 64 deltas and writes the table whole instead, deleting them
         * (22 + 2057 + 108) */
        for (int n = 20; n <= 80; n++) {
                enc_idfilter_add(f, 0,
                                 (uint64_t)(0x9000 + n) << 32 | (uint64_t)n,
                                 5000 + n, INT64_MIN);
                m.puts = m.ranges = m.dels = 0;
                size_t staged = enc_idfilter_save(f, 0, "T1", 2, &io);
                enc_idfilter_saved(f, true);
                if (n < 80) {
                        assert_int_equal(staged, 13 + 6 + 108);
                        continue;
                }
                assert_int_equal(staged, 22 + 2057 + 108);
                assert_int_equal(m.ranges, 1);
        }
        t_table_key(k, 1);
        assert_non_null(t_mem_find(&m, k, 9));
        assert_int_equal(m.n, 3); /* header, two tables */
        g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_OK);
        for (int n = 0; n <= 80; n++)
                assert_true(enc_idfilter_maybe(
                        g, 0, (uint64_t)(0x9000 + n) << 32 | (uint64_t)n,
                        5000 + n));
        enc_idfilter_destroy(g);
        /* one more key: a delta over the new base */
        enc_idfilter_add(f, 0, (uint64_t)0x9100 << 32 | 3, 6000, INT64_MIN);
        m.puts = 0;
        assert_int_equal(enc_idfilter_save(f, 0, "T1", 2, &io), 13 + 6 + 108);
        enc_idfilter_saved(f, true);
        /* one delta missing: the generation does not load */
        t_delta_key(k, 1, 0);
        t_mem_del(&m, 0, k, 13);
        g = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, INT64_MIN,
                                           &io, why, sizeof(why)),
                         ENC_ERR_CORRUPT);
        assert_string_equal(why, "generation 1: delta 0 is missing");
        enc_idfilter_destroy(g);
        enc_idfilter_destroy(f);
        t_mem_free(&m);
}

/* Loads @p m into a fresh filter with tag "T1": the result, with the
 * partition left inactive on any error. */
static enc_err_t t_load_t1(t_mem_t *m, char *why, size_t why_size) {
        enc_idfilter_io_t io = t_io(m);
        enc_idfilter_t *g = enc_idfilter_new(HOUR, 1 << 20);
        enc_err_t err = enc_idfilter_load(g, 0, "T1", 2, INT64_MAX, INT64_MIN,
                                          &io, why, why_size);
        if (err)
                assert_int_equal(enc_idfilter_complete_from(g, 0),
                                 ENC_IDFILTER_UNKNOWN);
        enc_idfilter_destroy(g);
        return err;
}

/* Rewrites the header's checksum after an edit, so the field checks are
 * what refuse it. */
static void t_reseal(t_kv_t *hdr) {
        t_be64(hdr->val + hdr->vlen - 8, XXH3_64bits(hdr->val, hdr->vlen - 8));
}

/*
 * Damage of every kind is refused with a reason, the partition left to
 * start as without a saved filter: each truncation of the header, a
 * flipped byte anywhere in it, a table changed, short or missing, and
 * fields out of range under a valid checksum.
 */
static void test_load_refuses_damaged_filters(void **st) {
        (void)st;
        t_mem_t m = {0};
        enc_idfilter_io_t io = t_io(&m);
        enc_idfilter_t *f = enc_idfilter_new(HOUR, 1 << 20);
        assert_int_equal(enc_idfilter_assign(f, 0, INT64_MIN), ENC_OK);
        for (int i = 0; i < 193; i++)
                enc_idfilter_add(f, 0, k_i(i), 1000 + i, INT64_MIN);
        assert_int_equal(enc_idfilter_save(f, 0, "T1", 2, &io), 3200);
        enc_idfilter_destroy(f);
        char why[160];
        assert_int_equal(t_load_t1(&m, why, sizeof(why)), ENC_OK);
        t_mem_t d;
        /* none saved */
        t_mem_t empty = {0};
        assert_int_equal(t_load_t1(&empty, why, sizeof(why)),
                         ENC_ERR_NOT_FOUND);
        assert_string_equal(why, "none saved");
        t_kv_t *h = t_mem_find(&m, T_HDR_KEY, 1);
        size_t hl = h->vlen;
        for (size_t len = 0; len < hl; len++) {
                t_mem_copy(&d, &m);
                t_mem_find(&d, T_HDR_KEY, 1)->vlen = len;
                assert_int_equal(t_load_t1(&d, why, sizeof(why)),
                                 ENC_ERR_CORRUPT);
                t_mem_free(&d);
        }
        for (size_t i = 0; i < hl; i++) {
                t_mem_copy(&d, &m);
                t_mem_find(&d, T_HDR_KEY, 1)->val[i] ^= 0x10;
                /* the checksum covers the tag too */
                assert_int_equal(t_load_t1(&d, why, sizeof(why)),
                                 ENC_ERR_CORRUPT);
                t_mem_free(&d);
        }
        uint8_t k[9];
        t_table_key(k, 0);
        t_mem_copy(&d, &m);
        t_mem_find(&d, k, 9)->val[100] ^= 0x01;
        assert_int_equal(t_load_t1(&d, why, sizeof(why)), ENC_ERR_CORRUPT);
        assert_string_equal(why, "generation 0: table checksum does not match");
        t_mem_find(&d, k, 9)->vlen = 1020;
        assert_int_equal(t_load_t1(&d, why, sizeof(why)), ENC_ERR_CORRUPT);
        assert_string_equal(why, "generation 0: table has the wrong size");
        t_mem_del(&d, 0, k, 9);
        assert_int_equal(t_load_t1(&d, why, sizeof(why)), ENC_ERR_CORRUPT);
        assert_string_equal(why, "generation 0: table is missing");
        t_mem_free(&d);
        /* header fields (offsets: 2 + 2 tag + 17, then 39 a generation:
         * number 0..7, log2 size 8, base 9, count 10..13, tmin 14, tmax
         * 22, sum 30, deltas 38) */
        const size_t g0 = 21, g1 = 21 + 39;
        struct {
                size_t at;
                uint8_t v;
                const char *why;
        } bad[] = {
                {0, 3, "header format 3 is unknown"},
                {20, 9, "header lists 9 generations"},
                {g0 + 8, 7, "generation 0: size 2^7"},
                {g0 + 8, 29, "generation 0: size 2^29"},
                {g0 + 9, 2, "generation 0: base flag 2"},
                {g0 + 13, 0xC1, "generation 0: 193 entries in 256"},
                {g0 + 22, 0x80, "generation 0: times out of order"},
                {g0 + 38, 65, "generation 0: 65 deltas"},
                {g0 + 38, 1, "generation 0: delta 0 is missing"},
                {g0 + 9, 0, "generation 0: 0 entries, header says 192"},
                {g1 + 7, 0, "generation 1: number 0 out of order"},
                {g1 + 7, 2, "generation 1: number 2 out of order"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                t_mem_copy(&d, &m);
                t_kv_t *dh = t_mem_find(&d, T_HDR_KEY, 1);
                dh->val[bad[i].at] = bad[i].v;
                t_reseal(dh);
                assert_int_equal(t_load_t1(&d, why, sizeof(why)),
                                 ENC_ERR_CORRUPT);
                if (i != 1) /* ngen 9 also makes the length wrong */
                        assert_string_equal(why, bad[i].why);
                t_mem_free(&d);
        }
        /* a table whose entries disagree with its count, checksums
         * resealed */
        t_mem_copy(&d, &m);
        t_kv_t *tb = t_mem_find(&d, k, 9);
        size_t at = 0;
        while (!tb->val[at])
                at += 4;
        memset(tb->val + at, 0, 4); /* one entry less */
        t_kv_t *dh = t_mem_find(&d, T_HDR_KEY, 1);
        t_be64(dh->val + g0 + 30, XXH3_64bits(tb->val, tb->vlen));
        t_reseal(dh);
        assert_int_equal(t_load_t1(&d, why, sizeof(why)), ENC_ERR_CORRUPT);
        assert_string_equal(why, "generation 0: 191 entries, header says 192");
        t_mem_free(&d);
        t_mem_free(&m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_answers_no_only_for_keys_not_added),
                cmocka_unit_test(
                        test_queries_before_the_completeness_point_fall_back),
                cmocka_unit_test(
                        test_expired_generations_go_and_move_the_point),
                cmocka_unit_test(test_the_memory_cap_shortens_the_span_covered),
                cmocka_unit_test(test_never_no_where_an_added_key_could_match),
                cmocka_unit_test(test_save_and_load_round_trip_exact_bytes),
                cmocka_unit_test(test_new_generations_are_written_as_deltas),
                cmocka_unit_test(test_load_refuses_damaged_filters),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
