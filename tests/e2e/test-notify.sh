#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-notify.sh [plain|faults] — simulator → cartwatch-processor →
# cart-abandonments → cartwatch-notify → a real HTTP receiver
# (webhook_receiver.py) that verifies every signature, compared with what
# PostgreSQL holds: every abandonment not recovered must be received with a
# valid signature and a 2xx answer, recovered ones must not be sent (--pg),
# and every request's Idempotency-Key is its abandonment_id (so duplicates
# carry the same key).
#
# plain: the receiver answers 500, 429 + Retry-After or stalls past the
#   timeout on some first attempts: those must arrive later; it refuses
#   one (400), which must be dead-lettered with its status, attempts and
#   response in headers. A garbage record on the topic is dead-lettered
#   and the daemon goes on. SIGTERM exits 0 with everything committed: a
#   restart sends nothing. --delay: the same records written again to
#   topic "late" arrive no sooner than --delay / --time-scale after, and
#   the partitions pause meanwhile rather than buffer the backlog.
# faults (embedded broker): at --max-rate 100/s, cartwatch-notify is
#   killed with SIGKILL a quarter of the way through and restarted, and
#   the receiver goes down at the same moment for 30 s: afterwards every
#   abandonment has arrived, none was dead-lettered, and the rate held.
#   Then Kafka goes down while the daemon is idle: /healthz says 503 with
#   the reason, and 200 again once Kafka is back, with no record arriving.
#
# Runs under tests/run-with-servers --pg --kafka ...; needs
# CARTWATCH_PRODUCER, CARTWATCH_PROCESSOR and CARTWATCH_NOTIFY.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${CARTWATCH_TEST_DIR:?run through run-with-servers}
bs=${CARTWATCH_BOOTSTRAP_SERVERS:?}
producer=${CARTWATCH_PRODUCER:?}
processor=${CARTWATCH_PROCESSOR:?}
notify=${CARTWATCH_NOTIFY:?}
wrap=${CARTWATCH_TEST_WRAPPER:-}
mode=${1:-plain}
case $mode in
plain) events=${CARTWATCH_NOTIFY_EVENTS:-3000} ;;
faults) events=${CARTWATCH_NOTIFY_EVENTS:-1500} ;;
*) echo "test-notify: unknown mode $mode" >&2; exit 2 ;;
esac

test_name="test-notify ($mode)"
notify_pid= url=
check_alive() {
	if [ -n "$notify_pid" ] && ! kill -0 "$notify_pid" 2>/dev/null; then
		tail -n 30 "$work/$notify_log" >&2
		fail "cartwatch-notify died"
	fi
}
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"

pids=()
cleanup() {
	local rc=$?
	if [ $rc != 0 ] && [ -n "$url" ]; then
		curl -sS "$url/metrics" 2>/dev/null | grep '^cartwatch_notify' >&2
	fi
	# What the last daemon said of its failed deliveries, and who had the
	# receiver's port.
	if [ $rc != 0 ] && [ -n "$notify_log" ] && [ -f "$work/$notify_log" ]; then
		grep -E 'msg="(will retry|dead-lettering)"' "$work/$notify_log" | tail -n 5 >&2
		[ -n "${rport:-}" ] && ss -ltnp 2>/dev/null | grep -w "127.0.0.1:$rport" >&2
	fi
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	return 0
}
trap cleanup EXIT

# 0. Usage errors exit 2, an unreadable secret or a property librdkafka
#    refuses 1, all saying why.
if [ "$mode" = plain ]; then
	rc=0; "$notify" -b "$bs" --secret-file /dev/null 2>"$work/cli.err" || rc=$?
	[ $rc = 2 ] && grep -q -- "--webhook-url is required" "$work/cli.err" || fail "no --webhook-url: exit $rc"
	rc=0; "$notify" -b "$bs" --webhook-url http://127.0.0.1:9/ --secret-file "$work/none" 2>"$work/cli.err" || rc=$?
	[ $rc = 1 ] && grep -q "cannot open --secret-file" "$work/cli.err" || fail "missing secret file: exit $rc"
	for bad in 5/x 1/0s -1/s /s 2e7; do
		rc=0; "$notify" -b "$bs" --webhook-url http://127.0.0.1:9/ --secret-file "$work/none" \
			--max-rate "$bad" 2>"$work/cli.err" || rc=$?
		[ $rc = 2 ] && grep -q -- "--max-rate" "$work/cli.err" || fail "--max-rate $bad: exit $rc"
	done
	# A property librdkafka refuses: exit 1, the error names it.
	echo cli-secret >"$work/cli.secret"
	rc=0; "$notify" -b "$bs" --webhook-url http://127.0.0.1:9/ --secret-file "$work/cli.secret" \
		-X bogus.property=1 2>"$work/cli.err" || rc=$?
	[ $rc = 1 ] && grep -q "cannot start.*Kafka property bogus.property: " "$work/cli.err" ||
		{ cat "$work/cli.err" >&2; fail "-X bogus.property=1: exit $rc"; }
