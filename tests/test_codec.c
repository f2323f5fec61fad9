/*
 * test_codec.c -- schemas/: the Avro codec, event validation, update ids
 * and JSON.
 *
 * Every expected byte below is worked out by hand from the Avro 1.11
 * specification, not pasted from the codec's output:
 *   - int/long: zig-zag (n << 1) ^ (n >> 63), then a base-128 varint, low
 *     7-bit group first, high bit set on every byte but the last;
 *   - string: long length, then the UTF-8 bytes;
 *   - enum: long index of the symbol; union: long branch index, then the
 *     branch (["null","string"]: 0 = null, 1 = string);
 *   - double: the 8 IEEE-754 bytes, little-endian; boolean: one byte 0/1;
 *   - map: blocks of (long count, then key string + value each), ended by a
 *     count of 0; a negative count -n is followed by the block's byte size;
 *   - Confluent framing: 0x00, then the schema id as 4 big-endian bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <avro.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "event.h"

/* ---- Avro C allocation counter --------------------------------------- */

/* Installed before any Avro C call, so a test can prove the decoder handed
 * nothing to Avro C (and so allocated nothing) for a hostile record. */
static size_t g_avro_allocs;

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
        (void)ud;
        (void)osize;
        if (nsize == 0) {
                free(ptr);
                return NULL;
        }
        g_avro_allocs++;
        return realloc(ptr, nsize);
}

/* ---- hand-built records ---------------------------------------------- */

/*
 * PlayEvent{event_id "e1", user_id "u1", track_id "t1", artist_id "a1",
 * event_time 1700000000000, ms_played 30000, track_duration_ms 180000,
 * reason_end FORWARD, source RECOMMENDATION, surface "home",
 * recommendation_id "r1", cohort null}, Confluent-framed with schema id 1.
 */
/* clang-format off */
static const uint8_t ev1_framed[] = {
    0x00, 0x00, 0x00, 0x00, 0x01, /* magic 0, schema id 1 big-endian */
    0x04, 'e',  '1',              /* event_id: length 2 -> zig-zag 4 */
    0x04, 'u',  '1',              /* user_id */
    0x04, 't',  '1',              /* track_id */
    0x04, 'a',  '1',              /* artist_id */
    /* event_time 1700000000000 -> zig-zag 3400000000000 = 0x3179fcad000;
     * 7-bit groups, low first: 0x00 0x20 0x2b 0x7e 0x79 0x62 */
    0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62,
    /* ms_played 30000 -> 60000 = 3*128^2 + 84*128 + 96 -> 0x60 0x54 0x03 */
    0xe0, 0xd4, 0x03,
    /* track_duration_ms 180000 -> 360000 = 21*128^2 + 124*128 + 64 */
    0xc0, 0xfc, 0x15,
    0x02,                         /* reason_end: FORWARD = index 1 -> 2 */
    0x00,                         /* source: RECOMMENDATION = index 0 */
    0x08, 'h',  'o',  'm',  'e',  /* surface: length 4 -> 8 */
    0x02, 0x04, 'r',  '1',        /* recommendation_id: branch 1, "r1" */
    0x00,                         /* cohort: branch 0, null */
};
/* clang-format on */
#define EV1_HDR 5

static enc_event_t ev1_struct(void) {
        enc_event_t ev = {
                .event_id = "e1",
                .user_id = "u1",
                .track_id = "t1",
                .artist_id = "a1",
                .event_time = INT64_C(1700000000000),
                .ms_played = 30000,
                .track_duration_ms = 180000,
                .reason_end = ENC_END_FORWARD,
                .source = ENC_SRC_RECOMMENDATION,
                .surface = "home",
                .recommendation_id = "r1",
                .cohort = NULL,
        };
        return ev;
}

/*
 * RewardUpdate{update_id "0123456789abcdef0123456789abcdef", user_id "u1",
 * signal "session", signal_version 1, subject null, recommendation_id "r1",
 * window_start 1700000000000, window_end 1700003600000, value 0.5,
 * delta 0.25, estimate 2.0 / 0.125, observed_days 3, horizon_days 60,
 * final true, event_time 1700003600000, sequence 2, cohort "A",
 * components {"plays": 3.0, "skip_rate": 0.25} in that order},
 * Confluent-framed with schema id 2.
 */
/* clang-format off */
static const uint8_t up1_framed[] = {
    0x00, 0x00, 0x00, 0x00, 0x02,           /* magic 0, schema id 2 */
    0x40,                                   /* update_id: 32 -> 64 */
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd',
    'e', 'f', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b',
    'c', 'd', 'e', 'f',
    0x04, 'u', '1',                         /* user_id */
    0x0e, 's', 'e', 's', 's', 'i', 'o', 'n', /* signal: 7 -> 14 */
    0x02,                                   /* signal_version 1 -> 2 */
    0x00,                                   /* subject: branch 0, null */
    0x02, 0x04, 'r', '1',                   /* recommendation_id "r1" */
    0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62,     /* window_start, as ev1 */
    /* window_end 1700003600000 -> 3400007200000 = 0x317a038ad00;
     * 7-bit groups, low first: 0x00 0x5a 0x62 0x01 0x7a 0x62 */
    0x80, 0xda, 0xe2, 0x81, 0xfa, 0x62,
    0, 0, 0, 0, 0, 0, 0xe0, 0x3f,           /* value 0.5 = 0x3fe0...0, LE */
    0, 0, 0, 0, 0, 0, 0xd0, 0x3f,           /* delta 0.25 = 0x3fd0...0 */
    0x02, 0, 0, 0, 0, 0, 0, 0x00, 0x40,     /* estimate_mean 2.0 */
    0x02, 0, 0, 0, 0, 0, 0, 0xc0, 0x3f,     /* estimate_variance 0.125 */
    0x06,                                   /* observed_days 3 */
    0x78,                                   /* horizon_days 60 -> 120 */
    0x01,                                   /* final: true */
    0x80, 0xda, 0xe2, 0x81, 0xfa, 0x62,     /* event_time 1700003600000 */
    0x04,                                   /* sequence 2 */
    0x02, 0x02, 'A',                        /* cohort "A" */
    /* components, UP1_MAP_LEN bytes: */
    0x04,                                   /* one block of 2 entries */
    0x0a, 'p', 'l', 'a', 'y', 's',          /* "plays" */
    0, 0, 0, 0, 0, 0, 0x08, 0x40,           /* 3.0 = 0x4008000000000000 */
    0x12, 's', 'k', 'i', 'p', '_', 'r', 'a', 't', 'e', /* "skip_rate" */
    0, 0, 0, 0, 0, 0, 0xd0, 0x3f,           /* 0.25 */
    0x00,                                   /* end of map */
};
#define UP1_MAP_LEN 34
#define UP1_PREFIX_LEN (sizeof(up1_framed) - UP1_MAP_LEN)

