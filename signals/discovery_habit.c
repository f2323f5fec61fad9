/*
 * discovery_habit.c -- did a recommended discovery become a habit?
 *
 * DESIGN
 * Definition (version 1). Plays qualify as in active_days (ms_played >=
 * qualified.ms); the item of a play is its artist or its track (`item`).
 * Days are UTC days of event time.
 *  - A discovery is a qualified play of item X on day D0 whose source is
 *    RECOMMENDATION, when the user has no open discovery of X and no
 *    qualified play of X in days D0-L..D0-1 nor earlier on day D0 (L =
 *    lookback.days). Choice: an earlier qualified play the same day also
 *    blocks, because the brief defines a discovery as the user's *first*
 *    qualified play of the item; so lookback.days = 0 means "first play
 *    of the item today".
 *  - Its trace: day 0 (D0) counts 1; each later day D0+1..D0+H-1 (H =
 *    horizon.days) with a qualified play of X from any source adds 1, once
 *    per day.
 *  - Updates (subject = X, recommendation_id and cohort of the
 *    discovering play, window [enc_day_start(D0), enc_day_start(D0+H)),
 *    horizon_days = H): on the discovery and on each new engaged day D,
 *    value = engaged days so far, delta = value - previous value,
 *    observed_days = D - D0 (the days of the horizon fully observed: day
 *    D itself is still open, so 0 on the discovery, as progressive_reward
 *    counts them), event_time = the play's, final = false.
 *    When the watermark reaches T = enc_day_start(D0+H): value unchanged,
 *    delta 0, observed_days = H, event_time = T, final = true; then the
 *    discovery is closed.
 *  - Each discovery is its own key instance: its sequence counts from 1
 *    (the discovery update) to its final update, and a later rediscovery
 *    of the same item starts again at 1 (ids differ by event time).
 *
 * State: the lookback map (item -> last day with a qualified play of it)
 * and the open discoveries, both arrays sorted by item id so lookups are
 * binary searches and the stored form is canonical. The lookback's ids
 * live back to back in one pool (compacted when half of it is dead) and
 * each discovery's three strings in one block: loading, changing and
 * freeing a user's state costs a handful of allocations, not one per
 * remembered item (they were most of a cold B1 run's malloc and free). The map only needs
 * entries of the last L days and is pruned to them whenever touched; it is
 * capped at max.items entries: past the cap the oldest entry (smallest
 * day, then smallest item id) is dropped, so the result is deterministic
 * and the worst a heavy user loses is an old "already played" memory.
 * Open discoveries are capped at max.items too: a discovery past the cap
 * is not started. With no discovery open, the timer is the day the newest
 * lookback entry stops mattering; then the state is empty and freed.
 *
 * Never: read a clock, or emit for a discovery after its final update.
 */
#include "daybits.h"
#include "sigpriv.h"

typedef struct dh_priv_s {
        int64_t horizon;  /* H */
        int64_t lookback; /* L */
        bool by_track;
        int64_t qualified_ms;
        int max_items;
        enc_sig_strs3_pools_t strs; /* discoveries' string blocks */
} dh_priv_t;

/* A lookback entry: its item id lives in the state's pool, at off,
 * NUL-terminated. */
typedef struct dh_look_s {
        uint32_t off;
        uint32_t len; /* without the NUL */
        int64_t day;  /* last day with a qualified play of item */
} dh_look_t;

typedef struct dh_disc_s {
        char *item;   /* first member (dh_search); owns the block that */
        char *rec;    /* also holds these two, after item's NUL: the */
        char *cohort; /* recommendation id and cohort of the discovering
                         play (NULL when absent) */
        int64_t d0;
        int64_t seq;        /* last sequence number emitted */
        enc_daybits_t days; /* engaged days, base d0 */
        uint32_t sbytes;    /* size of the block of strings */
} dh_disc_t;

typedef struct dh_state_s {
        dh_look_t *look;
        int nlook, clook;
        char *pool; /* the lookback's item ids, back to back */
        uint32_t plen, pcap;
        uint32_t pdead; /* bytes of ids no entry points to any more */
        int64_t lmax;   /* the largest lookback day (if nlook > 0) */
        dh_disc_t *disc;
        int ndisc, cdisc;
} dh_state_t;

