/*
 * schema_registry.c -- PlayEvent writer schemas from a directory and a
 * Confluent Schema Registry; RewardUpdate registered there.
 *
 * DESIGN
 * Producers that use Confluent serializers register their writer schema
 * and frame each record with the registry's id. The codec asks for an id
 * it has not met through a callback (enc_codec_schema_lookup_t); this file
 * answers, so HTTP stays out of schemas/ and every user of the codec does
 * not link libcurl. Order: the in-memory cache, then
 * serde.schemas.dir/<id>.avsc (deployments without a registry, or to pin
 * schemas), then GET /schemas/ids/<id>.
 *
 * Registry answers as documented by Confluent's REST API: 200 with
 * {"schema": "<Avro JSON as a string>"} (and "schemaType" for non-Avro
 * schemas, which encore refuses); errors as {"error_code": 40403,
 * "message": "..."} with the HTTP status (404 for an unknown id). Bodies
 * are read into a capped buffer (ENC_SREG_BODY_MAX) and parsed with
 * jansson; nothing from the wire is trusted to be small or well formed.
 *
 * The processing thread calls the lookup, so it must never block for
 * long, and a record whose schema cannot be had must not be lost: a
 * failed request is retried with a doubling wait, a bounded number of
 * times, and then the lookup fails -- the codec reports unknown_schema and
 * the engine dead-letters the record with the registry's answer as the
 * detail. The failure is remembered for retries.wait.max.ms so a burst of
 * records with an id the registry cannot give costs one round of retries,
 * not one per record; and a registry that failed every retry is not asked
 * for any new id in that time either, so a burst of distinct ids while it
 * is down cannot stall processing one round of retries per id. Ids that were
 * fetched are kept for the process's life (a registry id never changes its
 * schema), so a registry that goes down stops nothing that has been seen.
 *
 * Never: send credentials anywhere but schema.registry.url, log them, or
 * follow redirects (a redirect could carry them elsewhere).
 */
#include "schema_registry.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "log.h"

#define ENC_SREG_BODY_MAX   (4 << 20) /* a response body */
#define ENC_SREG_SCHEMA_MAX (1 << 20) /* one schema text */
#define ENC_SREG_IDS_MAX    4096      /* ids remembered */

typedef struct enc_sreg_entry_s {
        int32_t id;
        char *json; /* owned; NULL while failing */
        size_t len;
        int64_t retry_at; /* monotonic ms: not asked again before */
        char err[384];    /* the last failure */
} enc_sreg_entry_t;

struct enc_schema_registry_s {
        char *dir; /* owned; NULL: none */
        char *url; /* owned, no trailing '/'; NULL: none */
        CURL *curl;
        struct curl_slist *hdrs;
        long timeout_ms;
        int max_retries;
        int64_t wait_ms, wait_max_ms;
        enc_sreg_entry_t *ent;
        int nent, capent;
        enc_buf_t body;
        bool body_over;
        bool transient;     /* the last call failed on retryable errors */
        int64_t down_until; /* monotonic ms: registry not asked before */
        char down_err[384]; /* why */
        char curl_err[CURL_ERROR_SIZE];
};

static int64_t enc_sreg_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void enc_sreg_sleep_ms(int64_t ms) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
}

/* ---- construction ------------------------------------------------------ */

/* Without a directory or a registry the only writer schema is encore's
 * own, read by the fast path whatever serde.play_event.field.* say: field
 * names given then must be encore's own, or they would be silently
 * ignored. */
static enc_err_t enc_sreg_check_own(const enc_conf_t *conf, char *errstr,
                                    size_t errstr_size) {
        char why[512];
        const char *own = enc_codec_play_event_schema();
        enc_codec_t *c = enc_codec_new_from_conf(conf, why, sizeof(why));
        enc_err_t err = c ? enc_codec_add_writer_schema(
                                    c,
                                    (int32_t)enc_conf_get_int(
                                            conf, "serde.play_event.schema.id"),
                                    own, strlen(own), why, sizeof(why))
                          : ENC_ERR_CONFIG;
        enc_codec_destroy(c);
        if (err)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "encore's own schema (no serde.schemas.dir "
                                  "or schema.registry.url): %s",
                                  why);
        return ENC_OK;
}

