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
 *  - SIGTERM drains and commits: a restart repeats nothing.
 */
#include "harness.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <xxhash.h>

#include "embedded.h"
#include "gen.h"
#include "pipeline.h"
#include "tail.h"

static enc_embedded_t *emb;
static const char *bootstrap;

static int t_setup(void **st) {
        (void)st;
        char err[256];
        emb = enc_embedded_new(1, err, sizeof(err));
        assert_non_null(emb);
        bootstrap = enc_embedded_bootstraps(emb);
        return 0;
}

static int t_teardown(void **st) {
        (void)st;
        enc_embedded_destroy(emb);
        return 0;
}

static int64_t t_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- producing ------------------------------------------------------ */

static rd_kafka_t *t_producer(void) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err,
                          sizeof(err));
        rd_kafka_conf_set(kc, "enable.idempotence", "true", err, sizeof(err));
        rd_kafka_conf_set(kc, "partitioner", "murmur2_random", err,
                          sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        assert_non_null(rk);
        return rk;
}

static void t_produce_raw(rd_kafka_t *rk, const char *topic, const char *key,
                          const void *val, size_t len) {
        for (;;) {
                rd_kafka_resp_err_t e = rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC(topic),
                        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                        RD_KAFKA_V_VALUE((void *)val, len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        assert_int_equal(e, 0);
                        return;
                }
                rd_kafka_poll(rk, 10);
        }
}

static void t_produce_event(rd_kafka_t *rk, enc_codec_t *codec,
                            const char *topic, const enc_event_t *ev) {
        enc_buf_t b;
        enc_buf_init(&b, 1 << 16);
        assert_int_equal(enc_codec_encode_event(codec, ev, &b), 0);
        t_produce_raw(rk, topic, ev->user_id, b.data, b.len);
        enc_buf_free(&b);
}

static enc_codec_t *t_codec(void) {
        char err[256];
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        enc_codec_t *c = enc_codec_new(&cc, err, sizeof(err));
        assert_non_null(c);
        return c;
}

/* ---- reading back --------------------------------------------------- */

typedef struct t_rec_s {
        int32_t partition;
        int64_t offset;
        char key[64];
        uint8_t *val;
        size_t len;
        char hdr[6][128]; /* DLQ headers, in t_hdr_names order */
} t_rec_t;

static const char *const t_hdr_names[6] = {
        "encore.reason",         "encore.detail",
        "encore.source.topic",   "encore.source.partition",
        "encore.source.offset",  "encore.source.timestamp"};

typedef struct t_recs_s {
        t_rec_t *v;
        size_t n, cap;
} t_recs_t;

static int t_collect(void *opaque, const rd_kafka_message_t *m) {
        t_recs_t *r = opaque;
        if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 1024;
                r->v = realloc(r->v, r->cap * sizeof(*r->v));
        }
        t_rec_t *x = &r->v[r->n++];
        memset(x, 0, sizeof(*x));
        x->partition = m->partition;
        x->offset = m->offset;
        snprintf(x->key, sizeof(x->key), "%.*s", (int)m->key_len,
                 (const char *)m->key);
        x->val = malloc(m->len + 1);
        memcpy(x->val, m->payload, m->len);
        x->len = m->len;
        rd_kafka_headers_t *h;
        if (!rd_kafka_message_headers(m, &h)) {
                for (int i = 0; i < 6; i++) {
                        const void *v;
                        size_t vl;
                        if (!rd_kafka_header_get_last(h, t_hdr_names[i], &v,
                                                      &vl))
                                snprintf(x->hdr[i], sizeof(x->hdr[i]), "%.*s",
                                         (int)vl, (const char *)v);
                }
        }
        return 0;
}

static void t_read(const char *topic, t_recs_t *out) {
        char err[256];
        uint64_t n;
        memset(out, 0, sizeof(*out));
        assert_int_equal(enc_tail_read(bootstrap, topic, 60000, t_collect,
                                       out, &n, err, sizeof(err)),
                         0);
}

static void t_recs_free(t_recs_t *r) {
        for (size_t i = 0; i < r->n; i++)
                free(r->v[i].val);
        free(r->v);
}

/* ---- running encore in this process --------------------------------- */

