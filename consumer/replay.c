/*
 * replay.c -- re-running history (`encore replay`) and repositioning a live
 * deployment (`encore reset`).
 *
 * DESIGN
 * Replay is the ordinary pipeline in bounded mode: no consumer group, no
 * changelog, a fresh state directory, each input partition read from a
 * start offset to an end offset resolved once at start (earliest, the end
 * at start time, explicit offsets, or the first offset at or after a
 * timestamp). Because processing depends on event time and record order
 * only, replaying a topic into a fresh state yields byte-identical updates
 * to the live run over the same records.
 *
 * Reset is Kafka Streams' application reset for encore: with no member in
 * the group it moves the position and clears the state, since state built
 * up to the old position cannot be reused from a new one. encore resumes a
 * partition from the position stored with its state, not from the group
 * offset, so the move itself is a changelog record; the group offsets are
 * committed too, for other tools (and as the position when the changelog is
 * disabled). State lives in two places: each process's local RocksDB and the
 * changelog. For the changelog, reset appends to every partition a reset
 * record followed by the new position; a restore that meets the reset
 * record drops what it has, and any process whose local state is older than
 * the changelog restores (and so drops) before processing. The records
 * before the reset stay in the topic (a full restore reads and drops them)
 * until the operator deletes them (kafka-delete-records) if space matters.
 * The local state directory of the machine running reset is removed with
 * --clear-local.
 *
 * The wall clock is used for "ago:" positions and progress only.
 */
#include "replay.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "restore.h"
#include "store.h"

/* ---- parsing -------------------------------------------------------- */

/* "2026-01-05T00:00:00Z", "2026-01-05T00:00:00.250Z", "2026-01-05", or ms. */
static bool enc_parse_time(const char *s, int64_t *ms) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!errno && *s && !*end) {
                *ms = v;
                return true;
        }
        int y, mo, d, h = 0, mi = 0, se = 0, frac = 0, n = 0;
        if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
                return false;
        const char *p = s + n;
        if (*p == 'T') {
                int m2 = 0;
                if (sscanf(p, "T%2d:%2d:%2d%n", &h, &mi, &se, &m2) != 3)
                        return false;
                p += m2;
                if (*p == '.') {
                        int digits = 0;
                        p++;
                        while (isdigit((unsigned char)*p) && digits < 3) {
                                frac = frac * 10 + (*p - '0');
                                digits++;
                                p++;
                        }
                        while (digits++ < 3)
                                frac *= 10;
                        while (isdigit((unsigned char)*p))
                                p++;
                }
                if (*p != 'Z')
                        return false;
                p++;
        }
        if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
            se > 60)
                return false;
        struct tm tm = {0};
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = se;
        *ms = (int64_t)timegm(&tm) * 1000 + frac;
        return true;
}

enc_err_t enc_position_parse(const char *s, const char *flag,
                             enc_position_t *pos, char *errstr,
                             size_t errstr_size) {
        memset(pos, 0, sizeof(*pos));
        if (!strcmp(s, "earliest")) {
                pos->kind = ENC_POS_EARLIEST;
                return ENC_OK;
        }
        if (!strcmp(s, "end")) {
                pos->kind = ENC_POS_END;
                return ENC_OK;
        }
        if (!strncmp(s, "timestamp:", 10)) {
                pos->kind = ENC_POS_TIME;
                if (enc_parse_time(s + 10, &pos->time_ms))
                        return ENC_OK;
        } else if (!strncmp(s, "ago:", 4)) {
                char *end;
                long long v = strtoll(s + 4, &end, 10);
                int64_t unit = !strcmp(end, "d")   ? ENC_MS_PER_DAY
                               : !strcmp(end, "h") ? 3600000
                               : !strcmp(end, "m") ? 60000
                               : !strcmp(end, "s") ? 1000
                                                   : 0;
                pos->kind = ENC_POS_AGO;
                pos->time_ms = v * unit;
                if (unit && v > 0 && end != s + 4)
                        return ENC_OK;
        } else if (!strncmp(s, "offsets:", 8)) {
                pos->kind = ENC_POS_OFFSETS;
                const char *p = s + 8;
                while (*p && pos->n < ENC_POS_MAX_PARTITIONS) {
                        char *end;
                        long part = strtol(p, &end, 10);
                        if (end == p || *end != '=' || part < 0)
                                break;
                        p = end + 1;
                        long long off = strtoll(p, &end, 10);
                        if (end == p || off < 0 || (*end && *end != ','))
                                break;
                        pos->partition[pos->n] = (int32_t)part;
                        pos->offset[pos->n] = off;
                        pos->n++;
                        p = *end ? end + 1 : end;
                }
                if (!*p && pos->n > 0)
                        return ENC_OK;
        }
        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                          "%s: \"%s\" is not a position; expected earliest, "
                          "end, offsets:P=O[,P=O...], "
                          "timestamp:YYYY-MM-DDTHH:MM:SS[.mmm]Z (or ms since "
                          "epoch), or ago:N{d,h,m,s}",
                          flag, s);
}

