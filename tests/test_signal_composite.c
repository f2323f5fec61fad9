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
 * event time of the triggering update; the user's cohort (all "A"). */
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

/* A flat prior for horizon 3 (see test_progressive_component), written to
 * @p path (a mkstemp template). */
static void co_flat_prior(char *path) {
        int fd = mkstemp(path);
        const char *json = "{\"horizon_days\":3,\"mu\":[1,0.5,0.5],\"cov\":"
                           "[[0,0,0],[0,0.25,0],[0,0,0.25]]}";
        assert_true(fd >= 0);
        assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
        close(fd);
}

static st_engine_t *co_cohort_engine(const char *path, const char *ttl,
                                     enc_conf_t **confp) {
        char kv[128];
        snprintf(kv, sizeof(kv), "signal.progressive_reward.1.prior.file=%s",
                 path);
        *confp = st_conf("signals=discovery_habit:1,progressive_reward:1,"
                         "composite:1",
                         "signal.discovery_habit.1.horizon.days=3", kv,
                         "signal.composite.1.components=discovery_habit=3,"
                         "progressive_reward=3",
                         ttl, NULL);
        st_engine_t *eng = st_engine_new(*confp);
        eng->truncate = true;
        return eng;
}

/* The cohort rule: a composite carries the user's cohort, never the
 * discovery's. Horizon 3, the flat prior above (days independent, mu =
 * 1, .5, .5), components discovery_habit = 3 (x0 = value / 3) and
 * progressive_reward = 3 (x1 = mean / 3), so sum = value + mean.
 *
 *  d0 10:00 rec play of x, cohort A   dh x = 1 (A)   sum 1 + 0 = 1
 *                                     caused by the play: A           seq 1
 *  d0 12:00 1 s play, cohort C        not qualified; the user is in C now
 *  DAY(1)   pr k=1: 1 + .5 + .5 = 2 (A)   sum 1 + 2 = 3
 *                                     watermark: latest event's, C    seq 2
 *  d1 10:00 play of x, cohort B: re-engages x: dh x = 2 (still A)
 *                                     sum 2 + 2 = 4; the play's, B    seq 3
 *                                     (the old rule copied dh's A)
 *  DAY(2)   pr k=2, z = 1,1: 2.5      sum 4.5, B                      seq 4
 *  DAY(3)   dh final (2, unchanged: no update), pr final: mean 2
 *                                     sum 4, B                        seq 5
 * discovery_habit and progressive_reward keep the discovering play's A on
 * every update, finals included. The composite forgets its components 35
 * days after DAY(3) and the event at d1 + 35 days: freed at DAY(38). */
static void test_cohort_is_the_users(void **unused) {
        char path[] = "/tmp/encore-prior-XXXXXX";
        enc_conf_t *conf;
        co_flat_prior(path);
        st_engine_t *eng = co_cohort_engine(path, NULL, &conf);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[16];
        static const char *const names[] = {"discovery_habit",
                                            "progressive_reward"};
        enc_event_t ev = st_play(AT(0, 10, 0), 30000);
        ev.artist_id = "x";
        ev.source = ENC_SRC_RECOMMENDATION;
        ev.recommendation_id = "r";
        st_event(eng, &u, &ev, true);
        ev = st_play(AT(0, 12, 0), 1000);
        ev.artist_id = "y";
        ev.cohort = "C";
        st_event(eng, &u, &ev, true);
        ev = st_play(AT(1, 10, 0), 30000);
        ev.artist_id = "x";
        ev.cohort = "B";
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(38) - 1, true);
        assert_non_null(u.state[2]);
        st_timers_upto(eng, &u, DAY(38), true);
        assert_null(u.state[2]);

        int n = st_filter(&eng->out, "discovery_habit", up, 16);
        assert_int_equal(n, 3);
        for (int i = 0; i < n; i++)
                assert_string_equal(up[i]->cohort, "A");
        n = st_filter(&eng->out, "progressive_reward", up, 16);
        assert_int_equal(n, 3);
        for (int i = 0; i < n; i++)
                assert_string_equal(up[i]->cohort, "A");

        assert_int_equal(st_filter(&eng->out, "composite", up, 16), 5);
        const int64_t t[5] = {AT(0, 10, 0), DAY(1), AT(1, 10, 0), DAY(2),
                              DAY(3)};
        const char *const coh[5] = {"A", "C", "B", "B", "B"};
        const double v[5] = {1, 3, 4, 4.5, 4}, d[5] = {1, 2, 1, 0.5, -0.5};
        const double x0[5] = {1.0 / 3, 1.0 / 3, 2.0 / 3, 2.0 / 3, 2.0 / 3};
        const double x1[5] = {0, 2.0 / 3, 2.0 / 3, 2.5 / 3, 2.0 / 3};
        for (int i = 0; i < 5; i++) {
                st_check(up[i], (st_exp_t){.cohort = coh[i],
                                           .ws = t[i],
                                           .we = t[i],
                                           .t = t[i],
                                           .value = v[i],
                                           .delta = d[i],
                                           .seq = i + 1,
                                           .ncomp = 2});
                co_comps(up[i], 2, names, (double[]){x0[i], x1[i]});
        }
        st_user_free(eng, &u);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
        unlink(path);
}

