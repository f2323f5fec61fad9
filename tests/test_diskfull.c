/*
 * test_diskfull.c -- encore when its state store cannot be written.
 *
 * Issue 7: "a full disk or a RocksDB write error stops processing without
 * committing offsets past what was stored, and says why". The failures here
 * are real ones, made by the kernel, not a faked store:
 *
 *  - RLIMIT_FSIZE: `encore run` is started in a child whose file size limit
 *    is set (with SIGXFSZ ignored) between fork and exec, so a write that
 *    would take a file past the limit fails with EFBIG ("File too large").
 *    Needs no privileges. The limit is half the size the write-ahead log
 *    reached in an unlimited run over the same input with the same commit
 *    points, and several times the largest file RocksDB writes to open a
 *    store, so the store opens, commits go on for a while, and a commit
 *    fails about half way through the input.
 *  - A full file system: a small tmpfs mounted over the state directory in
 *    a user and mount namespace of the child ("No space left on device").
 *    Skipped, saying why, where unprivileged user namespaces are off.
 *
 * After the failure:
 *  - encore exited with 1 (not a signal, not 0) and its last words name the
 *    store write and the system's error;
 *  - the group's committed offset of each input partition is at most the
 *    position (first offset not fully in state) stored in the RocksDB state
 *    that survived, opened read-only as the failed run left it; that state
 *    is mid-stream: some commits made it, not the whole input;
 *  - a restart without the limit finishes the stream, and the output topic
 *    holds every update of an uninterrupted reference run, any repeat
 *    byte-identical: nothing lost, nothing invented.
 * The full-disk case also restarts encore once on the still-full disk: it
 * must fail at once (opening the store needs space) and say so, not spin.
 * That case found a crash: RocksDB's own text log on the full disk made
 * librocksdb abort the process (see state/store.c, DESIGN).
 *
 * A failure in RocksDB's background work (a flush) cannot be brought about
 * inside an encore run of test size (its memtables are 64 MiB), so the last
 * test makes one with encore's store API in a child process: after it, the
 * next commit fails at once with the flush's error, which is what stops
 * encore (the commit path above), rather than blocking or succeeding.
 */
#include "kafka_harness.h"

#include <dirent.h>
#include <rocksdb/c.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "store.h"

#define DF_IN_PARTS 2
#define DF_EVENTS   16000
#define DF_SEED     71
/* Commits by record count only (never by time), so the write-ahead log
 * grows the same way in every run over the input. */
#define DF_COMMIT_RECORDS "commit.records=400"
#define DF_WAIT_MS        180000 /* a run that takes longer has hung: killed */

static enc_codec_t *codec;
static t_input_t input;
static t_recs_t ref_out;
static t_entry_t *ref_idx;
static int64_t ref_end[DF_IN_PARTS]; /* end offset of each input partition */
static off_t ref_wal;   /* bytes of write-ahead log the reference wrote */
static off_t ref_open;  /* largest file RocksDB writes other than the WAL */
static off_t ref_total; /* bytes of every file but the WAL, at the end */

/* ---- runs ----------------------------------------------------------- */

typedef struct df_run_s {
        const char *tag; /* topics <tag>-in, <tag>; group g-<tag> */
        const char *dir;
        const char *log; /* stderr, appended */
        bool changelog;  /* changelog.enable */
        rlim_t fsize;    /* RLIMIT_FSIZE of the child; 0: unlimited */
} df_run_t;

typedef struct df_argv_s {
        char exe[512], bs[256], sd[300], gr[100], ot[100], it[100];
        char *argv[40];
} df_argv_t;

/* The argv of `encore run` for @p r, built before any fork (nothing that
 * allocates may run between fork and exec in a threaded process). */
