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

/* ---- the v3 layout, written here from the layout comment in
 * discovery_habit.c: a 40-byte header, 16-byte lookback entries sorted by
 * XXH3-64 of the id, 24-byte discovery entries each followed by W bitmap
 * words (W = 1 for a horizon of 5), sorted by item, then the strings with
 * their NULs, packed in entry order. All little-endian, as the machine. */
typedef struct tv3_hdr_s {
        uint8_t ver, words;
        uint16_t zero16;
        uint32_t nlook, ndisc, zero32;
        int64_t lmin, lmax, dmin;
} tv3_hdr_t;

typedef struct tv3_look_s {
        uint64_t h;
        int64_t day;
} tv3_look_t;

typedef struct tv3_disc_s {
        uint64_t h;
        int32_t d0;
        uint16_t seq, ilen;
        uint32_t soff;
        uint16_t rlen, clen;
} tv3_disc_t;

/* A logical state: lookback ids and days, discoveries in item order. */
typedef struct tv3_s {
        int nlook;
        const char *look_item[4];
        int64_t look_day[4];
        int ndisc;
        const char *item[3], *rec[3], *co[3];
        int64_t d0[3];
        uint16_t seq[3];
        uint64_t bits[3]; /* word 0; the other words are zero */
        int words;        /* 0: 1 */
} tv3_t;

static uint64_t tv3_hash(const char *s) {
        return XXH3_64bits(s, strlen(s));
}

static uint16_t tv3_len(const char *s) {
        return s ? (uint16_t)(strlen(s) + 1) : 0;
}

/* Appends the v3 bytes of @p r to @p b. */
static void tv3_build(const tv3_t *r, enc_buf_t *b) {
        int words = r->words ? r->words : 1;
        tv3_hdr_t hd = {.ver = 3,
                        .words = (uint8_t)words,
                        .nlook = (uint32_t)r->nlook,
                        .ndisc = (uint32_t)r->ndisc};
        tv3_look_t look[4];
        for (int i = 0; i < r->nlook; i++) {
                look[i] =
                        (tv3_look_t){tv3_hash(r->look_item[i]), r->look_day[i]};
                if (!i || look[i].day < hd.lmin)
                        hd.lmin = look[i].day;
                if (!i || look[i].day > hd.lmax)
                        hd.lmax = look[i].day;
        }
        for (int i = 1; i < r->nlook; i++) /* insertion sort by hash */
                for (int j = i; j > 0 && look[j - 1].h > look[j].h; j--) {
                        tv3_look_t t = look[j];
                        look[j] = look[j - 1];
                        look[j - 1] = t;
                }
        for (int i = 0; i < r->ndisc; i++)
                if (!i || r->d0[i] < hd.dmin)
                        hd.dmin = r->d0[i];
        assert_int_equal(enc_buf_append(b, &hd, sizeof(hd)), ENC_OK);
        for (int i = 0; i < r->nlook; i++)
                assert_int_equal(enc_buf_append(b, &look[i], sizeof(look[i])),
                                 ENC_OK);
        uint32_t soff = 0;
        for (int i = 0; i < r->ndisc; i++) {
                tv3_disc_t d = {.h = tv3_hash(r->item[i]),
                                .d0 = (int32_t)r->d0[i],
                                .seq = r->seq[i],
                                .ilen = tv3_len(r->item[i]),
                                .soff = soff,
                                .rlen = tv3_len(r->rec[i]),
                                .clen = tv3_len(r->co[i])};
                soff += (uint32_t)d.ilen + d.rlen + d.clen;
                assert_int_equal(enc_buf_append(b, &d, sizeof(d)), ENC_OK);
                for (int k = 0; k < words; k++) {
                        uint64_t w = k ? 0 : r->bits[i];
                        assert_int_equal(enc_buf_append(b, &w, sizeof(w)),
                                         ENC_OK);
                }
        }
        for (int i = 0; i < r->ndisc; i++) {
                const char *sv[3] = {r->item[i], r->rec[i], r->co[i]};
                for (int k = 0; k < 3; k++)
                        if (sv[k])
                                assert_int_equal(
                                        enc_buf_append(b, sv[k],
                                                       strlen(sv[k]) + 1),
                                        ENC_OK);
        }
}

