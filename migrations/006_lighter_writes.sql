-- SPDX-License-Identifier: Apache-2.0
-- 006_lighter_writes — less work for PostgreSQL per flush.
--
-- Measured with bench/bench-processor.sh (PG_STATS=1 and the CPU split it
-- prints): PostgreSQL, not the processor, spends most of the CPU of a run,
-- and much of it maintaining indexes and row versions.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

-- Nothing looks items up by product: the reports and dashboards aggregate
-- all of abandoned_items, or read product_stats_minute. The primary key
-- (abandonment_id, product_id) remains.
DROP INDEX abandoned_items_product_id_idx;

-- A recovering conversion is written by the processor that wrote (or is
-- writing, in the same transaction) the abandonment it points at, so the
-- per-row RI check proves nothing; abandoned_items has no FK for the same
-- reason (001_schema.sql). Whoever deletes abandonments clears the links.
ALTER TABLE cart_conversions
    DROP CONSTRAINT cart_conversions_recovered_abandonment_id_fkey;

-- The per-minute counters are updated by every flush. Free space in each
-- page lets those updates be HOT (a new row version on the same page, no
-- index entry), as 001 did for the per-user resume state.
ALTER TABLE product_stats_minute SET (fillfactor = 70);
ALTER TABLE remove_reasons_minute SET (fillfactor = 70);
