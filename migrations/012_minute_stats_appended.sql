-- SPDX-License-Identifier: Apache-2.0
-- 012_minute_stats_appended — the per-minute product and reason counters
-- are appended, not upserted. Each flush COPYs (binary) its own deltas, one
-- row per key it touched, into product_stats_minute_deltas and
-- remove_reasons_minute_deltas; product_stats_minute and
-- remove_reasons_minute become views summing them per key, with the same
-- columns, types and results as the tables had (sums saturate at the
-- bigint maximum, like the upsert did). Why: the ON CONFLICT upsert was
-- the flush's most expensive statement (bench-processor, 1M events:
-- ~5.6 s of ~14 s PostgreSQL statement time for the products, ~1.5 s for
-- the reasons): a unique-index probe, a heap update and a new index entry
-- per row, plus row locks that two flush connections wait on. An append is
-- a heap insert and nothing else.
--
-- The delta tables keep 010's partitioning by day of bucket (the
-- housekeeping creates and drops their partitions) and have no primary key
-- and no unique index: several rows per key are the point. One index, BRIN
-- on bucket: rows arrive roughly in bucket order (flushes follow event
-- time), so a block range summary is tight, costs next to nothing per
-- insert, and lets a dashboard's last-hours range read a few blocks of the
-- day partition instead of all of it (day partitions alone prune to whole
-- days). No report filters or joins on product_id or reason before
-- grouping, so no btree is worth its write cost. A WHERE on bucket (or on
-- product_id, reason) against the views is pushed below their GROUP BY by
-- the planner: they group by those columns.
--
-- Rows accumulate per key, one per flush that touched it (a minute stays
-- open for as long as sessions that started in it are, so its keys are
-- written by several flushes). The housekeeping folds them: once a day
-- partition ended 6 hours ago, its rows become one per key in one
-- statement, DELETE ... RETURNING feeding INSERT ... GROUP BY (rows a
-- concurrent flush appends meanwhile are not in the DELETE's snapshot and
-- stay), and the partition's name goes into cw_compacted_partitions so
-- that it is folded once (processor/housekeeping.c, fold_day()).
--
-- In place: the tables are renamed (with their partitions and indexes),
-- lose their primary keys (the rows already are one per key) and
-- fillfactor (no updates any more); views that read them are re-created to
-- read the new views, so they keep their results as rows accumulate.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

-- The views that read the two tables, taken while the names still are the
-- tables' (pg_get_viewdef prints the current names).
CREATE TEMP TABLE cw_012_views ON COMMIT DROP AS
SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS def
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
JOIN pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
WHERE d.refclassid = 'pg_class'::regclass
  AND d.refobjid IN ('product_stats_minute'::regclass,
                     'remove_reasons_minute'::regclass);

-- @tbl becomes @tbl_deltas: the table, its partitions and their indexes
-- (all named after the table), without the primary key.
CREATE FUNCTION pg_temp.cw_012_rename(tbl text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel record;
    neu text := tbl || '_deltas';
BEGIN
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', tbl, tbl || '_pkey');
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, neu);
    FOR rel IN SELECT c.relname, c.relkind FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = neu::regclass LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', rel.relname,
                       neu || substr(rel.relname, length(tbl) + 1));
        EXECUTE format('ALTER TABLE %I RESET (fillfactor)',
                       neu || substr(rel.relname, length(tbl) + 1));
    END LOOP;
    EXECUTE format('CREATE INDEX %I ON %I USING brin (bucket)',
                   neu || '_bucket_brin', neu);
END $$;
SELECT pg_temp.cw_012_rename('product_stats_minute');
SELECT pg_temp.cw_012_rename('remove_reasons_minute');

COMMENT ON TABLE product_stats_minute_deltas IS
    'Per-minute product counters as written: one row per flush and (bucket, product_id) it '
    'touched, holding that flush''s increments. Read product_stats_minute, which sums them.';
COMMENT ON TABLE remove_reasons_minute_deltas IS
    'Per-minute units removed by reason as written: one row per flush and (bucket, '
    'product_id, reason) it touched. Read remove_reasons_minute, which sums them.';

CREATE VIEW product_stats_minute AS
SELECT bucket, product_id,
       LEAST(sum(added_qty), 9223372036854775807)::bigint             AS added_qty,
       LEAST(sum(removed_qty), 9223372036854775807)::bigint           AS removed_qty,
       LEAST(sum(purchased_qty), 9223372036854775807)::bigint         AS purchased_qty,
       LEAST(sum(purchased_value_cents), 9223372036854775807)::bigint AS purchased_value_cents,
       LEAST(sum(abandoned_qty), 9223372036854775807)::bigint         AS abandoned_qty,
       LEAST(sum(abandoned_value_cents), 9223372036854775807)::bigint AS abandoned_value_cents
FROM product_stats_minute_deltas
GROUP BY bucket, product_id;
COMMENT ON VIEW product_stats_minute IS
    'Units added to, removed from, bought and abandoned per product and minute of event time '
    '(bucket), with the bought and abandoned value in cents: one row per (bucket, product_id), '
    'sums of product_stats_minute_deltas saturating at the bigint maximum.';

CREATE VIEW remove_reasons_minute AS
SELECT bucket, product_id, reason,
       LEAST(sum(removed_qty), 9223372036854775807)::bigint AS removed_qty
FROM remove_reasons_minute_deltas
GROUP BY bucket, product_id, reason;
COMMENT ON VIEW remove_reasons_minute IS
    'Units removed per product, reason and minute of event time (bucket): one row per '
    '(bucket, product_id, reason), sums of remove_reasons_minute_deltas saturating at the '
    'bigint maximum.';

-- The day partitions the housekeeping folded, with their row counts.
CREATE TABLE cw_compacted_partitions (
    partition   name PRIMARY KEY,
    rows_before bigint NOT NULL,
    rows_after  bigint NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);

-- The dependent views, re-created over the new views.
CREATE FUNCTION pg_temp.cw_012_views() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT name, def FROM cw_012_views LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v.name, v.def);
    END LOOP;
END $$;
SELECT pg_temp.cw_012_views();
