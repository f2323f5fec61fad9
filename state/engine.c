/*
 * engine.c -- deterministic event-time processing over RocksDB state.
 *
 * DESIGN
 * For each owned input partition the engine keeps
 *   stream time  the largest event time accepted on the partition;
 *   watermark W  stream time - window.grace.ms (it never goes back);
 *   a reorder buffer of accepted events not yet applied;
 *   timers       each user's wake time (cached users in a heap, the rest in
 *                the store's timers family, of which a window of the next
 *                few thousand keys is held in memory: state/timers.c).
 * An event with time < W is late and goes to the dead-letter topic. Every
 * other event is buffered, and W advances. Then everything due is applied in
 * one merged order: timers with time <= W and events with time < W, by time,
 * a timer before an event of the same time. Because that order is a function
 * of the set of events alone, the output does not depend on arrival order
 * within the grace, on how far W jumps at once, on commit timing or on what
 * the cache holds: a replay is byte-identical to the live run.
 *
 * Recovery. A checkpoint stores, in one RocksDB batch with the state, each
 * partition's position: C (smallest buffered offset, or the next offset if
 * none: where to resume), E (next offset to consume), stream time and W.
 * On restart the engine resumes at C. Records in [C, E) were handled before
 * the checkpoint: those with time >= W were in the buffer and are buffered
 * again; all others (applied, late, invalid) are skipped, so nothing is
 * applied or dead-lettered twice. From E on, processing is the live path.
 * Outputs produced after the checkpoint are produced again, identically.
 *
 * Memory. cache.max.bytes is the budget of all state (state/budget.c): the
 * engine gives the users cache its share and asks for a commit when the
 * cache is full of dirty state or when what a checkpoint would stage passes
 * the budget's commit bound. When commits happen changes no output.
 *
 * Never: read the clock; apply an event twice; advance the stored position
 * past state that is not in the same batch.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "codec.h"
#include "dedup.h"
#include "idfilter.h"
#include "log.h"
#include "reorder.h"
#include "plugin.h"
#include "timers.h"
#include "users.h"

#define ENC_TIME_NONE INT64_MIN

/* Users of buffered events read from the store in one batch (see
 * enc_engine_prefetch_add): large enough to amortise a MultiGet, small
 * next to the events the grace holds, which apply long after. */
#define ENC_PREFETCH_BATCH 128

/* Stored timers read ahead of the watermark per partition by one store
 * scan (state/timers.c): a scan per about this many timers of users not
 * cached, instead of one per timer. A window holds up to twice this many
 * keys (~28 bytes each, and as much again to merge into) and notes, all
 * charged to the cache budget (enc_engine_evict): 256 keeps that near
 * 100 KiB a partition while the scans stay under 1 in 1000 events. */
#define ENC_TIMERS_WINDOW 256

/* Users to read in one batch: their ids copied in (the callers' are
 * borrowed), with the partition and the stored timer key each was found
 * by (ENC_NO_TIMER for an arriving event's user). */
typedef struct enc_idbatch_s {
        int n;
        size_t bytes;
        int32_t part[ENC_PREFETCH_BATCH];
        int64_t timer[ENC_PREFETCH_BATCH];
        const char *id[ENC_PREFETCH_BATCH]; /* into ids */
        size_t len[ENC_PREFETCH_BATCH];
        char ids[ENC_PREFETCH_BATCH * ENC_ID_MAX];
} enc_idbatch_t;

static const char *const enc_dlq_names[ENC_DLQ__CNT] = {
    [ENC_DLQ_DECODE] = "decode",
    [ENC_DLQ_BAD_MAGIC] = "bad_magic",
    [ENC_DLQ_UNKNOWN_SCHEMA] = "unknown_schema",
    [ENC_DLQ_TRUNCATED] = "truncated",
    [ENC_DLQ_TOO_LARGE] = "too_large",
    [ENC_DLQ_INVALID] = "invalid",
    [ENC_DLQ_KEY_MISMATCH] = "key_mismatch",
    [ENC_DLQ_TOMBSTONE] = "tombstone",
    [ENC_DLQ_LATE] = "late",
    [ENC_DLQ_FUTURE] = "future",
    [ENC_DLQ_DUPLICATE] = "duplicate",
};

const char *enc_dlq_reason_name(enc_dlq_reason_t r) {
        return (unsigned)r < ENC_DLQ__CNT ? enc_dlq_names[r] : "unknown";
}

typedef struct enc_part_s {
        bool owned;
        enc_reorder_t *buf;
        int64_t stream_time;
        int64_t watermark;
        int64_t next_offset;  /* E: next offset to consume; -1 none yet */
        int64_t restore_pos;  /* next offset of the re-read pass [C, E) */
        int64_t restore_wm;   /* W of the checkpoint being resumed */
        int64_t restore_st;   /* stream time as the first pass had it at
                                 restore_pos (re-read pass) */
        int64_t scanned;      /* store timers <= this were loaded */
        int64_t last_time;    /* time of the last applied item */
        uint64_t consumed;
        uint64_t accepted;
        uint64_t applied;
        uint64_t dead_lettered;
} enc_part_t;

struct enc_engine_s {
        const enc_conf_t *conf;
        enc_store_t *store;
        enc_engine_sink_t sink;
        enc_codec_t *codec;
        enc_sig_instance_t *insts; /* [dedup] + the configured signals */
        int inst_cnt;
        enc_sig_instance_t *reg_insts; /* from the registry */
        int reg_cnt;
        int64_t dedup_window; /* 0: off; else insts[0] is dedup */
        /* notify[i * inst_cnt + k], k < nnotify[i]: the later instances
         * whose on_update takes instance i's updates, in order */
        int *notify;
        int *nnotify;
        enc_idfilter_t *idf;  /* in front of the exact check; NULL if off */
        size_t users_share;   /* users cache + what idf holds */
        enc_users_t *users;
        enc_timers_t *timers; /* windows of the store's timer index */
        enc_part_t *parts;
        int nparts;
        int64_t grace;
        int64_t max_future;
        size_t reorder_max;
        uint64_t commit_records;
        size_t commit_bytes; /* staged bytes that make a commit due */
        uint64_t since_commit;
        bool cache_full;
        enc_buf_t out;
        /* users of events about to leave the reorder buffers, not cached
         * (enc_engine_read_ahead) */
        enc_idbatch_t pf;
        struct enc_scan_ctx_s *scan; /* timer scans' batch */
        enc_engine_stats_t stats;
        enc_err_t changelog_err; /* first sink->changelog error of a stage */
        bool staged;             /* checkpoint staged, not yet committed */
        /* current record, for errors raised deep in a step */
        char *errstr;
        size_t errstr_size;
};

/* ---- construction --------------------------------------------------- */

static void enc_engine_on_flush(void *opaque, int32_t partition,
                                const char *user, size_t ulen,
                                const void *rec, size_t rec_len);

static struct enc_scan_ctx_s *enc_scan_new(void);

