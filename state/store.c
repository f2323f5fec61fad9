/*
 * store.c -- the RocksDB state store.
 *
 * DESIGN
 * RocksDB is the durable home of every user's state, every pending timer and
 * each partition's position (input offset, stream time, watermark). The
 * engine stages changes here between commits and calls enc_store_commit()
 * once per commit: one WriteBatch, one WAL write, so after a crash the store
 * holds either all of a commit or none of it. Offsets are written in the same
 * batch as the state they produced; never commit one without the other.
 *
 * Keys begin with the big-endian input partition so one partition is one
 * contiguous range (scan, restore, drop). Timer keys continue with the
 * big-endian time, so a range scan yields timers in firing order.
 *
 * Options: point lookups dominate (a user's record on a cache miss, and
 * for every timer of a user not cached), so the users family gets a bloom
 * filter, in its memtable too. Every family reads through one LRU block
 * cache that also holds the index and filter blocks, partitioned into
 * small pieces: a whole index block per table file was re-read and
 * decompressed on most misses once the state outgrew the cache (B1 went
 * from 7 045 to 14 635 events/s with this alone; ops/bench/RESULTS.md).
 * RocksDB's memory is then the block cache plus the memtables, whatever
 * the size of the state, and both are shares of cache.max.bytes
 * (state/budget.c) handed in through enc_store_conf_t. The memtable share
 * M is divided among the families: users 1/2 (nearly every byte written),
 * timers 1/4, meta and default 1/16 each (a few hundred bytes). A memtable
 * being flushed stays in memory until written, so the users family's
 * peak, one full and one filling, is M -- as long as a commit's batch is
 * smaller than the write buffer: RocksDB writes a batch into one memtable
 * whole, so each memtable can overshoot by a batch (33 MiB of memtables
 * for a 16 MiB share with 11 MiB batches in `encore-bench mem
 * --in-process 1`; state/budget.c says what a lower commit bound would
 * cost); the timers family fills about ten
 * times more slowly, and RocksDB's own cap over all memtables
 * (db_write_buffer_size = M) flushes the oldest when the ones being
 * written pass 7/8 of it. RocksDB 7.8's C API cannot charge memtables to
 * the block cache (no write buffer manager), so the two are sized apart.
 * Smaller write buffers mean more flushes and more compactions of L0 into
 * L1, on the cores the processing thread shares.
 * The WAL is capped (ENC_STORE_MAX_WAL_BYTES) so a restart replays little
 * of it.
 *
 * Background work: every commit rewrites each touched user's whole
 * record, so the users family is rewritten again and again while the state
 * on disk stays small; RocksDB's flushes and compactions ran on the same
 * cores as the processing thread and took 43% of the process's CPU in a
 * cold B1 (`encore-bench b1 --users 200000 --days 2 --cache-mb 16 --cpu
 * 1`, timed phase: process 79.1 s, processing thread 45.3 s; compaction
 * read 3.5 GB and wrote 3.0 GB to keep 34 MiB of tables, write
 * amplification 5.1, 41 s of compaction CPU over the run). With RocksDB's
 * trigger of 4, each L0->L1 compaction merged 4 small L0 files with all of
 * L1, which holds nearly the whole state. So, for every family:
 *   - L0 is merged after ENC_STORE_L0_TRIGGER (12) files, not 4: each
 *     merge rewrites L1 once for three times the new data. 24 cut
 *     compaction further but made the processing thread slower (a lookup
 *     probes every L0 file's filter; 56 to 59 s instead of 36 in the run
 *     above), so 12;
 *   - no compression: the state lives in the OS page cache, the block
 *     cache holds uncompressed blocks either way, and LZ4 was paid on
 *     every byte each compaction wrote and read back, and on every block
 *     a cache miss read. The tables take about twice the disk (34 -> 88
 *     MiB above).
 * Together, with the same command: background CPU 33.8 -> 9.5 s (43% ->
 * 20% of the process), compaction CPU 41 -> 11 s, processing thread 45.3
 * -> 36.8 s, 18 011 -> 30 804 events/CPU-s, the same digest. Universal
 * compaction (25 002) and either change alone (LZ4 with 12: 29 283; no
 * compression with 4: 24 566) did less (one run each; the machine is
 * shared, so take single figures to +-15%). At B1's defaults (1M users,
 * 64 MiB), the old and new builds side by side: background 172.5 ->
 * 46.4 s (34% -> 10% of the process), 13 978 -> 16 087 events/CPU-s, the
 * same digest; tables 150 -> 461 MiB (ops/bench/LIMITS.md, Memory).
 *
 * Point lookups (issue 15 item 6). A user not in the users cache costs
 * one batched MultiGet; in the default cold B1 (1M users, 64 MiB) those
 * were about 10 of 42 us an event (ops/bench/LIMITS.md): per table file
 * a filter partition, per level an index partition, then a data block
 * read from the page cache. Three settings shorten that:
 *   - point reads do not fill the block cache (fill_cache off in the
 *     store's read options; iterators, compactions and the partitions a
 *     new table file loads when it opens still fill it): the state is many
 *     times the block cache and each user is read about once between its
 *     evictions from the users cache, so a data block almost never served
 *     a second read, but each one read was inserted and evicted another
 *     entry: a block as useless as itself, or, once the partitions outgrow
 *     the cache's high-priority half (8 MiB at the default budget), a
 *     partition. The block cache now holds what every
 *     lookup needs, the partitions;
 *   - the partitions of L0 files' index and filter are pinned
 *     (pin_l0_filter_and_index_blocks_in_cache): with up to
 *     ENC_STORE_L0_TRIGGER files in L0 every lookup probes each one's
 *     filter, and a pinned partition is reached through its table reader
 *     without a block cache lookup (hash, shard lock, reference). They are
 *     still charged to the cache (b1.block_cache_pinned_mib);
 *   - the users family has no filter in its last level
 *     (optimize_filters_for_hits): a user looked up is nearly always
 *     stored, so that probe answered "maybe" and cost a partition; it is
 *     most of the filter's bytes (the last level holds most keys), which
 *     leaves the cache to the index. A user never stored (the first play
 *     of a new listener) now reads a last-level index partition and data
 *     block instead of being turned away by the filter.
 * Measured together (session 6, old and new binary run at the same time
 * on a machine at load 6 to 12; ops/bench/LIMITS.md, "Point lookups"):
 * default cold B1 17 856 -> 20 096 events/CPU-s (but 1 276 -> 1 168
 * checkpoints, which follow the wall clock), `b1 --users 300000
 * --cache-mb 20` 25 228 -> 25 549 (+1.3%, inside the noise); the same
 * digests; `encore-bench mem` (10M users) peak RSS 126 -> 117 MiB in a
 * pair (137 alone: it moves with the load, not above). A small gain,
 * not the 10 us: those are the data block read and the partitions'
 * binary searches, which configuration does not remove.
 * RocksDB 7.8's C API cannot pin partitions of other levels
 * (metadata_cache_options is C++ only), so those stay in the cache at
 * high priority.
 *
 * Reads use committed data only: the engine never re-reads a key whose
 * change is still staged (dirty users stay in its cache until the commit).
 * The iterators kept for timer scans are dropped before every write, so a
 * scan never sees an older store than a fresh iterator would.
 *
 * The store carries its format (store.h, ENC_STORE_FORMAT) as one marker
 * key in the default family, checked at every open before anything else
 * reads the store: a new store gets it, an older format is migrated, any
 * other is refused with a message that says how to rebuild the state.
 * A migration is one WriteBatch that also writes the new marker, so a
 * crash part-way leaves the old format whole and the next open starts the
 * step again; never write a record of a format before its marker.
 * The families are checked first, from the list RocksDB keeps: a store
 * with another family or without one of ours is of another format and is
 * refused before the open creates anything in it.
 *
 * This module converts RocksDB's char **errptr to enc_err_t at its edge and
 * never lets a RocksDB error string escape unowned.
 *
 * A full disk must end in a clean stop that names the error, never a crash.
 * RocksDB's text log (LOG) is written to the same disk, and the librocksdb
 * of Debian (7.8, built with assertions) aborts the process on the second
 * write to a log file whose earlier write failed: with the default log
 * level, the info and warning lines RocksDB writes after the disk fills (a
 * background error, the retried flush, shutdown) turned "No space left on
 * device" into SIGABRT and an assertion message, on the failing run and
 * again on every restart. So RocksDB logs fatal lines only (LOG stays
 * empty; the options are in the OPTIONS-* files): every error that matters
 * reaches encore as a status and is reported in encore's own log
 * (tests/test_diskfull.c).
 */
