/*
 * mem.c -- peak RSS of encore with 10 million users of state on disk.
 *
 * DESIGN
 * The target is "peak RSS within the configured cache plus 64 MiB", for
 * the encore process itself, so the default run measures the real binary
 * in a child process: the embedded cluster and the feeder live in this
 * process, and the child's VmHWM (the kernel's own high-water mark of its
 * resident set) is the figure. The synthetic population seeds one play per
 * user (10M users of state), then live plays of users drawn at random, so
 * most lookups miss the cache and go to RocksDB. The child's resident set
 * is also sampled twice a second to tell the seed phase from the live one.
 *
 * `--in-process 1` runs the engine alone in this process (no Kafka
 * client), on the same synthetic events: the difference between the two
 * peaks is what librdkafka's queues and buffers cost.
 *
 * The state is built as fast as encore can take it, on disk under /tmp
 * (or $ENCORE_BENCH_DIR); its size is reported and it is removed at the end.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "codec.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "store.h"

static void mem_report(double peak_mib, double live_peak_mib, double cache_mib,
                       const char *prefix) {
        char name[96];
        double target = cache_mib + 64;
        snprintf(name, sizeof(name), "%s.peak_rss_mib", prefix);
        enc_bench_result(name, peak_mib, "MiB");
        if (live_peak_mib > 0) {
                snprintf(name, sizeof(name), "%s.live_phase_peak_rss_mib",
                         prefix);
                enc_bench_result(name, live_peak_mib, "MiB");
        }
        snprintf(name, sizeof(name), "%s.target_mib", prefix);
        enc_bench_result(name, target, "MiB (cache.max.bytes + 64)");
        snprintf(name, sizeof(name), "%s.target_met", prefix);
        enc_bench_result(name, peak_mib <= target, "1=yes");
}

static enc_err_t mem_sink_output(void *opaque, int32_t in_partition,
                                 const char *key, size_t key_len,
                                 const void *val, size_t val_len,
                                 const enc_update_t *up) {
        (void)in_partition;
        (void)key;
        (void)key_len;
        (void)val;
        (void)val_len;
        (void)up;
        (*(uint64_t *)opaque)++;
        return ENC_OK;
}

static enc_err_t mem_sink_dlq(void *opaque, const enc_dead_letter_t *dl) {
        (void)opaque;
        (void)dl;
        return ENC_OK;
}

/* The engine alone, fed synthetic records directly. */
static int mem_in_process(uint64_t users, uint64_t live, int parts,
                          long cache_bytes) {
        char errstr[512], v[32];
        int rc = 1;
        long base = enc_bench_rss_kib(0);
        char *dir = enc_bench_tmpdir("mem-inproc");
        enc_conf_t *conf = enc_conf_new();
        snprintf(v, sizeof(v), "%ld", cache_bytes);
        if (!dir ||
            enc_conf_set(conf, "cache.max.bytes", v, errstr, sizeof(errstr)))
                return 1;
        enc_store_t *st = enc_store_open(dir, NULL, errstr, sizeof(errstr));
        uint64_t updates = 0;
        enc_engine_sink_t sink = {.output = mem_sink_output,
                                  .dead_letter = mem_sink_dlq,
                                  .opaque = &updates};
        enc_engine_t *e =
                st ? enc_engine_new(conf, st, &sink, errstr, sizeof(errstr))
                   : NULL;
        enc_codec_t *codec = enc_codec_new(NULL, errstr, sizeof(errstr));
        int64_t *next = calloc((size_t)parts, sizeof(*next));
        enc_bench_synth_t syn;
        enc_buf_t b;
        enc_buf_init(&b, 1 << 20);
        enc_bench_synth_init(&syn, users, ENC_GEN_DEFAULT_START_MS, 1);
        if (!e || !codec || !next) {
                enc_bench_log("in-process: %s", errstr);
                goto done;
        }
        for (int p = 0; p < parts; p++) {
                int64_t resume;
                if (enc_engine_assign(e, p, &resume, errstr, sizeof(errstr)))
                        goto done;
        }
        double t0 = enc_bench_now(), last = t0;
        long seed_peak = 0;
        uint64_t memtable_max = 0, cache_max = 0;
        for (uint64_t i = 0; i < users + live; i++) {
                enc_event_t ev;
                enc_bench_synth_event(&syn, i, i < users, &ev);
                enc_buf_reset(&b);
                if (enc_codec_encode_event(codec, &ev, &b))
                        goto done;
                size_t klen = strlen(ev.user_id);
                int32_t p = enc_bench_partition(ev.user_id, klen, parts);
                enc_record_t rec = {.topic = "plays",
                                    .partition = p,
                                    .offset = next[p]++,
                                    .timestamp = -1,
                                    .key = ev.user_id,
                                    .key_len = klen,
                                    .value = b.data,
                                    .value_len = b.len};
                if (enc_engine_record(e, &rec, errstr, sizeof(errstr)) ||
                    ((i % 100000 == 99999 || enc_engine_commit_due(e)) &&
                     enc_engine_checkpoint(e, errstr, sizeof(errstr)))) {
                        enc_bench_log("in-process: %s", errstr);
                        goto done;
                }
                if (i + 1 == users)
                        seed_peak = enc_bench_rss_peak_kib(0);
                if (i % 50000 == 0) {
                        /* what the big consumers hold, for the breakdown */
                        enc_store_stats_t ss;
                        enc_engine_stats_t es;
                        enc_store_stats(st, &ss);
                        enc_engine_stats(e, &es);
                        if (ss.memtable_bytes > memtable_max)
                                memtable_max = ss.memtable_bytes;
                        if (es.cache_bytes > cache_max)
                                cache_max = es.cache_bytes;
                }
                if (enc_bench_now() - last > 10) {
                        last = enc_bench_now();
                        enc_bench_log("in-process: %" PRIu64
                                      " records, RSS %ld MiB",
                                      i + 1, enc_bench_rss_kib(0) / 1024);
                }
        }
        if (enc_engine_checkpoint(e, errstr, sizeof(errstr)))
                goto done;
        long peak = enc_bench_rss_peak_kib(0);
        enc_bench_log("in-process: %" PRIu64 " records in %.0f s; peak RSS "
                      "%ld MiB (after the seed %ld MiB; %ld MiB before the "
                      "store was opened)",
                      users + live, enc_bench_now() - t0, peak / 1024,
                      seed_peak / 1024, base / 1024);
        mem_report((double)peak / 1024, 0, (double)cache_bytes / 1048576.0,
                   "mem_engine_only");
        enc_bench_result("mem_engine_only.baseline_rss_mib",
                         (double)base / 1024, "MiB");
        enc_bench_result("mem_engine_only.memtables_max_mib",
                         (double)memtable_max / 1048576.0,
                         "MiB (RocksDB, sampled)");
        enc_bench_result("mem_engine_only.cache_charged_max_mib",
                         (double)cache_max / 1048576.0,
                         "MiB (users cache, sampled)");
        enc_bench_result("mem_engine_only.state_disk_mib",
                         (double)enc_bench_du(dir) / 1048576.0, "MiB");
        rc = 0;
done:
        enc_engine_destroy(e);
        enc_store_close(st);
        enc_codec_destroy(codec);
        enc_conf_destroy(conf);
        enc_buf_free(&b);
        free(next);
        enc_bench_rmtree(dir);
        free(dir);
        return rc;
}

