#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-report — scripts/report on the run-with-servers PostgreSQL: the
# migrations apply with plain `psql -f` (as documented in them), and on a
# database with a few rows the report prints every section, the top-N
# limit and money per currency, counts a carried-over cart once, lists the
# abandonment causes, and exits 0; a bad option exits 2.
set -euo pipefail

source_root=${CARTWATCH_SOURCE_ROOT:?run through meson test}
: "${CARTWATCH_PG:?run through run-with-servers --pg}"
report=$source_root/scripts/report
work=${CARTWATCH_TEST_DIR:-$(mktemp -d)}
fail() { echo "test-report: $*" >&2; exit 1; }

psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE t_report'
db="$CARTWATCH_PG dbname=t_report"
for f in "$source_root"/migrations/[0-9][0-9][0-9]_*.sql; do
	psql -X -q -v ON_ERROR_STOP=1 -1 -d "$db" -f "$f"
done

# An empty database reports without errors.
"$report" --pg "$db" >/dev/null || fail "report failed on an empty database"

psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
INSERT INTO cart_abandonments (abandonment_id, user_id, session_start, last_activity_at,
    abandoned_at, item_count, cart_value_cents, currency, last_remove_reason,
    recovered_at, recovered_value_cents, kafka_partition)
SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'user-' || i,
       '2026-07-08 10:00Z'::timestamptz + i * interval '7 minutes',
       '2026-07-08 10:05Z'::timestamptz + i * interval '7 minutes',
       '2026-07-08 10:35Z'::timestamptz + i * interval '7 minutes',
       2, 123456 + i, 'USD', CASE WHEN i % 3 = 0 THEN 'too expensive' END,
       CASE WHEN i % 4 = 0 THEN '2026-07-08 10:40Z'::timestamptz + i * interval '8 minutes' END,
       CASE WHEN i % 4 = 0 THEN 100000 END, i % 4
FROM generate_series(1, 40) i;
-- One item per cart, in the abandonment's item arrays (011).
UPDATE cart_abandonments
SET item_product_ids = ARRAY['product-' || (abs(hashtext(abandonment_id::text)) % 15)],
    item_quantities = ARRAY[2], item_unit_price_cents = ARRAY[61728::bigint];
INSERT INTO cart_conversions (conversion_id, user_id, event_id, checkout_at, item_count,
    cart_value_cents, currency, recovered_abandonment_id, kafka_partition)
