#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-producer-json — cartwatch-producer without a broker: the --stdin-json
# feeder (fills event_id/event_time/price, keeps given fields, reports bad
# lines with their line number, counts and skips them, --strict stops),
# byte-identical --output for a fixed seed and start time, Avro framing,
# usage errors (exit 2) and an unreachable broker (exit 1, bounded time).
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
cat >"$work/good.jsonl" <<'JSON'
{"user_id":"user_10","product_id":"MACBOOK_PRO_2023","event_type":"cart_remove","reason":"Too expensive"}
{"user_id":"user_11","product_id":"ECHO_DOT_5TH_GEN","event_type":"cart_add","quantity":3,"unit_price_cents":1999,"currency":"EUR","event_time":1721088000123,"event_id":"00000000-0000-4000-8000-000000000001"}

{"user_id":"user_11","event_type":"checkout_complete","event_time":"2024-07-16T02:00:00.5+02:00"}
{"user_id":"user_12","product_id":"NOT_IN_CATALOG","event_type":"cart_add"}
JSON
before=$(date +%s%3N)
expect_status 0 "valid lines" run --stdin-json -o "$work/good.out" --seed 5 \
	--summary-json "$work/good.sum" <"$work/good.jsonl" 2>"$work/good.err"
after=$(date +%s%3N)
check "four events out, blank line ignored" 'length == 4' "$work/good.out"
check "event_id filled with a UUIDv4" \
	'.[0].event_id | test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")' "$work/good.out"
check "event_time filled with now" ".[0].event_time >= $before and .[0].event_time <= $after" "$work/good.out"
# MACBOOK_PRO_2023: list 1999.99, Prime-Day deal 15% -> 1699.99 -> .99 price 1698.99.
check "price filled from the catalog" '.[0].unit_price_cents == 169899' "$work/good.out"
check "reason and type kept" '.[0].reason == "Too expensive" and .[0].event_type == "cart_remove" and .[0].quantity == 1 and .[0].currency == "USD"' "$work/good.out"
check "given fields kept" '.[1] | .quantity == 3 and .unit_price_cents == 1999 and .currency == "EUR" and .event_time == 1721088000123 and .event_id == "00000000-0000-4000-8000-000000000001"' "$work/good.out"
check "RFC 3339 event_time with offset" '.[2].event_time == 1721088000500 and .[2].product_id == null' "$work/good.out"
check "unknown product: price 0, still sent" '.[3].unit_price_cents == 0 and .[3].product_id == "NOT_IN_CATALOG"' "$work/good.out"
check "summary totals" '.[0] | .events_total == 4 and .events_by_type.cart_add == 2 and .invalid_lines == 0 and .products.ECHO_DOT_5TH_GEN.added_qty == 3 and .products.NOT_IN_CATALOG.added_qty == 1 and .products.MACBOOK_PRO_2023.removed_qty == 1' "$work/good.sum"

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
grep_check "bad JSON named with its line" 'level=warn.*line=2 problem="bad JSON' "$work/bad.err"
grep_check "unknown event_type named" "level=warn.*line=3 problem=\"unknown event_type 'cart_explode'" "$work/bad.err"
grep_check "missing user_id named" 'level=warn.*line=4 problem="missing user_id' "$work/bad.err"
grep_check "negative quantity named" 'level=warn.*line=5 problem="negative quantity -2' "$work/bad.err"
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

if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