static void df_argv(const df_run_t *r, df_argv_t *a) {
        const char *bindir = getenv("ENCORE_BINARY_DIR");
        if (!bindir) {
                fprintf(stderr, "ENCORE_BINARY_DIR is not set: run this "
                                "test through ctest\n");
                fail();
        }
        snprintf(a->exe, sizeof(a->exe), "%s/encore", bindir);
        snprintf(a->bs, sizeof(a->bs), "kafka.bootstrap.servers=%s", bootstrap);
        snprintf(a->sd, sizeof(a->sd), "state.dir=%s", r->dir);
        snprintf(a->gr, sizeof(a->gr), "group.id=g-%s", r->tag);
        snprintf(a->ot, sizeof(a->ot), "output.topic=%s", r->tag);
        snprintf(a->it, sizeof(a->it), "input.topic=%s-in", r->tag);
        char *v[] = {a->exe, "run", "--set", a->bs, "--set", a->sd, "--set",
                     a->gr, "--set", a->ot, "--set", a->it, "--set",
                     "commit.interval.ms=3600000", "--set", DF_COMMIT_RECORDS,
                     "--set",
                     r->changelog ? "changelog.enable=true"
                                  : "changelog.enable=false",
                     /* as in kafka_harness.h: a member slowed by a
                      * loaded machine is not taken for dead */
                     "--set", "kafka.consumer.session.timeout.ms=6000", "--set",
                     "kafka.consumer.heartbeat.interval.ms=1000", "--set",
                     "metrics.address=127.0.0.1:0",
                     /* info: restores are logged; the log stays far below
                      * any limit used here */
                     "--set", "log.level=info", "--exit-idle-ms", "1000", NULL};
        memcpy(a->argv, v, sizeof(v));
}

/* Starts `encore run` for @p r. With r->fsize, the child's file size limit
 * is set and SIGXFSZ ignored before exec (both survive exec), so writes
 * past the limit fail with EFBIG instead of killing the process. */
static pid_t df_spawn(const df_run_t *r) {
        df_argv_t a;
        df_argv(r, &a);
        struct rlimit rl = {r->fsize, r->fsize};
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0)
                        dup2(fd, 2);
                if (r->fsize) {
                        signal(SIGXFSZ, SIG_IGN);
                        if (setrlimit(RLIMIT_FSIZE, &rl))
                                _exit(126);
                }
                execv(a.exe, a.argv);
                _exit(127);
        }
        return pid;
}

/* Waits for child @p pid; one still running after DF_WAIT_MS is killed
 * (with its process group) and the test fails: encore must stop on a
 * store error, not spin. */
static int df_wait(pid_t pid, const char *log) {
        int status;
        int64_t deadline = t_now_ms() + DF_WAIT_MS;
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                assert_true(w >= 0);
                if (w == pid)
                        return status;
                if (t_now_ms() > deadline) {
                        fprintf(stderr,
                                "child %d still running after %d ms: killed; "
                                "log %s\n",
                                (int)pid, DF_WAIT_MS, log);
                        kill(-pid, SIGKILL);
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        fail();
                }
                usleep(20000);
        }
}

