/*
 * b2.c -- B2: encore end to end over the embedded broker, beside a raw
 * librdkafka passthrough on the same records, in the same run.
 *
 * DESIGN
 * The passthrough is the ceiling for any Kafka-to-Kafka processor on this
 * machine and broker: a consumer in a group (encore's consumer settings)
 * and an idempotent producer (encore's producer settings), producing every
 * record it consumes to an output topic, flushing and committing every
 * second as encore does -- and nothing else. encore then runs its real
 * pipeline (enc_pipeline_run, in this process, on a thread of its own) over
 * the same records. Rounds alternate passthrough and encore on fresh
 * topics so drift on a shared machine hits both; the ratio is of medians.
 *
 * Both rates are measured the same way: the consumed count sampled about
 * once a second (encore's on_tick; the passthrough's own loop), over the
 * samples strictly inside the run, so group joins and the final drain are
 * outside both figures. The input is produced while it is consumed, at
 * most `lead` records ahead (broker.h says why).
 *
 * Over the same ticks, encore's processing thread is accounted for:
 * b2.busy_share is its CPU time over the wall time; the rest splits into
 * the waits the pipeline counts (consumer poll, commit flushes, a full
 * producer queue: enc_pipeline_stats_t) and the time it was runnable but
 * had no CPU (/proc/thread-self/schedstat), which is the machine's load
 * (the broker, the feeder and everyone else's work share its cores), not a
 * wait of encore's. b2.unblocked_share = busy + runnable: 1 minus the share
 * it was blocked.
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "log.h"
#include "pipeline.h"

#define B2_TICKS 4096

/* Samples of (time, records consumed, records produced by the feeder). */
typedef struct b2_ticks_s {
        double t[B2_TICKS];
        uint64_t c[B2_TICKS];
        uint64_t fed[B2_TICKS];
        int n;
} b2_ticks_t;

static void ticks_add(b2_ticks_t *k, double t, uint64_t c, uint64_t fed) {
        if (k->n < B2_TICKS) {
                k->t[k->n] = t;
                k->c[k->n] = c;
                k->fed[k->n] = fed;
                k->n++;
        }
}

/* Records per second between the first sample with something consumed
 * and the last sample before everything was; *min_backlog is the fewest
 * records waiting for the consumer at any sample in between (near 0 would
 * mean the feeder, not the consumer, set the pace). */
static double ticks_rate(const b2_ticks_t *k, uint64_t total,
                         uint64_t *min_backlog) {
        int a = -1, b = -1;
        for (int i = 0; i < k->n; i++) {
                if (a < 0 && k->c[i] > 0)
                        a = i;
                if (k->c[i] < total)
                        b = i;
        }
        *min_backlog = 0;
        if (a < 0 || b <= a)
                return 0;
        *min_backlog = UINT64_MAX;
        for (int i = a; i <= b; i++) {
                uint64_t bl = k->fed[i] > k->c[i] ? k->fed[i] - k->c[i] : 0;
                if (k->fed[i] < total && bl < *min_backlog)
                        *min_backlog = bl;
        }
        if (*min_backlog == UINT64_MAX) /* fed everything before a */
                *min_backlog = total - k->c[b];
        return (double)(k->c[b] - k->c[a]) / (k->t[b] - k->t[a]);
}

/* ---- the passthrough -------------------------------------------------- */

typedef struct b2_pass_s {
        const char *bootstrap, *in, *out, *group;
        const enc_bench_feeder_t *feeder;
        int partitions;
        uint64_t total;
        atomic_uint_fast64_t consumed;
        atomic_uint_fast64_t delivered;
        b2_ticks_t ticks;
        atomic_int failed;
} b2_pass_t;

static uint64_t pass_progress(void *opaque) {
        return atomic_load(&((b2_pass_t *)opaque)->consumed);
}

static void pass_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        (void)rk;
        if (!m->err)
                atomic_fetch_add(&((b2_pass_t *)opaque)->delivered, 1);
}

