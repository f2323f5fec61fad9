/*
 * metrics.h -- Prometheus text exposition and the HTTP endpoints
 * (/metrics, /healthz, /readyz) on libmicrohttpd.
 *
 * The processing thread renders the whole exposition into a buffer about
 * once a second and publishes it; the HTTP thread only ever copies the last
 * published text. So a scrape never waits for the loop and the loop never
 * waits for a scrape longer than a pointer swap under a mutex.
 */
#ifndef ENC_METRICS_H
#define ENC_METRICS_H

#include "enc.h"

/* ---- exposition writer ---------------------------------------------- */

/** Writes "# HELP" and "# TYPE" lines of a metric family into @p b. */
void enc_prom_family(enc_buf_t *b, const char *name, const char *type,
                     const char *help);

/**
 * Writes one sample: name{labels} value. @p labels is NULL or a
 * NULL-terminated list of name, value, name, value...; values are escaped.
 */
void enc_prom_sample(enc_buf_t *b, const char *name, const char *const *labels,
                     double value);

/* A fixed-bucket histogram (Prometheus cumulative buckets at render). */
#define ENC_HIST_MAX_BUCKETS 16
typedef struct enc_hist_s {
        double bounds[ENC_HIST_MAX_BUCKETS];
        uint64_t counts[ENC_HIST_MAX_BUCKETS + 1]; /* last: +Inf */
        int n;
        double sum;
        uint64_t count;
} enc_hist_t;

void enc_hist_init(enc_hist_t *h, const double *bounds, int n);
void enc_hist_observe(enc_hist_t *h, double v);
/** Writes the family (HELP/TYPE) and its _bucket, _sum, _count samples. */
void enc_prom_hist(enc_buf_t *b, const char *name, const char *help,
                   const enc_hist_t *h);

/**
 * Writes the standard process families (process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_start_time_seconds, process_open_fds, process_max_fds) from
 * /proc/self, as Prometheus client libraries do. Families it cannot read
 * (not Linux, /proc not mounted) are left out. Any thread; reads /proc
 * only, takes no lock.
 */
void enc_prom_process(enc_buf_t *b);

/* ---- HTTP ----------------------------------------------------------- */

typedef struct enc_http_s enc_http_t;

/**
 * Starts serving on @p address ("host:port"; port 0 picks a free one).
 * Returns NULL and fills errstr if the address is malformed or taken.
 * Stop with enc_http_stop().
 */
enc_http_t *enc_http_start(const char *address, char *errstr,
                           size_t errstr_size);
void enc_http_stop(enc_http_t *h);

/** The port actually bound. */
int enc_http_port(const enc_http_t *h);

/** Replaces the text served at /metrics (copied). Processing thread. */
void enc_http_publish(enc_http_t *h, const void *text, size_t len);

/**
 * Tells the server the loop is alive (for /healthz: 503 after
 * @p stale_ms without a beat) and whether it is ready (for /readyz:
 * partitions assigned, state restored, consuming). Cheap; call every loop.
 */
void enc_http_beat(enc_http_t *h, bool ready, const char *why_not_ready);

#endif /* ENC_METRICS_H */
