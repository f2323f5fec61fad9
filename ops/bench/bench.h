/*
 * bench.h -- what the encore-bench subcommands share: clocks and process
 * figures, a generated input log held in memory, a synthetic population
 * for runs that need millions of users cheaply, and the result lines the
 * ops/bench/run script collects.
 *
 * Single-threaded unless a function says otherwise.
 */
#ifndef ENC_BENCH_H
#define ENC_BENCH_H

#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "enc.h"
#include "event.h"
#include "gen.h"

/* ---- clocks and process figures -------------------------------------- */

/** Monotonic clock, seconds. Any thread. */
double enc_bench_now(void);
/** Wall clock, ms since the epoch (Kafka timestamps, log lines). */
int64_t enc_bench_wall_ms(void);
/** CPU seconds (user + system) of the whole process / calling thread. */
double enc_bench_cpu_process(void);
double enc_bench_cpu_thread(void);

/** Heap allocations made so far by code linked into encore-bench
 *  (ops/bench/allocs.c: malloc, calloc, realloc, strdup; not those made
 *  inside shared libraries). */
uint64_t enc_bench_allocs(void);
/** VmHWM / VmRSS of @p pid (0: this process) in KiB; -1 if unknown. */
long enc_bench_rss_peak_kib(pid_t pid);
long enc_bench_rss_kib(pid_t pid);
/** Pins every thread created from now on (and this one) to @p cpu, so
 *  RocksDB's and librdkafka's threads share it too. -1: no pinning. */
int enc_bench_pin_cpu(int cpu);
/** Bytes allocated on disk under @p dir (du). */
uint64_t enc_bench_du(const char *dir);
/** rm -rf @p dir. */
void enc_bench_rmtree(const char *dir);
/** A new empty directory /tmp/encore-bench-<tag>-XXXXXX (or under
 *  $ENCORE_BENCH_DIR); caller frees and removes it. */
char *enc_bench_tmpdir(const char *tag);

/* ---- results --------------------------------------------------------- */

/**
 * Prints one figure on stdout as
 *   RESULT <name> <value> <unit>
 * (ops/bench/run collects these lines into RESULTS.md) and flushes, so a
 * figure survives a later crash of the run. Progress goes to stderr.
 */
void enc_bench_result(const char *name, double value, const char *unit);
void enc_bench_result_str(const char *name, const char *value);
/** Progress/diagnostic line on stderr, prefixed with the elapsed time. */
void enc_bench_log(const char *fmt, ...) ENC_PRINTF(1, 2);

/* ---- a generated input log ------------------------------------------- */

/* One encoded input record of a log. The value (Confluent-framed
 * PlayEvent) and the key (its user id) are in the log's arena. */
typedef struct enc_bench_rec_s {
        uint64_t at; /* arena offset of the value; the key follows */
        uint32_t val_len;
        uint16_t key_len;
        int32_t partition; /* by a hash of the key */
        int64_t offset;    /* offset within its partition, from 0 */
        int64_t time;      /* the event's event_time */
} enc_bench_rec_t;

typedef struct enc_bench_log_s {
        uint8_t *arena;
        size_t arena_len;
        size_t arena_cap;
        enc_bench_rec_t *recs;
        size_t n;
        size_t cap;
        int partitions;
        int64_t *next_offset;          /* per partition */
        int64_t first_time, last_time; /* event time span */
} enc_bench_log_t;

/** Generates @p count events from @p gc (count 0: until its days run out)
 *  and encodes each, Confluent-framed, into @p log. */
enc_err_t enc_bench_log_generate(enc_bench_log_t *log, const enc_gen_conf_t *gc,
                                 uint64_t count, int partitions, char *errstr,
                                 size_t errstr_size) ENC_WUR;
void enc_bench_log_free(enc_bench_log_t *log);
static inline const uint8_t *enc_bench_log_val(const enc_bench_log_t *log,
                                               size_t i) {
        return log->arena + log->recs[i].at;
}
static inline const char *enc_bench_log_key(const enc_bench_log_t *log,
                                            size_t i) {
        return (const char *)log->arena + log->recs[i].at +
               log->recs[i].val_len;
}

