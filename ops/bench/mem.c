/*
 * mem.c -- peak RSS of encore with 10 million users of state on disk.
 *
 * DESIGN
 * The target is "peak RSS within the configured cache plus 64 MiB", for
 * the encore process itself, so the default run measures the real binary
 * in a child process: the embedded cluster and the feeder live in this
 * process, and the child's VmHWM (the kernel's own high-water mark of its
 * resident set) is the figure.
 *
 * The 10M users of state are written straight into the store first
 * (enc_bench_state_build, in a forked process so none of its memory is
 * counted anywhere; about a minute instead of the hours encore would take
 * to build them from plays). encore then starts on that store and takes
 * live plays of users drawn at random from the 10M, so nearly every lookup
 * misses the cache and goes to RocksDB, at about the event-time rate 10M
 * real listeners would produce (one play per ~1.2 ms, so the reorder
 * buffer holds what it would in production).
 *
 * `--in-process 1` runs the engine alone in this process (no Kafka
 * client, the allocator tuned as encore tunes it) on the same state and
 * plays: the difference between the two
 * peaks is what librdkafka's queues and buffers cost, and its breakdown
 * (memtables, cache charge) shows where the rest goes.
 *
 * The state lives under /tmp (or $ENCORE_BENCH_DIR); its size on disk is
 * reported and it is removed at the end.
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

/* Live plays start an hour into a day, after the state's last timers. */
#define MEM_T0   (ENC_GEN_DEFAULT_START_MS + 3600 * 1000)
#define MEM_STEP 1 /* ms of event time per play */

static void mem_report(double peak_mib, double cache_mib, const char *prefix) {
        char name[96];
        double target = cache_mib + 64;
        snprintf(name, sizeof(name), "%s.peak_rss_mib", prefix);
        enc_bench_result(name, peak_mib, "MiB");
        snprintf(name, sizeof(name), "%s.target_mib", prefix);
        enc_bench_result(name, target, "MiB (cache.max.bytes + 64)");
        snprintf(name, sizeof(name), "%s.target_met", prefix);
        enc_bench_result(name, peak_mib <= target, "1=yes");
}

/* Builds the state in a child process, so this one never holds its
 * memory; reports the time and the size on disk. */
static int mem_build(const char *dir, uint64_t users, int parts,
                     const char *prefix) {
        double t0 = enc_bench_now();
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                char errstr[512];
                if (enc_bench_state_build(dir, users, parts, MEM_T0, errstr,
                                          sizeof(errstr))) {
                        enc_bench_log("state build: %s", errstr);
                        _exit(1);
                }
                _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status))
                return -1;
        char name[96];
        double secs = enc_bench_now() - t0;
        double mib = (double)enc_bench_du(dir) / 1048576.0;
        enc_bench_log("%" PRIu64 " users of state written in %.0f s: %.0f MiB "
                      "on disk",
                      users, secs, mib);
        snprintf(name, sizeof(name), "%s.users_of_state", prefix);
        enc_bench_result(name, (double)users, "users");
        snprintf(name, sizeof(name), "%s.state_build_s", prefix);
        enc_bench_result(name, secs, "s");
        snprintf(name, sizeof(name), "%s.state_disk_mib", prefix);
        enc_bench_result(name, mib, "MiB");
        return 0;
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

