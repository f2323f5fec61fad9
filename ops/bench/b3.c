/*
 * b3.c -- B3: recovery. How long from a SIGKILL (and from a clean SIGTERM
 * stop) until a restarted encore is processing again, with a million users
 * of state on disk.
 *
 * DESIGN
 * encore runs as a child process (the real binary) against the embedded
 * cluster in this process, on a state directory holding 1M users of state
 * (written directly by enc_bench_state_build: seeding them through encore
 * would measure encore's write path for an hour, not its recovery). Live
 * plays of random users keep flowing, produced no more than `lead` records
 * ahead of the group's committed offsets.
 * Then, several times: kill the child, start it again at once on the same
 * state directory, and find the first output record the new process
 * produced -- the first message on the output topic whose producer
 * timestamp (wall clock, set when encore hands it to librdkafka) is at or
 * after the restart. Outputs follow processing within milliseconds here
 * (the input keeps the watermark moving), so that is "processing again".
 * encore's own log splits the time: process start to `pipeline_start`
 * (RocksDB open with its WAL replay, engine, Kafka clients, the changelog
 * check), to `partition_assigned` (group join), to the first output
 * (re-reading [C, E), resuming).
 *
 * After a SIGKILL the group still holds the dead member until its session
 * times out (kafka.consumer.session.timeout.ms; librdkafka's default is
 * 45 s), and the new member cannot be given the partitions before that,
 * whatever encore does; `--static 1` sets group.instance.id so the restart
 * takes the dead member's place (KIP-345) where the broker supports it.
 * `--pin 1` runs encore with input.partitions=all: no group at all, so the
 * "group join" phase is only the fetch of the topic's metadata.
 *
 * Last, the lost disk: the state directory is removed and encore restores
 * every partition from its changelog topic; the restore rate comes from
 * encore's restore_done log lines. The mock keeps only ~5 MiB of each
 * (uncompacted) changelog partition, so a million users do not all come
 * back here; the counts say how many did, and a full-size restore needs a
 * real Kafka. The restore's ceiling on this machine is a plain librdkafka
 * consumer reading the same changelog right after (b3_ceiling): the
 * restore rate is reported with its ratio to it, which a loaded machine
 * moves less than either rate, and encore's CPU per restored record
 * (process_cpu_seconds of its restore_done lines), which it moves less
 * still.
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "store.h"

typedef struct b3_env_s {
        const char *encore;
        const char *bootstrap; /* the embedded cluster's */
        const char *sets[32];
        char bs[256], sd[600], st[64], gi[64];
        char *dir;    /* state */
        char *logdir; /* child logs */
        int restarts;
} b3_env_t;

static pid_t b3_spawn(b3_env_t *env, char *log_path, size_t size) {
        snprintf(log_path, size, "%s/encore-%d.log", env->logdir,
                 env->restarts++);
        return enc_bench_spawn_encore(env->encore, env->sets, log_path);
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static double median_i64(int64_t *v, int n) {
        qsort(v, (size_t)n, sizeof(*v), cmp_i64);
        return n % 2 ? (double)v[n / 2] : (double)(v[n / 2 - 1] + v[n / 2]) / 2;
}

static int64_t b3_since(int64_t later, int64_t earlier) {
        return later >= 0 && earlier >= 0 ? later - earlier : -1;
}

/* Waits for the first output after @p mark, then reads the new process's
 * log; fills the phase times (ms) and returns mark-to-output or -1. */
static int64_t b3_observe(enc_bench_watch_t *w, const char *log_path,
                          int64_t mark, int64_t spawned, int64_t ph[3]) {
        int64_t first = enc_bench_watch_wait(w, 180);
        int64_t start =
                enc_bench_log_event_ms(log_path, "pipeline_start", false);
        int64_t assigned =
                enc_bench_log_event_ms(log_path, "partition_assigned", false);
        /* Pinned partitions are assigned before pipeline_start: no
         * join phase then. */
        if (assigned >= 0 && assigned < start)
                assigned = start;
        ph[0] = b3_since(start, spawned);
        ph[1] = b3_since(assigned, start);
        ph[2] = b3_since(first, assigned);
        return b3_since(first, mark);
}

/* Exact user keys in a (closed) state directory: open, compact, count. */
static double b3_count_keys(const char *dir) {
        char errstr[256];
        enc_store_t *st = enc_store_open(dir, NULL, errstr, sizeof(errstr));
        if (!st) {
                enc_bench_log("count keys: %s", errstr);
                return -1;
        }
        enc_store_stats_t ss;
        enc_store_compact(st); /* no tombstones or old versions left */
        enc_store_stats(st, &ss);
        enc_store_close(st);
        return (double)ss.user_keys;
}

/* The largest value of " field=" on lines of @p event in @p log_path, or
 * -1 (process_cpu_seconds of restore_done grows while restores run). */
static double b3_log_max(const char *log_path, const char *event,
                         const char *field) {
        char line[4096], want[64], ev[96];
        snprintf(want, sizeof(want), " %s=", field);
        snprintf(ev, sizeof(ev), " event=%s ", event);
        FILE *f = fopen(log_path, "r");
        double max = -1;
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                const char *at = strstr(line, want);
                if (at && strstr(line, ev)) {
                        double v = strtod(at + strlen(want), NULL);
                        if (v > max)
                                max = v;
                }
        }
        fclose(f);
        return max;
}