enc_err_t enc_schema_registry_new(const enc_conf_t *conf,
                                  enc_schema_registry_t **out, char *errstr,
                                  size_t errstr_size) {
        const char *dir = enc_conf_get(conf, "serde.schemas.dir");
        const char *url = enc_conf_get(conf, "schema.registry.url");
        *out = NULL;
        if (!*dir && !*url)
                return enc_sreg_check_own(conf, errstr, errstr_size);
        enc_err_t err = ENC_ERR_NOMEM;
        enc_schema_registry_t *r = calloc(1, sizeof(*r));
        if (!r)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        enc_buf_init(&r->body, ENC_SREG_BODY_MAX);
        r->timeout_ms = (long)enc_conf_get_int(
                conf, "schema.registry.request.timeout.ms");
        r->max_retries =
                (int)enc_conf_get_int(conf, "schema.registry.max.retries");
        r->wait_ms = enc_conf_get_int(conf, "schema.registry.retries.wait.ms");
        r->wait_max_ms =
                enc_conf_get_int(conf, "schema.registry.retries.wait.max.ms");
        if (*dir && !(r->dir = strdup(dir)))
                goto nomem;
        if (*url) {
                if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
                        err = enc_seterr(
                                errstr, errstr_size, ENC_ERR_CONFIG,
                                "schema.registry.url: \"%s\" is not an "
                                "http:// or https:// URL",
                                url);
                        goto fail;
                }
                if (!(r->url = strdup(url)))
                        goto nomem;
                size_t n = strlen(r->url);
                while (n > 0 && r->url[n - 1] == '/')
                        r->url[--n] = '\0';
                if (curl_global_init(CURL_GLOBAL_DEFAULT) ||
                    !(r->curl = curl_easy_init()))
                        goto nomem;
                r->hdrs = curl_slist_append(
                        NULL, "Accept: application/vnd.schemaregistry.v1+json");
                r->hdrs =
                        r->hdrs ? curl_slist_append(
                                          r->hdrs, "Content-Type: "
                                                   "application/"
                                                   "vnd.schemaregistry.v1+json")
                                : NULL;
                if (!r->hdrs)
                        goto nomem;
                const char *auth = enc_conf_get(
                        conf, "schema.registry.basic.auth.user.info");
                const char *ca =
                        enc_conf_get(conf, "schema.registry.ssl.ca.location");
                const char *cert = enc_conf_get(
                        conf, "schema.registry.ssl.certificate.location");
                const char *key =
                        enc_conf_get(conf, "schema.registry.ssl.key.location");
                CURL *c = r->curl;
                if (curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs) ||
                    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms) ||
                    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                                     r->timeout_ms) ||
                    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) ||
                    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) ||
                    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_err) ||
                    (*auth &&
                     (curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC) ||
                      curl_easy_setopt(c, CURLOPT_USERPWD, auth))) ||
                    (*ca && curl_easy_setopt(c, CURLOPT_CAINFO, ca)) ||
                    (*cert && curl_easy_setopt(c, CURLOPT_SSLCERT, cert)) ||
                    (*key && curl_easy_setopt(c, CURLOPT_SSLKEY, key))) {
                        err = enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                         "schema.registry: libcurl refused an "
                                         "option");
                        goto fail;
                }
        }
        *out = r;
        return ENC_OK;
nomem:
        err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
fail:
        enc_schema_registry_destroy(r);
        return err;
}

/** NULL is a no-op. */
void enc_schema_registry_destroy(enc_schema_registry_t *r) {
        if (!r)
                return;
        for (int i = 0; i < r->nent; i++)
                free(r->ent[i].json);
        free(r->ent);
        if (r->curl)
                curl_easy_cleanup(r->curl);
        curl_slist_free_all(r->hdrs);
        enc_buf_free(&r->body);
        free(r->dir);
        free(r->url);
        free(r);
}

bool enc_schema_registry_has_url(const enc_schema_registry_t *r) {
        return r && r->url;
}

