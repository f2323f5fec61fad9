/*
 * test_signal_composite.c -- composite against sums worked out by hand
 * from the definition in signals/composite.c.
 */
#include <unistd.h>

#include "sigtest.h"

static void co_comps(const enc_update_t *u, int n, const char *const *names,
                     const double *vals) {
        assert_int_equal(u->component_cnt, n);
        for (int i = 0; i < n; i++) {
                assert_string_equal(u->components[i].name, names[i]);
                st_dbl_eq(names[i], u->components[i].value, vals[i]);
        }
}

/* Default components: active_days/28d = 0.4, session = 0.3,
 * discovery_habit = 0.3, with the other signals at their defaults
 * (windows 7 and 28, gap 30 min, horizon 60).
 *
 *  d0 10:00 one rec play of x, 200 s of 200 s, TRACK_DONE:
 *    active_days 7d = 1        no component matches "active_days/28d"
 *    active_days 28d = 1       x0 = 1/28         sum 0.4/28          seq 1
 *    discovery_habit x = 1     x2 = 1/60         sum += 0.3/60       seq 2
 *  10:30 session closes, completion 1:
 *                              x1 = 1            sum += 0.3          seq 3
 *  DAY(7)  7d -> 0             not a component
 *  DAY(28) 28d -> 0            x0 = 0            sum -= 0.4/28       seq 4
 *  DAY(60) discovery final     x2 unchanged: no update, but it is the
 *                              last component update: expiry at
 *                              DAY(60) + 35 days = DAY(95).
 * Each update: components in config order under their written names;
 * cohort and event time of the triggering update. */
static void test_default_weights(void **unused) {
        enc_conf_t *conf = st_conf("signals=active_days:1,session:1,"
                                   "discovery_habit:1,composite:1",
                                   NULL);
        st_engine_t *eng = st_engine_new(conf);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        static const char *const names[] = {"active_days/28d", "session",
                                            "discovery_habit"};
        enc_event_t ev = st_play(AT(0, 10, 0), 200000);
        ev.artist_id = "x";
        ev.source = ENC_SRC_RECOMMENDATION;
        ev.recommendation_id = "r";
        ev.reason_end = ENC_END_TRACK_DONE;
        eng->truncate = true;

        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(95) - 1, true);
        assert_non_null(u.state[3]);
        st_timers_upto(eng, &u, DAY(95), true);
        assert_null(u.state[3]);

        assert_int_equal(st_filter(&eng->out, "composite", up, 8), 4);
        const double s1 = 0.4 / 28, s2 = s1 + 0.3 / 60, s3 = s2 + 0.3;
        const double s4 = 0.3 / 60 + 0.3;
        st_check(up[0], (st_exp_t){.cohort = "A",
                                   .ws = AT(0, 10, 0),
                                   .we = AT(0, 10, 0),
                                   .t = AT(0, 10, 0),
                                   .value = s1,
                                   .delta = s1,
                                   .seq = 1,
                                   .ncomp = 3});
        co_comps(up[0], 3, names, (double[]){1.0 / 28, 0, 0});
        st_check(up[1], (st_exp_t){.cohort = "A",
                                   .ws = AT(0, 10, 0),
                                   .we = AT(0, 10, 0),
                                   .t = AT(0, 10, 0),
                                   .value = s2,
                                   .delta = 0.3 / 60,
                                   .seq = 2,
                                   .ncomp = 3});
        co_comps(up[1], 3, names, (double[]){1.0 / 28, 0, 1.0 / 60});
        st_check(up[2], (st_exp_t){.cohort = "A",
                                   .ws = AT(0, 10, 30),
                                   .we = AT(0, 10, 30),
                                   .t = AT(0, 10, 30),
                                   .value = s3,
                                   .delta = 0.3,
                                   .seq = 3,
                                   .ncomp = 3});
        co_comps(up[2], 3, names, (double[]){1.0 / 28, 1, 1.0 / 60});
        st_check(up[3], (st_exp_t){.cohort = "A",
                                   .ws = DAY(28),
                                   .we = DAY(28),
                                   .t = DAY(28),
                                   .value = s4,
                                   .delta = -0.4 / 28,
                                   .seq = 4,
                                   .ncomp = 3});
        co_comps(up[3], 3, names, (double[]){0, 1, 1.0 / 60});
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* Versions and subjects: "active_days=1" (version 1, any subject) and
 * "active_days:2/3d=2" (version 2, subject 3d only), v1 with window 7,
 * v2 with windows 3 and 5.
 *  d0 play:  v1 7d = 1 -> x0 = 1/7          sum 1/7
 *            v2 3d = 1 -> x1 = 1/3          sum 1/7 + 2/3
 *            v2 5d = 1 -> no match
 *  DAY(3):   v2 3d -> 0: x1 = 0             sum 1/7
 *  DAY(5):   v2 5d -> 0: no match
 *  DAY(7):   v1 7d -> 0: x0 = 0             sum 0 */
