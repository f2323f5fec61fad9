/*
 * plugin.h -- the one shape every reward signal has.
 *
 * A signal is a plug-in (Fluent Bit's plugins/in_*): a table of callbacks
 * registered by one line in signals/registry.c. Signals are pure functions of
 * (their per-user state, the event or the time) -> (new state, updates). They
 * do no I/O, read no clock and keep nothing global: the engine owns storage,
 * timers, ordering and output. That is what makes a replay byte-identical to
 * the live run.
 *
 * Instances: the `signals` config key lists "name:version" pairs. Each pair is
 * one instance with its own keys under `signal.<name>.<version>.` and its own
 * per-user state; two versions of one signal run side by side from the same
 * stream and label their outputs with their version.
 *
 * Contract with the engine (state/engine.c), per user:
 *  - Events and timers are delivered in event-time order. on_timer(now) means
 *    the watermark has reached `now`: every event with event_time < now has
 *    been delivered, every event delivered later has event_time >= now.
 *  - on_timer is called when now >= next_timer(state). Afterwards
 *    next_timer(state) must be > now (or INT64_MAX for none).
 *  - Within one step (one event or one timer for one user) instances run in
 *    the configured order; updates an instance emits are delivered to the
 *    on_update of every later instance that names it in `depends` (or has
 *    no `depends`: then every update) before that instance runs.
 *  - State is an opaque pointer; NULL means "no state". A callback that leaves
 *    state from which nothing can ever be emitted again frees it and sets
 *    *state = NULL: the engine deletes users whose every state is NULL. That
 *    is how state stays bounded.
 *  - Callbacks run on the processing thread only and must not block.
 *
 * State layout. Every plug-in keeps a user's state as one flat block
 * (base/flat.h, enc_flat_t): fixed-width fields and the strings they
 * refer to by offset, whose bytes are the stored form. Encoding is a copy,
 * decoding checks every byte and copies, a cached user costs about its
 * stored size, and an event edits bytes in place (no allocation per
 * item). The first byte is the layout's version; a plug-in keeps reading
 * its older versions (parsing them into the current block), so a store
 * written by an older encore migrates as its users load. The stored form
 * is canonical (the same state gives the same bytes whatever its
 * history), so replay and changelog restore stay byte-identical.
 */
#ifndef ENC_PLUGIN_H
#define ENC_PLUGIN_H

#include "config.h"
#include "enc.h"
#include "event.h"

/* ---- emitting ------------------------------------------------------- */

/* The engine builds one emitter per (user, instance) call on its stack and
 * passes it to the callback; tests build their own with a collecting cb.
 * Fields are the engine's; signals use only enc_emit/enc_emitter_user. */
typedef enc_err_t (*enc_emit_cb_t)(void *opaque, const enc_update_t *up);
typedef struct enc_emitter_s {
        const char *user_id;
        const char *signal_name; /* default for up->signal */
        int32_t signal_version;
        enc_emit_cb_t cb;
        void *opaque;
        /* The event this step applies (borrowed for the call), or NULL in
         * a timer step: what caused the updates emitted now. */
        const enc_event_t *event;
} enc_emitter_t;

/**
 * Emits one update for the current user. The engine fills update_id,
 * user_id and signal_version (from the instance); `signal` defaults to the
 * plug-in name when NULL. @p up and what it points to are borrowed for the
 * call only. Returns non-zero only on an output error, which the signal
 * returns from its callback unchanged.
 */
enc_err_t enc_emit(enc_emitter_t *em, enc_update_t *up) ENC_WUR;

/** The current user's id (borrowed for the callback). */
const char *enc_emitter_user(const enc_emitter_t *em);

/** The event the current step applies, or NULL when the watermark caused
 *  the step (a timer). Borrowed for the callback. Derived signals use it in
 *  on_update to tell an update an event caused from one the watermark
 *  caused (composite's cohort rule). */
const enc_event_t *enc_emitter_event(const enc_emitter_t *em);

/* ---- instance configuration ----------------------------------------- */

typedef struct enc_sigconf_s {
        const enc_conf_t *conf;
        const char *name; /* plug-in name */
        int version;
        char prefix[96]; /* "signal.<name>.<version>." */
} enc_sigconf_t;

/* Getters for the instance's own keys (relative names, e.g. "windows"). */
const char *enc_sigconf_get(const enc_sigconf_t *sc, const char *key);
int64_t enc_sigconf_int(const enc_sigconf_t *sc, const char *key);
bool enc_sigconf_bool(const enc_sigconf_t *sc, const char *key);
double enc_sigconf_double(const enc_sigconf_t *sc, const char *key);
int enc_sigconf_int_list(const enc_sigconf_t *sc, const char *key,
                         int64_t *out, int max);

/* ---- the plug-in table ---------------------------------------------- */

#define ENC_NO_TIMER INT64_MAX

