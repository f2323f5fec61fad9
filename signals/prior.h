/*
 * prior.h -- the Gaussian prior over a discovery's daily engagement trace,
 * and the filter that turns an observed prefix of the trace into the
 * posterior of its final sum (progressive_reward; "Impatient Bandits",
 * McDonald et al., KDD 2023).
 *
 * Prior file (JSON):
 *   {"horizon_days": H, "mu": [H numbers], "cov": [[H numbers] x H],
 *    "source": "where it came from", ...other keys ignored}
 * H is in [1, 366]; cov must be symmetric, with a non-negative diagonal;
 * a day whose variance is 0 (day 0, which is always 1) must have 0
 * covariance with every day, and cov restricted to the days with positive
 * variance must be positive definite.
 */
#ifndef ENC_PRIOR_H
#define ENC_PRIOR_H

#include "enc.h"

#define ENC_PRIOR_H_MAX    366
#define ENC_PRIOR_FILE_MAX ((size_t)8 << 20)
/* Variance at or below which a day counts as known in advance. */
#define ENC_PRIOR_VAR_EPS 1e-12

typedef struct enc_prior_s {
        int horizon;
        double *mu;   /* horizon */
        double *cov;  /* horizon x horizon, row-major */
        char *source; /* may be NULL */
} enc_prior_t;

/** Parses a prior from JSON text (@p what names it in errors: a path or
 *  "default prior"). Checks shapes and finiteness, not definiteness (see
 *  enc_gfilter_new). On success *out is owned by the caller
 *  (enc_prior_destroy). Errors are ENC_ERR_CONFIG. */
enc_err_t enc_prior_parse(const char *json, size_t len, const char *what,
                          enc_prior_t **out, char *errstr,
                          size_t errstr_size) ENC_WUR;

/** Reads and parses the file at @p path (at most ENC_PRIOR_FILE_MAX
 *  bytes); an empty or NULL path is the default prior built into the
 *  binary. The only I/O any signal does, and only at init. */
enc_err_t enc_prior_load(const char *path, enc_prior_t **out, char *errstr,
                         size_t errstr_size) ENC_WUR;

/** A new prior of horizon @p h with zeroed mu and cov; NULL on ENOMEM. */
enc_prior_t *enc_prior_new(int h);
void enc_prior_destroy(enc_prior_t *prior);

/** Appends @p prior as JSON (the file format above) to @p out. */
enc_err_t enc_prior_to_json(const enc_prior_t *prior, enc_buf_t *out) ENC_WUR;

/** The default prior's JSON text, embedded at build time from
 *  signals/default_prior.json. Static; *lenp gets its length. */
const char *enc_prior_default_json(size_t *lenp);

/* ---- the filter ----------------------------------------------------- */

typedef struct enc_gfilter_s enc_gfilter_t;

/**
 * Precomputes, for every prefix length k in [0, H], the weights w_k and
 * constants c_k, v_k such that the posterior of S = z_0 + ... + z_{H-1}
 * given the observed z_0..z_{k-1} has
 *   mean     = sum_{j<k} z_j + c_k + w_k . z_{0..k-1}
 *   variance = v_k
 * (w_k = C_oo^-1 C_or 1 over the observed days with positive variance,
 * c_k = 1'mu_r - w_k . mu_o, v_k = 1'C_rr 1 - (C_or 1) . w_k).
 * One Cholesky factorisation of the informative days' covariance serves
 * every k (the factor of a leading block is the leading block of the
 * factor), so building is O(H^3) once and each posterior is O(k).
 * Fails with ENC_ERR_CONFIG, saying why, if the prior breaks the rules in
 * the header comment. *out is owned by the caller (enc_gfilter_destroy);
 * @p prior is borrowed for the call only.
 */
enc_err_t enc_gfilter_new(const enc_prior_t *prior, enc_gfilter_t **out,
                          char *errstr, size_t errstr_size) ENC_WUR;
void enc_gfilter_destroy(enc_gfilter_t *f);
int enc_gfilter_horizon(const enc_gfilter_t *f);

/** Posterior mean and variance of the trace sum given z[0..k-1], for k in
 *  [0, H]. k = H gives the exact sum and variance 0. */
void enc_gfilter_posterior(const enc_gfilter_t *f, int k, const double *z,
                           double *mean, double *var);

#endif /* ENC_PRIOR_H */
