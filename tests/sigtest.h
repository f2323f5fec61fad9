/*
 * sigtest.h -- a tiny in-test engine for the signal tests.
 *
 * It does what state/engine.c promises the plug-ins (signals/plugin.h),
 * and no more: per user, events and timers in event-time order, timers at
 * T before events at time >= T, instances in configured order, each
 * update delivered to the on_update of every later instance at once.
 * After every step it also checks the plug-in invariants the engine relies
 * on: next_timer > now after on_timer, a live state always has a timer,
 * and each state survives encode -> decode -> encode byte for byte (the
 * decoded copy replaces the original, so later steps run on decoded
 * state). With `truncate` set, every proper prefix of every encoded state
 * must fail to decode with ENC_ERR_CORRUPT.
 *
 * Header-only (static functions) so each test executable is one file.
 */
#ifndef ENC_SIGTEST_H
#define ENC_SIGTEST_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "plugin.h"

/* Days in tests count from 2024-01-01 (day 19723). */
#define ST_EPOCH_DAY 19723
#define DAY(d)       enc_day_start(ST_EPOCH_DAY + (d))
#define AT(d, h, m)  (DAY(d) + (int64_t)(h)*3600000 + (int64_t)(m)*60000)
#define HOUR         ((int64_t)3600000)
#define MIN          ((int64_t)60000)

/* ---- collected updates ---------------------------------------------- */

/* An owned copy of an emitted update (u's pointers point into it). */
typedef struct st_upd_s {
        enc_update_t u;
        char user[64], signal[ENC_SIGNAL_NAME_MAX], subject[ENC_ID_MAX + 1],
                rec[ENC_ID_MAX + 1], cohort[ENC_LABEL_MAX + 1];
        char comp[ENC_COMPONENTS_MAX][96];
} st_upd_t;

typedef struct st_list_s {
        st_upd_t **v;
        int n, cap;
} st_list_t;

static inline const char *st_cp(char *dst, size_t size, const char *s) {
        if (!s)
                return NULL;
        assert_true(strlen(s) < size);
        memcpy(dst, s, strlen(s) + 1);
        return dst;
}

static inline void st_list_add(st_list_t *l, const enc_update_t *up) {
        st_upd_t *c = calloc(1, sizeof(*c));
        assert_non_null(c);
        c->u = *up;
        c->u.user_id = st_cp(c->user, sizeof(c->user), up->user_id);
        c->u.signal = st_cp(c->signal, sizeof(c->signal), up->signal);
        c->u.subject = st_cp(c->subject, sizeof(c->subject), up->subject);
        c->u.recommendation_id =
                st_cp(c->rec, sizeof(c->rec), up->recommendation_id);
        c->u.cohort = st_cp(c->cohort, sizeof(c->cohort), up->cohort);
        for (int i = 0; i < up->component_cnt; i++)
                c->u.components[i].name = st_cp(c->comp[i], sizeof(c->comp[i]),
                                                up->components[i].name);
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 64;
                l->v = realloc(l->v, (size_t)l->cap * sizeof(*l->v));
                assert_non_null(l->v);
        }
        l->v[l->n++] = c;
}

static inline void st_list_clear(st_list_t *l) {
        for (int i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        memset(l, 0, sizeof(*l));
}

/* The updates of one signal, in emission order (borrowed pointers). */
static inline int st_filter(const st_list_t *l, const char *signal,
                            const enc_update_t **out, int max) {
        int n = 0;
        for (int i = 0; i < l->n; i++)
                if (!strcmp(l->v[i]->u.signal, signal)) {
                        assert_true(n < max);
                        out[n++] = &l->v[i]->u;
                }
        return n;
}

/* ---- expected updates ----------------------------------------------- */

/* Every field is compared; a field left out means 0 / NULL / false. */
typedef struct st_exp_s {
        const char *subject, *rec, *cohort;
        int64_t ws, we, t;
        double value, delta;
        int32_t obs, hor;
        bool final;
        int64_t seq;
        bool has_est;
        double mean, var;
        int ncomp;
} st_exp_t;

static inline void st_str_eq(const char *what, const char *got,
                             const char *want) {
        if ((got == NULL) != (want == NULL) || (got && strcmp(got, want))) {
                print_error("%s: got %s%s%s, want %s%s%s\n", what,
                            got ? "\"" : "", got ? got : "NULL",
                            got ? "\"" : "", want ? "\"" : "",
                            want ? want : "NULL", want ? "\"" : "");
                fail();
        }
}

/* Values in these tests are small integers or ratios computed the same
 * way by hand; 1e-12 only absorbs the last bit of a division. */
static inline void st_dbl_eq(const char *what, double got, double want) {
        if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) {
                print_error("%s: got %.17g, want %.17g\n", what, got, want);
                fail();
        }
}

