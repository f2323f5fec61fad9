/*
 * rewardstats.h -- the reward stream as Prometheus sees it: updates by
 * (signal, version, cohort), and histograms of final reward values by the
 * same labels, with the number of cohorts bounded (metrics.cohorts.max).
 * What `encore readout` computes from the topic, live (consumer/readout.c).
 */
#ifndef ENC_REWARDSTATS_H
#define ENC_REWARDSTATS_H

#include "enc.h"
#include "event.h"
#include "metrics.h"

typedef struct enc_rstats_s enc_rstats_t;

/** The cohort label updates past the cohort bound are counted under. */
#define ENC_RSTATS_OTHER "other"

/** New stats admitting at most @p cohorts_max distinct cohorts (updates
 *  without a cohort, label "", are always admitted). NULL on allocation
 *  failure. Free with enc_rstats_destroy. */
enc_rstats_t *enc_rstats_new(int cohorts_max);
void enc_rstats_destroy(enc_rstats_t *rs);

/** Counts @p up (borrowed for the call) and, if final, observes its value.
 *  Processing thread. An allocation failure loses the sample, never more. */
void enc_rstats_observe(enc_rstats_t *rs, const enc_update_t *up);

/** Renders encore_reward_updates_total, encore_reward_final_value and
 *  encore_reward_cohort_overflow_total into @p b. Processing thread. */
void enc_rstats_render(const enc_rstats_t *rs, enc_buf_t *b);

/** The bucket bounds for a signal's final values, fitted to its range:
 *  horizon_days H > 0 (values are counts of days, 0..H): 0, then integers
 *  spaced geometrically from 1 to H; H = 0 (rates in [0, 1], e.g.
 *  session's completion rate): 0.1, 0.2, ..., 1. Fills @p bounds (room for
 *  ENC_HIST_MAX_BUCKETS) and returns their number. */
int enc_rstats_bounds(int32_t horizon_days, double *bounds);

#endif /* ENC_REWARDSTATS_H */