#include "store.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"

enum { CF_DEFAULT = 0, CF_USERS, CF_TIMERS, CF_META, CF__CNT };

/* rocksdb::InfoLogLevel::FATAL_LEVEL (the C API takes the number) */
#define ENC_ROCKSDB_LOG_LEVEL 4

static const char *const enc_cf_names[CF__CNT] = {"default", "users",
                                                  "timers", "meta"};

struct enc_store_s {
        rocksdb_t *db;
        rocksdb_options_t *opts;
        rocksdb_options_t *cf_opts[CF__CNT];
        rocksdb_block_based_table_options_t *bbto;       /* users */
        rocksdb_block_based_table_options_t *bbto_plain; /* the others */
        rocksdb_cache_t *cache;
        rocksdb_filterpolicy_t *bloom; /* owned by bbto once set */
        rocksdb_column_family_handle_t *cf[CF__CNT];
        rocksdb_writeoptions_t *wopts;
        rocksdb_readoptions_t *ropts;
        rocksdb_writebatch_t *batch; /* the pending batch */
        uint64_t commits;
        enc_buf_t key; /* scratch for building keys */
        /* Per partition, an iterator over its timers up to the end of the
         * partition, kept between scans until the next write (see
         * enc_store_scan_timers). */
        struct enc_timer_it_s **tit;
        int ntit;
        char *dir; /* the state directory (table files for ingestion) */
};

typedef struct enc_timer_it_s {
        rocksdb_readoptions_t *ro;
        rocksdb_iterator_t *it;
        uint8_t hi[12]; /* ro's upper bound points here */
} enc_timer_it_t;

/* Drops the kept timer iterators: they see the store as it was when they
 * were made, so every write must come before the next scan's iterator. */
static void enc_store_timer_its_drop(enc_store_t *st) {
        for (int i = 0; i < st->ntit; i++) {
                enc_timer_it_t *t = st->tit[i];
                if (!t || !t->it)
                        continue;
                rocksdb_iter_destroy(t->it);
                t->it = NULL;
        }
}

/* Converts and frees a RocksDB error string. */
static enc_err_t enc_store_err(char *rerr, char *errstr, size_t errstr_size,
                               const char *what) {
        enc_err_t e = enc_seterr(errstr, errstr_size, ENC_ERR_STATE,
                                 "RocksDB %s: %s", what,
                                 rerr ? rerr : "unknown error");
        rocksdb_free(rerr);
        return e;
}

static const char *enc_store_key_user(enc_store_t *st, int32_t partition,
                                      const char *user, size_t ulen,
                                      size_t *klen) {
        enc_buf_reset(&st->key);
        enc_buf_put_u32be(&st->key, (uint32_t)partition);
        if (enc_buf_append(&st->key, user, ulen) != ENC_OK)
                st->key.failed = true;
        *klen = st->key.len;
        return (const char *)st->key.data;
}

static const char *enc_store_key_timer(enc_store_t *st, int32_t partition,
                                       int64_t time, const char *user,
                                       size_t ulen, size_t *klen) {
        enc_buf_reset(&st->key);
        enc_buf_put_u32be(&st->key, (uint32_t)partition);
        /* Flip the sign bit so negative times sort before positive ones. */
        enc_buf_put_u64be(&st->key, (uint64_t)time ^ 0x8000000000000000ULL);
        if (enc_buf_append(&st->key, user, ulen) != ENC_OK)
                st->key.failed = true;
        *klen = st->key.len;
        return (const char *)st->key.data;
}

#define ENC_ROCKSDB_PERF_DISABLE 1 /* rocksdb::PerfLevel::kDisable */
#define ENC_STORE_MAX_WAL_BYTES  ((uint64_t)64 << 20)

void enc_store_conf_from(const enc_conf_t *conf, enc_store_conf_t *sc) {
        enc_budget_t b;
        enc_budget_split((size_t)enc_conf_get_int(conf, "cache.max.bytes"),
                         &b);
        sc->sync = enc_conf_get_bool(conf, "state.sync");
        sc->block_cache_bytes = b.block_cache;
        sc->memtable_bytes = b.memtables;
}

/* Family @p cf's write buffer, out of the memtable share (see DESIGN). */
static size_t enc_store_write_buffer(size_t memtables, int cf) {
        switch (cf) {
        case CF_USERS:
                return memtables / 2;
        case CF_TIMERS:
                return memtables / 4;
        default:
                return memtables / 16;
        }
}

/* Shards of at least 4 MiB (at most 16 shards): a shard holds a whole block
 * or it is evicted on release, and RocksDB's default of 512 KiB shards is
 * smaller than one index block of a 64 MiB table file. */
static int enc_store_shard_bits(size_t cache_bytes) {
        int bits = 0;
        while (bits < 4 && (cache_bytes >> (bits + 1)) >= ((size_t)4 << 20))
                bits++;
        return bits;
}

/* Table options over the shared @p cache. Index and filter blocks are
 * partitioned (two-level, 4 KiB partitions) and live in the block cache
 * with high priority, so their memory is the cache's and a lookup that
 * misses reads one small partition, never a whole index block: with one
 * big index block per file, each cache miss on a user re-read and
 * re-decompressed hundreds of KiB. The top-level index is pinned, and so
 * are the partitions of L0 files (flushed memtables, a few MiB each):
 * every lookup probes every L0 file's filter, and a pinned partition is
 * reached through the table reader, without a block cache lookup (see
 * DESIGN, "Point lookups"). With @p bloom (point lookups: the users
 * family) a 10-bit bloom filter, whose policy is returned in *policy
 * (owned by the options). */
static rocksdb_block_based_table_options_t *
enc_store_table_options(rocksdb_cache_t *cache, bool bloom,
                        rocksdb_filterpolicy_t **policy) {
        rocksdb_block_based_table_options_t *t =
                rocksdb_block_based_options_create();
        rocksdb_block_based_options_set_block_cache(t, cache);
        rocksdb_block_based_options_set_index_type(
                t, rocksdb_block_based_table_index_type_two_level_index_search);
        rocksdb_block_based_options_set_metadata_block_size(t, 4096);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(
                t, 1);
        rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
                t, 1);
        if (bloom) {
                *policy = rocksdb_filterpolicy_create_bloom(10);
                rocksdb_block_based_options_set_filter_policy(t, *policy);
                rocksdb_block_based_options_set_partition_filters(t, 1);
        }
        return t;
}

/* Compaction, for every family (see DESIGN, "Background work"): no
 * compression, and L0 files merged into L1 ENC_STORE_L0_TRIGGER at a time
 * instead of RocksDB's 4. The stall triggers keep RocksDB's distance
 * above it (20 and 36 over a trigger of 4). */
#define ENC_STORE_L0_TRIGGER  12
#define ENC_STORE_L0_SLOWDOWN (ENC_STORE_L0_TRIGGER + 16)
#define ENC_STORE_L0_STOP     (ENC_STORE_L0_TRIGGER + 32)

