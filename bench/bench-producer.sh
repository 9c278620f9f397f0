#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-producer — cartwatch-producer throughput against kcat, in one run.
#
#   bench/bench-producer.sh            (or `meson test --benchmark producer`)
#   N=1000000 TRIALS=3 USERS=200000 bench/bench-producer.sh
#
# Each trial starts a fresh embedded broker (cartwatch-devbroker: the mock
# cluster, so the broker costs the same for both sides) and times:
#   producer  cartwatch-producer --rate 0 --events N: simulate, encode and
#             produce N events and wait for every delivery report;
#   kcat      kcat -P sending the very same N messages (same keys, same
#             bytes), pre-encoded with --output --format avro and split by a
#             10 x 0xFF delimiter that cannot occur in them (see
#             bench-producer-kcatfeed.c), read with -l (mmap'ed file),
#             with the producer's librdkafka settings (idempotence, linger,
#             batch sizes), also waiting for all delivery reports.
# So kcat does strictly less work (no simulation, no encoding). Both counts
# are checked on the broker (high watermarks). Reported: events/s of each
# (best of TRIALS), and their ratio. Then heap allocations per event, with
# valgrind: for the file sink (our code alone) and for the Kafka sink
# (librdkafka copies each message: RD_KAFKA_MSG_F_COPY, one malloc inside
# rd_kafka_produce()).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
kcatfeed=${CARTWATCH_KCATFEED:-$build/bench/bench-producer-kcatfeed}
n=${N:-1000000}
trials=${TRIALS:-3}
partitions=4
bench_start broker_pid

# The same librdkafka tuning for both sides (the producer's built-in
# defaults, see producer/sink.c).
kafka_props=(-X enable.idempotence=true -X linger.ms=20
	-X batch.num.messages=100000 -X batch.size=1000000
	-X queue.buffering.max.messages=1000000
	-X queue.buffering.max.kbytes=1048576
	-X sticky.partitioning.linger.ms=20)
sim=(--rate 0 --events "$n" --users "${USERS:-200000}" --duration 0 --seed 1
	--start-time 2024-07-16T00:00:00Z)

start_broker() { start_devbroker "bench:$partitions"; }
stop_broker() { stop_proc broker_pid devbroker '*'; }
# Messages on the broker: the sum of the partitions' high watermarks.
broker_count() { offsets_sum bench "$partitions" -1; }
# time_it CMD...: run CMD, print its wall time in seconds.
time_it() {
	local t0=$EPOCHREALTIME
	"$@"
	elapsed "$t0" "$EPOCHREALTIME"
}

echo "pre-encoding $n events for kcat..."
"$producer" "${sim[@]}" -o "$work/events.avro" --format avro 2>/dev/null
"$kcatfeed" "$work/events.avro" >"$work/kcat.in"

best_p=0 best_k=0
for trial in $(seq "$trials"); do
	start_broker
	t=$(time_it "$producer" -b "$bs" -t bench "${sim[@]}" "${kafka_props[@]}" 2>"$work/producer.log")
	got=$(broker_count)
	[ "$got" = "$n" ] || { echo "producer: $got messages on the broker, want $n" >&2; cat "$work/producer.log" >&2; exit 1; }
	p=$(eps "$n" "$t"); stop_broker

	start_broker
	t=$(time_it kcat -P -q -b "$bs" -t bench -K '\t' \
		-D '\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff' "${kafka_props[@]}" -l "$work/kcat.in")
	got=$(broker_count)
	[ "$got" = "$n" ] || { echo "kcat: $got messages on the broker, want $n" >&2; exit 1; }
	k=$(eps "$n" "$t"); stop_broker

	echo "trial $trial: cartwatch-producer $p events/s, kcat -P $k events/s"
	[ "$p" -gt "$best_p" ] && best_p=$p
	[ "$k" -gt "$best_k" ] && best_k=$k
done
ratio=$(awk -v a="$best_p" -v b="$best_k" 'BEGIN {printf "%.2f", a / b}')
echo "RESULT events=$n cartwatch_producer_eps=$best_p kcat_eps=$best_k ratio=$ratio (best of $trials, $(nproc) CPUs)"

# Heap allocations per event: the difference between two run lengths, so
# start-up allocations cancel out.
if command -v valgrind >/dev/null; then
	allocs() { # SINK-ARGS...: total heap allocations of a run
		valgrind --tool=memcheck "$@" 2>&1 >/dev/null |
			sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' | tr -d ,
	}
	small=20000 large=40000
	base=(--rate 0 --users 1000 --duration 0 --seed 1 --start-time 2024-07-16T00:00:00Z --log-level warn)
	f1=$(allocs "$producer" "${base[@]}" --events $small -o /dev/null --format avro)
	f2=$(allocs "$producer" "${base[@]}" --events $large -o /dev/null --format avro)
	start_broker
	k1=$(allocs "$producer" "${base[@]}" --events $small -b "$bs" -t bench)
	k2=$(allocs "$producer" "${base[@]}" --events $large -b "$bs" -t bench)
	stop_broker
	awk -v f1="$f1" -v f2="$f2" -v k1="$k1" -v k2="$k2" -v d=$((large - small)) 'BEGIN {
		printf "ALLOCS file sink: %.3f allocations/event (%d vs %d for %d more events)\n", (f2 - f1) / d, f1, f2, d
		printf "ALLOCS kafka sink: %.3f allocations/event (librdkafka copying each message)\n", (k2 - k1) / d }'
else
	echo "ALLOCS skipped: valgrind not installed"
fi
