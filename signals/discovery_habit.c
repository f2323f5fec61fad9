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
 * State: the lookback map and the open discoveries, in one flat block
 * (base/flat.h) whose bytes are the stored record: loading a user is a
 * check of the bytes and one copy, writing it back is one copy, and a
 * cached user costs about its record. The map interns each item id to
 * its 64-bit hash (XXH3): an entry is (hash, last day with a qualified
 * play), fixed-width, sorted by hash, so a lookup is a binary search over
 * words and a user's state keeps no copy of the ids it remembers (a hash
 * collision between two ids of one user, about n^2 / 2^65 for n ids,
 * makes the later id's discovery missed; the result stays deterministic).
 * The open discoveries are fixed-width entries sorted by item id (finals
 * due together come out in item order), each with its engaged days as a
 * bitmap of ceil(H / 64) words and its three strings, NUL-terminated, in
 * the string area at the end of the block (in entry order, no holes), so
 * an update points into the block for the emit call. Changing a state
 * moves bytes inside the block: no allocation per event beyond the
 * block's growth. The map only needs entries of the last L days and is
 * pruned to them when its oldest entry is older; it is capped at
 * max.items entries: past the cap the oldest entry (smallest day, then
 * smallest hash) is dropped, so the result is deterministic and the worst
 * a heavy user loses is an old "already played" memory. The smallest day
 * of the map and the smallest D0 of the discoveries are kept in the
 * header, so the timer and the check for due finals cost no scan per
 * event. Open discoveries are capped at max.items too: a discovery past
 * the cap is not started. With no discovery open, the timer is the day
 * the newest lookback entry stops mattering; then the state is empty and
 * freed. The stored form is canonical (the same logical state gives the
 * same bytes whatever its history): derived header fields are 0 when
 * their array is empty, padding and unused bitmap bits are zero, strings
 * are packed in entry order; state_decode checks all of it.
 *
 * Never: read a clock, or emit for a discovery after its final update.
 */
#include <xxhash.h>

#include "daybits.h"
#include "flat.h"
#include "sigpriv.h"

/* ---- the flat state ----------------------------------------------------
 * v3, the block's bytes (all fields little-endian, each struct at an
 * 8-aligned offset):
 *   dh_hdr_t                        40 bytes
 *   nlook x dh_look_t               16 bytes each, sorted by hash
 *   ndisc x (dh_disc_t + W words)   24 + 8 W bytes each, sorted by item
 *                                   (strcmp), W = ceil(H / 64)
 *   the string area                 each discovery's item, recommendation
 *                                   id and cohort, each with its NUL
 *                                   (absent ones take nothing), in entry
 *                                   order, packed: the block ends with it.
 * Offsets into the string area are relative to its start, so an entry
 * that comes or goes moves no offset; only the strings of a discovery
 * that comes or goes move the offsets of the entries after it. */

#define DH_STATE_V2 2
#define DH_STATE_V3 3

typedef struct dh_hdr_s {
        uint8_t ver;     /* DH_STATE_V3 */
        uint8_t words;   /* W: words of each discovery's day bitmap */
        uint16_t zero16; /* 0 */
        uint32_t nlook;  /* lookback entries */
        uint32_t ndisc;  /* open discoveries */
        uint32_t zero32; /* 0 */
        int64_t lmin;    /* smallest lookback day (0 when nlook == 0) */
        int64_t lmax;    /* largest lookback day (0 when nlook == 0) */
        int64_t dmin;    /* smallest d0 (0 when ndisc == 0): the next
                            final is enc_day_start(dmin + H) */
} dh_hdr_t;

/* A lookback entry: the item id interned to its 64-bit hash (dh_hash),
 * so the map is fixed-width entries compared as words and a state holds
 * no copy of the ids it remembers. */
typedef struct dh_look_s {
        uint64_t h;  /* dh_hash(item) */
        int64_t day; /* last day with a qualified play of item */
} dh_look_t;

/* An open discovery; W bitmap words follow it (bits[]). Days fit 32 bits:
 * events are validated (2006..2100) and stored days checked with
 * enc_sig_day_ok. Lengths count the NUL: a string of n bytes takes n + 1,
 * an absent one 0 (the item is never absent nor empty). */
typedef struct dh_disc_s {
        uint64_t h;      /* dh_hash(item): compared before the string */
        int32_t d0;      /* the discovery's day */
        uint16_t seq;    /* last sequence number emitted, 1..H + 1 */
        uint16_t ilen;   /* item */
        uint32_t soff;   /* its strings' offset in the string area */
        uint16_t rlen;   /* recommendation id of the discovering play */
        uint16_t clen;   /* cohort of the discovering play */
        uint64_t bits[]; /* engaged days: bit i is day d0 + i, i < H */
} dh_disc_t;