/* ---- the cache ---------------------------------------------------------- */

static enc_sreg_entry_t *enc_sreg_find(enc_schema_registry_t *r, int32_t id) {
        for (int i = 0; i < r->nent; i++)
                if (r->ent[i].id == id)
                        return &r->ent[i];
        return NULL;
}

static enc_sreg_entry_t *enc_sreg_entry(enc_schema_registry_t *r, int32_t id) {
        enc_sreg_entry_t *e = enc_sreg_find(r, id);
        if (e)
                return e;
        if (r->nent >= ENC_SREG_IDS_MAX)
                return NULL;
        if (r->nent == r->capent) {
                int ncap = r->capent ? 2 * r->capent : 8;
                enc_sreg_entry_t *n =
                        realloc(r->ent, (size_t)ncap * sizeof(*n));
                if (!n)
                        return NULL;
                r->ent = n;
                r->capent = ncap;
        }
        e = &r->ent[r->nent++];
        memset(e, 0, sizeof(*e));
        e->id = id;
        return e;
}

/* Keeps @p json (@p len bytes, copied) as id @p id's schema. */
static enc_err_t enc_sreg_keep(enc_schema_registry_t *r, int32_t id,
                               const char *json, size_t len) {
        enc_sreg_entry_t *e = enc_sreg_entry(r, id);
        if (!e)
                return ENC_ERR_NOMEM;
        char *dup = malloc(len + 1);
        if (!dup)
                return ENC_ERR_NOMEM;
        memcpy(dup, json, len);
        dup[len] = '\0';
        free(e->json);
        e->json = dup;
        e->len = len;
        return ENC_OK;
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t enc_sreg_write(char *p, size_t size, size_t n, void *opaque) {
        enc_schema_registry_t *r = opaque;
        if (enc_buf_append(&r->body, p, size * n)) {
                r->body_over = true;
                return 0; /* aborts the transfer */
        }
        return size * n;
}

/* One request. ENC_OK with *status, the body in r->body (NUL-terminated);
 * ENC_ERR_IO when there was no HTTP answer. */
static enc_err_t enc_sreg_http(enc_schema_registry_t *r, const char *path,
                               const char *post, long *status, char *errstr,
                               size_t errstr_size) {
        char url[2048];
        if ((size_t)snprintf(url, sizeof(url), "%s%s", r->url, path) >=
            sizeof(url))
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "registry URL too long");
        enc_buf_reset(&r->body);
        r->body_over = false;
        r->curl_err[0] = '\0';
        CURL *c = r->curl;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, enc_sreg_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
        if (post) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
        } else {
                curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        }
        CURLcode cc = curl_easy_perform(c);
        if (r->body_over)
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "registry %s: answer over %d bytes", path,
                                  ENC_SREG_BODY_MAX);
        if (cc != CURLE_OK)
                return enc_seterr(errstr, errstr_size, ENC_ERR_IO,
                                  "registry %s: %s", path,
                                  r->curl_err[0] ? r->curl_err
                                                 : curl_easy_strerror(cc));
        if (enc_buf_append(&r->body, "", 1))
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "registry %s: answer too large", path);
        r->body.len--;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        return ENC_OK;
}

static bool enc_sreg_transient(long status) {
        return status >= 500 || status == 408 || status == 429;
}

/* Formats a registry error answer: {"error_code": N, "message": "..."}. */
static enc_err_t enc_sreg_answer_err(enc_schema_registry_t *r, const char *path,
                                     long status, char *errstr,
                                     size_t errstr_size) {
        json_error_t je;
        json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
        json_t *code = j ? json_object_get(j, "error_code") : NULL;
        json_t *msg = j ? json_object_get(j, "message") : NULL;
        enc_err_t err = enc_seterr(
                errstr, errstr_size,
                status == 404 ? ENC_ERR_NOT_FOUND : ENC_ERR_IO,
                "registry %s: HTTP %ld%s%" JSON_INTEGER_FORMAT "%s%s", path,
                status, json_is_integer(code) ? ", error_code " : "",
                json_is_integer(code) ? json_integer_value(code) : 0,
                json_is_string(msg) ? ": " : "",
                json_is_string(msg) ? json_string_value(msg) : "");
        json_decref(j);
        return err;
}