/* ---- resolving ------------------------------------------------------ */

typedef struct enc_kc_ctx_s {
        rd_kafka_conf_t *kc;
} enc_kc_ctx_t;

static void enc_kc_apply(const char *key, const char *value, void *opaque) {
        enc_kc_ctx_t *c = opaque;
        const char *prop = key + 6;
        char rerr[256];
        if (!strncmp(prop, "producer.", 9))
                return;
        if (!strncmp(prop, "consumer.", 9))
                prop += 9;
        (void)rd_kafka_conf_set(c->kc, prop, value, rerr, sizeof(rerr));
}

/* An assign-only consumer with the user's kafka.* settings (SASL, SSL...)
 * and @p group_id. Caller destroys. */
static rd_kafka_t *enc_tool_consumer(const enc_conf_t *conf,
                                     const char *group_id, char *errstr,
                                     size_t errstr_size) {
        char rerr[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        enc_kc_ctx_t c = {kc};
        enc_conf_foreach(conf, "kafka.", enc_kc_apply, &c);
        rd_kafka_conf_set(kc, "group.id", group_id, rerr, sizeof(rerr));
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", rerr,
                          sizeof(rerr));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, rerr,
                                      sizeof(rerr));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA, "%s", rerr);
        }
        return rk;
}

static int64_t enc_wall_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Offsets of @p pos for every partition in @p l (offsets filled in). */
static enc_err_t enc_pos_apply(rd_kafka_t *rk, const char *topic,
                               const enc_position_t *pos, bool is_end,
                               rd_kafka_topic_partition_list_t *l,
                               const int64_t *lo, const int64_t *hi,
                               char *errstr, size_t errstr_size) {
        for (int i = 0; i < l->cnt; i++)
                l->elems[i].offset = is_end ? hi[i] : lo[i];
        switch (pos->kind) {
        case ENC_POS_EARLIEST:
                for (int i = 0; i < l->cnt; i++)
                        l->elems[i].offset = lo[i];
                return ENC_OK;
        case ENC_POS_END:
                for (int i = 0; i < l->cnt; i++)
                        l->elems[i].offset = hi[i];
                return ENC_OK;
        case ENC_POS_OFFSETS:
                for (int k = 0; k < pos->n; k++) {
                        rd_kafka_topic_partition_t *tp =
                                rd_kafka_topic_partition_list_find(
                                        l, topic, pos->partition[k]);
                        if (!tp)
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "partition %d: %s has no such "
                                        "partition",
                                        pos->partition[k], topic);
                        int i = (int)(tp - l->elems);
                        int64_t o = pos->offset[k];
                        tp->offset = o < lo[i] ? lo[i] : o > hi[i] ? hi[i] : o;
                }
                return ENC_OK;
        case ENC_POS_TIME:
        case ENC_POS_AGO: {
                int64_t ts = pos->kind == ENC_POS_TIME
                                     ? pos->time_ms
                                     : enc_wall_now_ms() - pos->time_ms;
                for (int i = 0; i < l->cnt; i++)
                        l->elems[i].offset = ts;
                rd_kafka_resp_err_t kerr = rd_kafka_offsets_for_times(rk, l,
                                                                      10000);
                if (kerr)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                          "looking up offsets by timestamp "
                                          "%lld: %s",
                                          (long long)ts,
                                          rd_kafka_err2str(kerr));
                for (int i = 0; i < l->cnt; i++) {
                        if (l->elems[i].err)
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_KAFKA,
                                        "partition %d: offset lookup by "
                                        "timestamp failed: %s",
                                        l->elems[i].partition,
                                        rd_kafka_err2str(l->elems[i].err));
                        /* -1: no record at or after ts: the end. (Brokers
                         * that cannot look up by time, like librdkafka's
                         * mock, also answer -1.) */
                        if (l->elems[i].offset < 0)
                                l->elems[i].offset = hi[i];
                }
                return ENC_OK;
        }
        }
        return ENC_ERR_INVALID_ARG;
}

