/*
 * test_pipeline.c -- encore end to end on librdkafka's mock cluster: a real
 * Kafka-protocol broker on loopback, in this process. Records are produced
 * with a real producer, encore consumes them in a consumer group, and the
 * tests read what landed on the output and dead-letter topics.
 *
 *  - a scripted sequence gives exactly the hand-worked updates;
 *  - bad records land on the dead-letter topic with reason, source position
 *    and their original bytes;
 *  - SIGKILL mid-stream, then restart: every update of an uninterrupted run
 *    appears, and any repeat is byte-identical (same id, same content);
 *  - SIGTERM drains and commits: a restart repeats nothing;
 *  - /metrics' engine statistics (cache, read-ahead, duplicate checks, id
 *    filter, checkpoints) have the hand-worked values for a scripted run
 *    and its restart.
 */
#include "kafka_harness.h"

#include <pthread.h>

#include "budget.h"
#include "pipeline_int.h"
#include <rocksdb/c.h>

/* ---- tests ---------------------------------------------------------- */

/* The sequence of test_engine's hand-worked scenario, through Kafka:
 * alice 1, alice 2, alice 1 (d3 00:00), bob 1, alice 0 final (d4 00:00). */
static void test_scripted_plays_give_exact_updates_on_output_topic(void **st) {
        (void)st;
        char err[256];
        assert_int_equal(
                enc_embedded_create_topic(emb, "s-plays", 1, err, sizeof(err)),
                0);
        assert_int_equal(enc_embedded_create_topic(emb, "s-group-changelog", 1,
                                                   err, sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, "s-rewards", 1, err,
                                                   sizeof(err)),
                         0);
        enc_codec_t *codec = t_codec();
        rd_kafka_t *rk = t_producer();
        enc_event_t evs[] = {
                t_play("e1", "alice", T_AT(0, 10, 0), 60000),
                t_play("e2", "alice", T_AT(0, 11, 0), 60000),
                t_play("e3", "alice", T_AT(0, 12, 0), 10000),
                t_play("e4", "alice", T_AT(1, 9, 0), 45000),
                t_play("e5", "bob", T_AT(3, 8, 0), 60000),
                t_play("e6", "carol", T_AT(5, 10, 0), 60000),
        };
        for (size_t i = 0; i < 6; i++)
                t_produce_event(rk, codec, "s-plays", &evs[i]);
        assert_int_equal(rd_kafka_flush(rk, 10000), 0);
        rd_kafka_destroy(rk);

        char *dir = t_tmpdir("pipe-s");
        char sd[160];
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        char bs[256];
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        enc_conf_t *conf = t_conf(
                bs, sd, "input.topic=s-plays", "output.topic=s-rewards",
                "dlq.topic=s-dlq", "group.id=s-group", "signals=active_days:1",
                "signal.active_days.1.windows=3", "window.grace.ms=0",
                "metrics.address=127.0.0.1:0", NULL);
        t_run_inproc(conf);

        t_recs_t r;
        t_read("s-rewards", &r);
        assert_int_equal(r.n, 5);
        struct {
                const char *user;
                int64_t seq;
                double value, delta;
                int64_t ws, we, et;
                bool final;
        } want[] = {
                {"alice", 1, 1, 1, T_DAY(-2), T_DAY(1), T_AT(0, 10, 0), false},
                {"alice", 2, 2, 1, T_DAY(-1), T_DAY(2), T_AT(1, 9, 0), false},
                {"alice", 3, 1, -1, T_DAY(1), T_DAY(4), T_DAY(3), false},
                {"bob", 1, 1, 1, T_DAY(1), T_DAY(4), T_AT(3, 8, 0), false},
                {"alice", 4, 0, -1, T_DAY(2), T_DAY(5), T_DAY(4), true},
        };
        for (size_t i = 0; i < 5; i++) {
                enc_update_t up;
                assert_int_equal(enc_codec_decode_update(codec, r.v[i].val,
                                                         r.v[i].len, &up, err,
                                                         sizeof(err)),
                                 0);
                assert_string_equal(r.v[i].key, want[i].user);
                assert_string_equal(up.user_id, want[i].user);
                assert_string_equal(up.signal, "active_days");
                assert_string_equal(up.subject, "3d");
                assert_int_equal(up.sequence, want[i].seq);
                assert_true(up.value == want[i].value);
                assert_true(up.delta == want[i].delta);
                assert_int_equal(up.window_start, want[i].ws);
                assert_int_equal(up.window_end, want[i].we);
                assert_int_equal(up.event_time, want[i].et);
                assert_int_equal(up.final, want[i].final);
        }
        t_recs_free(&r);
        enc_conf_destroy(conf);
        enc_codec_destroy(codec);
        t_rmtree(dir);
        free(dir);
}

/* Bad records: each lands on the DLQ with its reason, where it came from,
 * and its bytes unchanged; good ones are processed; the counts add up. */
static void test_dead_letters_carry_reason_source_and_bytes(void **st) {
        (void)st;
        char err[256];
        assert_int_equal(
                enc_embedded_create_topic(emb, "d-plays", 1, err, sizeof(err)),
                0);
        assert_int_equal(enc_embedded_create_topic(emb, "d-group-changelog", 1,
                                                   err, sizeof(err)),
                         0);
        enc_codec_t *codec = t_codec();
        rd_kafka_t *rk = t_producer();
        enc_event_t good = t_play("g1", "ivy", T_AT(0, 10, 0), 60000);
        t_produce_event(rk, codec, "d-plays", &good);       /* 0 */
        t_produce_raw(rk, "d-plays", "ivy", "garbage!", 8); /* 1 */
        enc_buf_t b;
        enc_buf_init(&b, 4096);
        assert_int_equal(enc_codec_encode_event(codec, &good, &b), 0);
        t_produce_raw(rk, "d-plays", "ivy", b.data, b.len - 5); /* 2 */
        t_produce_raw(rk, "d-plays", "ivy", NULL, 0);           /* 3 */
        enc_event_t late = t_play("g2", "ivy", T_AT(0, 9, 0), 60000);
        t_produce_event(rk, codec, "d-plays", &late); /* 4 */
        enc_event_t good2 = t_play("g3", "ivy", T_AT(0, 10, 5), 60000);
        t_produce_event(rk, codec, "d-plays", &good2); /* 5 */
        assert_int_equal(rd_kafka_flush(rk, 10000), 0);
        rd_kafka_destroy(rk);

        char *dir = t_tmpdir("pipe-d");
        char sd[160], bs[256];
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        enc_conf_t *conf = t_conf(bs, sd, "input.topic=d-plays",
                                  "output.topic=d-rewards", "dlq.topic=d-dlq",
                                  "group.id=d-group", "window.grace.ms=60000",
                                  "metrics.address=127.0.0.1:0", NULL);
        t_run_inproc(conf);

        t_recs_t r;
        t_read("d-dlq", &r);
        assert_int_equal(r.n, 4);
        const char *reasons[] = {"bad_magic", "truncated", "tombstone", "late"};
        const char *offsets[] = {"1", "2", "3", "4"};
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(r.v[i].hdr[0], reasons[i]);
                assert_true(strlen(r.v[i].hdr[1]) > 0); /* detail */
                assert_string_equal(r.v[i].hdr[2], "d-plays");
                assert_string_equal(r.v[i].hdr[3], "0");
                assert_string_equal(r.v[i].hdr[4], offsets[i]);
                assert_string_equal(r.v[i].key, "ivy");
        }
        assert_int_equal(r.v[0].len, 8);
        assert_memory_equal(r.v[0].val, "garbage!", 8);
        assert_int_equal(r.v[1].len, b.len - 5);
        assert_memory_equal(r.v[1].val, b.data, b.len - 5);
        assert_int_equal(r.v[2].len, 0);
        t_recs_free(&r);
        enc_buf_free(&b);
        enc_conf_destroy(conf);
        enc_codec_destroy(codec);
        t_rmtree(dir);
        free(dir);
}

/* The topics of a run named @p name: <name>-plays (@p in_parts
 * partitions), <name>-out (4) and the changelog of group g-<name>-out,
 * g-<name>-out-changelog (@p cl_parts). */
