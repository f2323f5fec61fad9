/*
 * pipeline.c -- the processing loop: consume, process, produce, commit.
 *
 * DESIGN
 * One thread does everything that touches state, in this order per record:
 * poll a record, hand it to the engine, whose sink callbacks produce the
 * resulting updates and dead letters (copied into librdkafka's queue). A
 * commit happens every commit.interval.ms or when the engine asks
 * (commit.records reached, cache full of dirty state):
 *
 *   1. rd_kafka_flush(producer): every output so far is acknowledged;
 *      a failed delivery stops the process before anything is committed;
 *   2. enc_engine_checkpoint: state and positions, one RocksDB batch;
 *   3. commit the group offsets (the engine's resume positions).
 *
 * A crash anywhere leaves the store at the last checkpoint and the outputs
 * a superset of it; the rerun reproduces the missing outputs identically
 * (same update ids), so consumers see at-least-once delivery with identical
 * repeats. The RocksDB position, not the group offset, decides where a
 * partition resumes, so state and position can never disagree.
 *
 * Rebalances are cooperative (incremental): on revoke, only the revoked
 * partitions are checkpointed and released, which takes one flush and one
 * batch write regardless of state size (the state stays on disk), so a
 * rebalance never has to wait for state to be copied anywhere.
 *
 * The wall clock is used only to pace commits and idle exit; which outputs
 * are produced never depends on it.
 */
#include "pipeline.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "metrics.h"
#include "plugin.h"

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

static void enc_pipeline_mark_eof(enc_pipeline_t *pl, int32_t partition,
                                  bool eof) {
        if (partition < 0)
                return;
        if (partition >= pl->at_eof_cnt) {
                int n = partition + 64;
                bool *nv = realloc(pl->at_eof, (size_t)n * sizeof(*nv));
                if (!nv)
                        return;
                memset(nv + pl->at_eof_cnt, 0,
                       (size_t)(n - pl->at_eof_cnt) * sizeof(*nv));
                pl->at_eof = nv;
                pl->at_eof_cnt = n;
        }
        pl->at_eof[partition] = eof;
}

/* True if every owned partition has been read to its end. */
static bool enc_pipeline_all_eof(const enc_pipeline_t *pl) {
        if (pl->owned->cnt == 0)
                return false;
        for (int i = 0; i < pl->owned->cnt; i++) {
                int32_t p = pl->owned->elems[i].partition;
                if (p >= pl->at_eof_cnt || !pl->at_eof[p])
                        return false;
        }
        return true;
}

static int64_t enc_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void enc_pipeline_set_fatal(enc_pipeline_t *pl, const char *fmt, ...)
        ENC_PRINTF(2, 3);
static void enc_pipeline_set_fatal(enc_pipeline_t *pl, const char *fmt, ...) {
        if (pl->fatal)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pl->fatal_msg, sizeof(pl->fatal_msg), fmt, ap);
        va_end(ap);
        pl->fatal = true;
}

/* ---- Kafka configuration -------------------------------------------- */

static void enc_rdk_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                           const char *buf) {
        enc_log_level_t l = level <= 3   ? ENC_LOG_ERROR
                            : level <= 5 ? ENC_LOG_WARN
                            : level == 6 ? ENC_LOG_INFO
                                         : ENC_LOG_DEBUG;
        if (enc_log_enabled(l))
                enc_log(l, "librdkafka", "client=%s facility=%s msg=\"%s\"",
                        rd_kafka_name(rk), fac, buf);
}

typedef struct enc_kconf_ctx_s {
        rd_kafka_conf_t *kc;
        const char *scope; /* "consumer" or "producer" */
        char *errstr;
        size_t errstr_size;
        enc_err_t err;
} enc_kconf_ctx_t;

/* kafka.X goes to both clients; kafka.consumer.X and kafka.producer.X only
 * to the one named (no librdkafka property starts with those words). */
static void enc_kconf_apply(const char *key, const char *value, void *opaque) {
        enc_kconf_ctx_t *c = opaque;
        char rerr[256];
        const char *prop = key + 6;
        if (c->err)
                return;
        if (!strncmp(prop, "consumer.", 9) || !strncmp(prop, "producer.", 9)) {
                if (strncmp(prop, c->scope, 8))
                        return;
                prop += 9;
        }
        if (rd_kafka_conf_set(c->kc, prop, value, rerr, sizeof(rerr)) !=
            RD_KAFKA_CONF_OK)
                c->err = enc_seterr(c->errstr, c->errstr_size, ENC_ERR_CONFIG,
                                    "%s: %s", key, rerr);
}

