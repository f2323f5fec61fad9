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
 *
 * The codec has two paths behind one API: the hand-written fast path (the
 * default) and Avro C's generic API (conf.use_avro_c, the reference). Every
 * hand-built case below runs on both (two groups in main()), and the
 * differential tests at the end compare the two on many random records and
 * on damaged bytes, byte for byte and field for field.
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

/* Which path new_codec() builds: set by each group's setup in main(). */
static bool g_use_avro_c;

/* ---- allocation counters --------------------------------------------- */

/* Every malloc/calloc/realloc made by code linked into this executable,
 * which includes the codec (libenc_schemas is static): schemas/sources.cmake
 * links this test with -Wl,--wrap for the three, so a test can prove the
 * fast path allocates nothing at all. Avro C is a shared library; its
 * allocations are counted separately below. */
static size_t g_allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n) {
        g_allocs++;
        return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
        g_allocs++;
        return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
        g_allocs++;
        return __real_realloc(p, n);
}

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
        conf.use_avro_c = g_use_avro_c;
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

        /* The counter works: on the reference path a good record does
         * reach Avro C, whose reader allocates its strings. The fast path
         * never calls Avro C. */
        size_t before = g_avro_allocs;
        assert_int_equal(enc_codec_decode_event(c, ev1_framed,
                                                sizeof(ev1_framed), &ev, errstr,
                                                sizeof(errstr)),
                         ENC_OK);
        if (g_use_avro_c)
                assert_true(g_avro_allocs > before);
        else
                assert_int_equal(g_avro_allocs, before);

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

        /* Negative and extreme numbers, and a subject longer than the
         * one-shot buffer (hashed by the streaming path):
         *   printf '%s\0%s\0%s\0%s\0%s\0%s' u1 session -3 \
         *     "$(printf 'a%.0s' $(seq 1 1500))" 0 -1700000000000 \
         *     | xxh128sum -> 82a1789c6eca5ff8ab2b07b1a5c97369
         *   printf '%s\0%s\0%s\0%s\0%s\0%s' u1 session -3 '' \
         *     9223372036854775807 -9223372036854775808 \
         *     | xxh128sum -> 18daf1efc9c4d2410ae211085558b5bb */
        char long_subject[1501];
        memset(long_subject, 'a', 1500);
        long_subject[1500] = '\0';
        up.signal = "session";
        up.signal_version = -3;
        up.subject = long_subject;
        up.sequence = 0;
        up.event_time = INT64_C(-1700000000000);
        enc_update_make_id(&up);
        assert_string_equal(up.update_id, "82a1789c6eca5ff8ab2b07b1a5c97369");
        up.subject = NULL;
        up.sequence = INT64_MAX;
        up.event_time = INT64_MIN;
        enc_update_make_id(&up);
        assert_string_equal(up.update_id, "18daf1efc9c4d2410ae211085558b5bb");
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

/* ---- fast path vs Avro C ---------------------------------------------- */

static int group_fast_path(void **state) {
        (void)state;
        g_use_avro_c = false;
        return 0;
}

static int group_avro_c_path(void **state) {
        (void)state;
        g_use_avro_c = true;
        return 0;
}

/* A fixed-seed splitmix64: the same records on every run. */
static uint64_t rnd(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t *s, uint64_t n) {
        return rnd(s) % n;
}

/* Longs where varints change length or sign, and everyday values. */
static int64_t rnd_long(uint64_t *s) {
        switch (rnd_below(s, 8)) {
        case 0:
                return 0;
        case 1:
                return rnd_below(s, 2) ? INT64_MAX : INT64_MIN;
        case 2:
                return (int64_t)rnd_below(s, 401) - 200;
        case 3: /* around a power of two: 63, 64, 8191, 8192, ... */
                return ((int64_t)1 << rnd_below(s, 62)) -
                       (int64_t)rnd_below(s, 3) * (rnd_below(s, 2) ? 1 : -1);
        case 4:
                return -(int64_t)(rnd(s) >> rnd_below(s, 64));
        default:
                return INT64_C(1700000000000) + (int64_t)rnd_below(s, 1u << 30);
        }
}

static int32_t rnd_int(uint64_t *s) {
        switch (rnd_below(s, 4)) {
        case 0:
                return rnd_below(s, 2) ? INT32_MAX : INT32_MIN;
        case 1:
                return (int32_t)rnd_below(s, 121) - 60;
        default:
                return (int32_t)(uint32_t)rnd(s);
        }
}

