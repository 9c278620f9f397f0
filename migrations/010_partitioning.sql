-- SPDX-License-Identifier: Apache-2.0
-- 010_partitioning — the time-ordered tables become range-partitioned by
-- day, so that old data leaves by DROP of a whole partition (no DELETE, no
-- bloat, no VACUUM) and the processor's housekeeping (processor/
-- housekeeping.c, --retention and --status-retention) creates the coming
-- days' partitions ahead and drops those wholly older than the retention.
-- No table, column, view or report changes name or meaning; readers and
-- the processor's INSERT, COPY, ON CONFLICT and UPDATE statements work as
-- before, because every partition key below is in the table's primary key.
--
-- The partition key, per table, and why:
--  * cart_abandonments, abandoned_items: abandonment_id. Since the
--    time-ordered ids its first 48 bits are the session start in ms
--    (processor/partition.c, derive_uuid), so a range of ids is a range of
--    session starts. Partitioning by abandoned_at instead would have made
--    the primary key (abandonment_id, abandoned_at) — PostgreSQL wants the
--    partition key in every unique constraint — so the recovery UPDATE,
--    which knows only the id, would probe every partition, and
--    abandoned_items, which has no time column, would need one. With the
--    id, both tables keep their keys, an abandonment and its items always
--    sit in partitions of the same day, and both are dropped together.
--  * cart_conversions: conversion_id, whose first 48 bits are the checkout
--    time; same reasons.
--  * product_stats_minute, remove_reasons_minute: bucket, first column of
--    the primary key and the ON CONFLICT target. fillfactor 70 (006) is
--    set on each partition (a partitioned table has no storage).
--  * processor_status_history: at (wall clock), in the primary key; the
--    ON CONFLICT DO NOTHING of the status write works on partitions.
-- Not partitioned: processor_status (a row per instance) and the cw_*
-- tables (the processor's own state, deleted by it as it goes).
--
-- Each table gets, besides the day partitions the housekeeping adds:
--  * <table>_upto_YYYYMMDD: the existing table itself, attached in place
--    (no rewrite, its indexes are adopted) for everything before the day
--    after this migration ran. The retention drops it as a whole once that
--    day is old enough.
--  * <table>_default: the DEFAULT partition, for rows no day partition
--    takes: a late row older than the oldest partition, or one further
--    ahead than the partitions created so far (a simulation's future event
--    time). The housekeeping moves its rows into a day's partition when it
--    creates that day, and deletes its rows older than the retention.
--    A flush must never fail because a time has no partition; the price
--    is that DETACH PARTITION ... CONCURRENTLY (which PostgreSQL refuses
--    while a default partition exists) is not available, so dropping a
--    partition takes a short ACCESS EXCLUSIVE lock on the parent; the
--    housekeeping takes it with a lock_timeout and tries again later
--    rather than making flushes queue behind it.
--  * cart_abandonments, abandoned_items, cart_conversions only:
--    <table>_ids_v1, every id from 2200-01-01 on. Processors before the
--    time-ordered ids wrote ids with random first bits; most of those
--    (97%) land here instead of making the default partition large (each
--    new day's partition scans the default one). Nothing writes here any
--    more and the retention does not touch it: delete it by hand
--    (DROP TABLE) when its rows are no longer wanted.
-- Old rows whose key falls after the upto partition's bound (v1 ids below
-- 2200, future-dated buckets) are moved to the default partition here.
--
-- Views keep their names, columns and comments but are re-created over the
-- partitioned tables (a view refers to a table by identity, not by name, so
-- it would otherwise keep reading only the old table); any view that read
-- these tables is, including ones added by hand.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

-- The smallest id of millisecond @at in the time-ordered id scheme; ids of
-- [a, b) are >= cw_time_uuid(a) and < cw_time_uuid(b). Also for readers:
-- WHERE abandonment_id >= cw_time_uuid('2026-12-01') reads only the
-- partitions from that day on.
CREATE FUNCTION cw_time_uuid(at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(((extract(epoch FROM at) * 1000)::bigint)
                        & 281474976710655), 12, '0')
            || '00000000000000000000')::uuid
$$;