static void enc_store_compaction_options(rocksdb_options_t *o) {
        rocksdb_options_set_compression(o, rocksdb_no_compression);
        rocksdb_options_set_level0_file_num_compaction_trigger(
                o, ENC_STORE_L0_TRIGGER);
        rocksdb_options_set_level0_slowdown_writes_trigger(
                o, ENC_STORE_L0_SLOWDOWN);
        rocksdb_options_set_level0_stop_writes_trigger(o, ENC_STORE_L0_STOP);
}

static enc_err_t enc_store_families_check(const rocksdb_options_t *opts,
                                          const char *dir, char *errstr,
                                          size_t errstr_size) ENC_WUR;
static enc_err_t enc_store_format_open(enc_store_t *st, const char *dir,
                                       char *errstr,
                                       size_t errstr_size) ENC_WUR;

enc_store_t *enc_store_open(const char *dir, const enc_store_conf_t *conf,
                            char *errstr, size_t errstr_size) {
        enc_store_t *st = calloc(1, sizeof(*st));
        char *rerr = NULL;
        if (!st) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return NULL;
        }
        enc_buf_init(&st->key, 4096);
        if (!(st->dir = strdup(dir))) {
                free(st);
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return NULL;
        }

        st->opts = rocksdb_options_create();
        rocksdb_options_set_create_if_missing(st->opts, 1);
        rocksdb_options_set_create_missing_column_families(st->opts, 1);
        rocksdb_options_set_max_background_jobs(st->opts, 2);
        rocksdb_options_set_max_open_files(st->opts, 512);
        /* RocksDB's own text log (LOG in the state directory) gets fatal
         * lines only: see DESIGN. */
        rocksdb_options_set_info_log_level(st->opts, ENC_ROCKSDB_LOG_LEVEL);

        /* Memory: one block cache for every family, holding data blocks
         * and the index and filter partitions (see DESIGN). */
        enc_budget_t dflt;
        enc_budget_split(ENC_BUDGET_DEFAULT_BYTES, &dflt);
        size_t cache_bytes = conf && conf->block_cache_bytes
                                     ? conf->block_cache_bytes
                                     : dflt.block_cache;
        size_t memtables = conf && conf->memtable_bytes ? conf->memtable_bytes
                                                        : dflt.memtables;
        rocksdb_lru_cache_options_t *lru = rocksdb_lru_cache_options_create();
        rocksdb_lru_cache_options_set_capacity(lru, cache_bytes);
        rocksdb_lru_cache_options_set_num_shard_bits(
                lru, enc_store_shard_bits(cache_bytes));
        st->cache = rocksdb_cache_create_lru_opts(lru);
        rocksdb_lru_cache_options_destroy(lru);
        st->bbto = enc_store_table_options(st->cache, true, &st->bloom);
        st->bbto_plain = enc_store_table_options(st->cache, false, NULL);

        /* A WAL file can go only once every family has flushed what it
         * holds, and the meta family's few bytes never fill a memtable:
         * without a cap the WAL grows to four times all the write buffers
         * (about 1 GB) and a restart replays all of it. */
        rocksdb_options_set_max_total_wal_size(st->opts,
                                               ENC_STORE_MAX_WAL_BYTES);
        rocksdb_options_set_db_write_buffer_size(st->opts, memtables);
        for (int i = 0; i < CF__CNT; i++) {
                st->cf_opts[i] = rocksdb_options_create_copy(st->opts);
                enc_store_compaction_options(st->cf_opts[i]);
                rocksdb_options_set_block_based_table_factory(
                        st->cf_opts[i],
                        i == CF_USERS ? st->bbto : st->bbto_plain);
                rocksdb_options_set_write_buffer_size(
                        st->cf_opts[i], enc_store_write_buffer(memtables, i));
                if (i == CF_USERS) {
                        /* No filter in the last level: a user looked up
                         * is nearly always stored (DESIGN, "Point
                         * lookups"). */
                        rocksdb_options_set_optimize_filters_for_hits(
                                st->cf_opts[i], 1);
                        /* Most lookups are of users not written since the
                         * last flush: a bloom filter over the memtable's
                         * keys (5% of its size) skips the skip lists. */
                        rocksdb_options_set_memtable_whole_key_filtering(
                                st->cf_opts[i], 1);
                        rocksdb_options_set_memtable_prefix_bloom_size_ratio(
                                st->cf_opts[i], 0.05);
                }
        }

        if (enc_store_families_check(st->opts, dir, errstr, errstr_size))
                goto fail;
        const rocksdb_options_t *cfo[CF__CNT];
        for (int i = 0; i < CF__CNT; i++)
                cfo[i] = st->cf_opts[i];
        st->db = rocksdb_open_column_families(st->opts, dir, CF__CNT,
                                              enc_cf_names, cfo, st->cf, &rerr);
        if (rerr) {
                enc_store_err(rerr, errstr, errstr_size, "open");
                st->db = NULL;
                goto fail;
        }
        /* RocksDB counts every get and write into thread-local perf
         * counters unless told not to, and encore never reads them: a TLS
         * lookup per counter through the shared library (__tls_get_addr
         * was about 5% of the processing thread in B1's profile). The
         * level is per thread: this is the thread that owns the store. */
        rocksdb_set_perf_level(ENC_ROCKSDB_PERF_DISABLE);
        st->wopts = rocksdb_writeoptions_create();
        rocksdb_writeoptions_set_sync(st->wopts, conf && conf->sync);
        st->ropts = rocksdb_readoptions_create();
        /* Point reads leave data blocks out of the block cache, which then
         * holds the index and filter partitions (see DESIGN, "Point
         * lookups"). */
        rocksdb_readoptions_set_fill_cache(st->ropts, 0);
        st->batch = rocksdb_writebatch_create();
        if (enc_store_format_open(st, dir, errstr, errstr_size))
                goto fail;
        return st;

fail:
        enc_store_close(st);
        return NULL;
}

void enc_store_close(enc_store_t *st) {
        if (!st)
                return;
        enc_store_timer_its_drop(st);
        for (int i = 0; i < st->ntit; i++) {
                if (st->tit[i])
                        rocksdb_readoptions_destroy(st->tit[i]->ro);
                free(st->tit[i]);
        }
        free(st->tit);
        if (st->batch)
                rocksdb_writebatch_destroy(st->batch);
        for (int i = 0; i < CF__CNT; i++)
                if (st->cf[i])
                        rocksdb_column_family_handle_destroy(st->cf[i]);
        if (st->db)
                rocksdb_close(st->db);
        if (st->ropts)
                rocksdb_readoptions_destroy(st->ropts);
        if (st->wopts)
                rocksdb_writeoptions_destroy(st->wopts);
        for (int i = 0; i < CF__CNT; i++)
                if (st->cf_opts[i])
                        rocksdb_options_destroy(st->cf_opts[i]);
        if (st->bbto)
                rocksdb_block_based_options_destroy(st->bbto);
        if (st->bbto_plain)
                rocksdb_block_based_options_destroy(st->bbto_plain);
        if (st->cache)
                rocksdb_cache_destroy(st->cache);
        if (st->opts)
                rocksdb_options_destroy(st->opts);
        enc_buf_free(&st->key);
        free(st->dir);
        free(st);
}

static enc_err_t enc_store_get(enc_store_t *st, int cf, const char *k,
                               size_t klen, enc_buf_t *out, bool *found,
                               char *errstr, size_t errstr_size) {
        char *rerr = NULL;
        size_t vlen = 0;
        enc_buf_reset(out);
        rocksdb_pinnableslice_t *ps =
                rocksdb_get_pinned_cf(st->db, st->ropts, st->cf[cf], k, klen,
                                      &rerr);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size, "get");
        if (!ps) {
                *found = false;
                return ENC_OK;
        }
        const char *v = rocksdb_pinnableslice_value(ps, &vlen);
        enc_err_t err = enc_buf_append(out, v, vlen);
        rocksdb_pinnableslice_destroy(ps);
        if (err)
                return enc_seterr(errstr, errstr_size, err,
                                  "stored value of %zu bytes is over the "
                                  "buffer cap",
                                  vlen);
        *found = true;
        return ENC_OK;
}

