/*
 * main.c -- the encore command line.
 *
 *   encore run  [--config FILE] [--set key=value ...] [--embedded-broker]
 *               [--exit-idle-ms N [--exit-idle-after-signal]]
 *   encore demo [--events N] [--users N] [--days N]
 *   encore tail --bootstrap HOST:PORT [--topic T] [--max N]
 *   encore readout --bootstrap HOST:PORT [--topic T] --signal NAME [...]
 *   encore config [--markdown] [--config FILE] [--set key=value ...]
 *   encore version | help [CMD]
 *   encore CMD --help | -h
 *
 * DESIGN
 * Every subcommand answers --help and -h with its usage and options on
 * stdout (exit 0), from one table (enc_cmd_helps); an unknown option
 * prints the usage line on stderr and exits 2.
 * main() parses, builds the configuration (file, then --set, later wins),
 * validates every key before anything connects anywhere, then hands over
 * to the pipeline. Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage
 * or configuration. SIGINT/SIGTERM only set a flag; the loop drains.
 * --exit-idle-ms stops cleanly once every assigned partition has been at
 * its end (checked with the broker) for that long: for batch jobs and
 * tests. With --exit-idle-after-signal that exit is armed only by SIGUSR1,
 * sent by whoever knows the input is complete; until then an idle encore
 * waits (a broker outage looks like idleness from here).
 *
 * Memory: before any thread starts, glibc's allocator is held to two
 * arenas and a fixed mmap threshold (enc_malloc_tune, base/enc.c).
 */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "demo.h"
#include "embedded.h"
#include "log.h"
#include "pipeline.h"
#include "plugin.h"
#include "readout.h"
#include "replay.h"
#include "tail.h"

static volatile sig_atomic_t enc_stop_flag;
static volatile int enc_idle_armed_flag;

static void enc_on_signal(int sig) {
        (void)sig;
        enc_stop_flag = 1;
}

static void enc_on_arm_signal(int sig) {
        (void)sig;
        enc_idle_armed_flag = 1;
}

static void enc_usage(FILE *fp) {
        fprintf(fp,
                "encore %s -- streaming reward signals for recommenders\n"
                "\n"
                "usage:\n"
                "  encore run [--config FILE] [--set key=value ...] "
                "[--embedded-broker]\n"
                "             [--exit-idle-ms N [--exit-idle-after-signal]]\n"
                "  encore demo [--events N] [--users N] [--days N]\n"
                "  encore replay --from POS [--to POS] --output-topic T "
                "--state-dir DIR [--config FILE] [--set k=v] [--progress]\n"
                "  encore reset --to POS [--dry-run] [--clear-local] "
                "[--force] [--config FILE] [--set k=v]\n"
                "      POS: earliest | end | offsets:P=O,... | "
                "timestamp:2026-01-05T00:00:00Z | ago:3d\n"
                "  encore tail --bootstrap HOST:PORT [--topic rewards] "
                "[--max N]\n"
                "  encore readout --bootstrap HOST:PORT [--topic rewards] "
                "--signal NAME [--version N]\n"
                "                 [--final-only] [--control COHORT] [--from "
                "POS] [--to POS] [--json]\n"
                "  encore config [--markdown] [--config FILE] [--set k=v]\n"
                "  encore version | help [CMD]\n"
                "  encore CMD --help    a command's usage and options\n"
                "\n"
                "Configuration keys (INI file sections join with '.', e.g. "
                "[commit] interval.ms = 500):\n",
                ENCORE_VERSION);
        enc_conf_print_keys(enc_conf_core_keys(), "", false, fp);
        fprintf(fp, "  serde.play_event.field.<field>=<writer field>\n"
                    "      the writer's field read as encore's PlayEvent "
                    "field <field>\n");
        fprintf(fp, "  kafka.<property>=<value>\n      passed to librdkafka "
                    "(consumer and producer), e.g. "
                    "kafka.bootstrap.servers\n"
                    "  kafka.consumer.<property>, kafka.producer.<property>\n"
                    "      passed to that client only\n");
        for (const enc_signal_plugin_t *const *p = enc_signal_plugins(); *p;
             p++) {
                char prefix[96];
                snprintf(prefix, sizeof(prefix), "signal.%s.<version>.",
                         (*p)->name);
                fprintf(fp, "\n signal %s: %s\n", (*p)->name,
                        (*p)->description);
                enc_conf_print_keys((*p)->config_keys, prefix, false, fp);
        }
}

