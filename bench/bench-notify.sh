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
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
notify=${CARTWATCH_NOTIFY:-$build/notify/cartwatch-notify}
feed=${CARTWATCH_NOTIFY_FEED:-$build/bench/bench-notify-feed}
n=${N:-20000}
waiting=${WAITING:-1000000}
partitions=4
bench_start notify_pid recv_pid broker_pid
now_ms() { date +%s%3N; }

start_devbroker "cart-abandonments:$partitions" cart-abandonments-dlq:1

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

"$feed" "$bs" cart-abandonments "$n" $(($(now_ms) - 7200000))

run_notify() { # GROUP EXTRA-ARGS...
	local group=$1
	shift
	mport=$(free_port)
	"$notify" -b "$bs" --group "$group" \
		--webhook-url "http://127.0.0.1:$rport/hook" --secret-file "$work/secret" \
		--metrics-addr "127.0.0.1:$mport" "$@" 2>"$work/notify-$group.log" &
	notify_pid=$!
}
delivered() {
	curl -fsS "http://127.0.0.1:$mport/metrics" 2>/dev/null |
		awk '$1 == "cartwatch_notify_deliveries_total{outcome=\"delivered\"}" { print $2 }'
}
all_delivered() { [ "$(delivered)" = "$n" ]; }
started() { grep -q "partition" "$work/notify-bench-waiting.log" && [ -n "$(delivered)" ]; }
for c in 1 8 32; do
	run_notify "bench-$c" --concurrency "$c"
	t0=$(date +%s.%N)
	wait_until -p "$notify_pid" "$work/notify-bench-$c.log" notify 600 0.05 \
		"concurrency $c: not all delivered" all_delivered
	t1=$(date +%s.%N)
	stop_proc notify_pid notify
	echo "concurrency $c: $n webhooks in $(python3 -c "print(round($t1 - $t0, 2))") s = $(python3 -c "print(round($n / ($t1 - $t0)))") deliveries/s"
done

# The backlog that is not due: memory stays bounded.
"$feed" "$bs" cart-abandonments "$waiting" "$(now_ms)"
run_notify bench-waiting --delay 1h
wait_until -p "$notify_pid" "$work/notify-bench-waiting.log" notify 120 0.2 "notify did not start" started
sleep 5
rss1=$(awk '/VmRSS/ { print $2 }' "/proc/$notify_pid/status")
sleep 10
rss2=$(awk '/VmRSS/ { print $2 }' "/proc/$notify_pid/status")
waiting_now=$(curl -fsS "http://127.0.0.1:$mport/metrics" | awk '$1 == "cartwatch_notify_waiting_records" { print $2 }')
echo "$waiting abandonments waiting for --delay 1h (plus $n delivered earlier, in the same topic): RSS $((rss1 / 1024)) MiB, 10 s later $((rss2 / 1024)) MiB; cartwatch_notify_waiting_records $waiting_now"
