/*
 * test_engine.c -- the event-time engine over real RocksDB and the real
 * signals, without Kafka: exact outputs of a scripted sequence worked out by
 * hand, arrival-order independence, resume after a crash, dead letters and
 * accounting, state expiry.
 */
#include "harness.h"

#include <xxhash.h>

#include "dedup.h"
#include "gen.h"
#include "idfilter.h"

typedef struct t_eng_s {
        char *dir;
        enc_conf_t *conf;
        enc_store_t *store;
        enc_engine_t *eng;
        enc_codec_t *codec;
        t_sink_t sink;
        enc_buf_t buf;
        int64_t next_offset[8];
} t_eng_t;

static void t_eng_open(t_eng_t *t, int partitions) {
        char err[512];
        enc_store_conf_t sc = {0};
        t->store = enc_store_open(t->dir, &sc, err, sizeof(err));
        if (!t->store)
                fprintf(stderr, "%s\n", err);
        assert_non_null(t->store);
        enc_engine_sink_t k = t_sink_of(&t->sink);
        t->eng = enc_engine_new(t->conf, t->store, &k, err, sizeof(err));
        if (!t->eng)
                fprintf(stderr, "%s\n", err);
        assert_non_null(t->eng);
        for (int p = 0; p < partitions; p++) {
                int64_t resume;
                assert_int_equal(enc_engine_assign(t->eng, p, &resume, err,
                                                   sizeof(err)),
                                 ENC_OK);
                t->next_offset[p] = resume >= 0 ? resume : 0;
        }
}

static void t_eng_close(t_eng_t *t) {
        enc_engine_destroy(t->eng);
        enc_store_close(t->store);
        t->eng = NULL;
        t->store = NULL;
}

static t_eng_t *t_eng_new(enc_conf_t *conf, int partitions) {
        t_eng_t *t = calloc(1, sizeof(*t));
        char err[256];
        t->dir = t_tmpdir("engine");
        t->conf = conf;
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        t->codec = enc_codec_new(&cc, err, sizeof(err));
        assert_non_null(t->codec);
        enc_buf_init(&t->buf, 1 << 20);
        t_eng_open(t, partitions);
        return t;
}

static void t_eng_free(t_eng_t *t) {
        t_eng_close(t);
        enc_codec_destroy(t->codec);
        enc_buf_free(&t->buf);
        t_sink_free(&t->sink);
        enc_conf_destroy(t->conf);
        t_rmtree(t->dir);
        free(t->dir);
        free(t);
}

/* Feeds raw bytes as the next record of @p partition. */
static void t_feed_raw(t_eng_t *t, int32_t partition, const char *key,
                       const void *val, size_t len) {
        char err[512];
        enc_record_t rec = {.topic = "plays",
                            .partition = partition,
                            .offset = t->next_offset[partition]++,
                            .timestamp = -1,
                            .key = key,
                            .key_len = key ? strlen(key) : 0,
                            .value = val,
                            .value_len = len};
        enc_err_t e = enc_engine_record(t->eng, &rec, err, sizeof(err));
        if (e)
                fprintf(stderr, "enc_engine_record: %s\n", err);
        assert_int_equal(e, ENC_OK);
}

static void t_feed(t_eng_t *t, int32_t partition, const enc_event_t *ev) {
        enc_buf_reset(&t->buf);
        assert_int_equal(enc_codec_encode_event(t->codec, ev, &t->buf),
                         ENC_OK);
        t_feed_raw(t, partition, ev->user_id, t->buf.data, t->buf.len);
}

static void t_decode(t_eng_t *t, size_t i, enc_update_t *up) {
        char err[256];
        assert_true(i < t->sink.n);
        assert_int_equal(enc_codec_decode_update(t->codec, t->sink.outs[i].val,
                                                 t->sink.outs[i].len, up, err,
                                                 sizeof(err)),
                         ENC_OK);
}

/* The documented update id, computed here independently of the codec:
 * XXH3-128 over user \0 signal \0 version \0 subject \0 sequence \0
 * event_time, as 32 lowercase hex digits, high half first. */
static void t_expected_id(const char *user, const char *signal, int version,
                          const char *subject, int64_t seq, int64_t etime,
                          char out[33]) {
        char buf[512];
        int n = snprintf(buf, sizeof(buf), "%s%c%s%c%d%c%s%c%lld%c%lld", user,
                         0, signal, 0, version, 0, subject ? subject : "", 0,
                         (long long)seq, 0, (long long)etime);
        XXH128_hash_t h = XXH3_128bits(buf, (size_t)n);
        snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64,
                 (unsigned long long)h.low64);
}

/* Asserts that @p run emitted exactly @p ref's outputs from index @p from
 * on, byte for byte (a resumed run against an uninterrupted one). */
static void t_assert_outputs_from(const t_eng_t *run, const t_eng_t *ref,
                                  size_t from) {
        assert_int_equal(run->sink.n, ref->sink.n - from);
        for (size_t i = 0; i < run->sink.n; i++) {
                const t_out_t *a = &run->sink.outs[i];
                const t_out_t *b = &ref->sink.outs[from + i];
                assert_int_equal(a->len, b->len);
                assert_memory_equal(a->val, b->val, a->len);
        }
}

/* Prints outputs [from, to) as JSON (for diagnosing a failure). */
static void t_dump_range(t_eng_t *t, size_t from, size_t to) {
        enc_buf_t j;
        enc_buf_init(&j, 1 << 16);
        for (size_t i = from; i < t->sink.n && i < to; i++) {
                enc_update_t up;
                t_decode(t, i, &up);
                enc_buf_reset(&j);
                if (!enc_update_to_json(&up, &j))
                        fprintf(stderr, "out[%zu] %.*s\n", i, (int)j.len,
                                (const char *)j.data);
        }
        enc_buf_free(&j);
}

static void t_dump(t_eng_t *t) {
        t_dump_range(t, 0, t->sink.n);
}

static void t_check_active(t_eng_t *t, size_t i, const char *user,
                           int64_t seq, double value, double delta,
                           int64_t wstart, int64_t wend, int64_t etime,
                           bool final) {
        enc_update_t up;
        char id[33];
        t_decode(t, i, &up);
        assert_string_equal(up.user_id, user);
        assert_string_equal(t->sink.outs[i].key, user);
        assert_string_equal(up.signal, "active_days");
        assert_int_equal(up.signal_version, 1);
        assert_string_equal(up.subject, "3d");
        assert_int_equal(up.sequence, seq);
        assert_true(up.value == value);
        assert_true(up.delta == delta);
        assert_int_equal(up.window_start, wstart);
        assert_int_equal(up.window_end, wend);
        assert_int_equal(up.event_time, etime);
        assert_int_equal(up.final, final);
        assert_int_equal(up.horizon_days, 3);
        t_expected_id(user, "active_days", 1, "3d", seq, etime, id);
        assert_string_equal(up.update_id, id);
}

/*
 * Worked by hand (grace 0, one 3-day window, qualified = 30 s played):
 *   e1 alice d0 10:00 60s   first qualified play of d0
 *   e2 alice d0 11:00 60s   same day: nothing
 *   e3 alice d0 12:00 10s   not qualified: nothing
 *   e4 alice d1 09:00 45s   first of d1
 *   e5 bob   d3 08:00 60s   W -> d3 08:00: e4 applied (alice 2), then the
 *                           timer at d3 00:00: d0 leaves alice's window (1)
 *   e6 carol d5 10:00 60s   W -> d5 10:00: e5 applied (bob 1), then the
 *                           timer at d4 00:00: d1 leaves (alice 0, final)
 * An event is applied once the watermark is past it, so e6 stays buffered.
 */
static void test_active_days_scripted_sequence_gives_hand_worked_updates(
        void **st) {
        (void)st;
        t_eng_t *t = t_eng_new(t_conf("signals=active_days:1",
                                      "signal.active_days.1.windows=3",
                                      "window.grace.ms=0", NULL),
                               1);
        enc_event_t e1 = t_play("e1", "alice", T_AT(0, 10, 0), 60000);
        enc_event_t e2 = t_play("e2", "alice", T_AT(0, 11, 0), 60000);
        enc_event_t e3 = t_play("e3", "alice", T_AT(0, 12, 0), 10000);
        enc_event_t e4 = t_play("e4", "alice", T_AT(1, 9, 0), 45000);
        enc_event_t e5 = t_play("e5", "bob", T_AT(3, 8, 0), 60000);
        enc_event_t e6 = t_play("e6", "carol", T_AT(5, 10, 0), 60000);
        t_feed(t, 0, &e1);
        assert_int_equal(t->sink.n, 0); /* e1 not behind the watermark yet */
        t_feed(t, 0, &e2);
        assert_int_equal(t->sink.n, 1);
        t_feed(t, 0, &e3);
        t_feed(t, 0, &e4);
        assert_int_equal(t->sink.n, 1);
        t_feed(t, 0, &e5);
        if (t->sink.n != 3)
                t_dump(t);
        assert_int_equal(t->sink.n, 3);
        t_feed(t, 0, &e6);
        assert_int_equal(t->sink.n, 5);

        t_check_active(t, 0, "alice", 1, 1, 1, T_DAY(-2), T_DAY(1),
                       e1.event_time, false);
        t_check_active(t, 1, "alice", 2, 2, 1, T_DAY(-1), T_DAY(2),
                       e4.event_time, false);
        t_check_active(t, 2, "alice", 3, 1, -1, T_DAY(1), T_DAY(4), T_DAY(3),
                       false);
        t_check_active(t, 3, "bob", 1, 1, 1, T_DAY(1), T_DAY(4),
                       e5.event_time, false);
        t_check_active(t, 4, "alice", 4, 0, -1, T_DAY(2), T_DAY(5), T_DAY(4),
                       true);

        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.consumed, 6);
        assert_int_equal(s.accepted, 6);
        assert_int_equal(s.applied, 5);
        assert_int_equal(s.buffered, 1);
        assert_int_equal(s.updates, 5);
        t_eng_free(t);
}

