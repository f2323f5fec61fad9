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
 * Never: emit an update, or read a clock.
 */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define ENC_DEDUP_MAX 4096
/* Ids kept inside the state block before the arrays move to the heap: a
 * user's plays within the window, for most windows and users. */
#define ENC_DEDUP_INL 8
typedef struct enc_dedup_priv_s {
        int64_t window;
        enc_pool_t pool; /* freed state blocks, for the next users */
} enc_dedup_priv_t;

typedef struct enc_dedup_state_s {
        int n, cap; /* cap 0: a new block, the arrays not yet set */
        uint64_t *hash; /* hinl or owned */
        int64_t *time;  /* tinl or owned; non-decreasing: events arrive in
                           event-time order */
        uint64_t hinl[ENC_DEDUP_INL];
        int64_t tinl[ENC_DEDUP_INL];
} enc_dedup_state_t;

uint64_t enc_dedup_hash(const char *event_id) {
        return XXH3_64bits(event_id, strlen(event_id));
}

/* A user's ids come and go with their plays (the state is freed a window
 * after the last one): a state is one block with room for ENC_DEDUP_INL
 * ids, and freed blocks are kept for the next users, so in steady state
 * no event allocates. */
static enc_dedup_state_t *enc_dedup_state_new(enc_dedup_priv_t *p) {
        enc_dedup_state_t *s = enc_pool_get(&p->pool, sizeof(*s));
        if (!s)
                return NULL;
        s->cap = ENC_DEDUP_INL;
        s->hash = s->hinl;
        s->time = s->tinl;
        return s;
}

static void enc_dedup_free(void *priv, void *state) {
        enc_dedup_priv_t *p = priv;
        enc_dedup_state_t *s = state;
        if (!s)
                return;
        if (s->hash != s->hinl) {
                free(s->hash);
                free(s->time);
        }
        enc_pool_put(p ? &p->pool : NULL, s);
}

static size_t enc_dedup_bytes(void *priv, const void *state) {
        (void)priv;
        const enc_dedup_state_t *s = state;
        size_t n = enc_heap_bytes(sizeof(*s));
        if (s->hash != s->hinl)
                n += 2 * enc_heap_bytes((size_t)s->cap * sizeof(uint64_t));
        return n;
}

static bool enc_dedup_grow(enc_dedup_state_t *s) {
        if (s->n < s->cap)
                return true;
        int ncap = s->cap * 2;
        bool inl = s->hash == s->hinl;
        uint64_t *h = inl ? malloc((size_t)ncap * sizeof(*h))
                          : realloc(s->hash, (size_t)ncap * sizeof(*h));
        if (!h)
                return false;
        if (inl)
                memcpy(h, s->hinl, sizeof(s->hinl));
        s->hash = h;
        int64_t *t = inl ? malloc((size_t)ncap * sizeof(*t))
                         : realloc(s->time, (size_t)ncap * sizeof(*t));
        if (!t) {
                if (inl) { /* stay inline, as before the call */
                        free(h);
                        s->hash = s->hinl;
                }
                return false;
        }
        if (inl)
                memcpy(t, s->tinl, sizeof(s->tinl));
        s->time = t;
        s->cap = ncap;
        return true;
}

/* Forgets the first @p k entries. */
static void enc_dedup_drop(enc_dedup_state_t *s, int k) {
        memmove(s->hash, s->hash + k, (size_t)(s->n - k) * sizeof(*s->hash));
        memmove(s->time, s->time + k, (size_t)(s->n - k) * sizeof(*s->time));
        s->n -= k;
}

/* Forgets the entries older than @p before (they are the first ones). */
static void enc_dedup_forget_before(enc_dedup_state_t *s, int64_t before) {
        int k = 0;
        while (k < s->n && s->time[k] < before)
                k++;
        if (k)
                enc_dedup_drop(s, k);
}