static rd_kafka_t *pass_client(rd_kafka_type_t type, const char *const *kv,
                               void *opaque) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        for (int i = 0; kv[i]; i += 2)
                if (rd_kafka_conf_set(kc, kv[i], kv[i + 1], err, sizeof(err)) !=
                    RD_KAFKA_CONF_OK) {
                        enc_bench_log("passthrough %s: %s", kv[i], err);
                        rd_kafka_conf_destroy(kc);
                        return NULL;
                }
        if (type == RD_KAFKA_PRODUCER)
                rd_kafka_conf_set_dr_msg_cb(kc, pass_dr);
        rd_kafka_conf_set_opaque(kc, opaque);
        rd_kafka_t *rk = rd_kafka_new(type, kc, err, sizeof(err));
        if (!rk) {
                enc_bench_log("passthrough: %s", err);
                rd_kafka_conf_destroy(kc);
        }
        return rk;
}

/* Flush, then commit the next offsets: the same order encore commits in. */
static void pass_commit(rd_kafka_t *cons, rd_kafka_t *prod, const int64_t *next,
                        const b2_pass_t *p, bool sync) {
        rd_kafka_flush(prod, 60000);
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(p->partitions);
        for (int i = 0; i < p->partitions; i++)
                if (next[i] >= 0)
                        rd_kafka_topic_partition_list_add(l, p->in, i)->offset =
                                next[i];
        if (l->cnt)
                rd_kafka_commit(cons, l, sync ? 0 : 1);
        rd_kafka_topic_partition_list_destroy(l);
}

static void *pass_main(void *arg) {
        b2_pass_t *p = arg;
        /* encore's consumer and producer settings (consumer/pipeline.c) */
        const char *ckv[] = {"bootstrap.servers",
                             p->bootstrap,
                             "group.id",
                             p->group,
                             "client.id",
                             "passthrough-consumer",
                             "partition.assignment.strategy",
                             "cooperative-sticky",
                             "auto.offset.reset",
                             "earliest",
                             "enable.partition.eof",
                             "true",
                             "enable.auto.commit",
                             "false",
                             "enable.auto.offset.store",
                             "false",
                             NULL};
        const char *pkv[] = {"bootstrap.servers",
                             p->bootstrap,
                             "client.id",
                             "passthrough-producer",
                             "linger.ms",
                             "5",
                             "partitioner",
                             "murmur2_random",
                             "compression.type",
                             "lz4",
                             "enable.idempotence",
                             "true",
                             "acks",
                             "all",
                             NULL};
        rd_kafka_t *cons = pass_client(RD_KAFKA_CONSUMER, ckv, p);
        rd_kafka_t *prod = pass_client(RD_KAFKA_PRODUCER, pkv, p);
        int64_t *next = malloc((size_t)p->partitions * sizeof(*next));
        if (!cons || !prod || !next) {
                atomic_store(&p->failed, 1);
                goto out;
        }
        for (int i = 0; i < p->partitions; i++)
                next[i] = -1;
        rd_kafka_poll_set_consumer(cons);
        rd_kafka_topic_partition_list_t *sub =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, p->in, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(cons, sub);
        rd_kafka_topic_partition_list_destroy(sub);

        double last_commit = enc_bench_now(), last_tick = last_commit;
        double last_msg = last_commit;
        uint64_t n = 0;
        while (n < p->total && !atomic_load(&p->failed)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
                if (!m && enc_bench_now() - last_msg > 120) {
                        enc_bench_log("passthrough: nothing for 120 s");
                        atomic_store(&p->failed, 1);
                }
                if (m && !m->err) {
                        last_msg = enc_bench_now();
                        for (;;) {
                                rd_kafka_resp_err_t e = rd_kafka_producev(
                                        prod, RD_KAFKA_V_TOPIC(p->out),
                                        RD_KAFKA_V_KEY(m->key, m->key_len),
                                        RD_KAFKA_V_VALUE(m->payload, m->len),
                                        RD_KAFKA_V_MSGFLAGS(
                                                RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END);
                                if (!e)
                                        break;
                                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                        atomic_store(&p->failed, 1);
                                        break;
                                }
                                rd_kafka_poll(prod, 50);
                        }
                        if (m->partition < p->partitions)
                                next[m->partition] = m->offset + 1;
                        atomic_store(&p->consumed, ++n);
                }
                if (m)
                        rd_kafka_message_destroy(m);
                rd_kafka_poll(prod, 0);
                double now = enc_bench_now();
                if (now - last_commit >= 1.0) {
                        pass_commit(cons, prod, next, p, false);
                        last_commit = now;
                }
                if (now - last_tick >= 1.0) {
                        ticks_add(&p->ticks, now, n,
                                  atomic_load(&p->feeder->produced));
                        last_tick = now;
                }
        }
        pass_commit(cons, prod, next, p, true);
        ticks_add(&p->ticks, enc_bench_now(), n, p->total);
        rd_kafka_consumer_close(cons);
out:
        if (cons)
                rd_kafka_destroy(cons);
        if (prod)
                rd_kafka_destroy(prod);
        free(next);
        return NULL;
}

