/*
 * observe.c -- what encore tells Prometheus: renders the metrics of a
 * pipeline in the text exposition format.
 *
 * DESIGN
 * Runs on the processing thread (the loop calls it about once a second and
 * publishes the text for the HTTP thread), so it may read the pipeline's
 * counters without locks. Every family has HELP and TYPE, counters end in
 * _total, units are in the names (_seconds, _bytes, _records). Label sets
 * are bounded: partitions owned, dead-letter reasons, and (signal, version,
 * cohort) with cohorts capped in pipeline.c.
 *
 * Never: call into Kafka or RocksDB in a way that can block (the RocksDB
 * property reads here are in-memory).
 */
#include <stdio.h>
#include <string.h>

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

void enc_pipeline_metrics_text(enc_pipeline_t *pl, enc_buf_t *b) {
        enc_engine_stats_t es;
        enc_engine_stats(pl->engine, &es);
        enc_store_stats_t ss;
        enc_store_stats(pl->store, &ss);
        char pn[16];
        enc_buf_reset(b);

        enc_prom_family(b, "encore_build_info", "gauge",
                        "Build information; always 1");
        const char *bl[] = {"version", ENCORE_VERSION, "librdkafka",
                            rd_kafka_version_str(), NULL};
        enc_prom_sample(b, "encore_build_info", bl, 1);

        enc_prom_family(b, "encore_records_consumed_total", "counter",
                        "Input records consumed, by input partition");
        enc_prom_family(b, "encore_watermark_lag_seconds", "gauge",
                        "Stream time (newest event) minus watermark, by "
                        "input partition");
        enc_prom_family(b, "encore_buffered_events", "gauge",
                        "Events waiting for the watermark, by input "
                        "partition");
        enc_prom_family(b, "encore_consumer_lag_records", "gauge",
                        "Records between the consumer position and the end "
                        "of the partition (librdkafka statistics)");
        for (int i = 0; i < pl->owned->cnt; i++) {
                int32_t p = pl->owned->elems[i].partition;
                enc_partition_info_t pi;
                if (!enc_engine_partition_info(pl->engine, p, &pi))
                        continue;
                snprintf(pn, sizeof(pn), "%d", p);
                const char *lab[] = {"partition", pn, NULL};
                enc_prom_sample(b, "encore_records_consumed_total", lab,
                                (double)pi.consumed);
                if (pi.stream_time != INT64_MIN && pi.watermark != INT64_MIN)
                        enc_prom_sample(b, "encore_watermark_lag_seconds",
                                        lab,
                                        (double)(pi.stream_time -
                                                 pi.watermark) /
                                                1000.0);
                enc_prom_sample(b, "encore_buffered_events", lab,
                                (double)pi.buffered);
                if (p < pl->nlag && pl->lag[p] >= 0)
                        enc_prom_sample(b, "encore_consumer_lag_records", lab,
                                        (double)pl->lag[p]);
        }

        enc_metric1(b, "encore_records_accepted_total", "counter",
                    "Valid events taken for processing",
                    (double)es.accepted);
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
                    "dead_lettered_total{reason=\"late\"})",
                    (double)es.dead_lettered[ENC_DLQ_LATE]);

        enc_prom_family(b, "encore_reward_updates_total", "counter",
                        "Reward updates emitted, by signal, version and "
                        "cohort (empty: no cohort)");
        for (int i = 0; i < pl->nupd; i++) {
                char ver[16];
                snprintf(ver, sizeof(ver), "%d", pl->upd[i].version);
                const char *lab[] = {"signal", pl->upd[i].signal, "version",
                                     ver, "cohort", pl->upd[i].cohort, NULL};
                enc_prom_sample(b, "encore_reward_updates_total", lab,
                                (double)pl->upd[i].n);
        }
        enc_metric1(b, "encore_timers_fired_total", "counter",
                    "User timers fired (window decays, session closes, "
                    "horizons)",
                    (double)es.timers_fired);
        enc_prom_hist(b, "encore_event_to_output_latency_seconds",
                      "From the input record's Kafka timestamp to its reward "
                      "update being produced",
                      &pl->latency);
        enc_prom_hist(b, "encore_commit_duration_seconds",
                      "Flush outputs + checkpoint state + commit offsets",
                      &pl->commit_dur);
        enc_metric1(b, "encore_commits_total", "counter", "Commits done",
                    (double)pl->stats.commits);
        enc_metric1(b, "encore_rebalances_total", "counter",
                    "Partition assignments and revocations",
                    (double)pl->stats.rebalances);
        enc_metric1(b, "encore_partitions_assigned", "gauge",
                    "Input partitions this process owns",
                    (double)pl->owned->cnt);
        enc_metric1(b, "encore_state_keys", "gauge",
                    "Users with stored state (RocksDB estimate)",
                    (double)ss.user_keys);
        enc_metric1(b, "encore_state_size_bytes", "gauge",
                    "RocksDB SST files plus memtables",
                    (double)(ss.sst_bytes + ss.memtable_bytes));
        enc_metric1(b, "encore_state_users_expired_total", "counter",
                    "Users whose state was deleted because nothing could "
                    "change it any more",
                    (double)es.users_expired);
        enc_metric1(b, "encore_state_corrupt_total", "counter",
                    "Stored user records that failed to parse and were reset",
                    (double)es.state_corrupt);
        enc_metric1(b, "encore_cache_entries", "gauge",
                    "Users in the write-back cache",
                    (double)es.cache_entries);
        enc_metric1(b, "encore_cache_size_bytes", "gauge",
                    "Bytes charged to the write-back cache",
                    (double)es.cache_bytes);
        enc_metric1(b, "encore_cache_hits_total", "counter",
                    "User state found in the cache", (double)es.cache_hits);
        enc_metric1(b, "encore_cache_misses_total", "counter",
                    "User state read from RocksDB", (double)es.cache_misses);
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
}