/* up1 with the components given in the other order. */
static const uint8_t up1_reversed_map[UP1_MAP_LEN] = {
    0x04,
    0x12, 's', 'k', 'i', 'p', '_', 'r', 'a', 't', 'e',
    0, 0, 0, 0, 0, 0, 0xd0, 0x3f,
    0x0a, 'p', 'l', 'a', 'y', 's',
    0, 0, 0, 0, 0, 0, 0x08, 0x40,
    0x00,
};

/* up1's map written as one block with a negative count: -2 -> zig-zag 3,
 * then the block's size in bytes, 6+8 + 10+8 = 32 -> 64. */
static const uint8_t up1_negative_map[UP1_MAP_LEN + 1] = {
    0x03, 0x40,
    0x0a, 'p', 'l', 'a', 'y', 's',
    0, 0, 0, 0, 0, 0, 0x08, 0x40,
    0x12, 's', 'k', 'i', 'p', '_', 'r', 'a', 't', 'e',
    0, 0, 0, 0, 0, 0, 0xd0, 0x3f,
    0x00,
};
/* clang-format on */

static enc_update_t up1_struct(void) {
        enc_update_t up;
        memset(&up, 0, sizeof(up));
        memcpy(up.update_id, "0123456789abcdef0123456789abcdef", 33);
        up.user_id = "u1";
        up.signal = "session";
        up.signal_version = 1;
        up.subject = NULL;
        up.recommendation_id = "r1";
        up.window_start = INT64_C(1700000000000);
        up.window_end = INT64_C(1700003600000);
        up.value = 0.5;
        up.delta = 0.25;
        up.has_estimate = true;
        up.estimate_mean = 2.0;
        up.estimate_variance = 0.125;
        up.observed_days = 3;
        up.horizon_days = 60;
        up.final = true;
        up.event_time = INT64_C(1700003600000);
        up.sequence = 2;
        up.cohort = "A";
        up.component_cnt = 2;
        up.components[0].name = "plays";
        up.components[0].value = 3.0;
        up.components[1].name = "skip_rate";
        up.components[1].value = 0.25;
        return up;
}

/* ---- helpers ---------------------------------------------------------- */

static enc_codec_t *new_codec(enc_framing_t framing, size_t max_bytes) {
        enc_codec_conf_t conf;
        char errstr[256] = "";
        enc_codec_conf_defaults(&conf);
        conf.framing = framing;
        if (max_bytes)
                conf.max_record_bytes = max_bytes;
        enc_codec_t *c = enc_codec_new(&conf, errstr, sizeof(errstr));
        if (!c)
                fail_msg("enc_codec_new: %s", errstr);
        return c;
}

static void assert_contains(const char *hay, const char *needle) {
        if (!strstr(hay, needle))
                fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* A tiny independent Avro writer for records too tedious to spell out by
 * hand (over-cap strings, 17 map entries). It follows the rules in the
 * header comment; test_builder_matches_hand_bytes checks it. */
typedef struct tb_s {
        uint8_t b[4096];
        size_t n;
} tb_t;

static void tb_byte(tb_t *t, uint8_t v) {
        assert_true(t->n < sizeof(t->b));
        t->b[t->n++] = v;
}
static void tb_long(tb_t *t, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        while (z >= 0x80) {
                tb_byte(t, (uint8_t)(z | 0x80));
                z >>= 7;
        }
        tb_byte(t, (uint8_t)z);
}
static void tb_bytes(tb_t *t, const void *p, size_t n) {
        assert_true(n <= sizeof(t->b) - t->n);
        memcpy(t->b + t->n, p, n);
        t->n += n;
}
static void tb_str(tb_t *t, const char *s) {
        tb_long(t, (int64_t)strlen(s));
        tb_bytes(t, s, strlen(s));
}
static void tb_opt_str(tb_t *t, const char *s) {
        if (!s) {
                tb_long(t, 0);
                return;
        }
        tb_long(t, 1);
        tb_str(t, s);
}
static void tb_double(tb_t *t, double d) {
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int i = 0; i < 8; i++)
                tb_byte(t, (uint8_t)(u >> (8 * i)));
}
static void tb_confluent(tb_t *t, uint32_t id) {
        uint8_t h[5] = {0, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
                        (uint8_t)(id >> 8), (uint8_t)id};
        tb_bytes(t, h, 5);
}
/* A framed PlayEvent with ev's fields; enums written as given. */
static void tb_event(tb_t *t, const enc_event_t *ev, int64_t reason,
                     int64_t source) {
        tb_confluent(t, 1);
        tb_str(t, ev->event_id);
        tb_str(t, ev->user_id);
        tb_str(t, ev->track_id);
        tb_str(t, ev->artist_id);
        tb_long(t, ev->event_time);
        tb_long(t, ev->ms_played);
        tb_long(t, ev->track_duration_ms);
        tb_long(t, reason);
        tb_long(t, source);
        tb_str(t, ev->surface);
        tb_opt_str(t, ev->recommendation_id);
        tb_opt_str(t, ev->cohort);
}

static void test_builder_matches_hand_bytes(void **state) {
        (void)state;
        tb_t t = {.n = 0};
        enc_event_t ev = ev1_struct();
        tb_event(&t, &ev, 1, 0);
        assert_int_equal(t.n, sizeof(ev1_framed));
        assert_memory_equal(t.b, ev1_framed, sizeof(ev1_framed));
}

/* ---- decode ----------------------------------------------------------- */