/* A request with retries; ENC_OK only for a 2xx answer. */
static enc_err_t enc_sreg_call(enc_schema_registry_t *r, const char *path,
                               const char *post, char *errstr,
                               size_t errstr_size) {
        int64_t wait = r->wait_ms;
        enc_err_t err = ENC_ERR_IO;
        r->transient = false;
        for (int attempt = 0; attempt <= r->max_retries; attempt++) {
                long status = 0;
                if (attempt) {
                        enc_sreg_sleep_ms(wait);
                        wait = wait * 2 < r->wait_max_ms ? wait * 2
                                                         : r->wait_max_ms;
                }
                err = enc_sreg_http(r, path, post, &status, errstr,
                                    errstr_size);
                if (err == ENC_ERR_TOO_LARGE)
                        return err;
                if (!err && status >= 200 && status < 300)
                        return ENC_OK;
                if (!err) {
                        err = enc_sreg_answer_err(r, path, status, errstr,
                                                  errstr_size);
                        if (!enc_sreg_transient(status))
                                return err;
                }
                enc_log_warn("schema_registry_retry",
                             "attempt=%d of=%d error=\"%s\"", attempt + 1,
                             r->max_retries + 1, errstr);
        }
        r->transient = true;
        return err;
}

/* ---- lookups ------------------------------------------------------------ */

/* Reads @p dir/<id>.avsc: ENC_OK and kept, ENC_ERR_NOT_FOUND if there is
 * no such file, another error if it cannot be read. */
static enc_err_t enc_sreg_from_dir(enc_schema_registry_t *r, int32_t id,
                                   char *errstr, size_t errstr_size) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%" PRId32 ".avsc", r->dir, id);
        FILE *fp = fopen(path, "rb");
        if (!fp)
                return enc_seterr(errstr, errstr_size,
                                  errno == ENOENT ? ENC_ERR_NOT_FOUND
                                                  : ENC_ERR_IO,
                                  "%s: %s", path, strerror(errno));
        char *buf = malloc(ENC_SREG_SCHEMA_MAX + 1);
        size_t n = buf ? fread(buf, 1, ENC_SREG_SCHEMA_MAX + 1, fp) : 0;
        bool bad = ferror(fp);
        fclose(fp);
        enc_err_t err;
        if (!buf)
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
        else if (bad)
                err = enc_seterr(errstr, errstr_size, ENC_ERR_IO,
                                 "%s: read error", path);
        else if (n > ENC_SREG_SCHEMA_MAX)
                err = enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                 "%s: over %d bytes", path,
                                 ENC_SREG_SCHEMA_MAX);
        else
                err = enc_sreg_keep(r, id, buf, n);
        free(buf);
        return err;
}

/* Takes the "schema" of a registry answer, refusing non-Avro ones. */
static enc_err_t enc_sreg_take_schema(enc_schema_registry_t *r, int32_t id,
                                      const char *what, char *errstr,
                                      size_t errstr_size) {
        json_error_t je;
        json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
        json_t *s = j ? json_object_get(j, "schema") : NULL;
        json_t *type = j ? json_object_get(j, "schemaType") : NULL;
        enc_err_t err;
        if (!json_is_string(s))
                err = enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                 "registry %s: answer has no \"schema\" "
                                 "string",
                                 what);
        else if (type && (!json_is_string(type) ||
                          strcmp(json_string_value(type), "AVRO")))
                err = enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                 "registry %s: schemaType %s, encore reads "
                                 "AVRO",
                                 what,
                                 json_is_string(type) ? json_string_value(type)
                                                      : "?");
        else if (json_string_length(s) > ENC_SREG_SCHEMA_MAX)
                err = enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                 "registry %s: schema over %d bytes", what,
                                 ENC_SREG_SCHEMA_MAX);
        else
                err = enc_sreg_keep(r, id, json_string_value(s),
                                    json_string_length(s));
        json_decref(j);
        return err;
}

