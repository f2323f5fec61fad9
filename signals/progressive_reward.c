/*
 * progressive_reward.c -- an early estimate of a discovery's final
 * discovery_habit value, sharpened day by day.
 *
 * DESIGN
 * Definition (version 1). A derived signal: it follows the discovery_habit
 * instance of version source.version, learning from that instance's
 * updates (delivered to on_update because it runs earlier in the same
 * step): a non-final update on day D0 opens a discovery (key: subject and
 * window_start, i.e. item and D0), and a non-final update on day D0+d
 * (event_time's day) marks trace day z_d = 1. Day 0 is always 1.
 * Final discovery_habit updates are ignored; this signal's own timer ends
 * the discovery at the same moment.
 *   When the watermark reaches T = enc_day_start(D0 + k), k = 1..H, days
 * 0..k-1 are fully observed and one update is emitted:
 *   value = estimate_mean = E[S | z_0..z_{k-1}], estimate_variance =
 *   Var[S | z_0..z_{k-1}], has_estimate, under the prior N(mu, C) (see
 *   prior.c for the formula and for how day 0's zero variance is handled),
 *   observed_days = k, horizon_days = H, subject / recommendation_id /
 *   cohort of the discovery, window [enc_day_start(D0),
 *   enc_day_start(D0+H)), event_time = T, sequence = k,
 *   delta = value - the k-1 estimate (the first: delta = value),
 *   final = (k == H), where the mean is the actual sum and the variance 0.
 * A watermark that jumps several days emits every day's update, each with
 * its own T, in time order across discoveries (ties in key order).
 *
 * The prior comes from prior.file (empty: the default built into the
 * binary); its horizon must equal the followed instance's horizon.days or
 * init fails naming both keys. All O(H^3) work happens at init
 * (enc_gfilter_new); an update is O(H).
 *
 * State: one flat block (base/flat.h), whose bytes are the stored form
 * (record version 2; layout below, at the records). It holds, per open
 * discovery, its trace bitmap and the next k to emit, sorted by (item,
 * D0), and the strings of each discovery in one area after the entries.
 * The previous estimate is recomputed for delta rather than stored: it is
 * a function of the trace prefix and the prior. A discovery this instance
 * did not see open (say, the instance was added mid-flight) is ignored.
 * Open discoveries are capped at the followed instance's max.items.
 *   Why flat: a cached user costs its stored size (the block), where
 * the version 1 state took a header, an array of entries with bitmaps
 * sized for 384 days whatever the horizon and a block of strings per
 * discovery; loading is a check and a copy, writing back a copy. Marking
 * a day or emitting allocates nothing; opening a discovery grows the block
 * (flat.h keeps some room), closing one moves the bytes after it down.
 * The price is in the store: fixed-width entries take more bytes than
 * version 1's varints (about 65 bytes a discovery against 40 in the fuzz
 * seeds). An update's strings point into the block, borrowed for the
 * enc_emit call only: the next edit of the block may move it.
 *
 * Never: emit for a day that is not fully observed, or read a clock; keep
 * a pointer into the block across an edit of it.
 */
#include <stdio.h>

#include "daybits.h"
#include "flat.h"
#include "prior.h"
#include "sigpriv.h"

/* The record version of the flat layout; ENC_SIG_STATE_V1 (sigpriv.h)
 * is the older varint form, still read. */
#define PR_STATE_V2 2
/* A length of an absent string (rec, cohort): NULL, not "". */
#define PR_ABSENT UINT16_MAX
/* Bitmap words of an entry at the largest horizon. */
#define PR_W_MAX ((ENC_PRIOR_H_MAX + 63) / 64)

typedef struct pr_priv_s {
        int h;
        int w;        /* bitmap words of an entry: ceil(h / 64) */
        size_t esize; /* bytes of an entry: sizeof(pr_ent_t) + 8 w */
        int32_t src_version;
        int max_open;
        enc_gfilter_t *filter;
} pr_priv_t;

