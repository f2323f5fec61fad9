/*
 * test_gen.c -- schemas/gen.c and ops/gen/: the synthetic listener
 * population and the encore-gen CLI.
 *
 * Expected values are worked out from the configuration and the model's
 * stated parameters (gen.h, the constants at the top of gen.c), never taken
 * from a run. Where a value is a share of random events, the test states
 * the tolerance and why: the generator is seeded, so every run of a test
 * sees the same numbers, but the tolerance is what a different seed could
 * move them by, so a correct model passes for any seed.
 *
 * The CLI tests run the built encore-gen ($ENCORE_BINARY_DIR/encore-gen)
 * against a file and against librdkafka's mock cluster in this process,
 * and compare what arrives with an in-process generator of the same flags.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <avro.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h"
#include "gen.h"

#define START ENC_GEN_DEFAULT_START_MS
#define DAY   ENC_MS_PER_DAY

/* ---- helpers ---------------------------------------------------------- */

static enc_gen_conf_t conf_of(uint64_t seed, uint32_t users, uint32_t days,
                              uint64_t count) {
        enc_gen_conf_t c;
        enc_gen_conf_defaults(&c);
        c.seed = seed;
        c.users = users;
        c.days = days;
        c.count = count;
        return c;
}

static enc_gen_t *gen_of(const enc_gen_conf_t *c) {
        char err[256] = "";
        enc_gen_t *g = enc_gen_new(c, err, sizeof(err));
        if (!g)
                fail_msg("enc_gen_new: %s", err);
        return g;
}

/* FNV-1a 64, independent of the generator's hashing. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
        const unsigned char *b = p;
        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) {
        if (!s)
                return fnv(h, "\xff", 1);
        return fnv(h, s, strlen(s) + 1);
}

static uint64_t fnv_i64(uint64_t h, int64_t v) {
        return fnv(h, &v, sizeof(v));
}

/* A hash of every field of @p ev. */
static uint64_t event_hash(const enc_event_t *ev) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        h = fnv_str(h, ev->event_id);
        h = fnv_str(h, ev->user_id);
        h = fnv_str(h, ev->track_id);
        h = fnv_str(h, ev->artist_id);
        h = fnv_i64(h, ev->event_time);
        h = fnv_i64(h, ev->ms_played);
        h = fnv_i64(h, ev->track_duration_ms);
        h = fnv_i64(h, ev->reason_end);
        h = fnv_i64(h, ev->source);
        h = fnv_str(h, ev->surface);
        h = fnv_str(h, ev->recommendation_id);
        h = fnv_str(h, ev->cohort);
        return h;
}

static bool events_equal(const enc_event_t *a, const enc_event_t *b) {
        return event_hash(a) == event_hash(b);
}

static uint32_t uidx_of(const enc_event_t *ev) {
        assert_int_equal(ev->user_id[0], 'u');
        return (uint32_t)strtoul(ev->user_id + 1, NULL, 10);
}

static uint32_t rank_of(const enc_event_t *ev) {
        assert_int_equal(ev->artist_id[0], 'a');
        return (uint32_t)strtoul(ev->artist_id + 1, NULL, 10);
}

static int64_t day_of(const enc_event_t *ev) {
        return (ev->event_time - START) / DAY;
}

static bool qualified(const enc_event_t *ev) {
        return ev->ms_played >= 30000;
}

/* Hash of the whole sequence of @p n events (or fewer if it ends). */
static uint64_t sequence_hash(const enc_gen_conf_t *c, uint64_t *n) {
        enc_gen_t *g = gen_of(c);
        enc_event_t ev;
        uint64_t h = UINT64_C(0xcbf29ce484222325), cnt = 0;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                uint64_t e = event_hash(&ev);
                h = fnv(h, &e, sizeof(e));
                cnt++;
        }
        enc_gen_destroy(g);
        *n = cnt;
        return h;
}

/* ---- reproducibility --------------------------------------------------- */

static void test_same_seed_gives_identical_sequence(void **state) {
        (void)state;
        enc_gen_conf_t c = conf_of(42, 2000, 14, 10000);
        enc_gen_t *a = gen_of(&c), *b = gen_of(&c);
        enc_event_t ea, eb;
        for (int i = 0; i < 10000; i++) {
                assert_int_equal(enc_gen_next(a, &ea), ENC_OK);
                assert_int_equal(enc_gen_next(b, &eb), ENC_OK);
                if (!events_equal(&ea, &eb))
                        fail_msg("event %d differs: %s vs %s", i, ea.event_id,
                                 eb.event_id);
        }
        /* count = 10000: the 10001st call ends the stream, and it stays
         * ended. */
        assert_int_equal(enc_gen_next(a, &ea), ENC_ERR_NOT_FOUND);
        assert_int_equal(enc_gen_next(a, &ea), ENC_ERR_NOT_FOUND);
        enc_gen_destroy(a);
        enc_gen_destroy(b);

        uint64_t n1, n2;
        uint64_t h1 = sequence_hash(&c, &n1), h2 = sequence_hash(&c, &n2);
        assert_int_equal(n1, 10000);
        assert_int_equal(n2, 10000);
        assert_int_equal(h1, h2);
}

static void test_different_seeds_give_different_sequences(void **state) {
        (void)state;
        enc_gen_conf_t c1 = conf_of(42, 2000, 14, 10000);
        enc_gen_conf_t c2 = conf_of(43, 2000, 14, 10000);
        uint64_t n1, n2;
        assert_int_not_equal(sequence_hash(&c1, &n1), sequence_hash(&c2, &n2));

        /* Not just the ids: the plays themselves differ. Compare the
         * (user, track, event_time) of the first 1000 events. */
        enc_gen_t *a = gen_of(&c1), *b = gen_of(&c2);
        enc_event_t ea, eb;
        int same = 0;
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(enc_gen_next(a, &ea), ENC_OK);
                assert_int_equal(enc_gen_next(b, &eb), ENC_OK);
                if (!strcmp(ea.user_id, eb.user_id) &&
                    !strcmp(ea.track_id, eb.track_id) &&
                    ea.event_time == eb.event_time)
                        same++;
        }
        assert_int_equal(same, 0);
        enc_gen_destroy(a);
        enc_gen_destroy(b);
}

/* ---- ordering ---------------------------------------------------------- */

