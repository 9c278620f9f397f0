#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-retention.sh — the time-ordered tables partitioned by day
# (migrations/010_partitioning.sql) and the processor's housekeeping
# (--retention, --status-retention).
#  1. In place from the 006 schema: a database at 006 gets rows (ids of
#     both schemes, future-dated ones, recoveries, stats, status history),
#     then the migrations up to 009 by psql; the processor applies 010,
#     011 (items into arrays on cart_abandonments, abandoned_items a view),
#     012, 013 and 014. Every table (cart_abandonments: its pre-011 columns) and
#     the abandoned_items view hold the same rows and every view answers
#     the same; 013's index is gone and its fillfactor on every partition,
#     014's per-user indexes are gone.
#  2. Retention while flushing: day partitions 1..10 days old with a row
#     each, rows in the default partitions 20 days old and 30 days ahead.
#     A report holds cart_abandonments (ACCESS SHARE, through the
#     abandoned_items view)
#     while the processor starts with --retention 5d --status-retention 2d
#     and a simulator feeds it: the other tables lose their old days at
#     once, it waits (the DROP gives up after its lock_timeout and
#     flushes go on committing meanwhile), then lose them when the report
#     ends. Expected: exactly the days whose end is older than the
#     retention are gone, the younger ones and today..today+3 exist, old
#     default rows are deleted and future ones kept.
# Runs under run-with-servers --pg --kafka embedded.
set -euo pipefail
test_name=retention
proc=${CARTWATCH_PROCESSOR:?} producer=${CARTWATCH_PRODUCER:?}
src=${CARTWATCH_SOURCE_ROOT:?} work=${CARTWATCH_TEST_DIR:?}
bs=${CARTWATCH_BOOTSTRAP_SERVERS:?}
wrap=${CARTWATCH_TEST_WRAPPER:-} # valgrind under --setup=valgrind
pids=()
check_alive() { :; }
. "$src/tests/e2e/lib.sh"
# Stop what is still running while the broker is up (run-with-servers
# stops it after us): a producer left flushing to a stopped broker would
# retry for ever.
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
sqld() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# Apply migrations/NNN_*.sql with FROM <= NNN <= TO to database DB by psql,
# recording them as the processor's runner does.
migrate() { # DB FROM TO
	local f v
	for f in "$src"/migrations/[0-9][0-9][0-9]_*.sql; do
		v=$((10#$(basename "$f" | cut -c1-3)))
		[ "$v" -ge "$2" ] && [ "$v" -le "$3" ] || continue
		{ cat "$f"; echo ";INSERT INTO cw_schema_migrations (version, name) VALUES ($v, '$(basename "$f" .sql)');"; } |
			psql -X -q -v ON_ERROR_STOP=1 -1 -d "$1" >/dev/null || fail "migration $f"
	done
}

# Every table of the output contract and every view: name, rows and a
# digest of the rows in a fixed order. cart_abandonments without the item
# arrays 011 adds (their content is compared as the abandoned_items view).
snapshot() { # DB
	sqld "$1" "
	SELECT string_agg(format('%s|%s', rel, q), E'\n' ORDER BY rel) FROM (
	  SELECT rel, (xpath('/row/d/text()', query_to_xml(format(
	    'SELECT count(*)::text || '':'' || coalesce(md5(string_agg(t::text, '','' ORDER BY t::text)), '''') AS d FROM %s t',
	    CASE rel WHEN 'cart_abandonments' THEN '(SELECT abandonment_id, user_id, session_start,
	      last_activity_at, abandoned_at, item_count, cart_value_cents, currency, last_remove_reason,
	      recovered_at, recovered_value_cents, kafka_partition FROM cart_abandonments)' ELSE rel END),
	    false, true, '')))[1]::text AS q
	  FROM (SELECT unnest(ARRAY['cart_abandonments', 'abandoned_items', 'cart_conversions',
	                            'product_stats_minute', 'remove_reasons_minute',
	                            'processor_status_history']) AS rel
	        UNION SELECT viewname FROM pg_views WHERE schemaname = 'public') r) s"
}

start_processor() { # DB LOG ARGS...
	local db=$1 plog=$2
	shift 2
	$wrap "$proc" --pg "dbname=$db" -b "$bs" --flush-interval 200ms --idle-timeout 1s \
		--max-clock-skew 1d --session-timeout 1m -X session.timeout.ms=6000 "$@" >"$plog" 2>&1 3>&- &
	pids+=($!)
	proc_pid=$!
}
stop_processor() {
	kill -TERM "$proc_pid"
	wait "$proc_pid" || fail "processor did not stop cleanly: $(tail -5 "$1")"
}

# ---- 1. in place from 006 ----------------------------------------------
createdb m006
migrate m006 1 6
sqld m006 "
-- Ids of the time-ordered scheme: first 48 bits = ms of the session
-- start (or checkout); the rest from the row number.
CREATE FUNCTION pg_temp.tid(at timestamptz, n int) RETURNS uuid LANGUAGE sql AS
 \$\$ SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0')
             || '8' || lpad(to_hex(n), 19, '0'))::uuid \$\$;
INSERT INTO cart_abandonments
SELECT CASE WHEN i % 3 = 0 THEN md5('v1' || i)::uuid ELSE pg_temp.tid(t, i) END,
       'u' || (i % 50), t, t + interval '10 min', t + interval '40 min', 1 + i % 4,
       100 * i, CASE WHEN i % 5 = 0 THEN 'EUR' ELSE 'USD' END,
       CASE WHEN i % 4 = 0 THEN 'price' END, NULL, NULL, i % 4
FROM (SELECT i, now() - (i * interval '97 min') + interval '5 days' AS t
      FROM generate_series(1, 400) i) s;
INSERT INTO abandoned_items
SELECT abandonment_id, 'sku-' || k, k, 250 * k FROM cart_abandonments, generate_series(1, 2) k;
INSERT INTO cart_conversions
SELECT pg_temp.tid(checkout, 100000 + n), user_id, 'e' || n, checkout, 1, cart_value_cents, currency,
       CASE WHEN n % 2 = 0 THEN abandonment_id END, kafka_partition
FROM (SELECT row_number() OVER (ORDER BY abandonment_id)::int AS n, *,
             abandoned_at + interval '1 hour' AS checkout
      FROM cart_abandonments) a WHERE n % 7 = 0;
UPDATE cart_abandonments a SET recovered_at = c.checkout_at, recovered_value_cents = c.cart_value_cents
FROM cart_conversions c WHERE c.recovered_abandonment_id = a.abandonment_id;
INSERT INTO product_stats_minute
SELECT date_trunc('minute', now()) - m * interval '7 min', 'sku-' || k, m, k, m % 3, 100 * m, 1, 50
FROM generate_series(-400, 1000) m, generate_series(1, 3) k;
INSERT INTO remove_reasons_minute
SELECT date_trunc('minute', now()) - m * interval '13 min', 'sku-1', r, m + 1000
FROM generate_series(-100, 500) m, unnest(ARRAY['price', 'shipping']) r;
INSERT INTO processor_status (instance, updated_at, started_at) VALUES ('old:1', '2999-01-01', now());
INSERT INTO processor_status_history
SELECT 'old:1', now() - h * interval '1 hour', h, h, 0, 1.5 FROM generate_series(-30, 300) h;"
migrate m006 7 9
before=$(snapshot m006)
echo "$before" | grep -q '^cart_abandonments|400:' || fail "test data: $before"

start_processor m006 "$work/p1.log"
wait_until 60 "010 applied and partitions created ahead" \
	grep -q 'msg="partition created" table=processor_status_history' "$work/p1.log"
stop_processor "$work/p1.log"
for v in 10 11 12 13 14; do
	grep -q "msg=\"schema migration applied\" version=$v " "$work/p1.log" || fail "0$v not applied by the processor"
done
after=$(snapshot m006)
[ "$after" = "$before" ] || fail "rows or view answers changed by 010 or 012:
$(diff <(echo "$before") <(echo "$after"))"
kinds=$(sqld m006 "SELECT string_agg(relkind::text, '' ORDER BY relname) FROM pg_class WHERE relname IN
  ('cart_abandonments', 'abandoned_items', 'cart_conversions', 'product_stats_minute_deltas',
   'remove_reasons_minute_deltas', 'processor_status_history')")
[ "$kinds" = vppppp ] || fail "tables not partitioned, abandoned_items not a view: $kinds"
left=$(sqld m006 "SELECT count(*) FROM pg_class WHERE relname LIKE 'abandoned\_items\_%' OR relname LIKE 'cw\_011%'")
[ "$left" = 0 ] || fail "011 left $left abandoned_items tables or partitions behind"
# Every abandonment of the test data had 2 items: both in its arrays.
got=$(sqld m006 "SELECT count(*) FILTER (WHERE item_product_ids = '{sku-1,sku-2}' AND item_quantities = '{1,2}'
  AND item_unit_price_cents = '{250,500}'), count(*) FROM cart_abandonments")
[ "$got" = "400|400" ] || fail "items not folded into their abandonments: $got"
kinds=$(sqld m006 "SELECT string_agg(relkind::text, '' ORDER BY relname) FROM pg_class WHERE relname IN
  ('product_stats_minute', 'remove_reasons_minute')")
[ "$kinds" = vv ] || fail "012: the minute tables are not views: $kinds"
# 012: every key's rows appended a second time (as a second flush would)
# double the sums but not the keys, in the views and in the report views
# that read them (re-created over the views, not left on the old tables).
sums() { sqld m006 "SELECT (SELECT count(*) || ':' || sum(added_qty) || ':' || sum(abandoned_value_cents)
  FROM product_stats_minute) || ' ' || (SELECT count(*) || ':' || sum(removed_qty) FROM remove_reasons_minute)
  || ' ' || (SELECT added_units || ':' || abandoned_units FROM report_funnel)
  || ' ' || (SELECT sum(removed_qty) FROM report_abandonment_reasons)"; }
once=$(sums)
sqld m006 "INSERT INTO product_stats_minute_deltas SELECT * FROM product_stats_minute_deltas;
  INSERT INTO remove_reasons_minute_deltas SELECT * FROM remove_reasons_minute_deltas" >/dev/null
twice=$(sums)
want=$(echo "$once" | python3 -c "
keys, units, funnel, reasons = input().split()
dbl = lambda xs: [str(2 * int(x)) for x in xs]
keys, units = keys.split(':'), units.split(':')
print(' '.join([':'.join(keys[:1] + dbl(keys[1:])), ':'.join(units[:1] + dbl(units[1:])),
                ':'.join(dbl(funnel.split(':'))), dbl([reasons])[0]]))")
[ "$twice" = "$want" ] || fail "012: appended rows not summed by the views: $once -> $twice, want $want"
# The first-scheme ids beyond 2200 sit in the ids_v1 partitions, not in the
# default one (which every new day's partition scans).
v1=$(sqld m006 "SELECT count(*) FROM cart_abandonments_ids_v1")
[ "$v1" -gt 100 ] || fail "first-scheme ids not in cart_abandonments_ids_v1: $v1"
# 013: recoveries are HOT updates, no index on recovered_at, and every
# cart_abandonments partition, the migrated ones and those the housekeeping
# just created, keeps free space in its pages.
grep -q 'msg="schema migration applied" version=13 ' "$work/p1.log" || fail "013 not applied by the processor"
idx=$(sqld m006 "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%(recovered_at)%'")
[ "$idx" = 0 ] || fail "an index on recovered_at is left: $idx"
ff=$(sqld m006 "SELECT count(*) FILTER (WHERE c.reloptions @> '{fillfactor=90}') || '/' || count(*)
  || ' ' || count(*) FILTER (WHERE c.relname ~ '_p[0-9]{8}$') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'cart_abandonments'::regclass")
read -r ff_n ff_days <<<"$ff"
[ "${ff_n%/*}" = "${ff_n#*/}" ] && [ "$ff_days" -ge 1 ] || fail "cart_abandonments partitions with fillfactor 90, total, day ones: $ff"
# 014: no per-user index on any partition (the snapshot above compared
# report_abandonment_outcomes' answers before and after it).
idx=$(sqld m006 "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%(user_id%'
  AND tablename ~ '^cart_(abandonments|conversions)'")
[ "$idx" = 0 ] || fail "014: $idx per-user indexes left on cart_abandonments or cart_conversions"
log "ok: 006 -> 014 in place, $(echo "$after" | wc -l) tables and views unchanged"

# ---- 2. retention while flushing ---------------------------------------
migrate "$PGDATABASE" 1 999
sql "
CREATE FUNCTION pg_temp.b(tbl text, at timestamptz) RETURNS text LANGUAGE sql AS
 \$\$ SELECT CASE WHEN tbl IN ('cart_abandonments', 'cart_conversions')
             THEN 'cw_time_uuid(' || quote_literal(at) || ')' ELSE quote_literal(at) END \$\$;
CREATE FUNCTION pg_temp.setup(tbl text) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
  d timestamptz := date_trunc('day', now(), 'UTC');
  p text;
BEGIN
  -- Leave only day partitions and the default one: no upto partition.
  FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = tbl::regclass AND c.relname LIKE '%_upto_%' LOOP
    EXECUTE format('DROP TABLE %I', p);
  END LOOP;
  FOR k IN 0..10 LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                   tbl || to_char(d - k * interval '1 day', '_pYYYYMMDD'), tbl,
                   pg_temp.b(tbl, d - k * interval '1 day'),
                   pg_temp.b(tbl, d - (k - 1) * interval '1 day'));
  END LOOP;
END \$\$;
SET TimeZone = 'UTC';
SELECT pg_temp.setup(t) FROM unnest(ARRAY['cart_abandonments',
  'cart_conversions', 'product_stats_minute_deltas', 'remove_reasons_minute_deltas',
  'processor_status_history']) t;
-- One row per past day (noon) and two in the default partition: 20 days
-- old and 30 days ahead.
CREATE TEMP TABLE days AS
SELECT k, date_trunc('day', now(), 'UTC') - k * interval '1 day' + interval '12 hours' AS t,
       cw_time_uuid(date_trunc('day', now(), 'UTC') - k * interval '1 day' + interval '12 hours') AS id
FROM (SELECT generate_series(1, 10) UNION ALL VALUES (20), (-30)) s(k);
INSERT INTO cart_abandonments SELECT id, 'old-' || k, t, t, t, 1, 1, 'USD', NULL, NULL, NULL, 0,
  '{sku-1}', '{1}', '{1}' FROM days;
INSERT INTO cart_conversions SELECT id, 'old-' || k, 'e', t, 1, 1, 'USD', NULL, 0 FROM days;
INSERT INTO product_stats_minute_deltas (bucket, product_id, added_qty) SELECT t, 'old-sku', 1 FROM days;
INSERT INTO remove_reasons_minute_deltas SELECT t, 'old-sku', 'price', 1 FROM days;
-- Three appended rows per key on days 2-4 (kept): the housekeeping folds
-- each day, ended more than 6 hours ago, into one row per key.
INSERT INTO product_stats_minute_deltas (bucket, product_id, added_qty, abandoned_value_cents)
SELECT t, 'dup-sku', 1, 9223372036854775807 FROM days, generate_series(1, 3) WHERE k BETWEEN 2 AND 4;
INSERT INTO remove_reasons_minute_deltas SELECT t, 'dup-sku', 'price', 2 FROM days, generate_series(1, 3)
WHERE k BETWEEN 2 AND 4;
INSERT INTO processor_status_history SELECT 'old:1', t, 0, 0, 0, 0 FROM days;"

# A report holding the abandonments (and so their items) until the test
# ends it.
mkfifo "$work/report"
psql -X -q -At -v ON_ERROR_STOP=1 -f "$work/report" >/dev/null &
reader=$!
pids+=($reader)
exec 3>"$work/report"
echo "BEGIN; SELECT count(*) FROM abandoned_items;" >&3
wait_until 10 "the report holding its locks" sql_is \
	"SELECT count(*) > 0 FROM pg_locks WHERE relation = 'cart_abandonments'::regclass AND pid <> pg_backend_pid()" t

"$producer" -b "$bs" --users 20000 --rate 3000 --events 60000 --seed 5 >/dev/null 2>"$work/producer.log" 3>&- &
producer_pid=$!
pids+=($producer_pid)
start_processor "$PGDATABASE" "$work/p2.log" --retention 5d --status-retention 2d --housekeeping-interval 1s
# partitions TABLE: its day partitions' suffixes, oldest first.
partitions() { sql "SELECT string_agg(substring(c.relname FROM '_p([0-9]{8})\$'), ' ' ORDER BY c.relname)
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = '$1'::regclass AND c.relname ~ '_p[0-9]{8}\$'"; }
# expect RETENTION_DAYS: the day suffixes that must remain, computed from
# the wall clock: day k (k days ago) ends at today - (k - 1) days and goes
# once that end is at or before now - retention; today + 3 is made ahead.
expect() { python3 - "$1" <<'PY'
import datetime, sys
now = datetime.datetime.now(datetime.timezone.utc)
today = now.replace(hour=0, minute=0, second=0, microsecond=0)
ret = datetime.timedelta(days=int(sys.argv[1]))
keep = [today + datetime.timedelta(days=j) for j in range(-10, 4)
        if today + datetime.timedelta(days=j + 1) > now - ret]
print(" ".join(d.strftime("%Y%m%d") for d in keep))
PY
}
partitions_are() { [ "$(partitions "$1")" = "$(expect "$2")" ]; }
wait_until 30 "old conversion days dropped" partitions_are cart_conversions 5
wait_until 30 "old stats days dropped" partitions_are product_stats_minute_deltas 5
wait_until 30 "old status days dropped" partitions_are processor_status_history 2
wait_until 30 "a DROP giving up on the held table" \
	grep -q 'msg="housekeeping step left for later: table busy" step=drop table=cart_abandonments_p' "$work/p2.log"
held_at=$(committed)
# Flushes go on while the report holds the table and the DROP keeps
# trying: offsets keep being committed before the report ends.
wait_until 30 "flushes committing during the held report" committed_at_least $((held_at + 200))
oldest=$(partitions cart_abandonments | cut -d' ' -f1)
[ "$oldest" = "$(date -u -d '10 days ago' +%Y%m%d)" ] ||
	fail "cart_abandonments lost days while held: $(partitions cart_abandonments)"
echo "COMMIT;" >&3
exec 3>&-
wait "$reader" || fail "the report failed"
wait_until 30 "old abandonment days dropped after the report" partitions_are cart_abandonments 5
for t in cart_abandonments cart_conversions product_stats_minute_deltas remove_reasons_minute_deltas; do
	partitions_are $t 5 || fail "$t: days $(partitions $t), want $(expect 5)"
done
# The old rows: one per remaining day, the 20-day-old default row deleted,
# the future one kept.
want=$(python3 -c "import sys; print(len('$(expect 5)'.split()) - 4)")
for t in cart_abandonments:user_id cart_conversions:user_id; do
	got=$(sql "SELECT count(*) FILTER (WHERE ${t#*:} LIKE 'old-%' AND ${t#*:} <> 'old--30'), count(*) FILTER (WHERE ${t#*:} = 'old--30') FROM ${t%:*}")
	[ "$got" = "$want|1" ] || fail "${t%:*}: old rows $got, want $want|1"
done
# Their items went and stayed with them.
got=$(sql "SELECT count(*) FROM abandoned_items i JOIN cart_abandonments a USING (abandonment_id)
  WHERE a.user_id LIKE 'old-%' AND a.user_id <> 'old--30' AND i.product_id = 'sku-1'")
[ "$got" = "$want" ] || fail "abandoned_items: old rows $got, want $want"
got=$(sql "SELECT count(*) FROM product_stats_minute WHERE product_id = 'old-sku' AND bucket < now()")
[ "$got" = "$want" ] || fail "product_stats_minute: old rows $got, want $want"
# Days 2-4 folded to one row per key, the views' answers unchanged (the
# sums saturating as before).
wait_until 30 "appended days folded" sql_is "SELECT count(*) FROM product_stats_minute_deltas WHERE product_id = 'dup-sku'" 3
wait_until 30 "appended reason days folded" sql_is "SELECT count(*) FROM remove_reasons_minute_deltas WHERE product_id = 'dup-sku'" 3
got=$(sql "SELECT string_agg(added_qty || ':' || abandoned_value_cents, ' ') FROM product_stats_minute WHERE product_id = 'dup-sku'")
[ "$got" = "3:9223372036854775807 3:9223372036854775807 3:9223372036854775807" ] || fail "folded product days: $got"
got=$(sql "SELECT string_agg(removed_qty::text, ' ') FROM remove_reasons_minute WHERE product_id = 'dup-sku'")
[ "$got" = "6 6 6" ] || fail "folded reason days: $got"
got=$(sql "SELECT count(*) FROM cw_compacted_partitions WHERE partition = 'product_stats_minute_deltas_p$(date -u -d '3 days ago' +%Y%m%d)' AND rows_before > rows_after")
[ "$got" = 1 ] || fail "day 3 not recorded as folded: $(sql 'TABLE cw_compacted_partitions')"
# The processor's own rows arrived meanwhile, in today's partition.
got=$(sql "SELECT count(*) > 0 FROM cart_abandonments_p$(date -u +%Y%m%d)")
[ "$got" = t ] || fail "no abandonments written into today's partition"
stop_processor "$work/p2.log"
kill -TERM "$producer_pid"
wait "$producer_pid" || true # stopped by us: its status says so
grep -q 'level=warn msg="housekeeping' "$work/p2.log" && fail "housekeeping warned: $(grep 'msg="housekeeping' "$work/p2.log" | head -3)"
log "ok: old days dropped ($(expect 5 | wc -w) data and $(expect 2 | wc -w) status day partitions left, today+3 included), held table waited, flushes went on"