static const enc_cfg_key_t dh_keys[] = {
        {.name = "horizon.days",
         .type = ENC_CFG_INT,
         .def = "60",
         .desc = "Days a discovery is followed for (its final update comes "
                 "after)",
         .min = 1,
         .max = 366},
        {.name = "lookback.days",
         .type = ENC_CFG_INT,
         .def = "90",
         .desc = "No discovery if the item had a qualified play in this many "
                 "days before (or earlier the same day)",
         .min = 0,
         .max = 3650},
        {.name = "item",
         .type = ENC_CFG_ENUM,
         .def = "artist",
         .desc = "What is discovered: artist or track",
         .choices = "artist|track"},
        {.name = "qualified.ms",
         .type = ENC_CFG_INT,
         .def = "30000",
         .desc = "A play counts when ms_played is at least this",
         .min = 0,
         .max = 86400000},
        {.name = "max.items",
         .type = ENC_CFG_INT,
         .def = "4096",
         .desc = "Cap on remembered items and on open discoveries per user",
         .min = 1,
         .max = 65536},
        {NULL},
};

static enc_err_t dh_init(const enc_sigconf_t *sc, void **privp, char *errstr,
                         size_t errstr_size) {
        dh_priv_t *p = calloc(1, sizeof(*p));
        if (!p)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "%s: out of memory", sc->prefix);
        p->horizon = enc_sigconf_int(sc, "horizon.days");
        p->lookback = enc_sigconf_int(sc, "lookback.days");
        p->by_track = !strcmp(enc_sigconf_get(sc, "item"), "track");
        p->qualified_ms = enc_sigconf_int(sc, "qualified.ms");
        p->max_items = (int)enc_sigconf_int(sc, "max.items");
        if (p->horizon < 1 || p->horizon > 366 || p->max_items < 1) {
                free(p);
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%shorizon.days: expected an integer in "
                                  "[1, 366]",
                                  sc->prefix);
        }
        *privp = p;
        return ENC_OK;
}

static void dh_destroy(void *priv) {
        dh_priv_t *p = priv;
        enc_sig_strs3_clear(&p->strs);
        free(p);
}

/* The pool of string blocks: the instance's, mutable through a const
 * priv (which points to calloc'ed memory, never a const object). */
static enc_sig_strs3_pools_t *dh_strs(const dh_priv_t *p) {
        return p ? (enc_sig_strs3_pools_t *)&p->strs : NULL;
}

static void dh_disc_clear(const dh_priv_t *p, dh_disc_t *d) {
        enc_sig_strs3_free(dh_strs(p), d->item, d->sbytes); /* all three */
        d->item = d->rec = d->cohort = NULL;
}

static void dh_state_free(void *priv, void *state) {
        dh_state_t *st = state;
        if (!st)
                return;
        for (int i = 0; i < st->ndisc; i++)
                dh_disc_clear(priv, &st->disc[i]);
        free(st->look);
        free(st->pool);
        free(st->disc);
        free(st);
}


static size_t dh_state_bytes(void *priv, const void *state) {
        const dh_state_t *st = state;
        size_t n = enc_heap_bytes(sizeof(*st)) +
                   enc_heap_bytes((size_t)st->clook * sizeof(*st->look)) +
                   enc_heap_bytes(st->pcap) +
                   enc_heap_bytes((size_t)st->cdisc * sizeof(*st->disc));
        for (int i = 0; i < st->ndisc; i++)
                n += enc_sig_strs3_heap(st->disc[i].sbytes);
        return n;
}

static const char *dh_look_item(const dh_state_t *st, int i) {
        return st->pool + st->look[i].off;
}

