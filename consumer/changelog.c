/*
 * changelog.c -- the changelog topic: writing it at commits, and restoring
 * a partition's state from it before the partition is processed.
 *
 * DESIGN
 * Each input partition p has changelog partition p (the topic is compacted,
 * created with as many partitions as the input). At every commit the engine
 * hands over each user it wrote and then p's position; both are produced
 * here, and the commit waits for them like for outputs. The delivery report
 * of the position record tells its offset; the local store keeps "changelog
 * end" = that offset + 1 with the position.
 *
 * On assignment of p (in the rebalance callback, before any fetch):
 *   - local position with changelog end == the changelog's high watermark:
 *     the local state is the newest there is. Nothing is restored; the
 *     partition starts at once from the local position (a clean restart
 *     restores nothing).
 *   - local position older than the changelog: restore incrementally from
 *     the local changelog end (only what other processes wrote since).
 *   - no local position: restore the whole changelog partition.
 * A restoring partition is assigned but paused. A separate assign-only
 * consumer reads its changelog in the processing loop, a bounded slice per
 * iteration, so the main consumer keeps polling (no max.poll.interval.ms
 * overrun, no rebalance storm) and the other partitions keep processing.
 * When the restore reaches the high watermark seen at its start, the engine
 * takes the partition, the main consumer seeks to the restored position and
 * resumes it.
 *
 * Never: process a partition whose restore has not finished; block the
 * loop on a restore for more than a slice.
 */
#include "changelog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "log.h"
#include "pipeline_int.h"
#include "readend.h"
#include "seek.h"

#define ENC_RESTORE_SLICE_MS 50
#define ENC_RESTORE_SLICE_RECORDS 20000

static int64_t enc_cl_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- topic setup ---------------------------------------------------- */

/* Partition count of @p topic from a full metadata request (which never
 * auto-creates anything), or -1 if the topic does not exist. */
static int enc_cl_partitions(rd_kafka_t *rk, const char *topic,
                             char *errstr, size_t errstr_size,
                             enc_err_t *err) {
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t kerr = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
        *err = ENC_OK;
        if (kerr) {
                *err = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                  "metadata: %s", rd_kafka_err2str(kerr));
                return -1;
        }
        int n = -1;
        for (int i = 0; i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, topic) &&
                    !md->topics[i].err)
                        n = md->topics[i].partition_cnt;
        rd_kafka_metadata_destroy(md);
        return n;
}

static enc_err_t enc_cl_create(enc_pipeline_t *pl, int partitions,
                               char *errstr, size_t errstr_size) {
        char rerr[256];
        int rf = (int)enc_conf_get_int(pl->conf,
                                       "changelog.replication.factor");
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                pl->cl_topic, partitions, rf, rerr, sizeof(rerr));
        if (!nt)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "changelog topic %s: %s", pl->cl_topic,
                                  rerr);
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
        rd_kafka_AdminOptions_t *ao =
                rd_kafka_AdminOptions_new(pl->producer,
                                          RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(ao, 3000, rerr,
                                                  sizeof(rerr));
        rd_kafka_queue_t *q = rd_kafka_queue_new(pl->producer);
        rd_kafka_CreateTopics(pl->producer, &nt, 1, ao, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 5000);
        rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (ev) {
                kerr = rd_kafka_event_error(ev);
                const rd_kafka_CreateTopics_result_t *res =
                        rd_kafka_event_CreateTopics_result(ev);
                size_t n = 0;
                const rd_kafka_topic_result_t **tr =
                        res ? rd_kafka_CreateTopics_result_topics(res, &n)
                            : NULL;
                if (!kerr && n == 1)
                        kerr = rd_kafka_topic_result_error(tr[0]);
                rd_kafka_event_destroy(ev);
        }
        rd_kafka_queue_destroy(q);
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_NewTopic_destroy(nt);
        if (!kerr || kerr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                enc_log_info("changelog_created",
                             "topic=%s partitions=%d cleanup.policy=compact",
                             pl->cl_topic, partitions);
                return ENC_OK;
        }
        return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA, "%s",
                          rd_kafka_err2str(kerr));
}

