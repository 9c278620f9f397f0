#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""pgdump.py — the results of an end-to-end run as stored in PostgreSQL, in
the canonical JSON form of oracle.py (times as ms since the epoch), read
with psql through libpq's environment (PGHOST, PGPORT, PGDATABASE, ...)."""
import json
import subprocess
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from oracle import canonical  # noqa: E402

MS = "(extract(epoch from {0}) * 1000)::bigint"


def query(sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c",
         f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t"],
        check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


def main():
    abandonments = query(f"""
        SELECT a.abandonment_id::text, a.user_id,
               {MS.format('a.session_start')} AS session_start,
               {MS.format('a.last_activity_at')} AS last_activity_at,
               {MS.format('a.abandoned_at')} AS abandoned_at,
               a.item_count, a.cart_value_cents, a.currency,
               a.last_remove_reason,
               {MS.format('a.recovered_at')} AS recovered_at,
               a.recovered_value_cents,
               (SELECT coalesce(json_agg(json_build_array(i.product_id,
                        i.quantity, i.unit_price_cents)
                        ORDER BY i.product_id), '[]')
                  FROM abandoned_items i
                 WHERE i.abandonment_id = a.abandonment_id) AS items
          FROM cart_abandonments a""")
    conversions = query(f"""
        SELECT conversion_id::text AS conversion_id, user_id,
               {MS.format('checkout_at')} AS checkout_at,
               item_count, cart_value_cents,
               recovered_abandonment_id::text AS recovered_abandonment_id
          FROM cart_conversions""")
    stats = query(f"""
        SELECT {MS.format('bucket')} AS bucket, product_id, added_qty,
               removed_qty, purchased_qty, purchased_value_cents,
               abandoned_qty, abandoned_value_cents
          FROM product_stats_minute""")
    reasons = query(f"""
        SELECT {MS.format('bucket')} AS bucket, product_id, reason,
               removed_qty
          FROM remove_reasons_minute""")
    json.dump(canonical(abandonments, conversions, stats, reasons),
              sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