enc_err_t enc_positions_resolve(const enc_conf_t *conf,
                                const enc_position_t *from,
                                const enc_position_t *to,
                                enc_range_t **rangesp, int *np, char *errstr,
                                size_t errstr_size) {
        const char *topic = enc_conf_get(conf, "input.topic");
        enc_err_t err = ENC_OK;
        rd_kafka_t *rk = enc_tool_consumer(conf, "encore-resolve", errstr,
                                           errstr_size);
        if (!rk)
                return ENC_ERR_KAFKA;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *a = NULL, *b = NULL;
        int64_t *lo = NULL, *hi = NULL;
        rd_kafka_resp_err_t kerr = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
        if (kerr) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                 "metadata: %s", rd_kafka_err2str(kerr));
                goto done;
        }
        const struct rd_kafka_metadata_topic *mt = NULL;
        for (int i = 0; i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, topic))
                        mt = &md->topics[i];
        if (!mt || mt->err || mt->partition_cnt == 0) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                 "input topic %s does not exist", topic);
                goto done;
        }
        int n = mt->partition_cnt;
        lo = calloc((size_t)n, sizeof(*lo));
        hi = calloc((size_t)n, sizeof(*hi));
        a = rd_kafka_topic_partition_list_new(n);
        b = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++) {
                int32_t p = mt->partitions[i].id;
                kerr = rd_kafka_query_watermark_offsets(rk, topic, p, &lo[i],
                                                        &hi[i], 10000);
                if (kerr) {
                        err = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                         "watermarks of %s [%d]: %s", topic,
                                         p, rd_kafka_err2str(kerr));
                        goto done;
                }
                rd_kafka_topic_partition_list_add(a, topic, p);
                rd_kafka_topic_partition_list_add(b, topic, p);
        }
        err = enc_pos_apply(rk, topic, from, false, a, lo, hi, errstr,
                            errstr_size);
        if (!err)
                err = enc_pos_apply(rk, topic, to, true, b, lo, hi, errstr,
                                    errstr_size);
        if (err)
                goto done;
        enc_range_t *ranges = calloc((size_t)n, sizeof(*ranges));
        if (!ranges) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
                goto done;
        }
        for (int i = 0; i < n; i++) {
                ranges[i].partition = a->elems[i].partition;
                ranges[i].start = a->elems[i].offset;
                ranges[i].end = b->elems[i].offset > a->elems[i].offset
                                        ? b->elems[i].offset
                                        : a->elems[i].offset;
        }
        *rangesp = ranges;
        *np = n;
done:
        if (md)
                rd_kafka_metadata_destroy(md);
        if (a)
                rd_kafka_topic_partition_list_destroy(a);
        if (b)
                rd_kafka_topic_partition_list_destroy(b);
        free(lo);
        free(hi);
        rd_kafka_destroy(rk);
        return err;
}

/* ---- replay --------------------------------------------------------- */

typedef struct enc_replay_tick_s {
        enc_pipeline_t *pl;
        double t0;
        bool progress;
} enc_replay_tick_t;