/* The encoding of @p st, checked against @p want byte for byte. */
static void tv3_expect(st_engine_t *eng, const void *st,
                       const enc_buf_t *want) {
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        enc_buf_t got;
        enc_buf_init(&got, 0);
        assert_int_equal(pl->state_encode(eng->insts[0].priv, st, &got),
                         ENC_OK);
        assert_int_equal(got.len, want->len);
        assert_memory_equal(got.data, want->data, want->len);
        enc_buf_free(&got);
}

/* A v1 record (lookback ids as strings, sorted by id) decodes into the
 * interned map and encodes as v3: the expected bytes are built here from
 * the layout (tv3_build) and the library's hashes. v3 reads back to the
 * same bytes. The migrated state then behaves as the v1 one did: a rec
 * play of a remembered id ("b", played the day before) is no discovery,
 * one of a new id ("z") is. */
static void test_v1_record_migrates(void **unused) {
        st_engine_t *eng = dh_engine(NULL, NULL, NULL);
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        const int64_t d = ST_EPOCH_DAY;
        enc_buf_t v1, want;
        enc_buf_init(&v1, 0);
        enc_buf_init(&want, 0);
        /* One open discovery of "a" on day d, days {d}, seq 1. */
        enc_buf_put_u8(&v1, 1);
        enc_buf_put_varint(&v1, 2);
        enc_buf_put_str(&v1, "a");
        enc_buf_put_svarint(&v1, d);
        enc_buf_put_str(&v1, "b");
        enc_buf_put_svarint(&v1, d + 1);
        enc_buf_put_varint(&v1, 1);
        enc_buf_put_str(&v1, "a");
        enc_buf_put_str(&v1, "rec");
        enc_buf_put_str(&v1, "A");
        enc_buf_put_svarint(&v1, d);
        enc_buf_put_varint(&v1, 1);
        enc_buf_put_varint(&v1, 1);
        enc_buf_put_u8(&v1, 0x01);

        tv3_t r = {2,       {"a", "b"}, {d, d + 1}, 1,   {"a"},
                   {"rec"}, {"A"},      {d},        {1}, {0x01}};
        tv3_build(&r, &want);

        void *st = NULL;
        assert_int_equal(pl->state_decode(priv, v1.data, v1.len, &st), ENC_OK);
        tv3_expect(eng, st, &want);
        /* v3 reads back to the same bytes. */
        void *st2 = NULL;
        assert_int_equal(pl->state_decode(priv, want.data, want.len, &st2),
                         ENC_OK);
        tv3_expect(eng, st2, &want);
        pl->state_free(priv, st2);

        st_user_t u = {.id = "u1"};
        u.state[0] = st;
        enc_event_t ev =
                dh_play(AT(1, 9, 0), "b", ENC_SRC_RECOMMENDATION, "r2");
        st_event(eng, &u, &ev, true);
        assert_int_equal(st_filter(&eng->out, "discovery_habit", NULL, 0), 0);
        ev = dh_play(AT(1, 10, 0), "z", ENC_SRC_RECOMMENDATION, "r3");
        st_event(eng, &u, &ev, true);
        const enc_update_t *up[2];
        assert_int_equal(st_filter(&eng->out, "discovery_habit", up, 2), 1);
        assert_string_equal(up[0]->subject, "z");
        st_user_free(eng, &u);
        enc_buf_free(&v1);
        enc_buf_free(&want);
        st_engine_destroy(eng);
}

/* The state after dh_history, as logical content (lookback 10, horizon
 * 5): x searched on day 0, a discovered on day 0 (r1) and engaged on day
 * 2, b discovered on day 1 with no recommendation id. */
static tv3_t dh_history_state(void) {
        const int64_t d = ST_EPOCH_DAY;
        return (tv3_t){3,           {"a", "x", "b"}, {d + 2, d, d + 1},
                       2,           {"a", "b"},      {"r1", NULL},
                       {"A", "A"},  {d, d + 1},      {2, 1},
                       {0x05, 0x01}};
}