static void test_event_times_non_decreasing_without_disorder(void **state) {
        (void)state;
        enc_gen_conf_t c = conf_of(7, 3000, 5, 0);
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        int64_t last = INT64_MIN;
        uint64_t n = 0;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                if (ev.event_time < last)
                        fail_msg("event %s at %" PRId64 " after %" PRId64,
                                 ev.event_id, ev.event_time, last);
                last = ev.event_time;
                /* count = 0 runs to the end of the days, not past it */
                assert_true(ev.event_time >= START);
                assert_true(ev.event_time < START + 5 * DAY);
                n++;
        }
        enc_gen_stats_t st;
        enc_gen_stats(g, &st);
        assert_int_equal(st.events, n);
        assert_int_equal(st.live_users, 0);
        assert_int_equal(st.displaced, 0);
        /* 3000 users over 5 days: at least a few plays each on average. */
        assert_true(n > 3000 * 5);
        enc_gen_destroy(g);
}

/*
 * With disorder, each event may trail the largest event time seen before
 * it by at most disorder_ms, some events really do trail, and the set of
 * events is exactly the set without disorder (same ids, same fields).
 */
static void test_disorder_displaces_by_at_most_disorder_ms(void **state) {
        (void)state;
        const int64_t dms = 120000;
        enc_gen_conf_t c0 = conf_of(11, 1000, 3, 0);
        enc_gen_conf_t c1 = c0;
        c1.disorder_ms = dms;
        c1.disorder_share = 0.05;

        enc_gen_t *g0 = gen_of(&c0), *g1 = gen_of(&c1);
        enc_event_t ev;
        uint64_t sum0 = 0, xor0 = 0, n0 = 0;
        while (enc_gen_next(g0, &ev) == ENC_OK) {
                uint64_t h = event_hash(&ev);
                sum0 += h;
                xor0 ^= h;
                n0++;
        }
        uint64_t sum1 = 0, xor1 = 0, n1 = 0, behind = 0;
        int64_t max_seen = INT64_MIN, worst = 0;
        while (enc_gen_next(g1, &ev) == ENC_OK) {
                uint64_t h = event_hash(&ev);
                sum1 += h;
                xor1 ^= h;
                n1++;
                if (ev.event_time < max_seen) {
                        behind++;
                        if (max_seen - ev.event_time > worst)
                                worst = max_seen - ev.event_time;
                }
                if (ev.event_time > max_seen)
                        max_seen = ev.event_time;
        }
        assert_int_equal(n1, n0);
        assert_int_equal(sum1, sum0);
        assert_int_equal(xor1, xor0);
        assert_true(worst <= dms);
        assert_true(worst > 0);
        assert_true(behind > 0);

        /* Displaced events are chosen by a hash of the event number with
         * probability 0.05: binomial(n0, 0.05). n0 is about 40 000, so the
         * standard deviation is about 44; 0.006 * n0 (about 240) is over 5
         * of them. */
        enc_gen_stats_t st;
        enc_gen_stats(g1, &st);
        assert_true(fabs((double)st.displaced - 0.05 * (double)n0) <=
                    0.006 * (double)n0);
        /* An event held back trails only if another event overtook it, so
         * trailing events are at most the displaced ones. */
        assert_true(behind <= st.displaced);
        enc_gen_destroy(g0);
        enc_gen_destroy(g1);
}

/* ---- field values ------------------------------------------------------ */

static bool all_lower_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') ||
                      (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return s[n] == '\0';
}

static void test_events_validate_and_are_consistent(void **state) {
        (void)state;
        enum { N = 30000, USERS = 3000 };
        static const char *const rec_surfaces[] = {"home", "discover_weekly",
                                                   "daily_mix", "release_radar",
                                                   "autoplay"};
        static const char *const cohort_seen_init = "?";
        const char **cohort = calloc(USERS * 2, sizeof(*cohort));
        assert_non_null(cohort);
        for (int i = 0; i < USERS * 2; i++)
                cohort[i] = cohort_seen_init;

        enc_gen_conf_t c = conf_of(42, USERS, 7, N);
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        char err[256], want[64];
        for (int i = 0; i < N; i++) {
                assert_int_equal(enc_gen_next(g, &ev), ENC_OK);
                if (enc_event_validate(&ev, err, sizeof(err)) != ENC_OK)
                        fail_msg("event %s invalid: %s", ev.event_id, err);
                /* ids: "<seed>-<n>" in order when there is no disorder */
                snprintf(want, sizeof(want), "42-%d", i);
                assert_string_equal(ev.event_id, want);
                /* a track belongs to its artist */
                snprintf(want, sizeof(want), "t%s-", ev.artist_id + 1);
                assert_memory_equal(ev.track_id, want, strlen(want));
                /* lengths: 45 s to 15 min; what was played fits in it */
                assert_in_range(ev.track_duration_ms, 45000, 900000);
                assert_in_range(ev.ms_played, 0, ev.track_duration_ms);
                if (ev.reason_end == ENC_END_TRACK_DONE)
                        assert_int_equal(ev.ms_played, ev.track_duration_ms);
                /* recommendations, and only they, carry a rec id */
                if (ev.source == ENC_SRC_RECOMMENDATION) {
                        assert_non_null(ev.recommendation_id);
                        assert_memory_equal(ev.recommendation_id, "rec-", 4);
                        assert_true(
                                all_lower_hex(ev.recommendation_id + 4, 16));
                        bool known = false;
                        for (size_t k = 0; k < 5; k++)
                                known |= !strcmp(ev.surface, rec_surfaces[k]);
                        assert_true(known);
                } else {
                        assert_null(ev.recommendation_id);
                        static const char *const by_source[] = {
                                [ENC_SRC_SEARCH] = "search",
                                [ENC_SRC_LIBRARY] = "library",
                                [ENC_SRC_PLAYLIST] = "playlist",
                                [ENC_SRC_RADIO] = "radio",
                                [ENC_SRC_OTHER] = "other"};
                        assert_string_equal(ev.surface, by_source[ev.source]);
                }
                /* a user's cohort never changes */
                uint32_t u = uidx_of(&ev);
                assert_true(u < USERS * 2);
                if (ev.cohort)
                        assert_true(!strcmp(ev.cohort, "control") ||
                                    !strcmp(ev.cohort, "treatment"));
                if (cohort[u] == cohort_seen_init)
                        cohort[u] = ev.cohort;
                else if (!cohort[u] || !ev.cohort)
                        assert_ptr_equal(cohort[u], ev.cohort);
                else
                        assert_string_equal(cohort[u], ev.cohort);
        }
        free(cohort);
        enc_gen_destroy(g);
}

