-- SPDX-License-Identifier: Apache-2.0
-- 008_report_truth — report views that answer what operators and marketers
-- ask without the traps of the 002 views (issue 14): money grouped by
-- currency, missed revenue that counts a carried-over cart once, the
-- abandonment rate by when carts were last touched, the causes of
-- abandonment, and processor status without stopped instances.
-- scripts/report and docker/grafana read these; the 002 views keep their
-- names and meaning (report_missed_revenue_hourly stays the raw sum per
-- abandonment, all currencies added together). Views only.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

-- Every ended cart once, at its last activity: an abandoned cart at
-- last_activity_at, a checkout at checkout_at. A checkout that recovered an
-- abandonment continues a cart already listed as abandoned, so it is not
-- listed again.
CREATE VIEW report_ended_carts AS
SELECT 'abandoned'::text AS outcome, abandonment_id AS id, user_id,
       last_activity_at AS ended_at, item_count, cart_value_cents, currency
FROM cart_abandonments
UNION ALL
SELECT 'checked_out', conversion_id, user_id, checkout_at, item_count,
       cart_value_cents, currency
FROM cart_conversions
WHERE recovered_abandonment_id IS NULL;
COMMENT ON VIEW report_ended_carts IS
    'One row per ended cart: outcome abandoned (at its last activity) or checked_out (at the '
    'checkout; checkouts that recovered an abandonment are left out, their cart is the '
    'abandoned one). Value in cents of the row''s currency.';

-- Abandonment rate per minute of the carts' last activity. A cart's fate
-- is decided by its last event, so every minute's rate is final once the
-- carts touched in it have closed (session timeout later); bucketing
-- abandonments at abandoned_at instead shifts them by the timeout.
CREATE VIEW report_abandonment_rate_minute AS
SELECT date_trunc('minute', ended_at, 'UTC')                 AS minute,
       count(*) FILTER (WHERE outcome = 'abandoned')         AS abandoned,
       count(*) FILTER (WHERE outcome = 'checked_out')       AS checked_out,
       round((count(*) FILTER (WHERE outcome = 'abandoned'))::numeric
             / count(*), 4)                                  AS abandonment_rate
FROM report_ended_carts
GROUP BY 1
ORDER BY 1;
COMMENT ON VIEW report_abandonment_rate_minute IS
    'Per UTC minute of the carts'' last activity: carts abandoned, carts checked out (not '
    'counting checkouts that recovered an abandoned cart) and abandonment_rate = abandoned / '
    '(abandoned + checked_out). Carts still open are not in it yet.';

-- Why carts were abandoned: the last removal reason of the session, or
-- nothing removed at all.
CREATE VIEW report_abandonment_causes AS
SELECT coalesce(last_remove_reason, '(nothing removed)')            AS cause,
       count(*)                                                     AS abandoned_carts,
       round(count(*)::numeric / sum(count(*)) OVER (), 4)          AS share
FROM cart_abandonments
GROUP BY 1
ORDER BY 2 DESC, 1;
COMMENT ON VIEW report_abandonment_causes IS
    'Abandoned carts by cause (all time): the last remove reason of the abandoned session, '
    'or ''(nothing removed)'' when the session removed nothing; share of all abandoned carts.';

-- Each abandonment with what became of it. The processor keeps an abandoned
-- cart (carries it over) until the user checks out or --cart-ttl drops it,
-- so the user's next abandonment, with no checkout in between, holds the
-- same cart again: it supersedes the earlier one. A cart dropped by
-- --cart-ttl before the next session cannot be told apart here.
CREATE VIEW report_abandonment_outcomes AS
SELECT a.abandonment_id, a.user_id, a.session_start, a.last_activity_at, a.abandoned_at,
       a.item_count, a.cart_value_cents, a.currency, a.last_remove_reason,
       a.recovered_at, a.recovered_value_cents,
       s.abandonment_id                                           AS superseded_by,
       (a.recovered_at IS NULL AND s.abandonment_id IS NULL)      AS missed,
       CASE WHEN a.recovered_at IS NULL AND s.abandonment_id IS NULL
            THEN a.cart_value_cents ELSE 0 END                    AS missed_value_cents,
       (a.recovered_at IS NULL AND s.abandonment_id IS NULL AND NOT EXISTS (
            SELECT 1 FROM cart_conversions c
            WHERE c.user_id = a.user_id AND c.checkout_at > a.last_activity_at)) AS carried_over
