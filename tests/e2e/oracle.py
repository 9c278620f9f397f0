#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""oracle.py — the expected PostgreSQL contents of an end-to-end run,
computed independently of the processor's C code.

It reads the cart events back from Kafka with kcat (partition, offset, key,
payload), decodes them with Python's avro library from
schemas/cart_event.avsc, applies the session rules as the issue states them
(per partition, in offset order, with the partition watermark), lets every
watermark run to the end, and prints a canonical JSON document:
abandonments (with items), conversions, product minute stats and reason
minute stats. pgdump.py prints the same document from PostgreSQL; the test
compares the two.

Usage: oracle.py BOOTSTRAP TOPIC SCHEMA --session-timeout MS
       --allowed-lateness MS --cart-ttl MS --recovery-window MS
"""
import argparse
import heapq
import io
import json
import struct
import subprocess
import sys

import avro.io
import avro.schema

MASK64 = (1 << 64) - 1
# Single-object header of cartwatch.CartEvent: magic + the CRC-64-AVRO
# fingerprint that tests/fingerprint.py checks independently.
FRAME = b"\xc3\x01" + (0x0DE94D9D1E16AB23).to_bytes(8, "little")


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def fnv1a64(h, data):
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def derive_uuid(seed, s, n, time_ms):
    """The documented id derivation (see processor/partition.c): a hash of
    (seed, s, n), its first 48 bits replaced by time_ms (big-endian)."""
    nb = struct.pack("<q", n)
    hi = mix64(fnv1a64(fnv1a64(0xCBF29CE484222325 ^ seed, s), nb))
    lo = mix64(fnv1a64(fnv1a64(0x84222325CBF29CE4 ^ seed, s), nb))
    b = bytearray(hi.to_bytes(8, "big") + lo.to_bytes(8, "big"))
    b[6] = (b[6] & 0x0F) | 0x80
    b[8] = (b[8] & 0x3F) | 0x80
    b[0:6] = (time_ms & ((1 << 48) - 1)).to_bytes(6, "big")
    h = b.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def abandonment_id(user, start):
    return derive_uuid(0x61, user.encode(), start, start)


def conversion_id(user, offset, checkout_at):
    return derive_uuid(0x63, user.encode(), offset, checkout_at)


def read_events(bootstrap, topic, schema_path):
    # Read logical types as their plain Avro types (ms numbers, strings).
    text = open(schema_path).read()
    for lt in ('"timestamp-millis"', '"uuid"'):
        text = text.replace('"logicalType": ' + lt, '"cwLogicalType": ' + lt)
        text = text.replace('"logicalType":' + lt, '"cwLogicalType":' + lt)
    schema = avro.schema.parse(text)
    reader = avro.io.DatumReader(schema)
    out = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q",
         "-f", "%p %o %K %S\n%k%s"],
        check=True, stdout=subprocess.PIPE).stdout
    pos, events = 0, []
    while pos < len(out):
        nl = out.index(b"\n", pos)
        p, o, klen, vlen = (int(x) for x in out[pos:nl].split())
        pos = nl + 1
        key = out[pos:pos + max(klen, 0)].decode()
        pos += max(klen, 0)
        val = out[pos:pos + vlen]
        pos += vlen
        if len(val) < 10 or val[0:10] != FRAME:
            continue  # garbage or a foreign schema: dead-lettered
        try:
            ev = reader.read(avro.io.BinaryDecoder(io.BytesIO(val[10:])))
        except Exception:
            continue
        events.append((p, o, key, ev))
    events.sort(key=lambda e: (e[0], e[1]))
    return events


class Oracle:
    def __init__(self, T, lateness, ttl, window):
        self.T, self.lateness, self.ttl, self.window = T, lateness, ttl, window
        self.abandonments = {}
        self.conversions = []
        self.stats = {}    # (bucket, product) -> [6 counters]
        self.reasons = {}  # (bucket, product, reason) -> qty

    def stat(self, t, product, field, qty, vfield=None, value=0):
        s = self.stats.setdefault((t // 60000 * 60000, product), [0] * 6)
        s[field] += qty
        if vfield is not None:
            s[vfield] += value

    def run_partition(self, events):
        users = {}
        wm = None
        heap = []  # (deadline, seq, user) with lazy deletion
        seq = 0

        def deadline(u):
            if u["open"]:
                return u["last"] + self.T
            d = None
            if u["cart"]:
                d = u["last"] + self.ttl
            if u["recoverable"]:
                r = u["abandoned_at"] + self.window + 1
                d = r if d is None else min(d, r)
            return d

        def schedule(uid):
            nonlocal seq
            u = users[uid]
            u["deadline"] = deadline(u)
            if u["deadline"] is None:
                del users[uid]
                return
            seq += 1
            heapq.heappush(heap, (u["deadline"], seq, uid))

        def close(uid):
            u = users[uid]
            if u["cart"]:
                ab_at = u["last"] + self.T
                aid = abandonment_id(uid, u["start"])
                items = [(p, q, pr) for p, (q, pr) in u["cart"].items()]
                self.abandonments[aid] = dict(
                    abandonment_id=aid, user_id=uid,
                    session_start=u["start"], last_activity_at=u["last"],
                    abandoned_at=ab_at,
                    item_count=sum(q for _, q, _ in items),
                    cart_value_cents=sum(q * pr for _, q, pr in items),
                    currency=u["currency"], last_remove_reason=u["reason"],
                    recovered_at=None, recovered_value_cents=None,
                    items=sorted([p, q, pr] for p, q, pr in items))
                for p, q, pr in items:
                    self.stat(ab_at, p, 4, q, 5, q * pr)
                u["ab_start"], u["abandoned_at"] = u["start"], ab_at
                u["recoverable"] = True
            u["open"] = False
            u["reason"] = None

        def fire():
            while heap and wm is not None and heap[0][0] <= wm:
                d, _, uid = heapq.heappop(heap)
                u = users.get(uid)
                if u is None or u["deadline"] != d:
                    continue  # stale entry
                if u["open"] and u["last"] + self.T <= wm:
                    close(uid)
                if not u["open"] and u["cart"] and u["last"] + self.ttl <= wm:
                    u["cart"] = {}
                if u["recoverable"] and u["abandoned_at"] + self.window + 1 <= wm:
                    u["recoverable"] = False
                schedule(uid)

        for p, off, key, ev in events:
            uid, t = ev["user_id"], ev["event_time"]
            typ = ev["event_type"]
            if typ != "checkout_complete" and (
                    not ev["product_id"] or ev["quantity"] <= 0
                    or ev["unit_price_cents"] < 0):
                continue  # dead-lettered by the processor
            if not uid:
                continue
            u = users.get(uid)
            if u is None:
                u = users[uid] = dict(open=False, cart={}, last=None,
                                      start=None, reason=None,
                                      currency="USD", recoverable=False,
                                      abandoned_at=None, ab_start=None,
                                      deadline=None)
            if u["open"] and t - u["last"] >= self.T:
                close(uid)
            if not u["open"]:
                u["open"], u["start"], u["last"], u["reason"] = True, t, t, None
            else:
                u["start"] = min(u["start"], t)
                u["last"] = max(u["last"], t)
            u["currency"] = ev["currency"]
            prod, qty = ev["product_id"], ev["quantity"]
            if typ == "cart_add":
                q, _ = u["cart"].get(prod, (0, 0))
                u["cart"][prod] = (q + qty, ev["unit_price_cents"])
                self.stat(t, prod, 0, qty)
            elif typ == "cart_remove":
                u["reason"] = ev["reason"]
                if prod in u["cart"]:
                    q, pr = u["cart"][prod]
                    removed = min(q, qty)
                    if q - removed:
                        u["cart"][prod] = (q - removed, pr)
                    else:
                        del u["cart"][prod]
                    self.stat(t, prod, 1, removed)
                    k = (t // 60000 * 60000, prod, ev["reason"] or "unspecified")
                    self.reasons[k] = self.reasons.get(k, 0) + removed
            else:
                if u["cart"]:
                    items = u["cart"]
                    count = sum(q for q, _ in items.values())
                    value = sum(q * pr for q, pr in items.values())
                    for pr_id, (q, pr) in items.items():
                        self.stat(t, pr_id, 2, q, 3, q * pr)
                    rec = None
                    if u["recoverable"] and t - u["abandoned_at"] <= self.window:
                        rec = abandonment_id(uid, u["ab_start"])
                        a = self.abandonments[rec]
                        a["recovered_at"], a["recovered_value_cents"] = t, value
                        u["recoverable"] = False
                    self.conversions.append(dict(
                        conversion_id=conversion_id(uid, off, t),
                        user_id=uid, checkout_at=t, item_count=count,
                        cart_value_cents=value, recovered_abandonment_id=rec))
                    u["cart"] = {}
            schedule(uid)
            cand = t - self.lateness
            if wm is None or cand > wm:
                wm = cand
            fire()
        # The end: every watermark runs past every deadline.
        wm = 2**62
        fire()

    def document(self):
        return canonical(
            list(self.abandonments.values()), self.conversions,
            [dict(bucket=b, product_id=p, added_qty=v[0], removed_qty=v[1],
                  purchased_qty=v[2], purchased_value_cents=v[3],
                  abandoned_qty=v[4], abandoned_value_cents=v[5])
             for (b, p), v in self.stats.items()],
            [dict(bucket=b, product_id=p, reason=r, removed_qty=q)
             for (b, p, r), q in self.reasons.items()])


def canonical(abandonments, conversions, stats, reasons):
    """The comparison form shared with pgdump.py."""
    return dict(
        abandonments=sorted(abandonments, key=lambda a: a["abandonment_id"]),
        conversions=sorted(conversions,
                           key=lambda c: (c["user_id"], c["checkout_at"])),
        product_stats=sorted((s for s in stats), key=lambda s: (s["bucket"], s["product_id"])),
        reason_stats=sorted(reasons, key=lambda r: (r["bucket"], r["product_id"], r["reason"])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("schema")
    ap.add_argument("--session-timeout", type=int, default=30 * 60000)
    ap.add_argument("--allowed-lateness", type=int, default=5000)
    ap.add_argument("--cart-ttl", type=int, default=7 * 86400000)
    ap.add_argument("--recovery-window", type=int, default=7 * 86400000)
    a = ap.parse_args()
    events = read_events(a.bootstrap, a.topic, a.schema)
    o = Oracle(a.session_timeout, a.allowed_lateness, a.cart_ttl,
               a.recovery_window)
    for part in sorted({e[0] for e in events}):
        o.run_partition([e for e in events if e[0] == part])
    doc = o.document()
    doc["events"] = len(events)
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
