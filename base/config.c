/*
 * config.c -- the declarative configuration map.
 *
 * DESIGN
 * The core keys are one static table below: name, type, default, one-line
 * description. Everything else is derived from it: validation, defaults,
 * `encore --help` and the README table (`encore config --markdown`). A key
 * that is not in the table, is not a `kafka.` pass-through and is not under
 * `signal.` or `serde.play_event.field.` (checked by the codec) is an error
 * that names the key; so is a value of the wrong form.
 *
 * Values are stored as text in the order they were set (a later set of the
 * same key replaces the earlier value in place) and parsed by the typed
 * getters, which can trust them because every set went through
 * enc_cfg_check. `signal.*` keys are stored unchecked here and validated by
 * the signal registry (enc_signals_check_conf), which uses the same
 * enc_cfg_check, so configuration never depends on the plug-ins.
 *
 * Never: log or dump a secret (kafka.sasl.password, kafka.ssl.key.password,
 * ...) in clear.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENC_I64MAX INT64_MAX

static const enc_cfg_key_t enc_core_keys[] = {
    {"input.topic", ENC_CFG_STR, "plays", "Topic of PlayEvent records"},
    {"output.topic", ENC_CFG_STR, "rewards", "Topic RewardUpdate records go to"},
    {"dlq.topic", ENC_CFG_STR, "encore-dlq",
     "Dead-letter topic: undecodable, invalid and late records, with reason"},
    {"group.id", ENC_CFG_STR, "encore", "Kafka consumer group id"},
    {"input.partitions", ENC_CFG_PARTITIONS, "",
     "Static assignment: read these partitions of input.topic (all, or a "
     "list such as 0,2,4-7) with no group rebalance, so a restart resumes at "
     "once; each partition must go to exactly one process. Empty: join "
     "group.id and take what the group assigns"},
    {"state.dir", ENC_CFG_STR, "./encore-state",
     "Directory of the RocksDB state store"},
    {"state.sync", ENC_CFG_BOOL, "false",
     "fsync the RocksDB WAL at each commit (survives machine crashes)"},
    {"commit.interval.ms", ENC_CFG_INT, "1000",
     "Commit state, outputs and offsets at least this often (ms)", 1,
     3600000},
    {"commit.records", ENC_CFG_INT, "100000",
     "...or after this many records since the last commit", 1, ENC_I64MAX},
    {"cache.max.bytes", ENC_CFG_INT, "67108864",
     "Memory budget of all state: 1/2 for the write-back cache of user "
     "state (over it, clean entries are evicted and dirty ones force a "
     "commit) and, with dedup.window.ms > 0, the duplicate check's filter "
     "of recent event ids (charged what it holds, up to 1/16 of the "
     "total), 1/4 for the RocksDB block cache, 1/4 for RocksDB "
     "memtables "
     "(at least 4 MiB each); a commit is also forced when it would write "
     "more than 1/8 of it, and the input consumer's prefetch queue is "
     "bounded at 1/16 of it (1 to 16 MiB; kafka.consumer.queued.* keys "
     "override)",
     1 << 20, ENC_I64MAX},
    {"window.grace.ms", ENC_CFG_INT, "60000",
     "Watermark = stream time - grace; events behind it are late", 0,
     (int64_t)30 * 86400000},
    {"reorder.max.events", ENC_CFG_INT, "1000000",
     "Cap on events held for event-time ordering per partition; past it the "
     "watermark advances to the oldest held event",
     1, 1000000000},
    {"event.max.future.ms", ENC_CFG_INT, "604800000",
     "Events this far ahead of stream time (ms) are dead-lettered (reason "
     "future)",
     1000, ENC_I64MAX},
    {"dedup.window.ms", ENC_CFG_INT, "3600000",
     "A user's event id seen again within this much event time is "
     "dead-lettered (reason duplicate); 0 turns it off",
     0, (int64_t)30 * 86400000},
    {"signals", ENC_CFG_LIST,
     "active_days:1,session:1,discovery_habit:1,progressive_reward:1,"
     "composite:1",
     "Signal instances to run, name:version, in order"},
    {"serde.framing", ENC_CFG_ENUM, "confluent",
     "Wire framing of records: confluent (magic 0 + schema id) or raw Avro",
     0, 0, 0, 0, "confluent|raw"},
    {"serde.play_event.schema.id", ENC_CFG_INT, "1",
     "Schema id expected on input (confluent framing)", 0, INT32_MAX},
    {"serde.reward_update.schema.id", ENC_CFG_INT, "2",
     "Schema id written on output (confluent framing)", 0, INT32_MAX},
    {"serde.max.record.bytes", ENC_CFG_INT, "1048576",
     "Larger input records are dead-lettered (reason too_large)", 64,
     (int64_t)64 << 20},
    {"serde.schemas.dir", ENC_CFG_STR, "",
     "Directory of PlayEvent writer schemas named <id>.avsc, read before the "
     "registry (deployments without one); empty: none"},
    {"schema.registry.url", ENC_CFG_STR, "",
     "Confluent Schema Registry (http:// or https://): input schema ids are "
     "looked up there, outputs framed with RewardUpdate's registered id; "
     "empty: none"},
    {"schema.registry.basic.auth.user.info", ENC_CFG_STR, "",
     "user:password for the registry's HTTP basic authentication", 0, 0, 0,
     0, NULL, true},
    {"schema.registry.ssl.ca.location", ENC_CFG_STR, "",
     "CA certificates (PEM file) that verify the registry; empty: the "
     "system's"},
    {"schema.registry.ssl.certificate.location", ENC_CFG_STR, "",
     "Client certificate (PEM file) for TLS client authentication"},
    {"schema.registry.ssl.key.location", ENC_CFG_STR, "",
     "Client private key (PEM file) for TLS client authentication"},
    {"schema.registry.request.timeout.ms", ENC_CFG_INT, "5000",
     "Timeout of one registry request (ms)", 100, 300000},
    {"schema.registry.max.retries", ENC_CFG_INT, "3",
     "Retries of a failed registry request (connection, timeout, 5xx) before "
     "its records are dead-lettered (reason unknown_schema)",
     0, 100},
    {"schema.registry.retries.wait.ms", ENC_CFG_INT, "100",
     "Wait before the first retry (ms); doubles per retry", 1, 600000},
    {"schema.registry.retries.wait.max.ms", ENC_CFG_INT, "2000",
     "Cap of the wait between retries, and how long an id that failed is "
     "not asked for again (ms)",
     1, 600000},
    {"schema.registry.auto.register.schemas", ENC_CFG_BOOL, "true",
     "Register RewardUpdate under <output.topic>-value at start-up and frame "
     "outputs with its id; false: serde.reward_update.schema.id"},
    {"changelog.enable", ENC_CFG_BOOL, "true",
     "Mirror state to a compacted changelog topic, so a partition moved to "
     "another process (or a lost disk) is restored from it"},
    {"changelog.topic", ENC_CFG_STR, "",
     "Changelog topic; empty means <group.id>-changelog. Created (compacted, "
     "one partition per input partition) if missing"},
    {"changelog.replication.factor", ENC_CFG_INT, "-1",
     "Replication factor when encore creates the changelog (-1: broker "
     "default)",
     -1, 32},
    {"processing.guarantee", ENC_CFG_ENUM, "at_least_once",
     "at_least_once: idempotent producer, identical repeats after a crash; "
     "exactly_once: outputs, changelog and input offsets commit in one Kafka "
     "transaction (needs Kafka 2.5+; transactional.id from "
     "kafka.producer.transactional.id, default <group.id>-<hostname>)",
     0, 0, 0, 0, "at_least_once|exactly_once"},
    {"shutdown.timeout.ms", ENC_CFG_INT, "30000",
     "How long a SIGTERM drain may take before giving up (ms)", 0, 3600000},
    {"log.level", ENC_CFG_ENUM, "info", "Log level", 0, 0, 0, 0,
     "debug|info|warn|error"},
    {"metrics.address", ENC_CFG_STR, "127.0.0.1:9464",
     "host:port of /metrics, /healthz and /readyz (empty disables)"},
    {"metrics.cohorts.max", ENC_CFG_INT, "20",
     "Distinct experiment cohorts the reward metrics label; later new "
     "cohorts are counted as cohort=\"other\"", 0, 10000},
    {NULL},
};

/* Substrings that mark a kafka.* key as secret. */
static const char *const enc_secret_marks[] = {"password", "secret",
                                               "sasl.oauthbearer.config",
                                               "ssl.key.pem", NULL};

