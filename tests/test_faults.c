/*
 * test_faults.c -- encore under the faults a Kafka cluster has: brokers
 * going down and coming back, retriable request errors on produce, fetch,
 * commit and coordinator requests, coordinator and partition leader moves.
 *
 * The cluster is librdkafka's mock cluster with three brokers, in this
 * process; encore runs as a child process (`encore run`, exiting when
 * idle). Every test starts encore on topics of its own, produces the same
 * generated input paced over a few seconds, injects one fault after about
 * 30% of it, heals it while the input is still flowing, and lets encore
 * finish. Then:
 *
 *  - encore exited 0 (every fault here is one Kafka clients ride out);
 *  - the fault was met: every injected error was answered (the mock
 *    counts them), or encore's log shows the broker going away;
 *  - the output topic holds every update of an uninterrupted reference run
 *    over the same input, and nothing else: any repeat is byte-identical
 *    (same key, id and content);
 *  - the dead-letter topic holds exactly the reference's dead letters (the
 *    input carries a few undecodable records on purpose), repeats allowed;
 *  - the group's committed offsets are the reference's.
 *
 * One reference run is made in the group setup and shared by all tests.
 *
 * Partition leaders are placed by hand so a fault hits encore and not the
 * test's own clients: the test produces input to brokers 1 and 2 only, and
 * reads nothing until encore has exited, so produce errors are injected on
 * broker 3 (outputs, a changelog partition, dead letters, the group
 * coordinator) and fetch errors on the input leaders.
 *
 * The last two tests are faults that must stop encore, a delivery that
 * fails for good and a SIGKILL while an output leader is down: nothing may
 * be committed past the lost outputs, and a restart with the fault gone
 * must produce every reference update. These two found a data-loss bug
 * (a commit's changelog position records written before its outputs were
 * acknowledged), fixed in pipeline.c: outputs are now acknowledged first.
 *
 * Knobs for investigating (environment): ENCORE_FAULTS_ONLY=<glob> runs
 * the matching tests only; ENCORE_FAULTS_DEBUG=cgrp,fetch,... turns on
 * those librdkafka debug contexts in encore's clients;
 * ENCORE_FAULTS_KEEP_LOGS keeps encore's logs of passing runs (a failing
 * run's log is always kept, its path printed).
 */
#include "kafka_harness.h"

#include <librdkafka/rdkafka_mock.h>

/* Kafka ApiKeys */
#define F_PRODUCE       0
#define F_FETCH         1
#define F_OFFSET_COMMIT 8
#define F_FIND_COORD    10
#define F_JOIN_GROUP    11
#define F_HEARTBEAT     12

#define F_BROKERS   3
#define F_IN_PARTS  2
#define F_OUT_PARTS 4
#define F_EVENTS    15000
#define F_BAD_EVERY 1000 /* bad records of each kind every N events */
#define F_BAD_KINDS 4    /* bad_magic, duplicate, invalid, late */
#define F_IDLE_MS   3000 /* encore exits after this long idle */

static rd_kafka_mock_cluster_t *mc;
static enc_codec_t *codec;
static t_input_t input;
static t_recs_t ref_out;
static t_entry_t *ref_idx;
static t_recs_t ref_dlq;
static int64_t ref_committed[F_IN_PARTS];
static char cur_log[200]; /* the log of the encore run last started */

/* ---- topics, leaders, runs ------------------------------------------ */

typedef struct f_names_s {
        char in[64], out[64], dlq[64], changelog[96], group[64];
} f_names_t;

static void f_names(const char *tag, f_names_t *n) {
        snprintf(n->in, sizeof(n->in), "%s-in", tag);
        snprintf(n->out, sizeof(n->out), "%s", tag);
        snprintf(n->dlq, sizeof(n->dlq), "%s-dlq", tag);
        snprintf(n->group, sizeof(n->group), "g-%s", tag);
        snprintf(n->changelog, sizeof(n->changelog), "g-%s-changelog", tag);
}

static void f_leader(const char *topic, int32_t partition, int32_t broker) {
        assert_int_equal(rd_kafka_mock_partition_set_leader(mc, topic,
                                                            partition, broker),
                         0);
}

/*
 * Creates the topics of run @p tag, with leaders placed as:
 *
 *   broker 1: input 0, output 0
 *   broker 2: input 1, output 1, changelog 0
 *   broker 3: output 2 and 3, changelog 1, dead letters, group coordinator
 */
static void f_topics(const char *tag) {
        char err[256];
        f_names_t n;
        f_names(tag, &n);
        assert_int_equal(enc_embedded_create_topic(emb, n.in, F_IN_PARTS, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, n.out, F_OUT_PARTS, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, n.changelog, F_IN_PARTS,
                                                   err, sizeof(err)),
                         0);
        assert_int_equal(
                enc_embedded_create_topic(emb, n.dlq, 1, err, sizeof(err)), 0);
        f_leader(n.in, 0, 1);
        f_leader(n.in, 1, 2);
        f_leader(n.out, 0, 1);
        f_leader(n.out, 1, 2);
        f_leader(n.out, 2, 3);
        f_leader(n.out, 3, 3);
        f_leader(n.changelog, 0, 2);
        f_leader(n.changelog, 1, 3);
        f_leader(n.dlq, 0, 3);
        assert_int_equal(rd_kafka_mock_coordinator_set(mc, "group", n.group, 3),
                         0);
}

