#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-e2e.sh MODE — generated events → Kafka → cartwatch-processor →
# PostgreSQL, compared with oracle.py's independent expectation.
#   plain      one processor, uninterrupted
#   crash      kill -9 the processor several times mid-run, restart it
#   rebalance  a second processor joins mid-run and later leaves
#   dlq        garbage and foreign-fingerprint records among the events
#   pgrestart  PostgreSQL is stopped and restarted mid-run
#   kafkadown  the (embedded) brokers go down for longer than the idle
#              timeout mid-run and come back (fault injection)
#   pgrewind   PostgreSQL (synchronous_commit=off, see tests/pg/pg-start)
#              is stopped with -m immediate mid-run and restarted: it lost
#              commits the processor was told about; the processor must
#              notice and replay them
#   pgpermanent  PostgreSQL refuses one user's abandonments for good (a
#              CHECK constraint, SQLSTATE 23514): only that partition is
#              quarantined, the others finish; once the constraint is
#              dropped, a restart takes it again and finishes too
#   dlqfail    as dlq, with the (embedded) broker failing the first
#              produce requests twice: of a processor that has read only
#              the bad records (its dead letters), then of a restarted one
#              that reads the traffic (its abandonments); both must be
#              produced again, not lost
#   gap        (embedded) records the processor has not read leave the log
#              (the broker trims it) while it is stopped: the gap must be
#              detected, counted and shown, and consumption go on (no
#              oracle comparison: records are lost by design)
#   pgdown-take  as pgdown-rebalance with max.poll.interval.ms=6000: the
#              processor left with the partitions cannot claim them for 3 s
#              and must exit with a clear error rather than block in the
#              rebalance callback; restarted, it finishes the work
#   revoke     INSERT on the output tables is revoked from the processor's
#              role for longer than the idle timeout mid-run, then granted
#              again (consumption pauses; idle watermarks must hold)
#   diskfull   the output tables live in a tablespace on a small tmpfs
#              that fills up mid-run for 30 s (SQLSTATE 53100, "No space
#              left on device"); consumption pauses, idle watermarks hold,
#              and everything is written once space is back (needs root,
#              to mount the tmpfs)
#   commitlost the processor reaches PostgreSQL through tests/e2e/pgproxy.py,
#              which loses the answers to three COMMITs mid-run (two had
#              landed, one was never sent), a second processor joining
#              right after the third: each in-doubt flush is resolved,
#              none lost, none applied twice
#   pgdown-rebalance  PostgreSQL is stopped while a second processor has
#              joined; it leaves during the outage, PostgreSQL comes back:
#              no partition may stay paused
# Runs under tests/run-with-servers --pg --kafka ...; needs
# CARTWATCH_PRODUCER and CARTWATCH_PROCESSOR (set by meson).
set -euo pipefail

mode=${1:?usage: test-e2e.sh plain|crash|rebalance|dlq|dlqfail|gap|pgrestart|kafkadown|pgrewind|pgpermanent|revoke|diskfull|commitlost|pgdown-rebalance|pgdown-take}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=${CARTWATCH_TEST_DIR:?run through run-with-servers}
bs=${CARTWATCH_BOOTSTRAP_SERVERS:?}
producer=${CARTWATCH_PRODUCER:?}
processor=${CARTWATCH_PROCESSOR:?}
wrap=${CARTWATCH_TEST_WRAPPER:-}
events=${CARTWATCH_E2E_EVENTS:-60000}
# pgrewind waits out a long idle timeout at the end: fewer events.
[ "$mode" = pgrewind ] && events=${CARTWATCH_E2E_EVENTS:-30000}
[ "$mode" = gap ] && events=5000

# Short timeouts so a test hour closes quickly; the watermark then runs at
# 1e6x once a partition is idle, closing every session, cart and window.
session_ms=600000 ttl_ms=7200000 window_ms=3600000
proc_args=(--session-timeout 10m --cart-ttl 2h --recovery-window 1h
	--allowed-lateness 5s --idle-timeout 1s --time-scale 1000000
	--flush-interval 200ms --log-level info --max-cart-items 20
	# A killed member leaves the group after its session timeout: keep it
	# at the broker's minimum so restarts and rebalances are quick.
	-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)

test_name="test-e2e($mode)"
check_alive() {
	for n in "${!procs[@]}"; do
		kill -0 "${procs[$n]}" 2>/dev/null || { tail -n 20 "$work/proc-$n.log" >&2; fail "processor $n died"; }
	done
}
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"

