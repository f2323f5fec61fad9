/*
 * codec.c -- PlayEvent and RewardUpdate to and from Avro binary with Apache
 * Avro C, in Confluent framing (0x00, u32be schema id, Avro) or raw Avro.
 *
 * DESIGN
 * Every byte handed to decode comes from the network and is hostile until
 * proven otherwise. Avro C trusts the length prefixes it reads: a string
 * whose prefix claims 2 GB makes it malloc 2 GB before it notices the
 * record is 20 bytes long. So decoding is two passes over the bytes:
 *
 *   1. scan_record() walks the record with the field table below, without
 *      allocating: every varint is bounded, every string length is checked
 *      against its field's cap and against the bytes that remain, union and
 *      enum indexes are checked against the schema, and the record must end
 *      exactly where the input does. Failures get the precise error
 *      (TRUNCATED, TOO_LARGE naming the field, DECODE).
 *   2. Only then does Avro C's generic reader decode into a value built once
 *      in enc_codec_new() and reused for every record.
 *
 * So Avro C never allocates more than the record's own length. The scanner
 * is stricter than Avro C (booleans must be 0 or 1, strings may not hold
 * NUL bytes, map keys may not repeat); anything it accepts, Avro C decodes.
 *
 * The fast path. Pass 2 costs about 950 ns a PlayEvent (Avro C's generic
 * reader allocates a string per field and walks its value tree), which alone
 * caps a pipeline below 1M events/s. But the scan already visits every
 * value, so the scan records what it saw (scan_val_t) and the fast decoder
 * copies the strings into the codec's scratch, NUL-terminated, and is done:
 * one pass, no allocation. RewardUpdate encoding likewise has a direct
 * writer (exact size first, then one append). Avro C remains the reference
 * (conf.use_avro_c): tests/test_codec.c runs every hand-built case on both
 * paths and compares them on many random records, byte for byte. Because
 * both paths start from the same scan and the same update checks, they
 * cannot disagree on what is valid, only on bytes, which the tests pin.
 *
 * The .avsc files are the source of truth for the wire format. Their text
 * is embedded at build time (sources.cmake) and parsed once here; the field
 * tables below are checked against the parsed schemas in enc_codec_new(),
 * so an edit to one without the other fails at start-up, not in production.
 *
 * Encoding (the reference path) sets the same reused Avro values and lets
 * Avro C write them. Output must be byte-identical for identical input
 * (update ids, replays, the differential tests depend on it): map entries
 * go out in insertion order, which is the order the signal gave.
 *
 * Writer schemas. A frame id other than encore's own names a producer's
 * schema: it is compiled once (schemas/resolve.c, Avro's resolution rules)
 * and kept per id; its records are scanned by the compiled program into
 * the same scan_val_t array, so fill_event() and everything after it is
 * shared. A writer laid out exactly as encore's uses scan_record() itself.
 * Where the schemas come from (a registry, a directory) is the caller's
 * business, behind enc_codec_schema_lookup_t: schemas/ does no I/O.
 *
 * Never: parse a schema per record, allocate from a length read off the
 * wire, or hand out a pointer that outlives the next decode call.
 */
#include "codec.h"

#include <avro.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"
#include "enc_schemas_avsc.h" /* generated: enc_avsc_play_event[], ... */

#define ENC_CONFLUENT_HDR      5
#define ENC_COMPONENT_NAME_MAX ENC_SIGNAL_NAME_MAX
#define ENC_UPDATE_ID_LEN      32

/* ---- field tables ---------------------------------------------------- */

static const char *reason_sym(int i) {
        return enc_reason_end_name((enc_reason_end_t)i);
}
static const char *source_sym(int i) {
        return enc_source_name((enc_source_t)i);
}

const fdesc_t enc_codec_ev_fields[EV__CNT] = {
        [EV_EVENT_ID] = {"event_id", FK_STRING, ENC_ID_MAX, 0, NULL},
        [EV_USER_ID] = {"user_id", FK_STRING, ENC_ID_MAX, 0, NULL},
        [EV_TRACK_ID] = {"track_id", FK_STRING, ENC_ID_MAX, 0, NULL},
        [EV_ARTIST_ID] = {"artist_id", FK_STRING, ENC_ID_MAX, 0, NULL},
        [EV_EVENT_TIME] = {"event_time", FK_LONG, 0, 0, NULL},
        [EV_MS_PLAYED] = {"ms_played", FK_LONG, 0, 0, NULL},
        [EV_TRACK_DURATION_MS] = {"track_duration_ms", FK_LONG, 0, 0, NULL},
        [EV_REASON_END] = {"reason_end", FK_ENUM, 0, ENC_END__CNT, reason_sym},
        [EV_SOURCE] = {"source", FK_ENUM, 0, ENC_SRC__CNT, source_sym},
        [EV_SURFACE] = {"surface", FK_STRING, ENC_LABEL_MAX, 0, NULL},
        [EV_RECOMMENDATION_ID] = {"recommendation_id", FK_OPT_STRING,
                                  ENC_ID_MAX, 0, NULL},
        [EV_COHORT] = {"cohort", FK_OPT_STRING, ENC_LABEL_MAX, 0, NULL},
};

enum {
        UP_UPDATE_ID,
        UP_USER_ID,
        UP_SIGNAL,
        UP_SIGNAL_VERSION,
        UP_SUBJECT,
        UP_RECOMMENDATION_ID,
        UP_WINDOW_START,
        UP_WINDOW_END,
        UP_VALUE,
        UP_DELTA,
        UP_ESTIMATE_MEAN,
        UP_ESTIMATE_VARIANCE,
        UP_OBSERVED_DAYS,
        UP_HORIZON_DAYS,
        UP_FINAL,
        UP_EVENT_TIME,
        UP_SEQUENCE,
        UP_COHORT,
        UP_COMPONENTS,
        UP__CNT
};

static const fdesc_t up_fields[UP__CNT] = {
        [UP_UPDATE_ID] = {"update_id", FK_STRING, ENC_UPDATE_ID_LEN, 0, NULL},
        [UP_USER_ID] = {"user_id", FK_STRING, ENC_ID_MAX, 0, NULL},
        [UP_SIGNAL] = {"signal", FK_STRING, ENC_SIGNAL_NAME_MAX, 0, NULL},
        [UP_SIGNAL_VERSION] = {"signal_version", FK_INT, 0, 0, NULL},
        [UP_SUBJECT] = {"subject", FK_OPT_STRING, ENC_ID_MAX, 0, NULL},
        [UP_RECOMMENDATION_ID] = {"recommendation_id", FK_OPT_STRING,
                                  ENC_ID_MAX, 0, NULL},
        [UP_WINDOW_START] = {"window_start", FK_LONG, 0, 0, NULL},
        [UP_WINDOW_END] = {"window_end", FK_LONG, 0, 0, NULL},
        [UP_VALUE] = {"value", FK_DOUBLE, 0, 0, NULL},
        [UP_DELTA] = {"delta", FK_DOUBLE, 0, 0, NULL},
        [UP_ESTIMATE_MEAN] = {"estimate_mean", FK_OPT_DOUBLE, 0, 0, NULL},
        [UP_ESTIMATE_VARIANCE] = {"estimate_variance", FK_OPT_DOUBLE, 0, 0,
                                  NULL},
        [UP_OBSERVED_DAYS] = {"observed_days", FK_INT, 0, 0, NULL},
        [UP_HORIZON_DAYS] = {"horizon_days", FK_INT, 0, 0, NULL},
        [UP_FINAL] = {"final", FK_BOOL, 0, 0, NULL},
        [UP_EVENT_TIME] = {"event_time", FK_LONG, 0, 0, NULL},
        [UP_SEQUENCE] = {"sequence", FK_LONG, 0, 0, NULL},
        [UP_COHORT] = {"cohort", FK_OPT_STRING, ENC_LABEL_MAX, 0, NULL},
        [UP_COMPONENTS] = {"components", FK_MAP_DOUBLE, ENC_COMPONENT_NAME_MAX,
                           0, NULL},
};

/* Decoded strings are copied here, NUL-terminated. Sized for the larger of
 * the two records at their caps, so a decode never allocates. */
#define EV_SCRATCH (5 * (ENC_ID_MAX + 1) + 2 * (ENC_LABEL_MAX + 1))
#define UP_SCRATCH                                                             \
        (3 * (ENC_ID_MAX + 1) + (ENC_SIGNAL_NAME_MAX + 1) +                    \
         (ENC_LABEL_MAX + 1) +                                                 \
         ENC_COMPONENTS_MAX * (ENC_COMPONENT_NAME_MAX + 1))