int enc_bench_mem(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "users of state (one seed play each)", 10000000,
                 NULL},
                {"live", "live plays of random users after the seed", 2000000,
                 NULL},
                {"partitions", "input partitions", 8, NULL},
                {"cache-mb", "cache.max.bytes in MiB", 64, NULL},
                {"lead", "max records produced ahead of commits", 200000, NULL},
                {"in-process", "the engine alone in this process (1)", 0, NULL},
                {"encore", "encore binary", 0, ""},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o, "encore-bench mem: peak RSS"))
                return 2;
        uint64_t users = (uint64_t)o[0].num, live = (uint64_t)o[1].num;
        int parts = (int)o[2].num;
        long cache_bytes = (long)(o[3].num * 1048576);
        if (o[5].num)
                return mem_in_process(users, live, parts, cache_bytes);

        char pathbuf[512], log_path[700], bs[256], sd[600], cm[64];
        const char *encore =
                enc_bench_encore_path(o[6].str, pathbuf, sizeof(pathbuf));
        /* The changelog is made here: the mock does not answer
         * CreateTopics. */
        const char *topics[] = {"mem-in", "mem-out", "mem-dlq",
                                "encore-mem-changelog", NULL};
        const int tparts[] = {parts, parts, 1, parts};
        enc_embedded_t *emb = enc_bench_cluster(topics, tparts);
        if (!emb)
                return 1;
        char *dir = enc_bench_tmpdir("mem-state");
        char *logdir = enc_bench_tmpdir("mem-logs");
        if (!dir || !logdir)
                return 1;
        snprintf(log_path, sizeof(log_path), "%s/encore.log", logdir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s",
                 enc_embedded_bootstraps(emb));
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        snprintf(cm, sizeof(cm), "cache.max.bytes=%ld", cache_bytes);
        const char *sets[] = {bs,
                              sd,
                              cm,
                              "input.topic=mem-in",
                              "output.topic=mem-out",
                              "dlq.topic=mem-dlq",
                              "group.id=encore-mem",
                              "metrics.address=127.0.0.1:0",
                              "log.level=info",
                              NULL};
        enc_bench_group_t *g = enc_bench_group_new(
                enc_embedded_bootstraps(emb), "encore-mem", "mem-in", parts);
        enc_bench_feeder_t f = {.bootstrap = enc_embedded_bootstraps(emb),
                                .topic = "mem-in",
                                .partitions = parts,
                                .synth_users = users,
                                .synth_live = live,
                                .synth_step_ms = 1,
                                .lead = (uint64_t)o[4].num,
                                .progress = enc_bench_group_committed,
                                .progress_opaque = g};
        int rc = 1;
        bool feeding = false;
        pid_t pid = enc_bench_spawn_encore(encore, sets, log_path);
        if (!g || pid < 0 || enc_bench_feeder_start(&f))
                goto done;
        feeding = true;
        double t0 = enc_bench_now(), last = t0, seed_s = 0;
        long seed_peak = 0, live_peak = 0;
        uint64_t total = users + live;
        int port = -1;
        for (;;) {
                /* Committed offsets trail the last grace period of events
                 * (still buffered), so the end is read from the consumed
                 * count on /metrics. */
                uint64_t c = enc_bench_group_committed(g);
                if (port < 0)
                        port = enc_bench_log_metrics_port(log_path);
                long rss = enc_bench_rss_kib(pid);
                if (rss < 0) {
                        enc_bench_log("encore exited; see %s", log_path);
                        goto done;
                }
                if (c < users) {
                        if (rss > seed_peak)
                                seed_peak = rss;
                } else {
                        if (!seed_s)
                                seed_s = enc_bench_now() - t0;
                        if (rss > live_peak)
                                live_peak = rss;
                }
                if (atomic_load(&f.done) && port > 0 &&
                    enc_bench_scrape(port, "encore_records_consumed_total") >=
                            (double)total)
                        break;
                if (enc_bench_now() - last > 10) {
                        last = enc_bench_now();
                        enc_bench_log("%" PRIu64 " records committed, RSS "
                                      "%ld MiB, peak %ld MiB",
                                      c, rss / 1024,
                                      enc_bench_rss_peak_kib(pid) / 1024);
                }
                usleep(500000);
        }
        double secs = enc_bench_now() - t0;
        long peak = enc_bench_rss_peak_kib(pid);
        enc_bench_log("%" PRIu64 " records in %.0f s (seed %.0f s); peak RSS "
                      "%ld MiB (seed phase sampled %ld, live phase sampled "
                      "%ld)",
                      total, secs, seed_s, peak / 1024, seed_peak / 1024,
                      live_peak / 1024);
        mem_report((double)peak / 1024, (double)live_peak / 1024, o[3].num,
                   "mem");
        enc_bench_result("mem.users_of_state", (double)users, "users");
        if (port > 0) {
                enc_bench_result("mem.state_keys",
                                 enc_bench_scrape(port, "encore_state_keys"),
                                 "keys (RocksDB estimate)");
                enc_bench_result(
                        "mem.cache_bytes_mib",
                        enc_bench_scrape(port, "encore_cache_size_bytes") /
                                1048576.0,
                        "MiB");
        }
        enc_bench_result("mem.records_per_s", (double)total / secs,
                         "records/s");
        enc_bench_result("mem.seed_seconds", seed_s, "s");
        rc = 0;
done:
        atomic_store(&f.stop, 1);
        if (pid > 0) {
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
        }
        if (feeding)
                enc_bench_feeder_join(&f);
        enc_bench_result("mem.state_disk_mib",
                         (double)enc_bench_du(dir) / 1048576.0, "MiB");
        enc_bench_group_destroy(g);
        enc_embedded_destroy(emb);
        enc_bench_rmtree(dir);
        if (!rc)
                enc_bench_rmtree(logdir);
        else
                enc_bench_log("log kept in %s", logdir);
        free(dir);
        free(logdir);
        return rc;
}
