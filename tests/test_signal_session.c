/*
 * test_signal_session.c -- session against values worked out by hand from
 * the definition in signals/session.c.
 */
#include "sigtest.h"

static st_engine_t *se_engine(const char *kv1, const char *kv2,
                              const char *kv3) {
        enc_conf_t *conf = st_conf("signals=session:1", kv1, kv2, kv3, NULL);
        st_engine_t *eng = st_engine_new(conf);
        enc_conf_destroy(conf);
        eng->truncate = true;
        return eng;
}

static enc_event_t se_play(int64_t t, int64_t ms, int64_t dur,
                           enc_reason_end_t reason) {
        enc_event_t ev = st_play(t, ms);
        ev.track_duration_ms = dur;
        ev.reason_end = reason;
        return ev;
}

static void se_components(const enc_update_t *u, double listened, double plays,
                          double skip, double completion, double duration) {
        static const char *const names[] = {"listened_minutes", "plays",
                                            "skip_rate", "completion_rate",
                                            "duration_minutes"};
        const double want[] = {listened, plays, skip, completion, duration};
        assert_int_equal(u->component_cnt, 5);
        for (int i = 0; i < 5; i++) {
                assert_string_equal(u->components[i].name, names[i]);
                st_dbl_eq(names[i], u->components[i].value, want[i]);
        }
}

/* Defaults: gap 30 min, skip < 30 s, completed at >= 0.9 of duration.
 *
 *  p1 10:00:00.000  200000 of 200000, TRACK_DONE   completed
 *  p2 10:04:00.000   10000 of 180000, FORWARD      skip (10000 < 30000)
 *  p3 10:05:00.000  180000 of 200000, END_PLAY     completed: 180000 >=
 *                   0.9 * 200000 (= 180000.0 exactly in double)
 *  p4 10:34:00.000   20000, duration 0, BACK       skip; duration unknown
 *  p5 11:03:59.999  179999 of 200000, FORWARD      neither: not < 30000,
 *                   and 179999 < 180000; 29:59.999 after p4: same session
 *  => plays 5, skips 2, completed 2, ms 589999, span 63:59.999
 *     value = completion = 2/5, skip rate 2/5, listened 589999/60000 min,
 *     duration 3839999/60000 min, window [p1, p5], closes at p5 + 30 min
 *     = 11:33:59.999 with p5's cohort "B".
 *  p6 11:33:59.999  exactly gap after p5: not < gap, so a new session;
 *                   the close at the same instant comes first.
 *                   5000 of 200000, UNKNOWN: neither. Closes at 12:03:59.999
 *                   with value 0, plays 1, listened 5000/60000, span 0.
 */
static void se_two_sessions(bool tight) {
        st_engine_t *eng = se_engine(NULL, NULL, NULL);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        enc_event_t ev;
        const int64_t p5 = AT(0, 11, 4) - 1;

        ev = se_play(AT(0, 10, 0), 200000, 200000, ENC_END_TRACK_DONE);
        st_event(eng, &u, &ev, tight);
        ev = se_play(AT(0, 10, 4), 10000, 180000, ENC_END_FORWARD);
        st_event(eng, &u, &ev, tight);
        ev = se_play(AT(0, 10, 5), 180000, 200000, ENC_END_END_PLAY);
        st_event(eng, &u, &ev, tight);
        ev = se_play(AT(0, 10, 34), 20000, 0, ENC_END_BACK);
        st_event(eng, &u, &ev, tight);
        ev = se_play(p5, 179999, 200000, ENC_END_FORWARD);
        ev.cohort = "B";
        st_event(eng, &u, &ev, tight);
        assert_int_equal(eng->out.n, 0); /* nothing until the close */
        assert_int_equal(st_next_timer(eng, &u), p5 + 30 * MIN);
        ev = se_play(p5 + 30 * MIN, 5000, 200000, ENC_END_UNKNOWN);
        st_event(eng, &u, &ev, tight);
        st_timers_upto(eng, &u, DAY(10), tight);
        assert_null(u.state[0]);

        assert_int_equal(st_filter(&eng->out, "session", up, 8), 2);
        st_check(up[0], (st_exp_t){.cohort = "B",
                                   .ws = AT(0, 10, 0),
                                   .we = p5,
                                   .t = p5 + 30 * MIN,
                                   .value = 0.4,
                                   .delta = 0.4,
                                   .final = true,
                                   .seq = 1,
                                   .ncomp = 5});
        se_components(up[0], 589999.0 / 60000, 5, 0.4, 0.4, 3839999.0 / 60000);
        st_check(up[1], (st_exp_t){.cohort = "A",
                                   .ws = p5 + 30 * MIN,
                                   .we = p5 + 30 * MIN,
                                   .t = p5 + 60 * MIN,
                                   .value = 0,
                                   .delta = 0,
                                   .final = true,
                                   .seq = 1,
                                   .ncomp = 5});
        se_components(up[1], 5000.0 / 60000, 1, 0, 0, 0);
        assert_string_not_equal(up[0]->update_id, up[1]->update_id);
        st_engine_destroy(eng);
}

