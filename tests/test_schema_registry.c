/*
 * test_schema_registry.c -- consumer/schema_registry.c and a topic with its
 * own PlayEvent schema end to end (issue 16, items 1, 4, 5 and 6).
 *
 * No Schema Registry server can be installed on these machines, so the
 * registry here is a small HTTP server inside the test (libmicrohttpd)
 * that gives the answers Confluent documents for its REST API:
 *   GET  /schemas/ids/{id}        200 {"schema": "<Avro JSON string>"},
 *                                 404 {"error_code": 40403, "message": ...}
 *   GET  /subjects/{s}/versions/latest
 *                                 200 {"subject", "version", "id", "schema"},
 *                                 404 {"error_code": 40401, ...}
 *   POST /subjects/{s}/versions   200 {"id": N}
 * and, to stand for a registry that is briefly down, 503 {"error_code":
 * 50003, ...} for the next n requests.
 *
 * The end-to-end case writes the same generated events twice: once with
 * encore's schema (id 1) and once with a producer's own schema (id 7:
 * fields in another order, two extra fields, an int duration, the cohort
 * named experiment_group, an extra enum symbol) written by Avro C; encore
 * reads the second through the registry and must give exactly the
 * updates of the first, framed with the id the registry gave RewardUpdate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <avro.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "embedded.h"
#include "kafka_harness.h"
#include "schema_registry.h"

/* A producer's schema (like v7 in tests/test_resolve.c, but a Client
 * record without versions and tags as an array of strings). */
static const char v7_json[] =
        "{\"type\":\"record\",\"name\":\"PlayEvent\","
        "\"namespace\":\"com.acme.listening\",\"fields\":["
        "{\"name\":\"user_id\",\"type\":\"string\"},"
        "{\"name\":\"event_time\",\"type\":\"long\"},"
        "{\"name\":\"client\",\"type\":{\"type\":\"record\",\"name\":"
        "\"Client\",\"fields\":[{\"name\":\"os\",\"type\":\"string\"}]}},"
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
        "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":"
        "\"string\"}},"
        "{\"name\":\"recommendation_id\",\"type\":[\"null\",\"string\"],"
        "\"default\":null},"
        "{\"name\":\"experiment_group\",\"type\":[\"string\",\"null\"]}]}";

/* ---- the registry ------------------------------------------------------ */

typedef struct reg_s {
        struct MHD_Daemon *d;
        int port;
        pthread_mutex_t lock;
        int hits;              /* requests answered */
        int id_hits[128];      /* GET /schemas/ids/{id} per id */
        int unavailable;       /* answer the next n requests with 503 */
        char auth[128];        /* Authorization header of the last request */
        char registered[8192]; /* "schema" of the last POST */
        char subject[256];     /* of the last POST */
        int register_id;       /* id answered to POSTs */
        const char *latest_subject; /* answered by versions/latest */
        int latest_id;
        char url[64];
} reg_t;

typedef struct post_s {
        char *body;
        size_t len;
} post_t;