static void dh_history(st_engine_t *eng, st_user_t *u) {
        enc_event_t ev =
                dh_play(AT(0, 10, 0), "a", ENC_SRC_RECOMMENDATION, "r1");
        st_event(eng, u, &ev, true);
        ev = dh_play(AT(0, 11, 0), "x", ENC_SRC_SEARCH, NULL);
        st_event(eng, u, &ev, true);
        ev = dh_play(AT(1, 9, 0), "b", ENC_SRC_RECOMMENDATION, NULL);
        st_event(eng, u, &ev, true);
        ev = dh_play(AT(2, 9, 0), "a", ENC_SRC_LIBRARY, NULL);
        st_event(eng, u, &ev, true);
}

/* What follows dh_history in the migration test. */
static void dh_after(st_engine_t *eng, st_user_t *u) {
        enc_event_t ev = dh_play(AT(3, 9, 0), "b", ENC_SRC_SEARCH, NULL);
        st_event(eng, u, &ev, true);
        ev = dh_play(AT(3, 10, 0), "y", ENC_SRC_RECOMMENDATION, "r4");
        st_event(eng, u, &ev, true);
        ev = dh_play(AT(3, 11, 0), "x", ENC_SRC_RECOMMENDATION, "r5");
        st_event(eng, u, &ev, true);
        st_timers_upto(eng, u, DAY(30), true);
        assert_null(u->state[0]);
}

/* A v2 record of dh_history's state, written by hand in v2's layout
 * (lookback (u64be hash, svarint day) sorted by hash; discoveries as
 * strings, svarint d0, varint seq, daybits), decodes into exactly the v3
 * bytes of that state (tv3_build), which are also what the live history
 * left. The migrated state then gives the same updates as the live one,
 * update ids included, worked out by hand:
 *  d3 09:00 b (SEARCH)       b engaged day 2 of its horizon (D0 = 1):
 *                            value 2, delta 1, obs 2, seq 2, rec NULL
 *  d3 10:00 y (REC r4)       discovery of y: value 1, obs 0, seq 1
 *  d3 11:00 x (REC r5)       x played on day 0, within 10 days: nothing
 *  DAY(5)  final of a        value 2 (days 0, 2), obs 5, seq 3
 *  DAY(6)  final of b        value 2, seq 3
 *  DAY(8)  final of y        value 1, seq 2
 * then the lookback expires (y's entry, day 3, at DAY(14)). */
