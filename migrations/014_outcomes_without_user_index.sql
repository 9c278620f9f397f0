-- SPDX-License-Identifier: Apache-2.0
-- 014_outcomes_without_user_index — the flush stops paying for two
-- per-user indexes that only report_abandonment_outcomes (008) read.
--
-- 008 answers, for each abandonment, "is it superseded by the user's next
-- abandonment?" and "did the user check out later?" with two lookups per
-- row, served by indexes on (user_id, time) of cart_abandonments and
-- cart_conversions. Every abandonment and conversion the processor writes
-- inserts a random key into them: about 0.9 of the ~4.1 CPU-seconds
-- PostgreSQL spends per million events (bench/README.md, "what the
-- indexes cost"), for a view that only reports and dashboards read.
--
-- Here the same answers come from two sorts instead of two lookups per
-- row: each user's abandonments and checkouts in time order, with window
-- functions for "the first checkout after" and "the next abandonment".
-- report_abandonment_outcomes_between(from, to) computes them for the
-- abandonments of a time range, reading only rows since the range's
-- first last activity (a later abandonment or checkout is all either
-- answer looks at); the view is that function over all time, with the
-- same columns and rows as 008's. Dashboards and alerts call the function
-- with their range (a filter on the view does not narrow what it
-- computes).
--
-- The result is 008's, row for row (tests/test-outcomes.py compares both
-- on random histories): superseded_by is the first abandonment, by
-- session start, that starts after this one's last activity and ends
-- before the first later checkout. The processor's sessions of one user
-- never overlap (a session starts after the previous one's last activity
-- plus the session timeout), so that abandonment is the next one by
-- session start; a user whose abandonments do overlap (data written some
-- other way) is answered by search among that user's rows. It relies on
-- abandoned_at >= session_start, which the processor guarantees
-- (abandoned_at = last activity + session timeout).
--
-- JIT is off for the function: PostgreSQL's default cost threshold
-- compiles its plan, which took longer (0.5-1 s) than running it for an
-- hour's range of the benchmark's 70k abandonments (50-60 ms).
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

DROP INDEX cart_abandonments_user_id_idx;
DROP INDEX cart_conversions_user_id_idx;

CREATE FUNCTION report_abandonment_outcomes_between(range_from timestamptz,
                                                    range_to timestamptz)
RETURNS TABLE (abandonment_id uuid, user_id text, session_start timestamptz,
               last_activity_at timestamptz, abandoned_at timestamptz,
               item_count int, cart_value_cents bigint, currency text,
               last_remove_reason text, recovered_at timestamptz,
               recovered_value_cents bigint, superseded_by uuid,
               missed boolean, missed_value_cents bigint,
               carried_over boolean)
