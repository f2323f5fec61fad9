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
 * end" = that offset + 1 with the position. The owner may hold a
 * checkpoint's records back (enc_changelog_hold: copied, in order) while it
 * stages the checkpoint, and release them once the outputs before it are
 * acknowledged: nothing of a commit may reach the changelog while an output
 * it covers can still be lost (a restore would take that commit's state).
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
 * The changelog knows nothing of the pipeline that owns it: it is given
 * the store, the producer and the restore consumer's configuration, and it
 * hands a restored partition back through the ready callback (the owner
 * puts it in the engine and lets its consumer fetch it). Errors are
 * returned, never recorded in the owner.
 *
 * Never: process a partition whose restore has not finished; block the
 * loop on a restore for more than a slice.
 */
#include "changelog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "readend.h"
#include "restore.h"
#include "seek.h"

#define ENC_RESTORE_SLICE_MS 50
#define ENC_RESTORE_SLICE_RECORDS 20000
#define ENC_RESTORE_WAIT_MS 10

/* A partition being rebuilt from its changelog before it is processed. */
typedef struct enc_restoring_s {
        int32_t partition;
        enc_restore_t *r;
        int64_t next;   /* next changelog offset expected */
        int64_t target; /* changelog end offset when it started */
        int64_t started_ms;
} enc_restoring_t;

struct enc_changelog_s {
        enc_changelog_env_t env; /* restorer_conf: owned until used */
        char *topic;             /* NULL: disabled */
        int64_t *meta_end;       /* by partition: offset past last position */
        int nmeta_end;
        rd_kafka_t *restorer; /* assign-only consumer of the changelog */
        enc_restoring_t *restoring;
        int nrestoring;
        double cpu_busy_start; /* process CPU s when restores last went
                                  from none to some */
        enc_changelog_stats_t st;
        /* records held back (enc_changelog_hold), in order; copies,
         * owned here */
        bool hold;
        struct enc_cl_held_s {
                int32_t partition;
                bool is_meta;
                void *key, *val;
                size_t klen, vlen;
        } *held;
        int nheld, held_cap;
        size_t held_bytes; /* keys and values held */
};

/* CPU seconds of the whole process (every thread: the restore consumer's
 * fetchers and RocksDB's flushes and compactions too). */
static double enc_cl_process_cpu_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

static enc_err_t enc_cl_create(enc_changelog_t *cl, int partitions,
                               char *errstr, size_t errstr_size) {
        char rerr[256];
        int rf = (int)enc_conf_get_int(cl->env.conf,
                                       "changelog.replication.factor");
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                cl->topic, partitions, rf, rerr, sizeof(rerr));
        if (!nt)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "changelog topic %s: %s", cl->topic,
                                  rerr);
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
        rd_kafka_AdminOptions_t *ao =
                rd_kafka_AdminOptions_new(cl->env.producer,
                                          RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(ao, 3000, rerr,
                                                  sizeof(rerr));
        rd_kafka_queue_t *q = rd_kafka_queue_new(cl->env.producer);
        rd_kafka_CreateTopics(cl->env.producer, &nt, 1, ao, q);
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
                             cl->topic, partitions);
                return ENC_OK;
        }
        return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA, "%s",
                          rd_kafka_err2str(kerr));
}

static enc_err_t enc_cl_setup(enc_changelog_t *cl, char *errstr,
                              size_t errstr_size) {
        const char *name = enc_conf_get(cl->env.conf, "changelog.topic");
        char buf[300];
        if (!*name) {
                snprintf(buf, sizeof(buf), "%s-changelog",
                         enc_conf_get(cl->env.conf, "group.id"));
                name = buf;
        }
        cl->topic = strdup(name);
        if (!cl->topic)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        const char *input = enc_conf_get(cl->env.conf, "input.topic");
        enc_err_t err;
        int n_in = enc_cl_partitions(cl->env.producer, input, errstr, errstr_size,
                                     &err);
        if (err)
                return err;
        if (n_in < 0)
                return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                  "input topic %s does not exist (input.topic)",
                                  input);
        int n_cl = enc_cl_partitions(cl->env.producer, cl->topic, errstr,
                                     errstr_size, &err);
        if (err)
                return err;
        if (n_cl < 0) {
                char cerr[256];
                if (enc_cl_create(cl, n_in, cerr, sizeof(cerr))) {
                        /* Some brokers (and librdkafka's mock) do not
                         * answer CreateTopics; auto-creation may still make
                         * the topic, checked below. */
                        enc_log_warn("changelog_create_failed",
                                     "topic=%s error=\"%s\" "
                                     "fallback=auto_create",
                                     cl->topic, cerr);
                        rd_kafka_topic_t *t =
                                rd_kafka_topic_new(cl->env.producer, cl->topic,
                                                   NULL);
                        const struct rd_kafka_metadata *md;
                        if (!rd_kafka_metadata(cl->env.producer, 0, t, &md,
                                               5000))
                                rd_kafka_metadata_destroy(md);
                        rd_kafka_topic_destroy(t);
                }
                n_cl = enc_cl_partitions(cl->env.producer, cl->topic, errstr,
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
                                cl->topic, n_in);
        }
        if (n_cl < n_in)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "changelog topic %s has %d partitions but "
                                  "input topic %s has %d; the changelog needs "
                                  "one partition per input partition",
                                  cl->topic, n_cl, input, n_in);
        enc_log_info("changelog", "topic=%s partitions=%d input_partitions=%d",
                     cl->topic, n_cl, n_in);
        return ENC_OK;
}

