/*
 * fit.c -- rebuilding discovery traces from discovery_habit output and
 * fitting the Gaussian prior progressive_reward conditions on.
 *
 * DESIGN
 * Input is what encore already writes: RewardUpdate records as JSON lines
 * (enc_update_to_json, e.g. `encore tail`). A discovery is keyed by (user,
 * subject, window_start); its updates say which days were engaged (the
 * day of each non-final update's event_time, counted from window_start's)
 * and its final update says the total. Only discoveries that reached their final are used: an open one
 * would bias the trace towards zeros. A trace whose days do not add up to
 * its final value lost lines on the way and is dropped, counted, never
 * patched.
 *
 * Shrinkage: the sample covariance of a few hundred 0/1 traces over 60
 * days is noisy and often singular (a day nobody engaged on has variance
 * 0). The fit blends it with a diagonal target of smoothed Bernoulli
 * variances, C = (1 - lambda) S + lambda diag(p(1 - p)), p = (s + 0.5) /
 * (n + 1) -- the Jeffreys-smoothed engagement rate, never 0 or 1 -- so C
 * is positive definite on days 1..H-1 for any lambda > 0 and close to S
 * when data are plentiful (default lambda = 20 / (n + 20)). Day 0 stays
 * exactly known (variance 0), which is how the filter expects it.
 *
 * Never: trust the input. Every line is bounded, every field checked, and
 * the fitted prior goes through the same validation a prior file does.
 */
#include "fit.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct enc_fit_rec_s {
        char *key; /* len:user len:subject window_start */
        int32_t obs, horizon; /* obs: trace day + 1; a final's H */
        bool final;
        double value;
} enc_fit_rec_t;

struct enc_fit_s {
        int32_t version;
        enc_fit_rec_t *recs;
        size_t n, cap;
        size_t lines, used;
};

enc_fit_t *enc_fit_new(int32_t version) {
        enc_fit_t *f = calloc(1, sizeof(*f));
        if (f)
                f->version = version;
        return f;
}

void enc_fit_destroy(enc_fit_t *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->n; i++)
                free(f->recs[i].key);
        free(f->recs);
        free(f);
}

static bool enc_fit_int(json_t *o, const char *name, int64_t *v) {
        json_t *x = json_object_get(o, name);
        if (!json_is_integer(x))
                return false;
        *v = json_integer_value(x);
        return true;
}

enc_err_t enc_fit_add_line(enc_fit_t *f, const char *line, size_t len,
                           char *errstr, size_t errstr_size) {
        json_error_t jerr;
        enc_err_t err = ENC_ERR_DECODE;
        const char *bad = NULL;
        int64_t version, ws, obs, hor, et;

        f->lines++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                       line[len - 1] == ' '))
                len--;
        if (!len)
                return ENC_OK;
        json_t *o = json_loadb(line, len, 0, &jerr);
        if (!o || !json_is_object(o)) {
                enc_seterr(errstr, errstr_size, err, "not a JSON object: %s",
                           o ? "" : jerr.text);
                goto done;
        }
        json_t *sig = json_object_get(o, "signal");
        if (!json_is_string(sig)) {
                bad = "signal";
                goto done;
        }
        if (strcmp(json_string_value(sig), "discovery_habit")) {
                err = ENC_OK;
                goto done;
        }
        if (!enc_fit_int(o, "signal_version", &version)) {
                bad = "signal_version";
                goto done;
        }
        if (f->version && version != f->version) {
                err = ENC_OK;
                goto done;
        }
        json_t *user = json_object_get(o, "user_id");
        json_t *subj = json_object_get(o, "subject");
        json_t *fin = json_object_get(o, "final");
        json_t *val = json_object_get(o, "value");
        if (!json_is_string(user))
                bad = "user_id";
        else if (!json_is_string(subj))
                bad = "subject";
        else if (!enc_fit_int(o, "window_start", &ws))
                bad = "window_start";
        else if (!enc_fit_int(o, "observed_days", &obs) || obs < 0 ||
                 obs > ENC_PRIOR_H_MAX)
                bad = "observed_days";
        else if (!enc_fit_int(o, "event_time", &et) ||
                 ws < -((int64_t)1 << 50) || ws > ((int64_t)1 << 50) ||
                 et < ws || et - ws > ENC_PRIOR_H_MAX * ENC_MS_PER_DAY)
                bad = "event_time";
        else if (!enc_fit_int(o, "horizon_days", &hor) || hor < 1 ||
                 hor > ENC_PRIOR_H_MAX)
                bad = "horizon_days";
        else if (!json_is_boolean(fin))
                bad = "final";
        else if (!json_is_number(val) || !isfinite(json_number_value(val)))
                bad = "value";
        if (bad)
                goto done;
        if (f->n == ENC_FIT_RECORDS_MAX) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                 "more than %zu discovery_habit updates",
                                 ENC_FIT_RECORDS_MAX);
                goto done;
        }
        if (f->n == f->cap) {
                size_t ncap = f->cap ? f->cap * 2 : 1024;
                enc_fit_rec_t *nr = realloc(f->recs, ncap * sizeof(*nr));
                if (!nr) {
                        err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                         "out of memory");
                        goto done;
                }
                f->recs = nr;
                f->cap = ncap;
        }
        /* Length-prefixed parts: no user or subject text can make two
         * discoveries share a key. */
        const char *us = json_string_value(user), *ss = json_string_value(subj);
        enc_fit_rec_t *r = &f->recs[f->n];
        if (asprintf(&r->key, "%zu:%s%zu:%s%lld", strlen(us), us, strlen(ss),
                     ss, (long long)ws) < 0) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
                goto done;
        }
        r->horizon = (int32_t)hor;
        r->final = json_is_true(fin);
        /* observed_days counts the days before the play's (the days fully
         * observed), so the play's own day comes from its time. */
        r->obs = r->final ? (int32_t)obs
                          : (int32_t)(enc_day_of(et) - enc_day_of(ws)) + 1;
        r->value = json_number_value(val);
        f->n++;
        f->used++;
        err = ENC_OK;
