/*
 * broker.c -- the embedded cluster, the feeder, group progress, the output
 * watcher and encore as a child process, for b2, b3 and mem.
 *
 * DESIGN
 * Everything here talks to the cluster the way any client would, over the
 * Kafka protocol on loopback. The feeder is an ordinary producer; progress
 * of an encore in another process is read the way lag monitors read it
 * (the group's committed offsets); the first output of a restarted encore
 * is found by its producer timestamp, which librdkafka sets from the wall
 * clock when the record is produced, so "processing again" is observed
 * from outside the process without any hook inside it.
 */
#include "broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"

/* ---- cluster ---------------------------------------------------------- */

enc_embedded_t *enc_bench_cluster(const char *const *topics, const int *parts) {
        char errstr[256];
        enc_embedded_t *emb = enc_embedded_new(3, errstr, sizeof(errstr));
        if (!emb) {
                enc_bench_log("embedded cluster: %s", errstr);
                return NULL;
        }
        for (int i = 0; topics[i]; i++)
                if (enc_embedded_create_topic(emb, topics[i], parts[i], errstr,
                                              sizeof(errstr))) {
                        enc_bench_log("%s", errstr);
                        enc_embedded_destroy(emb);
                        return NULL;
                }
        return emb;
}

static int kset(rd_kafka_conf_t *kc, const char *k, const char *v) {
        char err[256];
        if (rd_kafka_conf_set(kc, k, v, err, sizeof(err)) == RD_KAFKA_CONF_OK)
                return 0;
        enc_bench_log("librdkafka %s=%s: %s", k, v, err);
        return -1;
}

/* ---- feeder ----------------------------------------------------------- */

uint64_t enc_bench_feeder_total(const enc_bench_feeder_t *f) {
        if (f->log)
                return f->log->n;
        return (f->synth_seed ? f->synth_users : 0) + f->synth_live;
}

static void feeder_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque) {
        enc_bench_feeder_t *f = opaque;
        (void)rk;
        if (m->err) {
                enc_bench_log("feeder delivery: %s", rd_kafka_err2str(m->err));
                atomic_store(&f->failed, 1);
        }
}

