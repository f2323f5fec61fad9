/*
 * rewardstats.c -- reward updates and final reward values by signal,
 * version and cohort, for Prometheus.
 *
 * DESIGN
 * An experiment dashboard wants, per cohort, how many units finished and
 * what their final reward was: the histogram of final values gives both
 * (_count is the units that reached their final update, _sum / _count the
 * mean final reward, the buckets its distribution), next to the count of
 * all updates. Every update carries the cohort its reward is credited to
 * (README, "Cohorts"), so a label is all it takes.
 *
 * Bounds: the cohort label comes from input data, so the number of
 * distinct cohorts is capped by metrics.cohorts.max: the first cohorts
 * seen are tracked, later new ones are counted under cohort="other" (and
 * in encore_reward_cohort_overflow_total, so a dashboard can tell that it
 * happened). Signals and versions come from the configuration, so the
 * series are at most instances x (cohorts.max + 2).
 *
 * Buckets are fitted to each signal's range from the horizon_days of its
 * first final update (see enc_rstats_bounds): the values of active_days,
 * discovery_habit and progressive_reward are counts of days in [0, H],
 * session's a rate in [0, 1]. One family can hold series with different
 * bucket bounds; Prometheus handles each series on its own.
 *
 * Never: let input data grow the series without bound, or block (the
 * processing thread calls in on every update).
 */
#include "rewardstats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rs_series_s {
        char signal[ENC_SIGNAL_NAME_MAX + 1];
        int32_t version;
        char cohort[ENC_LABEL_MAX + 1];
        uint64_t updates;
        bool has_final;
        enc_hist_t final;
} rs_series_t;

struct enc_rstats_s {
        int cohorts_max;
        char **cohorts; /* admitted, in order of first sight */
        int ncohorts;
        rs_series_t *s;
        int n, cap;
        uint64_t overflow;
};

enc_rstats_t *enc_rstats_new(int cohorts_max) {
        enc_rstats_t *rs = calloc(1, sizeof(*rs));
        if (!rs)
                return NULL;
        rs->cohorts_max = cohorts_max < 0 ? 0 : cohorts_max;
        if (rs->cohorts_max &&
            !(rs->cohorts = calloc((size_t)rs->cohorts_max, sizeof(char *)))) {
                free(rs);
                return NULL;
        }
        return rs;
}

void enc_rstats_destroy(enc_rstats_t *rs) {
        if (!rs)
                return;
        for (int i = 0; i < rs->ncohorts; i++)
                free(rs->cohorts[i]);
        free(rs->cohorts);
        free(rs->s);
        free(rs);
}

int enc_rstats_bounds(int32_t horizon_days, double *bounds) {
        int n = 0;
        if (horizon_days <= 0) {
                for (int i = 1; i <= 10; i++)
                        bounds[n++] = i / 10.0;
                return n;
        }
        /* 0, then about 11 steps of ratio H^(1/11) from 1 to H, rounded
         * to whole days and deduplicated: every bound is a value the
         * signal can take, and the last is H. */
        bounds[n++] = 0;
        double r = pow((double)horizon_days, 1.0 / 11);
        for (int k = 0; k <= 11 && n < ENC_HIST_MAX_BUCKETS; k++) {
                double b = k == 11 ? horizon_days : round(pow(r, k));
                if (b > bounds[n - 1])
                        bounds[n++] = b;
        }
        if (bounds[n - 1] < horizon_days)
                bounds[n - 1] = horizon_days;
        return n;
}

/* The label for @p cohort: itself if tracked (or admitted now), "" for
 * none, "other" past the bound. */
static const char *rs_cohort_label(enc_rstats_t *rs, const char *cohort) {
        if (!cohort)
                return "";
        for (int i = 0; i < rs->ncohorts; i++)
                if (!strcmp(rs->cohorts[i], cohort))
                        return rs->cohorts[i];
        if (rs->ncohorts < rs->cohorts_max &&
            (rs->cohorts[rs->ncohorts] = strdup(cohort)))
                return rs->cohorts[rs->ncohorts++];
        rs->overflow++;
        return ENC_RSTATS_OTHER;
}

