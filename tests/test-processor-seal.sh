#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-processor-seal.sh — a processor that has read everything there is
# commits it without waiting for its flush interval (the caught-up seal,
# caught_up_due() in processor/daemon.c), but no sooner than a quarter of
# the interval after the connection's last seal. With --flush-interval 48s:
# a first burst of events is committed by "caught_up" seals, a second burst
# too, at least 12 s after the first, and both long before any interval
# seal. The flushes are read from the processor's debug log
# (msg="flushed" connection=N sealed=WHY).
# Runs under run-with-servers --pg --kafka embedded.
set -euo pipefail
proc=${CARTWATCH_PROCESSOR:?} producer=${CARTWATCH_PRODUCER:?}
work=${CARTWATCH_TEST_DIR:?} bs=${CARTWATCH_BOOTSTRAP_SERVERS:?}
wrap=${CARTWATCH_TEST_WRAPPER:-}
test_name=test-processor-seal
# shellcheck source=tests/e2e/lib.sh
. "$CARTWATCH_SOURCE_ROOT/tests/e2e/lib.sh"
pid=
check_alive() { kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/p.log" >&2; fail "processor died"; }; }
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

burst() { # EVENTS SEED START
	"$producer" -b "$bs" --rate 0 --events "$1" --users 300 --seed "$2" \
		--start-time "$3" >/dev/null 2>"$work/producer.log" ||
		{ cat "$work/producer.log" >&2; fail "producer failed"; }
}
# When connection $1's caught-up seals were made, in epoch seconds: the
# time of their log line (written when the commit is collected) less the
# flush's duration.
seals() { # CONNECTION
	grep "msg=\"flushed\" connection=$1 sealed=caught_up " "$work/p.log" |
		sed 's/^ts=\([^ ]*\) .* ms=\([0-9]*\) .*/\1 \2/' | while read -r ts ms; do
		awk -v t="$(date -d "$ts" +%s.%3N)" -v ms="$ms" 'BEGIN { printf "%.3f\n", t - ms / 1000 }'
	done
}

burst 2000 1 2026-07-08T00:00:00Z
# shellcheck disable=SC2086 # the wrapper is a command line
$wrap "$proc" --flush-interval 48s --idle-timeout 1h --log-level debug \
	-X session.timeout.ms=6000 >"$work/p.log" 2>&1 &
pid=$!
wait_until 45 "the first burst committed" committed_is 2000
burst 500 2 2026-07-09T00:00:00Z
wait_until 45 "the second burst committed" committed_is 2500

if grep -q 'msg="flushed" connection=. sealed=interval' "$work/p.log"; then
	fail "an interval seal came first: $(grep -c 'sealed=caught_up' "$work/p.log") caught-up seals"
fi
for c in 0 1; do
	mapfile -t t < <(seals "$c")
	[ "${#t[@]}" -ge 2 ] || fail "connection $c: ${#t[@]} caught-up seals, want one per burst"
	# A quarter of the interval between two seals of a connection.
	for ((i = 1; i < ${#t[@]}; i++)); do
		awk -v a="${t[i - 1]}" -v b="${t[i]}" 'BEGIN { exit !(b - a >= 11.9) }' ||
			fail "connection $c sealed again after $(awk -v a="${t[i - 1]}" -v b="${t[i]}" 'BEGIN { print b - a }') s, under a quarter of the interval"
	done
	log "connection $c: ${#t[@]} caught-up seals, at ${t[*]}"
done
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=
[ $rc = 0 ] || { tail -n 20 "$work/p.log" >&2; fail "processor exited with status $rc after SIGTERM"; }
log "ok: both bursts committed by caught-up seals, a quarter of the interval apart"