static void *feeder_main(void *arg) {
        enc_bench_feeder_t *f = arg;
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        enc_codec_t *codec = enc_codec_new(NULL, err, sizeof(err));
        enc_bench_synth_t syn;
        enc_buf_t b;
        enc_buf_init(&b, 1 << 20);
        /* Big batches, compressed: the mock's 5 MiB per partition counts
         * stored (compressed) bytes. */
        if (!codec || kset(kc, "bootstrap.servers", f->bootstrap) ||
            kset(kc, "client.id", "encore-bench-feeder") ||
            kset(kc, "linger.ms", "5") ||
            kset(kc, "batch.num.messages", "10000") ||
            kset(kc, "compression.type", "lz4") ||
            kset(kc, "queue.buffering.max.messages", "1000000") ||
            kset(kc, "enable.idempotence", "false")) {
                rd_kafka_conf_destroy(kc);
                atomic_store(&f->failed, 1);
                atomic_store(&f->done, 1);
                enc_codec_destroy(codec);
                return NULL;
        }
        rd_kafka_conf_set_dr_msg_cb(kc, feeder_dr);
        rd_kafka_conf_set_opaque(kc, f);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        if (!rk) {
                enc_bench_log("feeder: %s", err);
                rd_kafka_conf_destroy(kc);
                atomic_store(&f->failed, 1);
                atomic_store(&f->done, 1);
                enc_codec_destroy(codec);
                return NULL;
        }
        enc_bench_synth_init(&syn, f->synth_users,
                             f->synth_t0 ? f->synth_t0
                                         : ENC_GEN_DEFAULT_START_MS,
                             f->synth_step_ms ? f->synth_step_ms : 10);
        uint64_t seeds = f->synth_seed ? f->synth_users : 0;
        uint64_t total = enc_bench_feeder_total(f);
        for (uint64_t i = 0; i < total && !atomic_load(&f->stop); i++) {
                if ((i & 255) == 0)
                        while (!atomic_load(&f->stop) &&
                               i > f->progress(f->progress_opaque) + f->lead)
                                rd_kafka_poll(rk, 5);
                const void *key, *val;
                size_t klen, vlen;
                int32_t part;
                if (f->log) {
                        const enc_bench_rec_t *r = &f->log->recs[i];
                        key = enc_bench_log_key(f->log, i);
                        klen = r->key_len;
                        val = enc_bench_log_val(f->log, i);
                        vlen = r->val_len;
                        part = r->partition % f->partitions;
                } else {
                        enc_event_t ev;
                        enc_bench_synth_event(&syn, i, i < seeds, &ev);
                        enc_buf_reset(&b);
                        if (enc_codec_encode_event(codec, &ev, &b)) {
                                atomic_store(&f->failed, 1);
                                break;
                        }
                        key = ev.user_id;
                        klen = strlen(ev.user_id);
                        val = b.data;
                        vlen = b.len;
                        part = enc_bench_partition(key, klen, f->partitions);
                }
                for (;;) {
                        rd_kafka_resp_err_t e = rd_kafka_producev(
                                rk, RD_KAFKA_V_TOPIC(f->topic),
                                RD_KAFKA_V_PARTITION(part),
                                RD_KAFKA_V_KEY((void *)key, klen),
                                RD_KAFKA_V_VALUE((void *)val, vlen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END);
                        if (!e)
                                break;
                        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                enc_bench_log("feeder produce: %s",
                                              rd_kafka_err2str(e));
                                atomic_store(&f->failed, 1);
                                goto out;
                        }
                        rd_kafka_poll(rk, 5);
                }
                atomic_store(&f->produced, i + 1);
                if ((i & 1023) == 0)
                        rd_kafka_poll(rk, 0);
        }
out:
        if (rd_kafka_flush(rk, 60000))
                atomic_store(&f->failed, 1);
        rd_kafka_destroy(rk);
        enc_codec_destroy(codec);
        enc_buf_free(&b);
        atomic_store(&f->done, 1);
        return NULL;
}

int enc_bench_feeder_start(enc_bench_feeder_t *f) {
        atomic_store(&f->produced, 0);
        atomic_store(&f->done, 0);
        atomic_store(&f->stop, 0);
        atomic_store(&f->failed, 0);
        return pthread_create(&f->thr, NULL, feeder_main, f);
}

void enc_bench_feeder_join(enc_bench_feeder_t *f) {
        pthread_join(f->thr, NULL);
}

/* ---- group progress --------------------------------------------------- */

struct enc_bench_group_s {
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *parts;
        double last;
        uint64_t value;
};

enc_bench_group_t *enc_bench_group_new(const char *bootstrap, const char *group,
                                       const char *topic, int partitions) {
        char err[256];
        enc_bench_group_t *g = calloc(1, sizeof(*g));
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        if (!g || kset(kc, "bootstrap.servers", bootstrap) ||
            kset(kc, "group.id", group) ||
            kset(kc, "client.id", "encore-bench-lag") ||
            kset(kc, "enable.auto.commit", "false")) {
                rd_kafka_conf_destroy(kc);
                free(g);
                return NULL;
        }
        g->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        if (!g->rk) {
                enc_bench_log("group watcher: %s", err);
                rd_kafka_conf_destroy(kc);
                free(g);
                return NULL;
        }
        g->parts = rd_kafka_topic_partition_list_new(partitions);
        for (int p = 0; p < partitions; p++)
                rd_kafka_topic_partition_list_add(g->parts, topic, p);
        return g;
}

void enc_bench_group_destroy(enc_bench_group_t *g) {
        if (!g)
                return;
        rd_kafka_topic_partition_list_destroy(g->parts);
        rd_kafka_destroy(g->rk);
        free(g);
}