static enum MHD_Result reg_reply(struct MHD_Connection *c, unsigned status,
                                 json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        struct MHD_Response *r = MHD_create_response_from_buffer(
                strlen(s), s, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type",
                                "application/vnd.schemaregistry.v1+json");
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static const char *schema_of(int id) {
        if (id == 7)
                return v7_json;
        if (id == 1)
                return enc_codec_play_event_schema();
        return NULL;
}

static enum MHD_Result reg_handler(void *cls, struct MHD_Connection *c,
                                   const char *url, const char *method,
                                   const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls) {
        (void)version;
        reg_t *g = cls;
        post_t *p = *con_cls;
        if (!strcmp(method, "POST")) {
                if (!p) {
                        *con_cls = calloc(1, sizeof(post_t));
                        return MHD_YES;
                }
                if (*upload_data_size) {
                        p->body = realloc(p->body,
                                          p->len + *upload_data_size + 1);
                        memcpy(p->body + p->len, upload_data,
                               *upload_data_size);
                        p->len += *upload_data_size;
                        p->body[p->len] = '\0';
                        *upload_data_size = 0;
                        return MHD_YES;
                }
        }
        pthread_mutex_lock(&g->lock);
        g->hits++;
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    "Authorization");
        snprintf(g->auth, sizeof(g->auth), "%s", a ? a : "");
        bool down = g->unavailable > 0;
        if (down)
                g->unavailable--;
        pthread_mutex_unlock(&g->lock);
        enum MHD_Result ret;
        int id;
        char subj[256];
        if (down) {
                ret = reg_reply(c, 503,
                                json_pack("{s:i,s:s}", "error_code", 50003,
                                          "message",
                                          "Error while forwarding the "
                                          "request to the leader"));
        } else if (!strcmp(method, "GET") &&
                   sscanf(url, "/schemas/ids/%d", &id) == 1) {
                pthread_mutex_lock(&g->lock);
                if (id >= 0 && id < 128)
                        g->id_hits[id]++;
                pthread_mutex_unlock(&g->lock);
                const char *s = schema_of(id);
                ret = s ? reg_reply(c, 200, json_pack("{s:s}", "schema", s))
                        : reg_reply(c, 404,
                                    json_pack("{s:i,s:s}", "error_code", 40403,
                                              "message", "Schema not found"));
        } else if (!strcmp(method, "GET") &&
                   sscanf(url, "/subjects/%255[^/]/versions/latest", subj) ==
                           1) {
                if (g->latest_subject && !strcmp(subj, g->latest_subject))
                        ret = reg_reply(c, 200,
                                        json_pack("{s:s,s:i,s:i,s:s}",
                                                  "subject", subj, "version", 1,
                                                  "id", g->latest_id, "schema",
                                                  schema_of(g->latest_id)));
                else
                        ret = reg_reply(c, 404,
                                        json_pack("{s:i,s:s}", "error_code",
                                                  40401, "message",
                                                  "Subject not found"));
        } else if (!strcmp(method, "POST") && p &&
                   sscanf(url, "/subjects/%255[^/]/versions", subj) == 1) {
                json_error_t je;
                json_t *b = json_loads(p->body ? p->body : "", 0, &je);
                json_t *s = b ? json_object_get(b, "schema") : NULL;
                bool ok = json_is_string(s);
                pthread_mutex_lock(&g->lock);
                snprintf(g->registered, sizeof(g->registered), "%s",
                         json_is_string(s) ? json_string_value(s) : "");
                snprintf(g->subject, sizeof(g->subject), "%s", subj);
                pthread_mutex_unlock(&g->lock);
                json_decref(b);
                ret = ok ? reg_reply(c, 200,
                                     json_pack("{s:i}", "id", g->register_id))
                         : reg_reply(c, 422,
                                     json_pack("{s:i,s:s}", "error_code", 42201,
                                               "message", "Invalid schema"));
        } else {
                ret = reg_reply(c, 404,
                                json_pack("{s:i,s:s}", "error_code", 404,
                                          "message", "HTTP 404 Not Found"));
        }
        if (p) {
                free(p->body);
                free(p);
                *con_cls = NULL;
        }
        return ret;
}

static void reg_start(reg_t *g) {
        memset(g, 0, sizeof(*g));
        pthread_mutex_init(&g->lock, NULL);
        g->register_id = 21;
        g->d = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, reg_handler, g,
                MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
        assert_non_null(g->d);
        g->port = MHD_get_daemon_info(g->d, MHD_DAEMON_INFO_BIND_PORT)->port;
        snprintf(g->url, sizeof(g->url), "http://127.0.0.1:%d/", g->port);
}

static void reg_stop(reg_t *g) {
        if (g->d)
                MHD_stop_daemon(g->d);
        g->d = NULL;
        pthread_mutex_destroy(&g->lock);
}