/* The engine alone, fed the live plays directly. */
static int mem_in_process(const char *dir, uint64_t users, uint64_t live,
                          int parts, long cache_bytes, const char *extra) {
        char errstr[512], v[32];
        enc_malloc_tune(); /* as encore's main: no thread has started yet */
        int rc = 1;
        long base = enc_bench_rss_kib(0);
        enc_conf_t *conf = enc_conf_new();
        snprintf(v, sizeof(v), "%ld", cache_bytes);
        if (enc_conf_set(conf, "cache.max.bytes", v, errstr, sizeof(errstr)) ||
            !enc_bench_conf_extra(conf, extra, errstr, sizeof(errstr))) {
                enc_bench_log("in-process: %s", errstr);
                enc_conf_destroy(conf);
                return 1;
        }
        enc_store_conf_t stc;
        enc_store_conf_from(conf, &stc); /* sized as encore sizes it */
        enc_store_t *st = enc_store_open(dir, &stc, errstr, sizeof(errstr));
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
        enc_bench_synth_init(&syn, users, MEM_T0, MEM_STEP);
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
        uint64_t memtable_max = 0, cache_max = 0;
        for (uint64_t i = 0; i < live; i++) {
                enc_event_t ev;
                enc_bench_synth_event(&syn, i, false, &ev);
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
                if (i % 4096 == 4095) {
                        /* What the big consumers hold, for the breakdown:
                         * often enough to see the memtables and the cache
                         * between checkpoints, not just after one. */
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
                                      " plays, RSS %ld MiB",
                                      i + 1, enc_bench_rss_kib(0) / 1024);
                }
        }
        if (enc_engine_checkpoint(e, errstr, sizeof(errstr)))
                goto done;
        long peak = enc_bench_rss_peak_kib(0);
        double secs = enc_bench_now() - t0;
        enc_bench_log("in-process: %" PRIu64 " plays in %.0f s; peak RSS %ld "
                      "MiB (%ld MiB before the store was opened)",
                      live, secs, peak / 1024, base / 1024);
        mem_report((double)peak / 1024, (double)cache_bytes / 1048576.0,
                   "mem_engine_only");
        enc_bench_result("mem_engine_only.baseline_rss_mib",
                         (double)base / 1024, "MiB");
        enc_bench_result("mem_engine_only.memtables_max_mib",
                         (double)memtable_max / 1048576.0,
                         "MiB (RocksDB, sampled)");
        enc_bench_result("mem_engine_only.cache_charged_max_mib",
                         (double)cache_max / 1048576.0,
                         "MiB (users cache, sampled)");
        enc_bench_result("mem_engine_only.plays_per_s", (double)live / secs,
                         "plays/s");
        rc = 0;
done:
        enc_engine_destroy(e);
        enc_store_close(st);
        enc_codec_destroy(codec);
        enc_conf_destroy(conf);
        enc_buf_free(&b);
        free(next);
        return rc;
}