/* Any bit pattern (NaNs with payloads, infinities, -0, subnormals) and
 * ordinary values: the writers must copy bits, not values. */
static double rnd_double(uint64_t *s) {
        double d;
        uint64_t u = rnd(s);
        switch (rnd_below(s, 4)) {
        case 0:
                memcpy(&d, &u, sizeof(d));
                return d;
        case 1: {
                static const double special[] = {0.0,   -0.0,   1.0,  0.5,
                                                 -2.25, 1e-310, 1e308};
                return special[u % 7];
        }
        default:
                return (double)(u % 100000) / 1000.0;
        }
}

/* Appends one code point as UTF-8 if it fits in @p room; returns bytes. */
static size_t put_utf8(char *d, size_t room, uint32_t cp) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
                b[0] = (uint8_t)cp;
                n = 1;
        } else if (cp < 0x800) {
                b[0] = (uint8_t)(0xc0 | (cp >> 6));
                b[1] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                b[0] = (uint8_t)(0xe0 | (cp >> 12));
                b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                b[2] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 3;
        } else {
                b[0] = (uint8_t)(0xf0 | (cp >> 18));
                b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
                b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                b[3] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 4;
        }
        if (n > room)
                return 0;
        memcpy(d, b, n);
        return n;
}

/* A valid UTF-8 string of at most @p cap bytes, no NUL: empty, at the cap,
 * or short; mostly ASCII (control characters included), some 2-, 3- and
 * 4-byte code points. @p d holds cap + 1 bytes. */
static const char *rnd_str(uint64_t *s, char *d, size_t cap) {
        size_t want, n = 0;
        switch (rnd_below(s, 10)) {
        case 0:
                want = 0;
                break;
        case 1:
                want = cap;
                break;
        default:
                want = rnd_below(s, cap < 24 ? cap + 1 : 24);
        }
        while (n < want) {
                uint32_t cp;
                switch (rnd_below(s, 10)) {
                case 0:
                        cp = 0x80 + (uint32_t)rnd_below(s, 0x800 - 0x80);
                        break;
                case 1:
                        cp = 0x800 + (uint32_t)rnd_below(s, 0xd800 - 0x800);
                        break;
                case 2:
                        cp = 0x10000 + (uint32_t)rnd_below(s, 0x100000);
                        break;
                case 3:
                        cp = 1 + (uint32_t)rnd_below(s, 0x1f);
                        break;
                default:
                        cp = 0x20 + (uint32_t)rnd_below(s, 0x5f);
                }
                size_t k = put_utf8(d + n, want - n, cp);
                if (!k)
                        k = put_utf8(d + n, want - n, 'x');
                n += k;
        }
        d[n] = '\0';
        return d;
}

typedef struct rnd_event_s {
        enc_event_t ev;
        char str[7][ENC_ID_MAX + 1];
} rnd_event_t;

static void rnd_event(uint64_t *s, rnd_event_t *r) {
        enc_event_t *ev = &r->ev;
        ev->event_id = rnd_str(s, r->str[0], ENC_ID_MAX);
        ev->user_id = rnd_str(s, r->str[1], ENC_ID_MAX);
        ev->track_id = rnd_str(s, r->str[2], ENC_ID_MAX);
        ev->artist_id = rnd_str(s, r->str[3], ENC_ID_MAX);
        ev->event_time = rnd_long(s);
        ev->ms_played = rnd_long(s);
        ev->track_duration_ms = rnd_long(s);
        ev->reason_end = (enc_reason_end_t)rnd_below(s, ENC_END__CNT);
        ev->source = (enc_source_t)rnd_below(s, ENC_SRC__CNT);
        ev->surface = rnd_str(s, r->str[4], ENC_LABEL_MAX);
        ev->recommendation_id =
                rnd_below(s, 3) ? rnd_str(s, r->str[5], ENC_ID_MAX) : NULL;
        ev->cohort =
                rnd_below(s, 3) ? rnd_str(s, r->str[6], ENC_LABEL_MAX) : NULL;
}

static void assert_opt_str_equal(const char *a, const char *b) {
        if (!a || !b)
                assert_true(a == b);
        else
                assert_string_equal(a, b);
}

