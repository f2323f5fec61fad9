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

/* ---- the stored form (record v3) and the older records ---------------
 * One setup for the layout tests: components active_days/7d=1 (a fixed
 * subject) and discovery_habit=5 (any subject), discovery_habit horizon 5,
 * composite instance 2. After a recommended play of artist b at d0 10:00
 * (T), cohort A:
 *   active_days 7d = 1      x0 = 1/7, t T                seq 1
 *   discovery_habit b = 1   x1 = 1/5, t T, subject "b"   seq 2
 *   the event: event_time T, cohort "A".
 * Its block (offsets in bytes, little-endian):
 *    0 ver 3, flags 3 (live, has_event), n 2, pad 0, any 0b10, pad 0
 *    8 last_time T   16 seq 2   24 event_time T   32 cohort {80, 1}
 *   40 slot 0: x 1/7, t T (fixed subject: no subject field)
 *   56 slot 1: x 1/5, t T, subject {82, 1}
 *   80 "A\0b\0"                                         84 bytes in all */

#define CO_T AT(0, 10, 0)
#define CO_NEVER_T INT64_MIN

static void co_le(enc_buf_t *b, uint64_t v, int n) {
        for (int i = 0; i < n; i++)
                enc_buf_put_u8(b, (uint8_t)(v >> (8 * i)));
}

static void co_led(enc_buf_t *b, double x) {
        uint64_t u;
        memcpy(&u, &x, 8);
        co_le(b, u, 8);
}

static st_engine_t *co_layout_engine(enc_conf_t **confp) {
        *confp = st_conf("signals=active_days:1,discovery_habit:1,"
                         "composite:1",
                         "signal.discovery_habit.1.horizon.days=5",
                         "signal.composite.1.components=active_days/7d=1,"
                         "discovery_habit=5",
                         NULL);
        st_engine_t *eng = st_engine_new(*confp);
        eng->truncate = true;
        eng->mutate = 200;
        return eng;
}

static enc_event_t co_rec_play(int64_t t, const char *artist,
                               const char *cohort) {
        enc_event_t ev = st_play(t, 30000);
        ev.artist_id = artist;
        ev.source = ENC_SRC_RECOMMENDATION;
        ev.cohort = cohort;
        return ev;
}

/* The block above, built by hand. */
static void co_want_v3(enc_buf_t *b) {
        co_le(b, 3 | 3 << 8 | 2 << 16 | (uint64_t)2 << 32, 8);
        co_le(b, (uint64_t)CO_T, 8);
        co_le(b, 2, 8);
        co_le(b, (uint64_t)CO_T, 8);
        co_le(b, 80 | (uint64_t)1 << 32, 8);
        co_led(b, 1.0 / 7);
        co_le(b, (uint64_t)CO_T, 8);
        co_led(b, 1.0 / 5);
        co_le(b, (uint64_t)CO_T, 8);
        co_le(b, 82 | (uint64_t)1 << 32, 8);
        assert_int_equal(enc_buf_append(b, "A\0b", 4), ENC_OK);
}

static void co_encode(st_engine_t *eng, int i, const void *st, enc_buf_t *b) {
        enc_buf_reset(b);
        assert_int_equal(eng->insts[i].plugin->state_encode(eng->insts[i].priv,
                                                            st, b),
                         ENC_OK);
}

static enc_err_t co_decode(st_engine_t *eng, int i, const uint8_t *p,
                           size_t len) {
        void *st = (void *)1;
        /* an exact copy, so ASan catches a read past the end */
        uint8_t *cp = malloc(len ? len : 1);
        assert_non_null(cp);
        memcpy(cp, p, len);
        enc_err_t err =
                eng->insts[i].plugin->state_decode(eng->insts[i].priv, cp,
                                                   len, &st);
        if (err)
                assert_null(st);
        else
                eng->insts[i].plugin->state_free(eng->insts[i].priv, st);
        free(cp);
        return err;
}