static void t_make_topics(const char *name, int in_parts, int cl_parts) {
        char err[256], in[64], out[64], cl[96];
        snprintf(in, sizeof(in), "%s-plays", name);
        snprintf(out, sizeof(out), "%s-out", name);
        snprintf(cl, sizeof(cl), "g-%s-out-changelog", name);
        assert_int_equal(enc_embedded_create_topic(emb, in, in_parts, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(
                enc_embedded_create_topic(emb, out, 4, err, sizeof(err)), 0);
        assert_int_equal(enc_embedded_create_topic(emb, cl, cl_parts, err,
                                                   sizeof(err)),
                         0);
}

static void t_interrupted_run(const t_input_t *in, const char *in_topic,
                              const char *out_topic, int sig) {
        char err[256];
        assert_int_equal(
                enc_embedded_create_topic(emb, in_topic, 2, err, sizeof(err)),
                0);
        assert_int_equal(
                enc_embedded_create_topic(emb, out_topic, 4, err, sizeof(err)),
                0);
        char cl[128];
        snprintf(cl, sizeof(cl), "g-%s-changelog", out_topic);
        assert_int_equal(
                enc_embedded_create_topic(emb, cl, 2, err, sizeof(err)), 0);
        char *dir = t_tmpdir("interrupted");
        /* Checkpoints every 5000 records only, never by time. The first
         * half of the input is 7500 records: one checkpoint at 5000, and
         * 2500 records of work after it when the kill lands (the wait
         * below lets encore catch up and deliver their outputs). */
        pid_t pid = t_spawn(in_topic, out_topic, dir, false, true);
        /* wait for it to be in the group and consuming */
        int64_t deadline = t_now_ms() + 30000;
        t_input_produce(in, in_topic, 0, in->n / 10, false);
        while (t_topic_count(out_topic) == 0 && t_now_ms() < deadline)
                usleep(50000);
        assert_true(t_topic_count(out_topic) > 0);
        t_input_produce(in, in_topic, in->n / 10, in->n / 2, true);
        usleep(700000);
        kill(pid, sig);
        int status = t_wait(pid);
        if (sig == SIGKILL)
                assert_true(WIFSIGNALED(status));
        else
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        t_input_produce(in, in_topic, in->n / 2, in->n, false);
        pid = t_spawn(in_topic, out_topic, dir, true, false);
        status = t_wait(pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        t_rmtree(dir);
        free(dir);
}

/*
 * The crash test. A reference run processes the whole input uninterrupted.
 * A second encore, on a topic with the same records, is SIGKILLed while
 * records are flowing (commits every 200 ms, so it dies with uncommitted
 * work), then restarted on its state and run to the end. Every update of
 * the reference must appear, and every record of the interrupted run must
 * be one of the reference's, byte for byte (same key, id and content).
 */
static void
test_sigkill_then_restart_repeats_only_identical_updates(void **st) {
        (void)st;
        t_input_t in;
        t_input_make(&in, 15000, 21);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "k-ref", 2, &rr, &ir, codec);

        t_interrupted_run(&in, "k-plays-kill", "k-kill", SIGKILL);
        size_t repeats = t_assert_same_updates(codec, &rr, ir, "k-kill");
        assert_true(repeats > 0); /* the kill did interrupt work */
        fprintf(stderr,
                "crash test: reference %zu updates; killed run + restart: "
                "all of them, plus %zu identical repeats\n",
                rr.n, repeats);

        /* SIGTERM drains and commits: the restart repeats nothing, so the
         * topic holds exactly the reference's updates. */
        t_interrupted_run(&in, "k-plays-term", "k-term", SIGTERM);
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "k-term"), 0);

        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/*
 * A process with no local state (a new machine, a lost disk) takes over a
 * group's partitions: it restores them from the changelog and continues
 * exactly where the previous process left off.
 */
static void test_fresh_process_restores_state_from_changelog(void **st) {
        (void)st;
        t_input_t in;
        t_input_make(&in, 12000, 31);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "r-ref", 2, &rr, &ir, codec);

        t_make_topics("r", 2, 2);
        char *da = t_tmpdir("first"), *db = t_tmpdir("second");
        char log[160];
        snprintf(log, sizeof(log), "%s.log", db);
        t_input_produce(&in, "r-plays", 0, in.n / 2, false);
        t_run_t a = {"r-plays", "r-out", da, 1000, false, NULL};
        int status = t_wait(t_spawn_run(&a));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        t_input_produce(&in, "r-plays", in.n / 2, in.n, false);
        t_run_t b = {"r-plays", "r-out", db, 1000, false, log};
        status = t_wait(t_spawn_run(&b));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_true(t_file_contains(log, "event=restore_done"));
        assert_true(t_file_contains(log, "mode=full"));

        /* A clean stop wrote everything: the new process repeats nothing. */
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "r-out"), 0);

        /* Restarting b on its own state restores nothing. */
        truncate(log, 0);
        status = t_wait(t_spawn_run(&b));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_false(t_file_contains(log, "event=restore_start"));
        assert_true(t_file_contains(log, "reason=local_state_current"));

        unlink(log);
        t_rmtree(da);
        t_rmtree(db);
        free(da);
        free(db);
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/*
 * Static assignment (input.partitions): two processes read one partition
 * each, with no group; stopped and restarted on their own state, each
 * resumes from its stored position without a rebalance. The union of their
 * outputs is one uninterrupted process's, with nothing repeated (clean
 * stops). A partition the topic does not have stops start-up, naming it.
 */
static void test_static_assignment_resumes_without_a_group(void **st) {
        (void)st;
        char err[256];
        t_input_t in;
        t_input_make(&in, 12000, 47);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "q-ref", 2, &rr, &ir, codec);
        assert_int_equal(
                enc_embedded_create_topic(emb, "q-plays", 2, err, sizeof(err)),
                0);
        assert_int_equal(
                enc_embedded_create_topic(emb, "q-out", 4, err, sizeof(err)),
                0);
        char *d0 = t_tmpdir("static0"), *d1 = t_tmpdir("static1");
        char log0[160], log1[160];
        snprintf(log0, sizeof(log0), "%s.log", d0);
        snprintf(log1, sizeof(log1), "%s.log", d1);
        t_run_t a = {"q-plays", "q-out", d0, 1000, false, log0,
                     "input.partitions=0"};
        t_run_t b = {"q-plays", "q-out", d1, 1000, false, log1,
                     "input.partitions=1"};

        t_input_produce(&in, "q-plays", 0, in.n / 2, false);
        pid_t pa = t_spawn_run(&a), pb = t_spawn_run(&b);
        int sa = t_wait(pa), sb = t_wait(pb);
        assert_true(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
        assert_true(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);
        assert_true(t_file_contains(log0, "event=static_assignment "
                                          "topic=q-plays partitions=1 "
                                          "spec=0"));
        assert_true(t_file_contains(log0, "event=partition_assigned "
                                          "topic=q-plays partition=0 "
                                          "resume=-1"));
        assert_false(t_file_contains(log0, "partition=1 "));
        assert_false(t_file_contains(log1, "partition=0 "));

        /* the second half, on the same state: resumed from the store */
        truncate(log0, 0);
        truncate(log1, 0);
        t_input_produce(&in, "q-plays", in.n / 2, in.n, false);
        pa = t_spawn_run(&a);
        pb = t_spawn_run(&b);
        sa = t_wait(pa);
        sb = t_wait(pb);
        assert_true(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
        assert_true(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);
        assert_true(t_file_contains(log0, "partition=0 resume="));
        assert_true(t_file_contains(log0, "source=state_store"));
        assert_true(t_file_contains(log1, "source=state_store"));
        assert_false(t_file_contains(log0, "partition=0 resume=-1"));
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "q-out"), 0);

        /* q-plays has partitions 0 and 1 only */
        truncate(log0, 0);
        t_run_t c = {"q-plays", "q-out", d0, 1000, false, log0,
                     "input.partitions=0-2"};
        sa = t_wait(t_spawn_run(&c));
        assert_true(WIFEXITED(sa) && WEXITSTATUS(sa) == 1);
        assert_true(t_file_contains(log0, "input.partitions=\"0-2\": topic "
                                          "q-plays has no partition 2 (it "
                                          "has 2)"));

        unlink(log0);
        unlink(log1);
        t_rmtree(d0);
        t_rmtree(d1);
        free(d0);
        free(d1);
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/* Whether the encore that logs to @p log owns input partition @p p of
 * x-plays now: assigned (local state current) or restoring, and not
 * revoked since. */
