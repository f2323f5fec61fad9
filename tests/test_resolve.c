/*
 * test_resolve.c -- schemas/resolve.c: PlayEvents written with another
 * schema, read by Avro's resolution rules (issue 16, items 2, 3 and 6).
 *
 * The writer's bytes are produced here by Apache Avro C's generic writer
 * from the writer schema (never by the code under test), and every
 * decoded event is compared with the event that was written, field for
 * field, and re-encoded with encore's schema byte for byte against the
 * canonical encoding of that same event. For what Avro C's own resolver
 * implements (field order, skipped fields of any type, int -> long,
 * renames given to it as a renamed reader schema, reversed unions), the
 * resolving scan is also compared byte for byte with avro_resolved_writer.
 * Avro C 1.11.1 neither fills defaults nor maps enum symbols by name (it
 * passes the writer's index through), so those cases are pinned by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "event.h"

/* The writer schema of the issue: another namespace, fields in another
 * order, two extra fields (a nested record with an array, and a map of a
 * union), an int duration, the cohort named experiment_group as
 * ["string","null"], ReasonEnd with a symbol encore lacks (PAUSED), and
 * Source's symbols in reverse order. */
static const char v7_json[] =
        "{\"type\":\"record\",\"name\":\"PlayEvent\","
        "\"namespace\":\"com.acme.listening\",\"fields\":["
        "{\"name\":\"user_id\",\"type\":\"string\"},"
        "{\"name\":\"event_time\",\"type\":\"long\"},"
        "{\"name\":\"client\",\"type\":{\"type\":\"record\",\"name\":"
        "\"Client\",\"fields\":[{\"name\":\"os\",\"type\":\"string\"},"
        "{\"name\":\"versions\",\"type\":{\"type\":\"array\",\"items\":"
        "\"int\"}}]}},"
        "{\"name\":\"track_id\",\"type\":\"string\"},"
        "{\"name\":\"artist_id\",\"type\":\"string\"},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"ms_played\",\"type\":\"long\"},"
        "{\"name\":\"track_duration_ms\",\"type\":\"int\"},"
        "{\"name\":\"reason_end\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"ReasonEnd\",\"symbols\":[\"TRACK_DONE\",\"FORWARD\",\"BACK\","
        "\"END_PLAY\",\"LOGOUT\",\"UNKNOWN\",\"PAUSED\"]}},"
        "{\"name\":\"source\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Source\",\"symbols\":[\"OTHER\",\"RADIO\",\"PLAYLIST\","
        "\"LIBRARY\",\"SEARCH\",\"RECOMMENDATION\"]}},"
        "{\"name\":\"surface\",\"type\":\"string\"},"
        "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":"
        "[\"null\",\"double\"]}},"
        "{\"name\":\"recommendation_id\",\"type\":[\"null\",\"string\"],"
        "\"default\":null},"
        "{\"name\":\"experiment_group\",\"type\":[\"string\",\"null\"]}]}";

/* The same, with the enums exactly encore's (so Avro C's resolver, which
 * does not map symbols, reads them right). */
static const char v8_json[] =
        "{\"type\":\"record\",\"name\":\"PlayEvent\","
        "\"namespace\":\"com.acme.listening\",\"fields\":["
        "{\"name\":\"user_id\",\"type\":\"string\"},"
        "{\"name\":\"event_time\",\"type\":\"long\"},"
        "{\"name\":\"client\",\"type\":{\"type\":\"record\",\"name\":"
        "\"Client\",\"fields\":[{\"name\":\"os\",\"type\":\"string\"},"
        "{\"name\":\"versions\",\"type\":{\"type\":\"array\",\"items\":"
        "\"int\"}}]}},"
        "{\"name\":\"track_id\",\"type\":\"string\"},"
        "{\"name\":\"artist_id\",\"type\":\"string\"},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"ms_played\",\"type\":\"long\"},"
        "{\"name\":\"track_duration_ms\",\"type\":\"int\"},"
        "{\"name\":\"reason_end\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"ReasonEnd\",\"symbols\":[\"TRACK_DONE\",\"FORWARD\",\"BACK\","
        "\"END_PLAY\",\"LOGOUT\",\"UNKNOWN\"]}},"
        "{\"name\":\"source\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Source\",\"symbols\":[\"RECOMMENDATION\",\"SEARCH\",\"LIBRARY\","
        "\"PLAYLIST\",\"RADIO\",\"OTHER\"]}},"
        "{\"name\":\"surface\",\"type\":\"string\"},"
        "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":"
        "[\"null\",\"double\"]}},"
        "{\"name\":\"recommendation_id\",\"type\":[\"null\",\"string\"],"
        "\"default\":null},"
        "{\"name\":\"experiment_group\",\"type\":[\"string\",\"null\"]}]}";

