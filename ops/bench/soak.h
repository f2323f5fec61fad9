/*
 * soak.h -- a rolling population through the engine for simulated weeks,
 * measuring what must stay bounded: user keys, timer keys and the size of
 * the RocksDB state. Used by `encore-bench soak` and by
 * tests/test_bounded_state.c.
 */
#ifndef ENC_SOAK_H
#define ENC_SOAK_H

#include "config.h"
#include "enc.h"
#include "gen.h"

typedef struct enc_soak_conf_s {
        enc_gen_conf_t gen;      /* the population: users, days, arrival and
                                  * churn rates; its days set the length */
        int partitions;          /* input partitions; users keyed by hash */
        const enc_conf_t *conf;  /* engine configuration (signals, cache);
                                  * borrowed; NULL: the defaults */
        const char *state_dir;   /* an empty directory; borrowed */
        uint64_t commit_records; /* checkpoint every this many records */
} enc_soak_conf_t;

/* The state at the end of one simulated week (counts are cumulative where
 * they say so). Key counts and sizes are taken after a checkpoint, a flush
 * and a full compaction, so they are exact: no tombstones or overwritten
 * versions are left to count. */
typedef struct enc_soak_week_s {
        int week;               /* 1, 2, ... */
        uint64_t events;        /* cumulative */
        uint64_t updates;       /* cumulative */
        uint64_t live_users;    /* generator: listeners not churned */
        uint64_t users_total;   /* generator: day-0 listeners + arrivals */
        uint64_t churned;       /* generator, cumulative */
        uint64_t user_keys;     /* users family */
        uint64_t timer_keys;    /* timers family */
        uint64_t sst_bytes;     /* all families */
        uint64_t users_expired; /* engine, cumulative */
        double seconds;         /* wall clock since the start */
} enc_soak_week_t;

/** Called after each simulated week; a non-zero return stops the run. */
typedef int (*enc_soak_week_cb_t)(void *opaque, const enc_soak_week_t *w);

/**
 * Generates sc->gen's events, feeds them to an engine over a store in
 * sc->state_dir as the pipeline would (checkpoints every commit_records),
 * and reports each completed week of event time to @p cb. Deterministic:
 * the same configuration gives the same weeks, whatever the machine.
 * Returns non-zero with errstr filled on failure, or if the counts of
 * records in and out of the engine do not add up.
 * @locality the calling thread only.
 */
enc_err_t enc_soak_run(const enc_soak_conf_t *sc, enc_soak_week_cb_t cb,
                       void *opaque, char *errstr, size_t errstr_size) ENC_WUR;

#endif /* ENC_SOAK_H */