#define ENC_SCRATCH_SIZE (EV_SCRATCH > UP_SCRATCH ? EV_SCRATCH : UP_SCRATCH)

/* One Avro record type: its schema, generic class, the reused value and
 * the value's fields (stable: a generic record keeps its fields inline, and
 * reset/read reuse them in place). */
typedef struct enc_rec_s {
        const char *what; /* "PlayEvent" */
        const fdesc_t *fields;
        size_t nfields;
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t value;
        bool have_value;
        avro_value_t field[UP__CNT];
} enc_rec_t;
_Static_assert((int)EV__CNT <= (int)UP__CNT,
               "enc_rec_t.field must fit both records");

/* A PlayEvent writer schema id the codec has met: its compiled program,
 * or why it cannot be read (kept, so a bad schema is compiled once). */
typedef struct enc_writer_s {
        int32_t id;
        enc_wprog_t *prog; /* owned; NULL if err */
        char *err;         /* owned */
} enc_writer_t;

#define ENC_CODEC_WRITERS_MAX 4096

struct enc_codec_s {
        enc_codec_conf_t conf;
        char *names[EV__CNT]; /* writer field name per encore field, owned;
                               * NULL = the same name */
        enc_codec_schema_lookup_t lookup;
        void *lookup_opaque;
        enc_writer_t *writers; /* owned */
        int nwriters, capwriters;
        int last_writer; /* index of the last hit, or -1 */
        enc_rec_t ev;
        enc_rec_t up;
        avro_reader_t reader; /* memory reader, re-pointed per decode */
        avro_writer_t writer; /* memory writer, re-pointed per encode */
        size_t scratch_len;
        char scratch[ENC_SCRATCH_SIZE];
};

/* ---- conf, new, destroy --------------------------------------------- */

/** Any thread; writes only @p conf. */
void enc_codec_conf_defaults(enc_codec_conf_t *conf) {
        memset(conf, 0, sizeof(*conf));
        conf->framing = ENC_FRAMING_CONFLUENT;
        conf->play_event_schema_id = 1;
        conf->reward_update_schema_id = 2;
        conf->max_record_bytes = (size_t)1024 * 1024;
}

/* The embedded .avsc texts, byte for byte. Static; any thread. */
const char *enc_codec_play_event_schema(void) {
        return enc_avsc_play_event;
}

const char *enc_codec_reward_update_schema(void) {
        return enc_avsc_reward_update;
}

/* Checks that field @p i of the parsed schema is what fields[i] says. */
static enc_err_t check_field(const enc_rec_t *rec, size_t i, char *errstr,
                             size_t errstr_size) {
        const fdesc_t *fd = &rec->fields[i];
        const char *name = avro_schema_record_field_name(rec->schema, (int)i);
        avro_schema_t fs =
                avro_schema_record_field_get_by_index(rec->schema, (int)i);
        avro_type_t want;

        if (!name || strcmp(name, fd->name) != 0 || !fs)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s schema: field %zu is %s, codec expects "
                                  "%s",
                                  rec->what, i, name ? name : "(none)",
                                  fd->name);
        switch (fd->kind) {
        case FK_STRING:
                want = AVRO_STRING;
                break;
        case FK_LONG:
                want = AVRO_INT64;
                break;
        case FK_INT:
                want = AVRO_INT32;
                break;
        case FK_DOUBLE:
                want = AVRO_DOUBLE;
                break;
        case FK_BOOL:
                want = AVRO_BOOLEAN;
                break;
        case FK_ENUM:
                want = AVRO_ENUM;
                break;
        case FK_MAP_DOUBLE:
                want = AVRO_MAP;
                break;
        default:
                want = AVRO_UNION;
                break;
        }
        if (avro_typeof(fs) != want)
                goto bad;
        if (fd->kind == FK_OPT_STRING || fd->kind == FK_OPT_DOUBLE) {
                avro_type_t inner =
                        fd->kind == FK_OPT_STRING ? AVRO_STRING : AVRO_DOUBLE;
                if (avro_schema_union_size(fs) != 2 ||
                    avro_typeof(avro_schema_union_branch(fs, 0)) != AVRO_NULL ||
                    avro_typeof(avro_schema_union_branch(fs, 1)) != inner)
                        goto bad;
        } else if (fd->kind == FK_MAP_DOUBLE) {
                if (avro_typeof(avro_schema_map_values(fs)) != AVRO_DOUBLE)
                        goto bad;
        } else if (fd->kind == FK_ENUM) {
                if (avro_schema_enum_number_of_symbols(fs) != fd->nsym)
                        goto bad;
                for (int k = 0; k < fd->nsym; k++) {
                        const char *s = avro_schema_enum_get(fs, k);
                        if (!s || strcmp(s, fd->sym(k)) != 0)
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "%s schema: field %s symbol %d is "
                                        "%s, codec expects %s",
                                        rec->what, fd->name, k,
                                        s ? s : "(none)", fd->sym(k));
                }
        }
        return ENC_OK;
bad:
        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                          "%s schema: field %s does not have the type the "
                          "codec expects",
                          rec->what, fd->name);
}

static enc_err_t rec_init(enc_rec_t *rec, const char *what, const char *json,
                          size_t json_len, const fdesc_t *fields,
                          size_t nfields, char *errstr, size_t errstr_size) {
        enc_err_t err;
        rec->what = what;
        rec->fields = fields;
        rec->nfields = nfields;
        if (avro_schema_from_json_length(json, json_len, &rec->schema))
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s schema: %s", what, avro_strerror());
        if (avro_typeof(rec->schema) != AVRO_RECORD ||
            avro_schema_record_size(rec->schema) != nfields)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s schema: expected a record of %zu "
                                  "fields",
                                  what, nfields);
        for (size_t i = 0; i < nfields; i++)
                if ((err = check_field(rec, i, errstr, errstr_size)))
                        return err;
        rec->iface = avro_generic_class_from_schema(rec->schema);
        if (!rec->iface)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "%s: %s",
                                  what, avro_strerror());
        if (avro_generic_value_new(rec->iface, &rec->value))
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "%s: %s",
                                  what, avro_strerror());
        rec->have_value = true;
        for (size_t i = 0; i < nfields; i++)
                if (avro_value_get_by_index(&rec->value, i, &rec->field[i],
                                            NULL))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: %s", what, avro_strerror());
        return ENC_OK;
}

static void rec_done(enc_rec_t *rec) {
        if (rec->have_value)
                avro_value_decref(&rec->value);
        if (rec->iface)
                avro_value_iface_decref(rec->iface);
        if (rec->schema)
                avro_schema_decref(rec->schema);
        memset(rec, 0, sizeof(*rec));
}

/** Builds a codec: parses both schemas once and checks them against the
 *  codec's field tables. @p conf may be NULL for the defaults; it is
 *  copied. Caller destroys with enc_codec_destroy(). Any thread; the codec
 *  is then used from one thread at a time. */
enc_codec_t *enc_codec_new(const enc_codec_conf_t *conf, char *errstr,
                           size_t errstr_size) {
        static const char dummy[1] = {0};
        enc_codec_t *c = calloc(1, sizeof(*c));
        if (!c) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
                return NULL;
        }
        if (conf)
                c->conf = *conf;
        else
                enc_codec_conf_defaults(&c->conf);
        c->last_writer = -1;
        if (c->conf.framing != ENC_FRAMING_CONFLUENT &&
            c->conf.framing != ENC_FRAMING_RAW) {
                enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                           "unknown framing %d", (int)c->conf.framing);
                goto fail;
        }
        if (c->conf.play_event_schema_id < 0 ||
            c->conf.reward_update_schema_id < 0) {
                enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                           "schema ids must be >= 0");
                goto fail;
        }
        if (c->conf.max_record_bytes == 0) {
                enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                           "max_record_bytes must be > 0");
                goto fail;
        }
        if (rec_init(&c->ev, "PlayEvent", enc_avsc_play_event,
                     sizeof(enc_avsc_play_event) - 1, enc_codec_ev_fields, EV__CNT,
                     errstr, errstr_size))
                goto fail;
        if (rec_init(&c->up, "RewardUpdate", enc_avsc_reward_update,
                     sizeof(enc_avsc_reward_update) - 1, up_fields, UP__CNT,
                     errstr, errstr_size))
                goto fail;
        c->reader = avro_reader_memory(dummy, 0);
        c->writer = avro_writer_memory(dummy, 0);
        if (!c->reader || !c->writer) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
                goto fail;
        }
        return c;