/* Sets a property encore needs; the user's kafka.* keys are applied after
 * and may override the defaults, but not the ones that carry guarantees. */
static enc_err_t enc_kconf_set(rd_kafka_conf_t *kc, const char *k,
                               const char *v, char *errstr,
                               size_t errstr_size) {
        char rerr[256];
        if (rd_kafka_conf_set(kc, k, v, rerr, sizeof(rerr)) !=
            RD_KAFKA_CONF_OK)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "kafka.%s: %s", k, rerr);
        return ENC_OK;
}

static rd_kafka_conf_t *enc_kconf_new(const enc_conf_t *conf,
                                      const char *scope,
                                      const char *const *defaults,
                                      const char *const *forced,
                                      char *errstr, size_t errstr_size) {
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(kc, enc_rdk_log_cb);
        for (int i = 0; defaults[i]; i += 2)
                if (enc_kconf_set(kc, defaults[i], defaults[i + 1], errstr,
                                  errstr_size))
                        goto fail;
        enc_kconf_ctx_t c = {kc, scope, errstr, errstr_size, ENC_OK};
        enc_conf_foreach(conf, "kafka.", enc_kconf_apply, &c);
        if (c.err)
                goto fail;
        for (int i = 0; forced[i]; i += 2) {
                char key[128];
                snprintf(key, sizeof(key), "kafka.%s.%s", scope, forced[i]);
                const char *user = enc_conf_get_raw(conf, key);
                if (!user) {
                        snprintf(key, sizeof(key), "kafka.%s", forced[i]);
                        user = enc_conf_get_raw(conf, key);
                }
                if (user && strcmp(user, forced[i + 1])) {
                        enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                   "%s: must be %s (encore manages offsets "
                                   "and delivery itself)",
                                   key, forced[i + 1]);
                        goto fail;
                }
                if (enc_kconf_set(kc, forced[i], forced[i + 1], errstr,
                                  errstr_size))
                        goto fail;
        }
        return kc;
fail:
        rd_kafka_conf_destroy(kc);
        return NULL;
}

/* ---- producing ------------------------------------------------------ */

static void enc_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque) {
        enc_pipeline_t *pl = opaque;
        bool dlq = m->_private != NULL;
        if (m->err) {
                pl->stats.delivery_errors++;
                enc_pipeline_set_fatal(pl,
                                       "delivery to %s failed: %s; stopping "
                                       "without committing so the outputs "
                                       "are produced again on restart",
                                       rd_kafka_topic_name(m->rkt),
                                       rd_kafka_err2str(m->err));
                return;
        }
        if (dlq)
                pl->stats.dlq_produced++;
        else
                pl->stats.produced++;
}