/* Starts `encore run` on run @p tag's topics, stderr to @p log. It exits
 * after @p exit_idle_ms at the end of its input; if @p armed_by_signal,
 * only once SIGUSR1 says the input is complete (a fault can make an
 * unfinished input look idle for longer than any fixed wait). */
static pid_t f_spawn(const char *tag, const char *dir, const char *log,
                     int exit_idle_ms, bool armed_by_signal) {
        const char *bindir = getenv("ENCORE_BINARY_DIR");
        if (!bindir) {
                fprintf(stderr, "ENCORE_BINARY_DIR is not set: run this "
                                "test through ctest\n");
                fail();
        }
        f_names_t n;
        f_names(tag, &n);
        char exe[512], bs[256], sd[200], gr[100], ot[100], it[100], dq[100],
                idle[32];
        snprintf(exe, sizeof(exe), "%s/encore", bindir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        snprintf(gr, sizeof(gr), "group.id=%s", n.group);
        snprintf(ot, sizeof(ot), "output.topic=%s", n.out);
        snprintf(it, sizeof(it), "input.topic=%s", n.in);
        snprintf(dq, sizeof(dq), "dlq.topic=%s", n.dlq);
        snprintf(idle, sizeof(idle), "%d", exit_idle_ms);
        /* ENCORE_FAULTS_DEBUG=cgrp,fetch,... : librdkafka debug contexts
         * of encore's clients, into the run's log. */
        char dbg[200] = "";
        if (getenv("ENCORE_FAULTS_DEBUG"))
                snprintf(dbg, sizeof(dbg), "kafka.debug=%s",
                         getenv("ENCORE_FAULTS_DEBUG"));
        snprintf(cur_log, sizeof(cur_log), "%s", log);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0)
                        dup2(fd, 2);
                /* Session timeout 6 s as in test_pipeline; heartbeats every
                 * second so coordinator faults are met within the few
                 * seconds a fault lasts. */
                char *argv[] = {exe,
                                "run",
                                "--set",
                                bs,
                                "--set",
                                sd,
                                "--set",
                                gr,
                                "--set",
                                ot,
                                "--set",
                                it,
                                "--set",
                                dq,
                                "--set",
                                "commit.interval.ms=200",
                                "--set",
                                "kafka.consumer.session.timeout.ms=6000",
                                "--set",
                                "kafka.consumer.heartbeat.interval.ms=1000",
                                "--set",
                                "metrics.address=127.0.0.1:0",
                                "--set",
                                dbg[0] ? "log.level=debug" : "log.level=info",
                                "--exit-idle-ms",
                                idle,
                                NULL,
                                NULL,
                                NULL,
                                NULL};
                int a = 0;
                while (argv[a])
                        a++;
                if (armed_by_signal)
                        argv[a++] = "--exit-idle-after-signal";
                if (dbg[0]) {
                        argv[a++] = "--set";
                        argv[a++] = dbg;
                }
                execv(exe, argv);
                _exit(127);
        }
        return pid;
}

/* Waits for encore @p pid; one that has not exited after @p ms is killed
 * and the test fails. */
static int f_wait(pid_t pid, int ms) {
        int status;
        int64_t deadline = t_now_ms() + ms;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                assert_true(r >= 0);
                if (r == pid)
                        return status;
                if (t_now_ms() > deadline) {
                        fprintf(stderr,
                                "encore %d still running after %d ms: "
                                "killed; log %s\n",
                                (int)pid, ms, cur_log);
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        fail();
                }
                usleep(20000);
        }
}

