/*
 * gen.c -- the synthetic listener population behind encore-gen.
 *
 * DESIGN
 * Every live listener has exactly one entry in a min-heap keyed by (the
 * event time of their next play, their index). enc_gen_next() takes the top
 * listener, turns their pending play into an event, draws their next play
 * (the next in the session, or the first of a later session) and puts them
 * back. So the output is a merge of per-listener timelines and comes out in
 * event-time order; memory is one small record per live listener, and
 * nothing about the future is materialised beyond one play each.
 *
 * Reproducibility has two layers. What a listener *is* (habits, favourite
 * artists, cohort, breaks) and what the catalogue is (track counts and
 * lengths) are stateless hashes of (seed, tag, ids), recomputed when needed
 * instead of stored. What a listener *does* comes from their own splitmix64
 * stream, seeded from their index, so a listener's timeline does not depend
 * on how it interleaves with others, on count or on disorder. Nothing here
 * may call rand() or read a clock.
 *
 * Shares are exact by construction where tests check them: the context
 * (source, surface) of every play has the configured marginal distribution
 * (sticky contexts are kept or redrawn from the same distribution), and the
 * skip probability of a play is the listener's skip factor times a context
 * and novelty multiplier normalised so that its mean over plays is
 * conf.skip_rate. Every artist a listener plays is, at some point, one
 * Zipf draw (a favourite slot, an exploration, or a replay of either), and
 * which draw is replayed does not depend on its value, so artist play
 * shares follow the Zipf-Mandelbrot weights.
 *
 * Disorder is applied after generation: a share of events (chosen by a hash
 * of the event number, not by the listeners' streams) is held in a second
 * heap until the main stream passes its release time (event time + a delay
 * of at most disorder_ms). It only reorders, and it is bounded: when the
 * hold-back heap is full its earliest event goes out early, which shortens
 * a displacement and never lengthens one.
 */
#include "gen.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- model constants -------------------------------------------------- */

#define FAVS                  8 /* favourite artists per listener */
#define ADOPT_SLOTS           4 /* adopted (discovered) artists remembered */
#define TRACKS_MIN            4 /* tracks per artist: TRACKS_MIN..TRACKS_MAX */
#define TRACKS_MAX            48
#define QUALIFIED_MS          30000
#define STICKY                0.80 /* a play keeps the previous play's context */
#define NOVEL_SKIP_MULT       1.5  /* new artists are skipped more */
#define FORWARD_SHARE         0.85  /* of skips; the rest are BACK */
#define EARLY_SKIP_SHARE      0.80  /* of skips, ms_played < 30 s */
#define END_PLAY_P            0.03  /* of non-skips; ends the session */
#define LOGOUT_P              0.005 /* of non-skips; ends the session */
#define UNKNOWN_P             0.005 /* of non-skips */
#define PAUSE_P               0.03  /* in-session pause of 1..10 min */
#define SESSION_GAP_MS        (35 * ENC_MS_PER_MIN)
#define NEXT_SESSION_MEAN_MIN 150.0
#define AWAY_WEEKLY_P         0.06 /* chance of a 2..6 day break in a week */
#define WEEKEND_LISTEN_MULT   0.85
#define WEEKEND_HOUR_SHIFT    1.5
#define TRIALIST_P            0.30 /* arrivals who stop within a week */
#define RETURN_GAP_MIN        7 /* churned users come back after 7..41 days */
#define RETURN_GAP_SPAN       35
#define DELAY_CAP             65536 /* events held back by disorder, at most */
#define DUR_MEDIAN_MS         215000.0
#define DUR_SIGMA             0.30
#define DUR_MIN_MS            45000
#define DUR_MAX_MS            900000
#define NEVER_DAY             UINT16_MAX

/* A context: where a play starts. Weights are within the recommendation
 * group (scaled by rec_share) or within the rest (scaled by 1 - rec_share). */
typedef struct ctx_s {
        enc_source_t source;
        const char *surface;
        double weight;
        double explore;   /* chance the play is an artist drawn anew */
        double skip_mult; /* before normalisation */
} ctx_t;

#define CTX_CNT 10
static const ctx_t ctxs[CTX_CNT] = {
        {ENC_SRC_RECOMMENDATION, "home", 0.40, 0.25, 1.1},
        {ENC_SRC_RECOMMENDATION, "discover_weekly", 0.20, 0.70, 1.1},
        {ENC_SRC_RECOMMENDATION, "daily_mix", 0.20, 0.10, 1.1},
        {ENC_SRC_RECOMMENDATION, "release_radar", 0.10, 0.10, 1.1},
        {ENC_SRC_RECOMMENDATION, "autoplay", 0.10, 0.35, 1.1},
        {ENC_SRC_SEARCH, "search", 0.15, 0.15, 0.6},
        {ENC_SRC_LIBRARY, "library", 0.30, 0.00, 0.7},
        {ENC_SRC_PLAYLIST, "playlist", 0.35, 0.05, 1.0},
        {ENC_SRC_RADIO, "radio", 0.12, 0.25, 1.3},
        {ENC_SRC_OTHER, "other", 0.08, 0.40, 1.0},
};