_Static_assert(sizeof(dh_hdr_t) == 40 && sizeof(dh_hdr_t) % 8 == 0,
               "dh_hdr_t: no hidden padding, 8-aligned");
_Static_assert(sizeof(dh_look_t) == 16, "dh_look_t: no hidden padding");
_Static_assert(sizeof(dh_disc_t) == 24 && offsetof(dh_disc_t, bits) == 24,
               "dh_disc_t: no hidden padding, bits 8-aligned");

typedef struct dh_priv_s {
        int64_t horizon;  /* H */
        int64_t lookback; /* L */
        bool by_track;
        int64_t qualified_ms;
        int max_items;
        int words;    /* W = ceil(H / 64) */
        size_t esize; /* bytes of a discovery entry: 24 + 8 W */
} dh_priv_t;

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
        p->words = (int)((p->horizon + 63) / 64);
        p->esize = sizeof(dh_disc_t) + (size_t)p->words * sizeof(uint64_t);
        *privp = p;
        return ENC_OK;
}

static void dh_destroy(void *priv) {
        free(priv);
}

/* ---- access to the block ---------------------------------------------
 * The block's d is 8-aligned and every struct sits at an 8-aligned offset
 * (the header and entries are multiples of 8), so the casts are aligned.
 * Pointers into the block are good until its next edit (it may move). */

static dh_hdr_t *dh_hdr(enc_flat_t *f) {
        return (dh_hdr_t *)(void *)f->d;
}

static const dh_hdr_t *dh_chdr(const enc_flat_t *f) {
        return (const dh_hdr_t *)(const void *)f->d;
}

static dh_look_t *dh_look(enc_flat_t *f) {
        return (dh_look_t *)(void *)(f->d + sizeof(dh_hdr_t));
}

static size_t dh_disc_off(const enc_flat_t *f) {
        return sizeof(dh_hdr_t) + (size_t)dh_chdr(f)->nlook * sizeof(dh_look_t);
}

static size_t dh_strs_off(const dh_priv_t *p, const enc_flat_t *f) {
        return dh_disc_off(f) + (size_t)dh_chdr(f)->ndisc * p->esize;
}

static dh_disc_t *dh_disc(const dh_priv_t *p, enc_flat_t *f, uint32_t i) {
        return (dh_disc_t *)(void *)(f->d + dh_disc_off(f) +
                                     (size_t)i * p->esize);
}

/* The item of @p d (NUL-terminated, in the block). */
static const char *dh_item(const dh_priv_t *p, enc_flat_t *f,
                           const dh_disc_t *d) {
        return (const char *)f->d + dh_strs_off(p, f) + d->soff;
}

static uint32_t dh_slen(const dh_disc_t *d) {
        return (uint32_t)d->ilen + d->rlen + d->clen;
}

static void dh_state_free(void *priv, void *state) {
        (void)priv;
        enc_flat_free(state);
}

static size_t dh_state_bytes(void *priv, const void *state) {
        (void)priv;
        return enc_flat_heap(state);
}

/* The interned form of an item id. Two ids of one user with the same hash
 * (about n^2 / 2^65 for n remembered ids) would share a lookback entry:
 * the later one's discovery would be missed. Deterministic either way. */
static uint64_t dh_hash(const char *item, size_t len) {
        return XXH3_64bits(item, len);
}

/* ---- the lookback map ------------------------------------------------ */