static bool f_exited_ok(int status) {
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The test's own idempotent producer, like t_producer() but quiet: the
 * faults make it log connection errors that are expected. */
static rd_kafka_t *f_producer(void) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.idempotence", "true", err, sizeof(err));
        rd_kafka_conf_set(kc, "partitioner", "murmur2_random", err,
                          sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "2", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        assert_non_null(rk);
        return rk;
}

/* Produces records [from, to) of the input to @p topic with @p rk, spread
 * evenly over about @p ms milliseconds; does not wait for delivery. */
static void f_produce(rd_kafka_t *rk, const char *topic, size_t from, size_t to,
                      int ms) {
        const size_t batch = 100;
        size_t nbatch = (to - from + batch - 1) / batch;
        int64_t t0 = t_now_ms();
        for (size_t b = 0; b < nbatch; b++) {
                for (size_t i = from + b * batch;
                     i < to && i < from + (b + 1) * batch; i++)
                        t_produce_raw(rk, topic, input.key[i],
                                      input.val[i].data, input.val[i].len);
                int64_t due =
                        t0 + (int64_t)ms * (int64_t)(b + 1) / (int64_t)nbatch;
                while (t_now_ms() < due)
                        rd_kafka_poll(rk, 5);
        }
        rd_kafka_poll(rk, 0);
}

/* The group's committed offsets of @p topic's partitions into @p offs. */
static void f_committed(const char *group, const char *topic, int64_t *offs) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "3", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(F_IN_PARTS);
        for (int32_t p = 0; p < F_IN_PARTS; p++)
                rd_kafka_topic_partition_list_add(l, topic, p);
        assert_int_equal(rd_kafka_committed(rk, l, 10000), 0);
        for (int32_t p = 0; p < F_IN_PARTS; p++) {
                assert_int_equal(l->elems[p].err, 0);
                offs[p] = l->elems[p].offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
}

/* A passing run's log is removed unless ENCORE_FAULTS_KEEP_LOGS is set; a
 * failing run's stays (its path is printed). */
static void f_log_done(const char *log) {
        if (getenv("ENCORE_FAULTS_KEEP_LOGS"))
                fprintf(stderr, "log kept: %s\n", log);
        else
                unlink(log);
}

/* ---- what a run must have produced --------------------------------- */

static int f_cmp_dlq(const void *a, const void *b) {
        const t_rec_t *x = a, *y = b;
        long long px = atoll(x->hdr[3]), py = atoll(y->hdr[3]);
        long long ox = atoll(x->hdr[4]), oy = atoll(y->hdr[4]);
        if (px != py)
                return px < py ? -1 : 1;
        return ox < oy ? -1 : ox > oy;
}

/* Dead letters of run @p tag: the reference's, from the same source
 * partition and offset with the same reason, key and bytes; repeats
 * allowed, nothing else. */
static void f_assert_same_dead_letters(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        t_recs_t r;
        t_read(n.dlq, &r);
        qsort(r.v, r.n, sizeof(*r.v), f_cmp_dlq);
        size_t j = 0;
        for (size_t i = 0; i < r.n; i++) {
                assert_string_equal(r.v[i].hdr[2], n.in);
                if (i > 0 && !f_cmp_dlq(&r.v[i], &r.v[i - 1]))
                        j--; /* a repeat: compare with the same one again */
                assert_true(j < ref_dlq.n);
                const t_rec_t *w = &ref_dlq.v[j++];
                assert_int_equal(f_cmp_dlq(&r.v[i], w), 0);
                assert_string_equal(r.v[i].hdr[0], w->hdr[0]);
                assert_string_equal(r.v[i].key, w->key);
                assert_int_equal(r.v[i].len, w->len);
                assert_memory_equal(r.v[i].val, w->val, w->len);
        }
        assert_int_equal(j, ref_dlq.n);
        t_recs_free(&r);
}

/* Compares run @p tag's output topic with the reference: every reference
 * update present (else "missing"), nothing else ("stray"), each record
 * byte-identical to the reference's of the same update id ("different");
 * further copies are "repeats". Prints the counts when something is wrong,
 * then asserts it is not; returns the repeats. */
static size_t f_assert_same_updates(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        t_recs_t rc;
        t_read(n.out, &rc);
        t_entry_t *ic = t_index(codec, &rc);
        size_t missing = 0, stray = 0, different = 0, repeats = 0, j = 0;
        for (size_t i = 0; i < rc.n; i++) {
                const t_entry_t *hit = bsearch(&ic[i], ref_idx, ref_out.n,
                                               sizeof(*ref_idx), t_cmp_entry);
                if (!hit)
                        stray++;
                else if (hit->contenth != ic[i].contenth)
                        different++;
                if (i > 0 && ic[i].idh == ic[i - 1].idh)
                        repeats++;
        }
        for (size_t i = 0; i < ref_out.n; i++) {
                while (j < rc.n && ic[j].idh < ref_idx[i].idh)
                        j++;
                if (!(j < rc.n && ic[j].idh == ref_idx[i].idh))
                        missing++;
        }
        if (missing || stray || different)
                fprintf(stderr,
                        "%s: output differs from the reference: %zu of %zu "
                        "reference updates missing, %zu stray records, %zu "
                        "records not identical to the reference (%zu "
                        "records read, %lld in the topic's offsets, %zu "
                        "repeats); encore log %s\n",
                        tag, missing, ref_out.n, stray, different, rc.n,
                        (long long)t_topic_count(n.out), repeats, cur_log);
        assert_int_equal(missing, 0);
        assert_int_equal(stray, 0);
        assert_int_equal(different, 0);
        assert_int_equal(rc.n, ref_out.n + repeats);
        free(ic);
        t_recs_free(&rc);
        return repeats;
}

/* Everything a finished run @p tag must satisfy; returns the number of
 * repeated updates. */
static size_t f_assert_like_reference(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        size_t repeats = f_assert_same_updates(tag);
        f_assert_same_dead_letters(tag);
        int64_t c[F_IN_PARTS];
        f_committed(n.group, n.in, c);
        for (int p = 0; p < F_IN_PARTS; p++) {
                if (c[p] != ref_committed[p])
                        fprintf(stderr,
                                "%s: committed offset of partition %d is "
                                "%lld, the reference's %lld; encore log %s\n",
                                tag, p, (long long)c[p],
                                (long long)ref_committed[p], cur_log);
                assert_int_equal(c[p], ref_committed[p]);
        }
        return repeats;
}

/* ---- the reference --------------------------------------------------- */

/* Appends record @p val (copied) under @p key to the input. */
static void f_input_add(const char *key, const void *val, size_t len) {
        enc_buf_t *b = &input.val[input.n];
        enc_buf_init(b, len + 1);
        assert_int_equal(enc_buf_append(b, val, len), 0);
        snprintf(input.key[input.n++], sizeof(*input.key), "%s", key);
}

/* The generated input plus, after every F_BAD_EVERY-th event, one bad
 * record of each kind under that event's key: not Avro (bad_magic), an
 * exact copy of the event (duplicate), the event with ms_played -5
 * (invalid) and the event 30 days earlier under a new event id (late: far
 * behind the watermark). Each is dead-lettered with its reason, the same
 * way in every run, so a run's dead letters must be the reference's. */
static void f_input_make(void) {
        t_input_t g;
        t_input_make(&g, F_EVENTS, 51);
        size_t n = g.n + g.n / F_BAD_EVERY * F_BAD_KINDS;
        input.val = calloc(n, sizeof(*input.val));
        input.key = calloc(n, sizeof(*input.key));
        input.n = 0;
        char err[256];
        for (size_t i = 0; i < g.n; i++) {
                input.val[input.n] = g.val[i]; /* takes the buffer */
                memcpy(input.key[input.n++], g.key[i], sizeof(*g.key));
                if (i % F_BAD_EVERY != F_BAD_EVERY - 1)
                        continue;
                const enc_buf_t *ok = &input.val[input.n - 1];
                f_input_add(g.key[i], "not avro!", 9);
                f_input_add(g.key[i], ok->data, ok->len);
                enc_event_t ev;
                assert_int_equal(enc_codec_decode_event(codec, ok->data,
                                                        ok->len, &ev, err,
                                                        sizeof(err)),
                                 0);
                char id[64];
                enc_buf_t b;
                enc_buf_init(&b, 1 << 12);
                snprintf(id, sizeof(id), "bad-invalid-%zu", i);
                ev.event_id = id;
                int64_t ms = ev.ms_played;
                ev.ms_played = -5;
                assert_int_equal(enc_codec_encode_event(codec, &ev, &b), 0);
                f_input_add(g.key[i], b.data, b.len);
                enc_buf_reset(&b);
                snprintf(id, sizeof(id), "bad-late-%zu", i);
                ev.ms_played = ms;
                ev.event_time -= 30LL * 86400000;
                assert_int_equal(enc_codec_encode_event(codec, &ev, &b), 0);
                f_input_add(g.key[i], b.data, b.len);
                enc_buf_free(&b);
        }
        free(g.val);
        free(g.key);
}

/* Nothing dropped silently: the last pipeline_stop of @p log (the run that
 * finished, after any restart) says consumed = accepted + dead_lettered +
 * reread. */
static void f_assert_accounting(const char *log) {
        FILE *f = fopen(log, "r");
        assert_non_null(f);
        char line[2048], last[2048] = "";
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "event=pipeline_stop"))
                        snprintf(last, sizeof(last), "%s", line);
        fclose(f);
        const char *keys[] = {"consumed=", "accepted=", "dead_lettered=",
                              "reread="};
        long long v[4];
        for (int k = 0; k < 4; k++) {
                const char *p = strstr(last, keys[k]);
                assert_non_null(p);
                v[k] = atoll(p + strlen(keys[k]));
        }
        if (v[0] != v[1] + v[2] + v[3])
                fprintf(stderr, "accounting: %s", last);
        assert_true(v[0] > 0);
        assert_int_equal(v[0], v[1] + v[2] + v[3]);
}