/* ---- writing an event with a writer schema, by Avro C ---------------- */

static const char *ev_str(const enc_event_t *ev, const char *name) {
        if (!strcmp(name, "event_id"))
                return ev->event_id;
        if (!strcmp(name, "user_id"))
                return ev->user_id;
        if (!strcmp(name, "track_id"))
                return ev->track_id;
        if (!strcmp(name, "artist_id"))
                return ev->artist_id;
        if (!strcmp(name, "surface"))
                return ev->surface;
        if (!strcmp(name, "recommendation_id"))
                return ev->recommendation_id;
        if (!strcmp(name, "experiment_group") || !strcmp(name, "cohort"))
                return ev->cohort;
        return NULL;
}

static int64_t ev_long(const enc_event_t *ev, const char *name) {
        if (!strcmp(name, "event_time"))
                return ev->event_time;
        if (!strcmp(name, "ms_played"))
                return ev->ms_played;
        return ev->track_duration_ms;
}

/* Sets a union to its null branch or its string branch. */
static void set_union_str(avro_value_t *u, avro_schema_t us, const char *s) {
        avro_value_t b;
        for (size_t i = 0; i < avro_schema_union_size(us); i++) {
                avro_type_t t = avro_typeof(avro_schema_union_branch(us, i));
                if ((s && t == AVRO_STRING) || (!s && t == AVRO_NULL)) {
                        assert_int_equal(avro_value_set_branch(u, (int)i, &b),
                                         0);
                        if (s)
                                assert_int_equal(avro_value_set_string(&b, s),
                                                 0);
                        else
                                assert_int_equal(avro_value_set_null(&b), 0);
                        return;
                }
        }
        fail_msg("union has no branch for %s", s ? "a string" : "null");
}

/* Writes @p ev with writer schema @p ws into @p out (Confluent framing,
 * id @p id); @p reason_idx >= 0 forces the writer's reason_end index.
 * Extra fields get values derived from @p salt. Returns the length. */
