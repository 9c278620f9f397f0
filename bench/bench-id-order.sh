#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-id-order.sh — why abandonment and conversion ids are time-ordered.
#
# Inserts ROUNDS x ROWS abandoned_items-shaped rows (uuid, text, int,
# bigint; primary key (uuid, text)) into two tables in the same run: one
# with random ids (the first id scheme: 128 hash bits), one with ids whose
# first 48 bits are the time in ms (processor/partition.c derive_uuid()),
# each round a later time window, as flushes bring them. The ids and rows
# are generated beforehand, so only the inserts are timed; the two sides
# alternate which goes first. A random key lands on any page of the
# primary-key index, a time-ordered one near its right edge, so the gap
# grows with the table.
#
# Runs against the PostgreSQL of the PG* environment variables, e.g.
#   tests/run-with-servers --pg -- bench/bench-id-order.sh
#   ROUNDS=8 ROWS=500000 tests/run-with-servers --pg -- bench/bench-id-order.sh
set -euo pipefail
rounds=${ROUNDS:-6}
rows=${ROWS:-300000}
psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
time_now() { echo "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$(time_now)" 'BEGIN {printf "%.0f", (b - a) * 1000}'; }

psql_ -c "DROP TABLE IF EXISTS id_random, id_ordered, id_src_random, id_src_ordered" 2>/dev/null
psql_ -c "CREATE TABLE id_random (abandonment_id uuid, product_id text, quantity int,
            unit_price_cents bigint, PRIMARY KEY (abandonment_id, product_id))" \
      -c "CREATE TABLE id_ordered (LIKE id_random INCLUDING ALL)" \
      -c "CREATE TABLE id_src_random (round int, abandonment_id uuid, product_id text)" \
      -c "CREATE TABLE id_src_ordered (LIKE id_src_random)"
# 2.5 items per abandonment, as in the simulator's carts; each round's
# session starts spread over the round's 10 minutes of event time.
psql_ -c "
INSERT INTO id_src_random
SELECT r, gen_random_uuid(), 'p-' || i
  FROM generate_series(1, $rounds) r, generate_series(1, $rows * 2 / 5) a,
       generate_series(1, 2 + (a % 2)) i
 WHERE (a % 2 = 1 OR i <= 2)" \
      -c "
INSERT INTO id_src_ordered
SELECT round, (lpad(to_hex(1783468800000 + round * 600000 + (random() * 600000)::bigint), 12, '0')
               || substr(replace(abandonment_id::text, '-', ''), 13))::uuid, product_id
  FROM id_src_random"
n=$(psql_ -c "SELECT count(*) / $rounds FROM id_src_random")
echo "bench-id-order: $rounds rounds of $n rows into a (uuid, text) primary key"

tot_r=0 tot_o=0
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="random ordered"; else order="ordered random"; fi
	for side in $order; do
		t0=$(time_now)
		psql_ -c "INSERT INTO id_$side SELECT abandonment_id, product_id, 1, 100
		            FROM id_src_$side WHERE round = $r"
		ms=$(ms_since "$t0")
		if [ "$side" = random ]; then rms=$ms tot_r=$((tot_r + ms)); else oms=$ms tot_o=$((tot_o + ms)); fi
	done
	echo "round $r: table at $((r * n)) rows: random ids $rms ms, time-ordered ids $oms ms"
done
awk -v r="$tot_r" -v o="$tot_o" 'BEGIN {
	printf "RESULT id-order rows=%d random_ms=%d ordered_ms=%d ordered/random=%.2f\n", '"$((rounds * n))"', r, o, o / r }'
psql_ -c "DROP TABLE id_random, id_ordered, id_src_random, id_src_ordered"