/* Hash tags: one per independent stateless draw. */
enum {
        TAG_USER_RNG = 1,
        TAG_TRAIT,
        TAG_FAV,
        TAG_NTRACKS,
        TAG_DURATION,
        TAG_AWAY,
        TAG_COHORT,
        TAG_REC,
        TAG_ARRIVALS,
        TAG_DISORDER,
};

/* Listener traits, by index into the trait hash. */
enum {
        TR_LISTEN = 0, /* daily propensity */
        TR_MORE,       /* another session the same day */
        TR_SESSION,    /* mean plays per session */
        TR_SKIP,       /* skip factor */
        TR_PEAK,       /* preferred hour: which mode */
        TR_PEAK_OFF,   /* preferred hour: personal offset */
};

/* ---- randomness --------------------------------------------------------- */

#define GOLDEN UINT64_C(0x9e3779b97f4a7c15)

static inline uint64_t mix64(uint64_t z) {
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/* splitmix64: 8 bytes of state per listener, full 2^64 period. */
static inline uint64_t rng_next(uint64_t *s) {
        *s += GOLDEN;
        return mix64(*s);
}

static inline double u01(uint64_t x) {
        return (double)(x >> 11) * 0x1.0p-53; /* [0, 1) */
}

static inline double rng_unif(uint64_t *s) {
        return u01(rng_next(s));
}

static inline uint64_t hash4(uint64_t seed, uint64_t tag, uint64_t a,
                             uint64_t b) {
        uint64_t h = mix64(seed + GOLDEN);
        h = mix64(h ^ (tag * GOLDEN));
        h = mix64(h ^ a);
        return mix64(h ^ (b + GOLDEN));
}

/* Approximately standard normal (Irwin-Hall of 4 uniforms, rescaled):
 * no libm, bounded at +-3.46, plenty for hours and track lengths. */
static inline double normal4(uint64_t x) {
        double s = 0;
        for (int i = 0; i < 4; i++)
                s += (double)((x >> (16 * i)) & 0xffff) / 65536.0;
        return (s - 2.0) * 1.7320508075688772;
}

/* ---- state -------------------------------------------------------------- */

/* A play, compact. Strings are rendered from it only when it is emitted. */
typedef struct play_s {
        int64_t t; /* event time: when the play ended */
        uint32_t artist;
        uint32_t ms_played;
        uint32_t duration;
        uint32_t rec_block; /* recommendation id = hash(user, rec_block) */
        uint8_t track;
        uint8_t reason;
        uint8_t ctx;
        uint8_t novel;
} play_t;

/* One live listener, 80 bytes. Habits are not stored (see trait()). */
typedef struct user_s {
        uint64_t rng;
        uint32_t uidx;
        uint32_t rec_block;
        uint32_t adopt[ADOPT_SLOTS];
        uint16_t adopt_day[ADOPT_SLOTS];
        uint16_t until; /* last day alive; NEVER_DAY = does not churn */
        uint8_t adopt_cnt;
        uint8_t adopt_next;
        play_t p; /* the pending play: the user's next event */
} user_t;

/* The memory bound in gen.h (and test_gen) counts on this. */
_Static_assert(sizeof(user_t) == 80, "user_t grew: update the memory bound");

typedef struct hent_s {
        int64_t t;
        uint32_t uidx;
        uint32_t slot;
} hent_t;

/* An event on its way out (staged or held back by disorder). */
typedef struct rec_s {
        int64_t release;
        uint64_t n;
        uint32_t uidx;
        play_t p;
} rec_t;

struct enc_gen_s {
        enc_gen_conf_t conf;
        int64_t end_time;
        double skip_norm;
        double ctx_cdf[CTX_CNT];
        double *artist_cdf; /* conf.artists entries, last is 1 */
        double track_cdf[TRACKS_MAX + 1][TRACKS_MAX];
        double fav_wsum;

        user_t *users; /* slots; a slot is free when not in the heap */
        uint32_t users_cap;
        uint32_t *free_slots;
        uint32_t free_cnt;
        uint32_t users_used; /* slots ever handed out */
        hent_t *heap;
        size_t heap_len;
        size_t heap_cap;
        rec_t *delay;
        size_t delay_len;
        rec_t staged;
        bool has_staged;
        bool main_done;
        bool done;

        uint32_t next_uidx;
        uint32_t arrivals_day;
        uint64_t next_n;
        enc_gen_stats_t st;

        /* Rendered strings of the last event returned. */
        char event_id[48];
        char user_id[16];
        char track_id[32];
        char artist_id[16];
        char rec_id[24];
};

void enc_gen_conf_defaults(enc_gen_conf_t *conf) {
        memset(conf, 0, sizeof(*conf));
        conf->seed = 1;
        conf->users = 10000;
        conf->days = 28;
        conf->start_time = ENC_GEN_DEFAULT_START_MS;
        conf->count = 0;
        conf->arrival_rate = 0.02;
        conf->churn_rate = 0.02;
        conf->return_prob = 0.25;
        conf->rec_share = 0.35;
        conf->skip_rate = 0.25;
        conf->adopt_prob = 0.10;
        conf->treatment_lift = 1.2;
        conf->artists = 20000;
        conf->zipf_s = 1.2;
        conf->zipf_q = 10;
        conf->disorder_ms = 0;
        conf->disorder_share = 0.05;
        conf->cohorts = true;
}

/* ---- catalogue ---------------------------------------------------------- */

static uint32_t zipf_artist(const enc_gen_t *g, double u) {
        const double *c = g->artist_cdf;
        uint32_t lo = 0, hi = g->conf.artists - 1;
        while (lo < hi) { /* first index with cdf > u */
                uint32_t mid = lo + (hi - lo) / 2;
                if (c[mid] > u)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

static unsigned ntracks(const enc_gen_t *g, uint32_t artist) {
        uint64_t h = hash4(g->conf.seed, TAG_NTRACKS, artist, 0);
        return TRACKS_MIN + (unsigned)(h % (TRACKS_MAX - TRACKS_MIN + 1));
}

static uint32_t track_duration(const enc_gen_t *g, uint32_t artist,
                               unsigned track) {
        uint64_t h = hash4(g->conf.seed, TAG_DURATION, artist, track);
        double ms = DUR_MEDIAN_MS * exp(DUR_SIGMA * normal4(h));
        if (ms < DUR_MIN_MS)
                ms = DUR_MIN_MS;
        if (ms > DUR_MAX_MS)
                ms = DUR_MAX_MS;
        return (uint32_t)ms;
}

static unsigned pick_track(const enc_gen_t *g, uint32_t artist, double u) {
        unsigned n = ntracks(g, artist);
        const double *c = g->track_cdf[n];
        unsigned k = 0;
        while (k + 1 < n && c[k] <= u)
                k++;
        return k;
}

/* ---- listener habits ---------------------------------------------------- */

static inline double trait(const enc_gen_t *g, uint32_t uidx, int which) {
        return u01(hash4(g->conf.seed, TAG_TRAIT, uidx, (uint64_t)which));
}

static uint32_t fav_artist(const enc_gen_t *g, uint32_t uidx, unsigned k) {
        return zipf_artist(g, u01(hash4(g->conf.seed, TAG_FAV, uidx, k)));
}

static double session_stop_p(const enc_gen_t *g, uint32_t uidx) {
        return 1.0 / (3.0 + 20.0 * trait(g, uidx, TR_SESSION));
}

static bool is_weekend(const enc_gen_t *g, int64_t day) {
        int64_t abs_day = enc_day_of(g->conf.start_time + day * ENC_MS_PER_DAY);
        int64_t dow = ((abs_day + 4) % 7 + 7) % 7; /* 0 = Sunday */
        return dow == 0 || dow == 6;
}

static bool away(const enc_gen_t *g, uint32_t uidx, int64_t day) {
        for (int64_t w = day / 7; w >= 0 && w >= day / 7 - 1; w--) {
                uint64_t h = hash4(g->conf.seed, TAG_AWAY, uidx, (uint64_t)w);
                if (u01(h) >= AWAY_WEEKLY_P)
                        continue;
                int64_t from = w * 7 + (int64_t)((h >> 20) % 7);
                int64_t len = 2 + (int64_t)((h >> 28) % 5);
                if (day >= from && day < from + len)
                        return true;
        }
        return false;
}

/* Enrolment by a hash of the user: 45% control, 45% treatment, 10% not
 * in the experiment (cohort NULL). */
typedef enum cohort_e {
        COHORT_NONE,
        COHORT_CONTROL,
        COHORT_TREATMENT
} cohort_t;

static cohort_t cohort_of(const enc_gen_t *g, uint32_t uidx) {
        if (!g->conf.cohorts)
                return COHORT_NONE;
        uint64_t b = hash4(g->conf.seed, TAG_COHORT, uidx, 0) % 100;
        return b < 45   ? COHORT_CONTROL
               : b < 90 ? COHORT_TREATMENT
                        : COHORT_NONE;
}

static const char *cohort_name(cohort_t c) {
        return c == COHORT_CONTROL     ? "control"
               : c == COHORT_TREATMENT ? "treatment"
                                       : NULL;
}

static uint16_t lifetime(const enc_gen_t *g, user_t *u) {
        if (g->conf.churn_rate <= 0)
                return NEVER_DAY;
        double x = 1.0 - rng_unif(&u->rng); /* (0, 1] */
        double l = floor(log(x) / log1p(-g->conf.churn_rate));
        return l >= NEVER_DAY - 1 ? NEVER_DAY - 1 : (uint16_t)l;
}

static inline int64_t day_start(const enc_gen_t *g, int64_t day) {
        return g->conf.start_time + day * ENC_MS_PER_DAY;
}

/* When the user's first session of @p day starts: their preferred hour,
 * later at weekends, with a spread of about 1.6 h. */
static int64_t session_start(const enc_gen_t *g, user_t *u, int64_t day) {
        static const double peaks[] = {8.0, 12.5, 18.0, 21.5};
        double m = trait(g, u->uidx, TR_PEAK);
        double hour = peaks[m < 0.20 ? 0 : m < 0.35 ? 1 : m < 0.70 ? 2 : 3];
        hour += 2.0 * (trait(g, u->uidx, TR_PEAK_OFF) - 0.5);
        if (is_weekend(g, day))
                hour += WEEKEND_HOUR_SHIFT;
        hour += 1.6 * normal4(rng_next(&u->rng));
        int64_t ms = (int64_t)(hour * 3600000.0) % ENC_MS_PER_DAY;
        if (ms < 0)
                ms += ENC_MS_PER_DAY;
        return day_start(g, day) + ms;
}

/* The next day >= @p from the user listens on, or -1 (gone for good or
 * past the last day). Walking past the user's lifetime is a churn; with
 * return_prob they come back weeks later for a new lifetime. */
static int64_t next_listen_day(enc_gen_t *g, user_t *u, int64_t from) {
        double p = 0.12 + 0.83 * trait(g, u->uidx, TR_LISTEN);
        for (int64_t d = from; d < (int64_t)g->conf.days; d++) {
                if (u->until != NEVER_DAY && d > (int64_t)u->until) {
                        g->st.churned++;
                        if (rng_unif(&u->rng) >= g->conf.return_prob)
                                return -1;
                        d = (int64_t)u->until + 1 + RETURN_GAP_MIN +
                            (int64_t)(rng_next(&u->rng) % RETURN_GAP_SPAN);
                        if (d >= (int64_t)g->conf.days)
                                return -1;
                        int64_t until = d + lifetime(g, u);
                        u->until = until >= NEVER_DAY ? NEVER_DAY - 1
                                                      : (uint16_t)until;
                        g->st.returned++;
                        return d; /* a returning listener plays that day */
                }
                if (away(g, u->uidx, d))
                        continue;
                double pd = is_weekend(g, d) ? p * WEEKEND_LISTEN_MULT : p;
                if (rng_unif(&u->rng) < pd)
                        return d;
        }
        return -1;
}

static double adopt_weight(int64_t age_days) {
        return age_days < 14 ? 0.35 : age_days < 42 ? 0.20 : 0.10;
}

/* An artist the user already knows: a favourite (weight 1/(k+1)) or an
 * adopted discovery (weight fading with age). */
static uint32_t known_artist(const enc_gen_t *g, user_t *u, int64_t day) {
        double w[ADOPT_SLOTS];
        double total = g->fav_wsum;
        for (unsigned i = 0; i < u->adopt_cnt; i++) {
                w[i] = adopt_weight(day - (int64_t)u->adopt_day[i]);
                total += w[i];
        }
        double x = rng_unif(&u->rng) * total;
        for (unsigned k = 0; k < FAVS; k++) {
                x -= 1.0 / (double)(k + 1);
                if (x < 0)
                        return fav_artist(g, u->uidx, k);
        }
        for (unsigned i = 0; i < u->adopt_cnt; i++) {
                x -= w[i];
                if (x < 0)
                        return u->adopt[i];
        }
        return fav_artist(g, u->uidx, 0); /* rounding */
}

static bool knows(const enc_gen_t *g, const user_t *u, uint32_t artist) {
        for (unsigned i = 0; i < u->adopt_cnt; i++)
                if (u->adopt[i] == artist)
                        return true;
        for (unsigned k = 0; k < FAVS; k++)
                if (fav_artist(g, u->uidx, k) == artist)
                        return true;
        return false;
}

static void maybe_adopt(enc_gen_t *g, user_t *u, const play_t *p) {
        double prob = g->conf.adopt_prob;
        if (ctxs[p->ctx].source == ENC_SRC_RECOMMENDATION &&
            cohort_of(g, u->uidx) == COHORT_TREATMENT)
                prob *= g->conf.treatment_lift;
        if (rng_unif(&u->rng) >= prob || knows(g, u, p->artist))
                return;
        int64_t day = (p->t - g->conf.start_time) / ENC_MS_PER_DAY;
        unsigned i = u->adopt_next;
        u->adopt[i] = p->artist;
        u->adopt_day[i] = (uint16_t)day;
        u->adopt_next = (uint8_t)((i + 1) % ADOPT_SLOTS);
        if (u->adopt_cnt < ADOPT_SLOTS)
                u->adopt_cnt++;
        g->st.adoptions++;
}

static unsigned draw_ctx(const enc_gen_t *g, user_t *u) {
        double x = rng_unif(&u->rng);
        unsigned c = 0;
        while (c + 1 < CTX_CNT && g->ctx_cdf[c] <= x)
                c++;
        return c;
}

/* Enters context @p c: a recommendation context is a new impression. */
static void enter_ctx(user_t *u, unsigned c) {
        u->p.ctx = (uint8_t)c;
        if (ctxs[c].source == ENC_SRC_RECOMMENDATION)
                u->rec_block++;
        u->p.rec_block = u->rec_block;
}

/* Draws the play starting at @p start into u->p, whose ctx is set. With
 * @p replay the track is the one just played (after a BACK). */
static void make_play(enc_gen_t *g, user_t *u, int64_t start, bool replay) {
        play_t *p = &u->p;
        const ctx_t *c = &ctxs[p->ctx];
        int64_t day = (start - g->conf.start_time) / ENC_MS_PER_DAY;

        if (!replay) {
                p->novel = rng_unif(&u->rng) < c->explore;
                p->artist = p->novel ? zipf_artist(g, rng_unif(&u->rng))
                                     : known_artist(g, u, day);
                p->track = (uint8_t)pick_track(g, p->artist, rng_unif(&u->rng));
                p->duration = track_duration(g, p->artist, p->track);
        }

        double skip = g->conf.skip_rate *
                      (0.4 + 1.2 * trait(g, u->uidx, TR_SKIP)) * c->skip_mult *
                      (p->novel ? NOVEL_SKIP_MULT : 1.0) / g->skip_norm;
        if (skip > 0.98)
                skip = 0.98;
        double dur = (double)p->duration;
        double x = rng_unif(&u->rng);
        double y = rng_unif(&u->rng);
        double z = rng_unif(&u->rng);
        if (x < skip) {
                p->reason = y < FORWARD_SHARE ? ENC_END_FORWARD : ENC_END_BACK;
                if (z < EARLY_SKIP_SHARE)
                        p->ms_played = 1000 + (uint32_t)(rng_unif(&u->rng) *
                                                         (QUALIFIED_MS - 1000));
                else
                        p->ms_played = QUALIFIED_MS +
                                       (uint32_t)(rng_unif(&u->rng) *
                                                  (0.9 * dur - QUALIFIED_MS));
        } else if (y < END_PLAY_P + LOGOUT_P + UNKNOWN_P) {
                p->reason = y < END_PLAY_P              ? ENC_END_END_PLAY
                            : y < END_PLAY_P + LOGOUT_P ? ENC_END_LOGOUT
                                                        : ENC_END_UNKNOWN;
                p->ms_played = (uint32_t)((0.05 + 0.9 * z) * dur);
        } else {
                p->reason = ENC_END_TRACK_DONE;
                p->ms_played = p->duration;
        }
        p->t = start + p->ms_played;
        if (p->novel && p->ms_played >= QUALIFIED_MS)
                maybe_adopt(g, u, p);
}

/* Schedules the first play of a session on @p day, no earlier than
 * @p not_before. */
static void start_session(enc_gen_t *g, user_t *u, int64_t day,
                          int64_t not_before) {
        int64_t s = session_start(g, u, day);
        if (s < not_before)
                s = not_before;
        enter_ctx(u, draw_ctx(g, u));
        make_play(g, u, s, false);
}

/* The pending play was just emitted: draws the next one. Returns false if
 * the user has nothing more to play before the end (free their slot). */
static bool advance(enc_gen_t *g, user_t *u) {
        const play_t prev = u->p;
        bool ends = prev.reason == ENC_END_END_PLAY ||
                    prev.reason == ENC_END_LOGOUT ||
                    rng_unif(&u->rng) < session_stop_p(g, u->uidx);

        if (!ends) {
                bool skipped = prev.reason == ENC_END_FORWARD ||
                               prev.reason == ENC_END_BACK;
                int64_t gap =
                        skipped ? 100 + (int64_t)(rng_next(&u->rng) % 500)
                                : 200 + (int64_t)(rng_next(&u->rng) % 2300);
                if (rng_unif(&u->rng) < PAUSE_P)
                        gap += ENC_MS_PER_MIN + (int64_t)(rng_next(&u->rng) %
                                                          (9 * ENC_MS_PER_MIN));
                bool replay = prev.reason == ENC_END_BACK;
                if (!replay && rng_unif(&u->rng) >= STICKY)
                        enter_ctx(u, draw_ctx(g, u));
                make_play(g, u, prev.t + gap, replay);
        } else {
                int64_t day = (prev.t - g->conf.start_time) / ENC_MS_PER_DAY;
                double more = 0.15 + 0.45 * trait(g, u->uidx, TR_MORE);
                bool again = false;
                if (rng_unif(&u->rng) < more) {
                        double e = -log1p(-rng_unif(&u->rng));
                        int64_t s = prev.t + SESSION_GAP_MS +
                                    (int64_t)(e * NEXT_SESSION_MEAN_MIN *
                                              (double)ENC_MS_PER_MIN);
                        if (s < day_start(g, day + 1)) {
                                enter_ctx(u, draw_ctx(g, u));
                                make_play(g, u, s, false);
                                again = true;
                        }
                }
                if (!again) {
                        int64_t d = next_listen_day(g, u, day + 1);
                        if (d < 0)
                                return false;
                        start_session(g, u, d, prev.t + SESSION_GAP_MS);
                }
        }
        return u->p.t < g->end_time;
}

/* ---- heaps -------------------------------------------------------------- */

static inline bool hent_lt(const hent_t *a, const hent_t *b) {
        return a->t < b->t || (a->t == b->t && a->uidx < b->uidx);
}

static void heap_sift_down(hent_t *h, size_t len, size_t i) {
        hent_t x = h[i];
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= len)
                        break;
                if (c + 1 < len && hent_lt(&h[c + 1], &h[c]))
                        c++;
                if (!hent_lt(&h[c], &x))
                        break;
                h[i] = h[c];
                i = c;
        }
        h[i] = x;
}

static void heap_push(enc_gen_t *g, hent_t e) {
        /* capacity is reserved by the caller (slot_alloc) */
        size_t i = g->heap_len++;
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (!hent_lt(&e, &g->heap[parent]))
                        break;
                g->heap[i] = g->heap[parent];
                i = parent;
        }
        g->heap[i] = e;
}