#define ST_I64_EQ(what, got, want)                                             \
        do {                                                                   \
                if ((int64_t)(got) != (int64_t)(want)) {                       \
                        print_error("%s: got %lld, want %lld\n", what,         \
                                    (long long)(got), (long long)(want));      \
                        fail();                                                \
                }                                                              \
        } while (0)

static inline void st_check(const enc_update_t *u, st_exp_t e) {
        st_str_eq("subject", u->subject, e.subject);
        st_str_eq("recommendation_id", u->recommendation_id, e.rec);
        st_str_eq("cohort", u->cohort, e.cohort);
        ST_I64_EQ("window_start", u->window_start, e.ws);
        ST_I64_EQ("window_end", u->window_end, e.we);
        ST_I64_EQ("event_time", u->event_time, e.t);
        st_dbl_eq("value", u->value, e.value);
        st_dbl_eq("delta", u->delta, e.delta);
        ST_I64_EQ("observed_days", u->observed_days, e.obs);
        ST_I64_EQ("horizon_days", u->horizon_days, e.hor);
        ST_I64_EQ("final", u->final, e.final);
        ST_I64_EQ("sequence", u->sequence, e.seq);
        ST_I64_EQ("has_estimate", u->has_estimate, e.has_est);
        if (e.has_est) {
                st_dbl_eq("estimate_mean", u->estimate_mean, e.mean);
                st_dbl_eq("estimate_variance", u->estimate_variance, e.var);
        }
        ST_I64_EQ("component_cnt", u->component_cnt, e.ncomp);
        assert_int_equal(strlen(u->update_id), 32);
}

/* ---- configuration -------------------------------------------------- */

/* A configuration from "key=value" strings, NULL-terminated. */
static inline enc_conf_t *st_conf(const char *kv, ...) {
        char errstr[512];
        va_list ap;
        enc_conf_t *conf = enc_conf_new();
        assert_non_null(conf);
        va_start(ap, kv);
        for (const char *s = kv; s; s = va_arg(ap, const char *)) {
                if (enc_conf_set_kv(conf, s, errstr, sizeof(errstr))) {
                        print_error("%s: %s\n", s, errstr);
                        fail();
                }
        }
        va_end(ap);
        return conf;
}

/* ---- the engine ----------------------------------------------------- */

#define ST_MAX_INST 8

typedef struct st_engine_s st_engine_t;

typedef struct st_user_s {
        char id[64];
        void *state[ST_MAX_INST];
} st_user_t;

struct st_engine_s {
        enc_sig_instance_t *insts;
        int n;
        st_list_t out;
        bool truncate; /* check every prefix of every state record */
        int mutate;    /* decode this many 1-byte corruptions of each */
        uint64_t rng;
        int64_t steps;
        /* With watch >= 0: the index in `out` of every update delivered to
         * that instance's on_update, in delivery order (which is not
         * `out`'s order: an update reaches a later instance only after
         * the instances between have reacted to it). */
        int watch;
        int *inlog;
        int nin, capin;
};

typedef struct st_emit_ctx_s {
        st_engine_t *eng;
        st_user_t *user;
        int inst;
        const enc_event_t *ev; /* the step's event; NULL for a timer */
} st_emit_ctx_t;

static inline enc_err_t st_emit_cb(void *opaque, const enc_update_t *up);

static inline void st_emitter(st_emit_ctx_t *ctx, enc_emitter_t *em) {
        const enc_sig_instance_t *in = &ctx->eng->insts[ctx->inst];
        memset(em, 0, sizeof(*em));
        em->user_id = ctx->user->id;
        em->signal_name = in->plugin->name;
        em->signal_version = in->version;
        em->cb = st_emit_cb;
        em->opaque = ctx;
        em->event = ctx->ev;
}

