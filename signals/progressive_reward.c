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
 * State: per open discovery, its trace bitmap and the next k to emit. The
 * previous estimate is recomputed for delta rather than stored: it is a
 * function of the trace prefix and the prior. A discovery this instance
 * did not see open (say, the instance was added mid-flight) is ignored.
 * Open discoveries are capped at the followed instance's max.items.
 *
 * Never: emit for a day that is not fully observed, or read a clock.
 */
#include <stdio.h>

#include "daybits.h"
#include "prior.h"
#include "sigpriv.h"

typedef struct pr_priv_s {
        int h;
        int32_t src_version;
        int max_open;
        enc_gfilter_t *filter;
        enc_sig_strs3_pools_t strs; /* discoveries' string blocks */
} pr_priv_t;

typedef struct pr_disc_s {
        char *item;
        char *rec;
        char *cohort;
        int64_t d0;
        int k_next;      /* next prefix length to emit, 1..H */
        enc_daybits_t z; /* engaged days, base d0 */
        uint32_t sbytes; /* size of the block of strings */
} pr_disc_t;

typedef struct pr_state_s {
        pr_disc_t *d; /* sorted by (item, d0) */
        int n, cap;
        int64_t next; /* the smallest pr_due() of d (n > 0): next_timer,
                         kept so no callback scans d per event */
} pr_state_t;

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
        enc_sig_strs3_clear(&p->strs);
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
        enc_prior_destroy(prior);
        *privp = p;
        return ENC_OK;
fail:
        enc_prior_destroy(prior);
        pr_destroy(p);
        return err;
}

/* The pool of string blocks: the instance's, mutable through a const
 * priv (which points to calloc'ed memory, never a const object). */
static enc_sig_strs3_pools_t *pr_strs(const pr_priv_t *p) {
        return p ? (enc_sig_strs3_pools_t *)&p->strs : NULL;
}

static void pr_disc_clear(const pr_priv_t *p, pr_disc_t *d) {
        /* one block with rec and cohort: enc_sig_strs3 */
        enc_sig_strs3_free(pr_strs(p), d->item, d->sbytes);
        d->item = d->rec = d->cohort = NULL;
}

static void pr_state_free(void *priv, void *state) {
        pr_state_t *st = state;
        if (!st)
                return;
        for (int i = 0; i < st->n; i++)
                pr_disc_clear(priv, &st->d[i]);
        free(st->d);
        free(st);
}

static size_t pr_state_bytes(void *priv, const void *state) {
        const pr_state_t *st = state;
        size_t n = enc_heap_bytes(sizeof(*st)) +
                   enc_heap_bytes((size_t)st->cap * sizeof(*st->d));
        for (int i = 0; i < st->n; i++)
                n += enc_sig_strs3_heap(st->d[i].sbytes);
        return n;
}

static int pr_cmp(const char *item, int64_t d0, const pr_disc_t *d) {
        int c = strcmp(item, d->item);
        if (c)
                return c;
        return d0 < d->d0 ? -1 : d0 > d->d0;
}

