/*
 * pipeline.h -- the encore process: Kafka in, engine, Kafka out.
 *
 * A KafkaConsumer in a consumer group (cooperative-sticky, manual offsets)
 * feeds the engine; an idempotent producer writes reward updates and dead
 * letters. Commits go: flush the producer (every output delivered), write
 * state and positions to RocksDB in one batch, then commit the group offsets.
 */
#ifndef ENC_PIPELINE_H
#define ENC_PIPELINE_H

#include <signal.h>

#include "config.h"
#include "enc.h"
#include "engine.h"

typedef struct enc_pipeline_s enc_pipeline_t;
struct enc_pipeline_stats_s;

typedef struct enc_pipeline_opts_s {
        /* Stop once every assigned partition is at its end and nothing has
         * arrived for this long (ms); 0 = run until stopped. For the demo,
         * tests and batch runs. */
        int64_t exit_idle_ms;
        /* If set, the idle exit is armed only once *idle_armed is non-zero
         * (the demo arms it when its generator has finished). */
        volatile int *idle_armed;
        /* Set asynchronously (signal handler) to request a clean stop. */
        volatile sig_atomic_t *stop;
        /* Called from the loop about once a second (progress output). */
        void (*on_tick)(void *opaque, const struct enc_pipeline_stats_s *st);
        void *tick_opaque;
} enc_pipeline_opts_t;

/**
 * Builds the pipeline from @p conf (borrowed; must outlive it): opens the
 * state store, builds the engine, creates the Kafka handles and subscribes.
 * Returns NULL and fills errstr (naming the offending key where one is at
 * fault) on failure.
 */
enc_pipeline_t *enc_pipeline_new(const enc_conf_t *conf, char *errstr,
                                 size_t errstr_size);

/* One input partition's range for a bounded run: [start, end). */
typedef struct enc_range_s {
        int32_t partition;
        int64_t start;
        int64_t end;
} enc_range_t;

/**
 * A bounded run (replay, backfill): no consumer group and no changelog;
 * each partition of @p ranges (copied) is read from start to end, and the
 * run stops by itself when all are done. The state directory should be
 * fresh. Outputs are produced and checkpoints written as in a live run.
 */
enc_pipeline_t *enc_pipeline_new_bounded(const enc_conf_t *conf,
                                         const enc_range_t *ranges, int n,
                                         char *errstr, size_t errstr_size);

/** For a bounded run: records still to read, and the total. */
void enc_pipeline_progress(const enc_pipeline_t *pl, int64_t *left,
                           int64_t *total);

/**
 * Runs the processing loop on the calling thread until *opts->stop is set,
 * the idle exit fires, or a fatal error. On a stop it drains: flushes
 * outputs, checkpoints state, commits offsets and leaves the group.
 * Returns ENC_OK on a clean stop.
 */
enc_err_t enc_pipeline_run(enc_pipeline_t *pl, const enc_pipeline_opts_t *opts,
                           char *errstr, size_t errstr_size) ENC_WUR;

void enc_pipeline_destroy(enc_pipeline_t *pl);

/** Engine counters plus the pipeline's own; safe from the processing
 *  thread only (the HTTP thread reads a published copy). */
typedef struct enc_pipeline_stats_s {
        enc_engine_stats_t engine;
        uint64_t produced;         /* updates delivered */
        uint64_t dlq_produced;     /* dead letters delivered */
        uint64_t delivery_errors;
        uint64_t commits;
        uint64_t rebalances;
        uint64_t assignments_lost;  /* revocations of a lost assignment */
        uint64_t commits_deferred;  /* periodic commits held back by a
                                       rebalance in progress */
        int assigned_partitions;
        /* restores from the changelog, since start */
        uint64_t restores;
        uint64_t restore_records; /* changelog records read */
        uint64_t restore_users;   /* user records made durable */
        int64_t restore_first_ms; /* monotonic ms of the first start, 0 */
        int64_t restore_last_ms;  /* monotonic ms of the last finish, 0 */
        /* wall seconds the processing thread spent blocked, by where */
        double wait_poll_s;   /* in rd_kafka_consumer_poll (waiting for
                                 a record when none is prefetched) */
        double wait_flush_s;  /* commit: waiting for output and changelog
                                 deliveries (producer flushes) */
        double wait_queue_s;  /* a produce waiting for room in the full
                                 producer queue */
        double checkpoint_s;  /* commit: staging and writing the state
                                 checkpoint (RocksDB) */
        uint64_t prefetch_refills; /* seeks that woke librdkafka's fetchers
                                      after the prefetch queue ran empty
                                      (consumer/pipeline.c) */
        /* records of partitions the engine did not hold, not applied
         * (consumer/stray.c) */
        uint64_t stray_dropped;   /* not this process's partition */
        uint64_t stray_refetched; /* held for a restore: sought back to be
                                     fetched again */
} enc_pipeline_stats_t;

void enc_pipeline_stats(enc_pipeline_t *pl, enc_pipeline_stats_t *stats);

/** Renders every metric in the Prometheus text format into @p b (reset
 *  first). Processing thread; the HTTP thread serves a published copy. */
void enc_pipeline_metrics_text(enc_pipeline_t *pl, enc_buf_t *b);

/** The port /metrics listens on, or -1 if metrics.address is empty. */
int enc_pipeline_metrics_port(const enc_pipeline_t *pl);

#endif /* ENC_PIPELINE_H */