-- The upper bound of a range partition as ms since the epoch: NULL for the
-- default partition and for one that ends at MAXVALUE. For the
-- housekeeping, which decides from it what to create and what to drop.
CREATE FUNCTION cw_partition_upper_ms(part regclass) RETURNS bigint
LANGUAGE sql STABLE STRICT AS $$
    SELECT CASE WHEN b ~ '^[0-9a-f]{8}-'
                THEN ('x' || translate(left(b, 13), '-', ''))::bit(48)::bigint
                ELSE (extract(epoch FROM b::timestamptz) * 1000)::bigint END
    FROM (SELECT substring(pg_get_expr(relpartbound, oid)
                           FROM $re$TO \('([^']*)'\)$re$) AS b
          FROM pg_class WHERE oid = part) s
$$;

-- The definitions of the views that read the tables below, taken before
-- the tables are renamed (pg_get_viewdef names them by their current name).
CREATE TEMP TABLE cw_010_views ON COMMIT DROP AS
SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS def
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
JOIN pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
WHERE d.refclassid = 'pg_class'::regclass
  AND d.refobjid IN ('cart_abandonments'::regclass, 'abandoned_items'::regclass,
                     'cart_conversions'::regclass, 'product_stats_minute'::regclass,
                     'remove_reasons_minute'::regclass,
                     'processor_status_history'::regclass);

-- Renames @tbl and its indexes (their names start with the table's) out of
-- the way; the partitioned table created next takes the names.
CREATE FUNCTION pg_temp.cw_010_rename(tbl text, upto text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    idx text;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, upto);
    FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = upto::regclass LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', idx,
                       upto || substr(idx, length(tbl) + 1));
    END LOOP;
END $$;

-- Makes the renamed table @upto the partition of @tbl for keys below
-- @bound (a SQL expression), after moving its rows at or beyond @bound
-- into @tbl (the default or the ids_v1 partition takes them).
CREATE FUNCTION pg_temp.cw_010_adopt(tbl text, upto text, key text, bound text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('WITH m AS (DELETE FROM %I WHERE %I >= %s RETURNING *)'
                   ' INSERT INTO %I SELECT * FROM m', upto, key, bound, tbl);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I'
                   ' FOR VALUES FROM (MINVALUE) TO (%s)', tbl, upto, bound);
END $$;

-- The day after today (UTC), as the upto partitions' suffix and bound.
CREATE TEMP TABLE cw_010_bound ON COMMIT DROP AS
SELECT to_char(d, 'YYYYMMDD') AS suffix, (d::timestamp AT TIME ZONE 'UTC') AS at
FROM (SELECT (now() AT TIME ZONE 'UTC')::date + 1 AS d) s;

SELECT pg_temp.cw_010_rename(t, t || '_upto_' || suffix)
FROM cw_010_bound,
     unnest(ARRAY['cart_abandonments', 'abandoned_items', 'cart_conversions',
                  'product_stats_minute', 'remove_reasons_minute',
                  'processor_status_history']) t;

-- The partitioned tables: 001's and 003's definitions, less 006's index
-- and foreign key, partitioned by the key named above.
CREATE TABLE cart_abandonments (
    abandonment_id        uuid PRIMARY KEY,
    user_id               text NOT NULL,
    session_start         timestamptz NOT NULL,
    last_activity_at      timestamptz NOT NULL,
    abandoned_at          timestamptz NOT NULL,
    item_count            int NOT NULL,
    cart_value_cents      bigint NOT NULL,
    currency              text NOT NULL,
    last_remove_reason    text,
    recovered_at          timestamptz,
    recovered_value_cents bigint,
    kafka_partition       int NOT NULL,
    CONSTRAINT cart_abandonments_recovered_both
        CHECK ((recovered_at IS NULL) = (recovered_value_cents IS NULL))
) PARTITION BY RANGE (abandonment_id);
CREATE INDEX cart_abandonments_abandoned_at_idx ON cart_abandonments (abandoned_at);
CREATE INDEX cart_abandonments_user_id_idx ON cart_abandonments (user_id, abandoned_at);
CREATE INDEX cart_abandonments_recovered_at_idx ON cart_abandonments (recovered_at)
    WHERE recovered_at IS NOT NULL;

CREATE TABLE abandoned_items (
    abandonment_id   uuid NOT NULL,
    product_id       text NOT NULL,
    quantity         int NOT NULL,
    unit_price_cents bigint NOT NULL,
    PRIMARY KEY (abandonment_id, product_id)
) PARTITION BY RANGE (abandonment_id);

