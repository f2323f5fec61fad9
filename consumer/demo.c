/*
 * demo.c -- `encore demo`: the whole pipeline on one machine in a minute.
 *
 * DESIGN
 * Everything here is the real thing, wired together in one process so a
 * newcomer needs no broker: librdkafka's mock cluster (a Kafka-protocol
 * server on loopback), the encore-gen population model producing Avro
 * PlayEvents through an idempotent librdkafka producer, the same pipeline
 * `encore run` uses (consumer group, RocksDB state, signals, producer), and
 * an assign()-only reader that decodes what came out. A few bad records are
 * produced on purpose so the dead-letter path shows too.
 *
 * The generator runs on its own thread; the pipeline on the main thread,
 * with its idle exit armed once the generator is done.
 */
#include "demo.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "embedded.h"
#include "gen.h"
#include "log.h"
#include "pipeline.h"
#include "readout.h"
#include "tail.h"

typedef struct enc_demo_s {
        const char *bootstrap;
        uint64_t events;
        uint32_t users;
        uint32_t days;
        int partitions;
        volatile int gen_done;
        uint64_t produced;
        int gen_err;
        char gen_errstr[256];
        int64_t gen_first_time;
} enc_demo_t;

static double enc_demo_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static enc_err_t enc_demo_produce(rd_kafka_t *rk, const char *key,
                                  const void *val, size_t len) {
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC("plays"),
                        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                        RD_KAFKA_V_VALUE((void *)val, len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
                if (!err)
                        return ENC_OK;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        return ENC_ERR_KAFKA;
                rd_kafka_poll(rk, 20);
        }
}

/* The generator thread: N events, then three bad records. */
static void *enc_demo_gen_main(void *arg) {
        enc_demo_t *d = arg;
        char rerr[256];
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        enc_codec_t *codec = enc_codec_new(&cc, d->gen_errstr,
                                           sizeof(d->gen_errstr));
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.seed = 42;
        gc.users = d->users;
        gc.days = d->days;
        gc.count = d->events;
        gc.disorder_ms = 20000; /* some disorder, within the 60 s grace */
        enc_gen_t *gen = codec ? enc_gen_new(&gc, d->gen_errstr,
                                             sizeof(d->gen_errstr))
                               : NULL;
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", d->bootstrap, rerr,
                          sizeof(rerr));
        rd_kafka_conf_set(kc, "enable.idempotence", "true", rerr,
                          sizeof(rerr));
        rd_kafka_conf_set(kc, "linger.ms", "20", rerr, sizeof(rerr));
        rd_kafka_conf_set(kc, "partitioner", "murmur2_random", rerr,
                          sizeof(rerr));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, rerr,
                                      sizeof(rerr));
        enc_buf_t buf;
        enc_buf_init(&buf, 1 << 20);
        if (!gen || !rk) {
                d->gen_err = 1;
                if (!rk) {
                        rd_kafka_conf_destroy(kc);
                        snprintf(d->gen_errstr, sizeof(d->gen_errstr), "%s",
                                 rerr);
                }
                goto out;
        }
        enc_event_t ev;
        char last_user[64] = "u0";
        while (enc_gen_next(gen, &ev) == ENC_OK) {
                if (!d->gen_first_time)
                        d->gen_first_time = ev.event_time;
                enc_buf_reset(&buf);
                if (enc_codec_encode_event(codec, &ev, &buf) ||
                    enc_demo_produce(rk, ev.user_id, buf.data, buf.len)) {
                        d->gen_err = 1;
                        snprintf(d->gen_errstr, sizeof(d->gen_errstr),
                                 "produce failed");
                        goto out;
                }
                snprintf(last_user, sizeof(last_user), "%s", ev.user_id);
                d->produced++;
                rd_kafka_poll(rk, 0);
        }
        /* Bad input, on purpose: a record that is not Confluent-framed
         * Avro, a truncated one, and a play from long before the watermark. */
        static const char junk[] = "{\"not\": \"avro\"}";
        (void)enc_demo_produce(rk, last_user, junk, sizeof(junk) - 1);
        (void)enc_demo_produce(rk, last_user, buf.data, buf.len / 2);
        ev.user_id = last_user;
        ev.event_id = "demo-late-1";
        ev.event_time = d->gen_first_time;
        enc_buf_reset(&buf);
        if (!enc_codec_encode_event(codec, &ev, &buf))
                (void)enc_demo_produce(rk, last_user, buf.data, buf.len);
        d->produced += 3;
        rd_kafka_flush(rk, 30000);
out:
        enc_buf_free(&buf);
        if (rk)
                rd_kafka_destroy(rk);
        enc_gen_destroy(gen);
        enc_codec_destroy(codec);
        d->gen_done = 1;
        return NULL;
}