/* ---- encore ------------------------------------------------------------ */

typedef struct b2_encore_s {
        enc_conf_t *conf;
        const enc_bench_feeder_t *feeder;
        uint64_t total;
        volatile sig_atomic_t stop;
        atomic_uint_fast64_t consumed;
        b2_ticks_t ticks;
        enc_pipeline_stats_t final;
        double last_change; /* when consumed last moved */
        int failed;
        /* the processing thread's CPU and the wall clock at the first and
         * the latest tick while records were still to come: its busy share
         * with a backlog in front of it (group join and drain excluded) */
        double busy_cpu0, busy_wall0, busy_cpu1, busy_wall1;
        double busy_runq0, busy_runq1; /* thread_runq_s() then */
        /* the wait counters at those two ticks */
        enc_pipeline_stats_t busy_st0, busy_st1;
} b2_encore_t;

/* Seconds the calling thread has spent runnable but waiting for a CPU
 * (the second field of /proc/thread-self/schedstat); 0 where the kernel
 * has no schedstat. Tells a thread that waits on something from one
 * that the other threads of a loaded machine keep off the CPU. */
static double thread_runq_s(void) {
        FILE *f = fopen("/proc/thread-self/schedstat", "r");
        unsigned long long run = 0, wait = 0;
        if (!f)
                return 0;
        if (fscanf(f, "%llu %llu", &run, &wait) != 2)
                wait = 0;
        fclose(f);
        return (double)wait / 1e9;
}

static uint64_t encore_progress(void *opaque) {
        return atomic_load(&((b2_encore_t *)opaque)->consumed);
}

static void encore_tick(void *opaque, const enc_pipeline_stats_t *st) {
        b2_encore_t *e = opaque;
        double now = enc_bench_now();
        if (st->engine.consumed != atomic_load(&e->consumed) || !e->last_change)
                e->last_change = now;
        else if (now - e->last_change > 120) {
                enc_bench_log("encore: no progress for 120 s; stopping");
                e->failed = 1;
                e->stop = 1;
        }
        atomic_store(&e->consumed, st->engine.consumed);
        ticks_add(&e->ticks, enc_bench_now(), st->engine.consumed,
                  atomic_load(&e->feeder->produced));
        /* on_tick runs on the processing thread: its CPU clock is ours */
        if (st->engine.consumed > 0 && st->engine.consumed < e->total) {
                double cpu = enc_bench_cpu_thread();
                if (!e->busy_wall0) {
                        e->busy_cpu0 = cpu;
                        e->busy_wall0 = now;
                        e->busy_st0 = *st;
                        e->busy_runq0 = thread_runq_s();
                }
                e->busy_runq1 = thread_runq_s();
                e->busy_cpu1 = cpu;
                e->busy_wall1 = now;
                e->busy_st1 = *st;
        }
        if (st->engine.consumed >= e->total)
                e->stop = 1;
}

static void *encore_main(void *arg) {
        b2_encore_t *e = arg;
        char errstr[512];
        enc_pipeline_t *pl = enc_pipeline_new(e->conf, errstr, sizeof(errstr));
        if (!pl) {
                enc_bench_log("encore: %s", errstr);
                e->failed = 1;
                return NULL;
        }
        enc_pipeline_opts_t opts = {
                .stop = &e->stop, .on_tick = encore_tick, .tick_opaque = e};
        if (enc_pipeline_run(pl, &opts, errstr, sizeof(errstr))) {
                enc_bench_log("encore: %s", errstr);
                e->failed = 1;
        }
        enc_pipeline_stats(pl, &e->final);
        enc_pipeline_destroy(pl);
        return NULL;
}

