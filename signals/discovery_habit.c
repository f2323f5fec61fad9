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
 * State: the lookback map and the open discoveries. The map interns
 * each item id to its 64-bit hash (XXH3): an entry is (hash, last day
 * with a qualified play), fixed-width, in an array sorted by hash, so a
 * lookup is a binary search over words and a user's state keeps no copy
 * of the ids it remembers (a hash collision between two ids of one user,
 * about n^2 / 2^65 for n ids, makes the later id's discovery missed; the
 * result stays deterministic). The open discoveries are an array sorted
 * by item id (finals due together come out in item order), each with its
 * three strings in one block, since their updates carry them. Loading,
 * changing and freeing a user's state costs a handful of allocations, not
 * one per remembered item. The map only needs entries of the last L days
 * and is pruned to them when its oldest entry is older; it is capped at
 * max.items entries: past the cap the oldest entry (smallest day, then
 * smallest hash) is dropped, so the result is deterministic and the worst
 * a heavy user loses is an old "already played" memory. The smallest day
 * of the map and the smallest D0 of the discoveries are kept, so the
 * timer and the check for due finals cost no scan per event.
 * Open discoveries are capped at max.items too: a discovery past the cap
 * is not started. With no discovery open, the timer is the day the newest
 * lookback entry stops mattering; then the state is empty and freed.
 *
 * Never: read a clock, or emit for a discovery after its final update.
 */
#include <xxhash.h>

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

/* A lookback entry: the item id interned to its 64-bit hash (dh_hash),
 * so the map is fixed-width entries compared as words and a state holds
 * no copy of the ids it remembers. */
typedef struct dh_look_s {
        uint64_t h;  /* dh_hash(item) */
        int64_t day; /* last day with a qualified play of item */
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
        uint64_t h;         /* dh_hash(item): compared before the string */
} dh_disc_t;

typedef struct dh_state_s {
        dh_look_t *look; /* sorted by h */
        int nlook, clook;
        int64_t lmax;   /* the largest lookback day (if nlook > 0) */
        int64_t lmin;   /* the smallest lookback day (if nlook > 0) */
        dh_disc_t *disc;
        int ndisc, cdisc;
        int64_t dmin;   /* the smallest d0 of disc (if ndisc > 0): the
                           next final is enc_day_start(dmin + H) */
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
        free(st->disc);
        free(st);
}


static size_t dh_state_bytes(void *priv, const void *state) {
        const dh_state_t *st = state;
        size_t n = enc_heap_bytes(sizeof(*st)) +
                   enc_heap_bytes((size_t)st->clook * sizeof(*st->look)) +
                   enc_heap_bytes((size_t)st->cdisc * sizeof(*st->disc));
        for (int i = 0; i < st->ndisc; i++)
                n += enc_sig_strs3_heap(st->disc[i].sbytes);
        return n;
}

/* The interned form of an item id. Two ids of one user with the same hash
 * (about n^2 / 2^65 for n remembered ids) would share a lookback entry:
 * the later one's discovery would be missed. Deterministic either way. */
static uint64_t dh_hash(const char *item, size_t len) {
        return XXH3_64bits(item, len);
}