/* The users cache stages a timer key: the window follows the store. */
static void enc_engine_on_timer_key(void *opaque, int32_t partition, bool put,
                                    int64_t time, const char *user,
                                    size_t ulen) {
        enc_timers_note(opaque, partition, put, time, user, ulen);
}

/* True if instance @p j's on_update takes the updates of instance @p i:
 * it names i in its depends, or has no depends (then it takes all). */
static bool enc_engine_listens(const enc_engine_t *e, int j, int i) {
        const enc_signal_plugin_t *pl = e->insts[j].plugin;
        if (!pl->on_update)
                return false;
        if (!pl->depends)
                return true;
        enc_sig_ref_t refs[ENC_COMPONENTS_MAX];
        enc_sigconf_t sc;
        char err[256];
        enc_sigconf_init(&sc, e->conf, pl->name, e->insts[j].version);
        int n = pl->depends(&sc, refs, ENC_COMPONENTS_MAX, err, sizeof(err));
        if (n < 0)
                return true; /* checked at start-up; never here */
        for (int r = 0; r < n && r < ENC_COMPONENTS_MAX; r++)
                if (!strcmp(refs[r].name, e->insts[i].plugin->name) &&
                    refs[r].version == e->insts[i].version)
                        return true;
        return false;
}

/* Works out, once, which instances each instance's updates go to, so an
 * update is not offered to every later on_update to be turned down by
 * name (the plug-ins ignore what they do not depend on). */
static enc_err_t enc_engine_wire(enc_engine_t *e) {
        size_t n = (size_t)e->inst_cnt;
        e->notify = calloc(n * n + 1, sizeof(*e->notify));
        e->nnotify = calloc(n + 1, sizeof(*e->nnotify));
        if (!e->notify || !e->nnotify)
                return ENC_ERR_NOMEM;
        for (int i = 0; i < e->inst_cnt; i++)
                for (int j = i + 1; j < e->inst_cnt; j++)
                        if (enc_engine_listens(e, j, i))
                                e->notify[(size_t)i * n + (size_t)
                                          e->nnotify[i]++] = j;
        return ENC_OK;
}

enc_engine_t *enc_engine_new(const enc_conf_t *conf, enc_store_t *store,
                             const enc_engine_sink_t *sink, char *errstr,
                             size_t errstr_size) {
        enc_engine_t *e = calloc(1, sizeof(*e));
        if (!e) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return NULL;
        }
        e->conf = conf;
        e->store = store;
        e->sink = *sink;
        e->grace = enc_conf_get_int(conf, "window.grace.ms");
        e->max_future = enc_conf_get_int(conf, "event.max.future.ms");
        e->reorder_max = (size_t)enc_conf_get_int(conf, "reorder.max.events");
        e->commit_records = (uint64_t)enc_conf_get_int(conf, "commit.records");
        e->scan = enc_scan_new();
        if (!e->scan) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                free(e);
                return NULL;
        }
        enc_buf_init(&e->out, 4 << 20);

        e->codec = enc_codec_new_from_conf(conf, errstr, errstr_size);
        if (!e->codec)
                goto fail;
        if (sink->schema_lookup)
                enc_codec_set_schema_lookup(e->codec, sink->schema_lookup,
                                            sink->opaque);
        if (enc_signals_instantiate(conf, &e->reg_insts, &e->reg_cnt, errstr,
                                    errstr_size))
                goto fail;
        e->dedup_window = enc_conf_get_int(conf, "dedup.window.ms");
        int off = e->dedup_window > 0;
        e->insts = calloc((size_t)(e->reg_cnt + off) + 1, sizeof(*e->insts));
        if (!e->insts || (off && enc_dedup_instance(e->dedup_window,
                                                     &e->insts[0]))) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                goto fail;
        }
        memcpy(e->insts + off, e->reg_insts,
               (size_t)e->reg_cnt * sizeof(*e->insts));
        e->inst_cnt = e->reg_cnt + off;
        if (enc_engine_wire(e)) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                goto fail;
        }
        enc_budget_t budget;
        enc_budget_split((size_t)enc_conf_get_int(conf, "cache.max.bytes"),
                         &budget);
        e->commit_bytes = budget.commit_bytes;
        e->users_share = budget.users;
        /* what the filter holds comes out of the users share
         * (enc_engine_evict) */
        if (off && !(e->idf = enc_idfilter_new(e->dedup_window,
                                               budget.idfilter))) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                goto fail;
        }
        e->users = enc_users_new(e->insts, e->inst_cnt, store, budget.users);
        if (!e->users) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                goto fail;
        }
        enc_users_set_flush_cb(e->users, enc_engine_on_flush, e);
        e->timers = enc_timers_new(ENC_TIMERS_WINDOW);
        if (!e->timers) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                goto fail;
        }
        enc_users_set_timer_cb(e->users, enc_engine_on_timer_key, e->timers);
        return e;
fail:
        enc_engine_destroy(e);
        return NULL;
}

/* The codec is the engine's; the id comes from the consumer's registry. */
void enc_engine_set_output_schema_id(enc_engine_t *e, int32_t id) {
        enc_codec_set_reward_update_schema_id(e->codec, id);
}

void enc_engine_destroy(enc_engine_t *e) {
        if (!e)
                return;
        enc_users_destroy(e->users);
        enc_timers_destroy(e->timers);
        enc_idfilter_destroy(e->idf);
        if (e->insts && e->dedup_window > 0)
                enc_dedup_instance_free(&e->insts[0]);
        free(e->insts);
        free(e->notify);
        free(e->nnotify);
        enc_signals_destroy(e->reg_insts, e->reg_cnt);
        for (int i = 0; i < e->nparts; i++)
                enc_reorder_destroy(e->parts[i].buf);
        free(e->parts);
        enc_codec_destroy(e->codec);
        enc_buf_free(&e->out);
        free(e->scan);
        free(e);
}

static enc_part_t *enc_engine_part(enc_engine_t *e, int32_t partition) {
        if (partition < 0 || partition >= e->nparts ||
            !e->parts[partition].owned)
                return NULL;
        return &e->parts[partition];
}

/* ---- partition lifecycle -------------------------------------------- */

static void enc_part_meta(const enc_engine_t *e, int32_t partition,
                          enc_store_meta_t *m);

/* The id filter is kept in the store's meta family, beside the position
 * it was written with (state/idfilter.h). */
static void enc_idf_io_put(void *opaque, int32_t partition, const void *key,
                           size_t klen, const void *val, size_t vlen) {
        enc_store_put_meta_key(opaque, partition, key, klen, val, vlen);
}

static void enc_idf_io_del(void *opaque, int32_t partition, const void *key,
                           size_t klen) {
        enc_store_del_meta_key(opaque, partition, key, klen);
}

static void enc_idf_io_del_range(void *opaque, int32_t partition,
                                 const void *lo, size_t lolen, const void *hi,
                                 size_t hilen) {
        enc_store_del_meta_keys(opaque, partition, lo, lolen, hi, hilen);
}