/* The block: a pr_hdr_t, n pr_ent_t of esize bytes each, sorted by
 * (item, d0), then the string area: for each entry in order its item,
 * recommendation id and cohort, each present one with its NUL, nothing
 * else. Every field is little-endian (flat.h), fixed-width and 8-aligned
 * within the block; padding is zero. So the bytes are a function of the
 * logical state, whatever edits led to it. */
typedef struct pr_hdr_s {
        uint8_t ver;     /* PR_STATE_V2 */
        uint8_t words;   /* bitmap words of each entry (pr_priv_t.w of the
                            instance that wrote it) */
        uint16_t pad0;   /* zero */
        uint32_t n;      /* open discoveries, 1..max_open */
        uint32_t sbytes; /* bytes of the string area */
        uint32_t pad1;   /* zero */
        int64_t next;    /* the smallest pr_due() of the entries: next_timer,
                            kept so no callback scans them per event */
} pr_hdr_t;

typedef struct pr_ent_s {
        int64_t d0;
        uint32_t k_next; /* next prefix length to emit, 1..H */
        uint32_t soff;   /* the item's offset in the string area; the
                            recommendation id and cohort follow it */
        uint16_t len[3]; /* item, rec, cohort, without NUL; PR_ABSENT */
        uint16_t pad;    /* zero */
        uint64_t z[];    /* w words: bit j = day d0 + j engaged */
} pr_ent_t;

_Static_assert(sizeof(pr_hdr_t) == 24 && sizeof(pr_ent_t) == 24 &&
                       offsetof(pr_ent_t, z) == 24,
               "fixed-width, 8-aligned fields");

static const enc_cfg_key_t pr_keys[] = {
        {.name = "source.version",
         .type = ENC_CFG_INT,
         .def = "1",
         .desc = "Version of the discovery_habit instance whose discoveries "
                 "are "
                 "followed",
         .min = 1,
         .max = INT32_MAX},
        {.name = "prior.file",
         .type = ENC_CFG_STR,
         .def = "",
         .desc = "Prior JSON (encore-fit-prior writes one); empty = the "
                 "built-in default"},
        {NULL},
};

static int pr_depends(const enc_sigconf_t *sc, enc_sig_ref_t *refs, int max,
                      char *errstr, size_t errstr_size) {
        if (max < 1)
                return 0;
        snprintf(refs[0].name, sizeof(refs[0].name), "discovery_habit");
        refs[0].version = (int32_t)enc_sigconf_int(sc, "source.version");
        refs[0].key = "source.version";
        return 1;
}

static void pr_destroy(void *priv) {
        pr_priv_t *p = priv;
        if (!p)
                return;
        enc_gfilter_destroy(p->filter);
        free(p);
}

static enc_err_t pr_init(const enc_sigconf_t *sc, void **privp, char *errstr,
                         size_t errstr_size) {
        enc_sigconf_t src;
        enc_prior_t *prior = NULL;
        char sub[256];
        enc_err_t err;
        pr_priv_t *p = calloc(1, sizeof(*p));

        if (!p)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "%s: out of memory", sc->prefix);
        p->src_version = (int32_t)enc_sigconf_int(sc, "source.version");
        enc_sigconf_init(&src, sc->conf, "discovery_habit", p->src_version);
        int64_t src_h = enc_sigconf_int(&src, "horizon.days");
        p->max_open = (int)enc_sigconf_int(&src, "max.items");

        err = enc_prior_load(enc_sigconf_get(sc, "prior.file"), &prior, sub,
                             sizeof(sub));
        if (err) {
                enc_seterr(errstr, errstr_size, err, "%sprior.file: %s",
                           sc->prefix, sub);
                goto fail;
        }
        if (prior->horizon != src_h) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                 "%sprior.file: the prior's horizon_days %d "
                                 "differs from %shorizon.days = %lld (expected "
                                 "a prior fitted for that horizon)",
                                 sc->prefix, prior->horizon, src.prefix,
                                 (long long)src_h);
                goto fail;
        }
        err = enc_gfilter_new(prior, &p->filter, sub, sizeof(sub));
        if (err) {
                enc_seterr(errstr, errstr_size, err, "%sprior.file: %s",
                           sc->prefix, sub);
                goto fail;
        }
        p->h = prior->horizon;
        p->w = (p->h + 63) / 64;
        p->esize = sizeof(pr_ent_t) + 8 * (size_t)p->w;
        enc_prior_destroy(prior);
        *privp = p;
        return ENC_OK;