enc_err_t enc_changelog_setup(enc_pipeline_t *pl, char *errstr,
                              size_t errstr_size) {
        if (!enc_conf_get_bool(pl->conf, "changelog.enable"))
                return ENC_OK;
        const char *name = enc_conf_get(pl->conf, "changelog.topic");
        char buf[300];
        if (!*name) {
                snprintf(buf, sizeof(buf), "%s-changelog",
                         enc_conf_get(pl->conf, "group.id"));
                name = buf;
        }
        pl->cl_topic = strdup(name);
        if (!pl->cl_topic)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        const char *input = enc_conf_get(pl->conf, "input.topic");
        enc_err_t err;
        int n_in = enc_cl_partitions(pl->producer, input, errstr, errstr_size,
                                     &err);
        if (err)
                return err;
        if (n_in < 0)
                return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                  "input topic %s does not exist (input.topic)",
                                  input);
        int n_cl = enc_cl_partitions(pl->producer, pl->cl_topic, errstr,
                                     errstr_size, &err);
        if (err)
                return err;
        if (n_cl < 0) {
                char cerr[256];
                if (enc_cl_create(pl, n_in, cerr, sizeof(cerr))) {
                        /* Some brokers (and librdkafka's mock) do not
                         * answer CreateTopics; auto-creation may still make
                         * the topic, checked below. */
                        enc_log_warn("changelog_create_failed",
                                     "topic=%s error=\"%s\" "
                                     "fallback=auto_create",
                                     pl->cl_topic, cerr);
                        rd_kafka_topic_t *t =
                                rd_kafka_topic_new(pl->producer, pl->cl_topic,
                                                   NULL);
                        const struct rd_kafka_metadata *md;
                        if (!rd_kafka_metadata(pl->producer, 0, t, &md,
                                               5000))
                                rd_kafka_metadata_destroy(md);
                        rd_kafka_topic_destroy(t);
                }
                n_cl = enc_cl_partitions(pl->producer, pl->cl_topic, errstr,
                                         errstr_size, &err);
                if (err)
                        return err;
                if (n_cl < 0)
                        return enc_seterr(
                                errstr, errstr_size, ENC_ERR_KAFKA,
                                "changelog topic %s does not exist and could "
                                "not be created; create it with %d "
                                "partitions and cleanup.policy=compact, or "
                                "set changelog.enable=false",
                                pl->cl_topic, n_in);
        }
        if (n_cl < n_in)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "changelog topic %s has %d partitions but "
                                  "input topic %s has %d; the changelog needs "
                                  "one partition per input partition",
                                  pl->cl_topic, n_cl, input, n_in);
        enc_log_info("changelog", "topic=%s partitions=%d input_partitions=%d",
                     pl->cl_topic, n_cl, n_in);
        return ENC_OK;
}

/* ---- writing -------------------------------------------------------- */

enc_err_t enc_changelog_sink(void *opaque, int32_t partition, const void *key,
                             size_t klen, const void *val, size_t vlen,
                             bool is_meta) {
        enc_pipeline_t *pl = opaque;
        void *tag = (void *)(is_meta ? ENC_TAG_META_BASE + partition
                                     : ENC_TAG_CHANGELOG);
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        pl->producer, RD_KAFKA_V_TOPIC(pl->cl_topic),
                        RD_KAFKA_V_PARTITION(partition),
                        RD_KAFKA_V_KEY(key, klen),
                        RD_KAFKA_V_VALUE((void *)val, val ? vlen : 0),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
                if (!err)
                        return ENC_OK;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        enc_log_error("changelog_produce_failed",
                                      "topic=%s partition=%d error=\"%s\"",
                                      pl->cl_topic, partition,
                                      rd_kafka_err2str(err));
                        return ENC_ERR_KAFKA;
                }
                rd_kafka_poll(pl->producer, 50);
        }
}

void enc_changelog_delivered(enc_pipeline_t *pl, int32_t partition,
                             int64_t offset) {
        if (partition < 0)
                return;
        if (partition >= pl->ncl_meta_end) {
                int n = partition + 16;
                int64_t *v = realloc(pl->cl_meta_end, (size_t)n * sizeof(*v));
                if (!v)
                        return;
                for (int i = pl->ncl_meta_end; i < n; i++)
                        v[i] = -1;
                pl->cl_meta_end = v;
                pl->ncl_meta_end = n;
        }
        pl->cl_meta_end[partition] = offset + 1;
}

/* ---- restoring ------------------------------------------------------ */