static enc_err_t enc_idf_io_get(void *opaque, int32_t partition,
                                const void *key, size_t klen, enc_buf_t *out,
                                bool *found) {
        char err[256];
        enc_err_t e = enc_store_get_meta_key(opaque, partition, key, klen, out,
                                             found, err, sizeof(err));
        if (e)
                enc_log_warn("idfilter_read", "partition=%d error=\"%s\"",
                             partition, err);
        return e;
}

static void enc_idf_io(enc_engine_t *e, enc_idfilter_io_t *io) {
        io->put = enc_idf_io_put;
        io->del = enc_idf_io_del;
        io->del_range = enc_idf_io_del_range;
        io->get = enc_idf_io_get;
        io->opaque = e->store;
}

/* The tag a saved id filter carries: the position record it was committed
 * with, as encoded. A filter is used only by the position it describes. */
static void enc_idf_tag(const enc_store_meta_t *m, enc_buf_t *b) {
        enc_buf_reset(b);
        enc_store_meta_encode(m, b);
}

/* Resumes the partition's id filter from the one committed with its stored
 * position @p m, if there is one and it reads back whole. Any other
 * outcome (none, another position's, damaged) says why in the log and
 * leaves the partition to start as it did before filters were saved. */
static bool enc_engine_idf_load(enc_engine_t *e, int32_t partition,
                                const enc_store_meta_t *m) {
        enc_idfilter_io_t io;
        enc_idf_io(e, &io);
        enc_buf_t tag;
        enc_buf_init(&tag, 256);
        enc_idf_tag(m, &tag);
        int64_t horizon = INT64_MIN;
        if (m->watermark != ENC_TIME_NONE &&
            m->watermark >= INT64_MIN + e->dedup_window)
                horizon = m->watermark - e->dedup_window;
        char why[160];
        enc_err_t err =
                tag.failed ? ENC_ERR_TOO_LARGE
                           : enc_idfilter_load(e->idf, partition, tag.data,
                                               tag.len, m->watermark, horizon,
                                               &io, why, sizeof(why));
        enc_buf_free(&tag);
        if (!err) {
                e->stats.idfilter_loaded++;
                enc_log_info("idfilter_resume",
                             "partition=%d complete_from=%lld", partition,
                             (long long)enc_idfilter_complete_from(e->idf,
                                                                   partition));
                return true;
        }
        if (err == ENC_ERR_NOT_FOUND)
                enc_log_info("idfilter_not_resumed",
                             "partition=%d reason=\"%s\"", partition, why);
        else
                enc_log_warn("idfilter_not_resumed",
                             "partition=%d error=%s reason=\"%s\"", partition,
                             enc_err2str(err), why);
        return false;
}

/* Starts the partition's id filter complete from where the state's history
 * is known (state/idfilter.c): a resumed checkpoint's user records hold
 * only events applied before its watermark W, and every event at or after
 * W is re-read or new, so from W; a partition with no position and no user
 * record has no history; one with user records but no position, anything.
 * A partition assigned again while owned keeps its filter: cached users
 * may hold what it saw. */
static enc_err_t enc_engine_idf_assign(enc_engine_t *e, int32_t partition,
                                       bool was_owned,
                                       const enc_store_meta_t *m,
                                       char *errstr, size_t errstr_size) {
        if (!e->idf)
                return ENC_OK;
        if (m && !was_owned && enc_engine_idf_load(e, partition, m))
                return ENC_OK;
        int64_t from = m ? m->watermark : INT64_MIN;
        if (!m && !was_owned) {
                bool any;
                enc_err_t err = enc_store_has_users(e->store, partition, &any,
                                                    errstr, errstr_size);
                if (err)
                        return err;
                if (any)
                        from = ENC_IDFILTER_UNKNOWN;
        }
        if (was_owned)
                from = ENC_IDFILTER_UNKNOWN; /* used only if it had none */
        if (enc_idfilter_assign(e->idf, partition, from))
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        return ENC_OK;
}

enc_err_t enc_engine_assign(enc_engine_t *e, int32_t partition,
                            int64_t *resume, char *errstr,
                            size_t errstr_size) {
        if (partition < 0 || partition > 1 << 20)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "partition %d out of range", partition);
        if (partition >= e->nparts) {
                int n = partition + 1;
                enc_part_t *np = realloc(e->parts, (size_t)n * sizeof(*np));
                if (!np)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                          "out of memory");
                memset(np + e->nparts, 0,
                       (size_t)(n - e->nparts) * sizeof(*np));
                e->parts = np;
                e->nparts = n;
        }
        enc_part_t *p = &e->parts[partition];
        bool was_owned = p->owned;
        if (!p->buf && !(p->buf = enc_reorder_new(e->dedup_window > 0)))
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        enc_reorder_clear(p->buf);
        p->owned = true;
        p->stream_time = p->watermark = ENC_TIME_NONE;
        p->next_offset = p->restore_pos = -1;
        p->restore_wm = p->restore_st = ENC_TIME_NONE;
        p->scanned = ENC_TIME_NONE;
        /* the store may have been written while not owned (a restore):
         * the first advance reads the timers from it */
        enc_timers_drop(e->timers, partition);
        p->last_time = ENC_TIME_NONE;
        p->consumed = p->accepted = p->applied = p->dead_lettered = 0;
        *resume = -1;

        enc_store_meta_t m;
        bool found = false;
        enc_err_t err = enc_store_get_meta(e->store, partition, &m, &found,
                                           errstr, errstr_size);
        if (err == ENC_ERR_CORRUPT)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CORRUPT,
                                  "partition %d: stored position record is "
                                  "corrupt; refusing to guess where to "
                                  "resume (remove the state directory to "
                                  "rebuild)",
                                  partition);
        if (err)
                return err;
        err = enc_engine_idf_assign(e, partition, was_owned, found ? &m : NULL,
                                    errstr, errstr_size);
        if (err || !found)
                return err;
        int64_t c = m.commit_offset, en = m.next_offset, st = m.stream_time,
                wm = m.watermark;
        p->stream_time = st;
        p->watermark = wm;
        p->scanned = wm;
        p->last_time = wm;
        p->next_offset = en;
        p->restore_pos = c;
        p->restore_wm = wm;
        p->restore_st = m.stream_time_c;
        *resume = c;
        enc_log_info("partition_resume",
                     "partition=%d offset=%lld rebuffer_until=%lld "
                     "watermark=%lld",
                     partition, (long long)c, (long long)en, (long long)wm);
        return ENC_OK;
}

bool enc_engine_owns(const enc_engine_t *e, int32_t partition) {
        return partition >= 0 && partition < e->nparts &&
               e->parts[partition].owned;
}

