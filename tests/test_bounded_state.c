/*
 * test_bounded_state.c -- state stays bounded under a rolling population
 * (ops/bench/soak.c; the same driver as `encore-bench soak`).
 *
 * 400 listeners on day 0; every day 2% of that number arrive and each live
 * listener churns with probability 2% (the generator's defaults), a quarter
 * of them coming back weeks later. The engine runs the default signals
 * over 36 simulated weeks; at each week's end the store is compacted and
 * its user keys, timer keys and bytes are counted exactly.
 *
 * What bounded means, and the tolerance. If state never expired, every
 * listener ever seen would keep a key, and user keys would grow exactly as
 * fast as users_total (day-0 listeners + arrivals), about 56 a week here.
 * If a fraction f of churned users leaked, keys would grow at about f times
 * that. With expiry working, keys grow while churned users' state is still
 * within its longest horizon (discovery_habit's 90-day lookback: weeks
 * 1-13) and then level off at roughly live listeners + those churned in the
 * last ~90 days. So the test fits a least-squares slope over weeks 20-36,
 * well after the horizon, and requires
 *     slope(user keys) <= 0.25 * slope(users_total)
 * and the same for timer keys and for bytes (against users_total times the
 * final bytes per key). 0.25 catches any leak of a quarter or more of the
 * churned population; the run is deterministic (seeded generator, no clock
 * in the engine), and its steady-state slope is about 0.05 of users_total's
 * -- the population itself drifts a little -- so the margin is five-fold.
 * Two further checks keep the test from passing vacuously: keys do grow
 * during the first 12 weeks (state accumulates as listeners churn), and by
 * the end the engine has expired the state of over a third of all the
 * listeners it has seen (none would be, were expiry broken).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "soak.h"

#define WEEKS    36
#define FIT_FROM 20

typedef struct weeks_s {
        enc_soak_week_t w[WEEKS + 1];
        int n;
} weeks_t;

static int keep_week(void *opaque, const enc_soak_week_t *w) {
        weeks_t *s = opaque;
        if (s->n <= WEEKS)
                s->w[s->n++] = *w;
        return 0;
}

/* Least-squares slope of y over weeks [from, to] (1-based). */
static double slope(const weeks_t *s, int from, int to,
                    double (*y)(const enc_soak_week_t *)) {
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int i = from - 1; i < to; i++) {
                double x = s->w[i].week, v = y(&s->w[i]);
                n++;
                sx += x;
                sy += v;
                sxx += x * x;
                sxy += x * v;
        }
        return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

static double user_keys(const enc_soak_week_t *w) {
        return (double)w->user_keys;
}
static double timer_keys(const enc_soak_week_t *w) {
        return (double)w->timer_keys;
}
static double sst_bytes(const enc_soak_week_t *w) {
        return (double)w->sst_bytes;
}
static double users_total(const enc_soak_week_t *w) {
        return (double)w->users_total;
}

static void test_keys_and_bytes_level_off_under_churn(void **state) {
        (void)state;
        char errstr[512] = "";
        char *dir = t_tmpdir("bounded");
        enc_soak_conf_t sc = {
                .partitions = 4, .commit_records = 100000, .state_dir = dir};
        enc_gen_conf_defaults(&sc.gen);
        sc.gen.users = 400;
        sc.gen.days = 7 * WEEKS + 1;
        weeks_t s = {.n = 0};
        enc_err_t err =
                enc_soak_run(&sc, keep_week, &s, errstr, sizeof(errstr));
        t_rmtree(dir);
        free(dir);
        if (err)
                fail_msg("soak: %s", errstr);
        assert_int_equal(s.n, WEEKS);
        for (int i = 0; i < s.n; i++) {
                assert_int_equal(s.w[i].week, i + 1);
                /* one timer key at most per user with state */
                assert_true(s.w[i].timer_keys <= s.w[i].user_keys);
        }
        const enc_soak_week_t *last = &s.w[WEEKS - 1];
        fprintf(stderr,
                "week 1: %llu keys; week 12: %llu; week %d: %llu keys, "
                "%llu bytes, %llu users seen, %llu expired\n",
                (unsigned long long)s.w[0].user_keys,
                (unsigned long long)s.w[11].user_keys, WEEKS,
                (unsigned long long)last->user_keys,
                (unsigned long long)last->sst_bytes,
                (unsigned long long)last->users_total,
                (unsigned long long)last->users_expired);

        /* Not vacuous: state accumulates at first, and expiry happened. */
        assert_true(s.w[11].user_keys > s.w[0].user_keys * 3 / 2);
        assert_true(last->users_expired > last->users_total / 3);

        double arrivals = slope(&s, FIT_FROM, WEEKS, users_total);
        double keys = slope(&s, FIT_FROM, WEEKS, user_keys);
        double timers = slope(&s, FIT_FROM, WEEKS, timer_keys);
        double bytes = slope(&s, FIT_FROM, WEEKS, sst_bytes);
        double per_key = (double)last->sst_bytes / (double)last->user_keys;
        fprintf(stderr,
                "weeks %d-%d, per week: users seen +%.1f, user keys %+.1f, "
                "timer keys %+.1f, bytes %+.0f (%.0f bytes a key)\n",
                FIT_FROM, WEEKS, arrivals, keys, timers, bytes, per_key);
        assert_true(arrivals > 40); /* the population does roll */
        assert_true(keys <= 0.25 * arrivals);
        assert_true(timers <= 0.25 * arrivals);
        assert_true(bytes <= 0.25 * arrivals * per_key);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keys_and_bytes_level_off_under_churn),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
