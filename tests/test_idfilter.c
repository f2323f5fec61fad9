/*
 * test_idfilter.c -- the id filter in front of the duplicate check: exact
 * answers worked out by hand (probing, completeness point, expiry, the
 * memory cap), and a sweep against a plain reference showing it never says
 * "no" where an added key could match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_answers_no_only_for_keys_not_added),
                cmocka_unit_test(
                        test_queries_before_the_completeness_point_fall_back),
                cmocka_unit_test(
                        test_expired_generations_go_and_move_the_point),
                cmocka_unit_test(test_the_memory_cap_shortens_the_span_covered),
                cmocka_unit_test(test_never_no_where_an_added_key_could_match),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