void enc_engine_revoke(enc_engine_t *e, int32_t partition) {
        enc_part_t *p = enc_engine_part(e, partition);
        if (!p)
                return;
        enc_reorder_clear(p->buf);
        e->pf.n = 0; /* never load a user of a partition given up */
        e->pf.bytes = 0;
        enc_users_drop_partition(e->users, partition);
        enc_timers_drop(e->timers, partition);
        enc_idfilter_revoke(e->idf, partition);
        p->owned = false;
}

/* ---- emitting ------------------------------------------------------- */

typedef struct enc_step_s {
        enc_engine_t *e;
        enc_user_t *u;
        int inst; /* index of the instance whose emitter this is */
        const enc_event_t *ev; /* the step's event; NULL in a timer step */
} enc_step_t;

static enc_err_t enc_engine_emit_cb(void *opaque, const enc_update_t *up);

static void enc_step_emitter(enc_step_t *s, enc_emitter_t *em) {
        const enc_sig_instance_t *in = &s->e->insts[s->inst];
        em->user_id = s->u->user_id;
        em->signal_name = in->plugin->name;
        em->signal_version = in->version;
        em->cb = enc_engine_emit_cb;
        em->opaque = s;
        em->event = s->ev;
}

/* Encodes and outputs @p up, then hands it to the on_update of every later
 * instance, synchronously, so derived signals see it within the step. */
static enc_err_t enc_engine_emit_cb(void *opaque, const enc_update_t *up) {
        enc_step_t *s = opaque;
        enc_engine_t *e = s->e;
        enc_buf_reset(&e->out);
        enc_err_t err = enc_codec_encode_update(e->codec, up, &e->out);
        if (err)
                return enc_seterr(e->errstr, e->errstr_size, err,
                                  "cannot encode a %s update: %s", up->signal,
                                  enc_err2str(err));
        err = e->sink.output(e->sink.opaque, s->u->partition, s->u->user_id,
                             s->u->ulen, e->out.data, e->out.len, up);
        if (err)
                return err;
        e->stats.updates++;
        const int *to = &e->notify[(size_t)s->inst * (size_t)e->inst_cnt];
        for (int k = 0; k < e->nnotify[s->inst]; k++) {
                int j = to[k];
                const enc_signal_plugin_t *pl = e->insts[j].plugin;
                enc_step_t sj = {e, s->u, j, s->ev};
                enc_emitter_t em;
                enc_step_emitter(&sj, &em);
                err = pl->on_update(e->insts[j].priv, &s->u->states[j], up,
                                    &em);
                if (err)
                        return err;
        }
        return ENC_OK;
}

static enc_err_t enc_engine_signal_err(enc_engine_t *e, int inst,
                                       const char *what, enc_err_t err) {
        if (e->errstr && e->errstr_size && !e->errstr[0])
                enc_seterr(e->errstr, e->errstr_size, err,
                           "signal %s:%d %s failed: %s",
                           e->insts[inst].plugin->name, e->insts[inst].version,
                           what, enc_err2str(err));
        return err;
}

/* ---- applying events and timers ------------------------------------- */

static enc_err_t enc_idbatch_load(enc_engine_t *e, enc_idbatch_t *b);

static enc_err_t enc_engine_apply_event(enc_engine_t *e, int32_t partition,
                                        const enc_event_t *ev) {
        enc_user_t *u;
        size_t ulen = strlen(ev->user_id);
        enc_err_t err;
        /* The read-ahead batch is loaded when full or, as here, when an
         * event it may hold is due (see enc_engine_read_ahead). */
        if (e->pf.n &&
            !enc_users_cached(e->users, partition, ev->user_id, ulen) &&
            (err = enc_idbatch_load(e, &e->pf)))
                return err;
        err = enc_users_get(e->users, partition, ev->user_id, ulen,
                            ENC_NO_TIMER, &u, e->errstr, e->errstr_size);
        if (err)
                return err;
        for (int i = 0; i < e->inst_cnt; i++) {
                enc_step_t s = {e, u, i, ev};
                enc_emitter_t em;
                enc_step_emitter(&s, &em);
                err = e->insts[i].plugin->on_event(e->insts[i].priv,
                                                   &u->states[i], ev, &em);
                if (err)
                        return enc_engine_signal_err(e, i, "on_event", err);
        }
        enc_users_changed(e->users, u);
        e->stats.applied++;
        return ENC_OK;
}

static enc_err_t enc_engine_fire(enc_engine_t *e, enc_user_t *u,
                                 int64_t now) {
        enc_err_t err;
        for (int i = 0; i < e->inst_cnt; i++) {
                const enc_signal_plugin_t *pl = e->insts[i].plugin;
                if (!u->states[i] || !pl->on_timer || !pl->next_timer ||
                    pl->next_timer(e->insts[i].priv, u->states[i]) > now)
                        continue;
                enc_step_t s = {e, u, i, NULL};
                enc_emitter_t em;
                enc_step_emitter(&s, &em);
                err = pl->on_timer(e->insts[i].priv, &u->states[i], now, &em);
                if (err)
                        return enc_engine_signal_err(e, i, "on_timer", err);
        }
        e->stats.timers_fired++;
        if (enc_users_changed(e->users, u) > now) {
                return ENC_OK;
        }
        /* A plug-in broke the contract (next_timer <= now after on_timer).
         * Drop that state rather than loop forever, and say so. */
        for (int i = 0; i < e->inst_cnt; i++) {
                const enc_signal_plugin_t *pl = e->insts[i].plugin;
                if (u->states[i] && pl->next_timer &&
                    pl->next_timer(e->insts[i].priv, u->states[i]) <= now) {
                        enc_log_error("signal_timer_stuck",
                                      "signal=%s version=%d partition=%d "
                                      "now=%lld action=drop_state",
                                      pl->name, e->insts[i].version,
                                      u->partition, (long long)now);
                        pl->state_free(e->insts[i].priv, u->states[i]);
                        u->states[i] = NULL;
                }
        }
        enc_users_changed(e->users, u);
        return ENC_OK;
}

/* Adds a user (@p ulen <= ENC_ID_MAX) to @p b; true when @p b is full. */
static bool enc_idbatch_add(enc_idbatch_t *b, int32_t partition,
                            int64_t timer, const char *user, size_t ulen) {
        b->part[b->n] = partition;
        b->timer[b->n] = timer;
        b->id[b->n] = b->ids + b->bytes;
        b->len[b->n] = ulen;
        memcpy(b->ids + b->bytes, user, ulen);
        b->bytes += ulen;
        return ++b->n == ENC_PREFETCH_BATCH;
}

/* Loads the users of @p b not cached with one batched read (a share of a
 * MultiGet each instead of a Get), then empties @p b. */
static enc_err_t enc_idbatch_load(enc_engine_t *e, enc_idbatch_t *b) {
        enc_err_t err = enc_users_prefetch(
                e->users, b->part, b->id, b->len, b->timer, (size_t)b->n,
                e->errstr, e->errstr_size);
        b->n = 0;
        b->bytes = 0;
        return err;
}