fail:
        enc_prior_destroy(prior);
        pr_destroy(p);
        return err;
}


/* ---- the block ---------------------------------------------------------
 * Accessors take the block as const and hand back mutable pointers (as
 * strchr does): the callbacks that may edit get it through void **state.
 * Every pointer they return is stale after an edit that may move the
 * block (enc_flat_resize, enc_flat_cut): keep indexes and offsets. */

static pr_hdr_t *pr_hdr(const enc_flat_t *f) {
        return (pr_hdr_t *)(void *)f->d;
}

static pr_ent_t *pr_ent(const pr_priv_t *p, const enc_flat_t *f, uint32_t i) {
        return (pr_ent_t *)(void *)(f->d + sizeof(pr_hdr_t) +
                                    (size_t)i * p->esize);
}

/* The string area. */
static const char *pr_sarea(const pr_priv_t *p, const enc_flat_t *f) {
        return (const char *)f->d + sizeof(pr_hdr_t) +
               (size_t)pr_hdr(f)->n * p->esize;
}

/* Bytes of @p e's strings in the area. */
static size_t pr_ssize(const pr_ent_t *e) {
        size_t n = 0;
        for (int k = 0; k < 3; k++)
                n += e->len[k] == PR_ABSENT ? 0 : (size_t)e->len[k] + 1;
        return n;
}

/* String @p k of @p e (0 item, 1 rec, 2 cohort), NUL-terminated in the
 * block, or NULL when absent. Borrowed until the next edit. */
static const char *pr_str(const pr_priv_t *p, const enc_flat_t *f,
                          const pr_ent_t *e, int k) {
        if (e->len[k] == PR_ABSENT)
                return NULL;
        const char *s = pr_sarea(p, f) + e->soff;
        for (int j = 0; j < k; j++)
                s += e->len[j] == PR_ABSENT ? 0 : (size_t)e->len[j] + 1;
        return s;
}

static void pr_state_free(void *priv, void *state) {
        enc_flat_free(state);
}

static size_t pr_state_bytes(void *priv, const void *state) {
        return enc_flat_heap(state);
}

static int pr_cmp(const char *item, int64_t d0, const char *eitem,
                  int64_t ed0) {
        int c = strcmp(item, eitem);
        if (c)
                return c;
        return d0 < ed0 ? -1 : d0 > ed0;
}

