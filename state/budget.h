/*
 * budget.h -- how cache.max.bytes is shared by everything that holds state.
 *
 * cache.max.bytes is the one memory budget of encore's state: the
 * write-back cache of decoded users (state/users.c), RocksDB's block cache
 * and RocksDB's memtables (state/store.c) are each given a share of it, and
 * the bytes one commit may stage and the records the input consumer may
 * prefetch (consumer/pipeline.c) are bounded by it. state/budget.c says how
 * the shares were chosen. Pure arithmetic: no I/O, any thread.
 */
#ifndef ENC_BUDGET_H
#define ENC_BUDGET_H

#include "enc.h"

/* The default of cache.max.bytes (base/config.c); stores opened
 * without a configuration (enc_store_open with conf NULL) are sized as
 * its shares. */
#define ENC_BUDGET_DEFAULT_BYTES ((size_t)64 << 20)

/* Floors of the RocksDB shares: below a budget of 16 MiB they win, and
 * state takes more than the budget (see state/budget.c). */
#define ENC_BUDGET_MIN_BLOCK_CACHE ((size_t)4 << 20)
#define ENC_BUDGET_MIN_MEMTABLES   ((size_t)4 << 20)
#define ENC_BUDGET_MIN_COMMIT      ((size_t)1 << 20)
#define ENC_BUDGET_MIN_IDFILTER    ((size_t)1 << 20)
#define ENC_BUDGET_MIN_PREFETCH    ((size_t)1 << 20)
#define ENC_BUDGET_MAX_PREFETCH    ((size_t)16 << 20)

typedef struct enc_budget_s {
        size_t total;        /* cache.max.bytes */
        size_t users;        /* write-back cache, charged per entry, and
                                the id filter, charged what it holds: 1/2 */
        size_t idfilter;     /* the most the recent event ids in front of
                                the duplicate check (state/idfilter.c) may
                                take of it: 1/16 of the total, at least
                                1 MiB, at most a quarter of the users
                                share */
        size_t block_cache;  /* RocksDB block cache (data, index, filters):
                                1/4 */
        size_t memtables;    /* RocksDB write buffers of all families,
                                counting one being flushed: 1/4 */
        size_t prefetch;     /* records fetched from Kafka and not yet
                                processed (the input consumer's prefetch
                                queue; consumer/pipeline.c sets
                                librdkafka's bounds from it): 1/16 of the
                                total, at least 1 MiB and at most 16 MiB
                                or 1/8 of the total, outside the shares */
        size_t commit_bytes; /* estimated bytes a checkpoint would stage
                                (records, keys, timer moves) past which a
                                commit is due: 1/8, outside the shares */
} enc_budget_t;

/** Splits @p total bytes (cache.max.bytes) into @p b. */
void enc_budget_split(size_t total, enc_budget_t *b);

#endif /* ENC_BUDGET_H */
