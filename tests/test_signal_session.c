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

/* The v2 block, worked out byte by byte for the open session after p1, p2
 * and p3 of se_two_sessions (first 10:00, last 10:05 on 2024-01-01, 3
 * plays, 1 skip, 2 completed, 200000 + 10000 + 180000 = 390000 ms played,
 * cohort "A"):
 *   02 02 00 00 00 00 00 00   version 2, cohort of 1 byte (1 + length),
 *                             six zero bytes
 *   00 45 77 c4 8c 01 00 00   i64 first: 19723 * 86400000 + 10 * 3600000
 *                             = 1704103200000 = 0x018cc4774500
 *   e0 d8 7b c4 8c 01 00 00   i64 last: first + 300000 = 0x018cc47bd8e0
 *   03 00 00 00 00 00 00 00   plays
 *   01 00 00 00 00 00 00 00   skips
 *   02 00 00 00 00 00 00 00   completed
 *   70 f3 05 00 00 00 00 00   ms_played 390000 = 0x05f370
 *   41 00                     cohort "A" and its NUL */
static const uint8_t se_v2[] = {
        0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* head */
        0x00, 0x45, 0x77, 0xc4, 0x8c, 0x01, 0x00, 0x00, /* first */
        0xe0, 0xd8, 0x7b, 0xc4, 0x8c, 0x01, 0x00, 0x00, /* last */
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* plays */
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* skips */
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* completed */
        0x70, 0xf3, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, /* ms_played */
        0x41, 0x00,                                     /* cohort */
};

/* p1..p3 of se_two_sessions. */
static void se_first_three(st_engine_t *eng, st_user_t *u) {
        enc_event_t ev;
        ev = se_play(AT(0, 10, 0), 200000, 200000, ENC_END_TRACK_DONE);
        st_event(eng, u, &ev, true);
        ev = se_play(AT(0, 10, 4), 10000, 180000, ENC_END_FORWARD);
        st_event(eng, u, &ev, true);
        ev = se_play(AT(0, 10, 5), 180000, 200000, ENC_END_END_PLAY);
        st_event(eng, u, &ev, true);
}

