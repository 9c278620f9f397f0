#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-clock.sh — one bad clock must not close every cart (issue 9), on a
# real PostgreSQL and the broker run-with-servers started:
#  1. 200 shoppers add a product (event times a minute ago, 30-minute
#     sessions), then ONE event stamped in year 9999 arrives through the
#     JSON feeder: it is dead-lettered with its time and the bound in
#     headers and counted; no session closes, every watermark stays near
#     the wall clock.
#  2. A partition poisoned by an earlier version (its watermark set to
#     year 9999 in cw_partitions) is reported at start and held, and a
#     restart with --repair-future-watermarks sets it back without losing
#     a committed result.
#  3. Simulated traffic is never refused: --rate 0 over 48 simulated
#     hours (a backfill that ends now), and --time-scale 3600 running
#     hours ahead of the wall clock with a processor at --time-scale 3600;
#  4. and a restart after it holds no partition (their watermarks were
#     written by a processor that checks, migration 007).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=${CARTWATCH_TEST_DIR:?run through run-with-servers}
bs=${CARTWATCH_BOOTSTRAP_SERVERS:?}
producer=${CARTWATCH_PRODUCER:?}
processor=${CARTWATCH_PROCESSOR:?}
wrap=${CARTWATCH_TEST_WRAPPER:-}
port=$("$src/tests/lib/free-port")
url=http://127.0.0.1:$port
test_name=test-clock
pid=
check_alive() {
	[ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/proc.log" >&2; fail "processor died"; }
}
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"

start_processor() { # EXTRA ARGS...
	# shellcheck disable=SC2086
	$wrap "$processor" --session-timeout 30m --idle-timeout 1s \
		--flush-interval 200ms --metrics-addr "127.0.0.1:$port" \
		--instance clock -X session.timeout.ms=6000 \
		-X heartbeat.interval.ms=500 "$@" >>"$work/proc.log" 2>&1 &
	pid=$!
	wait_until 60 "/healthz 200" http_status_is /healthz 200
}
stop_processor() {
	local rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	pid=
	[ $rc = 0 ] || { tail -n 30 "$work/proc.log" >&2; fail "processor exited with $rc after SIGTERM"; }
}
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; true' EXIT

feed() { "$producer" -b "$bs" --stdin-json --strict --max-clock-skew 0 2>>"$work/producer.log" ||
	fail "the JSON feeder failed: $(tail -n 3 "$work/producer.log")"; }

# 1. 200 live sessions, then year 9999.
start_processor
now=$(date +%s%3N)
for i in $(seq 1 200); do
	printf '{"user_id":"shopper_%d","event_type":"cart_add","product_id":"P%d","unit_price_cents":1500,"event_time":%d}\n' \
		"$i" $((i % 7)) $((now - 60000))
done | feed
wait_until 60 "200 events committed" committed_is 200
wait_until 10 "200 open sessions" metric_is cartwatch_open_sessions 200
echo '{"user_id":"user_bad_clock","event_type":"cart_add","product_id":"P1","unit_price_cents":1500,"event_time":253402300799000}' | feed
wait_until 60 "the year-9999 event consumed" committed_is 201
[ "$(metric cartwatch_events_ahead_total)" = 1 ] || fail "events_ahead_total is $(metric cartwatch_events_ahead_total), want 1"
[ "$(metric cartwatch_open_sessions)" = 200 ] || fail "open sessions $(metric cartwatch_open_sessions), want 200"
[ "$(sql "SELECT count(*) FROM cart_abandonments")" = 0 ] || fail "sessions were abandoned early"
far=$(sql "SELECT count(*) FROM cw_partitions WHERE watermark_ms > $(date +%s%3N) + 3600000")
[ "$far" = 0 ] || fail "$far partition watermarks jumped ahead"
wait_until 30 "the dead letter" bash -c "kcat -C -b '$bs' -t cart-events-dlq -e -q -f '%h\n' | grep -q cartwatch.error="
dlq=$(kcat -C -b "$bs" -t cart-events-dlq -e -q -f '%h\n')
[ "$(grep -c 'cartwatch.error=' <<<"$dlq")" = 1 ] || fail "want exactly one dead letter, got: $dlq"
grep -q 'cartwatch.event_time=253402300799000' <<<"$dlq" || fail "dead letter lacks the event time: $dlq"
grep -q 'cartwatch.bound=' <<<"$dlq" || fail "dead letter lacks the bound: $dlq"
grep -q 'is ahead of the bound' <<<"$dlq" || fail "dead letter does not say why: $dlq"
log "year 9999: one dead letter with time and bound, 200 sessions open, no abandonment"
stop_processor

# 2. A partition poisoned before the bound existed.
abandoned=$(sql "SELECT count(*) FROM cart_abandonments")
victim=$(sql "SELECT partition FROM cw_partitions ORDER BY next_offset DESC LIMIT 1")
# What a processor before migration 007 left: an unchecked watermark.
sql "UPDATE cw_partitions SET watermark_ms = 253402300799000, watermark_checked = false WHERE partition = $victim"
start_processor
wait_until 30 "the poisoned partition reported" grep -q "partition watermark is beyond --max-clock-skew" "$work/proc.log"
wait_until 10 "the gauge" metric_is cartwatch_partitions_watermark_ahead 1
grep "partition watermark is beyond" "$work/proc.log" | grep -q -- "--repair-future-watermarks" || fail "the report does not say what to do"
# The other partitions' idle watermarks move (idle timeout 1 s): once
# they have, the held one must not have.
others=$(sql "SELECT sum(watermark_ms / 1000) FROM cw_partitions WHERE partition <> $victim")
wait_until 30 "idle watermarks of the other partitions moving" sql_is "SELECT sum(watermark_ms / 1000) > $others FROM cw_partitions WHERE partition <> $victim" t
[ "$(sql "SELECT watermark_ms FROM cw_partitions WHERE partition = $victim")" = 253402300799000 ] || fail "held partition changed"
[ "$(sql "SELECT count(*) FROM cart_abandonments")" = "$abandoned" ] || fail "held partition closed sessions"
stop_processor
start_processor --repair-future-watermarks
wait_until 30 "the repair" grep -q "partition watermark repaired" "$work/proc.log"
wait_until 30 "the repaired watermark committed" sql_is "SELECT watermark_ms < $(($(date +%s%3N) + 3600000)) FROM cw_partitions WHERE partition = $victim" t
[ "$(metric cartwatch_partitions_watermark_ahead)" = 0 ] || fail "gauge still set after repair"
[ "$(sql "SELECT count(*) FROM cart_abandonments")" = "$abandoned" ] || fail "the repair lost or added abandonments"
stop_processor
log "poisoned partition $victim: reported and held, then repaired; $abandoned abandonments kept"

# 3. Simulations are not refused, given the processor the simulator's
#    --time-scale (as the option's help says).
start_processor --time-scale 3600
"$producer" -b "$bs" --users 500 --events 5000 --rate 0 --duration 48h \
	--seed 3 >/dev/null 2>>"$work/producer.log" || fail "producer --rate 0 failed"
"$producer" -b "$bs" --users 500 --events 5000 --rate 5000 --time-scale 3600 \
	--seed 4 >/dev/null 2>>"$work/producer.log" || fail "producer --time-scale 3600 failed"
wait_until 120 "the simulated events committed" committed_is 10201
# (This processor started after the year-9999 record: its counters are 0.)
[ "$(metric cartwatch_events_ahead_total)" = 0 ] || fail "simulated traffic was refused as ahead: $(metric cartwatch_events_ahead_total)"
[ "$(metric cartwatch_dead_letter_records_total)" = 0 ] || fail "simulated traffic was dead-lettered: $(metric cartwatch_dead_letter_records_total)"
far=$(sql "SELECT max(watermark_ms) - $(date +%s%3N) FROM cw_partitions")
log "simulations at --rate 0 (48 h) and --time-scale 3600 (watermarks up to $((far / 60000)) min ahead): nothing refused"

stop_processor

# 4. Watermarks a checking processor wrote are trusted after a restart,
#    however far ahead a simulation took them (here with the default
#    --time-scale 1, whose bound they are far beyond).
reported=$(grep -c "partition watermark is beyond" "$work/proc.log")
assigned=$(grep -c "partition assigned" "$work/proc.log")
start_processor
wait_until 30 "partitions assigned again" bash -c "[ \$(grep -c 'partition assigned' '$work/proc.log') -ge $((assigned + 4)) ]"
[ "$(grep -c "partition watermark is beyond" "$work/proc.log")" = "$reported" ] || fail "a simulation's watermark was taken for poison"
[ "$(metric cartwatch_partitions_watermark_ahead)" = 0 ] || fail "partitions held after a simulation"
stop_processor
log "restart after the simulation: no partition held"
log "PASS"