static enc_err_t enc_cl_restorer(enc_pipeline_t *pl, char *errstr,
                                 size_t errstr_size) {
        if (pl->restorer)
                return ENC_OK;
        /* The user's kafka.* and kafka.consumer.* keys apply (security,
         * timeouts, like the main consumer's), and then what a restore
         * relies on is set whatever the user's consumer keys say: it reads
         * every committed record to the end of the partition and commits
         * nothing. */
        static const char *const def[] = {"group.id", "encore-restore",
                                          "client.id", "encore-restore",
                                          NULL};
        static const char *const none[] = {NULL};
        static const char *const need[] = {
                "enable.auto.commit", "false",
                "enable.partition.eof", "true",
                "isolation.level", "read_committed",
                NULL};
        char rerr[256];
        rd_kafka_conf_t *kc = enc_kconf_new(pl->conf, "consumer", def, none,
                                            errstr, errstr_size);
        if (!kc)
                return ENC_ERR_CONFIG;
        for (int i = 0; need[i]; i += 2)
                if (rd_kafka_conf_set(kc, need[i], need[i + 1], rerr,
                                      sizeof(rerr)) != RD_KAFKA_CONF_OK) {
                        rd_kafka_conf_destroy(kc);
                        return enc_seterr(errstr, errstr_size,
                                          ENC_ERR_CONFIG,
                                          "restore consumer: %s", rerr);
                }
        pl->restorer = rd_kafka_new(RD_KAFKA_CONSUMER, kc, rerr, sizeof(rerr));
        if (!pl->restorer) {
                rd_kafka_conf_destroy(kc);
                return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                  "restore consumer: %s", rerr);
        }
        return ENC_OK;
}

/* True if @p partition is in the restore consumer's assignment (paused
 * there after an earlier restore ended while others went on). */
static bool enc_cl_assigned(enc_pipeline_t *pl, int32_t partition) {
        rd_kafka_topic_partition_list_t *cur = NULL;
        if (rd_kafka_assignment(pl->restorer, &cur) || !cur)
                return false;
        bool found = rd_kafka_topic_partition_list_find(cur, pl->cl_topic,
                                                        partition) != NULL;
        rd_kafka_topic_partition_list_destroy(cur);
        return found;
}

/* The restore consumer's assignment changes incrementally: a partition is
 * added when its restore starts and paused when it ends (re-assigning the
 * whole list at every end raced librdkafka 2.0.2's fetcher shutdown into an
 * assertion with many partitions); everything is released when no restore
 * is left. A partition restored again while still assigned is sought to
 * its new start instead. Either way it is resumed: librdkafka keeps a
 * partition's pause flag across unassign and assign, and a restore of a
 * partition paused by an earlier one would wait forever. */
static void enc_cl_assign_one(enc_pipeline_t *pl, int32_t partition,
                              int64_t offset) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, pl->cl_topic, partition)->offset =
                offset;
        char errstr[512];
        if (enc_cl_assigned(pl, partition)) {
                /* Asynchronous: never stops on librdkafka 2.0.2's seek
                 * timeout (consumer/seek.c). */
                if (enc_seek(pl->restorer, l, errstr, sizeof(errstr)))
                        enc_pipeline_set_fatal(pl, "restore consumer %s",
                                               errstr);
        } else {
                rd_kafka_error_t *e =
                        rd_kafka_incremental_assign(pl->restorer, l);
                if (e) {
                        enc_pipeline_set_fatal(
                                pl, "restore consumer assign %d: %s",
                                partition, rd_kafka_error_string(e));
                        rd_kafka_error_destroy(e);
                }
        }
        rd_kafka_resume_partitions(pl->restorer, l);
        rd_kafka_topic_partition_list_destroy(l);
}

static void enc_cl_release_one(enc_pipeline_t *pl, int32_t partition) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, pl->cl_topic, partition);
        rd_kafka_pause_partitions(pl->restorer, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (pl->nrestoring == 0)
                rd_kafka_assign(pl->restorer, NULL);
}