static int f_group_setup(void **st) {
        (void)st;
        char err[256];
        emb = enc_embedded_new(F_BROKERS, err, sizeof(err));
        assert_non_null(emb);
        bootstrap = enc_embedded_bootstraps(emb);
        mc = enc_embedded_mock(emb);
        codec = t_codec();
        f_input_make();

        /* One uninterrupted run over the whole input, produced up front. */
        f_names_t n;
        f_names("ref", &n);
        f_topics("ref");
        rd_kafka_t *rk = f_producer();
        f_produce(rk, n.in, 0, input.n, 0);
        assert_int_equal(rd_kafka_flush(rk, 30000), 0);
        rd_kafka_destroy(rk);
        char *dir = t_tmpdir("faults-ref");
        char log[160];
        snprintf(log, sizeof(log), "%s.log", dir);
        int status = f_wait(f_spawn("ref", dir, log, 1000, false), 120000);
        if (!f_exited_ok(status))
                fprintf(stderr, "reference run failed; log in %s\n", log);
        assert_true(f_exited_ok(status));
        f_assert_accounting(log);
        f_log_done(log);
        t_rmtree(dir);
        free(dir);
        t_read(n.out, &ref_out);
        assert_true(ref_out.n > 1000);
        ref_idx = t_index(codec, &ref_out);
        for (size_t i = 1; i < ref_out.n; i++)
                assert_true(ref_idx[i].idh != ref_idx[i - 1].idh); /* unique */
        t_read(n.dlq, &ref_dlq);
        /* one dead letter per bad record, each with its reason */
        assert_int_equal(ref_dlq.n, F_EVENTS / F_BAD_EVERY * F_BAD_KINDS);
        qsort(ref_dlq.v, ref_dlq.n, sizeof(*ref_dlq.v), f_cmp_dlq);
        const char *kinds[F_BAD_KINDS] = {"bad_magic", "duplicate", "invalid",
                                          "late"};
        for (int k = 0; k < F_BAD_KINDS; k++) {
                size_t cnt = 0;
                for (size_t i = 0; i < ref_dlq.n; i++)
                        cnt += !strcmp(ref_dlq.v[i].hdr[0], kinds[k]);
                if (cnt != F_EVENTS / F_BAD_EVERY)
                        fprintf(stderr, "reference: %zu dead letters %s\n",
                                cnt, kinds[k]);
                assert_int_equal(cnt, F_EVENTS / F_BAD_EVERY);
        }
        f_committed(n.group, n.in, ref_committed);
        fprintf(stderr,
                "faults: reference run: %zu input records, %zu updates, "
                "%zu dead letters, committed offsets %lld/%lld\n",
                input.n, ref_out.n, ref_dlq.n, (long long)ref_committed[0],
                (long long)ref_committed[1]);
        return 0;
}

