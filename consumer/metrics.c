/*
 * metrics.c -- Prometheus exposition and the HTTP endpoints.
 *
 * DESIGN
 * libmicrohttpd runs its own thread (MHD_USE_INTERNAL_POLLING_THREAD). That
 * thread touches only this module's published copy of the exposition text
 * and the health fields, under one mutex held for a memcpy. The processing
 * thread renders metrics from its own counters (no locks on the hot path)
 * and publishes the text about once a second.
 *
 *   /metrics  the last published text (Prometheus text format 0.0.4)
 *   /healthz  200 while the loop has beaten in the last 10 s, else 503
 *   /readyz   200 once partitions are assigned and the loop consumes
 *
 * Never: call into the engine, the store or librdkafka from the HTTP
 * thread; serve anything but GET.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ENC_HEALTH_STALE_MS 10000

/* ---- exposition writer ---------------------------------------------- */

static void enc_prom_puts(enc_buf_t *b, const char *s) {
        if (enc_buf_append(b, s, strlen(s)) != ENC_OK)
                b->failed = true;
}

void enc_prom_family(enc_buf_t *b, const char *name, const char *type,
                     const char *help) {
        enc_prom_puts(b, "# HELP ");
        enc_prom_puts(b, name);
        enc_prom_puts(b, " ");
        /* HELP text escapes backslash and newline */
        for (const char *p = help; *p; p++) {
                if (*p == '\\')
                        enc_prom_puts(b, "\\\\");
                else if (*p == '\n')
                        enc_prom_puts(b, "\\n");
                else
                        enc_buf_put_u8(b, (uint8_t)*p);
        }
        enc_prom_puts(b, "\n# TYPE ");
        enc_prom_puts(b, name);
        enc_prom_puts(b, " ");
        enc_prom_puts(b, type);
        enc_prom_puts(b, "\n");
}

static void enc_prom_value(enc_buf_t *b, double v) {
        char num[64];
        if (isnan(v))
                snprintf(num, sizeof(num), "NaN");
        else if (isinf(v))
                snprintf(num, sizeof(num), v > 0 ? "+Inf" : "-Inf");
        else if (v == (double)(int64_t)v && fabs(v) < 9e15)
                snprintf(num, sizeof(num), "%lld", (long long)v);
        else
                snprintf(num, sizeof(num), "%.17g", v);
        enc_prom_puts(b, num);
}

void enc_prom_sample(enc_buf_t *b, const char *name, const char *const *labels,
                     double value) {
        enc_prom_puts(b, name);
        if (labels && labels[0]) {
                enc_prom_puts(b, "{");
                for (int i = 0; labels[i]; i += 2) {
                        if (i)
                                enc_prom_puts(b, ",");
                        enc_prom_puts(b, labels[i]);
                        enc_prom_puts(b, "=\"");
                        for (const char *p = labels[i + 1]; p && *p; p++) {
                                if (*p == '\\')
                                        enc_prom_puts(b, "\\\\");
                                else if (*p == '"')
                                        enc_prom_puts(b, "\\\"");
                                else if (*p == '\n')
                                        enc_prom_puts(b, "\\n");
                                else
                                        enc_buf_put_u8(b, (uint8_t)*p);
                        }
                        enc_prom_puts(b, "\"");
                }
                enc_prom_puts(b, "}");
        }
        enc_prom_puts(b, " ");
        enc_prom_value(b, value);
        enc_prom_puts(b, "\n");
}

void enc_hist_init(enc_hist_t *h, const double *bounds, int n) {
        memset(h, 0, sizeof(*h));
        if (n > ENC_HIST_MAX_BUCKETS)
                n = ENC_HIST_MAX_BUCKETS;
        memcpy(h->bounds, bounds, (size_t)n * sizeof(*bounds));
        h->n = n;
}

void enc_hist_observe(enc_hist_t *h, double v) {
        int i = 0;
        while (i < h->n && v > h->bounds[i])
                i++;
        h->counts[i]++;
        h->sum += v;
        h->count++;
}

void enc_prom_hist(enc_buf_t *b, const char *name, const char *help,
                   const enc_hist_t *h) {
        char n_bucket[128], n_sum[128], n_count[128], le[32];
        snprintf(n_bucket, sizeof(n_bucket), "%s_bucket", name);
        snprintf(n_sum, sizeof(n_sum), "%s_sum", name);
        snprintf(n_count, sizeof(n_count), "%s_count", name);
        enc_prom_family(b, name, "histogram", help);
        uint64_t cum = 0;
        for (int i = 0; i <= h->n; i++) {
                cum += h->counts[i];
                if (i < h->n)
                        snprintf(le, sizeof(le), "%g", h->bounds[i]);
                else
                        snprintf(le, sizeof(le), "+Inf");
                const char *lab[] = {"le", le, NULL};
                enc_prom_sample(b, n_bucket, lab, (double)cum);
        }
        enc_prom_sample(b, n_sum, NULL, h->sum);
        enc_prom_sample(b, n_count, NULL, (double)h->count);
}