static size_t write_with(avro_schema_t ws, int32_t id, const enc_event_t *ev,
                         int reason_idx, unsigned salt, uint8_t *out,
                         size_t cap) {
        avro_value_iface_t *cls = avro_generic_class_from_schema(ws);
        avro_value_t rec, f, b;
        assert_non_null(cls);
        assert_int_equal(avro_generic_value_new(cls, &rec), 0);
        size_t nf = avro_schema_record_size(ws);
        for (size_t i = 0; i < nf; i++) {
                const char *n = avro_schema_record_field_name(ws, (int)i);
                avro_schema_t ft =
                        avro_schema_record_field_get_by_index(ws, (int)i);
                assert_int_equal(avro_value_get_by_index(&rec, i, &f, NULL), 0);
                if (!strcmp(n, "client")) {
                        avro_value_t os, arr, item;
                        assert_int_equal(
                                avro_value_get_by_index(&f, 0, &os, NULL), 0);
                        assert_int_equal(avro_value_set_string(&os, "linux"),
                                         0);
                        assert_int_equal(
                                avro_value_get_by_index(&f, 1, &arr, NULL), 0);
                        for (unsigned k = 0; k < salt % 4; k++) {
                                assert_int_equal(
                                        avro_value_append(&arr, &item, NULL),
                                        0);
                                assert_int_equal(
                                        avro_value_set_int(
                                                &item, (int)(k * 1000 + salt)),
                                        0);
                        }
                } else if (!strcmp(n, "tags")) {
                        avro_value_t v;
                        if (salt % 3) {
                                assert_int_equal(
                                        avro_value_add(&f, "a", &v, NULL, NULL),
                                        0);
                                assert_int_equal(
                                        avro_value_set_branch(&v, 0, &b), 0);
                                assert_int_equal(avro_value_set_null(&b), 0);
                                assert_int_equal(avro_value_add(&f, "bb", &v,
                                                                NULL, NULL),
                                                 0);
                                assert_int_equal(
                                        avro_value_set_branch(&v, 1, &b), 0);
                                assert_int_equal(
                                        avro_value_set_double(&b, salt * 0.5),
                                        0);
                        }
                } else if (!strcmp(n, "reason_end")) {
                        int idx =
                                reason_idx >= 0
                                        ? reason_idx
                                        : avro_schema_enum_get_by_name(
                                                  ft, enc_reason_end_name(
                                                              ev->reason_end));
                        assert_true(idx >= 0);
                        assert_int_equal(avro_value_set_enum(&f, idx), 0);
                } else if (!strcmp(n, "source")) {
                        int idx = avro_schema_enum_get_by_name(
                                ft, enc_source_name(ev->source));
                        assert_true(idx >= 0);
                        assert_int_equal(avro_value_set_enum(&f, idx), 0);
                } else if (avro_typeof(ft) == AVRO_UNION) {
                        set_union_str(&f, ft, ev_str(ev, n));
                } else if (avro_typeof(ft) == AVRO_STRING) {
                        const char *s = ev_str(ev, n);
                        assert_non_null(s);
                        assert_int_equal(avro_value_set_string(&f, s), 0);
                } else if (avro_typeof(ft) == AVRO_INT32) {
                        assert_int_equal(
                                avro_value_set_int(&f, (int32_t)ev_long(ev, n)),
                                0);
                } else if (avro_typeof(ft) == AVRO_INT64) {
                        assert_int_equal(
                                avro_value_set_long(&f, ev_long(ev, n)), 0);
                } else {
                        fail_msg("writer field %s: no value in this test", n);
                }
        }
        size_t size;
        assert_int_equal(avro_value_sizeof(&rec, &size), 0);
        assert_true(size + 5 <= cap);
        out[0] = 0;
        out[1] = (uint8_t)(id >> 24);
        out[2] = (uint8_t)(id >> 16);
        out[3] = (uint8_t)(id >> 8);
        out[4] = (uint8_t)id;
        avro_writer_t w = avro_writer_memory((char *)out + 5, (int64_t)size);
        assert_int_equal(avro_value_write(w, &rec), 0);
        avro_writer_free(w);
        avro_value_decref(&rec);
        avro_value_iface_decref(cls);
        return size + 5;
}

/* ---- events ------------------------------------------------------------ */