static int f_group_teardown(void **st) {
        (void)st;
        free(ref_idx);
        t_recs_free(&ref_out);
        t_recs_free(&ref_dlq);
        t_input_free(&input);
        enc_codec_destroy(codec);
        t_teardown(st);
        return 0;
}

/* ---- one faulty run -------------------------------------------------- */

typedef void (*f_fn_t)(const char *tag);
typedef void (*f_check_fn_t)(const char *tag, const char *log);

typedef struct f_fault_s {
        const char *tag;
        f_fn_t inject;      /* after ~30% of the input */
        f_fn_t heal;        /* fault_ms later, NULL for none */
        int fault_ms;       /* the input keeps flowing meanwhile */
        f_check_fn_t check; /* after the run, with encore's log: the fault
                             * was met; NULL for none */
        int tail_ms;        /* the last 30% of the input takes this; 0: 2000 */
} f_fault_t;

/* Starts encore on run @p tag (stderr to @p log) and brings it
 * mid-stream: the first 10% of the input, a wait for its first outputs (it
 * is in the group and processing), then up to 30% over a second. Its idle
 * exit waits for SIGUSR1 (send it once the whole input is in). */
static pid_t f_start_midstream(const char *tag, const char *dir,
                               const char *log, rd_kafka_t *rk) {
        f_names_t n;
        f_names(tag, &n);
        pid_t pid = f_spawn(tag, dir, log, F_IDLE_MS, true);
        size_t n10 = input.n / 10, n30 = input.n * 3 / 10;
        f_produce(rk, n.in, 0, n10, 0);
        int64_t deadline = t_now_ms() + 30000;
        while (t_topic_count(n.out) == 0 && t_now_ms() < deadline)
                usleep(50000);
        assert_true(t_topic_count(n.out) > 0);
        f_produce(rk, n.in, n10, n30, 1000);
        return pid;
}

/* Restarts encore on run @p tag's state in @p dir, the fault gone, lets it
 * finish and checks everything against the reference. */
static void f_restart_and_check(const char *tag, const char *dir,
                                const char *log, const char *what) {
        int status = f_wait(f_spawn(tag, dir, log, 1000, false), 120000);
        if (!f_exited_ok(status))
                fprintf(stderr,
                        "%s: restart exited with status %d; log in "
                        "%s\n",
                        tag, status, log);
        assert_true(f_exited_ok(status));
        f_assert_accounting(log);
        size_t repeats = f_assert_like_reference(tag);
        fprintf(stderr,
                "%s: %s; after a restart all %zu reference updates, %zu "
                "identical repeats\n",
                tag, what, ref_out.n, repeats);
}

/*
 * Runs encore on fault @p f's topics: 10% of the input first (and waits
 * for encore to be in the group and producing), to 30% over a second,
 * inject, to 70% over fault_ms, heal, the rest over tail_ms; then
 * encore exits when idle and the run is checked against the reference.
 */