/* Index of (item, d0), or -(insertion point) - 1. */
static int64_t pr_find(const pr_priv_t *p, const enc_flat_t *f,
                       const char *item, int64_t d0) {
        const char *s = pr_sarea(p, f);
        int64_t lo = 0, hi = (int64_t)pr_hdr(f)->n - 1;
        while (lo <= hi) {
                int64_t mid = lo + (hi - lo) / 2;
                const pr_ent_t *e = pr_ent(p, f, (uint32_t)mid);
                int c = pr_cmp(item, d0, s + e->soff, e->d0);
                if (!c)
                        return mid;
                if (c > 0)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        return -lo - 1;
}

static int64_t pr_due(const pr_ent_t *e) {
        return enc_day_start(e->d0 + (int64_t)e->k_next);
}

/* The smallest due of @p f's entries (ENC_NO_TIMER for none). */
static int64_t pr_min_due(const pr_priv_t *p, const enc_flat_t *f) {
        int64_t next = ENC_NO_TIMER;
        for (uint32_t i = 0; i < pr_hdr(f)->n; i++) {
                int64_t t = pr_due(pr_ent(p, f, i));
                if (t < next)
                        next = t;
        }
        return next;
}

static int64_t pr_next_timer(void *priv, const void *state) {
        const enc_flat_t *f = state;
        return f ? pr_hdr(f)->next : ENC_NO_TIMER;
}

static bool pr_has(const pr_ent_t *e, int j) {
        return (e->z[j / 64] >> (j % 64)) & 1;
}

static void pr_posterior(const pr_priv_t *p, const pr_ent_t *e, int k,
                         double *mean, double *var) {
        double z[ENC_PRIOR_H_MAX];
        for (int j = 0; j < k; j++)
                z[j] = pr_has(e, j) ? 1.0 : 0.0;
        enc_gfilter_posterior(p->filter, k, z, mean, var);
}

/* Emits @p e's update for its k_next; its strings point into @p f. */
static enc_err_t pr_emit(const pr_priv_t *p, const enc_flat_t *f,
                         const pr_ent_t *e, enc_emitter_t *em) {
        enc_update_t up;
        double mean, var, prev = 0, pvar;
        int k = (int)e->k_next;

        pr_posterior(p, e, k, &mean, &var);
        if (k == p->h) { /* fully observed: exact */
                int c = 0; /* no day at or past k_next is set */
                for (int j = 0; j < p->w; j++)
                        c += __builtin_popcountll(e->z[j]);
                mean = c;
                var = 0;
        }
        if (k > 1)
                pr_posterior(p, e, k - 1, &prev, &pvar);
        memset(&up, 0, sizeof(up));
        up.subject = pr_str(p, f, e, 0);
        up.recommendation_id = pr_str(p, f, e, 1);
        up.cohort = pr_str(p, f, e, 2);
        up.window_start = enc_day_start(e->d0);
        up.window_end = enc_day_start(e->d0 + p->h);
        up.value = mean;
        up.delta = mean - prev;
        up.has_estimate = true;
        up.estimate_mean = mean;
        up.estimate_variance = var;
        up.observed_days = k;
        up.horizon_days = p->h;
        up.final = k == p->h;
        up.event_time = pr_due(e);
        up.sequence = k;
        return enc_emit(em, &up);
}

/* Removes entry @p i of *@p fp (n > 1) and its strings. Never fails; the
 * block may move. */
static void pr_remove(const pr_priv_t *p, enc_flat_t **fp, uint32_t i) {
        enc_flat_t *f = *fp;
        pr_hdr_t *hd = pr_hdr(f);
        const pr_ent_t *e = pr_ent(p, f, i);
        size_t s = pr_ssize(e);
        size_t spos = sizeof(pr_hdr_t) + (size_t)hd->n * p->esize + e->soff;
        for (uint32_t j = i + 1; j < hd->n; j++)
                pr_ent(p, f, j)->soff -= (uint32_t)s;
        hd->n--;
        hd->sbytes -= (uint32_t)s;
        enc_flat_cut(fp, spos, s); /* the strings first: they come after */
        enc_flat_cut(fp, sizeof(pr_hdr_t) + (size_t)i * p->esize, p->esize);
}

/* Emits every day end due at or before @p now, earliest first. */
static enc_err_t pr_advance(const pr_priv_t *p, void **state, int64_t now,
                            enc_emitter_t *em) {
        enc_flat_t *f = *state;
        /* The first (in (item, d0) order) of the earliest due goes first. */
        while (pr_hdr(f)->next <= now) {
                pr_hdr_t *hd = pr_hdr(f);
                uint32_t best = 0;
                while (pr_due(pr_ent(p, f, best)) != hd->next)
                        best++;
                pr_ent_t *e = pr_ent(p, f, best);
                enc_err_t err = pr_emit(p, f, e, em);
                if (err)
                        return err;
                if (++e->k_next > (uint32_t)p->h) {
                        if (hd->n == 1) { /* the last: nothing left */
                                enc_flat_free(f);
                                *state = NULL;
                                return ENC_OK;
                        }
                        pr_remove(p, &f, best);
                        *state = f;
                }
                pr_hdr(f)->next = pr_min_due(p, f);
        }
        return ENC_OK;
}

static enc_err_t pr_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        return *state ? pr_advance(priv, state, now, em) : ENC_OK;
}