typedef struct enc_scan_ctx_s {
        enc_engine_t *e;
        int32_t partition;
        int64_t upto;
        /* due users not cached, read in batches: a burst of timers (a day
         * ending for every user at once) costs a share of a MultiGet per
         * user instead of a Get each */
        enc_idbatch_t due;
} enc_scan_ctx_t;

static enc_scan_ctx_t *enc_scan_new(void) {
        return malloc(sizeof(enc_scan_ctx_t));
}

/* A stored timer at @p t <= upto: its user is loaded unless cached (then
 * the heap is authoritative for it), in the scan's batches. */
static enc_err_t enc_scan_due(enc_scan_ctx_t *sc, int64_t t, const char *user,
                              size_t ulen) {
        if (enc_users_cached(sc->e->users, sc->partition, user, ulen))
                return ENC_OK;
        if (ulen > ENC_ID_MAX) { /* not from encore: load it alone */
                enc_user_t *u;
                return enc_users_get(sc->e->users, sc->partition, user, ulen,
                                     t, &u, sc->e->errstr, sc->e->errstr_size);
        }
        if (enc_idbatch_add(&sc->due, sc->partition, t, user, ulen))
                return enc_idbatch_load(sc->e, &sc->due);
        return ENC_OK;
}

static enc_err_t enc_scan_cb(void *opaque, int64_t t, const char *user,
                             size_t ulen) {
        enc_scan_ctx_t *sc = opaque;
        if (t > sc->upto) /* the window; stop when it is full */
                return enc_timers_refill_add(sc->e->timers, sc->partition, t,
                                             user, ulen)
                               ? ENC_ERR_ABORTED
                               : ENC_OK;
        return enc_scan_due(sc, t, user, ulen);
}

/* Loads users whose stored timers fall in (scanned, W] into the cache, where
 * the heap orders them with everyone else. They come from the partition's
 * window of the store's timer index when it reaches past W (no RocksDB
 * read at all), else from a store scan that also refills the window with
 * the next ENC_TIMERS_WINDOW keys. */
static enc_err_t enc_engine_load_due(enc_engine_t *e, int32_t partition,
                                     enc_part_t *p) {
        int64_t w = p->watermark;
        if (w <= p->scanned)
                return ENC_OK;
        /* the context holds a batch of ids: too big for the stack */
        enc_scan_ctx_t *sc = e->scan;
        sc->e = e;
        sc->partition = partition;
        sc->upto = w;
        sc->due.n = 0;
        sc->due.bytes = 0;
        enc_err_t err = ENC_OK;
        if (enc_timers_covers(e->timers, partition, p->scanned, w)) {
                int64_t t;
                const char *id;
                size_t ulen;
                while (!err && enc_timers_pop(e->timers, partition, w, &t, &id,
                                              &ulen))
                        err = enc_scan_due(sc, t, id, ulen);
        } else {
                e->stats.timer_scans++;
                enc_timers_refill_begin(e->timers, partition, w);
                err = enc_store_scan_timers(e->store, partition, p->scanned,
                                            INT64_MAX, enc_scan_cb, sc,
                                            e->errstr, e->errstr_size);
                if (!err || err == ENC_ERR_ABORTED)
                        enc_timers_refill_end(e->timers, partition, !err);
                if (err == ENC_ERR_ABORTED)
                        err = ENC_OK;
        }
        if (!err && sc->due.n)
                err = enc_idbatch_load(e, &sc->due);
        if (err) {
                /* what it read is not known to be in the cache */
                enc_timers_drop(e->timers, partition);
                return err;
        }
        p->scanned = w;
        return ENC_OK;
}

/* Applies everything due under the partition's watermark, in order. */
static enc_err_t enc_engine_read_ahead(enc_engine_t *e, int32_t partition,
                                       enc_part_t *p);

static enc_err_t enc_engine_advance(enc_engine_t *e, int32_t partition,
                                    enc_part_t *p) {
        enc_err_t err = enc_engine_load_due(e, partition, p);
        if (!err)
                err = enc_engine_read_ahead(e, partition, p);
        if (err)
                return err;
        int64_t w = p->watermark;
        for (;;) {
                const enc_event_t *ev = enc_reorder_peek(p->buf);
                enc_user_t *tu = enc_users_next_timer(e->users, partition, w);
                bool ev_due = ev && ev->event_time < w;
                bool tm_due = tu != NULL;
                if (tm_due && (!ev_due || tu->wake <= ev->event_time)) {
                        /* Time never runs backwards for a signal, even if a
                         * plug-in asked for a timer in the past. */
                        int64_t now = tu->wake > p->last_time ? tu->wake
                                                              : p->last_time;
                        p->last_time = now;
                        err = enc_engine_fire(e, tu, now);
                } else if (ev_due) {
                        p->last_time = ev->event_time;
                        p->applied++;
                        err = enc_engine_apply_event(e, partition, ev);
                        enc_reorder_pop(p->buf);
                } else {
                        break;
                }
                if (err)
                        return err;
        }
        return ENC_OK;
}

/* Evicts clean users over the cache budget (the users share less what the
 * id filter and the timer windows hold). An evicted user is clean, so its
 * timer key is in the store's batch already, and in its partition's timer
 * window if the window reaches that far (state/timers.c): nothing to do
 * for its timer. */
static void enc_engine_evict(enc_engine_t *e) {
        /* a table per partition at least: many partitions can pass the
         * filter's cap; the cache keeps half the share */
        size_t fb = enc_timers_bytes(e->timers);
        if (e->idf)
                fb += enc_idfilter_bytes(e->idf);
        if (fb > e->users_share / 2)
                fb = e->users_share / 2;
        enc_users_set_max_bytes(e->users, e->users_share - fb);
        if (enc_users_evict(e->users))
                e->cache_full = true;
}

/* ---- records -------------------------------------------------------- */

/*
 * Read-ahead. The user of a buffered event is looked up when the watermark
 * releases the event, a grace period of input later. The users of the
 * events about to leave -- the held arrivals whose times are within the
 * span of the next ENC_READ_AHEAD events -- are read ENC_PREFETCH_BATCH at
 * a time with one MultiGet (enc_idbatch_load), so a cold user costs a
 * share of a batched read instead of a synchronous Get on the apply path.
 * A batch is read when full, or when an event it may hold is due
 * (enc_engine_apply_event). Reading at arrival instead, a grace ahead, was
 * tried: with state far larger than the cache, most of the users read were
 * evicted again before their events applied (every commit puts the users
 * it wrote ahead of them in the LRU) and were read twice. Only what is
 * cached changes, never an output: a user evicted before its event applies
 * is read again then.
 *
 * The span: the held events cover stream time - watermark (the grace) and
 * leave in time order, so the next ENC_READ_AHEAD of them lie within that
 * span times ENC_READ_AHEAD / held, assuming an even rate.
 */
#define ENC_READ_AHEAD (2 * ENC_PREFETCH_BATCH)