/* The lookback index of hash @p h, or -(insertion point) - 1. */
static int64_t dh_look_search(enc_flat_t *f, uint64_t h) {
        const dh_look_t *look = dh_look(f);
        int64_t lo = 0, hi = (int64_t)dh_hdr(f)->nlook - 1;
        while (lo <= hi) {
                int64_t mid = lo + (hi - lo) / 2;
                uint64_t k = look[mid].h;
                if (k == h)
                        return mid;
                if (k < h)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        return -lo - 1;
}

/* Recomputes lmin and lmax (0 for an empty map: the canonical form). */
static void dh_look_bounds(enc_flat_t *f) {
        dh_hdr_t *hd = dh_hdr(f);
        const dh_look_t *look = dh_look(f);
        if (!hd->nlook) {
                hd->lmin = hd->lmax = 0;
                return;
        }
        hd->lmin = hd->lmax = look[0].day;
        for (uint32_t i = 1; i < hd->nlook; i++) {
                if (look[i].day > hd->lmax)
                        hd->lmax = look[i].day;
                if (look[i].day < hd->lmin)
                        hd->lmin = look[i].day;
        }
}

/* Removes lookback entries [@p w, nlook): the kept ones are in front. */
static void dh_look_truncate(enc_flat_t **f, uint32_t w) {
        uint32_t n = dh_hdr(*f)->nlook;
        if (w == n)
                return;
        enc_flat_cut(f, sizeof(dh_hdr_t) + (size_t)w * sizeof(dh_look_t),
                     (size_t)(n - w) * sizeof(dh_look_t));
        dh_hdr(*f)->nlook = w;
        dh_look_bounds(*f);
}

/* Drops lookback entries older than @p minday. */
static void dh_prune(enc_flat_t **f, int64_t minday) {
        dh_hdr_t *hd = dh_hdr(*f);
        if (hd->nlook == 0 || hd->lmin >= minday)
                return; /* the usual case: nothing is that old */
        dh_look_t *look = dh_look(*f);
        uint32_t w = 0;
        for (uint32_t i = 0; i < hd->nlook; i++)
                if (look[i].day >= minday)
                        look[w++] = look[i];
        dh_look_truncate(f, w);
}

/* Records a qualified play of the item hashed to @p h on @p day, then
 * enforces the cap. */
static enc_err_t dh_look_touch(const dh_priv_t *p, enc_flat_t **f, uint64_t h,
                               int64_t day) {
        int64_t i = dh_look_search(*f, h);
        dh_hdr_t *hd = dh_hdr(*f);
        if (i >= 0) {
                dh_look_t *l = &dh_look(*f)[i];
                if (day > l->day) {
                        bool was_min = l->day == hd->lmin;
                        l->day = day;
                        if (day > hd->lmax)
                                hd->lmax = day;
                        if (was_min)
                                dh_look_bounds(*f);
                }
                return ENC_OK;
        }
        i = -i - 1;
        uint8_t *gap = enc_flat_insert(
                f, sizeof(dh_hdr_t) + (size_t)i * sizeof(dh_look_t),
                sizeof(dh_look_t));
        if (!gap)
                return ENC_ERR_NOMEM;
        dh_look_t *l = (dh_look_t *)(void *)gap;
        l->h = h;
        l->day = day;
        hd = dh_hdr(*f);
        hd->nlook++;
        if (hd->nlook == 1 || day > hd->lmax)
                hd->lmax = day;
        if (hd->nlook == 1 || day < hd->lmin)
                hd->lmin = day;
        while (dh_hdr(*f)->nlook > (uint32_t)p->max_items) {
                const dh_look_t *look = dh_look(*f);
                uint32_t n = dh_hdr(*f)->nlook, old = 0;
                for (uint32_t j = 1; j < n; j++) /* hash order: first min */
                        if (look[j].day < look[old].day)
                                old = j;
                enc_flat_cut(f,
                             sizeof(dh_hdr_t) + (size_t)old * sizeof(dh_look_t),
                             sizeof(dh_look_t));
                dh_hdr(*f)->nlook--;
                dh_look_bounds(*f);
        }
        return ENC_OK;
}

/* ---- the open discoveries -------------------------------------------- */

/* Up to this many open discoveries, dh_disc_find compares hashes. */
#define DH_DISC_SCAN 16

/* The index of the discovery of @p item, or -(insertion point) - 1, by a
 * binary search in item order. */
static int64_t dh_disc_search(const dh_priv_t *p, enc_flat_t *f,
                              const char *item) {
        int64_t lo = 0, hi = (int64_t)dh_hdr(f)->ndisc - 1;
        while (lo <= hi) {
                int64_t mid = lo + (hi - lo) / 2;
                const dh_disc_t *d = dh_disc(p, f, (uint32_t)mid);
                int c = strcmp(dh_item(p, f, d), item);
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
static int64_t dh_disc_find(const dh_priv_t *p, enc_flat_t *f, const char *item,
                            uint64_t h) {
        uint32_t n = dh_hdr(f)->ndisc;
        if (n > DH_DISC_SCAN) {
                int64_t i = dh_disc_search(p, f, item);
                return i >= 0 ? i : -1;
        }
        for (uint32_t i = 0; i < n; i++) {
                const dh_disc_t *d = dh_disc(p, f, i);
                if (d->h == h && !strcmp(dh_item(p, f, d), item))
                        return i;
        }
        return -1;
}

/* Recomputes dmin after discoveries went (0 with none: canonical). */
static void dh_disc_bounds(const dh_priv_t *p, enc_flat_t *f) {
        dh_hdr_t *hd = dh_hdr(f);
        hd->dmin = 0;
        for (uint32_t i = 0; i < hd->ndisc; i++) {
                int64_t d0 = dh_disc(p, f, i)->d0;
                if (!i || d0 < hd->dmin)
                        hd->dmin = d0;
        }
}

/* Adds @p delta to the string offsets of the entries from @p from on. */
static void dh_disc_shift(const dh_priv_t *p, enc_flat_t *f, uint32_t from,
                          uint32_t delta, bool down) {
        uint32_t n = dh_hdr(f)->ndisc;
        for (uint32_t j = from; j < n; j++) {
                dh_disc_t *d = dh_disc(p, f, j);
                d->soff = down ? d->soff - delta : d->soff + delta;
        }
}

/* Opens discovery @p i (its insertion point in item order) of @p item on
 * @p day, with day 0 engaged and seq 0; the caller emits. Its strings go
 * where entry i's were (or at the end), so the area stays in entry order.
 * ENC_ERR_NOMEM leaves the state as it was. */
static enc_err_t dh_disc_open(const dh_priv_t *p, enc_flat_t **f, uint32_t i,
                              uint64_t h, int64_t day, const char *const s[3],
                              const size_t sl[3]) {
        uint32_t len[3];
        for (int k = 0; k < 3; k++)
                len[k] = s[k] ? (uint32_t)sl[k] + 1 : 0;
        uint32_t total = len[0] + len[1] + len[2];
        uint32_t soff = i < dh_hdr(*f)->ndisc
                                ? dh_disc(p, *f, i)->soff
                                : (uint32_t)((*f)->len - dh_strs_off(p, *f));
        size_t at = dh_strs_off(p, *f) + soff;
        uint8_t *w = enc_flat_insert(f, at, total);
        if (!w)
                return ENC_ERR_NOMEM;
        for (int k = 0; k < 3; k++) {
                if (!s[k])
                        continue;
                memcpy(w, s[k], sl[k]); /* the NUL: insert zeroed the gap */
                w += len[k];
        }
        uint8_t *gap = enc_flat_insert(
                f, dh_disc_off(*f) + (size_t)i * p->esize, p->esize);
        if (!gap) {
                enc_flat_cut(f, at, total);
                return ENC_ERR_NOMEM;
        }
        dh_disc_t *d = (dh_disc_t *)(void *)gap;
        d->h = h;
        d->d0 = (int32_t)day;
        d->ilen = (uint16_t)len[0];
        d->rlen = (uint16_t)len[1];
        d->clen = (uint16_t)len[2];
        d->soff = soff;
        d->bits[0] = 1; /* day 0 */
        dh_hdr_t *hd = dh_hdr(*f);
        hd->ndisc++;
        dh_disc_shift(p, *f, i + 1, total, false);
        if (hd->ndisc == 1 || day < hd->dmin)
                hd->dmin = day;
        return ENC_OK;
}

/* Closes discovery @p i: its entry and its strings go. */
static void dh_disc_close(const dh_priv_t *p, enc_flat_t **f, uint32_t i) {
        const dh_disc_t *d = dh_disc(p, *f, i);
        uint32_t total = dh_slen(d);
        enc_flat_cut(f, dh_strs_off(p, *f) + d->soff, total);
        enc_flat_cut(f, dh_disc_off(*f) + (size_t)i * p->esize, p->esize);
        dh_hdr(*f)->ndisc--;
        dh_disc_shift(p, *f, i, total, true);
        dh_disc_bounds(p, *f);
}

static int dh_disc_days(const dh_priv_t *p, const dh_disc_t *d) {
        int n = 0;
        for (int k = 0; k < p->words; k++)
                n += __builtin_popcountll(d->bits[k]);
        return n;
}

/* Emits an update of discovery @p i; its strings are borrowed from the
 * block for the call. */
static enc_err_t dh_emit(const dh_priv_t *p, enc_flat_t *f, uint32_t i,
                         double delta, int64_t observed, int64_t event_time,
                         bool final, enc_emitter_t *em) {
        dh_disc_t *d = dh_disc(p, f, i);
        const char *s = dh_item(p, f, d);
        enc_update_t up;
        memset(&up, 0, sizeof(up));
        up.subject = s;
        up.recommendation_id = d->rlen ? s + d->ilen : NULL;
        up.cohort = d->clen ? s + d->ilen + d->rlen : NULL;
        up.window_start = enc_day_start(d->d0);
        up.window_end = enc_day_start(d->d0 + p->horizon);
        up.value = dh_disc_days(p, d);
        up.delta = delta;
        up.observed_days = (int32_t)observed;
        up.horizon_days = (int32_t)p->horizon;
        up.final = final;
        up.event_time = event_time;
        up.sequence = ++d->seq;
        return enc_emit(em, &up);
}

/* ---- the callbacks ---------------------------------------------------- */

static int64_t dh_next_timer(void *priv, const void *state) {
        const dh_priv_t *p = priv;
        if (!state)
                return ENC_NO_TIMER;
        const dh_hdr_t *hd = dh_chdr(state);
        if (hd->ndisc > 0)
                return enc_day_start(hd->dmin + p->horizon);
        /* An entry of day d matters to plays up to day d + L. */
        return hd->nlook ? enc_day_start(hd->lmax + p->lookback + 1)
                         : ENC_NO_TIMER;
}

/* Emits and closes every discovery whose horizon ended at or before
 * @p now, in time order (then item order), prunes the lookback map to
 * what plays from @p now on can need, and frees an empty state. */
static enc_err_t dh_advance(const dh_priv_t *p, enc_flat_t **f, int64_t now,
                            enc_emitter_t *em) {
        /* Finals are due from enc_day_start(dmin + H) on; in time order,
         * then item order (the entries'), as the first of the smallest d0
         * comes first. */
        while (dh_hdr(*f)->ndisc > 0 &&
               enc_day_start(dh_hdr(*f)->dmin + p->horizon) <= now) {
                int64_t dmin = dh_hdr(*f)->dmin;
                uint32_t best = 0;
                while (dh_disc(p, *f, best)->d0 != dmin)
                        best++;
                int64_t t = enc_day_start(dmin + p->horizon);
                enc_err_t err =
                        dh_emit(p, *f, best, 0, p->horizon, t, true, em);
                if (err)
                        return err;
                dh_disc_close(p, f, best);
        }
        dh_prune(f, enc_day_of(now) - p->lookback);
        if (dh_hdr(*f)->ndisc == 0 && dh_hdr(*f)->nlook == 0) {
                enc_flat_free(*f);
                *f = NULL;
        }
        return ENC_OK;
}

static enc_err_t dh_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        enc_flat_t *f = *state;
        if (!f)
                return ENC_OK;
        enc_err_t err = dh_advance(priv, &f, now, em);
        *state = f;
        return err;
}

/* True if a discovery's strings fit the entry's 16-bit lengths. Validated
 * events keep ids and labels far below (ENC_ID_MAX, ENC_LABEL_MAX); a
 * longer one is no discovery rather than a wrapped length. */
static bool dh_fits(size_t ilen, const char *rec, const char *cohort) {
        return ilen < UINT16_MAX && (!rec || strlen(rec) < UINT16_MAX) &&
               (!cohort || strlen(cohort) < UINT16_MAX);
}

static enc_err_t dh_event(const dh_priv_t *p, enc_flat_t **f,
                          const enc_event_t *ev, enc_emitter_t *em) {
        const char *item = p->by_track ? ev->track_id : ev->artist_id;
        int64_t day = enc_day_of(ev->event_time);
        enc_err_t err;

        if (*f) {
                /* A no-op under the engine, which has run every timer due
                 * before this event; keeps the definition whole otherwise. */
                err = dh_advance(p, f, ev->event_time, em);
                if (err)
                        return err;
        }
        if (ev->ms_played < p->qualified_ms || !item || !*item)
                return ENC_OK;
        size_t ilen = strlen(item);
        uint64_t h = dh_hash(item, ilen);
        if (!*f) {
                if (!(*f = enc_flat_new(sizeof(dh_hdr_t))))
                        return ENC_ERR_NOMEM;
                dh_hdr(*f)->ver = DH_STATE_V3;
                dh_hdr(*f)->words = (uint8_t)p->words;
        }
        /* Afterwards every entry left is a play within the lookback. */
        dh_prune(f, day - p->lookback);

        int64_t di = dh_disc_find(p, *f, item, h);
        if (di >= 0) {
                dh_disc_t *d = dh_disc(p, *f, (uint32_t)di);
                int64_t i = day - d->d0;
                if (i > 0 && i < p->horizon &&
                    !(d->bits[i / 64] >> (i % 64) & 1)) {
                        d->bits[i / 64] |= (uint64_t)1 << (i % 64);
                        err = dh_emit(p, *f, (uint32_t)di, 1, i, ev->event_time,
                                      false, em);
                        if (err)
                                return err;
                }
        } else if (ev->source == ENC_SRC_RECOMMENDATION &&
                   dh_look_search(*f, h) < 0 &&
                   dh_hdr(*f)->ndisc < (uint32_t)p->max_items &&
                   dh_fits(ilen, ev->recommendation_id, ev->cohort)) {
                const char *s[3] = {item, ev->recommendation_id, ev->cohort};
                size_t sl[3] = {ilen, s[1] ? strlen(s[1]) : 0,
                                s[2] ? strlen(s[2]) : 0};
                /* Where it goes in item order. */
                uint32_t at = (uint32_t)(-dh_disc_search(p, *f, item) - 1);
                err = dh_disc_open(p, f, at, h, day, s, sl);
                if (!err)
                        err = dh_emit(p, *f, at, 1, 0, ev->event_time, false,
                                      em);
                if (err)
                        return err;
        }
        return dh_look_touch(p, f, h, day);
}

static enc_err_t dh_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        enc_flat_t *f = *state;
        enc_err_t err = dh_event(priv, &f, ev, em);
        *state = f;
        return err;
}

/* ---- state records ----------------------------------------------------
 * v3: the block (above). Decoding checks every byte of it against the
 * instance, then copies it; a record whose bitmaps are another width
 * (written under another horizon.days) is re-laid to this instance's.
 * v2 (read only): u8 2,
 *     varint nlook, nlook x (u64be hash, svarint day)  sorted by hash,
 *     varint ndisc, ndisc x (str item, str rec, str cohort, svarint d0,
 *                            varint seq, daybits)       sorted by item.
 * v1 (read only): the same with each lookback entry (str item, svarint
 * day), sorted by item; read by hashing the ids.
 * v1 and v2 are parsed into a v3 block, so a store written by an earlier
 * build migrates as its users are loaded. */

/* strcmp's order on two strings without NUL given by bytes and length. */
static int dh_bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
        int c = memcmp(a, b, al < bl ? al : bl);
        return c ? c : (al > bl) - (al < bl);
}