CREATE TABLE cart_conversions (
    conversion_id            uuid PRIMARY KEY,
    user_id                  text NOT NULL,
    event_id                 text NOT NULL,
    checkout_at              timestamptz NOT NULL,
    item_count               int NOT NULL,
    cart_value_cents         bigint NOT NULL,
    currency                 text NOT NULL,
    recovered_abandonment_id uuid,
    kafka_partition          int NOT NULL
) PARTITION BY RANGE (conversion_id);
CREATE INDEX cart_conversions_checkout_at_idx ON cart_conversions (checkout_at);
CREATE INDEX cart_conversions_user_id_idx ON cart_conversions (user_id, checkout_at);
CREATE INDEX cart_conversions_recovered_idx ON cart_conversions (recovered_abandonment_id)
    WHERE recovered_abandonment_id IS NOT NULL;

CREATE TABLE product_stats_minute (
    bucket                timestamptz NOT NULL,
    product_id            text NOT NULL,
    added_qty             bigint NOT NULL DEFAULT 0,
    removed_qty           bigint NOT NULL DEFAULT 0,
    purchased_qty         bigint NOT NULL DEFAULT 0,
    purchased_value_cents bigint NOT NULL DEFAULT 0,
    abandoned_qty         bigint NOT NULL DEFAULT 0,
    abandoned_value_cents bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, product_id)
) PARTITION BY RANGE (bucket);

CREATE TABLE remove_reasons_minute (
    bucket      timestamptz NOT NULL,
    product_id  text NOT NULL,
    reason      text NOT NULL,
    removed_qty bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, product_id, reason)
) PARTITION BY RANGE (bucket);

CREATE TABLE processor_status_history (
    instance          text,
    at                timestamptz,
    open_carts        bigint,
    open_sessions     bigint,
    consumer_lag      bigint,
    events_per_second double precision,
    PRIMARY KEY (instance, at)
) PARTITION BY RANGE (at);
CREATE INDEX processor_status_history_at_idx ON processor_status_history (at);
COMMENT ON TABLE processor_status_history IS
    'processor_status over time: one row per instance and flush with open carts, open '
    'sessions, consumer lag and events per second, for graphs. Partitioned by day of at; '
    'the processor drops the days older than its --status-retention (default 7d).';

CREATE TABLE cart_abandonments_default PARTITION OF cart_abandonments DEFAULT;
CREATE TABLE abandoned_items_default PARTITION OF abandoned_items DEFAULT;
CREATE TABLE cart_conversions_default PARTITION OF cart_conversions DEFAULT;
CREATE TABLE product_stats_minute_default PARTITION OF product_stats_minute DEFAULT
    WITH (fillfactor = 70);
CREATE TABLE remove_reasons_minute_default PARTITION OF remove_reasons_minute DEFAULT
    WITH (fillfactor = 70);
CREATE TABLE processor_status_history_default PARTITION OF processor_status_history DEFAULT;

CREATE TABLE cart_abandonments_ids_v1 PARTITION OF cart_abandonments
    FOR VALUES FROM (cw_time_uuid('2200-01-01 00:00:00+00')) TO (MAXVALUE);
CREATE TABLE abandoned_items_ids_v1 PARTITION OF abandoned_items
    FOR VALUES FROM (cw_time_uuid('2200-01-01 00:00:00+00')) TO (MAXVALUE);
CREATE TABLE cart_conversions_ids_v1 PARTITION OF cart_conversions
    FOR VALUES FROM (cw_time_uuid('2200-01-01 00:00:00+00')) TO (MAXVALUE);

SELECT pg_temp.cw_010_adopt(t, t || '_upto_' || suffix, k,
                            CASE WHEN k = 'bucket' OR k = 'at'
                                 THEN quote_literal(at) || '::timestamptz'
                                 ELSE 'cw_time_uuid(' || quote_literal(at) || ')' END)
FROM cw_010_bound,
     (VALUES ('cart_abandonments', 'abandonment_id'), ('abandoned_items', 'abandonment_id'),
             ('cart_conversions', 'conversion_id'), ('product_stats_minute', 'bucket'),
             ('remove_reasons_minute', 'bucket'), ('processor_status_history', 'at')) v(t, k);

-- The views, re-created over the partitioned tables.
CREATE FUNCTION pg_temp.cw_010_views() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT name, def FROM cw_010_views LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v.name, v.def);
    END LOOP;
END $$;
SELECT pg_temp.cw_010_views();
