/*
 * budget.c -- the shares of cache.max.bytes.
 *
 * DESIGN
 * encore's memory is meant to be "cache.max.bytes plus a fixed amount"
 * whatever the size of the state on disk (ops/bench/LIMITS.md, `encore-bench
 * mem`). Three things grow with use and would each take what they were
 * given on top of the others: the write-back cache of decoded users, the
 * RocksDB block cache and the RocksDB memtables. So cache.max.bytes is not
 * the users cache's alone any more but the budget all three share:
 *
 *   users cache   1/2  decoded state is what saves a RocksDB read and a
 *                      parse per event, and the only place dirty state can
 *                      wait for a commit, so it gets the largest share;
 *                      it also pays for the id filter, the recent event
 *                      ids that answer most duplicate checks without
 *                      loading the user (state/idfilter.c), charged what
 *                      its tables hold (about 5 to 10 bytes an event of
 *                      the dedup window, where a cached user costs
 *                      hundreds), up to 1/16 of the total (at least 1 MiB,
 *                      at most a quarter of the share); past that the
 *                      filter covers a shorter span and more checks load
 *                      the user;
 *   block cache   1/4  the index and filter partitions every lookup of
 *                      an uncached user needs (without them a miss reads
 *                      several blocks), and the blocks iterators read:
 *                      point reads leave data blocks out of it
 *                      (state/store.c, "Point lookups"). A smaller share
 *                      now that it holds little else was not measured;
 *                      b1 prints what the partitions take
 *                      (b1.user_index_mib, b1.user_filter_mib);
 *   memtables     1/4  all families' write buffers, counting the one being
 *                      flushed (state/store.c divides it).
 *
 * RocksDB 7.8's C API has no write buffer manager that charges memtables to
 * the block cache (rocksdb_write_buffer_manager_* came with 8.x), so the
 * two RocksDB shares are sized apart rather than sharing one cache.
 *
 * The RocksDB shares have floors of 4 MiB each: smaller memtables make a
 * table file per few hundred kilobytes of writes and a smaller block cache
 * cannot hold one partition of each level's index. They are reached below
 * a budget of 16 MiB, where state takes more than the budget.
 *
 * One more bound comes from the budget without being a share: the bytes a
 * checkpoint stages (every dirty user's record, key and timer move, in one
 * WriteBatch and again in the changelog producer's queue) are kept under
 * 1/8 of it by committing early (enc_engine_commit_due). Dirty users
 * themselves are inside the users share; this bounds the copies a commit
 * makes of them, which live outside the budget, in the fixed part. A dirty
 * user is charged about five times its record, so a users cache full of
 * dirty state stages about 1/10 of the budget and usually forces the
 * commit first; the bound is what holds when records are charged less
 * than that (new users, state grown since it was loaded). A lower bound
 * costs speed: at 1/16 (and a users write buffer of 3/8 of the memtable
 * share instead of 1/2) B1 took 467 checkpoints instead of 193 and ran at
 * 14 000 events/s instead of 19 400: a user touched again after a commit
 * is written again.
 *
 * Each staged byte is held about three times at a commit, not once: the
 * batch, and RocksDB writes a batch into one memtable whole, so a batch
 * larger than the users write buffer lands in full in the memtable being
 * filled while the one that took the previous commit is still being
 * flushed. In `encore-bench mem --users 1000000 --live 300000
 * --in-process 1` (64 MiB) the batches were 10.9 to 11.3 MiB for the 8
 * MiB bound (the estimate is taken when a user turns dirty; it grows
 * after) and heaptrack put the memtables at 33.4 MiB for their 16 MiB
 * share. At 1/16 the memtables took 20.9 MiB and the peak RSS fell from
 * 152 to 134 MiB, but after RocksDB's compactions were made cheap
 * (state/store.c) B1 (`encore-bench b1 --users 200000 --days 2
 * --cache-mb 16`, each build beside the old one, on the same CPU, two
 * runs minutes apart on a quiet machine) took 877 checkpoints instead of
 * 390, its processing thread 40.7 s instead of 36.0, and gave 27 626
 * events per CPU-second against 32 087 at 1/8 (under a load of 10 the
 * two had been even). encore itself
 * commits every commit.interval.ms, far below the bound, so its peak
 * (`encore-bench mem`, 10M users: 189 MiB) does not move with it. So the
 * bound stays at 1/8; an estimate that follows the user as it grows
 * (state/users.c) would keep batches at their bound.
 *
 * A second bound from the budget without being a share: the input
 * consumer's prefetch queue, records fetched from Kafka and not yet
 * processed, is bounded at 1/16 of it (at least 1 MiB, at most 16 MiB and
 * 1/8 of the total; consumer/pipeline.c turns it into librdkafka's
 * queued.min.messages and queued.max.messages.kbytes). librdkafka's own
 * bounds (100 000 records, 64 MiB) held about 50 MiB of the 188 MiB peak
 * of `encore-bench mem` (10M users, 64 MiB budget; heaptrack); with this
 * bound the peak was 156 MiB instead of 193 in the same session. It is
 * not taken from the users share, whose every MiB is hit ratio (B1, B2);
 * one B2 run with it taken from there was slower, but on a loaded machine
 * and with other changes, so that was not isolated. It is capped because
 * a larger queue
 * buys no speed: encore wakes librdkafka's fetchers when the queue runs
 * empty (consumer/pipeline.c, enc_pipeline_refill), so a bound costs one
 * fetch round trip per queueful, not a second.
 *
 * One thing that holds memory outside the budget is given no bound from
 * it on purpose: the reorder buffer (state/reorder.c), the events waiting
 * out window.grace.ms, about 60 000 in `encore-bench mem` and the largest
 * part of the peak beyond the budget. Its only bound is
 * reorder.max.events, a count: past it the watermark moves to the oldest
 * held event, so events leave earlier and later ones can turn late. That
 * changes outputs, and it is deterministic only because the count is a
 * function of the input. A byte bound derived from cache.max.bytes would
 * do the same at a point that depends on the budget, so the same input
 * would give other outputs at another cache size (b1's digest at 8 and
 * 512 MiB). So the buffer is made cheap per event instead (about 210
 * bytes with the bench's events, from about 310; state/reorder.c), and a deployment that must hold it
 * lower sets reorder.max.events, knowing it changes outputs.
 *
 * What the split costs: B1 (300 000 users, a 64 MiB budget) ran at 19 400
 * events/s against 52 500 when the users cache alone had 64 MiB and RocksDB
 * another 80 on top; its users cache hit ratio fell from 0.90 to 0.64, as
 * dirty state now fills half the cache it did and crowds out clean
 * entries. Speed is bought with cache.max.bytes, and it now buys what it
 * says (ops/bench/LIMITS.md).
 *
 * Never: look at the state, the clock or anything else than the number; a
 * share or a bound changes speed only, never an output.
 */
