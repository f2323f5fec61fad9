/*
 * tail.c -- read a topic to its end with an assign()-only consumer.
 *
 * DESIGN
 * No consumer group: the reader asks for the topic's partitions, reads each
 * partition's end offset once, assigns all partitions from the earliest
 * offset and stops when every partition's position has reached the end it
 * had at the start. It never commits and never joins a group, so it cannot
 * disturb the encore group it is watching.
 *
 * The reader is read_committed (librdkafka's default), so the end is the
 * last stable offset, and the last offset before it is, on a topic written
 * in transactions, a commit marker no consumer receives: "reached the end"
 * is the position (from partition EOF, a record, or rd_kafka_position()
 * when idle) reaching the end offset, never the record at end - 1
 * arriving (consumer/readend.c).
 */
#include "tail.h"

#include "readend.h"

#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t enc_tail_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enc_err_t enc_tail_read(const char *bootstrap, const char *topic,
                        int timeout_ms, enc_tail_cb_t cb, void *opaque,
                        uint64_t *count, char *errstr, size_t errstr_size) {
        return enc_tail_read_range(bootstrap, topic, NULL, 0, timeout_ms, cb,
                                   opaque, count, errstr, errstr_size);
}

/* The range of partition @p p in @p ranges, or NULL. */
static const enc_tail_range_t *enc_tail_range_of(const enc_tail_range_t *r,
                                                 int n, int32_t p) {
        for (int i = 0; i < n; i++)
                if (r[i].partition == p)
                        return &r[i];
        return NULL;
}

enc_err_t enc_tail_read_range(const char *bootstrap, const char *topic,
                              const enc_tail_range_t *ranges, int nranges,
                              int timeout_ms, enc_tail_cb_t cb, void *opaque,
                              uint64_t *count, char *errstr,
                              size_t errstr_size) {
        char rerr[256];
        enc_err_t err = ENC_OK;
        enc_readend_t *ends = NULL;
        rd_kafka_topic_partition_list_t *parts = NULL;
        const struct rd_kafka_metadata *md = NULL;
        *count = 0;

        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        if (rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, rerr,
                              sizeof(rerr)) ||
            rd_kafka_conf_set(kc, "group.id", "encore-tail", rerr,
                              sizeof(rerr)) ||
            rd_kafka_conf_set(kc, "enable.auto.commit", "false", rerr,
                              sizeof(rerr)) ||
            rd_kafka_conf_set(kc, "enable.partition.eof", "true", rerr,
                              sizeof(rerr)) ||
            rd_kafka_conf_set(kc, "log_level", "3", rerr, sizeof(rerr))) {
                rd_kafka_conf_destroy(kc);
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG, "%s",
                                  rerr);
        }
        rd_kafka_t *rk =
                rd_kafka_new(RD_KAFKA_CONSUMER, kc, rerr, sizeof(rerr));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA, "%s",
                                  rerr);
        }
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t kerr =
                rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        rd_kafka_topic_destroy(rkt);
        if (kerr || md->topic_cnt != 1 || md->topics[0].err) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                 "metadata for %s: %s", topic,
                                 rd_kafka_err2str(kerr ? kerr
                                                       : md->topics[0].err));
                goto done;
        }
        int pcnt = md->topics[0].partition_cnt;
        ends = calloc((size_t)pcnt + 1, sizeof(*ends));
        parts = rd_kafka_topic_partition_list_new(pcnt);
        if (!ends || !parts) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
                goto done;
        }
        int remaining = 0;
        for (int i = 0; i < pcnt; i++) {
                int32_t p = md->topics[0].partitions[i].id;
                int64_t lo, h;
                kerr = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &h,
                                                        timeout_ms);
                if (kerr) {
                        err = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                         "watermarks of %s [%d]: %s", topic,
                                         p, rd_kafka_err2str(kerr));
                        goto done;
                }
                int64_t start = RD_KAFKA_OFFSET_BEGINNING, from = lo;
                if (ranges) {
                        /* A partition the ranges leave out is not read. */
                        const enc_tail_range_t *r =
                                enc_tail_range_of(ranges, nranges, p);
                        if (!r)
                                continue;
                        start = from = r->start < lo ? lo : r->start;
                        if (r->end < h)
                                h = r->end;
                }
                if (p >= 0 && p < pcnt) {
                        enc_readend_init(&ends[p], from, h);
                        remaining += !ends[p].done;
                }
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                        start;
        }
        rd_kafka_assign(rk, parts);
        int64_t deadline = enc_tail_now_ms() + timeout_ms;
        while (remaining > 0) {
                if (enc_tail_now_ms() > deadline) {
                        err = enc_seterr(errstr, errstr_size,
                                         ENC_ERR_TIMED_OUT,
                                         "reading %s: %d partitions not at "
                                         "their end after %d ms",
                                         topic, remaining, timeout_ms);
                        break;
                }
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m) {
                        /* Idle: the position may have passed the end over
                         * markers without an EOF (or before it comes). */
                        rd_kafka_topic_partition_list_t *pos =
                                rd_kafka_topic_partition_list_copy(parts);
                        if (!rd_kafka_position(rk, pos))
                                for (int i = 0; i < pos->cnt; i++) {
                                        int32_t p = pos->elems[i].partition;
                                        if (p < 0 || p >= pcnt ||
                                            ends[p].done)
                                                continue;
                                        enc_readend_position(
                                                &ends[p],
                                                pos->elems[i].offset);
                                        remaining -= ends[p].done;
                                }
                        rd_kafka_topic_partition_list_destroy(pos);
                        continue;
                }
                int32_t p = m->partition;
                if (p < 0 || p >= pcnt || ends[p].done ||
                    (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                int stop = 0;
                if (m->err) {
                        enc_readend_eof(&ends[p], m->offset);
                } else if (enc_readend_record(&ends[p], m->offset)) {
                        stop = cb(opaque, m);
                        (*count)++;
                }
                remaining -= ends[p].done;
                rd_kafka_message_destroy(m);
                if (stop)
                        break;
        }
done:
        if (md)
                rd_kafka_metadata_destroy(md);
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        free(ends);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return err;
}
