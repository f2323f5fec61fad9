/*
 * readout.h -- `encore readout`: an A/B readout over the reward stream.
 *
 * Two layers: a pure aggregation core (enc_readout_t: feed it updates, ask
 * for one row per cohort; no I/O, unit-tested with hand-computed values)
 * and the command (enc_readout_main: reads the topic, feeds the core,
 * prints). The statistics it needs (Student's t distribution, Welch's
 * test) are here too, exported for their tests.
 */
#ifndef ENC_READOUT_H
#define ENC_READOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "enc.h"
#include "event.h"

/* ---- statistics ----------------------------------------------------- */

/** The regularized incomplete beta function I_x(a, b), a, b > 0,
 *  x in [0, 1]; NaN outside. Any thread. */
double enc_stat_betai(double a, double b, double x);

/** Student's t CDF with @p df > 0 degrees of freedom (df may be
 *  fractional, as Welch's are). */
double enc_stat_t_cdf(double t, double df);

/** The t with enc_stat_t_cdf(t, df) = p, p in (0, 1). */
double enc_stat_t_quantile(double p, double df);

/** Welch's two-sided t-test of mean1 = mean2 from two samples' means,
 *  sample variances (n - 1 denominators) and sizes. Returns the p-value
 *  (NaN if either n < 2); *df_out (may be NULL) gets the
 *  Welch-Satterthwaite degrees of freedom. Two samples without variance
 *  give p = 1 if the means are equal, else 0. */
double enc_stat_welch_p(double mean1, double var1, int64_t n1, double mean2,
                        double var2, int64_t n2, double *df_out);

/* ---- the aggregation core ------------------------------------------- */

typedef struct enc_readout_s enc_readout_t;

typedef struct enc_readout_opts_s {
        const char *signal; /* required; copied */
        int32_t version;    /* 0: the one version the input has */
        bool final_only;    /* keep the latest final update of each key */
        const char *control; /* cohort to compare with; NULL: none; copied */
} enc_readout_opts_t;

/** One cohort's figures. Doubles that cannot be computed are NaN (one
 *  unit: no stderr or interval; no control, or a control mean of 0 for
 *  lift; fewer than two units on a side for p_value). */
typedef struct enc_readout_row_s {
        const char *cohort; /* NULL: updates without a cohort; borrowed
                               until enc_readout_destroy */
        bool control;
        int64_t units; /* (user, subject) keys */
        int64_t users; /* distinct users among them */
        double mean, sd, stderr_, lo, hi; /* lo, hi: 95% t interval */
        bool has_variance;   /* progressive_reward: estimate_variance */
        double mean_variance;
        double diff, lift, p_value, df; /* against the control */
} enc_readout_row_t;

/** A new readout (free with enc_readout_destroy), or NULL on allocation
 *  failure. */
enc_readout_t *enc_readout_new(const enc_readout_opts_t *opts);
void enc_readout_destroy(enc_readout_t *r);

/** Takes one update: ignored unless it is of the signal (and version, if
 *  set; and final, with final_only). Of the updates of one (version, user,
 *  subject) key the latest counts: the greatest (event_time, sequence), a
 *  later one read winning ties (a repeat after a restart changes
 *  nothing). @p up is borrowed for the call. ENC_ERR_NOMEM, or
 *  ENC_ERR_TOO_LARGE past ENC_READOUT_COHORTS_MAX cohorts. */
enc_err_t enc_readout_add(enc_readout_t *r, const enc_update_t *up) ENC_WUR;

#define ENC_READOUT_COHORTS_MAX 10000

/** Updates of the signal seen (any version), and keys kept. */
int64_t enc_readout_seen(const enc_readout_t *r);

/**
 * Computes the rows: the control first (if any), then the other cohorts
 * in byte order, updates without a cohort last. *rows (borrowed until the
 * next call or destroy) gets *n rows; *version the version read.
 * Errors, with errstr for people: no update of the signal
 * (ENC_ERR_INVALID_ARG), several versions and none chosen (same), the
 * control cohort absent (same).
 */
enc_err_t enc_readout_compute(enc_readout_t *r, const enc_readout_row_t **rows,
                              int *n, int32_t *version, char *errstr,
                              size_t errstr_size) ENC_WUR;

/** Prints @p rows as a table for people. */
void enc_readout_print_table(FILE *fp, const char *signal, int32_t version,
                             bool final_only, const enc_readout_row_t *rows,
                             int n);

/** Prints @p rows as JSON lines, one object per cohort. */
void enc_readout_print_json(FILE *fp, const char *signal, int32_t version,
                            const enc_readout_row_t *rows, int n);

/* ---- the command ---------------------------------------------------- */

/** `encore readout` with @p argc/@p argv after the command name (argv[0]
 *  is "readout"). Prints to @p out, errors and progress to @p err.
 *  Returns the exit code: 0, 1 (runtime: Kafka, empty topic, no such
 *  update), 2 (usage). @p help prints the usage and options of the
 *  command (main.c's table). */
int enc_readout_main(int argc, char **argv, FILE *out, FILE *err,
                     void (*help)(FILE *fp, bool full));

#endif /* ENC_READOUT_H */