/* The lookback index of @p item, or -(insertion point) - 1. */
static int dh_look_search(const dh_state_t *st, const char *item) {
        int lo = 0, hi = st->nlook - 1;
        while (lo <= hi) {
                int mid = lo + (hi - lo) / 2;
                int c = strcmp(dh_look_item(st, mid), item);
                if (!c)
                        return mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        return -lo - 1;
}

/* Rewrites the pool with the live ids only, in entry order. */
static bool dh_pool_compact(dh_state_t *st) {
        uint32_t live = st->plen - st->pdead;
        char *np = malloc(live ? live : 1);
        if (!np)
                return false;
        uint32_t w = 0;
        for (int i = 0; i < st->nlook; i++) {
                dh_look_t *l = &st->look[i];
                memcpy(np + w, st->pool + l->off, l->len + 1);
                l->off = w;
                w += l->len + 1;
        }
        free(st->pool);
        st->pool = np;
        st->plen = st->pcap = w;
        st->pdead = 0;
        return true;
}

/* Appends @p item (NUL-terminated) to the pool; its offset in *off. The
 * pool is compacted first when half of it is dead, so it stays within
 * twice the live ids. */
static bool dh_pool_add(dh_state_t *st, const char *item, size_t len,
                        uint32_t *off) {
        if (len > ENC_ID_MAX)
                return false;
        if (st->pdead > st->plen / 2 && !dh_pool_compact(st))
                return false;
        if ((size_t)st->plen + len + 1 > st->pcap) {
                size_t ncap = st->pcap ? (size_t)st->pcap * 2 : 64;
                while (ncap < (size_t)st->plen + len + 1)
                        ncap *= 2;
                if (ncap > UINT32_MAX)
                        return false;
                char *np = realloc(st->pool, ncap);
                if (!np)
                        return false;
                st->pool = np;
                st->pcap = (uint32_t)ncap;
        }
        *off = st->plen;
        memcpy(st->pool + st->plen, item, len + 1);
        st->plen += (uint32_t)len + 1;
        return true;
}

/* Binary search over an array of structs whose first member is the item
 * string: the index of @p item, or -(insertion point) - 1. */
static int dh_search(const void *arr, size_t stride, int n, const char *item) {
        int lo = 0, hi = n - 1;
        while (lo <= hi) {
                int mid = lo + (hi - lo) / 2;
                const char *k = *(char *const *)((const char *)arr +
                                                 (size_t)mid * stride);
                int c = strcmp(k, item);
                if (!c)
                        return mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        return -lo - 1;
}

/* Makes room for one more element of @p stride at index @p at. */
static bool dh_insert_slot(void **arr, int *n, int *cap, size_t stride,
                           int at) {
        if (*n == *cap) {
                int ncap = *cap ? *cap * 2 : 4;
                void *na = realloc(*arr, (size_t)ncap * stride);
                if (!na)
                        return false;
                *arr = na;
                *cap = ncap;
        }
        char *a = *arr;
        memmove(a + (size_t)(at + 1) * stride, a + (size_t)at * stride,
                (size_t)(*n - at) * stride);
        (*n)++;
        return true;
}

/* Recomputes st->lmax after entries went. */
static void dh_look_max(dh_state_t *st) {
        st->lmax = INT64_MIN;
        for (int i = 0; i < st->nlook; i++)
                if (st->look[i].day > st->lmax)
                        st->lmax = st->look[i].day;
}

static void dh_look_remove(dh_state_t *st, int i) {
        st->pdead += st->look[i].len + 1;
        memmove(&st->look[i], &st->look[i + 1],
                (size_t)(st->nlook - i - 1) * sizeof(*st->look));
        st->nlook--;
        dh_look_max(st);
}

/* Drops lookback entries older than @p minday. */
static void dh_prune(dh_state_t *st, int64_t minday) {
        int w = 0;
        for (int i = 0; i < st->nlook; i++) {
                if (st->look[i].day < minday)
                        st->pdead += st->look[i].len + 1;
                else
                        st->look[w++] = st->look[i];
        }
        if (w == st->nlook)
                return;
        st->nlook = w;
        if (w == 0)
                st->plen = st->pdead = 0;
        dh_look_max(st);
}

/* Records a qualified play of @p item on @p day, then enforces the cap. */
static enc_err_t dh_look_touch(const dh_priv_t *p, dh_state_t *st,
                               const char *item, int64_t day) {
        int i = dh_look_search(st, item);
        if (st->nlook == 0 || day > st->lmax)
                st->lmax = day;
        if (i >= 0) {
                if (day > st->look[i].day)
                        st->look[i].day = day;
                return ENC_OK;
        }
        i = -i - 1;
        size_t len = strlen(item);
        uint32_t off;
        if (!dh_pool_add(st, item, len, &off) ||
            !dh_insert_slot((void **)&st->look, &st->nlook, &st->clook,
                            sizeof(*st->look), i))
                return ENC_ERR_NOMEM;
        st->look[i] = (dh_look_t){off, (uint32_t)len, day};
        while (st->nlook > p->max_items) {
                int old = 0; /* array order is item order: first min wins */
                for (int j = 1; j < st->nlook; j++)
                        if (st->look[j].day < st->look[old].day)
                                old = j;
                dh_look_remove(st, old);
        }
        return ENC_OK;
}

static enc_err_t dh_emit(const dh_priv_t *p, dh_disc_t *d, double delta,
                         int64_t observed, int64_t event_time, bool final,
                         enc_emitter_t *em) {
        enc_update_t up;
        memset(&up, 0, sizeof(up));
        up.subject = d->item;
        up.recommendation_id = d->rec;
        up.cohort = d->cohort;
        up.window_start = enc_day_start(d->d0);
        up.window_end = enc_day_start(d->d0 + p->horizon);
        up.value = enc_daybits_count(&d->days, d->d0, d->d0 + p->horizon - 1);
        up.delta = delta;
        up.observed_days = (int32_t)observed;
        up.horizon_days = (int32_t)p->horizon;
        up.final = final;
        up.event_time = event_time;
        up.sequence = ++d->seq;
        return enc_emit(em, &up);
}

static int64_t dh_final_time(const dh_priv_t *p, const dh_disc_t *d) {
        return enc_day_start(d->d0 + p->horizon);
}

static int64_t dh_next_timer(void *priv, const void *state) {
        const dh_priv_t *p = priv;
        const dh_state_t *st = state;
        int64_t t = ENC_NO_TIMER;
        if (!st)
                return ENC_NO_TIMER;
        for (int i = 0; i < st->ndisc; i++)
                if (dh_final_time(p, &st->disc[i]) < t)
                        t = dh_final_time(p, &st->disc[i]);
        if (st->ndisc > 0)
                return t;
        /* An entry of day d matters to plays up to day d + L. */
        return st->nlook ? enc_day_start(st->lmax + p->lookback + 1)
                         : ENC_NO_TIMER;
}

/* Emits and closes every discovery whose horizon ended at or before
 * @p now, in time order (then item order), prunes the lookback map to
 * what plays from @p now on can need, and frees an empty state. */
static enc_err_t dh_advance(const dh_priv_t *p, void **state, int64_t now,
                            enc_emitter_t *em) {
        dh_state_t *st = *state;
        for (;;) {
                int best = -1;
                for (int i = 0; i < st->ndisc; i++)
                        if (best < 0 ||
                            dh_final_time(p, &st->disc[i]) <
                                    dh_final_time(p, &st->disc[best]))
                                best = i;
                if (best < 0 || dh_final_time(p, &st->disc[best]) > now)
                        break;
                dh_disc_t *d = &st->disc[best];
                int64_t t = dh_final_time(p, d);
                enc_err_t err = dh_emit(p, d, 0, p->horizon, t, true, em);
                if (err)
                        return err;
                dh_disc_clear(p, d);
                memmove(d, d + 1, (size_t)(st->ndisc - best - 1) * sizeof(*d));
                st->ndisc--;
        }
        dh_prune(st, enc_day_of(now) - p->lookback);
        if (st->ndisc == 0 && st->nlook == 0) {
                dh_state_free((void *)p, st);
                *state = NULL;
        }
        return ENC_OK;
}

static enc_err_t dh_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        return *state ? dh_advance(priv, state, now, em) : ENC_OK;
}

static enc_err_t dh_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        const dh_priv_t *p = priv;
        const char *item = p->by_track ? ev->track_id : ev->artist_id;
        int64_t day = enc_day_of(ev->event_time);
        dh_state_t *st;
        enc_err_t err;

        if (*state) {
                /* A no-op under the engine, which has run every timer due
                 * before this event; keeps the definition whole otherwise. */
                err = dh_advance(p, state, ev->event_time, em);
                if (err)
                        return err;
        }
        if (ev->ms_played < p->qualified_ms || !item || !*item)
                return ENC_OK;
        if (!(st = *state)) {
                if (!(st = calloc(1, sizeof(*st))))
                        return ENC_ERR_NOMEM;
                *state = st;
        }
        /* Afterwards every entry left is a play within the lookback. */
        dh_prune(st, day - p->lookback);

        int di = dh_search(st->disc, sizeof(*st->disc), st->ndisc, item);
        if (di >= 0) {
                dh_disc_t *d = &st->disc[di];
                if (day > d->d0 && day < d->d0 + p->horizon &&
                    !enc_daybits_has(&d->days, day)) {
                        (void)enc_daybits_add(&d->days, day);
                        err = dh_emit(p, d, 1, day - d->d0, ev->event_time,
                                      false, em);
                        if (err)
                                return err;
                }
        } else if (ev->source == ENC_SRC_RECOMMENDATION &&
                   dh_look_search(st, item) < 0 && st->ndisc < p->max_items) {
                di = -di - 1;
                dh_disc_t d;
                memset(&d, 0, sizeof(d));
                const char *rec = ev->recommendation_id, *co = ev->cohort;
                d.d0 = day;
                enc_daybits_init(&d.days, day);
                (void)enc_daybits_add(&d.days, day);
                const char *sv[3] = {item, rec, co};
                size_t sl[3] = {strlen(item), rec ? strlen(rec) : 0,
                                co ? strlen(co) : 0};
                if (!enc_sig_strs3(dh_strs(p), &d.item, &d.rec, &d.cohort, sv,
                                   sl, &d.sbytes))
                        return ENC_ERR_NOMEM;
                if (!dh_insert_slot((void **)&st->disc, &st->ndisc, &st->cdisc,
                                    sizeof(*st->disc), di)) {
                        dh_disc_clear(p, &d);
                        return ENC_ERR_NOMEM;
                }
                st->disc[di] = d;
                err = dh_emit(p, &st->disc[di], 1, 0, ev->event_time, false,
                              em);
                if (err)
                        return err;
        }
        return dh_look_touch(p, st, item, day);
}

