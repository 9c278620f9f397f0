#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-producer-json — cartwatch-producer without a broker: the --stdin-json
# feeder on common/cw_event_json (fills event_id with UUIDv7s unique across
# runs, event_time, the price from the built-in catalog or --catalog FILE;
# refuses a product with no price, naming it; keeps given fields; reports
# bad lines with their line number and field, counts and skips them,
# --strict stops),
# byte-identical --output for a fixed seed and start time, Avro framing,
# usage errors (exit 2), an unreachable broker (exit 1, bounded time) and
# Kafka properties librdkafka refuses (exit 1, named).
# Needs CARTWATCH_PRODUCER (set by meson); honours CARTWATCH_TEST_WRAPPER.
set -euo pipefail

producer=${CARTWATCH_PRODUCER:?run through meson test}
slow=${CARTWATCH_SLOW:-1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/producer-json.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0

# shellcheck disable=SC2086 # the wrapper is a command line
run() { ${CARTWATCH_TEST_WRAPPER:-} "$producer" "$@"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok   $*"; }
# expect_status WANT NAME CMD...: run CMD, compare its exit status.
expect_status() {
	local want=$1 name=$2 got=0
	shift 2
	"$@" || got=$?
	if [ "$got" = "$want" ]; then pass "$name (exit $got)"; else fail "$name: exit $got, want $want"; fi
}
# check NAME JQ-EXPR FILE: the jq expression (over all lines, slurped) is true.
check() {
	if jq -e -s "$2" "$3" >/dev/null; then pass "$1"; else fail "$1: $2 on $3:"; cat "$3" >&2; fi
}
grep_check() { # NAME PATTERN FILE
	if grep -q -- "$2" "$3"; then pass "$1"; else fail "$1: no '$2' in $3:"; cat "$3" >&2; fi
}

# --- valid lines: given fields kept, missing ones filled --------------------
# The first line is issue 10's example, byte for byte.
cat >"$work/good.jsonl" <<'JSON'
{"user_id": "user_10", "product_id": "MACBOOK_PRO_2023", "event_type": "cart_remove", "reason": "Too expensive"}
{"user_id":"user_11","product_id":"ECHO_DOT_5TH_GEN","event_type":"cart_add","quantity":3,"unit_price_cents":1999,"currency":"EUR","event_time":1721088000123,"event_id":"00000000-0000-4000-8000-000000000001"}

{"user_id":"user_11","event_type":"checkout_complete","event_time":"2024-07-16T02:00:00.5+02:00"}
{"user_id":"user_12","product_id":"NOT_IN_CATALOG","event_type":"cart_add","unit_price_cents":250}
JSON
before=$(date +%s%3N)
expect_status 0 "valid lines" run --stdin-json -o "$work/good.out" --seed 5 \
	--summary-json "$work/good.sum" <"$work/good.jsonl" 2>"$work/good.err"
after=$(date +%s%3N)
check "four events out, blank line ignored" 'length == 4' "$work/good.out"
uuid7='^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
check "event_id filled with a UUIDv7" ".[0].event_id | test(\"$uuid7\")" "$work/good.out"
check "UUIDv7 carries the time" "(.[0].event_id | gsub(\"-\"; \"\") | .[0:12]) as \$h | ([\$h | explode[] | if . < 97 then . - 48 else . - 87 end] | reduce .[] as \$d (0; . * 16 + \$d)) as \$ms | \$ms >= $before and \$ms <= $after" "$work/good.out"
check "event_time filled with now" ".[0].event_time >= $before and .[0].event_time <= $after" "$work/good.out"
# MACBOOK_PRO_2023: list 1999.99, Prime-Day deal 15% -> 1699.99 -> .99 price 1698.99.
check "price filled from the built-in catalog" '.[0].unit_price_cents == 169899' "$work/good.out"
check "reason and type kept" '.[0].reason == "Too expensive" and .[0].event_type == "cart_remove" and .[0].quantity == 1 and .[0].currency == "USD"' "$work/good.out"
check "given fields kept" '.[1] | .quantity == 3 and .unit_price_cents == 1999 and .currency == "EUR" and .event_time == 1721088000123 and .event_id == "00000000-0000-4000-8000-000000000001"' "$work/good.out"
check "RFC 3339 event_time with offset" '.[2].event_time == 1721088000500 and .[2].product_id == null' "$work/good.out"
check "unknown product with its own price: sent" '.[3].unit_price_cents == 250 and .[3].product_id == "NOT_IN_CATALOG"' "$work/good.out"
check "summary totals" '.[0] | .events_total == 4 and .events_by_type.cart_add == 2 and .invalid_lines == 0 and .products.ECHO_DOT_5TH_GEN.added_qty == 3 and .products.NOT_IN_CATALOG.added_qty == 1 and .products.MACBOOK_PRO_2023.removed_qty == 1' "$work/good.sum"

# --- event ids unique across runs (the same seed gave the same ids) ---------
expect_status 0 "second run, same input and seed" run --stdin-json -o "$work/good2.out" --seed 5 \
	<"$work/good.jsonl" 2>/dev/null
if jq -e -n --slurpfile a "$work/good.out" --slurpfile b "$work/good2.out" \
	'$a[0].event_id != $b[0].event_id and $a[2].event_id != $b[2].event_id and $a[1].event_id == $b[1].event_id' >/dev/null
then pass "generated ids differ between runs, given ones kept"; else fail "ids across runs:"; cat "$work/good.out" "$work/good2.out" >&2; fi
check "ids unique within a run" '[.[].event_id] | length == (unique | length)' "$work/good.out"

# --- no price anywhere: refused, naming the product, never a silent 0 -------
cat >"$work/noprice.jsonl" <<'JSON'
{"user_id":"u1","product_id":"ECHO_POP","event_type":"cart_add"}
{"user_id":"u2","product_id":"GHOST_PRODUCT","event_type":"cart_add"}
{"user_id":"u3","product_id":"ECHO_POP","event_type":"cart_add","event_time":"2099-01-01T00:00:00Z"}
{"user_id":"u4","product_id":"ECHO_POP","event_type":"cart_add"}
JSON
expect_status 0 "unknown product skipped" run --stdin-json -o "$work/noprice.out" \
	--summary-json "$work/noprice.sum" <"$work/noprice.jsonl" 2>"$work/noprice.err"
grep_check "unknown product named" "level=warn.*line=2 field=product_id problem=\"unknown product 'GHOST_PRODUCT'" "$work/noprice.err"
grep_check "future event_time refused (clock skew)" 'level=warn.*line=3 field=event_time problem="is .* ahead' "$work/noprice.err"
check "no event without a price sent" '[.[].user_id] == ["u1","u4"] and all(.[]; .unit_price_cents > 0)' "$work/noprice.out"
check "refused lines counted" '.[0].invalid_lines == 2' "$work/noprice.sum"
expect_status 1 "unknown product stops --strict" run --stdin-json --strict -o /dev/null \
	<"$work/noprice.jsonl" 2>"$work/noprice-strict.err"
grep_check "--strict names the product" "level=error.*line=2 field=product_id problem=\"unknown product 'GHOST_PRODUCT'" "$work/noprice-strict.err"

# --- --catalog: the shop's price list, as the gateway reads it --------------
cat >"$work/shop.csv" <<'CSV'
product_id,name,unit_price_cents,currency
MACBOOK_PRO_2023,"MacBook Pro, 14""",123456,USD
SHOP_MUG,Mug,899,EUR
CSV
cat >"$work/shop.jsonl" <<'JSON'
{"user_id": "user_10", "product_id": "MACBOOK_PRO_2023", "event_type": "cart_remove", "reason": "Too expensive"}
{"user_id":"u2","product_id":"SHOP_MUG","event_type":"cart_add","quantity":2}
{"user_id":"u3","product_id":"ECHO_POP","event_type":"cart_add"}
JSON
expect_status 0 "--catalog" run --stdin-json --catalog "$work/shop.csv" -o "$work/shop.out" \
	--summary-json "$work/shop.sum" <"$work/shop.jsonl" 2>"$work/shop.err"
check "catalog price wins over the built-in one" '.[0].unit_price_cents == 123456 and .[0].currency == "USD"' "$work/shop.out"
check "catalog-only product priced, its currency" '.[1] | .unit_price_cents == 899 and .currency == "EUR" and .quantity == 2' "$work/shop.out"
check "with --catalog, only the shop's products have prices" 'length == 2' "$work/shop.out"
grep_check "built-in product not in --catalog refused" "line=3 field=product_id problem=\"unknown product 'ECHO_POP'.*not in the catalog" "$work/shop.err"
check "summary values from catalog prices" '.[0].products.SHOP_MUG.value_added_cents == 1798' "$work/shop.sum"
expect_status 1 "missing --catalog file" run --stdin-json --catalog "$work/nope.csv" -o /dev/null \
	</dev/null 2>"$work/nocat.err"
grep_check "missing catalog named" "level=error.*cannot load the catalog.*nope.csv" "$work/nocat.err"
printf 'product_id,unit_price_cents\nX,cheap\n' >"$work/bad.csv"
expect_status 1 "malformed --catalog file" run --stdin-json --catalog "$work/bad.csv" -o /dev/null \
	</dev/null 2>"$work/badcat.err"
grep_check "malformed catalog names the line" "level=error.*cannot load the catalog.*bad.csv:2: unit_price_cents" "$work/badcat.err"

# --- bad lines: named by number, counted, skipped; valid ones all sent ------
cat >"$work/bad.jsonl" <<'JSON'
{"user_id":"u1","product_id":"ECHO_POP","event_type":"cart_add"}
{"user_id":"u2","product_id":"ECHO_POP",
{"user_id":"u3","product_id":"ECHO_POP","event_type":"cart_explode"}
{"product_id":"ECHO_POP","event_type":"cart_add"}
{"user_id":"u5","product_id":"ECHO_POP","event_type":"cart_add","quantity":-2}
{"user_id":"u6","product_id":"ECHO_POP","event_type":"cart_add","quantity":2}
JSON
expect_status 0 "bad lines skipped" run --stdin-json -o "$work/bad.out" \
	--summary-json "$work/bad.sum" <"$work/bad.jsonl" 2>"$work/bad.err"
grep_check "bad JSON named with its line" 'level=warn.*line=2 field=json problem="bad JSON at column' "$work/bad.err"
grep_check "unknown event_type named" "level=warn.*line=3 field=event_type problem=\"'cart_explode' is not cart_add" "$work/bad.err"
grep_check "missing user_id named" 'level=warn.*line=4 field=user_id problem="missing' "$work/bad.err"
grep_check "negative quantity named" 'level=warn.*line=5 field=quantity problem="-2 is not in 1' "$work/bad.err"
check "only the valid lines sent" '[.[].user_id] == ["u1","u6"]' "$work/bad.out"
check "invalid lines counted" '.[0].invalid_lines == 4 and .[0].events_total == 2' "$work/bad.sum"

# --- --strict: stop at the first bad line, exit 1 ---------------------------
expect_status 1 "--strict stops" run --stdin-json --strict -o "$work/strict.out" \
	<"$work/bad.jsonl" 2>"$work/strict.err"
grep_check "--strict names the line" 'level=error.*line=2' "$work/strict.err"
check "--strict sent what came before" '[.[].user_id] == ["u1"]' "$work/strict.out"

# --- simulation output: deterministic, Avro framing -------------------------
sim=(--rate 0 --events 5000 --users 500 --start-time 2024-07-16T00:00:00Z)
run "${sim[@]}" --seed 9 -o "$work/a.jsonl" 2>/dev/null
run "${sim[@]}" --seed 9 -o "$work/b.jsonl" 2>/dev/null
run "${sim[@]}" --seed 10 -o "$work/c.jsonl" 2>/dev/null
if cmp -s "$work/a.jsonl" "$work/b.jsonl"; then pass "same seed: byte-identical"; else fail "same seed gave different output"; fi
if ! cmp -s "$work/a.jsonl" "$work/c.jsonl"; then pass "other seed: other output"; else fail "seeds 9 and 10 gave the same output"; fi
check "--events 5000 gives 5000 lines" 'length == 5000' "$work/a.jsonl"
check "event times from the simulated clock" '.[0].event_time >= 1721088000000 and .[-1].event_time < 1721088000000 + 48*3600*1000' "$work/a.jsonl"
run "${sim[@]}" --seed 9 -o "$work/a.avro" --format avro 2>/dev/null
# Walk the 4-byte big-endian length prefixes; every message is framed.
if python3 - "$work/a.avro" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
off = n = 0
while off < len(data):
    (length,) = struct.unpack(">I", data[off:off + 4])
    msg = data[off + 4:off + 4 + length]
    assert len(msg) == length and msg[:2] == b"\xc3\x01", (n, off)
    off += 4 + length
    n += 1
assert n == 5000, n
PY
then pass "avro output: 5000 length-prefixed framed messages"; else fail "avro output framing"; fi

# --- usage errors: exit 2 ---------------------------------------------------
expect_status 0 "--help" run --help >/dev/null
expect_status 2 "unknown flag" run --bogus 2>"$work/usage.err"
grep_check "usage error says what is wrong" "unknown option" "$work/usage.err"
expect_status 2 "non-numeric --users" run --users many 2>/dev/null
expect_status 2 "--users 0" run --users 0 2>/dev/null
expect_status 2 "negative --rate" run --rate -5 2>/dev/null
expect_status 2 "bad --format" run --format xml -o - 2>/dev/null
expect_status 2 "bad --start-time" run --start-time yesterday 2>/dev/null
expect_status 2 "bad --duration" run --duration soon 2>/dev/null
expect_status 2 "zero --time-scale" run --time-scale 0 2>/dev/null
expect_status 2 "bad environment value" env CARTWATCH_EVENTS=lots "$producer" -o /dev/null 2>/dev/null

# --- broker unreachable: exit 1 within a bounded time -----------------------
port=$("$here/lib/free-port")
t0=$SECONDS
expect_status 1 "unreachable broker" env CARTWATCH_BOOTSTRAP_SERVERS="127.0.0.1:$port" \
	${CARTWATCH_TEST_WRAPPER:-} "$producer" --connect-timeout 2s --events 10 2>"$work/unreach.err"
elapsed=$((SECONDS - t0))
if [ "$elapsed" -le $((10 * slow)) ]; then pass "gave up after ${elapsed}s"; else fail "took ${elapsed}s to give up"; fi
grep_check "error names the broker" "level=error.*broker unreachable.*127.0.0.1:$port" "$work/unreach.err"

# --- librdkafka refuses: exit 1 naming what --------------------------------
expect_status 1 "a bogus -X property" run -b 127.0.0.1:1 -X bogus.property=1 --events 1 2>"$work/badx.err"
grep_check "the error names the property" "level=error.*Kafka property bogus.property: " "$work/badx.err"
# The built-in enable.idempotence=true wants acks=all.
expect_status 1 "a producer librdkafka will not create" run -b 127.0.0.1:1 -X acks=1 --events 1 2>"$work/acks.err"
grep_check "the error says which client" "level=error.*cannot create the Kafka producer: .*acks" "$work/acks.err"

if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
