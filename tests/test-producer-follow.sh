#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-producer-follow — `tail -F events.jsonl | cartwatch-producer
# --stdin-json` delivers each line while the input stays open: a line
# written into the producer's stdin is on the topic (read back with kcat)
# within 2 s, long before the next line or the end of the input; and
# --stdin-json is not paced at the simulator's 1,000 events/s by default;
# SIGTERM while it waits for input stops it cleanly.
# Runs under run-with-servers (CARTWATCH_BOOTSTRAP_SERVERS).
set -uo pipefail

producer=${CARTWATCH_PRODUCER:?run through meson test}
bootstrap=${CARTWATCH_BOOTSTRAP_SERVERS:?run through run-with-servers}
slow=${CARTWATCH_SLOW:-1}
work=$(mktemp -d "${CARTWATCH_TEST_DIR:-${TMPDIR:-/tmp}}/producer-follow.XXXXXX")
pid= kpid=
trap 'exec 3>&- 2>/dev/null; [ -n "$pid" ] && kill -9 $pid 2>/dev/null; [ -n "$kpid" ] && kill $kpid 2>/dev/null; rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
pass() { echo "ok   $*"; }

mkfifo "$work/in"
# shellcheck disable=SC2086 # the wrapper is a command line
${CARTWATCH_TEST_WRAPPER:-} "$producer" -b "$bootstrap" --stdin-json --topic cart-events \
	<"$work/in" 2>"$work/producer.log" &
pid=$!
exec 3>"$work/in" # the input stays open between the lines

# One consumer follows the topic all along (unbuffered), so the time
# measured is the producer's, not a fresh kcat's start-up.
kcat -C -b "$bootstrap" -t cart-events -o beginning -q -u -X fetch.wait.max.ms=10 -f '%k\n' >"$work/keys" 2>"$work/kcat.log" 3>&- &
kpid=$!
# seen USER: the topic holds an event keyed USER.
seen() { grep -qx "$1" "$work/keys"; }
deadline_ms=$((2000 * slow))
# Both ends ready first: the producer has reached the broker, kcat has
# its partitions (it logs nothing, so wait for the producer alone).
for _ in $(seq 1 $((100 * slow))); do grep -q producing "$work/producer.log" && break; sleep 0.1; done
grep -q producing "$work/producer.log" || fail "the producer did not start: $(cat "$work/producer.log")"
for i in 1 2; do
	user=follow-$i
	t0=$(date +%s%3N)
	echo "{\"user_id\":\"$user\",\"product_id\":\"ECHO_DOT_5TH_GEN\",\"event_type\":\"cart_add\"}" >&3
	ok=0
	while [ $(($(date +%s%3N) - t0)) -le "$deadline_ms" ]; do
		if seen "$user"; then ok=1; break; fi
		sleep 0.02
	done
	took=$(($(date +%s%3N) - t0))
	if [ $ok = 1 ]; then
		pass "line $i on the topic ${took} ms after it was written, input still open"
	else
		fail "line $i not on the topic ${took} ms after it was written (limit ${deadline_ms} ms)"
	fi
	kill -0 $pid 2>/dev/null || fail "the producer exited early: $(cat "$work/producer.log")"
done
exec 3>&-
status=0
wait $pid || status=$?
pid=
[ $status = 0 ] && pass "producer exits 0 at the end of its input" || fail "producer exit status $status"
if grep -q 'source=stdin-json .* rate=0 ' "$work/producer.log"; then
	pass "--stdin-json is not paced by default (rate=0)"
else
	fail "--stdin-json is paced by default: $(grep producing "$work/producer.log")"
fi
n=$(kcat -C -b "$bootstrap" -t cart-events -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c '^follow-')
kill $kpid 2>/dev/null; kpid=
[ "$n" = 2 ] && pass "two events on the topic, once each" || fail "$n events on the topic, want 2"

# SIGTERM while it waits for input that never comes: it stops at once.
${CARTWATCH_TEST_WRAPPER:-} "$producer" -b "$bootstrap" --stdin-json --topic cart-events \
	<"$work/in" 2>"$work/producer2.log" &
pid=$!
exec 3>"$work/in"
for _ in $(seq 1 $((100 * slow))); do grep -q producing "$work/producer2.log" && break; sleep 0.1; done
kill -TERM $pid
status=
for _ in $(seq 1 $((40 * slow))); do kill -0 $pid 2>/dev/null || { wait $pid; status=$?; break; }; sleep 0.05; done
exec 3>&-
if [ "$status" = 0 ]; then
	pass "SIGTERM while waiting for input: exit 0 within $((2 * slow)) s"
else
	fail "SIGTERM while waiting for input: ${status:-still running after $((2 * slow)) s}"
	cat "$work/producer2.log"
fi
[ -n "$status" ] && pid=
[ $fails = 0 ] || cat "$work/producer.log"
exit $((fails > 0))