declare -A procs=()
start_processor() { # NAME
	# shellcheck disable=SC2086
	$wrap "$processor" "${proc_args[@]}" --instance "$1" >>"$work/proc-$1.log" 2>&1 &
	procs[$1]=$!
	log "processor $1 started (pid ${procs[$1]})"
}
stop_processor() { # NAME [SIGNAL [GAVE_UP_LINE]]
	local pid=${procs[$1]} rc=0
	kill -"${2:-TERM}" "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || rc=$?
	unset "procs[$1]"
	# A clean stop must exit 0: sanitizer and valgrind findings (leaks at
	# exit included) turn into a non-zero status. With GAVE_UP_LINE, the
	# processor may also have given up on its own before the signal:
	# status 1 with that line in its log.
	if [ "${2:-TERM}" = TERM ] && [ $rc != 0 ]; then
		if [ -n "${3:-}" ] && [ $rc = 1 ] && grep -q "$3" "$work/proc-$1.log"; then
			log "processor $1 had given up: $3"
			return
		fi
		tail -n 30 "$work/proc-$1.log" >&2
		fail "processor $1 exited with status $rc after SIGTERM"
	fi
}
small_disk= proxy_pid=
cleanup() {
	[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
	for n in "${!procs[@]}"; do kill -9 "${procs[$n]}" 2>/dev/null || true; done
	[ -n "$producer_pid" ] && kill "$producer_pid" 2>/dev/null
	# PostgreSQL may still hold files on it: detach it now, the kernel
	# frees it when they are closed.
	[ -n "$small_disk" ] && umount -l "$small_disk" 2>/dev/null
	return 0
}
trap cleanup EXIT

# 1. Events into Kafka. For most modes all of them go in before processing
#    starts. crash and rebalance need the processors to work while events
#    still arrive, so the producer runs alongside at a steady rate; the idle
#    timeout is then longer than any gap between a partition's events, so
#    the idle watermark never runs ahead of events still coming.
producer_args=(-b "$bs" --events "$events" --seed 7 --users 3000
	--start-time 2026-07-08T00:00:00Z --summary-json "$work/summary.json")
producer_pid=
bad_records() {
	# Garbage, an unknown fingerprint, and an event without product id.
	printf 'not avro at all' | kcat -P -b "$bs" -t cart-events -k user_1
	printf '\xc3\x01\x01\x02\x03\x04\x05\x06\x07\x08rest' | kcat -P -b "$bs" -t cart-events -k user_2
	printf '\xc3\x01' | kcat -P -b "$bs" -t cart-events -k user_3
}
# dlqfail: the dead letters are the processor's first records to produce,
# alone (the simulated traffic goes in once they are delivered).
[ "$mode" = dlqfail ] && bad_records
case $mode in
dlqfail) ;;
crash|rebalance|pgrestart|kafkadown|pgrewind|revoke|diskfull|commitlost|pgdown-rebalance|pgdown-take)
	proc_args+=(--idle-timeout 3s)
	"$producer" "${producer_args[@]}" --rate "${CARTWATCH_E2E_RATE:-2500}" \
		--time-scale 1000000 >/dev/null 2>"$work/producer.log" &
	producer_pid=$!
	;;
*)
	"$producer" "${producer_args[@]}" --rate 0 >/dev/null 2>"$work/producer.log" ||
		{ cat "$work/producer.log" >&2; fail "producer failed"; }
	;;
esac
total=$events
producer_done() {
	[ -z "$producer_pid" ] && return 0
	kill -0 "$producer_pid" 2>/dev/null && return 1
	wait "$producer_pid" || { cat "$work/producer.log" >&2; fail "producer failed"; }
	producer_pid=
}
[ "$mode" = dlq ] && bad_records
hostile=0
if [ "$mode" = dlq ]; then
	# Hostile records (tests/e2e/hostile.py), after the simulated traffic:
	# each refused with its reason; bots accepted up to the limits.
	hostile=$("$here/hostile.py" "$work/hostile")
	kcat -P -b "$bs" -t cart-events -K '%%CW-KEY%%' -D $'\n%%CW-END%%\n' <"$work/hostile/keyed.bin"
	kcat -P -b "$bs" -t cart-events "$work/hostile/nokey.val"
fi
case $mode in dlq|dlqfail) total=$((events + 3 + hostile)) ;; esac

# Done when every event is consumed and committed, every watermark is past
# every deadline (so no user state is left) and the last flush landed.
done_cond() {
	producer_done || return 1
	[ "$(committed)" = "$total" ] || return 1
	[ "$(sql "SELECT count(*) FROM cw_state_chunks")" = 0 ] || return 1
	local max_ev
	max_ev=$(sql "SELECT coalesce(min(watermark_ms), 0) FROM cw_partitions")
	[ "$max_ev" -gt $((1783468800000 + 86400000)) ]
}

