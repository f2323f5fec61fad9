/*
 * encore_gen.c -- `encore-gen`: writes the generator's PlayEvents to a Kafka
 * topic (idempotent producer, key = user_id, Confluent-framed Avro value)
 * or to an Avro object container file.
 *
 * DESIGN
 * The flags are one declarative table (name, type, default, range, one-line
 * description): parsing, range checks, defaults and --help all come from it,
 * and a bad flag is an exit code 2 naming the flag. The events are a pure
 * function of the generator flags; the wall clock is read only to pace
 * (--rate), to report progress and for the final summary, never to shape
 * an event. A run succeeds only if every event reached its sink: for Kafka,
 * every delivery report is checked and an undelivered or failed message makes
 * the exit code non-zero; for a file, every Avro C call is checked and the
 * file is closed (flushed) before success is reported.
 */
#include "codec.h"
#include "gen.h"
#include "log.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE       2
#define KAFKA_CONF_MAX   64
#define FILE_BLOCK_BYTES (256 * 1024)
#define FLUSH_TIMEOUT_MS 60000

/* ---- the flag table ------------------------------------------------------ */

typedef enum opt_type_e {
        OPT_INT,    /* int64 in [min, max] */
        OPT_DOUBLE, /* finite double in [dmin, dmax] */
        OPT_STR,    /* non-empty string */
        OPT_TIME,   /* ms since epoch or ISO-8601 UTC */
        OPT_ENUM,   /* one of choices "a|b" */
        OPT_KV,     /* key=value, repeatable */
        OPT_FLAG,   /* no value */
} opt_type_t;

typedef struct opt_s {
        const char *name; /* without "--" */
        opt_type_t type;
        const char *def; /* as text; NULL = unset */
        const char *desc;
        int64_t min, max;
        double dmin, dmax;
        const char *choices;
} opt_t;

enum {
        O_COUNT,
        O_RATE,
        O_USERS,
        O_DAYS,
        O_SEED,
        O_START,
        O_DISORDER,
        O_DISORDER_SHARE,
        O_ARRIVAL,
        O_CHURN,
        O_REC_SHARE,
        O_ADOPT,
        O_LIFT,
        O_ARTISTS,
        O_COHORT,
        O_TOPIC,
        O_BOOTSTRAP,
        O_FILE,
        O_FRAMING,
        O_SCHEMA_ID,
        O_KAFKA,
        O_PROGRESS,
        O_HELP,
        O__CNT
};