static void test_v2_record_migrates_same_updates(void **unused) {
        const char *lb = "signal.discovery_habit.1.lookback.days=10";
        st_engine_t *live = dh_engine(lb, NULL, NULL);
        st_engine_t *mig = dh_engine(lb, NULL, NULL);
        const enc_signal_plugin_t *pl = mig->insts[0].plugin;
        const int64_t d = ST_EPOCH_DAY;
        st_user_t lu = {.id = "u1"}, mu = {.id = "u1"};
        enc_buf_t v2, want;
        enc_buf_init(&v2, 0);
        enc_buf_init(&want, 0);
        tv3_t r = dh_history_state();
        tv3_build(&r, &want);

        dh_history(live, &lu);
        assert_int_equal(live->out.n, 3);
        tv3_expect(live, lu.state[0], &want);

        struct {
                const char *id;
                int64_t day;
        } look[3] = {{"a", d + 2}, {"x", d}, {"b", d + 1}};
        for (int i = 1; i < 3; i++) /* by hash */
                for (int j = i;
                     j > 0 && tv3_hash(look[j - 1].id) > tv3_hash(look[j].id);
                     j--) {
                        __typeof__(look[0]) t = look[j];
                        look[j] = look[j - 1];
                        look[j - 1] = t;
                }
        enc_buf_put_u8(&v2, 2);
        enc_buf_put_varint(&v2, 3);
        for (int i = 0; i < 3; i++) {
                enc_buf_put_u64be(&v2, tv3_hash(look[i].id));
                enc_buf_put_svarint(&v2, look[i].day);
        }
        enc_buf_put_varint(&v2, 2);
        enc_buf_put_str(&v2, "a");
        enc_buf_put_str(&v2, "r1");
        enc_buf_put_str(&v2, "A");
        enc_buf_put_svarint(&v2, d);
        enc_buf_put_varint(&v2, 2);
        enc_buf_put_varint(&v2, 1);
        enc_buf_put_u8(&v2, 0x05);
        enc_buf_put_str(&v2, "b");
        enc_buf_put_str(&v2, NULL);
        enc_buf_put_str(&v2, "A");
        enc_buf_put_svarint(&v2, d + 1);
        enc_buf_put_varint(&v2, 1);
        enc_buf_put_varint(&v2, 1);
        enc_buf_put_u8(&v2, 0x01);
        assert_int_equal(pl->state_decode(mig->insts[0].priv, v2.data, v2.len,
                                          &mu.state[0]),
                         ENC_OK);
        tv3_expect(mig, mu.state[0], &want);

        dh_after(live, &lu);
        dh_after(mig, &mu);
        assert_int_equal(live->out.n, 3 + 5);
        assert_int_equal(mig->out.n, 5);
        for (int i = 0; i < 5; i++) {
                const enc_update_t *a = &live->out.v[3 + i]->u;
                const enc_update_t *b = &mig->out.v[i]->u;
                st_check(b, (st_exp_t){.subject = a->subject,
                                       .rec = a->recommendation_id,
                                       .cohort = a->cohort,
                                       .ws = a->window_start,
                                       .we = a->window_end,
                                       .t = a->event_time,
                                       .value = a->value,
                                       .delta = a->delta,
                                       .obs = a->observed_days,
                                       .hor = a->horizon_days,
                                       .final = a->final,
                                       .seq = a->sequence});
                assert_string_equal(a->update_id, b->update_id);
        }
        const enc_update_t **up = (const enc_update_t *[5]){0};
        for (int i = 0; i < 5; i++)
                up[i] = &mig->out.v[i]->u;
        st_check(up[0], (st_exp_t){.subject = "b",
                                   .cohort = "A",
                                   .ws = DAY(1),
                                   .we = DAY(6),
                                   .t = AT(3, 9, 0),
                                   .value = 2,
                                   .delta = 1,
                                   .obs = 2,
                                   .hor = 5,
                                   .seq = 2});
        st_check(up[1], (st_exp_t){.subject = "y",
                                   .rec = "r4",
                                   .cohort = "A",
                                   .ws = DAY(3),
                                   .we = DAY(8),
                                   .t = AT(3, 10, 0),
                                   .value = 1,
                                   .delta = 1,
                                   .hor = 5,
                                   .seq = 1});
        st_check(up[2], (st_exp_t){.subject = "a",
                                   .rec = "r1",
                                   .cohort = "A",
                                   .ws = DAY(0),
                                   .we = DAY(5),
                                   .t = DAY(5),
                                   .value = 2,
                                   .obs = 5,
                                   .hor = 5,
                                   .final = true,
                                   .seq = 3});
        st_check(up[3], (st_exp_t){.subject = "b",
                                   .cohort = "A",
                                   .ws = DAY(1),
                                   .we = DAY(6),
                                   .t = DAY(6),
                                   .value = 2,
                                   .obs = 5,
                                   .hor = 5,
                                   .final = true,
                                   .seq = 3});
        st_check(up[4], (st_exp_t){.subject = "y",
                                   .rec = "r4",
                                   .cohort = "A",
                                   .ws = DAY(3),
                                   .we = DAY(8),
                                   .t = DAY(8),
                                   .value = 1,
                                   .obs = 5,
                                   .hor = 5,
                                   .final = true,
                                   .seq = 2});
        enc_buf_free(&v2);
        enc_buf_free(&want);
        st_engine_destroy(live);
        st_engine_destroy(mig);
}

/* Two histories reaching one logical state give the same bytes (lookback
 * 2, horizon 5):
 *  1: d10 10:00 a (REC r1), 11:00 b (REC r2); d12 and d13 x (SEARCH).
 *  2: d8 m (REC r9, cohort "longer-cohort"), d9 x (SEARCH), d10 10:00 b
 *     (REC r2), 11:00 a (REC r1), d12 and d13 x (SEARCH); at DAY(13) m's
 *     final takes its entry and strings from between a's and b's.
 * The play on day 13 prunes the lookback entries older than 13 - 2 (a, b
 * and m). Left in both: lookback {x: 13}; discoveries a (r1) and b (r2),
 * D0 10, seq 1, day 0 engaged; cohort A. The blocks also grew and shrank
 * by different steps, so their room differs. */
