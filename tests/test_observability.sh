#!/usr/bin/env bash
# tests/test_observability.sh MODE -- checks of encore's observability.
#
#   rules      promtool: ops/prometheus/prometheus.yml is a valid config,
#              alerts.yml valid rules, and alerts.test.yml (each alert fires
#              on a series that should fire it and not on its neighbour)
#              passes.
#   dashboard  jq: the Grafana dashboard and its provisioning are consistent
#              (ids, grid, data source variable, every panel has queries),
#              and every metric the dashboard and the alert rules name is
#              one encore renders (consumer/observe.c, consumer/metrics.c).
#   compose    docker-compose config accepts docker-compose.yml, and every
#              file it bind-mounts exists and lands where the Prometheus and
#              Grafana provisioning expect it.
#   systemd    systemd-analyze verify accepts ops/systemd/encore.service.
#   live       encore on its embedded broker, fed by encore-gen, scraped by
#              Debian's Prometheus on loopback: the live /metrics passes
#              `promtool check metrics`; /healthz, /readyz answer; every
#              PromQL expression of the dashboard returns data; the alert
#              rules evaluate without error and none fires; the counters
#              equal what the test produced and what the output topic holds;
#              the logs are key=value lines at the configured level; a
#              stopped encore is seen as up == 0.
#
# Exit 77 (ctest SKIP_RETURN_CODE) when a tool is missing, naming the Debian
# package. Only loopback addresses; every wait is bounded.
set -euo pipefail