LANGUAGE sql STABLE
SET jit = off
AS $fn$
WITH a AS MATERIALIZED (
    -- The abandonments asked about.
    SELECT * FROM cart_abandonments r
    WHERE r.abandoned_at BETWEEN range_from AND range_to
), since AS (
    SELECT min(a.last_activity_at) AS t FROM a
), later_ab AS MATERIALIZED (
    -- Them, and their users' other abandonments that can supersede one of
    -- them (those start after its last activity, so they were abandoned
    -- after it).
    SELECT a.abandonment_id, a.user_id, a.session_start, a.last_activity_at
    FROM a
    UNION ALL
    SELECT n.abandonment_id, n.user_id, n.session_start, n.last_activity_at
    FROM cart_abandonments n
    WHERE n.abandoned_at > (SELECT t FROM since)
      AND NOT n.abandoned_at BETWEEN range_from AND range_to
      AND n.user_id IN (SELECT a.user_id FROM a)
), later_co AS MATERIALIZED (
    SELECT c.user_id, c.checkout_at
    FROM cart_conversions c
    WHERE c.checkout_at > (SELECT t FROM since)
      AND c.user_id IN (SELECT a.user_id FROM a)
), next_checkout AS MATERIALIZED (
    -- The user's first checkout strictly after each abandonment's last
    -- activity: a running minimum backwards in time, a checkout at the
    -- same instant sorting after the abandonment (not counted).
    SELECT e.abandonment_id,
           min(e.at) FILTER (WHERE e.checkout) OVER (
               PARTITION BY e.user_id ORDER BY e.at DESC, e.checkout
               ROWS UNBOUNDED PRECEDING) AS first_checkout
    FROM (SELECT l.user_id, l.last_activity_at AS at, false AS checkout,
                 l.abandonment_id
          FROM later_ab l
          UNION ALL
          SELECT l.user_id, l.checkout_at, true, NULL FROM later_co l) e
), next_ab AS MATERIALIZED (
    SELECT l.abandonment_id, l.user_id, l.last_activity_at,
           lead(l.abandonment_id) OVER u AS next_id,
           lead(l.session_start) OVER u AS next_start,
           lead(l.last_activity_at) OVER u AS next_last
    FROM later_ab l
    WINDOW u AS (PARTITION BY l.user_id ORDER BY l.session_start)
), overlapping AS MATERIALIZED (
    -- The rows of users with abandonments that overlap in time (never
    -- written by the processor): searched instead.
    SELECT l.* FROM later_ab l
    WHERE l.user_id IN (SELECT x.user_id FROM next_ab x
                        WHERE x.next_start <= x.last_activity_at
                           OR x.next_last <= x.last_activity_at)
), outcome AS (
    SELECT a.*, c.first_checkout,
           CASE WHEN NOT EXISTS (SELECT 1 FROM overlapping o
                                 WHERE o.user_id = a.user_id)
                THEN CASE WHEN c.first_checkout IS NULL
                               OR x.next_last < c.first_checkout
                          THEN x.next_id END
                ELSE (SELECT o.abandonment_id FROM overlapping o
                      WHERE o.user_id = a.user_id
                        AND o.session_start > a.last_activity_at
                        AND (c.first_checkout IS NULL
                             OR o.last_activity_at < c.first_checkout)
                      ORDER BY o.session_start LIMIT 1)
           END AS superseded_by
    FROM a
    JOIN next_checkout c USING (abandonment_id)
    JOIN next_ab x USING (abandonment_id)
)
SELECT o.abandonment_id, o.user_id, o.session_start, o.last_activity_at,
       o.abandoned_at, o.item_count, o.cart_value_cents, o.currency,
       o.last_remove_reason, o.recovered_at, o.recovered_value_cents,
       o.superseded_by,
       o.recovered_at IS NULL AND o.superseded_by IS NULL,
       CASE WHEN o.recovered_at IS NULL AND o.superseded_by IS NULL
            THEN o.cart_value_cents ELSE 0 END,
       o.recovered_at IS NULL AND o.superseded_by IS NULL
           AND o.first_checkout IS NULL
FROM outcome o
$fn$;
COMMENT ON FUNCTION report_abandonment_outcomes_between(timestamptz, timestamptz) IS
    'report_abandonment_outcomes for the abandonments with abandoned_at between range_from '
    'and range_to (inclusive, as Grafana''s $__timeFilter): same columns and rows, reading '
    'only rows since the range. Use it for a time range; the view computes all of them.';

CREATE OR REPLACE VIEW report_abandonment_outcomes AS
SELECT * FROM report_abandonment_outcomes_between('-infinity', 'infinity');
COMMENT ON VIEW report_abandonment_outcomes IS
    'One row per abandonment (the raw view): superseded_by = the user''s next abandonment '
    'with no checkout in between (the same cart, carried over and abandoned again); missed = '
    'not recovered and not superseded, so each unbought cart is missed once; '
    'missed_value_cents = its cart value then, else 0; carried_over = missed and no later '
    'checkout by the user (the cart is still held, until --cart-ttl). Computes every '
    'abandonment: for a time range use report_abandonment_outcomes_between(from, to).';