/* One subcommand's help: its usage line(s) and options, printed by
 * `encore CMD --help` (stdout, exit 0) and after an unknown option
 * (stderr, exit 2). New subcommands add a row here. */
typedef struct enc_cmd_help_s {
        const char *name;
        const char *usage;   /* the lines after "usage: " */
        const char *options; /* one option per line, already indented */
} enc_cmd_help_t;

#define ENC_CONF_OPTS                                                          \
        "  -c, --config FILE     read configuration keys from an INI file\n"  \
        "  -s, --set key=value   set one key (repeatable; later wins, "       \
        "--set over --config)\n"
#define ENC_HELP_OPT "  -h, --help            print this help and exit 0\n"

static const enc_cmd_help_t enc_cmd_helps[] = {
        {"run",
         "encore run [--config FILE] [--set key=value ...] "
         "[--embedded-broker]\n"
         "                  [--exit-idle-ms N [--exit-idle-after-signal]]\n",
         "Consumes the input topic and emits reward updates until SIGINT or "
         "SIGTERM.\n\n" ENC_CONF_OPTS
         "  --embedded-broker     start an in-process mock Kafka cluster "
         "and use it\n"
         "  --exit-idle-ms N      stop cleanly once every assigned partition "
         "has been\n"
         "                        at its end for N ms\n"
         "  --exit-idle-after-signal\n"
         "                        arm --exit-idle-ms only after SIGUSR1\n" ENC_HELP_OPT
         "Configuration keys: encore help, or encore config --markdown.\n"},
        {"demo", "encore demo [--events N] [--users N] [--days N]\n",
         "Runs the whole pipeline in one process against an embedded broker "
         "with\ngenerated events and prints what came out.\n\n"
         "  --events N            events to generate, in [1, 2000000] "
         "(default 60000)\n"
         "  --users N             listeners (default 3000)\n"
         "  --days N              days of history (default 21)\n" ENC_HELP_OPT},
        {"replay",
         "encore replay --from POS [--to POS] --output-topic T "
         "--state-dir DIR\n"
         "                     [--bootstrap HOST:PORT] [--config FILE] "
         "[--set k=v] [--progress]\n",
         "Re-runs the input from POS to POS into a fresh state and a chosen "
         "topic.\n\n"
         "  --from POS            first record: earliest | end | "
         "offsets:P=O,... |\n"
         "                        timestamp:2026-01-05T00:00:00Z | ago:3d\n"
         "  --to POS              end, exclusive (default end)\n"
         "  --output-topic T      where the updates go (output.topic)\n"
         "  --state-dir DIR       a fresh state directory (state.dir)\n"
         "  --bootstrap HOST:PORT the brokers (kafka.bootstrap.servers)\n"
         "  --progress            print progress to stderr\n" ENC_CONF_OPTS
                 ENC_HELP_OPT},
        {"reset",
         "encore reset --to POS [--dry-run] [--clear-local] [--force]\n"
         "                    [--bootstrap HOST:PORT] [--config FILE] "
         "[--set k=v]\n",
         "Moves a deployment's input position (written to the changelog).\n\n"
         "  --to POS              earliest | end | offsets:P=O,... |\n"
         "                        timestamp:2026-01-05T00:00:00Z | ago:3d\n"
         "  --dry-run             print the move, change nothing\n"
         "  --clear-local         also delete this host's local state\n"
         "  --force               go on when the group's members cannot be "
         "listed\n"
         "  --bootstrap HOST:PORT the brokers (kafka.bootstrap.servers)\n"
         ENC_CONF_OPTS ENC_HELP_OPT},
        {"tail", "encore tail --bootstrap HOST:PORT [--topic T] [--max N]\n",
         "Prints reward updates from a topic as JSON lines, from the "
         "beginning.\n\n"
         "  --bootstrap HOST:PORT the brokers (required)\n"
         "  --topic T             the topic (default rewards)\n"
         "  --max N               stop after N records (default: at the "
         "end)\n" ENC_HELP_OPT},
        {"readout",
         "encore readout --bootstrap HOST:PORT [--topic T] --signal NAME "
         "[--version N]\n"
         "                      [--final-only] [--control COHORT] "
         "[--from POS] [--to POS] [--json]\n",
         "An A/B readout: reads the topic to its end, keeps the latest "
         "update of each\n(user, subject) key of the signal and groups the "
         "keys by cohort: units,\nusers, mean, stderr, 95% interval; against "
         "a control cohort the difference,\nlift and Welch's two-sided "
         "p-value. progressive_reward adds the mean\nposterior variance.\n\n"
         "  --bootstrap HOST:PORT the brokers (required)\n"
         "  --topic T             the reward topic (default rewards)\n"
         "  --signal NAME         the signal (required)\n"
         "  --version N           its version (default: the one on the "
         "topic)\n"
         "  --final-only          the latest final update of each key\n"
         "  --control COHORT      compare every other cohort with this one\n"
         "  --from POS            first record: earliest | end | "
         "offsets:P=O,... |\n"
         "                        timestamp:2026-01-05T00:00:00Z | ago:3d "
         "(default earliest)\n"
         "  --to POS              end, exclusive (default end)\n"
         "  --json                one JSON object per cohort a line\n"
         ENC_HELP_OPT},
        {"config", "encore config [--markdown] [--config FILE] [--set k=v]\n",
         "Prints the effective configuration, or with --markdown the table "
         "of keys.\n\n"
         "  --markdown            print the key table as Markdown (the "
         "README's)\n" ENC_CONF_OPTS ENC_HELP_OPT},
        {"version", "encore version\n",
         "Prints encore's and librdkafka's versions.\n\n" ENC_HELP_OPT},
        {"help", "encore help\n",
         "Prints the commands and every configuration key.\n\n" ENC_HELP_OPT},
};