/* True if the bits of @p d past the horizon are clear and day 0 is set. */
static bool dh_bits_ok(const dh_priv_t *p, const uint64_t *bits, int words) {
        if (!(bits[0] & 1))
                return false;
        for (int k = 0; k < words; k++) {
                int64_t lo = (int64_t)k * 64; /* day index of bit 0 */
                uint64_t allowed =
                        p->horizon <= lo ? 0
                        : p->horizon - lo >= 64
                                ? ~(uint64_t)0
                                : ((uint64_t)1 << (p->horizon - lo)) - 1;
                if (bits[k] & ~allowed)
                        return false;
        }
        return true;
}

/* True if the @p n bytes at @p s are a stored string: at most @p max
 * bytes, its NUL last, valid as enc_sig_str_ok checks. */
static bool dh_str_ok(const uint8_t *s, uint32_t n, size_t max) {
        return n >= 1 && n - 1 <= max && s[n - 1] == '\0' &&
               enc_sig_str_ok(s, n - 1);
}

/* Checks the v3 block @p f (untrusted bytes) against the instance, with
 * bitmaps of @p words words. */
static bool dh_check(const dh_priv_t *p, enc_flat_t *f, int words) {
        const dh_hdr_t *hd = dh_chdr(f);
        size_t esize = sizeof(dh_disc_t) + (size_t)words * sizeof(uint64_t);
        if (hd->ver != DH_STATE_V3 || hd->zero16 || hd->zero32 ||
            hd->nlook > (uint32_t)p->max_items ||
            hd->ndisc > (uint32_t)p->max_items ||
            (hd->nlook == 0 && hd->ndisc == 0)) /* would never expire */
                return false;
        size_t soff = sizeof(dh_hdr_t) + (size_t)hd->nlook * sizeof(dh_look_t) +
                      (size_t)hd->ndisc * esize; /* caps keep it small */
        if (soff > f->len)
                return false;
        const dh_look_t *look = dh_look(f);
        int64_t lmin = 0, lmax = 0;
        for (uint32_t i = 0; i < hd->nlook; i++) {
                if (!enc_sig_day_ok(look[i].day) ||
                    (i && look[i - 1].h >= look[i].h))
                        return false;
                if (!i || look[i].day < lmin)
                        lmin = look[i].day;
                if (!i || look[i].day > lmax)
                        lmax = look[i].day;
        }
        if (hd->lmin != lmin || hd->lmax != lmax)
                return false;
        const uint8_t *strs = f->d + soff;
        uint32_t sbytes = (uint32_t)(f->len - soff), run = 0;
        const char *prev = NULL;
        int64_t dmin = 0;
        for (uint32_t i = 0; i < hd->ndisc; i++) {
                const dh_disc_t *d =
                        (const dh_disc_t
                                 *)(const void *)(f->d + sizeof(dh_hdr_t) +
                                                  (size_t)hd->nlook *
                                                          sizeof(dh_look_t) +
                                                  (size_t)i * esize);
                uint32_t total = dh_slen(d);
                if (!enc_sig_day_ok(d->d0) || d->seq < 1 ||
                    d->seq > p->horizon + 1 || d->soff != run ||
                    total > sbytes - run || d->ilen < 2 ||
                    !dh_str_ok(strs + run, d->ilen, ENC_ID_MAX) ||
                    (d->rlen &&
                     !dh_str_ok(strs + run + d->ilen, d->rlen, ENC_ID_MAX)) ||
                    (d->clen && !dh_str_ok(strs + run + d->ilen + d->rlen,
                                           d->clen, ENC_LABEL_MAX)) ||
                    !dh_bits_ok(p, d->bits, words))
                        return false;
                const char *item = (const char *)strs + run;
                if ((prev && strcmp(prev, item) >= 0) ||
                    d->h != dh_hash(item, d->ilen - 1u))
                        return false;
                if (!i || d->d0 < dmin)
                        dmin = d->d0;
                prev = item;
                run += total;
        }
        return run == sbytes && hd->dmin == dmin;
}

