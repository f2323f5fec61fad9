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

/* Mean of field @p f over weeks [a, b) (1-based weeks, a < b). */
static double soak_mean(const soak_seen_t *s, int a, int b, int f) {
        double sum = 0;
        for (int i = a - 1; i < b - 1; i++)
                sum += f == 0   ? (double)s->v[i].user_keys
                       : f == 1 ? (double)s->v[i].timer_keys
                                : (double)s->v[i].sst_bytes;
        return sum / (b - a);
}

int enc_bench_soak(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "listeners alive on day 0", 20000, NULL},
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
                /* growth over the last quarter of the run, per field */
                int q = n / 4;
                static const char *const names[] = {"user_keys", "timer_keys",
                                                    "rocksdb_bytes"};
                for (int f = 0; f < 3; f++) {
                        double a =
                                soak_mean(&seen, n - 2 * q + 1, n - q + 1, f);
                        double b = soak_mean(&seen, n - q + 1, n + 1, f);
                        char name[64];
                        snprintf(name, sizeof(name),
                                 "soak.%s_last_quarter_growth", names[f]);
                        enc_bench_result(name, a > 0 ? b / a - 1 : 0, "ratio");
                }
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
