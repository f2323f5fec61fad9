/*
 * codec.h -- Avro encode/decode of PlayEvent and RewardUpdate with Apache
 * Avro C, in Confluent wire framing (magic byte 0, 4-byte big-endian schema
 * id, Avro binary) or raw Avro binary.
 *
 * A codec is built once (schemas parsed once, Avro values reused) and used
 * from one thread. It is not thread-safe; give each thread its own.
 *
 * Two implementations sit behind the same calls. The hot pair -- decoding
 * PlayEvent and encoding RewardUpdate, once per input and once per output
 * record -- has a hand-written Avro binary reader and writer that allocate
 * nothing (Avro C's generic API costs about 950 ns per PlayEvent on the
 * reference machines, more than the whole budget of a 1M events/s
 * pipeline). Apache Avro C stays the reference: with use_avro_c set, every
 * call goes through its generic value API, and tests/test_codec.c checks
 * the two against each other byte for byte and field for field. Both paths
 * share one validating scan of the input, so they accept and reject exactly
 * the same bytes with the same errors.
 */
#ifndef ENC_CODEC_H
#define ENC_CODEC_H

#include "config.h"
#include "enc.h"
#include "event.h"

typedef struct enc_codec_s enc_codec_t;

typedef enum enc_framing_e {
        ENC_FRAMING_CONFLUENT = 0, /* 0x00 + u32be schema id + avro */
        ENC_FRAMING_RAW,           /* plain Avro binary */
} enc_framing_t;

typedef struct enc_codec_conf_s {
        enc_framing_t framing;
        int32_t play_event_schema_id;    /* expected on input; default 1 */
        int32_t reward_update_schema_id; /* written on output; default 2 */
        size_t max_record_bytes;         /* larger input: ENC_ERR_TOO_LARGE */
        bool use_avro_c; /* decode PlayEvent and encode RewardUpdate with
                          * Avro C's generic API (the reference path)
                          * instead of the fast path; default false. It
                          * reads encore's own schema only: writer schemas
                          * are checked against Avro C's resolver in
                          * tests/test_resolve.c instead */
        bool any_update_schema_id; /* enc_codec_decode_update() takes any
                                    * frame id (a reader of a topic whose
                                    * ids a registry gave); default false */
} enc_codec_conf_t;

/** Fills @p conf with the defaults above (max_record_bytes = 1 MiB,
 *  the fast path). */
void enc_codec_conf_defaults(enc_codec_conf_t *conf);

/** Builds a codec. Returns NULL and fills errstr on failure.
 *  Caller destroys with enc_codec_destroy(). */
enc_codec_t *enc_codec_new(const enc_codec_conf_t *conf, char *errstr,
                           size_t errstr_size);
void enc_codec_destroy(enc_codec_t *codec);

/** Configuration keys serde.play_event.field.<encore field> = <writer
 *  field> name the writer's field read as each encore field. */
#define ENC_CODEC_FIELD_PREFIX "serde.play_event.field."

/**
 * A codec as the configuration @p conf (borrowed for the call) says:
 * serde.framing, the two schema ids, serde.max.record.bytes and the field
 * names under ENC_CODEC_FIELD_PREFIX (a name PlayEvent does not have is
 * ENC_ERR_CONFIG, naming it). Returns NULL and fills errstr on failure.
 * Caller destroys with enc_codec_destroy().
 */
enc_codec_t *enc_codec_new_from_conf(const enc_conf_t *conf, char *errstr,
                                     size_t errstr_size);

/*
 * Writer schemas. A Confluent frame's id names the schema its producer
 * wrote with. Without a lookup, the codec reads play_event_schema_id as
 * encore's own schema and the ids given to enc_codec_add_writer_schema();
 * any other id is ENC_ERR_UNKNOWN_SCHEMA. With a lookup, every id not yet
 * known is asked for once (the configured id included: a registry's ids
 * are the registry's), compiled against encore's schema by Avro's
 * resolution rules (schemas/resolve.c) and kept for the codec's life. A
 * writer schema laid out exactly as encore's is read by the fast path; any
 * other by the resolving scan. A schema that does not resolve is kept as
 * such: its records are ENC_ERR_UNKNOWN_SCHEMA, saying why.
 */

