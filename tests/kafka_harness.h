/*
 * kafka_harness.h -- helpers for tests that run encore against librdkafka's
 * mock cluster: one embedded cluster per test executable (t_setup /
 * t_teardown as cmocka group fixtures), producing records, reading topics
 * back, running encore in-process or as a child process, and comparing a
 * run's updates with a reference run's. Header-only, like harness.h.
 */
#ifndef ENC_TEST_KAFKA_HARNESS_H
#define ENC_TEST_KAFKA_HARNESS_H

#include "harness.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <xxhash.h>

#include "embedded.h"
#include "gen.h"
#include "pipeline.h"
#include "readend.h"
#include "tail.h"

static enc_embedded_t *emb;
static const char *bootstrap;

static inline int t_setup(void **st) {
        (void)st;
        char err[256];
        emb = enc_embedded_new(1, err, sizeof(err));
        assert_non_null(emb);
        bootstrap = enc_embedded_bootstraps(emb);
        return 0;
}

static inline int t_teardown(void **st) {
        (void)st;
        enc_embedded_destroy(emb);
        return 0;
}

static inline int64_t t_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- producing ------------------------------------------------------ */

static inline rd_kafka_t *t_producer(void) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.idempotence", "true", err, sizeof(err));
        rd_kafka_conf_set(kc, "partitioner", "murmur2_random", err,
                          sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        assert_non_null(rk);
        return rk;
}

