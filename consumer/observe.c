/*
 * observe.c -- what encore tells Prometheus: renders the metrics of a
 * pipeline in the text exposition format.
 *
 * DESIGN
 * Runs on the processing thread (the loop calls it about once a second and
 * publishes the text for the HTTP thread), so it may read the pipeline's
 * counters without locks. Every family has HELP and TYPE, counters end in
 * _total, units are in the names (_seconds, _bytes, _records), and the
 * samples of one family are written together: the text format requires a
 * family's lines to be contiguous, so per-partition families are rendered
 * one family at a time, each walking the owned partitions. Label sets are
 * bounded: partitions owned, dead-letter reasons, and (signal, version,
 * cohort) with cohorts capped by metrics.cohorts.max (rewardstats.c, which
 * renders the reward families).
 *
 * The names here are an interface: the dashboard (ops/grafana), the alert
 * rules (ops/prometheus/alerts.yml) and tests/test_observability.sh query
 * them. Renaming one is a change to all of those.
 *
 * Never: call into Kafka or RocksDB in a way that can block (the RocksDB
 * property reads here are in-memory; rd_kafka_outq_len reads a counter).
 */
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "engine.h"
#include "pipeline_int.h"

static void enc_metric1(enc_buf_t *b, const char *name, const char *type,
                        const char *help, double v) {
        enc_prom_family(b, name, type, help);
        enc_prom_sample(b, name, NULL, v);
}

int enc_pipeline_metrics_port(const enc_pipeline_t *pl) {
        return pl->http ? enc_http_port(pl->http) : -1;
}

/* ---- per-partition families ----------------------------------------- */

typedef enum enc_part_metric_e {
        ENC_PM_CONSUMED,
        ENC_PM_PROCESSED,
        ENC_PM_DEAD,
        ENC_PM_LAG,
        ENC_PM_WATERMARK_LAG,
        ENC_PM_STREAM_TIME,
        ENC_PM_WATERMARK,
        ENC_PM_BUFFERED,
} enc_part_metric_t;

static const struct {
        enc_part_metric_t what;
        const char *name, *type, *help;
} enc_part_families[] = {
        {ENC_PM_CONSUMED, "encore_records_consumed_total", "counter",
         "Input records consumed, by input partition"},
        {ENC_PM_PROCESSED, "encore_records_processed_total", "counter",
         "Events applied to state (the watermark passed them), by input "
         "partition"},
        {ENC_PM_DEAD, "encore_records_dead_lettered_by_partition_total",
         "counter", "Records sent to the dead-letter topic, by input "
                    "partition"},
        {ENC_PM_LAG, "encore_consumer_lag_records", "gauge",
         "Records between the consumer position and the end of the "
         "partition (librdkafka statistics, statistics.interval.ms)"},
        {ENC_PM_WATERMARK_LAG, "encore_watermark_lag_seconds", "gauge",
         "Stream time (newest event time) minus watermark, by input "
         "partition"},
        {ENC_PM_STREAM_TIME, "encore_stream_time_seconds", "gauge",
         "Newest event time seen, Unix seconds, by input partition"},
        {ENC_PM_WATERMARK, "encore_watermark_time_seconds", "gauge",
         "Watermark (event time every earlier event is applied up to), Unix "
         "seconds, by input partition"},
        {ENC_PM_BUFFERED, "encore_buffered_events", "gauge",
         "Events waiting for the watermark, by input partition"},
};

/* False when the partition has no value for @p what yet (no event seen, no
 * statistics received): the sample is left out rather than made up. */
