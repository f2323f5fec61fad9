/*
 * test_reuse.c -- LRU reuse distances (ops/bench/reuse.c), the measure
 * behind `encore-bench reuse`: short sequences worked out by hand, a
 * warm-up whose accesses count but are not reported, hit ratios checked
 * against a hand-run LRU cache, quantiles by nearest rank, the writes of
 * a commit every w accesses, bad input refused, and a random sweep against an
 * independent O(n * keys) LRU stack kept as a plain array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reuse.h"

#define INF  ENC_REUSE_INF
#define NONE ENC_REUSE_NONE
enum { A, B, C };

/*
 * A B A C B A, every access reported:
 *   0 A  first                               inf
 *   1 B  first                               inf
 *   2 A  since 0: {B}                        1
 *   3 C  first                               inf
 *   4 B  since 1: {A (2), C (3)}             2
 *   5 A  since 2: {C (3), B (4)}             2
 * An LRU cache of 2, by hand: A miss [A]; B miss [B A]; A hit [A B];
 * C miss, B out [C A]; B miss, A out [B C]; A miss [A B]: 1 hit of 6
 * (only distance 1 < 2). Of 3: A miss, B miss, A hit [A B], C miss
 * [C A B], B hit [B C A], A hit [A B C]: 3 of 6 (distances 1, 2, 2 < 3),
 * which is also every cache larger (three first accesses). Of 1: no hit.
 */
static void test_distances_of_a_hand_worked_sequence(void **st) {
        (void)st;
        const uint32_t keys[] = {A, B, A, C, B, A};
        uint32_t d[6];
        size_t prev[6];
        assert_int_equal(enc_reuse_distances(keys, 6, 0, 3, d, prev), ENC_OK);
        const uint32_t want[] = {INF, INF, 1, INF, 2, 2};
        const size_t wprev[] = {NONE, NONE, 0, NONE, 1, 2};
        for (int i = 0; i < 6; i++) {
                assert_int_equal(d[i], want[i]);
                assert_int_equal(prev[i], wprev[i]);
        }
        assert_true(enc_reuse_lru_hit_ratio(d, 6, 1) == 0.0);
        assert_true(enc_reuse_lru_hit_ratio(d, 6, 2) == 1.0 / 6);
        assert_true(enc_reuse_lru_hit_ratio(d, 6, 3) == 3.0 / 6);
        assert_true(enc_reuse_lru_hit_ratio(d, 6, 1000000) == 3.0 / 6);
}

/* The same sequence with A B as the warm-up: reported from access 2 on,
 * but A and B count as accessed, so A at 2 is a reuse (1), not a first.
 * LRU of 2 over the 4 reported: the cache holds [A B] at the start; A hit,
 * C miss [C A], B miss [B C], A miss: 1 of 4. */
static void test_warmup_accesses_count_but_are_not_reported(void **st) {
        (void)st;
        const uint32_t keys[] = {A, B, A, C, B, A};
        uint32_t d[4];
        size_t prev[4];
        assert_int_equal(enc_reuse_distances(keys, 6, 2, 3, d, prev), ENC_OK);
        const uint32_t want[] = {1, INF, 2, 2};
        const size_t wprev[] = {0, NONE, 1, 2};
        for (int i = 0; i < 4; i++) {
                assert_int_equal(d[i], want[i]);
                assert_int_equal(prev[i], wprev[i]);
        }
        assert_true(enc_reuse_lru_hit_ratio(d, 4, 2) == 1.0 / 4);
        /* all warm-up: nothing reported, prev may be NULL */
        assert_int_equal(enc_reuse_distances(keys, 6, 6, 3, d, NULL), ENC_OK);
}

/* Distinct keys, not accesses: A B B B C A gives A a distance of 2 ({B,
 * C}), not 4; B right after B is 0, which a cache of one key serves. */
static void test_distance_counts_distinct_keys_once(void **st) {
        (void)st;
        const uint32_t keys[] = {A, B, B, B, C, A};
        uint32_t d[6];
        assert_int_equal(enc_reuse_distances(keys, 6, 0, 3, d, NULL), ENC_OK);
        const uint32_t want[] = {INF, INF, 0, 0, INF, 2};
        for (int i = 0; i < 6; i++)
                assert_int_equal(d[i], want[i]);
        assert_true(enc_reuse_lru_hit_ratio(d, 6, 1) == 2.0 / 6);
        assert_true(enc_reuse_lru_hit_ratio(d, 6, 3) == 3.0 / 6);
}

/* Nearest rank: {1, 2, 2, inf, inf, inf}: the median is the 3rd value
 * (ceil(0.5 * 6)), the 90th percentile the 6th (ceil(5.4)), 0.1 the 1st
 * (ceil(0.6)). {1, 3, 5}: median the 2nd (ceil(1.5)), p90 the 3rd. */
static void test_quantiles_by_nearest_rank(void **st) {
        (void)st;
        const uint32_t v[] = {1, 2, 2, INF, INF, INF};
        assert_int_equal(enc_reuse_quantile_u32(v, 6, 0.5), 2);
        assert_int_equal(enc_reuse_quantile_u32(v, 6, 0.9), INF);
        assert_int_equal(enc_reuse_quantile_u32(v, 6, 0.1), 1);
        assert_int_equal(enc_reuse_quantile_u32(v, 6, 1.0), INF);
        assert_int_equal(enc_reuse_quantile_u32(v, 0, 0.5), 0);
        const int64_t g[] = {1, 3, 5};
        assert_int_equal(enc_reuse_quantile_i64(g, 3, 0.5), 3);
        assert_int_equal(enc_reuse_quantile_i64(g, 3, 0.9), 5);
        assert_true(enc_reuse_lru_hit_ratio(v, 0, 5) == 0.0);
}