/* Whether the member writing @p log owns partition @p p of @p topic now,
 * from its info log: assignments and restore starts minus revocations. */
static bool t_owns(const char *log, const char *topic, int p) {
        char as[128], rs[96], rv[128];
        snprintf(as, sizeof(as),
                 "event=partition_assigned topic=%s partition=%d ", topic, p);
        snprintf(rs, sizeof(rs), "event=restore_start partition=%d ", p);
        snprintf(rv, sizeof(rv),
                 "event=partition_revoked topic=%s partition=%d ", topic, p);
        return t_file_count(log, as) + t_file_count(log, rs) >
               t_file_count(log, rv);
}

static bool t_member_owns(const char *log, int p) {
        return t_owns(log, "x-plays", p);
}

static int t_owned_of(const char *log, const char *topic) {
        int n = 0;
        for (int p = 0; p < 4; p++)
                n += t_owns(log, topic, p);
        return n;
}

static int t_owned_count(const char *log) {
        return t_owned_of(log, "x-plays");
}

/* The records of partitions @p owned (by number) between the group's
 * committed offset and the end of the log: how far behind their owner is;
 * -1 until the owner has committed on one of them (it has made progress
 * the changelog knows of). Asks the coordinator (OffsetFetch) without
 * joining the group. */
static int64_t t_group_lag(const char *group, const char *topic,
                           const bool owned[4]) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(4);
        for (int p = 0; p < 4; p++)
                if (owned[p])
                        rd_kafka_topic_partition_list_add(l, topic, p);
        int64_t lag = -1;
        if (l->cnt && !rd_kafka_committed(rk, l, 5000)) {
                lag = -1;
                for (int i = 0; i < l->cnt; i++)
                        if (l->elems[i].offset >= 0)
                                lag = 0;
                for (int i = 0; lag >= 0 && i < l->cnt; i++) {
                        int64_t lo = 0, hi = 0;
                        if (rd_kafka_query_watermark_offsets(
                                    rk, topic, l->elems[i].partition, &lo, &hi,
                                    5000)) {
                                lag = -1;
                                break;
                        }
                        int64_t c = l->elems[i].offset >= 0 ? l->elems[i].offset
                                                            : lo;
                        lag += hi - c;
                }
        }
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
        return lag;
}

typedef struct t_feed_s {
        const t_input_t *in;
        const char *topic;
        size_t from, to;
        int failed; /* checked after the join: no cmocka assert off the
                       test's thread */
} t_feed_t;