fi

# 1. Abandonments: the simulator's events through the processor, run to
#    the end so that PostgreSQL's recovered_at is final.
"$producer" -b "$bs" --events "$events" --seed 11 --users 800 \
	--start-time 2026-07-08T00:00:00Z --rate 0 >/dev/null 2>"$work/producer.log" ||
	{ cat "$work/producer.log" >&2; fail "producer failed"; }
$wrap "$processor" --session-timeout 10m --cart-ttl 2h --recovery-window 1h \
	--allowed-lateness 5s --idle-timeout 1s --time-scale 1000000 \
	--flush-interval 200ms --max-cart-items 20 \
	-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
	>"$work/processor.log" 2>&1 &
proc_pid=$!
pids+=("$proc_pid")
processed() {
	committed_is "$events" &&
		sql_is "SELECT count(*) FROM cw_state_chunks" 0 &&
		[ "$(sql "SELECT coalesce(min(watermark_ms), 0) FROM cw_partitions")" -gt $((1783468800000 + 86400000)) ]
}
wait_until 120 "the processor to finish" processed
# Every abandonment row is on the topic once the outbox has drained.
wait_until 30 "the outbox to drain" sql_is "SELECT count(*) FROM cw_outbox_chunks" 0
kill -TERM "$proc_pid"
wait "$proc_pid" || fail "processor exited with status $? after SIGTERM"

sql "SELECT abandonment_id FROM cart_abandonments WHERE recovered_at IS NULL ORDER BY 1" >"$work/expected"
sql "SELECT abandonment_id FROM cart_abandonments WHERE recovered_at IS NOT NULL ORDER BY 1" >"$work/recovered"
n_expected=$(wc -l <"$work/expected") n_recovered=$(wc -l <"$work/recovered")
log "$n_expected abandonments to send, $n_recovered recovered (to skip)"
[ "$n_expected" -ge 100 ] || fail "only $n_expected abandonments: the test proves little"
[ "$n_recovered" -ge 1 ] || fail "no recovered abandonment: the skip is not exercised"