/* An instance whose updates a derived instance consumes in on_update. */
typedef struct enc_sig_ref_s {
        char name[ENC_SIGNAL_NAME_MAX]; /* plug-in name */
        int32_t version;
        const char *key; /* static: the instance key naming it, for errors */
} enc_sig_ref_t;

typedef struct enc_signal_plugin_s {
        const char *name;        /* "active_days"; also the output name */
        const char *description; /* one line */
        /* Instance keys, relative to signal.<name>.<version>.; NULL-ended. */
        const enc_cfg_key_t *config_keys;

        /** Builds the instance's immutable parameters into *priv.
         *  Fails with ENC_ERR_CONFIG naming the key. */
        enc_err_t (*init)(const enc_sigconf_t *sc, void **priv, char *errstr,
                          size_t errstr_size);
        void (*destroy)(void *priv);

        /** A validated event for this user. Required. */
        enc_err_t (*on_event)(void *priv, void **state, const enc_event_t *ev,
                              enc_emitter_t *em);
        /** An update emitted by an earlier instance in this step. Optional:
         *  derived signals (progressive_reward, composite) use it. */
        enc_err_t (*on_update)(void *priv, void **state,
                               const enc_update_t *up, enc_emitter_t *em);
        /** The watermark reached @p now >= next_timer(state). Optional. */
        enc_err_t (*on_timer)(void *priv, void **state, int64_t now,
                              enc_emitter_t *em);
        /** Next time this state needs on_timer, or ENC_NO_TIMER. */
        int64_t (*next_timer)(void *priv, const void *state);

        /** Appends a versioned binary form of @p state to @p out. */
        enc_err_t (*state_encode)(void *priv, const void *state,
                                  enc_buf_t *out);
        /** Parses what state_encode wrote. Must not trust the bytes: any
         *  malformed input is ENC_ERR_CORRUPT, never a crash or an
         *  unbounded allocation. On success *state is owned by the caller
         *  (free with state_free). */
        enc_err_t (*state_decode)(void *priv, const uint8_t *buf, size_t len,
                                  void **state);
        /** Frees @p state (NULL allowed). A plug-in may keep the freed
         *  block in @p priv for its next state (enc_pool_t): call it with
         *  the instance's own priv, on the thread that owns the instance. */
        void (*state_free)(void *priv, void *state);
        /** Optional: the heap bytes @p state (not NULL) holds, each block
         *  counted with enc_heap_bytes(). The users cache charges a cached
         *  user what its states hold, against cache.max.bytes; without it
         *  the cache guesses from the encoded size (five times it). Called
         *  when a user is loaded and when it is written back. */
        size_t (*state_bytes)(void *priv, const void *state);

        /** Optional (derived signals): fills up to @p max refs with the
         *  instances whose updates on_update consumes and returns their
         *  count, or -1 with errstr set if the instance's keys cannot say.
         *  The engine then delivers only their updates to on_update.
         *  The registry checks that each is listed earlier in `signals`,
         *  since updates only flow to later instances. */
        int (*depends)(const enc_sigconf_t *sc, enc_sig_ref_t *refs, int max,
                       char *errstr, size_t errstr_size);
} enc_signal_plugin_t;

/** All registered plug-ins, NULL-terminated (signals/registry.c). */
const enc_signal_plugin_t *const *enc_signal_plugins(void);

/** Finds a plug-in by name; NULL if none. */
const enc_signal_plugin_t *enc_signal_find(const char *name);

/** Validates the `signals` list and every `signal.*` key of @p conf against
 *  the plug-in tables; errors name the key and the expected form. */
enc_err_t enc_signals_check_conf(const enc_conf_t *conf, char *errstr,
                                 size_t errstr_size) ENC_WUR;

/* A running instance: one entry of the `signals` list, initialised. */
typedef struct enc_sig_instance_s {
        const enc_signal_plugin_t *plugin;
        void *priv;      /* from plugin->init; freed by plugin->destroy */
        int32_t version;
        uint32_t id;     /* stable id of (name, version) for state records:
                            XXH32 of "name:version" */
} enc_sig_instance_t;

/**
 * Parses the `signals` list of @p conf and initialises each instance in
 * order. On success *instsp (caller frees with enc_signals_destroy) holds
 * *cntp instances. Errors name the key.
 */
enc_err_t enc_signals_instantiate(const enc_conf_t *conf,
                                  enc_sig_instance_t **instsp, int *cntp,
                                  char *errstr, size_t errstr_size) ENC_WUR;
void enc_signals_destroy(enc_sig_instance_t *insts, int cnt);

/** Builds @p sc for instance (@p name, @p version) over @p conf. */
void enc_sigconf_init(enc_sigconf_t *sc, const enc_conf_t *conf,
                      const char *name, int version);

#endif /* ENC_PLUGIN_H */
