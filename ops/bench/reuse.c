/*
 * reuse.c -- LRU reuse distances over an access sequence.
 *
 * DESIGN
 * An LRU cache of C keys holds, at any moment, the C keys used most
 * recently. So an access to key k hits iff fewer than C other distinct
 * keys were used since k's previous access: that count is the access's
 * reuse (stack) distance, and one pass of distances gives the hit ratio of
 * every cache size at once (Mattson et al., 1970). Here the sequence is a
 * benchmark log of millions of events, so the distances are counted with
 * a Fenwick tree over access positions, one slot per access: slot p holds
 * 1 iff p is the latest access of its key so far. At access i of key k
 * whose previous access was p, the keys used strictly between p and i are
 * exactly the slots p+1 .. i-1 holding 1 (each key counted once, at its
 * latest access), a prefix-sum difference; then k's mark moves from p to
 * i. Each access is two prefix sums and two point updates: O(n log n).
 *
 * Invariants: after access i, the tree holds exactly one 1 per distinct
 * key of keys[0..i], at that key's latest position; last[k] is that
 * position plus one (0: not seen).
 *
 * What it is not: a model of encore's cache. It knows nothing of dirty
 * users waiting for a commit, read-ahead, a charge that varies per user or
 * the order the reorder buffer applies events in (reuse_cmd.c and
 * ops/bench/LIMITS.md say what those change). It is the upper bound any
 * cache of C users keyed by LRU can reach on the order given.
 */
#include "reuse.h"

#include <stdbool.h>
#include <stdlib.h>

/* Fenwick tree over positions 0..n-1 (stored 1-based in t[1..n]). */
static void fw_add(uint32_t *t, size_t n, size_t pos, int32_t d) {
        for (size_t i = pos + 1; i <= n; i += i & (~i + 1))
                t[i] = (uint32_t)((int64_t)t[i] + d);
}

/* Sum of slots 0..pos-1 (pos 0: empty prefix). */
static uint64_t fw_prefix(const uint32_t *t, size_t pos) {
        uint64_t s = 0;
        for (size_t i = pos; i > 0; i -= i & (~i + 1))
                s += t[i];
        return s;
}

enc_err_t enc_reuse_distances(const uint32_t *keys, size_t n, size_t from,
                              uint32_t nkeys, uint32_t *dist, size_t *prev) {
        if (from > n || n >= UINT32_MAX) /* the tree counts in 32 bits */
                return ENC_ERR_INVALID_ARG;
        for (size_t i = 0; i < n; i++)
                if (keys[i] >= nkeys)
                        return ENC_ERR_INVALID_ARG;
        /* Owned here, freed before returning. */
        uint32_t *t = calloc(n + 1, sizeof(*t));
        size_t *last = calloc((size_t)nkeys + 1, sizeof(*last));
        if (!t || !last) {
                free(t);
                free(last);
                return ENC_ERR_NOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                uint32_t k = keys[i];
                size_t p1 = last[k]; /* previous position + 1, 0: none */
                if (i >= from) {
                        if (p1) {
                                /* marks in p1 .. i-1 = slots after p */
                                /* < nkeys <= UINT32_MAX: never INF */
                                dist[i - from] = (uint32_t)(fw_prefix(t, i) -
                                                            fw_prefix(t, p1));
                        } else {
                                dist[i - from] = ENC_REUSE_INF;
                        }
                        if (prev)
                                prev[i - from] = p1 ? p1 - 1 : ENC_REUSE_NONE;
                }
                if (p1)
                        fw_add(t, n, p1 - 1, -1);
                fw_add(t, n, i, 1);
                last[k] = i + 1;
        }
        free(t);
        free(last);
        return ENC_OK;
}

double enc_reuse_lru_hit_ratio(const uint32_t *dist, size_t n, uint64_t cap) {
        if (!n)
                return 0;
        size_t hits = 0;
        for (size_t i = 0; i < n; i++)
                hits += dist[i] != ENC_REUSE_INF && (uint64_t)dist[i] < cap;
        return (double)hits / (double)n;
}

uint64_t enc_reuse_commit_writes(const size_t *prev, size_t count, size_t from,
                                 size_t w, uint64_t *most) {
        uint64_t total = 0, dirty = 0;
        *most = 0;
        if (!w)
                w = 1;
        for (size_t j = 0; j < count; j++) {
                size_t start = from + j / w * w; /* this stretch's first */
                if (j % w == 0)
                        dirty = 0;
                /* ENC_REUSE_NONE (a first access) is above every index */
                bool fresh = prev[j] == ENC_REUSE_NONE || prev[j] < start;
                dirty += fresh;
                total += fresh;
                if (dirty > *most)
                        *most = dirty;
        }
        return total;
}

/* Index of the nearest-rank q quantile among n sorted values. */
static size_t quantile_at(size_t n, double q) {
        double r = q * (double)n;
        size_t k = (size_t)r;
        if ((double)k < r)
                k++; /* ceil */
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return k - 1;
}

uint32_t enc_reuse_quantile_u32(const uint32_t *sorted, size_t n, double q) {
        return n ? sorted[quantile_at(n, q)] : 0;
}

int64_t enc_reuse_quantile_i64(const int64_t *sorted, size_t n, double q) {
        return n ? sorted[quantile_at(n, q)] : 0;
}
