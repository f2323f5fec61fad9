/*
 * dedup.c -- dropping events whose id was seen before, within a window of
 * event time (dedup.window.ms).
 *
 * DESIGN
 * The memory of seen ids is per-user state like any signal's, so it lives
 * in the user record, is checkpointed and restored with everything else,
 * and expires by the same timers: it is the engine's own plug-in, always
 * instance 0 when enabled.
 *
 * Pruning is done on write: applying an event at time t forgets the ids
 * older than t - window. Events are applied in event-time order and every
 * later check asks about ids at or after (its own time - window) >= that,
 * so what is forgotten could never match again. The plug-in's one timer is
 * for the user who stops playing: it fires a window after the newest id,
 * when all of them are stale, and frees the state. (A timer at the oldest
 * id's expiry, as before, fired about once per event, an hour of event
 * time after it, when the user had usually left the cache: a RocksDB read
 * and a record rewrite per event, to drop one id. B1 in ops/bench shows
 * the difference in timers_fired_per_event.) Its state is the user's recent (hash of event
 * id, event time) pairs, oldest first. The engine asks enc_dedup_seen()
 * when a record is consumed: ids of events already applied are here, ids of
 * events still waiting for the watermark are in the reorder buffer, so the
 * two together see every earlier copy. The first copy to arrive wins;
 * arrival order is the input's order, so a replay decides the same way.
 * In front of the applied ids, the engine asks a per-partition filter of
 * the ids it accepted (state/idfilter.c): when it says no copy can exist
 * the user is not loaded at all; it never says so when this check could
 * find one, so the answer is always this check's.
 *
 * A 64-bit hash stands for the id: two different ids of one user colliding
 * within the window (about 2^-64 per pair) would drop the second as a
 * duplicate. The count per user is capped (the oldest forgotten first), so
 * a client that floods one user cannot grow state without end.
 *
 * The state is one flat block (base/flat.h) whose bytes are its stored
 * form: a version word, then (hash, event time) pairs, oldest first.
 *
 * Never: emit an update, or read a clock.
 */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "flat.h"

#define ENC_DEDUP_MAX 4096

/* ---- the state block --------------------------------------------------
 * v2 (little-endian, d 8-aligned): u8 2, seven zero bytes, then n >= 1
 * entries of (u64 hash, i64 event time), times non-decreasing (events
 * arrive in event-time order); nothing after, so n = (len - 8) / 16.
 * One id is 24 bytes (room 32 when read from the store, 48 heap bytes)
 * where v1's pooled struct took 160 for up to eight ids. */
#define ENC_DEDUP_V2 2

typedef struct enc_dedup_ent_s {
        uint64_t hash;
        int64_t time;
} enc_dedup_ent_t;

#define ENC_DEDUP_HEAD 8 /* the version and its padding */

/* Stored event times beyond this are corrupt (events are validated to
 * years 2006-2100): next_timer adds the window to the newest one. */
#define ENC_DEDUP_TIME_MAX ((int64_t)1 << 60)

/* A state grows an id per event: room for a few more at once keeps that
 * from reallocating per event (ENC_DEDUP_ROOM ids when it starts, twice
 * its ids when it fills), as v1's eight inline ids and doubling arrays
 * did. */
#define ENC_DEDUP_ROOM 8

/* Freed blocks, by room (enc_flat_pool_t, base/flat.h), for the next
 * states and for decoding: a user's ids are freed a
 * window after the last play and loaded and evicted by the cache, and a
 * malloc each time would be an allocation the v1 pool did not make. At
 * most ENC_DEDUP_POOL_BYTES are kept. */
#define ENC_DEDUP_POOL_BYTES   ((size_t)ENC_POOL_MAX * 160)

typedef struct enc_dedup_priv_s {
        int64_t window;
        enc_flat_pool_t pool;
} enc_dedup_priv_t;

uint64_t enc_dedup_hash(const char *event_id) {
        return XXH3_64bits(event_id, strlen(event_id));
}

/* ---- the block ---------------------------------------------------------- */

static size_t enc_dedup_n(const enc_flat_t *f) {
        return (f->len - ENC_DEDUP_HEAD) / sizeof(enc_dedup_ent_t);
}

static enc_dedup_ent_t *enc_dedup_ent(enc_flat_t *f) {
        return (enc_dedup_ent_t *)(void *)(f->d + ENC_DEDUP_HEAD);
}

static const enc_dedup_ent_t *enc_dedup_cent(const enc_flat_t *f) {
        return (const enc_dedup_ent_t *)(const void *)(f->d + ENC_DEDUP_HEAD);
}

/* Sets the length of *fp to @p len bytes (<= its length, or within its
 * room): the stored form shrinks or grows by whole entries, and the room
 * stays. enc_flat_resize/cut give room back below half, which for a state
 * that loses the ids of an hour and then grows again is a realloc back and
 * forth; the ids are freed a window after the last play anyway. The bytes
 * past len are never read (enc_flat_resize zeroes what it reopens). */
static void enc_dedup_setlen(enc_flat_t *f, size_t len) {
        f->len = (uint32_t)len;
}