static const opt_t opts[O__CNT] = {
        [O_COUNT] = {"count", OPT_INT, "0",
                     "events to write; 0 = until --days run out", 0, INT64_MAX},
        [O_RATE] = {"rate", OPT_DOUBLE, "0",
                    "events per wall-clock second; 0 = as fast as possible", 0,
                    0, 0, 1e9},
        [O_USERS] = {"users", OPT_INT, "10000", "listeners alive on day 0", 1,
                     50000000},
        [O_DAYS] = {"days", OPT_INT, "28", "days of event time to cover", 1,
                    3650},
        [O_SEED] = {"seed", OPT_INT, "1",
                    "seed: same seed and flags, same events", 0, INT64_MAX},
        [O_START] = {"start-time", OPT_TIME, "2026-01-05T00:00:00Z",
                     "event time of day 0 (ISO-8601 UTC or ms since epoch)",
                     INT64_C(1136073600000), INT64_C(4102444800000)},
        [O_DISORDER] = {"disorder-ms", OPT_INT, "0",
                        "hold some events back by up to this much event time",
                        0, 86400000},
        [O_DISORDER_SHARE] =
                {"disorder-share", OPT_DOUBLE, "0.05",
                 "share of events held back when --disorder-ms > 0", 0, 0, 0,
                 1},
        [O_ARRIVAL] = {"arrival-rate", OPT_DOUBLE, "0.02",
                       "new listeners per day, as a fraction of --users", 0, 0,
                       0, 1},
        [O_CHURN] = {"churn-rate", OPT_DOUBLE, "0.02",
                     "per-day chance a listener churns", 0, 0, 0, 0.99},
        [O_REC_SHARE] = {"rec-share", OPT_DOUBLE, "0.35",
                         "share of plays started from a recommendation", 0, 0,
                         0, 1},
        [O_ADOPT] = {"adopt-prob", OPT_DOUBLE, "0.1",
                     "chance a qualified play of a new artist becomes a habit",
                     0, 0, 0, 1},
        [O_LIFT] = {"treatment-lift", OPT_DOUBLE, "1.2",
                    "adopt-prob multiplier for recommended plays in treatment",
                    0, 0, 0, 10},
        [O_ARTISTS] = {"artists", OPT_INT, "20000", "artists in the catalogue",
                       1, 10000000},
        [O_COHORT] = {"cohort", OPT_ENUM, "on",
                      "label users control/treatment (10% unenrolled: null)", 0,
                      0, 0, 0, "on|off"},
        [O_TOPIC] = {"topic", OPT_STR, "plays", "Kafka topic to write to"},
        [O_BOOTSTRAP] = {"bootstrap", OPT_STR, NULL,
                         "HOST:PORT[,...]: write to Kafka (or give --file)"},
        [O_FILE] =
                {"file", OPT_STR, NULL,
                 "PATH: write an Avro object container file (or --bootstrap)"},
        [O_FRAMING] = {"framing", OPT_ENUM, "confluent", "Kafka value framing",
                       0, 0, 0, 0, "confluent|raw"},
        [O_SCHEMA_ID] = {"schema-id", OPT_INT, "1",
                         "schema id in the Confluent frame", 0, INT32_MAX},
        [O_KAFKA] = {"kafka", OPT_KV, NULL,
                     "KEY=VALUE: librdkafka producer property (repeatable)"},
        [O_PROGRESS] = {"progress", OPT_FLAG, NULL,
                        "log a progress line to stderr every second"},
        [O_HELP] = {"help", OPT_FLAG, NULL, "show this help"},
};

typedef struct optval_s {
        bool set;
        int64_t i;
        double d;
        const char *s; /* borrowed from argv or the table */
} optval_t;

typedef struct cli_s {
        optval_t v[O__CNT];
        const char *kafka_kv[KAFKA_CONF_MAX]; /* borrowed from argv */
        int kafka_kv_cnt;
} cli_t;