/* The state after the first play is exactly the block above. */
static void test_v3_layout(void **unused) {
        enc_conf_t *conf;
        st_engine_t *eng = co_layout_engine(&conf);
        st_user_t u = {.id = "u1"};
        enc_buf_t got, want;
        enc_buf_init(&got, 0);
        enc_buf_init(&want, 0);
        enc_event_t ev = co_rec_play(CO_T, "b", "A");
        st_event(eng, &u, &ev, true);
        co_want_v3(&want);
        assert_int_equal(want.len, 84);
        co_encode(eng, 2, u.state[2], &got);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        /* The cost of a cached composite is its block: 8 bytes of length
         * and room, 96 of room, malloc's 8-byte header. */
        assert_int_equal(eng->insts[2].plugin->state_bytes(eng->insts[2].priv,
                                                           u.state[2]),
                         112);
        st_user_free(eng, &u);
        enc_buf_free(&got);
        enc_buf_free(&want);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* Decodes the good block with @p n bytes at @p off replaced by @p v
 * (little-endian). */
static enc_err_t co_patched(st_engine_t *eng, const enc_buf_t *good,
                            size_t off, uint64_t v, int n) {
        uint8_t b[128];
        assert_true(good->len <= sizeof(b));
        memcpy(b, good->data, good->len);
        for (int i = 0; i < n; i++)
                b[off + (size_t)i] = (uint8_t)(v >> (8 * i));
        return co_decode(eng, 2, b, good->len);
}

/* A stored v3 block is checked byte by byte: each change below breaks
 * one rule and is refused. */
static void test_v3_refuses_corrupt(void **unused) {
        enc_conf_t *conf;
        st_engine_t *eng = co_layout_engine(&conf);
        enc_buf_t good;
        enc_buf_init(&good, 0);
        co_want_v3(&good);
        const uint64_t big = ((uint64_t)1 << 50) + 1;
        const uint64_t nan = 0x7ff8000000000000, inf = 0x7ff0000000000000;

        assert_int_equal(co_decode(eng, 2, good.data, good.len), ENC_OK);
        const struct {
                size_t off;
                uint64_t v;
                int n;
                const char *what;
        } bad[] = {
                {0, 4, 1, "version 4"},
                {0, 0, 1, "version 0"},
                {1, 0, 1, "flags 0: an empty state is no state"},
                {1, 4, 1, "unknown flag"},
                {1, 7, 1, "unknown flag with the known ones"},
                {2, 3, 1, "3 slots where 2 are configured"},
                {2, 1, 1, "1 slot where 2 are configured"},
                {3, 1, 1, "padding after n"},
                {4, 3, 2, "entry 0 marked any-subject"},
                {4, 0, 2, "entry 1 not marked any-subject"},
                {6, 1, 1, "padding after any"},
                {7, 0x80, 1, "padding after any, high byte"},
                {8, big, 8, "last_time past 2^50"},
                {8, (uint64_t)-(int64_t)big, 8, "last_time before -2^50"},
                {16, (uint64_t)-1, 8, "seq negative"},
                {16, big, 8, "seq past 2^50"},
                {24, big, 8, "event_time past 2^50"},
                {1, 1, 1, "no event, but an event time and a cohort"},
                {1, 2, 1, "not live, but slots, last_time and seq"},
                {40, nan, 8, "x NaN"},
                {56, inf, 8, "x infinite"},
                {48, big, 8, "slot time past 2^50"},
                {64, (uint64_t)-(int64_t)big, 8, "slot time before -2^50"},
                {32, 81, 4, "cohort not where the strings start (a gap)"},
                {32, 79, 4, "cohort inside the slots"},
                {32, 0, 4, "cohort absent with a length"},
                {36, 2, 4, "cohort length past its NUL"},
                {36, 0, 4, "cohort length short of its NUL"},
                {36, 65, 4, "cohort longer than a label"},
                {36, 0xffffffff, 4, "cohort length past the block"},
                {81, 'x', 1, "cohort without its NUL"},
                {80, 0, 1, "cohort holding a NUL"},
                {80, 0xff, 1, "cohort not UTF-8"},
                {82, 0xc3, 1, "subject not UTF-8 (a cut sequence)"},
                {72, 0, 4, "subject absent with a length"},
                {72, 83, 4, "subject after a gap"},
                {72, 80, 4, "subject over the cohort"},
                {76, 2, 4, "subject past the block"},
                {83, 'c', 1, "subject without its NUL"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                enc_err_t err =
                        co_patched(eng, &good, bad[i].off, bad[i].v, bad[i].n);
                if (err != ENC_ERR_CORRUPT) {
                        print_error("%s: decoded (%d)\n", bad[i].what,
                                    (int)err);
                        fail();
                }
        }

        /* Bytes after the strings. */
        enc_buf_put_u8(&good, 0);
        assert_int_equal(co_decode(eng, 2, good.data, good.len),
                         ENC_ERR_CORRUPT);
        good.len--;

        /* The same state, consistently without its event (flags 1,
         * event_time 0, no cohort, the subject first): accepted; with the
         * cohort's bytes left in: refused. */
        uint8_t b[84];
        memcpy(b, good.data, 84);
        b[1] = 1;
        memset(b + 24, 0, 16);
        b[72] = 80;
        memmove(b + 80, b + 82, 2);
        assert_int_equal(co_decode(eng, 2, b, 82), ENC_OK);
        assert_int_equal(co_decode(eng, 2, b, 84), ENC_ERR_CORRUPT);
        /* Not live, consistently: slots cleared (x +0, t never, no
         * subject), last_time and seq 0. Accepted; with x -0 refused. */
        memcpy(b, good.data, 84);
        b[1] = 2;
        memset(b + 8, 0, 16);
        memset(b + 40, 0, 40);
        b[48 + 7] = 0x80; /* t = INT64_MIN */
        b[64 + 7] = 0x80;
        assert_int_equal(co_decode(eng, 2, b, 82), ENC_OK);
        b[40 + 7] = 0x80; /* x = -0 */
        assert_int_equal(co_decode(eng, 2, b, 82), ENC_ERR_CORRUPT);

        /* Another instance's layout: three entries, or two with the
         * subjects the other way round. */
        enc_conf_t *c3 = st_conf("signals=active_days:1,discovery_habit:1,"
                                 "composite:1",
                                 "signal.composite.1.components=active_days/"
                                 "7d=1,discovery_habit=5,active_days/28d=1",
                                 NULL);
        enc_conf_t *c2 = st_conf("signals=active_days:1,discovery_habit:1,"
                                 "composite:1",
                                 "signal.composite.1.components=active_days=1,"
                                 "discovery_habit/b=5",
                                 NULL);
        st_engine_t *e3 = st_engine_new(c3), *e2 = st_engine_new(c2);
        assert_int_equal(co_decode(e3, 2, good.data, good.len),
                         ENC_ERR_CORRUPT);
        assert_int_equal(co_decode(e2, 2, good.data, good.len),
                         ENC_ERR_CORRUPT);
        st_engine_destroy(e3);
        st_engine_destroy(e2);
        enc_conf_destroy(c3);
        enc_conf_destroy(c2);
        enc_buf_free(&good);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* Strings at their caps: a cohort of ENC_LABEL_MAX bytes and a subject of
 * ENC_ID_MAX store and read back; one byte more is refused on reading (as
 * v2 refused them), so nothing longer is ever read back. */
static void test_v3_string_caps(void **unused) {
        enc_conf_t *conf;
        st_engine_t *eng = co_layout_engine(&conf);
        const enc_signal_plugin_t *pl = eng->insts[2].plugin;
        void *priv = eng->insts[2].priv;
        char coh[ENC_LABEL_MAX + 2], subj[ENC_ID_MAX + 2];
        enc_buf_t b;
        enc_buf_init(&b, 0);
        for (int over = 0; over < 2; over++) {
                memset(coh, 'c', sizeof(coh));
                coh[ENC_LABEL_MAX + over] = '\0';
                memset(subj, 's', sizeof(subj));
                subj[ENC_ID_MAX + over] = '\0';
                void *st = NULL;
                enc_emitter_t em = {"u", pl->name, 1, st_drop_cb, NULL};
                enc_event_t ev = co_rec_play(CO_T, "b", coh);
                enc_update_t up = {.signal = "discovery_habit",
                                   .signal_version = 1,
                                   .subject = subj,
                                   .value = 1,
                                   .horizon_days = 5,
                                   .event_time = CO_T};
                assert_int_equal(pl->on_update(priv, &st, &up, &em), ENC_OK);
                assert_int_equal(pl->on_event(priv, &st, &ev, &em), ENC_OK);
                co_encode(eng, 2, st, &b);
                assert_int_equal(b.len, 80 + ENC_LABEL_MAX + ENC_ID_MAX + 2 +
                                                2 * over);
                assert_int_equal(co_decode(eng, 2, b.data, b.len),
                                 over ? ENC_ERR_CORRUPT : ENC_OK);
                pl->state_free(priv, st);
        }
        enc_buf_free(&b);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* The composite updates of @p user, in order, from index @p from. */
static int co_user_updates(const st_engine_t *eng, const char *user,
                           int from, const enc_update_t **out, int max) {
        int n = 0;
        for (int i = from; i < eng->out.n; i++) {
                const enc_update_t *u = &eng->out.v[i]->u;
                if (strcmp(u->signal, "composite") || strcmp(u->user_id, user))
                        continue;
                assert_true(n < max);
                out[n++] = u;
        }
        return n;
}

static void co_same_update(const enc_update_t *a, const enc_update_t *b) {
        st_str_eq("cohort", a->cohort, b->cohort);
        st_str_eq("subject", a->subject, b->subject);
        ST_I64_EQ("event_time", a->event_time, b->event_time);
        ST_I64_EQ("window_start", a->window_start, b->window_start);
        ST_I64_EQ("window_end", a->window_end, b->window_end);
        ST_I64_EQ("sequence", a->sequence, b->sequence);
        assert_true(a->value == b->value && a->delta == b->delta);
        assert_int_equal(a->component_cnt, b->component_cnt);
        for (int i = 0; i < a->component_cnt; i++) {
                assert_string_equal(a->components[i].name,
                                    b->components[i].name);
                assert_true(a->components[i].value == b->components[i].value);
        }
}

/* An old record of the state after the first play (above) becomes
 * @p want_v3 and then gives the same updates as the state that never left
 * memory. u1 runs the history; u2 gets u1's other states and the old
 * record; then both get a play of artist a at d1 10:00 (cohort B) and the
 * watermark to d45:
 *   play: 7d = 2 -> x0 = 2/7       sum 2/7 + 5 x 1/5, delta 1/7, B  seq 3
 *         a = 1 (a later time than b's, or b's time forgotten by v1)
 *                                  x1 = 1/5: same sum, no update
 *   then what the timers bring, alike in both (counted, not listed). */
static void co_migrated_run(const enc_buf_t *old, const enc_buf_t *want_v3) {
        enc_conf_t *conf;
        st_engine_t *eng = co_layout_engine(&conf);
        st_user_t u1 = {.id = "u1"}, u2 = {.id = "u2"};
        enc_buf_t b;
        enc_buf_init(&b, 0);
        enc_event_t ev = co_rec_play(CO_T, "b", "A");
        st_event(eng, &u1, &ev, true);
        for (int i = 0; i < 3; i++) {
                const enc_signal_plugin_t *pl = eng->insts[i].plugin;
                const uint8_t *p = old->data;
                size_t len = old->len;
                if (i < 2) {
                        co_encode(eng, i, u1.state[i], &b);
                        p = b.data;
                        len = b.len;
                }
                assert_int_equal(pl->state_decode(eng->insts[i].priv, p, len,
                                                  &u2.state[i]),
                                 ENC_OK);
        }
        co_encode(eng, 2, u2.state[2], &b);
        assert_int_equal(b.len, want_v3->len);
        assert_memory_equal(b.data, want_v3->data, b.len);
        int from = eng->out.n;

        ev = co_rec_play(AT(1, 10, 0), "a", "B");
        st_event(eng, &u1, &ev, true);
        st_event(eng, &u2, &ev, true);
        st_timers_upto(eng, &u1, DAY(45), true);
        st_timers_upto(eng, &u2, DAY(45), true);
        assert_null(u1.state[2]);
        assert_null(u2.state[2]);

        const enc_update_t *a[32] = {NULL}, *c[32] = {NULL};
        int n = co_user_updates(eng, "u1", from, a, 32);
        assert_int_equal(co_user_updates(eng, "u2", from, c, 32), n);
        assert_true(n >= 3);
        st_check(a[0], (st_exp_t){.cohort = "B",
                                  .ws = AT(1, 10, 0),
                                  .we = AT(1, 10, 0),
                                  .t = AT(1, 10, 0),
                                  .value = 2.0 / 7 + 1,
                                  .delta = 1.0 / 7,
                                  .seq = 3,
                                  .ncomp = 2});
        for (int i = 0; i < n; i++)
                co_same_update(a[i], c[i]);
        st_user_free(eng, &u1);
        st_user_free(eng, &u2);
        enc_buf_free(&b);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* v2, as the previous build wrote it: the same state, so the same block. */
static void test_v2_migrates(void **unused) {
        enc_buf_t old, want;
        enc_buf_init(&old, 0);
        enc_buf_init(&want, 0);
        enc_buf_put_u8(&old, 2);
        enc_buf_put_u8(&old, 3);
        enc_buf_put_varint(&old, 2);
        enc_buf_put_double(&old, 1.0 / 7);
        enc_buf_put_svarint(&old, CO_T);
        enc_buf_put_str(&old, NULL);
        enc_buf_put_double(&old, 1.0 / 5);
        enc_buf_put_svarint(&old, CO_T);
        enc_buf_put_str(&old, "b");
        enc_buf_put_svarint(&old, CO_T);
        enc_buf_put_varint(&old, 2);
        enc_buf_put_svarint(&old, CO_T);
        enc_buf_put_str(&old, "A");
        co_want_v3(&want);
        co_migrated_run(&old, &want);
        enc_buf_free(&old);
        enc_buf_free(&want);
}

/* v1 kept x, last_time and seq only: the block is live, slots never taken
 * (any update replaces them), no subject, no event (80 bytes). */
static void test_v1_migrates(void **unused) {
        enc_buf_t old, want;
        enc_buf_init(&old, 0);
        enc_buf_init(&want, 0);
        enc_buf_put_u8(&old, 1);
        enc_buf_put_varint(&old, 2);
        enc_buf_put_double(&old, 1.0 / 7);
        enc_buf_put_double(&old, 1.0 / 5);
        enc_buf_put_svarint(&old, CO_T);
        enc_buf_put_varint(&old, 2);
        co_le(&want, 3 | 1 << 8 | 2 << 16 | (uint64_t)2 << 32, 8);
        co_le(&want, (uint64_t)CO_T, 8);
        co_le(&want, 2, 8);
        co_le(&want, 0, 8); /* event_time */
        co_le(&want, 0, 8); /* cohort: absent */
        co_led(&want, 1.0 / 7);
        co_le(&want, (uint64_t)CO_NEVER_T, 8);
        co_led(&want, 1.0 / 5);
        co_le(&want, (uint64_t)CO_NEVER_T, 8);
        co_le(&want, 0, 8);
        co_migrated_run(&old, &want);
        enc_buf_free(&old);
        enc_buf_free(&want);
}

/* Old records are checked as before; and a v2 record whose components
 * are not live must have them cleared, as every v2 writer left them. */
static void test_old_records_refused(void **unused) {
        enc_conf_t *conf;
        st_engine_t *eng = co_layout_engine(&conf);
        for (int k = 0; k < 5; k++) {
                enc_buf_t b;
                enc_buf_init(&b, 0);
                enc_buf_put_u8(&b, 2);
                enc_buf_put_u8(&b, k == 0 ? 0 : k == 1 ? 4 : 2);
                enc_buf_put_varint(&b, 2);
                enc_buf_put_double(&b, k == 3 ? 0.5 : 0);
                enc_buf_put_svarint(&b, INT64_MIN);
                enc_buf_put_str(&b, k == 4 ? "s" : NULL); /* fixed subject */
                enc_buf_put_double(&b, 0);
                enc_buf_put_svarint(&b, INT64_MIN);
                enc_buf_put_str(&b, NULL);
                enc_buf_put_svarint(&b, 0);
                enc_buf_put_varint(&b, 0);
                enc_buf_put_svarint(&b, CO_T);
                enc_buf_put_str(&b, "A");
                /* k 2: a valid record (not live, an event) */
                assert_int_equal(co_decode(eng, 2, b.data, b.len),
                                 k == 2 ? ENC_OK : ENC_ERR_CORRUPT);
                enc_buf_free(&b);
        }
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* Canonical bytes: the same logical state, reached by histories whose
 * strings came and went in other orders and lengths, has the same bytes.
 * Components session=1 (any subject), active_days/7d=1 (fixed),
 * discovery_habit=5 (any subject): strings cohort, session's subject,
 * discovery_habit's subject, in that order. The end state of each
 * history: cohort "A" from an event at T+3h; session "s" at T+4h (x 0.5);
 * active_days never; discovery_habit "b" at T+5h (x 2/5); last_time
 * T+5h; seq 2 since the components last (re)started. */
typedef struct co_step_s {
        int64_t t;
        const char *cohort; /* an event with this cohort, if no signal */
        const char *signal, *subject;
        double value;
} co_step_t;

static void co_history(st_engine_t *eng, const co_step_t *s, int n,
                       enc_buf_t *out) {
        const enc_signal_plugin_t *pl = eng->insts[3].plugin;
        void *priv = eng->insts[3].priv;
        void *st = NULL;
        enc_emitter_t em = {"u", pl->name, 1, st_drop_cb, NULL};
        for (int i = 0; i < n; i++) {
                if (pl->next_timer(priv, st) <= s[i].t)
                        assert_int_equal(pl->on_timer(priv, &st, s[i].t, &em),
                                         ENC_OK);
                if (!s[i].signal) {
                        enc_event_t ev = co_rec_play(s[i].t, "x",
                                                     s[i].cohort);
                        assert_int_equal(pl->on_event(priv, &st, &ev, &em),
                                         ENC_OK);
                        continue;
                }
                enc_update_t up = {.signal = s[i].signal,
                                   .signal_version = 1,
                                   .subject = s[i].subject,
                                   .value = s[i].value,
                                   .horizon_days = 5,
                                   .event_time = s[i].t};
                assert_int_equal(pl->on_update(priv, &st, &up, &em), ENC_OK);
        }
        co_encode(eng, 3, st, out);
        pl->state_free(priv, st);
}

static void test_canonical_bytes(void **unused) {
        enc_conf_t *conf = st_conf("signals=active_days:1,session:1,"
                                   "discovery_habit:1,composite:1",
                                   "signal.composite.1.components=session=1,"
                                   "active_days/7d=1,discovery_habit=5",
                                   NULL);
        st_engine_t *eng = st_engine_new(conf);
        const int64_t h = HOUR;
        static const char *const lng =
                "a-subject-long-enough-to-grow-the-block-past-its-room";
        /* Straight there: seq 1 (session), 2 (discovery_habit). */
        const co_step_t a[] = {
                {CO_T + 3 * h, "A"},
                {CO_T + 4 * h, NULL, "session", "s", 0.5},
                {CO_T + 5 * h, NULL, "discovery_habit", "b", 2},
        };
        /* Subjects first, long, then shorter; the cohort put in front of
         * them, long, then replaced; a subject absent (NULL) then
         * present. discovery_habit's x is 2/5 from the start and session's
         * 0.5 from T+1h, so seq 1, 2 there and no update after. */
        const co_step_t b[] = {
                {CO_T, NULL, "discovery_habit", lng, 2},
                {CO_T + 1 * h, NULL, "session", NULL, 0.5},
                {CO_T + 2 * h, "a-long-cohort-name-that-moves-the-subjects"},
                {CO_T + 3 * h, "A"},
                {CO_T + 4 * h, NULL, "session", "s", 0.5},
                {CO_T + 5 * h, NULL, "discovery_habit", "b", 2},
        };
        /* An earlier life (long strings, many updates) expired: the
         * components restart (seq too) and the event is forgotten. */
        const co_step_t c[] = {
                {CO_T - DAY(50), "an-older-cohort"},
                {CO_T - DAY(50), NULL, "discovery_habit", lng, 3},
                {CO_T - DAY(49), NULL, "session", lng, 0.25},
                {CO_T - DAY(48), NULL, "discovery_habit", "zz", 4},
                {CO_T + 4 * h, NULL, "session", "s", 0.5},
                {CO_T + 3 * h + 30 * MIN, "A"},
                {CO_T + 5 * h, NULL, "discovery_habit", "b", 2},
        };
        enc_buf_t ea, eb, ec;
        enc_buf_init(&ea, 0);
        enc_buf_init(&eb, 0);
        enc_buf_init(&ec, 0);
        co_history(eng, a, 3, &ea);
        co_history(eng, b, 6, &eb);
        /* c's event is later (3:30): same state but for event_time */
        co_history(eng, c, 7, &ec);
        /* header 40, slots 24 + 16 + 24, strings "A\0s\0b\0" */
        assert_int_equal(ea.len, 40 + 64 + 6);
        assert_int_equal(eb.len, ea.len);
        assert_memory_equal(eb.data, ea.data, ea.len);
        assert_int_equal(ec.len, ea.len);
        int64_t et;
        memcpy(&et, ec.data + 24, 8);
        ST_I64_EQ("c's event_time", et, CO_T + 3 * h + 30 * MIN);
        memcpy(ec.data + 24, ea.data + 24, 8);
        assert_memory_equal(ec.data, ea.data, ea.len);
        enc_buf_free(&ea);
        enc_buf_free(&eb);
        enc_buf_free(&ec);
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
                cmocka_unit_test(test_v3_layout),
                cmocka_unit_test(test_v3_refuses_corrupt),
                cmocka_unit_test(test_v3_string_caps),
                cmocka_unit_test(test_v2_migrates),
                cmocka_unit_test(test_v1_migrates),
                cmocka_unit_test(test_old_records_refused),
                cmocka_unit_test(test_canonical_bytes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