/* Produces one message, waiting for queue space rather than dropping. */
static enc_err_t enc_produce(enc_pipeline_t *pl, const char *topic,
                             const void *key, size_t klen, const void *val,
                             size_t vlen, rd_kafka_headers_t *hdrs,
                             void *tag) {
        for (;;) {
                rd_kafka_resp_err_t err;
                if (hdrs)
                        err = rd_kafka_producev(
                                pl->producer, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(key, klen),
                                RD_KAFKA_V_VALUE((void *)val, vlen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(hdrs),
                                RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
                else
                        err = rd_kafka_producev(
                                pl->producer, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(key, klen),
                                RD_KAFKA_V_VALUE((void *)val, vlen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
                if (!err)
                        return ENC_OK;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        if (hdrs)
                                rd_kafka_headers_destroy(hdrs);
                        enc_pipeline_set_fatal(pl, "produce to %s: %s", topic,
                                               rd_kafka_err2str(err));
                        return ENC_ERR_KAFKA;
                }
                rd_kafka_poll(pl->producer, 50);
        }
}

static int64_t enc_wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void enc_count_update(enc_pipeline_t *pl, const enc_update_t *up) {
        const char *cohort = up->cohort ? up->cohort : "";
        for (int i = 0; i < pl->nupd; i++) {
                enc_upd_count_t *c = &pl->upd[i];
                if (c->version == up->signal_version &&
                    !strcmp(c->signal, up->signal) &&
                    !strcmp(c->cohort, cohort)) {
                        c->n++;
                        return;
                }
        }
        if (pl->nupd >= ENC_UPD_SERIES_MAX)
                cohort = "_other";
        if (pl->nupd == pl->capupd) {
                int ncap = pl->capupd ? pl->capupd * 2 : 16;
                enc_upd_count_t *n =
                        realloc(pl->upd, (size_t)ncap * sizeof(*n));
                if (!n)
                        return;
                pl->upd = n;
                pl->capupd = ncap;
        }
        enc_upd_count_t *c = &pl->upd[pl->nupd++];
        snprintf(c->signal, sizeof(c->signal), "%s", up->signal);
        c->version = up->signal_version;
        snprintf(c->cohort, sizeof(c->cohort), "%s", cohort);
        c->n = 1;
}

static enc_err_t enc_sink_output(void *opaque, int32_t in_partition,
                                 const char *key, size_t key_len,
                                 const void *val, size_t val_len,
                                 const enc_update_t *up) {
        enc_pipeline_t *pl = opaque;
        enc_count_update(pl, up);
        if (pl->cur_record_ts > 0)
                enc_hist_observe(&pl->latency,
                                 (double)(enc_wall_ms() - pl->cur_record_ts) /
                                         1000.0);
        return enc_produce(pl, pl->out_topic, key, key_len, val, val_len, NULL,
                           NULL);
}

static enc_err_t enc_sink_dead_letter(void *opaque,
                                      const enc_dead_letter_t *dl) {
        enc_pipeline_t *pl = opaque;
        const enc_record_t *r = dl->rec;
        char part[16], off[24], ts[24];
        snprintf(part, sizeof(part), "%d", r->partition);
        snprintf(off, sizeof(off), "%lld", (long long)r->offset);
        snprintf(ts, sizeof(ts), "%lld", (long long)r->timestamp);
        rd_kafka_headers_t *h = rd_kafka_headers_new(6);
        rd_kafka_header_add(h, "encore.reason", -1,
                            enc_dlq_reason_name(dl->reason), -1);
        rd_kafka_header_add(h, "encore.detail", -1, dl->detail, -1);
        rd_kafka_header_add(h, "encore.source.topic", -1, r->topic, -1);
        rd_kafka_header_add(h, "encore.source.partition", -1, part, -1);
        rd_kafka_header_add(h, "encore.source.offset", -1, off, -1);
        rd_kafka_header_add(h, "encore.source.timestamp", -1, ts, -1);
        enc_log_debug("dead_letter",
                      "reason=%s partition=%d offset=%lld detail=\"%s\"",
                      enc_dlq_reason_name(dl->reason), r->partition,
                      (long long)r->offset, dl->detail);
        /* The tag marks DLQ messages in the delivery report. */
        return enc_produce(pl, pl->dlq_topic, r->key, r->key_len, r->value,
                           r->value_len, h, (void *)1);
}

/* ---- commits -------------------------------------------------------- */

static enc_err_t enc_pipeline_commit_steps(enc_pipeline_t *pl, bool sync,
                                           char *errstr, size_t errstr_size);

static enc_err_t enc_pipeline_commit(enc_pipeline_t *pl, bool sync,
                                     char *errstr, size_t errstr_size) {
        int64_t t0 = enc_now_ms();
        enc_err_t err =
                enc_pipeline_commit_steps(pl, sync, errstr, errstr_size);
        enc_hist_observe(&pl->commit_dur, (double)(enc_now_ms() - t0) / 1000.0);
        return err;
}

static enc_err_t enc_pipeline_commit_steps(enc_pipeline_t *pl, bool sync,
                                           char *errstr, size_t errstr_size) {
        /* 1. every output so far acknowledged */
        rd_kafka_resp_err_t ferr =
                rd_kafka_flush(pl->producer, (int)pl->flush_timeout_ms);
        if (ferr)
                return enc_seterr(errstr, errstr_size, ENC_ERR_TIMED_OUT,
                                  "producer flush: %d messages still "
                                  "undelivered after %lld ms; not committing",
                                  rd_kafka_outq_len(pl->producer),
                                  (long long)pl->flush_timeout_ms);
        if (pl->fatal)
                return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA, "%s",
                                  pl->fatal_msg);
        /* 2. state and positions, one batch */
        enc_err_t err = enc_engine_checkpoint(pl->engine, errstr, errstr_size);
        if (err)
                return err;
        /* 3. group offsets */
        rd_kafka_topic_partition_list_t *offs =
                rd_kafka_topic_partition_list_new(pl->owned->cnt);
        for (int i = 0; i < pl->owned->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &pl->owned->elems[i];
                int64_t o = enc_engine_commit_offset(pl->engine, tp->partition);
                if (o >= 0)
                        rd_kafka_topic_partition_list_add(offs, tp->topic,
                                                          tp->partition)
                                ->offset = o;
        }
        if (offs->cnt > 0) {
                rd_kafka_resp_err_t cerr =
                        rd_kafka_commit(pl->consumer, offs, sync ? 0 : 1);
                if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                        /* Not fatal: the store holds the position and a
                         * restart resumes from it. */
                        enc_log_warn("group_commit_failed", "error=\"%s\"",
                                     rd_kafka_err2str(cerr));
        }
        rd_kafka_topic_partition_list_destroy(offs);
        pl->stats.commits++;
        return ENC_OK;
}

/* ---- librdkafka statistics ----------------------------------------- */

/* Takes consumer lag per partition from librdkafka's statistics JSON. Runs
 * on the processing thread (inside rd_kafka_consumer_poll). */
static int enc_stats_cb(rd_kafka_t *rk, char *json, size_t len,
                        void *opaque) {
        enc_pipeline_t *pl = opaque;
        json_error_t jerr;
        json_t *root = json_loadb(json, len, 0, &jerr);
        if (!root)
                return 0;
        json_t *topic = json_object_get(json_object_get(root, "topics"),
                                        enc_conf_get(pl->conf, "input.topic"));
        json_t *parts = json_object_get(topic, "partitions");
        const char *k;
        json_t *v;
        json_object_foreach(parts, k, v) {
                long p = strtol(k, NULL, 10);
                json_t *lag = json_object_get(v, "consumer_lag");
                if (p < 0 || p > 1 << 16 || !json_is_integer(lag))
                        continue;
                if (p >= pl->nlag) {
                        int n = (int)p + 16;
                        int64_t *nl = realloc(pl->lag, (size_t)n * sizeof(*nl));
                        if (!nl)
                                continue;
                        for (int i = pl->nlag; i < n; i++)
                                nl[i] = -1;
                        pl->lag = nl;
                        pl->nlag = n;
                }
                pl->lag[p] = json_integer_value(lag);
        }
        json_decref(root);
        return 0; /* librdkafka frees json */
}

/* ---- rebalances ----------------------------------------------------- */

static void enc_owned_remove(enc_pipeline_t *pl, const char *topic,
                             int32_t partition) {
        rd_kafka_topic_partition_list_del(pl->owned, topic, partition);
}

static void enc_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *parts,
                             void *opaque) {
        enc_pipeline_t *pl = opaque;
        bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk),
                                   "COOPERATIVE");
        char errstr[512];
        pl->stats.rebalances++;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                for (int i = 0; i < parts->cnt; i++) {
                        rd_kafka_topic_partition_t *tp = &parts->elems[i];
                        int64_t resume = -1;
                        if (enc_engine_assign(pl->engine, tp->partition,
                                              &resume, errstr,
                                              sizeof(errstr))) {
                                enc_pipeline_set_fatal(
                                        pl, "assign %s [%d]: %s", tp->topic,
                                        tp->partition, errstr);
                                continue;
                        }
                        tp->offset = resume >= 0 ? resume
                                                 : RD_KAFKA_OFFSET_INVALID;
                        rd_kafka_topic_partition_list_add(
                                pl->owned, tp->topic, tp->partition);
                        enc_log_info("partition_assigned",
                                     "topic=%s partition=%d resume=%lld "
                                     "source=%s",
                                     tp->topic, tp->partition,
                                     (long long)resume,
                                     resume >= 0 ? "state_store"
                                                 : "group_offset");
                }
                for (int i = 0; i < parts->cnt; i++)
                        enc_pipeline_mark_eof(pl, parts->elems[i].partition,
                                              false);
                if (cooperative) {
                        rd_kafka_error_t *e =
                                rd_kafka_incremental_assign(rk, parts);
                        if (e) {
                                enc_pipeline_set_fatal(
                                        pl, "incremental assign: %s",
                                        rd_kafka_error_string(e));
                                rd_kafka_error_destroy(e);
                        }
                } else {
                        rd_kafka_assign(rk, pl->owned);
                }
                return;
        }

        /* Revoke (or lost): checkpoint what we did, then let go. */
        bool lost = rd_kafka_assignment_lost(rk);
        if (!lost && !pl->fatal &&
            enc_pipeline_commit(pl, true, errstr, sizeof(errstr)))
                enc_pipeline_set_fatal(pl, "commit on revoke: %s", errstr);
        for (int i = 0; i < parts->cnt; i++) {
                enc_engine_revoke(pl->engine, parts->elems[i].partition);
                enc_owned_remove(pl, parts->elems[i].topic,
                                 parts->elems[i].partition);
                enc_log_info("partition_revoked", "topic=%s partition=%d "
                             "lost=%s",
                             parts->elems[i].topic,
                             parts->elems[i].partition,
                             lost ? "true" : "false");
        }
        if (cooperative) {
                rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
                if (e)
                        rd_kafka_error_destroy(e);
        } else {
                rd_kafka_assign(rk, NULL);
        }
}