/* t_input_produce, paced, on a thread of its own. */
static void *t_feed_main(void *arg) {
        t_feed_t *f = arg;
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.idempotence", "true", err, sizeof(err));
        rd_kafka_conf_set(kc, "partitioner", "murmur2_random", err,
                          sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        if (!rk) {
                f->failed = 1;
                return NULL;
        }
        for (size_t i = f->from; i < f->to && !f->failed; i++) {
                const char *key = f->in->key[i];
                rd_kafka_resp_err_t e;
                while ((e = rd_kafka_producev(
                                rk, RD_KAFKA_V_TOPIC(f->topic),
                                RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE(f->in->val[i].data,
                                                 f->in->val[i].len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END)) ==
                       RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(rk, 10);
                if (e)
                        f->failed = 1;
                if (i % 250 == 249) {
                        rd_kafka_flush(rk, 10000);
                        usleep(10000);
                }
        }
        if (rd_kafka_flush(rk, 30000))
                f->failed = 1;
        rd_kafka_destroy(rk);
        return NULL;
}

/*
 * Scale-out: three processes in one group share four input partitions. One
 * is SIGKILLed while it is behind (its partitions' committed offsets short
 * of the log's end) and input is still arriving; the group hands its
 * partitions to the others, which restore them from the changelog and
 * finish the stream. The union of outputs equals one uninterrupted
 * process's, repeats byte-identical.
 */
static void test_three_processes_survive_a_killed_member(void **st) {
        (void)st;
        t_input_t in;
        t_input_make(&in, 16000, 41);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "x-ref", 4, &rr, &ir, codec);

        t_make_topics("x", 4, 4);
        char *dirs[3];
        char log[3][160];
        pid_t pids[3];
        for (int i = 0; i < 3; i++) {
                dirs[i] = t_tmpdir("member");
                snprintf(log[i], sizeof(log[i]), "%s.log", dirs[i]);
                /* Survivors idle-exit only after the 6 s session timeout
                 * and the takeover have had time to happen. */
                t_run_t r = {.in_topic = "x-plays",
                             .out_topic = "x-out",
                             .dir = dirs[i],
                             .exit_idle_ms = 2000,
                             .log = log[i],
                             .idle_after_signal = true};
                pids[i] = t_spawn_run(&r);
        }
        t_input_produce(&in, "x-plays", 0, in.n / 10, false);
        int64_t deadline = t_now_ms() + 30000;
        while (t_topic_count("x-out") == 0 && t_now_ms() < deadline)
                usleep(50000);
        /* The rest of the input arrives while the victim dies. */
        t_feed_t feed = {&in, "x-plays", in.n / 10, in.n, 0};
        pthread_t feeder;
        assert_int_equal(pthread_create(&feeder, NULL, t_feed_main, &feed), 0);
        /* A real failover with work to take over: the victim owns
         * partitions and is behind on them when it dies. */
        int64_t until = t_now_ms() + 30000;
        int64_t behind = 0;
        bool vowned[4];
        while (t_now_ms() < until) {
                for (int p = 0; p < 4; p++)
                        vowned[p] = t_member_owns(log[1], p);
                if ((behind = t_group_lag("g-x-out", "x-plays", vowned)) > 0)
                        break;
                usleep(20000);
        }
        int vict = t_owned_count(log[1]);
        kill(pids[1], SIGKILL);
        int status = t_wait(pids[1]);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(pthread_join(feeder, NULL), 0);
        assert_true(vict > 0);
        assert_int_equal(feed.failed, 0);
        fprintf(stderr, "scale-out test: victim killed %lld records behind\n",
                (long long)behind);
        assert_true(behind > 0);
        /* The input is complete; once the group has handed every partition
         * to a survivor (after the 6 s session timeout), the survivors may
         * idle-exit: each drains what it owns. */
        until = t_now_ms() + 60000;
        int covered = 0;
        for (;;) {
                covered = 0;
                for (int p = 0; p < 4; p++)
                        covered += t_member_owns(log[0], p) ||
                                   t_member_owns(log[2], p);
                if (covered == 4 || t_now_ms() > until)
                        break;
                usleep(100000);
        }
        assert_int_equal(covered, 4);
        kill(pids[0], SIGUSR1);
        kill(pids[2], SIGUSR1);
        for (int i = 0; i < 3; i += 2) {
                status = t_wait(pids[i]);
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        /* the victim's partitions were restored elsewhere (or found
         * current: the victim had not committed since it got them) */
        assert_true(t_file_contains(log[0], "event=restore_") ||
                            t_file_contains(log[2], "event=restore_"));
        size_t repeats = t_assert_same_updates(codec, &rr, ir, "x-out");
        fprintf(stderr,
                "scale-out test: reference %zu updates; three members, one "
                "killed: all of them, plus %zu identical repeats\n",
                rr.n, repeats);
        /* What the takeover cost (figures for the record, not pass
         * conditions: they depend on where each commit fell). A survivor
         * can still lose an assignment on the mock: the mock starts the
         * rebalance before the victim's session has expired and waits for
         * it, and a survivor's own session timer (6 s, like the victim's)
         * can run out while it waits to rejoin. */
        int64_t restored = 0, restores = 0, assigns = 0, lost = 0;
        for (int i = 0; i < 3; i += 2) {
                restored += t_log_sum(log[i], "event=restore_done",
                                      "records=");
                restores += t_file_count(log[i], "event=restore_done");
                assigns += t_file_count(log[i], "kind=assign");
                lost += t_file_count(log[i], "lost=true");
        }
        fprintf(stderr,
                "scale-out test: survivors restored %lld changelog records "
                "in %lld restores over %lld assignments (%.1f records per "
                "assignment); %lld lost assignments\n",
                (long long)restored, (long long)restores, (long long)assigns,
                assigns ? (double)restored / (double)assigns : 0.0,
                (long long)lost);
        for (int i = 0; i < 3; i++) {
                if (getenv("ENC_TEST_KEEP_LOGS"))
                        fprintf(stderr, "kept %s\n", log[i]);
                else
                        unlink(log[i]);
                t_rmtree(dirs[i]);
                free(dirs[i]);
        }
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/*
 * processing.guarantee=exactly_once on the mock: outputs, changelog and
 * offsets go through Kafka transactions. The mock supports transactions
 * but neither hides aborted ones nor stores transactional offsets, so this
 * checks the transactional path end to end without a crash; the crash
 * case runs against a real broker (test_realbroker).
 */
static void test_exactly_once_path_gives_the_reference_updates(void **st) {
        (void)st;
        t_input_t in;
        t_input_make(&in, 8000, 51);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "e-ref", 2, &rr, &ir, codec);
        t_make_topics("e", 2, 2);
        t_input_produce(&in, "e-plays", 0, in.n, false);
        char *dir = t_tmpdir("eos");
        char log[160];
        snprintf(log, sizeof(log), "%s.log", dir);
        t_run_t r = {"e-plays", "e-out", dir, 1000, false, log,
                     "processing.guarantee=exactly_once"};
        int status = t_wait(t_spawn_run(&r));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_true(t_file_contains(log, "event=transactions"));
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "e-out"), 0);
        unlink(log);
        t_rmtree(dir);
        free(dir);
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/*
 * A member of an exactly-once group stops while another member is in the
 * group (issue 14: on a real Kafka the first to exit died with SIGSEGV in
 * rd_kafka_consumer_group_metadata_destroy: closing revokes its partitions,
 * the revocation committed a transaction, and librdkafka has no group
 * metadata for a leaving member). The drain commits before closing; the
 * revocation that closing serves commits nothing. Both members exit 0, the
 * first logs its drain and stop with a commit, no revocation commit fails,
 * and the outputs are the reference's (the mock shows aborted transactions
 * to read_committed readers, so identical repeats are allowed here; the
 * real-broker test allows none).
 */
static void test_exactly_once_member_stops_cleanly_beside_another(void **st) {
        (void)st;
        t_input_t in;
        t_input_make(&in, 12000, 53);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "stop-ref", 4, &rr, &ir, codec);
        t_make_topics("stop", 4, 4);
        char *dirs[2];
        char log[2][160], tid[2][64];
        pid_t pids[2];
        t_input_produce(&in, "stop-plays", 0, in.n / 2, false);
        for (int i = 0; i < 2; i++) {
                dirs[i] = t_tmpdir("eos-member");
                snprintf(log[i], sizeof(log[i]), "%s.log", dirs[i]);
                /* distinct ids: two processes on one host */
                snprintf(tid[i], sizeof(tid[i]),
                         "kafka.producer.transactional.id=s-member-%d", i);
                t_run_t r = {.in_topic = "stop-plays",
                             .out_topic = "stop-out",
                             .dir = dirs[i],
                             .exit_idle_ms = 1000,
                             .log = log[i],
                             .extra = "processing.guarantee=exactly_once",
                             .extra2 = tid[i],
                             .idle_after_signal = true};
                pids[i] = t_spawn_run(&r);
                /* the first owns every partition before the second joins */
                int64_t until = t_now_ms() + 30000;
                while (i == 0 && t_owned_of(log[0], "stop-plays") < 4 &&
                       t_now_ms() < until)
                        usleep(100000);
                assert_true(i > 0 || t_owned_of(log[0], "stop-plays") == 4);
        }
        /* the second member joins: the group splits the partitions */
        int64_t until = t_now_ms() + 60000;
        while (t_owned_of(log[1], "stop-plays") == 0 && t_now_ms() < until)
                usleep(100000);
        assert_true(t_owned_of(log[1], "stop-plays") > 0);
        t_input_produce(&in, "stop-plays", in.n / 2, in.n, true);
        /* the first stops while the second is in the group */
        kill(pids[0], SIGUSR1);
        int status = t_wait(pids[0]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "first member: status %d (log %s)\n", status,
                        log[0]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_true(t_file_contains(log[0], "event=pipeline_drain"));
        assert_true(t_file_contains(log[0], "event=pipeline_stop"));
        assert_false(t_file_contains(log[0], "commits=0"));
        assert_false(t_file_contains(log[0], "commit on revoke"));
        assert_false(t_file_contains(log[0], "no consumer group metadata"));
        /* the survivor takes every partition, then stops too */
        until = t_now_ms() + 60000;
        while (t_owned_of(log[1], "stop-plays") < 4 && t_now_ms() < until)
                usleep(100000);
        assert_int_equal(t_owned_of(log[1], "stop-plays"), 4);
        kill(pids[1], SIGUSR1);
        status = t_wait(pids[1]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        size_t repeats = t_assert_same_updates(codec, &rr, ir, "stop-out");
        fprintf(stderr,
                "exactly-once stop test: reference %zu updates; one of two "
                "members stopped: all of them, plus %zu identical repeats\n",
                rr.n, repeats);
        for (int i = 0; i < 2; i++) {
                unlink(log[i]);
                t_rmtree(dirs[i]);
                free(dirs[i]);
        }
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

static void t_mock_make(const char *topic, int partitions, bool compact) {
        (void)compact; /* the mock does not compact */
        char err[256];
        assert_int_equal(enc_embedded_create_topic(emb, topic, partitions, err,
                                                   sizeof(err)),
                         0);
}

/*
 * The exactly-once crash of tests/test_realbroker.c, as far as the mock
 * shows it: SIGKILL mid-transaction, a restart on the same state and a
 * member restoring every partition from the changelog give every update of
 * the reference; the mock does not hide aborted transactions, so repeats
 * are allowed here but must be identical (t_assert_same_updates). The
 * real broker's version asserts none and an aborted transaction in the log.
 */
static void test_exactly_once_crash_restore_gives_the_reference(void **st) {
        (void)st;
        int64_t aborted = 0, cl_open = 0;
        size_t repeats = t_eos_crash_scenario("ek", 6000, t_mock_make, 0,
                                              &aborted, &cl_open);
        /* Not asserted: repeats > 0. Outputs made since the last commit
         * may still sit in the dead producer's queue (seen once in a
         * loaded full run), so a kill mid-stream can leave none. */
        fprintf(stderr,
                "exactly-once crash on the mock: %zu identical repeats "
                "(aborted work stays visible here: %lld records seen only "
                "read_uncommitted, %lld changelog offsets open at the "
                "kill)\n",
                repeats, (long long)aborted, (long long)cl_open);
}

/*
 * Replay: the same topic, replayed from earliest into a fresh state and
 * another output topic, gives byte-identical updates to the live run; a
 * replay bounded by offsets reads exactly its range and stops by itself.
 */
static void test_replay_is_byte_identical_to_the_live_run(void **st) {
        (void)st;
        char err[256], bs[256], in_topic[] = "p-ref-in";
        t_input_t in;
        t_input_make(&in, 8000, 81);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "p-ref", 2, &rr, &ir, codec);
        assert_int_equal(enc_embedded_create_topic(emb, "p-replay", 4, err,
                                                   sizeof(err)),
                         0);
        snprintf(bs, sizeof(bs), "%s", bootstrap);
        char *dir = t_tmpdir("replay");
        char log[160], sd[200], it[64];
        snprintf(log, sizeof(log), "%s.log", dir);
        snprintf(sd, sizeof(sd), "%s/state", dir);
        snprintf(it, sizeof(it), "input.topic=%s", in_topic);
        char *full[] = {"replay", "--bootstrap", bs, "--set", it,
                        "--from", "earliest", "--output-topic", "p-replay",
                        "--state-dir", sd, "--set",
                        "metrics.address=127.0.0.1:0", NULL};
        assert_int_equal(t_run_cmd(log, full), 0);
        assert_true(t_file_contains(log, "encore replay: done: 8000 records"));
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "p-replay"), 0);

        /* a second replay into the same state directory is refused */
        assert_int_equal(t_run_cmd(log, full), 2);
        assert_true(t_file_contains(log, "is not empty"));

        /* bounded by offsets: exactly 1000 + 1000 records */
        char sd2[200];
        snprintf(sd2, sizeof(sd2), "%s/state2", dir);
        char *part[] = {"replay", "--bootstrap", bs, "--set", it,
                        "--from", "offsets:0=100,1=200", "--to",
                        "offsets:0=1100,1=1200", "--output-topic",
                        "p-replay-part", "--state-dir", sd2, "--set",
                        "metrics.address=127.0.0.1:0", NULL};
        assert_int_equal(t_run_cmd(log, part), 0);
        assert_true(t_file_contains(log, "encore replay: done: 2000 records"));

        /* a malformed position names the flag */
        char *bad[] = {"replay", "--bootstrap", bs, "--from", "yesterday",
                       "--output-topic", "x", "--state-dir", sd2, NULL};
        assert_int_equal(t_run_cmd(log, bad), 2);
        assert_true(t_file_contains(log, "--from: \"yesterday\" is not a "
                                         "position"));
        unlink(log);
        t_rmtree(dir);
        free(dir);
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/*
 * Reset. The mock cluster cannot describe groups, so the active-member
 * refusal is tested against a real broker (test_realbroker); here reset
 * refuses because it cannot tell, a dry run with --force prints the plan
 * and changes nothing, and a forced reset to earliest moves the group and
 * clears the state through the changelog: the same process, restarted on
 * its old local state, restores the reset and reprocesses everything from
 * scratch, so every reference update appears exactly twice, identical.
 */
static void test_reset_repositions_group_and_clears_state(void **st) {
        (void)st;
        char err[256], bs[256];
        t_input_t in;
        t_input_make(&in, 6000, 91);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "z-ref", 2, &rr, &ir, codec);
        const char *topics[] = {"z-plays", "g-z-out-changelog"};
        for (int i = 0; i < 2; i++)
                assert_int_equal(enc_embedded_create_topic(emb, topics[i], 2,
                                                           err, sizeof(err)),
                                 0);
        assert_int_equal(enc_embedded_create_topic(emb, "z-out", 4, err,
                                                   sizeof(err)),
                         0);
        t_input_produce(&in, "z-plays", 0, in.n, false);
        char *dir = t_tmpdir("reset");
        char log[160];
        snprintf(log, sizeof(log), "%s/reset.log", dir);
        snprintf(bs, sizeof(bs), "%s", bootstrap);
        t_run_t r = {"z-plays", "z-out", dir, 1000, false, NULL, NULL, NULL};
        int status = t_wait(t_spawn_run(&r));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "z-out"), 0);

        char *args[] = {"reset", "--bootstrap", bs, "--set",
                        "group.id=g-z-out", "--set", "input.topic=z-plays",
                        "--to", "earliest", NULL};
        assert_int_equal(t_run_cmd(log, args), 1);
        assert_true(t_file_contains(log, "cannot describe group"));

        char *dry[] = {"reset", "--bootstrap", bs, "--set",
                       "group.id=g-z-out", "--set", "input.topic=z-plays",
                       "--to", "earliest", "--force", "--dry-run", NULL};
        assert_int_equal(t_run_cmd(log, dry), 0);
        assert_true(t_file_contains(log, "[dry run] reset group g-z-out"));
        assert_true(t_file_contains(log, "-> 0"));
        /* nothing changed: a restart has nothing to do */
        status = t_wait(t_spawn_run(&r));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "z-out"), 0);

        char *force[] = {"reset", "--bootstrap", bs, "--set",
                         "group.id=g-z-out", "--set", "input.topic=z-plays",
                         "--to", "earliest", "--force", NULL};
        assert_int_equal(t_run_cmd(log, force), 0);
        assert_true(t_file_contains(log, "changelog reset written"));
        r.log = log;
        truncate(log, 0);
        status = t_wait(t_spawn_run(&r));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_true(t_file_contains(log, "event=restore_done"));
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "z-out"),
                         rr.n);
        t_rmtree(dir);
        free(dir);
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/* ---- metrics -------------------------------------------------------- */

