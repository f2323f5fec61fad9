/*
 * prior.c -- prior files and the precomputed Gaussian filter behind
 * progressive_reward.
 *
 * DESIGN
 * Model: a discovery's daily engagement trace z = (z_0..z_{H-1}), z_j in
 * {0, 1}, is treated as Gaussian N(mu, C). After k days are fully observed
 * the final value S = 1'z is 1'z_o + 1'z_r; conditioning the Gaussian on
 * z_o gives
 *   E[S | z_o]   = 1'z_o + 1'mu_r + 1'C_ro C_oo^-1 (z_o - mu_o)
 *   Var[S | z_o] = 1'(C_rr - C_ro C_oo^-1 C_or) 1.
 * That is the filter of "Impatient Bandits" (McDonald et al., KDD 2023)
 * applied to one trace. Everything but z_o is fixed by the prior, so
 * enc_gfilter_new precomputes per k the vector w_k = C_oo^-1 C_or 1 and
 * the constants, and a posterior costs O(k) on the processing thread.
 *
 * Day 0 is 1 by definition, so a sensible prior gives it variance 0, which
 * makes C singular. Choice: condition only on observed days whose prior
 * variance is positive (> ENC_PRIOR_VAR_EPS). A zero-variance day is
 * known in advance and carries no information about the others; its
 * observed value still enters 1'z_o, and if unobserved its mean enters
 * 1'mu_r. Such a day must have zero covariance with every other day (any
 * PSD matrix does), which the loader checks rather than regularising
 * silently; the remaining block must be positive definite (its Cholesky
 * factorisation must succeed), else the prior is refused. No jitter is
 * ever added, so the numbers are exactly those of the formula above.
 *
 * Because the informative observed days of prefix k are a leading run of
 * the informative days, one Cholesky factor L of C restricted to them
 * serves all k: the factor of the leading m x m block is L's leading
 * m x m block. Building is O(H^3) in total.
 *
 * Never: trust a prior file: shapes, finiteness, size and definiteness are
 * all checked, and a failure names the file and what was wrong.
 */
#include "prior.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Generated at build time from signals/default_prior.json. */
extern const unsigned char enc_prior_default_data[];
extern const size_t enc_prior_default_size;

const char *enc_prior_default_json(size_t *lenp) {
        *lenp = enc_prior_default_size;
        return (const char *)enc_prior_default_data;
}

enc_prior_t *enc_prior_new(int h) {
        enc_prior_t *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->horizon = h;
        p->mu = calloc((size_t)h, sizeof(double));
        p->cov = calloc((size_t)h * (size_t)h, sizeof(double));
        if (!p->mu || !p->cov) {
                enc_prior_destroy(p);
                return NULL;
        }
        return p;
}

void enc_prior_destroy(enc_prior_t *p) {
        if (!p)
                return;
        free(p->mu);
        free(p->cov);
        free(p->source);
        free(p);
}

static bool enc_prior_num(const json_t *v, double *out) {
        if (!json_is_number(v))
                return false;
        *out = json_number_value(v);
        return isfinite(*out);
}

enc_err_t enc_prior_parse(const char *text, size_t len, const char *what,
                          enc_prior_t **out, char *errstr, size_t errstr_size) {
        json_error_t jerr;
        enc_prior_t *p = NULL;
        enc_err_t err = ENC_ERR_CONFIG;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

        *out = NULL;
        if (!root)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s: not JSON: line %d: %s", what, jerr.line,
                                  jerr.text);
        json_t *h = json_object_get(root, "horizon_days");
        json_t *mu = json_object_get(root, "mu");
        json_t *cov = json_object_get(root, "cov");
        json_t *src = json_object_get(root, "source");
        if (!json_is_object(root) || !json_is_integer(h) ||
            json_integer_value(h) < 1 ||
            json_integer_value(h) > ENC_PRIOR_H_MAX) {
                enc_seterr(errstr, errstr_size, err,
                           "%s: expected an object with \"horizon_days\" an "
                           "integer in [1, %d]",
                           what, ENC_PRIOR_H_MAX);
                goto done;
        }
        int n = (int)json_integer_value(h);
        if (!json_is_array(mu) || json_array_size(mu) != (size_t)n ||
            !json_is_array(cov) || json_array_size(cov) != (size_t)n) {
                enc_seterr(errstr, errstr_size, err,
                           "%s: expected \"mu\" an array of %d numbers and "
                           "\"cov\" an array of %d rows",
                           what, n, n);
                goto done;
        }
        if (src && !json_is_string(src)) {
                enc_seterr(errstr, errstr_size, err,
                           "%s: \"source\" must be a string", what);
                goto done;
        }
        if (!(p = enc_prior_new(n))) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "%s: out of memory", what);
                goto done;
        }
        for (int i = 0; i < n; i++) {
                json_t *row = json_array_get(cov, (size_t)i);
                if (!enc_prior_num(json_array_get(mu, (size_t)i), &p->mu[i])) {
                        enc_seterr(errstr, errstr_size, err,
                                   "%s: mu[%d] is not a finite number", what,
                                   i);
                        goto done;
                }
                if (!json_is_array(row) || json_array_size(row) != (size_t)n) {
                        enc_seterr(errstr, errstr_size, err,
                                   "%s: cov[%d] is not an array of %d "
                                   "numbers",
                                   what, i, n);
                        goto done;
                }
                for (int j = 0; j < n; j++)
                        if (!enc_prior_num(json_array_get(row, (size_t)j),
                                           &p->cov[i * n + j])) {
                                enc_seterr(errstr, errstr_size, err,
                                           "%s: cov[%d][%d] is not a finite "
                                           "number",
                                           what, i, j);
                                goto done;
                        }
        }
        if (src && !(p->source = strdup(json_string_value(src)))) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "%s: out of memory", what);
                goto done;
        }
        *out = p;
        p = NULL;
        err = ENC_OK;