#include "budget.h"

void enc_budget_split(size_t total, enc_budget_t *b) {
        b->total = total;
        b->users = total / 2;
        b->prefetch = total / 16;
        if (b->prefetch < ENC_BUDGET_MIN_PREFETCH)
                b->prefetch = ENC_BUDGET_MIN_PREFETCH;
        if (b->prefetch > ENC_BUDGET_MAX_PREFETCH)
                b->prefetch = ENC_BUDGET_MAX_PREFETCH;
        if (b->prefetch > total / 8)
                b->prefetch = total / 8;
        b->idfilter = total / 16;
        if (b->idfilter < ENC_BUDGET_MIN_IDFILTER)
                b->idfilter = ENC_BUDGET_MIN_IDFILTER;
        if (b->idfilter > b->users / 4)
                b->idfilter = b->users / 4;
        b->block_cache = total / 4;
        if (b->block_cache < ENC_BUDGET_MIN_BLOCK_CACHE)
                b->block_cache = ENC_BUDGET_MIN_BLOCK_CACHE;
        b->memtables = total / 4;
        if (b->memtables < ENC_BUDGET_MIN_MEMTABLES)
                b->memtables = ENC_BUDGET_MIN_MEMTABLES;
        b->commit_bytes = total / 8;
        if (b->commit_bytes < ENC_BUDGET_MIN_COMMIT)
                b->commit_bytes = ENC_BUDGET_MIN_COMMIT;
}