static double enc_mono_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void enc_replay_on_tick(void *opaque, const enc_pipeline_stats_t *st) {
        enc_replay_tick_t *t = opaque;
        int64_t left, total;
        enc_pipeline_progress(t->pl, &left, &total);
        double el = enc_mono_s() - t->t0;
        int64_t done = total - left;
        double rate = el > 0 ? (double)done / el : 0;
        double eta = rate > 0 ? (double)left / rate : 0;
        if (t->progress)
                fprintf(stderr,
                        "\rreplay: %lld / %lld records (%.1f%%), %.0f "
                        "records/s, %llu updates, ETA %d:%02d   ",
                        (long long)done, (long long)total,
                        total ? 100.0 * (double)done / (double)total : 100.0,
                        rate, (unsigned long long)st->engine.updates,
                        (int)(eta / 60), (int)eta % 60);
}

static bool enc_dir_fresh(const char *dir) {
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT;
        struct dirent *e;
        bool empty = true;
        while (empty && (e = readdir(d)))
                empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
        closedir(d);
        return empty;
}

int enc_replay_run(const enc_conf_t *conf, const enc_position_t *from,
                   const enc_position_t *to, bool progress) {
        char errstr[512];
        const char *dir = enc_conf_get(conf, "state.dir");
        if (!enc_dir_fresh(dir)) {
                fprintf(stderr,
                        "encore replay: state.dir %s is not empty; a replay "
                        "starts from a fresh state (use --state-dir with a "
                        "new directory)\n",
                        dir);
                return 2;
        }
        enc_range_t *ranges = NULL;
        int n = 0;
        if (enc_positions_resolve(conf, from, to, &ranges, &n, errstr,
                                  sizeof(errstr))) {
                fprintf(stderr, "encore replay: %s\n", errstr);
                return 1;
        }
        int64_t total = 0;
        for (int i = 0; i < n; i++) {
                total += ranges[i].end - ranges[i].start;
                enc_log_info("replay_range", "partition=%d from=%lld to=%lld",
                             ranges[i].partition, (long long)ranges[i].start,
                             (long long)ranges[i].end);
        }
        fprintf(stderr,
                "encore replay: %s -> %s, %d partitions, %lld records, "
                "state in %s\n",
                enc_conf_get(conf, "input.topic"),
                enc_conf_get(conf, "output.topic"), n, (long long)total, dir);
        enc_pipeline_t *pl = enc_pipeline_new_bounded(conf, ranges, n, errstr,
                                                      sizeof(errstr));
        free(ranges);
        if (!pl) {
                fprintf(stderr, "encore replay: %s\n", errstr);
                return 1;
        }
        enc_replay_tick_t tick = {pl, enc_mono_s(),
                                  progress || isatty(STDERR_FILENO)};
        enc_pipeline_opts_t opts = {.on_tick = enc_replay_on_tick,
                                    .tick_opaque = &tick};
        enc_err_t err = enc_pipeline_run(pl, &opts, errstr, sizeof(errstr));
        enc_pipeline_stats_t st;
        enc_pipeline_stats(pl, &st);
        enc_pipeline_destroy(pl);
        if (tick.progress)
                fprintf(stderr, "\n");
        double el = enc_mono_s() - tick.t0;
        uint64_t dead = 0;
        for (int i = 0; i < ENC_DLQ__CNT; i++)
                dead += st.engine.dead_lettered[i];
        fprintf(stderr,
                "encore replay: %s: %llu records in %.1f s (%.0f/s), %llu "
                "applied, %llu dead-lettered, %llu reward updates to %s\n",
                err ? "FAILED" : "done",
                (unsigned long long)st.engine.consumed, el,
                el > 0 ? (double)st.engine.consumed / el : 0.0,
                (unsigned long long)st.engine.applied,
                (unsigned long long)dead,
                (unsigned long long)st.engine.updates,
                enc_conf_get(conf, "output.topic"));
        if (err) {
                fprintf(stderr, "encore replay: %s\n", errstr);
                return 1;
        }
        return 0;
}

/* ---- reset ---------------------------------------------------------- */