/* Set by SIGINT/SIGTERM; the only global, as the house style allows. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
        (void)sig;
        stop_requested = 1;
}

static void usage(FILE *out) {
        fprintf(out, "usage: encore-gen (--bootstrap HOST:PORT | --file PATH) "
                     "[flags]\n\n"
                     "Writes synthetic PlayEvents from a seeded listener "
                     "population.\n\nflags:\n");
        for (int i = 0; i < O__CNT; i++) {
                const opt_t *o = &opts[i];
                char name[64];
                const char *arg = o->type == OPT_INT      ? " N"
                                  : o->type == OPT_DOUBLE ? " X"
                                  : o->type == OPT_TIME   ? " TIME"
                                  : o->type == OPT_ENUM   ? " MODE"
                                  : o->type == OPT_KV     ? " K=V"
                                  : o->type == OPT_STR    ? " S"
                                                          : "";
                snprintf(name, sizeof(name), "--%s%s", o->name, arg);
                fprintf(out, "  %-26s %s", name, o->desc);
                if (o->type == OPT_ENUM)
                        fprintf(out, " (%s)", o->choices);
                if (o->def)
                        fprintf(out, " [%s]", o->def);
                fputc('\n', out);
        }
}

static int usage_error(const char *fmt, ...) ENC_PRINTF(1, 2);
static int usage_error(const char *fmt, ...) {
        va_list ap;
        fputs("encore-gen: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (see --help)\n", stderr);
        return EXIT_USAGE;
}

/* ---- time parsing ------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

/* Reads exactly @p n digits. */
static bool digits(const char **p, int n, int64_t *v) {
        *v = 0;
        for (int i = 0; i < n; i++) {
                if ((*p)[i] < '0' || (*p)[i] > '9')
                        return false;
                *v = *v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        return true;
}

static bool is_leap(int64_t y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "1767571200000", "2026-01-05", "2026-01-05T10:00[:00[.000]][Z|+hh:mm]". */
static bool parse_time(const char *s, int64_t *ms) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (*s && *end == '\0' && errno == 0) {
                *ms = v;
                return true;
        }
        const char *p = s;
        int64_t y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
        if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) ||
            *p++ != '-' || !digits(&p, 2, &d))
                return false;
        static const int mdays[] = {31, 28, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};
        if (mo < 1 || mo > 12 || d < 1 ||
            d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
                return false;
        if (*p == 'T' || *p == ' ') {
                p++;
                if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
                        return false;
                if (*p == ':') {
                        p++;
                        if (!digits(&p, 2, &sec))
                                return false;
                        if (*p == '.') {
                                p++;
                                int n = 0;
                                while (*p >= '0' && *p <= '9') {
                                        if (n < 3)
                                                frac = frac * 10 + (*p - '0');
                                        n++;
                                        p++;
                                }
                                if (n == 0)
                                        return false;
                                for (; n < 3; n++)
                                        frac *= 10;
                        }
                }
                if (h > 23 || mi > 59 || sec > 60)
                        return false;
                if (*p == 'Z') {
                        p++;
                } else if (*p == '+' || *p == '-') {
                        int sign = *p++ == '-' ? -1 : 1;
                        int64_t oh, om;
                        if (!digits(&p, 2, &oh) || *p++ != ':' ||
                            !digits(&p, 2, &om) || oh > 23 || om > 59)
                                return false;
                        off = sign * (oh * 60 + om) * ENC_MS_PER_MIN;
                }
        }
        if (*p != '\0')
                return false;
        *ms = days_from_civil(y, mo, d) * ENC_MS_PER_DAY +
              ((h * 60 + mi) * 60 + sec) * 1000 + frac - off;
        return true;
}

/* ---- flag parsing ------------------------------------------------------- */

/* Parses @p val for option @p i into cli. Returns 0 or EXIT_USAGE. */
static int set_opt(cli_t *cli, int i, const char *val) {
        const opt_t *o = &opts[i];
        optval_t *v = &cli->v[i];
        char *end;
        switch (o->type) {
        case OPT_INT: {
                errno = 0;
                long long x = strtoll(val, &end, 10);
                if (!*val || *end || errno || x < o->min || x > o->max)
                        return usage_error("--%s: expected an integer in "
                                           "[%" PRId64 ", %" PRId64
                                           "], got '%s'",
                                           o->name, o->min, o->max, val);
                v->i = x;
                break;
        }
        case OPT_DOUBLE: {
                errno = 0;
                double x = strtod(val, &end);
                if (!*val || *end || errno || !(x >= o->dmin && x <= o->dmax))
                        return usage_error("--%s: expected a number in "
                                           "[%g, %g], got '%s'",
                                           o->name, o->dmin, o->dmax, val);
                v->d = x;
                break;
        }
        case OPT_TIME:
                if (!parse_time(val, &v->i))
                        return usage_error(
                                "--%s: expected ms since epoch or ISO-8601 "
                                "UTC (2026-01-05T00:00:00Z), got '%s'",
                                o->name, val);
                if (v->i < o->min || v->i > o->max)
                        return usage_error("--%s: must be in 2006..2099, got "
                                           "'%s'",
                                           o->name, val);
                break;
        case OPT_ENUM: {
                size_t n = strlen(val);
                const char *c = o->choices;
                bool ok = false;
                while (*c) {
                        size_t len = strcspn(c, "|");
                        if (len == n && n > 0 && !strncmp(c, val, n))
                                ok = true;
                        c += len + (c[len] == '|');
                }
                if (!ok)
                        return usage_error("--%s: expected one of %s, got "
                                           "'%s'",
                                           o->name, o->choices, val);
                v->s = val;
                break;
        }
        case OPT_KV: {
                const char *eq = strchr(val, '=');
                if (!eq || eq == val)
                        return usage_error("--%s: expected KEY=VALUE, got "
                                           "'%s'",
                                           o->name, val);
                if (cli->kafka_kv_cnt == KAFKA_CONF_MAX)
                        return usage_error("--%s: more than %d given", o->name,
                                           KAFKA_CONF_MAX);
                cli->kafka_kv[cli->kafka_kv_cnt++] = val;
                break;
        }
        case OPT_STR:
                if (!*val)
                        return usage_error("--%s: must not be empty", o->name);
                v->s = val;
                break;
        case OPT_FLAG:
                break;
        }
        v->set = true;
        return 0;
}

