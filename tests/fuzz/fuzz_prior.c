/*
 * fuzz_prior.c -- the prior file of progressive_reward
 * (signal.progressive_reward.<v>.prior.file, signals/prior.c): JSON text
 * through enc_prior_parse, then enc_gfilter_new, the factorisation the
 * plug-in does at start-up.
 *
 * The file is configuration, written by encore-fit-prior or by hand, so it
 * gets the configuration's guarantee: any text is accepted or refused with
 * ENC_ERR_CONFIG, never a crash, a leak or an unbounded allocation. Beyond
 * that, for a prior that parses:
 *   - enc_prior_to_json writes it back exactly (what encore-fit-prior
 *     writes is what the plug-in reads): parsing the output gives the same
 *     horizon, the same numbers and the same source;
 *   - a prior that enc_gfilter_new accepts gives a finite posterior mean
 *     and variance for every prefix length, so progressive_reward never
 *     emits NaN or infinity from a prior it took.
 * Seeds (tests/fuzz/corpus/prior/) are the built-in default prior and small
 * hand-checked priors written by fuzz_seeds.
 */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "prior.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        return 0;
}

static void check_roundtrip(const enc_prior_t *p) {
        char err[512];
        enc_buf_t b;
        enc_prior_t *q;
        int n = p->horizon;
        enc_buf_init(&b, 0);
        FUZZ_CHECK(enc_prior_to_json(p, &b) == ENC_OK);
        FUZZ_CHECK(enc_prior_parse((const char *)b.data, b.len, "round trip",
                                   &q, err, sizeof(err)) == ENC_OK);
        FUZZ_CHECK(q->horizon == n);
        /* == and not memcmp: "-0" comes back as 0, which is the same
         * prior. */
        for (int i = 0; i < n; i++)
                FUZZ_CHECK(q->mu[i] == p->mu[i]);
        for (int i = 0; i < n * n; i++)
                FUZZ_CHECK(q->cov[i] == p->cov[i]);
        FUZZ_CHECK(!strcmp(q->source ? q->source : "",
                           p->source ? p->source : ""));
        enc_prior_destroy(q);
        enc_buf_free(&b);
}

static void check_filter(const enc_prior_t *p) {
        char err[512];
        enc_gfilter_t *f;
        double z[ENC_PRIOR_H_MAX];
        enc_err_t e = enc_gfilter_new(p, &f, err, sizeof(err));
        FUZZ_CHECK(e == ENC_OK || e == ENC_ERR_CONFIG || e == ENC_ERR_NOMEM);
        if (e)
                return;
        int n = enc_gfilter_horizon(f);
        FUZZ_CHECK(n == p->horizon);
        /* A trace as discovery_habit records it: day 0 engaged, then an
         * irregular pattern of engaged days. */
        for (int i = 0; i < n; i++)
                z[i] = i == 0 || (i % 3 == 1) || (i % 7 == 5);
        for (int k = 0; k <= n; k++) {
                double mean, var;
                enc_gfilter_posterior(f, k, z, &mean, &var);
                if (!isfinite(mean) || !isfinite(var))
                        fprintf(stderr, "k=%d: mean %g, variance %g\n", k, mean,
                                var);
                FUZZ_CHECK(isfinite(mean) && isfinite(var));
        }
        enc_gfilter_destroy(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char err[512];
        enc_prior_t *p;
        enc_err_t e = enc_prior_parse((const char *)data, size, "fuzz", &p, err,
                                      sizeof(err));
        FUZZ_CHECK(e == ENC_OK || e == ENC_ERR_CONFIG || e == ENC_ERR_NOMEM);
        if (e)
                return 0;
        check_roundtrip(p);
        check_filter(p);
        enc_prior_destroy(p);
        return 0;
}