static enc_err_t pr_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        return ENC_OK; /* everything comes through on_update */
}

/* Opens discovery (@p up's strings, @p d0) as entry @p i of *@p state (a
 * new block when NULL): day 0 engaged, k_next 1. The block grows by the
 * entry and its strings, no other allocation. */
static enc_err_t pr_open(const pr_priv_t *p, void **state, uint32_t i,
                         const enc_update_t *up, int64_t d0) {
        const char *v[3] = {up->subject, up->recommendation_id, up->cohort};
        const size_t cap[3] = {ENC_ID_MAX, ENC_ID_MAX, ENC_LABEL_MAX};
        size_t l[3], s = 0;
        for (int k = 0; k < 3; k++) {
                l[k] = v[k] ? strlen(v[k]) : 0;
                s += v[k] ? l[k] + 1 : 0;
                /* What a stored state may hold (pr_decode_v2): always so
                 * for discovery_habit's strings, from validated events. */
                if (l[k] > cap[k])
                        return ENC_OK;
        }
        enc_flat_t *f = *state;
        uint32_t n = f ? pr_hdr(f)->n : 0;
        size_t old = f ? f->len : sizeof(pr_hdr_t);
        size_t soff = f ? (i < n ? pr_ent(p, f, i)->soff : pr_hdr(f)->sbytes)
                        : 0;
        if (!f) {
                if (!(f = enc_flat_new(old + p->esize + s)))
                        return ENC_ERR_NOMEM;
                pr_hdr(f)->ver = PR_STATE_V2;
                pr_hdr(f)->words = (uint8_t)p->w;
        } else if (!enc_flat_resize(&f, old + p->esize + s)) {
                return ENC_ERR_NOMEM;
        }
        *state = f;
        uint8_t *d = f->d;
        size_t eoff = sizeof(pr_hdr_t) + (size_t)i * p->esize;
        size_t spos = sizeof(pr_hdr_t) + (size_t)n * p->esize + soff;
        /* Strings from spos up by entry + strings, entries from i and the
         * strings before spos up by an entry. */
        memmove(d + spos + p->esize + s, d + spos, old - spos);
        memmove(d + eoff + p->esize, d + eoff, spos - eoff);
        pr_ent_t *e = pr_ent(p, f, i);
        memset(e, 0, p->esize);
        e->d0 = d0;
        e->k_next = 1;
        e->soff = (uint32_t)soff;
        e->z[0] = 1; /* day 0 */
        char *w = (char *)d + spos + p->esize;
        for (int k = 0; k < 3; k++) {
                e->len[k] = v[k] ? (uint16_t)l[k] : PR_ABSENT;
                if (!v[k])
                        continue;
                memcpy(w, v[k], l[k]);
                w[l[k]] = '\0';
                w += l[k] + 1;
        }
        pr_hdr_t *hd = pr_hdr(f);
        hd->n = n + 1;
        hd->sbytes += (uint32_t)s;
        for (uint32_t j = i + 1; j <= n; j++)
                pr_ent(p, f, j)->soff += (uint32_t)s;
        if (n == 0 || pr_due(e) < hd->next)
                hd->next = pr_due(e);
        return ENC_OK;
}