/* ---- process collector --------------------------------------------- */

/* Boot time (Unix seconds) from the "btime" line of /proc/stat, or -1. Lines
 * can be longer than the buffer (the "intr" line is): only a read that
 * starts a line is looked at. */
static long long enc_proc_btime(void) {
        FILE *f = fopen("/proc/stat", "r");
        if (!f)
                return -1;
        char line[4096];
        long long bt = -1;
        bool at_start = true;
        while (fgets(line, sizeof(line), f)) {
                if (at_start && sscanf(line, "btime %lld", &bt) == 1)
                        break;
                at_start = strchr(line, '\n') != NULL;
        }
        fclose(f);
        return bt;
}

void enc_prom_process(enc_buf_t *b) {
        long tck = sysconf(_SC_CLK_TCK);
        long page = sysconf(_SC_PAGESIZE);
        char st[1024];
        size_t n = 0;
        FILE *f = fopen("/proc/self/stat", "r");
        if (f) {
                n = fread(st, 1, sizeof(st) - 1, f);
                fclose(f);
        }
        st[n] = '\0';
        /* Fields after the command name, which is in parentheses and may
         * itself hold spaces or ')': field 3 (state) starts after the
         * last ')'. */
        const char *q = strrchr(st, ')');
        unsigned long long utime, stime, start, vsize;
        long long rss;
        if (q && tck > 0 && page > 0 &&
            sscanf(q + 1,
                   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                   "%*d %*d %*d %*d %*d %*d %llu %llu %lld",
                   &utime, &stime, &start, &vsize, &rss) == 5) {
                enc_prom_family(b, "process_cpu_seconds_total", "counter",
                                "Total user and system CPU time spent in "
                                "seconds");
                enc_prom_sample(b, "process_cpu_seconds_total", NULL,
                                (double)(utime + stime) / (double)tck);
                enc_prom_family(b, "process_resident_memory_bytes", "gauge",
                                "Resident memory size in bytes");
                enc_prom_sample(b, "process_resident_memory_bytes", NULL,
                                (double)rss * (double)page);
                enc_prom_family(b, "process_virtual_memory_bytes", "gauge",
                                "Virtual memory size in bytes");
                enc_prom_sample(b, "process_virtual_memory_bytes", NULL,
                                (double)vsize);
                long long bt = enc_proc_btime();
                if (bt > 0) {
                        enc_prom_family(b, "process_start_time_seconds",
                                        "gauge",
                                        "Start time of the process since "
                                        "unix epoch in seconds");
                        enc_prom_sample(b, "process_start_time_seconds", NULL,
                                        (double)bt +
                                                (double)start / (double)tck);
                }
        }
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                long fds = -1; /* the directory's own descriptor */
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                fds++;
                closedir(d);
                enc_prom_family(b, "process_open_fds", "gauge",
                                "Number of open file descriptors");
                enc_prom_sample(b, "process_open_fds", NULL, (double)fds);
        }
        struct rlimit rl;
        if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY) {
                enc_prom_family(b, "process_max_fds", "gauge",
                                "Maximum number of open file descriptors");
                enc_prom_sample(b, "process_max_fds", NULL,
                                (double)rl.rlim_cur);
        }
}

/* ---- HTTP ----------------------------------------------------------- */

struct enc_http_s {
        struct MHD_Daemon *d;
        pthread_mutex_t lock;
        char *text; /* published exposition */
        size_t len;
        int64_t last_beat_ms;
        bool ready;
        char why[128];
        int port;
};