/**
 * The log `encore-bench b1` runs on, for its options --users, --days,
 * --warmup-days, --partitions and --seed: the generator's defaults with
 * those set, every event until its days run out, keyed and partitioned as
 * enc_bench_log_generate does. @p warm gets the number of leading records
 * of the warm-up days (the log is in event-time order). Subcommands that
 * study b1's input (`encore-bench reuse`) take it from here so they see
 * the same bytes. On failure the log is freed.
 */
enc_err_t enc_bench_b1_log(enc_bench_log_t *log, size_t *warm, uint64_t users,
                           int days, int warm_days, int partitions,
                           uint64_t seed, char *errstr,
                           size_t errstr_size) ENC_WUR;

/** The partition of a key: XXH3 of the user id modulo @p partitions. */
int32_t enc_bench_partition(const char *key, size_t klen, int partitions);

/* ---- a synthetic population ------------------------------------------ */

/*
 * Events for runs that need millions of users of state without holding a
 * generator's per-user memory: event i is a pure function of i. In the
 * seed phase event i is user i's first (qualified) play, so `users` events
 * give every user state; in the live phase each event is a play of a user
 * drawn by a hash of i, so reads land all over the state. Event time
 * advances by step_ms per event from @p t0; a third of plays come from a
 * recommendation (discoveries), one in five is a skip.
 */
typedef struct enc_bench_synth_s {
        uint64_t users;
        int64_t t0;
        int64_t step_ms;
        char ids[5][48]; /* event, user, track, artist, recommendation */
} enc_bench_synth_t;

void enc_bench_synth_init(enc_bench_synth_t *s, uint64_t users, int64_t t0,
                          int64_t step_ms);
/** Fills @p ev (strings borrowed from @p s until the next call). */
void enc_bench_synth_event(enc_bench_synth_t *s, uint64_t i, bool seed,
                           enc_event_t *ev);

/**
 * Writes @p users users of state (u0, u1, ...: the synthetic population's
 * ids, partitioned with enc_bench_partition over @p partitions) straight
 * into a new store in @p dir, as a process running for days before @p t0
 * would have left them, in seconds instead of hours (state_build.c says
 * how, and what it does not reproduce). No partition positions are
 * written. @locality the calling thread.
 */
enc_err_t enc_bench_state_build(const char *dir, uint64_t users, int partitions,
                                int64_t t0, char *errstr,
                                size_t errstr_size) ENC_WUR;

/* ---- subcommands ------------------------------------------------------ */

/* Option parsing shared by the subcommands: --name value pairs. A numeric
 * option has str NULL on entry; a string option has its default in str. */
typedef struct enc_bench_opt_s {
        const char *name; /* without the dashes */
        const char *help;
        double num;      /* default on entry, parsed value on return */
        const char *str; /* string options: default / value (argv) */
} enc_bench_opt_t;

/** Parses argv[1..] into @p opts (NULL-name terminated); prints help and
 *  returns false on --help, an unknown option or a malformed number. */
bool enc_bench_parse(int argc, char **argv, enc_bench_opt_t *opts,
                     const char *usage);

/** Sets each "key=value" of @p extra ("k=v;k=v", NULL or "" for none) on
 *  @p conf; false with @p err naming the bad key. */
bool enc_bench_conf_extra(enc_conf_t *conf, const char *extra, char *err,
                          size_t err_size);

int enc_bench_b1(int argc, char **argv);
int enc_bench_b2(int argc, char **argv);
int enc_bench_b3(int argc, char **argv);
int enc_bench_mem(int argc, char **argv);
int enc_bench_soak(int argc, char **argv);
int enc_bench_decode(int argc, char **argv);
int enc_bench_reuse(int argc, char **argv);

#endif /* ENC_BENCH_H */
