#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-notify.sh — simulator → cartwatch-processor → cart-abandonments →
# cartwatch-notify → a real HTTP receiver (webhook_receiver.py) that
# verifies every signature. Every abandonment PostgreSQL holds as not
# recovered must be received with a valid signature and a 2xx answer,
# except the one the receiver refuses (400), which must be dead-lettered
# with its status, attempts and response in headers; recovered ones must
# not be sent (--pg). The receiver answers 500, 429 + Retry-After or
# stalls past the timeout on some first attempts: those must arrive later.
# A garbage record on the topic is dead-lettered and the daemon goes on.
# SIGTERM exits 0 with everything committed: a restart sends nothing.
# --delay: the same records written again to topic "late" arrive no
# sooner than --delay / --time-scale after, and the partitions pause
# meanwhile rather than buffer the backlog.
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
slow=${CARTWATCH_SLOW:-1}
events=${CARTWATCH_NOTIFY_EVENTS:-3000}

fail() { echo "test-notify: FAIL: $*" >&2; exit 1; }
log() { echo "test-notify: $*" >&2; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	return 0
}
trap cleanup EXIT

wait_until() { # SECONDS DESCRIPTION CMD...
	local deadline=$((SECONDS + $1 * slow)) what=$2
	shift 2
	until "$@"; do
		[ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
		if [ -n "${notify_pid:-}" ] && ! kill -0 "$notify_pid" 2>/dev/null; then
			tail -n 30 "$work/notify.log" >&2
			fail "cartwatch-notify died"
		fi
		sleep 0.2
	done
}

# 0. Usage errors exit 2, an unreadable secret 1, both saying why.
rc=0; "$notify" -b "$bs" --secret-file /dev/null 2>"$work/cli.err" || rc=$?
[ $rc = 2 ] && grep -q -- "--webhook-url is required" "$work/cli.err" || fail "no --webhook-url: exit $rc"
rc=0; "$notify" -b "$bs" --webhook-url http://127.0.0.1:9/ --secret-file "$work/none" 2>"$work/cli.err" || rc=$?
[ $rc = 1 ] && grep -q "cannot open --secret-file" "$work/cli.err" || fail "missing secret file: exit $rc"

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
	[ "$(sql "SELECT coalesce(sum(next_offset), 0) FROM cw_partitions" 2>/dev/null || echo 0)" = "$events" ] || return 1
	[ "$(sql "SELECT count(*) FROM cw_state_chunks")" = 0 ] || return 1
	[ "$(sql "SELECT coalesce(min(watermark_ms), 0) FROM cw_partitions")" -gt $((1783468800000 + 86400000)) ]
}
wait_until 120 "the processor to finish" processed
published() { # every abandonment row is on the topic (the outbox drained)
	[ "$(sql "SELECT count(*) FROM cw_outbox_chunks")" = 0 ]
}
wait_until 30 "the outbox to drain" published
kill -TERM "$proc_pid"
wait "$proc_pid" || fail "processor exited with status $? after SIGTERM"

sql "SELECT abandonment_id FROM cart_abandonments WHERE recovered_at IS NULL ORDER BY 1" >"$work/expected"
sql "SELECT abandonment_id FROM cart_abandonments WHERE recovered_at IS NOT NULL ORDER BY 1" >"$work/recovered"
n_expected=$(wc -l <"$work/expected") n_recovered=$(wc -l <"$work/recovered")
log "$n_expected abandonments to send, $n_recovered recovered (to skip)"
[ "$n_expected" -ge 100 ] || fail "only $n_expected abandonments: the test proves little"
[ "$n_recovered" -ge 1 ] || fail "no recovered abandonment: the skip is not exercised"

# 2. Garbage among the abandonments.
printf 'not an abandonment' | kcat -P -b "$bs" -t cart-abandonments -k junk

# 3. The receiver and cartwatch-notify.
head -c 32 /dev/urandom | base64 >"$work/secret"
"$here/webhook_receiver.py" "$work/secret" "$work/port" "$work/requests.jsonl" 2>"$work/receiver.log" &
pids+=($!)
wait_until 10 "the receiver to listen" test -s "$work/port"
url="http://127.0.0.1:$(cat "$work/port")/hook"
start_notify() { # LOG [OPTION...]
	local logf=$1
	shift
	$wrap "$notify" -b "$bs" --webhook-url "$url" --secret-file "$work/secret" \
		--pg "$CARTWATCH_PG" --concurrency 8 "$@" \
		--metrics-addr 127.0.0.1:0 --cart-url-template 'https://shop.example/cart?u={user_id}' \
		-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
		>"$work/$logf" 2>&1 &
	notify_pid=$!
	pids+=("$notify_pid")
}
start_notify notify.log --delay 10m --time-scale 600 \
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
dlq_count() { kcat -C -b "$bs" -t cart-abandonments-dlq -e -q -f 'x\n' 2>/dev/null | wc -l; }
wait_until 120 "every abandonment received" received_ok
wait_until 30 "two dead letters" bash -c "[ \$(kcat -C -b '$bs' -t cart-abandonments-dlq -e -q -f 'x\n' 2>/dev/null | wc -l) -ge 2 ]"