static const enc_cmd_help_t *enc_cmd_help_find(const char *cmd) {
        for (size_t i = 0; i < sizeof(enc_cmd_helps) / sizeof(*enc_cmd_helps);
             i++)
                if (!strcmp(enc_cmd_helps[i].name, cmd))
                        return &enc_cmd_helps[i];
        return NULL;
}

/* Prints @p cmd's usage line, and with @p full its options. */
static void enc_cmd_usage(const char *cmd, bool full, FILE *fp) {
        const enc_cmd_help_t *h = enc_cmd_help_find(cmd);
        if (!h)
                return;
        fprintf(fp, "usage: %s", h->usage);
        if (full)
                fprintf(fp, "\n%s", h->options);
        else
                fprintf(fp, "(encore %s --help for the options)\n", cmd);
}

static void enc_readout_help(FILE *fp, bool full) {
        enc_cmd_usage("readout", full, fp);
}

static bool enc_is_help(const char *a) {
        return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* The two ends of option parsing every subcommand shares. */
#define ENC_RC_HELP (-1) /* --help printed: exit 0 */

static int enc_help_exit(const char *cmd) {
        enc_cmd_usage(cmd, true, stdout);
        return ENC_RC_HELP;
}

static int enc_bad_option(const char *cmd, const char *a) {
        fprintf(stderr, "encore %s: unknown or incomplete option %s\n", cmd,
                a);
        enc_cmd_usage(cmd, false, stderr);
        return 2;
}

static int enc_rc_exit(int rc) {
        return rc == ENC_RC_HELP ? 0 : rc;
}

/* Parses --config/--set into @p conf; other options are left to @p extra,
 * which returns the number of argv entries it consumed (0 = unknown). */
typedef int (*enc_extra_opt_t)(int argc, char **argv, int i, void *opaque);

static int enc_parse_conf_args(const char *cmd, int argc, char **argv,
                               enc_conf_t *conf, enc_extra_opt_t extra,
                               void *opaque) {
        char errstr[512];
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (enc_is_help(a))
                        return enc_help_exit(cmd);
                if ((!strcmp(a, "--config") || !strcmp(a, "-c")) &&
                    i + 1 < argc) {
                        if (enc_conf_load_file(conf, argv[++i], errstr,
                                               sizeof(errstr))) {
                                fprintf(stderr, "encore: %s\n", errstr);
                                return 2;
                        }
                } else if ((!strcmp(a, "--set") || !strcmp(a, "-s")) &&
                           i + 1 < argc) {
                        if (enc_conf_set_kv(conf, argv[++i], errstr,
                                            sizeof(errstr))) {
                                fprintf(stderr, "encore: %s\n", errstr);
                                return 2;
                        }
                } else {
                        int used = extra ? extra(argc, argv, i, opaque) : 0;
                        if (used < 0)
                                return 2; /* extra said why */
                        if (used == 0)
                                return enc_bad_option(cmd, a);
                        i += used - 1;
                }
        }
        if (enc_signals_check_conf(conf, errstr, sizeof(errstr))) {
                fprintf(stderr, "encore: %s\n", errstr);
                return 2;
        }
        /* serde.play_event.field.* name encore's fields: the codec knows */
        enc_codec_t *codec = enc_codec_new_from_conf(conf, errstr,
                                                     sizeof(errstr));
        if (!codec) {
                fprintf(stderr, "encore: %s\n", errstr);
                return 2;
        }
        enc_codec_destroy(codec);
        return 0;
}