/* Fills @p cli from the defaults, then argv. Returns 0 or EXIT_USAGE. */
static int parse_args(cli_t *cli, int argc, char **argv) {
        memset(cli, 0, sizeof(*cli));
        for (int i = 0; i < O__CNT; i++) {
                if (opts[i].def && set_opt(cli, i, opts[i].def))
                        return EXIT_USAGE; /* a bad table: caught by tests */
                cli->v[i].set = false;
        }
        for (int a = 1; a < argc; a++) {
                const char *arg = argv[a];
                if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
                        return usage_error("unexpected argument '%s'", arg);
                const char *name = arg + 2;
                const char *eq = strchr(name, '=');
                size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
                int i;
                for (i = 0; i < O__CNT; i++)
                        if (strlen(opts[i].name) == nlen &&
                            !strncmp(opts[i].name, name, nlen))
                                break;
                if (i == O__CNT)
                        return usage_error("unknown flag '--%.*s'", (int)nlen,
                                           name);
                const char *val;
                if (opts[i].type == OPT_FLAG) {
                        if (eq)
                                return usage_error("--%s: takes no value",
                                                   opts[i].name);
                        val = "";
                } else if (eq) {
                        val = eq + 1;
                } else if (a + 1 < argc) {
                        val = argv[++a];
                } else {
                        return usage_error("--%s: needs a value", opts[i].name);
                }
                if (set_opt(cli, i, val))
                        return EXIT_USAGE;
        }
        return 0;
}

/* ---- sinks -------------------------------------------------------------- */

typedef struct dr_state_s {
        uint64_t delivered;
        uint64_t failed;
        char first_error[256];
} dr_state_t;

/* Delivery reports: called from rd_kafka_poll/flush on this thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
        (void)rk;
        dr_state_t *dr = opaque;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                dr->delivered++;
                return;
        }
        if (dr->failed++ == 0)
                snprintf(dr->first_error, sizeof(dr->first_error), "%s",
                         rd_kafka_err2str(m->err));
}

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf) {
        (void)rk;
        enc_log_level_t l = level <= 3   ? ENC_LOG_ERROR
                            : level <= 4 ? ENC_LOG_WARN
                            : level <= 6 ? ENC_LOG_INFO
                                         : ENC_LOG_DEBUG;
        if (enc_log_enabled(l))
                enc_log(l, "kafka_log", "fac=%s msg=\"%s\"", fac, buf);
}

/* Builds the idempotent producer. Returns NULL after printing why; a bad
 * --kafka property sets *usage so the exit code is 2. Caller destroys. */