/* Makes room in *fp for one more entry; the block may move. */
static bool enc_dedup_room(enc_flat_t **fp) {
        enc_flat_t *f = *fp;
        size_t len = f->len, n = enc_dedup_n(f);
        if (len + sizeof(enc_dedup_ent_t) <= f->cap)
                return true;
        size_t room = n < ENC_DEDUP_ROOM / 2 ? ENC_DEDUP_ROOM : 2 * n;
        if (!enc_flat_resize(fp, ENC_DEDUP_HEAD + room * sizeof(enc_dedup_ent_t)))
                return false;
        enc_dedup_setlen(*fp, len);
        return true;
}

static void enc_dedup_free(void *priv, void *state) {
        enc_dedup_priv_t *p = priv;
        enc_flat_pool_put(p ? &p->pool : NULL, state);
}

static size_t enc_dedup_bytes(void *priv, const void *state) {
        (void)priv;
        return enc_flat_heap(state);
}

/* Forgets the first @p k entries. */
static void enc_dedup_drop(enc_flat_t *f, size_t k) {
        size_t n = enc_dedup_n(f);
        enc_dedup_ent_t *e = enc_dedup_ent(f);
        memmove(e, e + k, (n - k) * sizeof(*e));
        enc_dedup_setlen(f, f->len - k * sizeof(*e));
}

/* Forgets the entries older than @p before (they are the first ones). */
static void enc_dedup_forget_before(enc_flat_t *f, int64_t before) {
        size_t n = enc_dedup_n(f), k = 0;
        const enc_dedup_ent_t *e = enc_dedup_cent(f);
        while (k < n && e[k].time < before)
                k++;
        if (k)
                enc_dedup_drop(f, k);
}

static enc_err_t enc_dedup_on_event(void *priv, void **state,
                                    const enc_event_t *ev,
                                    enc_emitter_t *em) {
        (void)em;
        enc_dedup_priv_t *pv = priv;
        enc_flat_t *f = *state;
        if (!f) {
                /* Room for ENC_DEDUP_ROOM ids, none in use yet. */
                f = enc_flat_pool_get(&pv->pool, NULL,
                                       ENC_DEDUP_HEAD +
                                               ENC_DEDUP_ROOM *
                                                       sizeof(enc_dedup_ent_t));
                if (!f)
                        return ENC_ERR_NOMEM;
                f->d[0] = ENC_DEDUP_V2;
                enc_dedup_setlen(f, ENC_DEDUP_HEAD);
                *state = f;
        }
        /* Forget what no later event can match (see DESIGN). */
        enc_dedup_forget_before(f, ev->event_time - pv->window);
        if (enc_dedup_n(f) == ENC_DEDUP_MAX)
                enc_dedup_drop(f, 1);
        if (!enc_dedup_room(&f)) {
                if (!enc_dedup_n(f)) { /* a new one: nothing to keep */
                        enc_dedup_free(pv, f);
                        f = NULL;
                }
                *state = f;
                return ENC_ERR_NOMEM;
        }
        *state = f;
        /* Keep time order even for an event older than the newest entry
         * (it cannot happen with the engine's ordering; cheap to keep). */
        size_t n = enc_dedup_n(f), i = n;
        enc_dedup_ent_t *e = enc_dedup_ent(f);
        while (i > 0 && e[i - 1].time > ev->event_time)
                i--;
        memmove(e + i + 1, e + i, (n - i) * sizeof(*e));
        e[i].hash = enc_dedup_hash(ev->event_id);
        e[i].time = ev->event_time;
        enc_dedup_setlen(f, f->len + sizeof(*e));
        return ENC_OK;
}

static int64_t enc_dedup_next_timer(void *priv, const void *state) {
        const enc_dedup_priv_t *p = priv;
        const enc_flat_t *f = state;
        /* when the newest id is stale, and with it every other */
        return f && enc_dedup_n(f)
                       ? enc_dedup_cent(f)[enc_dedup_n(f) - 1].time +
                                 p->window + 1
                       : ENC_NO_TIMER;
}

static enc_err_t enc_dedup_on_timer(void *priv, void **state, int64_t now,
                                    enc_emitter_t *em) {
        (void)em;
        const enc_dedup_priv_t *p = priv;
        enc_flat_t *f = *state;
        enc_dedup_forget_before(f, now - p->window);
        if (!enc_dedup_n(f)) {
                enc_dedup_free(priv, f);
                *state = NULL;
        }
        return ENC_OK;
}

/* ---- state records ----------------------------------------------------
 * v2: the block (above). encode copies it; decode checks every byte of it
 *     and copies it.
 * v1 (still read, so a store written before v2 loads; written as v2 from
 *     then on): u8 1, varint n (1..ENC_DEDUP_MAX), n x (u64 big-endian
 *     hash, svarint time delta from the previous entry's, the first from
 *     0; deltas after the first >= 0). */

static enc_err_t enc_dedup_encode(void *priv, const void *state,
                                  enc_buf_t *out) {
        (void)priv;
        return enc_flat_encode(state, out) ? ENC_ERR_TOO_LARGE : ENC_OK;
}