static void df_topics(const char *tag) {
        char err[256], in[64], cl[96];
        snprintf(in, sizeof(in), "%s-in", tag);
        snprintf(cl, sizeof(cl), "g-%s-changelog", tag);
        assert_int_equal(enc_embedded_create_topic(emb, in, DF_IN_PARTS, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(
                enc_embedded_create_topic(emb, tag, 4, err, sizeof(err)), 0);
        assert_int_equal(enc_embedded_create_topic(emb, cl, DF_IN_PARTS, err,
                                                   sizeof(err)),
                         0);
        t_input_produce(&input, in, 0, input.n, false);
}

/* ---- what is on disk and in the group -------------------------------- */

static bool df_is_wal(const char *name) {
        size_t n = strlen(name);
        return n > 4 && !strcmp(name + n - 4, ".log");
}

/* Sizes of the files in store directory @p dir: the write-ahead logs
 * (*.log), the largest other file except RocksDB's own text log (LOG*,
 * whose write errors RocksDB ignores), and all but the WAL together. */
static void df_sizes(const char *dir, off_t *wal, off_t *largest,
                     off_t *total) {
        DIR *d = opendir(dir);
        assert_non_null(d);
        *wal = *largest = *total = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char p[512];
                struct stat sb;
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                if (stat(p, &sb) || !S_ISREG(sb.st_mode))
                        continue;
                if (df_is_wal(de->d_name)) {
                        *wal += sb.st_size;
                        continue;
                }
                *total += sb.st_size;
                if (strncmp(de->d_name, "LOG", 3) && sb.st_size > *largest)
                        *largest = sb.st_size;
        }
        closedir(d);
}

/* The group's committed offsets of the input partitions of run @p tag
 * (RD_KAFKA_OFFSET_INVALID where nothing was committed). */
static void df_committed(const char *tag, int64_t *offs) {
        char err[256], group[100], topic[100];
        snprintf(group, sizeof(group), "g-%s", tag);
        snprintf(topic, sizeof(topic), "%s-in", tag);
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "3", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(DF_IN_PARTS);
        for (int32_t p = 0; p < DF_IN_PARTS; p++)
                rd_kafka_topic_partition_list_add(l, topic, p);
        assert_int_equal(rd_kafka_committed(rk, l, 10000), 0);
        for (int32_t p = 0; p < DF_IN_PARTS; p++) {
                assert_int_equal(l->elems[p].err, 0);
                offs[p] = l->elems[p].offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
}

/* Each input partition's stored position, read from store @p dir opened
 * read-only with RocksDB's own API: exactly what the failed run left, not
 * touched by a recovery that writes. */
static void df_stored(const char *dir, enc_store_meta_t *m, bool *found) {
        static const char *const cfn[4] = {"default", "users", "timers",
                                           "meta"};
        rocksdb_options_t *o = rocksdb_options_create();
        const rocksdb_options_t *co[4] = {o, o, o, o};
        rocksdb_column_family_handle_t *cf[4] = {NULL};
        char *rerr = NULL;
        rocksdb_t *db = rocksdb_open_for_read_only_column_families(
                o, dir, 4, cfn, co, cf, 0, &rerr);
        if (rerr)
                fprintf(stderr, "open %s read-only: %s\n", dir, rerr);
        assert_null(rerr);
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        for (int32_t p = 0; p < DF_IN_PARTS; p++) {
                uint8_t k[4] = {(uint8_t)(p >> 24), (uint8_t)(p >> 16),
                                (uint8_t)(p >> 8), (uint8_t)p};
                size_t vl = 0;
                char *v = rocksdb_get_cf(db, ro, cf[3], (const char *)k, 4, &vl,
                                         &rerr);
                assert_null(rerr);
                found[p] = v != NULL;
                if (v)
                        assert_int_equal(enc_store_meta_decode(
                                                 (const uint8_t *)v, vl, &m[p]),
                                         ENC_OK);
                rocksdb_free(v);
        }
        rocksdb_readoptions_destroy(ro);
        for (int i = 0; i < 4; i++)
                rocksdb_column_family_handle_destroy(cf[i]);
        rocksdb_close(db);
        rocksdb_options_destroy(o);
}

/*
 * The checks after a run stopped by a store error: group offsets at most
 * the stored positions, the stored state mid-stream; then a restart with
 * no limit must finish and the output hold every reference update.
 * Returns how many output records were repeats.
 */
static size_t df_check_and_restart(const df_run_t *r, const char *why) {
        int64_t c[DF_IN_PARTS];
        enc_store_meta_t m[DF_IN_PARTS];
        bool found[DF_IN_PARTS];
        df_committed(r->tag, c);
        df_stored(r->dir, m, found);
        int64_t stored = 0, end = 0;
        for (int32_t p = 0; p < DF_IN_PARTS; p++) {
                fprintf(stderr,
                        "%s: partition %d: committed %lld, stored position "
                        "%lld (next %lld), end %lld\n",
                        why, p, (long long)c[p],
                        found[p] ? (long long)m[p].commit_offset : -1LL,
                        found[p] ? (long long)m[p].next_offset : -1LL,
                        (long long)ref_end[p]);
                end += ref_end[p];
                if (!found[p]) {
                        /* nothing of it stored (its records had not come
                         * yet): nothing of it committed either */
                        assert_true(c[p] < 0);
                        continue;
                }
                /* never committed past what was stored (a partition never
                 * committed has RD_KAFKA_OFFSET_INVALID, below any) */
                assert_true(c[p] <= m[p].commit_offset);
                stored += m[p].commit_offset;
        }
        /* the failure came mid-stream: some work stored, not all of it */
        assert_true(stored > 0);
        assert_true(stored < end);

        /* the fault gone, a restart finishes the stream */
        df_run_t again = *r;
        again.fsize = 0;
        int status = df_wait(df_spawn(&again), r->log);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                fprintf(stderr, "%s: restart failed; log %s\n", why, r->log);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        size_t repeats =
                t_assert_same_updates(codec, &ref_out, ref_idx, r->tag);
        fprintf(stderr,
                "%s: reference %zu updates; failed run + restart: all of "
                "them, plus %zu identical repeats\n",
                why, ref_out.n, repeats);
        return repeats;
}

/* ---- the reference -------------------------------------------------- */

static int df_group_setup(void **st) {
        t_setup(st);
        codec = t_codec();
        t_input_make(&input, DF_EVENTS, DF_SEED);
        assert_int_equal(input.n, DF_EVENTS);
        df_topics("df-ref");
        char *dir = t_tmpdir("df-ref");
        char log[160];
        snprintf(log, sizeof(log), "%s.log", dir);
        df_run_t r = {"df-ref", dir, log, true, 0};
        int status = df_wait(df_spawn(&r), log);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                fprintf(stderr, "reference run failed; log %s\n", log);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        df_sizes(dir, &ref_wal, &ref_open, &ref_total);
        unlink(log);
        t_rmtree(dir);
        free(dir);
        t_read("df-ref", &ref_out);
        assert_true(ref_out.n > 1000);
        ref_idx = t_index(codec, &ref_out);
        for (size_t i = 1; i < ref_out.n; i++)
                assert_true(ref_idx[i].idh != ref_idx[i - 1].idh); /* unique */
        rd_kafka_t *rk = t_producer();
        for (int32_t p = 0; p < DF_IN_PARTS; p++) {
                int64_t lo;
                assert_int_equal(
                        rd_kafka_query_watermark_offsets(
                                rk, "df-ref-in", p, &lo, &ref_end[p], 10000),
                        0);
        }
        rd_kafka_destroy(rk);
        fprintf(stderr,
                "reference: %zu updates; store: write-ahead log %lld bytes, "
                "largest other file %lld bytes, other files %lld bytes\n",
                ref_out.n, (long long)ref_wal, (long long)ref_open,
                (long long)ref_total);
        return 0;
}

static int df_group_teardown(void **st) {
        free(ref_idx);
        t_recs_free(&ref_out);
        t_input_free(&input);
        enc_codec_destroy(codec);
        return t_teardown(st);
}

/* ---- tests ---------------------------------------------------------- */

static void df_file_size_limit(const char *tag, bool changelog) {
        /* The limit: half the log an unlimited run wrote, so the failure
         * comes mid-stream; well above what opening the store writes. */
        rlim_t limit = (rlim_t)ref_wal / 2;
        assert_true(limit > 4 * (rlim_t)ref_open);
        df_topics(tag);
        char *dir = t_tmpdir(tag);
        char log[160];
        snprintf(log, sizeof(log), "%s.log", dir);
        df_run_t r = {tag, dir, log, changelog, limit};
        int status = df_wait(df_spawn(&r), log);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 1))
                fprintf(stderr, "%s: want exit 1, got status 0x%x; log %s\n",
                        tag, (unsigned)status, log);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        /* says why: the store write, and the system's error */
        assert_true(t_file_contains(log, "event=pipeline_fatal"));
        assert_true(t_file_contains(log, "encore: commit: RocksDB write: "));
        assert_true(t_file_contains(log, "File too large"));
        /* it failed mid-stream, not at start-up */
        assert_false(t_file_contains(log, "RocksDB open"));
        assert_true(t_file_contains(log, "event=partition_assigned"));
        /* and stopped there: it did not go on through the input */
        assert_true(t_topic_count(tag) < (int64_t)ref_out.n);

        truncate(log, 0);
        size_t repeats = df_check_and_restart(&r, tag);
        if (changelog) {
                /* The failed commit had flushed its outputs and its
                 * changelog records before the store write: the restart
                 * restores that commit from the changelog, newer than the
                 * store, and resumes after it, so nothing is repeated. */
                assert_true(t_file_contains(log, "mode=incremental"));
                assert_int_equal(repeats, 0);
        } else {
                /* The store alone decides: the restart resumes at the
                 * last commit that was stored, before the failed one, and
                 * produces the failed commit's outputs again. */
                assert_false(t_file_contains(log, "event=restore_start"));
                assert_true(repeats > 0);
        }
        unlink(log);
        t_rmtree(dir);
        free(dir);
}