enc_changelog_t *enc_changelog_new(const enc_changelog_env_t *env,
                                   bool enabled, char *errstr,
                                   size_t errstr_size) {
        enc_changelog_t *cl = calloc(1, sizeof(*cl));
        if (!cl) {
                if (env->restorer_conf)
                        rd_kafka_conf_destroy(env->restorer_conf);
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return NULL;
        }
        cl->env = *env;
        if (!enabled || !enc_conf_get_bool(env->conf, "changelog.enable"))
                return cl; /* disabled: topic NULL */
        if (enc_cl_setup(cl, errstr, errstr_size)) {
                enc_changelog_destroy(cl);
                return NULL;
        }
        return cl;
}

bool enc_changelog_enabled(const enc_changelog_t *cl) {
        return cl && cl->topic;
}

/* ---- writing -------------------------------------------------------- */

static void enc_cl_held_clear(enc_changelog_t *cl) {
        for (int i = 0; i < cl->nheld; i++) {
                free(cl->held[i].key);
                free(cl->held[i].val);
        }
        cl->nheld = 0;
        cl->held_bytes = 0;
}

/* Keeps a copy of a record for enc_changelog_release. */
static enc_err_t enc_cl_hold(enc_changelog_t *cl, int32_t partition,
                             const void *key, size_t klen, const void *val,
                             size_t vlen, bool is_meta) {
        if (cl->nheld == cl->held_cap) {
                int n = cl->held_cap ? 2 * cl->held_cap : 16;
                struct enc_cl_held_s *v =
                        realloc(cl->held, (size_t)n * sizeof(*v));
                if (!v)
                        return ENC_ERR_NOMEM;
                cl->held = v;
                cl->held_cap = n;
        }
        struct enc_cl_held_s *h = &cl->held[cl->nheld];
        h->partition = partition;
        h->is_meta = is_meta;
        h->klen = klen;
        h->vlen = val ? vlen : 0;
        h->key = malloc(klen ? klen : 1);
        h->val = malloc(h->vlen ? h->vlen : 1);
        if (!h->key || !h->val) {
                free(h->key);
                free(h->val);
                return ENC_ERR_NOMEM;
        }
        memcpy(h->key, key, klen);
        if (h->vlen)
                memcpy(h->val, val, h->vlen);
        cl->nheld++;
        cl->held_bytes += klen + h->vlen;
        return ENC_OK;
}

void enc_changelog_hold(enc_changelog_t *cl) {
        if (!cl->topic)
                return;
        enc_cl_held_clear(cl);
        cl->hold = true;
}

bool enc_changelog_holding(const enc_changelog_t *cl) {
        return cl && cl->hold;
}

size_t enc_changelog_held_bytes(const enc_changelog_t *cl) {
        return cl ? cl->held_bytes : 0;
}

void enc_changelog_drop(enc_changelog_t *cl) {
        if (!cl)
                return;
        enc_cl_held_clear(cl);
        cl->hold = false;
}

enc_err_t enc_changelog_release(enc_changelog_t *cl) {
        enc_err_t err = ENC_OK;
        cl->hold = false;
        for (int i = 0; i < cl->nheld && !err; i++) {
                struct enc_cl_held_s *h = &cl->held[i];
                err = enc_changelog_write(cl, h->partition, h->key, h->klen,
                                          h->val, h->vlen, h->is_meta);
                /* librdkafka has its copy: give the memory back at once */
                free(h->key);
                free(h->val);
                h->key = h->val = NULL;
        }
        enc_cl_held_clear(cl);
        return err;
}

