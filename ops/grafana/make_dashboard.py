#!/usr/bin/env python3
"""Writes the encore Grafana dashboard (ops/grafana/dashboards/encore.json).

    python3 ops/grafana/make_dashboard.py > ops/grafana/dashboards/encore.json

The panels are listed here, one call each, so a change to the dashboard is a
readable diff; tests/test_observability.sh (dashboard) checks the JSON is
this script's output and that every metric it names is one encore renders.
Every query selects job="encore" and the $instance variable, and goes through
the $datasource variable, so the dashboard also works imported elsewhere.
"""
import json

SEL = 'job="encore", instance=~"$instance"'
RI = '$__rate_interval'
panels = []
pid = [0]
y = [0]

def nid():
    pid[0] += 1
    return pid[0]

def row(title):
    panels.append({"type": "row", "id": nid(), "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y[0]}, "panels": []})
    y[0] += 1

cur = {"x": 0, "h": 0}

def place(w, h):
    if cur["x"] + w > 24:
        y[0] += cur["h"]
        cur["x"] = 0
        cur["h"] = 0
    g = {"h": h, "w": w, "x": cur["x"], "y": y[0]}
    cur["x"] += w
    cur["h"] = max(cur["h"], h)
    return g

def endrow():
    y[0] += cur["h"]
    cur["x"] = 0
    cur["h"] = 0

DS = {"type": "prometheus", "uid": "${datasource}"}

def targets(ts, instant=False, fmt=None):
    out = []
    for i, t in enumerate(ts):
        expr, legend = t
        d = {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend,
             "range": not instant, "instant": instant}
        if fmt:
            d["format"] = fmt
        out.append(d)
    return out

def ts(title, desc, unit, tl, w=12, h=8, stack=False, minv=None):
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
              "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    defaults = {"unit": unit, "custom": custom}
    if minv is not None:
        defaults["min"] = minv
    panels.append({"type": "timeseries", "id": nid(), "title": title, "description": desc,
                   "datasource": DS, "gridPos": place(w, h),
                   "fieldConfig": {"defaults": defaults, "overrides": []},
                   "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                               "tooltip": {"mode": "multi", "sort": "desc"}},
                   "targets": targets(tl)})

def stat(title, desc, unit, tl, w=4, h=4, text="auto", thresholds=None):
    steps = thresholds or [{"color": "green", "value": None}]
    panels.append({"type": "stat", "id": nid(), "title": title, "description": desc,
                   "datasource": DS, "gridPos": place(w, h),
                   "fieldConfig": {"defaults": {"unit": unit,
                                                "thresholds": {"mode": "absolute", "steps": steps}},
                                   "overrides": []},
                   "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                               "colorMode": "value", "graphMode": "area", "textMode": text,
                               "justifyMode": "auto", "orientation": "auto"},
                   "targets": targets(tl)})

def table(title, desc, tl, w=12, h=8):
    panels.append({"type": "table", "id": nid(), "title": title, "description": desc,
                   "datasource": DS, "gridPos": place(w, h),
                   "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
                   "options": {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
                   "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                      "renameByName": {"Value": "updates"}}}],
                   "targets": targets(tl, instant=True, fmt="table")})

def rate(m, by=None, extra=""):
    inner = f'rate({m}{{{SEL}{extra}}}[{RI}])'
    return f'sum by ({by}) ({inner})' if by else f'sum({inner})'

# ---- overview
row("Overview")
stat("Processes up", "encore processes Prometheus can scrape (job=\"encore\").", "none",
     [(f'sum(up{{{SEL}}})', "up")],
     thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}])
stat("Partitions assigned", "Input partitions owned by the selected processes. 0: not ready (/readyz answers 503).", "none",
     [(f'sum(encore_partitions_assigned{{{SEL}}})', "partitions")],
     thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}])
stat("Consumed", "Input records consumed per second.", "rps",
     [(rate("encore_records_consumed_total"), "consumed/s")])
stat("Consumer lag", "Records between the consumer positions and the ends of the input partitions (librdkafka statistics).", "short",
     [(f'sum(encore_consumer_lag_records{{{SEL}}})', "lag")],
     thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 10000}, {"color": "red", "value": 100000}])