typedef struct enc_kv_s {
        char *key;
        char *value;
} enc_kv_t;

struct enc_conf_s {
        enc_kv_t *kv;
        size_t cnt;
        size_t cap;
};

const enc_cfg_key_t *enc_conf_core_keys(void) {
        return enc_core_keys;
}

static const enc_cfg_key_t *enc_core_find(const char *key) {
        for (const enc_cfg_key_t *k = enc_core_keys; k->name; k++)
                if (!strcmp(k->name, key))
                        return k;
        return NULL;
}

enc_conf_t *enc_conf_new(void) {
        return calloc(1, sizeof(enc_conf_t));
}

void enc_conf_destroy(enc_conf_t *conf) {
        if (!conf)
                return;
        for (size_t i = 0; i < conf->cnt; i++) {
                free(conf->kv[i].key);
                free(conf->kv[i].value);
        }
        free(conf->kv);
        free(conf);
}

/* ---- value checking ------------------------------------------------- */

static bool enc_parse_i64(const char *s, int64_t *out) {
        char *end;
        errno = 0;
        while (*s == ' ')
                s++;
        long long v = strtoll(s, &end, 10);
        while (*end == ' ')
                end++;
        if (errno || end == s || *end)
                return false;
        *out = v;
        return true;
}

int64_t enc_cfg_parse_int(const char *value) {
        int64_t v = 0;
        (void)enc_parse_i64(value, &v);
        return v;
}