/* Runs @p n generated events through a fresh engine (2 partitions by user
 * hash), optionally with disorder, and returns the engine (caller frees). */
static t_eng_t *t_run_generated(uint64_t n, int64_t disorder_ms, bool sort) {
        t_eng_t *t = t_eng_new(t_conf("window.grace.ms=600000", NULL), 2);
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.seed = 7;
        gc.users = 300;
        gc.days = 30;
        gc.count = n;
        gc.disorder_ms = disorder_ms;
        gc.disorder_share = 0.3;
        char err[256];
        enc_gen_t *g = enc_gen_new(&gc, err, sizeof(err));
        assert_non_null(g);
        enc_event_t ev;
        enc_event_t **all = calloc(n, sizeof(*all));
        size_t k = 0;
        while (k < n && enc_gen_next(g, &ev) == ENC_OK)
                all[k++] = enc_event_dup(&ev);
        enc_gen_destroy(g);
        if (sort) {
                /* insertion sort by time (stable): nearly sorted input */
                for (size_t i = 1; i < k; i++) {
                        enc_event_t *x = all[i];
                        size_t j = i;
                        while (j > 0 &&
                               all[j - 1]->event_time > x->event_time) {
                                all[j] = all[j - 1];
                                j--;
                        }
                        all[j] = x;
                }
        }
        for (size_t i = 0; i < k; i++) {
                int32_t p = (int32_t)(XXH3_64bits(all[i]->user_id,
                                                  strlen(all[i]->user_id)) %
                                      2);
                t_feed(t, p, all[i]);
                free(all[i]);
        }
        free(all);
        return t;
}

/* Outputs of each input partition, in order, are byte-identical. (How two
 * partitions' outputs interleave depends on arrival order and is not part
 * of the promise: partitions are independent.) */
static bool t_outputs_equal(const t_sink_t *a, const t_sink_t *b) {
        if (a->n != b->n) {
                fprintf(stderr, "output counts differ: %zu vs %zu\n", a->n,
                        b->n);
                return false;
        }
        for (int32_t p = 0; p < 2; p++) {
                size_t i = 0, j = 0;
                for (;;) {
                        while (i < a->n && a->outs[i].in_partition != p)
                                i++;
                        while (j < b->n && b->outs[j].in_partition != p)
                                j++;
                        if (i == a->n || j == b->n)
                                break;
                        if (a->outs[i].len != b->outs[j].len ||
                            memcmp(a->outs[i].val, b->outs[j].val,
                                   a->outs[i].len)) {
                                fprintf(stderr,
                                        "partition %d: outputs %zu and %zu "
                                        "differ\n",
                                        p, i, j);
                                return false;
                        }
                        i++;
                        j++;
                }
                if (i != a->n || j != b->n) {
                        while (i < a->n && a->outs[i].in_partition != p)
                                i++;
                        while (j < b->n && b->outs[j].in_partition != p)
                                j++;
                        if (i != a->n || j != b->n)
                                return false;
                }
        }
        return true;
}

/* The same events, displaced by up to 5 minutes of event time (well within
 * the 10-minute grace), give byte-identical output in the same order on
 * each partition. */
static void test_out_of_order_within_grace_equals_in_order(void **st) {
        (void)st;
        t_eng_t *sorted = t_run_generated(20000, 300000, true);
        t_eng_t *shuffled = t_run_generated(20000, 300000, false);
        enc_engine_stats_t s1, s2;
        enc_engine_stats(shuffled->eng, &s2);
        enc_engine_stats(sorted->eng, &s1);
        assert_int_equal(s1.dead_lettered[ENC_DLQ_LATE], 0);
        assert_int_equal(s2.dead_lettered[ENC_DLQ_LATE], 0);
        assert_true(sorted->sink.n > 1000);
        if (!t_outputs_equal(&sorted->sink, &shuffled->sink)) {
                t_dump_range(sorted, 0, 3);
                fprintf(stderr, "--\n");
                t_dump_range(shuffled, 0, 3);
                fail();
        }
        t_eng_free(sorted);
        t_eng_free(shuffled);
}

/*
 * Crash and resume: a reference run over all events; a second run that
 * checkpoints after record K, goes on to record M, and "crashes" (the engine
 * is dropped without a checkpoint). The resumed run must produce exactly the
 * reference's outputs from the checkpoint on: outputs are a pure function of
 * the input, and the store's position says where to pick up.
 */
static void test_resume_after_crash_reproduces_reference_outputs(void **st) {
        (void)st;
        const uint64_t n = 12000, k = 5000, m = 8000;
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.seed = 11;
        gc.users = 200;
        gc.days = 20;
        gc.count = n;
        gc.disorder_ms = 120000;
        char err[512];

        /* All records, encoded once. */
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        enc_codec_t *codec = enc_codec_new(&cc, err, sizeof(err));
        enc_gen_t *g = enc_gen_new(&gc, err, sizeof(err));
        assert_non_null(g);
        enc_buf_t *recs = calloc(n, sizeof(*recs));
        char (*keys)[32] = calloc(n, 32);
        enc_event_t ev;
        uint64_t cnt = 0;
        while (cnt < n && enc_gen_next(g, &ev) == ENC_OK) {
                enc_buf_init(&recs[cnt], 4096);
                assert_int_equal(enc_codec_encode_event(codec, &ev,
                                                        &recs[cnt]),
                                 ENC_OK);
                snprintf(keys[cnt], 32, "%s", ev.user_id);
                cnt++;
        }
        enc_gen_destroy(g);
        assert_int_equal(cnt, n);

        t_eng_t *ref = t_eng_new(t_conf("window.grace.ms=300000", NULL), 1);
        for (uint64_t i = 0; i < n; i++)
                t_feed_raw(ref, 0, keys[i], recs[i].data, recs[i].len);

        t_eng_t *run = t_eng_new(t_conf("window.grace.ms=300000", NULL), 1);
        size_t outs_at_checkpoint = 0;
        for (uint64_t i = 0; i < m; i++) {
                t_feed_raw(run, 0, keys[i], recs[i].data, recs[i].len);
                if (i + 1 == k) {
                        assert_int_equal(enc_engine_checkpoint(
                                                 run->eng, err, sizeof(err)),
                                         ENC_OK);
                        outs_at_checkpoint = run->sink.n;
                }
        }
        /* Everything the run emitted so far matches the reference. */
        for (size_t i = 0; i < run->sink.n; i++) {
                assert_int_equal(run->sink.outs[i].len, ref->sink.outs[i].len);
                assert_memory_equal(run->sink.outs[i].val,
                                    ref->sink.outs[i].val,
                                    run->sink.outs[i].len);
        }
        /* Crash: drop the engine and cache without checkpointing. */
        t_eng_close(run);
        t_sink_free(&run->sink);
        t_eng_open(run, 1);
        int64_t resume = run->next_offset[0];
        assert_true(resume <= (int64_t)k);
        for (uint64_t i = (uint64_t)resume; i < n; i++)
                t_feed_raw(run, 0, keys[i], recs[i].data, recs[i].len);
        /* The resumed run emits exactly ref[outs_at_checkpoint:]. */
        t_assert_outputs_from(run, ref, outs_at_checkpoint);
        enc_engine_stats_t s;
        enc_engine_stats(run->eng, &s);
        assert_int_equal(s.consumed, n - (uint64_t)resume);
        assert_int_equal(s.consumed, s.accepted + s.skipped_restore);

        for (uint64_t i = 0; i < n; i++)
                enc_buf_free(&recs[i]);
        free(recs);
        free(keys);
        enc_codec_destroy(codec);
        t_eng_free(ref);
        t_eng_free(run);
}