/*
 * The ceiling of a restore on this machine: a plain librdkafka consumer, with
 * the restore consumer's settings (librdkafka's defaults and what
 * consumer/changelog.c sets), reading every partition of the changelog
 * from its low to its high watermark and doing nothing with the records.
 * Timed like encore's restore: from the assignment to the last partition's
 * end. Fills *records and returns the seconds, or -1. It runs in this
 * process, beside the embedded broker, after encore has stopped: the
 * restore shared the two cores with the broker too.
 */
static double b3_ceiling(const char *bootstrap, const char *topic, int parts,
                         double *records) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        const char *kv[] = {"bootstrap.servers", bootstrap,
                            "group.id", "b3-ceiling",
                            "client.id", "b3-ceiling",
                            "enable.auto.commit", "false",
                            "enable.partition.eof", "true",
                            "isolation.level", "read_committed",
                            NULL};
        for (int i = 0; kv[i]; i += 2)
                rd_kafka_conf_set(kc, kv[i], kv[i + 1], err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                enc_bench_log("ceiling: %s", err);
                return -1;
        }
        int64_t hi[64];
        int left = 0;
        double secs = -1;
        uint64_t n = 0;
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(parts);
        for (int p = 0; p < parts && p < 64; p++) {
                int64_t lo = 0;
                if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p],
                                                     10000)) {
                        enc_bench_log("ceiling: watermarks of %d", p);
                        goto out;
                }
                if (hi[p] > lo) {
                        rd_kafka_topic_partition_list_add(l, topic, p)
                                ->offset = lo;
                        left++;
                }
        }
        double t0 = enc_bench_now();
        rd_kafka_assign(rk, l);
        while (left > 0) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
                if (!m) {
                        if (enc_bench_now() - t0 > 120) {
                                enc_bench_log("ceiling: nothing for 120 s");
                                goto out;
                        }
                        continue;
                }
                /* The same end test as the restore: position reaches the
                 * high watermark seen at the start. */
                int64_t pos = -1;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        pos = m->offset;
                else if (!m->err) {
                        n++;
                        pos = m->offset + 1;
                }
                int32_t p = m->partition;
                if (p >= 0 && p < parts && hi[p] >= 0 && pos >= hi[p]) {
                        hi[p] = -1; /* done */
                        left--;
                }
                rd_kafka_message_destroy(m);
        }
        secs = enc_bench_now() - t0;
        *records = (double)n;
out:
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return secs;
}

/*
 * The lost disk: stop encore cleanly, remove its state directory and start
 * it again, so every partition is restored from the changelog. The rate is
 * from encore's own restore_start/restore_done lines; the users that came
 * back are counted exactly in the store once every partition is restored
 * (encore is stopped at that moment, so at most a few hundred milliseconds
 * of live plays can have added users). On the mock cluster the changelog is
 * not compacted and keeps only ~5 MiB a partition, so fewer users may come
 * back than there were; both counts are reported.
 */
