-- SPDX-License-Identifier: Apache-2.0
-- 009_open_value — two things the dashboard could not show (issue 14):
--
-- Carts at risk now. processor_status counts open sessions and every cart
-- held in memory, carried-over ones (abandoned, kept until checkout or
-- --cart-ttl) included, with no value and no currency.
-- processor_status_open_value holds, per running processor and currency,
-- the sessions still open, those of them holding items, and those carts'
-- value: the carts that can still end either way. The processor keeps
-- these totals as events arrive and replaces its rows with each status
-- row (same statement), so they are as fresh as processor_status.
--
-- Product categories. Events name products by id only; product_catalog
-- is the shop's list (the CSV the gateway's --catalog reads, loaded with
-- cartwatch-report load-catalog FILE) so reports and panels can group by
-- category. A product not in it is '(uncategorized)'.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

CREATE TABLE processor_status_open_value (
    instance          text NOT NULL,             -- processor_status.instance
    currency          text NOT NULL,             -- ISO 4217, or '(other)'
    open_sessions     bigint NOT NULL DEFAULT 0, -- sessions open, latest event in this currency
    open_carts        bigint NOT NULL DEFAULT 0, -- those of them holding items
    open_value_cents  bigint NOT NULL DEFAULT 0, -- those carts' value, cents of currency
    PRIMARY KEY (instance, currency)
);
COMMENT ON TABLE processor_status_open_value IS
    'Carts at risk now, per cartwatch-processor instance and currency, replaced with its '
    'processor_status row at every status write: open sessions (their currency is the one of '
    'their latest event), open_carts = those holding items, open_value_cents = those carts'' '
    'value (saturated at 2^63-1). Carried-over carts (session closed, cart still held) are not '
    'in it: they are processor_status.open_carts minus these. A processor counts 16 currencies '
    'per partition by name and the rest as ''(other)''. Rows of stopped instances stay; read '
    'processor_open_value_live.';

CREATE VIEW processor_open_value_live AS
SELECT v.*
FROM processor_status_open_value v
WHERE v.instance IN (SELECT instance FROM processor_status_live);
COMMENT ON VIEW processor_open_value_live IS
    'processor_status_open_value of the running instances only (see processor_status_live).';

CREATE TABLE product_catalog (
    product_id        text PRIMARY KEY,
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    currency          text,                      -- NULL: the file gave none
    name              text,
    category          text,                      -- NULL: uncategorized
    loaded_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE product_catalog IS
    'The shop''s products (the CSV of the gateway''s --catalog: product_id, unit_price_cents, '
    'optional currency, name, category), replaced as a whole by cartwatch-report load-catalog. '
    'Only reports and dashboards read it; the processor does not.';

-- The categories a dashboard can filter by.
CREATE VIEW product_categories AS
SELECT coalesce(nullif(category, ''), '(uncategorized)') AS category
FROM product_catalog
UNION
SELECT '(uncategorized)';
COMMENT ON VIEW product_categories IS
    'Every category of product_catalog, and ''(uncategorized)'' for products not in it or '
    'with no category. Join a product_id to its category with LEFT JOIN product_catalog and '
    'coalesce(nullif(category, ''''), ''(uncategorized)'').';