/*
 * Resume when the re-read span [C, E) holds records the first pass dead-
 * lettered or accepted for reasons that depend on when they arrived
 * (grace 1 h, event.max.future.ms 1 day, dedup.window.ms 10 min):
 *   0 Y yan  id y  d0 23:00   st d0 23:00, W d0 22:00
 *   1 p pat        d1 00:05   W d0 23:05: Y applied (yan d0)
 *   2 D yan  id y  d1 00:06   Y is 66 min older than D: not a duplicate
 *                             (measured from D; measured from the watermark,
 *                             d0 22:55, it would have been one)
 *   3 F fay        d2 01:00   24 h 54 min ahead of stream time: future
 *   4 q quinn      d1 00:30   W d0 23:30
 *   -- checkpoint: C = 1 (p held), stored W d0 23:30, stream time at C
 *      d0 23:00; then records up to 6 are processed and the run crashes
 *   5 r ron        d1 01:31   W d1 00:31: p, D, q applied
 *   6 s sam        d1 03:00   W d1 02:00: r applied
 *   7 t tom        d2 02:30   W d2 01:30 (F at d2 01:00 would apply here)
 *   8 u tom        d2 04:00   W d2 03:00: t applied
 * The resumed run re-reads 1..4 and must buffer p, D and q again but not F
 * (before the fix it buffered F, whose time is past the stored watermark,
 * and decided D against the stored watermark: two updates the first pass
 * never made). Its outputs must be exactly the reference's after the
 * checkpoint, with no dead letter (F's was sent before the checkpoint).
 */
static const enc_event_t *t_resume_events(void) {
        static enc_event_t evs[9];
        enc_event_t v[] = {
                t_play("y", "yan", T_AT(0, 23, 0), 60000),
                t_play("p", "pat", T_AT(1, 0, 5), 60000),
                t_play("y", "yan", T_AT(1, 0, 6), 60000),
                t_play("f", "fay", T_AT(2, 1, 0), 60000),
                t_play("q", "quinn", T_AT(1, 0, 30), 60000),
                t_play("r", "ron", T_AT(1, 1, 31), 60000),
                t_play("s", "sam", T_AT(1, 3, 0), 60000),
                t_play("t", "tom", T_AT(2, 2, 30), 60000),
                t_play("u", "tom", T_AT(2, 4, 0), 60000),
        };
        memcpy(evs, v, sizeof(evs));
        return evs;
}

#define T_RESUME_CONF                                                         \
        t_conf("signals=active_days:1", "window.grace.ms=3600000",          \
               "event.max.future.ms=86400000", "dedup.window.ms=600000",   \
               NULL)

static void test_resume_rereads_as_the_first_pass_decided(void **st) {
        (void)st;
        char err[512];
        const enc_event_t *evs = t_resume_events();
        const int n = 9, k = 5, m = 7;
        t_eng_t *ref = t_eng_new(T_RESUME_CONF, 1);
        for (int i = 0; i < n; i++)
                t_feed(ref, 0, &evs[i]);
        /* the first pass: only F dead-lettered, D accepted */
        assert_int_equal(ref->sink.dlq_total, 1);
        assert_int_equal(ref->sink.last_dlq_reason, ENC_DLQ_FUTURE);
        assert_int_equal(ref->sink.last_dlq_offset, 3);
        int yan_d1 = 0;
        for (size_t i = 0; i < ref->sink.n; i++) {
                enc_update_t up;
                t_decode(ref, i, &up);
                assert_string_not_equal(up.user_id, "fay");
                if (!strcmp(up.user_id, "yan") &&
                    up.event_time == T_AT(1, 0, 6))
                        yan_d1++;
        }
        assert_true(yan_d1 > 0);

        t_eng_t *run = t_eng_new(T_RESUME_CONF, 1);
        size_t outs_at_checkpoint = 0;
        for (int i = 0; i < m; i++) {
                t_feed(run, 0, &evs[i]);
                if (i + 1 == k) {
                        assert_int_equal(enc_engine_checkpoint(
                                                 run->eng, err, sizeof(err)),
                                         ENC_OK);
                        outs_at_checkpoint = run->sink.n;
                }
        }
        t_eng_close(run);
        t_sink_free(&run->sink);
        t_eng_open(run, 1);
        assert_int_equal(run->next_offset[0], 1);
        for (int i = 1; i < n; i++)
                t_feed(run, 0, &evs[i]);
        if (run->sink.n != ref->sink.n - outs_at_checkpoint) {
                t_dump(run);
                fprintf(stderr, "-- reference after the checkpoint\n");
                t_dump_range(ref, outs_at_checkpoint, ref->sink.n);
        }
        t_assert_outputs_from(run, ref, outs_at_checkpoint);
        assert_int_equal(run->sink.dlq_total, 0);
        enc_engine_stats_t s;
        enc_engine_stats(run->eng, &s);
        /* re-read 1..4: p, D, q buffered again, F skipped; then 5..8 */
        assert_int_equal(s.consumed, 8);
        assert_int_equal(s.skipped_restore, 1);
        assert_int_equal(s.accepted, 7);
        t_eng_free(ref);
        t_eng_free(run);
}

/*
 * The same input; after the crash a checkpoint is taken at once, before a
 * single record of the re-read span [1, 5) has come back (a commit right
 * after a restart or a restore), and the process crashes again. The second
 * restart must still resume at 1 with the stream time recorded for it: the
 * checkpoint may not move C past records that have still to be buffered
 * again (before the fix it stored C = E = 5 and p, D and q were lost).
 */
static void test_checkpoint_before_the_reread_keeps_its_start(void **st) {
        (void)st;
        char err[512];
        const enc_event_t *evs = t_resume_events();
        const int n = 9, k = 5;
        t_eng_t *ref = t_eng_new(T_RESUME_CONF, 1);
        for (int i = 0; i < n; i++)
                t_feed(ref, 0, &evs[i]);
        t_eng_t *run = t_eng_new(T_RESUME_CONF, 1);
        for (int i = 0; i < k; i++)
                t_feed(run, 0, &evs[i]);
        assert_int_equal(enc_engine_checkpoint(run->eng, err, sizeof(err)),
                         ENC_OK);
        size_t outs_at_checkpoint = run->sink.n;
        for (int round = 0; round < 2; round++) {
                t_eng_close(run);
                t_eng_open(run, 1);
                assert_int_equal(run->next_offset[0], 1);
                assert_int_equal(enc_engine_commit_offset(run->eng, 0), 1);
                assert_int_equal(enc_engine_checkpoint(run->eng, err,
                                                       sizeof(err)),
                                 ENC_OK);
        }
        t_eng_close(run);
        t_sink_free(&run->sink);
        t_eng_open(run, 1);
        assert_int_equal(run->next_offset[0], 1);
        /* half the re-read, a checkpoint, a crash: C is still 1 (p, at 1,
         * is held again) and the stream time at 1 is kept */
        t_feed(run, 0, &evs[1]);
        t_feed(run, 0, &evs[2]);
        assert_int_equal(enc_engine_checkpoint(run->eng, err, sizeof(err)),
                         ENC_OK);
        t_eng_close(run);
        t_sink_free(&run->sink);
        t_eng_open(run, 1);
        assert_int_equal(run->next_offset[0], 1);
        for (int i = 1; i < n; i++)
                t_feed(run, 0, &evs[i]);
        t_assert_outputs_from(run, ref, outs_at_checkpoint);
        assert_int_equal(run->sink.dlq_total, 0);
        t_eng_free(ref);
        t_eng_free(run);
}
#undef T_RESUME_CONF

/* Each kind of bad record goes to the dead-letter sink under its reason, and
 * consumed = accepted + dead-lettered. */
static void test_bad_records_are_dead_lettered_with_reason(void **st) {
        (void)st;
        t_eng_t *t = t_eng_new(t_conf("window.grace.ms=60000",
                                      "event.max.future.ms=86400000",
                                      "signals=active_days:1", NULL),
                               1);
        enc_event_t ok = t_play("g1", "dave", T_AT(2, 12, 0), 60000);
        t_feed(t, 0, &ok);

        /* not Avro at all: first byte is '{', not the magic 0 */
        t_feed_raw(t, 0, "dave", "{\"a\":1}", 7);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_BAD_MAGIC);
        /* framed, but schema id 99 */
        enc_buf_reset(&t->buf);
        assert_int_equal(enc_codec_encode_event(t->codec, &ok, &t->buf), 0);
        t->buf.data[4] = 99;
        t_feed_raw(t, 0, "dave", t->buf.data, t->buf.len);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_UNKNOWN_SCHEMA);
        /* truncated */
        t->buf.data[4] = 1;
        t_feed_raw(t, 0, "dave", t->buf.data, t->buf.len - 9);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_TRUNCATED);
        /* tombstone */
        t_feed_raw(t, 0, "dave", NULL, 0);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_TOMBSTONE);
        /* key is not the user id */
        enc_event_t other = t_play("g2", "erin", T_AT(2, 12, 1), 60000);
        enc_buf_reset(&t->buf);
        assert_int_equal(enc_codec_encode_event(t->codec, &other, &t->buf),
                         0);
        t_feed_raw(t, 0, "dave", t->buf.data, t->buf.len);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_KEY_MISMATCH);
        /* invalid field: negative ms_played */
        enc_event_t neg = t_play("g3", "dave", T_AT(2, 12, 2), -5);
        t_feed(t, 0, &neg);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_INVALID);
        /* late: 61 s behind stream time with 60 s grace */
        enc_event_t late = t_play("g4", "dave", T_AT(2, 11, 59) - 1000,
                                  60000);
        t_feed(t, 0, &late);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_LATE);
        /* future: more than a day ahead of stream time */
        enc_event_t fut = t_play("g5", "dave", T_AT(3, 12, 1), 60000);
        t_feed(t, 0, &fut);
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_FUTURE);
        assert_int_equal(t->sink.last_dlq_offset, 8);

        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        uint64_t dead = 0;
        for (int i = 0; i < ENC_DLQ__CNT; i++) {
                dead += s.dead_lettered[i];
                assert_int_equal(s.dead_lettered[i], t->sink.dlq[i]);
        }
        assert_int_equal(s.consumed, 9);
        assert_int_equal(dead, 8);
        assert_int_equal(s.accepted, 1);
        assert_int_equal(s.consumed, s.accepted + dead);
        t_eng_free(t);
}