/* A commit's RocksDB write fails with EFBIG: encore stops with exit 1 and
 * the error, nothing committed to the group past the store, and a restart
 * (which restores the failed commit from the changelog) loses nothing. */
static void
test_file_size_limit_stops_encore_and_restart_loses_nothing(void **st) {
        (void)st;
        df_file_size_limit("df-fsize", true);
}

/* The same without a changelog: the local store alone decides where the
 * restart resumes, so the group offsets must not be ahead of it, and the
 * outputs of the failed commit are produced again, identical. */
static void
test_file_size_limit_without_changelog_resumes_from_store(void **st) {
        (void)st;
        df_file_size_limit("df-fsize-nocl", false);
}

/* ---- a full file system -------------------------------------------- */

/* What the namespace child could not do (its exit code - DF_NS_BASE). */
#define DF_NS_BASE 70
static const char *const df_ns_steps[] = {
        "unshare(CLONE_NEWUSER | CLONE_NEWNS)",
        "write /proc/self/setgroups",
        "write /proc/self/uid_map",
        "write /proc/self/gid_map",
        "make the mounts private",
        "mount a tmpfs",
        "exec /bin/sh"};

static bool df_write_str(const char *path, const char *s, size_t len) {
        int fd = open(path, O_WRONLY);
        if (fd < 0)
                return false;
        bool ok = write(fd, s, len) == (ssize_t)len;
        close(fd);
        return ok;
}

