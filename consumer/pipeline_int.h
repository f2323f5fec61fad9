/*
 * pipeline_int.h -- the pipeline's internals, shared by pipeline.c (the
 * loop) and observe.c (metrics rendering). Not for other modules: they use
 * pipeline.h. (librdkafka's rdkafka_int.h pattern.)
 */
#ifndef ENC_PIPELINE_INT_H
#define ENC_PIPELINE_INT_H

#include <librdkafka/rdkafka.h>

#include "metrics.h"
#include "pipeline.h"
#include "store.h"

/* Reward updates counted by (signal, version, cohort); cohorts past the cap
 * are counted under cohort "_other" so a bad input cannot blow up the
 * number of series. */
#define ENC_UPD_SERIES_MAX 512
typedef struct enc_upd_count_s {
        char signal[ENC_SIGNAL_NAME_MAX];
        int32_t version;
        char cohort[ENC_LABEL_MAX + 1];
        uint64_t n;
} enc_upd_count_t;

struct enc_pipeline_s {
        const enc_conf_t *conf;
        enc_store_t *store;
        enc_engine_t *engine;
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
        int at_eof_cnt;
        /* observability (processing thread only; published as text) */
        enc_http_t *http;
        int64_t cur_record_ts; /* broker timestamp of the record in hand */
        enc_hist_t latency;    /* record timestamp -> output produced */
        enc_hist_t commit_dur;
        enc_upd_count_t *upd; /* updates by (signal, version, cohort) */
        int nupd, capupd;
        int64_t *lag; /* consumer lag by partition, from librdkafka stats */
        int nlag;
        enc_buf_t metrics_buf;
};

#endif /* ENC_PIPELINE_INT_H */