# The receiver and cartwatch-notify.
head -c 32 /dev/urandom | base64 >"$work/secret"
recv_pid=
start_receiver() { # [OPTION...]
	rm -f "$work/port"
	"$here/webhook_receiver.py" "$@" "$work/secret" "$work/port" "$work/requests.jsonl" \
		2>>"$work/receiver.log" &
	recv_pid=$!
	pids+=("$recv_pid")
	wait_until 10 "the receiver to listen" test -s "$work/port"
}
notify_log=
start_notify() { # LOG [OPTION...]
	notify_log=$1
	shift
	$wrap "$notify" -b "$bs" --webhook-url "$hook" --secret-file "$work/secret" \
		--pg "$CARTWATCH_PG" "$@" \
		--metrics-addr 127.0.0.1:0 --cart-url-template 'https://shop.example/cart?u={user_id}' \
		-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
		>"$work/$notify_log" 2>&1 &
	notify_pid=$!
	pids+=("$notify_pid")
	wait_until 30 "the metrics port in $notify_log" metrics_port_known
	url=http://127.0.0.1:$(metrics_port)
}
metrics_port() { sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$work/$notify_log" | head -n 1; }
metrics_port_known() { [ -n "$(metrics_port)" ]; }
stop_notify() { # WHAT
	kill -TERM "$notify_pid"
	wait "$notify_pid" || { tail -n 20 "$work/$notify_log" >&2; fail "$1 exited with status $? after SIGTERM"; }
	notify_pid=
}
dlq_count() { kcat -C -b "$bs" -t cart-abandonments-dlq -e -q -f 'x\n' 2>/dev/null | wc -l; }

# The common verdict on every request received: signature, key, nothing
# recovered or unknown sent, every expected key answered 200 (with no
# fault) at least once, except those in EXCEPT (one per line).
check_requests() { # EXCEPT-FILE
	python3 - "$work/requests.jsonl" "$work/expected" "$work/recovered" "$1" "$test_name" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
want = set(open(sys.argv[2]).read().split())
recovered = set(open(sys.argv[3]).read().split())
excepted = set(open(sys.argv[4]).read().split())
bad = []
if not all(r["sig_ok"] for r in reqs):
    bad.append("%d requests with a bad signature" % sum(not r["sig_ok"] for r in reqs))
if not all(r["key_ok"] for r in reqs):
    bad.append("%d requests whose Idempotency-Key is not their abandonment_id" %
               sum(not r["key_ok"] for r in reqs))
keys = {r["key"] for r in reqs}
if keys & recovered:
    bad.append("%d recovered abandonments were sent" % len(keys & recovered))
if keys - want - recovered:
    bad.append("unknown keys sent: %s" % sorted(keys - want - recovered)[:3])
ok = {r["key"] for r in reqs if r["status"] == 200 and not r["fault"]}
if want - excepted - ok:
    bad.append("%d abandonments never delivered: %s" % (len(want - excepted - ok), sorted(want - excepted - ok)[:3]))
print("%s: %d requests, %d keys, %d repeated" % (sys.argv[5], len(reqs), len(keys), len(reqs) - len(keys)), file=sys.stderr)
if bad:
    print("%s: FAIL: %s" % (sys.argv[5], "; ".join(bad)), file=sys.stderr)
    sys.exit(1)
PY
}
# Distinct keys answered 200.
delivered_keys() {
	python3 -c 'import json, sys; print(len({json.loads(l)["key"] for l in open(sys.argv[1]) if json.loads(l)["status"] == 200}))' \
		"$work/requests.jsonl" 2>/dev/null || echo 0
}
delivered_at_least() { [ "$(delivered_keys)" -ge "$1" ]; }

if [ "$mode" = faults ]; then
	# 2. Delivering at 100/s; a quarter of the way: SIGKILL, and the
	#    receiver down at the same moment, for 30 s. The restarted daemon
	#    waits for the group to drop its dead predecessor (the session
	#    timeout, 6 s), then retries against a closed port until the
	#    receiver is back on the same port.
	: >"$work/requests.jsonl"
	# The receiver's port lies below the kernel's ephemeral range, so that
	# while it is down no other socket can be given it: neither a listener
	# bound to port 0 (the daemons' metrics) nor the source port of a
	# connection (a loopback connect to a free ephemeral port can connect
	# to itself).
	rport=$(python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(1000):
    p = random.randint(10000, lo - 1)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PY
	)
	[ -n "$rport" ] || fail "no free port below the ephemeral range"
	start_receiver --no-faults --port "$rport"
	[ "$(cat "$work/port")" = "$rport" ] || fail "the receiver did not listen on $rport"
	hook="http://127.0.0.1:$rport/hook"
	opts=(--concurrency 4 --max-rate 100/s --request-timeout 1s --retry-backoff 200ms
		--max-backoff 2s --max-attempts 1000)
	start_notify notify-a.log "${opts[@]}"
	wait_until 60 "a quarter delivered" delivered_at_least $((n_expected / 4))
	kill -9 "$notify_pid"
	wait "$notify_pid" 2>/dev/null || true
	notify_pid=
	kill "$recv_pid"
	wait "$recv_pid" 2>/dev/null || true
	down_at=$SECONDS
	n_before=$(wc -l <"$work/requests.jsonl")
	k_before=$(delivered_keys)
	log "killed cartwatch-notify and the receiver after $k_before of $n_expected delivered"
	[ "$k_before" -lt "$n_expected" ] || fail "everything was delivered before the kill: not mid-run"
	# At most 100/s while the first daemon ran (the limit spaces requests
	# exactly; a little slack for the arrival times, and the first
	# requests, which open connections, left out).
	python3 - "$work/requests.jsonl" <<'PY' || fail "--max-rate 100/s did not hold"
import json, sys
at = sorted(json.loads(l)["at"] for l in open(sys.argv[1]))[4:]  # past warm-up
rate = (len(at) - 1) * 1000.0 / max(1, at[-1] - at[0])
print("test-notify (faults): %d requests at %.1f/s before the kill" % (len(at) + 4, rate), file=sys.stderr)
sys.exit(0 if len(at) >= 20 and rate <= 110 else 1)
PY
	start_notify notify-b.log "${opts[@]}"
	wait_until 60 "the restarted daemon to find the receiver down" \
		grep -q 'msg="will retry".*Could.*connect' "$work/notify-b.log"
	wait_until 40 "the end of the 30 s outage" eval '[ $((SECONDS - down_at)) -ge 30 ]'
	[ "$(wc -l <"$work/requests.jsonl")" = "$n_before" ] || fail "requests arrived while the receiver was down?"
	start_receiver --no-faults --port "$rport"
	wait_until 120 "the backlog to arrive" delivered_at_least "$n_expected"
	: >"$work/no-exceptions"
	check_requests "$work/no-exceptions" || fail "see above"
	[ "$(dlq_count)" = 0 ] || fail "$(dlq_count) dead letters: the outage lost records to the DLQ"
	wait_until 10 "/metrics to settle" metric_is cartwatch_notify_waiting_records 0
	metric_at_least cartwatch_notify_retries_total 1 || fail "the restarted daemon counted no retry"
	metric_is 'cartwatch_notify_deliveries_total{outcome="dead_lettered"}' 0 || fail "dead letters counted"
	b_delivered=$(metric 'cartwatch_notify_deliveries_total{outcome="delivered"}')
	[ "$b_delivered" -ge $((n_expected - k_before)) ] && [ "$b_delivered" -le "$n_expected" ] ||
		fail "the restarted daemon delivered $b_delivered, want $((n_expected - k_before)) to $n_expected"
	log "after the restart: $b_delivered delivered ($((b_delivered - n_expected + k_before)) again)"

	# 3. Kafka down while idle: /healthz 503 with the reason; back up:
	#    /healthz 200 though no record arrives.
	broker=${CARTWATCH_DEVBROKER_PID:?the faults mode needs the embedded broker}
	wait_until 10 "/healthz 200" http_status_is /healthz 200
	kill -USR1 "$broker"
	wait_until 30 "/healthz 503 while Kafka is down" http_status_is /healthz 503
	curl -sS "$url/healthz" | grep -q "Kafka unreachable" || fail "/healthz 503 without the reason: $(curl -sS "$url/healthz")"
	kill -USR2 "$broker"
	t_up=$SECONDS
	wait_until 20 "/healthz 200 once Kafka is back" http_status_is /healthz 200
	log "/healthz 200 again $((SECONDS - t_up)) s after Kafka came back"
	stop_notify "cartwatch-notify"
	log "ok: $n_expected abandonments delivered through a SIGKILL and a 30 s receiver outage"
	exit 0
fi

# 2. Garbage among the abandonments.
printf 'not an abandonment' | kcat -P -b "$bs" -t cart-abandonments -k junk

# 3. The receiver (with faults) and cartwatch-notify.
start_receiver
hook="http://127.0.0.1:$(cat "$work/port")/hook"
start_notify notify.log --concurrency 8 --delay 10m --time-scale 600 \
	--request-timeout 1s --retry-backoff 200ms --max-backoff 2s --max-attempts 6

# Received: keys answered 2xx without an injected fault.
received_ok() {
	python3 - "$work/requests.jsonl" "$work/expected" <<'PY'
import json, sys
ok = {json.loads(l)["key"] for l in open(sys.argv[1])
      if json.loads(l)["status"] == 200 and not json.loads(l)["fault"]}
refused = {json.loads(l)["key"] for l in open(sys.argv[1]) if json.loads(l)["fault"] == "refused"}
want = set(open(sys.argv[2]).read().split())
sys.exit(0 if len(refused) == 1 and want - refused <= ok else 1)
PY
}
wait_until 120 "every abandonment received" received_ok
dlq_at_least() { [ "$(dlq_count)" -ge "$1" ]; }
wait_until 30 "two dead letters" dlq_at_least 2

# 4. Check what was received and dead-lettered.
python3 -c 'import json, sys; print("\n".join({json.loads(l)["key"] for l in open(sys.argv[1]) if json.loads(l)["fault"] == "refused"}))' \
	"$work/requests.jsonl" >"$work/refused"
check_requests "$work/refused" || fail "see above"
kcat -C -b "$bs" -t cart-abandonments-dlq -e -q \
	-f '%k|%h\n' >"$work/dlq.txt" 2>/dev/null
python3 - "$work/requests.jsonl" "$work/dlq.txt" <<'PY' || fail "see above"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
dlq = open(sys.argv[2]).read().splitlines()
bad = []
ok = {r["key"] for r in reqs if r["status"] == 200 and not r["fault"]}
for fault in ("500", "429", "stall"):
    fk = {r["key"] for r in reqs if r["fault"] == fault}
    if not fk:
        bad.append("no %s fault injected" % fault)
    if fk - ok:
        bad.append("%s: never delivered after the fault: %s" % (fault, sorted(fk - ok)[:3]))
refused = [r["key"] for r in reqs if r["fault"] == "refused"]
if len(set(refused)) != 1 or len(refused) != 1:
    bad.append("the refused key was tried %d times, want once" % len(refused))
if len(dlq) != 2:
    bad.append("%d dead letters, want 2: %s" % (len(dlq), dlq))
junk = [l for l in dlq if l.startswith("junk|")]
if len(junk) != 1 or "cartwatch.error=does not decode" not in junk[0]:
    bad.append("garbage not dead-lettered with its reason: %s" % dlq)
ref = [l for l in dlq if "cartwatch.http.status=400" in l]
if len(ref) != 1 or "cartwatch.attempts=1" not in ref[0] or \
   "cartwatch.response=nope: test refusal" not in ref[0]:
    bad.append("refused abandonment not dead-lettered with headers: %s" % dlq)
if bad:
    print("test-notify: FAIL: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
grep -q 'level=warn msg="dead-lettering".*reason="does not decode' "$work/notify.log" ||
	fail "no log line for the garbage record"

# /metrics and /healthz agree with what the receiver saw.
metrics_agree() {
	metric_is 'cartwatch_notify_deliveries_total{outcome="delivered"}' $((n_expected - 1)) &&
		metric_is 'cartwatch_notify_deliveries_total{outcome="skipped_recovered"}' "$n_recovered" &&
		metric_is 'cartwatch_notify_deliveries_total{outcome="dead_lettered"}' 2 &&
		metric_is cartwatch_notify_waiting_records 0 &&
		metric_is cartwatch_notify_response_seconds_count "$(metric cartwatch_notify_attempts_total)"
}
wait_until 10 "/metrics to agree with the receiver" metrics_agree
http_status_is /healthz 200 || fail "/healthz not 200 while working"

# 5. SIGTERM: exit 0, everything committed (a restart sends nothing).
stop_notify cartwatch-notify
before=$(wc -l <"$work/requests.jsonl")
start_notify notify-2.log --delay 10m --time-scale 600
wait_until 30 "the restarted notifier to get partitions" grep -q 'msg="partitions assigned" count=4' "$work/notify-2.log"
sleep 2 # nothing may come: a negative cannot be polled for
stop_notify "restarted cartwatch-notify"
after=$(wc -l <"$work/requests.jsonl")
[ "$after" = "$before" ] || fail "$((after - before)) requests after a restart: offsets were not committed"

# 6. --delay: every abandonment written again (to topic late) at t0 is
#    held 4 s (20m at 300x; longer under valgrind); the partitions pause
#    meanwhile.
kcat -C -b "$bs" -t cart-abandonments -e -q -f '%k%%CW-KEY%%%s\n%%CW-END%%\n' >"$work/abandonments.bin" 2>/dev/null
n_late=$(grep -c -a -- '^%CW-END%$' "$work/abandonments.bin" || true)
[ "$n_late" -ge "$n_expected" ] || fail "only $n_late records read back from cart-abandonments"
# The notifier joins first, so it reads the records as they are written.
hold_ms=$((4000 * slow))
start_notify notify-late.log --topic late --group late --delay 20m \
	--time-scale "$(awk -v s="$slow" 'BEGIN { print 300 / s }')"
wait_until 30 "the late notifier to get partitions" grep -q 'msg="partitions assigned" count=2' "$work/notify-late.log"
t0=$(date +%s%3N)
kcat -P -b "$bs" -t late -K '%CW-KEY%' -D $'\n%CW-END%\n' <"$work/abandonments.bin"
max_waiting=0
late_received() {
	# Before the records are due, a partition holds its head only.
	if [ "$(date +%s%3N)" -lt $((t0 + hold_ms - 500)) ]; then
		local w
		w=$(metric cartwatch_notify_waiting_records || echo 0)
		[ "${w:-0}" -gt "$max_waiting" ] && max_waiting=$w
	fi
	[ "$(wc -l <"$work/requests.jsonl")" -ge $((after + n_expected)) ]
}
wait_until 60 "the delayed abandonments" late_received
log "delayed run: $n_late records, at most $max_waiting held at once before due"
[ "$max_waiting" -ge 1 ] || fail "no record was ever held for its delay"
[ "$max_waiting" -le 20 ] || fail "$max_waiting records held at once: the partitions were not paused"
python3 - "$work/requests.jsonl" "$after" "$t0" "$hold_ms" <<'PY' || fail "delayed abandonments arrived early"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2]):]
early = [r for r in reqs if r["at"] < int(sys.argv[3]) + int(sys.argv[4])]
if early or not all(r["sig_ok"] for r in reqs):
    print("test-notify: %d of %d early: %s" % (len(early), len(reqs), early[:2]), file=sys.stderr)
    sys.exit(1)
PY
stop_notify "cartwatch-notify (late)"
log "ok: $n_expected abandonments delivered, $n_recovered recovered skipped"