typedef struct enc_run_args_s {
        bool embedded;
        bool idle_after_signal;
        int64_t exit_idle_ms;
} enc_run_args_t;

static int enc_run_extra(int argc, char **argv, int i, void *opaque) {
        enc_run_args_t *ra = opaque;
        if (!strcmp(argv[i], "--embedded-broker")) {
                ra->embedded = true;
                return 1;
        }
        if (!strcmp(argv[i], "--exit-idle-after-signal")) {
                ra->idle_after_signal = true;
                return 1;
        }
        if (!strcmp(argv[i], "--exit-idle-ms") && i + 1 < argc) {
                char *end;
                ra->exit_idle_ms = strtoll(argv[i + 1], &end, 10);
                if (*end || ra->exit_idle_ms < 0) {
                        fprintf(stderr, "encore: --exit-idle-ms: \"%s\" is "
                                        "not a non-negative integer\n",
                                argv[i + 1]);
                        return -1;
                }
                return 2;
        }
        return 0;
}

static int enc_cmd_run(int argc, char **argv) {
        char errstr[512];
        enc_run_args_t ra = {0};
        enc_conf_t *conf = enc_conf_new();
        int rc = enc_parse_conf_args("run", argc, argv, conf, enc_run_extra,
                                     &ra);
        if (rc) {
                enc_conf_destroy(conf);
                return enc_rc_exit(rc);
        }
        if (ra.idle_after_signal && ra.exit_idle_ms <= 0) {
                fprintf(stderr, "encore: --exit-idle-after-signal needs "
                                "--exit-idle-ms N (N > 0)\n");
                enc_conf_destroy(conf);
                return 2;
        }
        enc_log_set_level(
                (enc_log_level_t)enc_log_level_parse(
                        enc_conf_get(conf, "log.level")));

        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = enc_on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (ra.idle_after_signal) {
                sa.sa_handler = enc_on_arm_signal;
                sigaction(SIGUSR1, &sa, NULL);
        }

        enc_embedded_t *emb = NULL;
        if (ra.embedded) {
                char cl[300];
                const char *clt = enc_conf_get(conf, "changelog.topic");
                snprintf(cl, sizeof(cl), "%s%s",
                         *clt ? clt : enc_conf_get(conf, "group.id"),
                         *clt ? "" : "-changelog");
                emb = enc_embedded_new(3, errstr, sizeof(errstr));
                if (!emb ||
                    enc_embedded_create_topic(
                            emb, enc_conf_get(conf, "input.topic"), 4,
                            errstr, sizeof(errstr)) ||
                    enc_embedded_create_topic(emb, cl, 4, errstr,
                                              sizeof(errstr)) ||
                    enc_conf_set(conf, "kafka.bootstrap.servers",
                                 enc_embedded_bootstraps(emb), errstr,
                                 sizeof(errstr))) {
                        fprintf(stderr, "encore: embedded broker: %s\n",
                                errstr);
                        enc_embedded_destroy(emb);
                        enc_conf_destroy(conf);
                        return 1;
                }
                enc_log_info("embedded_broker",
                             "bootstrap=%s input_topic=%s partitions=4",
                             enc_embedded_bootstraps(emb),
                             enc_conf_get(conf, "input.topic"));
                printf("embedded broker: %s\n", enc_embedded_bootstraps(emb));
                fflush(stdout);
        } else if (!enc_conf_get_raw(conf, "kafka.bootstrap.servers")) {
                fprintf(stderr, "encore: kafka.bootstrap.servers is not set "
                                "(set it, or use --embedded-broker)\n");
                enc_conf_destroy(conf);
                return 2;
        }

        enc_pipeline_t *pl = enc_pipeline_new(conf, errstr, sizeof(errstr));
        if (!pl) {
                fprintf(stderr, "encore: %s\n", errstr);
                enc_embedded_destroy(emb);
                enc_conf_destroy(conf);
                return 1;
        }
        enc_pipeline_opts_t opts = {
                .exit_idle_ms = ra.exit_idle_ms,
                .idle_armed = ra.idle_after_signal ? &enc_idle_armed_flag
                                                   : NULL,
                .stop = &enc_stop_flag};
        enc_err_t err = enc_pipeline_run(pl, &opts, errstr, sizeof(errstr));
        enc_pipeline_destroy(pl);
        enc_embedded_destroy(emb);
        enc_conf_destroy(conf);
        if (err) {
                fprintf(stderr, "encore: %s\n", errstr);
                return 1;
        }
        return 0;
}

