#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-gateway — cartwatch-gateway over loopback HTTP against
# cartwatch-producer --stdin-json sending the same events to the same kind
# of broker, in one run.
#
#   bench/bench-gateway.sh                  (needs wrk: apt-get install wrk)
#   N=200000 DURATION=10 CONNECTIONS=16 bench/bench-gateway.sh
#
# Each part starts a fresh embedded broker (cartwatch-devbroker, so the
# broker costs the same for both sides):
#   feeder   cartwatch-producer --stdin-json reads N simulated events as
#            JSON lines and produces them, waiting for every delivery
#            report: events/s;
#   batch    wrk POSTs bodies of 100 of the same events (NDJSON, rotating
#            over N/100 bodies) to /v1/events for DURATION seconds on
#            CONNECTIONS keep-alive connections; every 202 means Kafka
#            acknowledged all 100: events/s, and its ratio to the feeder;
#   single   the same with one event a request: requests/s, p50 and p99
#            latency (wrk's, from request written to answer read).
# The topic's high watermarks are checked against the 202s counted by the
# gateway (cartwatch_gateway_events_accepted_total), so a 202 for an event
# that is not on the topic would show.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
gateway=${CARTWATCH_GATEWAY:-$build/gateway/cartwatch-gateway}
n=${N:-200000}
duration=${DURATION:-10}
conns=${CONNECTIONS:-16}
partitions=4
need wrk wrk
bench_start gw_pid broker_pid

start_broker() { start_devbroker "cart-events:$partitions"; }
topic_count() { offsets_sum cart-events "$partitions" -1; }

# The events: simulated, as JSON lines, stamped around now (the gateway
# refuses events far in the future, not old ones).
"$producer" --rate 0 --events "$n" --users $((n / 5)) --seed 1 -o "$work/events.jsonl" 2>/dev/null
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
lines = open(f"{work}/events.jsonl").read().splitlines()
with open(f"{work}/bodies.lua", "w") as out:
    out.write("bodies = {}\n")
    for i in range(0, len(lines) - 99, 100):
        body = "\n".join(lines[i:i + 100]) + "\n"
        out.write("bodies[#bodies + 1] = [==[" + body + "]==]\n")
    out.write("singles = {}\n")
    for line in lines[:1000]:
        out.write("singles[#singles + 1] = [==[" + line + "]==]\n")
PY
cat >"$work/batch.lua" <<LUA
dofile("$work/bodies.lua")
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
request = function()
	i = i % #bodies + 1
	return wrk.format(nil, "/v1/events", nil, bodies[i])
end
local non202 = 0
response = function(status, headers, body)
	if status ~= 202 then non202 = non202 + 1 end
end
done = function(summary, latency, requests)
	io.write(string.format("non202=%d\n", non202))
end
LUA
sed -e 's/bodies\[i\]/singles[i]/; s/#bodies/#singles/; s#application/x-ndjson#application/json#' \
	"$work/batch.lua" >"$work/single.lua"

# 1. The feeder.
start_broker
t0=$(date +%s.%N)
"$producer" -b "$bs" --stdin-json <"$work/events.jsonl" 2>"$work/feeder.log"
t1=$(date +%s.%N)
fed=$(topic_count)
[ "$fed" = "$n" ] || { echo "feeder: $fed of $n events on the topic" >&2; exit 1; }
feeder_rate=$(python3 -c "print(round($n / ($t1 - $t0)))")
echo "feeder: $n events in $(python3 -c "print(round($t1 - $t0, 2))") s = $feeder_rate events/s"

# 2. and 3. The gateway.
run_gateway() { # NAME LUA
	start_broker
	port=$(free_port)
	"$gateway" -b "$bs" --listen "127.0.0.1:$port" 2>"$work/gateway-$1.log" &
	gw_pid=$!
	wait_until -p "$gw_pid" "$work/gateway-$1.log" gateway 15 0.05 "$1: gateway not healthy in 15 s" \
		http_ok "http://127.0.0.1:$port/healthz"
	wrk -t 2 -c "$conns" -d "${duration}s" --latency -s "$2" "http://127.0.0.1:$port" >"$work/wrk-$1.txt"
	accepted=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "cartwatch_gateway_events_accepted_total" { print $2 }')
	stop_proc gw_pid "$1: gateway"
	on_topic=$(topic_count)
	grep -q "^non202=0$" "$work/wrk-$1.txt" || { cat "$work/wrk-$1.txt" >&2; echo "$1: answers other than 202" >&2; exit 1; }
	[ "${accepted%.*}" -le "$on_topic" ] || { echo "$1: $accepted accepted but $on_topic on the topic" >&2; exit 1; }
}
run_gateway batch "$work/batch.lua"
reqs=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk-batch.txt")
batch_rate=$(python3 -c "print(round($reqs * 100))")
echo "gateway, batches of 100: $batch_rate events/s ($reqs requests/s, $on_topic events on the topic); ratio to the feeder $(python3 -c "print(round($batch_rate / $feeder_rate, 2))")x"
run_gateway single "$work/single.lua"
reqs=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk-single.txt")
p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk-single.txt")
p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk-single.txt")
echo "gateway, one event a request: $reqs requests/s, latency p50 $p50, p99 $p99 ($conns keep-alive connections)"