/* A user whose every signal has gone final is deleted from the store.
 * windows=2: frank's only day d0 leaves at d2 00:00; gina's d1 at d3 00:00.
 * Gina's d3 play stays buffered (grace 0: not behind the watermark yet), so
 * at the second checkpoint both users have expired. */
static void test_state_of_a_user_who_stopped_is_deleted(void **st) {
        (void)st;
        char err[512];
        t_eng_t *t = t_eng_new(t_conf("signals=active_days:1",
                                      "signal.active_days.1.windows=2",
                                      "window.grace.ms=0", NULL),
                               1);
        enc_event_t a = t_play("x1", "frank", T_AT(0, 10, 0), 60000);
        enc_event_t b = t_play("x2", "gina", T_AT(1, 10, 0), 60000);
        t_feed(t, 0, &a);
        t_feed(t, 0, &b);
        assert_int_equal(enc_engine_checkpoint(t->eng, err, sizeof(err)), 0);
        enc_buf_t v;
        bool found = false;
        enc_buf_init(&v, 1 << 20);
        assert_int_equal(enc_store_get_user(t->store, 0, "frank", 5, &v,
                                            &found, err, sizeof(err)),
                         0);
        assert_true(found);
        /* frank's only day (d0) leaves the 2-day window at d2 00:00. */
        enc_event_t c = t_play("x3", "gina", T_AT(3, 10, 0), 60000);
        t_feed(t, 0, &c);
        assert_int_equal(enc_engine_checkpoint(t->eng, err, sizeof(err)), 0);
        assert_int_equal(enc_store_get_user(t->store, 0, "frank", 5, &v,
                                            &found, err, sizeof(err)),
                         0);
        assert_false(found);
        assert_int_equal(enc_store_get_user(t->store, 0, "gina", 4, &v,
                                            &found, err, sizeof(err)),
                         0);
        assert_false(found);
        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.users_expired, 2);
        enc_buf_free(&v);
        t_eng_free(t);
}

/* A commit is due once a checkpoint would stage 1/8 of cache.max.bytes,
 * before commit.records and, here, before the cache is full. 16 MiB: bound
 * 2 MiB, users share 8 MiB. Each new user (32-byte id) counts 128 (its
 * first guessed record) + 40 (key) + 96 (a timer key moved) = 264 bytes
 * and is charged 200 + 32 + 640 = 872 to the cache: 7943 x 264 = 2 096 952
 * is under 2 MiB, 7944 users are over it, while the cache holds 6.6 MiB of
 * 8. Grace 0, one second apart: the k-th record applies the k users
 * before it. */
static void test_commit_is_due_when_a_checkpoint_would_stage_too_much(
        void **st) {
        (void)st;
        char err[512];
        t_eng_t *t = t_eng_new(t_conf("signals=active_days:1",
                                      "window.grace.ms=0", "dedup.window.ms=0",
                                      "cache.max.bytes=16777216",
                                      "commit.records=1000000", NULL),
                               1);
        char id[40];
        for (int k = 0; k <= 7944; k++) {
                snprintf(id, sizeof(id), "user-%027d", k);
                enc_event_t e = t_play(id, id, T_AT(0, 10, 0) + k * 1000,
                                       60000);
                t_feed(t, 0, &e);
                if (k < 7944 && enc_engine_commit_due(t->eng))
                        fail_msg("commit due after %d users", k);
        }
        assert_true(enc_engine_commit_due(t->eng));
        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.applied, 7944);
        assert_int_equal(enc_engine_checkpoint(t->eng, err, sizeof(err)), 0);
        assert_false(enc_engine_commit_due(t->eng));
        t_eng_free(t);
}

/*
 * Duplicates (dedup.window.ms = 1 h, grace 0), worked by hand:
 *   x   alice 10:00  accepted
 *   x   alice 10:00  duplicate: the first copy is still in the buffer
 *   y   bob   10:30  accepted; W = 10:30 applies alice's x
 *   x   alice 10:30  duplicate: alice's applied ids hold x@10:00 >= 09:30
 *   z   bob   11:01  accepted; W = 11:01 expires x (10:00 + 1 h < 11:01)
 *   x   alice 11:02  accepted: outside the window, a new event
 */
static void test_duplicate_event_ids_within_window_are_dead_lettered(
        void **st) {
        (void)st;
        t_eng_t *t = t_eng_new(t_conf("signals=active_days:1",
                                      "window.grace.ms=0",
                                      "dedup.window.ms=3600000", NULL),
                               1);
        enc_event_t evs[] = {
                t_play("x", "alice", T_AT(0, 10, 0), 60000),
                t_play("x", "alice", T_AT(0, 10, 0), 60000),
                t_play("y", "bob", T_AT(0, 10, 30), 60000),
                t_play("x", "alice", T_AT(0, 10, 30), 60000),
                t_play("z", "bob", T_AT(0, 11, 1), 60000),
                t_play("x", "alice", T_AT(0, 11, 2), 60000),
        };
        enc_dlq_reason_t want[] = {ENC_DLQ__CNT, ENC_DLQ_DUPLICATE,
                                   ENC_DLQ__CNT, ENC_DLQ_DUPLICATE,
                                   ENC_DLQ__CNT, ENC_DLQ__CNT};
        for (int i = 0; i < 6; i++) {
                uint64_t before = t->sink.dlq_total;
                t_feed(t, 0, &evs[i]);
                if (want[i] == ENC_DLQ__CNT) {
                        assert_int_equal(t->sink.dlq_total, before);
                } else {
                        assert_int_equal(t->sink.dlq_total, before + 1);
                        assert_int_equal(t->sink.last_dlq_reason, want[i]);
                        assert_int_equal(t->sink.last_dlq_offset, i);
                }
        }
        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.consumed, 6);
        assert_int_equal(s.accepted, 4);
        assert_int_equal(s.dead_lettered[ENC_DLQ_DUPLICATE], 2);
        t_eng_free(t);
}

/* What happens to the store between a checkpoint and the restart. */
typedef enum t_tamper_e {
        T_KEEP,         /* nothing */
        T_TRUNC_HEADER, /* the id filter's header cut to 10 bytes */
        T_FLIP_TABLE,   /* a byte of its table changed */
        T_MOVED,        /* the position rewritten (changelog end 7, as an
                           incremental restore records it): the filter was
                           saved at another position */
} t_tamper_t;

static void t_tamper(const char *dir, t_tamper_t how) {
        char err[512];
        enc_store_conf_t sc = {0};
        enc_store_t *st = enc_store_open(dir, &sc, err, sizeof(err));
        assert_non_null(st);
        enc_buf_t v;
        enc_buf_init(&v, 1 << 20);
        bool found = false;
        const uint8_t hdr[1] = {'I'}, tab[9] = {'I', 0, 0, 0, 0, 0, 0, 0, 0};
        if (how == T_TRUNC_HEADER) {
                assert_int_equal(enc_store_get_meta_key(st, 0, hdr, 1, &v,
                                                        &found, err,
                                                        sizeof(err)),
                                 ENC_OK);
                assert_true(found && v.len > 10);
                enc_store_put_meta_key(st, 0, hdr, 1, v.data, 10);
        } else if (how == T_FLIP_TABLE) {
                assert_int_equal(enc_store_get_meta_key(st, 0, tab, 9, &v,
                                                        &found, err,
                                                        sizeof(err)),
                                 ENC_OK);
                assert_true(found);
                assert_int_equal(v.len, 1024);
                v.data[0] ^= 0x40;
                enc_store_put_meta_key(st, 0, tab, 9, v.data, v.len);
        } else if (how == T_MOVED) {
                enc_store_meta_t m;
                assert_int_equal(
                        enc_store_get_meta(st, 0, &m, &found, err, sizeof(err)),
                        ENC_OK);
                assert_true(found);
                assert_int_equal(m.changelog_end, -1);
                m.changelog_end = 7;
                enc_store_put_meta(st, 0, &m);
        }
        assert_int_equal(enc_store_commit(st, err, sizeof(err)), ENC_OK);
        enc_buf_free(&v);
        enc_store_close(st);
}