static void enc_demo_tick(void *opaque, const enc_pipeline_stats_t *st) {
        enc_demo_t *d = opaque;
        fprintf(stdout,
                "  ... produced %llu events, encore consumed %llu, "
                "emitted %llu reward updates\n",
                (unsigned long long)d->produced,
                (unsigned long long)st->engine.consumed,
                (unsigned long long)st->engine.updates);
        fflush(stdout);
}

/* ---- reading back what came out ------------------------------------ */

#define ENC_DEMO_MAX_SIGNALS 16

typedef struct enc_demo_out_s {
        enc_codec_t *codec;
        struct {
                char name[64];
                uint64_t cnt;
                char sample[1024];
        } sig[ENC_DEMO_MAX_SIGNALS];
        int nsig;
        uint64_t undecodable;
        enc_buf_t json;
        /* A/B readouts of the reward topic (consumer/readout.c), the
         * generator's treatment lift against control. */
        enc_readout_t *ro[2];
} enc_demo_out_t;

static const char *const enc_demo_ro_signals[2] = {"discovery_habit",
                                                   "progressive_reward"};

static int enc_demo_out_cb(void *opaque, const rd_kafka_message_t *m) {
        enc_demo_out_t *o = opaque;
        enc_update_t up;
        char err[256];
        if (enc_codec_decode_update(o->codec, m->payload, m->len, &up, err,
                                    sizeof(err))) {
                o->undecodable++;
                return 0;
        }
        for (int k = 0; k < 2; k++)
                if (o->ro[k] && enc_readout_add(o->ro[k], &up)) {
                        enc_readout_destroy(o->ro[k]);
                        o->ro[k] = NULL; /* out of memory: no readout */
                }
        char name[64];
        snprintf(name, sizeof(name), "%s:%d", up.signal, up.signal_version);
        int i;
        for (i = 0; i < o->nsig; i++)
                if (!strcmp(o->sig[i].name, name))
                        break;
        if (i == o->nsig) {
                if (o->nsig == ENC_DEMO_MAX_SIGNALS)
                        return 0;
                snprintf(o->sig[i].name, sizeof(o->sig[i].name), "%s", name);
                o->nsig++;
        }
        o->sig[i].cnt++;
        /* Keep a sample with some history: the 3rd update of the signal, or
         * the first final one. */
        if (o->sig[i].cnt <= 3 || (up.final && !strstr(o->sig[i].sample,
                                                       "\"final\":true"))) {
                enc_buf_reset(&o->json);
                if (!enc_update_to_json(&up, &o->json))
                        snprintf(o->sig[i].sample, sizeof(o->sig[i].sample),
                                 "%.*s", (int)o->json.len,
                                 (const char *)o->json.data);
        }
        return 0;
}

typedef struct enc_demo_dlq_s {
        char reasons[16][32];
        uint64_t cnt[16];
        int n;
} enc_demo_dlq_t;

static int enc_demo_dlq_cb(void *opaque, const rd_kafka_message_t *m) {
        enc_demo_dlq_t *d = opaque;
        rd_kafka_headers_t *h = NULL;
        const void *v = NULL;
        size_t vl = 0;
        char reason[32] = "?";
        if (!rd_kafka_message_headers(m, &h) &&
            !rd_kafka_header_get_last(h, "encore.reason", &v, &vl))
                snprintf(reason, sizeof(reason), "%.*s", (int)vl,
                         (const char *)v);
        int i;
        for (i = 0; i < d->n; i++)
                if (!strcmp(d->reasons[i], reason))
                        break;
        if (i == d->n && d->n < 16)
                snprintf(d->reasons[d->n++], 32, "%s", reason);
        if (i < 16)
                d->cnt[i]++;
        return 0;
}

