-- SPDX-License-Identifier: Apache-2.0
-- 001_schema — the tables cartwatch-processor writes, exactly once per flush.
--
-- Public contract (reports, BI tools, downstream jobs read these): the
-- cart_*, abandoned_items and *_minute tables. Internal to the processor
-- (resume state, fencing, outbox; never read them from elsewhere): the cw_*
-- tables. Times are timestamptz (UTC instants, millisecond precision from
-- the events), money is bigint cents in the cart's currency.
--
-- Applied by processor/migrate.c (embedded in the binary, one transaction,
-- recorded in cw_schema_migrations). By hand: psql -1 -f 001_schema.sql,
-- then INSERT INTO cw_schema_migrations (version, name) VALUES (1, '001_schema').
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

-- Which migrations are applied. The runner reads it before applying 001,
-- so it treats a missing table as "nothing applied".
CREATE TABLE cw_schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per session that ended with a non-empty cart.
CREATE TABLE cart_abandonments (
    abandonment_id        uuid PRIMARY KEY,
    user_id               text NOT NULL,
    session_start         timestamptz NOT NULL,
    last_activity_at      timestamptz NOT NULL,
    abandoned_at          timestamptz NOT NULL, -- last activity + session timeout
    item_count            int NOT NULL,         -- units in the cart
    cart_value_cents      bigint NOT NULL,
    currency              text NOT NULL,
    last_remove_reason    text,                 -- NULL: nothing removed in the session
    recovered_at          timestamptz,          -- set by the recovering checkout
    recovered_value_cents bigint,
    kafka_partition       int NOT NULL,         -- cart-events partition of the user
    CONSTRAINT cart_abandonments_recovered_both
        CHECK ((recovered_at IS NULL) = (recovered_value_cents IS NULL))
);
CREATE INDEX cart_abandonments_abandoned_at_idx ON cart_abandonments (abandoned_at);
CREATE INDEX cart_abandonments_user_id_idx ON cart_abandonments (user_id, abandoned_at);
-- Recovery reports only look at the (few) recovered rows.
CREATE INDEX cart_abandonments_recovered_at_idx ON cart_abandonments (recovered_at)
    WHERE recovered_at IS NOT NULL;

-- The lines of an abandoned cart, one per product. abandonment_id is the
-- cart_abandonments row's, but without a FOREIGN KEY: the processor writes
-- an abandonment and its items in the same transaction, and the per-row RI
-- check cost 40% of the items insert (bench/README.md). Nothing cascades:
-- whoever deletes abandonments deletes their items too. The primary key
-- leads with abandonment_id, so it is the index for that.
CREATE TABLE abandoned_items (
    abandonment_id   uuid NOT NULL,
    product_id       text NOT NULL,
    quantity         int NOT NULL,
    unit_price_cents bigint NOT NULL,
    PRIMARY KEY (abandonment_id, product_id)
);
CREATE INDEX abandoned_items_product_id_idx ON abandoned_items (product_id);

-- One row per checkout. conversion_id is derived from the checkout event, so
-- a duplicate is a bug and fails the flush loudly (plain INSERT).
CREATE TABLE cart_conversions (
    conversion_id            uuid PRIMARY KEY,
    user_id                  text NOT NULL,
    event_id                 text NOT NULL,      -- the checkout event's id
    checkout_at              timestamptz NOT NULL,
    item_count               int NOT NULL,
    cart_value_cents         bigint NOT NULL,
    currency                 text NOT NULL,
    -- The abandonment this checkout recovered (within the recovery window
    -- after the user's latest abandonment), else NULL.
    recovered_abandonment_id uuid REFERENCES cart_abandonments ON DELETE SET NULL,
    kafka_partition          int NOT NULL
);
CREATE INDEX cart_conversions_checkout_at_idx ON cart_conversions (checkout_at);
CREATE INDEX cart_conversions_user_id_idx ON cart_conversions (user_id, checkout_at);
CREATE INDEX cart_conversions_recovered_idx ON cart_conversions (recovered_abandonment_id)
    WHERE recovered_abandonment_id IS NOT NULL;

-- Per product and event-time minute counters, added to by every flush
-- (INSERT ... ON CONFLICT DO UPDATE SET x = x + EXCLUDED.x).
CREATE TABLE product_stats_minute (
    bucket                timestamptz NOT NULL, -- start of the minute (UTC)
    product_id            text NOT NULL,
    added_qty             bigint NOT NULL DEFAULT 0,
    removed_qty           bigint NOT NULL DEFAULT 0,
    purchased_qty         bigint NOT NULL DEFAULT 0,
    purchased_value_cents bigint NOT NULL DEFAULT 0,
    abandoned_qty         bigint NOT NULL DEFAULT 0,
    abandoned_value_cents bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, product_id)
);

-- Units removed from carts, per product, reason and event-time minute.
CREATE TABLE remove_reasons_minute (
    bucket      timestamptz NOT NULL,
    product_id  text NOT NULL,
    reason      text NOT NULL,
    removed_qty bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, product_id, reason)
);

-- Internal: one row per consumed partition. generation fences flushes (a
-- processor taking the partition bumps it; a flush with an older one rolls
-- back); next_offset/watermark_ms are the resume point, committed in the
-- same transaction as the rows they produced. last_flush is the token of
-- the last committed flush, used to tell whether a COMMIT whose answer was
-- lost did land.
CREATE TABLE cw_partitions (
    topic        text NOT NULL,
    partition    int NOT NULL,
    generation   bigint NOT NULL DEFAULT 1,
    next_offset  bigint NOT NULL DEFAULT -1,                   -- -1: nothing committed
    watermark_ms bigint NOT NULL DEFAULT -9223372036854775808, -- INT64_MIN: none yet
    owner        text NOT NULL,
    last_flush   bigint,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Internal: the resume state (an opaque blob from the processor) of every
-- user with something worth keeping, by partition. Rewritten by every flush
-- that changes the user: the free space left in each page lets those
-- updates be HOT (no index update), 3x faster (bench/bench-pg-sink.c).
CREATE TABLE cw_user_state (
    topic     text NOT NULL,
    partition int NOT NULL,
    user_id   text NOT NULL,
    state     bytea NOT NULL,
    PRIMARY KEY (topic, partition, user_id)
) WITH (fillfactor = 50);

-- Internal: abandonment records (framed Avro) written with the abandonment
-- row, deleted once the cart-abandonments topic acknowledged them.
CREATE TABLE cw_outbox (
    abandonment_id uuid PRIMARY KEY,
    topic          text NOT NULL,
    partition      int NOT NULL,
    user_id        text NOT NULL,
    payload        bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cw_outbox_partition_idx ON cw_outbox (topic, partition, created_at);