fail:
        enc_codec_destroy(c);
        return NULL;
}

/** NULL is a no-op. */
void enc_codec_destroy(enc_codec_t *c) {
        if (!c)
                return;
        if (c->writer)
                avro_writer_free(c->writer);
        if (c->reader)
                avro_reader_free(c->reader);
        for (int i = 0; i < c->nwriters; i++) {
                enc_wprog_destroy(c->writers[i].prog);
                free(c->writers[i].err);
        }
        free(c->writers);
        for (int k = 0; k < EV__CNT; k++)
                free(c->names[k]);
        rec_done(&c->up);
        rec_done(&c->ev);
        free(c);
}

static void conf_field_name(const char *key, const char *value, void *opaque) {
        struct {
                enc_codec_t *c;
                enc_err_t err;
                char *errstr;
                size_t errstr_size;
        } *a = opaque;
        if (a->err)
                return;
        a->err = enc_codec_set_field_name(
                a->c, key + strlen(ENC_CODEC_FIELD_PREFIX), value, a->errstr,
                a->errstr_size);
}

/** Builds the PlayEvent/RewardUpdate codec a deployment's configuration
 *  describes (serde.*, the field names included). Caller destroys with
 *  enc_codec_destroy(). Any thread. */
enc_codec_t *enc_codec_new_from_conf(const enc_conf_t *conf, char *errstr,
                                     size_t errstr_size) {
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        cc.framing = strcmp(enc_conf_get(conf, "serde.framing"), "raw")
                             ? ENC_FRAMING_CONFLUENT
                             : ENC_FRAMING_RAW;
        cc.play_event_schema_id =
                (int32_t)enc_conf_get_int(conf, "serde.play_event.schema.id");
        cc.reward_update_schema_id = (int32_t)enc_conf_get_int(
                conf, "serde.reward_update.schema.id");
        cc.max_record_bytes =
                (size_t)enc_conf_get_int(conf, "serde.max.record.bytes");
        enc_codec_t *c = enc_codec_new(&cc, errstr, errstr_size);
        if (!c)
                return NULL;
        struct {
                enc_codec_t *c;
                enc_err_t err;
                char *errstr;
                size_t errstr_size;
        } a = {c, ENC_OK, errstr, errstr_size};
        enc_conf_foreach(conf, ENC_CODEC_FIELD_PREFIX, conf_field_name, &a);
        if (a.err) {
                enc_codec_destroy(c);
                return NULL;
        }
        return c;
}

/* ---- pass 1: the bounded scan --------------------------------------- */

/* Fails the scan with @p err, naming the record and field. */
enc_err_t enc_scan_fail(scan_t *s, enc_err_t err, const char *fmt, ...) {
        char msg[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return enc_seterr(s->errstr, s->errstr_size, err, "%s field %s: %s",
                          s->what, s->field, msg);
}

static enc_err_t scan_map_double(scan_t *s, size_t keycap) {
        const uint8_t *keys[ENC_COMPONENTS_MAX];
        size_t keylens[ENC_COMPONENTS_MAX];
        size_t total = 0;
        enc_err_t err;

        for (;;) {
                int64_t cnt;
                if ((err = scan_block_count(s, &cnt, "bad map block count")))
                        return err;
                if (cnt == 0)
                        return ENC_OK;
                if ((uint64_t)cnt > ENC_COMPONENTS_MAX - total)
                        return enc_scan_fail(s, ENC_ERR_TOO_LARGE,
                                         "more than %d entries",
                                         ENC_COMPONENTS_MAX);
                for (int64_t i = 0; i < cnt; i++, total++) {
                        if ((err = scan_string(s, keycap, &keys[total],
                                               &keylens[total])))
                                return err;
                        for (size_t k = 0; k < total; k++)
                                if (keylens[k] == keylens[total] &&
                                    !memcmp(keys[k], keys[total], keylens[k]))
                                        return enc_scan_fail(s, ENC_ERR_DECODE,
                                                         "key \"%.*s\" repeats",
                                                         (int)keylens[k],
                                                         (const char *)keys[k]);
                        if ((err = scan_fixed(s, 8, "double")))
                                return err;
                }
        }
}

/*
 * Walks one record of @p rec's shape over body[0..len). Allocates nothing.
 * On success the bytes are exactly one well-formed record within caps, and
 * if @p vals is not NULL, vals[i] holds what field i carried (pointers into
 * @p body). This is the only place that decides whether bytes are a valid
 * record: the fast path and the Avro C path both start here.
 */
static enc_err_t scan_record(const enc_rec_t *rec, const uint8_t *body,
                             size_t len, scan_val_t *vals, char *errstr,
                             size_t errstr_size) {
        scan_t s = {body, body + len, rec->what, "", errstr, errstr_size};
        enc_err_t err = ENC_OK;
        for (size_t i = 0; i < rec->nfields && !err; i++) {
                const fdesc_t *fd = &rec->fields[i];
                scan_val_t v = {NULL, 0, 0, true};
                int branch = 1;
                s.field = fd->name;
                switch (fd->kind) {
                case FK_STRING:
                        err = scan_string(&s, fd->cap, &v.str, &v.len);
                        break;
                case FK_OPT_STRING:
                        err = scan_opt(&s, &branch);
                        if (!err && branch)
                                err = scan_string(&s, fd->cap, &v.str, &v.len);
                        break;
                case FK_LONG:
                        err = scan_long(&s, &v.i);
                        break;
                case FK_INT:
                        err = scan_long(&s, &v.i);
                        if (!err && (v.i < INT32_MIN || v.i > INT32_MAX))
                                err = enc_scan_fail(&s, ENC_ERR_DECODE,
                                                "%" PRId64
                                                " out of range for int",
                                                v.i);
                        break;
                case FK_DOUBLE:
                        v.str = s.p;
                        err = scan_fixed(&s, 8, "double");
                        break;
                case FK_OPT_DOUBLE:
                        err = scan_opt(&s, &branch);
                        if (!err && branch) {
                                v.str = s.p;
                                err = scan_fixed(&s, 8, "double");
                        }
                        break;
                case FK_BOOL:
                        err = scan_fixed(&s, 1, "boolean");
                        if (!err && (v.i = s.p[-1]) > 1)
                                err = enc_scan_fail(&s, ENC_ERR_DECODE,
                                                "boolean byte 0x%02x", s.p[-1]);
                        break;
                case FK_ENUM:
                        err = scan_long(&s, &v.i);
                        if (!err && (v.i < 0 || v.i >= fd->nsym))
                                err = enc_scan_fail(&s, ENC_ERR_DECODE,
                                                "enum index %" PRId64
                                                " not in [0, %d)",
                                                v.i, fd->nsym);
                        break;
                case FK_MAP_DOUBLE:
                        v.str = s.p;
                        err = scan_map_double(&s, fd->cap);
                        v.len = (size_t)(s.p - v.str);
                        break;
                }
                v.present = branch != 0;
                if (vals)
                        vals[i] = v;
        }
        if (err)
                return err;
        if (s.p != s.end)
                return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                  "%s: %zu trailing bytes after the record",
                                  rec->what, (size_t)(s.end - s.p));
        return ENC_OK;
}

/* Strips the framing; on success body[0..body_len) are the Avro bytes and
 * *id the frame's schema id (-1 for raw framing). */
static enc_err_t unframe_any(const enc_codec_t *c, const enc_rec_t *rec,
                             const void *buf, size_t len, int64_t *id_out,
                             const uint8_t **body, size_t *body_len,
                             char *errstr, size_t errstr_size) {
        const uint8_t *p = buf;
        if (!buf && len)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "NULL buffer");
        if (len > c->conf.max_record_bytes)
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "%s of %zu bytes is over max_record_bytes "
                                  "%zu",
                                  rec->what, len, c->conf.max_record_bytes);
        *id_out = -1;
        if (c->conf.framing == ENC_FRAMING_RAW) {
                *body = p;
                *body_len = len;
                return ENC_OK;
        }
        if (len >= 1 && p[0] != 0)
                return enc_seterr(errstr, errstr_size, ENC_ERR_BAD_MAGIC,
                                  "%s: magic byte 0x%02x, expected 0x00",
                                  rec->what, p[0]);
        if (len < ENC_CONFLUENT_HDR)
                return enc_seterr(errstr, errstr_size, ENC_ERR_TRUNCATED,
                                  "%s: %zu bytes, shorter than the 5-byte "
                                  "Confluent header",
                                  rec->what, len);
        *id_out = enc_read_u32be(p + 1);
        *body = p + ENC_CONFLUENT_HDR;
        *body_len = len - ENC_CONFLUENT_HDR;
        return ENC_OK;
}