case $mode in
plain|dlq|dlqfail)
	port=$("$src/tests/lib/free-port")
	proc_args+=(--metrics-addr "127.0.0.1:$port")
	url=http://127.0.0.1:$port
	p1_events=$total
	if [ "$mode" = dlqfail ]; then
		# The broker fails the next produce requests with a permanent
		# error, twice, each time with the processor its only producer,
		# so that whichever request comes first fails: first the dead
		# letters of a processor that has read nothing else; then, once
		# they are delivered (the faults used up), the simulated traffic
		# goes in and a restarted processor's abandonments fail.
		devbroker=${CARTWATCH_DEVBROKER_PID:?dlqfail needs the embedded broker}
		kill -HUP "$devbroker"
		wait_until 10 "the fault armed" grep -q "produce requests will fail" "$work/devbroker.log"
		start_processor p1
		wait_until 60 "a dead letter refused" grep -q "dead letter not delivered" "$work/proc-p1.log"
		dead_letters() { [ "$(kcat -C -b "$bs" -t cart-events-dlq -e -q -f '.\n' | wc -l)" = 3 ]; }
		wait_until 60 "the dead letters delivered" dead_letters
		wait_until 30 "their offsets committed" committed_is 3
		stop_processor p1
		"$producer" "${producer_args[@]}" --rate 0 >/dev/null 2>"$work/producer.log" ||
			{ cat "$work/producer.log" >&2; fail "producer failed"; }
		kill -HUP "$devbroker"
		armed_twice() { [ "$(grep -c "produce requests will fail" "$work/devbroker.log")" = 2 ]; }
		wait_until 10 "the fault armed again" armed_twice
		: >"$work/proc-p1.log"
		p1_events=$events
	fi
	start_processor p1
	wait_until 120 "all events processed" done_cond
	# The processor reports itself for dashboards.
	wait_until 10 "processor_status of p1" sql_is "SELECT events_total FROM processor_status WHERE instance = 'p1'" "$p1_events"
	[ "$(sql "SELECT count(*) > 0 FROM processor_status_history WHERE instance = 'p1'")" = t ] || fail "no processor_status_history"
	# Every abandonment in PostgreSQL was timed once from its detection
	# to its commit, and once to the broker's acknowledgement (dlqfail:
	# after its first produce failed).
	n_ab=$(sql "SELECT count(*) FROM cart_abandonments")
	[ "$n_ab" -gt 0 ] || fail "no abandonment in PostgreSQL"
	wait_until 10 "$n_ab commit latencies" metric_is cartwatch_abandonment_commit_latency_seconds_count "$n_ab"
	wait_until 30 "$n_ab publish latencies" metric_is cartwatch_abandonment_publish_latency_seconds_count "$n_ab"
	metric_is cartwatch_abandonments_total "$n_ab" || fail "cartwatch_abandonments_total is $(metric cartwatch_abandonments_total), not $n_ab"
	log "latency histograms: $n_ab abandonments; to commit sum $(metric cartwatch_abandonment_commit_latency_seconds_sum) s, to publish sum $(metric cartwatch_abandonment_publish_latency_seconds_sum) s"
	# Its carts at risk are written with the status row: their sessions
	# add up to its open_sessions, and no more carts than sessions.
	[ "$(sql "SELECT count(v.*) > 0 AND coalesce(sum(v.open_sessions), 0) = s.open_sessions
	          AND bool_and(v.open_carts BETWEEN 0 AND v.open_sessions AND v.open_value_cents >= 0)
	          FROM processor_status s LEFT JOIN processor_status_open_value v USING (instance)
	          WHERE instance = 'p1' GROUP BY s.open_sessions")" = t ] ||
		fail "processor_status_open_value of p1 does not add up to its open_sessions: $(sql "SELECT * FROM processor_status_open_value WHERE instance = 'p1'")"
	;;
crash)
	start_processor p1
	kills=0 last=0
	for round in 1 2 3; do
		# Kill once the restarted processor has committed new work.
		target=$((last + total / 10))
		wait_until 120 "offset $target committed" committed_at_least "$target"
		c=$(committed) last=$c
		stop_processor p1 KILL
		[ "$c" -lt "$total" ] && kills=$((kills + 1))
		log "killed -9 at $c/$total committed"
		start_processor p1
	done
	[ $kills -ge 2 ] || fail "only $kills kills happened mid-run; the test proved nothing"
	wait_until 180 "all events processed" done_cond
	;;
rebalance)
	start_processor p1
	wait_until 60 "a third committed" committed_at_least "$((total / 3))"
	start_processor p2
	wait_until 60 "p2 owns a partition" grep -q 'partition assigned' "$work/proc-p2.log"
	c=$(committed)
	log "p2 joined at $c/$total committed"
	wait_until 60 "p2 flushed" sql_is "SELECT count(*) >= 1 FROM cw_partitions WHERE owner = 'p2'" t
	stop_processor p2 TERM
	log "p2 left at $(committed)/$total committed"
	wait_until 180 "all events processed" done_cond
	grep -q "partition revoked" "$work/proc-p1.log" || fail "p1 never saw a rebalance"
	;;