static void t_run_inproc(enc_conf_t *conf) {
        char err[512];
        enc_pipeline_t *pl = enc_pipeline_new(conf, err, sizeof(err));
        if (!pl)
                fprintf(stderr, "%s\n", err);
        assert_non_null(pl);
        enc_pipeline_opts_t opts = {.exit_idle_ms = 300};
        enc_err_t e = enc_pipeline_run(pl, &opts, err, sizeof(err));
        if (e)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(e, 0);
        enc_pipeline_destroy(pl);
}

/* ---- tests ---------------------------------------------------------- */

/* The sequence of test_engine's hand-worked scenario, through Kafka:
 * alice 1, alice 2, alice 1 (d3 00:00), bob 1, alice 0 final (d4 00:00). */
static void test_scripted_plays_give_exact_updates_on_output_topic(void **st) {
        (void)st;
        char err[256];
        assert_int_equal(enc_embedded_create_topic(emb, "s-plays", 1, err,
                                                   sizeof(err)),
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
        enc_conf_t *conf = t_conf(bs, sd, "input.topic=s-plays",
                                  "output.topic=s-rewards",
                                  "dlq.topic=s-dlq", "group.id=s-group",
                                  "signals=active_days:1",
                                  "signal.active_days.1.windows=3",
                                  "window.grace.ms=0",
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
        assert_int_equal(enc_embedded_create_topic(emb, "d-plays", 1, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, "d-group-changelog", 1,
                                                   err, sizeof(err)),
                         0);
        enc_codec_t *codec = t_codec();
        rd_kafka_t *rk = t_producer();
        enc_event_t good = t_play("g1", "ivy", T_AT(0, 10, 0), 60000);
        t_produce_event(rk, codec, "d-plays", &good);           /* 0 */
        t_produce_raw(rk, "d-plays", "ivy", "garbage!", 8);      /* 1 */
        enc_buf_t b;
        enc_buf_init(&b, 4096);
        assert_int_equal(enc_codec_encode_event(codec, &good, &b), 0);
        t_produce_raw(rk, "d-plays", "ivy", b.data, b.len - 5);  /* 2 */
        t_produce_raw(rk, "d-plays", "ivy", NULL, 0);            /* 3 */
        enc_event_t late = t_play("g2", "ivy", T_AT(0, 9, 0), 60000);
        t_produce_event(rk, codec, "d-plays", &late);           /* 4 */
        enc_event_t good2 = t_play("g3", "ivy", T_AT(0, 10, 5), 60000);
        t_produce_event(rk, codec, "d-plays", &good2);          /* 5 */
        assert_int_equal(rd_kafka_flush(rk, 10000), 0);
        rd_kafka_destroy(rk);

        char *dir = t_tmpdir("pipe-d");
        char sd[160], bs[256];
        snprintf(sd, sizeof(sd), "state.dir=%s", dir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        enc_conf_t *conf = t_conf(bs, sd, "input.topic=d-plays",
                                  "output.topic=d-rewards",
                                  "dlq.topic=d-dlq", "group.id=d-group",
                                  "window.grace.ms=60000",
                                  "metrics.address=127.0.0.1:0", NULL);
        t_run_inproc(conf);

        t_recs_t r;
        t_read("d-dlq", &r);
        assert_int_equal(r.n, 4);
        const char *reasons[] = {"bad_magic", "truncated", "tombstone",
                                 "late"};
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

/* ---- encore as a child process -------------------------------------- */

/* How a child encore runs. exit_idle_ms 0: until signalled. */
typedef struct t_run_s {
        const char *in_topic;
        const char *out_topic; /* the group is "g-<out_topic>" */
        const char *dir;
        int exit_idle_ms;
        bool rare_commits; /* every 5000 records only, never by time */
        const char *log;   /* stderr goes here if set */
} t_run_t;

static pid_t t_spawn_run(const t_run_t *r) {
        const char *bindir = getenv("ENCORE_BINARY_DIR");
        if (!bindir) {
                fprintf(stderr, "ENCORE_BINARY_DIR is not set: run this "
                                "test through ctest\n");
                fail();
        }
        char exe[512], bs[256], sd[200], gr[100], ot[100], it[100], idle[32];
        snprintf(exe, sizeof(exe), "%s/encore", bindir);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", bootstrap);
        snprintf(sd, sizeof(sd), "state.dir=%s", r->dir);
        snprintf(gr, sizeof(gr), "group.id=g-%s", r->out_topic);
        snprintf(ot, sizeof(ot), "output.topic=%s", r->out_topic);
        snprintf(it, sizeof(it), "input.topic=%s", r->in_topic);
        snprintf(idle, sizeof(idle), "%d", r->exit_idle_ms);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (r->log) {
                        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND,
                                      0644);
                        if (fd >= 0)
                                dup2(fd, 2);
                }
                /* A short session timeout: the group forgets a SIGKILLed
                 * member in 6 s instead of 45. */
                char *argv[] = {exe, "run", "--set", bs, "--set", sd,
                                "--set", gr, "--set", ot, "--set", it,
                                "--set",
                                r->rare_commits ? "commit.interval.ms=3600000"
                                                : "commit.interval.ms=200",
                                "--set",
                                r->rare_commits ? "commit.records=5000"
                                                : "commit.records=100000",
                                "--set",
                                "kafka.consumer.session.timeout.ms=6000",
                                "--set", "metrics.address=127.0.0.1:0",
                                "--set",
                                r->log ? "log.level=info" : "log.level=warn",
                                "--exit-idle-ms", idle, NULL};
                execv(exe, argv);
                _exit(127);
        }
        return pid;
}

static pid_t t_spawn(const char *in_topic, const char *out_topic,
                     const char *dir, bool exit_idle, bool rare_commits) {
        t_run_t r = {in_topic, out_topic, dir, exit_idle ? 1000 : 0,
                     rare_commits, NULL};
        return t_spawn_run(&r);
}

static int t_wait(pid_t pid) {
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static int64_t t_topic_count(const char *topic) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err,
                          sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        int64_t total = 0;
        for (int32_t p = 0; p < 4; p++) {
                int64_t lo = 0, hi = 0;
                if (!rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi,
                                                      2000))
                        total += hi - lo;
        }
        rd_kafka_destroy(rk);
        return total;
}

static const char *t_update_id(enc_codec_t *codec, const t_rec_t *rec,
                               char *buf) {
        enc_update_t up;
        char err[256];
        assert_int_equal(enc_codec_decode_update(codec, rec->val, rec->len,
                                                 &up, err, sizeof(err)),
                         0);
        memcpy(buf, up.update_id, 33);
        return buf;
}

static int t_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

typedef struct t_entry_s {
        uint64_t idh;
        uint64_t contenth;
} t_entry_t;

static int t_cmp_entry(const void *a, const void *b) {
        return t_cmp_u64(&((const t_entry_t *)a)->idh,
                         &((const t_entry_t *)b)->idh);
}

static t_entry_t *t_index(enc_codec_t *codec, const t_recs_t *r) {
        t_entry_t *e = calloc(r->n + 1, sizeof(*e));
        char id[33];
        for (size_t i = 0; i < r->n; i++) {
                t_update_id(codec, &r->v[i], id);
                e[i].idh = XXH3_64bits(id, 32);
                e[i].contenth = XXH3_64bits(r->v[i].val, r->v[i].len) ^
                                XXH3_64bits(r->v[i].key, strlen(r->v[i].key));
        }
        qsort(e, r->n, sizeof(*e), t_cmp_entry);
        return e;
}

/* All records of the generated input, encoded once, so several topics can
 * be given exactly the same content. */
typedef struct t_input_s {
        enc_buf_t *val;
        char (*key)[32];
        size_t n;
} t_input_t;

static void t_input_make(t_input_t *in, uint64_t n, uint64_t seed) {
        char err[256];
        enc_codec_t *codec = t_codec();
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.seed = seed;
        gc.users = 400;
        gc.days = 30;
        gc.count = n;
        gc.disorder_ms = 30000;
        enc_gen_t *g = enc_gen_new(&gc, err, sizeof(err));
        assert_non_null(g);
        in->val = calloc(n, sizeof(*in->val));
        in->key = calloc(n, sizeof(*in->key));
        in->n = 0;
        enc_event_t ev;
        while (in->n < n && enc_gen_next(g, &ev) == ENC_OK) {
                enc_buf_init(&in->val[in->n], 4096);
                assert_int_equal(enc_codec_encode_event(codec, &ev,
                                                        &in->val[in->n]),
                                 0);
                snprintf(in->key[in->n], 32, "%s", ev.user_id);
                in->n++;
        }
        enc_gen_destroy(g);
        enc_codec_destroy(codec);
}

static void t_input_free(t_input_t *in) {
        for (size_t i = 0; i < in->n; i++)
                enc_buf_free(&in->val[i]);
        free(in->val);
        free(in->key);
}

/* Produces records [from, to) of @p in to @p topic, paced in batches so a
 * running encore is mid-stream while it happens. */
static void t_input_produce(const t_input_t *in, const char *topic,
                            size_t from, size_t to, bool paced) {
        rd_kafka_t *rk = t_producer();
        for (size_t i = from; i < to; i++) {
                t_produce_raw(rk, topic, in->key[i], in->val[i].data,
                              in->val[i].len);
                if (paced && i % 250 == 249) {
                        rd_kafka_flush(rk, 10000);
                        usleep(10000);
                }
        }
        assert_int_equal(rd_kafka_flush(rk, 30000), 0);
        rd_kafka_destroy(rk);
}

/* Starts encore on @p in_topic, produces the first half of the input while
 * it runs, stops it with @p sig, produces the rest, and runs a second
 * encore on the same state to the end. */
static void t_interrupted_run(const t_input_t *in, const char *in_topic,
                              const char *out_topic, int sig) {
        char err[256];
        assert_int_equal(enc_embedded_create_topic(emb, in_topic, 2, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, out_topic, 4, err,
                                                   sizeof(err)),
                         0);
        char cl[128];
        snprintf(cl, sizeof(cl), "g-%s-changelog", out_topic);
        assert_int_equal(enc_embedded_create_topic(emb, cl, 2, err,
                                                   sizeof(err)),
                         0);
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

/* Asserts that @p out_topic holds exactly the reference's updates, byte for
 * byte, each at least once; returns how many records were repeats. */
static size_t t_assert_same_updates(enc_codec_t *codec, const t_recs_t *rr,
                                    const t_entry_t *ir,
                                    const char *out_topic) {
        t_recs_t rc;
        t_read(out_topic, &rc);
        t_entry_t *ic = t_index(codec, &rc);
        size_t repeats = 0, j = 0;
        for (size_t i = 0; i < rc.n; i++) {
                const t_entry_t *hit = bsearch(&ic[i], ir, rr->n, sizeof(*ir),
                                               t_cmp_entry);
                assert_non_null(hit);                        /* no strays */
                assert_true(hit->contenth == ic[i].contenth); /* identical */
                if (i > 0 && ic[i].idh == ic[i - 1].idh)
                        repeats++;
        }
        for (size_t i = 0; i < rr->n; i++) { /* every reference update */
                while (j < rc.n && ic[j].idh < ir[i].idh)
                        j++;
                assert_true(j < rc.n && ic[j].idh == ir[i].idh);
        }
        assert_int_equal(rc.n, rr->n + repeats);
        free(ic);
        t_recs_free(&rc);
        return repeats;
}

/* Produces @p in to a fresh topic and runs one uninterrupted encore over
 * it: the reference every other run is compared with. */
static void t_reference(const t_input_t *in, const char *name, int partitions,
                        t_recs_t *rr, t_entry_t **ir, enc_codec_t *codec) {
        char err[256], in_topic[64], cl[96];
        snprintf(in_topic, sizeof(in_topic), "%s-in", name);
        snprintf(cl, sizeof(cl), "g-%s-changelog", name);
        assert_int_equal(enc_embedded_create_topic(emb, in_topic, partitions,
                                                   err, sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, name, 4, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, cl, partitions, err,
                                                   sizeof(err)),
                         0);
        t_input_produce(in, in_topic, 0, in->n, false);
        char *dir = t_tmpdir("ref");
        pid_t pid = t_spawn(in_topic, name, dir, true, false);
        int status = t_wait(pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        t_rmtree(dir);
        free(dir);
        t_read(name, rr);
        assert_true(rr->n > 1000);
        *ir = t_index(codec, rr);
        for (size_t i = 1; i < rr->n; i++)
                assert_true((*ir)[i].idh != (*ir)[i - 1].idh); /* unique */
}

/*
 * The crash test. A reference run processes the whole input uninterrupted.
 * A second encore, on a topic with the same records, is SIGKILLed while
 * records are flowing (commits every 200 ms, so it dies with uncommitted
 * work), then restarted on its state and run to the end. Every update of
 * the reference must appear, and every record of the interrupted run must
 * be one of the reference's, byte for byte (same key, id and content).
 */
static void test_sigkill_then_restart_repeats_only_identical_updates(
        void **st) {
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

static bool t_file_contains(const char *path, const char *needle) {
        FILE *f = fopen(path, "r");
        char line[2048];
        bool hit = false;
        while (f && !hit && fgets(line, sizeof(line), f))
                hit = strstr(line, needle) != NULL;
        if (f)
                fclose(f);
        return hit;
}

/*
 * A process with no local state (a new machine, a lost disk) takes over a
 * group's partitions: it restores them from the changelog and continues
 * exactly where the previous process left off.
 */
static void test_fresh_process_restores_state_from_changelog(void **st) {
        (void)st;
        char err[256];
        t_input_t in;
        t_input_make(&in, 12000, 31);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "r-ref", 2, &rr, &ir, codec);

        assert_int_equal(enc_embedded_create_topic(emb, "r-plays", 2, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, "r-out", 4, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, "g-r-out-changelog",
                                                   2, err, sizeof(err)),
                         0);
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
 * Scale-out: three processes in one group share four input partitions. One
 * is SIGKILLed mid-stream; the group hands its partitions to the others,
 * which restore them from the changelog and finish the stream. The union of
 * outputs equals one uninterrupted process's, repeats byte-identical.
 */
static void test_three_processes_survive_a_killed_member(void **st) {
        (void)st;
        char err[256];
        t_input_t in;
        t_input_make(&in, 16000, 41);
        enc_codec_t *codec = t_codec();
        t_recs_t rr;
        t_entry_t *ir;
        t_reference(&in, "x-ref", 4, &rr, &ir, codec);

        assert_int_equal(enc_embedded_create_topic(emb, "x-plays", 4, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, "x-out", 4, err,
                                                   sizeof(err)),
                         0);
        assert_int_equal(enc_embedded_create_topic(emb, "g-x-out-changelog",
                                                   4, err, sizeof(err)),
                         0);
        char *dirs[3];
        char log[3][160];
        pid_t pids[3];
        for (int i = 0; i < 3; i++) {
                dirs[i] = t_tmpdir("member");
                snprintf(log[i], sizeof(log[i]), "%s.log", dirs[i]);
                /* Survivors idle-exit only after the 6 s session timeout
                 * and the takeover have had time to happen. */
                t_run_t r = {"x-plays", "x-out", dirs[i], 9000, false,
                             log[i]};
                pids[i] = t_spawn_run(&r);
        }
        t_input_produce(&in, "x-plays", 0, in.n / 10, false);
        int64_t deadline = t_now_ms() + 30000;
        while (t_topic_count("x-out") == 0 && t_now_ms() < deadline)
                usleep(50000);
        t_input_produce(&in, "x-plays", in.n / 10, in.n / 2, true);
        kill(pids[1], SIGKILL);
        int status = t_wait(pids[1]);
        assert_true(WIFSIGNALED(status));
        t_input_produce(&in, "x-plays", in.n / 2, in.n, true);
        for (int i = 0; i < 3; i += 2) {
                status = t_wait(pids[i]);
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        /* the killed member's partitions were restored elsewhere */
        assert_true(t_file_contains(log[0], "event=restore_done") ||
                    t_file_contains(log[2], "event=restore_done"));
        size_t repeats = t_assert_same_updates(codec, &rr, ir, "x-out");
        fprintf(stderr,
                "scale-out test: reference %zu updates; three members, one "
                "killed: all of them, plus %zu identical repeats\n",
                rr.n, repeats);
        for (int i = 0; i < 3; i++) {
                unlink(log[i]);
                t_rmtree(dirs[i]);
                free(dirs[i]);
        }
        free(ir);
        t_recs_free(&rr);
        enc_codec_destroy(codec);
        t_input_free(&in);
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
                cmocka_unit_test(test_three_processes_survive_a_killed_member),
        };
        return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