static enc_err_t wrong_id(const enc_rec_t *rec, int64_t id, int32_t schema_id,
                          char *errstr, size_t errstr_size) {
        return enc_seterr(errstr, errstr_size, ENC_ERR_UNKNOWN_SCHEMA,
                          "%s: schema id %" PRId64 ", expected %" PRId32,
                          rec->what, id, schema_id);
}

/* unframe_any, and the id must be @p schema_id (any if < 0). */
static enc_err_t unframe(const enc_codec_t *c, const enc_rec_t *rec,
                         int32_t schema_id, const void *buf, size_t len,
                         const uint8_t **body, size_t *body_len, char *errstr,
                         size_t errstr_size) {
        int64_t id = -1;
        enc_err_t err = unframe_any(c, rec, buf, len, &id, body, body_len,
                                    errstr, errstr_size);
        if (!err && id >= 0 && schema_id >= 0 && id != schema_id)
                return wrong_id(rec, id, schema_id, errstr, errstr_size);
        return err;
}

/* ---- fast path: PlayEvent straight from the scan -------------------- */

/* Copies a scanned string into the scratch area, NUL-terminated. The
 * scan's caps keep a whole record's strings within the scratch size
 * (EV_SCRATCH counts every string field at its cap). */
static const char *take_scanned(enc_codec_t *c, const scan_val_t *v) {
        char *d = c->scratch + c->scratch_len;
        memcpy(d, v->str, v->len);
        d[v->len] = '\0';
        c->scratch_len += v->len + 1;
        return d;
}

static const char *take_scanned_opt(enc_codec_t *c, const scan_val_t *v) {
        return v->present ? take_scanned(c, v) : NULL;
}

/* The scan has already proved every value in range (enum indexes within
 * the symbols, mapped to encore's for a writer schema), so this only moves
 * values into place. */
static void fill_event(enc_codec_t *c, const scan_val_t *v, enc_event_t *ev) {
        c->scratch_len = 0;
        ev->event_id = take_scanned(c, &v[EV_EVENT_ID]);
        ev->user_id = take_scanned(c, &v[EV_USER_ID]);
        ev->track_id = take_scanned(c, &v[EV_TRACK_ID]);
        ev->artist_id = take_scanned(c, &v[EV_ARTIST_ID]);
        ev->event_time = v[EV_EVENT_TIME].i;
        ev->ms_played = v[EV_MS_PLAYED].i;
        ev->track_duration_ms = v[EV_TRACK_DURATION_MS].i;
        ev->reason_end = (enc_reason_end_t)v[EV_REASON_END].i;
        ev->source = (enc_source_t)v[EV_SOURCE].i;
        ev->surface = take_scanned(c, &v[EV_SURFACE]);
        ev->recommendation_id = take_scanned_opt(c, &v[EV_RECOMMENDATION_ID]);
        ev->cohort = take_scanned_opt(c, &v[EV_COHORT]);
}

/* ---- writer schemas -------------------------------------------------- */

/** Thread: the codec's owner. */
void enc_codec_set_reward_update_schema_id(enc_codec_t *c, int32_t id) {
        c->conf.reward_update_schema_id = id;
}

/** Thread: the codec's owner. */
void enc_codec_set_schema_lookup(enc_codec_t *c, enc_codec_schema_lookup_t cb,
                                 void *opaque) {
        c->lookup = cb;
        c->lookup_opaque = opaque;
}

/** Thread: the codec's owner; before any writer schema is added. */
enc_err_t enc_codec_set_field_name(enc_codec_t *c, const char *field,
                                   const char *writer_field, char *errstr,
                                   size_t errstr_size) {
        for (int k = 0; k < EV__CNT; k++) {
                if (strcmp(enc_codec_ev_fields[k].name, field))
                        continue;
                if (!writer_field || !*writer_field)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "serde.play_event.field.%s: empty "
                                          "writer field name",
                                          field);
                char *dup = strdup(writer_field);
                if (!dup)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                          "out of memory");
                free(c->names[k]);
                c->names[k] = dup;
                return ENC_OK;
        }
        char known[400];
        size_t n = 0;
        known[0] = '\0';
        for (int k = 0; k < EV__CNT && n < sizeof(known); k++)
                n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s",
                                      k ? ", " : "",
                                      enc_codec_ev_fields[k].name);
        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                          "serde.play_event.field.%s: PlayEvent has no field "
                          "%s (its fields: %s)",
                          field, field, known);
}

static enc_writer_t *writer_find(enc_codec_t *c, int64_t id) {
        if (c->last_writer >= 0 && c->writers[c->last_writer].id == id)
                return &c->writers[c->last_writer];
        for (int i = 0; i < c->nwriters; i++)
                if (c->writers[i].id == id) {
                        c->last_writer = i;
                        return &c->writers[i];
                }
        return NULL;
}

/* Compiles @p json for @p id and keeps the result, a failure included. */
static enc_writer_t *writer_add(enc_codec_t *c, int32_t id, const char *json,
                                size_t len, char *errstr,
                                size_t errstr_size) {
        char why[512];
        if (c->nwriters >= ENC_CODEC_WRITERS_MAX) {
                enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                           "more than %d PlayEvent writer schemas",
                           ENC_CODEC_WRITERS_MAX);
                return NULL;
        }
        if (c->nwriters == c->capwriters) {
                int ncap = c->capwriters ? 2 * c->capwriters : 8;
                enc_writer_t *n =
                        realloc(c->writers, (size_t)ncap * sizeof(*n));
                if (!n) {
                        enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                   "out of memory");
                        return NULL;
                }
                c->writers = n;
                c->capwriters = ncap;
        }
        enc_writer_t *w = &c->writers[c->nwriters];
        memset(w, 0, sizeof(*w));
        w->id = id;
        w->prog = enc_wprog_new(json, len, (const char *const *)c->names, why,
                                sizeof(why));
        if (!w->prog) {
                w->err = strdup(why);
                if (!w->err) {
                        enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                   "out of memory");
                        return NULL;
                }
        }
        c->last_writer = c->nwriters++;
        return w;
}

static enc_err_t writer_error(const enc_writer_t *w, char *errstr,
                              size_t errstr_size) {
        return enc_seterr(errstr, errstr_size, ENC_ERR_UNKNOWN_SCHEMA,
                          "PlayEvent writer schema %" PRId32
                          " does not resolve to encore's: %s",
                          w->id, w->err);
}

/** Thread: the codec's owner. */
enc_err_t enc_codec_add_writer_schema(enc_codec_t *c, int32_t id,
                                      const char *json, size_t len,
                                      char *errstr, size_t errstr_size) {
        if (id < 0)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "schema id %" PRId32 " < 0", id);
        if (writer_find(c, id))
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "schema id %" PRId32 " added twice", id);
        const enc_writer_t *w = writer_add(c, id, json, len, errstr,
                                           errstr_size);
        if (!w)
                return ENC_ERR_NOMEM;
        if (!w->prog) {
                (void)writer_error(w, errstr, errstr_size);
                /* Not kept: the caller was told and may fix it. */
                free(c->writers[--c->nwriters].err);
                c->last_writer = -1;
                return ENC_ERR_CONFIG;
        }
        return ENC_OK;
}

/* The program for frame id @p id: NULL for encore's own layout, else the
 * writer's; or an error (unknown or unreadable schema). */
static enc_err_t writer_for(enc_codec_t *c, int64_t id,
                            const enc_wprog_t **prog, char *errstr,
                            size_t errstr_size) {
        *prog = NULL;
        if (id < 0)
                return ENC_OK; /* raw framing: encore's schema */
        const enc_writer_t *w = writer_find(c, id);
        if (!w) {
                if (!c->lookup) {
                        if (id == c->conf.play_event_schema_id)
                                return ENC_OK;
                        return wrong_id(&c->ev, id,
                                        c->conf.play_event_schema_id, errstr,
                                        errstr_size);
                }
                const char *json = NULL;
                size_t len = 0;
                char why[400];
                enc_err_t err = c->lookup(c->lookup_opaque, (int32_t)id, &json,
                                          &len, why, sizeof(why));
                if (err)
                        return enc_seterr(errstr, errstr_size,
                                          ENC_ERR_UNKNOWN_SCHEMA,
                                          "PlayEvent schema id %" PRId64
                                          ": %s",
                                          id, why);
                if (!(w = writer_add(c, (int32_t)id, json, len, errstr,
                                     errstr_size)))
                        return ENC_ERR_UNKNOWN_SCHEMA;
        }
        if (!w->prog)
                return writer_error(w, errstr, errstr_size);
        if (!enc_wprog_is_canonical(w->prog))
                *prog = w->prog;
        return ENC_OK;
}