typedef struct t_live_s {
        enc_pipeline_t *pl;
        uint64_t accepted; /* render once this many were accepted */
        enc_buf_t *out;
        int renders;
} t_live_t;

/* The loop's once-a-second tick: renders /metrics while the partitions
 * are still owned (the idle exit revokes them before the run returns). */
static void t_live_tick(void *opaque, const enc_pipeline_stats_t *st) {
        t_live_t *l = opaque;
        if (st->engine.accepted == l->accepted &&
            st->assigned_partitions > 0) {
                enc_pipeline_metrics_text(l->pl, l->out);
                l->renders++;
        }
}

/* Runs encore in this process until idle, then renders /metrics' text
 * into @p out on this thread (the processing thread of the run), as the
 * loop does before it publishes; and into @p live, from the loop, once
 * @p accepted events were accepted and before the partitions are revoked
 * at the exit (the run idles 2.5 s first, so at least one tick of the
 * loop, about once a second, comes after the last record). */
static void t_run_metrics(enc_conf_t *conf, enc_buf_t *out, enc_buf_t *live,
                          uint64_t accepted) {
        char err[512];
        enc_pipeline_t *pl = enc_pipeline_new(conf, err, sizeof(err));
        if (!pl)
                fprintf(stderr, "%s\n", err);
        assert_non_null(pl);
        t_live_t l = {pl, accepted, live, 0};
        enc_pipeline_opts_t opts = {.exit_idle_ms = 2500,
                                    .on_tick = t_live_tick,
                                    .tick_opaque = &l};
        enc_err_t e = enc_pipeline_run(pl, &opts, err, sizeof(err));
        if (e)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(e, 0);
        assert_true(l.renders > 0);
        assert_false(live->failed);
        enc_pipeline_metrics_text(pl, out);
        assert_false(out->failed);
        enc_pipeline_destroy(pl);
}

/* The value of the unlabelled sample of @p name in an exposition, after
 * checking its family is declared with @p type. Fails the test if either
 * is missing. */
static double t_metric(const enc_buf_t *b, const char *name,
                       const char *type) {
        char *text = strndup((const char *)b->data, b->len);
        assert_non_null(text);
        char want[160];
        snprintf(want, sizeof(want), "\n# TYPE %s %s\n", name, type);
        if (!strstr(text, want)) {
                fprintf(stderr, "no \"# TYPE %s %s\" line\n", name, type);
                fail();
        }
        snprintf(want, sizeof(want), "\n%s ", name);
        const char *at = strstr(text, want);
        if (!at) {
                fprintf(stderr, "no unlabelled sample of %s\n", name);
                fail();
        }
        double v = strtod(at + strlen(want), NULL);
        free(text);
        return v;
}

static size_t t_varint_len(size_t v) {
        size_t n = 1;
        while (v >= 128) {
                v >>= 7;
                n++;
        }
        return n;
}

/*
 * What one RocksDB WriteBatch holding a Put of every key now in the
 * store's column families other than "default" measures, in RocksDB's
 * documented batch encoding (db/write_batch.cc): a 12-byte header
 * (sequence, count), then per Put the tag 0x05 (a value in a column
 * family), the family id, the key and the value, each length a varint32.
 * *idf gets the id filter's records as encore counts them (state/
 * idfilter.c, enc_idfilter_save): the bytes of the keys after the 4-byte
 * partition, and of the values, of its keys [u32 partition]['I'...] in
 * the "meta" family, without the batch's framing. Computed from what the
 * store holds, not from encore's counters: after a single checkpoint that
 * only added keys it is that checkpoint's size. ("default" holds the
 * format marker, written at open, not by a checkpoint.)
 */
