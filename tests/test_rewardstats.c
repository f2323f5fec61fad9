/*
 * test_rewardstats.c -- reward metrics by cohort (consumer/rewardstats.c):
 * bucket bounds worked out by hand, the cohort bound, and the exposition
 * lines of a small set of updates, written out in full.
 */
#include "harness.h"

#include <math.h>

#include "rewardstats.h"

static void test_bounds_fit_the_signal(void **st) {
        (void)st;
        double b[ENC_HIST_MAX_BUCKETS];
        /* H = 60: r = 60^(1/11) = 1.4509; r^k rounded: 1, 1 (1.45), 2
         * (2.105), 3 (3.055), 4 (4.432), 6 (6.431), 9 (9.330), 14 (13.54),
         * 20 (19.64), 29 (28.5004), 41 (41.35), then 60 */
        static const double h60[] = {0, 1, 2, 3, 4, 6, 9, 14, 20, 29, 41, 60};
        assert_int_equal(enc_rstats_bounds(60, b), 12);
        for (int i = 0; i < 12; i++)
                assert_true(b[i] == h60[i]);
        /* H = 7: every day */
        assert_int_equal(enc_rstats_bounds(7, b), 8);
        for (int i = 0; i < 8; i++)
                assert_true(b[i] == i);
        assert_int_equal(enc_rstats_bounds(1, b), 2);
        assert_true(b[0] == 0 && b[1] == 1);
        /* H = 3650: still within the bucket cap, ending at H */
        int n = enc_rstats_bounds(3650, b);
        assert_true(n <= ENC_HIST_MAX_BUCKETS);
        assert_true(b[n - 1] == 3650);
        /* a rate */
        assert_int_equal(enc_rstats_bounds(0, b), 10);
        assert_true(fabs(b[0] - 0.1) < 1e-15 && b[9] == 1);
}

static enc_update_t rs_up(const char *signal, const char *cohort, bool final,
                          double value, int32_t horizon) {
        enc_update_t u;
        memset(&u, 0, sizeof(u));
        u.user_id = "u";
        u.signal = signal;
        u.signal_version = 1;
        u.cohort = cohort;
        u.final = final;
        u.value = value;
        u.horizon_days = horizon;
        return u;
}

/* metrics.cohorts.max = 2: A and B are tracked, C comes third and counts
 * as "other" (overflow 1); no cohort is always "". session finals 0.25
 * and 1 for A: buckets le 0.1: 0, 0.2: 0, 0.3..0.9: 1, 1: 2, +Inf 2; sum
 * 1.25. A non-final update counts as an update only. */
static void test_cohort_bound_and_exposition(void **st) {
        (void)st;
        enc_rstats_t *rs = enc_rstats_new(2);
        enc_update_t u;
        u = rs_up("session", "A", true, 0.25, 0);
        enc_rstats_observe(rs, &u);
        u = rs_up("session", "A", true, 1, 0);
        enc_rstats_observe(rs, &u);
        u = rs_up("session", "B", false, 0.5, 0);
        enc_rstats_observe(rs, &u);
        u = rs_up("session", "C", false, 0.5, 0);
        enc_rstats_observe(rs, &u);
        u = rs_up("session", NULL, false, 0.5, 0);
        enc_rstats_observe(rs, &u);
        u = rs_up("session", "B", false, 0.5, 0);
        enc_rstats_observe(rs, &u);
        enc_buf_t b;
        enc_buf_init(&b, 1 << 20);
        enc_rstats_render(rs, &b);
        enc_buf_put_u8(&b, 0);
        const char *t = (const char *)b.data;
        static const char *const want[] = {
                "encore_reward_updates_total{signal=\"session\",version=\"1\","
                "cohort=\"A\"} 2\n",
                "encore_reward_updates_total{signal=\"session\",version=\"1\","
                "cohort=\"B\"} 2\n",
                "encore_reward_updates_total{signal=\"session\",version=\"1\","
                "cohort=\"other\"} 1\n",
                "encore_reward_updates_total{signal=\"session\",version=\"1\","
                "cohort=\"\"} 1\n",
                "# TYPE encore_reward_final_value histogram\n",
                "encore_reward_final_value_bucket{signal=\"session\","
                "version=\"1\",cohort=\"A\",le=\"0.2\"} 0\n",
                "encore_reward_final_value_bucket{signal=\"session\","
                "version=\"1\",cohort=\"A\",le=\"0.3\"} 1\n",
                "encore_reward_final_value_bucket{signal=\"session\","
                "version=\"1\",cohort=\"A\",le=\"0.9\"} 1\n",
                "encore_reward_final_value_bucket{signal=\"session\","
                "version=\"1\",cohort=\"A\",le=\"1\"} 2\n",
                "encore_reward_final_value_bucket{signal=\"session\","
                "version=\"1\",cohort=\"A\",le=\"+Inf\"} 2\n",
                "encore_reward_final_value_sum{signal=\"session\","
                "version=\"1\",cohort=\"A\"} 1.25\n",
                "encore_reward_final_value_count{signal=\"session\","
                "version=\"1\",cohort=\"A\"} 2\n",
                "encore_reward_cohort_overflow_total 1\n",
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
                if (!strstr(t, want[i]))
                        print_error("missing: %s\nin:\n%s\n", want[i], t);
                assert_non_null(strstr(t, want[i]));
        }
        /* only A has finals: one histogram series */
        assert_null(strstr(t, "final_value_count{signal=\"session\","
                              "version=\"1\",cohort=\"B\""));
        enc_buf_free(&b);
        enc_rstats_destroy(rs);

        /* metrics.cohorts.max = 0: every cohort is "other" */
        rs = enc_rstats_new(0);
        u = rs_up("active_days", "A", true, 0, 7);
        enc_rstats_observe(rs, &u);
        enc_buf_init(&b, 1 << 20);
        enc_rstats_render(rs, &b);
        enc_buf_put_u8(&b, 0);
        assert_non_null(strstr((const char *)b.data,
                               "encore_reward_final_value_bucket{signal="
                               "\"active_days\",version=\"1\",cohort="
                               "\"other\",le=\"0\"} 1\n"));
        enc_buf_free(&b);
        enc_rstats_destroy(rs);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bounds_fit_the_signal),
                cmocka_unit_test(test_cohort_bound_and_exposition),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