/* A copy of the checked block @p f, whose bitmaps have @p words words,
 * with this instance's width (the extra words are zero: checked). */
static enc_flat_t *dh_rewiden(const dh_priv_t *p, enc_flat_t *f, int words) {
        const dh_hdr_t *hd = dh_chdr(f);
        size_t oldsize = sizeof(dh_disc_t) + (size_t)words * sizeof(uint64_t);
        size_t doff = dh_disc_off(f);
        size_t soff = doff + (size_t)hd->ndisc * oldsize;
        size_t sbytes = f->len - soff;
        enc_flat_t *g =
                enc_flat_new(doff + (size_t)hd->ndisc * p->esize + sbytes);
        if (!g)
                return NULL;
        memcpy(g->d, f->d, doff);
        dh_hdr(g)->words = (uint8_t)p->words;
        size_t keep = oldsize < p->esize ? oldsize : p->esize;
        for (uint32_t i = 0; i < hd->ndisc; i++)
                memcpy(g->d + doff + (size_t)i * p->esize,
                       f->d + doff + (size_t)i * oldsize, keep);
        memcpy(g->d + doff + (size_t)hd->ndisc * p->esize, f->d + soff, sbytes);
        return g;
}

/* What a pass over a v1/v2 record found. */
typedef struct dh_old_s {
        uint32_t nlook, ndisc; /* entries as stored (v1: before merging) */
        uint32_t sbytes;       /* the string area they need */
} dh_old_t;