/** Thread: the processing thread (the codec's owner). */
enc_err_t enc_schema_registry_lookup(void *opaque, int32_t id,
                                     const char **json, size_t *json_len,
                                     char *errstr, size_t errstr_size) {
        enc_schema_registry_t *r = opaque;
        enc_sreg_entry_t *e = enc_sreg_find(r, id);
        int64_t now = enc_sreg_now_ms();
        enc_err_t err = ENC_ERR_NOT_FOUND;
        char why[384] = "";
        if (e && e->json)
                goto found;
        if (e && now < e->retry_at)
                return enc_seterr(errstr, errstr_size, ENC_ERR_UNKNOWN_SCHEMA,
                                  "%s (not asked again for %" PRId64 " ms)",
                                  e->err, e->retry_at - now);
        if (r->dir)
                err = enc_sreg_from_dir(r, id, why, sizeof(why));
        const char *from = "dir";
        if (err == ENC_ERR_NOT_FOUND && r->url && now < r->down_until) {
                /* The registry just failed every retry: a new id waits
                 * like a known one, or a flood of new ids would stall
                 * processing a full round of retries each. */
                return enc_seterr(errstr, errstr_size, ENC_ERR_UNKNOWN_SCHEMA,
                                  "%s (registry not asked again for %" PRId64
                                  " ms)",
                                  r->down_err, r->down_until - now);
        }
        if (err == ENC_ERR_NOT_FOUND && r->url) {
                char path[64];
                from = "registry";
                snprintf(path, sizeof(path), "/schemas/ids/%" PRId32, id);
                err = enc_sreg_call(r, path, NULL, why, sizeof(why));
                if (err && r->transient) {
                        r->down_until = enc_sreg_now_ms() + r->wait_max_ms;
                        snprintf(r->down_err, sizeof(r->down_err), "%s", why);
                }
                if (!err)
                        err = enc_sreg_take_schema(r, id, path, why,
                                                   sizeof(why));
        }
        if (!err) {
                enc_log_info("schema_fetched", "id=%" PRId32 " from=%s", id,
                             from);
                e = enc_sreg_find(r, id);
                goto found;
        }
        if (!(e = enc_sreg_entry(r, id)))
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "%s",
                                  why);
        snprintf(e->err, sizeof(e->err), "%s", why);
        e->retry_at = now + r->wait_max_ms;
        enc_log_warn("schema_unavailable", "id=%" PRId32 " error=\"%s\"", id,
                     why);
        return enc_seterr(errstr, errstr_size, ENC_ERR_UNKNOWN_SCHEMA, "%s",
                          why);
found:
        *json = e->json;
        *json_len = e->len;
        return ENC_OK;
}

/* ---- registration and the start-up check -------------------------------- */

/** Thread: the one building the pipeline. */
enc_err_t enc_schema_registry_register(enc_schema_registry_t *r,
                                       const char *subject, const char *schema,
                                       int32_t *id, char *errstr,
                                       size_t errstr_size) {
        if (!r || !r->url)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "no schema.registry.url");
        char *esc = curl_easy_escape(r->curl, subject, 0);
        json_t *body = json_pack("{s:s}", "schema", schema);
        char *post = body ? json_dumps(body, JSON_COMPACT) : NULL;
        char path[1024];
        enc_err_t err;
        if (!esc || !post) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
                goto done;
        }
        snprintf(path, sizeof(path), "/subjects/%s/versions", esc);
        if ((err = enc_sreg_call(r, path, post, errstr, errstr_size)))
                goto done;
        json_error_t je;
        json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
        json_t *jid = j ? json_object_get(j, "id") : NULL;
        if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
            json_integer_value(jid) > INT32_MAX)
                err = enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                 "registry %s: answer has no id", path);
        else
                *id = (int32_t)json_integer_value(jid);
        json_decref(j);
done:
        curl_free(esc);
        free(post);
        json_decref(body);
        return err;
}