static void f_run(const f_fault_t *f) {
        f_names_t n;
        f_names(f->tag, &n);
        f_topics(f->tag);
        char *dir = t_tmpdir(f->tag);
        char log[160];
        snprintf(log, sizeof(log), "%s.log", dir);
        int64_t t0 = t_now_ms();
        rd_kafka_t *rk = f_producer();
        pid_t pid = f_start_midstream(f->tag, dir, log, rk);
        size_t n30 = input.n * 3 / 10, n70 = input.n * 7 / 10;
        f->inject(f->tag);
        f_produce(rk, n.in, n30, n70, f->fault_ms);
        if (f->heal)
                f->heal(f->tag);
        f_produce(rk, n.in, n70, input.n, f->tail_ms ? f->tail_ms : 2000);
        assert_int_equal(rd_kafka_flush(rk, 60000), 0);
        rd_kafka_destroy(rk);
        /* The input went in exactly once, whatever the fault did to the
         * test's own producer. */
        assert_int_equal(t_topic_count(n.in), (int64_t)input.n);
        kill(pid, SIGUSR1); /* the input is complete: encore may idle-exit */

        int status = f_wait(pid, 120000);
        int64_t took = t_now_ms() - t0;
        if (!f_exited_ok(status))
                fprintf(stderr, "%s: encore exited with status %d; log in %s\n",
                        f->tag, status, log);
        assert_true(f_exited_ok(status));
        if (f->check)
                f->check(f->tag, log);
        f_assert_accounting(log);
        size_t repeats = f_assert_like_reference(f->tag);
        fprintf(stderr,
                "%s: encore ran %.1f s; all %zu reference updates, %zu "
                "identical repeats; log: %d warnings, %d errors\n",
                f->tag, (double)took / 1000.0, ref_out.n, repeats,
                t_file_count(log, "level=warn"),
                t_file_count(log, "level=error"));
        f_log_done(log);
        t_rmtree(dir);
        free(dir);
}

/* Pushes @p cnt copies of each of the @p nerr errors in @p errs, in turn,
 * onto @p broker's stack for @p api. */
static void f_push(int32_t broker, int16_t api, size_t cnt,
                   const rd_kafka_resp_err_t *errs, size_t nerr) {
        for (size_t r = 0; r < cnt; r++)
                for (size_t i = 0; i < nerr; i++)
                        assert_int_equal(
                                rd_kafka_mock_broker_push_request_error_rtts(
                                        mc, broker, api, 1, errs[i], 0),
                                0);
}

/* Fails the test unless every error pushed for @p api on @p broker was
 * answered. */
static void f_assert_consumed(int32_t broker, int16_t api) {
        size_t cnt = 1;
        assert_int_equal(
                rd_kafka_mock_broker_error_stack_cnt(mc, broker, api, &cnt), 0);
        if (cnt)
                fprintf(stderr,
                        "broker %d api %d: %zu injected errors "
                        "never answered; encore log %s\n",
                        broker, api, cnt, cur_log);
        assert_int_equal(cnt, 0);
}

/* ---- the faults ------------------------------------------------------ */

/* Broker 2 goes down (input 1, output 1, changelog 0 lose their leader)
 * for three seconds, then comes back. */
static void f_broker2_down(const char *tag) {
        (void)tag;
        assert_int_equal(rd_kafka_mock_broker_set_down(mc, 2), 0);
}
static void f_broker2_up(const char *tag) {
        (void)tag;
        assert_int_equal(rd_kafka_mock_broker_set_up(mc, 2), 0);
}

/* encore's own clients saw the broker go. */
static void f_check_down(const char *tag, const char *log) {
        (void)tag;
        assert_true(t_file_contains(log, "Connection refused"));
}

/* Broker 2 leads input partition 1, output partition 1 and changelog
 * partition 0: encore's fetches, outputs and checkpoints to it stall for
 * three seconds and resume on the same broker (no leader change). */
static void test_broker_down_then_up(void **st) {
        (void)st;
        /* After the broker is back, the clients reconnect on their own
         * backoff (up to reconnect.backoff.max.ms, 10 s): the idle exit is
         * armed only once the whole input is in (SIGUSR1, see f_run). */
        f_fault_t f = {.tag = "f-down",
                       .inject = f_broker2_down,
                       .heal = f_broker2_up,
                       .fault_ms = 3000,
                       .check = f_check_down};
        f_run(&f);
}

/* Produce requests to broker 3 (outputs 2 and 3, changelog 1, dead
 * letters) answered with retriable errors, three of each kind. */
static const rd_kafka_resp_err_t f_produce_errs[] = {
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
};
static void f_produce_errors(const char *tag) {
        (void)tag;
        f_push(3, F_PRODUCE, 3, f_produce_errs, 3);
}
static void f_check_produce(const char *tag, const char *log) {
        (void)tag;
        (void)log;
        f_assert_consumed(3, F_PRODUCE);
}

static void test_produce_errors_are_retried(void **st) {
        (void)st;
        f_fault_t f = {"f-produce", f_produce_errors, NULL, 2500,
                       f_check_produce};
        f_run(&f);
}

/* Fetch requests to the input leaders (brokers 1 and 2) answered with
 * retriable errors, one of each kind on each. The mock answers a fetch
 * without records only after its wait time (500 ms), and the consumer backs
 * off 500 ms after each error, so the input stalls about three seconds
 * (the idle exit waits for the whole input anyway, see f_run). */
static const rd_kafka_resp_err_t f_fetch_errs[] = {
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
};
static void f_fetch_errors(const char *tag) {
        (void)tag;
        f_push(1, F_FETCH, 1, f_fetch_errs, 3);
        f_push(2, F_FETCH, 1, f_fetch_errs, 3);
}
static void f_check_fetch(const char *tag, const char *log) {
        (void)tag;
        (void)log;
        f_assert_consumed(1, F_FETCH);
        f_assert_consumed(2, F_FETCH);
}

