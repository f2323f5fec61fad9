/*
 * test_state.c -- the RocksDB store, the event-time reorder buffer and the
 * write-back cache, each against values worked out by hand.
 */
#include "harness.h"

#include <dirent.h>

#include "budget.h"
#include "reorder.h"
#include "restore.h"
#include "timers.h"
#include "users.h"

/* ---- store ---------------------------------------------------------- */

static enc_store_t *t_store(char *dir) {
        char err[512];
        enc_store_conf_t sc = {0};
        enc_store_t *s = enc_store_open(dir, &sc, err, sizeof(err));
        if (!s)
                fprintf(stderr, "%s\n", err);
        assert_non_null(s);
        return s;
}

static enc_err_t t_collect_timer(void *opaque, int64_t t, const char *user,
                                 size_t ulen) {
        char *out = opaque;
        char line[64];
        snprintf(line, sizeof(line), "%lld:%.*s;", (long long)t, (int)ulen,
                 user);
        strcat(out, line);
        return ENC_OK;
}

/* Staged writes are invisible until commit; timers come back in (time,
 * user) order within (from, to], negative times before positive ones, and
 * other partitions' timers never. */
static void test_store_commit_is_atomic_and_timers_scan_in_order(void **st) {
        (void)st;
        char err[512];
        char *dir = t_tmpdir("store");
        enc_store_t *s = t_store(dir);
        enc_buf_t v;
        bool found = true;
        enc_buf_init(&v, 1 << 16);

        enc_store_put_user(s, 3, "ann", 3, "state-a", 7);
        enc_store_meta_t m = {10, 12, 5000, 4000, -1, 4500};
        enc_store_put_meta(s, 3, &m);
        assert_int_equal(enc_store_get_user(s, 3, "ann", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_false(found);
        assert_int_equal(enc_store_pending(s), 2);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        assert_int_equal(enc_store_get_user(s, 3, "ann", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(v.len, 7);
        assert_memory_equal(v.data, "state-a", 7);
        /* same user id, other partition: a different key */
        assert_int_equal(enc_store_get_user(s, 4, "ann", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_false(found);

        enc_store_put_timer(s, 3, 500, "zed", 3);
        enc_store_put_timer(s, 3, 100, "bob", 3);
        enc_store_put_timer(s, 3, 100, "al", 2);
        enc_store_put_timer(s, 3, -50, "neg", 3);
        enc_store_put_timer(s, 4, 200, "other", 5);
        enc_store_put_timer(s, 3, 900, "late", 4);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        char out[512] = "";
        assert_int_equal(enc_store_scan_timers(s, 3, INT64_MIN, 500,
                                               t_collect_timer, out, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(out, "-50:neg;100:al;100:bob;500:zed;");
        out[0] = '\0';
        assert_int_equal(enc_store_scan_timers(s, 3, 100, INT64_MAX,
                                               t_collect_timer, out, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(out, "500:zed;900:late;");

        enc_store_del_timer(s, 3, 500, "zed", 3);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        out[0] = '\0';
        assert_int_equal(enc_store_scan_timers(s, 3, 100, 1000,
                                               t_collect_timer, out, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(out, "900:late;");

        assert_int_equal(enc_store_drop_partition(s, 3, err, sizeof(err)), 0);
        assert_int_equal(enc_store_get_meta(s, 3, &m, &found, err,
                                            sizeof(err)),
                         0);
        assert_false(found);
        out[0] = '\0';
        assert_int_equal(enc_store_scan_timers(s, 4, INT64_MIN, INT64_MAX,
                                               t_collect_timer, out, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(out, "200:other;");
        enc_buf_free(&v);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

/* The position record: version 3 round-trips every field, bytes worked by
 * hand (zigzag LEB128); a version-2 record (no stream time at C) still
 * decodes, with that field unknown. */
static void test_position_record_versions(void **st) {
        (void)st;
        enc_store_meta_t m = {10, 12, 5000, 4000, -1, 4500}, d;
        enc_buf_t b;
        enc_buf_init(&b, 64);
        enc_store_meta_encode(&m, &b);
        static const uint8_t v3[] = {3,    0x14, 0x18, 0x90, 0x4e,
                                     0xc0, 0x3e, 0x01, 0xa8, 0x46};
        assert_int_equal(b.len, sizeof(v3));
        assert_memory_equal(b.data, v3, sizeof(v3));
        assert_int_equal(enc_store_meta_decode(v3, sizeof(v3), &d), 0);
        assert_int_equal(d.commit_offset, 10);
        assert_int_equal(d.next_offset, 12);
        assert_int_equal(d.stream_time, 5000);
        assert_int_equal(d.watermark, 4000);
        assert_int_equal(d.changelog_end, -1);
        assert_int_equal(d.stream_time_c, 4500);
        static const uint8_t v2[] = {2, 0x14, 0x18, 0x90, 0x4e,
                                     0xc0, 0x3e, 0x01};
        assert_int_equal(enc_store_meta_decode(v2, sizeof(v2), &d), 0);
        assert_int_equal(d.watermark, 4000);
        assert_true(d.stream_time_c == INT64_MIN);
        /* v3 without its last field, v2 with one more: corrupt */
        assert_int_equal(enc_store_meta_decode(v3, sizeof(v3) - 2, &d),
                         ENC_ERR_CORRUPT);
        assert_int_equal(enc_store_meta_decode(v3 + 0, 1, &d),
                         ENC_ERR_CORRUPT);
        uint8_t v2x[sizeof(v3)];
        memcpy(v2x, v3, sizeof(v3));
        v2x[0] = 2;
        assert_int_equal(enc_store_meta_decode(v2x, sizeof(v2x), &d),
                         ENC_ERR_CORRUPT);
        enc_buf_free(&b);
}

/* ---- reorder buffer ------------------------------------------------- */

/* Events leave in (time, user, event id) order; the smallest held offset is
 * the oldest arrival still held. */
static void test_reorder_releases_in_event_time_order(void **st) {
        (void)st;
        enc_reorder_t *r = enc_reorder_new(true);
        enc_event_t a = t_play("e3", "u2", 300, 1);
        enc_event_t b = t_play("e1", "u1", 100, 1);
        enc_event_t c = t_play("e2", "u1", 300, 1);
        enc_event_t d = t_play("e0", "u1", 300, 1);
        assert_int_equal(enc_reorder_min_offset(r), -1);
        assert_int_equal(enc_reorder_push(r, &a, 10, 0), 0);
        assert_int_equal(enc_reorder_push(r, &b, 11, 0), 0);
        assert_int_equal(enc_reorder_push(r, &c, 12, 0), 0);
        assert_int_equal(enc_reorder_push(r, &d, 13, 0), 0);
        assert_int_equal(enc_reorder_count(r), 4);
        assert_int_equal(enc_reorder_min_offset(r), 10);
        const char *order[] = {"e1", "e0", "e2", "e3"};
        int64_t min_after[] = {10, 10, 10, -1};
        for (int i = 0; i < 4; i++) {
                assert_string_equal(enc_reorder_peek(r)->event_id, order[i]);
                enc_reorder_pop(r);
                assert_int_equal(enc_reorder_min_offset(r), min_after[i]);
        }
        assert_null(enc_reorder_peek(r));
        /* growth past the first ring size keeps offsets right */
        for (int i = 0; i < 3000; i++) {
                enc_event_t e = t_play("x", "u", 5000 - i, 1);
                assert_int_equal(enc_reorder_push(r, &e, 100 + i, 0), 0);
        }
        assert_int_equal(enc_reorder_min_offset(r), 100);
        enc_reorder_pop(r); /* time 2001 = offset 3099 */
        assert_int_equal(enc_reorder_min_offset(r), 100);
        enc_reorder_destroy(r);
}

/* The mark pushed with an offset is the oldest held arrival's; contains()
 * answers for copies at or after a time, through pops of earlier copies. */
static void test_reorder_marks_and_windowed_contains(void **st) {
        (void)st;
        enc_reorder_t *r = enc_reorder_new(true);
        enc_event_t a = t_play("x", "u", 300, 1); /* offset 5, mark 111 */
        enc_event_t b = t_play("y", "u", 100, 1); /* offset 6, mark 222 */
        enc_event_t c = t_play("x", "u", 200, 1); /* offset 7, mark 333 */
        assert_int_equal(enc_reorder_min_mark(r, -9), -9);
        assert_int_equal(enc_reorder_push(r, &a, 5, 111), 0);
        assert_int_equal(enc_reorder_push(r, &b, 6, 222), 0);
        assert_int_equal(enc_reorder_push(r, &c, 7, 333), 0);
        assert_int_equal(enc_reorder_min_mark(r, -9), 111);
        /* copies of x at 300 and 200: any since <= 300 finds one */
        assert_true(enc_reorder_contains(r, "u", "x", 300));
        assert_false(enc_reorder_contains(r, "u", "x", 301));
        assert_false(enc_reorder_contains(r, "u", "y", 101));
        assert_false(enc_reorder_contains(r, "v", "x", 0));
        enc_reorder_pop(r); /* y@100, offset 6 */
        assert_int_equal(enc_reorder_min_mark(r, -9), 111);
        assert_false(enc_reorder_contains(r, "u", "y", INT64_MIN));
        enc_reorder_pop(r); /* x@200, offset 7: x@300 remains */
        assert_true(enc_reorder_contains(r, "u", "x", 300));
        assert_int_equal(enc_reorder_min_offset(r), 5);
        enc_reorder_pop(r); /* x@300, offset 5 */
        assert_false(enc_reorder_contains(r, "u", "x", INT64_MIN));
        assert_int_equal(enc_reorder_min_mark(r, -9), -9);
        /* after the oldest arrival leaves, the next held one's mark */
        assert_int_equal(enc_reorder_push(r, &b, 8, 444), 0);
        assert_int_equal(enc_reorder_push(r, &a, 9, 555), 0);
        enc_reorder_pop(r); /* y@100, offset 8 */
        assert_int_equal(enc_reorder_min_offset(r), 9);
        assert_int_equal(enc_reorder_min_mark(r, -9), 555);
        enc_reorder_destroy(r);
}

/* The read-ahead cursor hands out held events in arrival order while their
 * times are before the bound, waits at the first that is not (even if a
 * later arrival is earlier), skips events already popped and restarts after
 * a clear. */
static void test_reorder_read_ahead_in_arrival_order(void **st) {
        (void)st;
        enc_reorder_t *r = enc_reorder_new(true);
        enc_event_t a = t_play("a", "u1", 100, 1);
        enc_event_t b = t_play("b", "u2", 300, 1);
        enc_event_t c = t_play("c", "u3", 200, 1);
        enc_event_t d = t_play("d", "u4", 50, 1);
        assert_null(enc_reorder_next_arrival(r, INT64_MAX));
        assert_int_equal(enc_reorder_push(r, &a, 1, 0), 0);
        assert_int_equal(enc_reorder_push(r, &b, 2, 0), 0);
        assert_int_equal(enc_reorder_push(r, &c, 3, 0), 0);
        assert_int_equal(enc_reorder_push(r, &d, 4, 0), 0);
        assert_string_equal(enc_reorder_next_arrival(r, 250)->event_id, "a");
        assert_null(enc_reorder_next_arrival(r, 250)); /* b@300 waits */
        assert_null(enc_reorder_next_arrival(r, 300));
        assert_string_equal(enc_reorder_next_arrival(r, 301)->event_id, "b");
        assert_string_equal(enc_reorder_next_arrival(r, 301)->event_id, "c");
        enc_reorder_pop(r); /* d@50 leaves before the cursor reaches it */
        assert_null(enc_reorder_next_arrival(r, INT64_MAX));
        enc_event_t e = t_play("e", "u5", 400, 1);
        assert_int_equal(enc_reorder_push(r, &e, 5, 0), 0);
        assert_string_equal(enc_reorder_next_arrival(r, 401)->event_id, "e");
        assert_null(enc_reorder_next_arrival(r, INT64_MAX));
        enc_reorder_clear(r);
        assert_int_equal(enc_reorder_push(r, &b, 6, 0), 0);
        assert_string_equal(
                enc_reorder_next_arrival(r, INT64_MAX)->event_id, "b");
        enc_reorder_destroy(r);
}

/* A held event comes back field for field, from peek and from the
 * read-ahead: NULL and empty strings, every enum value, numbers at their
 * extremes, and strings too long for a slot (a block of its own). */
static void test_reorder_copy_keeps_every_field(void **st) {
        (void)st;
        enc_reorder_t *r = enc_reorder_new(true);
        static char big[3][301];
        for (int k = 0; k < 3; k++) {
                memset(big[k], 'a' + k, 300);
                big[k][300] = '\0';
        }
        enc_event_t in[4] = {
                {"e0", "u0", "t0", "a0", 10, 0, 1, ENC_END_TRACK_DONE,
                 ENC_SRC_RECOMMENDATION, "home", NULL, NULL},
                {"e1", "u1", "", "art", 20, INT64_MAX, INT64_MIN,
                 ENC_END_UNKNOWN, ENC_SRC_OTHER, NULL, "rec-1", "B"},
                {big[0], big[1], big[2], "a", 30, 7, 8, ENC_END_LOGOUT,
                 ENC_SRC_RADIO, "s", "", ""},
                {"e3", "u3", "t", "a", 40, -5, 0, ENC_END_BACK,
                 ENC_SRC_PLAYLIST, "", NULL, "c"},
        };
        for (int i = 0; i < 4; i++)
                assert_int_equal(enc_reorder_push(r, &in[i], i, 0), 0);
        for (int i = 0; i < 4; i++) {
                const enc_event_t *a = enc_reorder_next_arrival(r, INT64_MAX);
                const enc_event_t *p = enc_reorder_peek(r);
                for (int k = 0; k < 2; k++) {
                        const enc_event_t *g = k ? p : a;
                        assert_non_null(g);
                        assert_string_equal(g->event_id, in[i].event_id);
                        assert_string_equal(g->user_id, in[i].user_id);
                        assert_string_equal(g->track_id, in[i].track_id);
                        assert_string_equal(g->artist_id, in[i].artist_id);
                        assert_true(g->event_time == in[i].event_time);
                        assert_true(g->ms_played == in[i].ms_played);
                        assert_true(g->track_duration_ms ==
                                    in[i].track_duration_ms);
                        assert_int_equal(g->reason_end, in[i].reason_end);
                        assert_int_equal(g->source, in[i].source);
                        const char *ws[3] = {in[i].surface,
                                             in[i].recommendation_id,
                                             in[i].cohort};
                        const char *gs[3] = {g->surface, g->recommendation_id,
                                             g->cohort};
                        for (int j = 0; j < 3; j++) {
                                if (!ws[j])
                                        assert_null(gs[j]);
                                else
                                        assert_string_equal(gs[j], ws[j]);
                        }
                }
                assert_true(enc_reorder_contains(r, in[i].user_id,
                                                 in[i].event_id, INT64_MIN));
                enc_reorder_pop(r);
                assert_false(enc_reorder_contains(r, in[i].user_id,
                                                  in[i].event_id, INT64_MIN));
        }
        assert_null(enc_reorder_peek(r));
        enc_reorder_destroy(r);
}

/* A buffer made without ids (the engine's with dedup.window.ms 0) keeps
 * no id set: contains() is false for what it holds, and everything else
 * (order, offsets, marks, read-ahead) is as with one. */
static void test_reorder_without_ids_keeps_order_not_ids(void **st) {
        (void)st;
        enc_reorder_t *r = enc_reorder_new(false);
        enc_event_t a = t_play("x", "u", 300, 1);
        enc_event_t b = t_play("y", "u", 100, 1);
        assert_int_equal(enc_reorder_push(r, &a, 5, 111), 0);
        assert_int_equal(enc_reorder_push(r, &b, 6, 222), 0);
        assert_false(enc_reorder_contains(r, "u", "x", INT64_MIN));
        assert_false(enc_reorder_contains(r, "u", "y", INT64_MIN));
        assert_string_equal(enc_reorder_next_arrival(r, 301)->event_id, "x");
        assert_string_equal(enc_reorder_peek(r)->event_id, "y");
        enc_reorder_pop(r);
        assert_int_equal(enc_reorder_min_offset(r), 5);
        assert_int_equal(enc_reorder_min_mark(r, -9), 111);
        assert_string_equal(enc_reorder_peek(r)->event_id, "x");
        enc_reorder_pop(r);
        assert_null(enc_reorder_peek(r));
        assert_int_equal(enc_reorder_min_offset(r), -1);
        enc_reorder_destroy(r);
}

/* contains() agrees with a plain list of what is held, through growth and
 * removals (the id set deletes by shifting clusters back). */
static void test_reorder_contains_matches_a_naive_list(void **st) {
        (void)st;
        enc_reorder_t *r = enc_reorder_new(true);
        enum { N = 3000 };
        static char ids[N][16];
        static bool held[N];
        uint64_t x = 88172645463325252ULL;
        for (int i = 0; i < N; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                snprintf(ids[i], sizeof(ids[i]), "e%d", i);
                enc_event_t e = t_play(ids[i], "u", (int64_t)(x % 100000),
                                       1);
                assert_int_equal(enc_reorder_push(r, &e, i, 0), 0);
                held[i] = true;
                if (i % 3 == 2) { /* pop the earliest in order */
                        const enc_event_t *p = enc_reorder_peek(r);
                        int k = atoi(p->event_id + 1);
                        enc_reorder_pop(r);
                        held[k] = false;
                }
        }
        for (int i = 0; i < N; i++)
                assert_int_equal(enc_reorder_contains(r, "u", ids[i], INT64_MIN),
                                 held[i]);
        assert_false(enc_reorder_contains(r, "v", ids[0], INT64_MIN));
        enc_reorder_clear(r);
        for (int i = 0; i < N; i++)
                assert_false(enc_reorder_contains(r, "u", ids[i], INT64_MIN));
        enc_reorder_destroy(r);
}

/* ---- write-back cache with a counting plug-in ------------------------ */

/* State: a count of events; timer at 1000 * count; on_timer frees it. */
static enc_err_t cnt_on_event(void *priv, void **state, const enc_event_t *ev,
                              enc_emitter_t *em) {
        (void)priv, (void)ev, (void)em;
        if (!*state)
                *state = calloc(1, sizeof(int64_t));
        (*(int64_t *)*state)++;
        return ENC_OK;
}
static enc_err_t cnt_on_timer(void *priv, void **state, int64_t now,
                              enc_emitter_t *em) {
        (void)priv, (void)now, (void)em;
        free(*state);
        *state = NULL;
        return ENC_OK;
}
static int64_t cnt_next(void *priv, const void *state) {
        (void)priv;
        return 1000 * *(const int64_t *)state;
}
static enc_err_t cnt_encode(void *priv, const void *state, enc_buf_t *out) {
        (void)priv;
        enc_buf_put_varint(out, (uint64_t) * (const int64_t *)state);
        return ENC_OK;
}
static enc_err_t cnt_decode(void *priv, const uint8_t *buf, size_t len,
                            void **state) {
        (void)priv;
        uint64_t v;
        const uint8_t *p = buf;
        if (!enc_get_varint(&p, buf + len, &v) || p != buf + len)
                return ENC_ERR_CORRUPT;
        int64_t *s = malloc(sizeof(*s));
        *s = (int64_t)v;
        *state = s;
        return ENC_OK;
}
static void cnt_free(void *priv, void *state) {
        (void)priv;
        free(state);
}
static const enc_signal_plugin_t cnt_plugin = {
        .name = "count",
        .on_event = cnt_on_event,
        .on_timer = cnt_on_timer,
        .next_timer = cnt_next,
        .state_encode = cnt_encode,
        .state_decode = cnt_decode,
        .state_free = cnt_free,
};

static void t_bump(enc_users_t *c, const enc_sig_instance_t *in,
                   const char *user, int times) {
        char err[256];
        enc_user_t *u;
        assert_int_equal(enc_users_get(c, 0, user, strlen(user), ENC_NO_TIMER,
                                       &u, err, sizeof(err)),
                         0);
        enc_event_t ev = t_play("e", user, 1, 1);
        for (int i = 0; i < times; i++)
                assert_int_equal(in->plugin->on_event(NULL, &u->states[0], &ev,
                                                      NULL),
                                 0);
        enc_users_changed(c, u);
}

/* Wakes that move later leave their heap entries keyed at the old time;
 * enc_users_next_timer(upto) still returns the least (wake, id) due by
 * upto. The counting plug-in's wake is 1000 x its count. a: 1000, b: 2000,
 * c: 2000; then a 3000 and b 3000 (both moved later). Due by 999 or 1999:
 * nothing (a's stale key 1000 is put right on the way). By 2000: c. Then
 * c moves to 4000, and by 3000 the least is (3000, "a") before
 * (3000, "b"). */
static void test_timer_heap_lazy_keys(void **st) {
        (void)st;
        char *dir = t_tmpdir("lazy");
        enc_store_t *s = t_store(dir);
        enc_sig_instance_t in = {.plugin = &cnt_plugin, .version = 1,
                                 .id = 7};
        enc_users_t *c = enc_users_new(&in, 1, s, 1 << 20);
        t_bump(c, &in, "a", 1);
        t_bump(c, &in, "b", 2);
        t_bump(c, &in, "c", 2);
        assert_string_equal(enc_users_next_timer(c, 0, 1000)->user_id, "a");
        t_bump(c, &in, "a", 2); /* wake 3000: moved later */
        t_bump(c, &in, "b", 1); /* wake 3000 */
        assert_null(enc_users_next_timer(c, 0, 999));
        assert_null(enc_users_next_timer(c, 0, 1999));
        enc_user_t *u = enc_users_next_timer(c, 0, 2000);
        assert_non_null(u);
        assert_string_equal(u->user_id, "c");
        assert_int_equal(u->wake, 2000);
        /* c moves to 4000: now a (3000, "a") before b (3000, "b"). */
        t_bump(c, &in, "c", 2);
        assert_null(enc_users_next_timer(c, 0, 2999));
        u = enc_users_next_timer(c, 0, 3000);
        assert_string_equal(u->user_id, "a");
        assert_int_equal(u->wake, 3000);
        enc_users_destroy(c);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

/* Flush writes the record and moves the timer key; a user reloaded after
 * eviction has the same state; the heap orders by (wake, user); an empty
 * user is deleted. */
static void test_cache_writes_back_evicts_clean_and_orders_timers(void **st) {
        (void)st;
        char err[512];
        char *dir = t_tmpdir("users");
        enc_store_t *s = t_store(dir);
        enc_sig_instance_t in = {.plugin = &cnt_plugin, .version = 1,
                                 .id = 7};
        /* budget so small every clean entry is evicted */
        enc_users_t *c = enc_users_new(&in, 1, s, 1);
        t_bump(c, &in, "bea", 2); /* wake 2000 */
        t_bump(c, &in, "abe", 2); /* wake 2000, sorts first */
        t_bump(c, &in, "cal", 1); /* wake 1000 */
        assert_string_equal(
                enc_users_next_timer(c, 0, INT64_MAX - 1)->user_id, "cal");
        /* dirty entries survive eviction */
        assert_true(enc_users_evict(c));
        enc_users_stats_t us;
        enc_users_stats(c, &us);
        assert_int_equal(us.entries, 3);
        assert_int_equal(us.dirty, 3);

        assert_int_equal(enc_users_flush(c, err, sizeof(err)), 0);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        char out[256] = "";
        assert_int_equal(enc_store_scan_timers(s, 0, INT64_MIN, INT64_MAX,
                                               t_collect_timer, out, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(out, "1000:cal;2000:abe;2000:bea;");
        /* the record: version 2, wake 2000 (zig-zag 4000 = varint a0 1f),
         * one section, id 7, length 1 in a padded 5-byte varint, count 2 */
        enc_buf_t v;
        bool found;
        enc_buf_init(&v, 4096);
        assert_int_equal(enc_store_get_user(s, 0, "bea", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        const uint8_t want[] = {2,    0xa0, 0x1f, 1,    0, 0, 0, 7,
                                0x81, 0x80, 0x80, 0x80, 0, 2};
        assert_int_equal(v.len, sizeof(want));
        assert_memory_equal(v.data, want, sizeof(want));

        assert_false(enc_users_evict(c));
        enc_users_stats(c, &us);
        assert_int_equal(us.entries, 0);
        assert_null(enc_users_next_timer(c, 0, INT64_MAX - 1));
        assert_int_equal(enc_users_evicted_min(c, 0), 1000);
        assert_int_equal(enc_users_evicted_min(c, 0), ENC_NO_TIMER);

        /* reload bea: count 2 from the store, +1 -> wake 3000 */
        t_bump(c, &in, "bea", 1);
        assert_null(enc_users_next_timer(c, 0, 2999));
        assert_int_equal(enc_users_next_timer(c, 0, 3000)->wake, 3000);
        /* cal fires and frees its state: deleted at the next flush */
        enc_user_t *u;
        assert_int_equal(enc_users_get(c, 0, "cal", 3, ENC_NO_TIMER, &u, err,
                                       sizeof(err)),
                         0);
        assert_int_equal(cnt_on_timer(NULL, &u->states[0], 1000, NULL), 0);
        enc_users_changed(c, u);
        assert_int_equal(enc_users_flush(c, err, sizeof(err)), 0);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        out[0] = '\0';
        assert_int_equal(enc_store_scan_timers(s, 0, INT64_MIN, INT64_MAX,
                                               t_collect_timer, out, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(out, "2000:abe;3000:bea;");
        assert_int_equal(enc_store_get_user(s, 0, "cal", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_false(found);
        enc_users_stats(c, &us);
        assert_int_equal(us.deleted, 1);

        enc_buf_free(&v);
        enc_users_destroy(c);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

/* Users read ahead are pinned until used: eviction takes only the others,
 * however far over budget; a lookup unpins (then evictable); a read-ahead
 * past the pinned share (1/4 of the budget) is an ordinary entry, and
 * evicting it unused is counted as wasted. Dropping the partition frees
 * pinned entries too. */
static void test_cache_pins_users_read_ahead_until_used(void **st) {
        (void)st;
        char err[512];
        char *dir = t_tmpdir("users");
        enc_store_t *s = t_store(dir);
        enc_sig_instance_t in = {.plugin = &cnt_plugin, .version = 1,
                                 .id = 7};
        enc_users_t *c = enc_users_new(&in, 1, s, (size_t)1 << 20);
        t_bump(c, &in, "abe", 1);
        t_bump(c, &in, "bea", 1);
        t_bump(c, &in, "cal", 1);
        assert_int_equal(enc_users_flush(c, err, sizeof(err)), 0);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        enc_users_destroy(c);

        c = enc_users_new(&in, 1, s, (size_t)1 << 20);
        const int32_t parts[2] = {0, 0};
        const char *ids[2] = {"abe", "bea"};
        const size_t lens[2] = {3, 3};
        assert_int_equal(enc_users_prefetch(c, parts, ids, lens, NULL, 2, err,
                                            sizeof(err)),
                         0);
        enc_user_t *u;
        assert_int_equal(enc_users_get(c, 0, "cal", 3, ENC_NO_TIMER, &u, err,
                                       sizeof(err)),
                         0); /* a miss: an ordinary entry */
        enc_users_set_max_bytes(c, 1);
        assert_false(enc_users_evict(c)); /* over only by what is pinned */
        enc_users_stats_t us;
        enc_users_stats(c, &us);
        assert_int_equal(us.entries, 2);
        assert_int_equal(us.evictions, 1);
        assert_int_equal(us.prefetched, 2);
        assert_false(enc_users_cached(c, 0, "cal", 3));
        assert_int_equal(enc_users_get(c, 0, "abe", 3, ENC_NO_TIMER, &u, err,
                                       sizeof(err)),
                         0);
        assert_int_equal(u->states[0] != NULL, 1);
        assert_false(enc_users_evict(c)); /* abe, used, goes */
        enc_users_stats(c, &us);
        assert_int_equal(us.entries, 1);
        assert_int_equal(us.hits, 1);
        assert_int_equal(us.prefetch_wasted, 0);
        assert_true(enc_users_cached(c, 0, "bea", 3));
        enc_users_drop_partition(c, 0); /* bea, still pinned */
        enc_users_stats(c, &us);
        assert_int_equal(us.entries, 0);
        assert_int_equal(us.bytes, 0);

        /* a budget of 1 byte has no room to pin: read ahead, evicted
         * unused, counted */
        assert_int_equal(enc_users_prefetch(c, parts, ids, lens, NULL, 1, err,
                                            sizeof(err)),
                         0);
        assert_false(enc_users_evict(c));
        enc_users_stats(c, &us);
        assert_int_equal(us.entries, 0);
        assert_int_equal(us.prefetch_wasted, 1);

        enc_users_destroy(c);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

/* What a flush would stage, per dirty user: its record as long as when it
 * was last read or written (a new user: the 640-byte first guess of its
 * charge, /5 = 128), its key (4 + id + 4 bytes of batch framing) and one
 * timer key moved (2 x (12 + id + 4)). Nothing once flushed or dropped. */
static void test_cache_counts_what_a_flush_would_stage(void **st) {
        (void)st;
        char err[512];
        char *dir = t_tmpdir("users");
        enc_store_t *s = t_store(dir);
        enc_sig_instance_t in = {.plugin = &cnt_plugin, .version = 1,
                                 .id = 7};
        enc_users_t *c = enc_users_new(&in, 1, s, (size_t)1 << 30);
        assert_int_equal(enc_users_dirty_bytes(c), 0);
        t_bump(c, &in, "bea", 2); /* 128 + 11 + 38 */
        assert_int_equal(enc_users_dirty_bytes(c), 177);
        t_bump(c, &in, "bea", 1); /* already dirty: counted once */
        t_bump(c, &in, "abe", 2);
        assert_int_equal(enc_users_dirty_bytes(c), 354);
        assert_int_equal(enc_users_flush(c, err, sizeof(err)), 0);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        assert_int_equal(enc_users_dirty_bytes(c), 0);
        /* bea, count 3: a 14-byte record (as decoded in the test above) */
        t_bump(c, &in, "bea", 1);
        assert_int_equal(enc_users_dirty_bytes(c), 14 + 11 + 38);
        enc_users_drop_partition(c, 0);
        assert_int_equal(enc_users_dirty_bytes(c), 0);
        enc_users_destroy(c);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

/* cache.max.bytes is split 1/2 users cache, 1/4 block cache, 1/4
 * memtables, commits bounded at 1/8; the RocksDB shares have 4 MiB
 * floors and the commit bound 1 MiB. The id filter takes 1/16 of the total
 * from the users share, at least 1 MiB, at most a quarter of the share.
 * The Kafka consumer's prefetch is bounded at 1/16 of the total, outside
 * the shares: at least 1 MiB, at most 16 MiB and at most 1/8 of the total. */
static void test_budget_shares(void **st) {
        (void)st;
        enc_budget_t b;
        enc_budget_split((size_t)64 << 20, &b);
        assert_int_equal(b.total, 67108864);
        assert_int_equal(b.users, 33554432);
        assert_int_equal(b.block_cache, 16777216);
        assert_int_equal(b.memtables, 16777216);
        assert_int_equal(b.commit_bytes, 8388608);
        assert_int_equal(b.idfilter, 4194304);
        assert_int_equal(b.prefetch, 4194304);
        enc_budget_split(100000001, &b);
        assert_int_equal(b.users, 50000000);
        assert_int_equal(b.block_cache, 25000000);
        assert_int_equal(b.memtables, 25000000);
        assert_int_equal(b.commit_bytes, 12500000);
        assert_int_equal(b.idfilter, 6250000);
        assert_int_equal(b.prefetch, 6250000);
        enc_budget_split((size_t)4 << 20, &b);
        assert_int_equal(b.users, 2097152);
        assert_int_equal(b.commit_bytes, 1048576);
        assert_int_equal(b.idfilter, 524288); /* a quarter of 2 MiB */
        assert_int_equal(b.prefetch, 524288); /* the floor, capped at 1/8 */
        enc_budget_split((size_t)8 << 20, &b);
        assert_int_equal(b.users, 4194304);
        assert_int_equal(b.block_cache, 4194304);
        assert_int_equal(b.memtables, 4194304);
        assert_int_equal(b.commit_bytes, 1048576);
        assert_int_equal(b.idfilter, 1048576); /* the floor */
        assert_int_equal(b.prefetch, 1048576); /* the floor */
        enc_budget_split((size_t)1 << 30, &b);
        assert_int_equal(b.users, 536870912);
        assert_int_equal(b.prefetch, 16777216); /* the cap, not 64 MiB */
}

/* The store sizes its RocksDB parts from the configuration's budget. */
static void test_store_conf_from_budget(void **st) {
        (void)st;
        char err[256];
        enc_conf_t *conf = enc_conf_new();
        assert_int_equal(enc_conf_set(conf, "cache.max.bytes", "268435456",
                                      err, sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(conf, "state.sync", "true", err,
                                      sizeof(err)),
                         0);
        enc_store_conf_t sc;
        enc_store_conf_from(conf, &sc);
        assert_true(sc.sync);
        assert_int_equal(sc.block_cache_bytes, 67108864);
        assert_int_equal(sc.memtable_bytes, 67108864);
        enc_conf_destroy(conf);
}

/* The value of @p key in section [@p kind "@p cf"] of the newest
 * OPTIONS-* file RocksDB wrote in @p dir, into @p out ("" if absent). */
static void t_option(const char *dir, const char *kind, const char *cf,
                     const char *key, char *out, size_t out_size) {
        char path[600], best[256] = "", sect[96], line[512];
        DIR *d = opendir(dir);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (!strncmp(de->d_name, "OPTIONS-", 8) &&
                    !strstr(de->d_name, ".dbtmp") &&
                    (strlen(de->d_name) > strlen(best) ||
                     (strlen(de->d_name) == strlen(best) &&
                      strcmp(de->d_name, best) > 0)))
                        snprintf(best, sizeof(best), "%s", de->d_name);
        closedir(d);
        assert_true(best[0]);
        snprintf(path, sizeof(path), "%s/%s", dir, best);
        snprintf(sect, sizeof(sect), "[%s \"%s\"]", kind, cf);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        bool in = false;
        size_t klen = strlen(key);
        out[0] = 0;
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = 0;
                if (line[0] == '[') {
                        in = !strcmp(line, sect);
                        continue;
                }
                const char *p = line + strspn(line, " ");
                if (in && !strncmp(p, key, klen) && p[klen] == '=') {
                        snprintf(out, out_size, "%s", p + klen + 1);
                        break;
                }
        }
        fclose(f);
}

static void t_cf_option(const char *dir, const char *cf, const char *key,
                        char *out, size_t out_size) {
        t_option(dir, "CFOptions", cf, key, out, out_size);
}

static void t_table_option(const char *dir, const char *cf, const char *key,
                           char *out, size_t out_size) {
        t_option(dir, "TableOptions/BlockBasedTable", cf, key, out, out_size);
}

/* What the store asks of RocksDB, read back from the OPTIONS file RocksDB
 * writes: no compression and a 12-file L0 trigger in every family (see
 * state/store.c, "Background work"), the users family's write buffer
 * half of the memtable share (the default budget's 16 MiB: 8 MiB), and
 * RocksDB's cap over all memtables the whole share. Point lookups (see
 * state/store.c, "Point lookups"): the partitions of L0 files' index and
 * filter pinned in every family, and the users family (the one with a
 * bloom filter, partitioned) without a filter in its last level. */
static void test_store_options_reach_rocksdb(void **st) {
        (void)st;
        char *dir = t_tmpdir("store");
        enc_store_t *s = t_store(dir);
        char v[128];
        static const char *const cfs[] = {"default", "users", "timers",
                                          "meta"};
        for (int i = 0; i < 4; i++) {
                t_cf_option(dir, cfs[i], "compression", v, sizeof(v));
                assert_string_equal(v, "kNoCompression");
                t_cf_option(dir, cfs[i], "level0_file_num_compaction_trigger",
                            v, sizeof(v));
                assert_string_equal(v, "12");
                t_cf_option(dir, cfs[i], "level0_slowdown_writes_trigger", v,
                            sizeof(v));
                assert_string_equal(v, "28");
                t_cf_option(dir, cfs[i], "level0_stop_writes_trigger", v,
                            sizeof(v));
                assert_string_equal(v, "44");
                t_table_option(dir, cfs[i],
                               "pin_l0_filter_and_index_blocks_in_cache", v,
                               sizeof(v));
                assert_string_equal(v, "true");
                t_table_option(dir, cfs[i], "pin_top_level_index_and_filter",
                               v, sizeof(v));
                assert_string_equal(v, "true");
                t_cf_option(dir, cfs[i], "optimize_filters_for_hits", v,
                            sizeof(v));
                assert_string_equal(v, i == 1 ? "true" : "false");
                t_table_option(dir, cfs[i], "partition_filters", v,
                               sizeof(v));
                assert_string_equal(v, i == 1 ? "true" : "false");
        }
        t_cf_option(dir, "users", "write_buffer_size", v, sizeof(v));
        assert_string_equal(v, "8388608");
        t_cf_option(dir, "timers", "write_buffer_size", v, sizeof(v));
        assert_string_equal(v, "4194304");
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

/* Every truncation of a valid record is rejected without a crash, and so
 * are a duplicated section and trailing bytes. */
static void test_user_record_rejects_every_truncation(void **st) {
        (void)st;
        enc_sig_instance_t in = {.plugin = &cnt_plugin, .version = 1,
                                 .id = 7};
        int64_t n = 300;
        void *states[1] = {&n};
        enc_buf_t b;
        enc_buf_init(&b, 4096);
        assert_int_equal(enc_user_record_encode(&in, 1, states, &b), 0);
        void *got[1];
        assert_int_equal(enc_user_record_decode(&in, 1, b.data, b.len, got),
                         0);
        assert_int_equal(*(int64_t *)got[0], 300);
        free(got[0]);
        for (size_t len = 0; len < b.len; len++)
                assert_int_equal(
                        enc_user_record_decode(&in, 1, b.data, len, got),
                        ENC_ERR_CORRUPT);
        uint8_t extra[64];
        memcpy(extra, b.data, b.len);
        extra[b.len] = 0;
        assert_int_equal(enc_user_record_decode(&in, 1, extra, b.len + 1, got),
                         ENC_ERR_CORRUPT);
        /* the wake is readable alone: count 300 -> 300000 */
        int64_t wake;
        assert_int_equal(enc_user_record_wake(b.data, b.len, &wake), 0);
        assert_int_equal(wake, 300000);
        /* two sections for the same instance: header is version, wake
         * (zig-zag 600000 takes 3 varint bytes), count */
        size_t hdr = 1 + 3;
        uint8_t dup[64];
        memcpy(dup, b.data, hdr);
        dup[hdr] = 2;
        size_t sec = b.len - hdr - 1;
        memcpy(dup + hdr + 1, b.data + hdr + 1, sec);
        memcpy(dup + hdr + 1 + sec, b.data + hdr + 1, sec);
        assert_int_equal(enc_user_record_decode(&in, 1, dup,
                                                hdr + 1 + 2 * sec, got),
                         ENC_ERR_CORRUPT);
        enc_buf_free(&b);
}

/* An incremental restore keeps the local position until a whole commit
 * replaces it: a changelog tail cut short (a commit's user records with no
 * position record after them, a process killed mid-commit) is dropped and
 * the store keeps the last whole commit with its own position. Before, the
 * restore deleted the position up front and such a tail left the
 * partition with state but no position, so the input was taken from the
 * group offset and events in [C, E) were applied a second time. */
static void test_incremental_restore_keeps_position_until_a_whole_commit(
        void **st) {
        (void)st;
        char err[512];
        char *dir = t_tmpdir("restore");
        enc_store_t *s = t_store(dir);
        enc_buf_t v;
        bool found;
        enc_buf_init(&v, 1 << 16);
        /* a user record: version 2, wake 100 (zigzag 200), no sections */
        static const uint8_t rec[] = {2, 0xc8, 0x01, 0};
        enc_store_put_user(s, 1, "ann", 3, rec, sizeof(rec));
        enc_store_meta_t m = {10, 12, 5000, 4000, 7, 4500}, d;
        enc_store_put_meta(s, 1, &m);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);

        /* the tail: a commit begun, one user, then nothing */
        enc_restore_t *r = enc_restore_new(s, 1, false, err, sizeof(err));
        assert_non_null(r);
        assert_int_equal(enc_restore_record(r, "B", 1, NULL, 0, 7, err,
                                            sizeof(err)),
                         0);
        assert_int_equal(enc_restore_record(r, "Ubob", 4, rec, sizeof(rec), 8,
                                            err, sizeof(err)),
                         0);
        enc_restore_stats_t rs;
        enc_restore_finish(r, &rs);
        enc_restore_destroy(r);
        assert_int_equal(rs.discarded, 1);
        assert_int_equal(enc_store_get_meta(s, 1, &d, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(d.commit_offset, 10);
        assert_int_equal(d.next_offset, 12);
        assert_int_equal(d.watermark, 4000);
        assert_int_equal(d.changelog_end, 7);
        assert_int_equal(enc_store_get_user(s, 1, "bob", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_false(found);
        assert_int_equal(enc_store_get_user(s, 1, "ann", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);

        /* the same again, then whole: its position replaces the old one,
         * with the changelog end just past its own record (offset 11) */
        r = enc_restore_new(s, 1, false, err, sizeof(err));
        assert_non_null(r);
        enc_store_meta_t m2 = {20, 22, 6000, 5000, -1, 5500};
        enc_buf_t mb;
        enc_buf_init(&mb, 64);
        enc_store_meta_encode(&m2, &mb);
        assert_int_equal(enc_restore_record(r, "B", 1, NULL, 0, 9, err,
                                            sizeof(err)),
                         0);
        assert_int_equal(enc_restore_record(r, "Ubob", 4, rec, sizeof(rec),
                                            10, err, sizeof(err)),
                         0);
        assert_int_equal(enc_restore_record(r, "M", 1, mb.data, mb.len, 11,
                                            err, sizeof(err)),
                         0);
        enc_restore_finish(r, &rs);
        enc_restore_destroy(r);
        assert_int_equal(rs.positions, 1);
        assert_int_equal(enc_store_get_meta(s, 1, &d, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(d.commit_offset, 20);
        assert_int_equal(d.changelog_end, 12);
        assert_int_equal(enc_store_get_user(s, 1, "bob", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        enc_buf_free(&mb);
        enc_buf_free(&v);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

/* A user record of version ENC_USER_RECORD_VERSION with wake @p wake (or
 * none: INT64_MAX) and no sections, padded with @p pad bytes of @p fill
 * (a restore reads only the header). */
static void t_user_rec(enc_buf_t *b, int64_t wake, size_t pad, uint8_t fill) {
        enc_buf_reset(b);
        enc_buf_put_u8(b, ENC_USER_RECORD_VERSION);
        enc_buf_put_svarint(b, wake);
        enc_buf_put_u8(b, 0);
        for (size_t i = 0; i < pad; i++)
                enc_buf_put_u8(b, fill);
        assert_false(b->failed);
}

/* Feeds one changelog record to @p r at offset (*off)++. */
static void t_feed(enc_restore_t *r, int64_t *off, const char *key,
                   const void *val, size_t vlen) {
        char err[512];
        enc_err_t e = enc_restore_record(r, key, strlen(key), val, vlen,
                                         (*off)++, err, sizeof(err));
        if (e)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(e, ENC_OK);
}

/* The changelog of the full-restore test, from offset @p from (records
 * before it are skipped, as a restore that starts there would):
 *   0      B
 *   1..    3000 users u0000..u2999, 2 KiB each, no wake (6 MiB: more than
 *          one batch of a full restore), with "dup" put at wake 100 and
 *          again at wake 300, and "gone" put then deleted, in between
 *   3005   M (position 1: C=100)
 *   3006   B, 3007 U ann (wake 500), 3008 U u0001 again (wake 700, 'b's)
 *   3009   M (position 2: C=200)
 *   3010   B, 3011 U cut: a commit cut short
 * Returns the offset past the last record. */
static int64_t t_full_changelog(enc_restore_t *r, int64_t from) {
        enc_buf_t v, mb;
        enc_buf_init(&v, 1 << 16);
        enc_buf_init(&mb, 64);
        int64_t off = 0;
        char key[32];
#define T_FEED(k, val, len)                                                   \
        do {                                                                  \
                if (off >= from)                                              \
                        t_feed(r, &off, k, val, len);                         \
                else                                                          \
                        off++;                                                \
        } while (0)
        T_FEED("B", NULL, 0);
        t_user_rec(&v, INT64_MAX, 2048, 'a');
        for (int i = 0; i < 3000; i++) {
                snprintf(key, sizeof(key), "Uu%04d", i);
                T_FEED(key, v.data, v.len);
                if (i == 10) {
                        enc_buf_t d;
                        enc_buf_init(&d, 64);
                        t_user_rec(&d, 100, 0, 0);
                        T_FEED("Udup", d.data, d.len);
                        T_FEED("Ugone", d.data, d.len);
                        t_user_rec(&d, 300, 0, 0);
                        T_FEED("Udup", d.data, d.len);
                        T_FEED("Ugone", NULL, 0);
                        enc_buf_free(&d);
                }
        }
        assert_int_equal(off, 3005);
        enc_store_meta_t m1 = {100, 110, 9000, 8000, -1, 8500};
        enc_store_meta_encode(&m1, &mb);
        T_FEED("M", mb.data, mb.len); /* 3005 */
        T_FEED("B", NULL, 0);
        t_user_rec(&v, 500, 0, 0);
        T_FEED("Uann", v.data, v.len);
        t_user_rec(&v, 700, 16, 'b');
        T_FEED("Uu0001", v.data, v.len);
        enc_store_meta_t m2 = {200, 210, 9900, 8900, -1, 9400};
        enc_buf_reset(&mb);
        enc_store_meta_encode(&m2, &mb);
        T_FEED("M", mb.data, mb.len); /* 3009 */
        T_FEED("B", NULL, 0);
        t_user_rec(&v, 900, 0, 0);
        T_FEED("Ucut", v.data, v.len);
#undef T_FEED
        enc_buf_free(&v);
        enc_buf_free(&mb);
        return off;
}

/* The state of partition 3 after the whole changelog above, checked
 * against values worked out from it by hand. */
static void t_check_full_state(enc_store_t *s) {
        char err[512], timers[512] = "";
        enc_buf_t v;
        bool found;
        enc_store_meta_t d;
        enc_buf_init(&v, 1 << 16);
        assert_int_equal(enc_store_get_meta(s, 3, &d, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(d.commit_offset, 200);
        assert_int_equal(d.next_offset, 210);
        assert_int_equal(d.watermark, 8900);
        assert_int_equal(d.changelog_end, 3010); /* position 2 at 3009 */
        /* the last record of each user: u0001 from commit 2 */
        assert_int_equal(enc_store_get_user(s, 3, "u0001", 5, &v, &found,
                                            err, sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(v.len, 1 + 2 + 1 + 16); /* wake 700: 2 bytes */
        assert_int_equal(v.data[v.len - 1], 'b');
        assert_int_equal(enc_store_get_user(s, 3, "u2999", 5, &v, &found,
                                            err, sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(v.len, 1 + 10 + 1 + 2048); /* INT64_MAX: 10 */
        assert_int_equal(v.data[v.len - 1], 'a');
        assert_int_equal(enc_store_get_user(s, 3, "dup", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(v.data[1], 0xd8); /* zigzag(300) = 600 = d8 04 */
        assert_int_equal(v.data[2], 0x04);
        static const char *const absent[] = {"gone", "cut", "old"};
        for (int i = 0; i < 3; i++) {
                assert_int_equal(enc_store_get_user(s, 3, absent[i],
                                                    strlen(absent[i]), &v,
                                                    &found, err, sizeof(err)),
                                 0);
                assert_false(found);
        }
        /* one timer per kept record with a wake; "dup" at 100 was
         * superseded within its batch, "old"'s went with the drop */
        assert_int_equal(enc_store_scan_timers(s, 3, INT64_MIN, INT64_MAX,
                                               t_collect_timer, timers, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(timers, "300:dup;500:ann;700:u0001;");
        /* partition 4 untouched */
        assert_int_equal(enc_store_get_user(s, 4, "keep", 4, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        enc_buf_free(&v);
}

/* A full restore writes whole commits in large batches, one operation per
 * user (the last) in key order, each batch with the position of its last
 * commit. Interrupted after its first batch (a crash, a revoke), the store
 * holds exactly that batch's commits and position -- never a part of a
 * commit -- and the incremental restore the next assignment makes from
 * that position ends in the same state as one uninterrupted restore. */
static void test_full_restore_batches_whole_commits_and_resumes(void **st) {
        (void)st;
        char err[512];
        bool found;
        enc_buf_t v;
        enc_buf_init(&v, 1 << 16);
        enc_restore_stats_t rs;
        for (int interrupted = 0; interrupted < 2; interrupted++) {
                char *dir = t_tmpdir("fullrestore");
                enc_store_t *s = t_store(dir);
                /* local leftovers of partition 3 (dropped by a full
                 * restore) and partition 4's state (kept) */
                t_user_rec(&v, 50, 0, 0);
                enc_store_put_user(s, 3, "old", 3, v.data, v.len);
                enc_store_put_timer(s, 3, 50, "old", 3);
                enc_store_put_user(s, 4, "keep", 4, v.data, v.len);
                enc_store_put_timer(s, 4, 50, "keep", 4);
                enc_store_meta_t m0 = {1, 2, 3, 4, -1, 3};
                enc_store_put_meta(s, 4, &m0);
                assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);

                enc_restore_t *r = enc_restore_new(s, 3, true, err,
                                                   sizeof(err));
                assert_non_null(r);
                if (!interrupted) {
                        assert_int_equal(t_full_changelog(r, 0), 3012);
                        assert_int_equal(enc_restore_complete(r, err,
                                                              sizeof(err)),
                                         0);
                        enc_restore_finish(r, &rs);
                        enc_restore_destroy(r);
                        assert_int_equal(rs.records, 3012);
                        assert_int_equal(rs.positions, 2);
                        assert_int_equal(rs.users, 3004 + 2);
                        assert_int_equal(rs.discarded, 1);
                        t_check_full_state(s);
                        enc_store_close(s);
                        t_rmtree(dir);
                        free(dir);
                        continue;
                }
                /* the first batch is written at position 1 (6 MiB
                 * staged); commit 2 is staged when the restore stops */
                assert_int_equal(t_full_changelog(r, 0), 3012);
                enc_restore_finish(r, &rs); /* no complete: interrupted */
                enc_restore_destroy(r);
                enc_store_meta_t d;
                assert_int_equal(enc_store_get_meta(s, 3, &d, &found, err,
                                                    sizeof(err)),
                                 0);
                assert_true(found);
                assert_int_equal(d.commit_offset, 100);
                assert_int_equal(d.changelog_end, 3006);
                assert_int_equal(enc_store_get_user(s, 3, "ann", 3, &v,
                                                    &found, err, sizeof(err)),
                                 0);
                assert_false(found);
                assert_int_equal(enc_store_get_user(s, 3, "u0001", 5, &v,
                                                    &found, err, sizeof(err)),
                                 0);
                assert_true(found);
                assert_int_equal(v.data[v.len - 1], 'a'); /* commit 1's */
                enc_store_close(s); /* the crash; reopened below */
                s = t_store(dir);
                /* the next assignment: incremental from changelog end */
                r = enc_restore_new(s, 3, false, err, sizeof(err));
                assert_non_null(r);
                assert_int_equal(t_full_changelog(r, 3006), 3012);
                assert_int_equal(enc_restore_complete(r, err, sizeof(err)),
                                 0);
                enc_restore_finish(r, &rs);
                enc_restore_destroy(r);
                assert_int_equal(rs.records, 6);
                assert_int_equal(rs.positions, 1);
                assert_int_equal(rs.users, 2);
                assert_int_equal(rs.discarded, 1);
                t_check_full_state(s);
                enc_store_close(s);
                t_rmtree(dir);
                free(dir);
        }
        enc_buf_free(&v);
}

/* A full restore loads its batches as table files (RocksDB ingestion)
 * and ends with exactly the records the changelog's whole commits hold:
 * every one of the 3000 users of commit 1 compared byte for byte with the
 * record written, u0001 and ann from commit 2, nothing of the cut commit,
 * the deleted user or the dropped local leftovers, and exactly 3002 + 1
 * user keys in the store (partition 4's "keep"). Two ingestions of a
 * users and a timers file each: at position 1 (6 MiB staged) and at the
 * end. The incremental restore that follows (the store has a position)
 * writes through batches: no table file. */
static void test_full_restore_ingests_exactly_the_committed_records(void **st) {
        (void)st;
        char err[512];
        bool found;
        enc_buf_t v, want;
        enc_buf_init(&v, 1 << 16);
        enc_buf_init(&want, 1 << 16);
        enc_restore_stats_t rs;
        char *dir = t_tmpdir("ingest");
        enc_store_t *s = t_store(dir);
        t_user_rec(&v, 50, 0, 0);
        enc_store_put_user(s, 3, "old", 3, v.data, v.len);
        enc_store_put_timer(s, 3, 50, "old", 3);
        enc_store_put_user(s, 4, "keep", 4, v.data, v.len);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);

        enc_restore_t *r = enc_restore_new(s, 3, true, err, sizeof(err));
        assert_non_null(r);
        assert_int_equal(t_full_changelog(r, 0), 3012);
        assert_int_equal(enc_restore_complete(r, err, sizeof(err)), 0);
        enc_restore_finish(r, &rs);
        enc_restore_destroy(r);
        assert_int_equal(rs.ingested, 4);
        assert_int_equal(rs.positions, 2);
        /* the drop's range deletions overlap every file: users and
         * timers each hold the flush the first ingestion forced (the
         * deletions, "old", "keep") and two ingested files in level 0 */
        assert_int_equal(enc_store_l0_files(s), 2 * (1 + 2));
        t_check_full_state(s);
        t_user_rec(&want, INT64_MAX, 2048, 'a');
        for (int i = 0; i < 3000; i++) {
                char id[16];
                snprintf(id, sizeof(id), "u%04d", i);
                assert_int_equal(enc_store_get_user(s, 3, id, 5, &v, &found,
                                                    err, sizeof(err)),
                                 0);
                assert_true(found);
                if (i == 1)
                        continue; /* commit 2's, checked above */
                assert_int_equal(v.len, want.len);
                assert_memory_equal(v.data, want.data, want.len);
        }
        enc_store_compact(s);
        enc_store_stats_t ss;
        enc_store_stats(s, &ss);
        assert_int_equal(ss.user_keys, 3000 + 2 + 1);
        assert_int_equal(ss.timer_keys, 3);

        /* The next restore is incremental: from position 2, the cut
         * commit and one more whole one. */
        r = enc_restore_new(s, 3, false, err, sizeof(err));
        assert_non_null(r);
        int64_t off = 3012;
        enc_buf_t mb;
        enc_buf_init(&mb, 64);
        t_feed(r, &off, "B", NULL, 0);
        t_user_rec(&v, 1100, 0, 0);
        t_feed(r, &off, "Unew", v.data, v.len);
        enc_store_meta_t m3 = {300, 310, 9950, 9000, -1, 9500};
        enc_store_meta_encode(&m3, &mb);
        t_feed(r, &off, "M", mb.data, mb.len);
        assert_int_equal(enc_restore_complete(r, err, sizeof(err)), 0);
        enc_restore_finish(r, &rs);
        enc_restore_destroy(r);
        assert_int_equal(rs.ingested, 0);
        assert_int_equal(rs.users, 1);
        assert_int_equal(enc_store_get_user(s, 3, "new", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        enc_store_meta_t d;
        assert_int_equal(enc_store_get_meta(s, 3, &d, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(d.commit_offset, 300);
        assert_int_equal(d.changelog_end, 3015);
        enc_buf_free(&mb);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
        enc_buf_free(&v);
        enc_buf_free(&want);
}

/* A full restore into a partition with no key at all (a lost disk)
 * drops nothing first, so no ingestion overlaps a range deletion or the
 * memtables (partition 4's user is outside its range): every table file
 * goes below level 0, where no compaction has to merge it, and the state
 * is the same as the full-restore test's. */
static void test_full_restore_into_an_empty_partition_skips_level0(void **st) {
        (void)st;
        char err[512];
        enc_buf_t v;
        enc_buf_init(&v, 1 << 16);
        enc_restore_stats_t rs;
        char *dir = t_tmpdir("ingestempty");
        enc_store_t *s = t_store(dir);
        t_user_rec(&v, 50, 0, 0);
        enc_store_put_user(s, 4, "keep", 4, v.data, v.len);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        enc_restore_t *r = enc_restore_new(s, 3, true, err, sizeof(err));
        assert_non_null(r);
        assert_int_equal(t_full_changelog(r, 0), 3012);
        assert_int_equal(enc_restore_complete(r, err, sizeof(err)), 0);
        enc_restore_finish(r, &rs);
        enc_restore_destroy(r);
        assert_int_equal(rs.ingested, 4);
        assert_int_equal(enc_store_l0_files(s), 0);
        t_check_full_state(s);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
        enc_buf_free(&v);
}

/* `encore reset` in the changelog of a full restore (R then its
 * position): the users loaded before it (a file already ingested at the
 * reset) are dropped by the write that precedes the next ingestion, so
 * only what follows the reset is left: "c" and its timer. */
static void test_full_restore_reset_drops_what_was_ingested(void **st) {
        (void)st;
        char err[512], timers[256] = "";
        bool found;
        enc_buf_t v, mb;
        enc_buf_init(&v, 1 << 16);
        enc_buf_init(&mb, 64);
        enc_restore_stats_t rs;
        char *dir = t_tmpdir("ingestreset");
        enc_store_t *s = t_store(dir);
        enc_restore_t *r = enc_restore_new(s, 0, true, err, sizeof(err));
        assert_non_null(r);
        int64_t off = 0;
        enc_store_meta_t m1 = {10, 11, 100, 90, -1, 95};
        enc_store_meta_t m2 = {20, 20, INT64_MIN, INT64_MIN, -1, INT64_MIN};
        enc_store_meta_t m3 = {30, 31, 300, 290, -1, 295};
        t_feed(r, &off, "B", NULL, 0);
        t_user_rec(&v, 10, 0, 0);
        t_feed(r, &off, "Ua", v.data, v.len);
        t_user_rec(&v, INT64_MAX, 4, 'b');
        t_feed(r, &off, "Ub", v.data, v.len);
        enc_store_meta_encode(&m1, &mb);
        t_feed(r, &off, "M", mb.data, mb.len);
        t_feed(r, &off, "R", "", 0); /* writes a and b first */
        enc_buf_reset(&mb);
        enc_store_meta_encode(&m2, &mb);
        t_feed(r, &off, "M", mb.data, mb.len);
        t_feed(r, &off, "B", NULL, 0);
        t_user_rec(&v, 30, 3, 'c');
        t_feed(r, &off, "Uc", v.data, v.len);
        enc_buf_reset(&mb);
        enc_store_meta_encode(&m3, &mb);
        t_feed(r, &off, "M", mb.data, mb.len); /* offset 8 */
        assert_int_equal(enc_restore_complete(r, err, sizeof(err)), 0);
        enc_restore_finish(r, &rs);
        enc_restore_destroy(r);
        assert_int_equal(rs.ingested, 4); /* a,b + a's timer; c + its */
        assert_int_equal(rs.positions, 3);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(enc_store_get_user(s, 0, i ? "b" : "a", 1,
                                                    &v, &found, err,
                                                    sizeof(err)),
                                 0);
                assert_false(found);
        }
        assert_int_equal(enc_store_get_user(s, 0, "c", 1, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        /* [version 2][zigzag(30) = 60][no sections]['c' x 3] */
        static const uint8_t c_rec[] = {ENC_USER_RECORD_VERSION, 60, 0,
                                        'c', 'c', 'c'};
        assert_int_equal(v.len, sizeof(c_rec));
        assert_memory_equal(v.data, c_rec, sizeof(c_rec));
        assert_int_equal(enc_store_scan_timers(s, 0, INT64_MIN, INT64_MAX,
                                               t_collect_timer, timers, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(timers, "30:c;");
        enc_store_meta_t d;
        assert_int_equal(enc_store_get_meta(s, 0, &d, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(d.commit_offset, 30);
        assert_int_equal(d.changelog_end, 9);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
        enc_buf_free(&v);
        enc_buf_free(&mb);
}

/* ---- timer windows (state/timers.c) --------------------------------- */

/* Pops every key of partition 0's window up to @p upto as "time:id;". */
static void t_pop_all(enc_timers_t *tm, int64_t upto, char *out, size_t cap) {
        out[0] = 0;
        int64_t t;
        const char *id;
        size_t ulen;
        while (enc_timers_pop(tm, 0, upto, &t, &id, &ulen)) {
                size_t n = strlen(out);
                snprintf(out + n, cap - n, "%lld:%.*s;", (long long)t,
                         (int)ulen, id);
        }
}

/*
 * Stored keys of partition 0, in key order: 100:b 200:a 200:c 300:a 400:d.
 * A scan from 150 with room for 3 keys fills 200:a 200:c 300:a; hi =
 * 300:a. Then a flush stages, in this order: put 250:z (inside), put 300:b
 * (past hi: not held), put 120:q (not after lo), delete 200:c, the move
 * of a's timer 300:a -> 210:a, and put 260:y then delete 260:y (the last
 * change of a key decides). The window is then 200:a 210:a 250:z: what the
 * store holds in (150, 300:a].
 */
static void test_timer_window_mirrors_the_store_keys_it_covers(void **st) {
        (void)st;
        char out[256];
        enc_timers_t *tm = enc_timers_new(3);
        assert_non_null(tm);
        assert_false(enc_timers_covers(tm, 0, 150, 250)); /* never filled */
        enc_timers_refill_begin(tm, 0, 150);
        assert_false(enc_timers_refill_add(tm, 0, 200, "a", 1));
        assert_false(enc_timers_refill_add(tm, 0, 200, "c", 1));
        assert_true(enc_timers_refill_add(tm, 0, 300, "a", 1)); /* full */
        enc_timers_refill_end(tm, 0, false);
        assert_true(enc_timers_covers(tm, 0, 150, 299));
        assert_false(enc_timers_covers(tm, 0, 150, 300)); /* 300:b unseen */
        assert_false(enc_timers_covers(tm, 0, 100, 250)); /* not its start */
        assert_false(enc_timers_covers(tm, 1, 150, 250)); /* other partition */

        enc_timers_note(tm, 0, true, 250, "z", 1);
        enc_timers_note(tm, 0, true, 300, "b", 1);
        enc_timers_note(tm, 0, true, 120, "q", 1);
        enc_timers_note(tm, 0, false, 200, "c", 1);
        enc_timers_note(tm, 0, false, 300, "a", 1);
        enc_timers_note(tm, 0, true, 210, "a", 1);
        enc_timers_note(tm, 0, true, 260, "y", 1);
        enc_timers_note(tm, 0, false, 260, "y", 1);
        assert_true(enc_timers_covers(tm, 0, 150, 250));
        t_pop_all(tm, 250, out, sizeof(out));
        assert_string_equal(out, "200:a;210:a;250:z;");
        /* popped through 250: the window starts there now */
        assert_false(enc_timers_covers(tm, 0, 150, 260));
        assert_true(enc_timers_covers(tm, 0, 250, 299));
        t_pop_all(tm, 299, out, sizeof(out));
        assert_string_equal(out, "");
        assert_false(enc_timers_covers(tm, 0, 299, 300)); /* past hi: scan */
        assert_true(enc_timers_bytes(tm) > 0);

        /* a complete window (the scan reached the partition's end) holds
         * every later put; a discarded batch drops it */
        enc_timers_refill_begin(tm, 0, 299);
        assert_false(enc_timers_refill_add(tm, 0, 400, "d", 1));
        enc_timers_refill_end(tm, 0, true);
        enc_timers_note(tm, 0, true, 9000, "w", 1);
        assert_true(enc_timers_covers(tm, 0, 299, INT64_MAX - 1));
        t_pop_all(tm, INT64_MAX - 1, out, sizeof(out));
        assert_string_equal(out, "400:d;9000:w;");
        enc_timers_drop_all(tm);
        assert_false(enc_timers_covers(tm, 0, INT64_MAX - 1, INT64_MAX - 1));
        enc_timers_destroy(tm);
}

/* Room for 2: a complete window that mirrored 5 puts (more than 2 x 2, in
 * two flushes) is cut back to the first 2, 10:e 20:d (hi = 20:d), and no
 * longer covers beyond it; more than 2 x 2 notes in one flush drop it. */
static void test_timer_window_cuts_back_past_twice_its_size(void **st) {
        (void)st;
        char out[256];
        enc_timers_t *tm = enc_timers_new(2);
        assert_non_null(tm);
        enc_timers_refill_begin(tm, 0, 0);
        enc_timers_refill_end(tm, 0, true); /* the store has none */
        const char *ids[5] = {"e", "d", "c", "b", "a"};
        for (int i = 0; i < 5; i++) {
                enc_timers_note(tm, 0, true, 10 * (i + 1), ids[i], 1);
                if (i == 2) /* merged: 3 keys, not cut */
                        assert_true(enc_timers_covers(tm, 0, 0, 1000));
        }
        assert_true(enc_timers_covers(tm, 0, 0, 19));
        assert_false(enc_timers_covers(tm, 0, 0, 20)); /* 30:c was cut */
        /* puts before hi are held, past it (25:g) are not */
        enc_timers_note(tm, 0, true, 15, "f", 1);
        enc_timers_note(tm, 0, true, 25, "g", 1);
        assert_true(enc_timers_covers(tm, 0, 0, 19));
        t_pop_all(tm, 19, out, sizeof(out));
        assert_string_equal(out, "10:e;15:f;");
        /* more than 2 x 2 notes waiting for it: dropped, not held */
        for (int i = 0; i < 4; i++)
                enc_timers_note(tm, 0, false, 20, "d", 1);
        assert_true(enc_timers_covers(tm, 0, 19, 19));
        for (int i = 0; i < 5; i++)
                enc_timers_note(tm, 0, false, 20, "d", 1);
        assert_false(enc_timers_covers(tm, 0, 19, 19));
        enc_timers_destroy(tm);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        test_store_commit_is_atomic_and_timers_scan_in_order),
                cmocka_unit_test(test_reorder_releases_in_event_time_order),
                cmocka_unit_test(test_position_record_versions),
                cmocka_unit_test(
                        test_incremental_restore_keeps_position_until_a_whole_commit),
                cmocka_unit_test(
                        test_full_restore_batches_whole_commits_and_resumes),
                cmocka_unit_test(
                        test_full_restore_ingests_exactly_the_committed_records),
                cmocka_unit_test(
                        test_full_restore_reset_drops_what_was_ingested),
                cmocka_unit_test(
                        test_full_restore_into_an_empty_partition_skips_level0),
                cmocka_unit_test(test_reorder_marks_and_windowed_contains),
                cmocka_unit_test(test_reorder_contains_matches_a_naive_list),
                cmocka_unit_test(test_reorder_read_ahead_in_arrival_order),
                cmocka_unit_test(test_reorder_copy_keeps_every_field),
                cmocka_unit_test(test_reorder_without_ids_keeps_order_not_ids),
                cmocka_unit_test(test_cache_pins_users_read_ahead_until_used),
                cmocka_unit_test(
                        test_cache_writes_back_evicts_clean_and_orders_timers),
                cmocka_unit_test(test_timer_heap_lazy_keys),
                cmocka_unit_test(test_user_record_rejects_every_truncation),
                cmocka_unit_test(test_cache_counts_what_a_flush_would_stage),
                cmocka_unit_test(test_budget_shares),
                cmocka_unit_test(
                        test_timer_window_mirrors_the_store_keys_it_covers),
                cmocka_unit_test(
                        test_timer_window_cuts_back_past_twice_its_size),
                cmocka_unit_test(test_store_conf_from_budget),
                cmocka_unit_test(test_store_options_reach_rocksdb),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