static enc_err_t enc_dedup_on_event(void *priv, void **state,
                                    const enc_event_t *ev,
                                    enc_emitter_t *em) {
        (void)em;
        enc_dedup_priv_t *pv = priv;
        enc_dedup_state_t *s = *state;
        if (!s && !(s = *state = enc_dedup_state_new(pv)))
                return ENC_ERR_NOMEM;
        /* Forget what no later event can match (see DESIGN). */
        enc_dedup_forget_before(s, ev->event_time - pv->window);
        if (s->n == ENC_DEDUP_MAX)
                enc_dedup_drop(s, 1);
        if (!enc_dedup_grow(s))
                return ENC_ERR_NOMEM;
        /* Keep time order even for an event older than the newest entry
         * (it cannot happen with the engine's ordering; cheap to keep). */
        int i = s->n;
        while (i > 0 && s->time[i - 1] > ev->event_time)
                i--;
        memmove(s->hash + i + 1, s->hash + i,
                (size_t)(s->n - i) * sizeof(*s->hash));
        memmove(s->time + i + 1, s->time + i,
                (size_t)(s->n - i) * sizeof(*s->time));
        s->hash[i] = enc_dedup_hash(ev->event_id);
        s->time[i] = ev->event_time;
        s->n++;
        return ENC_OK;
}

static int64_t enc_dedup_next_timer(void *priv, const void *state) {
        const enc_dedup_priv_t *p = priv;
        const enc_dedup_state_t *s = state;
        /* when the newest id is stale, and with it every other */
        return s && s->n ? s->time[s->n - 1] + p->window + 1 : ENC_NO_TIMER;
}

static enc_err_t enc_dedup_on_timer(void *priv, void **state, int64_t now,
                                    enc_emitter_t *em) {
        (void)em;
        const enc_dedup_priv_t *p = priv;
        enc_dedup_state_t *s = *state;
        enc_dedup_forget_before(s, now - p->window);
        if (!s->n) {
                enc_dedup_free(priv, s);
                *state = NULL;
        }
        return ENC_OK;
}

static enc_err_t enc_dedup_encode(void *priv, const void *state,
                                  enc_buf_t *out) {
        (void)priv;
        const enc_dedup_state_t *s = state;
        enc_buf_put_u8(out, 1);
        enc_buf_put_varint(out, (uint64_t)s->n);
        int64_t prev = 0;
        for (int i = 0; i < s->n; i++) {
                enc_buf_put_u64be(out, s->hash[i]);
                enc_buf_put_svarint(out, s->time[i] - prev);
                prev = s->time[i];
        }
        return out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
}

static enc_err_t enc_dedup_decode(void *priv, const uint8_t *buf, size_t len,
                                  void **state) {
        const uint8_t *p = buf, *end = buf + len;
        uint8_t ver;
        uint64_t n;
        if (!enc_get_u8(&p, end, &ver) || ver != 1 ||
            !enc_get_varint(&p, end, &n) || n == 0 || n > ENC_DEDUP_MAX ||
            n * 9 > (uint64_t)(end - p))
                return ENC_ERR_CORRUPT;
        enc_dedup_state_t *s = enc_dedup_state_new(priv);
        if (!s)
                return ENC_ERR_NOMEM;
        if (n > ENC_DEDUP_INL) {
                uint64_t *h = malloc(n * sizeof(*h));
                int64_t *t = malloc(n * sizeof(*t));
                if (!h || !t) {
                        free(h);
                        free(t);
                        enc_dedup_free(priv, s);
                        return ENC_ERR_NOMEM;
                }
                s->hash = h;
                s->time = t;
                s->cap = (int)n;
        }
        int64_t prev = 0;
        for (uint64_t i = 0; i < n; i++) {
                int64_t d;
                if (!enc_get_u64be(&p, end, &s->hash[i]) ||
                    !enc_get_svarint(&p, end, &d) || (i > 0 && d < 0))
                        goto corrupt;
                prev += d;
                s->time[i] = prev;
                s->n++;
        }
        if (p != end)
                goto corrupt;
        *state = s;
        return ENC_OK;
corrupt:
        enc_dedup_free(priv, s);
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
                enc_pool_clear(&p->pool);
        free(inst->priv);
        inst->priv = NULL;
}

bool enc_dedup_seen(const enc_sig_instance_t *inst, const void *state,
                    uint64_t hash, int64_t since) {
        (void)inst;
        const enc_dedup_state_t *s = state;
        if (!s)
                return false;
        for (int i = s->n - 1; i >= 0 && s->time[i] >= since; i--)
                if (s->hash[i] == hash)
                        return true;
        return false;
}