stat("Dead-lettered share", "Dead letters / consumed records over the interval. The alert EncoreDeadLetterRateHigh fires above 1% for 10 minutes.", "percentunit",
     [(f'{rate("encore_records_dead_lettered_total")} / {rate("encore_records_consumed_total")}', "dead-lettered")],
     thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.001}, {"color": "red", "value": 0.01}])
stat("Version", "encore and librdkafka versions running (encore_build_info).", "none",
     [(f'count by (version, librdkafka) (encore_build_info{{{SEL}}})', "{{version}} (librdkafka {{librdkafka}})")],
     text="name")
endrow()

# ---- throughput
row("Throughput")
ts("Records per second",
   "consumed: read from the input topic; accepted: valid events taken for processing; applied: events the watermark has passed, delivered to the signals; outputs: reward updates acknowledged by the broker; dead-lettered: records sent to the dead-letter topic. consumed = accepted + dead-lettered (+ re-read after a restart).",
   "rps",
   [(rate("encore_records_consumed_total"), "consumed"),
    (rate("encore_records_accepted_total"), "accepted"),
    (rate("encore_records_applied_total"), "applied"),
    (rate("encore_outputs_delivered_total"), "outputs delivered"),
    (rate("encore_records_dead_lettered_total"), "dead-lettered")])
ts("Consumed per second by partition", "Input records consumed per second, by input partition.", "rps",
   [(rate("encore_records_consumed_total", "partition"), "partition {{partition}}")])
ts("Dead letters per second by reason",
   "Records sent to the dead-letter topic, by the encore.reason header. late: behind the watermark (window.grace.ms); future: too far ahead of stream time; decode/bad_magic/unknown_schema/truncated/too_large/invalid: the record itself.",
   "rps", [(rate("encore_records_dead_lettered_total", "reason"), "{{reason}}")], stack=True)
ts("Late records per second", "Events behind their partition's watermark (dead-lettered with reason late).", "rps",
   [(rate("encore_late_records_total", "instance"), "{{instance}}")])
endrow()

# ---- lag
row("Lag")
ts("Consumer lag by partition", "Records between the consumer position and the end of each input partition (librdkafka statistics; refreshed every statistics.interval.ms).",
   "short", [(f'sum by (partition) (encore_consumer_lag_records{{{SEL}}})', "partition {{partition}}")], minv=0)
ts("Watermark lag behind the newest event", "Stream time (newest event time) minus the watermark, by partition: the grace period, less when the reorder buffer forced the watermark on.",
   "s", [(f'max by (partition) (encore_watermark_lag_seconds{{{SEL}}})', "partition {{partition}}")], minv=0)
ts("Event time behind wall clock", "Now minus the newest event time seen on each partition: how far behind real time the input (or a replay) is.",
   "s", [(f'time() - max by (partition) (encore_stream_time_seconds{{{SEL}}})', "partition {{partition}}")])
ts("Events waiting for the watermark", "Accepted events held in the reorder buffer until the watermark passes them.",
   "short", [(f'sum by (partition) (encore_buffered_events{{{SEL}}})', "partition {{partition}}")], minv=0)
endrow()

# ---- latency
row("Latency")
def hq(q, m):
    return f'histogram_quantile({q}, sum by (le) (rate({m}_bucket{{{SEL}}}[{RI}])))'
ts("Event-to-output latency",
   "Wall clock when a reward update is produced minus the Kafka timestamp of the input record that caused it. With CreateTime topics this includes how old the event was when it arrived; with LogAppendTime it is encore's own latency.",
   "s", [(hq(0.5, "encore_event_to_output_latency_seconds"), "p50"),
         (hq(0.9, "encore_event_to_output_latency_seconds"), "p90"),
         (hq(0.99, "encore_event_to_output_latency_seconds"), "p99"),
         (f'sum(rate(encore_event_to_output_latency_seconds_sum{{{SEL}}}[{RI}])) / sum(rate(encore_event_to_output_latency_seconds_count{{{SEL}}}[{RI}]))', "mean")])