/* ---- state records ----------------------------------------------------
 * v1: u8 1,
 *     varint nlook, nlook x (str item, svarint day)    sorted by item,
 *     varint ndisc, ndisc x (str item, str rec, str cohort, svarint d0,
 *                            varint seq, daybits)       sorted by item. */

static enc_err_t dh_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        const dh_state_t *st = state;
        enc_buf_put_u8(out, ENC_SIG_STATE_V1);
        enc_buf_put_varint(out, (uint64_t)st->nlook);
        for (int i = 0; i < st->nlook; i++) {
                const dh_look_t *l = &st->look[i];
                enc_buf_put_varint(out, (uint64_t)l->len + 1);
                if (enc_buf_append(out, st->pool + l->off, l->len))
                        return ENC_ERR_TOO_LARGE;
                enc_buf_put_svarint(out, l->day);
        }
        enc_buf_put_varint(out, (uint64_t)st->ndisc);
        for (int i = 0; i < st->ndisc; i++) {
                const dh_disc_t *d = &st->disc[i];
                enc_buf_put_str(out, d->item);
                enc_buf_put_str(out, d->rec);
                enc_buf_put_str(out, d->cohort);
                enc_buf_put_svarint(out, d->d0);
                enc_buf_put_varint(out, (uint64_t)d->seq);
                enc_daybits_put(&d->days, out);
        }
        return out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
}