done:
        if (bad)
                enc_seterr(errstr, errstr_size, err,
                           "discovery_habit update without a valid \"%s\"",
                           bad);
        json_decref(o);
        return err;
}

static int enc_fit_cmp(const void *a, const void *b) {
        const enc_fit_rec_t *x = a, *y = b;
        int c = strcmp(x->key, y->key);
        if (c)
                return c;
        if (x->final != y->final)
                return x->final ? 1 : -1;
        return x->obs < y->obs ? -1 : x->obs > y->obs;
}

enc_err_t enc_fit_traces(enc_fit_t *f, int horizon, uint8_t **tracesp, int *np,
                         int *hp, enc_fit_stats_t *stats, char *errstr,
                         size_t errstr_size) {
        uint8_t *out = NULL, z[ENC_PRIOR_H_MAX];
        size_t n = 0, cap = 0;
        int h = horizon;

        memset(stats, 0, sizeof(*stats));
        stats->lines = f->lines;
        stats->used = f->used;
        *tracesp = NULL;
        *np = *hp = 0;
        qsort(f->recs, f->n, sizeof(*f->recs), enc_fit_cmp);
        for (size_t i = 0, j; i < f->n; i = j) {
                bool broken = false, final = false;
                double total = 0;
                int gh = f->recs[i].horizon, sum = 1;
                memset(z, 0, sizeof(z));
                z[0] = 1;
                for (j = i; j < f->n && !strcmp(f->recs[j].key, f->recs[i].key);
                     j++) {
                        const enc_fit_rec_t *r = &f->recs[j];
                        if (r->horizon != gh || r->obs > gh || final)
                                broken = true; /* or two finals */
                        else if (r->final) {
                                final = true;
                                total = r->value;
                        } else if (r->obs > 1 && !z[r->obs - 1]) {
                                z[r->obs - 1] = 1;
                                sum++;
                        }
                }
                stats->discoveries++;
                if (!final && !broken) {
                        stats->open++;
                        continue;
                }
                if (broken || total != sum) {
                        stats->broken++;
                        continue;
                }
                if (h == 0)
                        h = gh;
                if (gh != h) {
                        if (horizon == 0) {
                                free(out);
                                return enc_seterr(
                                        errstr, errstr_size,
                                        ENC_ERR_INVALID_ARG,
                                        "discoveries of horizons %d and %d: "
                                        "choose one with --horizon",
                                        h, gh);
                        }
                        stats->other_h++;
                        continue;
                }
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 256;
                        uint8_t *no = realloc(out, ncap * (size_t)h);
                        if (!no) {
                                free(out);
                                return enc_seterr(errstr, errstr_size,
                                                  ENC_ERR_NOMEM,
                                                  "out of memory");
                        }
                        out = no;
                        cap = ncap;
                }
                memcpy(out + n * (size_t)h, z, (size_t)h);
                n++;
                stats->complete++;
        }
        if (n > INT32_MAX) {
                free(out);
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "too many traces");
        }
        *tracesp = out;
        *np = (int)n;
        *hp = h;
        return ENC_OK;
}

enc_err_t enc_prior_fit(const uint8_t *tr, int n, int h, double lambda,
                        const char *source, enc_prior_t **out, char *errstr,
                        size_t errstr_size) {
        enc_gfilter_t *check;
        enc_err_t err;

        *out = NULL;
        if (n < 2 || h < 1 || h > ENC_PRIOR_H_MAX)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "need at least 2 complete traces of a "
                                  "horizon in [1, %d] (have %d)",
                                  ENC_PRIOR_H_MAX, n);
        if (lambda < 0)
                lambda = 20.0 / (n + 20.0);
        if (lambda > 1)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "shrinkage %g is not in [0, 1]", lambda);
        enc_prior_t *p = enc_prior_new(h);
        if (!p || (source && !(p->source = strdup(source)))) {
                enc_prior_destroy(p);
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        }
        for (int k = 0; k < h; k++) {
                int s = 0;
                for (int i = 0; i < n; i++)
                        s += tr[(size_t)i * h + k];
                p->mu[k] = (double)s / n;
        }
        p->mu[0] = 1;
        for (int a = 1; a < h; a++)
                for (int b = a; b < h; b++) {
                        double s = 0;
                        for (int i = 0; i < n; i++)
                                s += (tr[(size_t)i * h + a] - p->mu[a]) *
                                     (tr[(size_t)i * h + b] - p->mu[b]);
                        double c = (1 - lambda) * s / (n - 1);
                        if (a == b) {
                                double pk = (p->mu[a] * n + 0.5) / (n + 1.0);
                                c += lambda * pk * (1 - pk);
                        }
                        p->cov[a * h + b] = p->cov[b * h + a] = c;
                }
        err = enc_gfilter_new(p, &check, errstr, errstr_size);
        if (err) {
                enc_prior_destroy(p);
                return err;
        }
        enc_gfilter_destroy(check);
        *out = p;
        return ENC_OK;
}