/*
 * Cohorts: 45% control, 45% treatment, 10% null, by a hash of the user.
 * Over the 3000 day-0 users that played in the first week, each share is a
 * binomial proportion with sd at most sqrt(0.25/2000) ~ 0.011; 0.05 is over
 * 4 of them. With cohorts off every label is null.
 */
static void test_cohorts_split_users_and_can_be_off(void **state) {
        (void)state;
        enum { USERS = 3000 };
        int *label = calloc(USERS, sizeof(int)); /* 0 unseen, 1 c, 2 t, 3 n */
        assert_non_null(label);
        enc_gen_conf_t c = conf_of(5, USERS, 7, 0);
        c.arrival_rate = 0;
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        while (enc_gen_next(g, &ev) == ENC_OK)
                label[uidx_of(&ev)] = !ev.cohort                      ? 3
                                      : !strcmp(ev.cohort, "control") ? 1
                                                                      : 2;
        enc_gen_destroy(g);
        int cnt[4] = {0};
        for (int i = 0; i < USERS; i++)
                cnt[label[i]]++;
        double seen = USERS - cnt[0];
        assert_true(seen > 2000);
        assert_true(fabs(cnt[1] / seen - 0.45) < 0.05);
        assert_true(fabs(cnt[2] / seen - 0.45) < 0.05);
        assert_true(fabs(cnt[3] / seen - 0.10) < 0.05);
        free(label);

        c.cohorts = false;
        c.count = 5000;
        g = gen_of(&c);
        while (enc_gen_next(g, &ev) == ENC_OK)
                assert_null(ev.cohort);
        enc_gen_destroy(g);
}

/* ---- shares ------------------------------------------------------------ */

/*
 * Source, surface and end-reason shares against the configuration.
 *
 * Expected values, from gen.h and gen.c's tables:
 *  - sources: RECOMMENDATION = rec_share (0.35); the other 0.65 split
 *    search 0.15, library 0.30, playlist 0.35, radio 0.12, other 0.08;
 *  - surfaces within recommendations: home 0.40, discover_weekly 0.20,
 *    daily_mix 0.20, release_radar 0.10, autoplay 0.10;
 *  - skips (FORWARD + BACK) = skip_rate (0.25), 85% of them FORWARD, 80%
 *    of them before 30 s; of the other 0.75: END_PLAY 3%, LOGOUT 0.5%,
 *    UNKNOWN 0.5%, TRACK_DONE the remaining 96%.
 * Tolerances: a play keeps its predecessor's context with probability 0.8,
 * so contexts come in runs and n plays carry about n(1-0.8)/(1+0.8) = n/9
 * independent draws: 300 000 plays are worth ~33 000 for the source
 * shares (sd <= 0.0028; tolerance 0.015 is over 5 sd) and ~11 700 for the
 * surface shares (sd <= 0.0046; tolerance 0.025). The skip share varies
 * with each listener's skip factor (uniform 0.4..1.6 times skip_rate, sd
 * 0.087) averaged over the ~3 000 listeners carrying the plays: sd ~0.002;
 * tolerance 0.015. Shares within skips and within non-skips are plain
 * binomials over tens of thousands of plays (sd < 0.002); tolerances 0.01
 * and, for the rare reasons, 0.003 / 0.0012. Two known effects lift the
 * skip share slightly above skip_rate, by about 0.004 together: only
 * non-skips end a session early (END_PLAY, LOGOUT), so heavy skippers have
 * longer sessions and carry more plays; and a BACK replays a track that was
 * likely to be skipped. The 0.015 tolerance covers them.
 */
static void test_source_surface_and_reason_shares_match_config(void **state) {
        (void)state;
        enum { N = 300000 };
        enc_gen_conf_t c = conf_of(3, 5000, 10, N);
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        double src[ENC_SRC__CNT] = {0}, why[ENC_END__CNT] = {0};
        double surf[5] = {0}, early = 0;
        static const char *const rec_surfaces[5] = {
                "home", "discover_weekly", "daily_mix", "release_radar",
                "autoplay"};
        for (int i = 0; i < N; i++) {
                assert_int_equal(enc_gen_next(g, &ev), ENC_OK);
                src[ev.source]++;
                why[ev.reason_end]++;
                if (ev.source == ENC_SRC_RECOMMENDATION)
                        for (int k = 0; k < 5; k++)
                                if (!strcmp(ev.surface, rec_surfaces[k]))
                                        surf[k]++;
                if ((ev.reason_end == ENC_END_FORWARD ||
                     ev.reason_end == ENC_END_BACK) &&
                    ev.ms_played < 30000)
                        early++;
        }
        enc_gen_destroy(g);

        const double r = c.rec_share, rest = 1 - r;
        const double want_src[ENC_SRC__CNT] = {[ENC_SRC_RECOMMENDATION] = r,
                                               [ENC_SRC_SEARCH] = rest * 0.15,
                                               [ENC_SRC_LIBRARY] = rest * 0.30,
                                               [ENC_SRC_PLAYLIST] = rest * 0.35,
                                               [ENC_SRC_RADIO] = rest * 0.12,
                                               [ENC_SRC_OTHER] = rest * 0.08};
        for (int s = 0; s < ENC_SRC__CNT; s++)
                if (fabs(src[s] / N - want_src[s]) > 0.015)
                        fail_msg("source %s: share %.4f, want %.4f",
                                 enc_source_name(s), src[s] / N, want_src[s]);
        const double want_surf[5] = {0.40, 0.20, 0.20, 0.10, 0.10};
        for (int k = 0; k < 5; k++)
                if (fabs(surf[k] / src[0] - want_surf[k]) > 0.025)
                        fail_msg("surface %s: share %.4f, want %.2f",
                                 rec_surfaces[k], surf[k] / src[0],
                                 want_surf[k]);

        double skips = why[ENC_END_FORWARD] + why[ENC_END_BACK];
        double rest_plays = N - skips;
        assert_true(fabs(skips / N - c.skip_rate) < 0.015);
        assert_true(fabs(why[ENC_END_FORWARD] / skips - 0.85) < 0.01);
        assert_true(fabs(early / skips - 0.80) < 0.01);
        assert_true(fabs(why[ENC_END_END_PLAY] / rest_plays - 0.03) < 0.003);
        assert_true(fabs(why[ENC_END_LOGOUT] / rest_plays - 0.005) < 0.0012);
        assert_true(fabs(why[ENC_END_UNKNOWN] / rest_plays - 0.005) < 0.0012);
        assert_true(fabs(why[ENC_END_TRACK_DONE] / rest_plays - 0.96) < 0.01);
}