static size_t t_store_batch_bytes(const char *dir, size_t *idf) {
        char *rerr = NULL;
        rocksdb_options_t *o = rocksdb_options_create();
        size_t n = 0;
        char **names = rocksdb_list_column_families(o, dir, &n, &rerr);
        assert_null(rerr);
        assert_true(n > 0 && n <= 16);
        const rocksdb_options_t *cfo[16];
        rocksdb_column_family_handle_t *cf[16];
        for (size_t i = 0; i < n; i++)
                cfo[i] = o;
        rocksdb_t *db = rocksdb_open_for_read_only_column_families(
                o, dir, (int)n, (const char *const *)names, cfo, cf, 0, &rerr);
        if (rerr)
                fprintf(stderr, "%s\n", rerr);
        assert_null(rerr);
        size_t bytes = 12;
        *idf = 0;
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        for (size_t i = 0; i < n; i++) {
                if (!strcmp(names[i], "default"))
                        continue;
                bool meta = !strcmp(names[i], "meta");
                uint32_t id = rocksdb_column_family_handle_get_id(cf[i]);
                rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro,
                                                                    cf[i]);
                for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
                     rocksdb_iter_next(it)) {
                        size_t kl, vl;
                        const char *k = rocksdb_iter_key(it, &kl);
                        rocksdb_iter_value(it, &vl);
                        size_t put = 1 + t_varint_len(id) + t_varint_len(kl) +
                                     kl + t_varint_len(vl) + vl;
                        bytes += put;
                        if (meta && kl > 4 && k[4] == 'I')
                                *idf += kl - 4 + vl;
                }
                rocksdb_iter_destroy(it);
        }
        rocksdb_readoptions_destroy(ro);
        for (size_t i = 0; i < n; i++)
                rocksdb_column_family_handle_destroy(cf[i]);
        rocksdb_close(db);
        rocksdb_list_column_families_destroy(names, n);
        rocksdb_options_destroy(o);
        return bytes;
}

#define T_METRIC_EQ(b, name, type, want)                                      \
        do {                                                                  \
                double got_ = t_metric((b), (name), (type));                  \
                if (got_ != (double)(want)) {                                 \
                        fprintf(stderr, "%s = %.17g, expected %.17g\n",       \
                                (name), got_, (double)(want));                \
                        fail();                                               \
                }                                                             \
        } while (0)

/*
 * The engine's statistics as /metrics shows them, worked out by hand for
 * the scripted plays of the first test (one partition, grace 0, so the
 * watermark is the newest event time and an event applies when a later one
 * arrives; dedup.window.ms 1 h, the default), then for a restart.
 *
 * Run 1: e1..e6 arrive in time order. Every one is valid, new and not in
 * the reorder buffer, so each gets one duplicate check, and with no state
 * the id filter is complete from the start: it answers all 6 without
 * loading a user. e1..e5 apply (e6, carol, waits for a later event): 5
 * lookups, each served by the cache, because every user is read ahead
 * first. The read-ahead collects the users of held events not cached, and
 * reads them in one batch when an event whose user is not cached is due:
 *   e1 arrives: held alice -> batch [alice]
 *   e2 arrives: held alice (not cached yet) -> [alice, alice]; e1 due,
 *               alice not cached: the batch is read, alice once
 *               (read ahead: 1); e1 hit
 *   e3, e4 arrive: alice cached; e2, e3 hit
 *   e5 arrives: bob -> [bob]; e4 due, alice cached: hit
 *   e6 arrives: carol -> [bob, carol]; e5 due, bob not cached: the batch
 *               is read (read ahead: 3); e5 hit
 * hits 5, misses 0, read ahead 3 (carol is read, pinned, and waits
 * unused), none evicted in a 64 MiB cache, so none wasted. alice's last
 * day leaves her 3-day window at day 4, 00:00: her state is empty and is
 * deleted at the checkpoint (1 user expired). The id filter holds one
 * generation, started at e1 with the smallest table (256 fingerprints of 4
 * bytes: 1024 bytes), whose 6 entries are far below the 3/4 of it that
 * starts the next: encore_idfilter_size_bytes is 1024.
 *
 * Run 2, same state and group, one more play e7 (carol, day 5 11:00): the
 * partition resumes from its checkpoint with the id filter saved with it
 * (resumed: 1). e6, held at the checkpoint, is read again and buffered
 * again: its duplicate check finds its own id in the resumed filter
 * (it was added when first buffered), so the filter answers "maybe" and
 * carol is loaded (a miss: a new process, nothing cached). e7's id is not
 * in the filter, and e7 is after the checkpoint's watermark, from where
 * the filter is complete: answered without a load. Checks 2, filtered 1.
 * e6 applies when e7 arrives: carol is cached (a hit). Nothing read
 * ahead: carol was cached before any event of hers was held. The resumed
 * filter is the saved generation (1024 bytes), and e6 and e7 fit in it:
 * 1024 again.
 */