static int b3_lost_disk(b3_env_t *env, enc_bench_watch_t *w, pid_t *pid,
                        char *log_path, size_t size, int parts,
                        double settle_s) {
        usleep((useconds_t)(settle_s * 1e6));
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
        *pid = -1;
        double before = b3_count_keys(env->dir);
        enc_bench_rmtree(env->dir);
        if (before < 0 || mkdir(env->dir, 0755))
                return -1;
        int64_t t_spawn = enc_bench_wall_ms(), ph[3];
        enc_bench_watch_mark(w, t_spawn);
        *pid = b3_spawn(env, log_path, size);
        for (int i = 0; i < 6000 && *pid > 0 &&
                        enc_bench_log_count(log_path, "restore_done") < parts;
             i++)
                usleep(100000);
        int64_t first = b3_observe(w, log_path, t_spawn, t_spawn, ph);
        /* The restoring process's high-water mark: it started on an empty
         * directory, so its peak is the restore's (or the processing's
         * after it, whichever is higher). */
        long peak_kib = enc_bench_rss_peak_kib(*pid);
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = -1;
        double after = b3_count_keys(env->dir);
        double recs = enc_bench_log_sum(log_path, "restore_done", "records");
        double urecs = enc_bench_log_sum(log_path, "restore_done", "users");
        double cpu = b3_log_max(log_path, "restore_done",
                                "process_cpu_seconds");
        int64_t r0 = enc_bench_log_event_ms(log_path, "restore_start", false);
        int64_t r1 = enc_bench_log_event_ms(log_path, "restore_done", true);
        double secs = r0 > 0 && r1 >= r0 ? (double)(r1 - r0) / 1000.0 : 0;
        enc_bench_log("lost disk: %.0f users before; restored %.0f changelog "
                      "records in %.2f s, %.0f users back; processing again "
                      "%" PRId64 " ms after the restart",
                      before, recs, secs, after, first);
        if (first < 0 || secs <= 0)
                return -1;
        /* The ceiling's read takes a fraction of a second: the median of
         * three (by rate) is steadier on a shared machine. */
        double crate[3];
        for (int i = 0; i < 3; i++) {
                double n = 0, t = b3_ceiling(env->bootstrap,
                                             "encore-b3-changelog", parts, &n);
                enc_bench_log("ceiling %d: a plain consumer read %.0f "
                              "changelog records in %.3f s",
                              i + 1, n, t);
                if (t <= 0)
                        return -1;
                crate[i] = n / t;
        }
        double lo = crate[0] < crate[1] ? crate[0] : crate[1];
        double hi = crate[0] < crate[1] ? crate[1] : crate[0];
        double cmed = crate[2] < lo ? lo : crate[2] > hi ? hi : crate[2];
        enc_bench_result("b3.users_before_lost_disk", before,
                         "user keys (exact)");
        enc_bench_result("b3.users_restored", after,
                         "user keys (exact; mock keeps ~5 MiB/partition)");
        enc_bench_result("b3.restore_records", recs, "changelog records");
        enc_bench_result("b3.restore_user_records", urecs,
                         "user records applied");
        enc_bench_result("b3.restore_seconds", secs, "s");
        enc_bench_result("b3.restore_records_per_s", recs / secs, "records/s");
        enc_bench_result("b3.restore_users_per_s", after / secs,
                         "users restored/s");
        if (cpu > 0)
                enc_bench_result("b3.restore_cpu_us_per_record",
                                 cpu * 1e6 / recs,
                                 "encore's CPU (all threads) while "
                                 "restoring, per record");
        enc_bench_result("b3.restore_ceiling_records_per_s", cmed,
                         "records/s (plain librdkafka consumer, same topic; "
                         "median of 3)");
        enc_bench_result("b3.restore_ratio_to_ceiling", (recs / secs) / cmed,
                         "restore rate / ceiling rate, same run");
        enc_bench_result("b3.lost_disk_restart_to_processing_ms", (double)first,
                         "ms");
        if (peak_kib > 0)
                enc_bench_result("b3.restore_peak_rss_mib",
                                 (double)peak_kib / 1024.0,
                                 "MiB (VmHWM of the process that restored, "
                                 "at its first output)");
        return 0;
}