static enc_err_t dh_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        const dh_priv_t *p = priv;
        const uint8_t *q = buf, *end = buf + len;
        uint8_t ver;
        uint64_t n;
        dh_state_t *st = calloc(1, sizeof(*st));

        *statep = NULL;
        if (!st)
                return ENC_ERR_NOMEM;
        /* Counts are checked against the cap and against the bytes left
         * (each entry takes at least two) before anything is allocated. */
        if (!enc_get_u8(&q, end, &ver) || ver != ENC_SIG_STATE_V1 ||
            !enc_get_varint(&q, end, &n) || n > (uint64_t)p->max_items ||
            n > (uint64_t)(end - q) / 2)
                goto corrupt;
        /* The ids fit in the bytes left (each shorter than its length
         * prefix plus a NUL): one pool, sized once. */
        if (n && (!(st->look = calloc((size_t)n, sizeof(*st->look))) ||
                  !(st->pool = malloc((size_t)(end - q)))))
                goto nomem;
        st->clook = (int)n;
        st->pcap = n ? (uint32_t)(end - q) : 0;
        for (uint64_t i = 0; i < n; i++) {
                dh_look_t *l = &st->look[i];
                uint64_t sl;
                if (!enc_get_varint(&q, end, &sl) || sl < 2 ||
                    sl - 1 > ENC_ID_MAX || sl - 1 > (uint64_t)(end - q) ||
                    !enc_sig_str_ok(q, (size_t)(sl - 1)))
                        goto corrupt;
                l->off = st->plen;
                l->len = (uint32_t)(sl - 1);
                memcpy(st->pool + st->plen, q, l->len);
                st->pool[st->plen + l->len] = '\0';
                st->plen += l->len + 1;
                q += l->len;
                st->nlook++;
                if (!enc_get_svarint(&q, end, &l->day) ||
                    !enc_sig_day_ok(l->day) ||
                    (i && strcmp(dh_look_item(st, (int)i - 1),
                                 dh_look_item(st, (int)i)) >= 0))
                        goto corrupt;
        }
        dh_look_max(st);
        if (!enc_get_varint(&q, end, &n) || n > (uint64_t)p->max_items ||
            n > (uint64_t)(end - q) / 6)
                goto corrupt;
        if (n && !(st->disc = calloc((size_t)n, sizeof(*st->disc))))
                goto nomem;
        st->cdisc = (int)n;
        for (uint64_t i = 0; i < n; i++) {
                dh_disc_t *d = &st->disc[i];
                uint64_t seq;
                const char *s[3];
                size_t sl[3];
                st->ndisc++;
                if (!enc_sig_strref_get(&q, end, ENC_ID_MAX, &s[0], &sl[0]) ||
                    !s[0] || !sl[0] ||
                    !enc_sig_strref_get(&q, end, ENC_ID_MAX, &s[1], &sl[1]) ||
                    !enc_sig_strref_get(&q, end, ENC_LABEL_MAX, &s[2], &sl[2]))
                        goto corrupt;
                if (!enc_sig_strs3(dh_strs(p), &d->item, &d->rec, &d->cohort,
                                   s, sl, &d->sbytes))
                        goto nomem;
                if ((i && strcmp(st->disc[i - 1].item, d->item) >= 0) ||
                    !enc_get_svarint(&q, end, &d->d0) ||
                    !enc_sig_day_ok(d->d0) || !enc_get_varint(&q, end, &seq) ||
                    seq < 1 || seq > (uint64_t)p->horizon + 1)
                        goto corrupt;
                d->seq = (int64_t)seq;
                d->days.base = d->d0;
                /* Day 0 is always engaged; nothing past the horizon is. */
                if (!enc_daybits_get(&q, end, &d->days) ||
                    !enc_daybits_has(&d->days, d->d0) ||
                    enc_daybits_last(&d->days) >= d->d0 + p->horizon)
                        goto corrupt;
        }
        if (q != end || (st->nlook == 0 && st->ndisc == 0))
                goto corrupt;
        *statep = st;
        return ENC_OK;

corrupt:
        dh_state_free(priv, st);
        return ENC_ERR_CORRUPT;
nomem:
        dh_state_free(priv, st);
        return ENC_ERR_NOMEM;
}

const enc_signal_plugin_t enc_sig_discovery_habit = {
        .name = "discovery_habit",
        .description = "Engaged days with a recommended discovery over H days",
        .config_keys = dh_keys,
        .init = dh_init,
        .destroy = dh_destroy,
        .on_event = dh_on_event,
        .on_timer = dh_on_timer,
        .next_timer = dh_next_timer,
        .state_encode = dh_state_encode,
        .state_decode = dh_state_decode,
        .state_free = dh_state_free,
        .state_bytes = dh_state_bytes,
};
