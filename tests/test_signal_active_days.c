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

/* The v1 record layout (still read), worked out byte by byte for one
 * play on day 19723 (2024-01-01) with windows "3", cohort "A":
 *   01            version
 *   96 b4 02      svarint today: zig-zag 2 * 19723 = 39446
 *                 = 0x16 + 0x34 << 7 + 2 << 14
 *   01            one window
 *   03 01         N = 3, sequence 1
 *   01 04         one bitmap byte; base = today - 2, so today is bit 2
 *   02 41         cohort "A" (length + 1, bytes)
 * and the v2 block of the same state, which is what is written now:
 *   02 01 02 00               version 2, one window, cohort of 1 byte
 *                             (stored as 1 + length), a zero byte
 *   0b 4d 00 00               i32 today: 19723 = 0x4d0b
 *   00 08 c5 d1 8c 01 00 00   i64 next timer: day 19723 leaves the
 *                             3-day window at the start of day 19726,
 *                             19726 * 86400000 = 1704326400000
 *                             = 0x018cd1c50800
 *   03 00 00 00 00 00 00 00   u16 N = 3, zero padding to 8
 *   01 00 00 00 00 00 00 00   i64 sequence 1
 *   04 00 00 00 00 00 00 00   u64 days: base today - 2, today is bit 2
 *   41 00                     cohort "A" and its NUL
 * The v1 record decodes to the state whose encoding is the v2 block; v1
 * records that are wrong in one place each are refused. */
static const uint8_t ad_v1[] = {0x01, 0x96, 0xb4, 0x02, 0x01, 0x03,
                                0x01, 0x01, 0x04, 0x02, 0x41};
static const uint8_t ad_v2[] = {
        0x02, 0x01, 0x02, 0x00, 0x0b, 0x4d, 0x00, 0x00, /* head */
        0x00, 0x08, 0xc5, 0xd1, 0x8c, 0x01, 0x00, 0x00, /* next */
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* N */
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* seq */
        0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* days */
        0x41, 0x00,                                     /* cohort */
};