/* ---- reference path: Avro C ----------------------------------------- */

/* Scan, then let Avro C decode into rec->value. */
static enc_err_t decode_rec(enc_codec_t *c, enc_rec_t *rec, int32_t schema_id,
                            const void *buf, size_t len, char *errstr,
                            size_t errstr_size) {
        const uint8_t *body = NULL;
        size_t body_len = 0;
        enc_err_t err = unframe(c, rec, schema_id, buf, len, &body, &body_len,
                                errstr, errstr_size);
        if (err)
                return err;
        if ((err = scan_record(rec, body, body_len, NULL, errstr, errstr_size)))
                return err;
        avro_reader_memory_set_source(c->reader, (const char *)body,
                                      (int64_t)body_len);
        if (avro_value_read(c->reader, &rec->value))
                return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE, "%s: %s",
                                  rec->what, avro_strerror());
        c->scratch_len = 0;
        return ENC_OK;
}

static enc_err_t avro_fail(const enc_rec_t *rec, const char *field,
                           char *errstr, size_t errstr_size) {
        return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                          "%s field %s: %s", rec->what, field, avro_strerror());
}

/* Copies an Avro string value into the scratch area. */
static enc_err_t take_str(enc_codec_t *c, avro_value_t *v, const char **out) {
        const char *s;
        size_t size; /* includes the NUL */
        if (avro_value_get_string(v, &s, &size) || size == 0)
                return ENC_ERR_DECODE;
        if (size > sizeof(c->scratch) - c->scratch_len)
                return ENC_ERR_TOO_LARGE; /* the scan's caps make this
                                             unreachable */
        char *d = c->scratch + c->scratch_len;
        memcpy(d, s, size - 1);
        d[size - 1] = '\0';
        c->scratch_len += size;
        *out = d;
        return ENC_OK;
}

static enc_err_t get_str(enc_codec_t *c, enc_rec_t *rec, int i,
                         const char **out, char *errstr, size_t errstr_size) {
        if (take_str(c, &rec->field[i], out))
                return avro_fail(rec, rec->fields[i].name, errstr, errstr_size);
        return ENC_OK;
}

static enc_err_t get_opt_str(enc_codec_t *c, enc_rec_t *rec, int i,
                             const char **out, char *errstr,
                             size_t errstr_size) {
        int d;
        avro_value_t branch;
        if (avro_value_get_discriminant(&rec->field[i], &d))
                return avro_fail(rec, rec->fields[i].name, errstr, errstr_size);
        if (d == 0) {
                *out = NULL;
                return ENC_OK;
        }
        if (avro_value_get_current_branch(&rec->field[i], &branch) ||
            take_str(c, &branch, out))
                return avro_fail(rec, rec->fields[i].name, errstr, errstr_size);
        return ENC_OK;
}

static enc_err_t get_opt_double(enc_rec_t *rec, int i, bool *present,
                                double *out, char *errstr, size_t errstr_size) {
        int d;
        avro_value_t branch;
        if (avro_value_get_discriminant(&rec->field[i], &d))
                return avro_fail(rec, rec->fields[i].name, errstr, errstr_size);
        *present = d != 0;
        *out = 0.0;
        if (d != 0 && (avro_value_get_current_branch(&rec->field[i], &branch) ||
                       avro_value_get_double(&branch, out)))
                return avro_fail(rec, rec->fields[i].name, errstr, errstr_size);
        return ENC_OK;
}

/* Avro C's reading of a PlayEvent, the reference for the fast path. */
static enc_err_t decode_event_avro(enc_codec_t *c, const void *buf, size_t len,
                                   enc_event_t *ev, char *errstr,
                                   size_t errstr_size) {
        enc_rec_t *r = &c->ev;
        enc_err_t err = decode_rec(c, r, c->conf.play_event_schema_id, buf, len,
                                   errstr, errstr_size);
        if (err)
                return err;
        int re, src;
        memset(ev, 0, sizeof(*ev));
        if ((err = get_str(c, r, EV_EVENT_ID, &ev->event_id, errstr,
                           errstr_size)) ||
            (err = get_str(c, r, EV_USER_ID, &ev->user_id, errstr,
                           errstr_size)) ||
            (err = get_str(c, r, EV_TRACK_ID, &ev->track_id, errstr,
                           errstr_size)) ||
            (err = get_str(c, r, EV_ARTIST_ID, &ev->artist_id, errstr,
                           errstr_size)) ||
            (err = get_str(c, r, EV_SURFACE, &ev->surface, errstr,
                           errstr_size)) ||
            (err = get_opt_str(c, r, EV_RECOMMENDATION_ID,
                               &ev->recommendation_id, errstr, errstr_size)) ||
            (err = get_opt_str(c, r, EV_COHORT, &ev->cohort, errstr,
                               errstr_size)))
                return err;
        if (avro_value_get_long(&r->field[EV_EVENT_TIME], &ev->event_time) ||
            avro_value_get_long(&r->field[EV_MS_PLAYED], &ev->ms_played) ||
            avro_value_get_long(&r->field[EV_TRACK_DURATION_MS],
                                &ev->track_duration_ms) ||
            avro_value_get_enum(&r->field[EV_REASON_END], &re) ||
            avro_value_get_enum(&r->field[EV_SOURCE], &src))
                return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                  "PlayEvent: %s", avro_strerror());
        ev->reason_end = (enc_reason_end_t)re;
        ev->source = (enc_source_t)src;
        return ENC_OK;
}

/**
 * Decodes one PlayEvent. Strings in @p ev are borrowed from @p c until the
 * next decode call of either kind on it. On error @p ev is unspecified.
 * The fast path allocates nothing. Thread: the codec's owner thread.
 */
enc_err_t enc_codec_decode_event(enc_codec_t *c, const void *buf, size_t len,
                                 enc_event_t *ev, char *errstr,
                                 size_t errstr_size) {
        if (c->conf.use_avro_c)
                return decode_event_avro(c, buf, len, ev, errstr, errstr_size);
        const uint8_t *body = NULL;
        size_t body_len = 0;
        int64_t id = -1;
        const enc_wprog_t *prog;
        scan_val_t v[EV__CNT];
        enc_err_t err = unframe_any(c, &c->ev, buf, len, &id, &body, &body_len,
                                    errstr, errstr_size);
        if (err)
                return err;
        if ((err = writer_for(c, id, &prog, errstr, errstr_size)))
                return err;
        err = prog ? enc_wprog_scan(prog, body, body_len, v, errstr,
                                    errstr_size)
                   : scan_record(&c->ev, body, body_len, v, errstr,
                                 errstr_size);
        if (err)
                return err;
        fill_event(c, v, ev);
        return ENC_OK;
}

/**
 * Decodes one RewardUpdate. Strings and component names in @p up are
 * borrowed from @p c until its next decode call. An update with exactly one
 * of estimate_mean/estimate_variance null cannot be represented (one
 * has_estimate flag) and is ENC_ERR_DECODE. Thread: the codec's owner.
 */