static void test_decode_event_hand_built_confluent(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_event_t ev;
        char errstr[256] = "";
        assert_int_equal(sizeof(ev1_framed), 41);
        assert_int_equal(enc_codec_decode_event(c, ev1_framed,
                                                sizeof(ev1_framed), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_OK);
        assert_string_equal(ev.event_id, "e1");
        assert_string_equal(ev.user_id, "u1");
        assert_string_equal(ev.track_id, "t1");
        assert_string_equal(ev.artist_id, "a1");
        assert_true(ev.event_time == INT64_C(1700000000000));
        assert_int_equal(ev.ms_played, 30000);
        assert_int_equal(ev.track_duration_ms, 180000);
        assert_int_equal(ev.reason_end, ENC_END_FORWARD);
        assert_int_equal(ev.source, ENC_SRC_RECOMMENDATION);
        assert_string_equal(ev.surface, "home");
        assert_string_equal(ev.recommendation_id, "r1");
        assert_null(ev.cohort);
        enc_codec_destroy(c);
}

static void test_decode_event_raw_framing_is_plain_avro(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_RAW, 0);
        enc_event_t ev;
        char errstr[256] = "";
        assert_int_equal(enc_codec_decode_event(c, ev1_framed + EV1_HDR,
                                                sizeof(ev1_framed) - EV1_HDR,
                                                &ev, errstr, sizeof(errstr)),
                         ENC_OK);
        assert_string_equal(ev.event_id, "e1");
        assert_string_equal(ev.recommendation_id, "r1");
        assert_null(ev.cohort);

        /* And raw encoding writes exactly the body, no header. */
        enc_buf_t out;
        enc_buf_init(&out, 0);
        enc_event_t in = ev1_struct();
        assert_int_equal(enc_codec_encode_event(c, &in, &out), ENC_OK);
        assert_int_equal(out.len, sizeof(ev1_framed) - EV1_HDR);
        assert_memory_equal(out.data, ev1_framed + EV1_HDR, out.len);
        enc_buf_free(&out);
        enc_codec_destroy(c);
}

/* The reused union value must not leak the previous record's branch. */
static void test_decode_reused_value_resets_nullable_fields(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_event_t ev;
        char errstr[256] = "";
        tb_t t = {.n = 0};
        enc_event_t in = ev1_struct();
        in.recommendation_id = NULL;
        in.cohort = "B";
        tb_event(&t, &in, 0, 5);

        assert_int_equal(enc_codec_decode_event(c, ev1_framed,
                                                sizeof(ev1_framed), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(enc_codec_decode_event(c, t.b, t.n, &ev, errstr,
                                                sizeof(errstr)),
                         ENC_OK);
        assert_null(ev.recommendation_id);
        assert_string_equal(ev.cohort, "B");
        assert_int_equal(ev.reason_end, ENC_END_TRACK_DONE);
        assert_int_equal(ev.source, ENC_SRC_OTHER);
        enc_codec_destroy(c);
}

static void test_decode_bad_magic_byte(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        uint8_t b[sizeof(ev1_framed)];
        enc_event_t ev;
        char errstr[256] = "";
        memcpy(b, ev1_framed, sizeof(b));
        b[0] = 0x01;
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_BAD_MAGIC);
        assert_contains(errstr, "0x01");
        /* Even a lone wrong byte is a bad magic, not a truncation. */
        assert_int_equal(
                enc_codec_decode_event(c, b, 1, &ev, errstr, sizeof(errstr)),
                ENC_ERR_BAD_MAGIC);
        enc_codec_destroy(c);
}

static void test_decode_unknown_schema_id(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        uint8_t b[sizeof(ev1_framed)];
        enc_event_t ev;
        char errstr[256] = "";
        memcpy(b, ev1_framed, sizeof(b));
        b[4] = 0x02; /* schema id 2: the RewardUpdate id, not PlayEvent's */
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_UNKNOWN_SCHEMA);
        assert_contains(errstr, "schema id 2, expected 1");
        b[4] = 0x01;
        b[1] = 0x01; /* 0x01000001: the id is all four bytes, big-endian */
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_UNKNOWN_SCHEMA);
        assert_contains(errstr, "schema id 16777217");
        enc_codec_destroy(c);
}

static void check_all_prefixes_truncated(enc_framing_t framing,
                                         const uint8_t *rec, size_t len,
                                         bool update) {
        enc_codec_t *c = new_codec(framing, 0);
        char errstr[256];
        for (size_t k = 0; k < len; k++) {
                /* A heap copy of exactly k bytes, so ASan catches any read
                 * past the prefix. */
                uint8_t *b = malloc(k ? k : 1);
                assert_non_null(b);
                memcpy(b, rec, k);
                enc_event_t ev;
                enc_update_t up;
                enc_err_t err =
                        update ? enc_codec_decode_update(c, b, k, &up, errstr,
                                                         sizeof(errstr))
                               : enc_codec_decode_event(c, b, k, &ev, errstr,
                                                        sizeof(errstr));
                if (err != ENC_ERR_TRUNCATED)
                        fail_msg("prefix of %zu/%zu bytes: %s (%s)", k, len,
                                 enc_err2str(err), errstr);
                free(b);
        }
        enc_codec_destroy(c);
}

static void test_decode_every_prefix_is_truncated(void **state) {
        (void)state;
        check_all_prefixes_truncated(ENC_FRAMING_CONFLUENT, ev1_framed,
                                     sizeof(ev1_framed), false);
        check_all_prefixes_truncated(ENC_FRAMING_RAW, ev1_framed + EV1_HDR,
                                     sizeof(ev1_framed) - EV1_HDR, false);
        check_all_prefixes_truncated(ENC_FRAMING_CONFLUENT, up1_framed,
                                     sizeof(up1_framed), true);
}

/* 20 bytes whose event_id length prefix claims 2 GiB: the codec must refuse
 * it before Avro C sees it (Avro C would malloc the claimed length). */