/* ---- the format marker and migrations (store.h, ENC_STORE_FORMAT) ---- */

/* What rebuilds a store this encore cannot read: with no local state, each
 * partition is restored in full from the changelog topic when it is
 * assigned (README, "Recovery and scale-out"). */
#define ENC_STORE_REBUILD                                                   \
        "to rebuild it, stop encore, delete the state directory and start " \
        "encore again: each partition is restored from the changelog "      \
        "topic on assignment (changelog.enable=true, the default)"

#define ENC_STORE_FORMAT_MAGIC_LEN (sizeof(ENC_STORE_FORMAT_MAGIC) - 1)

/* Fails with the one-line refusal: @p found says what the store holds. */
static enc_err_t enc_store_refuse(const char *dir, const char *found,
                                  char *errstr, size_t errstr_size) {
        return enc_seterr(errstr, errstr_size, ENC_ERR_STATE,
                          "state store %s: %s, this encore reads format %d; "
                          ENC_STORE_REBUILD,
                          dir, found, ENC_STORE_FORMAT);
}

/* Reads the marker into *format; *found false if the store has none. */
static enc_err_t enc_store_format_read(enc_store_t *st, const char *dir,
                                       uint32_t *format, bool *found,
                                       char *errstr, size_t errstr_size) {
        char *rerr = NULL;
        size_t vlen = 0;
        rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(
                st->db, st->ropts, st->cf[CF_DEFAULT], ENC_STORE_FORMAT_KEY,
                sizeof(ENC_STORE_FORMAT_KEY) - 1, &rerr);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size,
                                     "reading the format marker");
        *found = ps != NULL;
        if (!ps)
                return ENC_OK;
        const char *v = rocksdb_pinnableslice_value(ps, &vlen);
        bool ok = vlen == ENC_STORE_FORMAT_MAGIC_LEN + 4 &&
                  !memcmp(v, ENC_STORE_FORMAT_MAGIC,
                          ENC_STORE_FORMAT_MAGIC_LEN);
        if (ok)
                *format = enc_read_u32be(
                        (const uint8_t *)v + ENC_STORE_FORMAT_MAGIC_LEN);
        rocksdb_pinnableslice_destroy(ps);
        if (!ok) {
                char found_s[64];
                snprintf(found_s, sizeof(found_s),
                         "an unreadable format marker (%zu bytes) found",
                         vlen);
                return enc_store_refuse(dir, found_s, errstr, errstr_size);
        }
        return ENC_OK;
}

/* Before the open, which would create missing families: an existing store
 * must have exactly this encore's families. One with another family, or
 * without one of ours, is of another format (RocksDB cannot open the
 * first, and creating a family in the second would change a store that
 * is then refused). A store of "default" alone is one whose creation was
 * cut short before any family was made: the open completes it. (Cut
 * short between two families, a new store is refused too: it holds
 * nothing, and deleting it, as the message says, is the remedy.) No store
 * yet: the open creates one (or says why it cannot). */
static enc_err_t enc_store_families_check(const rocksdb_options_t *opts,
                                          const char *dir, char *errstr,
                                          size_t errstr_size) {
        char *rerr = NULL;
        size_t n = 0;
        char **names = rocksdb_list_column_families(opts, dir, &n, &rerr);
        if (rerr) {
                /* the (empty) list is allocated even then */
                rocksdb_list_column_families_destroy(names, n);
                rocksdb_free(rerr);
                return ENC_OK;
        }
        char found_s[128] = "";
        bool ours[CF__CNT] = {false};
        for (size_t i = 0; i < n && !found_s[0]; i++) {
                int j = 0;
                while (j < CF__CNT && strcmp(names[i], enc_cf_names[j]))
                        j++;
                if (j < CF__CNT)
                        ours[j] = true;
                else
                        snprintf(found_s, sizeof(found_s),
                                 "a store with a column family \"%.40s\" "
                                 "found",
                                 names[i]);
        }
        for (int j = 0; j < CF__CNT && !found_s[0] && n > 1; j++)
                if (!ours[j])
                        snprintf(found_s, sizeof(found_s),
                                 "a store without the column family "
                                 "\"%s\" found",
                                 enc_cf_names[j]);
        rocksdb_list_column_families_destroy(names, n);
        return found_s[0] ? enc_store_refuse(dir, found_s, errstr,
                                             errstr_size)
                          : ENC_OK;
}

/* The first value of family @p cf: *ver its first byte, -1 if the family
 * is empty, 256 if the value is. */
static enc_err_t enc_store_first_byte(enc_store_t *st, int cf, int *ver,
                                      char *errstr, size_t errstr_size) {
        rocksdb_iterator_t *it =
                rocksdb_create_iterator_cf(st->db, st->ropts, st->cf[cf]);
        rocksdb_iter_seek_to_first(it);
        *ver = -1;
        if (rocksdb_iter_valid(it)) {
                size_t vlen = 0;
                const char *v = rocksdb_iter_value(it, &vlen);
                *ver = vlen ? (uint8_t)v[0] : 256;
        }
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        rocksdb_iter_destroy(it);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size,
                                     "reading the first record of a family");
        return ENC_OK;
}

/* A store with no marker was written before the marker existed, in the
 * layout of format 1, or it is new. Its default family must be empty (no
 * release wrote there) and its first users record, if any, of the version
 * format 1 holds: one record read, not a scan (a store of another layout
 * would not have version 2 records under it). */
static enc_err_t enc_store_check_unmarked(enc_store_t *st, const char *dir,
                                          char *errstr, size_t errstr_size) {
        int dflt, ver;
        enc_err_t err = enc_store_first_byte(st, CF_DEFAULT, &dflt, errstr,
                                             errstr_size);
        if (!err)
                err = enc_store_first_byte(st, CF_USERS, &ver, errstr,
                                           errstr_size);
        if (err)
                return err;
        if (dflt != -1)
                return enc_store_refuse(dir,
                                        "no format marker and keys in the "
                                        "default column family found",
                                        errstr, errstr_size);
        if (ver == -1 || ver == ENC_USER_RECORD_VERSION)
                return ENC_OK;
        char found_s[128];
        if (ver == 256)
                snprintf(found_s, sizeof(found_s),
                         "no format marker and an empty users record found");
        else
                snprintf(found_s, sizeof(found_s),
                         "no format marker and users records of version %d "
                         "found (format %d holds version %d)",
                         ver, ENC_STORE_FORMAT, ENC_USER_RECORD_VERSION);
        return enc_store_refuse(dir, found_s, errstr, errstr_size);
}

/*
 * One migration step, format @p from to @p from + 1: stages every change
 * into @p wb and writes nothing itself; the caller adds the marker of
 * from + 1 to the same batch and writes it atomically. Invariant: a store
 * is always wholly in one format, the one its marker names; a crash before
 * the batch is written leaves format @p from intact and the next open runs
 * the step again. A step may read the store (it is unchanged until the
 * write). A format with no step is refused. Add a step as a case here.
 */
static enc_err_t enc_store_migrate_step(enc_store_t *st, uint32_t from,
                                        rocksdb_writebatch_t *wb,
                                        const char *dir, char *errstr,
                                        size_t errstr_size) {
        switch (from) {
        case 0: /* no marker: format 1's layout, only the marker to add */
                (void)wb;
                return enc_store_check_unmarked(st, dir, errstr, errstr_size);
        default: {
                char found_s[64];
                snprintf(found_s, sizeof(found_s), "format %u found", from);
                return enc_store_refuse(dir, found_s, errstr, errstr_size);
        }
        }
}

/* At open: reads the marker, refuses a format it does not know, and
 * migrates an older one step by step (a new store is "no marker" with
 * nothing in it: it gets the marker). */