static void test_versions_and_subjects(void **unused) {
        enc_conf_t *conf =
                st_conf("signals=active_days:1,active_days:2,composite:1",
                        "signal.active_days.1.windows=7",
                        "signal.active_days.2.windows=3,5",
                        "signal.composite.1.components= active_days = 1 , "
                        "active_days:2/3d=2",
                        NULL);
        st_engine_t *eng = st_engine_new(conf);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        static const char *const names[] = {"active_days", "active_days:2/3d"};
        enc_event_t ev = st_play(AT(0, 10, 0), 30000);
        ev.cohort = NULL;
        eng->truncate = true;

        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(10), true);

        assert_int_equal(st_filter(&eng->out, "composite", up, 8), 4);
        st_check(up[0], (st_exp_t){.ws = AT(0, 10, 0),
                                   .we = AT(0, 10, 0),
                                   .t = AT(0, 10, 0),
                                   .value = 1.0 / 7,
                                   .delta = 1.0 / 7,
                                   .seq = 1,
                                   .ncomp = 2});
        co_comps(up[0], 2, names, (double[]){1.0 / 7, 0});
        st_check(up[1], (st_exp_t){.ws = AT(0, 10, 0),
                                   .we = AT(0, 10, 0),
                                   .t = AT(0, 10, 0),
                                   .value = 1.0 / 7 + 2.0 / 3,
                                   .delta = 2.0 / 3,
                                   .seq = 2,
                                   .ncomp = 2});
        co_comps(up[1], 2, names, (double[]){1.0 / 7, 1.0 / 3});
        st_check(up[2], (st_exp_t){.ws = DAY(3),
                                   .we = DAY(3),
                                   .t = DAY(3),
                                   .value = 1.0 / 7,
                                   .delta = -2.0 / 3,
                                   .seq = 3,
                                   .ncomp = 2});
        co_comps(up[2], 2, names, (double[]){1.0 / 7, 0});
        st_check(up[3], (st_exp_t){.ws = DAY(7),
                                   .we = DAY(7),
                                   .t = DAY(7),
                                   .value = 0,
                                   .delta = -1.0 / 7,
                                   .seq = 4,
                                   .ncomp = 2});
        co_comps(up[3], 2, names, (double[]){0, 0});
        st_user_free(eng, &u);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* progressive_reward enters as estimate_mean / horizon_days. Horizon 3
 * and the default prior would not match, so a flat prior: mu = (1, 0.5,
 * 0.5), C = diag(0, 0.25, 0.25). At DAY(1), k = 1: mean = 1 + 0.5 + 0.5
 * = 2, normalised 2/3; weight 3 gives sum 2. At DAY(2), no play on day
 * 1 and independent days: mean = 1 + 0 + 0.5 = 1.5, normalised 0.5, sum
 * 1.5. At DAY(3) the final: mean 1, normalised 1/3, sum 1. */
static void test_progressive_component(void **unused) {
        char path[] = "/tmp/encore-prior-XXXXXX";
        int fd = mkstemp(path);
        const char *json = "{\"horizon_days\":3,\"mu\":[1,0.5,0.5],\"cov\":"
                           "[[0,0,0],[0,0.25,0],[0,0,0.25]]}";
        assert_true(fd >= 0);
        assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
        close(fd);
        char kv[128];
        snprintf(kv, sizeof(kv), "signal.progressive_reward.1.prior.file=%s",
                 path);
        enc_conf_t *conf = st_conf(
                "signals=discovery_habit:1,progressive_reward:1,composite:1",
                "signal.discovery_habit.1.horizon.days=3", kv,
                "signal.composite.1.components=progressive_reward=3", NULL);
        st_engine_t *eng = st_engine_new(conf);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        enc_event_t ev = st_play(AT(0, 10, 0), 30000);
        ev.source = ENC_SRC_RECOMMENDATION;

        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(3), true);
        assert_int_equal(st_filter(&eng->out, "composite", up, 8), 3);
        st_dbl_eq("k=1", up[0]->value, 2);
        st_dbl_eq("k=2", up[1]->value, 1.5);
        st_dbl_eq("k=3", up[2]->value, 1);
        assert_int_equal(up[2]->event_time, DAY(3));
        st_user_free(eng, &u);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
        unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_default_weights),
                cmocka_unit_test(test_versions_and_subjects),
                cmocka_unit_test(test_progressive_component),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