static void test_decode_huge_length_prefix_allocates_nothing(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        /* length 2^31 -> zig-zag 2^32 = groups 0,0,0,0,16 */
        static const uint8_t huge[20] = {
                0x00, 0x00, 0x00, 0x00, 0x01, 0x80, 0x80, 0x80, 0x80, 0x10,
                'x',  'x',  'x',  'x',  'x',  'x',  'x',  'x',  'x',  'x'};
        enc_event_t ev;
        char errstr[256] = "";

        /* The counter works: a good record does reach Avro C, whose reader
         * allocates its strings. */
        size_t before = g_avro_allocs;
        assert_int_equal(enc_codec_decode_event(c, ev1_framed,
                                                sizeof(ev1_framed), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_OK);
        assert_true(g_avro_allocs > before);

        before = g_avro_allocs;
        assert_int_equal(enc_codec_decode_event(c, huge, sizeof(huge), &ev,
                                                errstr, sizeof(errstr)),
                         ENC_ERR_TOO_LARGE);
        assert_int_equal(g_avro_allocs, before);
        assert_contains(errstr, "event_id");
        assert_contains(errstr, "2147483648");

        /* Within the cap (200 -> 400 = 0x90 0x03) but past the end. */
        uint8_t b[20];
        memcpy(b, huge, sizeof(b));
        b[5] = 0x90;
        b[6] = 0x03;
        before = g_avro_allocs;
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_TRUNCATED);
        assert_int_equal(g_avro_allocs, before);

        /* A negative length (-1 -> zig-zag 1) is malformed. */
        b[5] = 0x01;
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "negative");

        /* Eleven continuation bytes: a varint Avro C also refuses. */
        memset(b + 5, 0xff, 11);
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_DECODE);
        enc_codec_destroy(c);
}

static void test_decode_oversize_record(void **state) {
        (void)state;
        enc_event_t ev;
        char errstr[256] = "";
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, sizeof(ev1_framed));
        assert_int_equal(enc_codec_decode_event(c, ev1_framed,
                                                sizeof(ev1_framed), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_OK);
        enc_codec_destroy(c);

        c = new_codec(ENC_FRAMING_CONFLUENT, sizeof(ev1_framed) - 1);
        assert_int_equal(enc_codec_decode_event(c, ev1_framed,
                                                sizeof(ev1_framed), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_TOO_LARGE);
        assert_contains(errstr, "41 bytes is over max_record_bytes 40");
        enc_codec_destroy(c);
}

static void test_decode_trailing_bytes(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        uint8_t b[sizeof(ev1_framed) + 2];
        enc_event_t ev;
        char errstr[256] = "";
        memcpy(b, ev1_framed, sizeof(ev1_framed));
        b[sizeof(ev1_framed)] = 0x00;
        b[sizeof(ev1_framed) + 1] = 0x00;
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "2 trailing bytes");
        enc_codec_destroy(c);
}

