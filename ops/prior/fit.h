/*
 * fit.h -- fitting the progressive_reward prior from past discovery_habit
 * output (the library behind encore-fit-prior, so it can be tested).
 */
#ifndef ENC_FIT_H
#define ENC_FIT_H

#include "enc.h"
#include "prior.h"

/* Longest input line accepted (one RewardUpdate as JSON). */
#define ENC_FIT_LINE_MAX ((size_t)64 * 1024)
/* Most updates kept in memory. */
#define ENC_FIT_RECORDS_MAX ((size_t)1 << 26)

typedef struct enc_fit_s enc_fit_t;

typedef struct enc_fit_stats_s {
        size_t lines;       /* lines fed */
        size_t used;        /* discovery_habit updates of the version */
        size_t discoveries; /* (user, subject, window_start) groups */
        size_t complete;    /* groups with a final whose trace adds up */
        size_t open;        /* groups without a final (still running) */
        size_t broken;      /* groups whose updates disagree (lines lost) */
        size_t other_h;     /* complete groups of another horizon */
} enc_fit_stats_t;

/** A collector of discovery_habit updates of signal_version @p version
 *  (0: any). Caller destroys with enc_fit_destroy. NULL on ENOMEM. */
enc_fit_t *enc_fit_new(int32_t version);
void enc_fit_destroy(enc_fit_t *fit);

/** Feeds one line in the format of enc_update_to_json. Blank lines and
 *  updates of other signals or versions are skipped. A line that is not
 *  a JSON object with the fields a discovery_habit update has fails with
 *  ENC_ERR_DECODE, saying which field. */
enc_err_t enc_fit_add_line(enc_fit_t *fit, const char *line, size_t len,
                           char *errstr, size_t errstr_size) ENC_WUR;

/**
 * Rebuilds the daily 0/1 traces of the discoveries that reached their
 * final update: z_0 = 1, and z_{d-1} = 1 for each non-final update with
 * observed_days = d. A trace whose sum differs from its final value, or
 * whose updates disagree on the horizon, is dropped as broken. With
 * @p horizon > 0 only traces of that horizon are kept; with 0 every
 * complete trace must have the same horizon, else ENC_ERR_INVALID_ARG.
 * On success *tracesp (caller frees) holds *np traces of *hp bytes each,
 * in (user, subject, window_start) order.
 */
enc_err_t enc_fit_traces(enc_fit_t *fit, int horizon, uint8_t **tracesp,
                         int *np, int *hp, enc_fit_stats_t *stats, char *errstr,
                         size_t errstr_size) ENC_WUR;

/**
 * Fits a prior to @p n traces of @p h days (row-major, 0/1, day 0 = 1):
 *   mu_k = the mean of z_k                           (mu_0 = 1)
 *   S    = the sample covariance (divisor n - 1)
 *   C    = (1 - lambda) S + lambda diag(t),  t_k = p_k (1 - p_k),
 *          p_k = (s_k + 0.5) / (n + 1), s_k = number of traces with
 *          z_k = 1; t_0 = 0 (day 0 stays known: row and column 0 are 0)
 * @p lambda in [0, 1]; negative picks the default 20 / (n + 20), which
 * trusts the sample more as it grows. For lambda > 0, C is positive
 * definite on days 1..h-1 (a PSD matrix plus a positive diagonal); the
 * result is checked with enc_gfilter_new either way. Needs n >= 2.
 * *out (caller frees with enc_prior_destroy) gets @p source.
 */
enc_err_t enc_prior_fit(const uint8_t *traces, int n, int h, double lambda,
                        const char *source, enc_prior_t **out, char *errstr,
                        size_t errstr_size) ENC_WUR;

#endif /* ENC_FIT_H */