static rd_kafka_t *kafka_open(const cli_t *cli, dr_state_t *dr, bool *usage) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        struct {
                const char *k, *v;
        } base[] = {
                {"bootstrap.servers", cli->v[O_BOOTSTRAP].s},
                {"enable.idempotence", "true"},
                /* The Java client's partitioner, so a key lands where Kafka
                 * Streams or any JVM producer would put it. */
                {"partitioner", "murmur2_random"},
                {"linger.ms", "20"},
        };
        for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
                if (rd_kafka_conf_set(conf, base[i].k, base[i].v, errstr,
                                      sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                        enc_log_error("gen_kafka_conf", "key=%s error=\"%s\"",
                                      base[i].k, errstr);
                        rd_kafka_conf_destroy(conf);
                        return NULL;
                }
        for (int i = 0; i < cli->kafka_kv_cnt; i++) {
                char key[256];
                const char *kv = cli->kafka_kv[i];
                size_t klen = (size_t)(strchr(kv, '=') - kv);
                if (klen >= sizeof(key))
                        klen = sizeof(key) - 1;
                memcpy(key, kv, klen);
                key[klen] = '\0';
                if (rd_kafka_conf_set(conf, key, kv + klen + 1, errstr,
                                      sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                        usage_error("--kafka: %s", errstr);
                        *usage = true;
                        rd_kafka_conf_destroy(conf);
                        return NULL;
                }
        }
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_log_cb(conf, on_kafka_log);
        rd_kafka_conf_set_opaque(conf, dr);
        rd_kafka_t *rk =
                rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) { /* conf is still ours on failure */
                enc_log_error("gen_kafka_new", "error=\"%s\"", errstr);
                rd_kafka_conf_destroy(conf);
        }
        return rk;
}

/* Hands one encoded event to librdkafka, waiting while its queue is full.
 * The payload and key are copied. */
static enc_err_t kafka_send(rd_kafka_t *rk, const char *topic,
                            const enc_event_t *ev, const enc_buf_t *buf) {
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC(topic),
                        RD_KAFKA_V_KEY(ev->user_id, strlen(ev->user_id)),
                        RD_KAFKA_V_VALUE(buf->data, buf->len),
                        RD_KAFKA_V_TIMESTAMP(ev->event_time),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
                if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                        return ENC_OK;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        enc_log_error("gen_produce", "error=\"%s\"",
                                      rd_kafka_err2str(err));
                        return ENC_ERR_KAFKA;
                }
                rd_kafka_poll(rk, 50);
                if (stop_requested)
                        return ENC_ERR_ABORTED;
        }
}

/* Flushes and settles the delivery reports. Returns ENC_OK only if every
 * message was delivered. */
static enc_err_t kafka_close(rd_kafka_t *rk, const dr_state_t *dr,
                             uint64_t produced) {
        enc_err_t ret = ENC_OK;
        rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, FLUSH_TIMEOUT_MS);
        int left = rd_kafka_outq_len(rk);
        char fatal[256];
        rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        if (fe) {
                enc_log_error("gen_kafka_fatal", "error=\"%s\"", fatal);
                ret = ENC_ERR_KAFKA;
        }
        if (ferr || left > 0) {
                enc_log_error("gen_flush",
                              "error=\"%s\" undelivered=%d timeout_ms=%d",
                              rd_kafka_err2str(ferr), left, FLUSH_TIMEOUT_MS);
                ret = ENC_ERR_TIMED_OUT;
        }
        if (dr->failed > 0) {
                enc_log_error("gen_delivery",
                              "failed=%" PRIu64 " first_error=\"%s\"",
                              dr->failed, dr->first_error);
                ret = ENC_ERR_KAFKA;
        }
        if (dr->delivered != produced && ret == ENC_OK) {
                enc_log_error("gen_delivery",
                              "produced=%" PRIu64 " delivered=%" PRIu64,
                              produced, dr->delivered);
                ret = ENC_ERR_KAFKA;
        }
        rd_kafka_destroy(rk);
        return ret;
}

/* Creates (truncates) the container file at @p path with the PlayEvent
 * schema. Returns NULL after logging why; caller closes with
 * avro_file_writer_close(), which also flushes. */