/* The encore binary in a child process, fed through the embedded broker. */
static int mem_child(const char *dir, const char *encore, uint64_t users,
                     uint64_t live, int parts, long cache_bytes,
                     uint64_t lead, const char *extra) {
        char log_path[700], bs[256], sd[600], cm[64];
        char extra_kv[16][512];
        /* The changelog is made here: the mock does not answer
         * CreateTopics. */
        const char *topics[] = {"mem-in", "mem-out", "mem-dlq",
                                "encore-mem-changelog", NULL};
        const int tparts[] = {parts, parts, 1, parts};
        enc_embedded_t *emb = enc_bench_cluster(topics, tparts);
        char *logdir = enc_bench_tmpdir("mem-logs");
        if (!emb || !logdir)
                return 1;
        snprintf(log_path, sizeof(log_path), "%s/encore.log", logdir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s",
                 enc_embedded_bootstraps(emb));
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        snprintf(cm, sizeof(cm), "cache.max.bytes=%ld", cache_bytes);
        const char *sets[32] = {bs,
                                sd,
                                cm,
                                "input.topic=mem-in",
                                "output.topic=mem-out",
                                "dlq.topic=mem-dlq",
                                "group.id=encore-mem",
                                "metrics.address=127.0.0.1:0",
                                "log.level=info",
                                NULL};
        /* --set "k=v;k=v": appended, so a key given twice takes the
         * later value, as encore's --set does. */
        int ns = 9, nx = 0;
        for (const char *p = extra; p && *p && nx < 16;) {
                size_t n = strcspn(p, ";");
                snprintf(extra_kv[nx], sizeof(extra_kv[nx]), "%.*s", (int)n,
                         p);
                sets[ns++] = extra_kv[nx++];
                p += n + (p[n] == ';');
        }
        sets[ns] = NULL;
        enc_bench_group_t *g = enc_bench_group_new(
                enc_embedded_bootstraps(emb), "encore-mem", "mem-in", parts);
        enc_bench_feeder_t f = {.bootstrap = enc_embedded_bootstraps(emb),
                                .topic = "mem-in",
                                .partitions = parts,
                                .synth_users = users,
                                .synth_live = live,
                                .synth_t0 = MEM_T0,
                                .synth_step_ms = MEM_STEP,
                                .lead = lead,
                                .progress = enc_bench_group_committed,
                                .progress_opaque = g};
        int rc = 1, port = -1;
        bool feeding = false;
        pid_t pid = enc_bench_spawn_encore(encore, sets, log_path);
        if (!g || pid < 0 || enc_bench_feeder_start(&f))
                goto done;
        feeding = true;
        double t0 = enc_bench_now(), last = t0;
        for (;;) {
                /* Committed offsets trail the last grace period of plays
                 * (still buffered), so the end is read from the consumed
                 * count on /metrics. */
                if (port < 0)
                        port = enc_bench_log_metrics_port(log_path);
                if (enc_bench_rss_kib(pid) < 0) {
                        enc_bench_log("encore exited; see %s", log_path);
                        goto done;
                }
                if (atomic_load(&f.done) && port > 0 &&
                    enc_bench_scrape(port, "encore_records_consumed_total") >=
                            (double)live)
                        break;
                if (enc_bench_now() - last > 10) {
                        last = enc_bench_now();
                        enc_bench_log("%" PRIu64 " plays committed, RSS %ld "
                                      "MiB, peak %ld MiB",
                                      enc_bench_group_committed(g),
                                      enc_bench_rss_kib(pid) / 1024,
                                      enc_bench_rss_peak_kib(pid) / 1024);
                }
                usleep(500000);
        }
        double secs = enc_bench_now() - t0;
        long peak = enc_bench_rss_peak_kib(pid);
        enc_bench_log("%" PRIu64 " plays in %.0f s; peak RSS %ld MiB", live,
                      secs, peak / 1024);
        mem_report((double)peak / 1024, (double)cache_bytes / 1048576.0, "mem");
        enc_bench_result("mem.cache_bytes_mib",
                         enc_bench_scrape(port, "encore_cache_size_bytes") /
                                 1048576.0,
                         "MiB (charged)");
        enc_bench_result("mem.plays_per_s", (double)live / secs, "plays/s");
        rc = 0;
done:
        atomic_store(&f.stop, 1);
        if (pid > 0) {
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
        }
        if (feeding)
                enc_bench_feeder_join(&f);
        enc_bench_group_destroy(g);
        enc_embedded_destroy(emb);
        if (rc)
                enc_bench_log("log kept in %s", logdir);
        else
                enc_bench_rmtree(logdir);
        free(logdir);
        return rc;
}

int enc_bench_mem(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "users of state on disk", 10000000, NULL},
                {"live", "live plays of random users", 300000, NULL},
                {"partitions", "input partitions", 8, NULL},
                {"cache-mb", "cache.max.bytes in MiB", 64, NULL},
                {"lead", "max plays produced ahead of commits", 200000, NULL},
                {"in-process", "the engine alone in this process (1)", 0, NULL},
                {"encore", "encore binary", 0, ""},
                {"set", "extra encore configuration, \"key=value;key=value\"",
                 0, ""},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o, "encore-bench mem: peak RSS"))
                return 2;
        uint64_t users = (uint64_t)o[0].num, live = (uint64_t)o[1].num;
        int parts = (int)o[2].num;
        long cache_bytes = (long)(o[3].num * 1048576);
        const char *prefix = o[5].num ? "mem_engine_only" : "mem";
        char pathbuf[512];
        char *dir = enc_bench_tmpdir("mem-state");
        if (!dir || mem_build(dir, users, parts, prefix)) {
                enc_bench_rmtree(dir);
                free(dir);
                return 1;
        }
        int rc = o[5].num ? mem_in_process(dir, users, live, parts, cache_bytes,
                                           o[7].str)
                          : mem_child(dir,
                                      enc_bench_encore_path(o[6].str, pathbuf,
                                                            sizeof(pathbuf)),
                                      users, live, parts, cache_bytes,
                                      (uint64_t)o[4].num, o[7].str);
        enc_bench_rmtree(dir);
        free(dir);
        return rc;
}