/* Index of (item, d0), or -(insertion point) - 1. */
static int pr_find(const pr_state_t *st, const char *item, int64_t d0) {
        int lo = 0, hi = st->n - 1;
        while (lo <= hi) {
                int mid = lo + (hi - lo) / 2;
                int c = pr_cmp(item, d0, &st->d[mid]);
                if (!c)
                        return mid;
                if (c > 0)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        return -lo - 1;
}

static int64_t pr_due(const pr_disc_t *d) {
        return enc_day_start(d->d0 + d->k_next);
}

/* Recomputes st->next after d changed. */
static void pr_next_update(pr_state_t *st) {
        st->next = ENC_NO_TIMER;
        for (int i = 0; i < st->n; i++)
                if (pr_due(&st->d[i]) < st->next)
                        st->next = pr_due(&st->d[i]);
}

static int64_t pr_next_timer(void *priv, const void *state) {
        const pr_state_t *st = state;
        return st && st->n ? st->next : ENC_NO_TIMER;
}

static void pr_posterior(const pr_priv_t *p, const pr_disc_t *d, int k,
                         double *mean, double *var) {
        double z[ENC_PRIOR_H_MAX];
        for (int j = 0; j < k; j++)
                z[j] = enc_daybits_has(&d->z, d->d0 + j) ? 1.0 : 0.0;
        enc_gfilter_posterior(p->filter, k, z, mean, var);
}

static enc_err_t pr_emit(const pr_priv_t *p, const pr_disc_t *d,
                         enc_emitter_t *em) {
        enc_update_t up;
        double mean, var, prev = 0, pvar;
        int k = d->k_next;

        pr_posterior(p, d, k, &mean, &var);
        if (k == p->h) { /* fully observed: exact */
                mean = enc_daybits_count(&d->z, d->d0, d->d0 + p->h - 1);
                var = 0;
        }
        if (k > 1)
                pr_posterior(p, d, k - 1, &prev, &pvar);
        memset(&up, 0, sizeof(up));
        up.subject = d->item;
        up.recommendation_id = d->rec;
        up.cohort = d->cohort;
        up.window_start = enc_day_start(d->d0);
        up.window_end = enc_day_start(d->d0 + p->h);
        up.value = mean;
        up.delta = mean - prev;
        up.has_estimate = true;
        up.estimate_mean = mean;
        up.estimate_variance = var;
        up.observed_days = k;
        up.horizon_days = p->h;
        up.final = k == p->h;
        up.event_time = pr_due(d);
        up.sequence = k;
        return enc_emit(em, &up);
}

/* Emits every day end due at or before @p now, earliest first. */
static enc_err_t pr_advance(const pr_priv_t *p, void **state, int64_t now,
                            enc_emitter_t *em) {
        pr_state_t *st = *state;
        /* The first (in (item, d0) order) of the earliest due goes first. */
        while (st->n > 0 && st->next <= now) {
                int best = 0;
                while (pr_due(&st->d[best]) != st->next)
                        best++;
                pr_disc_t *d = &st->d[best];
                enc_err_t err = pr_emit(p, d, em);
                if (err)
                        return err;
                if (++d->k_next > p->h) {
                        pr_disc_clear(p, d);
                        memmove(d, d + 1,
                                (size_t)(st->n - best - 1) * sizeof(*d));
                        st->n--;
                }
                pr_next_update(st);
        }
        if (st->n == 0) {
                pr_state_free((void *)p, st);
                *state = NULL;
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

static enc_err_t pr_on_update(void *priv, void **state, const enc_update_t *up,
                              enc_emitter_t *em) {
        const pr_priv_t *p = priv;
        pr_state_t *st;
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
        st = *state;
        int i = st ? pr_find(st, up->subject, d0) : -1;
        if (i >= 0) {
                /* Only days not yet inside an emitted prefix. */
                if (idx >= st->d[i].k_next - 1)
                        (void)enc_daybits_add(&st->d[i].z, d0 + idx);
                return ENC_OK;
        }
        if (idx != 0)
                return ENC_OK; /* a discovery opened before we saw it */
        if (st && st->n >= p->max_open)
                return ENC_OK; /* at the cap: not followed */
        if (!st) {
                if (!(st = calloc(1, sizeof(*st))))
                        return ENC_ERR_NOMEM;
                *state = st;
        }
        i = -i - 1;
        if (st->n == st->cap) {
                int ncap = st->cap ? st->cap * 2 : 4;
                pr_disc_t *nd = realloc(st->d, (size_t)ncap * sizeof(*nd));
                if (!nd)
                        return ENC_ERR_NOMEM;
                st->d = nd;
                st->cap = ncap;
        }
        pr_disc_t d;
        memset(&d, 0, sizeof(d));
        const char *sv[3] = {up->subject, up->recommendation_id,
                             up->cohort};
        size_t sl[3] = {strlen(up->subject),
                        sv[1] ? strlen(sv[1]) : 0, sv[2] ? strlen(sv[2]) : 0};
        if (!enc_sig_strs3(pr_strs(p), &d.item, &d.rec, &d.cohort, sv, sl,
                           &d.sbytes))
                return ENC_ERR_NOMEM;
        d.d0 = d0;
        d.k_next = 1;
        enc_daybits_init(&d.z, d0);
        (void)enc_daybits_add(&d.z, d0);
        memmove(&st->d[i + 1], &st->d[i], (size_t)(st->n - i) * sizeof(d));
        st->d[i] = d;
        st->n++;
        if (st->n == 1 || pr_due(&d) < st->next)
                st->next = pr_due(&d);
        return ENC_OK;
}

/* ---- state records ----------------------------------------------------
 * v1: u8 1, varint n, n x (str item, str rec, str cohort, svarint d0,
 *     varint k_next, daybits z), sorted by (item, d0). */

static enc_err_t pr_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        const pr_state_t *st = state;
        enc_buf_put_u8(out, ENC_SIG_STATE_V1);
        enc_buf_put_varint(out, (uint64_t)st->n);
        for (int i = 0; i < st->n; i++) {
                const pr_disc_t *d = &st->d[i];
                enc_buf_put_str(out, d->item);
                enc_buf_put_str(out, d->rec);
                enc_buf_put_str(out, d->cohort);
                enc_buf_put_svarint(out, d->d0);
                enc_buf_put_varint(out, (uint64_t)d->k_next);
                enc_daybits_put(&d->z, out);
        }
        return out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
}

static enc_err_t pr_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        const pr_priv_t *p = priv;
        const uint8_t *q = buf, *end = buf + len;
        uint8_t ver;
        uint64_t n;
        pr_state_t *st = calloc(1, sizeof(*st));

        *statep = NULL;
        if (!st)
                return ENC_ERR_NOMEM;
        /* Each entry takes at least 7 bytes; check before allocating. */
        if (!enc_get_u8(&q, end, &ver) || ver != ENC_SIG_STATE_V1 ||
            !enc_get_varint(&q, end, &n) || n < 1 ||
            n > (uint64_t)p->max_open || n > (uint64_t)(end - q) / 7)
                goto corrupt;
        if (!(st->d = calloc((size_t)n, sizeof(*st->d)))) {
                pr_state_free((void *)p, st);
                return ENC_ERR_NOMEM;
        }
        st->cap = (int)n;
        for (uint64_t i = 0; i < n; i++) {
                pr_disc_t *d = &st->d[i];
                uint64_t k;
                const char *sv[3];
                size_t sl[3];
                st->n++;
                if (!enc_sig_strref_get(&q, end, ENC_ID_MAX, &sv[0], &sl[0]) ||
                    !sv[0] || !sl[0] ||
                    !enc_sig_strref_get(&q, end, ENC_ID_MAX, &sv[1], &sl[1]) ||
                    !enc_sig_strref_get(&q, end, ENC_LABEL_MAX, &sv[2], &sl[2]))
                        goto corrupt;
                if (!enc_sig_strs3(pr_strs(p), &d->item, &d->rec, &d->cohort,
                                   sv, sl, &d->sbytes)) {
                        pr_state_free((void *)p, st);
                        return ENC_ERR_NOMEM;
                }
                if (!enc_get_svarint(&q, end, &d->d0) ||
                    !enc_sig_day_ok(d->d0) || !enc_get_varint(&q, end, &k) ||
                    k < 1 || k > (uint64_t)p->h ||
                    (i && pr_cmp(d->item, d->d0, &st->d[i - 1]) <= 0))
                        goto corrupt;
                d->k_next = (int)k;
                d->z.base = d->d0;
                /* Day 0 is engaged; days past the next prefix are unseen. */
                if (!enc_daybits_get(&q, end, &d->z) ||
                    !enc_daybits_has(&d->z, d->d0) ||
                    enc_daybits_last(&d->z) > d->d0 + d->k_next - 1)
                        goto corrupt;
        }
        if (q != end)
                goto corrupt;
        pr_next_update(st);
        *statep = st;
        return ENC_OK;
corrupt:
        pr_state_free((void *)p, st);
        return ENC_ERR_CORRUPT;
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