static enc_err_t enc_engine_prefetch_add(enc_engine_t *e, int32_t partition,
                                         const char *user) {
        size_t ulen = strlen(user);
        if (ulen > ENC_ID_MAX ||
            enc_users_cached(e->users, partition, user, ulen))
                return ENC_OK;
        if (enc_idbatch_add(&e->pf, partition, ENC_NO_TIMER, user, ulen))
                return enc_idbatch_load(e, &e->pf);
        return ENC_OK;
}

static enc_err_t enc_engine_read_ahead(enc_engine_t *e, int32_t partition,
                                       enc_part_t *p) {
        size_t held = enc_reorder_count(p->buf);
        if (!held || p->watermark == ENC_TIME_NONE)
                return ENC_OK;
        int64_t before = INT64_MAX;
        if (held > ENC_READ_AHEAD) {
                double span = (double)(p->stream_time - p->watermark) *
                              ENC_READ_AHEAD / (double)held;
                before = p->watermark + (int64_t)span + 1;
        }
        const enc_event_t *ev;
        while ((ev = enc_reorder_next_arrival(p->buf, before))) {
                enc_err_t err =
                        enc_engine_prefetch_add(e, partition, ev->user_id);
                if (err)
                        return err;
        }
        return ENC_OK;
}

static enc_dlq_reason_t enc_dlq_from_err(enc_err_t err) {
        switch (err) {
        case ENC_ERR_BAD_MAGIC:
                return ENC_DLQ_BAD_MAGIC;
        case ENC_ERR_UNKNOWN_SCHEMA:
                return ENC_DLQ_UNKNOWN_SCHEMA;
        case ENC_ERR_TRUNCATED:
                return ENC_DLQ_TRUNCATED;
        case ENC_ERR_TOO_LARGE:
                return ENC_DLQ_TOO_LARGE;
        case ENC_ERR_INVALID_FIELD:
                return ENC_DLQ_INVALID;
        default:
                return ENC_DLQ_DECODE;
        }
}

static enc_err_t enc_engine_dead_letter(enc_engine_t *e,
                                        const enc_record_t *rec,
                                        enc_dlq_reason_t reason,
                                        const char *detail) {
        enc_dead_letter_t dl = {rec, reason, detail};
        e->stats.dead_lettered[reason]++;
        if (rec->partition >= 0 && rec->partition < e->nparts)
                e->parts[rec->partition].dead_lettered++;
        return e->sink.dead_letter(e->sink.opaque, &dl);
}

/* True if @p ev repeats an event id of its user seen within the dedup
 * window: still waiting in the buffer, or already applied. *idkey is the
 * event's id filter key, for enc_engine_idf_add if it is buffered. */
static enc_err_t enc_engine_is_dup(enc_engine_t *e, int32_t partition,
                                   enc_part_t *p, const enc_event_t *ev,
                                   bool *dup, uint64_t *idkey) {
        *dup = false;
        *idkey = 0;
        if (e->dedup_window <= 0)
                return ENC_OK;
        /* A copy counts if its event time is within the window before this
         * one's (or after it). Measured from the event, not from the
         * watermark, the answer does not depend on how far the watermark
         * had moved when the record arrived: the re-read pass after a
         * restart decides exactly as the first pass did. */
        int64_t since = ev->event_time >= INT64_MIN + e->dedup_window
                                ? ev->event_time - e->dedup_window
                                : INT64_MIN;
        if (enc_reorder_contains(p->buf, ev->user_id, ev->event_id, since)) {
                *dup = true;
                return ENC_OK;
        }
        size_t ulen = strlen(ev->user_id);
        uint64_t hash = enc_dedup_hash(ev->event_id);
        *idkey = enc_idfilter_key(ev->user_id, ulen, hash);
        e->stats.dedup_checks++;
        /* "No copy can exist" spares loading the user; "maybe" checks the
         * applied ids exactly, as without the filter. */
        if (!enc_idfilter_maybe(e->idf, partition, *idkey, since)) {
                e->stats.dedup_filter_no++;
                return ENC_OK;
        }
        enc_user_t *u;
        enc_err_t err = enc_users_get(e->users, partition, ev->user_id, ulen,
                                      ENC_NO_TIMER, &u, e->errstr,
                                      e->errstr_size);
        if (err)
                return err;
        *dup = enc_dedup_seen(&e->insts[0], u->states[0], hash, since);
        return ENC_OK;
}

/* Records a buffered event in the id filter. Later queries of the
 * partition are about events at or after the watermark, so their since is
 * at or after watermark - window: entries before that may go. */
static void enc_engine_idf_add(enc_engine_t *e, int32_t partition,
                               const enc_part_t *p, const enc_event_t *ev,
                               uint64_t idkey) {
        if (!e->idf)
                return;
        int64_t w = p->watermark, horizon = INT64_MIN;
        if (w != ENC_TIME_NONE && w >= INT64_MIN + e->dedup_window)
                horizon = w - e->dedup_window;
        enc_idfilter_add(e->idf, partition, idkey, ev->event_time, horizon);
}

/* Decodes and checks a record. ENC_OK with *ev filled, or a dead-letter
 * reason in *reason with detail in @p detail. */
static bool enc_engine_parse(enc_engine_t *e, const enc_record_t *rec,
                             enc_event_t *ev, enc_dlq_reason_t *reason,
                             char *detail, size_t detail_size) {
        if (!rec->value) {
                *reason = ENC_DLQ_TOMBSTONE;
                snprintf(detail, detail_size, "record has a null value");
                return false;
        }
        enc_err_t err = enc_codec_decode_event(e->codec, rec->value,
                                               rec->value_len, ev, detail,
                                               detail_size);
        if (!err)
                err = enc_event_validate(ev, detail, detail_size);
        if (err) {
                *reason = enc_dlq_from_err(err);
                return false;
        }
        size_t ulen = strlen(ev->user_id);
        if (!rec->key || rec->key_len != ulen ||
            memcmp(rec->key, ev->user_id, ulen)) {
                *reason = ENC_DLQ_KEY_MISMATCH;
                snprintf(detail, detail_size,
                         "record key %s the event's user_id: events must be "
                         "keyed by user id so each user's state lives on one "
                         "partition",
                         rec->key ? "differs from" : "is missing; expected");
                return false;
        }
        return true;
}

/* True if @p t is further ahead of stream time @p st than
 * event.max.future.ms allows. */
static bool enc_engine_is_future(const enc_engine_t *e, int64_t st,
                                 int64_t t) {
        return st != ENC_TIME_NONE && t > st && t - st > e->max_future;
}

/*
 * The re-read pass over [C, E) after a restart or a restore: the records
 * the checkpoint still held in the buffer are buffered again, nothing else
 * (the rest was applied or dead-lettered before the checkpoint).
 *
 * Held at the checkpoint = accepted by the first pass and not yet passed by
 * its watermark. So a valid record is buffered again iff its time is at or
 * after the stored watermark (a record late then is before it), it was not
 * too far in the future (stream time is followed from the value stored for
 * offset C: every valid, not-future record moves it, duplicates included,
 * exactly as in the first pass), and it is not a duplicate (decided on
 * event time alone, so the same now as then). @p ev is NULL for a record
 * that did not decode.
 */
