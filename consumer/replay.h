/*
 * replay.h -- bounded re-runs of history: positions given as offsets,
 * timestamps or the ends of a topic, resolved against the broker, then the
 * pipeline run over exactly that range into a fresh state (`encore
 * replay`), and the repositioning of a live group (`encore reset`).
 */
#ifndef ENC_REPLAY_H
#define ENC_REPLAY_H

#include "config.h"
#include "enc.h"
#include "pipeline.h"

#define ENC_POS_MAX_PARTITIONS 1024

typedef enum enc_pos_kind_e {
        ENC_POS_EARLIEST = 0, /* "earliest" */
        ENC_POS_END,          /* "end": the high watermark at start */
        ENC_POS_OFFSETS,      /* "offsets:0=100,1=250" */
        ENC_POS_TIME,         /* "timestamp:2026-01-05T00:00:00Z" or ms */
        ENC_POS_AGO,          /* "ago:3d" / "ago:12h" / "ago:30m" */
} enc_pos_kind_t;

typedef struct enc_position_s {
        enc_pos_kind_t kind;
        int64_t time_ms; /* ENC_POS_TIME; ENC_POS_AGO: the duration */
        int n;           /* ENC_POS_OFFSETS */
        int32_t partition[ENC_POS_MAX_PARTITIONS];
        int64_t offset[ENC_POS_MAX_PARTITIONS];
} enc_position_t;

/** Parses a position; errstr names @p flag and the accepted forms. */
enc_err_t enc_position_parse(const char *s, const char *flag,
                             enc_position_t *pos, char *errstr,
                             size_t errstr_size) ENC_WUR;

/**
 * Resolves [@p from, @p to) for every partition of the input topic of
 * @p conf against the broker. *ranges (caller frees) gets one entry per
 * partition. Partitions an offsets list leaves out start at earliest /
 * end at the end. A timestamp the broker cannot look up is an error that
 * says so.
 */
enc_err_t enc_positions_resolve(const enc_conf_t *conf,
                                const enc_position_t *from,
                                const enc_position_t *to,
                                enc_range_t **ranges, int *n, char *errstr,
                                size_t errstr_size) ENC_WUR;

/** `encore replay`: runs the bounded pipeline with progress on stderr
 *  (when it is a terminal, or @p progress) and prints a summary. Returns
 *  the process exit code. */
int enc_replay_run(const enc_conf_t *conf, const enc_position_t *from,
                   const enc_position_t *to, bool progress);

/** `encore reset`: moves the group's offsets to @p to and clears the
 *  stored state (changelog records, local state directory), refusing while
 *  the group has members, or when that cannot be told unless @p force.
 *  @p dry_run prints the plan only. */
int enc_reset_run(const enc_conf_t *conf, const enc_position_t *to,
                  bool dry_run, bool clear_local, bool force);

#endif /* ENC_REPLAY_H */