int enc_bench_b3(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "users of state", 1000000, NULL},
                {"partitions", "input partitions", 8, NULL},
                {"kills", "SIGKILL restarts to measure", 3, NULL},
                {"terms", "SIGTERM restarts to measure", 3, NULL},
                {"session-ms", "kafka.consumer.session.timeout.ms", 6000, NULL},
                {"static", "group.instance.id (static membership) 0/1", 0,
                 NULL},
                {"settle-s", "seconds of processing before each stop", 4, NULL},
                {"lead", "max records produced ahead of commits", 200000, NULL},
                {"encore", "encore binary", 0, ""},
                {"keep-logs", "keep encore's logs (1)", 0, NULL},
                {"restore",
                 "then lose the state dir: restore from the "
                 "changelog (1)",
                 1, NULL},
                {"pin", "input.partitions=all: no group membership (1)", 0,
                 NULL},
                {"set", "extra encore configuration, \"key=value;key=value\"",
                 0, ""},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o, "encore-bench b3: recovery"))
                return 2;
        uint64_t users = (uint64_t)o[0].num;
        int parts = (int)o[1].num, kills = (int)o[2].num, terms = (int)o[3].num;
        if (kills < 0 || kills > 32 || terms < 0 || terms > 32)
                return 2;
        char pathbuf[512], log_path[700];
        b3_env_t env = {0};
        env.encore = enc_bench_encore_path(o[8].str, pathbuf, sizeof(pathbuf));
        /* The changelog is made here: the mock does not answer
         * CreateTopics. */
        const char *topics[] = {"b3-in", "b3-out", "b3-dlq",
                                "encore-b3-changelog", NULL};
        const int tparts[] = {parts, parts, 1, parts};
        enc_embedded_t *emb = enc_bench_cluster(topics, tparts);
        if (!emb)
                return 1;
        env.dir = enc_bench_tmpdir("b3-state");
        env.logdir = enc_bench_tmpdir("b3-logs");
        env.bootstrap = enc_embedded_bootstraps(emb);
        snprintf(env.bs, sizeof(env.bs), "kafka.bootstrap.servers=%s",
                 enc_embedded_bootstraps(emb));
        snprintf(env.sd, sizeof(env.sd), "state.dir=%s", env.dir);
        snprintf(env.st, sizeof(env.st), "kafka.consumer.session.timeout.ms=%d",
                 (int)o[4].num);
        snprintf(env.gi, sizeof(env.gi),
                 "kafka.consumer.group.instance.id=encore-b3-0");
        int ns = 0;
        env.sets[ns++] = env.bs;
        env.sets[ns++] = env.sd;
        env.sets[ns++] = env.st;
        env.sets[ns++] = "input.topic=b3-in";
        env.sets[ns++] = "output.topic=b3-out";
        env.sets[ns++] = "dlq.topic=b3-dlq";
        env.sets[ns++] = "group.id=encore-b3";
        env.sets[ns++] = "metrics.address=127.0.0.1:0";
        env.sets[ns++] = "log.level=info";
        if (o[5].num)
                env.sets[ns++] = env.gi;
        if (o[11].num)
                env.sets[ns++] = "input.partitions=all";
        char *extra = strdup(o[12].str ? o[12].str : "");
        char *save = NULL;
        for (char *kv = extra ? strtok_r(extra, ";", &save) : NULL;
             kv && ns < 31; kv = strtok_r(NULL, ";", &save))
                env.sets[ns++] = kv;
        env.sets[ns] = NULL;

        enc_bench_watch_t *w = enc_bench_watch_new(enc_embedded_bootstraps(emb),
                                                   "b3-out", parts);
        enc_bench_group_t *g = enc_bench_group_new(enc_embedded_bootstraps(emb),
                                                   "encore-b3", "b3-in", parts);
        /* Live plays start an hour into a day, after the state's last
         * timers, and stay within it (10 ms of event time each). */
        int64_t t0 = ENC_GEN_DEFAULT_START_MS + 3600 * 1000;
        enc_bench_feeder_t f = {.bootstrap = enc_embedded_bootstraps(emb),
                                .topic = "b3-in",
                                .partitions = parts,
                                .synth_users = users,
                                .synth_live = UINT64_C(1) << 40,
                                .synth_t0 = t0,
                                .synth_step_ms = 10,
                                .lead = (uint64_t)o[7].num,
                                .progress = enc_bench_group_committed,
                                .progress_opaque = g};
        int rc = 1;
        bool feeding = false;
        pid_t pid = -1;
        if (!w || !g || !env.dir || !env.logdir)
                goto done;
        char errstr[512];
        double t_build = enc_bench_now();
        if (enc_bench_state_build(env.dir, users, parts, t0, errstr,
                                  sizeof(errstr))) {
                enc_bench_log("state build: %s", errstr);
                goto done;
        }
        enc_bench_log("%" PRIu64 " users of state written in %.0f s, %.0f MiB",
                      users, enc_bench_now() - t_build,
                      (double)enc_bench_du(env.dir) / 1048576.0);
        enc_bench_result("b3.users_of_state", (double)users, "users");
        enc_bench_result("b3.state_disk_mib",
                         (double)enc_bench_du(env.dir) / 1048576.0, "MiB");
        pid = b3_spawn(&env, log_path, sizeof(log_path));
        if (pid < 0 || enc_bench_feeder_start(&f))
                goto done;
        feeding = true;

        /* Steady processing first: some live plays through and committed. */
        while (enc_bench_group_committed(g) < 100000) {
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        enc_bench_log("encore exited; see %s", log_path);
                        pid = -1;
                        goto done;
                }
                usleep(100000);
        }

        int64_t k_tot[32], k_spawn[32], k_ph[32][3];
        for (int k = 0; k < kills; k++) {
                usleep((useconds_t)(o[6].num * 1e6));
                int64_t t_kill = enc_bench_wall_ms();
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                enc_bench_watch_mark(w, t_kill);
                int64_t t_spawn = enc_bench_wall_ms();
                pid = b3_spawn(&env, log_path, sizeof(log_path));
                k_tot[k] = b3_observe(w, log_path, t_kill, t_spawn, k_ph[k]);
                k_spawn[k] = b3_since(k_tot[k] + t_kill, t_spawn);
                enc_bench_log("SIGKILL %d: processing again after %" PRId64
                              " ms (start %" PRId64 ", group join %" PRId64
                              ", resume %" PRId64 " ms)",
                              k + 1, k_tot[k], k_ph[k][0], k_ph[k][1],
                              k_ph[k][2]);
                if (k_tot[k] < 0)
                        goto done;
        }
        int64_t t_tot[32], t_restart[32], t_drain[32], t_ph[32][3];
        for (int k = 0; k < terms; k++) {
                usleep((useconds_t)(o[6].num * 1e6));
                int64_t t_term = enc_bench_wall_ms();
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
                int64_t t_spawn = enc_bench_wall_ms();
                t_drain[k] = t_spawn - t_term;
                enc_bench_watch_mark(w, t_spawn);
                pid = b3_spawn(&env, log_path, sizeof(log_path));
                t_restart[k] =
                        b3_observe(w, log_path, t_spawn, t_spawn, t_ph[k]);
                t_tot[k] = b3_since(t_restart[k] + t_spawn, t_term);
                enc_bench_log("SIGTERM %d: drained in %" PRId64
                              " ms; processing again %" PRId64
                              " ms after the restart (start %" PRId64
                              ", group join %" PRId64 ", resume %" PRId64
                              " ms)",
                              k + 1, t_drain[k], t_restart[k], t_ph[k][0],
                              t_ph[k][1], t_ph[k][2]);
                if (t_restart[k] < 0)
                        goto done;
        }
        if (kills) {
                int64_t p0[32], p1[32], p2[32];
                for (int k = 0; k < kills; k++) {
                        p0[k] = k_ph[k][0];
                        p1[k] = k_ph[k][1];
                        p2[k] = k_ph[k][2];
                }
                enc_bench_result("b3.sigkill_to_processing_ms",
                                 median_i64(k_tot, kills), "ms (median)");
                enc_bench_result("b3.sigkill_restart_to_processing_ms",
                                 median_i64(k_spawn, kills), "ms (median)");
                enc_bench_result("b3.sigkill_phase_start_ms",
                                 median_i64(p0, kills), "ms (median)");
                enc_bench_result("b3.sigkill_phase_group_join_ms",
                                 median_i64(p1, kills), "ms (median)");
                enc_bench_result("b3.sigkill_phase_resume_ms",
                                 median_i64(p2, kills), "ms (median)");
        }
        if (terms) {
                int64_t p0[32], p1[32], p2[32];
                for (int k = 0; k < terms; k++) {
                        p0[k] = t_ph[k][0];
                        p1[k] = t_ph[k][1];
                        p2[k] = t_ph[k][2];
                }
                enc_bench_result("b3.clean_restart_to_processing_ms",
                                 median_i64(t_restart, terms), "ms (median)");
                enc_bench_result("b3.clean_stop_drain_ms",
                                 median_i64(t_drain, terms), "ms (median)");
                enc_bench_result("b3.sigterm_to_processing_ms",
                                 median_i64(t_tot, terms), "ms (median)");
                enc_bench_result("b3.clean_phase_start_ms",
                                 median_i64(p0, terms), "ms (median)");
                enc_bench_result("b3.clean_phase_group_join_ms",
                                 median_i64(p1, terms), "ms (median)");
                enc_bench_result("b3.clean_phase_resume_ms",
                                 median_i64(p2, terms), "ms (median)");
        }
        if (o[10].num && b3_lost_disk(&env, w, &pid, log_path, sizeof(log_path),
                                      parts, o[6].num))
                goto done;
        enc_bench_result("b3.state_dir_mib",
                         (double)enc_bench_du(env.dir) / 1048576.0, "MiB");
        rc = 0;
done:
        atomic_store(&f.stop, 1);
        if (feeding)
                enc_bench_feeder_join(&f);
        if (pid > 0) {
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
        }
        if (rc || o[9].num)
                enc_bench_log("logs kept in %s", env.logdir);
        else
                enc_bench_rmtree(env.logdir);
        enc_bench_watch_destroy(w);
        enc_bench_group_destroy(g);
        enc_embedded_destroy(emb);
        enc_bench_rmtree(env.dir);
        free(env.dir);
        free(env.logdir);
        free(extra);
        return rc;
}