static enc_err_t pr_on_update(void *priv, void **state, const enc_update_t *up,
                              enc_emitter_t *em) {
        const pr_priv_t *p = priv;
        enc_err_t err;

        if (!enc_sig_streq(up->signal, "discovery_habit") ||
            up->signal_version != p->src_version || !up->subject ||
            up->horizon_days != p->h)
                return ENC_OK;
        if (*state) {
                /* Day ends before this update's time come first. */
                err = pr_advance(p, state, up->event_time, em);
                if (err)
                        return err;
        }
        if (up->final)
                return ENC_OK;
        int64_t d0 = enc_day_of(up->window_start);
        /* The trace day is the play's day (its observed_days counts the
         * days before it, so it would say the same). */
        int64_t didx = enc_day_of(up->event_time) - d0;
        if (didx < 0 || didx >= p->h)
                return ENC_OK;
        int idx = (int)didx;
        const enc_flat_t *f = *state;
        int64_t i = f ? pr_find(p, f, up->subject, d0) : -1;
        if (i >= 0) {
                pr_ent_t *e = pr_ent(p, f, (uint32_t)i);
                /* Only days not yet inside an emitted prefix. */
                if (idx >= (int)e->k_next - 1)
                        e->z[idx / 64] |= (uint64_t)1 << (idx % 64);
                return ENC_OK;
        }
        if (idx != 0)
                return ENC_OK; /* a discovery opened before we saw it */
        if (f && pr_hdr(f)->n >= (uint32_t)p->max_open)
                return ENC_OK; /* at the cap: not followed */
        return pr_open(p, state, (uint32_t)(-i - 1), up, d0);
}

/* ---- state records ----------------------------------------------------
 * v2: the block (pr_hdr_t and the layout above it), checked byte by byte
 *     and copied; a record of another bitmap width (written before
 *     horizon.days moved across a multiple of 64) is read into this one's.
 * v1: u8 1, varint n, n x (str item, str rec, str cohort, svarint d0,
 *     varint k_next, daybits z), sorted by (item, d0). Read into a block:
 *     a store migrates as its users load and are written back. */

static enc_err_t pr_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        return enc_flat_encode(state, out);
}

/* strcmp's order of two strings without NUL, of lengths @p al, @p bl. */
static int pr_bytecmp(const char *a, size_t al, const char *b, size_t bl) {
        int c = memcmp(a, b, al < bl ? al : bl);
        if (c)
                return c;
        return al < bl ? -1 : al > bl;
}

/* Bits of word @p j of a bitmap that stand for days below @p k. */
static uint64_t pr_below(int j, uint32_t k) {
        if (k >= 64 * (uint32_t)(j + 1))
                return ~(uint64_t)0;
        if (k <= 64 * (uint32_t)j)
                return 0;
        return ((uint64_t)1 << (k - 64 * (uint32_t)j)) - 1;
}

/* A block with @p p's bitmap width from a checked version 2 record of
 * @p words bitmap words: a record written under another horizon (its
 * days all below k_next <= H, so they fit either width). */
static enc_flat_t *pr_rewidth(const pr_priv_t *p, const uint8_t *buf,
                              size_t len, int words) {
        pr_hdr_t h;
        memcpy(&h, buf, sizeof(h));
        size_t esize = sizeof(pr_ent_t) + 8 * (size_t)words;
        size_t keep = 8 * (size_t)(words < p->w ? words : p->w);
        size_t ents = (size_t)h.n * esize;
        enc_flat_t *f = enc_flat_new(sizeof(h) + (size_t)h.n * p->esize +
                                     (len - sizeof(h) - ents));
        if (!f)
                return NULL;
        h.words = (uint8_t)p->w;
        memcpy(f->d, &h, sizeof(h));
        for (uint32_t i = 0; i < h.n; i++)
                memcpy(pr_ent(p, f, i), buf + sizeof(h) + (size_t)i * esize,
                       sizeof(pr_ent_t) + keep);
        memcpy((char *)pr_sarea(p, f), buf + sizeof(h) + ents,
               len - sizeof(h) - ents);
        return f;
}

/* Checks a version 2 record; copies it into a block when it is sound. The
 * record is read through memcpy (it need not be aligned) before it is
 * copied: nothing is allocated for bytes that fail a check. */