/*
 * The id filter is saved with each checkpoint and resumed with it, so the
 * checks of the first window after a restart need not load the user
 * (dedup.window.ms = 1 h, grace 0, active_days:1), worked by hand (checks
 * = those past the buffer; "no" = the filter's, no load):
 *   0 x alice 10:00  accepted; filter empty: no
 *   1 y bob   10:30  accepted; no; W 10:30 applies x
 *   checkpoint: C = 1 (y waits), W = 10:30, the filter (x, y; complete
 *   from the start) in the same batch; crash; resume at 1
 *                     saved filter              none (before it was saved)
 *   1 y bob   10:30  re-read, since 09:30:     since < F = W:
 *                    holds y: maybe, loaded    maybe, loaded
 *   2 x alice 10:40  holds x: maybe; alice's applied ids hold x@10:00:
 *                    duplicate either way
 *   3 w carol 10:50  since 09:50: no           < W: maybe
 *   4 v dave  11:00  since 10:00: no           < W: maybe
 *   5 z bob   11:31  since 10:31: no           no
 * Outputs after the checkpoint are byte for byte those of a run without the
 * restart, whatever happened to the saved filter: cut short, a table byte
 * changed, or saved at another position than the stored one, it is
 * ignored and the run goes on as without it.
 * Bytes saved at the checkpoint: a delete of every key of the filter
 * (nothing known stored, 2), the table ("I" + u64 0 and 256 x 4 bytes,
 * 1033) and the header ("I" and 2 + 22 (the position: version, C 1, E 2,
 * stream time and W 6 each, changelog end 1, stream time at C 6) + 17 +
 * 39 + 8): 1124.
 */
static void t_dedup_filter_resume(t_tamper_t how) {
        char err[512];
        enc_event_t evs[] = {
                t_play("x", "alice", T_AT(0, 10, 0), 60000),
                t_play("y", "bob", T_AT(0, 10, 30), 60000),
                t_play("x", "alice", T_AT(0, 10, 40), 60000),
                t_play("w", "carol", T_AT(0, 10, 50), 60000),
                t_play("v", "dave", T_AT(0, 11, 0), 60000),
                t_play("z", "bob", T_AT(0, 11, 31), 60000),
        };
        t_eng_t *ref =
                t_eng_new(t_conf("signals=active_days:1", "window.grace.ms=0",
                                 "dedup.window.ms=3600000", NULL),
                          1);
        for (int i = 0; i < 6; i++)
                t_feed(ref, 0, &evs[i]);
        assert_int_equal(ref->sink.dlq_total, 1);
        t_eng_t *t =
                t_eng_new(t_conf("signals=active_days:1", "window.grace.ms=0",
                                 "dedup.window.ms=3600000", NULL),
                          1);
        t_feed(t, 0, &evs[0]);
        t_feed(t, 0, &evs[1]);
        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.dedup_checks, 2);
        assert_int_equal(s.dedup_filter_no, 2);
        assert_int_equal(s.idfilter_saved_bytes, 0);
        assert_int_equal(enc_engine_checkpoint(t->eng, err, sizeof(err)),
                         ENC_OK);
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.idfilter_saved_bytes, 1124);
        assert_true(s.checkpoint_bytes > 1124);
        size_t outs_at_checkpoint = t->sink.n;
        t_eng_close(t);
        t_sink_free(&t->sink);
        t_tamper(t->dir, how);
        t_eng_open(t, 1);
        assert_int_equal(t->next_offset[0], 1);
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.idfilter_loaded, how == T_KEEP);
        uint64_t want_no[2][5] = {{0, 0, 1, 2, 3}, {0, 0, 0, 0, 1}};
        uint64_t want_dlq[] = {0, 1, 1, 1, 1};
        for (int i = 1; i < 6; i++) {
                t_feed(t, 0, &evs[i]);
                enc_engine_stats(t->eng, &s);
                assert_int_equal(s.dedup_checks, (uint64_t)i);
                assert_int_equal(s.dedup_filter_no,
                                 want_no[how != T_KEEP][i - 1]);
                assert_int_equal(t->sink.dlq_total, want_dlq[i - 1]);
        }
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_DUPLICATE);
        assert_int_equal(t->sink.last_dlq_offset, 2);
        assert_int_equal(s.accepted, 4); /* y again, w, v, z */
        t_assert_outputs_from(t, ref, outs_at_checkpoint);
        if (how == T_KEEP) {
                /* The next checkpoint writes a delta of the one table
                 * ("I" + u64 0 + u32 0, 13 bytes): for each of the B
                 * buckets the four entries added since (y again, w, v, z)
                 * went to, [skip < 16][n], then 4 bytes an entry; and the
                 * header (position C 5, E 6, stream time at C 11:00: as
                 * long, 89). The buckets: key & 15 (16 buckets of 16). */
                const char *const add[4][2] = {{"bob", "y"},
                                               {"carol", "w"},
                                               {"dave", "v"},
                                               {"bob", "z"}};
                bool used[16] = {false};
                uint64_t buckets = 0;
                for (int i = 0; i < 4; i++) {
                        uint64_t key =
                                enc_idfilter_key(add[i][0], strlen(add[i][0]),
                                                 enc_dedup_hash(add[i][1]));
                        buckets += !used[key & 15];
                        used[key & 15] = true;
                }
                assert_int_equal(
                        enc_engine_checkpoint(t->eng, err, sizeof(err)),
                        ENC_OK);
                enc_engine_stats(t->eng, &s);
                assert_int_equal(s.idfilter_saved_bytes,
                                 13 + 2 * buckets + 16 + 89);
        }
        t_eng_free(ref);
        t_eng_free(t);
}

/*
 * A generated stream (2000 listeners, 2 days, 12 000 plays, 2 minutes of
 * disorder) with every 40th record sent again 15 records later: a reference
 * run straight through, and runs that checkpoint after record 5000, go on
 * to 8000 and crash, then resume with the saved filter kept or damaged.
 * Each resumed run's outputs and dead letters are exactly the reference's
 * from the checkpoint on; with the filter kept more of the resumed checks
 * are answered without loading the user than with it damaged (where F is
 * the stored watermark), and as many duplicates are found.
 */
static void test_dedup_filter_resume_keeps_generated_outputs(void **st) {
        (void)st;
        const uint64_t n = 12000, k = 5000, m = 8000;
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.seed = 5;
        gc.users = 2000;
        gc.days = 2;
        gc.count = n;
        gc.disorder_ms = 120000;
        char err[512];
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        enc_codec_t *codec = enc_codec_new(&cc, err, sizeof(err));
        enc_gen_t *g = enc_gen_new(&gc, err, sizeof(err));
        assert_non_null(g);
        enc_buf_t *recs = calloc(n, sizeof(*recs));
        char(*keys)[32] = calloc(n, 32);
        enc_event_t ev;
        uint64_t gen_n = 0;
        while (gen_n < n && enc_gen_next(g, &ev) == ENC_OK) {
                enc_buf_init(&recs[gen_n], 4096);
                assert_int_equal(
                        enc_codec_encode_event(codec, &ev, &recs[gen_n]),
                        ENC_OK);
                snprintf(keys[gen_n], 32, "%s", ev.user_id);
                gen_n++;
        }
        enc_gen_destroy(g);
        assert_int_equal(gen_n, n);
        /* the input: each record, and after record i the one 15 back if
         * that was a 40th */
        uint64_t *ord = calloc(n + n / 40 + 1, sizeof(*ord)), cnt = 0;
        for (uint64_t i = 0; i < n; i++) {
                ord[cnt++] = i;
                if (i >= 15 && (i - 15) % 40 == 0)
                        ord[cnt++] = i - 15;
        }
        assert_int_equal(cnt, n + (n - 15 + 39) / 40);

        t_eng_t *ref = t_eng_new(t_conf("window.grace.ms=300000", NULL), 1);
        for (uint64_t i = 0; i < cnt; i++)
                t_feed_raw(ref, 0, keys[ord[i]], recs[ord[i]].data,
                           recs[ord[i]].len);
        enc_engine_stats_t rs;
        enc_engine_stats(ref->eng, &rs);
        assert_true(rs.dead_lettered[ENC_DLQ_DUPLICATE] > 250);

        uint64_t filter_no[2], dups[2];
        for (int damaged = 0; damaged < 2; damaged++) {
                t_eng_t *run =
                        t_eng_new(t_conf("window.grace.ms=300000", NULL), 1);
                size_t outs_at = 0;
                uint64_t dlq_at = 0;
                for (uint64_t i = 0; i < m; i++) {
                        t_feed_raw(run, 0, keys[ord[i]], recs[ord[i]].data,
                                   recs[ord[i]].len);
                        if (i + 1 == k) {
                                assert_int_equal(
                                        enc_engine_checkpoint(run->eng, err,
                                                              sizeof(err)),
                                        ENC_OK);
                                outs_at = run->sink.n;
                                dlq_at = run->sink.dlq_total;
                        }
                }
                t_eng_close(run);
                t_sink_free(&run->sink);
                t_tamper(run->dir, damaged ? T_TRUNC_HEADER : T_KEEP);
                t_eng_open(run, 1);
                for (uint64_t i = (uint64_t)run->next_offset[0]; i < cnt; i++)
                        t_feed_raw(run, 0, keys[ord[i]], recs[ord[i]].data,
                                   recs[ord[i]].len);
                t_assert_outputs_from(run, ref, outs_at);
                assert_int_equal(run->sink.dlq_total + dlq_at,
                                 ref->sink.dlq_total);
                enc_engine_stats_t s;
                enc_engine_stats(run->eng, &s);
                assert_int_equal(s.idfilter_loaded, damaged ? 0 : 1);
                filter_no[damaged] = s.dedup_filter_no;
                dups[damaged] = s.dead_lettered[ENC_DLQ_DUPLICATE];
                t_eng_free(run);
        }
        assert_int_equal(dups[0], dups[1]);
        assert_true(dups[0] > 0);
        assert_true(filter_no[0] > filter_no[1]);
        fprintf(stderr,
                "resumed checks the filter answered: %llu saved, "
                "%llu damaged\n",
                (unsigned long long)filter_no[0],
                (unsigned long long)filter_no[1]);

        for (uint64_t i = 0; i < n; i++)
                enc_buf_free(&recs[i]);
        free(recs);
        free(keys);
        free(ord);
        enc_codec_destroy(codec);
        t_eng_free(ref);
}