SELECT ('10000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'user-' || i, 'e' || i,
       '2026-07-08 12:00Z'::timestamptz + i * interval '1 minute', 1, 100000, 'USD',
       CASE WHEN i % 4 = 0 AND i <= 40 THEN ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid END,
       i % 4
FROM generate_series(1, 60) i;
INSERT INTO product_stats_minute_deltas (bucket, product_id, added_qty, removed_qty, purchased_qty,
    purchased_value_cents, abandoned_qty, abandoned_value_cents)
SELECT '2026-07-08 10:00Z'::timestamptz + i * interval '1 minute', 'product-' || (i % 15),
       5, 1, 2, 20000, 2, 123456
FROM generate_series(1, 60) i;
INSERT INTO remove_reasons_minute_deltas
SELECT '2026-07-08 10:00Z'::timestamptz + i * interval '1 minute', 'product-' || (i % 15),
       (ARRAY['too expensive', 'changed mind', 'found elsewhere'])[1 + i % 3], 1 + i % 5
FROM generate_series(1, 60) i;
-- EUR: eu1's cart carried over and abandoned again (missed once, 80.00 EUR),
-- eu2's cart abandoned after a removal (25.00 EUR).
INSERT INTO cart_abandonments (abandonment_id, user_id, session_start, last_activity_at,
    abandoned_at, item_count, cart_value_cents, currency, last_remove_reason,
    recovered_at, recovered_value_cents, kafka_partition)
VALUES ('20000000-0000-4000-8000-000000000001', 'eu1', '2026-07-08 13:00Z',
        '2026-07-08 13:05Z', '2026-07-08 13:35Z', 1, 5000, 'EUR', NULL, NULL, NULL, 0),
       ('20000000-0000-4000-8000-000000000002', 'eu1', '2026-07-08 14:00Z',
        '2026-07-08 14:05Z', '2026-07-08 14:35Z', 2, 8000, 'EUR', NULL, NULL, NULL, 0),
       ('20000000-0000-4000-8000-000000000003', 'eu2', '2026-07-08 13:10Z',
        '2026-07-08 13:15Z', '2026-07-08 13:45Z', 1, 2500, 'EUR', 'too expensive', NULL, NULL, 1);
SQL

out=$("$report" --pg "$db" --top 3 --hours 2) || fail "report exited $?"
printf '%s\n' "$out"
for title in 'Funnel (all time)' 'Recovery (all time)' \
	'Missed revenue by currency (all time; a cart abandoned again counts once)' \
	'Top abandoned products by value (top 3)' 'Why units left carts (top 3)' \
	'Why carts were abandoned (top 3)' \
	'Missed revenue per hour and currency, UTC (last 2 hours with abandonments)'; do
	grep -qF -- "$title" <<<"$out" || fail "missing section: $title"
done
grep -qF '$9,879.16' <<<"$out" || fail "no dollar amounts"
# --top 3: three product rows (product-N), --hours 2: two hours (rows per
# currency).
[ "$(grep -c '^ *product-' <<<"$out")" = 3 ] || fail "--top 3 not applied"
[ "$(grep -oE '^ *2026-07-08 [0-9:]+' <<<"$out" | sort -u | wc -l)" = 2 ] || fail "--hours 2 not applied"
# Recovered 5 + i minutes after abandoning, i = 4, 8, ..., 40: median 27:00.
grep -qE '43 +\| +10 +\| +23\.3% +\| +00:27:00' <<<"$out" || fail "recovery row wrong"
# Per currency, each cart missed once: EUR 3 abandonments, 2 missed carts
# (eu1's later one supersedes its first) worth 105.00 EUR, both carried
# over; USD 30 unrecovered carts, users 1..19 checked out later (not
# carried over), 10 recovered worth $10,000.00.
grep -qE '^ *EUR +\| +3 +\| +2 +\| +105\.00 EUR +\| +2 +\| +105\.00 EUR +\| +0 +\| +0\.00 EUR *$' \
	<<<"$out" || fail "EUR missed revenue row wrong"
usd_missed=$(psql -X -At -d "$db" -c "SELECT to_char(sum(cart_value_cents) / 100.0,
	'FM999,999,990.00') FROM cart_abandonments WHERE currency = 'USD' AND recovered_at IS NULL")
grep -qE "^ *USD +\| +40 +\| +30 +\| +\\\$$usd_missed +\| +[0-9]+ +\| +[^|]+\| +10 +\| +\\\$10,000\.00 *\$" \
	<<<"$out" || fail "USD missed revenue row wrong (want 30 carts, \$$usd_missed)"
# Causes: the USD carts without a reason, then 'too expensive' (13 + 1).
grep -qE '^ *\(nothing removed\) +\| +29 +\|' <<<"$out" || fail "causes: nothing removed wrong"
grep -qE '^ *too expensive +\| +14 +\|' <<<"$out" || fail "causes: too expensive wrong"
# Hourly: 14:00 misses eu1's cart at its last abandonment; 13:00 only eu2's
# (eu1's first abandonment there is superseded).
grep -qE '^ *2026-07-08 14:00 +\| +EUR +\| +1 +\| +0 +\| +80\.00 EUR +\| +0\.00 EUR +\| +1 +\| +80\.00 EUR *$' \
	<<<"$out" || fail "hourly EUR row at 14:00 wrong"
out3=$("$report" --pg "$db" --hours 3) || fail "report --hours 3 exited $?"
grep -qE '^ *2026-07-08 13:00 +\| +EUR +\| +2 +\| +0 +\| +75\.00 EUR +\| +0\.00 EUR +\| +1 +\| +25\.00 EUR *$' \
	<<<"$out3" || fail "hourly EUR row at 13:00 wrong"

# load-catalog: the gateway's catalog CSV (columns in any order, quoted
# fields with commas and quotes, an ignored column, optional currency,
# name and category) replaces product_catalog; categories as the file says,
# empty ones and unlisted products '(uncategorized)'.
cat >"$work/catalog.csv" <<'CSV'
name,product_id,stock,category,unit_price_cents,currency
"Echo Dot, 5th gen",ECHO_DOT,12,Smart Home,4999,USD
"The ""Pro"" laptop",MACBOOK_PRO,3,Computers,150000,
Cable,USB_C_CABLE,100,,999,EUR
CSV
out=$("$report" --pg "$db" load-catalog "$work/catalog.csv") || fail "load-catalog exited $?"
grep -qF "3 products in 2 categories" <<<"$out" || fail "load-catalog said: $out"
got=$(psql -X -At -d "$db" -c "SELECT string_agg(concat_ws('|', product_id, unit_price_cents,
	coalesce(currency, '-'), coalesce(name, '-'), coalesce(category, '-')), ';' ORDER BY product_id)
	FROM product_catalog")
