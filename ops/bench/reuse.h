/*
 * reuse.h -- LRU reuse distances of an access sequence: what an ideal
 * cache of C keys could serve, whatever the engine behind it. Used by
 * `encore-bench reuse` (ops/bench/reuse_cmd.c) and pinned by
 * tests/test_reuse.c. Pure computation: no I/O, single-threaded.
 */
#ifndef ENC_REUSE_H
#define ENC_REUSE_H

#include <stddef.h>
#include <stdint.h>

#include "enc.h"

/* The distance of a key's first access: no cache can serve it. */
#define ENC_REUSE_INF UINT32_MAX
/* prev[] of a first access. */
#define ENC_REUSE_NONE SIZE_MAX

/**
 * For the accesses keys[0..n) (dense ids, each < @p nkeys), computes for
 * every access i in [@p from, n) its LRU reuse distance: the number of
 * distinct keys other than keys[i] accessed since keys[i]'s previous
 * access, ENC_REUSE_INF if there is none. Accesses before @p from are not
 * reported but count as accessed (a warm-up whose state exists).
 * dist[i - from] gets the distance; prev[i - from] (prev may be NULL) the
 * index of the previous access, ENC_REUSE_NONE if none. O(n log n) time,
 * O(n + nkeys) memory. @p keys, @p dist, @p prev borrowed for the call.
 * ENC_ERR_INVALID_ARG if a key is >= nkeys, from > n or n >= 2^32 - 1;
 * ENC_ERR_NOMEM.
 */
enc_err_t enc_reuse_distances(const uint32_t *keys, size_t n, size_t from,
                              uint32_t nkeys, uint32_t *dist,
                              size_t *prev) ENC_WUR;

/**
 * The hit ratio of an LRU cache of @p cap keys over accesses with the
 * distances @p dist[0..n): an access hits iff fewer than cap other keys
 * were used since its key was, i.e. dist < cap (first accesses miss).
 * 0 for n == 0.
 */
double enc_reuse_lru_hit_ratio(const uint32_t *dist, size_t n, uint64_t cap);

/**
 * The writes a write-back cache committing every @p w accesses would make:
 * with @p prev[0..count) the previous accesses of accesses from .. from +
 * count - 1 (as enc_reuse_distances fills it), and the stretches
 * [from, from + w), [from + w, from + 2w), ..., an access dirties its key
 * (one write at the stretch's commit) iff its previous access is before
 * its stretch or there is none. Returns the writes of all stretches;
 * @p most gets the most in one stretch. w == 0 counts every access.
 */
uint64_t enc_reuse_commit_writes(const size_t *prev, size_t count, size_t from,
                                 size_t w, uint64_t *most);

/**
 * The @p q quantile (0 < q <= 1, nearest rank: the smallest value with at
 * least q of the values at or below it) of @p sorted[0..n) (ascending);
 * ENC_REUSE_INF stays infinite. 0 for n == 0.
 */
uint32_t enc_reuse_quantile_u32(const uint32_t *sorted, size_t n, double q);
int64_t enc_reuse_quantile_i64(const int64_t *sorted, size_t n, double q);

#endif /* ENC_REUSE_H */