static inline bool rec_lt(const rec_t *a, const rec_t *b) {
        return a->release < b->release ||
               (a->release == b->release && a->n < b->n);
}

static void delay_push(enc_gen_t *g, const rec_t *r) {
        size_t i = g->delay_len++;
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (!rec_lt(r, &g->delay[parent]))
                        break;
                g->delay[i] = g->delay[parent];
                i = parent;
        }
        g->delay[i] = *r;
}

static rec_t delay_pop(enc_gen_t *g) {
        rec_t top = g->delay[0];
        rec_t x = g->delay[--g->delay_len];
        size_t len = g->delay_len, i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= len)
                        break;
                if (c + 1 < len && rec_lt(&g->delay[c + 1], &g->delay[c]))
                        c++;
                if (!rec_lt(&g->delay[c], &x))
                        break;
                g->delay[i] = g->delay[c];
                i = c;
        }
        if (len > 0)
                g->delay[i] = x;
        return top;
}

/* ---- population --------------------------------------------------------- */

static void update_mem(enc_gen_t *g) {
        g->st.mem_bytes = sizeof(*g) + (uint64_t)g->conf.artists * 8 +
                          (uint64_t)g->users_cap * sizeof(user_t) +
                          (uint64_t)g->users_cap * sizeof(uint32_t) +
                          (uint64_t)g->heap_cap * sizeof(hent_t) +
                          (uint64_t)DELAY_CAP * (g->delay ? sizeof(rec_t) : 0);
}