ts("Commit duration", "Flush the producer + checkpoint state and positions in RocksDB + commit group offsets.",
   "s", [(hq(0.5, "encore_commit_duration_seconds"), "p50"),
         (hq(0.99, "encore_commit_duration_seconds"), "p99"),
         (f'max(encore_commit_duration_seconds_sum{{{SEL}}} / encore_commit_duration_seconds_count{{{SEL}}})', "mean since start (slowest process)")])
ts("Commits per second", "Commits (every commit.interval.ms, or commit.records records, or when dirty state fills the cache).",
   "ops", [(rate("encore_commits_total", "instance"), "{{instance}}")])
endrow()

# ---- rewards
row("Rewards")
ts("Reward updates per second by signal and version", "RewardUpdates emitted, by signal and signal version.", "ops",
   [(rate("encore_reward_updates_total", "signal, version"), "{{signal}} v{{version}}")], stack=True)
ts("Reward updates per second by signal and cohort", "RewardUpdates emitted, by signal and the experiment cohort of the event that caused them (empty: no cohort).", "ops",
   [(rate("encore_reward_updates_total", "signal, cohort"), "{{signal}} / {{cohort}}")])
table("Reward updates in the time range by signal, version and cohort", "Total updates emitted in the dashboard's time range.",
      [(f'sum by (signal, version, cohort) (increase(encore_reward_updates_total{{{SEL}}}[$__range]))', "")])
ts("Timers fired per second", "User timers fired: window days decaying, sessions closing, discovery horizons ending.", "ops",
   [(rate("encore_timers_fired_total", "instance"), "{{instance}}")])
endrow()

# ---- experiment
row("Experiment")
ts("Mean final reward by cohort",
   "Mean value of the final reward updates that arrived in the interval, by signal and cohort: the live side of `encore readout --final-only`. The cohort is the arm the reward is credited to (for discovery_habit and progressive_reward the discovering play's). Compare cohorts within one signal.",
   "none", [(f'sum by (signal, version, cohort) (rate(encore_reward_final_value_sum{{{SEL}}}[{RI}])) / sum by (signal, version, cohort) (rate(encore_reward_final_value_count{{{SEL}}}[{RI}]))', "{{signal}} v{{version}} / {{cohort}}")])
ts("Median final reward by cohort",
   "Median of the final values in the interval, by signal and cohort, from the histogram encore_reward_final_value (buckets fitted to each signal's range: days for active_days, discovery_habit and progressive_reward, a rate for session).",
   "none", [(f'histogram_quantile(0.5, sum by (le, signal, version, cohort) (rate(encore_reward_final_value_bucket{{{SEL}}}[{RI}])))', "{{signal}} v{{version}} / {{cohort}}")])
ts("Units finished per second by cohort",
   "Units (a user for per-user signals, a discovery for discovery_habit and progressive_reward) whose reward reached its final value, per second, by signal and cohort.",
   "ops", [(f'sum by (signal, cohort) (rate(encore_reward_final_value_count{{{SEL}}}[{RI}]))', "{{signal}} / {{cohort}}")])
ts("Reward updates per second by cohort",
   "All reward updates, by cohort; cohort=\"other\" counts the cohorts past metrics.cohorts.max (overflowed updates per second shown too).",
   "ops", [(rate("encore_reward_updates_total", "cohort"), "{{cohort}}"),
           (rate("encore_reward_cohort_overflow_total"), "past metrics.cohorts.max")])
endrow()

# ---- state
row("State")
ts("State keys", "Users with stored state (RocksDB estimate), pending timers, and users held in the write-back cache.", "short",
   [(f'sum by (instance) (encore_state_keys{{{SEL}}})', "users in RocksDB {{instance}}"),
    (f'sum by (instance) (encore_state_timer_keys{{{SEL}}})', "timers {{instance}}"),
    (f'sum by (instance) (encore_cache_entries{{{SEL}}})', "users in cache {{instance}}")], minv=0)