static enc_conf_t *reg_conf(const char *url) {
        char err[256];
        enc_conf_t *conf = enc_conf_new();
        assert_int_equal(enc_conf_set(conf, "schema.registry.url", url, err,
                                      sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(conf, "schema.registry.retries.wait.ms",
                                      "20", err, sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(conf,
                                      "schema.registry.retries.wait.max.ms",
                                      "200", err, sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(conf,
                                      "schema.registry.request.timeout.ms",
                                      "1000", err, sizeof(err)),
                         0);
        return conf;
}

/* ---- the client against the registry ------------------------------------ */

/* A client of registry @p g, configured by reg_conf() (*conf: the caller
 * releases it, with the client, through reg_client_done()). */
static enc_schema_registry_t *reg_client(const reg_t *g, enc_conf_t **conf) {
        char err[512];
        enc_schema_registry_t *r;
        *conf = reg_conf(g->url);
        assert_int_equal(enc_schema_registry_new(*conf, &r, err, sizeof(err)),
                         0);
        return r;
}

/* Stops @p g and frees what reg_client() made. */
static void reg_client_done(reg_t *g, enc_schema_registry_t *r,
                            enc_conf_t *conf) {
        reg_stop(g);
        enc_schema_registry_destroy(r);
        enc_conf_destroy(conf);
}

/* Id 7 is fetched once, then served from memory (the registry stopped). */
static void test_fetches_an_id_once_and_keeps_it(void **st) {
        (void)st;
        reg_t g;
        reg_start(&g);
        char err[512];
        enc_conf_t *conf;
        enc_schema_registry_t *r = reg_client(&g, &conf);
        const char *json;
        size_t len;
        assert_int_equal(
                enc_schema_registry_lookup(r, 7, &json, &len, err, sizeof(err)),
                ENC_OK);
        assert_int_equal(len, strlen(v7_json));
        assert_memory_equal(json, v7_json, len);
        reg_stop(&g);
        assert_int_equal(
                enc_schema_registry_lookup(r, 7, &json, &len, err, sizeof(err)),
                ENC_OK);
        assert_memory_equal(json, v7_json, len);
        assert_int_equal(g.id_hits[7], 1);
        enc_schema_registry_destroy(r);
        enc_conf_destroy(conf);
}

/* An unknown id: the registry's 404 / 40403 is the error, and the id is
 * not asked for again within retries.wait.max.ms. */
static void test_unknown_id_is_the_registrys_40403(void **st) {
        (void)st;
        reg_t g;
        reg_start(&g);
        char err[512];
        enc_conf_t *conf;
        enc_schema_registry_t *r = reg_client(&g, &conf);
        const char *json;
        size_t len;
        assert_int_equal(enc_schema_registry_lookup(r, 99, &json, &len, err,
                                                    sizeof(err)),
                         ENC_ERR_UNKNOWN_SCHEMA);
        assert_string_equal(err, "registry /schemas/ids/99: HTTP 404, "
                                 "error_code 40403: Schema not found");
        assert_int_equal(enc_schema_registry_lookup(r, 99, &json, &len, err,
                                                    sizeof(err)),
                         ENC_ERR_UNKNOWN_SCHEMA);
        assert_non_null(strstr(err, "not asked again for"));
        assert_int_equal(g.id_hits[99], 1); /* 404 is not retried */
        usleep(250 * 1000);                 /* past retries.wait.max.ms */
        assert_int_equal(enc_schema_registry_lookup(r, 99, &json, &len, err,
                                                    sizeof(err)),
                         ENC_ERR_UNKNOWN_SCHEMA);
        assert_int_equal(g.id_hits[99], 2);
        reg_client_done(&g, r, conf);
}

/* Briefly down: two 503s, then the answer, within max.retries (3). */
static void test_retries_a_registry_that_is_briefly_down(void **st) {
        (void)st;
        reg_t g;
        reg_start(&g);
        g.unavailable = 2;
        char err[512];
        enc_conf_t *conf;
        enc_schema_registry_t *r = reg_client(&g, &conf);
        const char *json;
        size_t len;
        assert_int_equal(
                enc_schema_registry_lookup(r, 7, &json, &len, err, sizeof(err)),
                ENC_OK);
        assert_int_equal(g.hits, 3);
        assert_int_equal(g.id_hits[7], 1);
        reg_client_done(&g, r, conf);
}

/* Down for longer than the retries: the lookup fails after max.retries + 1
 * requests and within the bound the header promises (4 requests, waits
 * 20 + 40 + 80 ms), not blocking the caller. */
static void test_gives_up_after_the_retries_in_bounded_time(void **st) {
        (void)st;
        reg_t g;
        reg_start(&g);
        g.unavailable = 1000;
        char err[512];
        enc_conf_t *conf;
        enc_schema_registry_t *r = reg_client(&g, &conf);
        const char *json;
        size_t len;
        int64_t t0 = t_now_ms();
        assert_int_equal(
                enc_schema_registry_lookup(r, 7, &json, &len, err, sizeof(err)),
                ENC_ERR_UNKNOWN_SCHEMA);
        int64_t dt = t_now_ms() - t0;
        assert_int_equal(g.hits, 4);
        assert_non_null(strstr(err, "HTTP 503, error_code 50003"));
        assert_true(dt >= 140);
        assert_true(dt < 4 * 1000 + 140);
        /* another id right after: the registry is not asked (a burst of
         * new ids while it is down costs one round of retries, not one
         * each) */
        assert_int_equal(
                enc_schema_registry_lookup(r, 1, &json, &len, err, sizeof(err)),
                ENC_ERR_UNKNOWN_SCHEMA);
        assert_non_null(strstr(err, "registry not asked again for"));
        assert_int_equal(g.hits, 4);
        reg_stop(&g);
        /* nothing listens now: a connection error, same bound */
        usleep(250 * 1000);
        t0 = t_now_ms();
        assert_int_equal(
                enc_schema_registry_lookup(r, 7, &json, &len, err, sizeof(err)),
                ENC_ERR_UNKNOWN_SCHEMA);
        assert_true(t_now_ms() - t0 < 4 * 1000 + 140);
        enc_schema_registry_destroy(r);
        enc_conf_destroy(conf);
}

/* RewardUpdate is registered under <output.topic>-value with the exact
 * schema text, with basic auth, and the registry's id comes back. */
static void test_registers_reward_update_under_the_output_subject(void **st) {
        (void)st;
        reg_t g;
        reg_start(&g);
        char err[512];
        enc_conf_t *conf = reg_conf(g.url);
        assert_int_equal(enc_conf_set(conf, "output.topic", "team-rewards", err,
                                      sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(conf,
                                      "schema.registry.basic.auth.user.info",
                                      "u:p", err, sizeof(err)),
                         0);
        enc_schema_registry_t *r;
        assert_int_equal(enc_schema_registry_new(conf, &r, err, sizeof(err)),
                         0);
        int32_t id = 0;
        enc_err_t e =
                enc_schema_registry_output_id(r, conf, &id, err, sizeof(err));
        if (e)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(e, ENC_OK);
        assert_int_equal(id, 21);
        assert_string_equal(g.subject, "team-rewards-value");
        assert_string_equal(g.registered, enc_codec_reward_update_schema());
        assert_string_equal(g.auth, "Basic dTpw"); /* base64("u:p") */
        /* auto-registration off: keep serde.reward_update.schema.id */
        assert_int_equal(enc_conf_set(conf,
                                      "schema.registry.auto.register.schemas",
                                      "false", err, sizeof(err)),
                         0);
        assert_int_equal(
                enc_schema_registry_output_id(r, conf, &id, err, sizeof(err)),
                ENC_OK);
        assert_int_equal(id, -1);
        reg_client_done(&g, r, conf);
}

/* The start-up check: a rename the writer schema does not have fails with
 * both names; the latest schema of <input.topic>-value is what is checked. */
static void test_startup_check_names_both_fields(void **st) {
        (void)st;
        reg_t g;
        reg_start(&g);
        g.latest_subject = "acme-plays-value";
        g.latest_id = 7;
        char err[512];
        enc_conf_t *conf = reg_conf(g.url);
        assert_int_equal(enc_conf_set(conf, "input.topic", "acme-plays", err,
                                      sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(conf, "serde.play_event.field.cohort",
                                      "arm", err, sizeof(err)),
                         0);
        enc_schema_registry_t *r;
        assert_int_equal(enc_schema_registry_new(conf, &r, err, sizeof(err)),
                         0);
        assert_int_equal(enc_schema_registry_check(r, conf, err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_string_equal(
                err, "registry subject acme-plays-value, latest version: "
                     "PlayEvent writer schema 7 does not resolve to "
                     "encore's: serde.play_event.field.cohort = arm: the "
                     "writer schema has no field arm");
        enc_schema_registry_destroy(r);
        assert_int_equal(enc_conf_set(conf, "serde.play_event.field.cohort",
                                      "experiment_group", err, sizeof(err)),
                         0);
        assert_int_equal(enc_schema_registry_new(conf, &r, err, sizeof(err)),
                         0);
        assert_int_equal(enc_schema_registry_check(r, conf, err, sizeof(err)),
                         ENC_OK);
        reg_client_done(&g, r, conf);
}

/* serde.schemas.dir: <id>.avsc files, no registry. */
static void test_schemas_dir_serves_ids_offline(void **st) {
        (void)st;
        char dir[] = "/tmp/encore-test-schemas-XXXXXX", path[256], err[512];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/7.avsc", dir);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(v7_json, fp);
        fclose(fp);
        enc_conf_t *conf = enc_conf_new();
        assert_int_equal(
                enc_conf_set(conf, "serde.schemas.dir", dir, err, sizeof(err)),
                0);
        assert_int_equal(enc_conf_set(conf, "serde.play_event.field.cohort",
                                      "experiment_group", err, sizeof(err)),
                         0);
        enc_schema_registry_t *r;
        assert_int_equal(enc_schema_registry_new(conf, &r, err, sizeof(err)),
                         0);
        assert_int_equal(enc_schema_registry_check(r, conf, err, sizeof(err)),
                         ENC_OK);
        const char *json;
        size_t len;
        assert_int_equal(
                enc_schema_registry_lookup(r, 7, &json, &len, err, sizeof(err)),
                ENC_OK);
        assert_memory_equal(json, v7_json, len);
        assert_int_equal(
                enc_schema_registry_lookup(r, 8, &json, &len, err, sizeof(err)),
                ENC_ERR_UNKNOWN_SCHEMA);
        assert_non_null(strstr(err, "8.avsc"));
        int32_t id;
        assert_int_equal(
                enc_schema_registry_output_id(r, conf, &id, err, sizeof(err)),
                ENC_OK);
        assert_int_equal(id, -1); /* no registry: configured ids */
        enc_schema_registry_destroy(r);
        /* a file that does not resolve stops start-up, naming the file */
        snprintf(path, sizeof(path), "%s/9.avsc", dir);
        fp = fopen(path, "w");
        fputs("{\"type\":\"record\",\"name\":\"PlayEvent\",\"fields\":[]}", fp);
        fclose(fp);
        assert_int_equal(enc_schema_registry_new(conf, &r, err, sizeof(err)),
                         0);
        assert_int_equal(enc_schema_registry_check(r, conf, err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_non_null(strstr(err, "9.avsc: PlayEvent writer schema 9 does "
                                    "not resolve to encore's"));
        assert_non_null(strstr(err, "has no field event_id"));
        enc_schema_registry_destroy(r);
        unlink(path);
        snprintf(path, sizeof(path), "%s/7.avsc", dir);
        unlink(path);
        rmdir(dir);
        enc_conf_destroy(conf);

        /* no directory, no registry: a field name is checked against
         * encore's own schema rather than silently ignored */
        conf = enc_conf_new();
        assert_int_equal(enc_conf_set(conf, "serde.play_event.field.cohort",
                                      "experiment_group", err, sizeof(err)),
                         0);
        r = (enc_schema_registry_t *)1;
        assert_int_equal(enc_schema_registry_new(conf, &r, err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_null(r);
        assert_string_equal(err,
                            "encore's own schema (no serde.schemas.dir or "
                            "schema.registry.url): PlayEvent writer schema 1 "
                            "does not resolve to encore's: "
                            "serde.play_event.field.cohort = "
                            "experiment_group: the writer schema has no field "
                            "experiment_group");
        enc_conf_destroy(conf);
        conf = enc_conf_new();
        assert_int_equal(enc_schema_registry_new(conf, &r, err, sizeof(err)),
                         ENC_OK);
        assert_null(r);
        enc_conf_destroy(conf);
}

/* ---- end to end --------------------------------------------------------- */

/* Writes @p ev with v7 (schema @p ws) by Avro C, framed with @p id;
 * @p paused writes reason_end as PAUSED. */
static void write_v7(avro_schema_t ws, const enc_event_t *ev, bool paused,
                     int32_t id, enc_buf_t *out) {
        avro_value_iface_t *cls = avro_generic_class_from_schema(ws);
        avro_value_t rec, f, b, item;
        assert_int_equal(avro_generic_value_new(cls, &rec), 0);
#define FIELD(name)                                                            \
        assert_int_equal(avro_value_get_by_name(&rec, name, &f, NULL), 0)
        FIELD("user_id");
        avro_value_set_string(&f, ev->user_id);
        FIELD("event_time");
        avro_value_set_long(&f, ev->event_time);
        FIELD("client");
        avro_value_get_by_index(&f, 0, &b, NULL);
        avro_value_set_string(&b, "android");
        FIELD("track_id");
        avro_value_set_string(&f, ev->track_id);
        FIELD("artist_id");
        avro_value_set_string(&f, ev->artist_id);
        FIELD("event_id");
        avro_value_set_string(&f, ev->event_id);
        FIELD("ms_played");
        avro_value_set_long(&f, ev->ms_played);
        FIELD("track_duration_ms");
        avro_value_set_int(&f, (int32_t)ev->track_duration_ms);
        FIELD("reason_end");
        avro_value_set_enum(&f, paused ? 6 : (int)ev->reason_end);
        FIELD("source");
        /* v7's Source symbols are encore's reversed */
        avro_value_set_enum(&f, ENC_SRC__CNT - 1 - (int)ev->source);
        FIELD("surface");
        avro_value_set_string(&f, ev->surface);
        FIELD("tags");
        avro_value_append(&f, &item, NULL);
        avro_value_set_string(&item, "t");
        FIELD("recommendation_id");
        if (ev->recommendation_id) {
                avro_value_set_branch(&f, 1, &b);
                avro_value_set_string(&b, ev->recommendation_id);
        } else {
                avro_value_set_branch(&f, 0, &b);
                avro_value_set_null(&b);
        }
        FIELD("experiment_group");
        if (ev->cohort) {
                avro_value_set_branch(&f, 0, &b);
                avro_value_set_string(&b, ev->cohort);
        } else {
                avro_value_set_branch(&f, 1, &b);
                avro_value_set_null(&b);
        }
#undef FIELD
        size_t size;
        assert_int_equal(avro_value_sizeof(&rec, &size), 0);
        enc_buf_reset(out);
        assert_int_equal(enc_buf_reserve(out, size + 5), 0);
        out->data[0] = 0;
        enc_put_u32be(out->data + 1, (uint32_t)id);
        avro_writer_t w =
                avro_writer_memory((char *)out->data + 5, (int64_t)size);
        assert_int_equal(avro_value_write(w, &rec), 0);
        avro_writer_free(w);
        out->len = size + 5;
        avro_value_decref(&rec);
        avro_value_iface_decref(cls);
}

static enc_conf_t *e2e_conf(const char *in, const char *out, const char *dlq,
                            const char *dir) {
        char err[256];
        enc_conf_t *conf = enc_conf_new();
        const char *kv[][2] = {{"kafka.bootstrap.servers", bootstrap},
                               {"input.topic", in},
                               {"output.topic", out},
                               {"dlq.topic", dlq},
                               {"group.id", in},
                               {"state.dir", dir},
                               {"changelog.enable", "false"},
                               {"metrics.address", ""},
                               {"log.level", "warn"}};
        for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
                assert_int_equal(enc_conf_set(conf, kv[i][0], kv[i][1], err,
                                              sizeof(err)),
                                 0);
        return conf;
}

/* Records of partition @p p, in offset order (t_read gives them so). */
static size_t of_partition(const t_recs_t *r, int32_t p, const t_rec_t **v) {
        size_t n = 0;
        for (size_t i = 0; i < r->n; i++)
                if (r->v[i].partition == p)
                        v[n++] = &r->v[i];
        return n;
}

static void
test_own_schema_through_the_registry_gives_the_same_updates(void **st) {
        (void)st;
        char err[512];
        reg_t g;
        reg_start(&g);
        g.latest_subject = "r-plays-value";
        g.latest_id = 7;
        t_input_t in;
        t_input_make(&in, 3000, 61);
        enc_codec_t *canon = t_codec();
        assert_int_equal(
                enc_embedded_create_topic(emb, "c-plays", 4, err, sizeof(err)),
                0);
        assert_int_equal(
                enc_embedded_create_topic(emb, "r-plays", 4, err, sizeof(err)),
                0);
        /* the producer's topic: every event in v7 (id 7), plus three
         * records no update may come from: an id the registry does not
         * have, a PAUSED play, and another unknown id */
        rd_kafka_t *rk = t_producer();
        avro_schema_t ws;
        assert_int_equal(
                avro_schema_from_json_length(v7_json, strlen(v7_json), &ws), 0);
        enc_buf_t b;
        enc_buf_init(&b, 1 << 16);
        for (size_t i = 0; i < in.n; i++) {
                enc_event_t ev;
                assert_int_equal(enc_codec_decode_event(canon, in.val[i].data,
                                                        in.val[i].len, &ev, err,
                                                        sizeof(err)),
                                 0);
                write_v7(ws, &ev, false, 7, &b);
                t_produce_raw(rk, "r-plays", in.key[i], b.data, b.len);
                if (i == 100 || i == 2000) {
                        write_v7(ws, &ev, false, 99, &b);
                        t_produce_raw(rk, "r-plays", in.key[i], b.data, b.len);
                }
                if (i == 1500) {
                        write_v7(ws, &ev, true, 7, &b);
                        t_produce_raw(rk, "r-plays", in.key[i], b.data, b.len);
                }
        }
        assert_int_equal(rd_kafka_flush(rk, 30000), 0);
        rd_kafka_destroy(rk);
        enc_buf_free(&b);
        avro_schema_decref(ws);
        t_input_produce(&in, "c-plays", 0, in.n, false);

        char d1[] = "/tmp/encore-test-sr1-XXXXXX",
             d2[] = "/tmp/encore-test-sr2-XXXXXX";
        assert_non_null(mkdtemp(d1));
        assert_non_null(mkdtemp(d2));
        enc_conf_t *c1 = e2e_conf("c-plays", "c-out", "c-dlq", d1);
        t_run_inproc(c1);
        enc_conf_t *c2 = e2e_conf("r-plays", "r-out", "r-dlq", d2);
        assert_int_equal(enc_conf_set(c2, "schema.registry.url", g.url, err,
                                      sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(c2, "serde.play_event.field.cohort",
                                      "experiment_group", err, sizeof(err)),
                         0);
        t_run_inproc(c2);

        t_recs_t a, r, dl;
        t_read("c-out", &a);
        t_read("r-out", &r);
        t_read("r-dlq", &dl);
        assert_true(a.n > 1000);
        assert_int_equal(r.n, a.n);
        const t_rec_t **pa = calloc(a.n, sizeof(*pa)),
                      **pr = calloc(r.n, sizeof(*pr));
        for (int32_t p = 0; p < 4; p++) {
                size_t na = of_partition(&a, p, pa),
                       nr = of_partition(&r, p, pr);
                assert_int_equal(na, nr);
                for (size_t i = 0; i < na; i++) {
                        assert_int_equal(pa[i]->len, pr[i]->len);
                        /* frames: id 2 (configured) and 21 (registered) */
                        assert_int_equal(enc_read_u32be(pa[i]->val + 1), 2);
                        assert_int_equal(enc_read_u32be(pr[i]->val + 1), 21);
                        assert_memory_equal(pa[i]->val + 5, pr[i]->val + 5,
                                            pa[i]->len - 5);
                }
        }
        free(pa);
        free(pr);
        assert_string_equal(g.subject, "r-out-value");
        /* the three: unknown_schema with the registry's answer, invalid
         * naming the symbol */
        assert_int_equal(dl.n, 3);
        int unknown = 0, invalid = 0;
        for (size_t i = 0; i < dl.n; i++) {
                if (!strcmp(dl.v[i].hdr[0], "unknown_schema")) {
                        unknown++;
                        assert_non_null(strstr(dl.v[i].hdr[1], "40403"));
                } else {
                        assert_string_equal(dl.v[i].hdr[0], "invalid");
                        assert_non_null(strstr(dl.v[i].hdr[1], "PAUSED"));
                        invalid++;
                }
        }
        assert_int_equal(unknown, 2);
        assert_int_equal(invalid, 1);
        assert_int_equal(g.id_hits[7], 0); /* known from the start-up check */
        t_recs_free(&a);
        t_recs_free(&r);
        t_recs_free(&dl);
        enc_conf_destroy(c1);
        enc_conf_destroy(c2);
        enc_codec_destroy(canon);
        t_input_free(&in);
        reg_stop(&g);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s %s", d1, d2);
        assert_int_equal(system(cmd), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fetches_an_id_once_and_keeps_it),
                cmocka_unit_test(test_unknown_id_is_the_registrys_40403),
                cmocka_unit_test(test_retries_a_registry_that_is_briefly_down),
                cmocka_unit_test(
                        test_gives_up_after_the_retries_in_bounded_time),
                cmocka_unit_test(
                        test_registers_reward_update_under_the_output_subject),
                cmocka_unit_test(test_startup_check_names_both_fields),
                cmocka_unit_test(test_schemas_dir_serves_ids_offline),
                cmocka_unit_test(
                        test_own_schema_through_the_registry_gives_the_same_updates),
        };
        if (getenv("ENC_TEST_FILTER"))
                cmocka_set_test_filter(getenv("ENC_TEST_FILTER"));
        return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
