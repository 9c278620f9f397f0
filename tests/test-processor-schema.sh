#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-processor-schema.sh — a processor reads cart events written with
# another writer schema: a v2 producer (cart_event.avsc plus an optional
# coupon_code), known through --schema-dir, is sessionized like any other
# event; a record of a writer schema that cannot be resolved (user_id as an
# int) and one with an unknown fingerprint are dead-lettered with reasons
# that say so. The records are written with python3-avro, not our encoder.
# Runs under run-with-servers --pg --kafka embedded.
set -euo pipefail
proc=${CARTWATCH_PROCESSOR:?} build=${CARTWATCH_BUILD_ROOT:?}
work=${CARTWATCH_TEST_DIR:?} bs=${CARTWATCH_BOOTSTRAP_SERVERS:?}
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
fail() { echo "FAIL: $*" >&2; [ -f "$work/p.log" ] && tail -20 "$work/p.log" >&2; exit 1; }
wait_for() { # SECONDS WHAT CMD...
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		[ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
		sleep 0.1
	done
}
py=python3
/usr/bin/python3 -c 'import avro' 2>/dev/null && py=/usr/bin/python3
$py -c 'import avro' || fail "python module avro missing (apt-get install python3-avro)"

mkdir -p "$work/schemas"
python3 - "$CARTWATCH_SOURCE_ROOT/schemas/cart_event.avsc" "$work/schemas" <<'PY'
import json, sys
v1 = json.load(open(sys.argv[1]))
v2 = json.loads(json.dumps(v1))
v2["fields"].append({"name": "coupon_code", "type": ["null", "string"], "default": None})
json.dump(v2, open(sys.argv[2] + "/cart_event.v2.avsc", "w"))
bad = json.loads(json.dumps(v1))
for f in bad["fields"]:
    if f["name"] == "user_id":
        f["type"] = "int"
json.dump(bad, open(sys.argv[2] + "/user-id-int.avsc", "w"))
PY

# One framed record: fingerprint from cw_schema (checked against python3-avro
# by the fingerprint test), body from python3-avro's DatumWriter.
record() { # SCHEMA_FILE JSON_DATUM
	local fp
	fp=$("$build/tests/test-schema" --print-pcf "$1" | sed -n 's/^fingerprint //p')
	$py - "$1" "$fp" "$2" <<'PY'
import datetime, io, json, struct, sys
import avro.io, avro.schema
s = avro.schema.parse(open(sys.argv[1]).read())
datum = json.loads(sys.argv[3])
# event_time is a timestamp-millis: python3-avro wants a datetime.
datum["event_time"] = datetime.datetime.fromtimestamp(datum["event_time"] / 1000, datetime.timezone.utc)
buf = io.BytesIO()
avro.io.DatumWriter(s).write(datum, avro.io.BinaryEncoder(buf))
sys.stdout.buffer.write(b"\xc3\x01" + struct.pack("<Q", int(sys.argv[2], 16)) + buf.getvalue())
PY
}
t=1783468800000 # 2026-07-08T00:00:00Z
record "$work/schemas/cart_event.v2.avsc" "{\"event_id\":\"00000000-0000-4000-8000-0000000000a2\",\"event_type\":\"cart_add\",\"event_time\":$t,\"user_id\":\"u-v2\",\"product_id\":\"sku-1\",\"quantity\":3,\"unit_price_cents\":250,\"currency\":\"EUR\",\"reason\":null,\"coupon_code\":\"SAVE10\"}" >"$work/v2.bin"
record "$work/schemas/user-id-int.avsc" "{\"event_id\":\"00000000-0000-4000-8000-0000000000b1\",\"event_type\":\"cart_add\",\"event_time\":$t,\"user_id\":7,\"product_id\":\"sku-1\",\"quantity\":1,\"unit_price_cents\":1,\"currency\":\"USD\",\"reason\":null}" >"$work/bad.bin"
# The v2 record under a fingerprint nobody knows.
{ printf '\xc3\x01\x11\x22\x33\x44\x55\x66\x77\x88'; tail -c +11 "$work/v2.bin"; } >"$work/unknown.bin"
kcat -P -b "$bs" -t cart-events -k u-v2 "$work/v2.bin"
kcat -P -b "$bs" -t cart-events -k u-int "$work/bad.bin"
kcat -P -b "$bs" -t cart-events -k u-unknown "$work/unknown.bin"

# Once the partition is idle its watermark runs at 1e6x: the 10-minute
# session of the v2 cart closes within a second.
"$proc" --schema-dir "$work/schemas" --session-timeout 10m --idle-timeout 1s \
	--time-scale 1000000 --flush-interval 200ms -X session.timeout.ms=6000 \
	>"$work/p.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
committed() { [ "$(sql "SELECT coalesce(sum(next_offset), 0) FROM cw_partitions WHERE next_offset > 0" 2>/dev/null || echo 0)" = 3 ]; }
wait_for 60 "3 records committed" committed
abandoned() { [ "$(sql "SELECT count(*) FROM cart_abandonments WHERE user_id = 'u-v2'")" = 1 ]; }
wait_for 60 "the v2 cart to be abandoned" abandoned
row=$(sql "SELECT item_count, cart_value_cents, currency FROM cart_abandonments WHERE user_id = 'u-v2'")
[ "$row" = "3|750|EUR" ] || fail "v2 cart: got '$row', want 3|750|EUR"
# Its items, stored in the abandonment's row (011), read by the view.
row=$(sql "SELECT i.product_id, i.quantity, i.unit_price_cents FROM abandoned_items i
  JOIN cart_abandonments a USING (abandonment_id) WHERE a.user_id = 'u-v2'")
[ "$row" = "sku-1|3|250" ] || fail "v2 cart items: got '$row', want sku-1|3|250"
grep -q 'msg="writer schemas loaded" usable=2 refused=1' "$work/p.log" ||
	fail "start log does not count the writer schemas"
kill -TERM $pid
wait $pid || fail "processor did not stop cleanly"
trap - EXIT

dlq=$(kcat -C -b "$bs" -t cart-events-dlq -e -q -f '%k %h\n')
echo "$dlq" | grep -q '^u-int .*cannot be read as CartEvent: Field user_id' ||
	fail "incompatible writer not dead-lettered with its reason: $dlq"
echo "$dlq" | grep -q '^u-unknown .*unknown schema fingerprint 8877665544332211' ||
	fail "unknown fingerprint not dead-lettered as before: $dlq"
[ "$(echo "$dlq" | grep -c .)" = 2 ] || fail "expected 2 dead letters: $dlq"
echo "ok: v2 record sessionized; incompatible and unknown writers dead-lettered"