static void test_decode_string_over_cap_names_field(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        char surface[ENC_LABEL_MAX + 2];
        char id[ENC_ID_MAX + 2];
        enc_event_t in = ev1_struct(), ev;
        char errstr[256] = "";
        tb_t t = {.n = 0};

        /* Exactly at the cap decodes. */
        memset(surface, 's', ENC_LABEL_MAX);
        surface[ENC_LABEL_MAX] = '\0';
        in.surface = surface;
        tb_event(&t, &in, 1, 0);
        assert_int_equal(enc_codec_decode_event(c, t.b, t.n, &ev, errstr,
                                                sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(strlen(ev.surface), ENC_LABEL_MAX);

        /* One byte over does not. */
        surface[ENC_LABEL_MAX] = 's';
        surface[ENC_LABEL_MAX + 1] = '\0';
        t.n = 0;
        tb_event(&t, &in, 1, 0);
        assert_int_equal(enc_codec_decode_event(c, t.b, t.n, &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_TOO_LARGE);
        assert_contains(errstr, "field surface");

        in = ev1_struct();
        memset(id, 'u', ENC_ID_MAX + 1);
        id[ENC_ID_MAX + 1] = '\0';
        in.user_id = id;
        t.n = 0;
        tb_event(&t, &in, 1, 0);
        assert_int_equal(enc_codec_decode_event(c, t.b, t.n, &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_TOO_LARGE);
        assert_contains(errstr, "field user_id");
        enc_codec_destroy(c);
}

static void test_decode_bad_enum_union_bool_nul(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_event_t in = ev1_struct(), ev;
        char errstr[256] = "";
        tb_t t = {.n = 0};

        tb_event(&t, &in, 6, 0); /* ReasonEnd has 6 symbols: 0..5 */
        assert_int_equal(enc_codec_decode_event(c, t.b, t.n, &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "field reason_end");

        t.n = 0;
        tb_event(&t, &in, 1, -1);
        assert_int_equal(enc_codec_decode_event(c, t.b, t.n, &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "field source");

        uint8_t b[sizeof(ev1_framed)];
        memcpy(b, ev1_framed, sizeof(b));
        b[sizeof(b) - 1] = 0x04; /* cohort union branch 2 does not exist */
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "field cohort");

        memcpy(b, ev1_framed, sizeof(b));
        b[7] = 0x00; /* event_id "e\0" */
        assert_int_equal(enc_codec_decode_event(c, b, sizeof(b), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "NUL");

        /* final is one byte, 0 or 1. Its offset: the prefix minus cohort
         * (3), sequence (1), event_time (6), final (1). */
        uint8_t u[sizeof(up1_framed)];
        enc_update_t up;
        memcpy(u, up1_framed, sizeof(u));
        size_t final_at = UP1_PREFIX_LEN - 3 - 1 - 6 - 1;
        assert_int_equal(u[final_at], 0x01);
        u[final_at] = 0x02;
        assert_int_equal(enc_codec_decode_update(c, u, sizeof(u), &up, errstr,
                                                 sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "field final");
        enc_codec_destroy(c);
}

/* ---- updates ---------------------------------------------------------- */

static void test_encode_event_matches_hand_bytes(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_buf_t out;
        enc_event_t ev = ev1_struct();
        enc_buf_init(&out, 0);
        assert_int_equal(enc_codec_encode_event(c, &ev, &out), ENC_OK);
        assert_int_equal(out.len, sizeof(ev1_framed));
        assert_memory_equal(out.data, ev1_framed, sizeof(ev1_framed));
        /* Encode appends. */
        assert_int_equal(enc_codec_encode_event(c, &ev, &out), ENC_OK);
        assert_int_equal(out.len, 2 * sizeof(ev1_framed));
        assert_memory_equal(out.data + sizeof(ev1_framed), ev1_framed,
                            sizeof(ev1_framed));
        enc_buf_free(&out);
        enc_codec_destroy(c);
}

static void test_encode_update_matches_hand_bytes(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_buf_t out;
        enc_update_t up = up1_struct();
        enc_buf_init(&out, 0);
        assert_int_equal(enc_codec_encode_update(c, &up, &out), ENC_OK);
        assert_int_equal(out.len, sizeof(up1_framed));
        assert_memory_equal(out.data, up1_framed, sizeof(up1_framed));
        enc_buf_free(&out);
        enc_codec_destroy(c);
}

/* Avro C's generic map must write entries in insertion order, and the
 * reused map must be emptied between records: same input, same bytes. */
static void test_encode_update_components_in_given_order(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_buf_t out;
        enc_update_t up = up1_struct();
        enc_buf_init(&out, 0);

        enc_component_t a = up.components[0], b = up.components[1];
        up.components[0] = b;
        up.components[1] = a;
        assert_int_equal(enc_codec_encode_update(c, &up, &out), ENC_OK);
        tb_t want = {.n = 0};
        tb_bytes(&want, up1_framed, UP1_PREFIX_LEN);
        tb_bytes(&want, up1_reversed_map, sizeof(up1_reversed_map));
        assert_int_equal(out.len, want.n);
        assert_memory_equal(out.data, want.b, want.n);

        /* An update with more components in between must not leave any
         * behind in the reused value. */
        up.component_cnt = 4;
        up.components[2].name = "minutes";
        up.components[2].value = 12.5;
        up.components[3].name = "z";
        up.components[3].value = -1;
        enc_buf_reset(&out);
        assert_int_equal(enc_codec_encode_update(c, &up, &out), ENC_OK);

        up = up1_struct();
        for (int round = 0; round < 3; round++) {
                enc_buf_reset(&out);
                assert_int_equal(enc_codec_encode_update(c, &up, &out), ENC_OK);
                assert_int_equal(out.len, sizeof(up1_framed));
                assert_memory_equal(out.data, up1_framed, sizeof(up1_framed));
        }

        /* No components: one 0 (empty map) after the prefix. */
        up.component_cnt = 0;
        enc_buf_reset(&out);
        assert_int_equal(enc_codec_encode_update(c, &up, &out), ENC_OK);
        assert_int_equal(out.len, UP1_PREFIX_LEN + 1);
        assert_memory_equal(out.data, up1_framed, UP1_PREFIX_LEN);
        assert_int_equal(out.data[out.len - 1], 0x00);
        enc_buf_free(&out);
        enc_codec_destroy(c);
}

static void assert_up1(const enc_update_t *up) {
        assert_string_equal(up->update_id, "0123456789abcdef0123456789abcdef");
        assert_string_equal(up->user_id, "u1");
        assert_string_equal(up->signal, "session");
        assert_int_equal(up->signal_version, 1);
        assert_null(up->subject);
        assert_string_equal(up->recommendation_id, "r1");
        assert_true(up->window_start == INT64_C(1700000000000));
        assert_true(up->window_end == INT64_C(1700003600000));
        assert_true(up->value == 0.5);
        assert_true(up->delta == 0.25);
        assert_true(up->has_estimate);
        assert_true(up->estimate_mean == 2.0);
        assert_true(up->estimate_variance == 0.125);
        assert_int_equal(up->observed_days, 3);
        assert_int_equal(up->horizon_days, 60);
        assert_true(up->final);
        assert_true(up->event_time == INT64_C(1700003600000));
        assert_int_equal(up->sequence, 2);
        assert_string_equal(up->cohort, "A");
        assert_int_equal(up->component_cnt, 2);
        assert_string_equal(up->components[0].name, "plays");
        assert_true(up->components[0].value == 3.0);
        assert_string_equal(up->components[1].name, "skip_rate");
        assert_true(up->components[1].value == 0.25);
}

static void test_decode_update_hand_built_and_round_trip(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_update_t up;
        char errstr[256] = "";
        enc_buf_t out;
        enc_buf_init(&out, 0);

        assert_int_equal(sizeof(up1_framed), 148); /* 114 + 34, counted */
        assert_int_equal(up1_framed[UP1_PREFIX_LEN], 0x04);
        assert_int_equal(enc_codec_decode_update(c, up1_framed,
                                                 sizeof(up1_framed), &up,
                                                 errstr, sizeof(errstr)),
                         ENC_OK);
        assert_up1(&up);
        assert_int_equal(enc_codec_encode_update(c, &up, &out), ENC_OK);
        assert_int_equal(out.len, sizeof(up1_framed));
        assert_memory_equal(out.data, up1_framed, sizeof(up1_framed));

        /* A negative block count (with its byte size) is the same map. */
        tb_t t = {.n = 0};
        tb_bytes(&t, up1_framed, UP1_PREFIX_LEN);
        tb_bytes(&t, up1_negative_map, sizeof(up1_negative_map));
        assert_int_equal(enc_codec_decode_update(c, t.b, t.n, &up, errstr,
                                                 sizeof(errstr)),
                         ENC_OK);
        assert_up1(&up);

        /* The events' schema id does not decode as an update. */
        uint8_t b[sizeof(up1_framed)];
        memcpy(b, up1_framed, sizeof(b));
        b[4] = 0x01;
        assert_int_equal(enc_codec_decode_update(c, b, sizeof(b), &up, errstr,
                                                 sizeof(errstr)),
                         ENC_ERR_UNKNOWN_SCHEMA);
        enc_buf_free(&out);
        enc_codec_destroy(c);
}

static void test_round_trip_event_with_utf8_and_nulls(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_event_t in = ev1_struct(), ev;
        char errstr[256] = "";
        enc_buf_t out;
        enc_buf_init(&out, 0);
        in.track_id = "caf\xc3\xa9"; /* "café" */
        in.recommendation_id = NULL;
        in.cohort = "";
        in.event_time = -1; /* negative longs survive the zig-zag */
        in.ms_played = INT64_MAX;
        in.reason_end = ENC_END_UNKNOWN;
        in.source = ENC_SRC_RADIO;
        assert_int_equal(enc_codec_encode_event(c, &in, &out), ENC_OK);
        assert_int_equal(enc_codec_decode_event(c, out.data, out.len, &ev,
                                                errstr, sizeof(errstr)),
                         ENC_OK);
        assert_string_equal(ev.track_id, "caf\xc3\xa9");
        assert_null(ev.recommendation_id);
        assert_string_equal(ev.cohort, "");
        assert_true(ev.event_time == -1);
        assert_true(ev.ms_played == INT64_MAX);
        assert_int_equal(ev.reason_end, ENC_END_UNKNOWN);
        assert_int_equal(ev.source, ENC_SRC_RADIO);
        enc_buf_free(&out);
        enc_codec_destroy(c);
}

static void test_decode_update_component_limits(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_update_t up;
        char errstr[256] = "";
        tb_t t = {.n = 0};
        char names[ENC_COMPONENTS_MAX + 1][8];

        /* 17 entries: one over ENC_COMPONENTS_MAX. */
        tb_bytes(&t, up1_framed, UP1_PREFIX_LEN);
        tb_long(&t, ENC_COMPONENTS_MAX + 1);
        for (int i = 0; i <= ENC_COMPONENTS_MAX; i++) {
                snprintf(names[i], sizeof(names[i]), "c%d", i);
                tb_str(&t, names[i]);
                tb_double(&t, i);
        }
        tb_long(&t, 0);
        assert_int_equal(enc_codec_decode_update(c, t.b, t.n, &up, errstr,
                                                 sizeof(errstr)),
                         ENC_ERR_TOO_LARGE);
        assert_contains(errstr, "field components");

        /* A block count claiming 2^40 entries, with nothing behind it. */
        t.n = 0;
        tb_bytes(&t, up1_framed, UP1_PREFIX_LEN);
        tb_long(&t, INT64_C(1) << 40);
        size_t before = g_avro_allocs;
        assert_int_equal(enc_codec_decode_update(c, t.b, t.n, &up, errstr,
                                                 sizeof(errstr)),
                         ENC_ERR_TOO_LARGE);
        assert_int_equal(g_avro_allocs, before);

        /* The same key twice. */
        t.n = 0;
        tb_bytes(&t, up1_framed, UP1_PREFIX_LEN);
        tb_long(&t, 2);
        tb_str(&t, "plays");
        tb_double(&t, 1);
        tb_str(&t, "plays");
        tb_double(&t, 2);
        tb_long(&t, 0);
        assert_int_equal(enc_codec_decode_update(c, t.b, t.n, &up, errstr,
                                                 sizeof(errstr)),
                         ENC_ERR_DECODE);
        assert_contains(errstr, "repeats");

        /* Exactly 16 over two blocks decode, in wire order. */
        t.n = 0;
        tb_bytes(&t, up1_framed, UP1_PREFIX_LEN);
        tb_long(&t, 10);
        for (int i = 0; i < 10; i++) {
                tb_str(&t, names[i]);
                tb_double(&t, i);
        }
        tb_long(&t, 6);
        for (int i = 10; i < 16; i++) {
                tb_str(&t, names[i]);
                tb_double(&t, i);
        }
        tb_long(&t, 0);
        assert_int_equal(enc_codec_decode_update(c, t.b, t.n, &up, errstr,
                                                 sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(up.component_cnt, 16);
        for (int i = 0; i < 16; i++) {
                assert_string_equal(up.components[i].name, names[i]);
                assert_true(up.components[i].value == (double)i);
        }
        enc_codec_destroy(c);
}

static void
test_encode_rejects_bad_input_and_leaves_out_unchanged(void **state) {
        (void)state;
        enc_codec_t *c = new_codec(ENC_FRAMING_CONFLUENT, 0);
        enc_buf_t out;
        char long_id[ENC_ID_MAX + 2];
        enc_buf_init(&out, 0);
        assert_int_equal(enc_buf_append(&out, "xy", 2), ENC_OK);

        enc_event_t ev = ev1_struct();
        ev.user_id = NULL;
        assert_int_equal(enc_codec_encode_event(c, &ev, &out),
                         ENC_ERR_INVALID_ARG);
        ev = ev1_struct();
        ev.reason_end = ENC_END__CNT;
        assert_int_equal(enc_codec_encode_event(c, &ev, &out),
                         ENC_ERR_INVALID_ARG);
        ev = ev1_struct();
        ev.artist_id = "\xff";
        assert_int_equal(enc_codec_encode_event(c, &ev, &out),
                         ENC_ERR_INVALID_ARG);
        ev = ev1_struct();
        memset(long_id, 'x', ENC_ID_MAX + 1);
        long_id[ENC_ID_MAX + 1] = '\0';
        ev.event_id = long_id;
        assert_int_equal(enc_codec_encode_event(c, &ev, &out),
                         ENC_ERR_TOO_LARGE);

        enc_update_t up = up1_struct();
        up.components[1].name = "plays";
        assert_int_equal(enc_codec_encode_update(c, &up, &out),
                         ENC_ERR_INVALID_ARG);
        up = up1_struct();
        up.update_id[0] = '\0';
        assert_int_equal(enc_codec_encode_update(c, &up, &out),
                         ENC_ERR_INVALID_ARG);
        up = up1_struct();
        up.component_cnt = ENC_COMPONENTS_MAX + 1;
        assert_int_equal(enc_codec_encode_update(c, &up, &out),
                         ENC_ERR_INVALID_ARG);

        /* A full output buffer: TOO_LARGE, nothing appended. */
        enc_buf_t small;
        enc_buf_init(&small, sizeof(up1_framed) - 1);
        up = up1_struct();
        assert_int_equal(enc_codec_encode_update(c, &up, &small),
                         ENC_ERR_TOO_LARGE);
        assert_int_equal(small.len, 0);
        enc_buf_free(&small);

        assert_int_equal(out.len, 2);
        assert_memory_equal(out.data, "xy", 2);
        enc_buf_free(&out);
        enc_codec_destroy(c);
}

static void test_codec_new_rejects_bad_conf(void **state) {
        (void)state;
        enc_codec_conf_t conf;
        char errstr[256] = "";
        enc_codec_conf_defaults(&conf);
        assert_int_equal(conf.framing, ENC_FRAMING_CONFLUENT);
        assert_int_equal(conf.play_event_schema_id, 1);
        assert_int_equal(conf.reward_update_schema_id, 2);
        assert_int_equal(conf.max_record_bytes, 1048576);
        conf.max_record_bytes = 0;
        assert_null(enc_codec_new(&conf, errstr, sizeof(errstr)));
        assert_contains(errstr, "max_record_bytes");
        enc_codec_destroy(NULL);
}

/* ---- schema texts ----------------------------------------------------- */

/* Reads a source file; ctest sets ENCORE_SOURCE_DIR (enc_add_test). */
static char *slurp(const char *rel) {
        const char *dir = getenv("ENCORE_SOURCE_DIR");
        char path[1024];
        if (!dir)
                dir = ".";
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        FILE *f = fopen(path, "rb");
        if (!f)
                fail_msg("cannot open %s", path);
        static char buf[65536];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

static void test_schema_texts_are_the_avsc_files(void **state) {
        (void)state;
        assert_string_equal(enc_codec_play_event_schema(),
                            slurp("schemas/play_event.avsc"));
        assert_string_equal(enc_codec_reward_update_schema(),
                            slurp("schemas/reward_update.avsc"));
        assert_contains(enc_codec_play_event_schema(),
                        "\"namespace\": \"io.encore\"");
}

/* ---- event.c ---------------------------------------------------------- */

static void test_enum_names_are_the_avsc_symbols(void **state) {
        (void)state;
        assert_string_equal(enc_reason_end_name(ENC_END_TRACK_DONE),
                            "TRACK_DONE");
        assert_string_equal(enc_reason_end_name(ENC_END_LOGOUT), "LOGOUT");
        assert_string_equal(enc_reason_end_name(ENC_END_UNKNOWN), "UNKNOWN");
        assert_string_equal(enc_reason_end_name(ENC_END__CNT), "INVALID");
        assert_string_equal(enc_source_name(ENC_SRC_RECOMMENDATION),
                            "RECOMMENDATION");
        assert_string_equal(enc_source_name(ENC_SRC_OTHER), "OTHER");
        assert_string_equal(enc_source_name((enc_source_t)-1), "INVALID");
}

static void test_event_dup_is_one_owned_block(void **state) {
        (void)state;
        char user[] = "u1", rec[] = "r1";
        enc_event_t ev = ev1_struct();
        ev.user_id = user;
        ev.recommendation_id = rec;
        enc_event_t *d = enc_event_dup(&ev);
        assert_non_null(d);
        user[0] = 'X'; /* the copy does not share the caller's strings */
        rec[0] = 'X';
        assert_string_equal(d->user_id, "u1");
        assert_string_equal(d->recommendation_id, "r1");
        assert_string_equal(d->event_id, "e1");
        assert_string_equal(d->surface, "home");
        assert_null(d->cohort);
        assert_true(d->event_time == INT64_C(1700000000000));
        assert_int_equal(d->reason_end, ENC_END_FORWARD);
        /* All strings live right after the struct, in one allocation. */
        assert_ptr_equal(d->event_id, (const char *)(d + 1));
        assert_ptr_equal(d->user_id, (const char *)(d + 1) + 3);
        free(d);
        assert_null(enc_event_dup(NULL));
}

static void test_validate_accepts_good_and_boundaries(void **state) {
        (void)state;
        char errstr[256] = "";
        enc_event_t ev = ev1_struct();
        assert_int_equal(enc_event_validate(&ev, errstr, sizeof(errstr)),
                         ENC_OK);
        ev.event_time = INT64_C(1136073600000); /* 2006-01-01T00:00:00Z */
        ev.ms_played = 0;
        ev.track_duration_ms = 86400000; /* 24 h */
        ev.surface = "";
        assert_int_equal(enc_event_validate(&ev, errstr, sizeof(errstr)),
                         ENC_OK);
        ev.event_time = INT64_C(4102444800000); /* 2100-01-01T00:00:00Z */
        assert_int_equal(enc_event_validate(&ev, errstr, sizeof(errstr)),
                         ENC_OK);
}

static void expect_invalid(enc_event_t ev, enc_err_t want, const char *msg) {
        char errstr[256] = "";
        assert_int_equal(enc_event_validate(&ev, errstr, sizeof(errstr)), want);
        assert_contains(errstr, msg);
}

static void test_validate_rejects_bad_fields(void **state) {
        (void)state;
        char long_id[ENC_ID_MAX + 2];
        enc_event_t ev = ev1_struct();

        ev.user_id = "";
        expect_invalid(ev, ENC_ERR_INVALID_FIELD, "field user_id: empty");
        ev = ev1_struct();
        ev.event_id = NULL;
        expect_invalid(ev, ENC_ERR_INVALID_FIELD, "field event_id: missing");
        ev = ev1_struct();
        ev.track_id = "\xc3\x28"; /* a lead byte without its continuation */
        expect_invalid(ev, ENC_ERR_INVALID_FIELD,
                       "field track_id: not valid UTF-8");
        ev = ev1_struct();
        ev.cohort = "\xed\xa0\x80"; /* an encoded surrogate, U+D800 */
        expect_invalid(ev, ENC_ERR_INVALID_FIELD,
                       "field cohort: not valid UTF-8");
        ev = ev1_struct();
        ev.ms_played = -1;
        expect_invalid(ev, ENC_ERR_INVALID_FIELD,
                       "field ms_played: -1 outside [0, 86400000]");
        ev = ev1_struct();
        ev.track_duration_ms = 86400001;
        expect_invalid(ev, ENC_ERR_INVALID_FIELD, "field track_duration_ms");
        ev = ev1_struct();
        ev.event_time = INT64_C(1104537600000); /* 2005-01-01T00:00:00Z */
        expect_invalid(ev, ENC_ERR_INVALID_FIELD, "field event_time");
        ev.event_time = INT64_C(1136073599999); /* 1 ms before 2006 */
        expect_invalid(ev, ENC_ERR_INVALID_FIELD, "field event_time");
        ev.event_time = INT64_C(4102444800001);
        expect_invalid(ev, ENC_ERR_INVALID_FIELD, "field event_time");
        ev = ev1_struct();
        ev.reason_end = ENC_END__CNT;
        expect_invalid(ev, ENC_ERR_INVALID_FIELD, "field reason_end");
        ev = ev1_struct();
        memset(long_id, 'a', ENC_ID_MAX + 1);
        long_id[ENC_ID_MAX + 1] = '\0';
        ev.artist_id = long_id;
        expect_invalid(ev, ENC_ERR_TOO_LARGE, "field artist_id");
        long_id[ENC_ID_MAX] = '\0'; /* exactly 256 bytes is fine */
        char errstr[64];
        assert_int_equal(enc_event_validate(&ev, errstr, sizeof(errstr)),
                         ENC_OK);
}

/*
 * Expected ids computed independently with the xxhash package's CLI
 * (xxhash 0.8.1, `apt-get install xxhash`), which prints the XXH3-128
 * digest in canonical form, high 64 bits first:
 *   printf '%s\0%s\0%s\0%s\0%s\0%s' u1 active_days 1 '' 5 1700000000000 \
 *     | xxh128sum        -> 5d68c5edda02e12db8a76f0392e2118d
 *   printf '%s\0%s\0%s\0%s\0%s\0%s' u1 discovery_habit 2 artist9 3 \
 *     1700003600000 | xxh128sum -> 9bef79baf5e42a6d0756fc786c090fea
 */
static void test_update_make_id_known_answers(void **state) {
        (void)state;
        enc_update_t up;
        memset(&up, 0, sizeof(up));
        up.user_id = "u1";
        up.signal = "active_days";
        up.signal_version = 1;
        up.subject = NULL;
        up.sequence = 5;
        up.event_time = INT64_C(1700000000000);
        up.value = 99; /* not part of the id */
        enc_update_make_id(&up);
        assert_string_equal(up.update_id, "5d68c5edda02e12db8a76f0392e2118d");

        up.signal = "discovery_habit";
        up.signal_version = 2;
        up.subject = "artist9";
        up.sequence = 3;
        up.event_time = INT64_C(1700003600000);
        enc_update_make_id(&up);
        assert_string_equal(up.update_id, "9bef79baf5e42a6d0756fc786c090fea");
}

/* ---- JSON ------------------------------------------------------------- */

static void test_update_to_json_exact(void **state) {
        (void)state;
        enc_update_t up = up1_struct();
        enc_buf_t out;
        enc_buf_init(&out, 0);
        assert_int_equal(enc_update_to_json(&up, &out), ENC_OK);
        assert_string_equal(
                (const char *)out.data,
                "{\"update_id\":\"0123456789abcdef0123456789abcdef\","
                "\"user_id\":\"u1\",\"signal\":\"session\","
                "\"signal_version\":1,\"subject\":null,"
                "\"recommendation_id\":\"r1\","
                "\"window_start\":1700000000000,"
                "\"window_end\":1700003600000,\"value\":0.5,\"delta\":0.25,"
                "\"estimate_mean\":2,\"estimate_variance\":0.125,"
                "\"observed_days\":3,\"horizon_days\":60,\"final\":true,"
                "\"event_time\":1700003600000,\"sequence\":2,"
                "\"cohort\":\"A\","
                "\"components\":{\"plays\":3,\"skip_rate\":0.25}}");
        assert_int_equal(out.len, strlen((const char *)out.data));
        enc_buf_free(&out);
}

static void test_update_to_json_escapes_and_non_finite(void **state) {
        (void)state;
        enc_update_t up = up1_struct();
        enc_buf_t out;
        enc_buf_init(&out, 0);
        up.user_id = "a\"b\\c\nd\x01\t\xc3\xa9\xff";
        up.subject = "s/1";
        up.cohort = NULL;
        up.value = 0.1;
        up.delta = -1e300;
        up.estimate_mean = NAN;
        up.estimate_variance = INFINITY;
        up.final = false;
        up.component_cnt = 0;
        assert_int_equal(enc_update_to_json(&up, &out), ENC_OK);
        assert_string_equal(
                (const char *)out.data,
                "{\"update_id\":\"0123456789abcdef0123456789abcdef\","
                "\"user_id\":\"a\\\"b\\\\c\\nd\\u0001\\t\xc3\xa9\\ufffd\","
                "\"signal\":\"session\",\"signal_version\":1,"
                "\"subject\":\"s/1\",\"recommendation_id\":\"r1\","
                "\"window_start\":1700000000000,"
                "\"window_end\":1700003600000,\"value\":0.1,"
                "\"delta\":-1e+300,\"estimate_mean\":null,"
                "\"estimate_variance\":null,\"observed_days\":3,"
                "\"horizon_days\":60,\"final\":false,"
                "\"event_time\":1700003600000,\"sequence\":2,"
                "\"cohort\":null,\"components\":{}}");

        /* has_estimate false: both null whatever the numbers say. */
        up = up1_struct();
        up.has_estimate = false;
        enc_buf_reset(&out);
        assert_int_equal(enc_update_to_json(&up, &out), ENC_OK);
        assert_contains((const char *)out.data,
                        "\"estimate_mean\":null,\"estimate_variance\":null,");
        enc_buf_free(&out);
}

int main(void) {
        avro_set_allocator(count_alloc, NULL);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builder_matches_hand_bytes),
                cmocka_unit_test(test_decode_event_hand_built_confluent),
                cmocka_unit_test(test_decode_event_raw_framing_is_plain_avro),
                cmocka_unit_test(
                        test_decode_reused_value_resets_nullable_fields),
                cmocka_unit_test(test_decode_bad_magic_byte),
                cmocka_unit_test(test_decode_unknown_schema_id),
                cmocka_unit_test(test_decode_every_prefix_is_truncated),
                cmocka_unit_test(
                        test_decode_huge_length_prefix_allocates_nothing),
                cmocka_unit_test(test_decode_oversize_record),
                cmocka_unit_test(test_decode_trailing_bytes),
                cmocka_unit_test(test_decode_string_over_cap_names_field),
                cmocka_unit_test(test_decode_bad_enum_union_bool_nul),
                cmocka_unit_test(test_encode_event_matches_hand_bytes),
                cmocka_unit_test(test_encode_update_matches_hand_bytes),
                cmocka_unit_test(test_encode_update_components_in_given_order),
                cmocka_unit_test(test_decode_update_hand_built_and_round_trip),
                cmocka_unit_test(test_round_trip_event_with_utf8_and_nulls),
                cmocka_unit_test(test_decode_update_component_limits),
                cmocka_unit_test(
                        test_encode_rejects_bad_input_and_leaves_out_unchanged),
                cmocka_unit_test(test_codec_new_rejects_bad_conf),
                cmocka_unit_test(test_schema_texts_are_the_avsc_files),
                cmocka_unit_test(test_enum_names_are_the_avsc_symbols),
                cmocka_unit_test(test_event_dup_is_one_owned_block),
                cmocka_unit_test(test_validate_accepts_good_and_boundaries),
                cmocka_unit_test(test_validate_rejects_bad_fields),
                cmocka_unit_test(test_update_make_id_known_answers),
                cmocka_unit_test(test_update_to_json_exact),
                cmocka_unit_test(test_update_to_json_escapes_and_non_finite),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