/* What the composite remembers of the user's latest event lasts ttl.days
 * (2 here); past it, a composite the watermark causes has only the
 * component's cohort left. Same setup, no play on day 1:
 *  d0 10:00 rec play of x (A)     dh 1             sum 1, A        seq 1
 *  d0 12:00 1 s play (C)          remembered until d2 12:00
 *  DAY(1)   pr k=1: 2             sum 3, C                         seq 2
 *  DAY(2)   pr k=2, z = 1,0: 1.5  sum 2.5, C                       seq 3
 *  d2 12:00 the event is forgotten (the components live on)
 *  DAY(3)   dh final 1 (no change), pr final 1: sum 2, A: nothing
 *           remembered, so the component's (the discovery's)       seq 4
 *  DAY(5)   components expire (DAY(3) + 2 days): state freed. */
static void test_cohort_forgotten_after_ttl(void **unused) {
        char path[] = "/tmp/encore-prior-XXXXXX";
        enc_conf_t *conf;
        co_flat_prior(path);
        st_engine_t *eng = co_cohort_engine(
                path, "signal.composite.1.ttl.days=2", &conf);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[16];
        enc_event_t ev = st_play(AT(0, 10, 0), 30000);
        ev.artist_id = "x";
        ev.source = ENC_SRC_RECOMMENDATION;
        st_event(eng, &u, &ev, true);
        ev = st_play(AT(0, 12, 0), 1000);
        ev.cohort = "C";
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(5) - 1, true);
        assert_non_null(u.state[2]);
        st_timers_upto(eng, &u, DAY(5), true);
        assert_null(u.state[2]);

        assert_int_equal(st_filter(&eng->out, "composite", up, 16), 4);
        const int64_t t[4] = {AT(0, 10, 0), DAY(1), DAY(2), DAY(3)};
        const char *const coh[4] = {"A", "C", "C", "A"};
        const double v[4] = {1, 3, 2.5, 2}, d[4] = {1, 2, -0.5, -0.5};
        for (int i = 0; i < 4; i++)
                st_check(up[i], (st_exp_t){.cohort = coh[i],
                                           .ws = t[i],
                                           .we = t[i],
                                           .t = t[i],
                                           .value = v[i],
                                           .delta = d[i],
                                           .seq = i + 1,
                                           .ncomp = 2});
        st_user_free(eng, &u);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
        unlink(path);
}

/* "Latest of any subject" at one instant: subject byte order, whatever
 * the arrival order. discovery_habit horizon 5, composite
 * discovery_habit=5 (x = value / 5, so sum = value of the update taken).
 *  d0 10:00 rec play of b    b = 1 (t d0 10:00)        sum 1         seq 1
 *  d1 10:00 rec play of a    a = 1                     x = 1/5: same
 *  d3 10:00 play of a        a = 2                     sum 2         seq 2
 *  DAY(5)   timer: b's final, 1 (t DAY(5), "b")        sum 1         seq 3
 *  DAY(5)   play of a (day 4 of a's horizon): a = 3 at the same
 *           instant; "a" sorts before "b", so b's final is the one
 *           taken at DAY(5): no update (arrival order would give 3)
 *  DAY(6)   a's final, 3                               sum 3         seq 4 */
static void test_same_instant_subject_order(void **unused) {
        enc_conf_t *conf =
                st_conf("signals=discovery_habit:1,composite:1",
                        "signal.discovery_habit.1.horizon.days=5",
                        "signal.composite.1.components=discovery_habit=5",
                        NULL);
        st_engine_t *eng = st_engine_new(conf);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        eng->truncate = true;
        enc_event_t ev = st_play(AT(0, 10, 0), 30000);
        ev.artist_id = "b";
        ev.source = ENC_SRC_RECOMMENDATION;
        st_event(eng, &u, &ev, true);
        ev.artist_id = "a";
        ev.event_time = AT(1, 10, 0);
        st_event(eng, &u, &ev, true);
        ev.source = ENC_SRC_LIBRARY;
        ev.event_time = AT(3, 10, 0);
        st_event(eng, &u, &ev, true);
        ev.event_time = DAY(5);
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(7), true);

        assert_int_equal(st_filter(&eng->out, "discovery_habit", up, 8), 6);
        assert_int_equal(st_filter(&eng->out, "composite", up, 8), 4);
        const int64_t t[4] = {AT(0, 10, 0), AT(3, 10, 0), DAY(5), DAY(6)};
        const double v[4] = {1, 2, 1, 3}, d[4] = {1, 1, -1, 2};
        for (int i = 0; i < 4; i++)
                st_check(up[i], (st_exp_t){.cohort = "A",
                                           .ws = t[i],
                                           .we = t[i],
                                           .t = t[i],
                                           .value = v[i],
                                           .delta = d[i],
                                           .seq = i + 1,
                                           .ncomp = 1});
        st_user_free(eng, &u);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_default_weights),
                cmocka_unit_test(test_versions_and_subjects),
                cmocka_unit_test(test_progressive_component),
                cmocka_unit_test(test_cohort_is_the_users),
                cmocka_unit_test(test_cohort_forgotten_after_ttl),
                cmocka_unit_test(test_same_instant_subject_order),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
