/*
 * pipeline_int.h -- the pipeline's internals, shared by pipeline.c (the
 * loop) and observe.c (metrics rendering). Not for other modules: they use
 * pipeline.h. (librdkafka's rdkafka_int.h pattern.)
 */
#ifndef ENC_PIPELINE_INT_H
#define ENC_PIPELINE_INT_H

#include <librdkafka/rdkafka.h>

#include "changelog.h"
#include "metrics.h"
#include "pipeline.h"
#include "restore.h"
#include "rewardstats.h"
#include "schema_registry.h"
#include "store.h"

/* Delivery-report tags (message opaque): what a delivered message was. */
#define ENC_TAG_OUTPUT ((intptr_t)0)
#define ENC_TAG_DLQ ((intptr_t)1)
/* ENC_TAG_CHANGELOG and ENC_TAG_META_BASE: changelog.h */

struct enc_pipeline_s {
        const enc_conf_t *conf;
        enc_store_t *store;
        enc_engine_t *engine;
        enc_schema_registry_t *schemas; /* NULL: no dir, no registry */
        rd_kafka_t *consumer;
        rd_kafka_t *producer;
        rd_kafka_topic_partition_list_t *owned; /* assigned partitions */
        const char *out_topic;
        const char *dlq_topic;
        int64_t commit_interval_ms;
        int64_t flush_timeout_ms;
        enc_pipeline_stats_t stats;
        bool fatal;
        char fatal_msg[512];
        int64_t last_record_ms;
        bool *at_eof; /* by partition: consumed up to the end */
        int64_t *eof_offset; /* by partition: the end offset it reported */
        int64_t *next_offset; /* by partition: after the last record polled
                                 since encore last positioned it, or -1 */
        int64_t *rewound; /* by partition: the offset a stray record sent
                             it back to (consumer/stray.c) since encore
                             last positioned it, or -1 */
        int at_eof_cnt;
        /* the prefetch refill (enc_pipeline_refill in pipeline.c) */
        rd_kafka_queue_t *cq;    /* the consumer queue, for its length */
        long long pf_msgs;       /* queued.min.messages in effect */
        long long pf_bytes;      /* queued.max.messages.kbytes, in bytes */
        double pf_avg_len;       /* running mean of a record's payload */
        bool pf_full;            /* the queue was seen near a bound: the
                                    fetchers may have stopped */
        uint64_t pf_polls;       /* records polled, for sampling */
        /* observability (processing thread only; published as text) */
        enc_http_t *http;
        int64_t cur_record_ts; /* broker timestamp of the record in hand */
        enc_hist_t latency;    /* record timestamp -> output produced */
        enc_hist_t commit_dur;
        /* updates and final values by (signal, version, cohort), cohorts
         * bounded by metrics.cohorts.max (rewardstats.c) */
        enc_rstats_t *rstats;
        int64_t *lag; /* consumer lag by partition, from librdkafka stats */
        int nlag;
        enc_buf_t metrics_buf;
        enc_changelog_t *cl; /* the changelog (disabled in bounded runs) */
        /* bounded runs (replay) */
        bool bounded;
        enc_range_t *ranges; /* [nranges]: next offset kept in start */
        int nranges;
        int ranges_left;     /* partitions not yet at their end */
        int64_t range_total;
        /* exactly-once */
        bool eos;            /* processing.guarantee=exactly_once */
        bool cooperative;    /* incremental rebalancing (from the
                                configured assignment strategy) */
        bool txn_abortable;  /* a produce failed inside the transaction */
        /* rd_kafka_consumer_close() is under way: the drain has committed
         * (or a fatal error forbids committing), so the revocation that
         * closing serves releases partitions without committing again.
         * librdkafka has no group metadata for a leaving member. */
        bool closing;
        uint64_t txn_aborts; /* transactions aborted and rewound */
        /* the group (see enc_pipeline_group_busy in pipeline.c) */
        bool rejoining;          /* revoked in a cooperative rebalance: the
                                    rejoin that follows is under way until
                                    the next assignment */
        bool join_unsteady;      /* librdkafka statistics: cgrp join_state
                                    is not "steady" */
        bool commit_refused;     /* a group commit met a rebalance; until
                                    the next rebalance callback */
        int commits_in_flight;   /* asynchronous group commits unanswered */
        int64_t busy_since_ms;   /* monotonic: first commit held back, 0 */
        uint64_t assignments_lost;  /* revocations librdkafka called lost */
        uint64_t commits_deferred;  /* periodic commits held back */
};

/** Records the first fatal error; the loop stops without committing. */
void enc_pipeline_set_fatal(enc_pipeline_t *pl, const char *fmt, ...)
        ENC_PRINTF(2, 3);

/** A librdkafka configuration for one of encore's clients: @p defaults
 * (key, value pairs, NULL-ended), then the user's kafka.* keys and the
 * kafka.<scope>.* ones (@p scope "consumer" or "producer"), then @p forced,
 * which a user value may not contradict. NULL with @p errstr naming the
 * key on a bad value. The caller owns the result (rd_kafka_new takes it). */
rd_kafka_conf_t *enc_kconf_new(const enc_conf_t *conf, const char *scope,
                               const char *const *defaults,
                               const char *const *forced, char *errstr,
                               size_t errstr_size);

/* What one record in librdkafka's prefetch queue takes, about: its
 * payload, the message op (about 100 bytes, heaptrack) and its share of
 * the fetch buffer it was read into. `encore-bench mem --users 2000000`
 * peaked 29 MiB lower with the queue bounded at 20 000 records than at
 * librdkafka's 100 000: about 380 bytes a record of a 100-byte play. */
#define ENC_PREFETCH_RECORD_BYTES 384

/* The smallest per-partition fetch encore asks for by default. */
#define ENC_PREFETCH_PART_MIN 65536

/** librdkafka's bounds on the input consumer's prefetch queue for a
 * prefetch bound of @p bytes of cache.max.bytes (state/budget.c):
 * *kbytes for queued.max.messages.kbytes (which counts payloads only:
 * half the bound), *records for queued.min.messages (the bound over
 * ENC_PREFETCH_RECORD_BYTES), each at least 1 and at most librdkafka's
 * maximum (2097151 KiB, 10 000 000), and *partition_bytes for
 * max.partition.fetch.bytes (1/32 of the bound, at least
 * ENC_PREFETCH_PART_MIN, at most ENC_FETCH_MAX_BYTES). Pure; any thread. */
void enc_pipeline_prefetch_bounds(size_t bytes, long long *kbytes,
                                  long long *records,
                                  long long *partition_bytes);

/** The input consumer's librdkafka configuration: encore's defaults
 * (among them the prefetch bounds of enc_pipeline_prefetch_bounds for
 * cache.max.bytes' prefetch share), the user's kafka.* and
 * kafka.consumer.* keys over them, then the settings encore needs. NULL
 * with @p errstr naming the key on a bad value; the caller owns the
 * result (rd_kafka_new takes it). Any thread. */
rd_kafka_conf_t *enc_pipeline_consumer_conf(const enc_conf_t *conf,
                                            char *errstr,
                                            size_t errstr_size);

/* The largest fetch the consumer asks for (consumer/pipeline.c). */
#define ENC_FETCH_MAX_BYTES 1048576
/* A commit's changelog records held while its outputs are confirmed (the
 * producer queue's own bound, ENC_PRODUCE_QUEUE_KB) */
#define ENC_CHANGELOG_HOLD_BYTES (4u << 20)

#endif /* ENC_PIPELINE_INT_H */