static int enc_parse_bool(const char *s) {
        static const char *const t[] = {"true", "yes", "on", "1", NULL};
        static const char *const f[] = {"false", "no", "off", "0", NULL};
        for (int i = 0; t[i]; i++)
                if (!strcasecmp(s, t[i]))
                        return 1;
        for (int i = 0; f[i]; i++)
                if (!strcasecmp(s, f[i]))
                        return 0;
        return -1;
}

bool enc_cfg_parse_bool(const char *value) {
        return enc_parse_bool(value) == 1;
}

double enc_cfg_parse_double(const char *value) {
        return strtod(value, NULL);
}

int enc_cfg_parse_int_list(const char *value, int64_t *out, int max) {
        int n = 0;
        const char *p = value;
        while (*p) {
                char tok[64];
                size_t len = strcspn(p, ",");
                if (len >= sizeof(tok))
                        return -1;
                memcpy(tok, p, len);
                tok[len] = '\0';
                int64_t v;
                if (!enc_parse_i64(tok, &v))
                        return -1;
                if (n < max)
                        out[n] = v;
                n++;
                p += len;
                if (*p == ',')
                        p++;
        }
        return n;
}

int enc_cfg_parse_partitions(const char *v, int64_t *lo, int64_t *hi,
                             int max) {
        if (!strcmp(v, "all"))
                return 0;
        int n = 0;
        const char *p = v;
        do {
                char *end;
                errno = 0;
                long long a = strtoll(p, &end, 10), b = a;
                if (end == p || a < 0 || a > INT32_MAX || *p == '+' ||
                    *p == ' ')
                        return -1;
                if (*end == '-') {
                        const char *q = end + 1;
                        b = strtoll(q, &end, 10);
                        if (end == q || b < a || b > INT32_MAX ||
                            *q == '+' || *q == ' ')
                                return -1;
                }
                if (errno || (*end && *end != ','))
                        return -1;
                if (n < max) {
                        lo[n] = a;
                        hi[n] = b;
                }
                n++;
                p = end;
        } while (*p++ == ',');
        return n;
}

