#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-processor-bad-state.sh — a processor that finds resume state it
# cannot read (a corrupted state chunk, or written by an unknown version)
# stops with an error naming the partition, instead of running without that
# partition.
# Runs under run-with-servers --pg --kafka embedded.
set -euo pipefail
proc=${CARTWATCH_PROCESSOR:?} producer=${CARTWATCH_PRODUCER:?}
work=${CARTWATCH_TEST_DIR:?}
args=(--idle-timeout 1h --flush-interval 200ms -X session.timeout.ms=6000)
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

"$producer" --events 2000 --rate 0 --seed 5 --start-time 2026-07-08T00:00:00Z >/dev/null 2>&1
"$proc" "${args[@]}" >"$work/p1.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
	[ "$(sql "SELECT coalesce(sum(next_offset), 0) FROM cw_partitions" 2>/dev/null || echo 0)" = 2000 ] && break
	sleep 0.1
done
kill -TERM $pid; wait $pid || fail "first processor did not stop cleanly"
n=$(sql "SELECT count(*) FROM cw_state_chunks")
[ "$n" -gt 0 ] || fail "no state chunk to corrupt"
victim=$(sql "SELECT partition FROM cw_state_chunks ORDER BY seq DESC LIMIT 1")
# A chunk cut short inside its first record's key length.
sql "UPDATE cw_state_chunks SET chunk = '\\x0000' WHERE seq = (SELECT max(seq) FROM cw_state_chunks WHERE partition = $victim)"

rc=0
timeout 60 "$proc" "${args[@]}" >"$work/p2.log" 2>&1 || rc=$?
[ $rc != 0 ] && [ $rc != 124 ] || { cat "$work/p2.log" >&2; fail "processor did not stop with an error (status $rc)"; }
grep -q "cannot restore partition; stopping\" partition=$victim" "$work/p2.log" ||
	{ cat "$work/p2.log" >&2; fail "no error naming partition $victim"; }
grep -q "unreadable state chunk\" partition=$victim .*partition $victim" "$work/p2.log" ||
	{ cat "$work/p2.log" >&2; fail "no message naming the corrupt chunk of partition $victim"; }
echo "ok: corrupted state in partition $victim stops the processor (status $rc)"