static void test_fetch_errors_are_retried(void **st) {
        (void)st;
        f_fault_t f = {.tag = "f-fetch",
                       .inject = f_fetch_errors,
                       .fault_ms = 2500,
                       .check = f_check_fetch};
        f_run(&f);
}

/* OffsetCommit requests to the coordinator (broker 3) answered with
 * retriable errors, two of each kind. A failed group commit is not fatal:
 * the position in RocksDB is what a restart resumes from, and the next
 * commit carries the group offsets forward. */
static const rd_kafka_resp_err_t f_commit_errs[] = {
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
};
static void f_commit_errors(const char *tag) {
        (void)tag;
        f_push(3, F_OFFSET_COMMIT, 2, f_commit_errs, 4);
}
static void f_check_commit(const char *tag, const char *log) {
        (void)tag;
        (void)log;
        f_assert_consumed(3, F_OFFSET_COMMIT);
}

static void test_commit_errors_are_not_fatal(void **st) {
        (void)st;
        f_fault_t f = {"f-commit", f_commit_errors, NULL, 2500, f_check_commit};
        f_run(&f);
}

/* Heartbeats to the coordinator answered "not coordinator" and
 * "coordinator not available", and the FindCoordinator requests that
 * follow (to any broker) answered "not available" three times. */
static const rd_kafka_resp_err_t f_coord_errs[] = {
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
};
static void f_coord_errors(const char *tag) {
        (void)tag;
        rd_kafka_mock_push_request_errors(
                mc, F_FIND_COORD, 3,
                RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
        f_push(3, F_HEARTBEAT, 1, f_coord_errs, 2);
}
static void f_check_coord(const char *tag, const char *log) {
        (void)tag;
        (void)log;
        f_assert_consumed(3, F_HEARTBEAT);
        rd_kafka_mock_clear_request_errors(mc, F_FIND_COORD);
}

static void test_coordinator_errors_are_retried(void **st) {
        (void)st;
        f_fault_t f = {"f-coord", f_coord_errors, NULL, 3000, f_check_coord};
        f_run(&f);
}

/* A heartbeat answered "rebalance in progress" makes encore rejoin the
 * group mid-stream; its JoinGroup requests are then answered "not
 * coordinator" and "coordinator not available" before one succeeds. The
 * consumer waits about 2 s before each new JoinGroup and the mock holds a
 * rejoin of a live group for 5 s (session timeout - 1 s), so the input keeps
 * flowing for 12 s after the fault: encore stops in a stable group and its
 * last commit is accepted. */
static void f_rejoin_errors(const char *tag) {
        (void)tag;
        f_push(3, F_JOIN_GROUP, 1, f_coord_errs, 2);
        const rd_kafka_resp_err_t rip[] = {
                RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS};
        f_push(3, F_HEARTBEAT, 1, rip, 1);
}
static void f_check_rejoin(const char *tag, const char *log) {
        (void)tag;
        (void)log;
        f_assert_consumed(3, F_HEARTBEAT);
        f_assert_consumed(3, F_JOIN_GROUP);
}

static void test_rejoin_through_join_group_errors(void **st) {
        (void)st;
        f_fault_t f = {.tag = "f-rejoin",
                       .inject = f_rejoin_errors,
                       .fault_ms = 4000,
                       .check = f_check_rejoin,
                       .tail_ms = 8000};
        f_run(&f);
}

/* The group coordinator moves from broker 3 to broker 1, and later to
 * broker 2, while encore is consuming and committing. */
static void f_coord_to_1(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        assert_int_equal(rd_kafka_mock_coordinator_set(mc, "group", n.group, 1),
                         0);
}
static void f_coord_to_2(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        assert_int_equal(rd_kafka_mock_coordinator_set(mc, "group", n.group, 2),
                         0);
}

static void test_coordinator_moves(void **st) {
        (void)st;
        f_fault_t f = {"f-coord-move", f_coord_to_1, f_coord_to_2, 2500, NULL};
        f_run(&f);
}

/* Input partition 0 moves from broker 1 to 3 and partition 1 from 2 to 1;
 * later both move back. */
static void f_move_input(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        f_leader(n.in, 0, 3);
        f_leader(n.in, 1, 1);
}
static void f_move_input_back(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        f_leader(n.in, 0, 1);
        f_leader(n.in, 1, 2);
}

static void test_input_leaders_move(void **st) {
        (void)st;
        f_fault_t f = {"f-lead-in", f_move_input, f_move_input_back, 2500,
                       NULL};
        f_run(&f);
}

/* Every output, changelog and dead-letter partition moves to another
 * broker; later they all move back. */
static void f_move_output(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        f_leader(n.out, 0, 2);
        f_leader(n.out, 1, 3);
        f_leader(n.out, 2, 1);
        f_leader(n.out, 3, 1);
        f_leader(n.changelog, 0, 1);
        f_leader(n.changelog, 1, 2);
        f_leader(n.dlq, 0, 1);
}
static void f_move_output_back(const char *tag) {
        f_names_t n;
        f_names(tag, &n);
        f_leader(n.out, 0, 1);
        f_leader(n.out, 1, 2);
        f_leader(n.out, 2, 3);
        f_leader(n.out, 3, 3);
        f_leader(n.changelog, 0, 2);
        f_leader(n.changelog, 1, 3);
        f_leader(n.dlq, 0, 3);
}

static void test_output_leaders_move(void **st) {
        (void)st;
        f_fault_t f = {"f-lead-out", f_move_output, f_move_output_back, 2500,
                       NULL};
        f_run(&f);
}

/*
 * A delivery that fails for good stops encore with a non-zero exit and
 * nothing committed past it. A restart on the same state, the fault gone,
 * must still give every reference update: the failed outputs are produced
 * again.
 *
 * Broker 3 leads output partition 2 only: the updates of users of input
 * partition 0 (murmur2 % 4 == 2 implies murmur2 % 2 == 0). The error,
 * non-retriable, is answered after a second, so a commit is under way when
 * it comes: that commit's changelog records (on broker 2) are delivered
 * while the outputs it covers are not.
 */
static void
test_failed_delivery_stops_encore_and_restart_loses_nothing(void **st) {
        (void)st;
        const char *tag = "f-fatal";
        f_names_t n;
        f_names(tag, &n);
        f_topics(tag);
        f_leader(n.out, 3, 1);
        f_leader(n.changelog, 1, 2);
        f_leader(n.dlq, 0, 1);
        char *dir = t_tmpdir(tag);
        char log[160];
        snprintf(log, sizeof(log), "%s.log", dir);
        rd_kafka_t *rk = f_producer();
        pid_t pid = f_start_midstream(tag, dir, log, rk);
        assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(
                                 mc, 3, F_PRODUCE, 1,
                                 RD_KAFKA_RESP_ERR_INVALID_RECORD, 1000),
                         0);
        f_produce(rk, n.in, input.n * 3 / 10, input.n, 2000);
        assert_int_equal(rd_kafka_flush(rk, 60000), 0);
        rd_kafka_destroy(rk);
        int status = f_wait(pid, 120000);
        f_assert_consumed(3, F_PRODUCE);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
        assert_true(t_file_contains(log, "event=pipeline_fatal"));
        assert_true(t_file_contains(log, "delivery to"));

        f_restart_and_check(tag, dir, log, "a failed delivery stopped encore");
        f_log_done(log);
        t_rmtree(dir);
        free(dir);
}

