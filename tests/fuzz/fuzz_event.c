/*
 * fuzz_event.c -- the wire decoders: PlayEvent and RewardUpdate bytes from
 * Kafka (schemas/codec.c), then enc_event_validate (schemas/event.c).
 *
 * Every input is tried as a Confluent-framed record and as raw Avro, as a
 * PlayEvent and as a RewardUpdate. Beyond "no crash, no leak, no UB", each
 * successful decode must satisfy what the rest of encore relies on:
 *   - an event that passes enc_event_validate can be encoded, and
 *     decode(encode(x)) == x, field by field, with encode(decode(encode(x)))
 *     byte-identical (an event re-produced to a topic is the same event);
 *   - the two framings agree: a Confluent record decodes to the same event
 *     as its body does in raw framing;
 *   - an update that encodes round-trips the same way (doubles bit for
 *     bit), and enc_update_to_json always gives one valid JSON object
 *     (checked with jansson), whatever bytes the strings held;
 *   - the fast path and Apache Avro C agree (codec.h: use_avro_c): the
 *     hand-written PlayEvent decoder returns the same error or the same
 *     fields as Avro C's generic reader for every input, and the
 *     hand-written RewardUpdate encoder writes the same bytes (or refuses
 *     with the same error) for every update decoded here.
 *   - writer schemas (schemas/resolve.c): every input is also read as the
 *     body of a record framed with id 7, a producer's own schema (fields
 *     reordered, extra fields of every Avro type, an int, reversed enum
 *     symbols, a reversed union, a renamed field); what decodes must
 *     round-trip like any event. And as id 8, encore's own schema text
 *     registered as a writer schema: the same error or the same event as
 *     the raw decode of the same bytes.
 * Seeds (tests/fuzz/corpus/event/) are real encoded events and updates,
 * written by fuzz_seeds.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "event.h"
#include "fuzz.h"

FUZZ_LSAN_FOR_AVRO()

/* The fast path (the default) and the Avro C reference path of each
 * framing, and one of each for re-encoding and re-decoding. */
static enc_codec_t *cf, *cf_ref;   /* Confluent framing, default ids */
static enc_codec_t *raw, *raw_ref; /* raw Avro */
static enc_codec_t *rt, *rt_ref;   /* Confluent, for round trips */
static enc_codec_t *wr, *wr8;      /* writer schemas 7 (renamed), 8 */

static const char fz_writer7[] =
        "{\"type\":\"record\",\"name\":\"PlayEvent\",\"namespace\":\"x\","
        "\"fields\":[{\"name\":\"user_id\",\"type\":\"string\"},"
        "{\"name\":\"junk\",\"type\":{\"type\":\"record\",\"name\":\"J\","
        "\"fields\":[{\"name\":\"a\",\"type\":{\"type\":\"array\","
        "\"items\":[\"null\",\"float\",\"J\"]}},"
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":"
        "\"double\"}},{\"name\":\"f\",\"type\":{\"type\":\"fixed\","
        "\"name\":\"F\",\"size\":3}},{\"name\":\"b\",\"type\":"
        "\"boolean\"},{\"name\":\"y\",\"type\":\"bytes\"}]}},"
        "{\"name\":\"event_time\",\"type\":\"long\"},"
        "{\"name\":\"track_id\",\"type\":\"bytes\"},"
        "{\"name\":\"artist_id\",\"type\":\"string\"},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"ms_played\",\"type\":\"int\"},"
        "{\"name\":\"track_duration_ms\",\"type\":[\"int\",\"null\","
        "\"long\"]},"
        "{\"name\":\"reason_end\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"ReasonEnd\",\"symbols\":[\"UNKNOWN\",\"PAUSED\",\"TRACK_DONE\","
        "\"FORWARD\",\"BACK\",\"END_PLAY\",\"LOGOUT\"]}},"
        "{\"name\":\"source\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Source\",\"symbols\":[\"OTHER\",\"RADIO\",\"PLAYLIST\","
        "\"LIBRARY\",\"SEARCH\",\"RECOMMENDATION\"]}},"
        "{\"name\":\"surface\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"grp\",\"type\":[\"string\",\"null\"]}]}";
/* (J's array holds J again: a recursive type, skipped to a bounded depth.) */

static enc_codec_t *fz_codec(enc_framing_t framing, bool avro_c) {
        enc_codec_conf_t conf;
        char err[256];
        enc_codec_conf_defaults(&conf);
        conf.framing = framing;
        conf.use_avro_c = avro_c;
        enc_codec_t *c = enc_codec_new(&conf, err, sizeof(err));
        FUZZ_SETUP(c, err);
        return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        cf = fz_codec(ENC_FRAMING_CONFLUENT, false);
        cf_ref = fz_codec(ENC_FRAMING_CONFLUENT, true);
        raw = fz_codec(ENC_FRAMING_RAW, false);
        raw_ref = fz_codec(ENC_FRAMING_RAW, true);
        rt = fz_codec(ENC_FRAMING_CONFLUENT, false);
        rt_ref = fz_codec(ENC_FRAMING_CONFLUENT, true);
        char err[512];
        wr = fz_codec(ENC_FRAMING_CONFLUENT, false);
        const char *own = enc_codec_play_event_schema();
        enc_err_t e = enc_codec_set_field_name(wr, "cohort", "grp", err,
                                               sizeof(err));
        if (!e)
                e = enc_codec_add_writer_schema(wr, 7, fz_writer7,
                                                sizeof(fz_writer7) - 1, err,
                                                sizeof(err));
        wr8 = fz_codec(ENC_FRAMING_CONFLUENT, false);
        if (!e)
                e = enc_codec_add_writer_schema(wr8, 8, own, strlen(own), err,
                                                sizeof(err));
        FUZZ_SETUP(e == ENC_OK, err);
        return 0;
}