static inline void t_produce_raw(rd_kafka_t *rk, const char *topic,
                                 const char *key, const void *val, size_t len) {
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

static inline void t_produce_event(rd_kafka_t *rk, enc_codec_t *codec,
                                   const char *topic, const enc_event_t *ev) {
        enc_buf_t b;
        enc_buf_init(&b, 1 << 16);
        assert_int_equal(enc_codec_encode_event(codec, ev, &b), 0);
        t_produce_raw(rk, topic, ev->user_id, b.data, b.len);
        enc_buf_free(&b);
}

static inline enc_codec_t *t_codec(void) {
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
        "encore.reason",        "encore.detail",
        "encore.source.topic",  "encore.source.partition",
        "encore.source.offset", "encore.source.timestamp"};

typedef struct t_recs_s {
        t_rec_t *v;
        size_t n, cap;
} t_recs_t;

static inline int t_collect(void *opaque, const rd_kafka_message_t *m) {
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
        if (m->len)
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

static inline void t_read(const char *topic, t_recs_t *out) {
        char err[256];
        uint64_t n;
        memset(out, 0, sizeof(*out));
        assert_int_equal(enc_tail_read(bootstrap, topic, 60000, t_collect, out,
                                       &n, err, sizeof(err)),
                         0);
}

static inline void t_recs_free(t_recs_t *r) {
        for (size_t i = 0; i < r->n; i++)
                free(r->v[i].val);
        free(r->v);
}

/* ---- running encore in this process --------------------------------- */

static inline void t_run_inproc(enc_conf_t *conf) {
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

/* ---- encore as a child process -------------------------------------- */

/* How a child encore runs. exit_idle_ms 0: until signalled. */
typedef struct t_run_s {
        const char *in_topic;
        const char *out_topic; /* the group is "g-<out_topic>" */
        const char *dir;
        int exit_idle_ms;
        bool rare_commits;  /* every 5000 records only, never by time */
        const char *log;    /* stderr goes here if set */
        const char *extra;  /* one more key=value, or NULL */
        const char *extra2; /* and another, or NULL */
        bool idle_after_signal; /* the idle exit waits for SIGUSR1 */
} t_run_t;

static inline pid_t t_spawn_run(const t_run_t *r) {
        const char *bindir = getenv("ENCORE_BINARY_DIR");
        if (!bindir) {
                fprintf(stderr, "ENCORE_BINARY_DIR is not set: run this "
                                "test through ctest\n");
                fail();
        }
        char exe[512], bs[256], sd[200], gr[160], ot[160], it[160], idle[32];
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
                 * member in 6 s instead of 45; heartbeats every second so
                 * a member slowed by a loaded machine is not taken for
                 * dead (two missed 3 s heartbeats would be enough). */
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
                                r->rare_commits ? "commit.interval.ms=3600000"
                                                : "commit.interval.ms=200",
                                "--set",
                                r->rare_commits ? "commit.records=5000"
                                                : "commit.records=100000",
                                "--set",
                                "kafka.consumer.session.timeout.ms=6000",
                                "--set",
                                "kafka.consumer.heartbeat.interval.ms=1000",
                                "--set",
                                "metrics.address=127.0.0.1:0",
                                "--set",
                                r->log ? "log.level=info" : "log.level=warn",
                                "--exit-idle-ms",
                                idle,
                                NULL,
                                NULL,
                                NULL,
                                NULL,
                                NULL,
                                NULL};
                int a = 0;
                while (argv[a])
                        a++;
                if (r->idle_after_signal)
                        argv[a++] = "--exit-idle-after-signal";
                if (r->extra) {
                        argv[a++] = "--set";
                        argv[a++] = (char *)r->extra;
                }
                if (r->extra2) {
                        argv[a++] = "--set";
                        argv[a++] = (char *)r->extra2;
                }
                execv(exe, argv);
                _exit(127);
        }
        return pid;
}

static inline pid_t t_spawn(const char *in_topic, const char *out_topic,
                            const char *dir, bool exit_idle,
                            bool rare_commits) {
        t_run_t r = {in_topic,     out_topic, dir, exit_idle ? 1000 : 0,
                     rare_commits, NULL};
        return t_spawn_run(&r);
}

static inline int t_wait(pid_t pid) {
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

/* Offsets in the log of @p topic's partitions 0-3 (high - low watermark):
 * a progress probe, not a record count. On a topic written in
 * transactions every commit marker takes an offset too; count records with
 * t_read. */
static inline int64_t t_topic_count(const char *topic) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
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

static inline const char *t_update_id(enc_codec_t *codec, const t_rec_t *rec,
                                      char *buf) {
        enc_update_t up;
        char err[256];
        assert_int_equal(enc_codec_decode_update(codec, rec->val, rec->len, &up,
                                                 err, sizeof(err)),
                         0);
        memcpy(buf, up.update_id, 33);
        return buf;
}

static inline int t_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

typedef struct t_entry_s {
        uint64_t idh;
        uint64_t contenth;
        size_t idx; /* the record's index in its t_recs_t */
} t_entry_t;

static inline int t_cmp_entry(const void *a, const void *b) {
        return t_cmp_u64(&((const t_entry_t *)a)->idh,
                         &((const t_entry_t *)b)->idh);
}

static inline t_entry_t *t_index(enc_codec_t *codec, const t_recs_t *r) {
        t_entry_t *e = calloc(r->n + 1, sizeof(*e));
        char id[33];
        for (size_t i = 0; i < r->n; i++) {
                t_update_id(codec, &r->v[i], id);
                e[i].idh = XXH3_64bits(id, 32);
                e[i].contenth = XXH3_64bits(r->v[i].val, r->v[i].len) ^
                                XXH3_64bits(r->v[i].key, strlen(r->v[i].key));
                e[i].idx = i;
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

static inline void t_input_make(t_input_t *in, uint64_t n, uint64_t seed) {
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
                assert_int_equal(
                        enc_codec_encode_event(codec, &ev, &in->val[in->n]), 0);
                snprintf(in->key[in->n], 32, "%s", ev.user_id);
                in->n++;
        }
        enc_gen_destroy(g);
        enc_codec_destroy(codec);
}

static inline void t_input_free(t_input_t *in) {
        for (size_t i = 0; i < in->n; i++)
                enc_buf_free(&in->val[i]);
        free(in->val);
        free(in->key);
}

/* Produces records [from, to) of @p in to @p topic, paced in batches so a
 * running encore is mid-stream while it happens. */
static inline void t_input_produce(const t_input_t *in, const char *topic,
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
/* Prints one output record as JSON with where it was, to diagnose a
 * failed comparison. */
static inline void t_print_update(enc_codec_t *codec, const char *what,
                                  const t_rec_t *rec) {
        enc_update_t up;
        char err[256];
        enc_buf_t j;
        enc_buf_init(&j, 1 << 16);
        if (!enc_codec_decode_update(codec, rec->val, rec->len, &up, err,
                                     sizeof(err)) &&
            !enc_update_to_json(&up, &j))
                fprintf(stderr, "%s: partition %d offset %lld: %.*s\n", what,
                        rec->partition, (long long)rec->offset, (int)j.len,
                        (const char *)j.data);
        enc_buf_free(&j);
}

/* Asserts that @p out_topic holds exactly the reference's updates, byte for
 * byte, each at least once; returns how many records were repeats. */
static inline size_t t_assert_same_updates(enc_codec_t *codec,
                                           const t_recs_t *rr,
                                           const t_entry_t *ir,
                                           const char *out_topic) {
        t_recs_t rc;
        t_read(out_topic, &rc);
        t_entry_t *ic = t_index(codec, &rc);
        size_t repeats = 0, j = 0;
        for (size_t i = 0; i < rc.n; i++) {
                const t_entry_t *hit =
                        bsearch(&ic[i], ir, rr->n, sizeof(*ir), t_cmp_entry);
                if (!hit || hit->contenth != ic[i].contenth) {
                        t_print_update(codec, hit ? "differs" : "stray",
                                       &rc.v[ic[i].idx]);
                        if (hit)
                                t_print_update(codec, "reference",
                                               &rr->v[hit->idx]);
                }
                assert_non_null(hit);                         /* no strays */
                assert_true(hit->contenth == ic[i].contenth); /* identical */
                if (i > 0 && ic[i].idh == ic[i - 1].idh)
                        repeats++;
        }
        for (size_t i = 0; i < rr->n; i++) { /* every reference update */
                while (j < rc.n && ic[j].idh < ir[i].idh)
                        j++;
                if (!(j < rc.n && ic[j].idh == ir[i].idh))
                        t_print_update(codec, "missing", &rr->v[ir[i].idx]);
                assert_true(j < rc.n && ic[j].idh == ir[i].idh);
        }
        assert_int_equal(rc.n, rr->n + repeats);
        free(ic);
        t_recs_free(&rc);
        return repeats;
}

/* Produces @p in to a fresh topic and runs one uninterrupted encore over
 * it: the reference every other run is compared with. */
static inline void t_reference(const t_input_t *in, const char *name,
                               int partitions, t_recs_t *rr, t_entry_t **ir,
                               enc_codec_t *codec) {
        char err[256], in_topic[64], cl[96];
        snprintf(in_topic, sizeof(in_topic), "%s-in", name);
        snprintf(cl, sizeof(cl), "g-%s-changelog", name);
        assert_int_equal(enc_embedded_create_topic(emb, in_topic, partitions,
                                                   err, sizeof(err)),
                         0);
        assert_int_equal(
                enc_embedded_create_topic(emb, name, 4, err, sizeof(err)), 0);
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

/* Lines of @p path that contain @p needle. */
static inline int t_file_count(const char *path, const char *needle) {
        FILE *f = fopen(path, "r");
        char line[2048];
        int n = 0;
        while (f && fgets(line, sizeof(line), f))
                n += strstr(line, needle) != NULL;
        if (f)
                fclose(f);
        return n;
}

/* The sum of the integer after @p key on each line of @p path that
 * contains @p needle (e.g. records= on restore_done lines). */
static inline int64_t t_log_sum(const char *path, const char *needle,
                                const char *key) {
        FILE *f = fopen(path, "r");
        char line[2048];
        int64_t sum = 0;
        while (f && fgets(line, sizeof(line), f)) {
                const char *k;
                if (strstr(line, needle) && (k = strstr(line, key)))
                        sum += strtoll(k + strlen(key), NULL, 10);
        }
        if (f)
                fclose(f);
        return sum;
}

static inline bool t_file_contains(const char *path, const char *needle) {
        FILE *f = fopen(path, "r");
        char line[2048];
        bool hit = false;
        while (f && !hit && fgets(line, sizeof(line), f))
                hit = strstr(line, needle) != NULL;
        if (f)
                fclose(f);
        return hit;
}

/* Runs `encore <argv...>` as a child with stdout+stderr to @p log; returns
 * the exit status. */
static inline int t_run_cmd(const char *log, char *const *args) {
        const char *bindir = getenv("ENCORE_BINARY_DIR");
        assert_non_null(bindir);
        char exe[512];
        snprintf(exe, sizeof(exe), "%s/encore", bindir);
        char *argv[32] = {exe};
        int n = 1;
        for (; args[n - 1] && n < 31; n++)
                argv[n] = args[n - 1];
        argv[n] = NULL;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execv(exe, argv);
                _exit(127);
        }
        int status = t_wait(pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- transactions (the exactly-once crash tests) ------------------- */

/* A consumer handle used only for offsets queries and reads at
 * @p isolation ("read_committed" or "read_uncommitted"). */
static inline rd_kafka_t *t_reader(const char *isolation) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "group.id", "t-reader", err, sizeof(err));
        rd_kafka_conf_set(kc, "isolation.level", isolation, err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.partition.eof", "true", err,
                          sizeof(err));
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        assert_non_null(rk);
        return rk;
}

/* Offsets of partitions 0..n-1 of @p topic between the last stable offset
 * (@p rc, a read_committed handle) and the high watermark (@p ru,
 * read_uncommitted): the records of transactions still open. -1 on an
 * error. */
static inline int64_t t_open_txn_offsets(rd_kafka_t *rc, rd_kafka_t *ru,
                                         const char *topic, int n) {
        int64_t open = 0;
        for (int p = 0; p < n; p++) {
                int64_t lo, lso, hwm;
                if (rd_kafka_query_watermark_offsets(rc, topic, p, &lo, &lso,
                                                     2000) ||
                    rd_kafka_query_watermark_offsets(ru, topic, p, &lo, &hwm,
                                                     2000))
                        return -1;
                open += hwm - lso;
        }
        return open;
}

/* Records of partitions 0..n-1 of @p topic a reader at @p isolation
 * receives from the beginning to the end it saw at start (the end test of
 * consumer/readend.c: transaction markers are never received). */
static inline int64_t t_count_records(const char *topic, int n,
                                      const char *isolation) {
        rd_kafka_t *rk = t_reader(isolation);
        enc_readend_t ends[16];
        assert_true(n <= 16);
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(n);
        int left = 0;
        for (int p = 0; p < n; p++) {
                int64_t lo, hi;
                assert_int_equal(rd_kafka_query_watermark_offsets(
                                         rk, topic, p, &lo, &hi, 10000),
                                 0);
                enc_readend_init(&ends[p], lo, hi);
                left += !ends[p].done;
                rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        }
        assert_int_equal(rd_kafka_assign(rk, l), 0);
        int64_t count = 0, deadline = t_now_ms() + 60000;
        while (left > 0 && t_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m)
                        continue;
                int p = m->partition;
                if (p >= 0 && p < n && !ends[p].done) {
                        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                enc_readend_eof(&ends[p], m->offset);
                        else if (!m->err &&
                                 enc_readend_record(&ends[p], m->offset))
                                count++;
                        left -= ends[p].done;
                }
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(left, 0);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
        return count;
}

typedef void (*t_topic_maker_t)(const char *topic, int partitions,
                                bool compact);

/*
 * The exactly-once crash: input A + B (@p n events), reference = one
 * uninterrupted run over both. An exactly-once member is SIGKILLed while a
 * transaction holds outputs and, if it can be caught, changelog records
 * (the changelog's high watermark past its last stable offset); restarted
 * on its state, it fences its old self (the broker aborts the open
 * transaction) and finishes A. Then a member with no local state restores
 * every partition from the changelog and processes B: B's updates depend
 * on the restored state (values, deltas, sequence numbers), so they match
 * the reference only if the restore took exactly the committed changelog.
 * The kill waits at most @p catch_ms after the feed for the changelog's
 * window (0: kill mid-feed if not seen by then). Returns the repeats in the output (read_committed); *aborted is the
 * number of output records only a read_uncommitted reader sees (the
 * aborted transaction's) and *cl_open the changelog offsets that were open
 * at the kill.
 */
static inline size_t t_eos_crash_scenario(const char *tag, uint64_t n,
                                          t_topic_maker_t make, int catch_ms,
                                          int64_t *aborted,
                                          int64_t *cl_open) {
        char in_ref[96], out_ref[96], cl_ref[128], in_t[96], out_t[96],
                cl_t[128], tid[2][160];
        snprintf(in_ref, sizeof(in_ref), "%s-ref-in", tag);
        snprintf(out_ref, sizeof(out_ref), "%s-ref-out", tag);
        snprintf(cl_ref, sizeof(cl_ref), "g-%s-changelog", out_ref);
        snprintf(in_t, sizeof(in_t), "%s-in", tag);
        snprintf(out_t, sizeof(out_t), "%s-out", tag);
        snprintf(cl_t, sizeof(cl_t), "g-%s-changelog", out_t);
        for (int i = 0; i < 2; i++)
                snprintf(tid[i], sizeof(tid[i]),
                         "kafka.producer.transactional.id=%s-m%d", tag, i);
        make(in_ref, 2, false);
        make(out_ref, 4, false);
        make(cl_ref, 2, true);
        make(in_t, 2, false);
        make(out_t, 4, false);
        make(cl_t, 2, true);

        t_input_t in;
        t_input_make(&in, n, 71);
        size_t a_end = in.n * 3 / 4;
        enc_codec_t *codec = t_codec();
        t_input_produce(&in, in_ref, 0, in.n, false);
        char *dref = t_tmpdir("eos-ref");
        int status = t_wait(t_spawn(in_ref, out_ref, dref, true, false));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        t_recs_t rr;
        t_read(out_ref, &rr);
        t_entry_t *ir = t_index(codec, &rr);

        const char *eos = "processing.guarantee=exactly_once";
        char *d1 = t_tmpdir("eos-m0"), *d2 = t_tmpdir("eos-m1");
        t_run_t r = {in_t, out_t, d1, 0, false, NULL, eos, tid[0]};
        pid_t pid = t_spawn_run(&r);
        /* Feed the first half of A in chunks while watching for a commit
         * under way: changelog records staged in the open transaction
         * (the changelog's high watermark past its last stable offset).
         * Every moment mid-stream has outputs in an open transaction; the
         * changelog's window is a commit's flush and send-offsets. Kill
         * there; or, if @p catch_ms passes after the feed without it
         * (the mock has no last stable offset), mid-feed at the latest
         * when @p catch_ms is 0. */
        rd_kafka_t *rc = t_reader("read_committed");
        rd_kafka_t *ru = t_reader("read_uncommitted");
        rd_kafka_t *prod = t_producer();
        size_t half = a_end / 2, fed = half / 5;
        int64_t deadline = t_now_ms() + 60000;
        /* first a fifth of it, and encore in the group producing */
        t_input_produce(&in, in_t, 0, fed, false);
        while (t_topic_count(out_t) == 0 && t_now_ms() < deadline)
                usleep(50000);
        assert_true(t_topic_count(out_t) > 0);
        deadline = 0;
        *cl_open = 0;
        for (;;) {
                if (fed < half) {
                        size_t to = fed + 100 < half ? fed + 100 : half;
                        for (; fed < to; fed++)
                                t_produce_raw(prod, in_t, in.key[fed],
                                              in.val[fed].data,
                                              in.val[fed].len);
                        assert_int_equal(rd_kafka_flush(prod, 10000), 0);
                } else if (!deadline) {
                        deadline = t_now_ms() + catch_ms;
                }
                int64_t until = t_now_ms() + 40;
                while (t_now_ms() < until &&
                       (*cl_open = t_open_txn_offsets(rc, ru, cl_t, 2)) <= 0)
                        ;
                if (*cl_open > 0)
                        break;
                if (catch_ms == 0 ? fed >= half / 2
                                  : deadline && t_now_ms() > deadline)
                        break;
        }
        kill(pid, SIGKILL);
        status = t_wait(pid);
        assert_true(WIFSIGNALED(status));
        int64_t out_open = t_open_txn_offsets(rc, ru, out_t, 4);
        rd_kafka_destroy(rc);
        rd_kafka_destroy(ru);
        fprintf(stderr,
                "%s: killed after %zu of %zu input records, with %lld "
                "changelog and %lld output offsets in an open "
                "transaction\n",
                tag, fed, in.n, (long long)*cl_open, (long long)out_open);

        /* The rest of A; the restart fences the dead producer and the
         * broker aborts its transaction. */
        for (; fed < a_end; fed++)
                t_produce_raw(prod, in_t, in.key[fed], in.val[fed].data,
                              in.val[fed].len);
        assert_int_equal(rd_kafka_flush(prod, 30000), 0);
        rd_kafka_destroy(prod);
        r.exit_idle_ms = 3000;
        status = t_wait(t_spawn_run(&r));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        /* B on a member with no local state: a full restore. */
        t_input_produce(&in, in_t, a_end, in.n, false);
        t_run_t r2 = {in_t, out_t, d2, 3000, false, NULL, eos, tid[1]};
        status = t_wait(t_spawn_run(&r2));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        *aborted = t_count_records(out_t, 4, "read_uncommitted") -
                   t_count_records(out_t, 4, "read_committed");
        size_t repeats = t_assert_same_updates(codec, &rr, ir, out_t);
        free(ir);
        t_recs_free(&rr);
        t_rmtree(dref);
        t_rmtree(d1);
        t_rmtree(d2);
        free(dref);
        free(d1);
        free(d2);
        enc_codec_destroy(codec);
        t_input_free(&in);
        return repeats;
}

#endif /* ENC_TEST_KAFKA_HARNESS_H */