static int df_read_int(const char *path) {
        FILE *f = fopen(path, "r");
        int v = -1;
        if (f) {
                if (fscanf(f, "%d", &v) != 1)
                        v = -1;
                fclose(f);
        }
        return v;
}

/*
 * Runs in the child's own user and mount namespace, where a tmpfs of
 * @p size bytes covers the state directory: encore until the disk is full,
 * encore again on the full disk, then a copy of the state (the tmpfs goes
 * with the namespace) for the checks and the restart outside.
 */
static const char df_ns_script[] =
        "exe=$1 dir=$2 out=$3 log=$4 log2=$5; shift 5\n"
        "\"$exe\" \"$@\" 2>>\"$log\"; echo $? >\"$out/rc1\"\n"
        "\"$exe\" \"$@\" 2>>\"$log2\"; echo $? >\"$out/rc2\"\n"
        "mkdir \"$out/state\" && cp -p \"$dir\"/* \"$out/state/\"\n"
        "echo $? >\"$out/cp\"\n";

/*
 * The disk fills up: the state directory is a tmpfs with room for what
 * opening the store writes plus half the write-ahead log of the reference.
 * encore stops with exit 1, "No space left on device" and nothing
 * committed past the store; started again on the still-full disk it fails
 * at once, saying why; the state copied out and restarted with space
 * finishes the stream with nothing lost.
 */