enc_err_t enc_changelog_write(enc_changelog_t *cl, int32_t partition,
                              const void *key, size_t klen, const void *val,
                              size_t vlen, bool is_meta) {
        if (!cl->topic)
                return ENC_OK;
        if (cl->hold)
                return enc_cl_hold(cl, partition, key, klen, val, vlen,
                                   is_meta);
        void *tag = (void *)(is_meta ? ENC_TAG_META_BASE + partition
                                     : ENC_TAG_CHANGELOG);
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        cl->env.producer, RD_KAFKA_V_TOPIC(cl->topic),
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
                                      cl->topic, partition,
                                      rd_kafka_err2str(err));
                        return ENC_ERR_KAFKA;
                }
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                rd_kafka_poll(cl->env.producer, 50);
                clock_gettime(CLOCK_MONOTONIC, &b);
                cl->st.wait_queue_s += (double)(b.tv_sec - a.tv_sec) +
                                       (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        }
}

void enc_changelog_delivered(enc_changelog_t *cl, int32_t partition,
                             int64_t offset) {
        if (partition < 0)
                return;
        if (partition >= cl->nmeta_end) {
                int n = partition + 16;
                int64_t *v = realloc(cl->meta_end, (size_t)n * sizeof(*v));
                if (!v)
                        return;
                for (int i = cl->nmeta_end; i < n; i++)
                        v[i] = -1;
                cl->meta_end = v;
                cl->nmeta_end = n;
        }
        cl->meta_end[partition] = offset + 1;
}

void enc_changelog_meta_reset(enc_changelog_t *cl) {
        for (int i = 0; i < cl->nmeta_end; i++)
                cl->meta_end[i] = -1;
}

const int64_t *enc_changelog_meta_ends(const enc_changelog_t *cl, int *n) {
        *n = cl->nmeta_end;
        return cl->meta_end;
}

/* ---- restoring ------------------------------------------------------ */

static enc_err_t enc_cl_restorer(enc_changelog_t *cl, char *errstr,
                                 size_t errstr_size) {
        if (cl->restorer)
                return ENC_OK;
        /* The user's kafka.* and kafka.consumer.* keys apply (the owner
         * put them in env.restorer_conf: security, timeouts, like the main
         * consumer's), and then what a restore relies on is set whatever
         * the user's consumer keys say: it reads every committed record to
         * the end of the partition and commits nothing. Fetch sizes keep
         * librdkafka's defaults (fetch.max.bytes 50 MiB, 1 MiB a
         * partition, a 64 MiB prefetch queue): the main consumer's 1 MiB
         * cap is not applied here, and 256 KiB, 1 MiB and 8 MiB a
         * partition restored at the same CPU per record in b3 (LIMITS.md,
         * B3). */
        static const char *const need[] = {
                "enable.auto.commit", "false",
                "enable.partition.eof", "true",
                "isolation.level", "read_committed",
                NULL};
        char rerr[256];
        rd_kafka_conf_t *kc = cl->env.restorer_conf;
        if (!kc)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "restore consumer: no configuration");
        cl->env.restorer_conf = NULL; /* rd_kafka_new or we free it */
        for (int i = 0; need[i]; i += 2)
                if (rd_kafka_conf_set(kc, need[i], need[i + 1], rerr,
                                      sizeof(rerr)) != RD_KAFKA_CONF_OK) {
                        rd_kafka_conf_destroy(kc);
                        return enc_seterr(errstr, errstr_size,
                                          ENC_ERR_CONFIG,
                                          "restore consumer: %s", rerr);
                }
        cl->restorer = rd_kafka_new(RD_KAFKA_CONSUMER, kc, rerr, sizeof(rerr));
        if (!cl->restorer) {
                rd_kafka_conf_destroy(kc);
                return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                  "restore consumer: %s", rerr);
        }
        return ENC_OK;
}

/* True if @p partition is in the restore consumer's assignment (paused
 * there after an earlier restore ended while others went on). */
static bool enc_cl_assigned(enc_changelog_t *cl, int32_t partition) {
        rd_kafka_topic_partition_list_t *cur = NULL;
        if (rd_kafka_assignment(cl->restorer, &cur) || !cur)
                return false;
        bool found = rd_kafka_topic_partition_list_find(cur, cl->topic,
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
static enc_err_t enc_cl_assign_one(enc_changelog_t *cl, int32_t partition,
                                   int64_t offset, char *errstr,
                                   size_t errstr_size) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, cl->topic, partition)->offset =
                offset;
        enc_err_t err = ENC_OK;
        if (enc_cl_assigned(cl, partition)) {
                /* Asynchronous: never stops on librdkafka 2.0.2's seek
                 * timeout (consumer/seek.c). */
                err = enc_seek(cl->restorer, l, errstr, errstr_size);
        } else {
                rd_kafka_error_t *e =
                        rd_kafka_incremental_assign(cl->restorer, l);
                if (e) {
                        err = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                         "restore consumer assign %d: %s",
                                         partition, rd_kafka_error_string(e));
                        rd_kafka_error_destroy(e);
                }
        }
        rd_kafka_resume_partitions(cl->restorer, l);
        rd_kafka_topic_partition_list_destroy(l);
        return err;
}

