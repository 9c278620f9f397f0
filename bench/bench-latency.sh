#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-latency — how long an abandonment takes, from the moment the
# processor finds the session abandoned (its partition's watermark passed
# the session's deadline) to the row being visible in PostgreSQL (its flush
# committed) and to the record being acknowledged on cart-abandonments (the
# producer's delivery report), at a steady input rate.
#
#   bench/bench-latency.sh              (or `meson test --benchmark latency`)
#   RATE=50000 WARMUP=15 DURATION=60 USERS=200000 bench/bench-latency.sh
#   CARTWATCH_KEEP_BENCH_DIR=1: keep the work dir (logs, PostgreSQL's data)
#   BROKER=real bench/bench-latency.sh          (Apache Kafka, tests/kafka)
#   FLUSH_INTERVAL=500ms bench/bench-latency.sh (default: the processor's own)
#
# One broker and one throwaway PostgreSQL (tests/pg). cartwatch-processor
# runs with its defaults (flush interval 1 s, session timeout 30 min) and
# --metrics-addr. cartwatch-producer simulates USERS shoppers and is held to
# RATE events per wall second (--rate); its simulation runs at
# --time-scale TIME_SCALE (default 300), faster than the cap, so the cap
# sets the pace and simulated time runs slower than TIME_SCALE (a
# session closes a few wall seconds after its last event; about a quarter
# of the events end in an abandonment). Events start two days in the past, so none is ahead
# of the wall clock.
#
# The figures come from the processor's own histograms on /metrics,
# cartwatch_abandonment_commit_latency_seconds and
# cartwatch_abandonment_publish_latency_seconds, read once after WARMUP
# seconds of input and again DURATION seconds later: p50 and p99 of the
# difference, interpolated linearly inside a bucket as Prometheus's
# histogram_quantile() does (the buckets are 0.1-0.2 s wide between 0.2 and
# 1.5 s, so that is the resolution). The window also has to show the input
# rate reached the processor (events consumed per second within 5% of
# RATE), that it kept up (lag at the end below two seconds of input) and
# that no record was lost (no offset gap), or the run fails.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
rate=${RATE:-50000}
warmup=${WARMUP:-30}
duration=${DURATION:-60}
users=${USERS:-1200000}
time_scale=${TIME_SCALE:-300}
broker=${BROKER:-embedded}
partitions=${PARTITIONS:-8}
flush_args=()
[ -n "${FLUSH_INTERVAL:-}" ] && flush_args=(--flush-interval "$FLUSH_INTERVAL")

bench_start prod_pid proc_pid broker_pid

need curl curl
need_built "$producer" "$processor"

# ---- servers ----------------------------------------------------------------
start_pg
# The embedded broker (the mock cluster) keeps 5 MB per partition: older
# records go, which is harmless while the processor keeps up (checked: no
# offset gap).
start_broker "cart-events:$partitions" cart-abandonments:4 cart-events-dlq:1

# ---- processor ----------------------------------------------------------------
port=$(free_port)
url=http://127.0.0.1:$port
"$processor" -b "$bs" --metrics-addr "127.0.0.1:$port" "${flush_args[@]}" \
	--instance bench-latency 2>"$work/processor.log" &
proc_pid=$!
consuming() { http_ok "$url/readyz" && grep -q 'msg="partition assigned"' "$work/processor.log"; }
wait_until -p "$proc_pid" "$work/processor.log" processor 120 0.1 \
	"processor not consuming within 120 s" consuming

# ---- steady input ---------------------------------------------------------------
total_s=$((warmup + duration + 5)) # stops after the measurement window
"$producer" -b "$bs" --rate "$rate" --users "$users" --time-scale "$time_scale" \
	--start-time "$(date -u -d '-2 days' +%Y-%m-%dT%H:%M:%SZ)" --duration 0 \
	--events $((rate * total_s)) --seed 1 2>"$work/producer.log" &
prod_pid=$!

scrape() { # FILE
	curl -fsS "$url/metrics" >"$1" || die "GET /metrics failed"
}
sample() { # FILE NAME
	awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' "$1"
}
lag() { # FILE: summed over the partitions
	awk '/^cartwatch_partition_lag_messages\{/ { s += $2 } END { print s + 0 }' "$1"
}
sleep "$warmup"
kill -0 "$prod_pid" 2>/dev/null || { tail "$work/producer.log" >&2; die "producer exited during the warm-up"; }
t0=$EPOCHREALTIME
scrape "$work/m0"
cpu_p0=$(cpu_of "$proc_pid") cpu_pg0=$(pg_cpu_now)
cpu_o0="$(cpu_of "$prod_pid") $(cpu_of "${broker_pid:-0}") $(machine_cpu_now)"
sleep "$duration"
t1=$EPOCHREALTIME
scrape "$work/m1"
cpu_p1=$(cpu_of "$proc_pid") cpu_pg1=$(pg_cpu_now)
cpu_o1="$(cpu_of "$prod_pid") $(cpu_of "${broker_pid:-0}") $(machine_cpu_now)"
kill -0 "$prod_pid" 2>/dev/null || { tail "$work/producer.log" >&2; die "producer exited before the window ended"; }
wait "$prod_pid" || { tail "$work/producer.log" >&2; die "producer failed"; }
prod_pid=