mode=${1:?usage: test_observability.sh rules|dashboard|compose|systemd|live}
src=${ENCORE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${ENCORE_BINARY_DIR:-$src/build}

# Metrics the dashboard or the alert rules use that encore does not export
# yet. Each is checked as soon as /metrics has it; until then its queries are
# reported as PENDING instead of failing. Remove a name once it exists.
# Empty: everything the dashboard and the rules use is rendered today.
PENDING_METRICS=""

fail() {
        echo "FAIL: $*" >&2
        if [[ -n ${t:-} && -f $t/encore.log ]]; then
                echo "--- last lines of encore's log:" >&2
                tail -n 15 "$t/encore.log" >&2
        fi
        exit 1
}

# need TOOL:PACKAGE ... -- skip (77) unless every tool is on PATH.
need() {
        local t
        for t in "$@"; do
                command -v "${t%%:*}" >/dev/null 2>&1 || {
                        echo "SKIP: ${t%%:*} not found; it comes with the Debian package ${t#*:}"
                        exit 77
                }
        done
}

# Metric families encore renders: the string literals of observe.c and
# metrics.c, plus the series a histogram family expands to.
code_metrics() {
        grep -ohE '"(encore|process)_[a-z_]+"' "$src/consumer/observe.c" \
                "$src/consumer/metrics.c" "$src/consumer/rewardstats.c" |
                tr -d '"' | sort -u |
                while read -r m; do
                        echo "$m"
                        echo "${m}_bucket"
                        echo "${m}_sum"
                        echo "${m}_count"
                done
}

# Metric names a PromQL expression reads (encore's, the process collector's
# and Prometheus' own up).
expr_metrics() {
        grep -oE '\b(encore_[a-z_]+|process_[a-z_]+|up)\b' <<<"$1" | sort -u
}

is_pending() {
        local p
        for p in $PENDING_METRICS; do
                [[ $1 == "$p" ]] && return 0
        done
        return 1
}

dashboard=$src/ops/grafana/dashboards/encore.json

# Every target expression of the dashboard, one per line.
dashboard_exprs() {
        jq -r '.panels[] | select(.type != "row") | .targets[].expr' "$dashboard"
}

# Every alert expression of alerts.yml, joined to one line each. Needs no
# YAML parser: the rules file keeps the form "expr: |" + indented lines.
alert_exprs() {
        awk '
        function flush() { if (e != "") print e; e = ""; inb = 0 }
        /^ *expr: *\|/ { flush(); inb = 1; ind = -1; next }
        /^ *expr: / { flush(); sub(/^ *expr: */, ""); print; next }
        inb {
                if ($0 ~ /^ *$/) next
                match($0, /^ */)
                if (ind < 0) ind = RLENGTH
                if (RLENGTH < ind) { flush(); next }
                l = $0; sub(/^ */, "", l); e = e (e == "" ? "" : " ") l
        }
        END { flush() }' "$src/ops/prometheus/alerts.yml"
}

# ---- rules ---------------------------------------------------------------

mode_rules() {
        need promtool:prometheus
        cd "$src/ops/prometheus"
        promtool check config prometheus.yml
        promtool check rules alerts.yml
        promtool test rules alerts.test.yml
        local n
        n=$(grep -c '^ *- alert:' alerts.yml)
        for a in EncoreProcessDown EncoreConsumerLagGrowing \
                EncoreDeadLetterRateHigh EncoreRestoreStuck EncoreNoOutput \
                EncoreStateDiskFilling; do
                grep -q "alert: $a\$" alerts.yml || fail "alerts.yml has no $a"
                grep -q "alertname: $a\$" alerts.test.yml ||
                        fail "alerts.test.yml does not test $a"
        done
        echo "PASS: prometheus.yml valid; $n alert rules valid and unit-tested"
}

# ---- dashboard -----------------------------------------------------------

mode_dashboard() {
        need jq:jq
        jq -e . "$dashboard" >/dev/null || fail "$dashboard is not JSON"
        jq -e '.uid == "encore-overview" and .title == "encore"' "$dashboard" \
                >/dev/null || fail "dashboard uid/title changed (links point at uid encore-overview)"
        # unique panel ids, panels inside the 24-column grid
        local dup
        dup=$(jq -r '[.panels[].id] | group_by(.) | map(select(length > 1)[0]) | .[]' "$dashboard")
        [[ -z $dup ]] || fail "duplicate panel ids: $dup"
        jq -e 'all(.panels[]; .gridPos.w > 0 and .gridPos.h > 0 and .gridPos.x + .gridPos.w <= 24)' \
                "$dashboard" >/dev/null || fail "a panel lies outside the 24-column grid"
        # every query goes through the data source variable
        jq -e '.templating.list | any(.name == "datasource" and .type == "datasource" and .query == "prometheus")' \
                "$dashboard" >/dev/null || fail "no datasource variable of type prometheus"
        jq -e 'all(.panels[] | select(.type != "row"); .datasource.uid == "${datasource}" and (.targets | length) > 0 and all(.targets[]; .datasource.uid == "${datasource}" and (.expr | length) > 0))' \
                "$dashboard" >/dev/null || fail "a panel has no query, or bypasses \${datasource}"
        jq -e '.templating.list | any(.name == "instance" and .allValue == ".*")' \
                "$dashboard" >/dev/null || fail "no instance variable with allValue .*"

        # every metric named by the dashboard and the alerts exists in code
        local known e m bad=0 n=0
        known=$(code_metrics)
        while IFS= read -r e; do
                n=$((n + 1))
                for m in $(expr_metrics "$e"); do
                        [[ $m == up ]] && continue
                        if ! grep -qx "$m" <<<"$known"; then
                                if is_pending "$m"; then
                                        echo "PENDING: $m (not rendered yet) in: $e"
                                else
                                        echo "unknown metric $m in: $e" >&2
                                        bad=1
                                fi
                        fi
                done
        done < <(dashboard_exprs; alert_exprs)
        [[ $bad == 0 ]] || fail "the dashboard or alerts name metrics encore does not render"

        # every metric encore renders is documented
        local doc=$src/ops/OBSERVABILITY.md
        for m in $(grep -ohE '"(encore|process)_[a-z_]+"' \
                "$src/consumer/observe.c" "$src/consumer/metrics.c" \
                "$src/consumer/rewardstats.c" | grep -vE '_(bucket|sum|count)"' |
                tr -d '"' | sort -u); do
                grep -qF "\`$m\`" "$doc" || fail "$m is not described in ops/OBSERVABILITY.md"
        done

        # the JSON is what ops/grafana/make_dashboard.py writes
        if command -v python3 >/dev/null 2>&1; then
                python3 "$src/ops/grafana/make_dashboard.py" |
                        diff -q - "$dashboard" >/dev/null ||
                        fail "encore.json differs from make_dashboard.py's output; run: python3 ops/grafana/make_dashboard.py > ops/grafana/dashboards/encore.json"
        fi

        # provisioning: the data source the dashboard defaults to, and the
        # folder the provider reads is the one compose mounts the JSON at
        local prov=$src/ops/grafana/provisioning
        grep -q 'type: prometheus' "$prov/datasources/prometheus.yml" ||
                fail "no prometheus data source provisioned"
        grep -q 'url: http://prometheus:9090' "$prov/datasources/prometheus.yml" ||
                fail "data source does not point at the compose prometheus service"
        local path
        path=$(sed -n 's/^ *path: *//p' "$prov/dashboards/encore.yml")
        [[ -n $path ]] || fail "dashboard provider has no path"
        grep -qF "./ops/grafana/dashboards:$path:ro" "$src/docker-compose.yml" ||
                fail "docker-compose.yml does not mount ops/grafana/dashboards at $path"
        echo "PASS: dashboard consistent, $n expressions name only rendered metrics"
}

# ---- compose -------------------------------------------------------------

mode_compose() {
        need docker-compose:docker-compose
        cd "$src"
        local out
        out=$(docker-compose -f docker-compose.yml config) ||
                fail "docker-compose config rejects docker-compose.yml"
        # Every bind mount's source exists in the tree.
        local srcs s
        srcs=$(grep -oE "^ *- $src/[^:]+" <<<"$out" | sed "s/^ *- //")
        [[ -n $srcs ]] || fail "no bind mounts found in the resolved config"
        while IFS= read -r s; do
                [[ -e $s ]] || fail "docker-compose.yml mounts $s, which does not exist"
        done <<<"$srcs"
        for want in \
                "$src/ops/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" \
                "$src/ops/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" \
                "$src/ops/grafana/provisioning/datasources:/etc/grafana/provisioning/datasources:ro" \
                "$src/ops/grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro"; do
                grep -qF -- "- $want" <<<"$out" || fail "missing mount $want"
        done
        for svc in kafka topics encore generator prometheus grafana; do
                grep -qE "^  $svc:\$" <<<"$out" || fail "no service $svc"
        done
        # prometheus.yml's rule_files entry is where compose mounts alerts.yml
        grep -qE '^ *- alerts.yml$' ops/prometheus/prometheus.yml ||
                fail "prometheus.yml does not load alerts.yml"
        echo "PASS: docker-compose config ok; $(wc -l <<<"$srcs") bind mounts exist"
}

# ---- systemd -------------------------------------------------------------

mode_systemd() {
        need systemd-analyze:systemd
        local t out
        t=$(mktemp -d)
        trap 'rm -rf "$t"' EXIT
        # verify checks that ExecStart's program exists, which it does not
        # before installation: stand /bin/true in for it
        sed "s#/usr/local/bin/encore#/bin/true#" \
                "$src/ops/systemd/encore.service" >"$t/encore.service"
        out=$(systemd-analyze verify "$t/encore.service" 2>&1) ||
                fail "systemd-analyze verify: $out"
        [[ -z $out ]] || fail "systemd-analyze verify warns: $out"
        grep -q '^EnvironmentFile=-/etc/default/encore$' "$src/ops/systemd/encore.service" ||
                fail "the unit no longer reads /etc/default/encore"
        echo "PASS: encore.service verifies"
}

# ---- live ----------------------------------------------------------------

N_GOOD=3000   # valid PlayEvents
N_RAW=7       # raw Avro on a Confluent-framed topic: bad_magic
N_SCHEMA=5    # Confluent frame with an unknown schema id: unknown_schema

t=""  # the live test's scratch directory; ENCORE_TEST_KEEP=1 keeps it
encore_pid=""
prom_pid=""
quiet_pid=""

cleanup() {
        local p
        for p in $encore_pid $prom_pid $quiet_pid; do
                kill "$p" 2>/dev/null || true
        done
        for p in $encore_pid $prom_pid $quiet_pid; do
                wait "$p" 2>/dev/null || true
        done
        if [[ -n $t && -z ${ENCORE_TEST_KEEP:-} ]]; then
                rm -rf "$t"
        elif [[ -n $t ]]; then
                echo "kept $t (ENCORE_TEST_KEEP)" >&2
        fi
}

# wait_until SECONDS DESCRIPTION COMMAND... -- polls every 0.2 s.
wait_until() {
        local secs=$1 what=$2
        shift 2
        local deadline=$((SECONDS + secs))
        until "$@"; do
                ((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $what"
                sleep 0.2
        done
}

http_code() {
        curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" || true
}

http_ok() {
        [[ $(http_code "$1") == 200 ]]
}

prom=""
pq() {
        curl -fsS -G --max-time 5 --data-urlencode "query=$1" "$prom/api/v1/query"
}
# The value of the first series of an instant query, or "none".
pval() {
        pq "$1" | jq -r '.data.result[0].value[1] // "none"'
}
pval_is() {
        [[ $(pval "$1") == "$2" ]]
}

mode_live() {
        need prometheus:prometheus promtool:prometheus curl:curl jq:jq
        [[ -x $bin/encore && -x $bin/encore-gen ]] ||
                fail "$bin/encore and encore-gen must be built"
        t=$(mktemp -d)
        trap cleanup EXIT

        # The log-level check runs beside the rest: warn hides info lines.
        timeout 40 "$bin/encore" run --embedded-broker \
                --set log.level=warn --set metrics.address= \
                --set state.dir="$t/quiet-state" --exit-idle-ms 300 \
                >"$t/quiet.out" 2>"$t/quiet.log" &
        quiet_pid=$!

        "$bin/encore" run --embedded-broker \
                --set metrics.address=127.0.0.1:0 \
                --set state.dir="$t/state" \
                --set log.level=debug \
                --set commit.interval.ms=500 \
                --set kafka.consumer.statistics.interval.ms=1000 \
                >"$t/encore.out" 2>"$t/encore.log" &
        encore_pid=$!
        wait_until 20 "encore to print its broker and metrics addresses" \
                grep -q 'event=metrics_listen' "$t/encore.log"
        wait_until 20 "the embedded broker address" \
                grep -q '^embedded broker: ' "$t/encore.out"
        local bs murl base
        bs=$(sed -n 's/^embedded broker: //p' "$t/encore.out")
        murl=$(grep -o 'event=metrics_listen url=[^ ]*' "$t/encore.log" | sed 's/.*url=//')
        base=${murl%/metrics}
        [[ $base == http://127.0.0.1:* ]] || fail "metrics not on loopback: $murl"

        # /healthz at once; /readyz once partitions are assigned
        [[ $(http_code "$base/healthz") == 200 ]] || fail "/healthz is not 200"
        wait_until 30 "/readyz to answer 200" http_ok "$base/readyz"
        [[ $(http_code "$base/nothing") == 404 ]] || fail "unknown path is not 404"
        [[ $(http_code -X POST "$base/metrics") == 405 ]] || fail "POST is not 405"

        "$bin/encore-gen" --bootstrap "$bs" --topic plays --count $N_GOOD \
                --users 300 --days 3 --seed 11 2>"$t/gen.log"
        "$bin/encore-gen" --bootstrap "$bs" --topic plays --count $N_RAW \
                --framing raw --seed 12 2>>"$t/gen.log"
        "$bin/encore-gen" --bootstrap "$bs" --topic plays --count $N_SCHEMA \
                --schema-id 99 --seed 13 2>>"$t/gen.log"

        # Prometheus on loopback, scraping encore every second, with the
        # shipped alert rules loaded.
        local mport=${base##*:}
        cat >"$t/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $src/ops/prometheus/alerts.yml
scrape_configs:
  - job_name: encore
    static_configs:
      - targets: ["127.0.0.1:$mport"]
EOF
        promtool check config "$t/prometheus.yml" >/dev/null
        local pport
        for _ in 1 2 3 4 5; do
                pport=$((20000 + RANDOM % 40000))
                (exec 3<>"/dev/tcp/127.0.0.1/$pport") 2>/dev/null && continue
                prometheus --config.file="$t/prometheus.yml" \
                        --storage.tsdb.path="$t/tsdb" \
                        --web.listen-address="127.0.0.1:$pport" \
                        --log.level=warn >"$t/prometheus.log" 2>&1 &
                prom_pid=$!
                prom=http://127.0.0.1:$pport
                local deadline=$((SECONDS + 20))
                while kill -0 "$prom_pid" 2>/dev/null &&
                        [[ $(http_code "$prom/-/ready") != 200 ]]; do
                        ((SECONDS < deadline)) || fail "prometheus not ready in 20s: $(tail -5 "$t/prometheus.log")"
                        sleep 0.2
                done
                kill -0 "$prom_pid" 2>/dev/null && break
                wait "$prom_pid" 2>/dev/null || true
                prom_pid=""
        done
        [[ -n $prom_pid ]] || fail "prometheus did not start: $(tail -5 "$t/prometheus.log")"

        # Everything consumed, processed and delivered, as Prometheus sees it.
        local consumed=$((N_GOOD + N_RAW + N_SCHEMA))
        wait_until 30 "Prometheus to see all $consumed records consumed" \
                pval_is 'sum(encore_records_consumed_total{job="encore"})' "$consumed"
        wait_until 20 "outputs delivered to equal updates emitted" \
                pval_is 'sum(encore_reward_updates_total{job="encore"}) - sum(encore_outputs_delivered_total{job="encore"}) == 0' 0
        wait_until 20 "consumer lag from librdkafka statistics" \
                pval_is 'count(encore_consumer_lag_records{job="encore"})' 4
        wait_until 20 "five scrapes in the rate window" \
                pval_is 'count_over_time(up{job="encore"}[20s]) >= bool 5' 1

        # 1. the exposition itself
        curl -fsS --max-time 5 "$murl" >"$t/metrics.txt"
        local lint
        lint=$(promtool check metrics <"$t/metrics.txt" 2>&1) ||
                fail "promtool check metrics: $lint"
        [[ -z $lint ]] || fail "promtool check metrics: $lint"

        # Where the processing thread waits: one series per wait. All
        # input is consumed by now, so the loop sits in
        # rd_kafka_consumer_poll: across two expositions 3 s apart the poll
        # wait grows by that span, give or take the 1 s the exposition can
        # be stale at each end (bounds 0.8 and 5.2 s, not the code's own
        # figure); commits were flushed, each flush taking some time.
        [[ $(grep -c '^encore_processing_wait_seconds_total{wait="\(poll\|commit_flush\|producer_queue\)"} ' "$t/metrics.txt") == 3 ]] ||
                fail "expected the 3 series of encore_processing_wait_seconds_total"
        local w0 w1
        w0=$(awk '/^encore_processing_wait_seconds_total\{wait="poll"\}/ {print $2}' "$t/metrics.txt")
        sleep 3
        w1=$(curl -fsS --max-time 5 "$murl" | awk '/^encore_processing_wait_seconds_total\{wait="poll"\}/ {print $2}')
        awk -v a="$w0" -v b="$w1" 'BEGIN {d = b - a; exit !(d >= 0.8 && d <= 5.2)}' ||
                fail "idle 3 s, poll wait went from $w0 to $w1 s"
        awk '/^encore_commits_total / {c = $2} /^encore_processing_wait_seconds_total\{wait="commit_flush"\}/ {f = $2}
             END {exit !(c > 0 && f > 0)}' "$t/metrics.txt" ||
                fail "commits were made but no commit flush wait was counted"
        echo "ok: idle 3 s, the poll wait grew from $w0 to $w1 s"

        # 2. every dashboard expression returns data
        local e q res n=0 pend=0 m missing
        while IFS= read -r e; do
                q=${e//\$__rate_interval/20s}
                q=${q//\$__range/1m}
                q=${q//\$__interval/2s}
                q=${q//\$instance/.*}
                res=$(pq "$q") || fail "query rejected: $q"
                [[ $(jq -r .status <<<"$res") == success ]] || fail "query failed: $q: $res"
                if [[ $(jq '.data.result | length' <<<"$res") -gt 0 ]]; then
                        n=$((n + 1))
                        continue
                fi
                missing=""
                for m in $(expr_metrics "$e"); do
                        grep -qE "^$m(\{| )" "$t/metrics.txt" || missing+=" $m"
                done
                local all_pending=1
                for m in $missing; do
                        is_pending "$m" || all_pending=0
                done
                if [[ -n $missing && $all_pending == 1 ]]; then
                        echo "PENDING: no data yet (${missing# } not exported): $e"
                        pend=$((pend + 1))
                        continue
                fi
                fail "no data for dashboard query: $q (not in /metrics:${missing:- none})"
        done < <(dashboard_exprs)
        echo "dashboard: $n expressions returned data, $pend pending"

        # 3. the alert rules evaluate cleanly and none fires on a healthy run
        local rules
        wait_until 10 "the alert rules to have been evaluated" \
                bash -c "curl -fsS '$prom/api/v1/rules' | jq -e '[.data.groups[].rules[] | .lastEvaluation] | all(. != \"0001-01-01T00:00:00Z\")' >/dev/null"
        rules=$(curl -fsS "$prom/api/v1/rules")
        [[ $(jq '[.data.groups[].rules[]] | length' <<<"$rules") == 7 ]] ||
                fail "expected 7 alert rules loaded"
        jq -e 'all(.data.groups[].rules[]; .health == "ok")' <<<"$rules" >/dev/null ||
                fail "a rule does not evaluate: $(jq -c '[.data.groups[].rules[] | select(.health != "ok") | {name, lastError}]' <<<"$rules")"
        jq -e 'all(.data.groups[].rules[]; .state == "inactive")' <<<"$rules" >/dev/null ||
                fail "an alert is pending or firing on a healthy run: $(jq -c '[.data.groups[].rules[] | select(.state != "inactive") | .name]' <<<"$rules")"
        local a
        while IFS= read -r a; do
                [[ $(pq "$a" | jq -r .status) == success ]] || fail "alert expression fails: $a"
        done < <(alert_exprs)

        # 4. counters equal what the test produced
        expect() {
                local got
                got=$(pval "$1")
                [[ $got == "$2" ]] || fail "$1 = $got, expected $2"
                echo "ok: $1 = $2"
        }
        expect 'sum(encore_records_consumed_total{job="encore"})' $consumed
        expect 'encore_records_accepted_total{job="encore"}' $N_GOOD
        expect 'encore_records_dead_lettered_total{job="encore",reason="bad_magic"}' $N_RAW
        expect 'encore_records_dead_lettered_total{job="encore",reason="unknown_schema"}' $N_SCHEMA
        expect 'sum(encore_records_dead_lettered_total{job="encore"})' $((N_RAW + N_SCHEMA))
        expect 'encore_dead_letters_delivered_total{job="encore"}' $((N_RAW + N_SCHEMA))
        expect 'encore_records_applied_total{job="encore"} + scalar(sum(encore_buffered_events{job="encore"}))' $N_GOOD
        expect 'encore_late_records_total{job="encore"} - on() encore_records_dead_lettered_total{job="encore",reason="late"}' 0
        expect 'encore_delivery_errors_total{job="encore"}' 0
        expect 'encore_partitions_assigned{job="encore"}' 4
        expect 'count(encore_records_consumed_total{job="encore"})' 4
        # The engine's own statistics. encore-gen's event ids never repeat
        # and the state starts empty, so the id filter is complete from the
        # first event: every valid event gets one duplicate check (a copy
        # in the reorder buffer would be found before it), and the filter
        # answers each without loading the user. Then the only cache
        # lookups are the applied events' (timers fire from the cache's own
        # heap), and 300 users fit the 64 MiB cache: nothing is evicted, so
        # no user read ahead is wasted. No checkpoint was resumed.
        expect 'encore_dedup_checks_total{job="encore"}' $N_GOOD
        expect 'encore_dedup_checks_filtered_total{job="encore"}' $N_GOOD
        expect 'encore_cache_hits_total{job="encore"} + encore_cache_misses_total{job="encore"} - encore_records_applied_total{job="encore"}' 0
        expect 'encore_cache_evictions_total{job="encore"}' 0
        expect 'encore_cache_prefetch_wasted_users_total{job="encore"}' 0
        expect 'encore_idfilter_resumed_partitions_total{job="encore"}' 0
        # Checkpoints: at most one per commit (one with nothing to write is
        # skipped), at least one once records were consumed; the id
        # filter's bytes are a part of the checkpoint bytes.
        expect 'encore_checkpoints_total{job="encore"} >= bool 1' 1
        expect 'encore_checkpoints_total{job="encore"} <= bool encore_commits_total{job="encore"}' 1
        expect 'encore_checkpoint_idfilter_bytes_total{job="encore"} > bool 0' 1
        expect 'encore_checkpoint_idfilter_bytes_total{job="encore"} < bool encore_checkpoint_bytes_total{job="encore"}' 1
        local ver
        ver=$("$bin/encore" version | awk '{print $2}')
        expect "encore_build_info{job=\"encore\",version=\"$ver\"}" 1

        # The output topic, read independently, holds exactly the updates
        # the counters report, by signal and by cohort.
        timeout 60 "$bin/encore" tail --bootstrap "$bs" --topic rewards >"$t/rewards.jsonl"
        local total
        total=$(wc -l <"$t/rewards.jsonl")
        [[ $total -gt 0 ]] || fail "no reward updates on the output topic"
        expect 'encore_outputs_delivered_total{job="encore"}' "$total"
        expect 'sum(encore_reward_updates_total{job="encore"})' "$total"
        local key val
        while read -r val key; do
                expect "sum(encore_reward_updates_total{job=\"encore\",signal=\"$key\"})" "$val"
        done < <(jq -r .signal "$t/rewards.jsonl" | sort | uniq -c)
        while read -r val key; do
                [[ $key == null ]] && key=""
                expect "sum(encore_reward_updates_total{job=\"encore\",cohort=\"$key\"})" "$val"
        done < <(jq -r '.cohort // "null"' "$t/rewards.jsonl" | sort | uniq -c)
        # Final updates by signal and cohort are the units the histogram of
        # final values counts, and its _sum is theirs.
        local sig sum
        while read -r val sig key; do
                [[ $key == null ]] && key=""
                expect "sum(encore_reward_final_value_count{job=\"encore\",signal=\"$sig\",cohort=\"$key\"})" "$val"
                sum=$(jq -r --arg s "$sig" --arg c "$key" \
                        'select(.final and .signal == $s and (.cohort // "") == $c) | .value' \
                        "$t/rewards.jsonl" | awk '{t += $1} END {printf "%.6f", t}')
                got=$(pval "sum(encore_reward_final_value_sum{job=\"encore\",signal=\"$sig\",cohort=\"$key\"})")
                awk -v a="$got" -v b="$sum" 'BEGIN {d = a - b; exit !(d < 1e-6 && d > -1e-6)}' ||
                        fail "final value sum of $sig/$key: Prometheus $got, topic $sum"
        done < <(jq -r 'select(.final) | "\(.signal) \(.cohort // "null")"' "$t/rewards.jsonl" | sort | uniq -c)
        echo "ok: encore_reward_final_value count and sum equal the final updates on the topic, by signal and cohort"

        # 5. logs: one key=value line per event; debug shows each dead letter
        local badline
        badline=$(grep -vE '^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z level=(debug|info|warn|error) event=[a-z0-9_]+( [a-z_.]+=.*)?$' \
                "$t/encore.log" | head -1 || true)
        [[ -z $badline ]] || fail "log line not in key=value form: $badline"
        [[ $(grep -c 'event=dead_letter reason=bad_magic ' "$t/encore.log") == "$N_RAW" ]] ||
                fail "expected $N_RAW event=dead_letter reason=bad_magic lines at log.level=debug"
        [[ $(grep -c 'event=dead_letter reason=unknown_schema ' "$t/encore.log") == "$N_SCHEMA" ]] ||
                fail "expected $N_SCHEMA event=dead_letter reason=unknown_schema lines"
        wait "$quiet_pid" || fail "encore with log.level=warn exited non-zero: $(tail -3 "$t/quiet.log")"
        quiet_pid=""
        ! grep -qE 'level=(info|debug)' "$t/quiet.log" ||
                fail "log.level=warn still printed: $(grep -m1 -E 'level=(info|debug)' "$t/quiet.log")"
        echo "ok: logs are key=value lines; log.level=debug and warn honoured"

        # 6. a stopped encore drains cleanly and shows as up == 0, which is
        # what EncoreProcessDown fires on
        kill -TERM "$encore_pid"
        local rc=0
        wait "$encore_pid" || rc=$?
        encore_pid=""
        [[ $rc == 0 ]] || fail "encore exited $rc on SIGTERM: $(tail -3 "$t/encore.log")"
        grep -q 'event=pipeline_stop ' "$t/encore.log" || fail "no event=pipeline_stop log line"
        wait_until 10 "up == 0 after encore stopped" \
                pval_is 'up{job="encore"} == 0' 0
        echo "ok: stopped encore scrapes as up == 0"
        echo "PASS: live observability"
}

case $mode in
rules) mode_rules ;;
dashboard) mode_dashboard ;;
compose) mode_compose ;;
systemd) mode_systemd ;;
live) mode_live ;;
*) fail "unknown mode $mode" ;;
esac