static void test_full_disk_stops_encore_and_restart_loses_nothing(void **st) {
        (void)st;
        const char *tag = "df-enospc";
        char *dir = t_tmpdir(tag), *out = t_tmpdir("df-enospc-out");
        char log[160], log2[160], opts[64], uidmap[64], gidmap[64], sd[300];
        snprintf(log, sizeof(log), "%s.log", dir);
        snprintf(log2, sizeof(log2), "%s.log2", dir);
        long size = (long)(ref_total + ref_wal / 2 + 4095) / 4096 * 4096;
        snprintf(opts, sizeof(opts), "size=%ld,mode=0700", size);
        snprintf(uidmap, sizeof(uidmap), "0 %d 1\n", (int)getuid());
        snprintf(gidmap, sizeof(gidmap), "0 %d 1\n", (int)getgid());
        df_topics(tag);
        df_run_t r = {tag, dir, log, true, 0};
        df_argv_t a;
        df_argv(&r, &a);
        char *argv[64] = {"/bin/sh", "-c",  (char *)df_ns_script,
                          "sh",      a.exe, dir,
                          out,       log,   log2};
        int n = 9;
        for (int i = 1; a.argv[i] && n < 63; i++)
                argv[n++] = a.argv[i];
        argv[n] = NULL;

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                setpgid(0, 0); /* killed as a group on a hang */
                if (unshare(CLONE_NEWUSER | CLONE_NEWNS))
                        _exit(DF_NS_BASE + 0);
                if (!df_write_str("/proc/self/setgroups", "deny", 4))
                        _exit(DF_NS_BASE + 1);
                if (!df_write_str("/proc/self/uid_map", uidmap, strlen(uidmap)))
                        _exit(DF_NS_BASE + 2);
                if (!df_write_str("/proc/self/gid_map", gidmap, strlen(gidmap)))
                        _exit(DF_NS_BASE + 3);
                if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
                        _exit(DF_NS_BASE + 4);
                if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts))
                        _exit(DF_NS_BASE + 5);
                execv(argv[0], argv);
                _exit(DF_NS_BASE + 6);
        }
        int status = df_wait(pid, log);
        assert_true(WIFEXITED(status));
        int code = WEXITSTATUS(status);
        if (code >= DF_NS_BASE && code <= DF_NS_BASE + 6) {
                fprintf(stderr,
                        "skipped: no small file system to fill here: %s "
                        "failed (unprivileged user namespaces off?); the "
                        "file size limit tests cover the store write "
                        "error\n",
                        df_ns_steps[code - DF_NS_BASE]);
                unlink(log);
                unlink(log2);
                t_rmtree(out);
                t_rmtree(dir);
                free(out);
                free(dir);
                skip();
        }
        assert_int_equal(code, 0);
        char path[400];
        snprintf(path, sizeof(path), "%s/rc1", out);
        int rc1 = df_read_int(path);
        snprintf(path, sizeof(path), "%s/rc2", out);
        int rc2 = df_read_int(path);
        snprintf(path, sizeof(path), "%s/cp", out);
        int cp = df_read_int(path);
        fprintf(stderr,
                "%s: tmpfs of %ld bytes; first run exit %d, second run "
                "exit %d, copy %d\n",
                tag, size, rc1, rc2, cp);
        if (rc1 != 1 || rc2 != 1)
                fprintf(stderr, "%s: logs %s %s\n", tag, log, log2);
        /* the first run filled the disk mid-stream and said so */
        assert_int_equal(rc1, 1);
        assert_true(t_file_contains(log, "event=pipeline_fatal"));
        assert_true(t_file_contains(log, "encore: commit: RocksDB write: "));
        assert_true(t_file_contains(log, "No space left on device"));
        assert_false(t_file_contains(log, "RocksDB open"));
        assert_true(t_topic_count(tag) < (int64_t)ref_out.n);
        /* the second could not even open the store, and said so */
        assert_int_equal(rc2, 1);
        assert_true(t_file_contains(log2, "encore: RocksDB open: "));
        assert_true(t_file_contains(log2, "No space left on device"));
        assert_int_equal(cp, 0);

        snprintf(sd, sizeof(sd), "%s/state", out);
        r.dir = sd;
        truncate(log, 0);
        assert_int_equal(df_check_and_restart(&r, tag), 0);
        assert_true(t_file_contains(log, "mode=incremental"));
        unlink(log);
        unlink(log2);
        t_rmtree(out);
        t_rmtree(dir);
        free(out);
        free(dir);
}

/* ---- a failed background flush ---------------------------------------- */

