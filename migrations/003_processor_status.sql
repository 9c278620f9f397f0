-- SPDX-License-Identifier: Apache-2.0
-- 003_processor_status — what each cartwatch-processor reports about itself
-- at every flush, for dashboards (docker/grafana) and operators: its
-- partitions, throughput, open carts and sessions, consumer lag, watermark
-- and dead letters. processor_status holds the latest row per instance
-- (upserted each flush); processor_status_history keeps one row per
-- instance and flush so open carts and lag can be graphed over time.
--
-- Public contract, read-only for everyone but the processor. Times are wall
-- clock (the processor's now()), except watermark, which is event time.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

CREATE TABLE processor_status (
    instance          text PRIMARY KEY,          -- --instance (default host:pid)
    updated_at        timestamptz NOT NULL,      -- the flush that wrote the row
    started_at        timestamptz NOT NULL,      -- process start
    partitions        int[] NOT NULL DEFAULT '{}',
    events_total      bigint NOT NULL DEFAULT 0, -- consumed since start
    events_per_second double precision NOT NULL DEFAULT 0,
    users             bigint NOT NULL DEFAULT 0, -- users with state in memory
    open_carts        bigint NOT NULL DEFAULT 0,
    open_sessions     bigint NOT NULL DEFAULT 0,
    consumer_lag      bigint NOT NULL DEFAULT 0, -- records behind the high watermarks
    watermark         timestamptz,               -- lowest partition watermark; NULL: none yet
    dead_letters      bigint NOT NULL DEFAULT 0, -- sent to the DLQ since start
    last_flush_ms     double precision NOT NULL DEFAULT 0
);
COMMENT ON TABLE processor_status IS
    'One row per cartwatch-processor instance, replaced at every flush: assigned '
    'cart-events partitions, events consumed since start and the current rate, users, open '
    'carts and sessions held in memory, consumer lag (records behind the partitions'' high '
    'watermarks), the lowest event-time watermark, dead letters since start and the duration '
    'of the last flush. Rows of stopped instances stay; look at updated_at.';

CREATE TABLE processor_status_history (
    instance          text,
    at                timestamptz,               -- = processor_status.updated_at of that flush
    open_carts        bigint,
    open_sessions     bigint,
    consumer_lag      bigint,
    events_per_second double precision,
    PRIMARY KEY (instance, at)
);
CREATE INDEX processor_status_history_at_idx ON processor_status_history (at);
COMMENT ON TABLE processor_status_history IS
    'processor_status over time: one row per instance and flush with open carts, open '
    'sessions, consumer lag and events per second, for graphs. Never pruned by the processor; '
    'delete old rows by hand (DELETE ... WHERE at < now() - interval ''7 days'').';