pgrestart)
	port=$("$src/tests/lib/free-port")
	proc_args+=(--metrics-addr "127.0.0.1:$port")
	url=http://127.0.0.1:$port
	start_processor p1
	health() { curl -sS -o /dev/null -w '%{http_code}' "$url/healthz"; }
	wait_until 30 "/healthz 200" http_status_is /healthz 200
	adds0=$(metric 'cartwatch_events_consumed_total{type="cart_add"}')
	wait_until 60 "a third committed" committed_at_least "$((total / 3))"
	c=$(committed)
	"$src/tests/pg/pg-stop" "$work/pg"
	[ "$c" -lt "$total" ] || fail "PostgreSQL stopped only after all work was done; the test proved nothing"
	log "PostgreSQL stopped at $c/$total committed"
	wait_until 30 "the processor noticing" grep -q 'flush failed' "$work/proc-p1.log"
	wait_until 30 "/healthz 503" http_status_is /healthz 503
	healthz_says() { curl -sS "$url/healthz" | grep -q "$1"; }
	wait_until 30 "/healthz saying postgresql unreachable" healthz_says "postgresql unreachable"
	[ "$(metric cartwatch_flush_failures_total)" -ge 1 ] || fail "flush failures not counted in /metrics"
	log "/healthz: 503 ($(curl -sS "$url/healthz" | head -c 80))"
	runuser=()
	[ "$(id -u)" = 0 ] && runuser=(runuser -u postgres --)
	bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	"${runuser[@]}" "$bindir/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgres.log" -w start >/dev/null
	log "PostgreSQL restarted"
	wait_until 60 "consumption resuming" grep -q "consumption resumed" "$work/proc-p1.log"
	wait_until 30 "/healthz 200 again" http_status_is /healthz 200
	adds1=$(metric 'cartwatch_events_consumed_total{type="cart_add"}')
	[ "$adds1" -gt "${adds0:-0}" ] || fail "cart_add counter did not move ($adds0 -> $adds1)"
	log "/metrics: cart_add consumed $adds0 -> $adds1; /healthz back to 200"
	wait_until 180 "all events processed" done_cond
	;;
kafkadown)
	broker_pid=${CARTWATCH_DEVBROKER_PID:?kafkadown needs the embedded broker}
	start_processor p1
	wait_until 60 "a third committed" committed_at_least "$((total / 3))"
	c=$(committed)
	kill -USR1 "$broker_pid"
	[ "$c" -lt "$total" ] || fail "brokers went down only after all work was done"
	log "brokers down at $c/$total committed"
	wait_until 30 "the processor noticing" grep -q "Kafka unreachable" "$work/proc-p1.log"
	# The outage itself: longer than the idle timeout (3 s), so a
	# processor that took silence for idleness would close sessions early
	# and differ from the oracle.
	sleep 6
	kill -USR2 "$broker_pid"
	log "brokers up again"
	wait_until 60 "the processor reconnecting" grep -q "Kafka reachable again" "$work/proc-p1.log"
	wait_until 180 "all events processed" done_cond
	;;