/* The rec share is a parameter, not a constant: at 0.7 the expected shares
 * move with it (same tolerance argument as above). */
static void test_rec_share_is_configurable(void **state) {
        (void)state;
        enum { N = 100000 };
        enc_gen_conf_t c = conf_of(4, 3000, 10, N);
        c.rec_share = 0.7;
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        double rec = 0, lib = 0;
        for (int i = 0; i < N; i++) {
                assert_int_equal(enc_gen_next(g, &ev), ENC_OK);
                rec += ev.source == ENC_SRC_RECOMMENDATION;
                lib += ev.source == ENC_SRC_LIBRARY;
        }
        enc_gen_destroy(g);
        /* n_eff ~ 11 000: sd <= 0.0048; tolerance 0.025 */
        assert_true(fabs(rec / N - 0.7) < 0.025);
        assert_true(fabs(lib / N - 0.3 * 0.30) < 0.025);
}

/* ---- popularity -------------------------------------------------------- */

/* Share of the first @p top of @p n Zipf-Mandelbrot weights 1/(k+q)^s,
 * k = 1..n, computed here from the definition. */
static double zipf_head_share(uint32_t n, uint32_t top, double s, double q) {
        double head = 0, all = 0;
        for (uint32_t k = 1; k <= n; k++) {
                double w = pow((double)k + q, -s);
                all += w;
                if (k <= top)
                        head += w;
        }
        return head / all;
}

/*
 * Artist ids are their popularity rank, so "top 1% of artists" is ranks
 * 0 .. artists/100 - 1. Every play's artist is a Zipf draw made at some
 * point (favourite slot, exploration, or a replay chosen without looking at
 * the artist), so the head's share of plays is the head's share of weight.
 * Defaults (s = 1.2, q = 10, 20 000 artists): top 200 artists 0.579 of
 * plays, the top artist 0.0231. With s = 1, q = 0, 10 000 artists: 0.530.
 * Tolerance 0.03 on the head share: plays cluster on each listener's 8
 * favourites, so 300 000 plays are worth only ~5 draws per listener (the
 * favourite weights 1/(k+1) give (sum w)^2 / sum w^2 ~ 5) -- about 25 000
 * draws, sd ~0.003 -- plus under 0.01 of bias from not re-adopting an
 * artist a listener already knows. For the single top artist, whose count
 * comes from the ~17% of listeners who have it as a favourite, 0.006.
 */
static void check_zipf(enc_gen_conf_t c, uint64_t n) {
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        uint32_t top = c.artists / 100;
        double head = 0, first = 0;
        for (uint64_t i = 0; i < n; i++) {
                assert_int_equal(enc_gen_next(g, &ev), ENC_OK);
                uint32_t rank = rank_of(&ev);
                assert_true(rank < c.artists);
                head += rank < top;
                first += rank == 0;
        }
        enc_gen_destroy(g);
        double want = zipf_head_share(c.artists, top, c.zipf_s, c.zipf_q);
        double want1 = zipf_head_share(c.artists, 1, c.zipf_s, c.zipf_q);
        if (fabs(head / (double)n - want) > 0.03)
                fail_msg("top 1%% share %.4f, want %.4f (s=%g q=%g)",
                         head / (double)n, want, c.zipf_s, c.zipf_q);
        if (fabs(first / (double)n - want1) > 0.006)
                fail_msg("top artist share %.4f, want %.4f", first / (double)n,
                         want1);
}

static void test_artist_popularity_is_zipf_heavy_tailed(void **state) {
        (void)state;
        enc_gen_conf_t c = conf_of(9, 5000, 14, 300000);
        /* the defaults this test's numbers were worked out for */
        assert_int_equal(c.artists, 20000);
        assert_true(c.zipf_s == 1.2 && c.zipf_q == 10);
        assert_true(fabs(zipf_head_share(20000, 200, 1.2, 10) - 0.579) <
                    0.0005);
        check_zipf(c, 300000);

        c.zipf_s = 1.0;
        c.zipf_q = 0;
        c.artists = 10000;
        assert_true(fabs(zipf_head_share(10000, 100, 1.0, 0) - 0.530) < 0.0005);
        check_zipf(c, 300000);
}

/* ---- population dynamics ----------------------------------------------- */

/*
 * Arrivals: users * arrival_rate = 2000 * 0.02 = 40 new users on each of
 * days 1..20, so exactly 800, with indexes 2000 + 40 (d-1) .. on day d.
 * An arrival plays on their arrival day (their first event is that day, or
 * just past midnight when the first track crosses it).
 */
static void test_new_users_arrive_on_later_days(void **state) {
        (void)state;
        enum { USERS = 2000, DAYS = 21, PER_DAY = 40 };
        enc_gen_conf_t c = conf_of(21, USERS, DAYS, 0);
        int64_t *first = malloc((USERS + PER_DAY * DAYS) * sizeof(int64_t));
        assert_non_null(first);
        for (int i = 0; i < USERS + PER_DAY * DAYS; i++)
                first[i] = -1;
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                uint32_t u = uidx_of(&ev);
                assert_true(u < USERS + PER_DAY * (DAYS - 1));
                if (first[u] < 0)
                        first[u] = ev.event_time;
        }
        enc_gen_stats_t st;
        enc_gen_stats(g, &st);
        enc_gen_destroy(g);
        assert_int_equal(st.users_initial, USERS);
        assert_int_equal(st.arrivals, PER_DAY * (DAYS - 1));

        int seen = 0;
        for (int u = USERS; u < USERS + PER_DAY * (DAYS - 1); u++) {
                if (first[u] < 0)
                        continue;
                seen++;
                int64_t arrival_day = 1 + (u - USERS) / PER_DAY;
                int64_t d = (first[u] - START) / DAY;
                assert_true(d == arrival_day ||
                            (d == arrival_day + 1 &&
                             first[u] - (START + d * DAY) < 20 * 60000));
        }
        /* only a first play that would end after the last day is lost */
        assert_true(seen >= PER_DAY * (DAYS - 1) - PER_DAY);
        free(first);
}

/*
 * Churn: a lifetime is geometric with per-day hazard 0.03, so a day-0 user
 * is still alive after day 26 with probability 0.97^27 and churns within
 * the 28 days otherwise: 2000 (1 - 0.97^27) ~ 1121 expected (no arrivals,
 * no returns, so each user churns at most once). Binomial sd ~22; the
 * tolerance 110 is 5 sd. In the events: users who churned early stop, so
 * some day-0 users have no plays in the last two weeks.
 */