enc_err_t enc_codec_decode_update(enc_codec_t *c, const void *buf, size_t len,
                                  enc_update_t *up, char *errstr,
                                  size_t errstr_size) {
        enc_rec_t *r = &c->up;
        enc_err_t err = decode_rec(c, r,
                                   c->conf.any_update_schema_id
                                           ? -1 /* any */
                                           : c->conf.reward_update_schema_id,
                                   buf,
                                   len, errstr, errstr_size);
        if (err)
                return err;
        const char *s;
        size_t size;
        bool has_mean, has_var;
        memset(up, 0, sizeof(*up));

        /* update_id goes into the struct's own array, not the scratch. */
        if (avro_value_get_string(&r->field[UP_UPDATE_ID], &s, &size) ||
            size == 0 || size > sizeof(up->update_id))
                return avro_fail(r, "update_id", errstr, errstr_size);
        memcpy(up->update_id, s, size);
        up->update_id[size - 1] = '\0';

        if ((err = get_str(c, r, UP_USER_ID, &up->user_id, errstr,
                           errstr_size)) ||
            (err = get_str(c, r, UP_SIGNAL, &up->signal, errstr,
                           errstr_size)) ||
            (err = get_opt_str(c, r, UP_SUBJECT, &up->subject, errstr,
                               errstr_size)) ||
            (err = get_opt_str(c, r, UP_RECOMMENDATION_ID,
                               &up->recommendation_id, errstr, errstr_size)) ||
            (err = get_opt_str(c, r, UP_COHORT, &up->cohort, errstr,
                               errstr_size)) ||
            (err = get_opt_double(r, UP_ESTIMATE_MEAN, &has_mean,
                                  &up->estimate_mean, errstr, errstr_size)) ||
            (err = get_opt_double(r, UP_ESTIMATE_VARIANCE, &has_var,
                                  &up->estimate_variance, errstr, errstr_size)))
                return err;
        if (has_mean != has_var)
                return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                  "RewardUpdate: estimate_mean and "
                                  "estimate_variance must both be null or "
                                  "both set");
        up->has_estimate = has_mean;

        int fin;
        if (avro_value_get_int(&r->field[UP_SIGNAL_VERSION],
                               &up->signal_version) ||
            avro_value_get_long(&r->field[UP_WINDOW_START],
                                &up->window_start) ||
            avro_value_get_long(&r->field[UP_WINDOW_END], &up->window_end) ||
            avro_value_get_double(&r->field[UP_VALUE], &up->value) ||
            avro_value_get_double(&r->field[UP_DELTA], &up->delta) ||
            avro_value_get_int(&r->field[UP_OBSERVED_DAYS],
                               &up->observed_days) ||
            avro_value_get_int(&r->field[UP_HORIZON_DAYS], &up->horizon_days) ||
            avro_value_get_boolean(&r->field[UP_FINAL], &fin) ||
            avro_value_get_long(&r->field[UP_EVENT_TIME], &up->event_time) ||
            avro_value_get_long(&r->field[UP_SEQUENCE], &up->sequence))
                return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                  "RewardUpdate: %s", avro_strerror());
        up->final = fin != 0;

        size_t n;
        avro_value_t *map = &r->field[UP_COMPONENTS];
        if (avro_value_get_size(map, &n) || n > ENC_COMPONENTS_MAX)
                return avro_fail(r, "components", errstr, errstr_size);
        for (size_t i = 0; i < n; i++) {
                avro_value_t child;
                const char *key;
                size_t klen;
                if (avro_value_get_by_index(map, i, &child, &key) ||
                    avro_value_get_double(&child, &up->components[i].value))
                        return avro_fail(r, "components", errstr, errstr_size);
                klen = strlen(key) + 1;
                if (klen > sizeof(c->scratch) - c->scratch_len)
                        return avro_fail(r, "components", errstr, errstr_size);
                memcpy(c->scratch + c->scratch_len, key, klen);
                up->components[i].name = c->scratch + c->scratch_len;
                c->scratch_len += klen;
        }
        up->component_cnt = (int)n;
        return ENC_OK;
}

/* ---- encode --------------------------------------------------------- */

/* A string the encoder may write: present if @p required, within @p cap,
 * valid UTF-8 (Avro strings are UTF-8; other readers would reject it).
 * Sets *len to its length (0 for NULL). */
static enc_err_t check_str_len(const char *s, size_t cap, bool required,
                               size_t *len) {
        *len = 0;
        if (!s)
                return required ? ENC_ERR_INVALID_ARG : ENC_OK;
        size_t n = strnlen(s, cap + 1);
        if (n > cap)
                return ENC_ERR_TOO_LARGE;
        if (!enc_utf8_valid(s, n))
                return ENC_ERR_INVALID_ARG;
        *len = n;
        return ENC_OK;
}

static enc_err_t enc_check_str(const char *s, size_t cap, bool required) {
        size_t n;
        return check_str_len(s, cap, required, &n);
}

/* The lengths of an update's strings, measured once by check_update(). */
typedef struct up_lens_s {
        size_t id, user, signal, subject, rec, cohort;
        size_t comp[ENC_COMPONENTS_MAX];
} up_lens_t;

/* Everything that makes an update unencodable, checked in one place for
 * both paths, in this order: update_id, strings (caps, UTF-8), component
 * count, component names, a repeated component name (a map cannot hold
 * it, and silently keeping one would lose data). */
static enc_err_t check_update(const enc_update_t *up, up_lens_t *l) {
        enc_err_t err;
        l->id = strnlen(up->update_id, sizeof(up->update_id));
        if (l->id == 0 || l->id > ENC_UPDATE_ID_LEN)
                return ENC_ERR_INVALID_ARG;
        if ((err = check_str_len(up->user_id, ENC_ID_MAX, true, &l->user)) ||
            (err = check_str_len(up->signal, ENC_SIGNAL_NAME_MAX, true,
                                 &l->signal)) ||
            (err = check_str_len(up->subject, ENC_ID_MAX, false,
                                 &l->subject)) ||
            (err = check_str_len(up->recommendation_id, ENC_ID_MAX, false,
                                 &l->rec)) ||
            (err = check_str_len(up->cohort, ENC_LABEL_MAX, false, &l->cohort)))
                return err;
        if (up->component_cnt < 0 || up->component_cnt > ENC_COMPONENTS_MAX)
                return ENC_ERR_INVALID_ARG;
        for (int i = 0; i < up->component_cnt; i++)
                if ((err = check_str_len(up->components[i].name,
                                         ENC_COMPONENT_NAME_MAX, true,
                                         &l->comp[i])))
                        return err;
        for (int i = 1; i < up->component_cnt; i++)
                for (int k = 0; k < i; k++)
                        if (l->comp[k] == l->comp[i] &&
                            !memcmp(up->components[k].name,
                                    up->components[i].name, l->comp[i]))
                                return ENC_ERR_INVALID_ARG;
        return ENC_OK;
}

static int set_str(avro_value_t *v, const char *s) {
        return avro_value_set_string_len(v, s, strlen(s) + 1);
}

static int set_opt_str(avro_value_t *u, const char *s) {
        avro_value_t b;
        if (!s)
                return avro_value_set_branch(u, 0, &b) ||
                       avro_value_set_null(&b);
        return avro_value_set_branch(u, 1, &b) || set_str(&b, s);
}

static int set_opt_double(avro_value_t *u, bool present, double d) {
        avro_value_t b;
        if (!present)
                return avro_value_set_branch(u, 0, &b) ||
                       avro_value_set_null(&b);
        return avro_value_set_branch(u, 1, &b) || avro_value_set_double(&b, d);
}

/* Appends the framing and Avro C's encoding of rec->value to @p out; on
 * error @p out is left as it was. */
static enc_err_t write_rec(enc_codec_t *c, enc_rec_t *rec, int32_t schema_id,
                           enc_buf_t *out) {
        size_t size, hdr;
        enc_err_t err;
        if (avro_value_sizeof(&rec->value, &size))
                return ENC_ERR_INVALID_ARG;
        hdr = c->conf.framing == ENC_FRAMING_CONFLUENT ? ENC_CONFLUENT_HDR : 0;
        if (size > SIZE_MAX - hdr)
                return ENC_ERR_TOO_LARGE;
        if ((err = enc_buf_reserve(out, hdr + size)))
                return err;
        uint8_t *dst = out->data + out->len;
        if (hdr) {
                dst[0] = 0;
                enc_put_u32be(dst + 1, (uint32_t)schema_id);
        }
        avro_writer_memory_set_dest(c->writer, (const char *)dst + hdr,
                                    (int64_t)size);
        if (avro_value_write(c->writer, &rec->value) ||
            avro_writer_tell(c->writer) != (int64_t)size)
                return ENC_ERR_INVALID_ARG;
        out->len += hdr + size;
        return ENC_OK;
}

/**
 * Encodes @p ev (borrowed for the call) and appends it, framed, to @p out.
 * Returns ENC_ERR_INVALID_ARG for a NULL required string, invalid UTF-8 or
 * an out-of-range enum, ENC_ERR_TOO_LARGE for a string over its cap (the
 * encoder writes nothing its own decoder would refuse) or a full @p out.
 * Does not check plausibility (see enc_event_validate()). On error @p out
 * is unchanged. Thread: the codec's owner.
 */