static void test_dedup_filter_resumes_from_the_checkpoint(void **st) {
        (void)st;
        t_dedup_filter_resume(T_KEEP);
}

static void test_dedup_filter_damaged_falls_back_to_the_watermark(void **st) {
        (void)st;
        t_dedup_filter_resume(T_TRUNC_HEADER);
        t_dedup_filter_resume(T_FLIP_TABLE);
}

static void test_dedup_filter_of_another_position_is_ignored(void **st) {
        (void)st;
        t_dedup_filter_resume(T_MOVED);
}

/*
 * Remembered ids are pruned as the user plays, and the dedup timer fires
 * only once the user has stopped (dedup.window.ms = 1 h, grace 0, no
 * signals but dedup), worked by hand:
 *   0 a  alice 10:00  accepted
 *   1 b  alice 10:20  accepted; W 10:20 applies a (ids: a)
 *   2 c  alice 10:40  accepted; applies b (a b)
 *   3 d  alice 11:05  accepted; applies c (a b c)
 *   4 a  alice 11:10  accepted: a@10:00 is before 11:10 - 1 h; applies d,
 *                     which forgets a@10:00 (before 11:05 - 1 h): (b c d)
 *   5 b  alice 11:15  duplicate: b@10:20 is within the hour; applies the
 *                     second a (b c d a)
 *   6 e  bob   13:00  accepted; W 13:00 passes alice's one timer, at the
 *                     newest id + 1 h + 1 ms = 12:10:00.001, which forgets
 *                     every id and deletes her state
 * One timer firing in all. A timer at the oldest id's expiry fires four
 * times more (11:00, 11:20, 11:40, 12:05 and 12:10).
 */
static void test_dedup_prunes_on_write_and_fires_once_when_idle(void **st) {
        (void)st;
        t_eng_t *t = t_eng_new(t_conf("signals=", "window.grace.ms=0",
                                      "dedup.window.ms=3600000", NULL),
                               1);
        enc_event_t evs[] = {
                t_play("a", "alice", T_AT(0, 10, 0), 60000),
                t_play("b", "alice", T_AT(0, 10, 20), 60000),
                t_play("c", "alice", T_AT(0, 10, 40), 60000),
                t_play("d", "alice", T_AT(0, 11, 5), 60000),
                t_play("a", "alice", T_AT(0, 11, 10), 60000),
                t_play("b", "alice", T_AT(0, 11, 15), 60000),
                t_play("e", "bob", T_AT(0, 13, 0), 60000),
        };
        for (int i = 0; i < 7; i++) {
                uint64_t before = t->sink.dlq_total;
                t_feed(t, 0, &evs[i]);
                assert_int_equal(t->sink.dlq_total, before + (i == 5));
        }
        assert_int_equal(t->sink.last_dlq_reason, ENC_DLQ_DUPLICATE);
        assert_int_equal(t->sink.last_dlq_offset, 5);
        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        assert_int_equal(s.consumed, 7);
        assert_int_equal(s.accepted, 6);
        assert_int_equal(s.applied, 5); /* bob's e waits for the watermark */
        assert_int_equal(s.timers_fired, 1);
        t_eng_free(t);
}

/* ---- the timer windows (state/timers.c) ------------------------------ */

static uint64_t t_timer_scans(const t_eng_t *t) {
        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        return s.timer_scans;
}

/* Asserts outputs [from, from + n) are u0000.. in id order, each an
 * active_days update at @p etime of @p value. */
static void t_check_timer_run(t_eng_t *t, size_t from, int n, int64_t etime,
                              double value) {
        char id[16];
        for (int k = 0; k < n; k++) {
                enc_update_t up;
                t_decode(t, from + (size_t)k, &up);
                snprintf(id, sizeof(id), "u%04d", k);
                assert_string_equal(up.user_id, id);
                assert_int_equal(up.event_time, etime);
                assert_true(up.value == value);
        }
}

/*
 * A burst: 4500 users u0000..u4499 play on d0 and on d1 (one second apart,
 * grace 0, 2-day windows), so each has a timer at d2 00:00 (d0 leaves:
 * value 1) and then at d3 00:00 (d1 leaves: value 0). With a 1 MiB budget
 * most of them are evicted after each checkpoint. Each checkpoint puts
 * 4500 timer keys past W, more than a window takes in (2 x 256), so it is
 * dropped and the next step reads the store: 3 scans (the first advance,
 * then at d2 12:00 and at d3 12:00), each loading the due users in
 * batches, as in a cache that holds everyone. At d2 every user's timer
 * fires in id order (same wake), and at d3 again; the outputs are byte for
 * byte those of the all-cached run.
 */
static void t_two_days_of_users(t_eng_t *t, int n) {
        char err[512];
        char id[16];
        for (int d = 0; d < 2; d++)
                for (int k = 0; k < n; k++) {
                        snprintf(id, sizeof(id), "u%04d", k);
                        enc_event_t e = t_play(id, id,
                                               T_AT(d, 10, 0) + k * 1000,
                                               60000);
                        t_feed(t, 0, &e);
                }
        assert_int_equal(enc_engine_checkpoint(t->eng, err, sizeof(err)), 0);
        enc_event_t z = t_play("z1", "zed", T_AT(2, 12, 0), 60000);
        t_feed(t, 0, &z);
        assert_int_equal(enc_engine_checkpoint(t->eng, err, sizeof(err)), 0);
        enc_event_t y = t_play("z2", "zoe", T_AT(3, 12, 0), 60000);
        t_feed(t, 0, &y);
}

static void test_a_burst_of_timers_fires_in_id_order_one_scan_each(
        void **st) {
        (void)st;
        /* More users than the 1 MiB budget holds: a cached user is
         * charged 200 bytes, its id and its active_days block (64 heap
         * bytes here, 176 before the flat v2 state), so about 3,900 fit. */
        const int n = 4500;
        t_eng_t *ref = t_eng_new(t_conf("signals=active_days:1",
                                        "signal.active_days.1.windows=2",
                                        "window.grace.ms=0",
                                        "dedup.window.ms=0", NULL),
                                 1);
        t_eng_t *t = t_eng_new(t_conf("signals=active_days:1",
                                      "signal.active_days.1.windows=2",
                                      "window.grace.ms=0", "dedup.window.ms=0",
                                      "cache.max.bytes=1048576", NULL),
                               1);
        t_two_days_of_users(ref, n);
        t_two_days_of_users(t, n);
        /* d0 plays, d1 plays, d2 timers, zed's play, d3 timers */
        assert_int_equal(t->sink.n, (size_t)(4 * n + 1));
        t_check_timer_run(t, (size_t)(2 * n), n, T_DAY(2), 1);
        t_check_timer_run(t, (size_t)(3 * n) + 1, n, T_DAY(3), 0);
        t_assert_outputs_from(t, ref, 0);
        enc_engine_stats_t s, rs;
        enc_engine_stats(t->eng, &s);
        enc_engine_stats(ref->eng, &rs);
        assert_true(s.cache_evictions >= (uint64_t)n); /* most, twice */
        assert_int_equal(rs.cache_evictions, 0);
        assert_int_equal(s.timers_fired, 2 * n);
        assert_int_equal(s.timer_scans, 3);
        assert_int_equal(rs.timer_scans, 3);
        t_eng_free(t);
        t_eng_free(ref);
}

