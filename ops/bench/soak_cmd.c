/*
 * soak_cmd.c -- `encore-bench soak`: a rolling population for simulated
 * weeks (soak.c), printing user keys, timer keys and RocksDB size per week,
 * and whether they levelled off.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "bench.h"
#include "soak.h"

typedef struct soak_seen_s {
        enc_soak_week_t *v;
        int n, cap;
} soak_seen_t;

static int soak_print(void *opaque, const enc_soak_week_t *w) {
        soak_seen_t *s = opaque;
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 64;
                s->v = realloc(s->v, (size_t)s->cap * sizeof(*s->v));
                if (!s->v)
                        return 1;
        }
        s->v[s->n++] = *w;
        printf("WEEK %3d events=%" PRIu64 " live_users=%" PRIu64
               " users_total=%" PRIu64 " user_keys=%" PRIu64
               " timer_keys=%" PRIu64 " rocksdb_bytes=%" PRIu64
               " expired=%" PRIu64 " updates=%" PRIu64 " wall_s=%.1f\n",
               w->week, w->events, w->live_users, w->users_total, w->user_keys,
               w->timer_keys, w->sst_bytes, w->users_expired, w->updates,
               w->seconds);
        fflush(stdout);
        return 0;
}

static double soak_field(const enc_soak_week_t *w, int f) {
        return f == 0   ? (double)w->user_keys
               : f == 1 ? (double)w->timer_keys
               : f == 2 ? (double)w->sst_bytes
                        : (double)w->users_total;
}

/* Least-squares slope of field @p f over the weeks [a, b] (1-based). */
static double soak_slope(const soak_seen_t *s, int a, int b, int f) {
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int i = a - 1; i < b; i++) {
                double x = s->v[i].week, y = soak_field(&s->v[i], f);
                n++;
                sx += x;
                sy += y;
                sxx += x * x;
                sxy += x * y;
        }
        return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

int enc_bench_soak(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "listeners alive on day 0", 3000, NULL},
                {"weeks", "simulated weeks", 52, NULL},
                {"arrival-rate", "new listeners per day / users", 0.02, NULL},
                {"churn-rate", "per-day churn hazard", 0.02, NULL},
                {"partitions", "input partitions", 4, NULL},
                {"seed", "generator seed", 1, NULL},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o,
                             "encore-bench soak: bounded state under a "
                             "rolling population"))
                return 2;
        char errstr[512];
        enc_soak_conf_t sc = {.partitions = (int)o[4].num,
                              .commit_records = 100000};
        enc_gen_conf_defaults(&sc.gen);
        sc.gen.users = (uint32_t)o[0].num;
        sc.gen.days = (uint32_t)(7 * o[1].num + 1);
        sc.gen.arrival_rate = o[2].num;
        sc.gen.churn_rate = o[3].num;
        sc.gen.seed = (uint64_t)o[5].num;
        char *dir = enc_bench_tmpdir("soak");
        if (!dir)
                return 1;
        sc.state_dir = dir;
        soak_seen_t seen = {0};
        enc_err_t err =
                enc_soak_run(&sc, soak_print, &seen, errstr, sizeof(errstr));
        enc_bench_rmtree(dir);
        free(dir);
        if (err) {
                enc_bench_log("soak: %s", errstr);
                free(seen.v);
                return 1;
        }
        int n = seen.n;
        if (n >= 8) {
                /* Over the second half of the run: how fast keys (and
                 * bytes) grow, as a share of how fast new listeners appear.
                 * Unbounded state grows at the listeners' pace (1.0); the
                 * test (tests/test_bounded_state.c) requires <= 0.25. */
                int a = n / 2 + 1;
                double users_seen = soak_slope(&seen, a, n, 3);
                double last_bpk = (double)seen.v[n - 1].sst_bytes /
                                  (double)seen.v[n - 1].user_keys;
                enc_bench_result("soak.user_keys_growth_vs_users_seen",
                                 soak_slope(&seen, a, n, 0) / users_seen,
                                 "ratio (weeks 2nd half)");
                enc_bench_result("soak.timer_keys_growth_vs_users_seen",
                                 soak_slope(&seen, a, n, 1) / users_seen,
                                 "ratio (weeks 2nd half)");
                enc_bench_result("soak.rocksdb_bytes_growth_vs_users_seen",
                                 soak_slope(&seen, a, n, 2) /
                                         (users_seen * last_bpk),
                                 "ratio (weeks 2nd half)");
                enc_bench_result("soak.user_keys_final",
                                 (double)seen.v[n - 1].user_keys, "keys");
                enc_bench_result("soak.live_users_final",
                                 (double)seen.v[n - 1].live_users, "users");
                enc_bench_result("soak.users_total_final",
                                 (double)seen.v[n - 1].users_total, "users");
                enc_bench_result("soak.rocksdb_mib_final",
                                 (double)seen.v[n - 1].sst_bytes / 1048576.0,
                                 "MiB");
                enc_bench_result("soak.events", (double)seen.v[n - 1].events,
                                 "events");
        }
        free(seen.v);
        return 0;
}