/* Does id @p id's kept schema resolve with the configured names? */
static enc_err_t enc_sreg_check_one(enc_schema_registry_t *r,
                                    const enc_conf_t *conf, int32_t id,
                                    const char *where, char *errstr,
                                    size_t errstr_size) {
        char why[512];
        enc_sreg_entry_t *e = enc_sreg_find(r, id);
        enc_codec_t *c = enc_codec_new_from_conf(conf, why, sizeof(why));
        enc_err_t err = c ? enc_codec_add_writer_schema(c, id, e->json, e->len,
                                                        why, sizeof(why))
                          : ENC_ERR_CONFIG;
        enc_codec_destroy(c);
        if (err)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG, "%s: %s",
                                  where, why);
        return ENC_OK;
}

enc_err_t enc_schema_registry_check(enc_schema_registry_t *r,
                                    const enc_conf_t *conf, char *errstr,
                                    size_t errstr_size) {
        enc_err_t err;
        if (r->dir) {
                DIR *d = opendir(r->dir);
                if (!d)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "serde.schemas.dir %s: %s", r->dir,
                                          strerror(errno));
                struct dirent *de;
                err = ENC_OK;
                while (!err && (de = readdir(d))) {
                        char *end;
                        long id = strtol(de->d_name, &end, 10);
                        if (end == de->d_name || strcmp(end, ".avsc") ||
                            id < 0 || id > INT32_MAX)
                                continue;
                        char where[600];
                        snprintf(where, sizeof(where), "%s/%s", r->dir,
                                 de->d_name);
                        if (!(err = enc_sreg_from_dir(r, (int32_t)id, errstr,
                                                      errstr_size)))
                                err = enc_sreg_check_one(r, conf, (int32_t)id,
                                                         where, errstr,
                                                         errstr_size);
                }
                closedir(d);
                if (err)
                        return err;
        }
        if (!r->url)
                return ENC_OK;
        char subject[600], path[1024], why[512];
        snprintf(subject, sizeof(subject), "%s-value",
                 enc_conf_get(conf, "input.topic"));
        char *esc = curl_easy_escape(r->curl, subject, 0);
        if (!esc)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        snprintf(path, sizeof(path), "/subjects/%s/versions/latest", esc);
        curl_free(esc);
        long status = 0;
        err = enc_sreg_http(r, path, NULL, &status, why, sizeof(why));
        if (err || status != 200) {
                if (!err)
                        (void)enc_sreg_answer_err(r, path, status, why,
                                                  sizeof(why));
                enc_log_info("schema_check_deferred",
                             "subject=%s reason=\"%s\" (ids are checked at "
                             "first use)",
                             subject, why);
                return ENC_OK;
        }
        json_error_t je;
        json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
        json_t *jid = j ? json_object_get(j, "id") : NULL;
        int64_t id = json_is_integer(jid) ? json_integer_value(jid) : -1;
        json_decref(j);
        if (id < 0 || id > INT32_MAX)
                return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                  "registry %s: answer has no id", path);
        if ((err = enc_sreg_take_schema(r, (int32_t)id, path, errstr,
                                        errstr_size)))
                return err;
        char where[700];
        snprintf(where, sizeof(where), "registry subject %s, latest version",
                 subject);
        if ((err = enc_sreg_check_one(r, conf, (int32_t)id, where, errstr,
                                      errstr_size)))
                return err;
        enc_log_info("schema_checked", "subject=%s id=%" PRId64, subject, id);
        return ENC_OK;
}

enc_err_t enc_schema_registry_output_id(enc_schema_registry_t *r,
                                        const enc_conf_t *conf, int32_t *id,
                                        char *errstr, size_t errstr_size) {
        *id = -1;
        if (!r || !r->url ||
            !enc_conf_get_bool(conf, "schema.registry.auto.register.schemas"))
                return ENC_OK;
        char subject[600];
        snprintf(subject, sizeof(subject), "%s-value",
                 enc_conf_get(conf, "output.topic"));
        enc_err_t err = enc_schema_registry_register(
                r, subject, enc_codec_reward_update_schema(), id, errstr,
                errstr_size);
        if (!err)
                enc_log_info("schema_registered", "subject=%s id=%" PRId32,
                             subject, *id);
        return err;
}