static int str_eq(const char *a, const char *b) {
        return (!a && !b) || (a && b && !strcmp(a, b));
}

static int dbl_eq(double a, double b) {
        return !memcmp(&a, &b, sizeof(a)); /* bitwise: NaN payloads too */
}

static int event_eq(const enc_event_t *a, const enc_event_t *b) {
        return str_eq(a->event_id, b->event_id) &&
               str_eq(a->user_id, b->user_id) &&
               str_eq(a->track_id, b->track_id) &&
               str_eq(a->artist_id, b->artist_id) &&
               a->event_time == b->event_time && a->ms_played == b->ms_played &&
               a->track_duration_ms == b->track_duration_ms &&
               a->reason_end == b->reason_end && a->source == b->source &&
               str_eq(a->surface, b->surface) &&
               str_eq(a->recommendation_id, b->recommendation_id) &&
               str_eq(a->cohort, b->cohort);
}

static int update_eq(const enc_update_t *a, const enc_update_t *b) {
        if (strcmp(a->update_id, b->update_id) ||
            !str_eq(a->user_id, b->user_id) || !str_eq(a->signal, b->signal) ||
            a->signal_version != b->signal_version ||
            !str_eq(a->subject, b->subject) ||
            !str_eq(a->recommendation_id, b->recommendation_id) ||
            a->window_start != b->window_start ||
            a->window_end != b->window_end || !dbl_eq(a->value, b->value) ||
            !dbl_eq(a->delta, b->delta) || a->has_estimate != b->has_estimate ||
            !dbl_eq(a->estimate_mean, b->estimate_mean) ||
            !dbl_eq(a->estimate_variance, b->estimate_variance) ||
            a->observed_days != b->observed_days ||
            a->horizon_days != b->horizon_days || a->final != b->final ||
            a->event_time != b->event_time || a->sequence != b->sequence ||
            !str_eq(a->cohort, b->cohort) ||
            a->component_cnt != b->component_cnt)
                return 0;
        for (int i = 0; i < a->component_cnt; i++)
                if (!str_eq(a->components[i].name, b->components[i].name) ||
                    !dbl_eq(a->components[i].value, b->components[i].value))
                        return 0;
        return 1;
}

/* @p ev was decoded from codec @p from (borrowed from it). */
static void check_event(const enc_event_t *ev) {
        char err[256];
        enc_buf_t b1, b2;
        enc_event_t back;
        bool valid = enc_event_validate(ev, err, sizeof(err)) == ENC_OK;

        enc_buf_init(&b1, 0);
        enc_buf_init(&b2, 0);
        enc_err_t e = enc_codec_encode_event(rt, ev, &b1);
        /* What validates must be encodable (the dead-letter path and the
         * generator both re-encode events). */
        FUZZ_CHECK(!valid || e == ENC_OK);
        if (e == ENC_OK) {
                FUZZ_CHECK(enc_codec_decode_event(rt, b1.data, b1.len, &back,
                                                  err, sizeof(err)) == ENC_OK);
                FUZZ_CHECK(event_eq(ev, &back));
                FUZZ_CHECK(enc_codec_encode_event(rt, &back, &b2) == ENC_OK);
                FUZZ_CHECK(b1.len == b2.len &&
                           !memcmp(b1.data, b2.data, b1.len));
        } else {
                FUZZ_CHECK(b1.len == 0); /* untouched on error */
        }
        enc_buf_free(&b1);
        enc_buf_free(&b2);
}

static void check_json(const enc_update_t *up) {
        enc_buf_t j;
        json_error_t jerr;
        enc_buf_init(&j, 0);
        FUZZ_CHECK(enc_update_to_json(up, &j) == ENC_OK);
        FUZZ_CHECK(strlen((const char *)j.data) == j.len);
        json_t *root = json_loadb((const char *)j.data, j.len, 0, &jerr);
        if (!root)
                fprintf(stderr, "invalid JSON (%s): %s\n", jerr.text,
                        (const char *)j.data);
        FUZZ_CHECK(root && json_is_object(root));
        FUZZ_CHECK(json_object_size(root) == 19);
        json_decref(root);
        enc_buf_free(&j);
}

