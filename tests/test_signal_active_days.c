/*
 * test_signal_active_days.c -- active_days against values worked out by
 * hand from the definition in signals/active_days.c.
 *
 * Days are numbered from 2024-01-01 (DAY(0)); windows of 3 and 7 days keep
 * the hand-work short. Every test runs through sigtest.h's engine, which
 * round-trips the state through its record after every step and checks
 * that every proper prefix of every record fails to decode.
 */
#include "sigtest.h"

static st_engine_t *ad_engine(const char *windows) {
        char kv[64];
        snprintf(kv, sizeof(kv), "signal.active_days.1.windows=%s", windows);
        enc_conf_t *conf = st_conf("signals=active_days:1", kv, NULL);
        st_engine_t *eng = st_engine_new(conf);
        enc_conf_destroy(conf);
        eng->truncate = true;
        return eng;
}

/* Plays on days 0, 1 and 3, then silence. Windows 3 and 7.
 *
 *  d0 10:00 qualified      w3 [-2,0] = {0}       -> 1 (+1)   w7 [-6,0] -> 1
 *  d0 12:00 qualified      same day: nothing
 *  d1 09:00 qualified      w3 [-1,1] = {0,1}     -> 2 (+1)   w7 [-5,1] -> 2
 *  d1 09:30 29 999 ms      not qualified: nothing
 *  watermark DAY(3)        w3 [1,3]  = {1}       -> 1 (-1)   w7 [-3,3] = 2
 *  d3 20:00 qualified      w3 [1,3]  = {1,3}     -> 2 (+1)   w7 [-3,3] -> 3
 *  watermark DAY(4)        w3 [2,4]  = {3}       -> 1 (-1)   w7 [-2,4] = 3
 *  watermark DAY(6)        w3 [4,6]  = {}        -> 0 final  w7 [0,6]  = 3
 *  watermark DAY(7)                                          w7 [1,7]  -> 2
 *  watermark DAY(8)                                          w7 [2,8]  -> 1
 *  watermark DAY(10)                                         w7 [4,10] -> 0
 *                                                            final, freed
 * No update at DAY(5) (w3 [3,5] still {3}) nor DAY(9) (w7 [3,9] = {3}).
 * Windows end at the start of the day after `today`; each subject counts
 * its own sequence. The watermark causes decays, so they carry the cohort
 * of the user's latest play, qualified or not: "C" at DAY(3) (the
 * unqualified play at d1 09:30 is the latest; it counts no day but it is
 * the user's cohort now), "D" after the day-3 play.
 */