static void test_record_layout_and_corruption(void **unused) {
        st_engine_t *eng = ad_engine("3");
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        st_user_t u = {.id = "u1"};
        enc_event_t ev = st_play(AT(0, 12, 0), 30000);
        enc_buf_t b;
        uint8_t bad[sizeof(ad_v1) + 1];
        void *st;

        st_event(eng, &u, &ev, true);
        enc_buf_init(&b, 0);
        assert_int_equal(pl->state_encode(priv, u.state[0], &b), ENC_OK);
        assert_int_equal(b.len, sizeof(ad_v2));
        assert_memory_equal(b.data, ad_v2, sizeof(ad_v2));
        enc_buf_free(&b);

        /* v1 -> v2 */
        assert_int_equal(pl->state_decode(priv, ad_v1, sizeof(ad_v1), &st),
                         ENC_OK);
        assert_int_equal(pl->next_timer(priv, st), DAY(3));
        enc_buf_init(&b, 0);
        assert_int_equal(pl->state_encode(priv, st, &b), ENC_OK);
        assert_int_equal(b.len, sizeof(ad_v2));
        assert_memory_equal(b.data, ad_v2, sizeof(ad_v2));
        enc_buf_free(&b);
        pl->state_free(priv, st);

#define AD_BAD(idx, byte)                                                      \
        do {                                                                   \
                memcpy(bad, ad_v1, sizeof(ad_v1));                             \
                bad[idx] = byte;                                               \
                st = (void *)1;                                                \
                assert_int_equal(                                              \
                        pl->state_decode(priv, bad, sizeof(ad_v1), &st),       \
                        ENC_ERR_CORRUPT);                                      \
                assert_null(st);                                               \
        } while (0)
        AD_BAD(0, 0x02); /* v2's version: not a v2 block */
        AD_BAD(0, 0x03); /* unknown version */
        AD_BAD(4, 0x02); /* two windows, instance has one */
        AD_BAD(5, 0x07); /* window 7, instance has 3 */
        AD_BAD(8, 0x08); /* a day after today */
        AD_BAD(8, 0x00); /* no active day: a state that can never emit */
        AD_BAD(10, 0x00); /* a NUL in the cohort */
#undef AD_BAD
        memcpy(bad, ad_v1, sizeof(ad_v1));
        bad[sizeof(ad_v1)] = 0x00; /* trailing byte */
        assert_int_equal(pl->state_decode(priv, bad, sizeof(bad), &st),
                         ENC_ERR_CORRUPT);
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

/* The v2 block with one check failing each (ad_v2 above). */
static void test_v2_decode_checks_every_byte(void **unused) {
        st_engine_t *eng = ad_engine("3");
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        uint8_t bad[sizeof(ad_v2) + 1], big[40 + 66];
        void *st;

        assert_int_equal(pl->state_decode(priv, ad_v2, sizeof(ad_v2), &st),
                         ENC_OK);
        pl->state_free(priv, st);
#define AD2_BAD(idx, byte)                                                     \
        do {                                                                   \
                memcpy(bad, ad_v2, sizeof(ad_v2));                             \
                bad[idx] = byte;                                               \
                st = (void *)1;                                                \
                assert_int_equal(                                              \
                        pl->state_decode(priv, bad, sizeof(ad_v2), &st),       \
                        ENC_ERR_CORRUPT);                                      \
                assert_null(st);                                               \
        } while (0)
        AD2_BAD(0, 0x03);  /* unknown version */
        AD2_BAD(1, 0x02);  /* two windows, instance has one */
        AD2_BAD(2, 0x03);  /* a 2-byte cohort: the length disagrees */
        AD2_BAD(2, 0x00);  /* no cohort: the length disagrees */
        AD2_BAD(3, 0x01);  /* padding not zero */
        AD2_BAD(7, 0x01);  /* today 16M days on: out of range */
        AD2_BAD(8, 0x01);  /* next timer not the one the days give */
        AD2_BAD(16, 0x07); /* window 7, instance has 3 */
        AD2_BAD(17, 0x01); /* window 259 */
        AD2_BAD(18, 0x01); /* padding after the windows not zero */
        AD2_BAD(23, 0x01); /* the same, last byte */
        AD2_BAD(31, 0x80); /* negative sequence */
        AD2_BAD(31, 0x40); /* sequence over 2^62 */
        AD2_BAD(32, 0x00); /* no active day: a state that can never emit */
        AD2_BAD(32, 0x08); /* a day after today */
        AD2_BAD(39, 0x80); /* bit 63: past max(N), after today */
        AD2_BAD(40, 0xff); /* cohort not UTF-8 */
        AD2_BAD(40, 0x00); /* a NUL in the cohort */
        AD2_BAD(41, 0x42); /* cohort not NUL-terminated */
#undef AD2_BAD
        memcpy(bad, ad_v2, sizeof(ad_v2));
        bad[sizeof(ad_v2)] = 0x00; /* trailing byte */
        assert_int_equal(pl->state_decode(priv, bad, sizeof(bad), &st),
                         ENC_ERR_CORRUPT);
        assert_int_equal(pl->state_decode(priv, bad, 0, &st),
                         ENC_ERR_CORRUPT);
        /* A cohort of 64 bytes is the longest (ENC_LABEL_MAX). */
        memcpy(big, ad_v2, 40);
        memset(big + 40, 'a', 65);
        big[2] = 65;
        big[40 + 64] = '\0';
        assert_int_equal(pl->state_decode(priv, big, 40 + 65, &st), ENC_OK);
        pl->state_free(priv, st);
        big[2] = 66;
        big[40 + 64] = 'a';
        big[40 + 65] = '\0';
        assert_int_equal(pl->state_decode(priv, big, 40 + 66, &st),
                         ENC_ERR_CORRUPT);
        st_engine_destroy(eng);
}

/* A store written before v2: the state of ad_days_013 after its first four
 * plays (windows 3 and 7), as a v1 record written field by field:
 * today = day 1, sequences 2 and 2, active days 0 and 1 (base = today - 6,
 * so bits 5 and 6: 0x60), cohort "C". Read back, it goes on exactly as
 * the state that never left memory: same updates (ids, sequences, cohorts,
 * values) for the rest of the history, and the same v2 bytes. */
static void test_v1_record_migrates(void **unused) {
        st_engine_t *ref = ad_engine("3,7"), *eng = ad_engine("3,7");
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        st_user_t ru = {.id = "u1"}, u = {.id = "u1"};
        enc_event_t ev;
        enc_buf_t b, rb;

        ev = st_play(AT(0, 10, 0), 60000);
        st_event(ref, &ru, &ev, true);
        ev = st_play(AT(0, 12, 0), 30000);
        ev.cohort = "B";
        st_event(ref, &ru, &ev, true);
        ev = st_play(AT(1, 9, 0), 45000);
        st_event(ref, &ru, &ev, true);
        ev = st_play(AT(1, 9, 30), 29999);
        ev.cohort = "C";
        st_event(ref, &ru, &ev, true);
        int before = ref->out.n;

        enc_buf_init(&b, 0);
        enc_buf_put_u8(&b, 1);
        enc_buf_put_svarint(&b, ST_EPOCH_DAY + 1);
        enc_buf_put_varint(&b, 2);
        enc_buf_put_varint(&b, 3);
        enc_buf_put_varint(&b, 2);
        enc_buf_put_varint(&b, 7);
        enc_buf_put_varint(&b, 2);
        enc_buf_put_varint(&b, 1);
        enc_buf_put_u8(&b, 0x60);
        enc_buf_put_str(&b, "C");
        assert_int_equal(pl->state_decode(eng->insts[0].priv, b.data, b.len,
                                          &u.state[0]),
                         ENC_OK);
        enc_buf_free(&b);
        enc_buf_init(&b, 0);
        enc_buf_init(&rb, 0);
        assert_int_equal(pl->state_encode(eng->insts[0].priv, u.state[0], &b),
                         ENC_OK);
        assert_int_equal(pl->state_encode(ref->insts[0].priv, ru.state[0],
                                          &rb),
                         ENC_OK);
        assert_int_equal(b.len, rb.len);
        assert_memory_equal(b.data, rb.data, b.len);
        enc_buf_free(&b);
        enc_buf_free(&rb);

        ev = st_play(AT(3, 20, 0), 31000);
        ev.cohort = "D";
        st_event(ref, &ru, &ev, true);
        st_event(eng, &u, &ev, true);
        st_timers_upto(ref, &ru, DAY(11), true);
        st_timers_upto(eng, &u, DAY(11), true);
        assert_null(ru.state[0]);
        assert_null(u.state[0]);
        /* ad_days_013: 12 updates in all, 4 before the migration */
        assert_int_equal(before, 4);
        assert_int_equal(eng->out.n, ref->out.n - before);
        for (int i = 0; i < eng->out.n; i++) {
                const enc_update_t *a = &ref->out.v[before + i]->u;
                const enc_update_t *c = &eng->out.v[i]->u;
                assert_string_equal(c->update_id, a->update_id);
                assert_string_equal(c->subject, a->subject);
                assert_string_equal(c->cohort, a->cohort);
                assert_int_equal(c->sequence, a->sequence);
                assert_int_equal(c->event_time, a->event_time);
                assert_int_equal(c->window_start, a->window_start);
                assert_int_equal(c->window_end, a->window_end);
                assert_true(c->value == a->value && c->delta == a->delta);
                assert_int_equal(c->final, a->final);
        }
        st_engine_destroy(ref);
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
                cmocka_unit_test(test_v2_decode_checks_every_byte),
                cmocka_unit_test(test_v1_record_migrates),
                cmocka_unit_test(test_bad_windows),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