pgrewind)
	# With synchronous_commit=off, COMMIT returns before its WAL is
	# written; a slow WAL writer makes an immediate stop lose the last
	# second of commits for certain.
	sql "ALTER SYSTEM SET wal_writer_delay = '10s'"
	sql "SELECT pg_reload_conf()" >/dev/null
	# Consumption pauses while PostgreSQL restarts (seconds under
	# valgrind or ASan); a paused partition must not look idle (issue
	# 15 item 3, fixed elsewhere): keep the idle timeout above the outage.
	proc_args+=(--idle-timeout 20s)
	# Nothing may write WAL between a commit and the stop: flushes far
	# enough apart that a slow (valgrind) test still stops the processor
	# before its next one, and no housekeeping meanwhile.
	proc_args+=(--flush-interval 2s --housekeeping-interval 1h)
	port=$("$src/tests/lib/free-port")
	proc_args+=(--metrics-addr "127.0.0.1:$port")
	url=http://127.0.0.1:$port
	start_processor p1
	wait_until 60 "a third committed" committed_at_least "$((total / 3))"
	runuser=()
	[ "$(id -u)" = 0 ] && runuser=(runuser -u postgres --)
	bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	# Only the last partial WAL page is lost, and only if nothing wrote
	# after the commit it holds: stop the processor right after a fresh
	# commit, so its next batch cannot push that page out, then stop
	# PostgreSQL. A slow (valgrind) processor may still get there first:
	# try again, a bounded number of times.
	rewound=
	for attempt in 1 2 3 4 5 6; do
		c0=$(committed)
		[ "$c0" -lt "$total" ] || break
		wait_until 60 "a fresh commit" committed_at_least "$((c0 + 1))"
		kill -STOP "${procs[p1]}"
		c=$(committed)
		"${runuser[@]}" "$bindir/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null
		"${runuser[@]}" "$bindir/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgres.log" -w start >/dev/null
		kill -CONT "${procs[p1]}"
		after=$(committed)
		log "attempt $attempt: PostgreSQL stopped (immediate) at $c/$total committed and restarted; it holds $after"
		[ "$after" -lt "$c" ] && { rewound=1; break; }
		[ "$c" -lt "$total" ] || break
	done
	[ -n "$rewound" ] || fail "no immediate stop lost a commit; the test proved nothing"
	wait_until 60 "the rewind detected" grep -q "went back in time" "$work/proc-p1.log"
	wait_until 30 "the rewind counted" metric_at_least cartwatch_postgresql_rewinds_total 1
	log "rewinds: $(metric cartwatch_postgresql_rewinds_total); $(grep -m1 'went back in time' "$work/proc-p1.log" | grep -o 'error="[^"]*"')"
	wait_until 180 "all events processed" done_cond
	;;
pgpermanent)
	# Migrate first (a processor on a topic nobody writes), then make
	# PostgreSQL refuse one user's abandonments: no retry can get past it.
	"$processor" -b "$bs" --topic e2e-migrate-only --group e2e-migrate >"$work/proc-m.log" 2>&1 &
	mpid=$!
	wait_until 60 "the schema" sql_is "SELECT to_regclass('cart_abandonments') IS NOT NULL" t
	kill -TERM $mpid
	wait $mpid || true
	sql "ALTER TABLE cart_abandonments ADD CONSTRAINT e2e_refused CHECK (user_id <> 'user_1')"
	port=$("$src/tests/lib/free-port")
	proc_args+=(--metrics-addr "127.0.0.1:$port")
	url=http://127.0.0.1:$port
	start_processor p1
	wait_until 60 "a partition quarantined" grep -q "partition quarantined" "$work/proc-p1.log"
	victim=$(grep -m1 "partition quarantined" "$work/proc-p1.log" | sed 's/.* partition=\([0-9]*\) .*/\1/')
	grep -m1 "partition quarantined" "$work/proc-p1.log" | grep -q 'sqlstate=23514 .*offsets' ||
		fail "the quarantine log lacks the SQLSTATE or the offsets"
	# The other partitions run to the end of their logs.
	others_done() {
		local m
		m=$(curl -fsS "$url/metrics") || return 1
		echo "$m" | grep -q "^cartwatch_partition_lag_messages{partition=\"$victim\"}" && return 1
		echo "$m" | grep -q '^cartwatch_partition_lag_messages{' || return 1
		! echo "$m" | grep '^cartwatch_partition_lag_messages{' | awk '$2 != 0' | grep -q .
	}
	wait_until 120 "the other partitions done" others_done
	body=$(curl -sS "$url/healthz")
	code=$(curl -sS -o /dev/null -w '%{http_code}' "$url/healthz")
	[ "$code" = 503 ] && echo "$body" | grep -q "partition $victim quarantined: postgresql error 23514: " ||
		fail "/healthz does not name the quarantined partition ($code: $body)"
	[ "$(metric cartwatch_partitions_quarantined)" = 1 ] || fail "cartwatch_partitions_quarantined is not 1"
	log "partition $victim quarantined, the others done; /healthz $code: $body"
	c=$(sql "SELECT next_offset FROM cw_partitions WHERE partition = $victim")
	sql "ALTER TABLE cart_abandonments DROP CONSTRAINT e2e_refused"
	stop_processor p1 TERM
	start_processor p1
	wait_until 180 "all events processed" done_cond
	log "after the constraint was dropped and a restart, partition $victim went on from $c"
	;;
gap)
	broker_pid=${CARTWATCH_DEVBROKER_PID:?gap needs the embedded broker}
	port=$("$src/tests/lib/free-port")
	proc_args+=(--metrics-addr "127.0.0.1:$port")
	url=http://127.0.0.1:$port
	start_processor p1
	wait_until 60 "all events committed" committed_at_least "$total"
	stop_processor p1 TERM
	# Unread events, then partition 0 filled past the embedded broker's
	# log limit (5 MB): the oldest records, the unread events among them,
	# leave the log.
	"$producer" -b "$bs" --events 2000 --seed 8 --users 3000 --rate 0 \
		--start-time 2026-07-09T00:00:00Z >/dev/null 2>"$work/producer2.log" ||
		{ cat "$work/producer2.log" >&2; fail "producer failed"; }
	python3 -c "print(('x' * 900000 + '\n') * 7, end='')" |
		kcat -P -b "$bs" -t cart-events -p 0 -X message.max.bytes=2000000
	lo=$(kcat -Q -b "$bs" -t cart-events:0:-2 2>/dev/null | awk '{ print $NF }')
	next0=$(sql "SELECT next_offset FROM cw_partitions WHERE partition = 0")
	[ -n "$lo" ] && [ "$lo" -gt "$next0" ] ||
		fail "partition 0 starts at ${lo:-?}, not past the committed $next0: no gap to detect"
	log "partition 0: committed $next0, log now starts at $lo"
	start_processor p1
	wait_until 30 "the gap logged" grep -q "offset gap" "$work/proc-p1.log"
	wait_until 30 "the gap counted" metric_at_least cartwatch_offset_gaps_total 1
	[ "$(metric cartwatch_offset_gap_records_total)" -ge $((lo - next0)) ] ||
		fail "records lost not counted: $(metric cartwatch_offset_gap_records_total) < $((lo - next0))"
	curl -sS "$url/healthz" | grep -q "records lost: partition 0" ||
		fail "/healthz does not show the gap: $(curl -sS "$url/healthz")"
	# Consumption goes on: the junk records after the gap are dead-lettered.
	wait_until 30 "consumption after the gap" metric_at_least cartwatch_dead_letter_records_total 5
	log "gap of $((lo - next0))+ records on partition 0 detected: $(curl -sS "$url/healthz")"
	end0=$(kcat -Q -b "$bs" -t cart-events:0:-1 | awk '{ print $NF }')
	[ -n "$end0" ] || fail "no end offset of partition 0"
	wait_until 30 "the junk committed" sql_is "SELECT next_offset FROM cw_partitions WHERE partition = 0" "$end0"
	stop_processor p1 TERM
	# Again, with auto.offset.reset=error: the consumer stops the
	# partition instead of jumping; that must not be silent either.
	"$producer" -b "$bs" --events 2000 --seed 9 --users 3000 --rate 0 \
		--start-time 2026-07-10T00:00:00Z >/dev/null 2>>"$work/producer2.log" ||
		{ cat "$work/producer2.log" >&2; fail "producer failed"; }
	python3 -c "print(('x' * 900000 + '\n') * 7, end='')" |
		kcat -P -b "$bs" -t cart-events -p 0 -X message.max.bytes=2000000
	gaps=$(grep -c "offset gap" "$work/proc-p1.log")
	proc_args+=(-X auto.offset.reset=error)
	start_processor p1
	wait_until 30 "the stop logged" grep -q "partition stopped: its next offset is no longer in the log" "$work/proc-p1.log"
	wait_until 10 "/healthz 503" http_status_is /healthz 503
	curl -sS "$url/healthz" | grep -q "partition 0 stopped: its next offset left the log" ||
		fail "/healthz does not say partition 0 stopped: $(curl -sS "$url/healthz")"
	metric_at_least cartwatch_offset_gaps_total 1 || fail "the stop is not counted as a gap"
	[ "$(grep -c "offset gap" "$work/proc-p1.log")" = "$gaps" ] || fail "the processor jumped the gap despite auto.offset.reset=error"
	log "with auto.offset.reset=error: $(curl -sS "$url/healthz")"
	stop_processor p1 TERM
	log PASS
	exit 0
	;;