typedef struct enc_tail_args_s {
        const char *bootstrap;
        const char *topic;
        uint64_t max;
        enc_codec_t *codec;
        enc_buf_t json;
        uint64_t printed;
        uint64_t bad;
} enc_tail_args_t;

static int enc_tail_print(void *opaque, const rd_kafka_message_t *m) {
        enc_tail_args_t *ta = opaque;
        enc_update_t up;
        char err[256];
        if (enc_codec_decode_update(ta->codec, m->payload, m->len, &up, err,
                                    sizeof(err))) {
                fprintf(stderr, "partition %d offset %lld: %s\n",
                        m->partition, (long long)m->offset, err);
                ta->bad++;
        } else {
                enc_buf_reset(&ta->json);
                if (!enc_update_to_json(&up, &ta->json))
                        printf("%.*s\n", (int)ta->json.len,
                               (const char *)ta->json.data);
        }
        ta->printed++;
        return ta->max && ta->printed >= ta->max;
}

static int enc_cmd_tail(int argc, char **argv) {
        enc_tail_args_t ta = {.topic = "rewards"};
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--bootstrap") && i + 1 < argc)
                        ta.bootstrap = argv[++i];
                else if (!strcmp(argv[i], "--topic") && i + 1 < argc)
                        ta.topic = argv[++i];
                else if (!strcmp(argv[i], "--max") && i + 1 < argc)
                        ta.max = strtoull(argv[++i], NULL, 10);
                else if (enc_is_help(argv[i]))
                        return enc_rc_exit(enc_help_exit("tail"));
                else
                        return enc_bad_option("tail", argv[i]);
        }
        if (!ta.bootstrap) {
                fprintf(stderr, "encore tail: --bootstrap is required\n");
                enc_cmd_usage("tail", false, stderr);
                return 2;
        }
        char errstr[512];
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        cc.any_update_schema_id = true; /* a registry may have framed them */
        ta.codec = enc_codec_new(&cc, errstr, sizeof(errstr));
        enc_buf_init(&ta.json, 1 << 16);
        uint64_t n = 0;
        enc_err_t err = ta.codec ? enc_tail_read(ta.bootstrap, ta.topic,
                                                 60000, enc_tail_print, &ta,
                                                 &n, errstr, sizeof(errstr))
                                 : ENC_ERR_DECODE;
        enc_codec_destroy(ta.codec);
        enc_buf_free(&ta.json);
        if (err) {
                fprintf(stderr, "encore tail: %s\n", errstr);
                return 1;
        }
        return ta.bad ? 1 : 0;
}

