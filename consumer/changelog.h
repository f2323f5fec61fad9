/*
 * changelog.h -- the changelog topic of a pipeline: set-up, writing at
 * commits, and restoring partitions from it (see changelog.c). Internal to
 * the consumer module; all functions run on the processing thread.
 */
#ifndef ENC_CHANGELOG_H
#define ENC_CHANGELOG_H

#include "enc.h"

struct enc_pipeline_s;

/** Resolves the changelog topic name and makes sure the topic exists with
 *  one partition per input partition (creating it compacted if missing).
 *  No-op when changelog.enable is false. */
enc_err_t enc_changelog_setup(struct enc_pipeline_s *pl, char *errstr,
                              size_t errstr_size) ENC_WUR;

/** The engine sink's changelog callback (opaque = the pipeline). */
enc_err_t enc_changelog_sink(void *opaque, int32_t partition, const void *key,
                             size_t klen, const void *val, size_t vlen,
                             bool is_meta);

/** Delivery report of a position record of @p partition at @p offset. */
void enc_changelog_delivered(struct enc_pipeline_s *pl, int32_t partition,
                             int64_t offset);

typedef enum enc_cl_plan_e {
        ENC_CL_CURRENT = 0, /* local state is current: process at once */
        ENC_CL_RESTORING,   /* restore started: keep the partition paused */
        ENC_CL_ERROR,
} enc_cl_plan_t;

/** Decides, for a newly assigned @p partition, whether its local state is
 *  current or must be restored, and starts the restore if so. */
enc_cl_plan_t enc_changelog_plan(struct enc_pipeline_s *pl, int32_t partition,
                                 char *errstr, size_t errstr_size);

/** Does a bounded slice of restore work (processing loop). */
void enc_changelog_poll(struct enc_pipeline_s *pl);

/** Stops restoring @p partition (revoked). */
void enc_changelog_cancel(struct enc_pipeline_s *pl, int32_t partition);

bool enc_changelog_restoring(const struct enc_pipeline_s *pl,
                             int32_t partition);

/** Changelog records still to read over all restores in progress. */
int64_t enc_changelog_remaining(const struct enc_pipeline_s *pl);

void enc_changelog_destroy(struct enc_pipeline_s *pl);

#endif /* ENC_CHANGELOG_H */