static bool enc_choice_ok(const char *choices, const char *v) {
        size_t vl = strlen(v);
        const char *p = choices;
        while (*p) {
                size_t len = strcspn(p, "|");
                if (len == vl && !strncmp(p, v, len))
                        return true;
                p += len;
                if (*p == '|')
                        p++;
        }
        return false;
}

enc_err_t enc_cfg_check(const enc_cfg_key_t *k, const char *fullkey,
                        const char *value, char *errstr, size_t errstr_size) {
        int64_t iv;
        switch (k->type) {
        case ENC_CFG_STR:
        case ENC_CFG_LIST:
                return ENC_OK;
        case ENC_CFG_INT:
                if (!enc_parse_i64(value, &iv))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: \"%s\" is not an integer "
                                          "(expected an integer in [%lld, "
                                          "%lld])",
                                          fullkey, value, (long long)k->min,
                                          (long long)k->max);
                if (iv < k->min || iv > k->max)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: %lld is out of range (expected "
                                          "an integer in [%lld, %lld])",
                                          fullkey, (long long)iv,
                                          (long long)k->min,
                                          (long long)k->max);
                return ENC_OK;
        case ENC_CFG_BOOL:
                if (enc_parse_bool(value) < 0)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: \"%s\" is not a boolean "
                                          "(expected true or false)",
                                          fullkey, value);
                return ENC_OK;
        case ENC_CFG_DOUBLE: {
                char *end;
                errno = 0;
                double d = strtod(value, &end);
                if (errno || end == value || *end || !isfinite(d) ||
                    d < k->dmin || d > k->dmax)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: \"%s\" is not a number in "
                                          "[%g, %g]",
                                          fullkey, value, k->dmin, k->dmax);
                return ENC_OK;
        }
        case ENC_CFG_ENUM:
                if (!enc_choice_ok(k->choices, value))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: \"%s\" is not one of %s",
                                          fullkey, value, k->choices);
                return ENC_OK;
        case ENC_CFG_PARTITIONS:
                if (*value && enc_cfg_parse_partitions(value, NULL, NULL, 0) < 0)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: \"%s\" is not a set of "
                                          "partitions (expected all, or "
                                          "numbers and ranges such as "
                                          "0,2,4-7)",
                                          fullkey, value);
                return ENC_OK;
        case ENC_CFG_INT_LIST: {
                int64_t vals[64];
                int n = enc_cfg_parse_int_list(value, vals, 64);
                if (n <= 0 || n > 64)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: \"%s\" is not a list of 1 to "
                                          "64 comma-separated integers",
                                          fullkey, value);
                for (int i = 0; i < n; i++)
                        if (vals[i] < k->min || vals[i] > k->max)
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "%s: %lld is out of range (expected "
                                        "integers in [%lld, %lld])",
                                        fullkey, (long long)vals[i],
                                        (long long)k->min, (long long)k->max);
                return ENC_OK;
        }
        }
        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                          "%s: unknown type", fullkey);
}

/* ---- setting -------------------------------------------------------- */

static enc_kv_t *enc_conf_find(const enc_conf_t *conf, const char *key) {
        for (size_t i = 0; i < conf->cnt; i++)
                if (!strcmp(conf->kv[i].key, key))
                        return &conf->kv[i];
        return NULL;
}

