/*
 * fuzz_engine.h -- what state/engine.c does to one user's signal states,
 * without RocksDB, Kafka or a watermark: for the fuzz harnesses and the
 * seed writer.
 *
 * The same steps as the engine, per signals/plugin.h: an event goes to
 * every instance's on_event in configured order; a timer fires at the
 * user's wake (the smallest next_timer), calling on_timer(now) on every
 * instance that is due, and a state whose next_timer is still <= now
 * afterwards is dropped, as enc_engine_fire does. Every update an instance
 * emits goes to the caller's callback (the engine encodes it there) and
 * then, synchronously, to on_update of every later instance.
 *
 * Header-only (static functions), so each harness stays one file.
 */
#ifndef ENC_FUZZ_ENGINE_H
#define ENC_FUZZ_ENGINE_H

#include "plugin.h"

typedef struct fz_eng_s {
        const enc_sig_instance_t *insts; /* borrowed */
        int cnt;
        void **states; /* [cnt], borrowed; NULL entries are "no state" */
        const char *user;
        /* Sees each update first; a non-zero return stops the step, as an
         * output error does in the engine. */
        enc_err_t (*emitted)(void *opaque, const enc_update_t *up);
        void *opaque;
} fz_eng_t;

typedef struct fz_eng_step_s {
        fz_eng_t *eng;
        int inst;
        const enc_event_t *ev; /* the step's event; NULL for a timer */
} fz_eng_step_t;

static inline void fz_eng_emitter(fz_eng_step_t *s, enc_emitter_t *em);

static inline enc_err_t fz_eng_emit_cb(void *opaque, const enc_update_t *up) {
        fz_eng_step_t *s = opaque;
        fz_eng_t *e = s->eng;
        enc_err_t err = e->emitted ? e->emitted(e->opaque, up) : ENC_OK;
        if (err)
                return err;
        for (int j = s->inst + 1; j < e->cnt; j++) {
                const enc_signal_plugin_t *pl = e->insts[j].plugin;
                if (!pl->on_update)
                        continue;
                fz_eng_step_t sj = {e, j, s->ev};
                enc_emitter_t em;
                fz_eng_emitter(&sj, &em);
                err = pl->on_update(e->insts[j].priv, &e->states[j], up, &em);
                if (err)
                        return err;
        }
        return ENC_OK;
}

static inline void fz_eng_emitter(fz_eng_step_t *s, enc_emitter_t *em) {
        em->user_id = s->eng->user;
        em->signal_name = s->eng->insts[s->inst].plugin->name;
        em->signal_version = s->eng->insts[s->inst].version;
        em->cb = fz_eng_emit_cb;
        em->opaque = s;
        em->event = s->ev;
}

/** The user's wake: the smallest next_timer, or ENC_NO_TIMER. */
static inline int64_t fz_eng_wake(const fz_eng_t *e) {
        int64_t wake = ENC_NO_TIMER;
        for (int i = 0; i < e->cnt; i++) {
                const enc_signal_plugin_t *pl = e->insts[i].plugin;
                if (e->states[i] && pl->next_timer) {
                        int64_t t =
                                pl->next_timer(e->insts[i].priv, e->states[i]);
                        if (t < wake)
                                wake = t;
                }
        }
        return wake;
}

/** enc_engine_fire: the due instances' on_timer(now), in order. Returns
 *  the first error; *stuck counts states dropped for breaking the timer
 *  contract (may be NULL). */
static inline enc_err_t fz_eng_fire(fz_eng_t *e, int64_t now, int *stuck) {
        for (int i = 0; i < e->cnt; i++) {
                const enc_signal_plugin_t *pl = e->insts[i].plugin;
                if (!e->states[i] || !pl->on_timer || !pl->next_timer ||
                    pl->next_timer(e->insts[i].priv, e->states[i]) > now)
                        continue;
                fz_eng_step_t s = {e, i, NULL};
                enc_emitter_t em;
                fz_eng_emitter(&s, &em);
                enc_err_t err =
                        pl->on_timer(e->insts[i].priv, &e->states[i], now, &em);
                if (err)
                        return err;
        }
        for (int i = 0; i < e->cnt; i++) {
                const enc_signal_plugin_t *pl = e->insts[i].plugin;
                if (e->states[i] && pl->next_timer &&
                    pl->next_timer(e->insts[i].priv, e->states[i]) <= now) {
                        pl->state_free(e->insts[i].priv, e->states[i]);
                        e->states[i] = NULL;
                        if (stuck)
                                (*stuck)++;
                }
        }
        return ENC_OK;
}

/** Fires the user's timers due at or before @p upto, each at its own time,
 *  at most @p max_rounds times. */
static inline enc_err_t fz_eng_timers(fz_eng_t *e, int64_t upto, int max_rounds,
                                      int *stuck) {
        int64_t now;
        for (int r = 0; r < max_rounds && (now = fz_eng_wake(e)) <= upto; r++) {
                enc_err_t err = fz_eng_fire(e, now, stuck);
                if (err)
                        return err;
        }
        return ENC_OK;
}

/** Applies @p ev (its user is e->user's) to every instance, in order. */
static inline enc_err_t fz_eng_event(fz_eng_t *e, const enc_event_t *ev) {
        for (int i = 0; i < e->cnt; i++) {
                fz_eng_step_t s = {e, i, ev};
                enc_emitter_t em;
                fz_eng_emitter(&s, &em);
                enc_err_t err = e->insts[i].plugin->on_event(
                        e->insts[i].priv, &e->states[i], ev, &em);
                if (err)
                        return err;
        }
        return ENC_OK;
}

/** Frees every state and sets it to NULL. */
static inline void fz_eng_free(fz_eng_t *e) {
        for (int i = 0; i < e->cnt; i++) {
                if (e->states[i])
                        e->insts[i].plugin->state_free(e->insts[i].priv,
                                                       e->states[i]);
                e->states[i] = NULL;
        }
}

#endif /* ENC_FUZZ_ENGINE_H */