/* The lookback index of hash @p h, or -(insertion point) - 1. */
static int dh_look_search(const dh_state_t *st, uint64_t h) {
        int lo = 0, hi = st->nlook - 1;
        while (lo <= hi) {
                int mid = lo + (hi - lo) / 2;
                uint64_t k = st->look[mid].h;
                if (k == h)
                        return mid;
                if (k < h)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        return -lo - 1;
}

/* Up to this many open discoveries, dh_disc_find compares hashes. */
#define DH_DISC_SCAN 16

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

/* The index of the open discovery of @p item (hashed to @p h), or -1. A
 * user has a few open discoveries at a time: their hashes are compared
 * first, so a play of an item with none reads no string. */
static int dh_disc_find(const dh_state_t *st, const char *item, uint64_t h) {
        if (st->ndisc > DH_DISC_SCAN) {
                int i = dh_search(st->disc, sizeof(*st->disc), st->ndisc, item);
                return i >= 0 ? i : -1;
        }
        for (int i = 0; i < st->ndisc; i++)
                if (st->disc[i].h == h && !strcmp(st->disc[i].item, item))
                        return i;
        return -1;
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

/* Recomputes st->lmax and st->lmin after entries went. */
static void dh_look_bounds(dh_state_t *st) {
        st->lmax = INT64_MIN;
        st->lmin = INT64_MAX;
        for (int i = 0; i < st->nlook; i++) {
                if (st->look[i].day > st->lmax)
                        st->lmax = st->look[i].day;
                if (st->look[i].day < st->lmin)
                        st->lmin = st->look[i].day;
        }
}

static void dh_look_remove(dh_state_t *st, int i) {
        memmove(&st->look[i], &st->look[i + 1],
                (size_t)(st->nlook - i - 1) * sizeof(*st->look));
        st->nlook--;
        dh_look_bounds(st);
}

/* Drops lookback entries older than @p minday. */
static void dh_prune(dh_state_t *st, int64_t minday) {
        if (st->nlook == 0 || st->lmin >= minday)
                return; /* the usual case: nothing is that old */
        int w = 0;
        for (int i = 0; i < st->nlook; i++)
                if (st->look[i].day >= minday)
                        st->look[w++] = st->look[i];
        st->nlook = w;
        dh_look_bounds(st);
}

/* Records a qualified play of the item hashed to @p h on @p day, then
 * enforces the cap. */
static enc_err_t dh_look_touch(const dh_priv_t *p, dh_state_t *st,
                               uint64_t h, int64_t day) {
        int i = dh_look_search(st, h);
        if (i >= 0) {
                if (day > st->look[i].day) {
                        bool was_min = st->look[i].day == st->lmin;
                        st->look[i].day = day;
                        if (day > st->lmax)
                                st->lmax = day;
                        if (was_min)
                                dh_look_bounds(st);
                }
                return ENC_OK;
        }
        i = -i - 1;
        if (!dh_insert_slot((void **)&st->look, &st->nlook, &st->clook,
                            sizeof(*st->look), i))
                return ENC_ERR_NOMEM;
        st->look[i] = (dh_look_t){h, day};
        if (st->nlook == 1 || day > st->lmax)
                st->lmax = day;
        if (st->nlook == 1 || day < st->lmin)
                st->lmin = day;
        while (st->nlook > p->max_items) {
                int old = 0; /* array order is hash order: first min wins */
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

/* Recomputes st->dmin after discoveries went. */
static void dh_disc_bounds(dh_state_t *st) {
        st->dmin = INT64_MAX;
        for (int i = 0; i < st->ndisc; i++)
                if (st->disc[i].d0 < st->dmin)
                        st->dmin = st->disc[i].d0;
}

static int64_t dh_next_timer(void *priv, const void *state) {
        const dh_priv_t *p = priv;
        const dh_state_t *st = state;
        if (!st)
                return ENC_NO_TIMER;
        if (st->ndisc > 0)
                return enc_day_start(st->dmin + p->horizon);
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
        /* Finals are due from enc_day_start(dmin + H) on; in time order,
         * then item order (the array's), as the first of the smallest d0
         * comes first. */
        while (st->ndisc > 0 && enc_day_start(st->dmin + p->horizon) <= now) {
                int best = 0;
                while (st->disc[best].d0 != st->dmin)
                        best++;
                dh_disc_t *d = &st->disc[best];
                int64_t t = dh_final_time(p, d);
                enc_err_t err = dh_emit(p, d, 0, p->horizon, t, true, em);
                if (err)
                        return err;
                dh_disc_clear(p, d);
                memmove(d, d + 1, (size_t)(st->ndisc - best - 1) * sizeof(*d));
                st->ndisc--;
                dh_disc_bounds(st);
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
        size_t ilen = strlen(item);
        uint64_t h = dh_hash(item, ilen);
        if (!(st = *state)) {
                if (!(st = calloc(1, sizeof(*st))))
                        return ENC_ERR_NOMEM;
                *state = st;
        }
        /* Afterwards every entry left is a play within the lookback. */
        dh_prune(st, day - p->lookback);

        int di = dh_disc_find(st, item, h);
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
                   dh_look_search(st, h) < 0 && st->ndisc < p->max_items) {
                /* Where it goes in item order. */
                di = -dh_search(st->disc, sizeof(*st->disc), st->ndisc,
                                item) - 1;
                dh_disc_t d;
                memset(&d, 0, sizeof(d));
                const char *rec = ev->recommendation_id, *co = ev->cohort;
                d.d0 = day;
                d.h = h;
                enc_daybits_init(&d.days, day);
                (void)enc_daybits_add(&d.days, day);
                const char *sv[3] = {item, rec, co};
                size_t sl[3] = {ilen, rec ? strlen(rec) : 0,
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
                if (st->ndisc == 1 || day < st->dmin)
                        st->dmin = day;
                err = dh_emit(p, &st->disc[di], 1, 0, ev->event_time, false,
                              em);
                if (err)
                        return err;
        }
        return dh_look_touch(p, st, h, day);
}

/* ---- state records ----------------------------------------------------
 * v2: u8 2,
 *     varint nlook, nlook x (u64be hash, svarint day)  sorted by hash,
 *     varint ndisc, ndisc x (str item, str rec, str cohort, svarint d0,
 *                            varint seq, daybits)       sorted by item.
 * v1 (read only): the same with each lookback entry (str item, svarint
 * day), sorted by item; read by hashing the ids, so a store written before
 * the ids were interned migrates as its users are loaded. */

#define DH_STATE_V2 2

static int dh_look_cmp(const void *a, const void *b) {
        uint64_t x = ((const dh_look_t *)a)->h, y = ((const dh_look_t *)b)->h;
        return (x > y) - (x < y);
}

/* Reads v1's lookback entries into st->look (room for @p n), interned and
 * sorted by hash; two ids of one hash keep the later day. */
static bool dh_decode_look_v1(dh_state_t *st, const uint8_t **q,
                              const uint8_t *end, uint64_t n) {
        const char *prev = NULL;
        size_t prevlen = 0;
        for (uint64_t i = 0; i < n; i++) {
                const char *s;
                size_t sl;
                dh_look_t *l = &st->look[st->nlook];
                if (!enc_sig_strref_get(q, end, ENC_ID_MAX, &s, &sl) || !s ||
                    !sl || !enc_get_svarint(q, end, &l->day) ||
                    !enc_sig_day_ok(l->day))
                        return false;
                if (prev) { /* strictly increasing, as v1 wrote them */
                        int c = memcmp(prev, s, prevlen < sl ? prevlen : sl);
                        if (c > 0 || (c == 0 && prevlen >= sl))
                                return false;
                }
                prev = s, prevlen = sl;
                l->h = dh_hash(s, sl);
                st->nlook++;
        }
        if (st->nlook > 1) /* (qsort must not get the NULL of none) */
                qsort(st->look, (size_t)st->nlook, sizeof(*st->look),
                      dh_look_cmp);
        int w = 0;
        for (int i = 0; i < st->nlook; i++) {
                if (w && st->look[w - 1].h == st->look[i].h) {
                        if (st->look[i].day > st->look[w - 1].day)
                                st->look[w - 1].day = st->look[i].day;
                        continue;
                }
                st->look[w++] = st->look[i];
        }
        st->nlook = w;
        return true;
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
        if (!enc_get_u8(&q, end, &ver) ||
            (ver != ENC_SIG_STATE_V1 && ver != DH_STATE_V2) ||
            !enc_get_varint(&q, end, &n) || n > (uint64_t)p->max_items ||
            n > (uint64_t)(end - q) / 2)
                goto corrupt;
        if (n && !(st->look = malloc((size_t)n * sizeof(*st->look))))
                goto nomem;
        st->clook = (int)n;
        if (ver == ENC_SIG_STATE_V1) {
                if (!dh_decode_look_v1(st, &q, end, n))
                        goto corrupt;
        } else {
                for (uint64_t i = 0; i < n; i++) {
                        dh_look_t *l = &st->look[i];
                        if (!enc_get_u64be(&q, end, &l->h) ||
                            !enc_get_svarint(&q, end, &l->day) ||
                            !enc_sig_day_ok(l->day) ||
                            (i && st->look[i - 1].h >= l->h))
                                goto corrupt;
                        st->nlook++;
                }
        }
        dh_look_bounds(st);
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
                d->h = dh_hash(s[0], sl[0]);
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
        dh_disc_bounds(st);
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

static enc_err_t dh_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        const dh_state_t *st = state;
        enc_buf_put_u8(out, DH_STATE_V2);
        enc_buf_put_varint(out, (uint64_t)st->nlook);
        for (int i = 0; i < st->nlook; i++) {
                enc_buf_put_u64be(out, st->look[i].h);
                enc_buf_put_svarint(out, st->look[i].day);
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