static enc_err_t enc_conf_store(enc_conf_t *conf, const char *key,
                                const char *value) {
        enc_kv_t *kv = enc_conf_find(conf, key);
        char *nv = strdup(value);
        if (!nv)
                return ENC_ERR_NOMEM;
        if (kv) {
                free(kv->value);
                kv->value = nv;
                return ENC_OK;
        }
        if (conf->cnt == conf->cap) {
                size_t ncap = conf->cap ? conf->cap * 2 : 32;
                enc_kv_t *n = realloc(conf->kv, ncap * sizeof(*n));
                if (!n) {
                        free(nv);
                        return ENC_ERR_NOMEM;
                }
                conf->kv = n;
                conf->cap = ncap;
        }
        conf->kv[conf->cnt].key = strdup(key);
        if (!conf->kv[conf->cnt].key) {
                free(nv);
                return ENC_ERR_NOMEM;
        }
        conf->kv[conf->cnt].value = nv;
        conf->cnt++;
        return ENC_OK;
}

enc_err_t enc_conf_set(enc_conf_t *conf, const char *key, const char *value,
                       char *errstr, size_t errstr_size) {
        if (!key || !*key)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "empty configuration key");
        if (!value)
                value = "";
        if (!strncmp(key, "kafka.", 6)) {
                if (!key[6])
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: missing librdkafka property "
                                          "name after \"kafka.\"",
                                          key);
        } else if (!strncmp(key, "signal.", 7)) {
                /* Checked by enc_signals_check_conf(). */
        } else if (!strncmp(key, "serde.play_event.field.", 23)) {
                /* The field names are the codec's: checked by
                 * enc_codec_new_from_conf() (schemas/codec.h). */
                if (!key[23] || !*value)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: expected "
                                          "serde.play_event.field.<encore "
                                          "field> = <writer field>",
                                          key);
        } else {
                const enc_cfg_key_t *k = enc_core_find(key);
                if (!k)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%s: unknown configuration key "
                                          "(see encore --help)",
                                          key);
                enc_err_t err =
                        enc_cfg_check(k, key, value, errstr, errstr_size);
                if (err)
                        return err;
        }
        if (enc_conf_store(conf, key, value))
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "%s: out of memory", key);
        return ENC_OK;
}

enc_err_t enc_conf_set_kv(enc_conf_t *conf, const char *kv, char *errstr,
                          size_t errstr_size) {
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "\"%s\": expected key=value", kv);
        char key[256];
        size_t klen = (size_t)(eq - kv);
        if (klen >= sizeof(key))
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "\"%.40s...\": key too long", kv);
        memcpy(key, kv, klen);
        key[klen] = '\0';
        return enc_conf_set(conf, key, eq + 1, errstr, errstr_size);
}

typedef struct enc_ini_ctx_s {
        enc_conf_t *conf;
        const char *path;
        char *errstr;
        size_t errstr_size;
        enc_err_t err;
        int lineno;
} enc_ini_ctx_t;

static int enc_ini_handler(void *user, const char *section, const char *name,
                           const char *value) {
        enc_ini_ctx_t *ctx = user;
        char key[512];
        if (section && *section)
                snprintf(key, sizeof(key), "%s.%s", section, name);
        else
                snprintf(key, sizeof(key), "%s", name);
        char sub[256];
        enc_err_t err = enc_conf_set(ctx->conf, key, value, sub, sizeof(sub));
        if (err) {
                ctx->err = err;
                enc_seterr(ctx->errstr, ctx->errstr_size, err, "%s: %s",
                           ctx->path, sub);
                return 0;
        }
        return 1;
}

enc_err_t enc_conf_load_file(enc_conf_t *conf, const char *path,
                             char *errstr, size_t errstr_size) {
        FILE *fp = fopen(path, "r");
        if (!fp)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s: cannot open configuration file: %s",
                                  path, strerror(errno));
        enc_ini_ctx_t ctx = {conf, path, errstr, errstr_size, ENC_OK, 0};
        int r = ini_parse_file(fp, enc_ini_handler, &ctx);
        fclose(fp);
        if (ctx.err)
                return ctx.err;
        if (r != 0)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s:%d: syntax error (expected "
                                  "[section] or key = value)",
                                  path, r);
        return ENC_OK;
}

/* ---- getting -------------------------------------------------------- */