static enc_err_t pr_decode_v2(const pr_priv_t *p, const uint8_t *buf,
                              size_t len, void **statep) {
        static const size_t cap[3] = {ENC_ID_MAX, ENC_ID_MAX, ENC_LABEL_MAX};
        pr_hdr_t h;

        if (len < sizeof(h))
                return ENC_ERR_CORRUPT;
        memcpy(&h, buf, sizeof(h));
        /* The record's own entry width: the instance's, unless its horizon
         * changed since (version 1 records were read across that too). */
        size_t esize = sizeof(pr_ent_t) + 8 * (size_t)h.words;
        if (h.ver != PR_STATE_V2 || h.words < 1 || h.words > PR_W_MAX ||
            h.pad0 || h.pad1 || h.n < 1 || h.n > (uint32_t)p->max_open ||
            (len - sizeof(h)) / esize < h.n ||
            len - sizeof(h) - (size_t)h.n * esize != h.sbytes)
                return ENC_ERR_CORRUPT;
        const uint8_t *ents = buf + sizeof(h);
        const char *sa = (const char *)ents + (size_t)h.n * esize;
        const char *pitem = NULL;
        size_t plen = 0, cur = 0;
        int64_t pd0 = 0, next = ENC_NO_TIMER;
        for (uint32_t i = 0; i < h.n; i++) {
                pr_ent_t e;
                uint64_t z[PR_W_MAX];
                const uint8_t *q = ents + (size_t)i * esize;
                memcpy(&e, q, sizeof(e));
                memcpy(z, q + sizeof(e), 8 * (size_t)h.words);
                if (e.pad || !enc_sig_day_ok(e.d0) || e.k_next < 1 ||
                    e.k_next > (uint32_t)p->h || e.soff != cur ||
                    e.len[0] == PR_ABSENT || e.len[0] == 0)
                        return ENC_ERR_CORRUPT;
                /* Strings in order, packed, each checked and ended by a
                 * NUL inside the area. */
                for (int k = 0; k < 3; k++) {
                        size_t l = e.len[k];
                        if (l == PR_ABSENT)
                                continue;
                        if (l > cap[k] || l >= h.sbytes - cur ||
                            !enc_sig_str_ok((const uint8_t *)sa + cur, l) ||
                            sa[cur + l] != '\0')
                                return ENC_ERR_CORRUPT;
                        cur += l + 1;
                }
                /* Sorted by (item, d0), no two alike. */
                const char *item = sa + e.soff;
                int c = i ? pr_bytecmp(item, e.len[0], pitem, plen) : 1;
                if (c < 0 || (c == 0 && e.d0 <= pd0))
                        return ENC_ERR_CORRUPT;
                /* Day 0 is engaged; days past the next prefix are unseen. */
                if (!(z[0] & 1))
                        return ENC_ERR_CORRUPT;
                for (int j = 0; j < h.words; j++)
                        if (z[j] & ~pr_below(j, e.k_next))
                                return ENC_ERR_CORRUPT;
                pitem = item;
                plen = e.len[0];
                pd0 = e.d0;
                int64_t due = enc_day_start(e.d0 + (int64_t)e.k_next);
                if (due < next)
                        next = due;
        }
        if (cur != h.sbytes || h.next != next)
                return ENC_ERR_CORRUPT;
        *statep = h.words == p->w ? enc_flat_copy(buf, len)
                                  : pr_rewidth(p, buf, len, h.words);
        return *statep ? ENC_OK : ENC_ERR_NOMEM;
}

/* Walks a version 1 record after its version byte, checking what the
 * version 1 reader checked. With @p f NULL it only checks and sets *@p n
 * and *@p sbytes; then, with the block @p f sized for them, it writes the
 * entries and strings. */
