-- SPDX-License-Identifier: Apache-2.0
-- 011_items_in_abandonments — an abandonment's items are stored with it,
-- as three arrays on its cart_abandonments row, instead of one
-- abandoned_items row each; abandoned_items becomes a view over those
-- arrays with the same columns and the same rows, so readers see no
-- change (bench/README.md has the figures: the items COPY was the most
-- expensive statement of a flush, a row of ~60 bytes of tuple header,
-- index entry and WAL for ~30 bytes of data).
--
-- The columns, item k of the cart at position k of each (1-based, the
-- same order in all three):
--   item_product_ids       text[]   abandoned_items.product_id
--   item_quantities        int[]    abandoned_items.quantity
--   item_unit_price_cents  bigint[] abandoned_items.unit_price_cents
-- Three parallel arrays of base types rather than one array of a
-- composite type: the processor sends them in the binary COPY of
-- cart_abandonments in array_send's layout (a composite element would
-- carry a header and a type oid per field of every item), the view is a
-- plain multi-argument unnest, and each is a type every client reads.
-- NOT NULL, no NULL elements and equal lengths (a CHECK) keep the view's
-- columns NOT NULL in fact, like the table's were. An abandonment is a
-- session that ended with a non-empty cart, so the arrays are not empty;
-- an empty one would simply have no rows in the view.
--
-- In place: the items of existing abandonments are folded into their
-- rows (ordered by product_id); items with no abandonment row (possible
-- only after a hand-made DELETE, as abandoned_items had no foreign key)
-- are dropped with a NOTICE giving their count. The partitioned
-- abandoned_items table and all its partitions are dropped. Views that
-- read abandoned_items keep their names, columns, comments and grants and
-- are re-created over the view (any view, including ones added by hand);
-- report_top_abandoned_products and its by_currency variant then read the
-- arrays directly (same results, faster than through the view).
-- The processor's housekeeping no longer manages abandoned_items
-- partitions (there are none): dropping a day of cart_abandonments now
-- drops that day's items with it.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

-- The definitions of the views that read abandoned_items, taken while it
-- is still the table (pg_get_viewdef names it by its current name).
CREATE TEMP TABLE cw_011_views ON COMMIT DROP AS
SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS def
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
JOIN pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
WHERE d.refclassid = 'pg_class'::regclass
  AND d.refobjid = 'abandoned_items'::regclass;

-- Out of the way of the view; its partitions keep their names until the
-- DROP below.
ALTER TABLE abandoned_items RENAME TO cw_011_abandoned_items;

-- Metadata-only on every partition: a constant default is not written
-- into the existing rows.
ALTER TABLE cart_abandonments
    ADD COLUMN item_product_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN item_quantities int[] NOT NULL DEFAULT '{}',
    ADD COLUMN item_unit_price_cents bigint[] NOT NULL DEFAULT '{}';

UPDATE cart_abandonments a
SET item_product_ids = i.product_ids, item_quantities = i.quantities,
    item_unit_price_cents = i.unit_prices
FROM (SELECT abandonment_id,
             array_agg(product_id ORDER BY product_id) AS product_ids,
             array_agg(quantity ORDER BY product_id) AS quantities,
             array_agg(unit_price_cents ORDER BY product_id) AS unit_prices
      FROM cw_011_abandoned_items
      GROUP BY abandonment_id) i
WHERE a.abandonment_id = i.abandonment_id;

DO $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM cw_011_abandoned_items i
    WHERE NOT EXISTS (SELECT FROM cart_abandonments a
                      WHERE a.abandonment_id = i.abandonment_id);
    IF n > 0 THEN
        RAISE NOTICE '011: % abandoned_items rows without an abandonment dropped', n;
    END IF;
END $$;

-- The default stays: an INSERT written for the old columns still works
-- (an abandonment without items). The processor always writes all three.
ALTER TABLE cart_abandonments
    ADD CONSTRAINT cart_abandonments_items_aligned CHECK (
        cardinality(item_quantities) = cardinality(item_product_ids)
        AND cardinality(item_unit_price_cents) = cardinality(item_product_ids)
        AND array_position(item_product_ids, NULL) IS NULL
        AND array_position(item_quantities, NULL) IS NULL
        AND array_position(item_unit_price_cents, NULL) IS NULL);
COMMENT ON COLUMN cart_abandonments.item_product_ids IS
    'The cart''s products, one per line; item k''s quantity and unit price are at position k '
    'of item_quantities and item_unit_price_cents. Read them one row per line from the '
    'abandoned_items view.';

CREATE VIEW abandoned_items AS
SELECT a.abandonment_id, i.product_id, i.quantity, i.unit_price_cents
FROM cart_abandonments a,
     unnest(a.item_product_ids, a.item_quantities, a.item_unit_price_cents)
         AS i(product_id, quantity, unit_price_cents);
COMMENT ON VIEW abandoned_items IS
    'The lines of an abandoned cart, one row per product (abandonment_id, product_id is '
    'unique): the item arrays of cart_abandonments, unnested. Filter on abandonment_id (or '
    'a range of it) to read only the abandonments wanted.';

-- The views, re-created over the view: same text, same columns, so
-- CREATE OR REPLACE keeps their comments and grants.
CREATE FUNCTION pg_temp.cw_011_views() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT name, def FROM cw_011_views LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v.name, v.def);
    END LOOP;
END $$;
SELECT pg_temp.cw_011_views();

-- The two reports that read every item, re-created once more to unnest
-- the arrays in their select list: same columns, rows and order, but no
-- join of the view back to cart_abandonments and no per-row function
-- scan; on 232k abandonments as fast as the old table, 2-3x faster than
-- through the view (bench/README.md). Comments and grants are kept.
CREATE OR REPLACE VIEW report_top_abandoned_products AS
WITH p AS (
    SELECT product_id,
           sum(quantity)::bigint                           AS abandoned_qty,
           sum(quantity::bigint * unit_price_cents)::bigint AS abandoned_value_cents,
           -- (abandonment_id, product_id) is unique: one row per cart.
           count(*)                                        AS carts
    FROM (SELECT unnest(item_product_ids)      AS product_id,
                 unnest(item_quantities)       AS quantity,
                 unnest(item_unit_price_cents) AS unit_price_cents
          FROM cart_abandonments) i
    GROUP BY product_id
)
SELECT product_id, abandoned_qty, abandoned_value_cents, carts,
       round(abandoned_value_cents::numeric
             / nullif(sum(abandoned_value_cents) OVER (), 0), 4) AS value_share
FROM p
ORDER BY abandoned_value_cents DESC, product_id;

CREATE OR REPLACE VIEW report_top_abandoned_products_by_currency AS
SELECT product_id, currency,
       sum(quantity)::bigint                                      AS abandoned_qty,
       sum(quantity::bigint * unit_price_cents)::bigint           AS abandoned_value_cents,
       count(*)                                                   AS carts
FROM (SELECT currency,
             unnest(item_product_ids)      AS product_id,
             unnest(item_quantities)       AS quantity,
             unnest(item_unit_price_cents) AS unit_price_cents
      FROM cart_abandonments) i
GROUP BY product_id, currency
ORDER BY abandoned_value_cents DESC, product_id, currency;

-- Nothing depends on the old table any more (RESTRICT: a dependent this
-- migration did not foresee fails it rather than vanishing).
DROP TABLE cw_011_abandoned_items;