/* A free user slot (growing the arrays geometrically), or UINT32_MAX when
 * memory runs out. Grows the heap alongside: a slot in use is in the heap. */
static uint32_t slot_alloc(enc_gen_t *g) {
        if (g->free_cnt > 0)
                return g->free_slots[--g->free_cnt];
        if (g->users_used == g->users_cap) {
                if (g->users_cap > UINT32_MAX / 2)
                        return UINT32_MAX;
                uint32_t cap = g->users_cap ? g->users_cap * 2 : 1024;
                user_t *nu = realloc(g->users, (size_t)cap * sizeof(*nu));
                if (!nu)
                        return UINT32_MAX;
                g->users = nu;
                uint32_t *nf =
                        realloc(g->free_slots, (size_t)cap * sizeof(*nf));
                if (!nf)
                        return UINT32_MAX;
                g->free_slots = nf;
                hent_t *nh = realloc(g->heap, (size_t)cap * sizeof(*nh));
                if (!nh)
                        return UINT32_MAX;
                g->heap = nh;
                g->users_cap = g->heap_cap = cap;
                update_mem(g);
        }
        return g->users_used++;
}

/* Adds user @p uidx arriving on @p day (0 for the initial population,
 * who may not listen that day; arrivals always do). */
static enc_err_t add_user(enc_gen_t *g, uint32_t uidx, int64_t day,
                          bool initial) {
        uint32_t slot = slot_alloc(g);
        if (slot == UINT32_MAX)
                return ENC_ERR_NOMEM;
        user_t *u = &g->users[slot];
        memset(u, 0, sizeof(*u));
        u->uidx = uidx;
        u->rng = hash4(g->conf.seed, TAG_USER_RNG, uidx, 0);
        int64_t first = day;
        if (initial) {
                u->until = lifetime(g, u);
                first = next_listen_day(g, u, day);
        } else {
                int64_t life = rng_unif(&u->rng) < TRIALIST_P
                                       ? (int64_t)(rng_next(&u->rng) % 7)
                                       : (int64_t)lifetime(g, u);
                int64_t until = day + life;
                u->until = until >= NEVER_DAY ? NEVER_DAY - 1 : (uint16_t)until;
        }
        if (first >= 0) {
                start_session(g, u, first, INT64_MIN);
                if (u->p.t < g->end_time) {
                        heap_push(g, (hent_t){u->p.t, uidx, slot});
                        g->st.live_users++;
                        if (g->st.live_users > g->st.peak_live_users)
                                g->st.peak_live_users = g->st.live_users;
                        return ENC_OK;
                }
        }
        g->free_slots[g->free_cnt++] = slot;
        return ENC_OK;
}