static uint64_t rnd(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

typedef struct rev_s {
        char ids[5][64];
        char surface[32], rec[64], cohort[32];
        enc_event_t ev;
} rev_t;

static void rnd_str(uint64_t *s, char *d, size_t cap, const char *prefix) {
        size_t n = (size_t)snprintf(d, cap, "%s", prefix);
        size_t extra = rnd(s) % (cap - n - 1);
        for (size_t i = 0; i < extra; i++)
                d[n + i] = (char)('a' + rnd(s) % 26);
        d[n + extra] = '\0';
}

static void rnd_event(uint64_t *s, rev_t *r) {
        static const char *pre[5] = {"e-", "u-", "t-", "a-", ""};
        for (int i = 0; i < 4; i++)
                rnd_str(s, r->ids[i], sizeof(r->ids[i]), pre[i]);
        rnd_str(s, r->surface, sizeof(r->surface), "s");
        rnd_str(s, r->rec, sizeof(r->rec), "r-");
        rnd_str(s, r->cohort, sizeof(r->cohort), "c");
        memset(&r->ev, 0, sizeof(r->ev));
        r->ev.event_id = r->ids[0];
        r->ev.user_id = r->ids[1];
        r->ev.track_id = r->ids[2];
        r->ev.artist_id = r->ids[3];
        r->ev.surface = r->surface;
        r->ev.recommendation_id = rnd(s) % 3 ? r->rec : NULL;
        r->ev.cohort = rnd(s) % 2 ? r->cohort : NULL;
        /* any long the wire can carry; int-typed writer fields get ints */
        r->ev.event_time = (int64_t)(rnd(s) >> 1) - (int64_t)(rnd(s) >> 2);
        r->ev.ms_played = (int64_t)(rnd(s) % 90000000) - 1000;
        r->ev.track_duration_ms =
                (int64_t)(int32_t)(uint32_t)rnd(s); /* negative too */
        r->ev.reason_end = (enc_reason_end_t)(rnd(s) % ENC_END__CNT);
        r->ev.source = (enc_source_t)(rnd(s) % ENC_SRC__CNT);
}

static void assert_opt_equal(const char *a, const char *b) {
        if (!a || !b)
                assert_ptr_equal(a, b);
        else
                assert_string_equal(a, b);
}

static void assert_event_equal(const enc_event_t *a, const enc_event_t *b) {
        assert_string_equal(a->event_id, b->event_id);
        assert_string_equal(a->user_id, b->user_id);
        assert_string_equal(a->track_id, b->track_id);
        assert_string_equal(a->artist_id, b->artist_id);
        assert_string_equal(a->surface, b->surface);
        assert_opt_equal(a->recommendation_id, b->recommendation_id);
        assert_opt_equal(a->cohort, b->cohort);
        assert_int_equal(a->event_time, b->event_time);
        assert_int_equal(a->ms_played, b->ms_played);
        assert_int_equal(a->track_duration_ms, b->track_duration_ms);
        assert_int_equal(a->reason_end, b->reason_end);
        assert_int_equal(a->source, b->source);
}

static enc_codec_t *renamed_codec(void) {
        char err[512];
        enc_codec_t *c = enc_codec_new(NULL, err, sizeof(err));
        assert_non_null(c);
        assert_int_equal(enc_codec_set_field_name(c, "cohort",
                                                  "experiment_group", err,
                                                  sizeof(err)),
                         ENC_OK);
        return c;
}

/* renamed_codec() with v7 registered as writer schema 7. */
static enc_codec_t *v7_codec(void) {
        char err[512];
        enc_codec_t *c = renamed_codec();
        assert_int_equal(enc_codec_add_writer_schema(c, 7, v7_json,
                                                     strlen(v7_json), err,
                                                     sizeof(err)),
                         ENC_OK);
        return c;
}

static avro_schema_t parse(const char *json) {
        avro_schema_t s;
        assert_int_equal(avro_schema_from_json_length(json, strlen(json), &s),
                         0);
        return s;
}

/* Encodes @p ev with encore's schema (the canonical bytes), body only. */
static size_t canonical_body(enc_codec_t *c, const enc_event_t *ev,
                             uint8_t *out, size_t cap) {
        enc_buf_t b;
        enc_buf_init(&b, 1 << 16);
        assert_int_equal(enc_codec_encode_event(c, ev, &b), ENC_OK);
        assert_true(b.len - 5 <= cap);
        memcpy(out, b.data + 5, b.len - 5);
        size_t n = b.len - 5;
        enc_buf_free(&b);
        return n;
}

/* ---- tests ------------------------------------------------------------- */

/* 500 random events written with v7 read back as themselves, and encode
 * to exactly their canonical bytes. */
static void test_v7_events_read_back_exactly(void **st) {
        (void)st;
        char err[512];
        enc_codec_t *c = v7_codec();
        enc_codec_t *canon = enc_codec_new(NULL, err, sizeof(err));
        avro_schema_t ws = parse(v7_json);
        uint64_t s = 0x9e3779b97f4a7c15ULL;
        static uint8_t buf[4096], a[4096], b[4096];
        for (int i = 0; i < 500; i++) {
                rev_t r;
                rnd_event(&s, &r);
                size_t n = write_with(ws, 7, &r.ev, -1, (unsigned)i, buf,
                                      sizeof(buf));
                enc_event_t got;
                assert_int_equal(enc_codec_decode_event(c, buf, n, &got, err,
                                                        sizeof(err)),
                                 ENC_OK);
                assert_event_equal(&got, &r.ev);
                size_t na = canonical_body(canon, &got, a, sizeof(a));
                size_t nb = canonical_body(canon, &r.ev, b, sizeof(b));
                assert_int_equal(na, nb);
                assert_memory_equal(a, b, na);
        }
        avro_schema_decref(ws);
        enc_codec_destroy(canon);
        enc_codec_destroy(c);
}

/* v8 (v7 with encore's enums) through Avro C's resolver into a reader
 * schema with cohort renamed experiment_group, written back by Avro C:
 * the same bytes as the resolving scan's event encoded canonically. */
static void test_resolving_scan_matches_avro_c_resolver(void **st) {
        (void)st;
        char err[512];
        enc_codec_t *c = renamed_codec();
        assert_int_equal(enc_codec_add_writer_schema(c, 8, v8_json,
                                                     strlen(v8_json), err,
                                                     sizeof(err)),
                         ENC_OK);
        /* encore's schema, cohort renamed: same layout, the writer's name */
        const char *canon = enc_codec_play_event_schema();
        const char *at = strstr(canon, "\"name\": \"cohort\"");
        assert_non_null(at);
        char rjson[8192];
        snprintf(rjson, sizeof(rjson), "%.*s\"name\": \"experiment_group\"%s",
                 (int)(at - canon), canon, at + strlen("\"name\": \"cohort\""));
        avro_schema_t ws = parse(v8_json), rs = parse(rjson);
        avro_value_iface_t *res = avro_resolved_writer_new(ws, rs);
        assert_non_null(res);
        avro_value_iface_t *rcls = avro_generic_class_from_schema(rs);
        avro_value_t rval, wval;
        assert_int_equal(avro_generic_value_new(rcls, &rval), 0);
        assert_int_equal(avro_resolved_writer_new_value(res, &wval), 0);
        avro_resolved_writer_set_dest(&wval, &rval);

        uint64_t s = 12345;
        static uint8_t buf[4096], mine[4096], ref[4096];
        for (int i = 0; i < 500; i++) {
                rev_t r;
                rnd_event(&s, &r);
                size_t n = write_with(ws, 8, &r.ev, -1, (unsigned)i, buf,
                                      sizeof(buf));
                enc_event_t got;
                assert_int_equal(enc_codec_decode_event(c, buf, n, &got, err,
                                                        sizeof(err)),
                                 ENC_OK);
                size_t nm = canonical_body(c, &got, mine, sizeof(mine));

                avro_reader_t rd = avro_reader_memory((const char *)buf + 5,
                                                      (int64_t)(n - 5));
                assert_int_equal(avro_value_reset(&rval), 0);
                assert_int_equal(avro_value_read(rd, &wval), 0);
                avro_reader_free(rd);
                size_t nr;
                assert_int_equal(avro_value_sizeof(&rval, &nr), 0);
                assert_int_equal(nr, nm);
                avro_writer_t w = avro_writer_memory((char *)ref, (int64_t)nr);
                assert_int_equal(avro_value_write(w, &rval), 0);
                avro_writer_free(w);
                assert_memory_equal(mine, ref, nm);
        }
        avro_value_decref(&wval);
        avro_value_decref(&rval);
        avro_value_iface_decref(rcls);
        avro_value_iface_decref(res);
        avro_schema_decref(ws);
        avro_schema_decref(rs);
        enc_codec_destroy(c);
}

/* A symbol encore's ReasonEnd lacks fails that record only, naming it. */
static void test_unknown_enum_symbol_is_invalid_naming_it(void **st) {
        (void)st;
        char err[512];
        enc_codec_t *c = v7_codec();
        avro_schema_t ws = parse(v7_json);
        uint64_t s = 7;
        rev_t r;
        rnd_event(&s, &r);
        static uint8_t buf[4096];
        size_t n =
                write_with(ws, 7, &r.ev, 6 /* PAUSED */, 1, buf, sizeof(buf));
        enc_event_t got;
        assert_int_equal(
                enc_codec_decode_event(c, buf, n, &got, err, sizeof(err)),
                ENC_ERR_INVALID_FIELD);
        assert_non_null(strstr(err, "PAUSED"));
        assert_non_null(strstr(err, "reason_end"));
        /* the next record, with a symbol encore knows, reads */
        n = write_with(ws, 7, &r.ev, -1, 2, buf, sizeof(buf));
        assert_int_equal(
                enc_codec_decode_event(c, buf, n, &got, err, sizeof(err)),
                ENC_OK);
        assert_event_equal(&got, &r.ev);
        avro_schema_decref(ws);
        enc_codec_destroy(c);
}

/* A writer without recommendation_id and cohort: both default to null.
 * Bytes by hand: strings are (zig-zag length, bytes), longs zig-zag. */
static void test_missing_nullable_fields_default_to_null(void **st) {
        (void)st;
        char err[512];
        static const char json[] =
                "{\"type\":\"record\",\"name\":\"PlayEvent\",\"fields\":["
                "{\"name\":\"event_id\",\"type\":\"string\"},"
                "{\"name\":\"user_id\",\"type\":\"string\"},"
                "{\"name\":\"track_id\",\"type\":\"string\"},"
                "{\"name\":\"artist_id\",\"type\":\"string\"},"
                "{\"name\":\"event_time\",\"type\":\"long\"},"
                "{\"name\":\"ms_played\",\"type\":\"int\"},"
                "{\"name\":\"track_duration_ms\",\"type\":\"long\"},"
                "{\"name\":\"reason_end\",\"type\":{\"type\":\"enum\","
                "\"name\":\"ReasonEnd\",\"symbols\":[\"FORWARD\","
                "\"TRACK_DONE\"]}},"
                "{\"name\":\"source\",\"type\":{\"type\":\"enum\","
                "\"name\":\"Source\",\"symbols\":[\"RADIO\"]}},"
                "{\"name\":\"surface\",\"type\":\"bytes\"}]}";
        enc_codec_t *c = enc_codec_new(NULL, err, sizeof(err));
        assert_int_equal(enc_codec_add_writer_schema(c, 3, json, strlen(json),
                                                     err, sizeof(err)),
                         ENC_OK);
        static const uint8_t rec[] = {
                0,    0,    0,    0, 3, /* frame, id 3 */
                2,    'e',              /* event_id "e" */
                2,    'u',              /* user_id "u" */
                2,    't',              /* track_id "t" */
                2,    'a',              /* artist_id "a" */
                0x80, 0x01,             /* event_time 64 (zig-zag 128) */
                0xf0, 0xbd, 0x78,       /* ms_played (int) 987000 -> 1974000 */
                0x03,                   /* track_duration_ms -2 */
                0,                /* reason_end FORWARD (writer index 0) */
                0,                /* source RADIO */
                4,    'h',  'o'}; /* surface (bytes) "ho" */
        enc_event_t ev;
        assert_int_equal(enc_codec_decode_event(c, rec, sizeof(rec), &ev, err,
                                                sizeof(err)),
                         ENC_OK);
        assert_string_equal(ev.event_id, "e");
        assert_string_equal(ev.user_id, "u");
        assert_string_equal(ev.track_id, "t");
        assert_string_equal(ev.artist_id, "a");
        assert_int_equal(ev.event_time, 64);
        assert_int_equal(ev.ms_played, 987000);
        assert_int_equal(ev.track_duration_ms, -2);
        assert_int_equal(ev.reason_end, ENC_END_FORWARD);
        assert_int_equal(ev.source, ENC_SRC_RADIO);
        assert_string_equal(ev.surface, "ho");
        assert_null(ev.recommendation_id);
        assert_null(ev.cohort);
        enc_codec_destroy(c);
}

/* A schema that cannot resolve is refused with the names involved. */
static void expect_refused(enc_codec_t *c, const char *json,
                           const char *needle) {
        char err[512];
        assert_int_equal(enc_codec_add_writer_schema(c, 5, json, strlen(json),
                                                     err, sizeof(err)),
                         ENC_ERR_CONFIG);
        if (!strstr(err, needle))
                fail_msg("\"%s\" does not name \"%s\"", err, needle);
}

static void test_unresolvable_schemas_name_the_fields(void **st) {
        (void)st;
        char err[512];
        enc_codec_t *c = renamed_codec();
        /* v7 with track_id renamed: encore's track_id has no default */
        char j[4096];
        const char *at = strstr(v7_json, "\"track_id\"");
        snprintf(j, sizeof(j), "%.*s\"song_id\"%s", (int)(at - v7_json),
                 v7_json, at + strlen("\"track_id\""));
        expect_refused(c, j, "has no field track_id");
        expect_refused(c, j, "serde.play_event.field.track_id");
        /* the rename names a field the writer lacks: both names */
        at = strstr(v7_json, "\"experiment_group\"");
        snprintf(j, sizeof(j), "%.*s\"arm\"%s", (int)(at - v7_json), v7_json,
                 at + strlen("\"experiment_group\""));
        expect_refused(c, j,
                       "serde.play_event.field.cohort = experiment_group: the "
                       "writer schema has no field experiment_group");
        /* another record name (Avro matches records by unqualified name) */
        at = strstr(v7_json, "\"PlayEvent\"");
        snprintf(j, sizeof(j), "%.*s\"Play\"%s", (int)(at - v7_json), v7_json,
                 at + strlen("\"PlayEvent\""));
        expect_refused(c, j, "writer record is Play, encore reads PlayEvent");
        /* a double duration is no promotion to long */
        at = strstr(v7_json, "\"track_duration_ms\",\"type\":\"int\"");
        snprintf(j, sizeof(j),
                 "%.*s\"track_duration_ms\",\"type\":\"double\"%s",
                 (int)(at - v7_json), v7_json,
                 at + strlen("\"track_duration_ms\",\"type\":\"int\""));
        expect_refused(c, j,
                       "writer field track_duration_ms: writer type double "
                       "cannot be read as long");
        /* an encore field that does not exist */
        assert_int_equal(
                enc_codec_set_field_name(c, "cohrt", "x", err, sizeof(err)),
                ENC_ERR_CONFIG);
        assert_non_null(strstr(err, "serde.play_event.field.cohrt: PlayEvent "
                                    "has no field cohrt"));
        enc_codec_destroy(c);
}

/* surface written as ["null","string"]: a string reads, a null fails that
 * record as invalid (encore's surface has no null). */
static void test_null_branch_into_required_field_is_invalid(void **st) {
        (void)st;
        char err[512];
        char j[8192];
        const char *canon = enc_codec_play_event_schema();
        const char *at =
                strstr(canon, "\"name\": \"surface\", \"type\": \"string\"");
        assert_non_null(at);
        snprintf(
                j, sizeof(j),
                "%.*s\"name\": \"surface\", \"type\": [\"null\", \"string\"]%s",
                (int)(at - canon), canon,
                at + strlen("\"name\": \"surface\", \"type\": \"string\""));
        enc_codec_t *c = enc_codec_new(NULL, err, sizeof(err));
        assert_int_equal(enc_codec_add_writer_schema(c, 4, j, strlen(j), err,
                                                     sizeof(err)),
                         ENC_OK);
        /* event_id..artist_id "x", times 0, enums 0, surface null/"s",
         * rec and cohort null */
        uint8_t rec[] = {0,
                         0,
                         0,
                         0,
                         4,
                         2,
                         'x',
                         2,
                         'x',
                         2,
                         'x',
                         2,
                         'x',
                         0,
                         0,
                         0,
                         0,
                         0,
                         0 /* surface branch: null */,
                         0,
                         0};
        enc_event_t ev;
        assert_int_equal(enc_codec_decode_event(c, rec, sizeof(rec), &ev, err,
                                                sizeof(err)),
                         ENC_ERR_INVALID_FIELD);
        assert_non_null(strstr(err, "surface"));
        uint8_t ok[] = {0,
                        0,
                        0,
                        0,
                        4,
                        2,
                        'x',
                        2,
                        'x',
                        2,
                        'x',
                        2,
                        'x',
                        0,
                        0,
                        0,
                        0,
                        0,
                        2 /* string */,
                        2,
                        's',
                        0,
                        0};
        assert_int_equal(enc_codec_decode_event(c, ok, sizeof(ok), &ev, err,
                                                sizeof(err)),
                         ENC_OK);
        assert_string_equal(ev.surface, "s");
        enc_codec_destroy(c);
}

typedef struct lk_s {
        int calls;
        int fail_first;
        const char *json;
} lk_t;

static enc_err_t lookup(void *opaque, int32_t id, const char **json,
                        size_t *len, char *errstr, size_t errstr_size) {
        lk_t *l = opaque;
        l->calls++;
        if (l->fail_first-- > 0)
                return enc_seterr(errstr, errstr_size, ENC_ERR_IO,
                                  "registry down (id %d)", (int)id);
        *json = l->json;
        *len = strlen(l->json);
        return ENC_OK;
}

/* With a lookup every id is asked for -- once when it answers, again after
 * a failure -- and encore's own layout under any id reads as canonical. */
static void test_lookup_once_per_id_and_again_after_a_failure(void **st) {
        (void)st;
        char err[512];
        enc_codec_t *canon = enc_codec_new(NULL, err, sizeof(err));
        enc_codec_t *c = enc_codec_new(NULL, err, sizeof(err));
        lk_t l = {0, 1, enc_codec_play_event_schema()};
        enc_codec_set_schema_lookup(c, lookup, &l);
        uint64_t s = 99;
        rev_t r;
        rnd_event(&s, &r);
        enc_buf_t b;
        enc_buf_init(&b, 1 << 16);
        assert_int_equal(enc_codec_encode_event(canon, &r.ev, &b), ENC_OK);
        b.data[4] = 42; /* schema id 1 -> 42 */
        enc_event_t ev;
        assert_int_equal(
                enc_codec_decode_event(c, b.data, b.len, &ev, err, sizeof(err)),
                ENC_ERR_UNKNOWN_SCHEMA);
        assert_non_null(strstr(err, "registry down (id 42)"));
        assert_int_equal(l.calls, 1);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(enc_codec_decode_event(c, b.data, b.len, &ev,
                                                        err, sizeof(err)),
                                 ENC_OK);
                assert_event_equal(&ev, &r.ev);
        }
        assert_int_equal(l.calls, 2);
        /* id 1 is asked for too: with a lookup the registry's ids rule */
        b.data[4] = 1;
        assert_int_equal(
                enc_codec_decode_event(c, b.data, b.len, &ev, err, sizeof(err)),
                ENC_OK);
        assert_int_equal(l.calls, 3);
        /* a schema that does not resolve is asked for once, then refused
         * from memory */
        l.json = "{\"type\":\"record\",\"name\":\"Other\",\"fields\":[]}";
        b.data[4] = 43;
        for (int i = 0; i < 2; i++) {
                assert_int_equal(enc_codec_decode_event(c, b.data, b.len, &ev,
                                                        err, sizeof(err)),
                                 ENC_ERR_UNKNOWN_SCHEMA);
                assert_non_null(strstr(err, "writer record is Other"));
        }
        assert_int_equal(l.calls, 4);
        enc_buf_free(&b);
        enc_codec_destroy(c);
        enc_codec_destroy(canon);
}