static void test_users_churn(void **state) {
        (void)state;
        enum { USERS = 2000, DAYS = 28 };
        enc_gen_conf_t c = conf_of(22, USERS, DAYS, 0);
        c.arrival_rate = 0;
        c.return_prob = 0;
        c.churn_rate = 0.03;
        int64_t *last = calloc(USERS, sizeof(int64_t));
        assert_non_null(last);
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        while (enc_gen_next(g, &ev) == ENC_OK)
                last[uidx_of(&ev)] = ev.event_time;
        enc_gen_stats_t st;
        enc_gen_stats(g, &st);
        enc_gen_destroy(g);
        double want = USERS * (1 - pow(0.97, DAYS - 1));
        assert_true(fabs((double)st.churned - want) <= 110);
        assert_int_equal(st.returned, 0);
        int quiet = 0;
        for (int u = 0; u < USERS; u++)
                quiet += last[u] > 0 && last[u] < START + (DAYS - 14) * DAY;
        /* A user whose lifetime ends by day 13 (alive days 0..L, L <= 13:
         * probability 1 - 0.97^14 = 0.347, ~694 users) has no play from
         * day 14 on; the few with no play at all (L = 0 and no listening
         * on day 0: ~0.03 * 0.5) are not counted. Users who merely had a
         * quiet fortnight only add. sd ~21; 550 is over 5 sd below. */
        assert_true(quiet > 550);
        free(last);
}

/*
 * Returning listeners: with return_prob 1 every churned user comes back
 * 7..41 days later (if the days last), so some users have a gap of at
 * least 7 days between two plays, and the generator counted returns.
 */
static void test_churned_users_return(void **state) {
        (void)state;
        enum { USERS = 500, DAYS = 60 };
        enc_gen_conf_t c = conf_of(23, USERS, DAYS, 0);
        c.arrival_rate = 0;
        c.return_prob = 1;
        c.churn_rate = 0.05;
        int64_t *last = calloc(USERS, sizeof(int64_t));
        assert_non_null(last);
        int long_gaps = 0;
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                uint32_t u = uidx_of(&ev);
                if (last[u] && ev.event_time - last[u] >= 7 * DAY)
                        long_gaps++;
                last[u] = ev.event_time;
        }
        enc_gen_stats_t st;
        enc_gen_stats(g, &st);
        enc_gen_destroy(g);
        assert_true(st.churned > 100);
        assert_true(st.returned > 50);
        assert_true(st.returned <= st.churned);
        assert_true(long_gaps > 50);
        free(last);
}

/* ---- discovery --------------------------------------------------------- */

typedef struct pair_s {
        uint64_t key; /* uidx << 32 | artist; 0 = empty (uidx 0 is skipped) */
        int16_t first_day;
        bool discovery; /* first play was a qualified recommendation */
        bool returned;  /* a qualified play on a later day */
        bool treatment;
} pair_t;

#define PAIRS (1u << 21)

static pair_t *pair_get(pair_t *t, uint64_t key, bool *fresh) {
        uint64_t i = (key * UINT64_C(0x9e3779b97f4a7c15)) >> 43;
        for (;; i = (i + 1) & (PAIRS - 1)) {
                if (t[i].key == key) {
                        *fresh = false;
                        return &t[i];
                }
                if (t[i].key == 0) {
                        t[i].key = key;
                        *fresh = true;
                        return &t[i];
                }
        }
}

/*
 * A discovery, as the discovery_habit signal defines it, is a user's first
 * play of an artist when that play came from a recommendation and was
 * qualified (>= 30 s). Counted from day 7 (a warm-up week in which users
 * first play their existing favourites) to day DAYS-8 (a week left to see a
 * return). A return is a qualified play of the artist on a later day.
 *
 * Expected: a qualified new-artist play is adopted with probability
 * adopt_prob (here 0.10 for control and 0.10 * 3 = 0.30 for treatment, a
 * lift chosen large so the effect is clear), and an adopted artist gets a
 * habit weight that brings a listener back within days; unadopted
 * discoveries return only when drawn again by chance. So returns must
 * exist, the control share must be near 0.10 (we accept 0.03..0.35, the
 * upper end allowing for chance re-draws of popular artists and for
 * favourites first met through a recommendation after the warm-up), and
 * treatment must beat control by a clear margin (+0.08, where the lift's
 * +0.20 in adoption times a return rate above one half gives > +0.10, and
 * the sampling sd of the difference over thousands of discoveries is under
 * 0.015).
 */
static void test_recommended_discoveries_return_on_later_days(void **state) {
        (void)state;
        enum { USERS = 3000, DAYS = 28 };
        enc_gen_conf_t c = conf_of(31, USERS, DAYS, 0);
        c.treatment_lift = 3.0;
        pair_t *t = calloc(PAIRS, sizeof(*t));
        assert_non_null(t);
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                uint32_t u = uidx_of(&ev);
                if (u == 0)
                        continue;
                bool fresh;
                pair_t *p =
                        pair_get(t, (uint64_t)u << 32 | rank_of(&ev), &fresh);
                int16_t d = (int16_t)day_of(&ev);
                if (fresh) {
                        p->first_day = d;
                        p->discovery = ev.source == ENC_SRC_RECOMMENDATION &&
                                       qualified(&ev);
                        p->treatment =
                                ev.cohort && !strcmp(ev.cohort, "treatment");
                } else if (d > p->first_day && qualified(&ev)) {
                        p->returned = true;
                }
        }
        enc_gen_stats_t st;
        enc_gen_stats(g, &st);
        enc_gen_destroy(g);

        double disc[2] = {0}, ret[2] = {0};
        for (uint32_t i = 0; i < PAIRS; i++) {
                pair_t *p = &t[i];
                if (!p->key || !p->discovery || p->first_day < 7 ||
                    p->first_day > DAYS - 8)
                        continue;
                disc[p->treatment]++;
                ret[p->treatment] += p->returned;
        }
        free(t);
        assert_true(st.adoptions > 0);
        assert_true(disc[0] > 1000 && disc[1] > 1000);
        double share_c = ret[0] / disc[0], share_t = ret[1] / disc[1];
        print_message("discoveries control %.0f returned %.3f, treatment "
                      "%.0f returned %.3f\n",
                      disc[0], share_c, disc[1], share_t);
        assert_true(share_c > 0.03 && share_c < 0.35);
        assert_true(share_t > share_c + 0.08);
}