revoke)
	# The processor runs as a role of its own that owns the database, so
	# that a superuser can take a privilege away from it.
	sql "CREATE ROLE cwproc LOGIN; ALTER DATABASE $PGDATABASE OWNER TO cwproc; ALTER SCHEMA public OWNER TO cwproc"
	CARTWATCH_PG=$(sed 's/user=[^ ]*/user=cwproc/' <<<"$CARTWATCH_PG")
	export CARTWATCH_PG
	start_processor p1
	wait_until 60 "a third committed" committed_at_least "$((total / 3))"
	out_tables="cart_abandonments, cart_conversions, product_stats_minute_deltas"
	sql "REVOKE INSERT ON $out_tables FROM cwproc"
	c=$(committed)
	[ "$c" -lt "$total" ] || fail "revoked only after all work was done; the test proved nothing"
	log "INSERT revoked at $c/$total committed"
	wait_until 30 "the processor noticing" grep -q "flush failed" "$work/proc-p1.log"
	# Ten times the idle timeout (3 s): a processor whose idle
	# watermarks ran while paused would close sessions early.
	sleep 30
	sql "GRANT INSERT ON $out_tables TO cwproc"
	log "INSERT granted again"
	wait_until 60 "consumption resuming" grep -q "consumption resumed" "$work/proc-p1.log"
	wait_until 180 "all events processed" done_cond
	;;
diskfull)
	# Migrate first (a processor on a topic nobody writes), then move the
	# output tables to a tablespace on a 32 MB tmpfs of their own.
	small_disk=$work/small-disk
	mkdir -p "$small_disk"
	mount -t tmpfs -o size=32m tmpfs "$small_disk" ||
		{ small_disk=; fail "cannot mount a tmpfs on $work/small-disk (diskfull needs root)"; }
	mkdir "$small_disk/ts"
	[ "$(id -u)" = 0 ] && chown postgres: "$small_disk/ts"
	"$processor" -b "$bs" --topic e2e-migrate-only --group e2e-migrate >"$work/proc-m.log" 2>&1 &
	mpid=$!
	wait_until 60 "the schema" sql_is "SELECT to_regclass('cart_abandonments') IS NOT NULL" t
	kill -TERM $mpid
	wait $mpid || true
	sql "CREATE TABLESPACE e2e_small LOCATION '$small_disk/ts'"
	for t in cart_abandonments cart_conversions product_stats_minute_deltas; do
		sql "ALTER TABLE $t SET TABLESPACE e2e_small"
		# Partitioned by day (migration 010): the parent's tablespace
		# is only a default, each partition moves by itself.
		for p in $(sql "SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = '$t'::regclass"); do
			sql "ALTER TABLE $p SET TABLESPACE e2e_small"
		done
	done
	start_processor p1
	wait_until 60 "a third committed" committed_at_least "$((total / 3))"
	# Fill the disk: every page the tables need next is refused.
	dd if=/dev/zero of="$small_disk/filler" bs=1M 2>/dev/null || true
	c=$(committed)
	[ "$c" -lt "$total" ] || fail "the disk filled up only after all work was done; the test proved nothing"
	log "tablespace full at $c/$total committed ($(df -h --output=avail "$small_disk" | tail -n 1) left)"
	wait_until 30 "the processor noticing" grep -q "flush failed.*No space left on device" "$work/proc-p1.log"
	wait_until 10 "consumption paused" grep -q "consumption paused" "$work/proc-p1.log"
	sleep 30 # the outage: ten times the idle timeout
	rm -f "$small_disk/filler"
	log "space freed"
	wait_until 60 "consumption resuming" grep -q "consumption resumed" "$work/proc-p1.log"
	wait_until 180 "all events processed" done_cond
	;;