static int enc_config_extra(int argc, char **argv, int i, void *opaque) {
        if (!strcmp(argv[i], "--markdown")) {
                *(bool *)opaque = true;
                return 1;
        }
        return 0;
}

static int enc_cmd_config(int argc, char **argv) {
        bool markdown = false;
        enc_conf_t *conf = enc_conf_new();
        int rc = enc_parse_conf_args("config", argc, argv, conf,
                                     enc_config_extra, &markdown);
        if (rc) {
                enc_conf_destroy(conf);
                return enc_rc_exit(rc);
        }
        if (markdown) {
                printf("| key | type | default | description |\n"
                       "|---|---|---|---|\n");
                enc_conf_print_keys(enc_conf_core_keys(), "", true, stdout);
                printf("| `serde.play_event.field.<field>` | string | | "
                       "the writer's field read as encore's PlayEvent field "
                       "<field> (e.g. `serde.play_event.field.cohort = "
                       "experiment_group`) |\n");
                printf("| `kafka.<property>` | string | | passed to "
                       "librdkafka (consumer and producer) |\n"
                       "| `kafka.consumer.<property>`, "
                       "`kafka.producer.<property>` | string | | passed to "
                       "that client only |\n");
                for (const enc_signal_plugin_t *const *p =
                             enc_signal_plugins();
                     *p; p++) {
                        char prefix[96];
                        snprintf(prefix, sizeof(prefix),
                                 "signal.%s.<version>.", (*p)->name);
                        enc_conf_print_keys((*p)->config_keys, prefix, true,
                                            stdout);
                }
        } else {
                enc_conf_dump(conf, stdout);
        }
        enc_conf_destroy(conf);
        return 0;
}

typedef struct enc_replay_args_s {
        enc_conf_t *conf;
        enc_position_t from, to;
        bool have_from, have_to, progress, dry_run, clear_local, force;
        const char *cmd;
        int bad;
} enc_replay_args_t;

static int enc_replay_extra(int argc, char **argv, int i, void *opaque) {
        enc_replay_args_t *ra = opaque;
        char errstr[512];
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--progress")) {
                ra->progress = true;
                return 1;
        }
        if (!strcmp(a, "--dry-run")) {
                ra->dry_run = true;
                return 1;
        }
        if (!strcmp(a, "--clear-local")) {
                ra->clear_local = true;
                return 1;
        }
        if (!strcmp(a, "--force")) {
                ra->force = true;
                return 1;
        }
        if (!v)
                return 0;
        if (!strcmp(a, "--from") || !strcmp(a, "--to")) {
                enc_position_t *pos = a[2] == 'f' ? &ra->from : &ra->to;
                if (enc_position_parse(v, a, pos, errstr, sizeof(errstr))) {
                        fprintf(stderr, "encore %s: %s\n", ra->cmd, errstr);
                        return -1;
                }
                if (a[2] == 'f')
                        ra->have_from = true;
                else
                        ra->have_to = true;
                return 2;
        }
        const char *key = !strcmp(a, "--output-topic") ? "output.topic"
                          : !strcmp(a, "--state-dir")  ? "state.dir"
                          : !strcmp(a, "--bootstrap")
                                  ? "kafka.bootstrap.servers"
                                  : NULL;
        if (!key)
                return 0;
        if (enc_conf_set(ra->conf, key, v, errstr, sizeof(errstr))) {
                fprintf(stderr, "encore %s: %s\n", ra->cmd, errstr);
                return -1;
        }
        return 2;
}