ts("State size", "RocksDB SST files plus memtables, the bytes charged to the write-back cache (cache.max.bytes), and the id filter's tables (charged to the same share).", "bytes",
   [(f'sum by (instance) (encore_state_size_bytes{{{SEL}}})', "RocksDB {{instance}}"),
    (f'sum by (instance) (encore_cache_size_bytes{{{SEL}}})', "cache {{instance}}"),
    (f'sum by (instance) (encore_idfilter_size_bytes{{{SEL}}})', "id filter {{instance}}")], minv=0)
ts("Cache hit ratio", "Share of user-state lookups served by the write-back cache over the interval. A user read ahead (in a batch, before its event is due) counts as a hit when looked up, so the second series, users read from RocksDB by a miss or a read-ahead per lookup, is the share of lookups the cache itself did not save.", "percentunit",
   [(f'{rate("encore_cache_hits_total")} / ({rate("encore_cache_hits_total")} + {rate("encore_cache_misses_total")})', "hit ratio"),
    (f'({rate("encore_cache_misses_total")} + {rate("encore_cache_prefetched_users_total")}) / ({rate("encore_cache_hits_total")} + {rate("encore_cache_misses_total")})', "read from RocksDB per lookup")], minv=0)
ts("State churn", "Users whose state expired (nothing can change it any more) and clean users evicted from the cache, per second.", "ops",
   [(rate("encore_state_users_expired_total"), "users expired"),
    (rate("encore_cache_evictions_total"), "cache evictions")])
ts("State disk", "The file system holding state.dir: space free to encore, its size, and encore's RocksDB state on it. A full disk stops encore (a RocksDB write fails). The alert EncoreStateDiskFilling fires under 10% free (critical under 5%), or when the last hour's trend reaches 0 within 4 hours.", "bytes",
   [(f'sum by (instance) (encore_state_disk_free_bytes{{{SEL}}})', "free {{instance}}"),
    (f'sum by (instance) (encore_state_disk_total_bytes{{{SEL}}})', "size {{instance}}"),
    (f'sum by (instance) (encore_state_size_bytes{{{SEL}}})', "RocksDB state {{instance}}")], w=24, minv=0)
endrow()

# ---- cache read-ahead, duplicate check, checkpoints
row("Read-ahead, duplicate check and checkpoints")
ts("Cache read-ahead", "Users read ahead from RocksDB in batched reads (MultiGet) shortly before their events or timers are due, and those evicted before a lookup used them (read twice), per second.", "ops",
   [(rate("encore_cache_prefetched_users_total"), "read ahead"),
    (rate("encore_cache_prefetch_wasted_users_total"), "evicted unused")], w=8, minv=0)
ts("Read-ahead waste share", "Users read ahead that were evicted before any lookup used them / users read ahead, over the interval. Near 0 is healthy; a high share means the cache (cache.max.bytes) is too small for the users the grace period holds.", "percentunit",
   [(f'{rate("encore_cache_prefetch_wasted_users_total")} / {rate("encore_cache_prefetched_users_total")}', "wasted")], w=8, minv=0)
ts("Duplicate checks per second", "Accepted events checked against the ids their user already applied (dedup.window.ms), and those the id filter answered without loading the user's state.", "ops",
   [(rate("encore_dedup_checks_total"), "checks"),
    (rate("encore_dedup_checks_filtered_total"), "answered by the id filter")], w=8, minv=0)
ts("Checkpoint bytes per second", "Bytes of the committed state checkpoint batches (RocksDB: users, timers, positions, id filter), and the id filter's part of them.", "Bps",
   [(rate("encore_checkpoint_bytes_total"), "checkpoint"),
    (rate("encore_checkpoint_idfilter_bytes_total"), "of which id filter")], w=8, minv=0)
ts("Bytes per checkpoint", "Mean size of a checkpoint batch over the interval (checkpoint bytes / checkpoints written).", "bytes",
   [(f'{rate("encore_checkpoint_bytes_total")} / {rate("encore_checkpoints_total")}', "bytes per checkpoint")], w=8, minv=0)
ts("Id filter share", "Of the duplicate checks (dedup.window.ms), the share the id filter answered without loading the user's state; and the id filter's share of the checkpoint bytes.", "percentunit",
   [(f'{rate("encore_dedup_checks_filtered_total")} / {rate("encore_dedup_checks_total")}', "duplicate checks answered by the filter"),
    (f'{rate("encore_checkpoint_idfilter_bytes_total")} / {rate("encore_checkpoint_bytes_total")}', "of checkpoint bytes")], w=8, minv=0)