static inline enc_err_t st_emit_cb(void *opaque, const enc_update_t *up) {
        st_emit_ctx_t *ctx = opaque;
        st_engine_t *eng = ctx->eng;
        st_list_add(&eng->out, up);
        int idx = eng->out.n - 1;
        for (int j = ctx->inst + 1; j < eng->n; j++) {
                const enc_signal_plugin_t *pl = eng->insts[j].plugin;
                if (!pl->on_update)
                        continue;
                if (j == eng->watch) {
                        if (eng->nin == eng->capin) {
                                eng->capin = eng->capin ? 2 * eng->capin : 256;
                                eng->inlog = realloc(
                                        eng->inlog,
                                        (size_t)eng->capin * sizeof(int));
                                assert_non_null(eng->inlog);
                        }
                        eng->inlog[eng->nin++] = idx;
                }
                st_emit_ctx_t sub = {eng, ctx->user, j, ctx->ev};
                enc_emitter_t em;
                st_emitter(&sub, &em);
                enc_err_t err = pl->on_update(eng->insts[j].priv,
                                              &ctx->user->state[j], up, &em);
                if (err)
                        return err;
        }
        return ENC_OK;
}

static inline st_engine_t *st_engine_new(const enc_conf_t *conf) {
        char errstr[512];
        st_engine_t *eng = calloc(1, sizeof(*eng));
        assert_non_null(eng);
        if (enc_signals_instantiate(conf, &eng->insts, &eng->n, errstr,
                                    sizeof(errstr))) {
                print_error("instantiate: %s\n", errstr);
                fail();
        }
        assert_true(eng->n <= ST_MAX_INST);
        eng->watch = -1;
        return eng;
}

static inline void st_user_free(st_engine_t *eng, st_user_t *u) {
        for (int i = 0; i < eng->n; i++) {
                if (u->state[i])
                        eng->insts[i].plugin->state_free(eng->insts[i].priv,
                                                         u->state[i]);
                u->state[i] = NULL;
        }
}

static inline void st_engine_destroy(st_engine_t *eng) {
        enc_signals_destroy(eng->insts, eng->n);
        st_list_clear(&eng->out);
        free(eng->inlog);
        free(eng);
}

static inline enc_err_t st_drop_cb(void *opaque, const enc_update_t *up) {
        (void)opaque;
        (void)up;
        return ENC_OK;
}

/* Decodes @p len bytes of @p rec with one byte changed, @p n times. A
 * decode may succeed (the change made another valid record) or fail with
 * ENC_ERR_CORRUPT, nothing else; a state it accepts must encode and run
 * its timer without tripping the sanitizers. */
static inline void st_mutate(st_engine_t *eng, int inst, const uint8_t *rec,
                             size_t len, int n) {
        const enc_signal_plugin_t *pl = eng->insts[inst].plugin;
        void *priv = eng->insts[inst].priv;
        uint8_t *cp = malloc(len ? len : 1);
        assert_non_null(cp);
        for (int i = 0; i < n && len; i++) {
                eng->rng = eng->rng * 6364136223846793005ULL +
                           1442695040888963407ULL;
                memcpy(cp, rec, len);
                cp[(eng->rng >> 33) % len] ^=
                        (uint8_t)(1 + (eng->rng >> 20) % 255);
                void *st = NULL;
                enc_err_t err = pl->state_decode(priv, cp, len, &st);
                assert_true(err == ENC_OK || err == ENC_ERR_CORRUPT);
                if (err)
                        continue;
                enc_buf_t b;
                enc_buf_init(&b, 0);
                assert_int_equal(pl->state_encode(priv, st, &b), ENC_OK);
                enc_buf_free(&b);
                int64_t t = pl->next_timer(priv, st);
                if (t != ENC_NO_TIMER) {
                        enc_emitter_t em = {"u", pl->name, 1, st_drop_cb, NULL};
                        assert_int_equal(pl->on_timer(priv, &st, t, &em),
                                         ENC_OK);
                }
                if (st)
                        pl->state_free(priv, st);
        }
        free(cp);
}

/* Round-trips every state of @p u through its record, checks the plug-in
 * invariants and replaces each state with its decoded copy. */