static int conf_set(enc_conf_t *c, const char *k, const char *v) {
        char err[256];
        if (!enc_conf_set(c, k, v, err, sizeof(err)))
                return 0;
        enc_bench_log("%s", err);
        return -1;
}

/* ---- rounds ------------------------------------------------------------ */

typedef struct b2_result_s {
        double rate;          /* records/s; 0: the round failed */
        double cpu_per_rec;   /* CPU seconds of the whole process / record */
        uint64_t min_backlog; /* records waiting at the leanest sample */
        double busy;          /* encore: processing thread CPU / wall */
        double runq;          /* encore: same span, runnable without a
                                 CPU / wall (the machine's load) */
        /* encore: seconds the processing thread spent in each wait (whole
         * round, join and drain included) */
        double wait_poll, wait_flush, wait_queue, checkpoint;
} b2_result_t;

/*
 * One round on fresh topics: the feeder first fills the input `lead`
 * records deep, then the consumer side starts and the feeder keeps the
 * backlog topped up, so the consumer, not the feeder, sets the pace.
 */
static b2_result_t b2_round(const char *bootstrap, const enc_bench_log_t *log,
                            int parts, uint64_t lead, int round, bool encore,
                            const char *extra) {
        char in[64], out[64], dlq[64], group[64];
        b2_result_t res = {0};
        snprintf(in, sizeof(in), "in-%s-%d", encore ? "e" : "p", round);
        snprintf(out, sizeof(out), "out-%s-%d", encore ? "e" : "p", round);
        snprintf(dlq, sizeof(dlq), "dlq-%d", round);
        snprintf(group, sizeof(group), "g-%s-%d", encore ? "e" : "p", round);
        enc_bench_feeder_t f = {.bootstrap = bootstrap,
                                .topic = in,
                                .partitions = parts,
                                .log = log,
                                .lead = lead};
        b2_pass_t *p = calloc(1, sizeof(*p));
        b2_encore_t *e = calloc(1, sizeof(*e));
        char *dir = enc_bench_tmpdir("b2");
        pthread_t thr;
        if (!p || !e || !dir)
                goto done;
        *p = (b2_pass_t){.bootstrap = bootstrap,
                         .in = in,
                         .out = out,
                         .group = group,
                         .feeder = &f,
                         .partitions = parts,
                         .total = log->n};
        e->total = log->n;
        e->feeder = &f;
        e->conf = enc_conf_new();
        if (conf_set(e->conf, "kafka.bootstrap.servers", bootstrap) ||
            conf_set(e->conf, "input.topic", in) ||
            conf_set(e->conf, "output.topic", out) ||
            conf_set(e->conf, "dlq.topic", dlq) ||
            conf_set(e->conf, "group.id", group) ||
            conf_set(e->conf, "state.dir", dir) ||
            conf_set(e->conf, "metrics.address", ""))
                goto done;
        char err[256];
        if (!enc_bench_conf_extra(e->conf, extra, err, sizeof(err))) {
                enc_bench_log("configuration: %s", err);
                goto done;
        }
        f.progress = encore ? encore_progress : pass_progress;
        f.progress_opaque = encore ? (void *)e : (void *)p;

        double cpu0 = enc_bench_cpu_process();
        if (enc_bench_feeder_start(&f))
                goto done;
        uint64_t fill = lead < log->n ? lead : log->n;
        while (atomic_load(&f.produced) < fill && !atomic_load(&f.done))
                usleep(10000);
        pthread_create(&thr, NULL, encore ? encore_main : pass_main,
                       encore ? (void *)e : (void *)p);
        enc_bench_feeder_join(&f);
        if (atomic_load(&f.failed)) { /* do not wait for records */
                e->stop = 1;
                atomic_store(&p->failed, 1);
        }
        pthread_join(thr, NULL);
        res.cpu_per_rec = (enc_bench_cpu_process() - cpu0) / (double)log->n;
        if (!encore) {
                res.rate = ticks_rate(&p->ticks, log->n, &res.min_backlog);
                /* the delivery count arrives with the final flush */
                if (atomic_load(&p->failed) ||
                    atomic_load(&p->consumed) != log->n ||
                    atomic_load(&p->delivered) != log->n) {
                        enc_bench_log("passthrough round %d: consumed %" PRIu64
                                      ", delivered %" PRIu64 " of %zu",
                                      round, (uint64_t)p->consumed,
                                      (uint64_t)p->delivered, log->n);
                        res.rate = 0;
                }
        } else {
                res.rate = ticks_rate(&e->ticks, log->n, &res.min_backlog);
                if (e->busy_wall1 > e->busy_wall0) {
                        res.busy = (e->busy_cpu1 - e->busy_cpu0) /
                                   (e->busy_wall1 - e->busy_wall0);
                        res.runq = (e->busy_runq1 - e->busy_runq0) /
                                   (e->busy_wall1 - e->busy_wall0);
                }
                const enc_engine_stats_t *s = &e->final.engine;
                uint64_t dlq_n = 0;
                for (int i = 0; i < ENC_DLQ__CNT; i++)
                        dlq_n += s->dead_lettered[i];
                enc_bench_log("encore round %d: %" PRIu64 " updates out, "
                              "%" PRIu64 " dead letters, %" PRIu64
                              " stray records dropped, %" PRIu64
                              " refetched",
                              round, s->updates, dlq_n,
                              e->final.stray_dropped,
                              e->final.stray_refetched);
                const enc_pipeline_stats_t *w0 = &e->busy_st0,
                                           *w1 = &e->busy_st1;
                res.wait_poll = w1->wait_poll_s - w0->wait_poll_s;
                res.wait_flush = w1->wait_flush_s - w0->wait_flush_s;
                res.wait_queue = w1->wait_queue_s - w0->wait_queue_s;
                res.checkpoint = w1->checkpoint_s - w0->checkpoint_s;
                enc_bench_log("encore round %d: in %.2f s with a backlog the "
                              "processing thread was in consumer poll "
                              "%.2f s, commit flushes %.2f s, waits for the "
                              "producer queue %.2f s, checkpoints %.2f s; "
                              "%" PRIu64 " commits, %" PRIu64 " prefetch "
                              "refills; runnable without a CPU %.2f s",
                              round, e->busy_wall1 - e->busy_wall0,
                              res.wait_poll, res.wait_flush, res.wait_queue,
                              res.checkpoint, w1->commits - w0->commits,
                              w1->prefetch_refills - w0->prefetch_refills,
                              e->busy_runq1 - e->busy_runq0);
                if (e->failed || s->consumed != log->n ||
                    s->accepted + dlq_n != s->consumed ||
                    e->final.produced != s->updates) {
                        enc_bench_log("encore round %d: consumed %" PRIu64
                                      " of %zu, updates %" PRIu64
                                      ", delivered %" PRIu64,
                                      round, s->consumed, log->n, s->updates,
                                      e->final.produced);
                        res.rate = 0;
                }
        }
        enc_bench_log("%s round %d: %.0f records/s, %.2f us CPU per record "
                      "(whole process), backlog never below %" PRIu64,
                      encore ? "encore" : "passthrough", round, res.rate,
                      1e6 * res.cpu_per_rec, res.min_backlog);
done:
        if (e)
                enc_conf_destroy(e->conf);
        free(e);
        free(p);
        enc_bench_rmtree(dir);
        free(dir);
        return res;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
        qsort(v, (size_t)n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int enc_bench_b2(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "listeners alive on day 0", 200000, NULL},
                {"days", "days of event time in the log", 2, NULL},
                {"partitions", "input partitions", 8, NULL},
                {"rounds", "passthrough/encore rounds", 2, NULL},
                {"lead", "max records produced ahead of consumption", 300000,
                 NULL},
                {"set", "extra encore configuration, \"key=value;key=value\"",
                 0, ""},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o,
                             "encore-bench b2: encore vs a librdkafka "
                             "passthrough on the embedded broker"))
                return 2;
        int parts = (int)o[2].num, rounds = (int)o[3].num;
        if (rounds < 1 || rounds > 16)
                return 2;
        char errstr[256];
        enc_log_set_level(ENC_LOG_WARN);
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.users = (uint32_t)o[0].num;
        gc.days = (uint32_t)o[1].num;
        enc_bench_log_t log;
        if (enc_bench_log_generate(&log, &gc, 0, parts, errstr,
                                   sizeof(errstr))) {
                enc_bench_log("generate: %s", errstr);
                return 1;
        }
        enc_bench_log("log: %zu records", log.n);

        /* encore's changelog (one partition per input partition) is made
         * here: the mock does not answer CreateTopics. */
        const char *topics[5 * 16 + 1];
        int tparts[5 * 16 + 1];
        char names[5 * 16][32];
        int nt = 0;
        for (int r = 0; r < rounds; r++) {
                static const char *const fmt[] = {"in-p-%d", "out-p-%d",
                                                  "in-e-%d", "out-e-%d",
                                                  "g-e-%d-changelog"};
                for (int k = 0; k < 5; k++) {
                        snprintf(names[nt], sizeof(names[nt]), fmt[k], r);
                        topics[nt] = names[nt];
                        tparts[nt++] = parts;
                }
        }
        topics[nt] = NULL;
        enc_embedded_t *emb = enc_bench_cluster(topics, tparts);
        if (!emb)
                return 1;
        const char *bs = enc_embedded_bootstraps(emb);
        double pr[16], er[16], pc[16], ec[16], eb[16], eq[16];
        uint64_t backlog = UINT64_MAX;
        int rc = 0;
        for (int r = 0; r < rounds; r++) {
                b2_result_t a =
                        b2_round(bs, &log, parts, (uint64_t)o[4].num, r, false,
                                 o[5].str);
                b2_result_t b =
                        b2_round(bs, &log, parts, (uint64_t)o[4].num, r, true,
                                 o[5].str);
                pr[r] = a.rate;
                pc[r] = a.cpu_per_rec;
                er[r] = b.rate;
                ec[r] = b.cpu_per_rec;
                eb[r] = b.busy;
                eq[r] = b.busy + b.runq;
                if (a.min_backlog < backlog)
                        backlog = a.min_backlog;
                if (b.min_backlog < backlog)
                        backlog = b.min_backlog;
                if (pr[r] <= 0 || er[r] <= 0)
                        rc = 1;
        }
        if (!rc) {
                for (int r = 0; r < rounds; r++) {
                        char name[64];
                        snprintf(name, sizeof(name), "b2.round%d_ratio", r);
                        enc_bench_result(name, er[r] / pr[r], "ratio");
                }
                double mp = median(pr, rounds), me = median(er, rounds);
                enc_bench_result("b2.records", (double)log.n, "records");
                enc_bench_result("b2.passthrough_per_s", mp, "records/s");
                enc_bench_result("b2.encore_per_s", me, "records/s");
                enc_bench_result("b2.ratio", me / mp, "ratio");
                enc_bench_result("b2.passthrough_cpu_us_per_record",
                                 1e6 * median(pc, rounds), "us");
                enc_bench_result("b2.encore_cpu_us_per_record",
                                 1e6 * median(ec, rounds), "us");
                /* share of the wall time the processing thread was on a
                 * CPU while records were waiting (ticks, 1 s apart) */
                enc_bench_result("b2.busy_share", median(eb, rounds),
                                 "ratio");
                /* busy or runnable: 1 minus the share it was blocked
                 * (poll, flush, queue, I/O); on a loaded machine the
                 * rest of busy_share is time other threads held the
                 * CPUs (/proc/thread-self/schedstat) */
                enc_bench_result("b2.unblocked_share", median(eq, rounds),
                                 "ratio");
                enc_bench_result("b2.min_backlog", (double)backlog,
                                 "records (0: the feeder set the pace)");
        }
        enc_embedded_destroy(emb);
        enc_bench_log_free(&log);
        return rc;
}