static void ad_days_013(bool tight, int64_t flush_at) {
        st_engine_t *eng = ad_engine("3,7");
        st_user_t u = {.id = "u1"};
        enc_event_t ev;
        const enc_update_t *up[32];

        ev = st_play(AT(0, 10, 0), 60000);
        st_event(eng, &u, &ev, tight);
        ev = st_play(AT(0, 12, 0), 30000);
        ev.cohort = "B";
        st_event(eng, &u, &ev, tight);
        ev = st_play(AT(1, 9, 0), 45000);
        st_event(eng, &u, &ev, tight);
        ev = st_play(AT(1, 9, 30), 29999);
        ev.cohort = "C"; /* not qualified, yet the user's cohort now */
        st_event(eng, &u, &ev, tight);
        ev = st_play(AT(3, 20, 0), 31000);
        ev.cohort = "D";
        st_event(eng, &u, &ev, tight);
        st_timers_upto(eng, &u, flush_at, tight);
        assert_null(u.state[0]);

        int n = st_filter(&eng->out, "active_days", up, 32);
        assert_int_equal(n, 12);
        st_check(up[0], (st_exp_t){.subject = "3d",
                                   .cohort = "A",
                                   .ws = DAY(-2),
                                   .we = DAY(1),
                                   .t = AT(0, 10, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 1});
        st_check(up[1], (st_exp_t){.subject = "7d",
                                   .cohort = "A",
                                   .ws = DAY(-6),
                                   .we = DAY(1),
                                   .t = AT(0, 10, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 7,
                                   .hor = 7,
                                   .seq = 1});
        st_check(up[2], (st_exp_t){.subject = "3d",
                                   .cohort = "A",
                                   .ws = DAY(-1),
                                   .we = DAY(2),
                                   .t = AT(1, 9, 0),
                                   .value = 2,
                                   .delta = 1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 2});
        st_check(up[3], (st_exp_t){.subject = "7d",
                                   .cohort = "A",
                                   .ws = DAY(-5),
                                   .we = DAY(2),
                                   .t = AT(1, 9, 0),
                                   .value = 2,
                                   .delta = 1,
                                   .obs = 7,
                                   .hor = 7,
                                   .seq = 2});
        st_check(up[4], (st_exp_t){.subject = "3d",
                                   .cohort = "C",
                                   .ws = DAY(1),
                                   .we = DAY(4),
                                   .t = DAY(3),
                                   .value = 1,
                                   .delta = -1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 3});
        st_check(up[5], (st_exp_t){.subject = "3d",
                                   .cohort = "D",
                                   .ws = DAY(1),
                                   .we = DAY(4),
                                   .t = AT(3, 20, 0),
                                   .value = 2,
                                   .delta = 1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 4});
        st_check(up[6], (st_exp_t){.subject = "7d",
                                   .cohort = "D",
                                   .ws = DAY(-3),
                                   .we = DAY(4),
                                   .t = AT(3, 20, 0),
                                   .value = 3,
                                   .delta = 1,
                                   .obs = 7,
                                   .hor = 7,
                                   .seq = 3});
        st_check(up[7], (st_exp_t){.subject = "3d",
                                   .cohort = "D",
                                   .ws = DAY(2),
                                   .we = DAY(5),
                                   .t = DAY(4),
                                   .value = 1,
                                   .delta = -1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 5});
        st_check(up[8], (st_exp_t){.subject = "3d",
                                   .cohort = "D",
                                   .ws = DAY(4),
                                   .we = DAY(7),
                                   .t = DAY(6),
                                   .value = 0,
                                   .delta = -1,
                                   .obs = 3,
                                   .hor = 3,
                                   .final = true,
                                   .seq = 6});
        st_check(up[9], (st_exp_t){.subject = "7d",
                                   .cohort = "D",
                                   .ws = DAY(1),
                                   .we = DAY(8),
                                   .t = DAY(7),
                                   .value = 2,
                                   .delta = -1,
                                   .obs = 7,
                                   .hor = 7,
                                   .seq = 4});
        st_check(up[10], (st_exp_t){.subject = "7d",
                                    .cohort = "D",
                                    .ws = DAY(2),
                                    .we = DAY(9),
                                    .t = DAY(8),
                                    .value = 1,
                                    .delta = -1,
                                    .obs = 7,
                                    .hor = 7,
                                    .seq = 5});
        st_check(up[11], (st_exp_t){.subject = "7d",
                                    .cohort = "D",
                                    .ws = DAY(4),
                                    .we = DAY(11),
                                    .t = DAY(10),
                                    .value = 0,
                                    .delta = -1,
                                    .obs = 7,
                                    .hor = 7,
                                    .final = true,
                                    .seq = 6});
        for (int i = 0; i < n; i++)
                assert_string_equal(up[i]->user_id, "u1");
        st_engine_destroy(eng);
}

/* The watermark passes every day end one timer at a time. */
static void test_days_013_decay_day_by_day(void **unused) {
        ad_days_013(true, DAY(400));
}

/* The same log, but the watermark jumps: one on_timer at each event's
 * time and then a single on_timer 400 days ahead. Each boundary is still
 * worked through in order and stamped with its own time, so the updates
 * are the same twelve. */
static void test_days_013_one_timer_far_ahead(void **unused) {
        ad_days_013(false, DAY(400));
}

/* 23:59:59.999 and 00:00:00.000 are different days; 00:00:00.000 and
 * 23:59:59.999 of the same date are one. */
static void test_day_boundaries(void **unused) {
        st_engine_t *eng = ad_engine("3");
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        enc_event_t ev;

        ev = st_play(DAY(0), 30000); /* 00:00:00.000 of day 0 */
        st_event(eng, &u, &ev, true);
        ev = st_play(DAY(1) - 1, 30000); /* 23:59:59.999 of day 0 */
        st_event(eng, &u, &ev, true);
        ev = st_play(DAY(1), 30000); /* 00:00:00.000 of day 1 */
        st_event(eng, &u, &ev, true);
        /* A play exactly at DAY(3): the timer at DAY(3) (day 0 leaves the
         * window) runs before it. */
        ev = st_play(DAY(3), 30000);
        st_event(eng, &u, &ev, true);

        int n = st_filter(&eng->out, "active_days", up, 8);
        assert_int_equal(n, 4);
        st_check(up[0], (st_exp_t){.subject = "3d",
                                   .cohort = "A",
                                   .ws = DAY(-2),
                                   .we = DAY(1),
                                   .t = DAY(0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 1});
        st_check(up[1], (st_exp_t){.subject = "3d",
                                   .cohort = "A",
                                   .ws = DAY(-1),
                                   .we = DAY(2),
                                   .t = DAY(1),
                                   .value = 2,
                                   .delta = 1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 2});
        st_check(up[2], (st_exp_t){.subject = "3d",
                                   .cohort = "A",
                                   .ws = DAY(1),
                                   .we = DAY(4),
                                   .t = DAY(3),
                                   .value = 1,
                                   .delta = -1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 3});
        st_check(up[3], (st_exp_t){.subject = "3d",
                                   .cohort = "A",
                                   .ws = DAY(1),
                                   .we = DAY(4),
                                   .t = DAY(3),
                                   .value = 2,
                                   .delta = 1,
                                   .obs = 3,
                                   .hor = 3,
                                   .seq = 4});
        /* Days 1 and 3 active: day 1 leaves [.., today] at DAY(4). */
        assert_int_equal(st_next_timer(eng, &u), DAY(4));
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

/* Default configuration: subjects "7d" and "28d"; qualified.ms is 30000
 * inclusive. Expiry then restarts the sequence at 1. */
static void test_defaults_and_restart(void **unused) {
        enc_conf_t *conf = st_conf("signals=active_days:1", NULL);
        st_engine_t *eng = st_engine_new(conf);
        st_user_t u = {.id = "u9"};
        const enc_update_t *up[16];
        enc_event_t ev;

        ev = st_play(AT(0, 8, 0), 29999);
        st_event(eng, &u, &ev, true);
        assert_null(u.state[0]); /* nothing qualified: no state at all */
        ev = st_play(AT(0, 9, 0), 30000);
        ev.cohort = NULL;
        st_event(eng, &u, &ev, true);
        /* 7d: day 0 leaves at DAY(7) -> 0 final; 28d: at DAY(28). */
        st_timers_upto(eng, &u, DAY(40), true);
        assert_null(u.state[0]);
        ev = st_play(AT(50, 9, 0), 40000);
        st_event(eng, &u, &ev, true);

        int n = st_filter(&eng->out, "active_days", up, 16);
        assert_int_equal(n, 6);
        st_check(up[0], (st_exp_t){.subject = "7d",
                                   .ws = DAY(-6),
                                   .we = DAY(1),
                                   .t = AT(0, 9, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 7,
                                   .hor = 7,
                                   .seq = 1});
        st_check(up[1], (st_exp_t){.subject = "28d",
                                   .ws = DAY(-27),
                                   .we = DAY(1),
                                   .t = AT(0, 9, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 28,
                                   .hor = 28,
                                   .seq = 1});
        st_check(up[2], (st_exp_t){.subject = "7d",
                                   .ws = DAY(1),
                                   .we = DAY(8),
                                   .t = DAY(7),
                                   .value = 0,
                                   .delta = -1,
                                   .obs = 7,
                                   .hor = 7,
                                   .final = true,
                                   .seq = 2});
        st_check(up[3], (st_exp_t){.subject = "28d",
                                   .ws = DAY(1),
                                   .we = DAY(29),
                                   .t = DAY(28),
                                   .value = 0,
                                   .delta = -1,
                                   .obs = 28,
                                   .hor = 28,
                                   .final = true,
                                   .seq = 2});
        st_check(up[4], (st_exp_t){.subject = "7d",
                                   .cohort = "A",
                                   .ws = DAY(44),
                                   .we = DAY(51),
                                   .t = AT(50, 9, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 7,
                                   .hor = 7,
                                   .seq = 1});
        st_check(up[5], (st_exp_t){.subject = "28d",
                                   .cohort = "A",
                                   .ws = DAY(23),
                                   .we = DAY(51),
                                   .t = AT(50, 9, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 28,
                                   .hor = 28,
                                   .seq = 1});
        /* Same (user, subject, sequence), different event time: the ids
         * differ. */
        assert_string_not_equal(up[0]->update_id, up[4]->update_id);
        st_user_free(eng, &u);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

/* The record layout, worked out byte by byte for one play on day 19723
 * (2024-01-01) with windows "3", cohort "A":
 *   01            version
 *   96 b4 02      svarint today: zig-zag 2 * 19723 = 39446
 *                 = 0x16 + 0x34 << 7 + 2 << 14
 *   01            one window
 *   03 01         N = 3, sequence 1
 *   01 04         one bitmap byte; base = today - 2, so today is bit 2
 *   02 41         cohort "A" (length + 1, bytes)
 * and decodes of records that are wrong in one place each. */
static void test_record_layout_and_corruption(void **unused) {
        static const uint8_t want[] = {0x01, 0x96, 0xb4, 0x02, 0x01, 0x03,
                                       0x01, 0x01, 0x04, 0x02, 0x41};
        st_engine_t *eng = ad_engine("3");
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        st_user_t u = {.id = "u1"};
        enc_event_t ev = st_play(AT(0, 12, 0), 30000);
        enc_buf_t b;
        uint8_t bad[sizeof(want) + 1];
        void *st;

        st_event(eng, &u, &ev, true);
        enc_buf_init(&b, 0);
        assert_int_equal(pl->state_encode(priv, u.state[0], &b), ENC_OK);
        assert_int_equal(b.len, sizeof(want));
        assert_memory_equal(b.data, want, sizeof(want));
        enc_buf_free(&b);

#define AD_BAD(idx, byte)                                                      \
        do {                                                                   \
                memcpy(bad, want, sizeof(want));                               \
                bad[idx] = byte;                                               \
                st = (void *)1;                                                \
                assert_int_equal(                                              \
                        pl->state_decode(priv, bad, sizeof(want), &st),        \
                        ENC_ERR_CORRUPT);                                      \
                assert_null(st);                                               \
        } while (0)
        AD_BAD(0, 0x02); /* unknown version */
        AD_BAD(4, 0x02); /* two windows, instance has one */
        AD_BAD(5, 0x07); /* window 7, instance has 3 */
        AD_BAD(8, 0x08); /* a day after today */
        AD_BAD(8, 0x00); /* no active day: a state that can never emit */
#undef AD_BAD
        memcpy(bad, want, sizeof(want));
        bad[sizeof(want)] = 0x00; /* trailing byte */
        assert_int_equal(pl->state_decode(priv, bad, sizeof(bad), &st),
                         ENC_ERR_CORRUPT);
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

/* Window lists the plug-in refuses at init, naming the key. */
static void test_bad_windows(void **unused) {
        static const char *const bad[] = {"7,7", "1,2,3,4,5,6,7,8,9"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char kv[64], errstr[256];
                enc_sig_instance_t *insts;
                int n;
                snprintf(kv, sizeof(kv), "signal.active_days.1.windows=%s",
                         bad[i]);
                enc_conf_t *conf = st_conf("signals=active_days:1", kv, NULL);
                assert_int_equal(enc_signals_instantiate(conf, &insts, &n,
                                                         errstr,
                                                         sizeof(errstr)),
                                 ENC_ERR_CONFIG);
                assert_non_null(strstr(errstr, "signal.active_days.1.windows"));
                enc_conf_destroy(conf);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_days_013_decay_day_by_day),
                cmocka_unit_test(test_days_013_one_timer_far_ahead),
                cmocka_unit_test(test_day_boundaries),
                cmocka_unit_test(test_defaults_and_restart),
                cmocka_unit_test(test_record_layout_and_corruption),
                cmocka_unit_test(test_bad_windows),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