static enc_err_t enc_store_format_open(enc_store_t *st, const char *dir,
                                       char *errstr, size_t errstr_size) {
        uint32_t format = 0;
        bool found = false;
        enc_err_t err = enc_store_format_read(st, dir, &format, &found,
                                              errstr, errstr_size);
        if (err)
                return err;
        if (found && (format == 0 || format > ENC_STORE_FORMAT)) {
                char found_s[64];
                snprintf(found_s, sizeof(found_s), "format %u found",
                         format);
                return enc_store_refuse(dir, found_s, errstr, errstr_size);
        }
        while (!err && format < ENC_STORE_FORMAT) {
                rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
                err = enc_store_migrate_step(st, format, wb, dir, errstr,
                                             errstr_size);
                if (!err) {
                        uint8_t v[ENC_STORE_FORMAT_MAGIC_LEN + 4];
                        memcpy(v, ENC_STORE_FORMAT_MAGIC,
                               ENC_STORE_FORMAT_MAGIC_LEN);
                        enc_put_u32be(v + ENC_STORE_FORMAT_MAGIC_LEN,
                                      format + 1);
                        rocksdb_writebatch_put_cf(
                                wb, st->cf[CF_DEFAULT], ENC_STORE_FORMAT_KEY,
                                sizeof(ENC_STORE_FORMAT_KEY) - 1,
                                (const char *)v, sizeof(v));
                        /* synced: it is written once per store */
                        rocksdb_writeoptions_t *wo =
                                rocksdb_writeoptions_create();
                        rocksdb_writeoptions_set_sync(wo, 1);
                        char *rerr = NULL;
                        rocksdb_write(st->db, wo, wb, &rerr);
                        rocksdb_writeoptions_destroy(wo);
                        if (rerr)
                                err = enc_store_err(rerr, errstr,
                                                    errstr_size,
                                                    "writing the format "
                                                    "marker");
                        else
                                format++;
                }
                rocksdb_writebatch_destroy(wb);
        }
        return err;
}

enc_err_t enc_store_get_user(enc_store_t *st, int32_t partition,
                             const char *user, size_t ulen, enc_buf_t *out,
                             bool *found, char *errstr, size_t errstr_size) {
        size_t klen;
        const char *k = enc_store_key_user(st, partition, user, ulen, &klen);
        return enc_store_get(st, CF_USERS, k, klen, out, found, errstr,
                             errstr_size);
}

enc_err_t enc_store_get_users(enc_store_t *st, const int32_t *parts,
                              const char *const *users, const size_t *ulens,
                              size_t n, enc_store_user_cb_t cb, void *opaque,
                              char *errstr, size_t errstr_size) {
        size_t kbytes = 0;
        for (size_t i = 0; i < n; i++)
                kbytes += 4 + ulens[i];
        /* keys, their pointers and sizes, values and errors: one block */
        size_t per = sizeof(char *) + sizeof(size_t) +
                     sizeof(rocksdb_pinnableslice_t *) + sizeof(char *);
        char *blk = calloc(1, n * per + kbytes);
        if (!blk)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory reading %zu users", n);
        const char **keys = (const char **)blk;
        size_t *klens = (size_t *)(keys + n);
        rocksdb_pinnableslice_t **vals =
                (rocksdb_pinnableslice_t **)(klens + n);
        char **errs = (char **)(vals + n);
        char *kb = (char *)(errs + n);
        for (size_t i = 0; i < n; i++) {
                uint32_t p = (uint32_t)parts[i];
                kb[0] = (char)(p >> 24);
                kb[1] = (char)(p >> 16);
                kb[2] = (char)(p >> 8);
                kb[3] = (char)p;
                memcpy(kb + 4, users[i], ulens[i]);
                keys[i] = kb;
                klens[i] = 4 + ulens[i];
                kb += klens[i];
        }
        rocksdb_batched_multi_get_cf(st->db, st->ropts, st->cf[CF_USERS], n,
                                     keys, klens, vals, errs, false);
        enc_err_t err = ENC_OK;
        for (size_t i = 0; i < n; i++) {
                if (errs[i]) {
                        if (!err)
                                err = enc_store_err(errs[i], errstr,
                                                    errstr_size, "multiget");
                        else
                                rocksdb_free(errs[i]);
                        continue;
                }
                if (err)
                        continue;
                size_t vlen = 0;
                const char *v = vals[i]
                                        ? rocksdb_pinnableslice_value(vals[i],
                                                                      &vlen)
                                        : NULL;
                err = cb(opaque, i, v, vlen);
        }
        for (size_t i = 0; i < n; i++)
                rocksdb_pinnableslice_destroy(vals[i]);
        free(blk);
        return err;
}

void enc_store_meta_encode(const enc_store_meta_t *m, enc_buf_t *b) {
        enc_buf_put_u8(b, 3);
        enc_buf_put_svarint(b, m->commit_offset);
        enc_buf_put_svarint(b, m->next_offset);
        enc_buf_put_svarint(b, m->stream_time);
        enc_buf_put_svarint(b, m->watermark);
        enc_buf_put_svarint(b, m->changelog_end);
        enc_buf_put_svarint(b, m->stream_time_c);
}

enc_err_t enc_store_meta_decode(const uint8_t *buf, size_t len,
                                enc_store_meta_t *m) {
        const uint8_t *q = buf, *end = buf + len;
        uint8_t ver;
        m->stream_time_c = INT64_MIN;
        bool ok = enc_get_u8(&q, end, &ver) && (ver == 2 || ver == 3) &&
                  enc_get_svarint(&q, end, &m->commit_offset) &&
                  enc_get_svarint(&q, end, &m->next_offset) &&
                  enc_get_svarint(&q, end, &m->stream_time) &&
                  enc_get_svarint(&q, end, &m->watermark) &&
                  enc_get_svarint(&q, end, &m->changelog_end) &&
                  (ver == 2 || enc_get_svarint(&q, end, &m->stream_time_c)) &&
                  q == end &&
                  m->commit_offset >= 0 &&
                  m->commit_offset <= m->next_offset &&
                  m->changelog_end >= -1;
        return ok ? ENC_OK : ENC_ERR_CORRUPT;
}

enc_err_t enc_store_get_meta(enc_store_t *st, int32_t partition,
                             enc_store_meta_t *m, bool *found, char *errstr,
                             size_t errstr_size) {
        uint8_t k[4];
        enc_buf_t v;
        enc_buf_init(&v, 4096);
        enc_put_u32be(k, (uint32_t)partition);
        enc_err_t err = enc_store_get(st, CF_META, (const char *)k, 4, &v,
                                      found, errstr, errstr_size);
        if (!err && *found && enc_store_meta_decode(v.data, v.len, m))
                err = enc_seterr(errstr, errstr_size, ENC_ERR_CORRUPT,
                                 "partition %d: stored position record is "
                                 "corrupt",
                                 partition);
        enc_buf_free(&v);
        return err;
}

void enc_store_put_user(enc_store_t *st, int32_t partition, const char *user,
                        size_t ulen, const void *val, size_t vlen) {
        size_t klen;
        const char *k = enc_store_key_user(st, partition, user, ulen, &klen);
        rocksdb_writebatch_put_cf(st->batch, st->cf[CF_USERS], k, klen, val,
                                  vlen);
}

void enc_store_del_user(enc_store_t *st, int32_t partition, const char *user,
                        size_t ulen) {
        size_t klen;
        const char *k = enc_store_key_user(st, partition, user, ulen, &klen);
        rocksdb_writebatch_delete_cf(st->batch, st->cf[CF_USERS], k, klen);
}

void enc_store_put_timer(enc_store_t *st, int32_t partition, int64_t time,
                         const char *user, size_t ulen) {
        size_t klen;
        const char *k =
                enc_store_key_timer(st, partition, time, user, ulen, &klen);
        rocksdb_writebatch_put_cf(st->batch, st->cf[CF_TIMERS], k, klen, "",
                                  0);
}