enc_cl_plan_t enc_changelog_plan(enc_pipeline_t *pl, int32_t partition,
                                 char *errstr, size_t errstr_size) {
        if (!pl->cl_topic)
                return ENC_CL_CURRENT;
        enc_store_meta_t m;
        bool found = false;
        if (enc_store_get_meta(pl->store, partition, &m, &found, errstr,
                               errstr_size) == ENC_ERR_CORRUPT)
                found = false; /* rebuild it from the changelog */
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(
                pl->producer, pl->cl_topic, partition, &lo, &hi, 10000);
        if (kerr) {
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "changelog %s [%d] watermarks: %s", pl->cl_topic,
                           partition, rd_kafka_err2str(kerr));
                return ENC_CL_ERROR;
        }
        int64_t from;
        bool full;
        if (found && m.changelog_end == hi) {
                enc_log_info("restore_skipped",
                             "partition=%d reason=local_state_current "
                             "changelog_end=%lld",
                             partition, (long long)hi);
                return ENC_CL_CURRENT;
        }
        if (found && (m.changelog_end < 0 || m.changelog_end > hi)) {
                /* Written without a changelog, or the topic was recreated:
                 * the local state is all there is. */
                enc_log_warn("restore_skipped",
                             "partition=%d reason=changelog_behind_local "
                             "local_changelog_end=%lld high_watermark=%lld",
                             partition, (long long)m.changelog_end,
                             (long long)hi);
                return ENC_CL_CURRENT;
        }
        if (found) {
                from = m.changelog_end > lo ? m.changelog_end : lo;
                full = false;
        } else {
                if (hi <= lo)
                        return ENC_CL_CURRENT; /* nothing anywhere: fresh */
                from = lo;
                full = true;
        }
        if (enc_cl_restorer(pl, errstr, errstr_size))
                return ENC_CL_ERROR;
        enc_restore_t *r = enc_restore_new(pl->store, partition, full, errstr,
                                           errstr_size);
        if (!r)
                return ENC_CL_ERROR;
        enc_restoring_t *nv = realloc(pl->restoring,
                                      (size_t)(pl->nrestoring + 1) *
                                              sizeof(*nv));
        if (!nv) {
                enc_restore_destroy(r);
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return ENC_CL_ERROR;
        }
        pl->restoring = nv;
        enc_restoring_t *rs = &pl->restoring[pl->nrestoring++];
        rs->partition = partition;
        rs->r = r;
        rs->next = from;
        rs->target = hi;
        rs->started_ms = enc_cl_now_ms();
        if (!pl->restore_first_ms)
                pl->restore_first_ms = rs->started_ms;
        enc_log_info("restore_start",
                     "partition=%d mode=%s from=%lld to=%lld records=%lld",
                     partition, full ? "full" : "incremental",
                     (long long)from, (long long)hi, (long long)(hi - from));
        enc_cl_assign_one(pl, partition, from);
        return ENC_CL_RESTORING;
}

static void enc_cl_remove(enc_pipeline_t *pl, int idx) {
        int32_t partition = pl->restoring[idx].partition;
        enc_restore_destroy(pl->restoring[idx].r);
        pl->restoring[idx] = pl->restoring[--pl->nrestoring];
        enc_cl_release_one(pl, partition);
}

/* The restore of restoring[idx] reached its target: hand the partition to
 * the engine and let the main consumer go. */