# 4. Check what was received and dead-lettered.
kcat -C -b "$bs" -t cart-abandonments-dlq -e -q \
	-f '%k|%h\n' >"$work/dlq.txt" 2>/dev/null
python3 - "$work/requests.jsonl" "$work/expected" "$work/recovered" "$work/dlq.txt" <<'PY' || fail "see above"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
want = set(open(sys.argv[2]).read().split())
recovered = set(open(sys.argv[3]).read().split())
dlq = open(sys.argv[4]).read().splitlines()
bad = []
if not all(r["sig_ok"] for r in reqs):
    bad.append("%d requests with a bad signature" % sum(not r["sig_ok"] for r in reqs))
if not all(r["key_ok"] for r in reqs):
    bad.append("Idempotency-Key differs from abandonment_id")
keys = {r["key"] for r in reqs}
if keys & recovered:
    bad.append("%d recovered abandonments were sent" % len(keys & recovered))
if keys - want - recovered:
    bad.append("unknown keys sent: %s" % sorted(keys - want)[:3])
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
dups = len(reqs) - len(keys)
print("test-notify: %d requests, %d keys, %d repeated (faults, retries)" % (len(reqs), len(keys), dups), file=sys.stderr)
if bad:
    print("test-notify: FAIL: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
grep -q 'level=warn msg="dead-lettering".*reason="does not decode' "$work/notify.log" ||
	fail "no log line for the garbage record"

# /metrics and /healthz agree with what the receiver saw.
port=$(sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$work/notify.log" | head -n 1)
[ -n "$port" ] || fail "no metrics port in the log"
metric() { # SERIES: its value
	curl -fsS "http://127.0.0.1:$port/metrics" | awk -v s="$1" '$1 == s { print $2 }'
}
metrics_agree() {
	[ "$(metric 'cartwatch_notify_deliveries_total{outcome="delivered"}')" = $((n_expected - 1)) ] &&
	[ "$(metric 'cartwatch_notify_deliveries_total{outcome="skipped_recovered"}')" = "$n_recovered" ] &&
	[ "$(metric 'cartwatch_notify_deliveries_total{outcome="dead_lettered"}')" = 2 ] &&
	[ "$(metric cartwatch_notify_waiting_records)" = 0 ] &&
	[ "$(metric cartwatch_notify_response_seconds_count)" = "$(metric cartwatch_notify_attempts_total)" ]
}
deadline=$((SECONDS + 10 * slow))
until metrics_agree; do
	[ $SECONDS -lt $deadline ] || { curl -sS "http://127.0.0.1:$port/metrics" | grep cartwatch_notify >&2; fail "/metrics disagrees"; }
	sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || fail "/healthz not 200 while working"

# 5. SIGTERM: exit 0, everything committed (a restart sends nothing).
kill -TERM "$notify_pid"
wait "$notify_pid" || { tail -n 20 "$work/notify.log" >&2; fail "cartwatch-notify exited with status $? after SIGTERM"; }
before=$(wc -l <"$work/requests.jsonl")
start_notify notify-2.log --delay 10m --time-scale 600
wait_until 30 "the restarted notifier to get partitions" grep -q 'msg="partitions assigned" count=4' "$work/notify-2.log"
sleep 2 # nothing may come: a negative cannot be polled for
kill -TERM "$notify_pid"
wait "$notify_pid" || fail "restarted cartwatch-notify exited with status $? after SIGTERM"
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
port=$(sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$work/notify-late.log" | head -n 1)
t0=$(date +%s%3N)
kcat -P -b "$bs" -t late -K '%CW-KEY%' -D $'\n%CW-END%\n' <"$work/abandonments.bin"
max_waiting=0 late_done=0 deadline=$((SECONDS + 60 * slow))
late_received() { [ "$(wc -l <"$work/requests.jsonl")" -ge $((after + n_expected)) ]; }
until late_received; do
	[ $SECONDS -lt $deadline ] || fail "timed out waiting for the delayed abandonments"
	kill -0 "$notify_pid" || fail "cartwatch-notify died"
	# Before the records are due, a partition holds its head only.
	if [ "$(date +%s%3N)" -lt $((t0 + hold_ms - 500)) ]; then
		w=$(metric cartwatch_notify_waiting_records || echo 0)
		[ "${w:-0}" -gt "$max_waiting" ] && max_waiting=$w
	fi
	sleep 0.2
done
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
kill -TERM "$notify_pid"
wait "$notify_pid" || fail "cartwatch-notify (late) exited with status $? after SIGTERM"
log "ok: $n_expected abandonments delivered, $n_recovered recovered skipped"