void enc_rstats_observe(enc_rstats_t *rs, const enc_update_t *up) {
        if (!up->signal)
                return;
        const char *cohort = rs_cohort_label(rs, up->cohort);
        rs_series_t *s = NULL;
        for (int i = 0; i < rs->n && !s; i++)
                if (rs->s[i].version == up->signal_version &&
                    !strcmp(rs->s[i].signal, up->signal) &&
                    !strcmp(rs->s[i].cohort, cohort))
                        s = &rs->s[i];
        if (!s) {
                if (rs->n == rs->cap) {
                        int ncap = rs->cap ? rs->cap * 2 : 16;
                        rs_series_t *ns =
                                realloc(rs->s, (size_t)ncap * sizeof(*ns));
                        if (!ns)
                                return;
                        rs->s = ns;
                        rs->cap = ncap;
                }
                s = &rs->s[rs->n++];
                memset(s, 0, sizeof(*s));
                snprintf(s->signal, sizeof(s->signal), "%s", up->signal);
                s->version = up->signal_version;
                snprintf(s->cohort, sizeof(s->cohort), "%s", cohort);
        }
        s->updates++;
        if (!up->final || !isfinite(up->value))
                return;
        if (!s->has_final) {
                double b[ENC_HIST_MAX_BUCKETS];
                int nb = enc_rstats_bounds(up->horizon_days, b);
                enc_hist_init(&s->final, b, nb);
                s->has_final = true;
        }
        enc_hist_observe(&s->final, up->value);
}

void enc_rstats_render(const enc_rstats_t *rs, enc_buf_t *b) {
        char ver[16], le[32];
        enc_prom_family(b, "encore_reward_updates_total", "counter",
                        "Reward updates emitted, by signal, version and "
                        "cohort (empty: no cohort; past metrics.cohorts.max "
                        "cohorts: other)");
        for (int i = 0; i < rs->n; i++) {
                const rs_series_t *s = &rs->s[i];
                snprintf(ver, sizeof(ver), "%d", s->version);
                const char *lab[] = {"signal", s->signal, "version", ver,
                                     "cohort", s->cohort, NULL};
                enc_prom_sample(b, "encore_reward_updates_total", lab,
                                (double)s->updates);
        }
        enc_prom_family(b, "encore_reward_final_value", "histogram",
                        "Values of final reward updates (one per unit that "
                        "reached its final value), by signal, version and "
                        "cohort; buckets fitted to the signal's range");
        for (int i = 0; i < rs->n; i++) {
                const rs_series_t *s = &rs->s[i];
                if (!s->has_final)
                        continue;
                snprintf(ver, sizeof(ver), "%d", s->version);
                uint64_t cum = 0;
                for (int k = 0; k <= s->final.n; k++) {
                        cum += s->final.counts[k];
                        if (k < s->final.n)
                                snprintf(le, sizeof(le), "%g",
                                         s->final.bounds[k]);
                        else
                                snprintf(le, sizeof(le), "+Inf");
                        const char *lab[] = {"signal", s->signal, "version",
                                             ver,      "cohort",  s->cohort,
                                             "le",     le,        NULL};
                        enc_prom_sample(b, "encore_reward_final_value_bucket",
                                        lab, (double)cum);
                }
                const char *lab[] = {"signal", s->signal, "version", ver,
                                     "cohort", s->cohort, NULL};
                enc_prom_sample(b, "encore_reward_final_value_sum", lab,
                                s->final.sum);
                enc_prom_sample(b, "encore_reward_final_value_count", lab,
                                (double)s->final.count);
        }
        enc_prom_family(b, "encore_reward_cohort_overflow_total", "counter",
                        "Reward updates counted under cohort=\"other\" "
                        "because metrics.cohorts.max cohorts were already "
                        "tracked");
        enc_prom_sample(b, "encore_reward_cohort_overflow_total", NULL,
                        (double)rs->overflow);
}