static void enc_cl_release_one(enc_changelog_t *cl, int32_t partition) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, cl->topic, partition);
        rd_kafka_pause_partitions(cl->restorer, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (cl->nrestoring == 0) {
                rd_kafka_assign(cl->restorer, NULL);
                enc_malloc_bulk(false);
        }
}

enc_cl_plan_t enc_changelog_plan(enc_changelog_t *cl, int32_t partition,
                                 char *errstr, size_t errstr_size) {
        if (!cl->topic)
                return ENC_CL_CURRENT;
        enc_store_meta_t m;
        bool found = false;
        if (enc_store_get_meta(cl->env.store, partition, &m, &found, errstr,
                               errstr_size) == ENC_ERR_CORRUPT)
                found = false; /* rebuild it from the changelog */
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(
                cl->env.producer, cl->topic, partition, &lo, &hi, 10000);
        if (kerr) {
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "changelog %s [%d] watermarks: %s", cl->topic,
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
        if (enc_cl_restorer(cl, errstr, errstr_size))
                return ENC_CL_ERROR;
        enc_restore_t *r = enc_restore_new(cl->env.store, partition, full, errstr,
                                           errstr_size);
        if (!r)
                return ENC_CL_ERROR;
        enc_restoring_t *nv = realloc(cl->restoring,
                                      (size_t)(cl->nrestoring + 1) *
                                              sizeof(*nv));
        if (!nv) {
                enc_restore_destroy(r);
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return ENC_CL_ERROR;
        }
        cl->restoring = nv;
        enc_restoring_t *rs = &cl->restoring[cl->nrestoring++];
        rs->partition = partition;
        rs->r = r;
        rs->next = from;
        rs->target = hi;
        rs->started_ms = enc_cl_now_ms();
        if (cl->nrestoring == 1) {
                cl->cpu_busy_start = enc_cl_process_cpu_s();
                enc_malloc_bulk(true); /* base/enc.c says why */
        }
        if (!cl->st.restore_first_ms)
                cl->st.restore_first_ms = rs->started_ms;
        enc_log_info("restore_start",
                     "partition=%d mode=%s from=%lld to=%lld records=%lld",
                     partition, full ? "full" : "incremental",
                     (long long)from, (long long)hi, (long long)(hi - from));
        if (enc_cl_assign_one(cl, partition, from, errstr, errstr_size)) {
                enc_restore_destroy(r);
                if (--cl->nrestoring == 0)
                        enc_malloc_bulk(false);
                return ENC_CL_ERROR;
        }
        return ENC_CL_RESTORING;
}

static void enc_cl_remove(enc_changelog_t *cl, int idx) {
        int32_t partition = cl->restoring[idx].partition;
        enc_restore_destroy(cl->restoring[idx].r);
        cl->restoring[idx] = cl->restoring[--cl->nrestoring];
        enc_cl_release_one(cl, partition);
}

/* The restore of restoring[idx] reached its target: the owner takes the
 * partition (ready callback). */
static enc_err_t enc_cl_finish(enc_changelog_t *cl, int idx, char *errstr,
                               size_t errstr_size) {
        enc_restoring_t *rs = &cl->restoring[idx];
        int32_t p = rs->partition;
        enc_restore_stats_t st;
        char rerr[400];
        if (enc_restore_complete(rs->r, rerr, sizeof(rerr))) {
                enc_restore_finish(rs->r, &st);
                return enc_seterr(errstr, errstr_size, ENC_ERR_STATE,
                                  "restore of partition %d: %s", p, rerr);
        }
        enc_restore_finish(rs->r, &st);
        double secs = (double)(enc_cl_now_ms() - rs->started_ms) / 1000.0;
        /* process_cpu_seconds: the process's CPU since restores last
         * began (a rate on a shared machine depends on its load; CPU per
         * record much less) */
        enc_log_info("restore_done",
                     "partition=%d records=%llu users=%llu positions=%llu "
                     "discarded=%llu table_files=%llu seconds=%.3f "
                     "records_per_second=%.0f process_cpu_seconds=%.3f",
                     p, (unsigned long long)st.records,
                     (unsigned long long)st.users,
                     (unsigned long long)st.positions,
                     (unsigned long long)st.discarded,
                     (unsigned long long)st.ingested, secs,
                     secs > 0 ? (double)st.records / secs : 0.0,
                     enc_cl_process_cpu_s() - cl->cpu_busy_start);
        cl->st.restores++;
        cl->st.restore_last_ms = enc_cl_now_ms();
        cl->st.restore_users += st.users;
        enc_cl_remove(cl, idx);
        return cl->env.ready(cl->env.opaque, p, errstr, errstr_size);
}

static int enc_cl_find(enc_changelog_t *cl, int32_t partition) {
        for (int i = 0; i < cl->nrestoring; i++)
                if (cl->restoring[i].partition == partition)
                        return i;
        return -1;
}

enc_err_t enc_changelog_poll(enc_changelog_t *cl, char *errstr,
                             size_t errstr_size) {
        enc_err_t err = ENC_OK;
        /* Targets already reached (an empty tail) finish at once. */
        for (int i = 0; i < cl->nrestoring && !err;)
                if (cl->restoring[i].next >= cl->restoring[i].target)
                        err = enc_cl_finish(cl, i, errstr, errstr_size);
                else
                        i++;
        if (!cl->nrestoring || err)
                return err;
        int64_t deadline = enc_cl_now_ms() + ENC_RESTORE_SLICE_MS;
        for (int n = 0; n < ENC_RESTORE_SLICE_RECORDS && cl->nrestoring;
             n++) {
                /* The loop's one wait while restoring (the owner polls its
                 * own consumer without waiting then): at most
                 * ENC_RESTORE_WAIT_MS for the fetcher, and the slice ends
                 * as soon as the queue is empty rather than spinning on
                 * it. */
                rd_kafka_message_t *m = rd_kafka_consumer_poll(
                        cl->restorer, n ? 0 : ENC_RESTORE_WAIT_MS);
                if (!m)
                        break;
                int idx = enc_cl_find(cl, m->partition);
                if (idx < 0) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                enc_restoring_t *rs = &cl->restoring[idx];
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
                        char rerr[400];
                        if (enc_restore_record(rs->r, m->key, m->key_len,
                                               m->payload, m->len, m->offset,
                                               rerr, sizeof(rerr)))
                                err = enc_seterr(errstr, errstr_size,
                                                 ENC_ERR_STATE,
                                                 "restore of partition %d: "
                                                 "%s",
                                                 m->partition, rerr);
                        cl->st.restore_records++;
                }
                rs->next = e.pos < rs->target ? e.pos : rs->target;
                bool done = e.done;
                rd_kafka_message_destroy(m);
                if (done && !err)
                        err = enc_cl_finish(cl, idx, errstr, errstr_size);
                if (err || enc_cl_now_ms() >= deadline)
                        break;
        }
        return err;
}