static int enc_cmd_replay(int argc, char **argv, bool reset) {
        enc_replay_args_t ra = {.conf = enc_conf_new(),
                                .cmd = reset ? "reset" : "replay"};
        ra.to.kind = ENC_POS_END;
        int rc = enc_parse_conf_args(ra.cmd, argc, argv, ra.conf,
                                     enc_replay_extra, &ra);
        if (rc) {
                enc_conf_destroy(ra.conf);
                return enc_rc_exit(rc);
        }
        enc_log_set_level((enc_log_level_t)enc_log_level_parse(
                enc_conf_get(ra.conf, "log.level")));
        if (!enc_conf_get_raw(ra.conf, "kafka.bootstrap.servers")) {
                fprintf(stderr, "encore %s: kafka.bootstrap.servers is not "
                                "set (--bootstrap HOST:PORT)\n",
                        ra.cmd);
                enc_conf_destroy(ra.conf);
                return 2;
        }
        if (reset) {
                if (!ra.have_to) {
                        fprintf(stderr, "encore reset: --to is required\n");
                        rc = 2;
                } else {
                        rc = enc_reset_run(ra.conf, &ra.to, ra.dry_run,
                                           ra.clear_local, ra.force);
                }
        } else if (!ra.have_from ||
                   !enc_conf_get_raw(ra.conf, "output.topic") ||
                   !enc_conf_get_raw(ra.conf, "state.dir")) {
                fprintf(stderr, "encore replay: --from, --output-topic and "
                                "--state-dir are required\n");
                rc = 2;
        } else {
                rc = enc_replay_run(ra.conf, &ra.from, &ra.to, ra.progress);
        }
        enc_conf_destroy(ra.conf);
        return rc;
}

int main(int argc, char **argv) {
        enc_malloc_tune();
        if (argc < 2) {
                enc_usage(stderr);
                return 2;
        }
        const char *cmd = argv[1];
        if (!strcmp(cmd, "run"))
                return enc_cmd_run(argc - 1, argv + 1);
        if (!strcmp(cmd, "demo")) {
                /* demo.c parses its own options; its help is here with the
                 * others. */
                for (int i = 2; i < argc; i++)
                        if (enc_is_help(argv[i]))
                                return enc_rc_exit(enc_help_exit("demo"));
                return enc_demo_main(argc - 1, argv + 1);
        }
        if (!strcmp(cmd, "tail"))
                return enc_cmd_tail(argc - 1, argv + 1);
        if (!strcmp(cmd, "readout"))
                return enc_readout_main(argc - 1, argv + 1, stdout, stderr,
                                        enc_readout_help);
        if (!strcmp(cmd, "replay"))
                return enc_cmd_replay(argc - 1, argv + 1, false);
        if (!strcmp(cmd, "reset"))
                return enc_cmd_replay(argc - 1, argv + 1, true);
        if (!strcmp(cmd, "config"))
                return enc_cmd_config(argc - 1, argv + 1);
        if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
                if (argc > 2 && enc_is_help(argv[2]))
                        return enc_rc_exit(enc_help_exit("version"));
                if (argc > 2)
                        return enc_bad_option("version", argv[2]);
                printf("encore %s (librdkafka %s)\n", ENCORE_VERSION,
                       rd_kafka_version_str());
                return 0;
        }
        if (!strcmp(cmd, "help") || enc_is_help(cmd)) {
                /* encore help CMD = encore CMD --help */
                if (argc > 2 && enc_cmd_help_find(argv[2]))
                        return enc_rc_exit(enc_help_exit(argv[2]));
                enc_usage(stdout);
                return 0;
        }
        fprintf(stderr, "encore: unknown command %s\n", cmd);
        enc_usage(stderr);
        return 2;
}