[ "$got" = 'ECHO_DOT|4999|USD|Echo Dot, 5th gen|Smart Home;MACBOOK_PRO|150000|-|The "Pro" laptop|Computers;USB_C_CABLE|999|EUR|Cable|-' ] ||
	fail "product_catalog holds $got"
got=$(psql -X -At -d "$db" -c "SELECT string_agg(category, ',' ORDER BY category) FROM product_categories")
[ "$got" = '(uncategorized),Computers,Smart Home' ] || fail "product_categories: $got"
# A bad line refuses the file, naming it, and the table keeps its rows; so
# does a header without the required columns, a duplicate and a short line.
bad() { # WHAT WANT_MESSAGE CSV
	printf '%s' "$3" >"$work/bad.csv"
	local msg
	if msg=$("$report" --pg "$db" load-catalog "$work/bad.csv" 2>&1); then
		fail "load-catalog accepted $1"
	fi
	grep -qF -- "$2" <<<"$msg" || fail "load-catalog on $1 said: $msg (want $2)"
	[ "$(psql -X -At -d "$db" -c 'SELECT count(*) FROM product_catalog')" = 3 ] ||
		fail "load-catalog on $1 changed product_catalog"
}
bad "a negative price" "bad.csv:3: unit_price_cents must be a whole number" \
	$'product_id,unit_price_cents\nA,1\nB,-5\n'
bad "a price too large" "bad.csv:2: unit_price_cents must be a whole number" \
	$'product_id,unit_price_cents\nA,10000000001\n'
bad "a bad currency" "bad.csv:2: currency must be 3 capital letters" \
	$'product_id,unit_price_cents,currency\nA,1,usd\n'
bad "an empty product_id" "bad.csv:3: product_id must be 1 to 256 bytes" \
	$'product_id,unit_price_cents\nA,1\n,2\n'
bad "a duplicate" "bad.csv:4: product_id A is listed twice" \
	$'product_id,unit_price_cents\nA,1\nB,2\nA,3\n'
bad "no price column" "bad.csv:1: header must name the columns product_id and unit_price_cents" \
	$'product_id,price\nA,1\n'
bad "a short line" 'line 3' $'product_id,unit_price_cents,category\nA,1,x\nB,2\n'
bad "an empty file" "bad.csv:1: empty header" ""
msg=$("$report" --pg "$db" load-catalog "$work/no-such.csv" 2>&1) && fail "load-catalog read a missing file"
grep -qF "cannot read $work/no-such.csv" <<<"$msg" || fail "load-catalog on a missing file said: $msg"

# The libpq environment works without --pg.
PGDATABASE=t_report "$report" >/dev/null || fail "report without --pg failed"

set +e
"$report" --bogus >/dev/null 2>&1
[ $? = 2 ] || fail "a bad option does not exit 2"
echo "test-report: ok"