/* ---- construction --------------------------------------------------- */

enc_pipeline_t *enc_pipeline_new(const enc_conf_t *conf, char *errstr,
                                 size_t errstr_size) {
        enc_pipeline_t *pl = calloc(1, sizeof(*pl));
        rd_kafka_conf_t *kc = NULL;
        char rerr[512];
        if (!pl) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return NULL;
        }
        pl->conf = conf;
        pl->out_topic = enc_conf_get(conf, "output.topic");
        pl->dlq_topic = enc_conf_get(conf, "dlq.topic");
        pl->commit_interval_ms = enc_conf_get_int(conf, "commit.interval.ms");
        pl->flush_timeout_ms = 60000;
        pl->owned = rd_kafka_topic_partition_list_new(16);
        static const double lat_b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,    2.5,   5,    10,  30,
                                       60,    300,  3600};
        static const double com_b[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,  0.1,    0.25,  0.5,  1,
                                       2.5,   5,      10,    30};
        enc_hist_init(&pl->latency, lat_b, 15);
        enc_hist_init(&pl->commit_dur, com_b, 14);
        enc_buf_init(&pl->metrics_buf, 16 << 20);
        const char *maddr = enc_conf_get(conf, "metrics.address");
        if (*maddr) {
                pl->http = enc_http_start(maddr, errstr, errstr_size);
                if (!pl->http)
                        goto fail;
                enc_log_info("metrics_listen", "url=http://%.*s:%d/metrics",
                             (int)(strrchr(maddr, ':') - maddr), maddr,
                             enc_http_port(pl->http));
        }

        if (enc_signals_check_conf(conf, errstr, errstr_size))
                goto fail;

        enc_store_conf_t sc = {.sync = enc_conf_get_bool(conf, "state.sync")};
        pl->store = enc_store_open(enc_conf_get(conf, "state.dir"), &sc,
                                   errstr, errstr_size);
        if (!pl->store)
                goto fail;
        enc_engine_sink_t sink = {enc_sink_output, enc_sink_dead_letter, pl};
        pl->engine = enc_engine_new(conf, pl->store, &sink, errstr,
                                    errstr_size);
        if (!pl->engine)
                goto fail;

        /* Producer: idempotent, so retries never duplicate or reorder. */
        /* murmur2 like the Java client, so encore's outputs land on the
         * partitions a Java producer would pick for the same key. */
        static const char *const pdef[] = {"linger.ms", "5",
                                           "partitioner", "murmur2_random",
                                           "compression.type", "lz4",
                                           "client.id", "encore-producer",
                                           NULL};
        static const char *const pforce[] = {"enable.idempotence", "true",
                                             "acks", "all", NULL};
        kc = enc_kconf_new(conf, "producer", pdef, pforce, errstr,
                           errstr_size);
        if (!kc)
                goto fail;
        rd_kafka_conf_set_dr_msg_cb(kc, enc_dr_cb);
        rd_kafka_conf_set_opaque(kc, pl);
        pl->producer = rd_kafka_new(RD_KAFKA_PRODUCER, kc, rerr, sizeof(rerr));
        if (!pl->producer) {
                rd_kafka_conf_destroy(kc);
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "producer: %s", rerr);
                goto fail;
        }

        /* Consumer: group member, cooperative, offsets managed by encore. */
        const char *cdef[] = {"group.id",
                              enc_conf_get(conf, "group.id"),
                              "partition.assignment.strategy",
                              "cooperative-sticky",
                              "auto.offset.reset",
                              "earliest",
                              "enable.partition.eof",
                              "true",
                              "statistics.interval.ms",
                              "5000",
                              "client.id",
                              "encore-consumer",
                              NULL};
        static const char *const cforce[] = {"enable.auto.commit", "false",
                                             "enable.auto.offset.store",
                                             "false", NULL};
        kc = enc_kconf_new(conf, "consumer", cdef, cforce, errstr,
                           errstr_size);
        if (!kc)
                goto fail;
        rd_kafka_conf_set_rebalance_cb(kc, enc_rebalance_cb);
        rd_kafka_conf_set_stats_cb(kc, enc_stats_cb);
        rd_kafka_conf_set_opaque(kc, pl);
        pl->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, kc, rerr, sizeof(rerr));
        if (!pl->consumer) {
                rd_kafka_conf_destroy(kc);
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "consumer: %s", rerr);
                goto fail;
        }
        rd_kafka_poll_set_consumer(pl->consumer);
        rd_kafka_topic_partition_list_t *sub =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, enc_conf_get(conf,
                                                            "input.topic"),
                                          RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t serr = rd_kafka_subscribe(pl->consumer, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (serr) {
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "subscribe to %s: %s",
                           enc_conf_get(conf, "input.topic"),
                           rd_kafka_err2str(serr));
                goto fail;
        }
        return pl;