static enc_err_t enc_dedup_decode_v2(enc_dedup_priv_t *pv, const uint8_t *buf,
                                     size_t len, void **state) {
        static const uint8_t zero[ENC_DEDUP_HEAD - 1];
        if (len < ENC_DEDUP_HEAD + sizeof(enc_dedup_ent_t) ||
            (len - ENC_DEDUP_HEAD) % sizeof(enc_dedup_ent_t) ||
            (len - ENC_DEDUP_HEAD) / sizeof(enc_dedup_ent_t) > ENC_DEDUP_MAX ||
            memcmp(buf + 1, zero, sizeof(zero)))
                return ENC_ERR_CORRUPT;
        int64_t prev = -ENC_DEDUP_TIME_MAX;
        for (size_t o = ENC_DEDUP_HEAD; o < len; o += sizeof(enc_dedup_ent_t)) {
                int64_t t; /* buf has no alignment promise */
                memcpy(&t, buf + o + offsetof(enc_dedup_ent_t, time), sizeof(t));
                if (t < prev || t < -ENC_DEDUP_TIME_MAX ||
                    t > ENC_DEDUP_TIME_MAX)
                        return ENC_ERR_CORRUPT;
                prev = t;
        }
        enc_flat_t *f = enc_flat_pool_get(&pv->pool, buf, len);
        if (!f)
                return ENC_ERR_NOMEM;
        *state = f;
        return ENC_OK;
}

static enc_err_t enc_dedup_decode_v1(enc_dedup_priv_t *pv, const uint8_t *buf,
                                     size_t len, void **state) {
        const uint8_t *p = buf + 1, *end = buf + len;
        uint64_t n;
        if (!enc_get_varint(&p, end, &n) || n == 0 || n > ENC_DEDUP_MAX ||
            n * 9 > (uint64_t)(end - p))
                return ENC_ERR_CORRUPT;
        enc_flat_t *f = enc_flat_pool_get(
                &pv->pool, NULL, ENC_DEDUP_HEAD + n * sizeof(enc_dedup_ent_t));
        if (!f)
                return ENC_ERR_NOMEM;
        f->d[0] = ENC_DEDUP_V2;
        enc_dedup_ent_t *e = enc_dedup_ent(f);
        int64_t prev = 0;
        for (uint64_t i = 0; i < n; i++) {
                int64_t d;
                if (!enc_get_u64be(&p, end, &e[i].hash) ||
                    !enc_get_svarint(&p, end, &d) || (i > 0 && d < 0) ||
                    __builtin_add_overflow(prev, d, &prev) ||
                    prev < -ENC_DEDUP_TIME_MAX || prev > ENC_DEDUP_TIME_MAX)
                        goto corrupt;
                e[i].time = prev;
        }
        if (p != end)
                goto corrupt;
        *state = f;
        return ENC_OK;
corrupt:
        enc_dedup_free(pv, f);
        return ENC_ERR_CORRUPT;
}

static enc_err_t enc_dedup_decode(void *priv, const uint8_t *buf, size_t len,
                                  void **state) {
        *state = NULL;
        if (!len)
                return ENC_ERR_CORRUPT;
        if (buf[0] == ENC_DEDUP_V2)
                return enc_dedup_decode_v2(priv, buf, len, state);
        if (buf[0] == 1)
                return enc_dedup_decode_v1(priv, buf, len, state);
        return ENC_ERR_CORRUPT;
}

static const enc_signal_plugin_t enc_dedup_plugin = {
        .name = "dedup",
        .description = "Event ids seen in the last dedup.window.ms",
        .on_event = enc_dedup_on_event,
        .on_timer = enc_dedup_on_timer,
        .next_timer = enc_dedup_next_timer,
        .state_encode = enc_dedup_encode,
        .state_decode = enc_dedup_decode,
        .state_free = enc_dedup_free,
        .state_bytes = enc_dedup_bytes,
};

enc_err_t enc_dedup_instance(int64_t window, enc_sig_instance_t *inst) {
        enc_dedup_priv_t *p = calloc(1, sizeof(*p));
        if (p)
                p->pool.max = ENC_DEDUP_POOL_BYTES;
        if (!p)
                return ENC_ERR_NOMEM;
        p->window = window;
        inst->plugin = &enc_dedup_plugin;
        inst->priv = p;
        inst->version = 1;
        inst->id = ENC_DEDUP_INSTANCE_ID;
        return ENC_OK;
}

void enc_dedup_instance_free(enc_sig_instance_t *inst) {
        enc_dedup_priv_t *p = inst->priv;
        if (p)
                enc_flat_pool_clear(&p->pool);
        free(inst->priv);
        inst->priv = NULL;
}

bool enc_dedup_seen(const enc_sig_instance_t *inst, const void *state,
                    uint64_t hash, int64_t since) {
        (void)inst;
        const enc_flat_t *f = state;
        if (!f)
                return false;
        const enc_dedup_ent_t *e = enc_dedup_cent(f);
        for (size_t i = enc_dedup_n(f); i > 0 && e[i - 1].time >= since; i--)
                if (e[i - 1].hash == hash)
                        return true;
        return false;
}