const char *enc_conf_get_raw(const enc_conf_t *conf, const char *key) {
        enc_kv_t *kv = enc_conf_find(conf, key);
        return kv ? kv->value : NULL;
}

const char *enc_conf_get(const enc_conf_t *conf, const char *key) {
        const char *v = enc_conf_get_raw(conf, key);
        if (v)
                return v;
        const enc_cfg_key_t *k = enc_core_find(key);
        if (!k) {
                fprintf(stderr, "BUG: undeclared configuration key %s\n",
                        key);
                abort();
        }
        return k->def ? k->def : "";
}

int64_t enc_conf_get_int(const enc_conf_t *conf, const char *key) {
        return enc_cfg_parse_int(enc_conf_get(conf, key));
}

bool enc_conf_get_bool(const enc_conf_t *conf, const char *key) {
        return enc_cfg_parse_bool(enc_conf_get(conf, key));
}

double enc_conf_get_double(const enc_conf_t *conf, const char *key) {
        return enc_cfg_parse_double(enc_conf_get(conf, key));
}

int enc_conf_get_int_list(const enc_conf_t *conf, const char *key,
                          int64_t *out, int max) {
        return enc_cfg_parse_int_list(enc_conf_get(conf, key), out, max);
}

void enc_conf_foreach(const enc_conf_t *conf, const char *prefix,
                      void (*cb)(const char *key, const char *value,
                                 void *opaque),
                      void *opaque) {
        size_t pl = strlen(prefix);
        for (size_t i = 0; i < conf->cnt; i++)
                if (!strncmp(conf->kv[i].key, prefix, pl))
                        cb(conf->kv[i].key, conf->kv[i].value, opaque);
}

/* ---- printing ------------------------------------------------------- */

static bool enc_is_secret(const char *key) {
        const enc_cfg_key_t *k = enc_core_find(key);
        if (k && k->secret)
                return true;
        for (int i = 0; enc_secret_marks[i]; i++)
                if (strstr(key, enc_secret_marks[i]))
                        return true;
        return false;
}

void enc_conf_dump(const enc_conf_t *conf, void *fpv) {
        FILE *fp = fpv;
        for (const enc_cfg_key_t *k = enc_core_keys; k->name; k++) {
                const char *v = enc_conf_get(conf, k->name);
                fprintf(fp, "%s = %s\n", k->name,
                        k->secret && *v ? "[redacted]" : v);
        }
        for (size_t i = 0; i < conf->cnt; i++) {
                if (enc_core_find(conf->kv[i].key))
                        continue;
                fprintf(fp, "%s = %s\n", conf->kv[i].key,
                        enc_is_secret(conf->kv[i].key) ? "[redacted]"
                                                        : conf->kv[i].value);
        }
}

static const char *enc_type_name(const enc_cfg_key_t *k) {
        switch (k->type) {
        case ENC_CFG_STR:
                return "string";
        case ENC_CFG_INT:
                return "int";
        case ENC_CFG_BOOL:
                return "bool";
        case ENC_CFG_DOUBLE:
                return "number";
        case ENC_CFG_ENUM:
                return k->choices;
        case ENC_CFG_INT_LIST:
                return "int list";
        case ENC_CFG_LIST:
                return "list";
        case ENC_CFG_PARTITIONS:
                return "partitions";
        }
        return "?";
}

void enc_conf_print_keys(const enc_cfg_key_t *table, const char *prefix,
                         bool markdown, void *fpv) {
        FILE *fp = fpv;
        for (const enc_cfg_key_t *k = table; k->name; k++) {
                if (markdown)
                        fprintf(fp, "| `%s%s` | %s | `%s` | %s |\n", prefix,
                                k->name, enc_type_name(k),
                                k->def ? k->def : "", k->desc);
                else
                        fprintf(fp, "  %s%s=<%s> (default: %s)\n      %s\n",
                                prefix, k->name, enc_type_name(k),
                                k->def && *k->def ? k->def : "none",
                                k->desc);
        }
}