static void assert_event_equal(const enc_event_t *a, const enc_event_t *b) {
        assert_string_equal(a->event_id, b->event_id);
        assert_string_equal(a->user_id, b->user_id);
        assert_string_equal(a->track_id, b->track_id);
        assert_string_equal(a->artist_id, b->artist_id);
        assert_true(a->event_time == b->event_time);
        assert_true(a->ms_played == b->ms_played);
        assert_true(a->track_duration_ms == b->track_duration_ms);
        assert_int_equal(a->reason_end, b->reason_end);
        assert_int_equal(a->source, b->source);
        assert_string_equal(a->surface, b->surface);
        assert_opt_str_equal(a->recommendation_id, b->recommendation_id);
        assert_opt_str_equal(a->cohort, b->cohort);
}

static enc_codec_t *new_codec_path(enc_framing_t framing, bool avro_c) {
        bool saved = g_use_avro_c;
        g_use_avro_c = avro_c;
        enc_codec_t *c = new_codec(framing, 0);
        g_use_avro_c = saved;
        return c;
}

/* Decodes @p b with both paths: same error and message, or same event. */
static enc_err_t decode_both(enc_codec_t *fast, enc_codec_t *ref,
                             const uint8_t *b, size_t n) {
        enc_event_t ef, er;
        char ef_err[256] = "", er_err[256] = "";
        enc_err_t a =
                enc_codec_decode_event(fast, b, n, &ef, ef_err, sizeof(ef_err));
        enc_err_t r =
                enc_codec_decode_event(ref, b, n, &er, er_err, sizeof(er_err));
        if (a != r)
                fail_msg("fast path: %s (%s); Avro C: %s (%s)", enc_err2str(a),
                         ef_err, enc_err2str(r), er_err);
        if (a == ENC_OK)
                assert_event_equal(&ef, &er);
        else
                assert_string_equal(ef_err, er_err);
        return a;
}

/* 20 000 random events, encoded by Avro C (the reference writer, not the
 * code under test), decoded by both paths, in both framings. The decoded
 * events must equal each other and the input. */
static void test_fast_decode_matches_avro_c_random_events(void **state) {
        (void)state;
        uint64_t seed = 42;
        for (int framing = 0; framing < 2; framing++) {
                enc_framing_t fr =
                        framing ? ENC_FRAMING_RAW : ENC_FRAMING_CONFLUENT;
                enc_codec_t *fast = new_codec_path(fr, false);
                enc_codec_t *ref = new_codec_path(fr, true);
                enc_buf_t b;
                enc_buf_init(&b, 0);
                for (int i = 0; i < 10000; i++) {
                        rnd_event_t r;
                        enc_event_t ev;
                        char err[256];
                        rnd_event(&seed, &r);
                        enc_buf_reset(&b);
                        assert_int_equal(enc_codec_encode_event(ref, &r.ev, &b),
                                         ENC_OK);
                        assert_int_equal(decode_both(fast, ref, b.data, b.len),
                                         ENC_OK);
                        assert_int_equal(enc_codec_decode_event(fast, b.data,
                                                                b.len, &ev, err,
                                                                sizeof(err)),
                                         ENC_OK);
                        assert_event_equal(&ev, &r.ev);
                }
                enc_buf_free(&b);
                enc_codec_destroy(fast);
                enc_codec_destroy(ref);
        }
}

/* Good records damaged the ways wire bytes get damaged -- cut short, bits
 * flipped, bytes overwritten, junk appended, pieces of another record
 * spliced in -- must be refused (or accepted) identically by both paths,
 * with the same error and message. */