/*
 * The crash test with a broker down: broker 3, leader of output partition
 * 2 only, goes down; encore keeps processing, its outputs to broker 3 wait
 * in the producer and its commits wait in the flush for them, while the
 * changelog (broker 2) takes the commit's records at once. encore is
 * SIGKILLed then, the broker comes back, and a restart on the same state
 * must give every reference update.
 */
static void
test_sigkill_while_an_output_leader_is_down_loses_nothing(void **st) {
        (void)st;
        const char *tag = "f-kill";
        f_names_t n;
        f_names(tag, &n);
        f_topics(tag);
        f_leader(n.out, 3, 1);
        f_leader(n.changelog, 1, 2);
        f_leader(n.dlq, 0, 1);
        assert_int_equal(rd_kafka_mock_coordinator_set(mc, "group", n.group, 1),
                         0);
        char *dir = t_tmpdir(tag);
        char log[160];
        snprintf(log, sizeof(log), "%s.log", dir);
        rd_kafka_t *rk = f_producer();
        pid_t pid = f_start_midstream(tag, dir, log, rk);
        assert_int_equal(rd_kafka_mock_broker_set_down(mc, 3), 0);
        f_produce(rk, n.in, input.n * 3 / 10, input.n / 2, 1000);
        kill(pid, SIGKILL);
        int status = f_wait(pid, 120000);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(rd_kafka_mock_broker_set_up(mc, 3), 0);
        f_produce(rk, n.in, input.n / 2, input.n, 0);
        assert_int_equal(rd_kafka_flush(rk, 60000), 0);
        rd_kafka_destroy(rk);

        f_restart_and_check(tag, dir, log,
                            "SIGKILL while an output leader was down");
        f_log_done(log);
        t_rmtree(dir);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_broker_down_then_up),
                cmocka_unit_test(test_produce_errors_are_retried),
                cmocka_unit_test(test_fetch_errors_are_retried),
                cmocka_unit_test(test_commit_errors_are_not_fatal),
                cmocka_unit_test(test_coordinator_errors_are_retried),
                cmocka_unit_test(test_rejoin_through_join_group_errors),
                cmocka_unit_test(test_coordinator_moves),
                cmocka_unit_test(test_input_leaders_move),
                cmocka_unit_test(test_output_leaders_move),
                cmocka_unit_test(
                        test_failed_delivery_stops_encore_and_restart_loses_nothing),
                cmocka_unit_test(
                        test_sigkill_while_an_output_leader_is_down_loses_nothing),
        };
        /* ENCORE_FAULTS_ONLY=<pattern>: run only the tests matching it. */
        if (getenv("ENCORE_FAULTS_ONLY"))
                cmocka_set_test_filter(getenv("ENCORE_FAULTS_ONLY"));
        return cmocka_run_group_tests(tests, f_group_setup, f_group_teardown);
}