static void check_update(const enc_update_t *up) {
        char err[256];
        enc_buf_t b1, b2;
        enc_update_t back;

        check_json(up);
        enc_buf_init(&b1, 0);
        enc_buf_init(&b2, 0);
        /* The fast encoder and Avro C's write the same bytes, or refuse
         * with the same error. */
        enc_err_t e_fast = enc_codec_encode_update(rt, up, &b1);
        enc_err_t e_ref = enc_codec_encode_update(rt_ref, up, &b2);
        if (e_fast != e_ref)
                fprintf(stderr, "encode_update: fast path %s, Avro C %s\n",
                        enc_err2str(e_fast), enc_err2str(e_ref));
        FUZZ_CHECK(e_fast == e_ref);
        FUZZ_CHECK(b1.len == b2.len &&
                   (!b1.len || !memcmp(b1.data, b2.data, b1.len)));
        enc_buf_reset(&b1);
        enc_buf_reset(&b2);
        /* Encoding refuses invalid UTF-8 and an empty update_id, which the
         * decoder lets through; everything it accepts must round-trip. */
        if (enc_codec_encode_update(rt, up, &b1) == ENC_OK) {
                FUZZ_CHECK(enc_codec_decode_update(rt, b1.data, b1.len, &back,
                                                   err, sizeof(err)) == ENC_OK);
                FUZZ_CHECK(update_eq(up, &back));
                FUZZ_CHECK(enc_codec_encode_update(rt, &back, &b2) == ENC_OK);
                FUZZ_CHECK(b1.len == b2.len &&
                           !memcmp(b1.data, b2.data, b1.len));
        } else {
                FUZZ_CHECK(b1.len == 0);
        }
        enc_buf_free(&b1);
        enc_buf_free(&b2);
}

/* Decodes with the fast path and with Avro C: same error, or same event.
 * *ev is the fast path's, borrowed from @p fast. */
static enc_err_t decode_both(enc_codec_t *fast, enc_codec_t *ref,
                             const uint8_t *data, size_t size,
                             enc_event_t *ev) {
        char err[256], err_ref[256];
        enc_event_t ev_ref;
        enc_err_t e =
                enc_codec_decode_event(fast, data, size, ev, err, sizeof(err));
        enc_err_t e_ref = enc_codec_decode_event(ref, data, size, &ev_ref,
                                                 err_ref, sizeof(err_ref));
        if (e != e_ref)
                fprintf(stderr,
                        "decode_event: fast path %s (%s), Avro C %s (%s)\n",
                        enc_err2str(e), e ? err : "", enc_err2str(e_ref),
                        e_ref ? err_ref : "");
        FUZZ_CHECK(e == e_ref);
        if (e == ENC_OK)
                FUZZ_CHECK(event_eq(ev, &ev_ref));
        else
                FUZZ_CHECK(e >= ENC_ERR_DECODE && e <= ENC_ERR_TOO_LARGE);
        return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char err[256];
        enc_event_t ev_cf, ev_raw;
        enc_update_t up;

        enc_err_t e_cf = decode_both(cf, cf_ref, data, size, &ev_cf);
        if (e_cf == ENC_OK)
                check_event(&ev_cf);

        enc_err_t e_raw = decode_both(raw, raw_ref, data, size, &ev_raw);
        if (e_raw == ENC_OK)
                check_event(&ev_raw);

        /* The framings agree: the body of a good Confluent record is a good
         * raw record with the same fields. */
        if (e_cf == ENC_OK) {
                FUZZ_CHECK(enc_codec_decode_event(raw, data + 5, size - 5,
                                                  &ev_raw, err,
                                                  sizeof(err)) == ENC_OK);
                FUZZ_CHECK(event_eq(&ev_cf, &ev_raw));
        }

        /* The same bytes as the body of writer schemas 7 and 8. */
        uint8_t *w = malloc(size + 5);
        FUZZ_CHECK(w != NULL);
        memcpy(w + 5, data, size);
        w[0] = w[1] = w[2] = w[3] = 0;
        w[4] = 7;
        enc_event_t ev_w;
        enc_err_t e_w = enc_codec_decode_event(wr, w, size + 5, &ev_w, err,
                                               sizeof(err));
        FUZZ_CHECK(e_w == ENC_OK ||
                   (e_w >= ENC_ERR_DECODE && e_w <= ENC_ERR_INVALID_FIELD));
        if (e_w == ENC_OK)
                check_event(&ev_w);
        w[4] = 8;
        e_w = enc_codec_decode_event(wr8, w, size + 5, &ev_w, err,
                                     sizeof(err));
        e_raw = enc_codec_decode_event(raw, data, size, &ev_raw, err,
                                       sizeof(err));
        FUZZ_CHECK(e_w == e_raw);
        if (e_w == ENC_OK)
                FUZZ_CHECK(event_eq(&ev_w, &ev_raw));
        free(w);

        if (enc_codec_decode_update(cf, data, size, &up, err, sizeof(err)) ==
            ENC_OK)
                check_update(&up);
        if (enc_codec_decode_update(raw, data, size, &up, err, sizeof(err)) ==
            ENC_OK)
                check_update(&up);
        return 0;
}