static void test_two_sessions_tight_watermark(void **unused) {
        se_two_sessions(true);
}

static void test_two_sessions_jumping_watermark(void **unused) {
        se_two_sessions(false);
}

/* Configured thresholds: gap 60 s, skip < 5 s, completed at >= half.
 *  t=0      4999 of 200000, FORWARD    skip; 4999 < 100000: not completed
 *  t=59.999 5000 of 200000, BACK       not a skip (5000 is not < 5000);
 *                                      not completed
 *  t=119.998 100000 of 200000, END_PLAY completed (0.5 * 200000)
 *  t=179.997 0 of 0, TRACK_DONE         completed by its reason alone
 * each 59.999 s after the previous: one session of 4 plays,
 * skip 1/4, completion 2/4, listened 4999 + 5000 + 100000 + 0 = 109999 ms, span
 * 179997 ms. */
static void test_configured_thresholds(void **unused) {
        st_engine_t *eng = se_engine("signal.session.1.gap.ms=60000",
                                     "signal.session.1.skip.ms=5000",
                                     "signal.session.1.complete.ratio=0.5");
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[4];
        const int64_t t0 = AT(3, 23, 58);
        enc_event_t ev;

        ev = se_play(t0, 4999, 200000, ENC_END_FORWARD);
        st_event(eng, &u, &ev, true);
        ev = se_play(t0 + 59999, 5000, 200000, ENC_END_BACK);
        st_event(eng, &u, &ev, true);
        ev = se_play(t0 + 2 * 59999, 100000, 200000, ENC_END_END_PLAY);
        st_event(eng, &u, &ev, true);
        ev = se_play(t0 + 3 * 59999, 0, 0, ENC_END_TRACK_DONE);
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, t0 + 3 * 59999 + 60000, true);
        assert_null(u.state[0]);

        assert_int_equal(st_filter(&eng->out, "session", up, 4), 1);
        st_check(up[0], (st_exp_t){.cohort = "A",
                                   .ws = t0,
                                   .we = t0 + 179997,
                                   .t = t0 + 179997 + 60000,
                                   .value = 0.5,
                                   .delta = 0.5,
                                   .final = true,
                                   .seq = 1,
                                   .ncomp = 5});
        se_components(up[0], 109999.0 / 60000, 4, 0.25, 0.5, 179997.0 / 60000);
        st_engine_destroy(eng);
}

/* A track of unknown length (track_duration_ms = 0) completes only when
 * it ended TRACK_DONE: "ms_played >= 0.9 x duration" would hold for any
 * play of a zero duration, so the ratio test needs a known duration.
 *  p1 10:00  250000 ms of 0, END_PLAY   not completed (long, but unknown)
 *  p2 10:05    1000 ms of 0, TRACK_DONE completed by its reason
 *  p3 10:06       0 ms of 0, LOGOUT     not completed; not a skip
 * => plays 3, completed 1, skips 0, listened 251000 ms, span 6 min;
 *    value 1/3, closes at 10:36. */
static void test_zero_length_track(void **unused) {
        st_engine_t *eng = se_engine(NULL, NULL, NULL);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[4];
        enc_event_t ev;

        ev = se_play(AT(0, 10, 0), 250000, 0, ENC_END_END_PLAY);
        st_event(eng, &u, &ev, true);
        ev = se_play(AT(0, 10, 5), 1000, 0, ENC_END_TRACK_DONE);
        st_event(eng, &u, &ev, true);
        ev = se_play(AT(0, 10, 6), 0, 0, ENC_END_LOGOUT);
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, AT(0, 10, 36), true);
        assert_null(u.state[0]);

        assert_int_equal(st_filter(&eng->out, "session", up, 4), 1);
        st_check(up[0], (st_exp_t){.cohort = "A",
                                   .ws = AT(0, 10, 0),
                                   .we = AT(0, 10, 6),
                                   .t = AT(0, 10, 36),
                                   .value = 1.0 / 3,
                                   .delta = 1.0 / 3,
                                   .final = true,
                                   .seq = 1,
                                   .ncomp = 5});
        se_components(up[0], 251000.0 / 60000, 3, 0, 1.0 / 3, 6);
        st_engine_destroy(eng);
}