static void test_fast_decode_matches_avro_c_on_damaged_bytes(void **state) {
        (void)state;
        uint64_t seed = 7;
        enc_codec_t *fast = new_codec_path(ENC_FRAMING_CONFLUENT, false);
        enc_codec_t *ref = new_codec_path(ENC_FRAMING_CONFLUENT, true);
        enc_buf_t good, other;
        enc_buf_init(&good, 0);
        enc_buf_init(&other, 0);
        size_t outcomes[ENC_ERR__CNT] = {0};
        for (int i = 0; i < 20000; i++) {
                rnd_event_t r;
                rnd_event(&seed, &r);
                enc_buf_reset(&good);
                assert_int_equal(enc_codec_encode_event(ref, &r.ev, &good),
                                 ENC_OK);
                if (i == 0 || rnd_below(&seed, 8) == 0) {
                        enc_buf_reset(&other);
                        assert_int_equal(
                                enc_buf_append(&other, good.data, good.len),
                                ENC_OK);
                }
                uint8_t b[2048];
                size_t n = good.len;
                memcpy(b, good.data, n);
                switch (rnd_below(&seed, 5)) {
                case 0:
                        n = rnd_below(&seed, n);
                        break;
                case 1:
                        for (int k = 0; k < 1 + (int)rnd_below(&seed, 3); k++)
                                b[rnd_below(&seed, n)] ^=
                                        (uint8_t)(1u << rnd_below(&seed, 8));
                        break;
                case 2:
                        b[5 + rnd_below(&seed, n - 5)] = (uint8_t)rnd(&seed);
                        break;
                case 3:
                        for (int k = 0; k < 1 + (int)rnd_below(&seed, 3); k++)
                                b[n++] = (uint8_t)rnd(&seed);
                        break;
                default: {
                        size_t at = 5 + rnd_below(&seed, n - 5);
                        size_t from = rnd_below(&seed, other.len);
                        size_t k = rnd_below(&seed, other.len - from + 1);
                        if (at + k > sizeof(b))
                                k = sizeof(b) - at;
                        memcpy(b + at, other.data + from, k);
                        n = at + k > n ? at + k : n;
                }
                }
                outcomes[decode_both(fast, ref, b, n)]++;
        }
        /* The damage reached every kind of refusal, not only one. */
        assert_true(outcomes[ENC_OK] > 0);
        assert_true(outcomes[ENC_ERR_TRUNCATED] > 0);
        assert_true(outcomes[ENC_ERR_DECODE] > 0);
        assert_true(outcomes[ENC_ERR_TOO_LARGE] > 0);
        assert_true(outcomes[ENC_ERR_BAD_MAGIC] > 0);
        enc_buf_free(&good);
        enc_buf_free(&other);
        enc_codec_destroy(fast);
        enc_codec_destroy(ref);
}

static void test_fast_decode_allocates_nothing(void **state) {
        (void)state;
        uint64_t seed = 3;
        enc_codec_t *fast = new_codec_path(ENC_FRAMING_CONFLUENT, false);
        enc_buf_t b[64];
        for (int i = 0; i < 64; i++) {
                rnd_event_t r;
                rnd_event(&seed, &r);
                enc_buf_init(&b[i], 0);
                assert_int_equal(enc_codec_encode_event(fast, &r.ev, &b[i]),
                                 ENC_OK);
        }
        /* An update to encode into room reserved beforehand. */
        enc_update_t up = up1_struct();
        enc_buf_t out;
        enc_buf_init(&out, 0);
        assert_int_equal(enc_buf_reserve(&out, 4096), ENC_OK);

        size_t before = g_allocs, avro_before = g_avro_allocs;
        for (int round = 0; round < 100; round++) {
                for (int i = 0; i < 64; i++) {
                        enc_event_t ev;
                        char err[256];
                        assert_int_equal(enc_codec_decode_event(
                                                 fast, b[i].data, b[i].len, &ev,
                                                 err, sizeof(err)),
                                         ENC_OK);
                }
                enc_buf_reset(&out);
                assert_int_equal(enc_codec_encode_update(fast, &up, &out),
                                 ENC_OK);
        }
        assert_int_equal(g_allocs, before);
        assert_int_equal(g_avro_allocs, avro_before);
        /* The counter works: growing a buffer is counted. */
        enc_buf_t grow;
        enc_buf_init(&grow, 0);
        assert_int_equal(enc_buf_append(&grow, "x", 1), ENC_OK);
        assert_true(g_allocs > before);
        enc_buf_free(&grow);
        enc_buf_free(&out);
        for (int i = 0; i < 64; i++)
                enc_buf_free(&b[i]);
        enc_codec_destroy(fast);
}

/* Component names have the signal names' cap (codec.c). */
typedef struct rnd_update_s {
        enc_update_t up;
        char str[5][ENC_ID_MAX + 4];
        char names[ENC_COMPONENTS_MAX + 1][ENC_SIGNAL_NAME_MAX + 4];
} rnd_update_t;

/* A random update, valid about nine times in ten; the rest break one rule
 * (empty update_id, NULL or over-cap or non-UTF-8 string, too many or
 * repeated components) so the paths are compared on refusals too. */