/**
 * Returns the Avro JSON of writer schema @p id in *json (borrowed until the
 * next call on the same @p opaque) and *json_len, or an error with errstr
 * (the record is then ENC_ERR_UNKNOWN_SCHEMA, and the id is asked for
 * again by the next record that carries it). Called on the codec owner's
 * thread, from enc_codec_decode_event(); it must return in bounded time.
 */
typedef enc_err_t (*enc_codec_schema_lookup_t)(void *opaque, int32_t id,
                                               const char **json,
                                               size_t *json_len,
                                               char *errstr,
                                               size_t errstr_size);

/** Frames RewardUpdates from now on with schema id @p id (the id a
 *  registry gave). Thread: the codec's owner. */
void enc_codec_set_reward_update_schema_id(enc_codec_t *codec, int32_t id);

/** Installs @p cb (NULL removes it); @p opaque is borrowed and must
 *  outlive the codec. Thread: the codec's owner. */
void enc_codec_set_schema_lookup(enc_codec_t *codec,
                                 enc_codec_schema_lookup_t cb, void *opaque);

/**
 * Reads encore field @p field from the writer's field @p writer_field
 * (both borrowed for the call). ENC_ERR_CONFIG naming @p field if PlayEvent
 * has no such field. Applies to writer schemas added after the call.
 */
enc_err_t enc_codec_set_field_name(enc_codec_t *codec, const char *field,
                                   const char *writer_field, char *errstr,
                                   size_t errstr_size) ENC_WUR;

/**
 * Compiles writer schema @p json (@p len bytes, borrowed for the call) for
 * frame id @p id. ENC_ERR_CONFIG with errstr naming the fields involved if
 * it does not resolve to encore's PlayEvent (it is then not kept).
 */
enc_err_t enc_codec_add_writer_schema(enc_codec_t *codec, int32_t id,
                                      const char *json, size_t len,
                                      char *errstr,
                                      size_t errstr_size) ENC_WUR;

/**
 * Decodes one PlayEvent from @p buf. On success fills @p ev, whose strings
 * are borrowed from the codec until the next decode call on it. Allocates
 * nothing (fast path).
 * Errors: ENC_ERR_BAD_MAGIC, ENC_ERR_UNKNOWN_SCHEMA, ENC_ERR_TRUNCATED,
 * ENC_ERR_TOO_LARGE, ENC_ERR_DECODE; errstr says what was wrong.
 * Does not validate field values (see enc_event_validate()).
 */
enc_err_t enc_codec_decode_event(enc_codec_t *codec, const void *buf,
                                 size_t len, enc_event_t *ev, char *errstr,
                                 size_t errstr_size) ENC_WUR;

/** Encodes @p ev as a framed PlayEvent, appending to @p out. */
enc_err_t enc_codec_encode_event(enc_codec_t *codec, const enc_event_t *ev,
                                 enc_buf_t *out) ENC_WUR;

/** Encodes @p up as a framed RewardUpdate, appending to @p out.
 *  Components are written in the order given. Allocates nothing beyond
 *  growing @p out (fast path). */
enc_err_t enc_codec_encode_update(enc_codec_t *codec, const enc_update_t *up,
                                  enc_buf_t *out) ENC_WUR;

/**
 * Decodes a RewardUpdate (for tests, the demo and `encore tail`). Strings
 * in @p up are borrowed from the codec until its next decode call. Always
 * Avro C: nothing hot reads updates.
 */
enc_err_t enc_codec_decode_update(enc_codec_t *codec, const void *buf,
                                  size_t len, enc_update_t *up, char *errstr,
                                  size_t errstr_size) ENC_WUR;

/** Formats @p up as one line of JSON into @p out (NUL-terminated). */
enc_err_t enc_update_to_json(const enc_update_t *up, enc_buf_t *out) ENC_WUR;

/** The schema JSON texts, for registries and tools. Static strings. */
const char *enc_codec_play_event_schema(void);
const char *enc_codec_reward_update_schema(void);

#endif /* ENC_CODEC_H */