fail:
        enc_pipeline_destroy(pl);
        return NULL;
}

void enc_pipeline_destroy(enc_pipeline_t *pl) {
        if (!pl)
                return;
        if (pl->consumer)
                rd_kafka_destroy(pl->consumer);
        if (pl->producer) {
                rd_kafka_flush(pl->producer, 5000);
                rd_kafka_destroy(pl->producer);
        }
        enc_engine_destroy(pl->engine);
        enc_store_close(pl->store);
        if (pl->owned)
                rd_kafka_topic_partition_list_destroy(pl->owned);
        enc_http_stop(pl->http);
        free(pl->at_eof);
        free(pl->upd);
        free(pl->lag);
        enc_buf_free(&pl->metrics_buf);
        free(pl);
}

/* ---- the loop ------------------------------------------------------- */

static void enc_pipeline_handle_msg(enc_pipeline_t *pl,
                                    rd_kafka_message_t *m) {
        char errstr[512];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                enc_pipeline_mark_eof(pl, m->partition, true);
                return;
        }
        if (m->err) {
                if (rd_kafka_fatal_error(pl->consumer, errstr,
                                         sizeof(errstr)))
                        enc_pipeline_set_fatal(pl, "consumer: %s", errstr);
                else
                        enc_log_warn("consumer_error", "error=\"%s\"",
                                     rd_kafka_message_errstr(m));
                return;
        }
        pl->last_record_ms = enc_now_ms();
        enc_pipeline_mark_eof(pl, m->partition, false);
        enc_record_t rec = {
                .topic = rd_kafka_topic_name(m->rkt),
                .partition = m->partition,
                .offset = m->offset,
                .timestamp = rd_kafka_message_timestamp(m, NULL),
                .key = m->key,
                .key_len = m->key_len,
                .value = m->payload,
                .value_len = m->len,
        };
        pl->cur_record_ts = rec.timestamp;
        if (enc_engine_record(pl->engine, &rec, errstr, sizeof(errstr)))
                enc_pipeline_set_fatal(pl, "partition %d offset %lld: %s",
                                       m->partition, (long long)m->offset,
                                       errstr);
}