void enc_store_del_timer(enc_store_t *st, int32_t partition, int64_t time,
                         const char *user, size_t ulen) {
        size_t klen;
        const char *k =
                enc_store_key_timer(st, partition, time, user, ulen, &klen);
        rocksdb_writebatch_delete_cf(st->batch, st->cf[CF_TIMERS], k, klen);
}

void enc_store_put_meta(enc_store_t *st, int32_t partition,
                        const enc_store_meta_t *m) {
        enc_store_batch_put_meta(st, (enc_store_batch_t *)st->batch,
                                 partition, m);
}

/* An enc_store_batch_t is a rocksdb_writebatch_t; the cast keeps RocksDB's
 * types out of the header. */
enc_store_batch_t *enc_store_batch_new(void) {
        return (enc_store_batch_t *)rocksdb_writebatch_create();
}

void enc_store_batch_destroy(enc_store_batch_t *b) {
        if (b)
                rocksdb_writebatch_destroy((rocksdb_writebatch_t *)b);
}

void enc_store_batch_clear(enc_store_batch_t *b) {
        rocksdb_writebatch_clear((rocksdb_writebatch_t *)b);
}

int enc_store_batch_count(const enc_store_batch_t *b) {
        return rocksdb_writebatch_count((rocksdb_writebatch_t *)b);
}

void enc_store_batch_put_user(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition, const char *user,
                              size_t ulen, const void *val, size_t vlen) {
        size_t klen;
        const char *k = enc_store_key_user(st, partition, user, ulen, &klen);
        rocksdb_writebatch_put_cf((rocksdb_writebatch_t *)b, st->cf[CF_USERS],
                                  k, klen, val, vlen);
}

void enc_store_batch_del_user(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition, const char *user,
                              size_t ulen) {
        size_t klen;
        const char *k = enc_store_key_user(st, partition, user, ulen, &klen);
        rocksdb_writebatch_delete_cf((rocksdb_writebatch_t *)b,
                                     st->cf[CF_USERS], k, klen);
}

void enc_store_batch_put_timer(enc_store_t *st, enc_store_batch_t *b,
                               int32_t partition, int64_t time,
                               const char *user, size_t ulen) {
        size_t klen;
        const char *k =
                enc_store_key_timer(st, partition, time, user, ulen, &klen);
        rocksdb_writebatch_put_cf((rocksdb_writebatch_t *)b, st->cf[CF_TIMERS],
                                  k, klen, "", 0);
}

void enc_store_batch_put_meta(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition, const enc_store_meta_t *m) {
        uint8_t k[4];
        enc_put_u32be(k, (uint32_t)partition);
        enc_buf_reset(&st->key);
        enc_store_meta_encode(m, &st->key);
        rocksdb_writebatch_put_cf((rocksdb_writebatch_t *)b, st->cf[CF_META],
                                  (const char *)k, 4,
                                  (const char *)st->key.data, st->key.len);
}

void enc_store_batch_del_meta(enc_store_t *st, enc_store_batch_t *b,
                              int32_t partition) {
        uint8_t k[4];
        enc_put_u32be(k, (uint32_t)partition);
        rocksdb_writebatch_delete_cf((rocksdb_writebatch_t *)b,
                                     st->cf[CF_META], (const char *)k, 4);
}

void enc_store_batch_drop_partition(enc_store_t *st, enc_store_batch_t *b,
                                    int32_t partition) {
        uint8_t lo[4], hi[4];
        enc_put_u32be(lo, (uint32_t)partition);
        enc_put_u32be(hi, (uint32_t)partition + 1);
        for (int i = CF_USERS; i < CF__CNT; i++)
                rocksdb_writebatch_delete_range_cf(
                        (rocksdb_writebatch_t *)b, st->cf[i],
                        (const char *)lo, 4, (const char *)hi, 4);
}

enc_err_t enc_store_batch_write(enc_store_t *st, enc_store_batch_t *b,
                                char *errstr, size_t errstr_size) {
        char *rerr = NULL;
        rocksdb_writebatch_t *wb = (rocksdb_writebatch_t *)b;
        if (rocksdb_writebatch_count(wb) == 0)
                return ENC_OK;
        enc_store_timer_its_drop(st);
        rocksdb_write(st->db, st->wopts, wb, &rerr);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size, "write");
        rocksdb_writebatch_clear(wb);
        return ENC_OK;
}

int enc_store_pending(const enc_store_t *st) {
        return rocksdb_writebatch_count(st->batch);
}

enc_err_t enc_store_commit(enc_store_t *st, char *errstr, size_t errstr_size) {
        char *rerr = NULL;
        if (rocksdb_writebatch_count(st->batch) == 0)
                return ENC_OK;
        enc_store_timer_its_drop(st);
        rocksdb_write(st->db, st->wopts, st->batch, &rerr);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size, "write");
        rocksdb_writebatch_clear(st->batch);
        st->commits++;
        return ENC_OK;
}

void enc_store_discard(enc_store_t *st) {
        rocksdb_writebatch_clear(st->batch);
}

/* The kept iterator over @p partition's timers (to the partition's end),
 * made if there is none; NULL if out of memory. */
static rocksdb_iterator_t *enc_store_timer_it(enc_store_t *st,
                                              int32_t partition) {
        if (partition >= st->ntit) {
                int n = partition + 1;
                enc_timer_it_t **nt = realloc(st->tit, (size_t)n * sizeof(*nt));
                if (!nt)
                        return NULL;
                memset(nt + st->ntit, 0, (size_t)(n - st->ntit) * sizeof(*nt));
                st->tit = nt;
                st->ntit = n;
        }
        enc_timer_it_t *t = st->tit[partition];
        if (!t) {
                if (!(t = calloc(1, sizeof(*t))))
                        return NULL;
                enc_put_u32be(t->hi, (uint32_t)partition + 1);
                t->ro = rocksdb_readoptions_create();
                rocksdb_readoptions_set_iterate_upper_bound(
                        t->ro, (const char *)t->hi, sizeof(t->hi));
                st->tit[partition] = t;
        }
        if (!t->it)
                t->it = rocksdb_create_iterator_cf(st->db, t->ro,
                                                   st->cf[CF_TIMERS]);
        return t->it;
}

enc_err_t enc_store_scan_timers(enc_store_t *st, int32_t partition,
                                int64_t from_excl, int64_t to_incl,
                                enc_store_timer_cb_t cb, void *opaque,
                                char *errstr, size_t errstr_size) {
        if (to_incl <= from_excl)
                return ENC_OK;
        uint8_t lo[12], hi[12];
        enc_put_u32be(lo, (uint32_t)partition);
        enc_put_u64be(lo + 4, (uint64_t)(from_excl + 1) ^
                                      0x8000000000000000ULL);
        /* The engine scans to the partition's end as often as its
         * watermark passes a stored timer, up to once per record: those
         * scans reuse one iterator between writes (creating one costs as
         * much as the seek). Bounded scans make their own. */
        rocksdb_readoptions_t *ro = NULL;
        rocksdb_iterator_t *it = NULL;
        if (to_incl == INT64_MAX && partition >= 0)
                it = enc_store_timer_it(st, partition);
        if (!it) {
                /* Exclusive upper bound: first key past time to_incl. */
                enc_put_u32be(hi, (uint32_t)partition);
                if (to_incl == INT64_MAX) {
                        enc_put_u32be(hi, (uint32_t)partition + 1);
                        memset(hi + 4, 0, 8);
                } else {
                        enc_put_u64be(hi + 4, (uint64_t)(to_incl + 1) ^
                                                      0x8000000000000000ULL);
                }
                ro = rocksdb_readoptions_create();
                rocksdb_readoptions_set_iterate_upper_bound(
                        ro, (const char *)hi, 12);
                it = rocksdb_create_iterator_cf(st->db, ro, st->cf[CF_TIMERS]);
        }
        enc_err_t err = ENC_OK;
        for (rocksdb_iter_seek(it, (const char *)lo, 12);
             rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
                size_t klen;
                const uint8_t *k =
                        (const uint8_t *)rocksdb_iter_key(it, &klen);
                if (klen < 12)
                        continue; /* not ours: cannot happen */
                int64_t t = (int64_t)(enc_read_u64be(k + 4) ^
                                      0x8000000000000000ULL);
                err = cb(opaque, t, (const char *)k + 12, klen - 12);
                if (err)
                        break;
        }
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (ro) {
                rocksdb_iter_destroy(it);
                rocksdb_readoptions_destroy(ro);
        } else if (rerr) {
                enc_store_timer_its_drop(st); /* start afresh next time */
        }
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size, "iterate");
        return err;
}