/* Damaged v7 bytes: every prefix and every single-byte change either
 * decodes or fails with a decode error, never anything else (run under
 * ASan/UBSan in CI: no read past the end). */
static void test_damaged_v7_bytes_fail_cleanly(void **st) {
        (void)st;
        char err[512];
        enc_codec_t *c = v7_codec();
        avro_schema_t ws = parse(v7_json);
        uint64_t s = 5;
        rev_t r;
        rnd_event(&s, &r);
        static uint8_t buf[4096], d[4096];
        size_t n = write_with(ws, 7, &r.ev, -1, 5, buf, sizeof(buf));
        enc_event_t ev;
        for (size_t k = 5; k < n; k++) {
                enc_err_t e = enc_codec_decode_event(c, buf, k, &ev, err,
                                                     sizeof(err));
                assert_true(e == ENC_ERR_TRUNCATED || e == ENC_ERR_DECODE);
        }
        for (size_t k = 5; k < n; k++) {
                for (int v = 0; v < 256; v += 17) {
                        memcpy(d, buf, n);
                        d[k] = (uint8_t)v;
                        enc_err_t e = enc_codec_decode_event(c, d, n, &ev, err,
                                                             sizeof(err));
                        assert_true(e == ENC_OK || e == ENC_ERR_TRUNCATED ||
                                    e == ENC_ERR_DECODE ||
                                    e == ENC_ERR_TOO_LARGE ||
                                    e == ENC_ERR_INVALID_FIELD);
                }
        }
        avro_schema_decref(ws);
        enc_codec_destroy(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_v7_events_read_back_exactly),
                cmocka_unit_test(test_resolving_scan_matches_avro_c_resolver),
                cmocka_unit_test(test_unknown_enum_symbol_is_invalid_naming_it),
                cmocka_unit_test(test_missing_nullable_fields_default_to_null),
                cmocka_unit_test(test_unresolvable_schemas_name_the_fields),
                cmocka_unit_test(
                        test_null_branch_into_required_field_is_invalid),
                cmocka_unit_test(
                        test_lookup_once_per_id_and_again_after_a_failure),
                cmocka_unit_test(test_damaged_v7_bytes_fail_cleanly),
        };
        if (getenv("ENC_TEST_FILTER"))
                cmocka_set_test_filter(getenv("ENC_TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