/*
 * Runs in a fresh copy of this program (`--flush-child DIR`, no mock
 * cluster threads), on encore's store API: commits a batch, limits its own
 * file size to the size of the write-ahead log that batch made, and flushes
 * the memtable. The table file the flush writes is larger than the log
 * (internal keys, index, filter and properties blocks), so the flush fails
 * in RocksDB's background thread. Then a one-key commit, which alone fits
 * (a flush starts a new log), must fail with the background error, at
 * once: RocksDB has stopped writes, and encore's commit path turns a
 * failed commit into a stop (the tests above). Prints the commit's error;
 * exit 0 when it failed, 1 when it succeeded, 2 on an unexpected error.
 */
static int df_flush_child(const char *dir) {
        char err[512];
        enc_store_conf_t sc = {0};
        enc_store_t *st = enc_store_open(dir, &sc, err, sizeof(err));
        if (!st) {
                printf("open: %s\n", err);
                return 2;
        }
        /* 2000 random keys with random 100-byte values: incompressible */
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        for (int i = 0; i < 2000; i++) {
                uint8_t kv[116];
                for (size_t j = 0; j < sizeof(kv); j++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        kv[j] = (uint8_t)x;
                }
                char user[33];
                for (int j = 0; j < 16; j++)
                        snprintf(user + 2 * j, 3, "%02x", kv[j]);
                enc_store_put_user(st, 0, user, 32, kv + 16, 100);
        }
        if (enc_store_commit(st, err, sizeof(err))) {
                printf("first commit: %s\n", err);
                return 2;
        }
        off_t wal, largest, total;
        df_sizes(dir, &wal, &largest, &total);
        struct rlimit rl = {(rlim_t)wal, (rlim_t)wal};
        signal(SIGXFSZ, SIG_IGN);
        if (wal <= 0 || setrlimit(RLIMIT_FSIZE, &rl)) {
                printf("limit: log %lld bytes\n", (long long)wal);
                return 2;
        }
        enc_store_compact(st);
        enc_store_put_user(st, 0, "late", 4, "x", 1);
        int64_t t0 = t_now_ms();
        enc_err_t e = enc_store_commit(st, err, sizeof(err));
        printf("log %lld bytes; commit after the flush: %s (%lld ms)\n",
               (long long)wal, e ? err : "ok", (long long)(t_now_ms() - t0));
        enc_store_close(st);
        return e ? 0 : 1;
}

static void test_failed_background_flush_fails_the_next_commit(void **st) {
        (void)st;
        char *dir = t_tmpdir("df-flush");
        char out[160], exe[64] = "/proc/self/exe";
        snprintf(out, sizeof(out), "%s.out", dir);
        char *argv[] = {exe, "--flush-child", dir, NULL};
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execv(exe, argv);
                _exit(127);
        }
        int status = df_wait(pid, out);
        FILE *f = fopen(out, "r");
        char line[2048] = "";
        if (f) {
                while (fgets(line, sizeof(line), f))
                        fprintf(stderr, "flush child: %s", line);
                fclose(f);
        }
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        /* the error is the flush's: a table file, too large */
        assert_true(t_file_contains(out, "commit after the flush: RocksDB "
                                         "write: "));
        assert_true(t_file_contains(out, ".sst"));
        assert_true(t_file_contains(out, "File too large"));
        unlink(out);
        t_rmtree(dir);
        free(dir);
}

int main(int argc, char **argv) {
        if (argc == 3 && !strcmp(argv[1], "--flush-child"))
                return df_flush_child(argv[2]);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        test_file_size_limit_stops_encore_and_restart_loses_nothing),
                cmocka_unit_test(
                        test_file_size_limit_without_changelog_resumes_from_store),
                cmocka_unit_test(
                        test_full_disk_stops_encore_and_restart_loses_nothing),
                cmocka_unit_test(
                        test_failed_background_flush_fails_the_next_commit),
        };
        /* ENC_TEST_FILTER=<glob>: run the matching tests only. */
        if (getenv("ENC_TEST_FILTER"))
                cmocka_set_test_filter(getenv("ENC_TEST_FILTER"));
        return cmocka_run_group_tests(tests, df_group_setup, df_group_teardown);
}