enc_err_t enc_store_drop_partition(enc_store_t *st, int32_t partition,
                                   char *errstr, size_t errstr_size) {
        uint8_t lo[4], hi[4];
        enc_put_u32be(lo, (uint32_t)partition);
        enc_put_u32be(hi, (uint32_t)partition + 1);
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        for (int i = CF_USERS; i < CF__CNT; i++)
                rocksdb_writebatch_delete_range_cf(b, st->cf[i],
                                                   (const char *)lo, 4,
                                                   (const char *)hi, 4);
        char *rerr = NULL;
        enc_store_timer_its_drop(st);
        rocksdb_write(st->db, st->wopts, b, &rerr);
        rocksdb_writebatch_destroy(b);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size,
                                     "delete range");
        return ENC_OK;
}

static uint64_t enc_store_prop(enc_store_t *st, int cf, const char *name) {
        char *v = rocksdb_property_value_cf(st->db, st->cf[cf], name);
        uint64_t r = v ? strtoull(v, NULL, 10) : 0;
        rocksdb_free(v);
        return r;
}

/* The number after "@p name" and then '=' in RocksDB's table properties
 * text ("...; index block size (user-key? 1, delta-value? 1)=4096; ..."),
 * 0 if absent. */
static uint64_t enc_store_table_prop(const char *text, const char *name) {
        const char *p = text ? strstr(text, name) : NULL;
        if (!p || !(p = strchr(p, '=')))
                return 0;
        return strtoull(p + 1, NULL, 10);
}

void enc_store_stats(enc_store_t *st, enc_store_stats_t *stats) {
        memset(stats, 0, sizeof(*stats));
        stats->user_keys =
                enc_store_prop(st, CF_USERS, "rocksdb.estimate-num-keys");
        stats->timer_keys =
                enc_store_prop(st, CF_TIMERS, "rocksdb.estimate-num-keys");
        for (int i = 0; i < CF__CNT; i++) {
                stats->sst_bytes += enc_store_prop(
                        st, i, "rocksdb.total-sst-files-size");
                stats->memtable_bytes += enc_store_prop(
                        st, i, "rocksdb.cur-size-all-mem-tables");
        }
        stats->commits = st->commits;
        char *tp = rocksdb_property_value_cf(
                st->db, st->cf[CF_USERS],
                "rocksdb.aggregated-table-properties");
        stats->user_index_bytes = enc_store_table_prop(tp, "index block size");
        stats->user_filter_bytes =
                enc_store_table_prop(tp, "filter block size");
        rocksdb_free(tp);
        stats->block_cache_bytes =
                enc_store_prop(st, CF_USERS, "rocksdb.block-cache-usage");
        stats->block_cache_pinned = enc_store_prop(
                st, CF_USERS, "rocksdb.block-cache-pinned-usage");
}

void enc_store_compact(enc_store_t *st) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        for (int i = 0; i < CF__CNT; i++) {
                char *rerr = NULL;
                rocksdb_flush_cf(st->db, fo, st->cf[i], &rerr);
                rocksdb_free(rerr);
                rocksdb_compact_range_cf(st->db, st->cf[i], NULL, 0, NULL, 0);
        }
        rocksdb_flushoptions_destroy(fo);
}

enc_err_t enc_store_has_users(enc_store_t *st, int32_t partition, bool *any,
                              char *errstr, size_t errstr_size) {
        uint8_t lo[4], hi[4];
        enc_put_u32be(lo, (uint32_t)partition);
        enc_put_u32be(hi, (uint32_t)partition + 1);
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 4);
        rocksdb_iterator_t *it =
                rocksdb_create_iterator_cf(st->db, ro, st->cf[CF_USERS]);
        rocksdb_iter_seek(it, (const char *)lo, 4);
        *any = rocksdb_iter_valid(it);
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        rocksdb_iter_destroy(it);
        rocksdb_readoptions_destroy(ro);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size,
                                     "scanning users of a partition");
        return ENC_OK;
}

/* ---- a partition's other meta keys ---------------------------------- */

/* [u32be partition][suffix] into the key scratch; NULL past its cap. */
static const char *enc_store_key_meta(enc_store_t *st, int32_t partition,
                                      const void *suffix, size_t slen,
                                      size_t *klen) {
        enc_buf_reset(&st->key);
        enc_buf_put_u32be(&st->key, (uint32_t)partition);
        if (enc_buf_append(&st->key, suffix, slen) != ENC_OK || st->key.failed)
                return NULL;
        *klen = st->key.len;
        return (const char *)st->key.data;
}

void enc_store_put_meta_key(enc_store_t *st, int32_t partition,
                            const void *suffix, size_t slen, const void *val,
                            size_t vlen) {
        size_t klen;
        const char *k = enc_store_key_meta(st, partition, suffix, slen, &klen);
        if (k && slen)
                rocksdb_writebatch_put_cf(st->batch, st->cf[CF_META], k, klen,
                                          val, vlen);
}

void enc_store_del_meta_key(enc_store_t *st, int32_t partition,
                            const void *suffix, size_t slen) {
        size_t klen;
        const char *k = enc_store_key_meta(st, partition, suffix, slen, &klen);
        if (k && slen)
                rocksdb_writebatch_delete_cf(st->batch, st->cf[CF_META], k,
                                             klen);
}

void enc_store_del_meta_keys(enc_store_t *st, int32_t partition, const void *lo,
                             size_t lolen, const void *hi, size_t hilen) {
        uint8_t a[4 + 16], b[4 + 16];
        if (!lolen || !hilen || lolen > 16 || hilen > 16)
                return;
        enc_put_u32be(a, (uint32_t)partition);
        enc_put_u32be(b, (uint32_t)partition);
        memcpy(a + 4, lo, lolen);
        memcpy(b + 4, hi, hilen);
        rocksdb_writebatch_delete_range_cf(st->batch, st->cf[CF_META],
                                           (const char *)a, 4 + lolen,
                                           (const char *)b, 4 + hilen);
}

enc_err_t enc_store_get_meta_key(enc_store_t *st, int32_t partition,
                                 const void *suffix, size_t slen,
                                 enc_buf_t *out, bool *found, char *errstr,
                                 size_t errstr_size) {
        size_t klen;
        const char *k = enc_store_key_meta(st, partition, suffix, slen, &klen);
        if (!k || !slen)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "meta key suffix of %zu bytes", slen);
        return enc_store_get(st, CF_META, k, klen, out, found, errstr,
                             errstr_size);
}

size_t enc_store_pending_bytes(const enc_store_t *st) {
        size_t n = 0;
        (void)rocksdb_writebatch_data(st->batch, &n);
        return n;
}

/* ---- table files for a bulk load ------------------------------------ */

/* The users and the timers file of one ingestion. */
enum { ENC_INGEST_USERS = 0, ENC_INGEST_TIMERS, ENC_INGEST__CNT };

struct enc_store_ingest_s {
        enc_store_t *st;
        int32_t partition;
        rocksdb_envoptions_t *env;
        rocksdb_ingestexternalfileoptions_t *io;
        struct {
                rocksdb_sstfilewriter_t *w; /* NULL: no file open */
                char *path;
                uint64_t entries;
        } f[ENC_INGEST__CNT];
        uint64_t files; /* table files ingested */
};