static void test_v2_layout(void **unused) {
        st_engine_t *eng = se_engine(NULL, NULL, NULL);
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        st_user_t u = {.id = "u1"};
        enc_buf_t b;

        se_first_three(eng, &u);
        enc_buf_init(&b, 0);
        assert_int_equal(pl->state_encode(eng->insts[0].priv, u.state[0], &b),
                         ENC_OK);
        assert_int_equal(b.len, sizeof(se_v2));
        assert_memory_equal(b.data, se_v2, sizeof(se_v2));
        enc_buf_free(&b);
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

/* se_v2 with one check failing each. */
static void test_v2_decode_checks_every_byte(void **unused) {
        st_engine_t *eng = se_engine(NULL, NULL, NULL);
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        uint8_t bad[sizeof(se_v2) + 1], big[56 + 66];
        void *st;

        assert_int_equal(pl->state_decode(priv, se_v2, sizeof(se_v2), &st),
                         ENC_OK);
        pl->state_free(priv, st);
#define SE_BAD(idx, byte)                                                      \
        do {                                                                   \
                memcpy(bad, se_v2, sizeof(se_v2));                             \
                bad[idx] = byte;                                               \
                st = (void *)1;                                                \
                assert_int_equal(                                              \
                        pl->state_decode(priv, bad, sizeof(se_v2), &st),       \
                        ENC_ERR_CORRUPT);                                      \
                assert_null(st);                                               \
        } while (0)
        SE_BAD(0, 0x03);  /* unknown version */
        SE_BAD(1, 0x03);  /* a 2-byte cohort: the length disagrees */
        SE_BAD(1, 0x00);  /* no cohort: the length disagrees */
        SE_BAD(2, 0x01);  /* padding not zero */
        SE_BAD(7, 0x01);  /* padding not zero, last byte */
        SE_BAD(14, 0x04); /* first past 2^50 (and after last) */
        SE_BAD(15, 0x80); /* first negative, span past 2^50 */
        SE_BAD(18, 0x00); /* last before first */
        SE_BAD(22, 0x04); /* span past 2^50 */
        SE_BAD(24, 0x00); /* no play */
        SE_BAD(31, 0x80); /* negative plays */
        SE_BAD(29, 0x01); /* plays past 2^40 */
        SE_BAD(32, 0x04); /* skips > plays */
        SE_BAD(39, 0x80); /* negative skips */
        SE_BAD(40, 0x04); /* completed > plays */
        SE_BAD(47, 0x80); /* negative completed */
        SE_BAD(55, 0x80); /* negative ms_played */
        SE_BAD(54, 0x04); /* ms_played past 2^50 */
        SE_BAD(56, 0xff); /* cohort not UTF-8 */
        SE_BAD(56, 0x00); /* a NUL in the cohort */
        SE_BAD(57, 0x42); /* cohort not NUL-terminated */
#undef SE_BAD
        memcpy(bad, se_v2, sizeof(se_v2));
        bad[sizeof(se_v2)] = 0x00; /* trailing byte */
        assert_int_equal(pl->state_decode(priv, bad, sizeof(bad), &st),
                         ENC_ERR_CORRUPT);
        assert_int_equal(pl->state_decode(priv, bad, 0, &st),
                         ENC_ERR_CORRUPT);
        /* A cohort of 64 bytes is the longest (ENC_LABEL_MAX). */
        memcpy(big, se_v2, 56);
        memset(big + 56, 'a', 65);
        big[1] = 65;
        big[56 + 64] = '\0';
        assert_int_equal(pl->state_decode(priv, big, 56 + 65, &st), ENC_OK);
        pl->state_free(priv, st);
        big[1] = 66;
        big[56 + 64] = 'a';
        big[56 + 65] = '\0';
        assert_int_equal(pl->state_decode(priv, big, 56 + 66, &st),
                         ENC_ERR_CORRUPT);
        st_engine_destroy(eng);
}

/* A store written before v2: the session after p1..p3 as a v1 record,
 * written field by field (version, first, span, plays, skips, completed,
 * ms_played, cohort). Read back, it is se_v2 and closes exactly as the
 * session that never left memory, after p4, p5 and p6 of se_two_sessions:
 * the same two updates. */
static void test_v1_record_migrates(void **unused) {
        st_engine_t *ref = se_engine(NULL, NULL, NULL);
        st_engine_t *eng = se_engine(NULL, NULL, NULL);
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        st_user_t ru = {.id = "u1"}, u = {.id = "u1"};
        enc_event_t ev[3];
        enc_buf_t b;

        se_first_three(ref, &ru);
        enc_buf_init(&b, 0);
        enc_buf_put_u8(&b, 1);
        enc_buf_put_svarint(&b, AT(0, 10, 0));
        enc_buf_put_varint(&b, 300000);
        enc_buf_put_varint(&b, 3);
        enc_buf_put_varint(&b, 1);
        enc_buf_put_varint(&b, 2);
        enc_buf_put_varint(&b, 390000);
        enc_buf_put_str(&b, "A");
        assert_int_equal(pl->state_decode(eng->insts[0].priv, b.data, b.len,
                                          &u.state[0]),
                         ENC_OK);
        enc_buf_free(&b);
        enc_buf_init(&b, 0);
        assert_int_equal(pl->state_encode(eng->insts[0].priv, u.state[0], &b),
                         ENC_OK);
        assert_int_equal(b.len, sizeof(se_v2));
        assert_memory_equal(b.data, se_v2, sizeof(se_v2));
        enc_buf_free(&b);

        ev[0] = se_play(AT(0, 10, 34), 20000, 0, ENC_END_BACK);
        ev[1] = se_play(AT(0, 11, 4) - 1, 179999, 200000, ENC_END_FORWARD);
        ev[1].cohort = "B";
        ev[2] = se_play(AT(0, 11, 34) - 1, 5000, 200000, ENC_END_UNKNOWN);
        for (int i = 0; i < 3; i++) {
                st_event(ref, &ru, &ev[i], true);
                st_event(eng, &u, &ev[i], true);
        }
        st_timers_upto(ref, &ru, AT(1, 0, 0), true);
        st_timers_upto(eng, &u, AT(1, 0, 0), true);
        assert_int_equal(ref->out.n, 2);
        assert_int_equal(eng->out.n, 2);
        for (int i = 0; i < 2; i++) {
                const enc_update_t *a = &ref->out.v[i]->u;
                const enc_update_t *c = &eng->out.v[i]->u;
                assert_string_equal(c->update_id, a->update_id);
                assert_string_equal(c->cohort, a->cohort);
                assert_int_equal(c->event_time, a->event_time);
                assert_int_equal(c->window_start, a->window_start);
                assert_int_equal(c->window_end, a->window_end);
                assert_true(c->value == a->value);
                for (int k = 0; k < 5; k++)
                        assert_true(c->components[k].value ==
                                    a->components[k].value);
        }
        /* and they are se_two_sessions' */
        se_components(&eng->out.v[0]->u, 589999 / 60000.0, 5, 2 / 5.0,
                      2 / 5.0, 3839999 / 60000.0);
        st_engine_destroy(ref);
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
                cmocka_unit_test(test_v2_layout),
                cmocka_unit_test(test_v2_decode_checks_every_byte),
                cmocka_unit_test(test_v1_record_migrates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