enc_err_t enc_pipeline_run(enc_pipeline_t *pl, const enc_pipeline_opts_t *opts,
                           char *errstr, size_t errstr_size) {
        int64_t last_commit = enc_now_ms();
        int64_t last_tick = last_commit;
        pl->last_record_ms = enc_now_ms();
        enc_err_t err = ENC_OK;
        enc_log_info("pipeline_start", "input=%s output=%s dlq=%s state=%s",
                     enc_conf_get(pl->conf, "input.topic"), pl->out_topic,
                     pl->dlq_topic, enc_conf_get(pl->conf, "state.dir"));

        while (!(opts->stop && *opts->stop) && !pl->fatal) {
                rd_kafka_message_t *m =
                        rd_kafka_consumer_poll(pl->consumer, 100);
                if (m) {
                        enc_pipeline_handle_msg(pl, m);
                        rd_kafka_message_destroy(m);
                }
                rd_kafka_poll(pl->producer, 0);
                int64_t now = enc_now_ms();
                if (!pl->fatal &&
                    (now - last_commit >= pl->commit_interval_ms ||
                     enc_engine_commit_due(pl->engine))) {
                        err = enc_pipeline_commit(pl, false, errstr,
                                                  errstr_size);
                        if (err)
                                enc_pipeline_set_fatal(pl, "commit: %s",
                                                       errstr);
                        last_commit = now;
                }
                if (pl->http)
                        enc_http_beat(pl->http, pl->owned->cnt > 0,
                                      "no partitions assigned yet");
                if (now - last_tick >= 1000) {
                        if (pl->http) {
                                enc_pipeline_metrics_text(pl,
                                                          &pl->metrics_buf);
                                enc_http_publish(pl->http,
                                                 pl->metrics_buf.data,
                                                 pl->metrics_buf.len);
                        }
                        if (opts->on_tick) {
                                enc_pipeline_stats_t st;
                                enc_pipeline_stats(pl, &st);
                                opts->on_tick(opts->tick_opaque, &st);
                        }
                        last_tick = now;
                }
                if (opts->exit_idle_ms > 0 &&
                    (!opts->idle_armed || *opts->idle_armed) &&
                    enc_pipeline_all_eof(pl) &&
                    now - pl->last_record_ms >= opts->exit_idle_ms) {
                        enc_log_info("idle_exit",
                                     "idle_ms=%lld partitions=%d",
                                     (long long)(now - pl->last_record_ms),
                                     pl->owned->cnt);
                        break;
                }
        }

        if (pl->fatal) {
                /* Do not commit: the store keeps the last good checkpoint
                 * and a restart redoes the rest identically. */
                enc_log_error("pipeline_fatal", "error=\"%s\"", pl->fatal_msg);
                rd_kafka_consumer_close(pl->consumer);
                return enc_seterr(errstr, errstr_size,
                                  err ? err : ENC_ERR_KAFKA, "%s",
                                  pl->fatal_msg);
        }
        enc_log_info("pipeline_drain", "partitions=%d", pl->owned->cnt);
        pl->flush_timeout_ms = enc_conf_get_int(pl->conf,
                                                "shutdown.timeout.ms");
        err = enc_pipeline_commit(pl, true, errstr, errstr_size);
        rd_kafka_consumer_close(pl->consumer);
        if (err)
                return err;
        enc_engine_stats_t es;
        enc_engine_stats(pl->engine, &es);
        enc_log_info("pipeline_stop",
                     "consumed=%llu accepted=%llu updates=%llu "
                     "commits=%llu",
                     (unsigned long long)es.consumed,
                     (unsigned long long)es.accepted,
                     (unsigned long long)es.updates,
                     (unsigned long long)pl->stats.commits);
        return ENC_OK;
}