enc_err_t enc_codec_encode_event(enc_codec_t *c, const enc_event_t *ev,
                                 enc_buf_t *out) {
        enc_rec_t *r = &c->ev;
        enc_err_t err;
        if (!ev || !out)
                return ENC_ERR_INVALID_ARG;
        if ((err = enc_check_str(ev->event_id, ENC_ID_MAX, true)) ||
            (err = enc_check_str(ev->user_id, ENC_ID_MAX, true)) ||
            (err = enc_check_str(ev->track_id, ENC_ID_MAX, true)) ||
            (err = enc_check_str(ev->artist_id, ENC_ID_MAX, true)) ||
            (err = enc_check_str(ev->surface, ENC_LABEL_MAX, true)) ||
            (err = enc_check_str(ev->recommendation_id, ENC_ID_MAX, false)) ||
            (err = enc_check_str(ev->cohort, ENC_LABEL_MAX, false)))
                return err;
        if ((int)ev->reason_end < 0 || ev->reason_end >= ENC_END__CNT ||
            (int)ev->source < 0 || ev->source >= ENC_SRC__CNT)
                return ENC_ERR_INVALID_ARG;
        if (set_str(&r->field[EV_EVENT_ID], ev->event_id) ||
            set_str(&r->field[EV_USER_ID], ev->user_id) ||
            set_str(&r->field[EV_TRACK_ID], ev->track_id) ||
            set_str(&r->field[EV_ARTIST_ID], ev->artist_id) ||
            avro_value_set_long(&r->field[EV_EVENT_TIME], ev->event_time) ||
            avro_value_set_long(&r->field[EV_MS_PLAYED], ev->ms_played) ||
            avro_value_set_long(&r->field[EV_TRACK_DURATION_MS],
                                ev->track_duration_ms) ||
            avro_value_set_enum(&r->field[EV_REASON_END],
                                (int)ev->reason_end) ||
            avro_value_set_enum(&r->field[EV_SOURCE], (int)ev->source) ||
            set_str(&r->field[EV_SURFACE], ev->surface) ||
            set_opt_str(&r->field[EV_RECOMMENDATION_ID],
                        ev->recommendation_id) ||
            set_opt_str(&r->field[EV_COHORT], ev->cohort))
                return ENC_ERR_NOMEM; /* Avro C's setters fail only on
                                         allocation */
        return write_rec(c, r, c->conf.play_event_schema_id, out);
}

/* Avro C's writing of a checked update, the reference for
 * encode_update_fast. */
static enc_err_t encode_update_avro(enc_codec_t *c, const enc_update_t *up,
                                    enc_buf_t *out) {
        enc_rec_t *r = &c->up;
        if (set_str(&r->field[UP_UPDATE_ID], up->update_id) ||
            set_str(&r->field[UP_USER_ID], up->user_id) ||
            set_str(&r->field[UP_SIGNAL], up->signal) ||
            avro_value_set_int(&r->field[UP_SIGNAL_VERSION],
                               up->signal_version) ||
            set_opt_str(&r->field[UP_SUBJECT], up->subject) ||
            set_opt_str(&r->field[UP_RECOMMENDATION_ID],
                        up->recommendation_id) ||
            avro_value_set_long(&r->field[UP_WINDOW_START], up->window_start) ||
            avro_value_set_long(&r->field[UP_WINDOW_END], up->window_end) ||
            avro_value_set_double(&r->field[UP_VALUE], up->value) ||
            avro_value_set_double(&r->field[UP_DELTA], up->delta) ||
            set_opt_double(&r->field[UP_ESTIMATE_MEAN], up->has_estimate,
                           up->estimate_mean) ||
            set_opt_double(&r->field[UP_ESTIMATE_VARIANCE], up->has_estimate,
                           up->estimate_variance) ||
            avro_value_set_int(&r->field[UP_OBSERVED_DAYS],
                               up->observed_days) ||
            avro_value_set_int(&r->field[UP_HORIZON_DAYS], up->horizon_days) ||
            avro_value_set_boolean(&r->field[UP_FINAL], up->final) ||
            avro_value_set_long(&r->field[UP_EVENT_TIME], up->event_time) ||
            avro_value_set_long(&r->field[UP_SEQUENCE], up->sequence) ||
            set_opt_str(&r->field[UP_COHORT], up->cohort))
                return ENC_ERR_NOMEM;

        /* The generic map keeps entries in an array in insertion order
         * (a hash table only indexes them), and Avro C writes them by
         * index: one block, in the order added. */
        avro_value_t *map = &r->field[UP_COMPONENTS];
        if (avro_value_reset(map))
                return ENC_ERR_NOMEM;
        for (int i = 0; i < up->component_cnt; i++) {
                avro_value_t child;
                int is_new = 0;
                if (avro_value_add(map, up->components[i].name, &child, NULL,
                                   &is_new))
                        return ENC_ERR_NOMEM;
                if (!is_new) /* check_update() rules this out */
                        return ENC_ERR_INVALID_ARG;
                if (avro_value_set_double(&child, up->components[i].value))
                        return ENC_ERR_NOMEM;
        }
        return write_rec(c, r, c->conf.reward_update_schema_id, out);
}

/* ---- fast path: RewardUpdate straight to Avro binary ---------------- */

/* Avro's zig-zag varint, as Avro C writes longs and ints (for an int32
 * the 64-bit zig-zag gives the same number as the 32-bit one). */