/*
 * Commits every w accesses of A B A C B A (prev 0 1 2 3 4 5 = none none 0
 * none 1 2): an access writes its key at its stretch's commit iff its
 * previous access is before the stretch.
 *   w 2: [A B] 2 (firsts), [A C] 2 (A's previous, 0, is before 2),
 *        [B A] 2 (1 and 2 are before 4): 6, at most 2;
 *   w 3: [A B A] 2 (the second A is the same write), [C B A] 3: 5, 3;
 *   w 6: one stretch, A B C: 3, 3; w 1: every access, 6, 1.
 * With A B as the warm-up (from 2) and w 2: [A C] 2, [B A] 2: 4, 2.
 */
static void test_commit_writes_count_each_dirty_key_once(void **st) {
        (void)st;
        const size_t prev[] = {NONE, NONE, 0, NONE, 1, 2};
        uint64_t most;
        assert_int_equal(enc_reuse_commit_writes(prev, 6, 0, 2, &most), 6);
        assert_int_equal(most, 2);
        assert_int_equal(enc_reuse_commit_writes(prev, 6, 0, 3, &most), 5);
        assert_int_equal(most, 3);
        assert_int_equal(enc_reuse_commit_writes(prev, 6, 0, 6, &most), 3);
        assert_int_equal(most, 3);
        assert_int_equal(enc_reuse_commit_writes(prev, 6, 0, 1, &most), 6);
        assert_int_equal(most, 1);
        assert_int_equal(enc_reuse_commit_writes(prev + 2, 4, 2, 2, &most), 4);
        assert_int_equal(most, 2);
}

static void test_bad_input_is_refused(void **st) {
        (void)st;
        const uint32_t keys[] = {A, B, C};
        uint32_t d[3];
        /* key C (2) is not below nkeys 2 */
        assert_int_equal(enc_reuse_distances(keys, 3, 0, 2, d, NULL),
                         ENC_ERR_INVALID_ARG);
        assert_int_equal(enc_reuse_distances(keys, 3, 4, 3, d, NULL),
                         ENC_ERR_INVALID_ARG);
}

/*
 * Against an independent computation: the LRU stack as a plain array,
 * most recent first. A key's distance is its depth in the stack (the
 * keys above it are exactly those used since), then it moves to the top.
 * And an LRU cache of capacity c simulated directly (the same kind of
 * array cut at c) must hit exactly as often as the distances say.
 */
static void test_matches_a_plain_lru_stack(void **st) {
        (void)st;
        enum { N = 4000, K = 97, FROM = 700 };
        uint32_t *keys = malloc(N * sizeof(*keys));
        uint32_t *d = malloc((N - FROM) * sizeof(*d));
        assert_non_null(keys);
        assert_non_null(d);
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        for (int i = 0; i < N; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                /* a skew: low keys come back often, high keys rarely */
                uint32_t r = (uint32_t)(x % K);
                keys[i] = (uint32_t)(x >> 40) % 3 ? r % 11 : r;
        }
        assert_int_equal(enc_reuse_distances(keys, N, FROM, K, d, NULL),
                         ENC_OK);
        uint32_t stack[K];
        int depth = 0;
        for (int i = 0; i < N; i++) {
                int at = -1;
                for (int j = 0; j < depth; j++)
                        if (stack[j] == keys[i])
                                at = j;
                if (i >= FROM)
                        assert_int_equal(d[i - FROM],
                                         at < 0 ? INF : (uint32_t)at);
                if (at < 0)
                        at = depth++;
                memmove(stack + 1, stack, (size_t)at * sizeof(*stack));
                stack[0] = keys[i];
        }
        const int caps[] = {1, 2, 5, 11, 30, 96, 97};
        for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
                uint32_t cache[K];
                int cnt = 0, hits = 0;
                for (int i = 0; i < N; i++) {
                        int at = -1;
                        for (int j = 0; j < cnt; j++)
                                if (cache[j] == keys[i])
                                        at = j;
                        if (at >= 0 && i >= FROM)
                                hits++;
                        if (at < 0)
                                at = cnt < caps[c] ? cnt++ : cnt - 1;
                        memmove(cache + 1, cache, (size_t)at * sizeof(*cache));
                        cache[0] = keys[i];
                }
                assert_true(enc_reuse_lru_hit_ratio(d, N - FROM,
                                                    (uint64_t)caps[c]) ==
                            (double)hits / (N - FROM));
        }
        free(keys);
        free(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_distances_of_a_hand_worked_sequence),
                cmocka_unit_test(
                        test_warmup_accesses_count_but_are_not_reported),
                cmocka_unit_test(test_distance_counts_distinct_keys_once),
                cmocka_unit_test(test_quantiles_by_nearest_rank),
                cmocka_unit_test(test_commit_writes_count_each_dirty_key_once),
                cmocka_unit_test(test_bad_input_is_refused),
                cmocka_unit_test(test_matches_a_plain_lru_stack),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
