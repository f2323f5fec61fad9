/*
 * fuzz_state.c -- the state record parsers: the bytes RocksDB hands back
 * for a user (enc_user_record_decode, state/users.c) and each signal
 * plug-in's state_decode (signals/).
 *
 * Stored state is trusted no more than the wire: a record that RocksDB
 * returns damaged, or that an older or buggy build wrote, must be refused
 * with ENC_ERR_CORRUPT (the engine then resets that user) and never crash,
 * leak or allocate without bound. Beyond that, each input checks:
 *   - canonical round trip: for every successful decode x, encode(x)
 *     decodes again and re-encodes to the same bytes (the cache writes back
 *     what it read, and a replay must store identical state);
 *   - a record that decodes is safe to run: the harness does what
 *     state/engine.c does with a loaded user (fuzz_engine.h) -- fires its
 *     due timers, a few rounds, then applies one event -- and every update
 *     a signal emits from it must be encodable by the codec. The engine
 *     treats an encode failure as fatal, so an accepted record that yields
 *     one would be a poison pill stopping the process on every restart.
 *     The states left afterwards must encode and decode again.
 * Instances are the real ones: enc_signals_instantiate over the default
 * configuration, and over a second configuration with small caps and other
 * windows so the limits are reachable. Seeds (tests/fuzz/corpus/state/)
 * are user records and per-signal states written by fuzz_seeds from a
 * generated listening history.
 */
#include <string.h>

#include "codec.h"
#include "config.h"
#include "fuzz.h"
#include "fuzz_engine.h"
#include "plugin.h"
#include "users.h"

FUZZ_LSAN_FOR_AVRO()

/* 2026-01-05T00:00:00Z: the event time when no timer fired. */
#define FZ_T0 ((int64_t)1767571200000)
/* The latest event time enc_event_validate lets through (2100-01-01). The
 * watermark never passes it, so the engine never fires a later timer and
 * signals never see a later event; neither happens here. */
#define FZ_TIME_MAX     ((int64_t)4102444800000)
#define FZ_TIMER_ROUNDS 4
#define FZ_INST_MAX     32

typedef struct fz_set_s {
        const char *what;
        enc_conf_t *conf;
        enc_sig_instance_t *insts;
        int cnt;
} fz_set_t;

static fz_set_t sets[2] = {{"default configuration"},
                           {"small-caps configuration"}};
static enc_codec_t *codec;
static enc_buf_t out; /* encoded updates, reused */

static const char *const small_caps[] = {
        "signal.active_days.1.windows=3,1,366",
        "signal.active_days.1.qualified.ms=0",
        "signal.session.1.gap.ms=1",
        "signal.discovery_habit.1.max.items=3",
        "signal.discovery_habit.1.lookback.days=0",
        "signal.discovery_habit.1.item=track",
        "signal.composite.1.components=active_days/366d=0.5,"
        "progressive_reward=0.25,session=0.25",
        "signal.composite.1.ttl.days=1",
        NULL,
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char err[512];
        (void)argc;
        (void)argv;
        for (int s = 0; s < 2; s++) {
                sets[s].conf = enc_conf_new();
                FUZZ_SETUP(sets[s].conf, "out of memory");
                for (int k = 0; s == 1 && small_caps[k]; k++)
                        FUZZ_SETUP(enc_conf_set_kv(sets[s].conf, small_caps[k],
                                                   err, sizeof(err)) == ENC_OK,
                                   err);
                FUZZ_SETUP(enc_signals_instantiate(sets[s].conf, &sets[s].insts,
                                                   &sets[s].cnt, err,
                                                   sizeof(err)) == ENC_OK,
                           err);
                FUZZ_SETUP(sets[s].cnt <= FZ_INST_MAX, "too many instances");
        }
        codec = enc_codec_new(NULL, err, sizeof(err));
        FUZZ_SETUP(codec, err);
        enc_buf_init(&out, 0);
        return 0;
}

/* What enc_engine_emit_cb does first: encode. It must work. */
static enc_err_t fz_emitted(void *opaque, const enc_update_t *up) {
        const fz_set_t *set = opaque;
        enc_buf_reset(&out);
        enc_err_t err = enc_codec_encode_update(codec, up, &out);
        if (err)
                fprintf(stderr, "%s: update of %s:%d cannot be encoded: %s\n",
                        set->what, up->signal, (int)up->signal_version,
                        enc_err2str(err));
        FUZZ_CHECK(err == ENC_OK);
        return ENC_OK;
}

/* Says which instance's state does not survive its own encoding. */
static void fz_which_state(const fz_set_t *set, void **states) {
        for (int i = 0; i < set->cnt; i++) {
                const enc_signal_plugin_t *pl = set->insts[i].plugin;
                enc_buf_t b;
                void *st = NULL;
                if (!states[i])
                        continue;
                enc_buf_init(&b, 0);
                enc_err_t e =
                        pl->state_encode(set->insts[i].priv, states[i], &b);
                if (!e)
                        e = pl->state_decode(set->insts[i].priv, b.data, b.len,
                                             &st);
                if (e) {
                        fprintf(stderr,
                                "%s: %s:%d state does not decode from its "
                                "own encoding (%s):",
                                set->what, pl->name, (int)set->insts[i].version,
                                enc_err2str(e));
                        for (size_t k = 0; k < b.len; k++)
                                fprintf(stderr, " %02x", b.data[k]);
                        fprintf(stderr, "\n");
                }
                if (st)
                        pl->state_free(set->insts[i].priv, st);
                enc_buf_free(&b);
        }
}

