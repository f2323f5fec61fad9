/*
 * broker.h -- what the broker benchmarks (b2, b3, mem) share: the embedded
 * cluster, a flow-controlled feeder, a watcher of an output topic, and
 * encore as a child process.
 *
 * The mock cluster keeps only about 5 MiB of log per partition and drops
 * the oldest batches beyond that. So input is never produced ahead of
 * time: the feeder produces while encore consumes and stays at most
 * `lead` records ahead of what the consumer side reports, which keeps
 * every partition well under the limit. Runs check afterwards that every
 * record produced was consumed.
 */
#ifndef ENC_BENCH_BROKER_H
#define ENC_BENCH_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "bench.h"
#include "embedded.h"

/** Starts a 3-broker embedded cluster and creates @p topics (NULL-ended,
 *  each with its partition count in @p parts). NULL on failure. */
enc_embedded_t *enc_bench_cluster(const char *const *topics, const int *parts);

/* ---- the feeder ------------------------------------------------------- */

/* Reports how many input records the consumer side has taken so far.
 * Called from the feeder thread. */
typedef uint64_t (*enc_bench_progress_t)(void *opaque);

typedef struct enc_bench_feeder_s {
        /* set before enc_bench_feeder_start */
        const char *bootstrap;
        const char *topic;
        int partitions;
        const enc_bench_log_t *log; /* records to produce, in order, or: */
        uint64_t synth_users;       /* synthetic: the population, */
        bool synth_seed;            /* seeded first (one play each), */
        uint64_t synth_live;        /* then this many live plays */
        int64_t synth_t0;           /* event time of the first play */
        int64_t synth_step_ms;      /* event time between plays */
        uint64_t lead;              /* max records ahead of progress */
        enc_bench_progress_t progress;
        void *progress_opaque;
        /* read by other threads */
        atomic_uint_fast64_t produced;
        atomic_int done; /* every record handed over and delivered */
        atomic_int stop; /* set to end a synthetic run early */
        atomic_int failed;
        /* private */
        pthread_t thr;
} enc_bench_feeder_t;

/** Starts producing on a thread of its own. */
int enc_bench_feeder_start(enc_bench_feeder_t *f);
/** Waits for the feeder thread to finish (set f->stop to end early). */
void enc_bench_feeder_join(enc_bench_feeder_t *f);
/** The total number of records the feeder will produce. */
uint64_t enc_bench_feeder_total(const enc_bench_feeder_t *f);

/* ---- group progress --------------------------------------------------- */

/* The committed offsets of a consumer group, summed over a topic's
 * partitions: the progress of an encore in another process. */
typedef struct enc_bench_group_s enc_bench_group_t;
enc_bench_group_t *enc_bench_group_new(const char *bootstrap, const char *group,
                                       const char *topic, int partitions);
void enc_bench_group_destroy(enc_bench_group_t *g);
/** Sum of committed offsets (0 where none); an enc_bench_progress_t.
 *  Polls the coordinator at most every 200 ms. Any one thread. */
uint64_t enc_bench_group_committed(void *g);

/* ---- watching an output topic ---------------------------------------- */

/* Follows every partition of a topic from its end and remembers the first
 * message whose timestamp (producer CreateTime, wall clock ms) is at or
 * after a mark: the first output of a process started after that mark. */
typedef struct enc_bench_watch_s enc_bench_watch_t;
enc_bench_watch_t *enc_bench_watch_new(const char *bootstrap, const char *topic,
                                       int partitions);
void enc_bench_watch_destroy(enc_bench_watch_t *w);
/** Forgets any earlier hit and looks for a timestamp >= @p wall_ms. */
void enc_bench_watch_mark(enc_bench_watch_t *w, int64_t wall_ms);
/** The timestamp of the first message at or after the mark, or -1 if
 *  none arrived within @p timeout_s. */
int64_t enc_bench_watch_wait(enc_bench_watch_t *w, double timeout_s);
/** Messages seen in total. */
uint64_t enc_bench_watch_count(enc_bench_watch_t *w);

/* ---- encore as a child process ---------------------------------------- */

/**
 * Runs `<encore> run --set k=v ...` with stderr (its log) to @p log_path.
 * @p sets is NULL-terminated "key=value" strings. Returns the pid or -1.
 */
pid_t enc_bench_spawn_encore(const char *encore, const char *const *sets,
                             const char *log_path);
/** The path of the encore binary next to this one, unless @p given. */
const char *enc_bench_encore_path(const char *given, char *buf, size_t size);
/**
 * The wall time (ms since the epoch) of the first (or @p last) line of
 * @p log_path with event=@p event, or -1. encore logs
 * `ts=2026-01-05T10:00:00.123Z level=info event=NAME key=value ...`.
 */
int64_t enc_bench_log_event_ms(const char *log_path, const char *event,
                               bool last);
/** The number of lines of event @p event. */
int enc_bench_log_count(const char *log_path, const char *event);
/** The sum of numeric field @p field over the lines of event @p event. */
double enc_bench_log_sum(const char *log_path, const char *event,
                         const char *field);
/** The port of encore's /metrics from its log (metrics_listen), or -1. */
int enc_bench_log_metrics_port(const char *log_path);
/** The sum of the samples of metric @p name (over its label sets) from
 *  http://127.0.0.1:port/metrics, or -1 if absent or unreachable. */
double enc_bench_scrape(int port, const char *name);

#endif /* ENC_BENCH_BROKER_H */