static enc_err_t add_arrivals(enc_gen_t *g, int64_t day) {
        double x = (double)g->conf.users * g->conf.arrival_rate;
        double whole = floor(x);
        uint64_t n = (uint64_t)whole;
        if (u01(hash4(g->conf.seed, TAG_ARRIVALS, (uint64_t)day, 0)) <
            x - whole)
                n++;
        for (uint64_t i = 0; i < n; i++) {
                if (g->next_uidx == UINT32_MAX)
                        return ENC_ERR_TOO_LARGE;
                enc_err_t err = add_user(g, g->next_uidx++, day, false);
                if (err)
                        return err;
                g->st.arrivals++;
        }
        return ENC_OK;
}

/* The next play of the merged timeline into @p r, or false when no user
 * has anything left before the end. */
static enc_err_t produce(enc_gen_t *g, rec_t *r, bool *got) {
        *got = false;
        while (g->arrivals_day < g->conf.days &&
               (g->heap_len == 0 ||
                g->heap[0].t >= day_start(g, g->arrivals_day))) {
                enc_err_t err = add_arrivals(g, g->arrivals_day);
                if (err)
                        return err;
                g->arrivals_day++;
        }
        if (g->heap_len == 0)
                return ENC_OK;
        uint32_t slot = g->heap[0].slot;
        user_t *u = &g->users[slot];
        r->n = g->next_n++;
        r->uidx = u->uidx;
        r->p = u->p;
        r->release = u->p.t;
        if (advance(g, u)) {
                g->heap[0].t = u->p.t;
                heap_sift_down(g->heap, g->heap_len, 0);
        } else {
                g->heap[0] = g->heap[--g->heap_len];
                heap_sift_down(g->heap, g->heap_len, 0);
                g->free_slots[g->free_cnt++] = slot;
                g->st.live_users--;
        }
        *got = true;
        return ENC_OK;
}