static uint64_t zigzag(int64_t v) {
        return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static size_t long_size(int64_t v) {
        uint64_t u = zigzag(v);
        size_t n = 1;
        while (u >= 0x80) {
                u >>= 7;
                n++;
        }
        return n;
}

static size_t str_size(size_t len) {
        return long_size((int64_t)len) + len;
}

static uint8_t *put_long(uint8_t *p, int64_t v) {
        uint64_t u = zigzag(v);
        while (u >= 0x80) {
                *p++ = (uint8_t)(u | 0x80);
                u >>= 7;
        }
        *p++ = (uint8_t)u;
        return p;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len) {
        p = put_long(p, (int64_t)len);
        memcpy(p, s, len);
        return p + len;
}

/* ["null","string"]: branch index 0, or 1 then the string. */
static uint8_t *put_opt_str(uint8_t *p, const char *s, size_t len) {
        if (!s)
                return put_long(p, 0);
        return put_str(put_long(p, 1), s, len);
}

/* The IEEE-754 bits, little-endian, whatever the host's byte order. */
static uint8_t *put_double(uint8_t *p, double d) {
        uint64_t u;
        memcpy(&u, &d, sizeof(u));
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(u >> (8 * i));
        return p + 8;
}

/* The exact encoded size, so @p out grows once and a full buffer fails
 * before anything is written, as with Avro C. */
static size_t update_size(const enc_update_t *up, const up_lens_t *l) {
        size_t n = str_size(l->id) + str_size(l->user) + str_size(l->signal) +
                   long_size(up->signal_version);
        n += 1 + (up->subject ? str_size(l->subject) : 0);
        n += 1 + (up->recommendation_id ? str_size(l->rec) : 0);
        n += long_size(up->window_start) + long_size(up->window_end) + 8 + 8;
        n += up->has_estimate ? 2 * (1 + 8) : 2;
        n += long_size(up->observed_days) + long_size(up->horizon_days) + 1;
        n += long_size(up->event_time) + long_size(up->sequence);
        n += 1 + (up->cohort ? str_size(l->cohort) : 0);
        /* Avro C writes a non-empty map as one block: count, entries, 0. */
        if (up->component_cnt > 0) {
                n += long_size(up->component_cnt) + 1;
                for (int i = 0; i < up->component_cnt; i++)
                        n += str_size(l->comp[i]) + 8;
        } else {
                n += 1;
        }
        return n;
}

/* Writes a checked update exactly as Avro C's generic writer does (fields
 * in schema order; tests/test_codec.c compares the two byte for byte). */
static enc_err_t encode_update_fast(enc_codec_t *c, const enc_update_t *up,
                                    const up_lens_t *l, enc_buf_t *out) {
        size_t hdr = c->conf.framing == ENC_FRAMING_CONFLUENT
                             ? ENC_CONFLUENT_HDR
                             : 0;
        size_t size = update_size(up, l);
        enc_err_t err = enc_buf_reserve(out, hdr + size);
        if (err)
                return err;
        uint8_t *start = out->data + out->len, *p = start;
        if (hdr) {
                p[0] = 0;
                enc_put_u32be(p + 1, (uint32_t)c->conf.reward_update_schema_id);
                p += hdr;
        }
        p = put_str(p, up->update_id, l->id);
        p = put_str(p, up->user_id, l->user);
        p = put_str(p, up->signal, l->signal);
        p = put_long(p, up->signal_version);
        p = put_opt_str(p, up->subject, l->subject);
        p = put_opt_str(p, up->recommendation_id, l->rec);
        p = put_long(p, up->window_start);
        p = put_long(p, up->window_end);
        p = put_double(p, up->value);
        p = put_double(p, up->delta);
        if (up->has_estimate) {
                p = put_double(put_long(p, 1), up->estimate_mean);
                p = put_double(put_long(p, 1), up->estimate_variance);
        } else {
                p = put_long(put_long(p, 0), 0);
        }
        p = put_long(p, up->observed_days);
        p = put_long(p, up->horizon_days);
        *p++ = up->final ? 1 : 0;
        p = put_long(p, up->event_time);
        p = put_long(p, up->sequence);
        p = put_opt_str(p, up->cohort, l->cohort);
        if (up->component_cnt > 0) {
                p = put_long(p, up->component_cnt);
                for (int i = 0; i < up->component_cnt; i++) {
                        p = put_str(p, up->components[i].name, l->comp[i]);
                        p = put_double(p, up->components[i].value);
                }
        }
        *p++ = 0;
        /* update_size() and the writes above must agree; if they ever do
         * not, nothing is appended rather than a corrupt record. */
        if ((size_t)(p - start) != hdr + size)
                return ENC_ERR_INVALID_ARG;
        out->len += hdr + size;
        return ENC_OK;
}

/**
 * Encodes @p up (borrowed for the call) and appends it, framed, to @p out.
 * Components are written in the order given; a repeated component name is
 * ENC_ERR_INVALID_ARG (a map cannot hold it, and silently keeping one would
 * lose data). update_id must be set (enc_update_make_id()); an empty one is
 * ENC_ERR_INVALID_ARG. Strings over their caps: ENC_ERR_TOO_LARGE. On error
 * @p out is unchanged. Thread: the codec's owner.
 */
enc_err_t enc_codec_encode_update(enc_codec_t *c, const enc_update_t *up,
                                  enc_buf_t *out) {
        up_lens_t lens;
        enc_err_t err;
        if (!up || !out)
                return ENC_ERR_INVALID_ARG;
        if ((err = check_update(up, &lens)))
                return err;
        if (c->conf.use_avro_c)
                return encode_update_avro(c, up, out);
        return encode_update_fast(c, up, &lens, out);
}

/* ---- JSON ----------------------------------------------------------- */

/* Appends; a failure is remembered in b->failed (checked once at the
 * end), as enc_buf_put_* do. */
static void json_put(enc_buf_t *b, const void *p, size_t n) {
        if (enc_buf_append(b, p, n) != ENC_OK)
                b->failed = true;
}

static void json_lit(enc_buf_t *b, const char *s) {
        json_put(b, s, strlen(s));
}

/* A JSON string. Control characters are escaped; valid UTF-8 passes
 * through; a byte that does not start a valid UTF-8 sequence becomes
 * U+FFFD so the output is always valid JSON. */
static void json_str(enc_buf_t *b, const char *s) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s);
        enc_buf_put_u8(b, '"');
        for (size_t i = 0; i < n;) {
                unsigned char ch = p[i];
                if (ch >= 0x80) {
                        size_t k = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
                        if (k <= n - i && enc_utf8_valid(s + i, k)) {
                                json_put(b, s + i, k);
                                i += k;
                        } else {
                                json_lit(b, "\\ufffd");
                                i++;
                        }
                        continue;
                }
                switch (ch) {
                case '"':
                        json_lit(b, "\\\"");
                        break;
                case '\\':
                        json_lit(b, "\\\\");
                        break;
                case '\b':
                        json_lit(b, "\\b");
                        break;
                case '\f':
                        json_lit(b, "\\f");
                        break;
                case '\n':
                        json_lit(b, "\\n");
                        break;
                case '\r':
                        json_lit(b, "\\r");
                        break;
                case '\t':
                        json_lit(b, "\\t");
                        break;
                default:
                        if (ch < 0x20) {
                                char esc[7] = {'\\', 'u',          '0',
                                               '0',  hex[ch >> 4], hex[ch & 15],
                                               0};
                                json_lit(b, esc);
                        } else {
                                enc_buf_put_u8(b, ch);
                        }
                }
                i++;
        }
        enc_buf_put_u8(b, '"');
}

static void json_opt_str(enc_buf_t *b, const char *s) {
        if (s)
                json_str(b, s);
        else
                json_lit(b, "null");
}

/* The shortest %g form that reads back as the same double, so 0.1 prints
 * as 0.1 and not 0.10000000000000001. JSON has no NaN or infinity: those
 * print as null. Assumes the C locale's decimal point. */
static void json_double(enc_buf_t *b, double d) {
        char tmp[32];
        if (!isfinite(d)) {
                json_lit(b, "null");
                return;
        }
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
                if (strtod(tmp, NULL) == d)
                        break;
        }
        json_lit(b, tmp);
}

static void json_i64(enc_buf_t *b, int64_t v) {
        char tmp[24];
        snprintf(tmp, sizeof(tmp), "%" PRId64, v);
        json_lit(b, tmp);
}

/**
 * Appends @p up as one line of JSON (no newline) to @p out, then a NUL
 * that is not counted in out->len, so (char *)out->data is a C string.
 * Fields appear in schema order; nullable fields absent in @p up are null;
 * components are an object in the order given. On error (@p out full)
 * @p out is restored to its length on entry. Any thread; pure.
 */
enc_err_t enc_update_to_json(const enc_update_t *up, enc_buf_t *out) {
        if (!up || !out)
                return ENC_ERR_INVALID_ARG;
        size_t start = out->len;
        bool was_failed = out->failed;
        char id[sizeof(up->update_id)];
        memcpy(id, up->update_id, sizeof(id));
        id[sizeof(id) - 1] = '\0';

        out->failed = false;
        json_lit(out, "{\"update_id\":");
        json_str(out, id);
        json_lit(out, ",\"user_id\":");
        json_opt_str(out, up->user_id);
        json_lit(out, ",\"signal\":");
        json_opt_str(out, up->signal);
        json_lit(out, ",\"signal_version\":");
        json_i64(out, up->signal_version);
        json_lit(out, ",\"subject\":");
        json_opt_str(out, up->subject);
        json_lit(out, ",\"recommendation_id\":");
        json_opt_str(out, up->recommendation_id);
        json_lit(out, ",\"window_start\":");
        json_i64(out, up->window_start);
        json_lit(out, ",\"window_end\":");
        json_i64(out, up->window_end);
        json_lit(out, ",\"value\":");
        json_double(out, up->value);
        json_lit(out, ",\"delta\":");
        json_double(out, up->delta);
        json_lit(out, ",\"estimate_mean\":");
        if (up->has_estimate)
                json_double(out, up->estimate_mean);
        else
                json_lit(out, "null");
        json_lit(out, ",\"estimate_variance\":");
        if (up->has_estimate)
                json_double(out, up->estimate_variance);
        else
                json_lit(out, "null");
        json_lit(out, ",\"observed_days\":");
        json_i64(out, up->observed_days);
        json_lit(out, ",\"horizon_days\":");
        json_i64(out, up->horizon_days);
        json_lit(out, ",\"final\":");
        json_lit(out, up->final ? "true" : "false");
        json_lit(out, ",\"event_time\":");
        json_i64(out, up->event_time);
        json_lit(out, ",\"sequence\":");
        json_i64(out, up->sequence);
        json_lit(out, ",\"cohort\":");
        json_opt_str(out, up->cohort);
        json_lit(out, ",\"components\":{");
        int n = up->component_cnt;
        if (n < 0)
                n = 0;
        if (n > ENC_COMPONENTS_MAX)
                n = ENC_COMPONENTS_MAX;
        for (int i = 0; i < n; i++) {
                if (i)
                        enc_buf_put_u8(out, ',');
                /* A NULL name is a caller bug; "" keeps the JSON valid. */
                json_str(out,
                         up->components[i].name ? up->components[i].name : "");
                enc_buf_put_u8(out, ':');
                json_double(out, up->components[i].value);
        }
        json_lit(out, "}}");

        enc_err_t err = out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
        if (!err)
                err = enc_buf_reserve(out, 1);
        if (err) {
                out->len = start;
                out->failed = was_failed;
                return err;
        }
        out->data[out->len] = '\0';
        out->failed = was_failed;
        return ENC_OK;
}