/* Members of @p group, or -1 with errstr if it cannot be told. */
static int enc_group_members(rd_kafka_t *rk, const char *group, char *errstr,
                             size_t errstr_size) {
        const struct rd_kafka_group_list *gl = NULL;
        rd_kafka_resp_err_t kerr = rd_kafka_list_groups(rk, group, &gl, 10000);
        if (kerr) {
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "cannot describe group %s: %s", group,
                           rd_kafka_err2str(kerr));
                return -1;
        }
        int members = 0;
        for (int i = 0; i < gl->group_cnt; i++)
                if (!strcmp(gl->groups[i].group, group))
                        members += gl->groups[i].member_cnt;
        rd_kafka_group_list_destroy(gl);
        return members;
}

static int enc_rm_tree(const char *dir) {
        char cmd[1100];
        if (strlen(dir) > 1000 || strchr(dir, '\''))
                return -1;
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
        return system(cmd);
}

int enc_reset_run(const enc_conf_t *conf, const enc_position_t *to,
                  bool dry_run, bool clear_local, bool force) {
        char errstr[512];
        const char *group = enc_conf_get(conf, "group.id");
        const char *topic = enc_conf_get(conf, "input.topic");
        rd_kafka_t *rk = enc_tool_consumer(conf, group, errstr,
                                           sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "encore reset: %s\n", errstr);
                return 1;
        }
        int rc = 1;
        enc_range_t *ranges = NULL;
        int n = 0;
        rd_kafka_topic_partition_list_t *cur = NULL, *next = NULL;
        int members = enc_group_members(rk, group, errstr, sizeof(errstr));
        if (members < 0 && force) {
                fprintf(stderr,
                        "encore reset: %s; going on because of --force: "
                        "make sure no encore of group %s is running\n",
                        errstr, group);
                members = 0;
        }
        if (members != 0) {
                if (members < 0)
                        fprintf(stderr,
                                "encore reset: %s; refusing (--force skips "
                                "this check when you are sure no member "
                                "runs)\n",
                                errstr);
                else
                        fprintf(stderr,
                                "encore reset: group %s has %d active "
                                "member(s); stop every encore of the group "
                                "first\n",
                                group, members);
                goto done;
        }
        enc_position_t earliest = {.kind = ENC_POS_EARLIEST};
        if (enc_positions_resolve(conf, to, &earliest, &ranges, &n, errstr,
                                  sizeof(errstr))) {
                fprintf(stderr, "encore reset: %s\n", errstr);
                goto done;
        }
        cur = rd_kafka_topic_partition_list_new(n);
        next = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++) {
                rd_kafka_topic_partition_list_add(cur, topic,
                                                  ranges[i].partition);
                rd_kafka_topic_partition_list_add(next, topic,
                                                  ranges[i].partition)
                        ->offset = ranges[i].start;
        }
        if (rd_kafka_committed(rk, cur, 10000))
                for (int i = 0; i < cur->cnt; i++)
                        cur->elems[i].offset = RD_KAFKA_OFFSET_INVALID;

        char cl[300];
        const char *clt = enc_conf_get(conf, "changelog.topic");
        snprintf(cl, sizeof(cl), "%s%s", *clt ? clt : group,
                 *clt ? "" : "-changelog");
        bool use_cl = enc_conf_get_bool(conf, "changelog.enable");
        printf("%sreset group %s on %s:\n", dry_run ? "[dry run] " : "",
               group, topic);
        for (int i = 0; i < n; i++) {
                char c[32];
                if (cur->elems[i].offset >= 0)
                        snprintf(c, sizeof(c), "%lld",
                                 (long long)cur->elems[i].offset);
                else
                        snprintf(c, sizeof(c), "none");
                printf("  partition %d: committed %s -> %lld\n",
                       ranges[i].partition, c, (long long)ranges[i].start);
        }
        if (use_cl)
                printf("  changelog %s: append a reset record and the new "
                       "position to each partition, delete what precedes "
                       "them\n",
                       cl);
        if (clear_local)
                printf("  local state directory %s: remove\n",
                       enc_conf_get(conf, "state.dir"));
        else
                printf("  local state directories: other processes drop "
                       "theirs when they restore the reset from the "
                       "changelog%s\n",
                       use_cl ? "" : " (changelog disabled: remove them by "
                                     "hand)");
        if (dry_run) {
                rc = 0;
                goto done;
        }

        /* 1. the changelog: reset + position records, per partition */
        if (use_cl) {
                char rerr[256];
                rd_kafka_conf_t *pc = rd_kafka_conf_new();
                enc_kc_ctx_t c = {pc};
                enc_conf_foreach(conf, "kafka.", enc_kc_apply, &c);
                rd_kafka_conf_set(pc, "enable.idempotence", "true", rerr,
                                  sizeof(rerr));
                rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, rerr,
                                                sizeof(rerr));
                if (!prod) {
                        rd_kafka_conf_destroy(pc);
                        fprintf(stderr, "encore reset: producer: %s\n", rerr);
                        goto done;
                }
                enc_buf_t mb;
                enc_buf_init(&mb, 4096);
                for (int i = 0; i < n; i++) {
                        enc_store_meta_t m = {ranges[i].start,
                                              ranges[i].start, INT64_MIN,
                                              INT64_MIN, -1, INT64_MIN};
                        enc_buf_reset(&mb);
                        enc_store_meta_encode(&m, &mb);
                        char rk_key[1] = {ENC_CHANGELOG_KEY_RESET};
                        char mk_key[1] = {ENC_CHANGELOG_KEY_META};
                        rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(cl),
                                          RD_KAFKA_V_PARTITION(
                                                  ranges[i].partition),
                                          RD_KAFKA_V_KEY(rk_key, 1),
                                          RD_KAFKA_V_VALUE("", 0),
                                          RD_KAFKA_V_MSGFLAGS(
                                                  RD_KAFKA_MSG_F_COPY),
                                          RD_KAFKA_V_END);
                        rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(cl),
                                          RD_KAFKA_V_PARTITION(
                                                  ranges[i].partition),
                                          RD_KAFKA_V_KEY(mk_key, 1),
                                          RD_KAFKA_V_VALUE(mb.data, mb.len),
                                          RD_KAFKA_V_MSGFLAGS(
                                                  RD_KAFKA_MSG_F_COPY),
                                          RD_KAFKA_V_END);
                }
                enc_buf_free(&mb);
                rd_kafka_resp_err_t ferr = rd_kafka_flush(prod, 30000);
                rd_kafka_destroy(prod);
                if (ferr) {
                        fprintf(stderr, "encore reset: writing the reset to "
                                        "%s failed: %s; nothing else was "
                                        "changed\n",
                                cl, rd_kafka_err2str(ferr));
                        goto done;
                }
                printf("  changelog reset written\n");
        }
        /* 2. the group's offsets. encore resumes from the position in its
         * state (restored from the changelog), so with a changelog these
         * are for other tools reading the group; without one they are the
         * position. */
        rd_kafka_resp_err_t kerr = rd_kafka_commit(rk, next, 0);
        if (kerr && !use_cl) {
                fprintf(stderr, "encore reset: committing offsets: %s\n",
                        rd_kafka_err2str(kerr));
                goto done;
        }
        if (kerr)
                fprintf(stderr,
                        "encore reset: warning: group offsets not moved (%s); "
                        "encore resumes from the position in the changelog "
                        "regardless\n",
                        rd_kafka_err2str(kerr));
        else
                printf("  group offsets committed\n");
        /* 3. this machine's local state */
        if (clear_local) {
                if (enc_rm_tree(enc_conf_get(conf, "state.dir")))
                        fprintf(stderr, "encore reset: could not remove "
                                        "%s\n",
                                enc_conf_get(conf, "state.dir"));
                else
                        printf("  local state removed\n");
        }
        rc = 0;
done:
        if (cur)
                rd_kafka_topic_partition_list_destroy(cur);
        if (next)
                rd_kafka_topic_partition_list_destroy(next);
        free(ranges);
        rd_kafka_destroy(rk);
        return rc;
}