void enc_changelog_cancel(enc_changelog_t *cl, int32_t partition) {
        int idx = enc_cl_find(cl, partition);
        if (idx >= 0) {
                enc_log_info("restore_cancelled", "partition=%d reason=revoked",
                             partition);
                enc_cl_remove(cl, idx);
        }
}

bool enc_changelog_restoring(const enc_changelog_t *cl, int32_t partition) {
        for (int i = 0; i < cl->nrestoring; i++)
                if (cl->restoring[i].partition == partition)
                        return true;
        return false;
}

int enc_changelog_active(const enc_changelog_t *cl) {
        return cl ? cl->nrestoring : 0;
}

int64_t enc_changelog_remaining(const enc_changelog_t *cl, int32_t partition) {
        int64_t n = 0;
        for (int i = 0; cl && i < cl->nrestoring; i++)
                if (partition < 0 || cl->restoring[i].partition == partition)
                        n += cl->restoring[i].target - cl->restoring[i].next;
        return n;
}

void enc_changelog_stats(const enc_changelog_t *cl,
                         enc_changelog_stats_t *st) {
        if (cl)
                *st = cl->st;
        else
                memset(st, 0, sizeof(*st));
}

void enc_changelog_destroy(enc_changelog_t *cl) {
        if (!cl)
                return;
        enc_cl_held_clear(cl);
        free(cl->held);
        for (int i = 0; i < cl->nrestoring; i++)
                enc_restore_destroy(cl->restoring[i].r);
        if (cl->nrestoring)
                enc_malloc_bulk(false);
        free(cl->restoring);
        if (cl->restorer) {
                rd_kafka_consumer_close(cl->restorer);
                rd_kafka_destroy(cl->restorer);
        }
        if (cl->env.restorer_conf)
                rd_kafka_conf_destroy(cl->env.restorer_conf);
        free(cl->topic);
        free(cl->meta_end);
        free(cl);
}