enc_store_ingest_t *enc_store_ingest_new(enc_store_t *st, int32_t partition,
                                         char *errstr, size_t errstr_size) {
        static const char *const what[ENC_INGEST__CNT] = {"users", "timers"};
        enc_store_ingest_t *in = calloc(1, sizeof(*in));
        if (!in)
                goto nomem;
        in->st = st;
        in->partition = partition;
        in->env = rocksdb_envoptions_create();
        in->io = rocksdb_ingestexternalfileoptions_create();
        if (!in->env || !in->io)
                goto nomem;
        /* The files are in the state directory, so RocksDB links them
         * into the store instead of copying them. */
        rocksdb_ingestexternalfileoptions_set_move_files(in->io, 1);
        for (int i = 0; i < ENC_INGEST__CNT; i++) {
                size_t n = strlen(st->dir) + 64;
                if (!(in->f[i].path = malloc(n)))
                        goto nomem;
                snprintf(in->f[i].path, n, "%s/restore-%d-%s.sst.tmp",
                         st->dir, (int)partition, what[i]);
        }
        return in;
nomem:
        enc_store_ingest_destroy(in);
        enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
        return NULL;
}

/* The open file of @p i, opened (truncating a leftover) on first use. */
static enc_err_t enc_store_ingest_file(enc_store_ingest_t *in, int i,
                                       char *errstr, size_t errstr_size) {
        if (in->f[i].w)
                return ENC_OK;
        int cf = i == ENC_INGEST_USERS ? CF_USERS : CF_TIMERS;
        rocksdb_sstfilewriter_t *w =
                rocksdb_sstfilewriter_create(in->env, in->st->cf_opts[cf]);
        if (!w)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "out of memory");
        char *rerr = NULL;
        rocksdb_sstfilewriter_open(w, in->f[i].path, &rerr);
        if (rerr) {
                rocksdb_sstfilewriter_destroy(w);
                return enc_store_err(rerr, errstr, errstr_size,
                                     "table file open");
        }
        in->f[i].w = w;
        in->f[i].entries = 0;
        return ENC_OK;
}

static enc_err_t enc_store_ingest_add(enc_store_ingest_t *in, int i,
                                      const char *k, size_t klen,
                                      const void *val, size_t vlen, bool del,
                                      char *errstr, size_t errstr_size) {
        if (in->st->key.failed) {
                in->st->key.failed = false;
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "table file: key over %zu bytes",
                                  in->st->key.max);
        }
        enc_err_t err = enc_store_ingest_file(in, i, errstr, errstr_size);
        if (err)
                return err;
        char *rerr = NULL;
        if (del)
                rocksdb_sstfilewriter_delete(in->f[i].w, k, klen, &rerr);
        else
                rocksdb_sstfilewriter_put(in->f[i].w, k, klen,
                                          (const char *)val, vlen, &rerr);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size,
                                     "table file add");
        in->f[i].entries++;
        return ENC_OK;
}

enc_err_t enc_store_ingest_put_user(enc_store_ingest_t *in, const char *user,
                                    size_t ulen, const void *val, size_t vlen,
                                    char *errstr, size_t errstr_size) {
        size_t klen;
        const char *k =
                enc_store_key_user(in->st, in->partition, user, ulen, &klen);
        return enc_store_ingest_add(in, ENC_INGEST_USERS, k, klen, val, vlen,
                                    false, errstr, errstr_size);
}

enc_err_t enc_store_ingest_del_user(enc_store_ingest_t *in, const char *user,
                                    size_t ulen, char *errstr,
                                    size_t errstr_size) {
        size_t klen;
        const char *k =
                enc_store_key_user(in->st, in->partition, user, ulen, &klen);
        return enc_store_ingest_add(in, ENC_INGEST_USERS, k, klen, NULL, 0,
                                    true, errstr, errstr_size);
}

enc_err_t enc_store_ingest_put_timer(enc_store_ingest_t *in, int64_t time,
                                     const char *user, size_t ulen,
                                     char *errstr, size_t errstr_size) {
        size_t klen;
        const char *k = enc_store_key_timer(in->st, in->partition, time, user,
                                            ulen, &klen);
        return enc_store_ingest_add(in, ENC_INGEST_TIMERS, k, klen, "", 0,
                                    false, errstr, errstr_size);
}

/* Closes every open file without ingesting it and removes it. */
static void enc_store_ingest_abandon(enc_store_ingest_t *in) {
        for (int i = 0; i < ENC_INGEST__CNT; i++) {
                if (!in->f[i].w)
                        continue;
                rocksdb_sstfilewriter_destroy(in->f[i].w);
                in->f[i].w = NULL;
                remove(in->f[i].path);
        }
}

enc_err_t enc_store_ingest_write(enc_store_ingest_t *in, char *errstr,
                                 size_t errstr_size) {
        enc_err_t err = ENC_OK;
        for (int i = 0; i < ENC_INGEST__CNT && !err; i++) {
                if (!in->f[i].w)
                        continue;
                char *rerr = NULL;
                rocksdb_sstfilewriter_finish(in->f[i].w, &rerr);
                rocksdb_sstfilewriter_destroy(in->f[i].w);
                in->f[i].w = NULL;
                if (rerr) {
                        err = enc_store_err(rerr, errstr, errstr_size,
                                            "table file finish");
                        break;
                }
                const char *files[1] = {in->f[i].path};
                enc_store_timer_its_drop(in->st);
                rocksdb_ingest_external_file_cf(
                        in->st->db,
                        in->st->cf[i == ENC_INGEST_USERS ? CF_USERS
                                                         : CF_TIMERS],
                        files, 1, in->io, &rerr);
                if (rerr) {
                        err = enc_store_err(rerr, errstr, errstr_size,
                                            "ingest table file");
                        break;
                }
                in->files++;
                /* moved: RocksDB removed this name; an error left it */
                remove(in->f[i].path);
        }
        if (err) {
                for (int i = 0; i < ENC_INGEST__CNT; i++)
                        remove(in->f[i].path);
                enc_store_ingest_abandon(in);
        }
        return err;
}

uint64_t enc_store_ingest_files(const enc_store_ingest_t *in) {
        return in ? in->files : 0;
}

void enc_store_ingest_destroy(enc_store_ingest_t *in) {
        if (!in)
                return;
        enc_store_ingest_abandon(in);
        for (int i = 0; i < ENC_INGEST__CNT; i++)
                free(in->f[i].path);
        if (in->io)
                rocksdb_ingestexternalfileoptions_destroy(in->io);
        if (in->env)
                rocksdb_envoptions_destroy(in->env);
        free(in);
}

enc_err_t enc_store_partition_empty(enc_store_t *st, int32_t partition,
                                    bool *empty, char *errstr,
                                    size_t errstr_size) {
        uint8_t lo[4], hi[4];
        enc_put_u32be(lo, (uint32_t)partition);
        enc_put_u32be(hi, (uint32_t)partition + 1);
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 4);
        char *rerr = NULL;
        *empty = true;
        for (int i = CF_USERS; i < CF__CNT && *empty && !rerr; i++) {
                rocksdb_iterator_t *it =
                        rocksdb_create_iterator_cf(st->db, ro, st->cf[i]);
                rocksdb_iter_seek(it, (const char *)lo, 4);
                *empty = !rocksdb_iter_valid(it);
                rocksdb_iter_get_error(it, &rerr);
                rocksdb_iter_destroy(it);
        }
        rocksdb_readoptions_destroy(ro);
        if (rerr)
                return enc_store_err(rerr, errstr, errstr_size,
                                     "scanning a partition");
        return ENC_OK;
}

uint64_t enc_store_l0_files(enc_store_t *st) {
        uint64_t n = 0;
        for (int i = 0; i < CF__CNT; i++)
                n += enc_store_prop(st, i, "rocksdb.num-files-at-level0");
        return n;
}