/* Sessions (gap 30 min) of 6000 users u0000..u5999, the k-th playing at
 * T + 500k ms, and every tenth again 100 s later (its timer moves from
 * first + gap to second + gap: a delete and a put, inside the window when
 * it reaches there); a checkpoint every 200 records, grace 0, a 1 MiB
 * budget, so users are evicted while their sessions are open and their
 * close is found through the window. A last play a day later closes every
 * session: 6000 updates in (close time, user id) order, worked out here
 * from the plays alone, byte for byte those of a cache that holds
 * everyone. The store is read about once per 256 timers, not once per
 * timer: at most 6000 / 256 + a few scans (each refill reads 256 keys
 * ahead; a flush never puts more than 200 into a window). */
typedef struct t_play_at_s {
        int64_t time;
        int k;
} t_play_at_t;

static int t_play_at_cmp(const void *a, const void *b) {
        const t_play_at_t *x = a, *y = b;
        if (x->time != y->time)
                return x->time < y->time ? -1 : 1;
        return x->k - y->k;
}

static void t_sessions_of_users(t_eng_t *t, const t_play_at_t *plays,
                                int nplays) {
        char err[512];
        char id[16], eid[24];
        for (int i = 0; i < nplays; i++) {
                snprintf(id, sizeof(id), "u%04d", plays[i].k);
                snprintf(eid, sizeof(eid), "e%d", i);
                enc_event_t e = t_play(eid, id, plays[i].time, 60000);
                t_feed(t, 0, &e);
                if (i % 200 == 199)
                        assert_int_equal(
                                enc_engine_checkpoint(t->eng, err, sizeof(err)),
                                0);
        }
        enc_event_t z = t_play("z", "zed", T_AT(2, 0, 0), 60000);
        t_feed(t, 0, &z);
}

static void test_evicted_users_timers_fire_from_the_window_in_order(
        void **st) {
        (void)st;
        const int n = 6000;
        const int64_t gap = 1800000;
        t_play_at_t *plays = calloc((size_t)n + n / 10, sizeof(*plays));
        t_play_at_t *closes = calloc((size_t)n, sizeof(*closes));
        int np = 0;
        for (int k = 0; k < n; k++) {
                int64_t first = T_AT(0, 10, 0) + 500 * (int64_t)k;
                int64_t last = k % 10 ? first : first + 100000;
                plays[np++] = (t_play_at_t){first, k};
                if (k % 10 == 0)
                        plays[np++] = (t_play_at_t){last, k};
                closes[k] = (t_play_at_t){last + gap, k};
        }
        qsort(plays, (size_t)np, sizeof(*plays), t_play_at_cmp);
        /* ids u0000.. sort as k does */
        qsort(closes, (size_t)n, sizeof(*closes), t_play_at_cmp);
        t_eng_t *ref = t_eng_new(t_conf("signals=session:1", "window.grace.ms=0",
                                        "dedup.window.ms=0", NULL),
                                 1);
        t_eng_t *t = t_eng_new(t_conf("signals=session:1", "window.grace.ms=0",
                                      "dedup.window.ms=0",
                                      "cache.max.bytes=1048576", NULL),
                               1);
        t_sessions_of_users(ref, plays, np);
        t_sessions_of_users(t, plays, np);
        assert_int_equal(t->sink.n, (size_t)n);
        char id[16];
        for (int i = 0; i < n; i++) {
                enc_update_t up;
                t_decode(t, (size_t)i, &up);
                snprintf(id, sizeof(id), "u%04d", closes[i].k);
                assert_string_equal(up.user_id, id);
                assert_string_equal(up.signal, "session");
                assert_int_equal(up.event_time, closes[i].time);
        }
        t_assert_outputs_from(t, ref, 0);
        enc_engine_stats_t s;
        enc_engine_stats(t->eng, &s);
        assert_true(s.cache_evictions > 0);
        assert_int_equal(s.timers_fired, n);
        if (s.timer_scans > (uint64_t)n / 256 + 4)
                fail_msg("%llu timer scans", (unsigned long long)s.timer_scans);
        free(plays);
        free(closes);
        t_eng_free(t);
        t_eng_free(ref);
}

/* A discarded checkpoint batch takes the timer keys the window mirrored
 * with it: the window is dropped, and the next advance reads the store's
 * timers once (then the refilled window serves again). */
static void test_checkpoint_abort_drops_the_timer_window(void **st) {
        (void)st;
        char err[512];
        t_eng_t *t = t_eng_new(t_conf("signals=active_days:1",
                                      "signal.active_days.1.windows=2",
                                      "window.grace.ms=0", NULL),
                               1);
        enc_event_t a = t_play("a1", "amy", T_AT(0, 10, 0), 60000);
        enc_event_t b = t_play("b1", "bob", T_AT(0, 11, 0), 60000);
        enc_event_t c = t_play("c1", "cal", T_AT(0, 12, 0), 60000);
        enc_event_t d = t_play("d1", "dan", T_AT(0, 13, 0), 60000);
        enc_event_t z = t_play("z1", "zed", T_AT(3, 10, 0), 60000);
        t_feed(t, 0, &a);
        t_feed(t, 0, &b);
        assert_int_equal(t_timer_scans(t), 1);
        assert_int_equal(enc_engine_checkpoint_stage(t->eng, err, sizeof(err)),
                         0);
        enc_engine_checkpoint_abort(t->eng);
        t_feed(t, 0, &c);
        assert_int_equal(t_timer_scans(t), 2);
        t_feed(t, 0, &d);
        assert_int_equal(t_timer_scans(t), 2);
        /* amy, bob, cal applied; dan's play at W = d3 10:00, then the
         * four d2 00:00 timers in id order */
        t_feed(t, 0, &z);
        assert_int_equal(t_timer_scans(t), 2);
        assert_int_equal(t->sink.n, 8);
        const char *order[4] = {"amy", "bob", "cal", "dan"};
        for (int k = 0; k < 4; k++) {
                enc_update_t up;
                t_decode(t, 4 + (size_t)k, &up);
                assert_string_equal(up.user_id, order[k]);
                assert_int_equal(up.event_time, T_DAY(2));
                assert_true(up.value == 0);
        }
        t_eng_free(t);
}

/* After a restart the window is rebuilt from the store: amy's and bob's
 * timers (committed; cal's play was still buffered, re-read on resume)
 * fire at d2 00:00 in id order with cal's, after one store scan. */
static void test_restart_rebuilds_the_timer_window(void **st) {
        (void)st;
        char err[512];
        t_eng_t *t = t_eng_new(t_conf("signals=active_days:1",
                                      "signal.active_days.1.windows=2",
                                      "window.grace.ms=0", NULL),
                               1);
        enc_event_t a = t_play("a1", "amy", T_AT(0, 10, 0), 60000);
        enc_event_t b = t_play("b1", "bob", T_AT(0, 11, 0), 60000);
        enc_event_t c = t_play("c1", "cal", T_AT(0, 12, 0), 60000);
        enc_event_t z = t_play("z1", "zed", T_AT(3, 10, 0), 60000);
        enc_event_t y = t_play("y1", "zoe", T_AT(4, 10, 0), 60000);
        t_feed(t, 0, &a);
        t_feed(t, 0, &b);
        t_feed(t, 0, &c);
        assert_int_equal(enc_engine_checkpoint(t->eng, err, sizeof(err)), 0);
        assert_int_equal(t->sink.n, 2);
        t_eng_close(t);
        t_eng_open(t, 1);
        assert_int_equal(t->next_offset[0], 2); /* cal's, buffered */
        t_feed(t, 0, &c);
        assert_int_equal(t_timer_scans(t), 0);
        t_feed(t, 0, &z);
        assert_int_equal(t_timer_scans(t), 1);
        assert_int_equal(t->sink.n, 6);
        const char *order[3] = {"amy", "bob", "cal"};
        enc_update_t up;
        t_decode(t, 2, &up);
        assert_string_equal(up.user_id, "cal");
        assert_true(up.value == 1);
        for (int k = 0; k < 3; k++) {
                t_decode(t, 3 + (size_t)k, &up);
                assert_string_equal(up.user_id, order[k]);
                assert_int_equal(up.event_time, T_DAY(2));
                assert_true(up.value == 0);
        }
        t_feed(t, 0, &y); /* zed's play: no timer due, no scan */
        assert_int_equal(t->sink.n, 7);
        assert_int_equal(t_timer_scans(t), 1);
        t_eng_free(t);
}