done:
        enc_prior_destroy(p);
        json_decref(root);
        return err;
}

enc_err_t enc_prior_load(const char *path, enc_prior_t **out, char *errstr,
                         size_t errstr_size) {
        struct stat sb;
        char *text = NULL;
        enc_err_t err;

        if (!path || !*path) {
                size_t len;
                const char *def = enc_prior_default_json(&len);
                return enc_prior_parse(def, len, "default prior", out, errstr,
                                       errstr_size);
        }
        FILE *fp = fopen(path, "rb");
        if (!fp)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s: cannot open: %s", path, strerror(errno));
        if (fstat(fileno(fp), &sb) || !S_ISREG(sb.st_mode) ||
            (size_t)sb.st_size > ENC_PRIOR_FILE_MAX) {
                fclose(fp);
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s: not a regular file of at most %zu "
                                  "bytes",
                                  path, ENC_PRIOR_FILE_MAX);
        }
        size_t len = (size_t)sb.st_size;
        if (!(text = malloc(len ? len : 1))) {
                fclose(fp);
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "%s: out of memory", path);
        }
        if (fread(text, 1, len, fp) != len) {
                fclose(fp);
                free(text);
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%s: read error", path);
        }
        fclose(fp);
        err = enc_prior_parse(text, len, path, out, errstr, errstr_size);
        free(text);
        return err;
}

enc_err_t enc_prior_to_json(const enc_prior_t *p, enc_buf_t *out) {
        char num[40];
        int n = p->horizon;
#define PUT(s)                                                                 \
        do {                                                                   \
                enc_err_t e_ = enc_buf_append(out, s, strlen(s));              \
                if (e_)                                                        \
                        return e_;                                             \
        } while (0)
        snprintf(num, sizeof(num), "{\"horizon_days\":%d,\n\"mu\":[", n);
        PUT(num);
        for (int i = 0; i < n; i++) {
                snprintf(num, sizeof(num), "%s%.17g", i ? "," : "", p->mu[i]);
                PUT(num);
        }
        PUT("],\n\"cov\":[");
        for (int i = 0; i < n; i++) {
                PUT(i ? ",\n[" : "\n[");
                for (int j = 0; j < n; j++) {
                        snprintf(num, sizeof(num), "%s%.17g", j ? "," : "",
                                 p->cov[i * n + j]);
                        PUT(num);
                }
                PUT("]");
        }
        PUT("],\n\"source\":");
        json_t *s = json_string(p->source ? p->source : "");
        char *sj = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        json_decref(s);
        if (!sj)
                return ENC_ERR_NOMEM;
        enc_err_t err = enc_buf_append(out, sj, strlen(sj));
        free(sj);
        if (err)
                return err;
        PUT("}\n");
#undef PUT
        return ENC_OK;
}

/* ---- the filter ----------------------------------------------------- */

struct enc_gfilter_s {
        int h;
        double *w; /* w_k at w + k(k-1)/2, k entries, for k = 1..H */
        double *c; /* H + 1 */
        double *v; /* H + 1 */
};

void enc_gfilter_destroy(enc_gfilter_t *f) {
        if (!f)
                return;
        free(f->w);
        free(f->c);
        free(f->v);
        free(f);
}

int enc_gfilter_horizon(const enc_gfilter_t *f) {
        return f->h;
}

static double *enc_gf_wk(const enc_gfilter_t *f, int k) {
        return f->w + (size_t)k * (size_t)(k - 1) / 2;
}

