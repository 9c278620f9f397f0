#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-restart — how long a restarted processor takes to consume again
# when its partitions' resume state holds CARTS open carts.
#
#   bench/bench-restart.sh               (or `meson test --benchmark restart`)
#   CARTS=1000000 PARTITIONS=34 bench/bench-restart.sh
#   BROKER=real bench/bench-restart.sh   (Apache Kafka, tests/kafka)
#   PROFILE=perf bench/bench-restart.sh  (the restarted processor under
#                                        perf record: top symbols; slower)
#   PROFILE=callgrind bench/bench-restart.sh (under callgrind: instructions
#                                        by function, exec to exit; ~50x
#                                        slower, but the same count on a
#                                        busy machine)
#
# One broker and one throwaway PostgreSQL (tests/pg).
#  1. CARTS users each add one item (cartwatch-producer --stdin-json, event
#     time now); a processor with --session-timeout 24h (no cart closes)
#     consumes them and flushes their resume state; it is stopped with
#     SIGTERM (final flush) once PostgreSQL holds every offset.
#  2. NEW more events (of new users, one per partition at least) are
#     produced while no processor runs.
#  3. The processor is exec'd again and timed, from exec to:
#       ready      /readyz answers 200 (polled every 20 ms);
#       assigned   its last "partition assigned" log line (each gives the
#                  partition's restore_ms: claim, state load, user table);
#       first      cartwatch_events_consumed_total moves (the first new
#                  record is processed);
#       all        it has processed all NEW (every partition consumes);
#     and it must show CARTS open carts (the state came back). /readyz
#     does not wait for partitions: it says the loop runs, Kafka and
#     PostgreSQL answer; "first" is the figure that matters.
# The time is split from the log: exec -> "processor started", -> first
# "partition claimed" (the group join, the broker's part), -> last
# "partition assigned" (the restores, in the rebalance callback), -> first
# new record. The restore cost is also given per partition (sum and max of
# restore_ms) and as the PostgreSQL bytes of the state chunks.
#
# The embedded broker (librdkafka's mock cluster) keeps at most 5 MB per
# partition, so it gets a partition per 30k carts (at least 4), as
# bench-processor does; the script checks nothing was lost (offsets).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
carts=${CARTS:-1000000}
broker=${BROKER:-embedded}
partitions=$(topic_partitions "$carts" 12)
new=${NEW:-$((partitions * 100))}

bench_start proc_pid broker_pid

need curl curl
need kcat kcat
need_built "$producer" "$processor"

# ---- servers ----------------------------------------------------------------
start_pg
start_broker "cart-events:$partitions" cart-abandonments:4 cart-events-dlq:1

# -1: high watermarks, -2: log starts
topic_offsets() { offsets_sum cart-events "$partitions" "$1"; }
# USERS PREFIX: one cart_add per user, products in turn, event time now.
feed() {
	awk -v n="$1" -v pfx="$2" 'BEGIN {
		split("ECHO_POP ECHO_DOT_5TH_GEN MACBOOK_PRO_2023", p, " ")
		for (i = 1; i <= n; i++)
			printf "{\"user_id\":\"%s%07d\",\"product_id\":\"%s\",\"event_type\":\"cart_add\"}\n", pfx, i, p[i % 3 + 1]
	}' | "$producer" -b "$bs" --stdin-json --strict --log-level warn 2>>"$work/producer.log" ||
		{ tail "$work/producer.log" >&2; die "producer failed"; }
}
port=$(free_port)
url=http://127.0.0.1:$port
proc_args=(-b "$bs" --metrics-addr "127.0.0.1:$port" --session-timeout 24h
	--instance bench-restart)
# The restarted processor joins a new consumer group unless
# RESTART_GROUP=same: offsets and state come from PostgreSQL, so the group
# only decides who gets which partition, and librdkafka 2.0.2's mock
# cluster makes a member joining right after the last one left wait the
# whole group session timeout (45 s; it starts a rebalance on the leave
# and only ends it on that timer), which a real broker does not.
restart_group=bench-restart-$$
[ "${RESTART_GROUP:-new}" = same ] && restart_group=cartwatch
metric() { { curl -fsS "$url/metrics" 2>/dev/null || true; } | awk -v k="$1" '$1 == k { print $2 }'; }
committed() { psql -XAtq -c "SELECT coalesce(sum(next_offset), 0) FROM cw_partitions"; }
stop_processor() {
	# perf record ends with its workload's signal.
	if [ "${PROFILE:-none}" = none ]; then stop_proc proc_pid processor; else stop_proc proc_pid processor '*'; fi
}

# ---- 1. the state ---------------------------------------------------------------
echo "filling: $carts users with one item each, $partitions partitions, $broker broker"
t=$EPOCHREALTIME
feed "$carts" c
[ "$(topic_offsets -1)" = "$carts" ] || die "$(topic_offsets -1) events on the broker, want $carts"
[ "$(topic_offsets -2)" = 0 ] || die "the broker dropped events: use more PARTITIONS"
"$processor" "${proc_args[@]}" 2>"$work/processor-1.log" &
proc_pid=$!
all_committed() { [ "$(committed 2>/dev/null || echo 0)" = "$carts" ]; }
wait_until -p "$proc_pid" "$work/processor-1.log" processor 600 0.5 \
	"the processor did not commit $carts events in 600 s" all_committed