static bool enc_part_value(const enc_pipeline_t *pl, int32_t p,
                           const enc_partition_info_t *pi,
                           enc_part_metric_t what, double *v) {
        bool times = pi->stream_time != INT64_MIN;
        bool wm = pi->watermark != INT64_MIN;
        switch (what) {
        case ENC_PM_CONSUMED:
                *v = (double)pi->consumed;
                return true;
        case ENC_PM_PROCESSED:
                *v = (double)pi->applied;
                return true;
        case ENC_PM_DEAD:
                *v = (double)pi->dead_lettered;
                return true;
        case ENC_PM_LAG:
                if (p >= pl->nlag || pl->lag[p] < 0)
                        return false;
                *v = (double)pl->lag[p];
                return true;
        case ENC_PM_WATERMARK_LAG:
                *v = (double)(pi->stream_time - pi->watermark) / 1000.0;
                return times && wm;
        case ENC_PM_STREAM_TIME:
                *v = (double)pi->stream_time / 1000.0;
                return times;
        case ENC_PM_WATERMARK:
                *v = (double)pi->watermark / 1000.0;
                return wm;
        case ENC_PM_BUFFERED:
                *v = (double)pi->buffered;
                return true;
        }
        return false;
}

static void enc_render_partitions(enc_pipeline_t *pl, enc_buf_t *b) {
        char pn[16];
        size_t nf = sizeof(enc_part_families) / sizeof(enc_part_families[0]);
        for (size_t f = 0; f < nf; f++) {
                enc_prom_family(b, enc_part_families[f].name,
                                enc_part_families[f].type,
                                enc_part_families[f].help);
                for (int i = 0; i < pl->owned->cnt; i++) {
                        int32_t p = pl->owned->elems[i].partition;
                        enc_partition_info_t pi;
                        double v;
                        if (!enc_engine_partition_info(pl->engine, p, &pi) ||
                            !enc_part_value(pl, p, &pi,
                                            enc_part_families[f].what, &v))
                                continue;
                        snprintf(pn, sizeof(pn), "%d", p);
                        const char *lab[] = {"partition", pn, NULL};
                        enc_prom_sample(b, enc_part_families[f].name, lab, v);
                }
        }
}

/* ---- restores from the changelog ------------------------------------ */

/* Restoring partitions are owned (assigned, paused) but not yet in the
 * engine. Every owned partition gets a remaining-records sample, 0 once
 * its state is current, so "restore stuck" can be told from "no restore". */
static void enc_render_restores(enc_pipeline_t *pl, enc_buf_t *b) {
        char pn[16];
        enc_changelog_stats_t cs;
        enc_changelog_stats(pl->cl, &cs);
        enc_prom_family(b, "encore_restore_remaining_records", "gauge",
                        "Changelog records still to apply before the "
                        "partition is processed (0: state is current), by "
                        "input partition");
        for (int i = 0; i < pl->owned->cnt; i++) {
                int32_t p = pl->owned->elems[i].partition;
                int64_t left = enc_changelog_remaining(pl->cl, p);
                snprintf(pn, sizeof(pn), "%d", p);
                const char *lab[] = {"partition", pn, NULL};
                enc_prom_sample(b, "encore_restore_remaining_records", lab,
                                (double)left);
        }
        enc_metric1(b, "encore_partitions_restoring", "gauge",
                    "Owned partitions whose state is being restored from the "
                    "changelog (not ready until 0)",
                    (double)enc_changelog_active(pl->cl));
        enc_metric1(b, "encore_restores_total", "counter",
                    "Partition restores from the changelog completed",
                    (double)cs.restores);
        enc_metric1(b, "encore_restore_records_total", "counter",
                    "Changelog records applied by restores",
                    (double)cs.restore_records);
        enc_metric1(b, "encore_restore_users_total", "counter",
                    "User records made durable by completed restores",
                    (double)cs.restore_users);
}

/* ---- everything ----------------------------------------------------- */