/* ---- output ------------------------------------------------------------- */

static char *put_u64(char *p, uint64_t v) {
        char tmp[20];
        int n = 0;
        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (n > 0)
                *p++ = tmp[--n];
        return p;
}

static void render(enc_gen_t *g, const rec_t *r, enc_event_t *ev) {
        char *p;
        p = put_u64(g->event_id, g->conf.seed);
        *p++ = '-';
        *put_u64(p, r->n) = '\0';
        g->user_id[0] = 'u';
        *put_u64(g->user_id + 1, r->uidx) = '\0';
        g->artist_id[0] = 'a';
        *put_u64(g->artist_id + 1, r->p.artist) = '\0';
        g->track_id[0] = 't';
        p = put_u64(g->track_id + 1, r->p.artist);
        *p++ = '-';
        *put_u64(p, r->p.track) = '\0';

        const ctx_t *c = &ctxs[r->p.ctx];
        memset(ev, 0, sizeof(*ev));
        ev->event_id = g->event_id;
        ev->user_id = g->user_id;
        ev->track_id = g->track_id;
        ev->artist_id = g->artist_id;
        ev->event_time = r->p.t;
        ev->ms_played = r->p.ms_played;
        ev->track_duration_ms = r->p.duration;
        ev->reason_end = (enc_reason_end_t)r->p.reason;
        ev->source = c->source;
        ev->surface = c->surface;
        ev->recommendation_id = NULL;
        if (c->source == ENC_SRC_RECOMMENDATION) {
                static const char hex[] = "0123456789abcdef";
                uint64_t h =
                        hash4(g->conf.seed, TAG_REC, r->uidx, r->p.rec_block);
                memcpy(g->rec_id, "rec-", 4);
                for (int i = 0; i < 16; i++)
                        g->rec_id[4 + i] = hex[(h >> (60 - 4 * i)) & 0xf];
                g->rec_id[20] = '\0';
                ev->recommendation_id = g->rec_id;
        }
        ev->cohort = cohort_name(cohort_of(g, r->uidx));
        g->st.events++;
}