/* Reads a v1 or v2 record. With @p f NULL, checks it and counts into
 * @p c; then, with @p f a zeroed block laid out for @p c, writes the
 * entries and strings (lookback entries in stored order, v1's hashed). */
static bool dh_old_pass(const dh_priv_t *p, const uint8_t *buf, size_t len,
                        enc_flat_t *f, dh_old_t *c) {
        const uint8_t *q = buf + 1, *end = buf + len;
        uint8_t ver = buf[0];
        uint64_t n;
        const char *prev = NULL;
        size_t prevlen = 0;
        uint64_t prevh = 0;
        /* Counts are checked against the cap and against the bytes left
         * (each entry takes at least two) before anything is counted. */
        if (!enc_get_varint(&q, end, &n) || n > (uint64_t)p->max_items ||
            n > (uint64_t)(end - q) / 2)
                return false;
        c->nlook = (uint32_t)n;
        for (uint32_t i = 0; i < c->nlook; i++) {
                uint64_t h;
                int64_t day;
                if (ver == ENC_SIG_STATE_V1) {
                        const char *s;
                        size_t sl;
                        if (!enc_sig_strref_get(&q, end, ENC_ID_MAX, &s, &sl) ||
                            !s || !sl || !enc_get_svarint(&q, end, &day) ||
                            !enc_sig_day_ok(day))
                                return false;
                        /* strictly increasing, as v1 wrote them */
                        if (prev && dh_bytes_cmp(prev, prevlen, s, sl) >= 0)
                                return false;
                        prev = s, prevlen = sl;
                        h = f ? dh_hash(s, sl) : 0;
                } else {
                        if (!enc_get_u64be(&q, end, &h) ||
                            !enc_get_svarint(&q, end, &day) ||
                            !enc_sig_day_ok(day) || (i && prevh >= h))
                                return false;
                        prevh = h;
                }
                if (f)
                        dh_look(f)[i] = (dh_look_t){h, day};
        }
        if (!enc_get_varint(&q, end, &n) || n > (uint64_t)p->max_items ||
            n > (uint64_t)(end - q) / 6)
                return false;
        c->ndisc = (uint32_t)n;
        uint32_t run = 0;
        prev = NULL;
        for (uint32_t i = 0; i < c->ndisc; i++) {
                const char *s[3];
                size_t sl[3];
                int64_t d0;
                uint64_t seq;
                enc_daybits_t days;
                if (!enc_sig_strref_get(&q, end, ENC_ID_MAX, &s[0], &sl[0]) ||
                    !s[0] || !sl[0] ||
                    !enc_sig_strref_get(&q, end, ENC_ID_MAX, &s[1], &sl[1]) ||
                    !enc_sig_strref_get(&q, end, ENC_LABEL_MAX, &s[2],
                                        &sl[2]) ||
                    (prev && dh_bytes_cmp(prev, prevlen, s[0], sl[0]) >= 0) ||
                    !enc_get_svarint(&q, end, &d0) || !enc_sig_day_ok(d0) ||
                    !enc_get_varint(&q, end, &seq) || seq < 1 ||
                    seq > (uint64_t)p->horizon + 1)
                        return false;
                prev = s[0], prevlen = sl[0];
                days.base = d0;
                /* Day 0 is always engaged; nothing past the horizon is. */
                if (!enc_daybits_get(&q, end, &days) ||
                    !enc_daybits_has(&days, d0) ||
                    enc_daybits_last(&days) >= d0 + p->horizon)
                        return false;
                uint32_t sb[3];
                for (int k = 0; k < 3; k++)
                        sb[k] = s[k] ? (uint32_t)sl[k] + 1 : 0;
                if (f) {
                        dh_disc_t *d = dh_disc(p, f, i);
                        uint8_t *w = f->d + dh_strs_off(p, f) + run;
                        d->h = dh_hash(s[0], sl[0]);
                        d->d0 = (int32_t)d0;
                        d->seq = (uint16_t)seq;
                        d->ilen = (uint16_t)sb[0];
                        d->rlen = (uint16_t)sb[1];
                        d->clen = (uint16_t)sb[2];
                        d->soff = run;
                        /* the span is [d0, d0 + H): within W words */
                        memcpy(d->bits, days.w,
                               (size_t)p->words * sizeof(uint64_t));
                        for (int k = 0; k < 3; k++) {
                                if (s[k])
                                        memcpy(w, s[k], sl[k]); /* NUL: 0 */
                                w += sb[k];
                        }
                }
                run += sb[0] + sb[1] + sb[2];
        }
        c->sbytes = run;
        return q == end && (c->nlook > 0 || c->ndisc > 0);
}