commitlost)
	pport=$("$src/tests/lib/free-port")
	"$here/pgproxy.py" "$pport" "$PGPORT" >"$work/pgproxy.log" 2>&1 &
	proxy_pid=$!
	wait_until 10 "the proxy" grep -q ready "$work/pgproxy.log"
	direct_pg=$CARTWATCH_PG
	CARTWATCH_PG="host=127.0.0.1 port=$pport dbname=$PGDATABASE user=$PGUSER"
	start_processor p1
	wait_until 60 "a third committed" committed_at_least "$((total / 3))"
	for i in 1 2 3; do
		kill -USR1 "$proxy_pid"
		wait_until 30 "lost COMMIT answer $i" grep -q "lost COMMIT answer $i " "$work/pgproxy.log"
		log "$(grep "lost COMMIT answer $i " "$work/pgproxy.log") at $(committed)/$total committed"
	done
	# The partitions move while p1 is still resolving the third.
	CARTWATCH_PG=$direct_pg
	start_processor p2
	wait_until 60 "p1 resolving" grep -q "flush with lost COMMIT answer had landed" "$work/proc-p1.log"
	wait_until 180 "all events processed" done_cond
	grep -q "flush with lost COMMIT answer did not land" "$work/proc-p1.log" ||
		fail "no in-doubt flush was found not landed; the test proved less than it says"
	;;
pgdown-rebalance|pgdown-take)
	[ "$mode" = pgdown-take ] && proc_args+=(-X max.poll.interval.ms=6000)
	start_processor p1
	wait_until 60 "a fifth committed" committed_at_least "$((total / 5))"
	start_processor p2
	# A status row is written after a flush, i.e. once p2 has taken all
	# it was given (a claimed partition alone does not say that: under
	# valgrind PostgreSQL stopped while p2 was still taking the next).
	wait_until 60 "p2 flushed" sql_is "SELECT count(*) FROM processor_status WHERE instance = 'p2'" 1
	c=$(committed)
	"$src/tests/pg/pg-stop" "$work/pg"
	[ "$c" -lt "$total" ] || fail "PostgreSQL stopped only after all work was done"
	log "PostgreSQL stopped at $c/$total committed"
	if [ "$mode" = pgdown-take ]; then
		# A rebalance of p1's own during the outage (under valgrind, a
		# late heartbeat is enough) makes it give up before p2 leaves:
		# the case under test, only sooner. Not dying is checked below.
		deadline=$((SECONDS + 30 * slow))
		until grep -q "consumption paused" "$work/proc-p1.log" || ! kill -0 "${procs[p1]}" 2>/dev/null; do
			[ $SECONDS -lt $deadline ] || fail "timed out waiting for p1 pausing"
			sleep 0.1
		done
	else
		# p1 sees the outage either in a flush (it pauses) or, when the
		# group moved a partition to it meanwhile (under valgrind, a late
		# heartbeat of p2's is enough), in that partition's claim, which
		# it retries for half of max.poll.interval.ms (150 s): PostgreSQL
		# comes back well within that, below.
		wait_until 30 "p1 pausing or retrying a claim" \
			grep -Eq "consumption paused|cannot take partition, retrying" "$work/proc-p1.log"
	fi
	if [ "$mode" = pgdown-take ]; then
		# When p1 gave up first (above), p2 may be handed partitions
		# it cannot take either: then it gives up the same way, which is
		# the behaviour under test too (status 1, the reason logged).
		stop_processor p2 TERM "cannot take partition within half of max.poll.interval.ms"
	else
		stop_processor p2 TERM
	fi
	log "p2 left during the outage"
	if [ "$mode" = pgdown-take ]; then
		# Half of max.poll.interval.ms to take the partitions, then exit.
		deadline=$((SECONDS + 30 * slow))
		while kill -0 "${procs[p1]}" 2>/dev/null; do
			[ $SECONDS -lt $deadline ] || fail "p1 still blocked taking partitions after 30 s"
			sleep 0.1
		done
		rc=0; wait "${procs[p1]}" || rc=$?
		unset "procs[p1]"
		[ $rc != 0 ] || fail "p1 exited with status 0 after giving up"
		grep -q "cannot take partition within half of max.poll.interval.ms" "$work/proc-p1.log" ||
			fail "p1 exited without saying why"
		log "p1 gave up taking partitions and exited ($rc)"
	fi
	# p1 takes p2's partitions once PostgreSQL answers again.
	sleep 2
	runuser=()
	[ "$(id -u)" = 0 ] && runuser=(runuser -u postgres --)
	bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	"${runuser[@]}" "$bindir/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgres.log" -w start >/dev/null
	log "PostgreSQL restarted"
	[ "$mode" = pgdown-take ] && start_processor p1
	wait_until 120 "all events processed" done_cond
	grep -q "partition revoked" "$work/proc-p1.log" || fail "p1 never saw a rebalance"
	;;