static void test_metrics_show_engine_statistics_worked_by_hand(void **st) {
        (void)st;
        char err[256];
        assert_int_equal(
                enc_embedded_create_topic(emb, "m-plays", 1, err, sizeof(err)),
                0);
        assert_int_equal(enc_embedded_create_topic(emb, "m-group-changelog", 1,
                                                   err, sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, "m-rewards", 1, err,
                                                   sizeof(err)),
                         0);
        enc_codec_t *codec = t_codec();
        rd_kafka_t *rk = t_producer();
        enc_event_t evs[] = {
                t_play("e1", "alice", T_AT(0, 10, 0), 60000),
                t_play("e2", "alice", T_AT(0, 11, 0), 60000),
                t_play("e3", "alice", T_AT(0, 12, 0), 10000),
                t_play("e4", "alice", T_AT(1, 9, 0), 45000),
                t_play("e5", "bob", T_AT(3, 8, 0), 60000),
                t_play("e6", "carol", T_AT(5, 10, 0), 60000),
        };
        for (size_t i = 0; i < 6; i++)
                t_produce_event(rk, codec, "m-plays", &evs[i]);
        assert_int_equal(rd_kafka_flush(rk, 10000), 0);

        char *dir = t_tmpdir("pipe-m");
        char sd[160];
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        char bs[256];
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        /* commits only when the run drains: a checkpoint count that does
         * not depend on the machine's speed */
        enc_conf_t *conf = t_conf(
                bs, sd, "input.topic=m-plays", "output.topic=m-rewards",
                "dlq.topic=m-dlq", "group.id=m-group", "signals=active_days:1",
                "signal.active_days.1.windows=3", "window.grace.ms=0",
                "commit.interval.ms=3600000", "metrics.address=127.0.0.1:0",
                NULL);
        enc_buf_t m, live;
        enc_buf_init(&m, 1 << 16);
        enc_buf_init(&live, 1 << 16);
        t_run_metrics(conf, &m, &live, 6);
        T_METRIC_EQ(&m, "encore_records_accepted_total", "counter", 6);
        T_METRIC_EQ(&m, "encore_records_applied_total", "counter", 5);
        T_METRIC_EQ(&m, "encore_dedup_checks_total", "counter", 6);
        T_METRIC_EQ(&m, "encore_dedup_checks_filtered_total", "counter", 6);
        T_METRIC_EQ(&m, "encore_cache_hits_total", "counter", 5);
        T_METRIC_EQ(&m, "encore_cache_misses_total", "counter", 0);
        T_METRIC_EQ(&m, "encore_cache_prefetched_users_total", "counter", 3);
        T_METRIC_EQ(&m, "encore_cache_prefetch_wasted_users_total", "counter",
                    0);
        T_METRIC_EQ(&m, "encore_cache_evictions_total", "counter", 0);
        T_METRIC_EQ(&m, "encore_state_users_expired_total", "counter", 1);
        T_METRIC_EQ(&m, "encore_idfilter_resumed_partitions_total", "counter",
                    0);
        T_METRIC_EQ(&live, "encore_idfilter_size_bytes", "gauge", 256 * 4);
        T_METRIC_EQ(&m, "encore_idfilter_size_bytes", "gauge", 0); /* revoked */
        /* One checkpoint, at the drain (the interval is an hour; the
         * revocation at close has nothing left to write). It only added
         * keys, and deleted the id filter's key range: a partition
         * started without a saved filter clears [p]['I'] up to [p]['J']
         * at its first save (state/idfilter.c), one DeleteRange of two
         * 5-byte bounds in "meta": tag, family id (< 128), and each bound
         * with its length, 1 + 1 + 6 + 6 = 14 bytes in the batch, of which
         * the filter counts its two 1-byte bounds after the partition. */
        T_METRIC_EQ(&m, "encore_commits_total", "counter", 1);
        T_METRIC_EQ(&m, "encore_checkpoints_total", "counter", 1);
        size_t idf_bytes;
        size_t ck_bytes = t_store_batch_bytes(dir, &idf_bytes) + 14;
        T_METRIC_EQ(&m, "encore_checkpoint_bytes_total", "counter", ck_bytes);
        T_METRIC_EQ(&m, "encore_checkpoint_idfilter_bytes_total", "counter",
                    idf_bytes + 2);

        /* run 2: a restart with one more play */
        enc_event_t e7 = t_play("e7", "carol", T_AT(5, 11, 0), 60000);
        t_produce_event(rk, codec, "m-plays", &e7);
        assert_int_equal(rd_kafka_flush(rk, 10000), 0);
        rd_kafka_destroy(rk);
        t_run_metrics(conf, &m, &live, 2);
        T_METRIC_EQ(&m, "encore_idfilter_resumed_partitions_total", "counter",
                    1);
        T_METRIC_EQ(&live, "encore_idfilter_size_bytes", "gauge", 256 * 4);
        T_METRIC_EQ(&m, "encore_idfilter_size_bytes", "gauge", 0); /* revoked */
        T_METRIC_EQ(&m, "encore_records_accepted_total", "counter", 2);
        T_METRIC_EQ(&m, "encore_records_applied_total", "counter", 1);
        T_METRIC_EQ(&m, "encore_records_reread_total", "counter", 0);
        T_METRIC_EQ(&m, "encore_dedup_checks_total", "counter", 2);
        T_METRIC_EQ(&m, "encore_dedup_checks_filtered_total", "counter", 1);
        T_METRIC_EQ(&m, "encore_cache_hits_total", "counter", 1);
        T_METRIC_EQ(&m, "encore_cache_misses_total", "counter", 1);
        T_METRIC_EQ(&m, "encore_cache_prefetched_users_total", "counter", 0);
        T_METRIC_EQ(&m, "encore_checkpoints_total", "counter", 1);
        /* It rewrote keys, so the store cannot give its size; the id
         * filter's delta is a part of it. */
        double ck = t_metric(&m, "encore_checkpoint_bytes_total", "counter");
        double idf = t_metric(&m, "encore_checkpoint_idfilter_bytes_total",
                              "counter");
        assert_true(idf > 0 && idf < ck);

        enc_buf_free(&m);
        enc_buf_free(&live);
        enc_conf_destroy(conf);
        enc_codec_destroy(codec);
        t_rmtree(dir);
        free(dir);
}

/* With a prefetch bound far below the backlog (queued.min.messages 50,
 * fetches of 4 KiB a partition), librdkafka's fetchers stop at the bound
 * again and again and encore wakes them when the queue runs empty (a seek
 * to the offset after the last record it polled): the run still gives
 * exactly the reference's updates, none missing, none repeated, and it
 * did refill. */
static void test_small_prefetch_refills_and_changes_no_output(void **st) {
        (void)st;
        char err[512];
        enc_codec_t *codec = t_codec();
        t_input_t in;
        t_input_make(&in, 6000, 29);
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "pf-ref", 4, &rr, &ir, codec);
        assert_int_equal(
                enc_embedded_create_topic(emb, "pf-small", 4, err, sizeof(err)),
                0);
        assert_int_equal(enc_embedded_create_topic(emb, "g-pf-small-changelog",
                                                   4, err, sizeof(err)),
                         0);
        char *dir = t_tmpdir("pf-small");
        char sd[200], bs[256];
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        enc_conf_t *conf = t_conf(
                bs, sd, "input.topic=pf-ref-in", "output.topic=pf-small",
                "group.id=g-pf-small", "commit.interval.ms=200",
                "kafka.consumer.session.timeout.ms=6000",
                "kafka.consumer.heartbeat.interval.ms=1000",
                "kafka.consumer.queued.min.messages=50",
                "kafka.consumer.max.partition.fetch.bytes=4096",
                "metrics.address=127.0.0.1:0", NULL);
        enc_pipeline_t *pl = enc_pipeline_new(conf, err, sizeof(err));
        if (!pl)
                fprintf(stderr, "%s\n", err);
        assert_non_null(pl);
        enc_pipeline_opts_t opts = {.exit_idle_ms = 1000};
        assert_int_equal(enc_pipeline_run(pl, &opts, err, sizeof(err)), 0);
        enc_pipeline_stats_t ps;
        enc_pipeline_stats(pl, &ps);
        assert_true(ps.prefetch_refills > 0);
        assert_int_equal(ps.engine.consumed, in.n);
        enc_pipeline_destroy(pl);
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "pf-small"), 0);
        free(ir);
        t_recs_free(&rr);
        enc_conf_destroy(conf);
        t_rmtree(dir);
        free(dir);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/* One in-process run of tq-plays into tq-out (group g-tq-out, so its
 * changelog is g-tq-out-changelog) on state @p dir, until idle; @p tiny
 * bounds the prefetch queue at one record / 1 KiB and a partition's
 * fetch at 4 KiB. Returns its statistics. */
static enc_pipeline_stats_t t_tq_run(const char *dir, bool tiny) {
        char err[512], sd[200], bs[256];
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        enc_conf_t *conf = t_conf(
                bs, sd, "input.topic=tq-plays", "output.topic=tq-out",
                "group.id=g-tq-out", "commit.interval.ms=200",
                "kafka.consumer.session.timeout.ms=6000",
                "kafka.consumer.heartbeat.interval.ms=1000",
                tiny ? "kafka.consumer.queued.min.messages=1"
                     : "log.level=warn",
                tiny ? "kafka.consumer.queued.max.messages.kbytes=1"
                     : "log.level=warn",
                tiny ? "kafka.consumer.max.partition.fetch.bytes=4096"
                     : "log.level=warn",
                "metrics.address=127.0.0.1:0", NULL);
        enc_pipeline_t *pl = enc_pipeline_new(conf, err, sizeof(err));
        if (!pl)
                fprintf(stderr, "%s\n", err);
        assert_non_null(pl);
        enc_pipeline_opts_t opts = {.exit_idle_ms = 1000};
        enc_err_t e = enc_pipeline_run(pl, &opts, err, sizeof(err));
        if (e)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(e, 0);
        enc_pipeline_stats_t ps;
        enc_pipeline_stats(pl, &ps);
        enc_pipeline_destroy(pl);
        enc_conf_destroy(conf);
        return ps;
}

/*
 * The run that once stopped with "record for partition 0, which is not
 * assigned": a process with no local state takes a group's four
 * partitions, each assigned paused while it is restored from the
 * changelog, with the rest of the input waiting on them and a prefetch
 * queue so small that librdkafka stops and restarts its fetchers all the
 * time. A record the consumer delivers for a partition still held is
 * never applied and is fetched again after the hand-over
 * (consumer/stray.c; its orderings are pinned in tests/test_stray.c,
 * since the mock cannot force one). The run ends cleanly and its outputs
 * are exactly the reference's: nothing lost, nothing repeated (the first
 * process stopped cleanly, so nothing was left to redo).
 */