endrow()

# ---- kafka
row("Kafka")
ts("Producer queue", "Messages (reward updates and dead letters) waiting in librdkafka's producer queue.", "short",
   [(f'sum by (instance) (encore_producer_queue_messages{{{SEL}}})', "{{instance}}")], w=8, minv=0)
ts("Delivery errors", "Messages the producer could not deliver in the interval. One stops the process without committing.", "short",
   [(f'sum by (instance) (increase(encore_delivery_errors_total{{{SEL}}}[{RI}]))', "{{instance}}")], w=8, minv=0)
ts("Rebalances and partitions", "Partition assignments and revocations in the interval, and partitions owned by each process.", "short",
   [(f'sum by (instance) (increase(encore_rebalances_total{{{SEL}}}[{RI}]))', "rebalances {{instance}}"),
    (f'sum by (instance) (encore_partitions_assigned{{{SEL}}})', "partitions {{instance}}")], w=8, minv=0)
endrow()

# ---- restore
row("Restore")
ts("Records still to restore by partition", "Changelog records left to apply before the partition is processed (0: its state is current). The alert EncoreRestoreStuck fires when this stays above 0 without going down for 10 minutes.", "short",
   [(f'sum by (partition) (encore_restore_remaining_records{{{SEL}}})', "partition {{partition}}")], w=8, minv=0)
ts("Restore throughput", "Changelog records applied per second by restores, and the partitions being restored (not processing, /readyz 503).", "short",
   [(rate("encore_restore_records_total", "instance"), "records/s {{instance}}"),
    (f'sum by (instance) (encore_partitions_restoring{{{SEL}}})', "partitions restoring {{instance}}"),
    (f'sum by (instance) (increase(encore_restores_total{{{SEL}}}[{RI}]))', "restores completed {{instance}}")], w=8, minv=0)
ts("Records re-read after a restart", "Input records between the checkpoint's resume position and the last handled offset, read again after a restart (already applied or dead-lettered; the buffered ones are buffered again).", "rps",
   [(rate("encore_records_reread_total", "instance"), "{{instance}}")], w=8)
endrow()

# ---- process
row("Process")
ts("CPU", "CPU seconds per second (1 = one core busy).", "percentunit",
   [(f'sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}[{RI}]))', "{{instance}}")], w=8, minv=0)
ts("Resident memory", "Resident set size of each process.", "bytes",
   [(f'sum by (instance) (process_resident_memory_bytes{{{SEL}}})', "{{instance}}")], w=8, minv=0)
ts("Open file descriptors", "Open file descriptors (RocksDB files, sockets) against the limit.", "short",
   [(f'sum by (instance) (process_open_fds{{{SEL}}})', "open {{instance}}"),
    (f'min by (instance) (process_max_fds{{{SEL}}})', "limit {{instance}}")], w=8, minv=0)
endrow()

dash = {
    "title": "encore",
    "uid": "encore-overview",
    "description": "encore: throughput, lag, latency, dead letters, rewards by signal and cohort, state, Kafka and restore. Metrics are described in ops/OBSERVABILITY.md.",
    "tags": ["encore", "kafka", "rewards"],
    "timezone": "browser",
    "editable": True,
    "graphTooltip": 1,
    "refresh": "10s",
    "schemaVersion": 39,
    "version": 1,
    "time": {"from": "now-30m", "to": "now"},
    "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                              "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                              "name": "Annotations & Alerts", "type": "dashboard"}]},
    "links": [],
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False, "options": []},
        {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
         "definition": 'label_values(encore_build_info{job="encore"}, instance)',
         "query": {"query": 'label_values(encore_build_info{job="encore"}, instance)', "refId": "instances"},
         "includeAll": True, "multi": True, "allValue": ".*",
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
         "refresh": 2, "sort": 1, "hide": 0, "regex": "", "options": []},
    ]},
    "panels": panels,
}
print(json.dumps(dash, indent=2))
