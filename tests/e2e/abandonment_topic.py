#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""abandonment_topic.py — check the cart-abandonments topic against the
expected abandonments (oracle.py's document): every expected abandonment
was published, keyed by its user, as an Avro single-object record that
Python's avro library decodes from schemas/cart_abandonment.avsc with the
same fields; nothing unexpected. Duplicates are allowed (the topic is
at-least-once; consumers de-duplicate by abandonment_id) and counted.

Usage: abandonment_topic.py BOOTSTRAP TOPIC SCHEMA EXPECTED.json"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import avro_topic  # noqa: E402

# Fingerprint of cartwatch.CartAbandonment, checked by tests/fingerprint.py.
FINGERPRINT = 0xA3425DF97D9C9D14


def main():
    bootstrap, topic, schema_path, expected_path = sys.argv[1:5]
    got, bad, dups = {}, 0, 0
    for key, framed, rec in avro_topic.records(bootstrap, topic, schema_path, FINGERPRINT):
        if not framed:
            bad += 1
            continue
        if key != rec["user_id"]:
            bad += 1
        if rec["abandonment_id"] in got:
            dups += 1
        got[rec["abandonment_id"]] = rec
    expected = {a["abandonment_id"]: a
                for a in json.load(open(expected_path))["abandonments"]}
    missing = set(expected) - set(got)
    unexpected = set(got) - set(expected)
    differ = 0
    for aid in set(expected) & set(got):
        e, g = expected[aid], got[aid]
        if (e["user_id"], e["session_start"], e["last_activity_at"],
                e["abandoned_at"], e["item_count"], e["cart_value_cents"],
                e["currency"], e["last_remove_reason"], e["items"]) != (
                g["user_id"], g["session_start"], g["last_activity_at"],
                g["abandoned_at"], g["item_count"], g["cart_value_cents"],
                g["currency"], g["last_remove_reason"],
                sorted([i["product_id"], i["quantity"], i["unit_price_cents"]]
                       for i in g["items"])):
            differ += 1
    print(f"{topic}: {len(got)} distinct abandonments ({dups} duplicates), "
          f"missing {len(missing)}, unexpected {len(unexpected)}, "
          f"different {differ}, undecodable or wrongly keyed {bad}",
          file=sys.stderr)
    sys.exit(1 if missing or unexpected or differ or bad or not got else 0)


if __name__ == "__main__":
    main()