/* ---- sessions ---------------------------------------------------------- */

/*
 * A user's plays never overlap: each starts (event_time - ms_played) after
 * the previous one ended. Within a session the gap is at most 2.5 s, or a
 * pause of 1..10 min (so under 10 min 3 s); sessions are at least 35 min
 * apart. No gap falls in between.
 */
static void test_user_plays_never_overlap_and_sessions_separate(void **state) {
        (void)state;
        enum { USERS = 2000, DAYS = 7 };
        enc_gen_conf_t c = conf_of(13, USERS, DAYS, 0);
        int64_t *last = calloc(USERS * 2, sizeof(int64_t));
        assert_non_null(last);
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        uint64_t in_session = 0, between = 0;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                uint32_t u = uidx_of(&ev);
                assert_true(u < USERS * 2);
                int64_t start = ev.event_time - ev.ms_played;
                if (last[u]) {
                        int64_t gap = start - last[u];
                        assert_true(gap >= 0);
                        if (gap > 10 * 60000 + 3000 && gap < 35 * 60000)
                                fail_msg("user %u gap %" PRId64 " ms", u, gap);
                        in_session += gap < 35 * 60000;
                        between += gap >= 35 * 60000;
                }
                last[u] = ev.event_time;
        }
        enc_gen_destroy(g);
        free(last);
        /* mean session length is ~9 plays: both kinds of gap are common */
        assert_true(in_session > 5 * between);
        assert_true(between > 1000);
}

/* ---- limits ------------------------------------------------------------ */

static void test_out_of_range_config_names_the_field(void **state) {
        (void)state;
        char err[256];
        enc_gen_conf_t c;

        enc_gen_conf_defaults(&c);
        c.users = 0;
        assert_null(enc_gen_new(&c, err, sizeof(err)));
        assert_non_null(strstr(err, "users"));

        enc_gen_conf_defaults(&c);
        c.days = 0;
        assert_null(enc_gen_new(&c, err, sizeof(err)));
        assert_non_null(strstr(err, "days"));

        enc_gen_conf_defaults(&c);
        c.rec_share = 1.5;
        assert_null(enc_gen_new(&c, err, sizeof(err)));
        assert_non_null(strstr(err, "rec_share"));

        enc_gen_conf_defaults(&c);
        c.skip_rate = 0.5;
        assert_null(enc_gen_new(&c, err, sizeof(err)));
        assert_non_null(strstr(err, "skip_rate"));

        enc_gen_conf_defaults(&c);
        c.start_time = 0; /* 1970: before what events may carry */
        assert_null(enc_gen_new(&c, err, sizeof(err)));
        assert_non_null(strstr(err, "start_time"));

        enc_gen_conf_defaults(&c);
        c.disorder_ms = -1;
        assert_null(enc_gen_new(&c, err, sizeof(err)));
        assert_non_null(strstr(err, "disorder_ms"));

        assert_null(enc_gen_new(NULL, err, sizeof(err)));
        enc_gen_destroy(NULL);
}

/*
 * A million users: per-user state is one user record (80 bytes), one heap
 * entry (16) and one free-list entry (4), in arrays grown by doubling from
 * 1024 to 2^20 = 1 048 576 slots: 100 bytes * 2^20 = 100 MiB, plus the
 * 160 kB artist table. 128 MiB bounds it with room; a generator that kept
 * per-event or per-day state would not fit.
 */
static void test_million_users_memory_is_bounded(void **state) {
        (void)state;
        enc_gen_conf_t c = conf_of(77, 1000000, 2, 200000);
        enc_gen_t *g = gen_of(&c);
        enc_event_t ev;
        int n = 0;
        while (enc_gen_next(g, &ev) == ENC_OK)
                n++;
        assert_int_equal(n, 200000);
        enc_gen_stats_t st;
        enc_gen_stats(g, &st);
        assert_true(st.peak_live_users <= 1000000);
        assert_true(st.mem_bytes < (uint64_t)128 << 20);
        enc_gen_destroy(g);
}

/* ---- codec ------------------------------------------------------------- */

static void test_events_round_trip_through_codec(void **state) {
        (void)state;
        char err[256];
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        cc.play_event_schema_id = 7;
        enc_codec_t *codec = enc_codec_new(&cc, err, sizeof(err));
        assert_non_null(codec);
        enc_gen_conf_t c = conf_of(42, 200, 3, 0);
        enc_gen_t *g = gen_of(&c);
        enc_buf_t buf;
        enc_buf_init(&buf, 0);
        enc_event_t ev, back;
        int rec = 0, nonrec = 0, nocohort = 0;
        /* a few events, but both with and without the nullable fields */
        for (int i = 0; i < 2000 && (rec < 3 || nonrec < 3 || nocohort < 2);
             i++) {
                assert_int_equal(enc_gen_next(g, &ev), ENC_OK);
                bool want = (ev.recommendation_id && rec < 3) ||
                            (!ev.recommendation_id && nonrec < 3) ||
                            (!ev.cohort && nocohort < 2);
                if (!want)
                        continue;
                rec += ev.recommendation_id != NULL;
                nonrec += ev.recommendation_id == NULL;
                nocohort += ev.cohort == NULL;
                enc_buf_reset(&buf);
                assert_int_equal(enc_codec_encode_event(codec, &ev, &buf),
                                 ENC_OK);
                /* Confluent frame: magic 0, schema id 7 big-endian */
                assert_true(buf.len > 5);
                assert_int_equal(buf.data[0], 0);
                assert_int_equal(enc_read_u32be(buf.data + 1), 7);
                assert_int_equal(enc_codec_decode_event(codec, buf.data,
                                                        buf.len, &back, err,
                                                        sizeof(err)),
                                 ENC_OK);
                assert_string_equal(back.event_id, ev.event_id);
                assert_string_equal(back.user_id, ev.user_id);
                assert_string_equal(back.track_id, ev.track_id);
                assert_string_equal(back.artist_id, ev.artist_id);
                assert_int_equal(back.event_time, ev.event_time);
                assert_int_equal(back.ms_played, ev.ms_played);
                assert_int_equal(back.track_duration_ms, ev.track_duration_ms);
                assert_int_equal(back.reason_end, ev.reason_end);
                assert_int_equal(back.source, ev.source);
                assert_string_equal(back.surface, ev.surface);
                if (ev.recommendation_id)
                        assert_string_equal(back.recommendation_id,
                                            ev.recommendation_id);
                else
                        assert_null(back.recommendation_id);
                if (ev.cohort)
                        assert_string_equal(back.cohort, ev.cohort);
                else
                        assert_null(back.cohort);
        }
        assert_true(rec >= 3 && nonrec >= 3 && nocohort >= 2);
        enc_buf_free(&buf);
        enc_gen_destroy(g);
        enc_codec_destroy(codec);
}