void enc_pipeline_stats(enc_pipeline_t *pl, enc_pipeline_stats_t *stats) {
        *stats = pl->stats;
        enc_engine_stats(pl->engine, &stats->engine);
        stats->assigned_partitions = pl->owned->cnt;
}

/* ---- metrics -------------------------------------------------------- */

static void enc_metric1(enc_buf_t *b, const char *name, const char *type,
                        const char *help, double v) {
        enc_prom_family(b, name, type, help);
        enc_prom_sample(b, name, NULL, v);
}

int enc_pipeline_metrics_port(const enc_pipeline_t *pl) {
        return pl->http ? enc_http_port(pl->http) : -1;
}

void enc_pipeline_metrics_text(enc_pipeline_t *pl, enc_buf_t *b) {
        enc_engine_stats_t es;
        enc_engine_stats(pl->engine, &es);
        enc_store_stats_t ss;
        enc_store_stats(pl->store, &ss);
        char pn[16];
        enc_buf_reset(b);

        enc_prom_family(b, "encore_build_info", "gauge",
                        "Build information; always 1");
        const char *bl[] = {"version", ENCORE_VERSION, "librdkafka",
                            rd_kafka_version_str(), NULL};
        enc_prom_sample(b, "encore_build_info", bl, 1);

        enc_prom_family(b, "encore_records_consumed_total", "counter",
                        "Input records consumed, by input partition");
        enc_prom_family(b, "encore_watermark_lag_seconds", "gauge",
                        "Stream time (newest event) minus watermark, by "
                        "input partition");
        enc_prom_family(b, "encore_buffered_events", "gauge",
                        "Events waiting for the watermark, by input "
                        "partition");
        enc_prom_family(b, "encore_consumer_lag_records", "gauge",
                        "Records between the consumer position and the end "
                        "of the partition (librdkafka statistics)");
        for (int i = 0; i < pl->owned->cnt; i++) {
                int32_t p = pl->owned->elems[i].partition;
                enc_partition_info_t pi;
                if (!enc_engine_partition_info(pl->engine, p, &pi))
                        continue;
                snprintf(pn, sizeof(pn), "%d", p);
                const char *lab[] = {"partition", pn, NULL};
                enc_prom_sample(b, "encore_records_consumed_total", lab,
                                (double)pi.consumed);
                if (pi.stream_time != INT64_MIN && pi.watermark != INT64_MIN)
                        enc_prom_sample(b, "encore_watermark_lag_seconds",
                                        lab,
                                        (double)(pi.stream_time -
                                                 pi.watermark) /
                                                1000.0);
                enc_prom_sample(b, "encore_buffered_events", lab,
                                (double)pi.buffered);
                if (p < pl->nlag && pl->lag[p] >= 0)
                        enc_prom_sample(b, "encore_consumer_lag_records", lab,
                                        (double)pl->lag[p]);
        }

        enc_metric1(b, "encore_records_accepted_total", "counter",
                    "Valid events taken for processing",
                    (double)es.accepted);
        enc_metric1(b, "encore_records_applied_total", "counter",
                    "Events applied to state (the watermark passed them)",
                    (double)es.applied);
        enc_metric1(b, "encore_records_reread_total", "counter",
                    "Records read again after a restart that were already "
                    "handled before the last checkpoint",
                    (double)es.skipped_restore);
        enc_prom_family(b, "encore_records_dead_lettered_total", "counter",
                        "Records sent to the dead-letter topic, by reason");
        for (int r = 0; r < ENC_DLQ__CNT; r++) {
                const char *lab[] = {"reason",
                                     enc_dlq_reason_name((enc_dlq_reason_t)r),
                                     NULL};
                enc_prom_sample(b, "encore_records_dead_lettered_total", lab,
                                (double)es.dead_lettered[r]);
        }
        enc_metric1(b, "encore_late_records_total", "counter",
                    "Records behind the watermark (also counted in "
                    "dead_lettered_total{reason=\"late\"})",
                    (double)es.dead_lettered[ENC_DLQ_LATE]);

        enc_prom_family(b, "encore_reward_updates_total", "counter",
                        "Reward updates emitted, by signal, version and "
                        "cohort (empty: no cohort)");
        for (int i = 0; i < pl->nupd; i++) {
                char ver[16];
                snprintf(ver, sizeof(ver), "%d", pl->upd[i].version);
                const char *lab[] = {"signal", pl->upd[i].signal, "version",
                                     ver, "cohort", pl->upd[i].cohort, NULL};
                enc_prom_sample(b, "encore_reward_updates_total", lab,
                                (double)pl->upd[i].n);
        }
        enc_metric1(b, "encore_timers_fired_total", "counter",
                    "User timers fired (window decays, session closes, "
                    "horizons)",
                    (double)es.timers_fired);
        enc_prom_hist(b, "encore_event_to_output_latency_seconds",
                      "From the input record's Kafka timestamp to its reward "
                      "update being produced",
                      &pl->latency);
        enc_prom_hist(b, "encore_commit_duration_seconds",
                      "Flush outputs + checkpoint state + commit offsets",
                      &pl->commit_dur);
        enc_metric1(b, "encore_commits_total", "counter", "Commits done",
                    (double)pl->stats.commits);
        enc_metric1(b, "encore_rebalances_total", "counter",
                    "Partition assignments and revocations",
                    (double)pl->stats.rebalances);
        enc_metric1(b, "encore_partitions_assigned", "gauge",
                    "Input partitions this process owns",
                    (double)pl->owned->cnt);
        enc_metric1(b, "encore_state_keys", "gauge",
                    "Users with stored state (RocksDB estimate)",
                    (double)ss.user_keys);
        enc_metric1(b, "encore_state_size_bytes", "gauge",
                    "RocksDB SST files plus memtables",
                    (double)(ss.sst_bytes + ss.memtable_bytes));
        enc_metric1(b, "encore_state_users_expired_total", "counter",
                    "Users whose state was deleted because nothing could "
                    "change it any more",
                    (double)es.users_expired);
        enc_metric1(b, "encore_state_corrupt_total", "counter",
                    "Stored user records that failed to parse and were reset",
                    (double)es.state_corrupt);
        enc_metric1(b, "encore_cache_entries", "gauge",
                    "Users in the write-back cache",
                    (double)es.cache_entries);
        enc_metric1(b, "encore_cache_size_bytes", "gauge",
                    "Bytes charged to the write-back cache",
                    (double)es.cache_bytes);
        enc_metric1(b, "encore_cache_hits_total", "counter",
                    "User state found in the cache", (double)es.cache_hits);
        enc_metric1(b, "encore_cache_misses_total", "counter",
                    "User state read from RocksDB", (double)es.cache_misses);
        enc_metric1(b, "encore_producer_queue_messages", "gauge",
                    "Messages waiting in the producer queue",
                    (double)rd_kafka_outq_len(pl->producer));
        enc_metric1(b, "encore_outputs_delivered_total", "counter",
                    "Reward updates acknowledged by the broker",
                    (double)pl->stats.produced);
        enc_metric1(b, "encore_dead_letters_delivered_total", "counter",
                    "Dead letters acknowledged by the broker",
                    (double)pl->stats.dlq_produced);
        enc_metric1(b, "encore_delivery_errors_total", "counter",
                    "Messages the producer could not deliver",
                    (double)pl->stats.delivery_errors);
}