/* The cohort a session keeps (the last play's), at the lengths where the
 * state's copy changes form: absent, empty (kept apart from absent), 23
 * bytes (the most kept inline, ENC_SIG_STR_INL), 24 (the first on the
 * heap), 64 (ENC_LABEL_MAX), then back to a short one in the same session
 * (heap to inline). Sessions 31 min apart; each is one play of 60 s that
 * closes 30 min after it with value 0 (60000 < 0.9 * 200000) unless a
 * later play of the same session replaced the cohort. The harness
 * round-trips every state through its record after each step, so each
 * form is also written and read back. */
static void test_cohort_lengths(void **unused) {
        st_engine_t *eng = se_engine(NULL, NULL, NULL);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        enc_event_t ev;
        char c23[24], c24[25], c64[65];
        memset(c23, 'x', 23);
        c23[23] = '\0';
        memset(c24, 'y', 24);
        c24[24] = '\0';
        memset(c64, 'z', 64);
        c64[64] = '\0';
        const char *cohorts[5] = {NULL, "", c23, c24, c64};

        for (int i = 0; i < 5; i++) {
                ev = se_play(AT(0, 10, 0) + i * 31 * MIN, 60000, 200000,
                             ENC_END_END_PLAY);
                ev.cohort = cohorts[i];
                st_event(eng, &u, &ev, true);
        }
        /* the sixth session: c64 then "s" one minute later */
        ev = se_play(AT(0, 10, 0) + 5 * 31 * MIN, 60000, 200000,
                     ENC_END_END_PLAY);
        ev.cohort = c64;
        st_event(eng, &u, &ev, true);
        ev.event_time += MIN;
        ev.cohort = "s";
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(1), true);
        assert_null(u.state[0]);

        assert_int_equal(st_filter(&eng->out, "session", up, 8), 6);
        for (int i = 0; i < 6; i++) {
                int64_t t0 = AT(0, 10, 0) + i * 31 * MIN;
                int64_t last = i < 5 ? t0 : t0 + MIN;
                st_check(up[i], (st_exp_t){.cohort = i < 5 ? cohorts[i] : "s",
                                           .ws = t0,
                                           .we = last,
                                           .t = last + 30 * MIN,
                                           .value = 0,
                                           .delta = 0,
                                           .final = true,
                                           .seq = 1,
                                           .ncomp = 5});
        }
        st_engine_destroy(eng);
}

/* Records that are wrong in one place each, written field by field with
 * the layout in session.c: version, first, span, plays, skips, completed,
 * ms_played, cohort. */
static void test_corrupt_records(void **unused) {
        st_engine_t *eng = se_engine(NULL, NULL, NULL);
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        const struct {
                uint8_t ver;
                int64_t first;
                uint64_t span, plays, skips, completed, ms;
                enc_err_t want;
        } cases[] = {
                {1, AT(0, 10, 0), 60000, 3, 1, 2, 90000, ENC_OK},
                {2, AT(0, 10, 0), 60000, 3, 1, 2, 90000, ENC_ERR_CORRUPT},
                {1, AT(0, 10, 0), 60000, 0, 0, 0, 0, ENC_ERR_CORRUPT},
                {1, AT(0, 10, 0), 60000, 3, 4, 2, 90000, ENC_ERR_CORRUPT},
                {1, AT(0, 10, 0), 60000, 3, 1, 4, 90000, ENC_ERR_CORRUPT},
                {1, AT(0, 10, 0), (uint64_t)1 << 62, 3, 1, 2, 90000,
                 ENC_ERR_CORRUPT},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                enc_buf_t b;
                void *st = NULL;
                enc_buf_init(&b, 0);
                enc_buf_put_u8(&b, cases[i].ver);
                enc_buf_put_svarint(&b, cases[i].first);
                enc_buf_put_varint(&b, cases[i].span);
                enc_buf_put_varint(&b, cases[i].plays);
                enc_buf_put_varint(&b, cases[i].skips);
                enc_buf_put_varint(&b, cases[i].completed);
                enc_buf_put_varint(&b, cases[i].ms);
                enc_buf_put_str(&b, "A");
                assert_int_equal(pl->state_decode(priv, b.data, b.len, &st),
                                 cases[i].want);
                if (st) {
                        /* The valid one closes at first + span + gap. */
                        assert_int_equal(pl->next_timer(priv, st),
                                         AT(0, 10, 0) + 60000 + 30 * MIN);
                        pl->state_free(priv, st);
                }
                enc_buf_free(&b);
        }
        st_engine_destroy(eng);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_two_sessions_tight_watermark),
                cmocka_unit_test(test_two_sessions_jumping_watermark),
                cmocka_unit_test(test_configured_thresholds),
                cmocka_unit_test(test_zero_length_track),
                cmocka_unit_test(test_cohort_lengths),
                cmocka_unit_test(test_corrupt_records),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