static inline void st_check_states(st_engine_t *eng, st_user_t *u) {
        for (int i = 0; i < eng->n; i++) {
                const enc_signal_plugin_t *pl = eng->insts[i].plugin;
                void *priv = eng->insts[i].priv;
                enc_buf_t a, b;
                void *dec = NULL;
                if (!u->state[i])
                        continue;
                /* A live state can still emit, so it has a timer. */
                assert_true(pl->next_timer(priv, u->state[i]) < ENC_NO_TIMER);
                enc_buf_init(&a, 0);
                enc_buf_init(&b, 0);
                assert_int_equal(pl->state_encode(priv, u->state[i], &a),
                                 ENC_OK);
                assert_int_equal(pl->state_decode(priv, a.data, a.len, &dec),
                                 ENC_OK);
                assert_int_equal(pl->state_encode(priv, dec, &b), ENC_OK);
                assert_int_equal(a.len, b.len);
                assert_memory_equal(a.data, b.data, a.len);
                assert_int_equal(pl->next_timer(priv, dec),
                                 pl->next_timer(priv, u->state[i]));
                if (eng->truncate) {
                        for (size_t len = 0; len < a.len; len++) {
                                void *t = (void *)1;
                                /* A fresh copy of exactly len bytes, so
                                 * ASan catches any read past the end. */
                                uint8_t *cp = malloc(len ? len : 1);
                                assert_non_null(cp);
                                memcpy(cp, a.data, len);
                                assert_int_equal(
                                        pl->state_decode(priv, cp, len, &t),
                                        ENC_ERR_CORRUPT);
                                assert_null(t);
                                free(cp);
                        }
                }
                if (eng->mutate)
                        st_mutate(eng, i, a.data, a.len, eng->mutate);
                pl->state_free(priv, u->state[i]);
                u->state[i] = dec;
                enc_buf_free(&a);
                enc_buf_free(&b);
        }
}

/* The earliest timer over @p u's states. */
static inline int64_t st_next_timer(st_engine_t *eng, st_user_t *u) {
        int64_t t = ENC_NO_TIMER;
        for (int i = 0; i < eng->n; i++)
                if (u->state[i]) {
                        int64_t x = eng->insts[i].plugin->next_timer(
                                eng->insts[i].priv, u->state[i]);
                        if (x < t)
                                t = x;
                }
        return t;
}

/* One timer step: the watermark reached @p now. */
static inline void st_timer(st_engine_t *eng, st_user_t *u, int64_t now) {
        for (int i = 0; i < eng->n; i++) {
                const enc_signal_plugin_t *pl = eng->insts[i].plugin;
                void *priv = eng->insts[i].priv;
                if (!u->state[i] || pl->next_timer(priv, u->state[i]) > now)
                        continue;
                st_emit_ctx_t ctx = {eng, u, i, NULL};
                enc_emitter_t em;
                st_emitter(&ctx, &em);
                assert_non_null(pl->on_timer);
                assert_int_equal(pl->on_timer(priv, &u->state[i], now, &em),
                                 ENC_OK);
                if (u->state[i])
                        assert_true(pl->next_timer(priv, u->state[i]) > now);
        }
        eng->steps++;
        st_check_states(eng, u);
}

/* Runs every timer due at or before @p t, one step per due time
 * (`tight`, as a watermark that moves in small steps would), or in one
 * step at @p t (a watermark that jumps). */
static inline void st_timers_upto(st_engine_t *eng, st_user_t *u, int64_t t,
                                  bool tight) {
        int64_t due;
        if (!tight) {
                if (st_next_timer(eng, u) <= t)
                        st_timer(eng, u, t);
                assert_true(st_next_timer(eng, u) > t);
                return;
        }
        while ((due = st_next_timer(eng, u)) <= t)
                st_timer(eng, u, due);
}

/* One event step (timers due at or before its time first). */
static inline void st_event(st_engine_t *eng, st_user_t *u,
                            const enc_event_t *ev, bool tight) {
        st_timers_upto(eng, u, ev->event_time, tight);
        for (int i = 0; i < eng->n; i++) {
                st_emit_ctx_t ctx = {eng, u, i, ev};
                enc_emitter_t em;
                st_emitter(&ctx, &em);
                assert_int_equal(
                        eng->insts[i].plugin->on_event(eng->insts[i].priv,
                                                       &u->state[i], ev, &em),
                        ENC_OK);
        }
        eng->steps++;
        st_check_states(eng, u);
}

/* A qualified library play of artist a1 / track t1 at @p t, cohort "A". */
static inline enc_event_t st_play(int64_t t, int64_t ms_played) {
        enc_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.event_id = "e";
        ev.user_id = "u1";
        ev.track_id = "t1";
        ev.artist_id = "a1";
        ev.event_time = t;
        ev.ms_played = ms_played;
        ev.track_duration_ms = 200000;
        ev.reason_end = ENC_END_END_PLAY;
        ev.source = ENC_SRC_LIBRARY;
        ev.surface = "home";
        ev.cohort = "A";
        return ev;
}

#endif /* ENC_SIGTEST_H */