static void enc_cl_finish(enc_pipeline_t *pl, int idx) {
        enc_restoring_t *rs = &pl->restoring[idx];
        int32_t p = rs->partition;
        char errstr[512];
        enc_restore_stats_t st;
        enc_restore_finish(rs->r, &st);
        double secs = (double)(enc_cl_now_ms() - rs->started_ms) / 1000.0;
        enc_log_info("restore_done",
                     "partition=%d records=%llu users=%llu positions=%llu "
                     "discarded=%llu seconds=%.3f records_per_second=%.0f",
                     p, (unsigned long long)st.records,
                     (unsigned long long)st.users,
                     (unsigned long long)st.positions,
                     (unsigned long long)st.discarded, secs,
                     secs > 0 ? (double)st.records / secs : 0.0);
        pl->restores++;
        pl->restore_last_ms = enc_cl_now_ms();
        pl->restore_users += st.users;
        enc_cl_remove(pl, idx);

        int64_t resume = -1;
        if (enc_engine_assign(pl->engine, p, &resume, errstr,
                              sizeof(errstr))) {
                enc_pipeline_set_fatal(pl, "assign partition %d after "
                                           "restore: %s",
                                       p, errstr);
                return;
        }
        const char *topic = enc_conf_get(pl->conf, "input.topic");
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                resume >= 0 ? resume : RD_KAFKA_OFFSET_STORED;
        /* Asynchronous, and queued before the resume below, so the first
         * record fetched is the one at the restored position; a seek
         * timeout never stops the process (consumer/seek.c). */
        if (resume >= 0 && enc_seek(pl->consumer, l, errstr, sizeof(errstr)))
                enc_pipeline_set_fatal(pl, "after restore: %s", errstr);
        rd_kafka_resume_partitions(pl->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
        enc_log_info("partition_ready", "partition=%d resume=%lld", p,
                     (long long)resume);
}

static int enc_cl_find(enc_pipeline_t *pl, int32_t partition) {
        for (int i = 0; i < pl->nrestoring; i++)
                if (pl->restoring[i].partition == partition)
                        return i;
        return -1;
}

void enc_changelog_poll(enc_pipeline_t *pl) {
        /* Targets already reached (an empty tail) finish at once. */
        for (int i = 0; i < pl->nrestoring;)
                if (pl->restoring[i].next >= pl->restoring[i].target)
                        enc_cl_finish(pl, i);
                else
                        i++;
        if (!pl->nrestoring || pl->fatal)
                return;
        int64_t deadline = enc_cl_now_ms() + ENC_RESTORE_SLICE_MS;
        char errstr[512];
        for (int n = 0; n < ENC_RESTORE_SLICE_RECORDS && pl->nrestoring;
             n++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(pl->restorer,
                                                               n ? 0 : 10);
                if (!m) {
                        if (enc_cl_now_ms() >= deadline)
                                break;
                        continue;
                }
                int idx = enc_cl_find(pl, m->partition);
                if (idx < 0) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                enc_restoring_t *rs = &pl->restoring[idx];
                /* The end test of consumer/readend.c: under exactly-once
                 * the changelog's last offset is a commit marker, and
                 * compaction leaves gaps anywhere, so the restore ends when
                 * its position reaches the target, not on a record at
                 * target - 1. */
                enc_readend_t e;
                enc_readend_init(&e, rs->next, rs->target);
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        enc_readend_eof(&e, m->offset);
                } else if (m->err) {
                        enc_log_warn("restore_consumer_error",
                                     "partition=%d error=\"%s\"",
                                     m->partition,
                                     rd_kafka_message_errstr(m));
                } else if (m->offset >= rs->next &&
                           enc_readend_record(&e, m->offset)) {
                        if (enc_restore_record(rs->r, m->key, m->key_len,
                                               m->payload, m->len, m->offset,
                                               errstr, sizeof(errstr)))
                                enc_pipeline_set_fatal(
                                        pl, "restore of partition %d: %s",
                                        m->partition, errstr);
                        pl->restore_records++;
                }
                rs->next = e.pos < rs->target ? e.pos : rs->target;
                bool done = e.done;
                rd_kafka_message_destroy(m);
                if (done)
                        enc_cl_finish(pl, idx);
                if (pl->fatal || enc_cl_now_ms() >= deadline)
                        break;
        }
}

void enc_changelog_cancel(enc_pipeline_t *pl, int32_t partition) {
        int idx = enc_cl_find(pl, partition);
        if (idx >= 0) {
                enc_log_info("restore_cancelled", "partition=%d reason=revoked",
                             partition);
                enc_cl_remove(pl, idx);
        }
}

bool enc_changelog_restoring(const enc_pipeline_t *pl, int32_t partition) {
        for (int i = 0; i < pl->nrestoring; i++)
                if (pl->restoring[i].partition == partition)
                        return true;
        return false;
}

int64_t enc_changelog_remaining(const enc_pipeline_t *pl) {
        int64_t n = 0;
        for (int i = 0; i < pl->nrestoring; i++)
                n += pl->restoring[i].target - pl->restoring[i].next;
        return n;
}

void enc_changelog_destroy(enc_pipeline_t *pl) {
        for (int i = 0; i < pl->nrestoring; i++)
                enc_restore_destroy(pl->restoring[i].r);
        free(pl->restoring);
        pl->restoring = NULL;
        pl->nrestoring = 0;
        if (pl->restorer) {
                rd_kafka_consumer_close(pl->restorer);
                rd_kafka_destroy(pl->restorer);
                pl->restorer = NULL;
        }
        free(pl->cl_topic);
        pl->cl_topic = NULL;
        free(pl->cl_meta_end);
        pl->cl_meta_end = NULL;
}
