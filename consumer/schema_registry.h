/*
 * schema_registry.h -- where PlayEvent writer schemas come from: a
 * directory of <id>.avsc files (serde.schemas.dir) and a Confluent Schema
 * Registry (schema.registry.url, its REST API over libcurl, JSON by
 * jansson); and where encore registers its RewardUpdate schema.
 *
 * The codec (schemas/) knows nothing of HTTP: it asks for an unknown id
 * through enc_codec_schema_lookup_t, and enc_schema_registry_lookup() is
 * that function. One registry client per pipeline, used from the
 * processing thread only (lookups) and from the thread that builds the
 * pipeline (start-up checks, registration) before that thread runs.
 */
#ifndef ENC_SCHEMA_REGISTRY_H
#define ENC_SCHEMA_REGISTRY_H

#include "config.h"
#include "enc.h"

typedef struct enc_schema_registry_s enc_schema_registry_t;

/**
 * Builds the client @p conf (borrowed for the call) describes. Sets *out
 * to NULL when neither serde.schemas.dir nor schema.registry.url is set
 * (nothing to look up: the codec reads only serde.play_event.schema.id);
 * field names set then must be encore's own (ENC_ERR_CONFIG naming them).
 * Contacts nothing. Caller destroys with enc_schema_registry_destroy().
 */
enc_err_t enc_schema_registry_new(const enc_conf_t *conf,
                                  enc_schema_registry_t **out, char *errstr,
                                  size_t errstr_size) ENC_WUR;
void enc_schema_registry_destroy(enc_schema_registry_t *r);

/**
 * The start-up check: every <id>.avsc of serde.schemas.dir, and the latest
 * schema of subject <input.topic>-value in the registry if it has one,
 * must resolve to encore's PlayEvent with the configured field names
 * (serde.play_event.field.*); the error names the schema and the fields.
 * A registry that cannot be reached is logged and not fatal here (ids are
 * checked at first use). Schemas read are kept for lookups.
 */
enc_err_t enc_schema_registry_check(enc_schema_registry_t *r,
                                    const enc_conf_t *conf, char *errstr,
                                    size_t errstr_size) ENC_WUR;

/**
 * enc_codec_schema_lookup_t over @p opaque (an enc_schema_registry_t):
 * the writer schema of @p id from the cache, serde.schemas.dir/<id>.avsc,
 * or GET /schemas/ids/<id>. A failed request (connection, timeout, HTTP
 * 5xx, 408, 429) is retried schema.registry.max.retries times, waiting
 * schema.registry.retries.wait.ms, doubled per retry up to
 * .retries.wait.max.ms; a failure (404 / error_code 40403 included) is
 * remembered for retries.wait.max.ms, during which the id fails at once
 * (and, if the registry failed every retry, any id it would be asked for).
 * So a call blocks at most (max.retries + 1) request timeouts plus the
 * waits. *json is borrowed until the client is destroyed.
 */
enc_err_t enc_schema_registry_lookup(void *opaque, int32_t id,
                                     const char **json, size_t *json_len,
                                     char *errstr, size_t errstr_size);

/** True if schema.registry.url is set. */
bool enc_schema_registry_has_url(const enc_schema_registry_t *r);

/**
 * Registers @p schema (Avro JSON, borrowed) under @p subject
 * (POST /subjects/<subject>/versions, with the retries above) and returns
 * the registry's id in *id. The registry answers an already registered
 * schema with its existing id.
 */
enc_err_t enc_schema_registry_register(enc_schema_registry_t *r,
                                       const char *subject, const char *schema,
                                       int32_t *id, char *errstr,
                                       size_t errstr_size) ENC_WUR;

/**
 * The schema id outputs are framed with: with a registry and
 * schema.registry.auto.register.schemas, RewardUpdate registered under
 * <output.topic>-value; otherwise *id = -1 (keep
 * serde.reward_update.schema.id). @p r may be NULL.
 */
enc_err_t enc_schema_registry_output_id(enc_schema_registry_t *r,
                                        const enc_conf_t *conf, int32_t *id,
                                        char *errstr,
                                        size_t errstr_size) ENC_WUR;

#endif /* ENC_SCHEMA_REGISTRY_H */