int enc_demo_main(int argc, char **argv) {
        enc_demo_t d = {.events = 60000, .users = 3000, .days = 21,
                        .partitions = 4};
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(a, "--events") && v) {
                        d.events = strtoull(v, NULL, 10);
                        i++;
                } else if (!strcmp(a, "--users") && v) {
                        d.users = (uint32_t)strtoul(v, NULL, 10);
                        i++;
                } else if (!strcmp(a, "--days") && v) {
                        d.days = (uint32_t)strtoul(v, NULL, 10);
                        i++;
                } else {
                        fprintf(stderr,
                                "encore demo: unknown option %s\n"
                                "usage: encore demo [--events N] "
                                "[--users N] [--days N]\n",
                                a);
                        return 2;
                }
        }
        if (d.events == 0 || d.events > 2000000 || d.users == 0 ||
            d.days == 0) {
                fprintf(stderr, "encore demo: --events must be in "
                                "[1, 2000000], --users and --days > 0\n");
                return 2;
        }
        char errstr[512];
        double t0 = enc_demo_now();
        enc_log_set_level(ENC_LOG_WARN);

        printf("encore demo: the whole pipeline in one process\n\n");
        enc_embedded_t *emb = enc_embedded_new(3, errstr, sizeof(errstr));
        if (!emb) {
                fprintf(stderr, "encore demo: %s\n", errstr);
                return 1;
        }
        d.bootstrap = enc_embedded_bootstraps(emb);
        if (enc_embedded_create_topic(emb, "plays", d.partitions, errstr,
                                      sizeof(errstr)) ||
            enc_embedded_create_topic(emb, "rewards", d.partitions, errstr,
                                      sizeof(errstr)) ||
            enc_embedded_create_topic(emb, "encore-dlq", 1, errstr,
                                      sizeof(errstr)) ||
            enc_embedded_create_topic(emb, "encore-demo-changelog",
                                      d.partitions, errstr, sizeof(errstr))) {
                fprintf(stderr, "encore demo: %s\n", errstr);
                enc_embedded_destroy(emb);
                return 1;
        }
        printf("1. embedded Kafka broker (librdkafka mock cluster, 3 "
               "brokers) at %s\n"
               "   topics: plays (%d partitions) -> encore -> rewards, "
               "encore-dlq; state changelog encore-demo-changelog\n",
               d.bootstrap, d.partitions);

        char state_dir[] = "/tmp/encore-demo-XXXXXX";
        if (!mkdtemp(state_dir)) {
                perror("encore demo: mkdtemp");
                enc_embedded_destroy(emb);
                return 1;
        }
        enc_conf_t *conf = enc_conf_new();
        if (enc_conf_set(conf, "kafka.bootstrap.servers", d.bootstrap,
                         errstr, sizeof(errstr)) ||
            enc_conf_set(conf, "state.dir", state_dir, errstr,
                         sizeof(errstr)) ||
            enc_conf_set(conf, "group.id", "encore-demo", errstr,
                         sizeof(errstr)) ||
            enc_conf_set(conf, "commit.interval.ms", "500", errstr,
                         sizeof(errstr)) ||
            enc_conf_set(conf, "log.level", "warn", errstr,
                         sizeof(errstr)) ||
            enc_conf_set(conf, "metrics.address", "127.0.0.1:0", errstr,
                         sizeof(errstr))) {
                fprintf(stderr, "encore demo: %s\n", errstr);
                return 1;
        }
        printf("2. generating %llu play events: %u listeners over %u "
               "days (encore-gen model, seed 42)\n"
               "   plus 3 bad records on purpose (not Avro, truncated, "
               "late)\n",
               (unsigned long long)d.events, d.users, d.days);
        printf("3. encore: consumer group encore-demo, state in %s\n",
               state_dir);
        fflush(stdout);

        enc_pipeline_t *pl = enc_pipeline_new(conf, errstr, sizeof(errstr));
        if (!pl) {
                fprintf(stderr, "encore demo: %s\n", errstr);
                return 1;
        }
        printf("4. metrics while it runs: http://127.0.0.1:%d/metrics "
               "(also /healthz, /readyz)\n\n",
               enc_pipeline_metrics_port(pl));
        fflush(stdout);
        pthread_t th;
        pthread_create(&th, NULL, enc_demo_gen_main, &d);
        enc_pipeline_opts_t opts = {.exit_idle_ms = 1500,
                                    .idle_armed = &d.gen_done,
                                    .on_tick = enc_demo_tick,
                                    .tick_opaque = &d};
        enc_err_t err = enc_pipeline_run(pl, &opts, errstr, sizeof(errstr));
        pthread_join(th, NULL);
        enc_pipeline_stats_t st;
        enc_pipeline_stats(pl, &st);
        enc_buf_t metrics;
        enc_buf_init(&metrics, 16 << 20);
        enc_pipeline_metrics_text(pl, &metrics);
        enc_pipeline_destroy(pl);
        if (d.gen_err) {
                fprintf(stderr, "encore demo: generator: %s\n",
                        d.gen_errstr);
                return 1;
        }
        if (err) {
                fprintf(stderr, "encore demo: pipeline: %s\n", errstr);
                return 1;
        }
        double t1 = enc_demo_now();

        /* What came out, read back from the broker. */
        enc_demo_out_t out = {0};
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        out.codec = enc_codec_new(&cc, errstr, sizeof(errstr));
        enc_buf_init(&out.json, 1 << 16);
        for (int k = 0; k < 2; k++)
                out.ro[k] = enc_readout_new(&(enc_readout_opts_t){
                        .signal = enc_demo_ro_signals[k],
                        .version = 1,
                        .control = "control"});
        uint64_t n_out = 0, n_dlq = 0;
        enc_demo_dlq_t dlq = {0};
        if (enc_tail_read(d.bootstrap, "rewards", 30000, enc_demo_out_cb,
                          &out, &n_out, errstr, sizeof(errstr)) ||
            enc_tail_read(d.bootstrap, "encore-dlq", 30000, enc_demo_dlq_cb,
                          &dlq, &n_dlq, errstr, sizeof(errstr))) {
                fprintf(stderr, "encore demo: reading outputs: %s\n", errstr);
                return 1;
        }
        uint64_t dead = 0;
        for (int i = 0; i < ENC_DLQ__CNT; i++)
                dead += st.engine.dead_lettered[i];

        printf("\n== encore processed the stream in %.1f s ==\n", t1 - t0);
        printf("  events consumed      %llu (%.0f events/s)\n",
               (unsigned long long)st.engine.consumed,
               st.engine.consumed / (t1 - t0));
        printf("  applied to state     %llu (%llu more wait for the "
               "watermark to pass them)\n",
               (unsigned long long)st.engine.applied,
               (unsigned long long)(st.engine.accepted - st.engine.applied));
        printf("  dead-lettered        %llu\n", (unsigned long long)dead);
        printf("  reward updates       %llu on topic rewards (read back: "
               "%llu)\n",
               (unsigned long long)st.engine.updates,
               (unsigned long long)n_out);
        printf("  users expired        %llu (state deleted once nothing "
               "can change)\n",
               (unsigned long long)st.engine.users_expired);
        printf("  commits              %llu\n",
               (unsigned long long)st.commits);
        printf("\n== reward updates by signal ==\n");
        for (int i = 0; i < out.nsig; i++)
                printf("  %-22s %8llu\n", out.sig[i].name,
                       (unsigned long long)out.sig[i].cnt);
        printf("\n== dead letters by reason (topic encore-dlq) ==\n");
        for (int i = 0; i < dlq.n; i++)
                printf("  %-22s %8llu\n", dlq.reasons[i],
                       (unsigned long long)dlq.cnt[i]);
        for (int k = 0; k < 2; k++) {
                const enc_readout_row_t *rows;
                int nrows;
                int32_t v;
                char rerr[256];
                if (!out.ro[k] || enc_readout_compute(out.ro[k], &rows, &nrows,
                                                      &v, rerr, sizeof(rerr)))
                        continue;
                printf("\n== A/B readout: encore readout --signal %s "
                       "--control control ==\n",
                       enc_demo_ro_signals[k]);
                enc_readout_print_table(stdout, enc_demo_ro_signals[k], v,
                                        false, rows, nrows);
        }
        printf("\n== a few decoded RewardUpdates ==\n");
        for (int i = 0; i < out.nsig; i++)
                printf("%s\n", out.sig[i].sample);
        printf("\n== from /metrics at the end (Prometheus text format) ==\n");
        static const char *const show[] = {
                "encore_records_accepted_total ",
                "encore_records_dead_lettered_total{reason=\"late\"}",
                "encore_reward_updates_total{signal=\"discovery_habit\"",
                "encore_state_keys ", "encore_commit_duration_seconds_count",
                "encore_cache_hits_total ", NULL};
        const char *line = (const char *)metrics.data;
        const char *mend = line + metrics.len;
        while (line < mend) {
                const char *nl = memchr(line, '\n', (size_t)(mend - line));
                size_t ll = nl ? (size_t)(nl - line) : (size_t)(mend - line);
                for (int i = 0; show[i]; i++)
                        if (ll >= strlen(show[i]) &&
                            !strncmp(line, show[i], strlen(show[i])))
                                printf("  %.*s\n", (int)ll, line);
                line += ll + 1;
        }
        enc_buf_free(&metrics);
        printf("\n`encore run` serves these at metrics.address "
               "(default http://127.0.0.1:9464/metrics).\n");
        printf("Next: `encore run --config FILE` against your Kafka; "
               "`encore help` lists every key.\n");

        enc_codec_destroy(out.codec);
        enc_buf_free(&out.json);
        for (int k = 0; k < 2; k++)
                enc_readout_destroy(out.ro[k]);
        enc_conf_destroy(conf);
        enc_embedded_destroy(emb);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
        if (system(cmd) != 0)
                fprintf(stderr, "encore demo: could not remove %s\n",
                        state_dir);
        if (st.engine.consumed != d.produced ||
            st.engine.consumed !=
                    st.engine.accepted + dead + st.engine.skipped_restore) {
                fprintf(stderr,
                        "encore demo: accounting does not add up: produced "
                        "%llu, consumed %llu, accepted %llu, dead-lettered "
                        "%llu\n",
                        (unsigned long long)d.produced,
                        (unsigned long long)st.engine.consumed,
                        (unsigned long long)st.engine.accepted,
                        (unsigned long long)dead);
                return 1;
        }
        return 0;
}