static void test_canonical_bytes(void **unused) {
        const char *lb = "signal.discovery_habit.1.lookback.days=2";
        st_engine_t *e1 = dh_engine(lb, NULL, NULL);
        st_engine_t *e2 = dh_engine(lb, NULL, NULL);
        const int64_t d = ST_EPOCH_DAY;
        st_user_t u1 = {.id = "u1"}, u2 = {.id = "u1"};
        enc_event_t ev;

        ev = dh_play(AT(10, 10, 0), "a", ENC_SRC_RECOMMENDATION, "r1");
        st_event(e1, &u1, &ev, true);
        ev = dh_play(AT(10, 11, 0), "b", ENC_SRC_RECOMMENDATION, "r2");
        st_event(e1, &u1, &ev, true);
        ev = dh_play(AT(12, 11, 0), "x", ENC_SRC_SEARCH, NULL);
        st_event(e1, &u1, &ev, true);
        ev = dh_play(AT(13, 1, 0), "x", ENC_SRC_SEARCH, NULL);
        st_event(e1, &u1, &ev, true);

        ev = dh_play(AT(8, 10, 0), "m", ENC_SRC_RECOMMENDATION, "r9");
        ev.cohort = "longer-cohort";
        st_event(e2, &u2, &ev, true);
        ev = dh_play(AT(9, 10, 0), "x", ENC_SRC_SEARCH, NULL);
        st_event(e2, &u2, &ev, true);
        ev = dh_play(AT(10, 10, 0), "b", ENC_SRC_RECOMMENDATION, "r2");
        st_event(e2, &u2, &ev, true);
        ev = dh_play(AT(10, 11, 0), "a", ENC_SRC_RECOMMENDATION, "r1");
        st_event(e2, &u2, &ev, true);
        ev = dh_play(AT(12, 11, 0), "x", ENC_SRC_SEARCH, NULL);
        st_event(e2, &u2, &ev, true);
        ev = dh_play(AT(13, 1, 0), "x", ENC_SRC_SEARCH, NULL);
        st_event(e2, &u2, &ev, true);
        assert_int_equal(e2->out.n, 4); /* m: discovery, final */

        enc_buf_t want;
        enc_buf_init(&want, 0);
        tv3_t r = {1,          {"x"},        {d + 13},   2,
                   {"a", "b"}, {"r1", "r2"}, {"A", "A"}, {d + 10, d + 10},
                   {1, 1},     {1, 1}};
        tv3_build(&r, &want);
        tv3_expect(e1, u1.state[0], &want);
        tv3_expect(e2, u2.state[0], &want);
        st_user_free(e1, &u1);
        st_user_free(e2, &u2);
        enc_buf_free(&want);
        st_engine_destroy(e1);
        st_engine_destroy(e2);
}

/* Decodes a copy of exactly @p n bytes of @p p (so ASan sees a read past
 * the end) and frees what it gave. */
static enc_err_t tv3_dec(st_engine_t *eng, const uint8_t *p, size_t n) {
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        void *priv = eng->insts[0].priv;
        uint8_t *cp = malloc(n ? n : 1);
        assert_non_null(cp);
        memcpy(cp, p, n);
        void *st = NULL;
        enc_err_t err = pl->state_decode(priv, cp, n, &st);
        if (st)
                pl->state_free(priv, st);
        else
                assert_int_not_equal(err, ENC_OK);
        free(cp);
        return err;
}

static enc_err_t tv3_dec_state(st_engine_t *eng, const tv3_t *r) {
        enc_buf_t b;
        enc_buf_init(&b, 0);
        tv3_build(r, &b);
        enc_err_t err = tv3_dec(eng, b.data, b.len);
        enc_buf_free(&b);
        return err;
}

/* One change of the valid record @p base (in @p cp, aligned) per case,
 * through the layout's structs at their offsets for one discovery after
 * two lookback entries: header 0, lookback 40, the discovery 72, its
 * bitmap word 96, the strings "a\0rec\0A\0" 104..112. */
