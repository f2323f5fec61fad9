/*
 * test_signal_discovery_habit.c -- discovery_habit against values worked
 * out by hand from the definition in signals/discovery_habit.c.
 *
 * Horizon 5 days and lookback 10 days keep the hand-work short.
 */
#include <xxhash.h>

#include "sigtest.h"

static st_engine_t *dh_engine(const char *kv1, const char *kv2,
                              const char *kv3) {
        enc_conf_t *conf = st_conf("signals=discovery_habit:1",
                                   "signal.discovery_habit.1.horizon.days=5",
                                   kv1, kv2, kv3, NULL);
        st_engine_t *eng = st_engine_new(conf);
        enc_conf_destroy(conf);
        eng->truncate = true;
        return eng;
}

/* A qualified play of artist @p artist (track t-<artist>) from @p src. */
static enc_event_t dh_play(int64_t t, const char *artist, enc_source_t src,
                           const char *rec) {
        enc_event_t ev = st_play(t, 40000);
        static char track[64];
        snprintf(track, sizeof(track), "t-%s", artist);
        ev.artist_id = artist;
        ev.track_id = track;
        ev.source = src;
        ev.recommendation_id = rec;
        return ev;
}

/* Lookback 10 days, horizon 5 (days D0..D0+4, final at DAY(D0+5)).
 *
 *  d0 10:00     x from RECOMMENDATION r1   discovery: value 1, obs 0 (no day
 *                                          of the horizon has ended), seq 1
 *  d0 18:00     x from SEARCH              day 0 already counted
 *  d2 09:00     x, 29 999 ms               not qualified
 *  d2 10:00     x from PLAYLIST, cohort B  engaged day 2: value 2, obs 2
 *                                          (days 0, 1 ended); cohort still A
 *  d2 11:00     x from RECOMMENDATION r2   day 2 already engaged; x is
 *                                          open, so no new discovery
 *  d4 23:59:59.999 x from LIBRARY          day 4 (= D0 + H - 1): value 3,
 *                                          obs 4
 *  watermark DAY(5)                        final: value 3, delta 0, obs 5,
 *                                          event time DAY(5), seq 4
 *  d5 00:00     x from LIBRARY             after the final: nothing
 *  d6 12:00     x from RECOMMENDATION      played on day 5: no discovery
 *  then silence: x's entry (day 6) stops mattering after day 16, so the
 *  state expires at DAY(17).
 * All updates: subject x, rec r1, cohort of the discovering play ("A",
 * though the user has moved to "B" when x re-engages on day 2),
 * window [DAY(0), DAY(5)), horizon 5. */