open=$(metric cartwatch_open_carts)
[ "$open" = "$carts" ] || die "the processor holds $open open carts, want $carts"
stop_processor
read -r chunks records state_bytes <<<"$(psql -XAtq -F ' ' -c \
	"SELECT count(*), coalesce(sum(users), 0), coalesce(sum(octet_length(chunk)), 0) FROM cw_state_chunks")"
echo "  state written in $(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s: $chunks state chunks, $records records, $state_bytes bytes"

# ---- 2. new records while it is down ------------------------------------------------
feed "$new" n
[ "$(topic_offsets -1)" = $((carts + new)) ] || die "new events not on the broker"

# ---- 3. restart -------------------------------------------------------------------
# CPU seconds (user + system) of this PostgreSQL: the postmaster and its
# live backends (of the processor: cpu_of, under PROFILE=perf perf's).
pg_cpu() {
	local pm s=0 c
	pm=$(postmaster_pid)
	for c in "$pm" $(ps -o pid= --ppid "$pm"); do s=$(awk -v a="$s" -v b="$(cpu_of "$c")" 'BEGIN {print a + b}'); done
	echo "$s"
}
wrap=()
[ "${PROFILE:-none}" = perf ] && wrap=(perf record -q -e cpu-clock -F 2000 -g -o "$work/perf.data" --)
[ "${PROFILE:-none}" = callgrind ] && wrap=(valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" --)
log2=$work/processor-2.log
pg0=$(pg_cpu)
t0=$EPOCHREALTIME
"${wrap[@]}" "$processor" "${proc_args[@]}" --group "$restart_group" 2>"$log2" &
proc_pid=$!
t_ready= t_first= t_all=
deadline=$((SECONDS + 300))
while [ -z "$t_all" ]; do
	kill -0 "$proc_pid" 2>/dev/null || { tail "$log2" >&2; die "processor exited"; }
	[ $SECONDS -lt $deadline ] || die "not consuming 300 s after exec"
	now=$EPOCHREALTIME
	[ -z "$t_ready" ] && http_ok "$url/readyz" && t_ready=$now
	adds=$(metric 'cartwatch_events_consumed_total{type="cart_add"}')
	adds=${adds:-0}
	if [ -z "$t_first" ] && [ "$adds" -ge 1 ]; then
		t_first=$now
		cpu_first=$(cpu_of "$proc_pid")
		pg_first=$(awk -v a="$pg0" -v b="$(pg_cpu)" 'BEGIN {printf "%.2f", b - a}')
	fi
	[ "$adds" -ge "$new" ] && t_all=$now
	sleep 0.02
done
[ -n "$t_ready" ] || t_ready=$t_all
open=$(metric cartwatch_open_carts)
[ "$open" = $((carts + new)) ] || die "after the restart: $open open carts, want $((carts + new))"

t_started=$(log_epoch "$log2" "processor started")
t_claim1=$(log_epoch "$log2" "partition claimed")
t_assigned=$(log_epoch "$log2" "partition assigned" last)
restore=$(grep 'msg="partition assigned"' "$log2" |
	sed -n 's/.* restore_ms=\([0-9]*\).*/\1/p' |
	awk '{s += $1; if ($1 > m) m = $1; n++} END {printf "%d partitions, restore_ms sum %d, max %d", n, s, m}')
users=$(grep 'msg="partition assigned"' "$log2" |
	sed -n 's/.* users=\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
[ "$users" = "$carts" ] || die "the partitions restored $users users, want $carts"

echo "restart with $carts open carts ($users users restored; $restore)"
echo "  exec -> 'processor started' (options, schema check, Kafka clients): $(elapsed "$t0" "$t_started") s"
echo "  'processor started' -> first partition claimed (the group join; the broker decides): $(elapsed "$t_started" "$t_claim1") s"
echo "  first partition claimed -> last partition assigned (claims, state loads, user tables): $(elapsed "$t_claim1" "$t_assigned") s"
echo "  last partition assigned -> first new record processed: $(elapsed "$t_assigned" "$t_first") s (metrics polled every 20 ms)"
echo "  CPU time from exec to the first new record: processor $cpu_first s, PostgreSQL $pg_first s (on $(nproc) CPUs; the wall times above include waiting for a CPU)"
echo "RESULT restart carts=$carts partitions=$partitions broker=$broker group=${RESTART_GROUP:-new} ready=$(elapsed "$t0" "$t_ready")s first_record=$(elapsed "$t0" "$t_first")s all_partitions=$(elapsed "$t0" "$t_all")s (from exec); without the group join $(awk -v a="$t_started" -v b="$t_claim1" -v f="$(elapsed "$t0" "$t_first")" 'BEGIN {printf "%.3f", f - (b - a)}')s"
stop_processor
if [ "${PROFILE:-none}" = perf ]; then
	echo "PROFILE perf cpu-clock, the restarted processor from exec to its exit: top symbols (self)"
	perf report -i "$work/perf.data" --no-children --stdio --sort dso,sym 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 25 || true
fi
if [ "${PROFILE:-none}" = callgrind ]; then
	echo "PROFILE callgrind, the restarted processor from exec to its exit: instructions (Ir) by function (self)"
	callgrind_annotate "$work/callgrind.out" 2>/dev/null | grep -E 'PROGRAM TOTALS|^ *[0-9,]+ \(' | head -n 20 || true
fi