/* ---- the CLI ------------------------------------------------------------ */

static char g_bin[1024];

static int run_cli(const char *args) {
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", g_bin, args);
        int st = system(cmd);
        assert_true(st != -1 && WIFEXITED(st));
        return WEXITSTATUS(st);
}

static int cli_setup(void **state) {
        (void)state;
        const char *dir = getenv("ENCORE_BINARY_DIR");
        if (!dir)
                dir = ".";
        snprintf(g_bin, sizeof(g_bin), "%s/encore-gen", dir);
        return 0;
}

static bool have_cli(void) {
        if (access(g_bin, X_OK) == 0)
                return true;
        print_message("skipped: %s is not built\n", g_bin);
        return false;
}

static void test_cli_bad_flags_exit_2(void **state) {
        (void)state;
        if (!have_cli())
                skip();
        assert_int_equal(run_cli("--file /dev/null --users 0"), 2);
        assert_int_equal(run_cli("--file /dev/null --users abc"), 2);
        assert_int_equal(run_cli("--file /dev/null --rate -1"), 2);
        assert_int_equal(run_cli("--file /dev/null --start-time 2026-13-01"),
                         2);
        assert_int_equal(run_cli("--file /dev/null --start-time 0"), 2);
        assert_int_equal(run_cli("--file /dev/null --framing json"), 2);
        assert_int_equal(run_cli("--file /dev/null --nope"), 2);
        assert_int_equal(run_cli("--file /dev/null --count"), 2);
        assert_int_equal(run_cli("--file -"), 2);
        assert_int_equal(run_cli("--count 5"), 2); /* no sink */
        assert_int_equal(run_cli("--file /dev/null --bootstrap x:1"), 2);
        /* librdkafka rejects the property before connecting */
        assert_int_equal(run_cli("--bootstrap 127.0.0.1:1 --kafka no.such=1"),
                         2);
        assert_int_equal(run_cli("--help"), 0);
}

/* Reads a string or a ["null","string"] field of an Avro record. */
static const char *rec_str(avro_value_t *rec, const char *name) {
        avro_value_t f, b;
        const char *s = NULL;
        size_t n;
        assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
        if (avro_value_get_type(&f) == AVRO_UNION) {
                int disc;
                assert_int_equal(avro_value_get_discriminant(&f, &disc), 0);
                if (disc == 0)
                        return NULL;
                assert_int_equal(avro_value_get_current_branch(&f, &b), 0);
                f = b;
        }
        assert_int_equal(avro_value_get_string(&f, &s, &n), 0);
        return s;
}

static int64_t rec_long(avro_value_t *rec, const char *name) {
        avro_value_t f;
        int64_t v;
        assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
        assert_int_equal(avro_value_get_long(&f, &v), 0);
        return v;
}

static int rec_enum(avro_value_t *rec, const char *name) {
        avro_value_t f;
        int v;
        assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
        assert_int_equal(avro_value_get_enum(&f, &v), 0);
        return v;
}

/* Compares the records of the Avro file at @p path with @p g's events. */
static void check_file_against(const char *path, enc_gen_t *g, int want_n) {
        avro_file_reader_t r;
        assert_int_equal(avro_file_reader(path, &r), 0);
        avro_schema_t schema = avro_file_reader_get_writer_schema(r);
        avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
        avro_value_t rec;
        assert_int_equal(avro_generic_value_new(iface, &rec), 0);
        enc_event_t ev;
        int n = 0;
        while (avro_file_reader_read_value(r, &rec) == 0) {
                assert_int_equal(enc_gen_next(g, &ev), ENC_OK);
                assert_string_equal(rec_str(&rec, "event_id"), ev.event_id);
                assert_string_equal(rec_str(&rec, "user_id"), ev.user_id);
                assert_string_equal(rec_str(&rec, "track_id"), ev.track_id);
                assert_string_equal(rec_str(&rec, "artist_id"), ev.artist_id);
                assert_int_equal(rec_long(&rec, "event_time"), ev.event_time);
                assert_int_equal(rec_long(&rec, "ms_played"), ev.ms_played);
                assert_int_equal(rec_long(&rec, "track_duration_ms"),
                                 ev.track_duration_ms);
                assert_int_equal(rec_enum(&rec, "reason_end"), ev.reason_end);
                assert_int_equal(rec_enum(&rec, "source"), ev.source);
                assert_string_equal(rec_str(&rec, "surface"), ev.surface);
                const char *rid = rec_str(&rec, "recommendation_id");
                const char *coh = rec_str(&rec, "cohort");
                if (ev.recommendation_id)
                        assert_string_equal(rid, ev.recommendation_id);
                else
                        assert_null(rid);
                if (ev.cohort)
                        assert_string_equal(coh, ev.cohort);
                else
                        assert_null(coh);
                n++;
        }
        assert_int_equal(n, want_n);
        assert_int_equal(enc_gen_next(g, &ev), ENC_ERR_NOT_FOUND);
        avro_value_decref(&rec);
        avro_value_iface_decref(iface);
        avro_schema_decref(schema);
        avro_file_reader_close(r);
}

/* The file holds exactly the generator's events for the same flags, in
 * order; with no generator flags, the CLI's defaults are gen.h's. */
static void test_cli_writes_avro_file_of_generator_events(void **state) {
        (void)state;
        if (!have_cli())
                skip();
        char path[] = "/tmp/test_gen_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        char args[1024];

        snprintf(args, sizeof(args),
                 "--file %s --count 3000 --users 300 --days 5 --seed 8 "
                 "--disorder-ms 60000 --start-time 2026-02-01T00:00:00Z "
                 "--cohort off --rec-share 0.5 --adopt-prob 0.2 "
                 "--treatment-lift 2",
                 path);
        assert_int_equal(run_cli(args), 0);
        enc_gen_conf_t c = conf_of(8, 300, 5, 3000);
        c.disorder_ms = 60000;
        c.start_time = INT64_C(1769904000000); /* 2026-02-01, by hand */
        c.cohorts = false;
        c.rec_share = 0.5;
        c.adopt_prob = 0.2;
        c.treatment_lift = 2;
        enc_gen_t *g = gen_of(&c);
        check_file_against(path, g, 3000);
        enc_gen_destroy(g);

        snprintf(args, sizeof(args), "--file=%s --count=500", path);
        assert_int_equal(run_cli(args), 0);
        enc_gen_conf_t d;
        enc_gen_conf_defaults(&d);
        d.count = 500;
        g = gen_of(&d);
        check_file_against(path, g, 500);
        enc_gen_destroy(g);
        unlink(path);
}