enc_err_t enc_gfilter_new(const enc_prior_t *prior, enc_gfilter_t **out,
                          char *errstr, size_t errstr_size) {
        const int n = prior->horizon;
        const double *mu = prior->mu;
        double *cs = NULL, *l = NULL, *bfull = NULL, *x = NULL;
        int *inf = NULL, m = 0;
        enc_err_t err = ENC_ERR_NOMEM;
        enc_gfilter_t *f = calloc(1, sizeof(*f));

        *out = NULL;
        if (!f)
                goto fail;
        f->h = n;
        f->w = calloc((size_t)n * (size_t)(n + 1) / 2 + 1, sizeof(double));
        f->c = calloc((size_t)n + 1, sizeof(double));
        f->v = calloc((size_t)n + 1, sizeof(double));
        cs = calloc((size_t)n * (size_t)n, sizeof(double));
        l = calloc((size_t)n * (size_t)n, sizeof(double));
        bfull = calloc((size_t)n, sizeof(double));
        x = calloc((size_t)n, sizeof(double));
        inf = calloc((size_t)n, sizeof(int));
        if (!f->w || !f->c || !f->v || !cs || !l || !bfull || !x || !inf)
                goto fail;

        /* Symmetry, then the symmetrised matrix is what we use. */
        double scale = 1.0;
        for (int i = 0; i < n * n; i++)
                if (fabs(prior->cov[i]) > scale)
                        scale = fabs(prior->cov[i]);
        for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                        double a = prior->cov[i * n + j];
                        double b = prior->cov[j * n + i];
                        if (fabs(a - b) > 1e-9 * scale) {
                                err = enc_seterr(errstr, errstr_size,
                                                 ENC_ERR_CONFIG,
                                                 "prior cov is not symmetric "
                                                 "(cov[%d][%d] != cov[%d][%d])",
                                                 i, j, j, i);
                                goto fail;
                        }
                        cs[i * n + j] = (a + b) / 2;
                }
        for (int i = 0; i < n; i++) {
                double d = cs[i * n + i];
                if (d < 0) {
                        err = enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                         "prior cov[%d][%d] (a variance) is "
                                         "negative",
                                         i, i);
                        goto fail;
                }
                if (d > ENC_PRIOR_VAR_EPS) {
                        inf[m++] = i;
                        continue;
                }
                for (int j = 0; j < n; j++)
                        if (fabs(cs[i * n + j]) > 1e-9) {
                                err = enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "prior day %d has variance 0 but "
                                        "cov[%d][%d] != 0 (not positive "
                                        "semi-definite)",
                                        i, i, j);
                                goto fail;
                        }
        }
        /* Cholesky of C restricted to the informative days: C_II = L L'. */
        for (int a = 0; a < m; a++) {
                for (int b = 0; b <= a; b++) {
                        double s = cs[inf[a] * n + inf[b]];
                        for (int c = 0; c < b; c++)
                                s -= l[a * n + c] * l[b * n + c];
                        if (a == b) {
                                if (s <= 1e-14 * scale) {
                                        err = enc_seterr(
                                                errstr, errstr_size,
                                                ENC_ERR_CONFIG,
                                                "prior cov is not positive "
                                                "definite on the days with "
                                                "positive variance (pivot at "
                                                "day %d)",
                                                inf[a]);
                                        goto fail;
                                }
                                l[a * n + a] = sqrt(s);
                        } else {
                                l[a * n + b] = s / l[b * n + b];
                        }
                }
        }

        /* Walk k from H down to 0, keeping bfull[j] = sum_{r>=k} C_jr,
         * rsum = sum_{r>=k} mu_r and rr = sum_{r,s>=k} C_rs. */
        double rsum = 0, rr = 0;
        int mk = m; /* informative days < k */
        for (int k = n; k >= 0; k--) {
                if (k < n) {
                        rsum += mu[k];
                        double cross = 0;
                        for (int s = k + 1; s < n; s++)
                                cross += cs[k * n + s];
                        rr += cs[k * n + k] + 2 * cross;
                        for (int j = 0; j < n; j++)
                                bfull[j] += cs[j * n + k];
                }
                while (mk > 0 && inf[mk - 1] >= k)
                        mk--;
                /* Solve L_m L_m' x = b, b_a = bfull[inf[a]], a < mk. */
                for (int a = 0; a < mk; a++) {
                        double s = bfull[inf[a]];
                        for (int c = 0; c < a; c++)
                                s -= l[a * n + c] * x[c];
                        x[a] = s / l[a * n + a];
                }
                for (int a = mk - 1; a >= 0; a--) {
                        double s = x[a];
                        for (int c = a + 1; c < mk; c++)
                                s -= l[c * n + a] * x[c];
                        x[a] = s / l[a * n + a];
                }
                double cval = rsum, vval = rr;
                for (int a = 0; a < mk; a++) {
                        cval -= x[a] * mu[inf[a]];
                        vval -= bfull[inf[a]] * x[a];
                }
                if (k > 0) {
                        double *wk = enc_gf_wk(f, k);
                        for (int a = 0; a < mk; a++)
                                wk[inf[a]] = x[a];
                }
                f->c[k] = cval;
                f->v[k] = vval > 0 ? vval : 0; /* rounding below 0 */
        }
        f->c[n] = 0;
        f->v[n] = 0;
        *out = f;
        f = NULL;
        err = ENC_OK;
fail:
        if (err == ENC_ERR_NOMEM)
                enc_seterr(errstr, errstr_size, err, "prior: out of memory");
        enc_gfilter_destroy(f);
        free(cs);
        free(l);
        free(bfull);
        free(x);
        free(inf);
        return err;
}

void enc_gfilter_posterior(const enc_gfilter_t *f, int k, const double *z,
                           double *mean, double *var) {
        double s = f->c[k];
        if (k > 0) {
                const double *wk = enc_gf_wk(f, k);
                for (int j = 0; j < k; j++)
                        s += z[j] * (1.0 + wk[j]);
        }
        *mean = s;
        *var = f->v[k];
}
