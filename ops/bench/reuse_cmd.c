/*
 * reuse_cmd.c -- `encore-bench reuse`: what any user cache could buy on
 * B1's input, measured on the log and not on the engine.
 *
 * DESIGN
 * B1 cold (1M users, 64 MiB) loads nearly every event's user from RocksDB
 * and writes it back (ops/bench/LIMITS.md). Whether a smaller per-user
 * state would change that depends only on the input: how many other
 * users come between two events of the same user. This subcommand
 * generates exactly the log `encore-bench b1` runs on (enc_bench_b1_log,
 * the same options and defaults), maps each event to its (partition,
 * user) key and computes, for every event of the timed part (after the
 * warm-up days, whose users count as already accessed), its LRU reuse
 * distance (reuse.c). From those it prints, as RESULT lines:
 *
 *   - the hit ratio an ideal LRU cache of C users would have, for C of
 *     10k to 1M, and the bytes a cached user may cost for C of them to
 *     fit the users share of the budget (half of cache.max.bytes,
 *     state/budget.c);
 *   - the users a cache needs (and so the bytes per user it allows) for a
 *     hit ratio of 50 to 95%;
 *   - the median and 90th percentile of the distances, and of the event
 *     time between a user's consecutive events.
 *
 * It is an upper bound, on purpose: events are taken in log order (the
 * engine applies them after its reorder buffer, in event-time order within
 * a partition, a grace period later), every user is one slot whatever its
 * size, and a user can be evicted at any time (the engine cannot evict a
 * dirty user before the next commit). ops/bench/LIMITS.md says what each
 * of those changes. Never a figure from the engine: no state is opened.
 */
#define XXH_INLINE_ALL
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bench.h"
#include "reuse.h"

/* Dense ids for (partition, user) keys: open addressing over a hash of
 * both, each slot holding id + 1 (0: empty); an id's first record is kept
 * to compare the key's bytes, so a hash collision never merges users. */
typedef struct reuse_ids_s {
        uint32_t *slots; /* owned */
        size_t mask;
        size_t *first; /* owned: by id, index of its first record */
        uint32_t n;
        size_t cap;
} reuse_ids_t;

static uint64_t reuse_hash(const enc_bench_log_t *log, size_t i) {
        const enc_bench_rec_t *r = &log->recs[i];
        return XXH3_64bits_withSeed(enc_bench_log_key(log, i), r->key_len,
                                    (uint64_t)r->partition);
}

static bool reuse_same(const enc_bench_log_t *log, size_t a, size_t b) {
        const enc_bench_rec_t *ra = &log->recs[a], *rb = &log->recs[b];
        return ra->partition == rb->partition && ra->key_len == rb->key_len &&
               !memcmp(enc_bench_log_key(log, a), enc_bench_log_key(log, b),
                       ra->key_len);
}