# ---- figures ----------------------------------------------------------------------
window=$(elapsed "$t0" "$t1")
events() { # FILE
	awk '/^cartwatch_events_consumed_total\{/ { s += $2 } END { print s + 0 }' "$1"
}
ev=$(($(events "$work/m1") - $(events "$work/m0")))
eps=$(eps "$ev" "$window")
end_lag=$(lag "$work/m1")
gaps=$(sample "$work/m1" cartwatch_offset_gaps_total)
flushes=$(($(sample "$work/m1" cartwatch_flush_duration_seconds_count) - $(sample "$work/m0" cartwatch_flush_duration_seconds_count)))
flush_mean=$(awk -v s0="$(sample "$work/m0" cartwatch_flush_duration_seconds_sum)" \
	-v s1="$(sample "$work/m1" cartwatch_flush_duration_seconds_sum)" -v n="$flushes" \
	'BEGIN { printf "%.3f", n ? (s1 - s0) / n : 0 }')

# quantiles NAME: "count p50 p99 mean" of the window's observations.
quantiles() {
	awk -v name="$1" -v m0="$work/m0" -v m1="$work/m1" '
	function grab(f, arr,    line, le) {
		while ((getline line < f) > 0) {
			if (index(line, name "_bucket{le=\"") == 1) {
				le = line; sub(/^[^"]*"/, "", le); sub(/".*/, "", le)
				split(line, parts, " ")
				if (!(le in arr)) order[++nb] = le
				arr[le] = parts[2]
			} else if (index(line, name "_sum ") == 1) {
				split(line, parts, " "); arr["sum"] = parts[2]
			}
		}
		close(f)
	}
	function q(p,    rank, i, prev_le, prev_c, c, le) {
		rank = p * total; prev_le = 0; prev_c = 0
		for (i = 1; i <= nb; i++) {
			le = order[i]; c = b[le] - a[le]
			if (c >= rank) {
				if (le == "+Inf") return ">" prev_le
				if (c == prev_c) return le
				return sprintf("%.3f", prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c))
			}
			prev_le = le; prev_c = c
		}
		return "?"
	}
	BEGIN {
		grab(m0, a); nb = 0; delete order; grab(m1, b)
		total = b["+Inf"] - a["+Inf"]
		if (total <= 0) { print 0, "-", "-", "-"; exit }
		printf "%d %s %s %.3f\n", total, q(0.5), q(0.99), (b["sum"] - a["sum"]) / total
	}'
}
read -r c_n c_p50 c_p99 c_mean <<<"$(quantiles cartwatch_abandonment_commit_latency_seconds)"
read -r p_n p_p50 p_p99 p_mean <<<"$(quantiles cartwatch_abandonment_publish_latency_seconds)"
read -r f_n f_p50 f_p99 f_mean <<<"$(quantiles cartwatch_flush_duration_seconds)"

echo "window: ${window} s after ${warmup} s of warm-up; input ${eps} events/s consumed (RATE=$rate), $ev events, $flushes flushes (mean $flush_mean s), lag at the end $end_lag messages, offset gaps $gaps"
echo "producer: $(grep -o 'events_per_s=[0-9]*' "$work/producer.log" | tail -n 1) over its whole run"
echo "RESULT commit  abandonments=$c_n p50=${c_p50}s p99=${c_p99}s mean=${c_mean}s (detection -> flush committed)"
echo "RESULT publish abandonments=$p_n p50=${p_p50}s p99=${p_p99}s mean=${p_mean}s (detection -> delivery report)"
echo "RESULT flush   flushes=$f_n p50=${f_p50}s p99=${f_p99}s mean=${f_mean}s (seal -> commit, the tail of the latency)"
# What the latency costs: CPU in the window, per 1M events consumed.
awk -v p0="$cpu_p0" -v p1="$cpu_p1" -v g0="$cpu_pg0" -v g1="$cpu_pg1" -v ev="$ev" 'BEGIN {
	printf "RESULT cpu     processor=%.1fs postgresql=%.1fs in the window; per 1M events: processor %.2f s, PostgreSQL %.2f s\n",
		p1 - p0, g1 - g0, ev ? (p1 - p0) * 1e6 / ev : 0, ev ? (g1 - g0) * 1e6 / ev : 0 }'
# And how much CPU was left: the latency's tail is queueing when the
# machine is near saturation (bench/README "abandonment latency").
awk -v a="$cpu_o0" -v b="$cpu_o1" -v n="$(getconf _NPROCESSORS_ONLN)" 'BEGIN {
	split(a, x, " "); split(b, y, " ")
	printf "RESULT machine busy %.0f%% of %d CPUs in the window; producer %.1fs, embedded broker %.1fs\n",
		(y[4] > x[4] ? 100 * (y[3] - x[3]) / (y[4] - x[4]) : 0), n, y[1] - x[1], y[2] - x[2] }'

# The run proves something only if the input held and the processor kept up.
awk -v e="$eps" -v r="$rate" 'BEGIN { exit !(e >= 0.95 * r) }' ||
	die "the processor consumed $eps events/s, not ~$rate: the producer or the processor did not keep the pace"
[ "$end_lag" -le $((2 * rate)) ] || die "lag $end_lag messages at the end: the processor did not keep up"
[ "$gaps" = 0 ] || die "records lost to the broker's retention ($gaps offset gaps)"
[ "$c_n" -gt 0 ] && [ "$p_n" -gt 0 ] || die "no abandonment in the window"

stop_proc proc_pid processor