/* Against the mock cluster: every event arrives once, keyed by user id,
 * timestamped with its event time, Confluent-framed with the given schema
 * id, and decodes to the generator's event. */
static void test_cli_produces_to_kafka(void **state) {
        (void)state;
        if (!have_cli())
                skip();
        enum { N = 2000 };
        char errstr[512];
        rd_kafka_conf_t *hc = rd_kafka_conf_new();
        rd_kafka_conf_set(hc, "log_level", "0", NULL, 0);
        rd_kafka_t *host =
                rd_kafka_new(RD_KAFKA_PRODUCER, hc, errstr, sizeof(errstr));
        assert_non_null(host);
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
        assert_non_null(mc);
        assert_int_equal(rd_kafka_mock_topic_create(mc, "plays-t", 4, 1), 0);
        const char *bs = rd_kafka_mock_cluster_bootstraps(mc);

        char args[1024];
        snprintf(args, sizeof(args),
                 "--bootstrap %s --topic plays-t --count %d --users 100 "
                 "--seed 5 --schema-id 9",
                 bs, N);
        assert_int_equal(run_cli(args), 0);

        /* Read all four partitions from the start. */
        rd_kafka_conf_t *cc = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(cc, "bootstrap.servers", bs, errstr,
                                           sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        rd_kafka_conf_set(cc, "group.id", "test-gen", NULL, 0);
        rd_kafka_conf_set(cc, "log_level", "0", NULL, 0);
        rd_kafka_t *cons =
                rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof(errstr));
        assert_non_null(cons);
        rd_kafka_topic_partition_list_t *parts =
                rd_kafka_topic_partition_list_new(4);
        for (int p = 0; p < 4; p++)
                rd_kafka_topic_partition_list_add(parts, "plays-t", p)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(cons, parts), 0);
        rd_kafka_topic_partition_list_destroy(parts);

        enc_codec_conf_t ccf;
        enc_codec_conf_defaults(&ccf);
        ccf.play_event_schema_id = 9;
        enc_codec_t *codec = enc_codec_new(&ccf, errstr, sizeof(errstr));
        assert_non_null(codec);
        uint64_t *got = calloc(N, sizeof(uint64_t));
        assert_non_null(got);
        int n = 0, idle = 0;
        while (n < N && idle < 100) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
                if (!m) {
                        idle++;
                        continue;
                }
                if (m->err) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                idle = 0;
                enc_event_t ev;
                const uint8_t *v = m->payload;
                assert_int_equal(v[0], 0);
                assert_int_equal(enc_read_u32be(v + 1), 9);
                assert_int_equal(enc_codec_decode_event(codec, m->payload,
                                                        m->len, &ev, errstr,
                                                        sizeof(errstr)),
                                 ENC_OK);
                assert_int_equal(m->key_len, strlen(ev.user_id));
                assert_memory_equal(m->key, ev.user_id, m->key_len);
                rd_kafka_timestamp_type_t tt;
                assert_int_equal(rd_kafka_message_timestamp(m, &tt),
                                 ev.event_time);
                /* "5-<i>": index the event by its number */
                long i = strtol(ev.event_id + 2, NULL, 10);
                assert_in_range(i, 0, N - 1);
                assert_int_equal(got[i], 0);
                got[i] = event_hash(&ev);
                n++;
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(n, N);
        enc_gen_conf_t c = conf_of(5, 100, 28, N);
        enc_gen_t *g = gen_of(&c);
        for (int i = 0; i < N; i++) {
                enc_event_t ev;
                assert_int_equal(enc_gen_next(g, &ev), ENC_OK);
                assert_int_equal(got[i], event_hash(&ev));
        }
        enc_gen_destroy(g);
        free(got);
        enc_codec_destroy(codec);
        rd_kafka_consumer_close(cons);
        rd_kafka_destroy(cons);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(host);
}

/* Nothing listens on the bootstrap: the delivery reports fail, and so does
 * the run (exit 1, not 0 and not 2). */
static void test_cli_failed_delivery_exits_non_zero(void **state) {
        (void)state;
        if (!have_cli())
                skip();
        assert_int_equal(run_cli("--bootstrap 127.0.0.1:1 --count 10 "
                                 "--users 10 --kafka message.timeout.ms=1500"),
                         1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_same_seed_gives_identical_sequence),
                cmocka_unit_test(test_different_seeds_give_different_sequences),
                cmocka_unit_test(
                        test_event_times_non_decreasing_without_disorder),
                cmocka_unit_test(
                        test_disorder_displaces_by_at_most_disorder_ms),
                cmocka_unit_test(test_events_validate_and_are_consistent),
                cmocka_unit_test(test_cohorts_split_users_and_can_be_off),
                cmocka_unit_test(
                        test_source_surface_and_reason_shares_match_config),
                cmocka_unit_test(test_rec_share_is_configurable),
                cmocka_unit_test(test_artist_popularity_is_zipf_heavy_tailed),
                cmocka_unit_test(test_new_users_arrive_on_later_days),
                cmocka_unit_test(test_users_churn),
                cmocka_unit_test(test_churned_users_return),
                cmocka_unit_test(
                        test_recommended_discoveries_return_on_later_days),
                cmocka_unit_test(
                        test_user_plays_never_overlap_and_sessions_separate),
                cmocka_unit_test(test_out_of_range_config_names_the_field),
                cmocka_unit_test(test_million_users_memory_is_bounded),
                cmocka_unit_test(test_events_round_trip_through_codec),
                cmocka_unit_test(test_cli_bad_flags_exit_2),
                cmocka_unit_test(test_cli_writes_avro_file_of_generator_events),
                cmocka_unit_test(test_cli_produces_to_kafka),
                cmocka_unit_test(test_cli_failed_delivery_exits_non_zero),
        };
        return cmocka_run_group_tests(tests, cli_setup, NULL);
}