static void test_restore_under_a_tiny_prefetch_loses_and_repeats_nothing(
        void **st) {
        (void)st;
        enc_codec_t *codec = t_codec();
        t_input_t in;
        t_input_make(&in, 8000, 43);
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "tq-ref", 4, &rr, &ir, codec);
        t_make_topics("tq", 4, 4);
        char *da = t_tmpdir("tq-first"), *db = t_tmpdir("tq-second");

        t_input_produce(&in, "tq-plays", 0, in.n / 2, false);
        enc_pipeline_stats_t a = t_tq_run(da, false);
        assert_int_equal(a.restores, 0);
        assert_int_equal(a.engine.consumed, in.n / 2);

        t_input_produce(&in, "tq-plays", in.n / 2, in.n, false);
        enc_pipeline_stats_t b = t_tq_run(db, true);
        fprintf(stderr,
                "tiny-prefetch restore: %llu restores, %llu records "
                "consumed, %llu re-read, stray records dropped %llu, "
                "refetched %llu\n",
                (unsigned long long)b.restores,
                (unsigned long long)b.engine.consumed,
                (unsigned long long)b.engine.skipped_restore,
                (unsigned long long)b.stray_dropped,
                (unsigned long long)b.stray_refetched);
        /* each partition had state in the changelog: four full restores */
        assert_int_equal(b.restores, 4);
        /* the second half, plus what the restored checkpoints re-read
         * ([C, E): events the checkpoints still held, and skipped ones);
         * every record consumed is accounted for */
        assert_true(b.engine.consumed >= in.n / 2);
        uint64_t dead = 0;
        for (int r = 0; r < ENC_DLQ__CNT; r++)
                dead += b.engine.dead_lettered[r];
        assert_int_equal(b.engine.consumed, b.engine.accepted + dead +
                                                    b.engine.skipped_restore);
        assert_int_equal(t_assert_same_updates(codec, &rr, ir, "tq-out"), 0);

        t_rmtree(da);
        t_rmtree(db);
        free(da);
        free(db);
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
}

/* The value of librdkafka property @p prop in @p kc, as a number. */
static long long t_kconf_num(rd_kafka_conf_t *kc, const char *prop) {
        char v[64];
        size_t n = sizeof(v);
        assert_int_equal(rd_kafka_conf_get(kc, prop, v, &n), RD_KAFKA_CONF_OK);
        return strtoll(v, NULL, 10);
}

/* The input consumer's prefetch queue is bounded from cache.max.bytes:
 * its prefetch share is 1/16 of the budget (64 MiB: 4 194 304 bytes),
 * half of it for payloads (queued.max.messages.kbytes 2048) and a record
 * counted at 384 bytes (queued.min.messages 10 922), fetches of 1/32 of
 * it a partition (max.partition.fetch.bytes 131 072); at 1 GiB, the cap
 * of 16 MiB: 8192 KiB, 43 690 records and 524 288 bytes; a budget of 1 MiB
 * has the floor of 1 MiB capped at 1/8 (131 072 bytes: 64 KiB, 341
 * records, and the 64 KiB floor of a partition's fetch). A user's
 * kafka.consumer.* key wins over the derived bound, a bad one is an
 * error naming the key. */
static void test_consumer_prefetch_is_bounded_by_the_budget(void **st) {
        (void)st;
        char err[256];
        long long kb, recs, part;
        enc_pipeline_prefetch_bounds(4194304, &kb, &recs, &part);
        assert_int_equal(kb, 2048);
        assert_int_equal(recs, 10922); /* 4 194 304 / 384, rounded down */
        assert_int_equal(part, 131072); /* 4 MiB / 32 */
        enc_pipeline_prefetch_bounds(100, &kb, &recs, &part); /* floors */
        assert_int_equal(kb, 1);
        assert_int_equal(recs, 1);
        assert_int_equal(part, 65536);
        enc_pipeline_prefetch_bounds((size_t)1 << 40, &kb, &recs, &part);
        assert_int_equal(kb, 2097151); /* librdkafka's maxima */
        assert_int_equal(recs, 10000000);
        assert_int_equal(part, 1048576); /* encore's fetch size */

        enc_conf_t *conf = enc_conf_new();
        rd_kafka_conf_t *kc = enc_pipeline_consumer_conf(conf, err,
                                                         sizeof(err));
        assert_non_null(kc);
        assert_int_equal(t_kconf_num(kc, "queued.max.messages.kbytes"), 2048);
        assert_int_equal(t_kconf_num(kc, "queued.min.messages"), 10922);
        assert_int_equal(t_kconf_num(kc, "max.partition.fetch.bytes"), 131072);
        assert_int_equal(t_kconf_num(kc, "fetch.max.bytes"), 1048576);
        rd_kafka_conf_destroy(kc);

        assert_int_equal(enc_conf_set(conf, "cache.max.bytes", "1073741824",
                                      err, sizeof(err)),
                         ENC_OK);
        kc = enc_pipeline_consumer_conf(conf, err, sizeof(err));
        assert_non_null(kc);
        assert_int_equal(t_kconf_num(kc, "queued.max.messages.kbytes"), 8192);
        assert_int_equal(t_kconf_num(kc, "queued.min.messages"), 43690);
        assert_int_equal(t_kconf_num(kc, "max.partition.fetch.bytes"), 524288);
        rd_kafka_conf_destroy(kc);

        assert_int_equal(enc_conf_set(conf, "cache.max.bytes", "1048576", err,
                                      sizeof(err)),
                         ENC_OK);
        kc = enc_pipeline_consumer_conf(conf, err, sizeof(err));
        assert_non_null(kc);
        assert_int_equal(t_kconf_num(kc, "queued.max.messages.kbytes"), 64);
        assert_int_equal(t_kconf_num(kc, "queued.min.messages"), 341);
        assert_int_equal(t_kconf_num(kc, "max.partition.fetch.bytes"), 65536);
        rd_kafka_conf_destroy(kc);

        assert_int_equal(enc_conf_set(conf,
                                      "kafka.consumer.queued.min.messages",
                                      "777", err, sizeof(err)),
                         ENC_OK);
        kc = enc_pipeline_consumer_conf(conf, err, sizeof(err));
        assert_non_null(kc);
        assert_int_equal(t_kconf_num(kc, "queued.min.messages"), 777);
        assert_int_equal(t_kconf_num(kc, "queued.max.messages.kbytes"), 64);
        rd_kafka_conf_destroy(kc);

        assert_int_equal(enc_conf_set(conf,
                                      "kafka.consumer.queued.max.messages."
                                      "kbytes",
                                      "-5", err, sizeof(err)),
                         ENC_OK);
        assert_null(enc_pipeline_consumer_conf(conf, err, sizeof(err)));
        assert_non_null(strstr(err, "kafka.consumer.queued.max.messages."
                                    "kbytes"));
        enc_conf_destroy(conf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        test_scripted_plays_give_exact_updates_on_output_topic),
                cmocka_unit_test(
                        test_dead_letters_carry_reason_source_and_bytes),
                cmocka_unit_test(
                        test_sigkill_then_restart_repeats_only_identical_updates),
                cmocka_unit_test(
                        test_fresh_process_restores_state_from_changelog),
                cmocka_unit_test(
                        test_static_assignment_resumes_without_a_group),
                cmocka_unit_test(test_three_processes_survive_a_killed_member),
                cmocka_unit_test(
                        test_exactly_once_path_gives_the_reference_updates),
                cmocka_unit_test(
                        test_exactly_once_member_stops_cleanly_beside_another),
                cmocka_unit_test(
                        test_exactly_once_crash_restore_gives_the_reference),
                cmocka_unit_test(test_replay_is_byte_identical_to_the_live_run),
                cmocka_unit_test(
                        test_reset_repositions_group_and_clears_state),
                cmocka_unit_test(
                        test_metrics_show_engine_statistics_worked_by_hand),
                cmocka_unit_test(
                        test_consumer_prefetch_is_bounded_by_the_budget),
                cmocka_unit_test(
                        test_small_prefetch_refills_and_changes_no_output),
                cmocka_unit_test(
                        test_restore_under_a_tiny_prefetch_loses_and_repeats_nothing),

        };
        /* ENC_TEST_FILTER=test_exactly* runs a subset (development). */
        if (getenv("ENC_TEST_FILTER"))
                cmocka_set_test_filter(getenv("ENC_TEST_FILTER"));
        return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