#define TV3_CASE(change)                                                       \
        do {                                                                   \
                memcpy(cp, base.data, base.len);                               \
                size_t n = base.len;                                           \
                tv3_hdr_t *H = (tv3_hdr_t *)(void *)cp;                        \
                tv3_look_t *L = (tv3_look_t *)(void *)(cp + 40);               \
                tv3_disc_t *D = (tv3_disc_t *)(void *)(cp + 72);               \
                uint64_t *B = (uint64_t *)(void *)(cp + 96);                   \
                char *S = (char *)cp + 104;                                    \
                (void)H, (void)L, (void)D, (void)B, (void)S;                   \
                change;                                                        \
                assert_int_equal(tv3_dec(eng, cp, n), ENC_ERR_CORRUPT);        \
        } while (0)

/* v3 records wrong in one place each (max.items 2, horizon 5). */
static void test_corrupt_v3_records(void **unused) {
        st_engine_t *eng =
                dh_engine("signal.discovery_habit.1.max.items=2", NULL, NULL);
        const int64_t d = ST_EPOCH_DAY;
        tv3_t ok = {2,       {"a", "b"}, {d, d}, 1,   {"a"},
                    {"rec"}, {"A"},      {d},    {2}, {0x05}};
        enc_buf_t base;
        enc_buf_init(&base, 0);
        tv3_build(&ok, &base);
        assert_int_equal(base.len, 112);
        assert_int_equal(tv3_dec(eng, base.data, base.len), ENC_OK);
        uint64_t cpw[32];
        uint8_t *cp = (uint8_t *)cpw;

        /* The header. */
        TV3_CASE(H->ver = 4);
        TV3_CASE(H->words = 0);
        TV3_CASE(H->words = 7);
        TV3_CASE(H->zero16 = 1);
        TV3_CASE(H->zero32 = 1);
        TV3_CASE(H->lmin = d - 1);
        TV3_CASE(H->lmax = d + 1);
        TV3_CASE(H->dmin = d + 1);
        /* Counts against the length. */
        TV3_CASE(n = 39);
        TV3_CASE(n = base.len - 1);
        TV3_CASE(n = base.len + 1; cp[n - 1] = 0);
        TV3_CASE(H->ndisc = 2);
        TV3_CASE(H->nlook = 1);
        TV3_CASE(H->nlook = 0; H->ndisc = 0; H->lmin = H->lmax = 0; H->dmin = 0;
                 n = 40); /* empty: would never expire */
        /* The lookback map. */
        TV3_CASE(tv3_look_t t = L[0]; L[0] = L[1]; L[1] = t);
        TV3_CASE(L[1].h = L[0].h);
        TV3_CASE(L[0].day = (int64_t)1 << 40);
        /* The discovery. */
        TV3_CASE(D->h ^= 1);
        TV3_CASE(D->d0 = 2000000; H->dmin = 2000000);
        TV3_CASE(D->seq = 0);
        TV3_CASE(D->seq = 7); /* H + 2 */
        TV3_CASE(D->soff = 1);
        TV3_CASE(D->ilen = 1); /* empty item */
        TV3_CASE(D->ilen = 0);
        TV3_CASE(D->rlen = 5);              /* past the string area */
        TV3_CASE(D->clen = 0);              /* leaves two bytes over */
        TV3_CASE(D->rlen = 3; D->clen = 3); /* "re" + NUL? 'c' isn't NUL */
        TV3_CASE(S[1] = 'x');               /* item without its NUL */
        TV3_CASE(S[2] = (char)0xff);        /* not UTF-8 */
        TV3_CASE(S[3] = '\0');              /* a NUL inside */
        TV3_CASE(B[0] = 0x04);              /* day 0 not engaged */
        TV3_CASE(B[0] = 0x25);              /* day 5 = D0 + H */
        TV3_CASE(B[0] |= (uint64_t)1 << 63);

        /* Caps, lengths and orders, on whole records. */
        tv3_t r = ok;
        r.nlook = 3, r.look_item[2] = "c", r.look_day[2] = d; /* > cap */
        assert_int_equal(tv3_dec_state(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.ndisc = 2, r.item[1] = "b", r.d0[1] = d, r.seq[1] = 1,
        r.bits[1] = 1;
        assert_int_equal(tv3_dec_state(eng, &r), ENC_OK);
        r.item[0] = "c"; /* unsorted */
        assert_int_equal(tv3_dec_state(eng, &r), ENC_ERR_CORRUPT);
        r.item[0] = "b"; /* duplicate */
        assert_int_equal(tv3_dec_state(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.ndisc = 3;
        for (int i = 0; i < 3; i++)
                r.item[i] = (const char *[]){"a", "b", "c"}[i], r.d0[i] = d,
                r.seq[i] = 1, r.bits[i] = 1;
        assert_int_equal(tv3_dec_state(eng, &r), ENC_ERR_CORRUPT); /* > cap */
        char id[ENC_ID_MAX + 2], label[ENC_LABEL_MAX + 2];
        memset(id, 'i', sizeof(id) - 1);
        memset(label, 'l', sizeof(label) - 1);
        id[ENC_ID_MAX] = label[ENC_LABEL_MAX] = '\0';
        r = ok, r.item[0] = id, r.rec[0] = id, r.co[0] = label;
        assert_int_equal(tv3_dec_state(eng, &r), ENC_OK); /* at the caps */
        id[ENC_ID_MAX] = label[ENC_LABEL_MAX] = 'x';
        id[ENC_ID_MAX + 1] = label[ENC_LABEL_MAX + 1] = '\0';
        r = ok, r.item[0] = id;
        assert_int_equal(tv3_dec_state(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.rec[0] = id;
        assert_int_equal(tv3_dec_state(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.co[0] = label;
        assert_int_equal(tv3_dec_state(eng, &r), ENC_ERR_CORRUPT);
        r = ok, r.rec[0] = NULL, r.co[0] = NULL; /* absent: fine */
        assert_int_equal(tv3_dec_state(eng, &r), ENC_OK);
        r = ok, r.nlook = 0; /* no lookback: lmin = lmax = 0 */
        assert_int_equal(tv3_dec_state(eng, &r), ENC_OK);
        enc_buf_t b;
        enc_buf_init(&b, 0);
        tv3_build(&r, &b);
        ((tv3_hdr_t *)(void *)b.data)->lmin = 1;
        assert_int_equal(tv3_dec(eng, b.data, b.len), ENC_ERR_CORRUPT);
        enc_buf_free(&b);
        enc_buf_free(&base);
        st_engine_destroy(eng);
}

/* A v3 record written under another horizon, with bitmaps of 2 words
 * (horizon.days 65 to 128), decodes when its days fit this horizon (5)
 * and encodes with this instance's 1 word: the same bytes as the record
 * built with 1 word. A day past this horizon in the second word is
 * corrupt, as in the first. */
static void test_v3_other_width(void **unused) {
        st_engine_t *eng = dh_engine(NULL, NULL, NULL);
        const enc_signal_plugin_t *pl = eng->insts[0].plugin;
        const int64_t d = ST_EPOCH_DAY;
        tv3_t r = {1,          {"x"},        {d},        2,
                   {"a", "b"}, {"r1", NULL}, {"A", "B"}, {d, d + 1},
                   {2, 1},     {0x11, 0x01}, 2};
        enc_buf_t two, one;
        enc_buf_init(&two, 0);
        enc_buf_init(&one, 0);
        tv3_build(&r, &two);
        r.words = 1;
        tv3_build(&r, &one);
        assert_int_equal(two.len, one.len + 2 * 8);
        void *st = NULL;
        assert_int_equal(
                pl->state_decode(eng->insts[0].priv, two.data, two.len, &st),
                ENC_OK);
        tv3_expect(eng, st, &one);
        pl->state_free(eng->insts[0].priv, st);
        /* b's second word: header 40, lookback 16, a's entry 40, b's 24. */
        two.data[40 + 16 + 40 + 24 + 8] = 1;
        assert_int_equal(tv3_dec(eng, two.data, two.len), ENC_ERR_CORRUPT);
        enc_buf_free(&two);
        enc_buf_free(&one);
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
                ev = dh_play(AT(0, 1, 19 - i), item[i], ENC_SRC_RECOMMENDATION,
                             "r");
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
                cmocka_unit_test(test_v2_record_migrates_same_updates),
                cmocka_unit_test(test_canonical_bytes),
                cmocka_unit_test(test_corrupt_v3_records),
                cmocka_unit_test(test_v3_other_width),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