/* encode(states) decodes again and re-encodes to the same bytes. */
static void fz_record_roundtrip(const fz_set_t *set, void **states) {
        void *again[FZ_INST_MAX];
        enc_buf_t e1, e2;
        fz_eng_t eng = {set->insts, set->cnt, again, "", NULL, NULL};
        enc_buf_init(&e1, 0);
        enc_buf_init(&e2, 0);
        FUZZ_CHECK(enc_user_record_encode(set->insts, set->cnt, states, &e1) ==
                   ENC_OK);
        enc_err_t err = enc_user_record_decode(set->insts, set->cnt, e1.data,
                                               e1.len, again);
        if (err)
                fz_which_state(set, states);
        FUZZ_CHECK(err == ENC_OK);
        FUZZ_CHECK(enc_user_record_encode(set->insts, set->cnt, again, &e2) ==
                   ENC_OK);
        FUZZ_CHECK(e1.len == e2.len && !memcmp(e1.data, e2.data, e1.len));
        fz_eng_free(&eng);
        enc_buf_free(&e1);
        enc_buf_free(&e2);
}

static void fz_user_record(fz_set_t *set, const uint8_t *data, size_t size) {
        void *states[FZ_INST_MAX];
        fz_eng_t eng = {set->insts,  set->cnt,   states,
                        "fuzz-user", fz_emitted, set};
        enc_err_t err = enc_user_record_decode(set->insts, set->cnt, data, size,
                                               states);
        for (int i = 0; i < set->cnt; i++)
                FUZZ_CHECK(err == ENC_OK || !states[i]);
        if (err) {
                FUZZ_CHECK(err == ENC_ERR_CORRUPT);
                return;
        }
        fz_record_roundtrip(set, states);

        /* Run it as the engine would a user loaded from the store. Signals
         * fail a step only on an output error (none here) or ENOMEM. */
        int64_t wake, now = FZ_T0;
        for (int r = 0;
             r < FZ_TIMER_ROUNDS && (wake = fz_eng_wake(&eng)) <= FZ_TIME_MAX;
             r++) {
                err = fz_eng_fire(&eng, wake, NULL);
                FUZZ_CHECK(err == ENC_OK || err == ENC_ERR_NOMEM);
                if (wake > now)
                        now = wake;
        }
        enc_event_t ev = {
                .event_id = "fuzz-1",
                .user_id = "fuzz-user",
                .track_id = "t1-1",
                .artist_id = "a1",
                .event_time = now,
                .ms_played = 185000,
                .track_duration_ms = 200000,
                .reason_end = ENC_END_TRACK_DONE,
                .source = ENC_SRC_RECOMMENDATION,
                .surface = "home",
                .recommendation_id = "rec-0001",
                .cohort = "treatment",
        };
        err = fz_eng_event(&eng, &ev);
        FUZZ_CHECK(err == ENC_OK || err == ENC_ERR_NOMEM);
        fz_record_roundtrip(set, states);
        fz_eng_free(&eng);
}

/* One plug-in's state_decode on the whole input. */
static void fz_plugin_state(const enc_sig_instance_t *in, const uint8_t *data,
                            size_t size) {
        const enc_signal_plugin_t *pl = in->plugin;
        void *st = NULL, *st2 = NULL;
        enc_buf_t e1, e2;
        enc_err_t err = pl->state_decode(in->priv, data, size, &st);
        if (err) {
                FUZZ_CHECK(!st);
                FUZZ_CHECK(err == ENC_ERR_CORRUPT || err == ENC_ERR_NOMEM);
                return;
        }
        FUZZ_CHECK(st);
        enc_buf_init(&e1, 0);
        enc_buf_init(&e2, 0);
        FUZZ_CHECK(pl->state_encode(in->priv, st, &e1) == ENC_OK);
        FUZZ_CHECK(pl->state_decode(in->priv, e1.data, e1.len, &st2) == ENC_OK);
        FUZZ_CHECK(pl->state_encode(in->priv, st2, &e2) == ENC_OK);
        FUZZ_CHECK(e1.len == e2.len && !memcmp(e1.data, e2.data, e1.len));
        pl->state_free(in->priv, st);
        pl->state_free(in->priv, st2);
        enc_buf_free(&e1);
        enc_buf_free(&e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        for (int s = 0; s < 2; s++)
                fz_user_record(&sets[s], data, size);
        for (int i = 0; i < sets[0].cnt; i++)
                fz_plugin_state(&sets[0].insts[i], data, size);
        return 0;
}