enc_err_t enc_gen_next(enc_gen_t *gen, enc_event_t *ev) {
        enc_gen_t *g = gen;
        if (g->done || (g->conf.count && g->st.events >= g->conf.count)) {
                g->done = true;
                return ENC_ERR_NOT_FOUND;
        }
        for (;;) {
                if (g->delay_len >= DELAY_CAP) {
                        rec_t r = delay_pop(g); /* early: still in bound */
                        render(g, &r, ev);
                        return ENC_OK;
                }
                if (!g->has_staged && !g->main_done) {
                        bool got;
                        enc_err_t err = produce(g, &g->staged, &got);
                        if (err)
                                return err;
                        if (!got) {
                                g->main_done = true;
                        } else if (g->conf.disorder_ms > 0) {
                                uint64_t h = hash4(g->conf.seed, TAG_DISORDER,
                                                   g->staged.n, 0);
                                if (u01(h) < g->conf.disorder_share) {
                                        g->staged.release =
                                                g->staged.p.t + 1 +
                                                (int64_t)(mix64(h) %
                                                          (uint64_t)g->conf
                                                                  .disorder_ms);
                                        delay_push(g, &g->staged);
                                        g->st.displaced++;
                                        continue;
                                }
                                g->has_staged = true;
                        } else {
                                g->has_staged = true;
                        }
                }
                if (g->delay_len > 0 &&
                    (!g->has_staged || rec_lt(&g->delay[0], &g->staged))) {
                        rec_t r = delay_pop(g);
                        render(g, &r, ev);
                        return ENC_OK;
                }
                if (g->has_staged) {
                        g->has_staged = false;
                        render(g, &g->staged, ev);
                        return ENC_OK;
                }
                g->done = true;
                return ENC_ERR_NOT_FOUND;
        }
}

/* ---- lifecycle ---------------------------------------------------------- */