void enc_pipeline_metrics_text(enc_pipeline_t *pl, enc_buf_t *b) {
        enc_engine_stats_t es;
        enc_engine_stats(pl->engine, &es);
        enc_store_stats_t ss;
        enc_store_stats(pl->store, &ss);
        enc_buf_reset(b);

        enc_prom_family(b, "encore_build_info", "gauge",
                        "Build information; always 1");
        const char *bl[] = {"version", ENCORE_VERSION, "librdkafka",
                            rd_kafka_version_str(), NULL};
        enc_prom_sample(b, "encore_build_info", bl, 1);

        /* input */
        enc_render_partitions(pl, b);
        enc_metric1(b, "encore_records_accepted_total", "counter",
                    "Valid events taken for processing", (double)es.accepted);
        enc_metric1(b, "encore_records_applied_total", "counter",
                    "Events applied to state (the watermark passed them)",
                    (double)es.applied);
        enc_metric1(b, "encore_records_reread_total", "counter",
                    "Records read again after a restart that were already "
                    "handled before the last checkpoint",
                    (double)es.skipped_restore);
        enc_prom_family(b, "encore_records_dead_lettered_total", "counter",
                        "Records sent to the dead-letter topic, by reason");
        for (int r = 0; r < ENC_DLQ__CNT; r++) {
                const char *lab[] = {"reason",
                                     enc_dlq_reason_name((enc_dlq_reason_t)r),
                                     NULL};
                enc_prom_sample(b, "encore_records_dead_lettered_total", lab,
                                (double)es.dead_lettered[r]);
        }
        enc_metric1(b, "encore_late_records_total", "counter",
                    "Records behind the watermark (also counted in "
                    "encore_records_dead_lettered_total{reason=\"late\"})",
                    (double)es.dead_lettered[ENC_DLQ_LATE]);
        enc_metric1(b, "encore_watermark_forced_total", "counter",
                    "Times the reorder buffer was full "
                    "(reorder.max.events) and the watermark was advanced to "
                    "its oldest event",
                    (double)es.forced_watermark);

        /* output */
        enc_rstats_render(pl->rstats, b);
        enc_metric1(b, "encore_timers_fired_total", "counter",
                    "User timers fired (window decays, session closes, "
                    "horizons)",
                    (double)es.timers_fired);
        enc_prom_hist(b, "encore_event_to_output_latency_seconds",
                      "Wall clock when a reward update is produced minus the "
                      "Kafka timestamp of the input record that caused it "
                      "(CreateTime: the producer's, LogAppendTime: the "
                      "broker's)",
                      &pl->latency);

        /* commits and the group */
        enc_prom_hist(b, "encore_commit_duration_seconds",
                      "Flush outputs + checkpoint state + commit offsets",
                      &pl->commit_dur);
        enc_metric1(b, "encore_commits_total", "counter", "Commits done",
                    (double)pl->stats.commits);
        /* where the processing thread blocks: with records waiting, time
         * in these is time it is not processing */
        enc_changelog_stats_t wcs;
        enc_changelog_stats(pl->cl, &wcs);
        enc_prom_family(b, "encore_processing_wait_seconds_total", "counter",
                        "Seconds the processing thread spent blocked, by "
                        "what it waited for: poll (the consumer's prefetch "
                        "queue), commit_flush (output and changelog "
                        "deliveries before a checkpoint), producer_queue "
                        "(room in the full producer queue)");
        const struct {
                const char *wait;
                double s;
        } waits[] = {{"poll", pl->stats.wait_poll_s},
                     {"commit_flush", pl->stats.wait_flush_s},
                     {"producer_queue",
                      pl->stats.wait_queue_s + wcs.wait_queue_s}};
        for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
                const char *lab[] = {"wait", waits[i].wait, NULL};
                enc_prom_sample(b, "encore_processing_wait_seconds_total",
                                lab, waits[i].s);
        }
        enc_metric1(b, "encore_checkpoint_seconds_total", "counter",
                    "Seconds spent staging and writing state checkpoints "
                    "(RocksDB batch and changelog records, waits for "
                    "producer queue room excluded)",
                    (double)pl->stats.checkpoint_s);
        enc_metric1(b, "encore_rebalances_total", "counter",
                    "Partition assignments and revocations",
                    (double)pl->stats.rebalances);
        enc_metric1(b, "encore_assignments_lost_total", "counter",
                    "Revocations librdkafka reported as a lost assignment "
                    "(released without a final commit)",
                    (double)pl->assignments_lost);
        /* records of partitions the engine did not hold (restoring,
         * given up), never applied (consumer/stray.c) */
        enc_prom_family(b, "encore_stray_records_total", "counter",
                        "Records the consumer delivered for a partition "
                        "the engine did not hold, not applied: refetch (held "
                        "for its restore: sought back, fetched again) or "
                        "drop (given up: its next owner reads it)");
        const char *lref[] = {"action", "refetch", NULL},
                   *ldrop[] = {"action", "drop", NULL};
        enc_prom_sample(b, "encore_stray_records_total", lref,
                        (double)pl->stats.stray_refetched);
        enc_prom_sample(b, "encore_stray_records_total", ldrop,
                        (double)pl->stats.stray_dropped);
        enc_metric1(b, "encore_commits_deferred_total", "counter",
                    "Times periodic commits were held back because a group "
                    "rebalance was in progress",
                    (double)pl->commits_deferred);
        enc_metric1(b, "encore_partitions_assigned", "gauge",
                    "Input partitions this process owns",
                    (double)pl->owned->cnt);
        enc_render_restores(pl, b);

        /* state */
        enc_metric1(b, "encore_state_keys", "gauge",
                    "Users with stored state (RocksDB estimate)",
                    (double)ss.user_keys);
        enc_metric1(b, "encore_state_timer_keys", "gauge",
                    "Pending user timers in the store (RocksDB estimate)",
                    (double)ss.timer_keys);
        enc_metric1(b, "encore_state_size_bytes", "gauge",
                    "RocksDB SST files plus memtables",
                    (double)(ss.sst_bytes + ss.memtable_bytes));
        /* A full disk stops encore (a RocksDB write fails), so the file
         * system under state.dir is shown for alerting before it fills.
         * statvfs on a local disk answers from the kernel's superblock
         * without I/O. On failure both are left out, never made up. */
        struct statvfs vfs;
        if (statvfs(enc_conf_get(pl->conf, "state.dir"), &vfs) == 0) {
                enc_metric1(b, "encore_state_disk_free_bytes", "gauge",
                            "Bytes available to unprivileged processes on "
                            "the file system holding state.dir",
                            (double)vfs.f_bavail * (double)vfs.f_frsize);
                enc_metric1(b, "encore_state_disk_total_bytes", "gauge",
                            "Size of the file system holding state.dir",
                            (double)vfs.f_blocks * (double)vfs.f_frsize);
        }
        enc_metric1(b, "encore_state_users_expired_total", "counter",
                    "Users whose state was deleted because nothing could "
                    "change it any more",
                    (double)es.users_expired);
        enc_metric1(b, "encore_state_corrupt_total", "counter",
                    "Stored user records that failed to parse and were reset",
                    (double)es.state_corrupt);
        enc_metric1(b, "encore_cache_entries", "gauge",
                    "Users in the write-back cache", (double)es.cache_entries);
        enc_metric1(b, "encore_cache_size_bytes", "gauge",
                    "Bytes charged to the write-back cache",
                    (double)es.cache_bytes);
        enc_metric1(b, "encore_cache_hits_total", "counter",
                    "User state found in the cache (a user read ahead "
                    "counts as a hit)",
                    (double)es.cache_hits);
        enc_metric1(b, "encore_cache_misses_total", "counter",
                    "User state read from RocksDB", (double)es.cache_misses);
        enc_metric1(b, "encore_cache_evictions_total", "counter",
                    "Clean users evicted from the cache (cache.max.bytes)",
                    (double)es.cache_evictions);
        uint64_t lookups = es.cache_hits + es.cache_misses;
        enc_metric1(b, "encore_cache_hit_ratio", "gauge",
                    "Cache hits / lookups since start (1 before the first "
                    "lookup); for a recent ratio use rate() of "
                    "encore_cache_hits_total and encore_cache_misses_total",
                    lookups ? (double)es.cache_hits / (double)lookups : 1.0);
        /* read-ahead (state/engine.c, enc_engine_read_ahead): a user read
         * ahead and then looked up is a hit above, one evicted first is
         * read twice */
        enc_metric1(b, "encore_cache_prefetched_users_total", "counter",
                    "Users read ahead from RocksDB in batched reads "
                    "(MultiGet) shortly before their events or timers are "
                    "due; the lookup that then finds one counts as a hit",
                    (double)es.cache_prefetched);
        enc_metric1(b, "encore_cache_prefetch_wasted_users_total", "counter",
                    "Users read ahead that were evicted before any lookup "
                    "used them (read from RocksDB twice)",
                    (double)es.cache_prefetch_wasted);
        /* the duplicate check (dedup.window.ms) and its id filter */
        enc_metric1(b, "encore_dedup_checks_total", "counter",
                    "Accepted events checked against the event ids their "
                    "user already applied within dedup.window.ms (a copy "
                    "still in the reorder buffer is found without a check)",
                    (double)es.dedup_checks);
        enc_metric1(b, "encore_dedup_checks_filtered_total", "counter",
                    "Duplicate checks the id filter answered (no copy "
                    "possible) without loading the user's state",
                    (double)es.dedup_filter_no);
        enc_metric1(b, "encore_idfilter_resumed_partitions_total", "counter",
                    "Partitions assigned whose id filter was read back from "
                    "the checkpoint they resume from (otherwise its "
                    "duplicate checks load users until the filter has seen "
                    "dedup.window.ms of events)",
                    (double)es.idfilter_loaded);
        enc_metric1(b, "encore_idfilter_size_bytes", "gauge",
                    "Bytes of the id filter's tables now, all owned "
                    "partitions: charged to the write-back cache's share "
                    "and bounded by 1/16 of cache.max.bytes (at least one "
                    "1 KiB table a partition); 0 when dedup.window.ms is 0",
                    (double)es.idfilter_bytes);
        /* checkpoints: what each committed RocksDB batch wrote */
        enc_metric1(b, "encore_checkpoints_total", "counter",
                    "State checkpoints written to RocksDB, one atomic batch "
                    "each (a checkpoint with nothing to write is skipped)",
                    (double)ss.commits);
        enc_metric1(b, "encore_checkpoint_bytes_total", "counter",
                    "Bytes of the committed state checkpoint batches "
                    "(RocksDB WriteBatch size: users, timers, positions, id "
                    "filter)",
                    (double)es.checkpoint_bytes);
        enc_metric1(b, "encore_checkpoint_idfilter_bytes_total", "counter",
                    "Bytes of the id filter's records in the committed "
                    "checkpoints (keys after the partition, and values; "
                    "the batch framing, a few bytes a record, is not "
                    "counted), a part of encore_checkpoint_bytes_total",
                    (double)es.idfilter_saved_bytes);

        /* producer */
        enc_metric1(b, "encore_producer_queue_messages", "gauge",
                    "Messages waiting in the producer queue",
                    (double)rd_kafka_outq_len(pl->producer));
        enc_metric1(b, "encore_outputs_delivered_total", "counter",
                    "Reward updates acknowledged by the broker",
                    (double)pl->stats.produced);
        enc_metric1(b, "encore_dead_letters_delivered_total", "counter",
                    "Dead letters acknowledged by the broker",
                    (double)pl->stats.dlq_produced);
        enc_metric1(b, "encore_delivery_errors_total", "counter",
                    "Messages the producer could not deliver",
                    (double)pl->stats.delivery_errors);

        enc_prom_process(b);
}