static void rnd_update(uint64_t *s, rnd_update_t *r) {
        enc_update_t *up = &r->up;
        memset(up, 0, sizeof(*up));
        size_t idn = rnd_below(s, 4) ? 32 : 1 + rnd_below(s, 32);
        for (size_t i = 0; i < idn; i++)
                up->update_id[i] = "0123456789abcdef"[rnd_below(s, 16)];
        up->user_id = rnd_str(s, r->str[0], ENC_ID_MAX);
        up->signal = rnd_str(s, r->str[1], ENC_SIGNAL_NAME_MAX);
        up->signal_version = rnd_int(s);
        up->subject =
                rnd_below(s, 3) ? rnd_str(s, r->str[2], ENC_ID_MAX) : NULL;
        up->recommendation_id =
                rnd_below(s, 3) ? rnd_str(s, r->str[3], ENC_ID_MAX) : NULL;
        up->window_start = rnd_long(s);
        up->window_end = rnd_long(s);
        up->value = rnd_double(s);
        up->delta = rnd_double(s);
        up->has_estimate = rnd_below(s, 2);
        up->estimate_mean = rnd_double(s);
        up->estimate_variance = rnd_double(s);
        up->observed_days = rnd_int(s);
        up->horizon_days = rnd_int(s);
        up->final = rnd_below(s, 2);
        up->event_time = rnd_long(s);
        up->sequence = rnd_long(s);
        up->cohort =
                rnd_below(s, 3) ? rnd_str(s, r->str[4], ENC_LABEL_MAX) : NULL;
        up->component_cnt = (int)rnd_below(s, ENC_COMPONENTS_MAX + 1);
        for (int i = 0; i < up->component_cnt; i++) {
                /* "c<i>" keeps names distinct; a random tail varies
                 * them (at most 3 + 45 bytes, within the cap of 48). */
                int k = snprintf(r->names[i], sizeof(r->names[i]), "c%d", i);
                rnd_str(s, r->names[i] + k, ENC_SIGNAL_NAME_MAX - 3);
                up->components[i].name = r->names[i];
                up->components[i].value = rnd_double(s);
        }
        if (rnd_below(s, 10))
                return;
        switch (rnd_below(s, 7)) {
        case 0:
                up->update_id[0] = '\0';
                break;
        case 1:
                up->user_id = NULL;
                break;
        case 2:
                memset(r->str[1], 's', ENC_SIGNAL_NAME_MAX + 1);
                r->str[1][ENC_SIGNAL_NAME_MAX + 1] = '\0';
                up->signal = r->str[1];
                break;
        case 3:
                up->cohort = "\xc3\x28";
                break;
        case 4:
                up->component_cnt = ENC_COMPONENTS_MAX + 1;
                break;
        case 5:
                if (up->component_cnt >= 2)
                        up->components[up->component_cnt - 1].name =
                                up->components[0].name;
                break;
        default:
                up->component_cnt = -1;
        }
}

static void assert_double_bits(double a, double b) {
        assert_memory_equal(&a, &b, sizeof(a));
}

/* 20 000 random updates encoded by both paths into buffers that already
 * hold a prefix: the same result, the same bytes appended (or nothing on
 * an error). Avro C then decodes what the fast path wrote back into the
 * input, field for field and bit for bit. */
