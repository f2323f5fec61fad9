/*
 * gen.h -- a seeded, reproducible population of listeners that produces
 * realistic PlayEvents for tests, benchmarks and the local demo.
 *
 * The model, in one paragraph: a catalogue of artists whose popularity is
 * Zipf-Mandelbrot (weight of the artist of rank k, k = 1..artists, is
 * 1/(k+q)^s), each with 4..48 tracks (Zipf, s = 1, within the artist) of
 * log-normal length. A population of `users` listeners is alive on day 0;
 * `arrival_rate * users` new listeners arrive on each later day; each
 * listener churns after a geometric lifetime (per-day hazard `churn_rate`)
 * and may come back weeks later (`return_prob`). A listener has habits drawn
 * once from their id: a daily listening propensity, a preferred hour,
 * session lengths, a skip propensity, and a taste of 8 favourite artists.
 * Sessions are runs of plays back to back (a play ends, the next starts a
 * second or two later); sessions are at least 35 minutes apart. Each play
 * comes from a context (a source and a surface) kept for a few plays at a
 * time; recommendation contexts carry a recommendation id and sometimes
 * explore an artist new to the listener. A qualified (>= 30 s) play of a new
 * artist is adopted into the listener's habits with probability
 * `adopt_prob` (times `treatment_lift` for recommended plays in the
 * treatment cohort), and the listener comes back to it on later days.
 *
 * Identifiers, chosen to be readable and parseable in tests:
 *   event_id          "<seed>-<n>", n = 0, 1, ... in generation order
 *   user_id           "u<index>"; indexes < users are day-0 listeners,
 *                     later ones arrived on later days in index order
 *   artist_id         "a<rank>", rank 0 the most popular by construction
 *   track_id          "t<rank>-<k>", track k of artist a<rank>
 *   recommendation_id "rec-<16 hex>", one per recommendation context
 *   cohort            "control" (45%), "treatment" (45%) or NULL (10% of
 *                     users, not enrolled), by a hash of the user; all NULL
 *                     when cohorts are off
 *
 * Events come out in non-decreasing event time (event_time is when the play
 * ended), except that with disorder_ms > 0 a share of the events is held
 * back by up to disorder_ms of event time: for every event, the largest
 * event time emitted before it is at most event_time + disorder_ms. Disorder
 * only reorders: the set of events is the same with or without it.
 *
 * Reproducibility: the output is a function of the configuration alone
 * (its own PRNGs, never rand() or the clock), on a given libm. Memory is
 * about 100 bytes per live listener (arrays grow by doubling) plus 8 bytes
 * per artist, whatever the number of events.
 */
#ifndef ENC_GEN_H
#define ENC_GEN_H

#include "enc.h"
#include "event.h"

typedef struct enc_gen_s enc_gen_t;

/* 2026-01-05T00:00:00Z, a Monday. */
#define ENC_GEN_DEFAULT_START_MS ((int64_t)1767571200000)

typedef struct enc_gen_conf_s {
        uint64_t seed;         /* default 1 */
        uint32_t users;        /* listeners alive on day 0; 10000 */
        uint32_t days;         /* days of event time to cover; 28 */
        int64_t start_time;    /* ms since epoch; ENC_GEN_DEFAULT_START_MS.
                                * Preferred hours are offsets from it, so a
                                * UTC midnight gives true hours of day. */
        uint64_t count;        /* max events; 0 = until the days run out */
        double arrival_rate;   /* new users per day / users; 0.02 */
        double churn_rate;     /* per-day churn hazard; 0.02 */
        double return_prob;    /* a churned user comes back; 0.25 */
        double rec_share;      /* share of plays from recommendations; 0.35 */
        double skip_rate;      /* share of plays skipped (FORWARD/BACK);
                                * 0.25, at most 0.3 */
        double adopt_prob;     /* a qualified new-artist play becomes a
                                * habit; 0.10 */
        double treatment_lift; /* multiplies adopt_prob for recommended plays
                                * in the treatment cohort; 1.2 */
        uint32_t artists;      /* catalogue size; 20000 */
        double zipf_s;         /* artist popularity exponent; 1.2 */
        double zipf_q;         /* Zipf-Mandelbrot offset; 10 */
        int64_t disorder_ms;   /* max displacement in event time; 0 */
        double disorder_share; /* share of events displaced; 0.05 */
        bool cohorts;          /* A/B cohort labels; true */
} enc_gen_conf_t;

/** Fills @p conf with the defaults above. */
void enc_gen_conf_defaults(enc_gen_conf_t *conf);

/** What the generator did so far; filled by enc_gen_stats(). */
typedef struct enc_gen_stats_s {
        uint64_t events;        /* returned by enc_gen_next() */
        uint64_t users_initial; /* = conf.users */
        uint64_t arrivals;      /* users who arrived after day 0 */
        uint64_t churned;       /* times a user's lifetime ran out */
        uint64_t returned;      /* times a churned user came back */
        uint64_t adoptions;     /* new artists that became a habit */
        uint64_t displaced;     /* events held back by disorder */
        uint64_t live_users;    /* users with a scheduled play */
        uint64_t peak_live_users;
        uint64_t mem_bytes; /* bytes allocated now (tables, users, heaps) */
} enc_gen_stats_t;

/**
 * Builds a generator and its day-0 population. Returns NULL and fills
 * errstr (naming the field) if the configuration is out of range or memory
 * runs out. @p conf is copied. Caller frees with enc_gen_destroy().
 * @locality any thread; the handle is then used from one thread at a time.
 */
enc_gen_t *enc_gen_new(const enc_gen_conf_t *conf, char *errstr,
                       size_t errstr_size) ENC_WUR;

/**
 * Produces the next event into @p ev. Its strings are owned by the
 * generator and borrowed until the next call or enc_gen_destroy().
 * Returns ENC_OK, or ENC_ERR_NOT_FOUND once `count` events have been
 * produced or the days have run out (and on every call after that).
 * @locality the thread using the handle; no locks.
 */
enc_err_t enc_gen_next(enc_gen_t *gen, enc_event_t *ev) ENC_WUR;

/** Copies the counters into @p st. */
void enc_gen_stats(const enc_gen_t *gen, enc_gen_stats_t *st);

/** Frees everything; NULL is a no-op. Borrowed event strings die here. */
void enc_gen_destroy(enc_gen_t *gen);

#endif /* ENC_GEN_H */