static int dh_look_cmp(const void *a, const void *b) {
        uint64_t x = ((const dh_look_t *)a)->h, y = ((const dh_look_t *)b)->h;
        return (x > y) - (x < y);
}

/* Parses a v1 or v2 record into a v3 block (*fp); false if corrupt,
 * true with *fp NULL when out of memory. */
static bool dh_decode_old(const dh_priv_t *p, const uint8_t *buf, size_t len,
                          enc_flat_t **fp) {
        dh_old_t c;
        *fp = NULL;
        if (!dh_old_pass(p, buf, len, NULL, &c))
                return false;
        enc_flat_t *f = enc_flat_new(sizeof(dh_hdr_t) +
                                     (size_t)c.nlook * sizeof(dh_look_t) +
                                     (size_t)c.ndisc * p->esize + c.sbytes);
        if (!f)
                return true;
        dh_hdr_t *hd = dh_hdr(f);
        hd->ver = DH_STATE_V3;
        hd->words = (uint8_t)p->words;
        hd->nlook = c.nlook;
        hd->ndisc = c.ndisc;
        (void)dh_old_pass(p, buf, len, f, &c); /* checked above */
        if (buf[0] == ENC_SIG_STATE_V1 && c.nlook) {
                /* v1 was sorted by id: sort by hash; two ids of one hash
                 * keep the later day. */
                dh_look_t *look = dh_look(f);
                qsort(look, c.nlook, sizeof(*look), dh_look_cmp);
                uint32_t w = 0;
                for (uint32_t i = 0; i < c.nlook; i++) {
                        if (w && look[w - 1].h == look[i].h) {
                                if (look[i].day > look[w - 1].day)
                                        look[w - 1].day = look[i].day;
                                continue;
                        }
                        look[w++] = look[i];
                }
                dh_look_truncate(&f, w);
        }
        dh_look_bounds(f);
        dh_disc_bounds(p, f);
        *fp = f;
        return true;
}