static void test_fast_encode_matches_avro_c_random_updates(void **state) {
        (void)state;
        uint64_t seed = 1234;
        size_t ok = 0, refused = 0;
        for (int framing = 0; framing < 2; framing++) {
                enc_framing_t fr =
                        framing ? ENC_FRAMING_RAW : ENC_FRAMING_CONFLUENT;
                enc_codec_t *fast = new_codec_path(fr, false);
                enc_codec_t *ref = new_codec_path(fr, true);
                enc_buf_t bf, br;
                enc_buf_init(&bf, 0);
                enc_buf_init(&br, 0);
                for (int i = 0; i < 10000; i++) {
                        rnd_update_t r;
                        rnd_update(&seed, &r);
                        enc_buf_reset(&bf);
                        enc_buf_reset(&br);
                        assert_int_equal(enc_buf_append(&bf, "xy", 2), ENC_OK);
                        assert_int_equal(enc_buf_append(&br, "xy", 2), ENC_OK);
                        enc_err_t ef =
                                enc_codec_encode_update(fast, &r.up, &bf);
                        enc_err_t er = enc_codec_encode_update(ref, &r.up, &br);
                        assert_int_equal(ef, er);
                        assert_int_equal(bf.len, br.len);
                        assert_memory_equal(bf.data, br.data, bf.len);
                        if (ef) {
                                assert_int_equal(bf.len, 2);
                                refused++;
                                continue;
                        }
                        ok++;
                        enc_update_t d;
                        char err[256];
                        assert_int_equal(enc_codec_decode_update(
                                                 ref, bf.data + 2, bf.len - 2,
                                                 &d, err, sizeof(err)),
                                         ENC_OK);
                        const enc_update_t *u = &r.up;
                        assert_string_equal(d.update_id, u->update_id);
                        assert_string_equal(d.user_id, u->user_id);
                        assert_string_equal(d.signal, u->signal);
                        assert_int_equal(d.signal_version, u->signal_version);
                        assert_opt_str_equal(d.subject, u->subject);
                        assert_opt_str_equal(d.recommendation_id,
                                             u->recommendation_id);
                        assert_true(d.window_start == u->window_start);
                        assert_true(d.window_end == u->window_end);
                        assert_double_bits(d.value, u->value);
                        assert_double_bits(d.delta, u->delta);
                        assert_int_equal(d.has_estimate, u->has_estimate);
                        if (u->has_estimate) {
                                assert_double_bits(d.estimate_mean,
                                                   u->estimate_mean);
                                assert_double_bits(d.estimate_variance,
                                                   u->estimate_variance);
                        }
                        assert_int_equal(d.observed_days, u->observed_days);
                        assert_int_equal(d.horizon_days, u->horizon_days);
                        assert_int_equal(d.final, u->final);
                        assert_true(d.event_time == u->event_time);
                        assert_true(d.sequence == u->sequence);
                        assert_opt_str_equal(d.cohort, u->cohort);
                        assert_int_equal(d.component_cnt, u->component_cnt);
                        for (int k = 0; k < u->component_cnt; k++) {
                                assert_string_equal(d.components[k].name,
                                                    u->components[k].name);
                                assert_double_bits(d.components[k].value,
                                                   u->components[k].value);
                        }
                }
                enc_buf_free(&bf);
                enc_buf_free(&br);
                enc_codec_destroy(fast);
                enc_codec_destroy(ref);
        }
        /* Both kinds of outcome were exercised in quantity. */
        assert_true(ok > 15000);
        assert_true(refused > 1000);
}

/* An output buffer one byte too small: both paths refuse with TOO_LARGE and
 * append nothing; at exactly the size both succeed. */
static void test_fast_encode_full_buffer_like_avro_c(void **state) {
        (void)state;
        enc_update_t up = up1_struct();
        for (int path = 0; path < 2; path++) {
                enc_codec_t *c = new_codec_path(ENC_FRAMING_CONFLUENT, path);
                enc_buf_t small, exact;
                enc_buf_init(&small, sizeof(up1_framed) - 1);
                enc_buf_init(&exact, sizeof(up1_framed));
                assert_int_equal(enc_codec_encode_update(c, &up, &small),
                                 ENC_ERR_TOO_LARGE);
                assert_int_equal(small.len, 0);
                assert_int_equal(enc_codec_encode_update(c, &up, &exact),
                                 ENC_OK);
                assert_int_equal(exact.len, sizeof(up1_framed));
                assert_memory_equal(exact.data, up1_framed, exact.len);
                enc_buf_free(&small);
                enc_buf_free(&exact);
                enc_codec_destroy(c);
        }
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
        /* Path-independent: each builds both codecs itself. */
        const struct CMUnitTest differential[] = {
                cmocka_unit_test(test_fast_decode_allocates_nothing),
                cmocka_unit_test(test_fast_decode_matches_avro_c_random_events),
                cmocka_unit_test(
                        test_fast_decode_matches_avro_c_on_damaged_bytes),
                cmocka_unit_test(
                        test_fast_encode_matches_avro_c_random_updates),
                cmocka_unit_test(test_fast_encode_full_buffer_like_avro_c),
        };
        int failed = 0;
        failed += cmocka_run_group_tests_name("fast path", tests,
                                              group_fast_path, NULL);
        failed += cmocka_run_group_tests_name("Avro C reference path", tests,
                                              group_avro_c_path, NULL);
        failed += cmocka_run_group_tests_name("fast vs Avro C", differential,
                                              NULL, NULL);
        return failed;
}