static enc_err_t enc_engine_reread(enc_engine_t *e, const enc_record_t *rec,
                                   enc_part_t *p, const enc_event_t *ev) {
        p->restore_pos = rec->offset + 1;
        int64_t st_before = p->restore_st;
        bool keep = ev != NULL;
        if (keep && enc_engine_is_future(e, st_before, ev->event_time))
                keep = false;
        else if (keep && (st_before == ENC_TIME_NONE ||
                          ev->event_time > st_before))
                p->restore_st = ev->event_time;
        if (keep && ev->event_time < p->restore_wm)
                keep = false;
        uint64_t idkey = 0;
        if (keep) {
                bool dup;
                if (enc_engine_is_dup(e, rec->partition, p, ev, &dup, &idkey))
                        return ENC_ERR_STATE;
                keep = !dup;
        }
        if (p->restore_pos == p->next_offset &&
            p->restore_st != p->stream_time)
                /* a checkpoint written before stream time at C was
                 * recorded (or a bug): say so, it may explain a repeat that
                 * is not identical */
                enc_log_warn("reread_stream_time",
                             "partition=%d followed=%lld stored=%lld",
                             rec->partition, (long long)p->restore_st,
                             (long long)p->stream_time);
        if (!keep) {
                e->stats.skipped_restore++;
                return ENC_OK;
        }
        enc_err_t err = enc_reorder_push(p->buf, ev, rec->offset, st_before);
        if (err)
                return enc_seterr(e->errstr, e->errstr_size, err,
                                  "out of memory buffering events");
        enc_engine_idf_add(e, rec->partition, p, ev, idkey);
        e->stats.accepted++;
        return ENC_OK;
}

enc_err_t enc_engine_record(enc_engine_t *e, const enc_record_t *rec,
                            char *errstr, size_t errstr_size) {
        enc_part_t *p = enc_engine_part(e, rec->partition);
        if (!p)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "record for partition %d, which is not "
                                  "assigned",
                                  rec->partition);
        e->errstr = errstr;
        e->errstr_size = errstr_size;
        if (errstr && errstr_size)
                errstr[0] = '\0';
        e->stats.consumed++;
        p->consumed++;

        enc_event_t ev;
        enc_dlq_reason_t reason;
        char detail[256];
        bool ok = enc_engine_parse(e, rec, &ev, &reason, detail,
                                   sizeof(detail));
        enc_err_t err = ENC_OK;

        if (rec->offset < p->next_offset) {
                if (rec->offset >= p->restore_pos)
                        return enc_engine_reread(e, rec, p, ok ? &ev : NULL);
                e->stats.skipped_restore++;
                return ENC_OK;
        }
        p->next_offset = rec->offset + 1;
        p->restore_pos = p->next_offset;
        e->since_commit++;

        int64_t st_before = p->stream_time;
        if (ok && enc_engine_is_future(e, st_before, ev.event_time)) {
                ok = false;
                reason = ENC_DLQ_FUTURE;
                snprintf(detail, sizeof(detail),
                         "event_time is %lld ms ahead of stream time "
                         "(event.max.future.ms=%lld)",
                         (long long)(ev.event_time - p->stream_time),
                         (long long)e->max_future);
        }
        if (ok && p->watermark != ENC_TIME_NONE &&
            ev.event_time < p->watermark) {
                ok = false;
                reason = ENC_DLQ_LATE;
                snprintf(detail, sizeof(detail),
                         "event_time is %lld ms behind the watermark "
                         "(window.grace.ms=%lld)",
                         (long long)(p->watermark - ev.event_time),
                         (long long)e->grace);
        }
        if (!ok)
                return enc_engine_dead_letter(e, rec, reason, detail);
        /* Valid and in time: it moves stream time even if it turns out to
         * be a duplicate, so the re-read pass can follow stream time from
         * the records alone (see enc_engine_reread). */
        if (p->stream_time == ENC_TIME_NONE || ev.event_time > p->stream_time)
                p->stream_time = ev.event_time;
        bool dup;
        uint64_t idkey;
        err = enc_engine_is_dup(e, rec->partition, p, &ev, &dup, &idkey);
        if (err)
                return err;
        if (dup) {
                snprintf(detail, sizeof(detail),
                         "event_id seen before for this user within "
                         "dedup.window.ms=%lld",
                         (long long)e->dedup_window);
                err = enc_engine_dead_letter(e, rec, ENC_DLQ_DUPLICATE,
                                             detail);
                if (err)
                        return err;
        } else {
                err = enc_reorder_push(p->buf, &ev, rec->offset, st_before);
                if (err)
                        return enc_seterr(errstr, errstr_size, err,
                                          "out of memory buffering events");
                enc_engine_idf_add(e, rec->partition, p, &ev, idkey);
                e->stats.accepted++;
                p->accepted++;
        }
        int64_t w = p->stream_time - e->grace;
        if (enc_reorder_count(p->buf) > e->reorder_max) {
                /* Bounded memory: let the oldest held event through. The
                 * input decides when this happens, not the clock, so it is
                 * as deterministic as the grace itself. */
                int64_t oldest = enc_reorder_peek(p->buf)->event_time + 1;
                if (oldest > w) {
                        w = oldest;
                        e->stats.forced_watermark++;
                }
        }
        if (p->watermark == ENC_TIME_NONE || w > p->watermark)
                p->watermark = w;
        err = enc_engine_advance(e, rec->partition, p);
        if (err)
                return err;
        enc_engine_evict(e);
        return ENC_OK;
}

/* ---- commits -------------------------------------------------------- */

bool enc_engine_commit_due(const enc_engine_t *e) {
        return e->since_commit >= e->commit_records || e->cache_full ||
               enc_users_dirty_bytes(e->users) >= e->commit_bytes;
}

/* C, and the stream time before C was consumed. While the re-read pass is
 * under way, the records in [restore_pos, E) may still have to go back into
 * the buffer, so C stays at or before restore_pos: a checkpoint taken right
 * after a restart or a restore, before the re-read has begun, must not jump
 * C to E and forget the events the previous checkpoint still held. */
static int64_t enc_part_commit_offset(const enc_part_t *p, int64_t *st_c) {
        int64_t m = enc_reorder_min_offset(p->buf);
        bool rereading = p->restore_pos >= 0 && p->restore_pos < p->next_offset;
        if (m >= 0 && (!rereading || m < p->restore_pos)) {
                *st_c = enc_reorder_min_mark(p->buf, p->stream_time);
                return m;
        }
        if (rereading) {
                *st_c = p->restore_st;
                return p->restore_pos;
        }
        *st_c = p->stream_time;
        return p->next_offset;
}

int64_t enc_engine_commit_offset(const enc_engine_t *e, int32_t partition) {
        if (partition < 0 || partition >= e->nparts ||
            !e->parts[partition].owned)
                return -1;
        int64_t st_c;
        return enc_part_commit_offset(&e->parts[partition], &st_c);
}