uint64_t enc_bench_group_committed(void *opaque) {
        enc_bench_group_t *g = opaque;
        double now = enc_bench_now();
        if (now - g->last < 0.2)
                return g->value;
        g->last = now;
        if (rd_kafka_committed(g->rk, g->parts, 5000))
                return g->value;
        uint64_t sum = 0;
        for (int i = 0; i < g->parts->cnt; i++)
                if (g->parts->elems[i].offset > 0)
                        sum += (uint64_t)g->parts->elems[i].offset;
        g->value = sum;
        return sum;
}

/* ---- output watcher --------------------------------------------------- */

struct enc_bench_watch_s {
        rd_kafka_t *rk;
        pthread_t thr;
        atomic_int stop;
        atomic_int_fast64_t mark; /* -1: not looking */
        atomic_int_fast64_t hit;  /* smallest timestamp >= mark; -1 none */
        atomic_uint_fast64_t count;
};

static void *watch_main(void *arg) {
        enc_bench_watch_t *w = arg;
        while (!atomic_load(&w->stop)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 50);
                if (!m)
                        continue;
                if (!m->err) {
                        int64_t ts = rd_kafka_message_timestamp(m, NULL);
                        int64_t mark = atomic_load(&w->mark);
                        int64_t hit = atomic_load(&w->hit);
                        atomic_fetch_add(&w->count, 1);
                        if (mark >= 0 && ts >= mark && (hit < 0 || ts < hit))
                                atomic_store(&w->hit, ts);
                }
                rd_kafka_message_destroy(m);
        }
        return NULL;
}

enc_bench_watch_t *enc_bench_watch_new(const char *bootstrap, const char *topic,
                                       int partitions) {
        char err[256];
        enc_bench_watch_t *w = calloc(1, sizeof(*w));
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        if (!w || kset(kc, "bootstrap.servers", bootstrap) ||
            kset(kc, "group.id", "encore-bench-watch") ||
            kset(kc, "client.id", "encore-bench-watch") ||
            kset(kc, "enable.auto.commit", "false") ||
            kset(kc, "fetch.wait.max.ms", "10")) {
                rd_kafka_conf_destroy(kc);
                free(w);
                return NULL;
        }
        w->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        if (!w->rk) {
                enc_bench_log("watcher: %s", err);
                rd_kafka_conf_destroy(kc);
                free(w);
                return NULL;
        }
        rd_kafka_poll_set_consumer(w->rk);
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(partitions);
        for (int p = 0; p < partitions; p++)
                rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                        RD_KAFKA_OFFSET_END;
        rd_kafka_assign(w->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        atomic_store(&w->mark, -1);
        atomic_store(&w->hit, -1);
        pthread_create(&w->thr, NULL, watch_main, w);
        return w;
}

void enc_bench_watch_destroy(enc_bench_watch_t *w) {
        if (!w)
                return;
        atomic_store(&w->stop, 1);
        pthread_join(w->thr, NULL);
        rd_kafka_consumer_close(w->rk);
        rd_kafka_destroy(w->rk);
        free(w);
}

void enc_bench_watch_mark(enc_bench_watch_t *w, int64_t wall_ms) {
        atomic_store(&w->hit, -1);
        atomic_store(&w->mark, wall_ms);
}

int64_t enc_bench_watch_wait(enc_bench_watch_t *w, double timeout_s) {
        double end = enc_bench_now() + timeout_s;
        while (atomic_load(&w->hit) < 0 && enc_bench_now() < end)
                usleep(2000);
        if (atomic_load(&w->hit) < 0)
                return -1;
        /* Another partition may still deliver an earlier timestamp. */
        usleep(500000);
        return atomic_load(&w->hit);
}

uint64_t enc_bench_watch_count(enc_bench_watch_t *w) {
        return atomic_load(&w->count);
}

/* ---- encore as a child ------------------------------------------------ */

const char *enc_bench_encore_path(const char *given, char *buf, size_t size) {
        if (given && *given)
                return given;
        ssize_t n = readlink("/proc/self/exe", buf, size - 1);
        if (n <= 0)
                return "encore";
        buf[n] = '\0';
        char *slash = strrchr(buf, '/');
        if (!slash || (size_t)(slash - buf) + 8 >= size)
                return "encore";
        strcpy(slash + 1, "encore");
        return buf;
}

pid_t enc_bench_spawn_encore(const char *encore, const char *const *sets,
                             const char *log_path) {
        const char *argv[128];
        int n = 0;
        argv[n++] = encore;
        argv[n++] = "run";
        for (int i = 0; sets[i] && n < 125; i++) {
                argv[n++] = "--set";
                argv[n++] = sets[i];
        }
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_WRONLY);
        if (fd >= 0)
                dup2(fd, 2);
        if (nul >= 0)
                dup2(nul, 1);
        execv(encore, (char *const *)argv);
        _exit(127);
}