/* ---- the dedup state block ----------------------------------------- */

/* Applies a play with id @p id at @p t to the dedup state *st. */
static void t_dd_play(const enc_sig_instance_t *in, void **st, const char *id,
                      int64_t t) {
        enc_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.event_id = id;
        ev.event_time = t;
        assert_int_equal(in->plugin->on_event(in->priv, st, &ev, NULL), ENC_OK);
}

static void t_dd_put_le(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* The v2 block for ids e1 at T and e2 at T + 1000 (T = 1700000000000),
 * written here byte by byte:
 *   02 00 00 00 00 00 00 00   version 2, seven zero bytes
 *   XXH3_64("e1") as u64 LE, T as i64 LE
 *   XXH3_64("e2") as u64 LE, T + 1000 as i64 LE
 * Then: the state a play makes is that block; decode refuses blocks wrong
 * in one place each; a v1 record of the same ids (u8 1, varint 2, each
 * hash big-endian and the time as an svarint delta) reads as the same
 * block and goes on as the state that never left memory. */
static void test_dedup_state_block_layout_checks_and_migration(void **st) {
        (void)st;
        const int64_t T = 1700000000000;
        enc_sig_instance_t in;
        const enc_signal_plugin_t *pl;
        uint8_t want[8 + 32], bad[8 + 32 + 16];
        void *s = NULL, *d;
        enc_buf_t b;

        assert_int_equal(enc_dedup_instance(3600000, &in), ENC_OK);
        pl = in.plugin;
        memset(want, 0, sizeof(want));
        want[0] = 2;
        t_dd_put_le(want + 8, XXH3_64bits("e1", 2));
        t_dd_put_le(want + 16, (uint64_t)T);
        t_dd_put_le(want + 24, XXH3_64bits("e2", 2));
        t_dd_put_le(want + 32, (uint64_t)(T + 1000));

        t_dd_play(&in, &s, "e1", T);
        t_dd_play(&in, &s, "e2", T + 1000);
        enc_buf_init(&b, 0);
        assert_int_equal(pl->state_encode(in.priv, s, &b), ENC_OK);
        assert_int_equal(b.len, sizeof(want));
        assert_memory_equal(b.data, want, sizeof(want));
        enc_buf_free(&b);
        assert_int_equal(pl->next_timer(in.priv, s), T + 1000 + 3600000 + 1);
        assert_true(enc_dedup_seen(&in, s, XXH3_64bits("e1", 2), T));
        assert_false(enc_dedup_seen(&in, s, XXH3_64bits("e1", 2), T + 1));
        assert_true(pl->state_bytes(in.priv, s) > 0);

        assert_int_equal(pl->state_decode(in.priv, want, sizeof(want), &d),
                         ENC_OK);
        pl->state_free(in.priv, d);
#define DD_BAD(idx, byte, len)                                                 \
        do {                                                                   \
                memcpy(bad, want, sizeof(want));                               \
                memset(bad + sizeof(want), 0, sizeof(bad) - sizeof(want));     \
                if ((idx) >= 0)                                                \
                        bad[idx] = byte;                                       \
                d = (void *)1;                                                 \
                assert_int_equal(pl->state_decode(in.priv, bad, len, &d),      \
                                 ENC_ERR_CORRUPT);                             \
                assert_null(d);                                                \
        } while (0)
        DD_BAD(0, 3, sizeof(want));      /* unknown version */
        DD_BAD(1, 1, sizeof(want));      /* padding not zero */
        DD_BAD(7, 1, sizeof(want));      /* the same, last byte */
        DD_BAD(39, 0x80, sizeof(want));  /* e2 before e1 (negative time) */
        DD_BAD(39, 0x20, sizeof(want));  /* e2's time past 2^60 */
        DD_BAD(-1, 0, 8);                /* no id */
        DD_BAD(-1, 0, sizeof(want) - 1); /* not whole entries */
        DD_BAD(-1, 0, sizeof(want) + 1); /* trailing byte */
        DD_BAD(-1, 0, 0);                /* nothing */
#undef DD_BAD
        {
                /* ENC_DEDUP_MAX (4096) ids at most */
                size_t n = 4097, len = 8 + 16 * n;
                uint8_t *big = calloc(1, len);
                assert_non_null(big);
                big[0] = 2;
                assert_int_equal(pl->state_decode(in.priv, big, len, &d),
                                 ENC_ERR_CORRUPT);
                assert_int_equal(pl->state_decode(in.priv, big, len - 16, &d),
                                 ENC_OK);
                pl->state_free(in.priv, d);
                free(big);
        }

        /* v1 -> v2 */
        enc_buf_init(&b, 0);
        enc_buf_put_u8(&b, 1);
        enc_buf_put_varint(&b, 2);
        enc_buf_put_u64be(&b, XXH3_64bits("e1", 2));
        enc_buf_put_svarint(&b, T);
        enc_buf_put_u64be(&b, XXH3_64bits("e2", 2));
        enc_buf_put_svarint(&b, 1000);
        assert_int_equal(pl->state_decode(in.priv, b.data, b.len, &d), ENC_OK);
        enc_buf_free(&b);
        enc_buf_init(&b, 0);
        assert_int_equal(pl->state_encode(in.priv, d, &b), ENC_OK);
        assert_int_equal(b.len, sizeof(want));
        assert_memory_equal(b.data, want, sizeof(want));
        enc_buf_free(&b);
        /* Both go on alike: a play an hour and 500 ms after e1 forgets e1
         * (older than the hour) and keeps e2. */
        t_dd_play(&in, &s, "e3", T + 3600000 + 500);
        t_dd_play(&in, &d, "e3", T + 3600000 + 500);
        enc_buf_t b2;
        enc_buf_init(&b, 0);
        enc_buf_init(&b2, 0);
        assert_int_equal(pl->state_encode(in.priv, s, &b), ENC_OK);
        assert_int_equal(pl->state_encode(in.priv, d, &b2), ENC_OK);
        assert_int_equal(b.len, 8 + 32);
        assert_int_equal(b2.len, b.len);
        assert_memory_equal(b.data, b2.data, b.len);
        assert_memory_equal(b.data + 8, want + 24, 16); /* e2 is first */
        enc_buf_free(&b);
        enc_buf_free(&b2);
        /* a v1 record whose times overflow is refused, not wrapped */
        enc_buf_init(&b, 0);
        enc_buf_put_u8(&b, 1);
        enc_buf_put_varint(&b, 2);
        enc_buf_put_u64be(&b, 1);
        enc_buf_put_svarint(&b, INT64_MAX);
        enc_buf_put_u64be(&b, 2);
        enc_buf_put_svarint(&b, 1);
        void *o = (void *)1;
        assert_int_equal(pl->state_decode(in.priv, b.data, b.len, &o),
                         ENC_ERR_CORRUPT);
        assert_null(o);
        enc_buf_free(&b);
        /* the timer a window after the newest id frees the state */
        assert_int_equal(pl->on_timer(in.priv, &s, T + 2 * 3600000 + 501,
                                      NULL),
                         ENC_OK);
        assert_null(s);
        pl->state_free(in.priv, d);
        enc_dedup_instance_free(&in);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        test_a_burst_of_timers_fires_in_id_order_one_scan_each),
                cmocka_unit_test(
                        test_evicted_users_timers_fire_from_the_window_in_order),
                cmocka_unit_test(test_checkpoint_abort_drops_the_timer_window),
                cmocka_unit_test(test_restart_rebuilds_the_timer_window),
                cmocka_unit_test(
                        test_active_days_scripted_sequence_gives_hand_worked_updates),
                cmocka_unit_test(
                        test_out_of_order_within_grace_equals_in_order),
                cmocka_unit_test(
                        test_resume_after_crash_reproduces_reference_outputs),
                cmocka_unit_test(test_resume_rereads_as_the_first_pass_decided),
                cmocka_unit_test(
                        test_checkpoint_before_the_reread_keeps_its_start),
                cmocka_unit_test(
                        test_bad_records_are_dead_lettered_with_reason),
                cmocka_unit_test(test_state_of_a_user_who_stopped_is_deleted),
                cmocka_unit_test(
                        test_commit_is_due_when_a_checkpoint_would_stage_too_much),
                cmocka_unit_test(
                        test_duplicate_event_ids_within_window_are_dead_lettered),
                cmocka_unit_test(
                        test_dedup_prunes_on_write_and_fires_once_when_idle),
                cmocka_unit_test(test_dedup_filter_resumes_from_the_checkpoint),
                cmocka_unit_test(
                        test_dedup_state_block_layout_checks_and_migration),
                cmocka_unit_test(
                        test_dedup_filter_damaged_falls_back_to_the_watermark),
                cmocka_unit_test(
                        test_dedup_filter_of_another_position_is_ignored),
                cmocka_unit_test(
                        test_dedup_filter_resume_keeps_generated_outputs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
