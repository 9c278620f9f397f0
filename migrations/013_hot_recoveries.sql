-- SPDX-License-Identifier: Apache-2.0
-- 013_hot_recoveries — the flush's recovery UPDATE of cart_abandonments
-- (processor/pg_sink.c, apply_recoveries_sql) becomes a HOT update: the
-- new row version stays on its page and no index gets an entry.
--
-- Two things stood in the way:
--  * recovered_at was indexed (001's partial index WHERE recovered_at IS
--    NOT NULL). PostgreSQL 15 makes an update HOT only when no indexed
--    column changes, a partial index's predicate included. No report view
--    looks rows up by it (they aggregate, or join by abandonment_id);
--    notify reads by abandonment_id; two Grafana panels filter
--    recovered_at by the dashboard's time range and read their rows by a
--    scan of the table instead (same results).
--  * pages were full: COPY packs them, so the new version had no room next
--    to the old one. Each partition keeps 10% of its pages free (fillfactor
--    90): room for the recovery of about one row in ten, more once the old
--    versions are pruned. A partitioned table has no storage, so it is set
--    on each partition; the processor's housekeeping creates new ones with
--    it. Existing pages keep their rows; new pages get the free space.
-- Measured (bench/README.md, "recoveries"): the UPDATE takes about half the
-- time in bench-processor.sh, 2-4x less in a replay of thinner recoveries.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

DROP INDEX cart_abandonments_recovered_at_idx;

DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'cart_abandonments'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 90)', part);
    END LOOP;
END $$;