/* Id of record @p i's key, a new one if unseen; UINT32_MAX on no memory. */
static uint32_t reuse_id(reuse_ids_t *ids, const enc_bench_log_t *log,
                         size_t i) {
        if (2 * ((size_t)ids->n + 1) > ids->mask + 1) { /* grow at 1/2 */
                size_t nm = ids->mask ? 2 * ids->mask + 1 : (1u << 16) - 1;
                uint32_t *ns = calloc(nm + 1, sizeof(*ns));
                if (!ns)
                        return UINT32_MAX;
                for (uint32_t id = 0; id < ids->n; id++) {
                        size_t h = (size_t)reuse_hash(log, ids->first[id]) & nm;
                        while (ns[h])
                                h = (h + 1) & nm;
                        ns[h] = id + 1;
                }
                free(ids->slots);
                ids->slots = ns;
                ids->mask = nm;
        }
        size_t h = (size_t)reuse_hash(log, i) & ids->mask;
        for (; ids->slots[h]; h = (h + 1) & ids->mask)
                if (reuse_same(log, ids->first[ids->slots[h] - 1], i))
                        return ids->slots[h] - 1;
        if (ids->n == ids->cap) {
                size_t nc = ids->cap ? 2 * ids->cap : 1 << 16;
                size_t *nf = realloc(ids->first, nc * sizeof(*nf));
                if (!nf)
                        return UINT32_MAX;
                ids->first = nf;
                ids->cap = nc;
        }
        ids->first[ids->n] = i;
        ids->slots[h] = ids->n + 1;
        return ids->n++;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

/* A distance as a RESULT line: "inf" for a first access. */
static void reuse_result_dist(const char *name, uint32_t d) {
        if (d == ENC_REUSE_INF)
                enc_bench_result_str(name, "inf");
        else
                enc_bench_result(name, (double)d, "users");
}

int enc_bench_reuse(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "listeners alive on day 0 (as b1)", 1000000, NULL},
                {"days", "days of event time in the log (as b1)", 2, NULL},
                {"warmup-days",
                 "leading days not reported; their users "
                 "count as accessed (as b1)",
                 1, NULL},
                {"partitions", "input partitions (as b1)", 4, NULL},
                {"seed", "generator seed (as b1)", 1, NULL},
                {"cache-mb", "cache.max.bytes in MiB: the users share is half",
                 64, NULL},
                {"user-bytes",
                 "also print the hit ratio if a cached user costs this many "
                 "bytes (0: not)",
                 0, NULL},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o,
                             "encore-bench reuse: LRU reuse distances of "
                             "users on b1's log (what a user cache can buy)"))
                return 2;
        char errstr[512];
        int rc = 1;
        uint64_t users = (uint64_t)o[0].num;
        int days = (int)o[1].num, warm_days = (int)o[2].num;
        double share = o[5].num * 1048576.0 / 2; /* state/budget.c */
        enc_bench_log_t log;
        size_t warm;
        reuse_ids_t ids = {0};
        /* Owned here, freed at out. */
        uint32_t *keys = NULL, *dist = NULL, *sorted = NULL;
        size_t *prev = NULL;
        int64_t *gaps = NULL;

        enc_bench_log("generating %d days of %" PRIu64 " listeners (b1's log)",
                      days, users);
        double t = enc_bench_now();
        if (enc_bench_b1_log(&log, &warm, users, days, warm_days, (int)o[3].num,
                             (uint64_t)o[4].num, errstr, sizeof(errstr))) {
                enc_bench_log("generate: %s", errstr);
                return 1;
        }
        size_t n = log.n, timed = n - warm;
        enc_bench_log("log: %zu records in %.1f s; warm-up %zu, timed %zu", n,
                      enc_bench_now() - t, warm, timed);
        if (!timed) {
                enc_bench_log("nothing after the warm-up");
                goto out;
        }
        keys = malloc(n * sizeof(*keys));
        dist = malloc(timed * sizeof(*dist));
        sorted = malloc(timed * sizeof(*sorted));
        prev = malloc(timed * sizeof(*prev));
        gaps = malloc(timed * sizeof(*gaps));
        if (!keys || !dist || !sorted || !prev || !gaps)
                goto nomem;
        uint32_t warm_users = 0;
        for (size_t i = 0; i < n; i++) {
                if ((keys[i] = reuse_id(&ids, &log, i)) == UINT32_MAX)
                        goto nomem;
                if (i + 1 == warm)
                        warm_users = ids.n;
        }
        t = enc_bench_now();
        enc_err_t err = enc_reuse_distances(keys, n, warm, ids.n, dist, prev);
        if (err) {
                enc_bench_log("distances: %s", enc_err2str(err));
                goto out;
        }
        enc_bench_log("distances of %zu events in %.1f s", timed,
                      enc_bench_now() - t);

        /* Users with an event in the timed part: each key's last access
         * is there iff some timed event has it; count them by marking. */
        uint8_t *seen = calloc(ids.n, 1);
        if (!seen)
                goto nomem;
        uint64_t timed_users = 0;
        size_t ngaps = 0;
        for (size_t j = 0; j < timed; j++) {
                uint32_t k = keys[warm + j];
                timed_users += !seen[k];
                seen[k] = 1;
                if (prev[j] != ENC_REUSE_NONE)
                        gaps[ngaps++] = log.recs[warm + j].time -
                                        log.recs[prev[j]].time;
        }
        free(seen);
        memcpy(sorted, dist, timed * sizeof(*sorted));
        qsort(sorted, timed, sizeof(*sorted), cmp_u32);
        qsort(gaps, ngaps, sizeof(*gaps), cmp_i64);

        enc_bench_result("reuse.log_records", (double)n, "records");
        enc_bench_result("reuse.timed_records", (double)timed, "records");
        enc_bench_result("reuse.distinct_users", (double)ids.n, "users");
        enc_bench_result("reuse.distinct_users_warmup", (double)warm_users,
                         "users");
        enc_bench_result("reuse.distinct_users_timed", (double)timed_users,
                         "users");
        /* Events whose user has no earlier event: no cache serves them. */
        enc_bench_result("reuse.first_access_share",
                         (double)(timed - ngaps) / (double)timed, "ratio");
        enc_bench_result("reuse.users_share_mib", share / 1048576.0, "MiB");
        static const uint64_t caps[] = {10000, 30000, 100000, 300000, 1000000};
        static const char *const cap_names[] = {"10k", "30k", "100k", "300k",
                                                "1M"};
        char name[96];
        for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
                snprintf(name, sizeof(name), "reuse.lru_hit_%s", cap_names[c]);
                enc_bench_result(name,
                                 enc_reuse_lru_hit_ratio(dist, timed, caps[c]),
                                 "ratio");
                /* What a cached user may cost for C of them to fit */
                snprintf(name, sizeof(name), "reuse.bytes_per_user_%s",
                         cap_names[c]);
                enc_bench_result(name, share / (double)caps[c], "bytes");
        }
        /* The other way round: the cache a hit ratio needs. An access hits
         * iff its distance < C, so hit ratio h needs C = (h quantile) + 1. */
        static const int pct[] = {50, 80, 90, 95};
        for (size_t q = 0; q < sizeof(pct) / sizeof(pct[0]); q++) {
                uint32_t d =
                        enc_reuse_quantile_u32(sorted, timed, pct[q] / 100.0);
                snprintf(name, sizeof(name), "reuse.users_for_hit_%d", pct[q]);
                if (d == ENC_REUSE_INF) {
                        enc_bench_result_str(name, "unreachable");
                        continue;
                }
                enc_bench_result(name, (double)d + 1, "users");
                snprintf(name, sizeof(name), "reuse.bytes_per_user_for_hit_%d",
                         pct[q]);
                enc_bench_result(name, share / ((double)d + 1), "bytes");
        }
        reuse_result_dist("reuse.distance_p50",
                          enc_reuse_quantile_u32(sorted, timed, 0.5));
        reuse_result_dist("reuse.distance_p90",
                          enc_reuse_quantile_u32(sorted, timed, 0.9));
        /* Of the events whose user was seen before (sorted ascending, the
         * first accesses are last). */
        reuse_result_dist("reuse.distance_reused_p50",
                          enc_reuse_quantile_u32(sorted, ngaps, 0.5));
        reuse_result_dist("reuse.distance_reused_p90",
                          enc_reuse_quantile_u32(sorted, ngaps, 0.9));
        enc_bench_result(
                "reuse.gap_p50_s",
                (double)enc_reuse_quantile_i64(gaps, ngaps, 0.5) / 1000.0, "s");
        enc_bench_result(
                "reuse.gap_p90_s",
                (double)enc_reuse_quantile_i64(gaps, ngaps, 0.9) / 1000.0, "s");
        /* The write side: a commit writes each user dirtied since the last
         * one once, however many of its events it covers, and those users
         * cannot leave the cache before it. Committing every W events (in
         * log order, from the first timed one): users written per event,
         * and the most dirty at one commit. A count over the log, not the
         * engine (which commits on wall time, and early when the dirty
         * bytes pass 1/8 of the budget). */
        static const size_t commit_every[] = {30000, 250000};
        for (size_t c = 0; c < sizeof(commit_every) / sizeof(commit_every[0]);
             c++) {
                size_t w = commit_every[c];
                uint64_t most, total = enc_reuse_commit_writes(prev, timed,
                                                               warm, w, &most);
                snprintf(name, sizeof(name),
                         "reuse.writes_per_event_commit_%zu", w);
                enc_bench_result(name, (double)total / (double)timed, "users");
                snprintf(name, sizeof(name), "reuse.dirty_users_max_commit_%zu",
                         w);
                enc_bench_result(name, (double)most, "users");
        }
        if (o[6].num > 0) {
                double c = share / o[6].num;
                enc_bench_result("reuse.users_at_user_bytes", c, "users");
                enc_bench_result(
                        "reuse.lru_hit_at_user_bytes",
                        enc_reuse_lru_hit_ratio(dist, timed, (uint64_t)c),
                        "ratio");
        }
        rc = 0;
        goto out;
nomem:
        enc_bench_log("out of memory");
out:
        free(keys);
        free(dist);
        free(sorted);
        free(prev);
        free(gaps);
        free(ids.slots);
        free(ids.first);
        enc_bench_log_free(&log);
        return rc;
}
