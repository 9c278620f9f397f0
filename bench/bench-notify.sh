#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-notify — cartwatch-notify's webhook deliveries per second and its
# memory with a large backlog waiting for its delay, in one run.
#
#   bench/bench-notify.sh
#   N=20000 WAITING=1000000 bench/bench-notify.sh
#
# An embedded broker (cartwatch-devbroker) holds N abandonments due now
# (bench-notify-feed). A local receiver answers every POST at once with
# 200 (Python asyncio, HTTP/1.1 keep-alive; it is part of what is
# measured, so the figures are a floor). For --concurrency 1, 8 and 32, a
# fresh consumer group reads them all: deliveries/s from start to the last
# one counted (cartwatch_notify_deliveries_total{outcome="delivered"}).
# Then WAITING abandonments stamped now, with --delay 1h: none is due, so
# each partition is paused at its head; reported: resident memory
# (VmRSS) once the consumer holds its assignment, and again 10 s later.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${CARTWATCH_BUILD_ROOT:-$here/../build}
notify=${CARTWATCH_NOTIFY:-$build/notify/cartwatch-notify}
devbroker=${CARTWATCH_DEVBROKER:-$build/devbroker/cartwatch-devbroker}
feed=${CARTWATCH_NOTIFY_FEED:-$build/bench/bench-notify-feed}
n=${N:-20000}
waiting=${WAITING:-1000000}
partitions=4
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-notify.XXXXXX")
broker_pid= recv_pid= notify_pid=
cleanup() {
	# Each one stopped whatever the last one's exit status (set -e would
	# end this loop at the receiver's 143 and leave the broker running).
	for p in $notify_pid $recv_pid $broker_pid; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

"$devbroker" --topics "cart-abandonments:$partitions,cart-abandonments-dlq:1" \
	--bootstrap-file "$work/bootstrap" >/dev/null 2>"$work/devbroker.log" &
broker_pid=$!
for _ in $(seq 300); do [ -s "$work/bootstrap" ] && break; sleep 0.05; done
bootstrap=$(cat "$work/bootstrap")

# The receiver: 200 at once, keep-alive.
rport=$(free_port)
python3 - "$rport" >"$work/receiver.log" 2>&1 <<'PY' &
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
recv_pid=$!
printf 'bench-secret\n' >"$work/secret"

"$feed" "$bootstrap" cart-abandonments "$n" $(($(now_ms) - 7200000))

run_notify() { # GROUP EXTRA-ARGS...
	local group=$1
	shift
	mport=$(free_port)
	"$notify" -b "$bootstrap" --group "$group" \
		--webhook-url "http://127.0.0.1:$rport/hook" --secret-file "$work/secret" \
		--metrics-addr "127.0.0.1:$mport" "$@" 2>"$work/notify-$group.log" &
	notify_pid=$!
}
delivered() {
	curl -fsS "http://127.0.0.1:$mport/metrics" 2>/dev/null |
		awk '$1 == "cartwatch_notify_deliveries_total{outcome=\"delivered\"}" { print $2 }'
}
for c in 1 8 32; do
	run_notify "bench-$c" --concurrency "$c"
	t0=$(date +%s.%N)
	deadline=$((SECONDS + 600))
	until [ "$(delivered)" = "$n" ]; do
		[ $SECONDS -lt $deadline ] || { tail "$work/notify-bench-$c.log" >&2; echo "concurrency $c: not all delivered" >&2; exit 1; }
		sleep 0.05
	done
	t1=$(date +%s.%N)
	kill "$notify_pid"
	wait "$notify_pid"
	notify_pid=
	echo "concurrency $c: $n webhooks in $(python3 -c "print(round($t1 - $t0, 2))") s = $(python3 -c "print(round($n / ($t1 - $t0)))") deliveries/s"
done

# The backlog that is not due: memory stays bounded.
"$feed" "$bootstrap" cart-abandonments "$waiting" "$(now_ms)"
run_notify bench-waiting --delay 1h
deadline=$((SECONDS + 120))
until grep -q "partition" "$work/notify-bench-waiting.log" && [ -n "$(delivered)" ]; do
	[ $SECONDS -lt $deadline ] || { echo "notify did not start" >&2; exit 1; }
	sleep 0.2
done
sleep 5
rss1=$(awk '/VmRSS/ { print $2 }' "/proc/$notify_pid/status")
sleep 10
rss2=$(awk '/VmRSS/ { print $2 }' "/proc/$notify_pid/status")
waiting_now=$(curl -fsS "http://127.0.0.1:$mport/metrics" | awk '$1 == "cartwatch_notify_waiting_records" { print $2 }')
echo "$waiting abandonments waiting for --delay 1h (plus $n delivered earlier, in the same topic): RSS $((rss1 / 1024)) MiB, 10 s later $((rss2 / 1024)) MiB; cartwatch_notify_waiting_records $waiting_now"