static void dh_scenario(bool tight) {
        st_engine_t *eng = dh_engine(
                "signal.discovery_habit.1.lookback.days=10", NULL, NULL);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        enc_event_t ev;

        ev = dh_play(AT(0, 10, 0), "x", ENC_SRC_RECOMMENDATION, "r1");
        st_event(eng, &u, &ev, tight);
        ev = dh_play(AT(0, 18, 0), "x", ENC_SRC_SEARCH, NULL);
        ev.cohort = "B";
        st_event(eng, &u, &ev, tight);
        ev = dh_play(AT(2, 9, 0), "x", ENC_SRC_LIBRARY, NULL);
        ev.ms_played = 29999;
        st_event(eng, &u, &ev, tight);
        ev = dh_play(AT(2, 10, 0), "x", ENC_SRC_PLAYLIST, NULL);
        ev.cohort = "B"; /* the user changed cohort since the discovery */
        st_event(eng, &u, &ev, tight);
        ev = dh_play(AT(2, 11, 0), "x", ENC_SRC_RECOMMENDATION, "r2");
        st_event(eng, &u, &ev, tight);
        ev = dh_play(DAY(5) - 1, "x", ENC_SRC_LIBRARY, NULL);
        st_event(eng, &u, &ev, tight);
        ev = dh_play(DAY(5), "x", ENC_SRC_LIBRARY, NULL);
        st_event(eng, &u, &ev, tight);
        ev = dh_play(AT(6, 12, 0), "x", ENC_SRC_RECOMMENDATION, "r3");
        st_event(eng, &u, &ev, tight);
        assert_int_equal(st_next_timer(eng, &u), DAY(17));
        st_timers_upto(eng, &u, DAY(17) - 1, tight);
        assert_non_null(u.state[0]);
        st_timers_upto(eng, &u, DAY(17), tight);
        assert_null(u.state[0]);

        assert_int_equal(st_filter(&eng->out, "discovery_habit", up, 8), 4);
        st_check(up[0], (st_exp_t){.subject = "x",
                                   .rec = "r1",
                                   .cohort = "A",
                                   .ws = DAY(0),
                                   .we = DAY(5),
                                   .t = AT(0, 10, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 0,
                                   .hor = 5,
                                   .seq = 1});
        st_check(up[1], (st_exp_t){.subject = "x",
                                   .rec = "r1",
                                   .cohort = "A",
                                   .ws = DAY(0),
                                   .we = DAY(5),
                                   .t = AT(2, 10, 0),
                                   .value = 2,
                                   .delta = 1,
                                   .obs = 2,
                                   .hor = 5,
                                   .seq = 2});
        st_check(up[2], (st_exp_t){.subject = "x",
                                   .rec = "r1",
                                   .cohort = "A",
                                   .ws = DAY(0),
                                   .we = DAY(5),
                                   .t = DAY(5) - 1,
                                   .value = 3,
                                   .delta = 1,
                                   .obs = 4,
                                   .hor = 5,
                                   .seq = 3});
        st_check(up[3], (st_exp_t){.subject = "x",
                                   .rec = "r1",
                                   .cohort = "A",
                                   .ws = DAY(0),
                                   .we = DAY(5),
                                   .t = DAY(5),
                                   .value = 3,
                                   .delta = 0,
                                   .obs = 5,
                                   .hor = 5,
                                   .final = true,
                                   .seq = 4});
        st_engine_destroy(eng);
}

static void test_discovery_engagement_final_tight(void **unused) {
        dh_scenario(true);
}

static void test_discovery_engagement_final_jumping(void **unused) {
        dh_scenario(false);
}

/* Lookback 10:
 *  d0   y from SEARCH
 *  d10  y from RECOMMENDATION  day 0 = D-L is inside the lookback: no
 *  d21  y from RECOMMENDATION  last play day 10 < 21 - 10: discovery
 *  d30 08:00 z from SEARCH, 09:00 z from RECOMMENDATION: an earlier
 *       qualified play the same day is not "previous days", but it makes
 *       the rec play not the first: no discovery (the documented choice).
 */
static void test_lookback(void **unused) {
        st_engine_t *eng = dh_engine(
                "signal.discovery_habit.1.lookback.days=10", NULL, NULL);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        enc_event_t ev;

        ev = dh_play(AT(0, 12, 0), "y", ENC_SRC_SEARCH, NULL);
        st_event(eng, &u, &ev, true);
        ev = dh_play(AT(10, 12, 0), "y", ENC_SRC_RECOMMENDATION, "r1");
        st_event(eng, &u, &ev, true);
        assert_int_equal(eng->out.n, 0);
        ev = dh_play(AT(21, 12, 0), "y", ENC_SRC_RECOMMENDATION, "r2");
        st_event(eng, &u, &ev, true);
        assert_int_equal(eng->out.n, 1);
        ev = dh_play(AT(30, 8, 0), "z", ENC_SRC_SEARCH, NULL);
        st_event(eng, &u, &ev, true);
        ev = dh_play(AT(30, 9, 0), "z", ENC_SRC_RECOMMENDATION, "r3");
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(100), true);
        assert_null(u.state[0]);

        /* y: discovery on day 21, never engaged again, final at DAY(26). */
        assert_int_equal(st_filter(&eng->out, "discovery_habit", up, 8), 2);
        st_check(up[0], (st_exp_t){.subject = "y",
                                   .rec = "r2",
                                   .cohort = "A",
                                   .ws = DAY(21),
                                   .we = DAY(26),
                                   .t = AT(21, 12, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .obs = 0,
                                   .hor = 5,
                                   .seq = 1});
        st_check(up[1], (st_exp_t){.subject = "y",
                                   .rec = "r2",
                                   .cohort = "A",
                                   .ws = DAY(21),
                                   .we = DAY(26),
                                   .t = DAY(26),
                                   .value = 1,
                                   .delta = 0,
                                   .obs = 5,
                                   .hor = 5,
                                   .final = true,
                                   .seq = 2});
        st_engine_destroy(eng);
}

/* lookback.days = 0: only an earlier play the same day blocks. */
static void test_lookback_zero(void **unused) {
        st_engine_t *eng = dh_engine("signal.discovery_habit.1.lookback.days=0",
                                     NULL, NULL);
        st_user_t u = {.id = "u1"};
        enc_event_t ev;

        ev = dh_play(AT(0, 23, 0), "y", ENC_SRC_SEARCH, NULL);
        st_event(eng, &u, &ev, true);
        /* Day 0's entry matters to day-0 plays only: expires at DAY(1). */
        assert_int_equal(st_next_timer(eng, &u), DAY(1));
        ev = dh_play(AT(0, 23, 30), "y", ENC_SRC_RECOMMENDATION, "r0");
        st_event(eng, &u, &ev, true);
        assert_int_equal(eng->out.n, 0);
        ev = dh_play(AT(1, 0, 30), "y", ENC_SRC_RECOMMENDATION, "r1");
        st_event(eng, &u, &ev, true);
        assert_int_equal(eng->out.n, 1);
        assert_string_equal(eng->out.v[0]->u.recommendation_id, "r1");
        assert_int_equal(eng->out.v[0]->u.window_start, DAY(1));
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

/* item = track, max.items = 2. Searches for tracks b and a on day 0, c on
 * day 1: three entries, so the oldest goes: day 0 ties between a and b,
 * and the one whose interned id (XXH3-64 of the id's bytes, computed
 * here with the library) is smaller is dropped. Then a rec play of the
 * kept one is no discovery (it is remembered) and one of the dropped one
 * is (it was forgotten). */
static void test_cap_drops_oldest_then_smallest_id(void **unused) {
        st_engine_t *eng =
                dh_engine("signal.discovery_habit.1.item=track",
                          "signal.discovery_habit.1.max.items=2", NULL);
        st_user_t u = {.id = "u1"};
        enc_event_t ev;
        bool a_first = XXH3_64bits("a", 1) < XXH3_64bits("b", 1);
        const char *dropped = a_first ? "a" : "b";
        const char *kept = a_first ? "b" : "a";

        ev = dh_play(AT(0, 9, 0), "art", ENC_SRC_SEARCH, NULL);
        ev.track_id = "b";
        st_event(eng, &u, &ev, true);
        ev.track_id = "a";
        ev.event_time = AT(0, 10, 0);
        st_event(eng, &u, &ev, true);
        ev.track_id = "c";
        ev.event_time = AT(1, 10, 0);
        st_event(eng, &u, &ev, true);
        ev.source = ENC_SRC_RECOMMENDATION;
        ev.recommendation_id = "r";
        ev.track_id = kept;
        ev.event_time = AT(1, 11, 0);
        st_event(eng, &u, &ev, true);
        assert_int_equal(eng->out.n, 0);
        ev.track_id = dropped;
        ev.event_time = AT(1, 12, 0);
        st_event(eng, &u, &ev, true);
        assert_int_equal(eng->out.n, 1);
        /* Subject is the track id, not the artist. */
        assert_string_equal(eng->out.v[0]->u.subject, dropped);
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

/* max.items = 1 also caps open discoveries: the second is not started. */
static void test_cap_on_open_discoveries(void **unused) {
        st_engine_t *eng =
                dh_engine("signal.discovery_habit.1.max.items=1", NULL, NULL);
        st_user_t u = {.id = "u1"};
        enc_event_t ev;

        ev = dh_play(AT(0, 9, 0), "a", ENC_SRC_RECOMMENDATION, "r1");
        st_event(eng, &u, &ev, true);
        ev = dh_play(AT(0, 10, 0), "b", ENC_SRC_RECOMMENDATION, "r2");
        st_event(eng, &u, &ev, true);
        st_timers_upto(eng, &u, DAY(200), true);
        assert_null(u.state[0]);
        /* a: discovery and final; b: nothing. */
        assert_int_equal(eng->out.n, 2);
        assert_string_equal(eng->out.v[0]->u.subject, "a");
        assert_string_equal(eng->out.v[1]->u.subject, "a");
        assert_true(eng->out.v[1]->u.final);
        st_engine_destroy(eng);
}

/* Two discoveries whose finals fall on the same timer come out in item
 * order, each with its own sequence. */
static void test_simultaneous_finals_in_item_order(void **unused) {
        st_engine_t *eng = dh_engine(NULL, NULL, NULL);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[8];
        enc_event_t ev;

        ev = dh_play(AT(0, 9, 0), "m", ENC_SRC_RECOMMENDATION, "r1");
        st_event(eng, &u, &ev, false);
        ev = dh_play(AT(0, 10, 0), "k", ENC_SRC_RECOMMENDATION, "r2");
        st_event(eng, &u, &ev, false);
        st_timers_upto(eng, &u, DAY(5), false);
        assert_int_equal(st_filter(&eng->out, "discovery_habit", up, 8), 4);
        st_check(up[2], (st_exp_t){.subject = "k",
                                   .rec = "r2",
                                   .cohort = "A",
                                   .ws = DAY(0),
                                   .we = DAY(5),
                                   .t = DAY(5),
                                   .value = 1,
                                   .obs = 5,
                                   .hor = 5,
                                   .final = true,
                                   .seq = 2});
        st_check(up[3], (st_exp_t){.subject = "m",
                                   .rec = "r1",
                                   .cohort = "A",
                                   .ws = DAY(0),
                                   .we = DAY(5),
                                   .t = DAY(5),
                                   .value = 1,
                                   .obs = 5,
                                   .hor = 5,
                                   .final = true,
                                   .seq = 2});
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

/* Records wrong in one place each, written with the layout in
 * discovery_habit.c (version, lookback entries, open discoveries). */
typedef struct dh_rec_s {
        int nlook;
        const char *look_item[3];
        int64_t look_day[3];
        int ndisc;
        const char *disc_item[2];
        uint64_t seq;
        uint8_t bits; /* first bitmap byte, base D0 */
} dh_rec_t;

static enc_err_t dh_decode(st_engine_t *eng, const dh_rec_t *r) {
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        void *st = NULL;
        enc_buf_t b;
        enc_buf_init(&b, 0);
        enc_buf_put_u8(&b, 1);
        enc_buf_put_varint(&b, (uint64_t)r->nlook);
        for (int i = 0; i < r->nlook; i++) {
                enc_buf_put_str(&b, r->look_item[i]);
                enc_buf_put_svarint(&b, r->look_day[i]);
        }
        enc_buf_put_varint(&b, (uint64_t)r->ndisc);
        for (int i = 0; i < r->ndisc; i++) {
                enc_buf_put_str(&b, r->disc_item[i]);
                enc_buf_put_str(&b, "rec");
                enc_buf_put_str(&b, NULL);
                enc_buf_put_svarint(&b, ST_EPOCH_DAY);
                enc_buf_put_varint(&b, r->seq);
                enc_buf_put_varint(&b, 1);
                enc_buf_put_u8(&b, r->bits);
        }
        enc_err_t err = pl->state_decode(priv, b.data, b.len, &st);
        if (st)
                pl->state_free(priv, st);
        enc_buf_free(&b);
        return err;
}

static void test_corrupt_records(void **unused) {
        st_engine_t *eng =
                dh_engine("signal.discovery_habit.1.max.items=2", NULL, NULL);
        const int64_t d = ST_EPOCH_DAY;
        /* Valid: two entries in order, one discovery with days 0 and 2. */
        dh_rec_t ok = {2, {"a", "b"}, {d, d}, 1, {"a"}, 2, 0x05};
        assert_int_equal(dh_decode(eng, &ok), ENC_OK);
        dh_rec_t r;
        r = ok, r.look_item[0] = "b", r.look_item[1] = "a"; /* unsorted */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.look_item[1] = "a"; /* duplicate */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.nlook = 3, r.look_item[2] = "c", r.look_day[2] = d;
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT); /* > cap */
        r = ok, r.look_item[0] = "";                           /* empty id */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.bits = 0x04; /* day 0 not engaged */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.bits = 0x21; /* day 5 = D0 + H: past the horizon */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.seq = 0; /* the discovery update was emitted: seq >= 1 */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.ndisc = 2, r.disc_item[1] = "a"; /* duplicate discovery */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.nlook = 0, r.ndisc = 0; /* empty: would never expire */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.look_day[0] = (int64_t)1 << 40; /* absurd day */
        assert_int_equal(dh_decode(eng, &r), ENC_ERR_CORRUPT);
        st_engine_destroy(eng);
}

/* A v1 record (lookback ids as strings, sorted by id) decodes into the
 * interned map and encodes as v2: lookback entries (u64be XXH3-64 of the
 * id, svarint day) sorted by hash, then the discovery unchanged. The
 * expected bytes are built here from the layout comment in
 * discovery_habit.c and the library's hashes. The migrated state then
 * behaves as the v1 one did: a rec play of a remembered id ("b", played
 * the day before) is no discovery, one of a new id ("z") is. */
static void test_v1_record_migrates(void **unused) {
        st_engine_t *eng = dh_engine(NULL, NULL, NULL);
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        const int64_t d = ST_EPOCH_DAY;
        enc_buf_t v1, v2, want, disc;
        enc_buf_init(&v1, 0);
        enc_buf_init(&v2, 0);
        enc_buf_init(&want, 0);
        enc_buf_init(&disc, 0);
        /* One open discovery of "a" on day d, days {d}, seq 1. */
        enc_buf_put_varint(&disc, 1);
        enc_buf_put_str(&disc, "a");
        enc_buf_put_str(&disc, "rec");
        enc_buf_put_str(&disc, "A");
        enc_buf_put_svarint(&disc, d);
        enc_buf_put_varint(&disc, 1);
        enc_buf_put_varint(&disc, 1);
        enc_buf_put_u8(&disc, 0x01);

        enc_buf_put_u8(&v1, 1);
        enc_buf_put_varint(&v1, 2);
        enc_buf_put_str(&v1, "a");
        enc_buf_put_svarint(&v1, d);
        enc_buf_put_str(&v1, "b");
        enc_buf_put_svarint(&v1, d + 1);
        assert_int_equal(enc_buf_append(&v1, disc.data, disc.len), ENC_OK);

        uint64_t ha = XXH3_64bits("a", 1), hb = XXH3_64bits("b", 1);
        enc_buf_put_u8(&want, 2);
        enc_buf_put_varint(&want, 2);
        enc_buf_put_u64be(&want, ha < hb ? ha : hb);
        enc_buf_put_svarint(&want, ha < hb ? d : d + 1);
        enc_buf_put_u64be(&want, ha < hb ? hb : ha);
        enc_buf_put_svarint(&want, ha < hb ? d + 1 : d);
        assert_int_equal(enc_buf_append(&want, disc.data, disc.len), ENC_OK);

        void *st = NULL;
        assert_int_equal(pl->state_decode(priv, v1.data, v1.len, &st), ENC_OK);
        assert_int_equal(pl->state_encode(priv, st, &v2), ENC_OK);
        assert_int_equal(v2.len, want.len);
        assert_memory_equal(v2.data, want.data, want.len);
        /* v2 reads back to the same bytes. */
        void *st2 = NULL;
        assert_int_equal(pl->state_decode(priv, v2.data, v2.len, &st2),
                         ENC_OK);
        enc_buf_reset(&v1);
        assert_int_equal(pl->state_encode(priv, st2, &v1), ENC_OK);
        assert_int_equal(v1.len, want.len);
        assert_memory_equal(v1.data, want.data, want.len);
        pl->state_free(priv, st2);

        st_user_t u = {.id = "u1"};
        u.state[0] = st;
        enc_event_t ev = dh_play(AT(1, 9, 0), "b", ENC_SRC_RECOMMENDATION,
                                 "r2");
        st_event(eng, &u, &ev, true);
        assert_int_equal(st_filter(&eng->out, "discovery_habit", NULL, 0), 0);
        ev = dh_play(AT(1, 10, 0), "z", ENC_SRC_RECOMMENDATION, "r3");
        st_event(eng, &u, &ev, true);
        const enc_update_t *up[2];
        assert_int_equal(st_filter(&eng->out, "discovery_habit", up, 2), 1);
        assert_string_equal(up[0]->subject, "z");
        st_user_free(eng, &u);
        enc_buf_free(&v1);
        enc_buf_free(&v2);
        enc_buf_free(&want);
        enc_buf_free(&disc);
        st_engine_destroy(eng);
}

/* v2 lookback maps: hashes must be strictly increasing and whole. */
static enc_err_t dh_decode_v2(st_engine_t *eng, int n, const uint64_t *h,
                              bool truncate) {
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        enc_buf_t b;
        enc_buf_init(&b, 0);
        enc_buf_put_u8(&b, 2);
        enc_buf_put_varint(&b, (uint64_t)n);
        for (int i = 0; i < n; i++) {
                enc_buf_put_u64be(&b, h[i]);
                enc_buf_put_svarint(&b, ST_EPOCH_DAY);
        }
        enc_buf_put_varint(&b, 0);
        void *st = NULL;
        /* Truncated: the last entry's hash cut to 4 bytes. */
        enc_err_t err = pl->state_decode(priv, b.data,
                                         truncate ? 1 + 1 + 4 : b.len, &st);
        if (st)
                pl->state_free(priv, st);
        enc_buf_free(&b);
        return err;
}

static void test_corrupt_v2_records(void **unused) {
        st_engine_t *eng = dh_engine(NULL, NULL, NULL);
        assert_int_equal(dh_decode_v2(eng, 2, (uint64_t[]){5, 9}, false),
                         ENC_OK);
        assert_int_equal(dh_decode_v2(eng, 2, (uint64_t[]){9, 5}, false),
                         ENC_ERR_CORRUPT);
        assert_int_equal(dh_decode_v2(eng, 2, (uint64_t[]){9, 9}, false),
                         ENC_ERR_CORRUPT);
        assert_int_equal(dh_decode_v2(eng, 1, (uint64_t[]){9}, true),
                         ENC_ERR_CORRUPT);
        st_engine_destroy(eng);
}

/* Past 16 open discoveries the lookup is an ordered search, below it a
 * scan of hashes: 20 discoveries on day 0 (items i00..i19, in reverse
 * order so each goes in front), then on day 1 a play of each, in order:
 * each finds its own discovery and counts engaged day 1 (value 2, delta
 * 1, obs 1, seq 2). Then a play of i05 again the same day: nothing. */
static void test_many_open_discoveries(void **unused) {
        st_engine_t *eng = dh_engine(NULL, NULL, NULL);
        st_user_t u = {.id = "u1"};
        char item[20][8];
        enc_event_t ev;
        for (int i = 19; i >= 0; i--) {
                snprintf(item[i], sizeof(item[i]), "i%02d", i);
                ev = dh_play(AT(0, 1, 19 - i), item[i],
                             ENC_SRC_RECOMMENDATION, "r");
                st_event(eng, &u, &ev, true);
        }
        assert_int_equal(eng->out.n, 20);
        for (int i = 0; i < 20; i++) {
                ev = dh_play(AT(1, 1, i), item[i], ENC_SRC_SEARCH, NULL);
                st_event(eng, &u, &ev, true);
                assert_int_equal(eng->out.n, 21 + i);
                const enc_update_t *up = &eng->out.v[20 + i]->u;
                assert_string_equal(up->subject, item[i]);
                assert_true(up->value == 2 && up->delta == 1);
                assert_int_equal(up->observed_days, 1);
                assert_int_equal(up->sequence, 2);
        }
        ev = dh_play(AT(1, 2, 0), item[5], ENC_SRC_SEARCH, NULL);
        st_event(eng, &u, &ev, true);
        assert_int_equal(eng->out.n, 40);
        st_user_free(eng, &u);
        st_engine_destroy(eng);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_discovery_engagement_final_tight),
                cmocka_unit_test(test_discovery_engagement_final_jumping),
                cmocka_unit_test(test_lookback),
                cmocka_unit_test(test_lookback_zero),
                cmocka_unit_test(test_cap_drops_oldest_then_smallest_id),
                cmocka_unit_test(test_cap_on_open_discoveries),
                cmocka_unit_test(test_simultaneous_finals_in_item_order),
                cmocka_unit_test(test_corrupt_records),
                cmocka_unit_test(test_v1_record_migrates),
                cmocka_unit_test(test_corrupt_v2_records),
                cmocka_unit_test(test_many_open_discoveries),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