static avro_file_writer_t file_open(const char *path) {
        const char *json = enc_codec_play_event_schema();
        avro_schema_t schema;
        avro_file_writer_t w = NULL;
        if (avro_schema_from_json_length(json, strlen(json), &schema)) {
                enc_log_error("gen_file", "path=%s error=\"schema: %s\"", path,
                              avro_strerror());
                return NULL;
        }
        if (avro_file_writer_create_with_codec(path, schema, &w, "null",
                                               FILE_BLOCK_BYTES)) {
                enc_log_error("gen_file", "path=%s error=\"%s\"", path,
                              avro_strerror());
                w = NULL;
        }
        avro_schema_decref(schema); /* the writer holds its own reference */
        return w;
}

/* ---- main loop ---------------------------------------------------------- */

static double mono_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
        struct timespec ts;
        ts.tv_sec = (time_t)s;
        ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !stop_requested)
                ;
}

static void gen_conf_from_cli(const cli_t *cli, enc_gen_conf_t *gc) {
        enc_gen_conf_defaults(gc);
        gc->seed = (uint64_t)cli->v[O_SEED].i;
        gc->users = (uint32_t)cli->v[O_USERS].i;
        gc->days = (uint32_t)cli->v[O_DAYS].i;
        gc->start_time = cli->v[O_START].i;
        gc->count = (uint64_t)cli->v[O_COUNT].i;
        gc->disorder_ms = cli->v[O_DISORDER].i;
        gc->disorder_share = cli->v[O_DISORDER_SHARE].d;
        gc->arrival_rate = cli->v[O_ARRIVAL].d;
        gc->churn_rate = cli->v[O_CHURN].d;
        gc->rec_share = cli->v[O_REC_SHARE].d;
        gc->adopt_prob = cli->v[O_ADOPT].d;
        gc->treatment_lift = cli->v[O_LIFT].d;
        gc->artists = (uint32_t)cli->v[O_ARTISTS].i;
        gc->cohorts = !strcmp(cli->v[O_COHORT].s, "on");
}