static bool pr_walk_v1(const pr_priv_t *p, const uint8_t *q,
                       const uint8_t *end, enc_flat_t *f, uint32_t *np,
                       size_t *sbytes) {
        uint64_t n;
        const char *pitem = NULL;
        size_t plen = 0, cur = 0;
        int64_t pd0 = 0;

        /* Each entry takes at least 7 bytes. */
        if (!enc_get_varint(&q, end, &n) || n < 1 ||
            n > (uint64_t)p->max_open || n > (uint64_t)(end - q) / 7)
                return false;
        for (uint64_t i = 0; i < n; i++) {
                const char *sv[3];
                size_t sl[3];
                int64_t d0;
                uint64_t k;
                enc_daybits_t z;
                if (!enc_sig_strref_get(&q, end, ENC_ID_MAX, &sv[0], &sl[0]) ||
                    !sv[0] || !sl[0] ||
                    !enc_sig_strref_get(&q, end, ENC_ID_MAX, &sv[1], &sl[1]) ||
                    !enc_sig_strref_get(&q, end, ENC_LABEL_MAX, &sv[2],
                                        &sl[2]))
                        return false;
                if (!enc_get_svarint(&q, end, &d0) || !enc_sig_day_ok(d0) ||
                    !enc_get_varint(&q, end, &k) || k < 1 ||
                    k > (uint64_t)p->h)
                        return false;
                int c = i ? pr_bytecmp(sv[0], sl[0], pitem, plen) : 1;
                if (c < 0 || (c == 0 && d0 <= pd0))
                        return false;
                enc_daybits_init(&z, d0);
                /* Day 0 is engaged; days past the next prefix are unseen. */
                if (!enc_daybits_get(&q, end, &z) ||
                    !enc_daybits_has(&z, d0) ||
                    enc_daybits_last(&z) > d0 + (int64_t)k - 1)
                        return false;
                pitem = sv[0];
                plen = sl[0];
                pd0 = d0;
                if (f) {
                        pr_ent_t *e = pr_ent(p, f, (uint32_t)i);
                        char *w = (char *)pr_sarea(p, f) + cur;
                        e->d0 = d0;
                        e->k_next = (uint32_t)k;
                        e->soff = (uint32_t)cur;
                        for (int j = 0; j < (int)k; j++)
                                if (enc_daybits_has(&z, d0 + j))
                                        e->z[j / 64] |= (uint64_t)1
                                                        << (j % 64);
                        for (int s = 0; s < 3; s++) {
                                e->len[s] = sv[s] ? (uint16_t)sl[s]
                                                  : PR_ABSENT;
                                if (!sv[s])
                                        continue;
                                memcpy(w, sv[s], sl[s]);
                                w[sl[s]] = '\0';
                                w += sl[s] + 1;
                        }
                }
                for (int s = 0; s < 3; s++)
                        cur += sv[s] ? sl[s] + 1 : 0;
        }
        *np = (uint32_t)n;
        *sbytes = cur;
        return q == end;
}

static enc_err_t pr_decode_v1(const pr_priv_t *p, const uint8_t *buf,
                              size_t len, void **statep) {
        uint32_t n;
        size_t sbytes;
        if (!pr_walk_v1(p, buf + 1, buf + len, NULL, &n, &sbytes))
                return ENC_ERR_CORRUPT;
        enc_flat_t *f =
                enc_flat_new(sizeof(pr_hdr_t) + (size_t)n * p->esize + sbytes);
        if (!f)
                return ENC_ERR_NOMEM;
        pr_hdr_t *hd = pr_hdr(f);
        hd->ver = PR_STATE_V2;
        hd->words = (uint8_t)p->w;
        hd->n = n;
        hd->sbytes = (uint32_t)sbytes;
        (void)pr_walk_v1(p, buf + 1, buf + len, f, &n, &sbytes); /* as above */
        hd->next = pr_min_due(p, f);
        *statep = f;
        return ENC_OK;
}

static enc_err_t pr_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        *statep = NULL;
        if (len < 1)
                return ENC_ERR_CORRUPT;
        if (buf[0] == ENC_SIG_STATE_V1)
                return pr_decode_v1(priv, buf, len, statep);
        return pr_decode_v2(priv, buf, len, statep);
}

const enc_signal_plugin_t enc_sig_progressive_reward = {
        .name = "progressive_reward",
        .description = "Posterior of a discovery's final discovery_habit value",
        .config_keys = pr_keys,
        .init = pr_init,
        .destroy = pr_destroy,
        .on_event = pr_on_event,
        .on_update = pr_on_update,
        .on_timer = pr_on_timer,
        .next_timer = pr_next_timer,
        .state_encode = pr_state_encode,
        .state_decode = pr_state_decode,
        .state_free = pr_state_free,
        .state_bytes = pr_state_bytes,
        .depends = pr_depends,
};