static enc_err_t check_conf(const enc_gen_conf_t *c, char *errstr,
                            size_t errstr_size) {
#define RANGE(field, ok, want)                                                 \
        do {                                                                   \
                if (!(ok))                                                     \
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG, \
                                          "gen: " field ": must be " want);    \
        } while (0)
        RANGE("users", c->users >= 1 && c->users <= 50000000,
              "in [1, 50000000]");
        RANGE("days", c->days >= 1 && c->days <= 3650, "in [1, 3650]");
        RANGE("start_time",
              c->start_time >= INT64_C(1136073600000) &&
                      c->start_time + (int64_t)c->days * ENC_MS_PER_DAY <=
                              INT64_C(4102444800000),
              "after 2006-01-01 and start + days before 2100-01-01");
        RANGE("arrival_rate", c->arrival_rate >= 0 && c->arrival_rate <= 1,
              "in [0, 1]");
        RANGE("churn_rate", c->churn_rate >= 0 && c->churn_rate < 1,
              "in [0, 1)");
        RANGE("return_prob", c->return_prob >= 0 && c->return_prob <= 1,
              "in [0, 1]");
        RANGE("rec_share", c->rec_share >= 0 && c->rec_share <= 1, "in [0, 1]");
        RANGE("skip_rate", c->skip_rate >= 0 && c->skip_rate <= 0.3,
              "in [0, 0.3]");
        RANGE("adopt_prob", c->adopt_prob >= 0 && c->adopt_prob <= 1,
              "in [0, 1]");
        RANGE("treatment_lift",
              c->treatment_lift >= 0 && c->treatment_lift <= 10 &&
                      c->adopt_prob * c->treatment_lift <= 1,
              "in [0, 10] with adopt_prob * treatment_lift <= 1");
        RANGE("artists", c->artists >= 1 && c->artists <= 10000000,
              "in [1, 10000000]");
        RANGE("zipf_s", c->zipf_s > 0 && c->zipf_s <= 5, "in (0, 5]");
        RANGE("zipf_q", c->zipf_q >= 0 && c->zipf_q <= 1e6, "in [0, 1e6]");
        RANGE("disorder_ms",
              c->disorder_ms >= 0 && c->disorder_ms <= ENC_MS_PER_DAY,
              "in [0, 86400000]");
        RANGE("disorder_share",
              c->disorder_share >= 0 && c->disorder_share <= 1, "in [0, 1]");
#undef RANGE
        return ENC_OK;
}

enc_gen_t *enc_gen_new(const enc_gen_conf_t *conf, char *errstr,
                       size_t errstr_size) {
        enc_gen_t *g = NULL;
        if (!conf) {
                enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                           "gen: no configuration");
                return NULL;
        }
        if (check_conf(conf, errstr, errstr_size))
                return NULL;
        if (!(g = calloc(1, sizeof(*g))))
                goto nomem;
        g->conf = *conf;
        g->end_time = conf->start_time + (int64_t)conf->days * ENC_MS_PER_DAY;

        /* Artist popularity: Zipf-Mandelbrot CDF. */
        if (!(g->artist_cdf = malloc((size_t)conf->artists * sizeof(double))))
                goto nomem;
        double sum = 0;
        for (uint32_t k = 0; k < conf->artists; k++) {
                sum += pow((double)k + 1.0 + conf->zipf_q, -conf->zipf_s);
                g->artist_cdf[k] = sum;
        }
        for (uint32_t k = 0; k < conf->artists; k++)
                g->artist_cdf[k] /= sum;
        g->artist_cdf[conf->artists - 1] = 1.0;

        /* Tracks within an artist: Zipf with s = 1. */
        for (unsigned n = 1; n <= TRACKS_MAX; n++) {
                double h = 0;
                for (unsigned k = 0; k < n; k++)
                        h += 1.0 / (double)(k + 1);
                double acc = 0;
                for (unsigned k = 0; k < n; k++) {
                        acc += 1.0 / (double)(k + 1) / h;
                        g->track_cdf[n][k] = acc;
                }
                g->track_cdf[n][n - 1] = 1.0;
        }
        for (unsigned k = 0; k < FAVS; k++)
                g->fav_wsum += 1.0 / (double)(k + 1);

        /* Context distribution and the skip normaliser: the mean over plays
         * of skip_mult * (novel ? NOVEL_SKIP_MULT : 1). */
        double acc = 0;
        g->skip_norm = 0;
        for (unsigned c = 0; c < CTX_CNT; c++) {
                double share = ctxs[c].source == ENC_SRC_RECOMMENDATION
                                       ? conf->rec_share
                                       : 1.0 - conf->rec_share;
                double pc = share * ctxs[c].weight;
                acc += pc;
                g->ctx_cdf[c] = acc;
                g->skip_norm +=
                        pc * ctxs[c].skip_mult *
                        (1.0 + (NOVEL_SKIP_MULT - 1.0) * ctxs[c].explore);
        }
        g->ctx_cdf[CTX_CNT - 1] = 1.0;

        if (conf->disorder_ms > 0 &&
            !(g->delay = malloc((size_t)DELAY_CAP * sizeof(rec_t))))
                goto nomem;

        g->st.users_initial = conf->users;
        g->next_uidx = conf->users;
        g->arrivals_day = 1;
        for (uint32_t i = 0; i < conf->users; i++)
                if (add_user(g, i, 0, true))
                        goto nomem;
        update_mem(g);
        return g;

nomem:
        enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                   "gen: out of memory for %" PRIu32 " users", conf->users);
        enc_gen_destroy(g);
        return NULL;
}

void enc_gen_stats(const enc_gen_t *gen, enc_gen_stats_t *st) {
        *st = gen->st;
}

void enc_gen_destroy(enc_gen_t *gen) {
        if (!gen)
                return;
        free(gen->delay);
        free(gen->heap);
        free(gen->free_slots);
        free(gen->users);
        free(gen->artist_cdf);
        free(gen);
}