static void enc_part_meta(const enc_engine_t *e, int32_t partition,
                          enc_store_meta_t *m) {
        const enc_part_t *p = &e->parts[partition];
        m->commit_offset = enc_part_commit_offset(p, &m->stream_time_c);
        m->next_offset = p->next_offset;
        m->stream_time = p->stream_time;
        m->watermark = p->watermark;
        m->changelog_end = -1;
}

/* The users cache tells us each user it writes; mirror it to the sink's
 * changelog as 'U' + user id. */
static void enc_engine_on_flush(void *opaque, int32_t partition,
                                const char *user, size_t ulen,
                                const void *rec, size_t rec_len) {
        enc_engine_t *e = opaque;
        if (!e->sink.changelog || e->changelog_err)
                return;
        char key[1 + ENC_ID_MAX];
        if (ulen > ENC_ID_MAX)
                ulen = ENC_ID_MAX; /* cannot happen: ids are capped */
        key[0] = 'U';
        memcpy(key + 1, user, ulen);
        e->changelog_err = e->sink.changelog(e->sink.opaque, partition, key,
                                             ulen + 1, rec, rec_len, false);
}

enc_err_t enc_engine_checkpoint_stage(enc_engine_t *e, char *errstr,
                                      size_t errstr_size) {
        e->changelog_err = ENC_OK;
        enc_err_t err = ENC_OK;
        /* A begin record per partition, so a restore drops user records of
         * a commit that never reached its position record. */
        for (int i = 0; i < e->nparts && !err && e->sink.changelog; i++)
                if (e->parts[i].owned && e->parts[i].next_offset >= 0)
                        err = e->sink.changelog(e->sink.opaque, i, "B", 1, "",
                                                0, false);
        if (!err)
                err = enc_users_flush(e->users, errstr, errstr_size);
        if (!err)
                err = e->changelog_err;
        if (!err && e->sink.changelog) {
                enc_buf_t mb;
                enc_buf_init(&mb, 4096);
                for (int i = 0; i < e->nparts && !err; i++) {
                        if (!e->parts[i].owned || e->parts[i].next_offset < 0)
                                continue;
                        enc_store_meta_t m;
                        enc_part_meta(e, i, &m);
                        enc_buf_reset(&mb);
                        enc_store_meta_encode(&m, &mb);
                        err = e->sink.changelog(e->sink.opaque, i, "M", 1,
                                                mb.data, mb.len, true);
                }
                enc_buf_free(&mb);
        }
        if (err) {
                enc_store_discard(e->store);
                enc_timers_drop_all(e->timers); /* they mirrored the batch */
                return enc_seterr(errstr, errstr_size, err,
                                  "checkpoint: %s", enc_err2str(err));
        }
        e->staged = true;
        return ENC_OK;
}

enc_err_t enc_engine_checkpoint_commit(enc_engine_t *e,
                                       const int64_t *changelog_end,
                                       int changelog_end_cnt, char *errstr,
                                       size_t errstr_size) {
        if (!e->staged)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "checkpoint commit without stage");
        enc_idfilter_io_t io;
        enc_idf_io(e, &io);
        enc_buf_t tag;
        enc_buf_init(&tag, 256);
        size_t idf_bytes = 0;
        for (int i = 0; i < e->nparts; i++) {
                enc_part_t *p = &e->parts[i];
                if (!p->owned || p->next_offset < 0)
                        continue;
                enc_store_meta_t m;
                enc_part_meta(e, i, &m);
                if (changelog_end && i < changelog_end_cnt)
                        m.changelog_end = changelog_end[i];
                if (e->idf) {
                        /* the filter with the position it describes, in
                         * the same batch: it is used only by that one */
                        enc_idf_tag(&m, &tag);
                        if (!tag.failed)
                                idf_bytes += enc_idfilter_save(
                                        e->idf, i, tag.data, tag.len, &io);
                }
                enc_store_put_meta(e->store, i, &m);
        }
        enc_buf_free(&tag);
        e->staged = false;
        size_t bytes = enc_store_pending_bytes(e->store);
        enc_err_t err = enc_store_commit(e->store, errstr, errstr_size);
        enc_idfilter_saved(e->idf, !err);
        if (err) {
                enc_store_discard(e->store);
                enc_timers_drop_all(e->timers);
                return err;
        }
        e->stats.checkpoint_bytes += bytes;
        e->stats.idfilter_saved_bytes += idf_bytes;
        e->since_commit = 0;
        e->cache_full = false;
        enc_engine_evict(e);
        return ENC_OK;
}

void enc_engine_checkpoint_abort(enc_engine_t *e) {
        enc_store_discard(e->store);
        enc_timers_drop_all(e->timers); /* they mirrored the batch */
        e->staged = false;
}

enc_err_t enc_engine_checkpoint(enc_engine_t *e, char *errstr,
                                size_t errstr_size) {
        enc_err_t err = enc_engine_checkpoint_stage(e, errstr, errstr_size);
        if (err)
                return err;
        return enc_engine_checkpoint_commit(e, NULL, 0, errstr, errstr_size);
}

/* ---- introspection -------------------------------------------------- */

void enc_engine_stats(const enc_engine_t *e, enc_engine_stats_t *stats) {
        *stats = e->stats;
        stats->buffered = 0;
        for (int i = 0; i < e->nparts; i++)
                if (e->parts[i].owned)
                        stats->buffered += enc_reorder_count(e->parts[i].buf);
        enc_users_stats_t us;
        enc_users_stats(e->users, &us);
        stats->cache_entries = us.entries;
        stats->cache_bytes = us.bytes;
        stats->cache_hits = us.hits;
        stats->cache_misses = us.misses;
        stats->cache_prefetched = us.prefetched;
        stats->cache_prefetch_wasted = us.prefetch_wasted;
        stats->cache_evictions = us.evictions;
        stats->state_corrupt = us.corrupt;
        stats->users_expired = us.deleted;
        stats->idfilter_bytes = enc_idfilter_bytes(e->idf);
}

bool enc_engine_partition_info(const enc_engine_t *e, int32_t partition,
                               enc_partition_info_t *info) {
        if (partition < 0 || partition >= e->nparts ||
            !e->parts[partition].owned)
                return false;
        const enc_part_t *p = &e->parts[partition];
        info->next_offset = p->next_offset;
        info->commit_offset = enc_engine_commit_offset(e, partition);
        info->stream_time = p->stream_time;
        info->watermark = p->watermark;
        info->buffered = enc_reorder_count(p->buf);
        info->consumed = p->consumed;
        info->accepted = p->accepted;
        info->applied = p->applied;
        info->dead_lettered = p->dead_lettered;
        return true;
}

int enc_engine_instances(const enc_engine_t *e,
                         const struct enc_sig_instance_s **insts) {
        *insts = e->insts;
        return e->inst_cnt;
}