*) fail "unknown mode" ;;
esac

for n in "${!procs[@]}"; do stop_processor "$n" TERM; done

"$here/pgdump.py" >"$work/actual.json"
"$here/oracle.py" "$bs" cart-events "$src/schemas/cart_event.avsc" \
	--session-timeout $session_ms --cart-ttl $ttl_ms --recovery-window $window_ms \
	--allowed-lateness 5000 --max-cart-items 20 >"$work/expected.json"
if [ "$mode" = dlq ]; then
	# The hostile records change nothing: the oracle without them agrees.
	"$here/oracle.py" "$bs" cart-events "$src/schemas/cart_event.avsc" \
		--session-timeout $session_ms --cart-ttl $ttl_ms --recovery-window $window_ms \
		--allowed-lateness 5000 --max-cart-items 20 --drop-key-prefix hostile >"$work/expected-clean.json"
	python3 - "$work/expected.json" "$work/expected-clean.json" "$work/hostile/refused.txt" <<'PY' || fail "the oracle is not the same without the hostile records"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
refused = sum(1 for _ in open(sys.argv[3]))
ra, rb = a.pop("rejected"), b.pop("rejected")
a.pop("events"); b.pop("events")
assert a == b, "documents differ"
# The rules refuse, in the oracle's run with them only, every refused
# record but the 2 bot records (refused in both runs) and the invalid
# UTF-8 one (Python's avro refuses it before the rules see it).
assert sum(ra.values()) - sum(rb.values()) == refused - 3, (ra, rb, refused)
assert ra.get("cart items") == 1 and ra.get("cart overflow") == 1, ra
assert ra.get("duplicate") == 1, ra
print(f"oracle: {refused} hostile records refused ({ra}), same results without them", file=sys.stderr)
PY
fi

python3 - "$work/expected.json" "$work/actual.json" <<'PY'
import json, sys
exp, act = (json.load(open(f)) for f in sys.argv[1:3])
n = exp.pop("events")
exp.pop("rejected")
bad = 0
for k in ("abandonments", "conversions", "product_stats", "reason_stats"):
    e, a = exp[k], act[k]
    if e != a:
        bad += 1
        es = {json.dumps(x, sort_keys=True) for x in e}
        as_ = {json.dumps(x, sort_keys=True) for x in a}
        print(f"{k}: expected {len(e)}, got {len(a)}; missing {len(es - as_)}, unexpected {len(as_ - es)}, duplicates {len(a) - len(as_)}", file=sys.stderr)
        for x in sorted(es - as_)[:3]:
            print("  missing:", x[:300], file=sys.stderr)
        for x in sorted(as_ - es)[:3]:
            print("  unexpected:", x[:300], file=sys.stderr)
    else:
        print(f"{k}: {len(e)} rows equal", file=sys.stderr)
if not exp["abandonments"] or not exp["conversions"]:
    print("the expectation is empty: the test proves nothing", file=sys.stderr)
    bad += 1
print(f"{n} events decoded by the oracle", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
# Every abandonment also went to Kafka, after its transaction committed.
wait_until 30 "all abandonments published" sql_is "SELECT count(*) FROM cw_outbox_chunks" 0
"$here/abandonment_topic.py" "$bs" cart-abandonments "$src/schemas/cart_abandonment.avsc" "$work/expected.json" ||
	fail "the cart-abandonments topic does not match"
if [ "$mode" = dlqfail ]; then
	grep -q "abandonment not published" "$work/proc-p1.log" ||
		fail "no abandonment publication failed; the test proved nothing"
fi
if [ "$mode" = dlq ] || [ "$mode" = dlqfail ]; then
	n=$(kcat -C -b "$bs" -t cart-events-dlq -e -q -f '%h\n' | grep -c "cartwatch.error=" || true)
	want=3
	[ "$mode" = dlq ] && want=$((3 + $(wc -l <"$work/hostile/refused.txt")))
	[ "$n" = "$want" ] || fail "expected $want dead letters with headers, found $n"
	headers=$(kcat -C -b "$bs" -t cart-events-dlq -e -q -f '%h\n')
	[ "$mode" = dlq ] && while read -r why; do
		grep -qF -- "$why" <<<"$headers" || fail "no dead letter says \"$why\""
	done <"$work/hostile/refused.txt"
	kcat -C -b "$bs" -t cart-events-dlq -e -q -f '%h\n' | grep -q "cartwatch.source.offset=" || fail "dead letters lack the source offset header"
	log "$want dead letters with error and source headers, each hostile record with its reason"
fi
log "PASS"