FROM cart_abandonments a
LEFT JOIN LATERAL (
    SELECT n.abandonment_id
    FROM cart_abandonments n
    WHERE n.user_id = a.user_id AND n.session_start > a.last_activity_at
      AND NOT EXISTS (SELECT 1 FROM cart_conversions c
                      WHERE c.user_id = a.user_id
                        AND c.checkout_at > a.last_activity_at
                        AND c.checkout_at <= n.last_activity_at)
    ORDER BY n.session_start
    LIMIT 1
) s ON true;
COMMENT ON VIEW report_abandonment_outcomes IS
    'One row per abandonment (the raw view): superseded_by = the user''s next abandonment '
    'with no checkout in between (the same cart, carried over and abandoned again); missed = '
    'not recovered and not superseded, so each unbought cart is missed once; '
    'missed_value_cents = its cart value then, else 0; carried_over = missed and no later '
    'checkout by the user (the cart is still held, until --cart-ttl).';

-- Missed revenue per hour and currency, carried-over carts counted once.
CREATE VIEW report_missed_revenue_hourly_by_currency AS
SELECT date_trunc('hour', abandoned_at, 'UTC')                          AS hour,
       currency,
       count(*)                                                         AS abandonments,
       sum(cart_value_cents)::bigint                                    AS abandoned_value_cents,
       count(recovered_at)                                              AS recovered,
       coalesce(sum(recovered_value_cents), 0)::bigint                  AS recovered_value_cents,
       count(*) FILTER (WHERE missed)                                   AS missed_carts,
       sum(missed_value_cents)::bigint                                  AS missed_value_cents,
       coalesce(sum(cart_value_cents) FILTER (WHERE recovered_at IS NULL), 0)::bigint
                                                                        AS raw_missed_value_cents
FROM report_abandonment_outcomes
GROUP BY 1, 2
ORDER BY 1, 2;
COMMENT ON VIEW report_missed_revenue_hourly_by_currency IS
    'Per UTC hour of abandoned_at and currency: abandonments, their cart value, recovered '
    'ones and the recovering checkouts'' value, missed_carts and missed_value_cents (a cart '
    'abandoned again later is missed at its last abandonment only), and '
    'raw_missed_value_cents = every unrecovered abandonment''s value (what '
    'report_missed_revenue_hourly sums). Amounts in cents of that currency.';

-- One row per currency, all time.
CREATE VIEW report_missed_revenue_by_currency AS
SELECT currency,
       count(*)                                                    AS abandonments,
       count(*) FILTER (WHERE missed)                              AS missed_carts,
       sum(missed_value_cents)::bigint                             AS missed_value_cents,
       count(*) FILTER (WHERE carried_over)                        AS carried_over_carts,
       coalesce(sum(cart_value_cents) FILTER (WHERE carried_over), 0)::bigint
                                                                   AS carried_over_value_cents,
       count(recovered_at)                                         AS recovered,
       coalesce(sum(recovered_value_cents), 0)::bigint             AS recovered_value_cents
FROM report_abandonment_outcomes
GROUP BY currency
ORDER BY currency;
COMMENT ON VIEW report_missed_revenue_by_currency IS
    'Per currency, all time: abandonments, missed carts and their value (each unbought cart '
    'once), carried-over carts (missed, no later checkout: still held) and their value, '
    'recovered abandonments and the recovering checkouts'' value. Cents of that currency.';

-- Products by abandoned value, per currency.
CREATE VIEW report_top_abandoned_products_by_currency AS
SELECT i.product_id, a.currency,
       sum(i.quantity)::bigint                                    AS abandoned_qty,
       sum(i.quantity::bigint * i.unit_price_cents)::bigint       AS abandoned_value_cents,
       count(*)                                                   AS carts
FROM abandoned_items i
JOIN cart_abandonments a USING (abandonment_id)
GROUP BY i.product_id, a.currency
ORDER BY abandoned_value_cents DESC, i.product_id, a.currency;
COMMENT ON VIEW report_top_abandoned_products_by_currency IS
    'Products by abandoned value and currency (all time): units, value in cents of that '
    'currency and abandoned carts holding the product. Largest value first.';

-- Processors that are running: their status row is at most a minute old.
CREATE VIEW processor_status_live AS
SELECT *
FROM processor_status
WHERE updated_at > now() - interval '1 minute';
COMMENT ON VIEW processor_status_live IS
    'processor_status rows updated in the last minute (a processor writes its row at every '
    'flush): the running instances. Rows of stopped instances are left out.';

CREATE VIEW processor_status_history_live AS
SELECT h.*
FROM processor_status_history h
WHERE h.instance IN (SELECT instance FROM processor_status_live);
COMMENT ON VIEW processor_status_history_live IS
    'processor_status_history of the running instances only (see processor_status_live), '
    'so graphs summed over instances leave stopped ones out.';