static int64_t enc_mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result enc_http_reply(struct MHD_Connection *c,
                                      unsigned int status, const char *ctype,
                                      void *body, size_t len) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
                len, body, MHD_RESPMEM_MUST_FREE);
        if (!r) {
                free(body);
                return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", ctype);
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result enc_http_text(struct MHD_Connection *c,
                                     unsigned int status, const char *msg) {
        char *body = strdup(msg);
        if (!body)
                return MHD_NO;
        return enc_http_reply(c, status, "text/plain; charset=utf-8", body,
                              strlen(body));
}

static enum MHD_Result enc_http_handler(void *cls, struct MHD_Connection *c,
                                        const char *url, const char *method,
                                        const char *version,
                                        const char *upload_data,
                                        size_t *upload_data_size,
                                        void **con_cls) {
        enc_http_t *h = cls;
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return enc_http_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                     "GET only\n");
        if (!strcmp(url, "/metrics")) {
                pthread_mutex_lock(&h->lock);
                size_t len = h->len;
                char *body = malloc(len + 1);
                if (body && len)
                        memcpy(body, h->text, len);
                pthread_mutex_unlock(&h->lock);
                if (!body)
                        return MHD_NO;
                return enc_http_reply(c, MHD_HTTP_OK,
                                      "text/plain; version=0.0.4; "
                                      "charset=utf-8",
                                      body, len);
        }
        if (!strcmp(url, "/healthz")) {
                pthread_mutex_lock(&h->lock);
                int64_t age = enc_mono_ms() - h->last_beat_ms;
                pthread_mutex_unlock(&h->lock);
                char msg[128];
                snprintf(msg, sizeof(msg),
                         "%s: processing loop last ran %lld "
                         "ms ago\n",
                         age <= ENC_HEALTH_STALE_MS ? "ok" : "stalled",
                         (long long)age);
                return enc_http_text(c,
                                     age <= ENC_HEALTH_STALE_MS
                                             ? MHD_HTTP_OK
                                             : MHD_HTTP_SERVICE_UNAVAILABLE,
                                     msg);
        }
        if (!strcmp(url, "/readyz")) {
                char msg[192];
                pthread_mutex_lock(&h->lock);
                bool ready = h->ready && enc_mono_ms() - h->last_beat_ms <=
                                                 ENC_HEALTH_STALE_MS;
                snprintf(msg, sizeof(msg), "%s%s%s\n",
                         ready ? "ready" : "not ready", ready ? "" : ": ",
                         ready ? "" : h->why);
                pthread_mutex_unlock(&h->lock);
                return enc_http_text(
                        c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                        msg);
        }
        return enc_http_text(c, MHD_HTTP_NOT_FOUND,
                             "encore serves /metrics, /healthz, /readyz\n");
}

enc_http_t *enc_http_start(const char *address, char *errstr,
                           size_t errstr_size) {
        char host[128];
        const char *colon = strrchr(address, ':');
        if (!colon || colon == address ||
            (size_t)(colon - address) >= sizeof(host)) {
                enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                           "metrics.address: \"%s\" is not host:port", address);
                return NULL;
        }
        memcpy(host, address, (size_t)(colon - address));
        host[colon - address] = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 0 || port > 65535) {
                enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                           "metrics.address: \"%s\": port must be 0..65535",
                           address);
                return NULL;
        }
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        if (!strcmp(host, "localhost"))
                snprintf(host, sizeof(host), "127.0.0.1");
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
                enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                           "metrics.address: \"%s\": host must be an IPv4 "
                           "address such as 127.0.0.1 or 0.0.0.0",
                           address);
                return NULL;
        }
        enc_http_t *h = calloc(1, sizeof(*h));
        if (!h) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
                return NULL;
        }
        pthread_mutex_init(&h->lock, NULL);
        h->last_beat_ms = enc_mono_ms();
        snprintf(h->why, sizeof(h->why), "starting");
        h->d = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                (uint16_t)port, NULL, NULL, enc_http_handler, h,
                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT, 64,
                MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
        if (!h->d) {
                enc_seterr(errstr, errstr_size, ENC_ERR_IO,
                           "metrics.address: cannot listen on %s (in use, or "
                           "not an address of this host)",
                           address);
                pthread_mutex_destroy(&h->lock);
                free(h);
                return NULL;
        }
        const union MHD_DaemonInfo *info =
                MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
        h->port = info ? info->port : (int)port;
        return h;
}

void enc_http_stop(enc_http_t *h) {
        if (!h)
                return;
        MHD_stop_daemon(h->d);
        pthread_mutex_destroy(&h->lock);
        free(h->text);
        free(h);
}

int enc_http_port(const enc_http_t *h) {
        return h->port;
}

void enc_http_publish(enc_http_t *h, const void *text, size_t len) {
        char *copy = malloc(len + 1);
        if (!copy)
                return; /* keep serving the previous text */
        memcpy(copy, text, len);
        copy[len] = '\0';
        pthread_mutex_lock(&h->lock);
        char *old = h->text;
        h->text = copy;
        h->len = len;
        pthread_mutex_unlock(&h->lock);
        free(old);
}

void enc_http_beat(enc_http_t *h, bool ready, const char *why_not_ready) {
        pthread_mutex_lock(&h->lock);
        h->last_beat_ms = enc_mono_ms();
        h->ready = ready;
        if (!ready && why_not_ready)
                snprintf(h->why, sizeof(h->why), "%s", why_not_ready);
        pthread_mutex_unlock(&h->lock);
}