static enc_err_t dh_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        const dh_priv_t *p = priv;
        enc_flat_t *f;

        *statep = NULL;
        if (len < 1)
                return ENC_ERR_CORRUPT;
        if (buf[0] == ENC_SIG_STATE_V1 || buf[0] == DH_STATE_V2) {
                if (!dh_decode_old(p, buf, len, &f))
                        return ENC_ERR_CORRUPT;
                if (!f)
                        return ENC_ERR_NOMEM;
                *statep = f;
                return ENC_OK;
        }
        /* The width of the bitmaps comes from the record: a horizon of 1 to
         * 366 days takes 1 to 6 words. Its bytes are copied (aligned) and
         * checked in the copy: len is the record's, bounded by the store. */
        if (buf[0] != DH_STATE_V3 || len < sizeof(dh_hdr_t) ||
            len > ENC_FLAT_MAX || buf[1] < 1 || buf[1] > ENC_DAYBITS_WORDS)
                return ENC_ERR_CORRUPT;
        int words = buf[1];
        if (!(f = enc_flat_copy(buf, len)))
                return ENC_ERR_NOMEM;
        if (!dh_check(p, f, words)) {
                enc_flat_free(f);
                return ENC_ERR_CORRUPT;
        }
        if (words != p->words) {
                enc_flat_t *g = dh_rewiden(p, f, words);
                enc_flat_free(f);
                if (!g)
                        return ENC_ERR_NOMEM;
                f = g;
        }
        *statep = f;
        return ENC_OK;
}

static enc_err_t dh_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        (void)priv;
        return enc_flat_encode(state, out);
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
