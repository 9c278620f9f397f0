-- SPDX-License-Identifier: Apache-2.0
-- 002_reports — read-only report views over the 001 tables, all time,
-- money in cents. scripts/report prints them; BI tools may select from them
-- with their own WHERE/LIMIT. Views only: dropping or replacing one never
-- touches data. Shares and rates are numeric rounded to 4 places, NULL when
-- the denominator is 0.

-- Products by abandoned value.
CREATE VIEW report_top_abandoned_products AS
WITH p AS (
    SELECT product_id,
           sum(quantity)::bigint                           AS abandoned_qty,
           sum(quantity::bigint * unit_price_cents)::bigint AS abandoned_value_cents,
           -- (abandonment_id, product_id) is the key: one row per cart.
           count(*)                                        AS carts
    FROM abandoned_items
    GROUP BY product_id
)
SELECT product_id, abandoned_qty, abandoned_value_cents, carts,
       round(abandoned_value_cents::numeric
             / nullif(sum(abandoned_value_cents) OVER (), 0), 4) AS value_share
FROM p
ORDER BY abandoned_value_cents DESC, product_id;
COMMENT ON VIEW report_top_abandoned_products IS
    'Products by abandoned value (all time, from abandoned_items): units, value in cents, '
    'number of abandoned carts holding the product, and share of all abandoned value. '
    'Ordered by value, largest first.';

-- Why units left carts.
CREATE VIEW report_abandonment_reasons AS
WITH r AS (
    SELECT reason, sum(removed_qty)::bigint AS removed_qty
    FROM remove_reasons_minute
    GROUP BY reason
), c AS (
    SELECT last_remove_reason AS reason, count(*) AS abandoned_carts
    FROM cart_abandonments
    WHERE last_remove_reason IS NOT NULL
    GROUP BY last_remove_reason
)
SELECT coalesce(r.reason, c.reason)                      AS reason,
       coalesce(r.removed_qty, 0)                         AS removed_qty,
       round(coalesce(r.removed_qty, 0)::numeric
             / nullif(sum(r.removed_qty) OVER (), 0), 4)  AS share,
       coalesce(c.abandoned_carts, 0)                     AS abandoned_carts
FROM r FULL JOIN c ON c.reason = r.reason
ORDER BY 2 DESC, 1;
COMMENT ON VIEW report_abandonment_reasons IS
    'Remove reasons (all time): units removed with the reason (remove_reasons_minute), their '
    'share of all removed units, and abandoned_carts = abandonments whose last removal in the '
    'session had this reason. Ordered by removed units, most first.';

-- Abandoned value per hour and how much of it never came back.
CREATE VIEW report_missed_revenue_hourly AS
SELECT date_trunc('hour', abandoned_at, 'UTC')                          AS hour,
       count(*)                                                         AS abandonments,
       sum(cart_value_cents)::bigint                                    AS abandoned_value_cents,
       count(recovered_at)                                              AS recovered,
       coalesce(sum(recovered_value_cents), 0)::bigint                  AS recovered_value_cents,
       coalesce(sum(cart_value_cents) FILTER (WHERE recovered_at IS NULL), 0)::bigint
                                                                        AS missed_value_cents
FROM cart_abandonments
GROUP BY 1
ORDER BY 1;
COMMENT ON VIEW report_missed_revenue_hourly IS
    'Per UTC hour of abandoned_at: abandonments, their cart value, how many were recovered and '
    'the value of the recovering checkouts, and missed_value_cents = cart value of the '
    'abandonments that were not recovered (so far). Ordered by hour.';

-- One row: from adding to buying.
CREATE VIEW report_funnel AS
WITH a AS (
    SELECT count(*) AS carts_abandoned FROM cart_abandonments
), c AS (
    SELECT count(*) AS checkouts, count(recovered_abandonment_id) AS recovered
    FROM cart_conversions
), u AS (
    SELECT count(*) AS users
    FROM (SELECT user_id FROM cart_abandonments
          UNION SELECT user_id FROM cart_conversions) ended
), s AS (
    SELECT coalesce(sum(added_qty), 0)::bigint     AS added_units,
           coalesce(sum(removed_qty), 0)::bigint   AS removed_units,
           coalesce(sum(purchased_qty), 0)::bigint AS purchased_units,
           coalesce(sum(abandoned_qty), 0)::bigint AS abandoned_units
    FROM product_stats_minute
)
SELECT u.users AS users_adding,
       a.carts_abandoned,
       c.checkouts,
       c.recovered,
       s.added_units,
       s.removed_units,
       s.purchased_units,
       s.abandoned_units,
       round(a.carts_abandoned::numeric
             / nullif(a.carts_abandoned + c.checkouts - c.recovered, 0), 4) AS abandonment_rate
FROM a, c, u, s;
COMMENT ON VIEW report_funnel IS
    'One row, all time. users_adding = distinct users with at least one ended cart (abandoned '
    'or checked out; carts still open are not counted). abandonment_rate = carts_abandoned / '
    '(carts_abandoned + checkouts - recovered): every ended cart is either abandoned or '
    'checked out, and a recovered checkout continues an already counted abandoned cart, so '
    'it is not a new cart. Units come from product_stats_minute.';

-- One row: how many abandonments come back, and how fast.
CREATE VIEW report_recovery AS
SELECT count(*)                                                   AS abandonments,
       count(recovered_at)                                        AS recovered,
       round(count(recovered_at)::numeric / nullif(count(*), 0), 4) AS recovery_rate,
       coalesce(sum(recovered_value_cents), 0)::bigint            AS recovered_value_cents,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY recovered_at - abandoned_at)
                                                                  AS median_time_to_recover
FROM cart_abandonments;
COMMENT ON VIEW report_recovery IS
    'One row, all time: abandonments, how many a later checkout recovered, recovery_rate = '
    'recovered / abandonments, the value of the recovering checkouts in cents, and the median '
    'of recovered_at - abandoned_at (NULL when nothing was recovered).';