int main(int argc, char **argv) {
        cli_t cli;
        int rc = parse_args(&cli, argc, argv);
        if (rc)
                return rc;
        if (cli.v[O_HELP].set) {
                usage(stdout);
                return 0;
        }
        bool to_kafka = cli.v[O_BOOTSTRAP].set, to_file = cli.v[O_FILE].set;
        if (to_kafka == to_file)
                return usage_error("give exactly one of --bootstrap or --file");
        if (to_file && !strcmp(cli.v[O_FILE].s, "-"))
                return usage_error("--file: '-' (standard output) is not "
                                   "supported; give a path");
        if (to_file && (cli.v[O_FRAMING].set || cli.v[O_SCHEMA_ID].set ||
                        cli.v[O_TOPIC].set || cli.kafka_kv_cnt > 0))
                return usage_error("--framing, --schema-id, --topic and "
                                   "--kafka apply to --bootstrap only");

        enc_gen_conf_t gc;
        gen_conf_from_cli(&cli, &gc);
        char errstr[512];
        double t_init = mono_s();
        enc_gen_t *gen = enc_gen_new(&gc, errstr, sizeof(errstr));
        if (!gen) {
                /* The CLI's ranges are the generator's, but start-time + days
                 * is only checked there. */
                fprintf(stderr, "encore-gen: %s (see --help)\n", errstr);
                return EXIT_USAGE;
        }

        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        cc.framing = to_file || !strcmp(cli.v[O_FRAMING].s, "raw")
                             ? ENC_FRAMING_RAW
                             : ENC_FRAMING_CONFLUENT;
        cc.play_event_schema_id = (int32_t)cli.v[O_SCHEMA_ID].i;
        enc_codec_t *codec = enc_codec_new(&cc, errstr, sizeof(errstr));
        if (!codec) {
                enc_log_error("gen_codec", "error=\"%s\"", errstr);
                enc_gen_destroy(gen);
                return 1;
        }

        dr_state_t dr;
        memset(&dr, 0, sizeof(dr));
        rd_kafka_t *rk = NULL;
        avro_file_writer_t fw = NULL;
        bool usage = false;
        if (to_kafka && !(rk = kafka_open(&cli, &dr, &usage))) {
                enc_codec_destroy(codec);
                enc_gen_destroy(gen);
                return usage ? EXIT_USAGE : 1;
        }
        if (to_file && !(fw = file_open(cli.v[O_FILE].s))) {
                enc_codec_destroy(codec);
                enc_gen_destroy(gen);
                return 1;
        }

        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        enc_buf_t buf;
        enc_buf_init(&buf, 0);
        const char *topic = cli.v[O_TOPIC].s;
        double rate = cli.v[O_RATE].d;
        bool progress = cli.v[O_PROGRESS].set;
        double t0 = mono_s(), last_progress = t0;
        double init_s = t0 - t_init; /* the day-0 population, sinks */
        uint64_t n = 0;
        int64_t last_time = 0;
        enc_err_t err = ENC_OK;
        enc_event_t ev;

        while (!stop_requested) {
                enc_err_t gerr = enc_gen_next(gen, &ev);
                if (gerr == ENC_ERR_NOT_FOUND)
                        break;
                if (gerr) {
                        enc_log_error("gen_next", "error=\"%s\"",
                                      enc_err2str(gerr));
                        err = gerr;
                        break;
                }
                enc_buf_reset(&buf);
                if ((err = enc_codec_encode_event(codec, &ev, &buf))) {
                        enc_log_error("gen_encode", "event_id=%s error=\"%s\"",
                                      ev.event_id, enc_err2str(err));
                        break;
                }
                if (rk) {
                        if ((err = kafka_send(rk, topic, &ev, &buf)))
                                break;
                        if ((n & 1023) == 0)
                                rd_kafka_poll(rk, 0);
                } else if (avro_file_writer_append_encoded(fw, buf.data,
                                                           (int64_t)buf.len)) {
                        enc_log_error("gen_file", "error=\"%s\"",
                                      avro_strerror());
                        err = ENC_ERR_IO;
                        break;
                }
                n++;
                last_time = ev.event_time;
                if (rate > 0 || (progress && (n & 4095) == 0)) {
                        double now = mono_s();
                        if (rate > 0) {
                                double ahead = t0 + (double)n / rate - now;
                                if (ahead > 0.001)
                                        sleep_s(ahead);
                        }
                        if (progress && now - last_progress >= 1.0) {
                                char ts[32];
                                enc_fmt_time(last_time, ts, sizeof(ts));
                                enc_log_info("gen_progress",
                                             "events=%" PRIu64
                                             " eps=%.0f event_time=%s",
                                             n, (double)n / (now - t0), ts);
                                last_progress = now;
                        }
                }
        }
        bool interrupted = stop_requested && err == ENC_OK;
        if (err == ENC_ERR_ABORTED) {
                interrupted = true;
                err = ENC_OK;
        }

        enc_err_t cerr = ENC_OK;
        if (rk)
                cerr = kafka_close(rk, &dr, n);
        if (fw && avro_file_writer_close(fw)) {
                enc_log_error("gen_file", "path=%s error=\"close: %s\"",
                              cli.v[O_FILE].s, avro_strerror());
                cerr = ENC_ERR_IO;
        }
        double wall = mono_s() - t0;
        enc_gen_stats_t st;
        enc_gen_stats(gen, &st);
        enc_log_info("gen_done",
                     "events=%" PRIu64 " users=%" PRIu64
                     " wall_s=%.3f eps=%.0f init_s=%.3f sink=%s ok=%s%s",
                     n, st.users_initial + st.arrivals, wall,
                     wall > 0 ? (double)n / wall : 0.0, init_s,
                     rk ? "kafka" : "file", err || cerr ? "false" : "true",
                     interrupted ? " interrupted=true" : "");
        enc_buf_free(&buf);
        enc_codec_destroy(codec);
        enc_gen_destroy(gen);
        if (err || cerr)
                return 1;
        return interrupted ? 130 : 0;
}