/* "ts=2026-11-21T22:53:34.698Z" -> ms since the epoch. */
static int64_t parse_ts(const char *p) {
        struct tm tm;
        int ms = 0;
        memset(&tm, 0, sizeof(tm));
        if (sscanf(p, "ts=%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
                return -1;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm) * 1000 + ms;
}

/* True if @p line is a log line of event @p event. */
static bool log_line_is(const char *line, const char *event) {
        char want[128];
        snprintf(want, sizeof(want), " event=%s", event);
        size_t wl = strlen(want);
        const char *at = strstr(line, want);
        return at && (at[wl] == ' ' || at[wl] == '\n' || at[wl] == '\0');
}

int64_t enc_bench_log_event_ms(const char *log_path, const char *event,
                               bool last) {
        char line[4096];
        FILE *f = fopen(log_path, "r");
        if (!f)
                return -1;
        int64_t t = -1;
        while (fgets(line, sizeof(line), f)) {
                if (!log_line_is(line, event))
                        continue;
                t = parse_ts(line);
                if (!last)
                        break;
        }
        fclose(f);
        return t;
}

int enc_bench_log_count(const char *log_path, const char *event) {
        char line[4096];
        int n = 0;
        FILE *f = fopen(log_path, "r");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                n += log_line_is(line, event);
        fclose(f);
        return n;
}

double enc_bench_log_sum(const char *log_path, const char *event,
                         const char *field) {
        char line[4096], want[64];
        snprintf(want, sizeof(want), " %s=", field);
        FILE *f = fopen(log_path, "r");
        double sum = 0;
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                const char *at = strstr(line, want);
                if (at && log_line_is(line, event))
                        sum += strtod(at + strlen(want), NULL);
        }
        fclose(f);
        return sum;
}

int enc_bench_log_metrics_port(const char *log_path) {
        char line[4096];
        int port = -1;
        FILE *f = fopen(log_path, "r");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                char *at = strstr(line, "event=metrics_listen");
                char *colon = at ? strstr(at, "127.0.0.1:") : NULL;
                if (colon) {
                        port = atoi(colon + 10);
                        break;
                }
        }
        fclose(f);
        return port;
}

double enc_bench_scrape(int port, const char *name) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        double v = -1;
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
                close(fd);
                return -1;
        }
        static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
        if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
                close(fd);
                return -1;
        }
        size_t cap = 1 << 20, len = 0;
        char *buf = malloc(cap + 1);
        ssize_t n;
        while (buf && len < cap && (n = read(fd, buf + len, cap - len)) > 0)
                len += (size_t)n;
        close(fd);
        if (!buf)
                return -1;
        buf[len] = '\0';
        /* Sum every sample of the metric (one per label set). */
        size_t nl = strlen(name);
        for (char *line = buf; line && *line;) {
                char *next = strchr(line, '\n');
                if (!strncmp(line, name, nl) &&
                    (line[nl] == ' ' || line[nl] == '{')) {
                        char *val = line[nl] == '{' ? strstr(line + nl, "} ")
                                                    : line + nl;
                        if (val) {
                                double x = strtod(val + (*val == '}' ? 2 : 1),
                                                  NULL);
                                v = v < 0 ? x : v + x;
                        }
                }
                line = next ? next + 1 : NULL;
        }
        free(buf);
        return v;
}
