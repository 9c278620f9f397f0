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
compares the two. Imported, Oracle.at_risk also says which sessions were
open once the last event was applied (tests/test-dashboard.py).

Untrusted input is refused by the rules of issue 9 as stated there, not
as the C code words them: bounded printable strings, quantity and price
bounds, event times from 1970 to 9999, the record key equal to user_id,
event times not further ahead than --max-ahead past the later of the wall
clock and the partition's progress nor older than the watermark by more
than the cart TTL and recovery window, and carts within --max-cart-items
products, 10^6 units a line and a 64-bit value. An event whose event_id is
one of its user's last 4 applied events' is a duplicate and dropped (a
user whose state is retired forgets them). Per-minute sums saturate at
2^63 - 1.

Usage: oracle.py BOOTSTRAP TOPIC SCHEMA --session-timeout MS
       --allowed-lateness MS --cart-ttl MS --recovery-window MS
       [--max-ahead MS] [--max-cart-items N] [--drop-key-prefix P]
"""
import argparse
import heapq
import io
import json
import struct
import re
import subprocess
import sys
import time

import avro.io
import avro.schema

MASK64 = (1 << 64) - 1
INT64_MAX = (1 << 63) - 1
MAX_ID, MAX_EVENT_ID, MAX_QTY, MAX_PRICE = 256, 64, 10**6, 10**10
MAX_TIME = 253402300799999  # 9999-12-31T23:59:59.999Z
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f]")


def invalid(ev):
    """The reason an event breaks the stateless rules, or None."""
    def bad_string(v, limit, required):
        if not v:
            return required
        return len(v.encode()) > limit or UNPRINTABLE.search(v) is not None
    item = ev["event_type"] != "checkout_complete"
    if bad_string(ev["user_id"], MAX_ID, True):
        return "user_id"
    if bad_string(ev["event_id"], MAX_EVENT_ID, False):
        return "event_id"
    if bad_string(ev["product_id"], MAX_ID, item):
        return "product_id"
    if bad_string(ev["reason"], MAX_ID, False):
        return "reason"
    if not re.fullmatch("[A-Z]{3}", ev["currency"] or ""):
        return "currency"
    if not 0 <= ev["event_time"] <= MAX_TIME:
        return "event_time"
    if item and not 1 <= ev["quantity"] <= MAX_QTY:
        return "quantity"
    if item and not 0 <= ev["unit_price_cents"] <= MAX_PRICE:
        return "unit_price_cents"
    return None
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
        key = out[pos:pos + klen] if klen >= 0 else None
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
    def __init__(self, T, lateness, ttl, window, max_ahead=15 * 60000,
                 max_items=1000):
        self.T, self.lateness, self.ttl, self.window = T, lateness, ttl, window
        self.max_ahead, self.max_items = max_ahead, max_items
        self.now = int(time.time() * 1000)
        self.rejected = {}
        self.abandonments = {}
        self.conversions = []
        self.stats = {}    # (bucket, product) -> [6 counters]
        self.reasons = {}  # (bucket, product, reason) -> qty
        # Carts at risk when the last event had been applied (before the
        # watermark runs to the end): currency -> [open sessions, those
        # holding items, their value], summed over partitions.
        self.at_risk = {}

    def stat(self, t, product, field, qty, vfield=None, value=0):
        s = self.stats.setdefault((t // 60000 * 60000, product), [0] * 6)
        s[field] = min(s[field] + qty, INT64_MAX)
        if vfield is not None:
            s[vfield] = min(s[vfield] + value, INT64_MAX)

    def refuse(self, why):
        self.rejected[why] = self.rejected.get(why, 0) + 1

    def run_partition(self, events):
        users = {}
        wm = None
        progress = None  # latest accepted event time
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
            why = invalid(ev)
            if why:
                self.refuse("invalid " + why)
                continue
            if key is None or key != uid.encode():
                self.refuse("key")
                continue
            if t > max(x for x in (self.now, progress, wm) if x is not None) + self.max_ahead:
                self.refuse("ahead")
                continue
            if wm is not None and t < wm - max(self.ttl, self.window):
                self.refuse("too old")
                continue
            cur = users.get(uid)
            if cur is not None and ev["event_id"] and ev["event_id"] in cur["recent"]:
                self.refuse("duplicate")
                continue
            if typ == "cart_add" and cur is not None:
                cart = dict(cur["cart"])
                q, _ = cart.get(ev["product_id"], (0, 0))
                if q == 0 and len(cart) >= self.max_items:
                    self.refuse("cart items")
                    continue
                cart[ev["product_id"]] = (q + ev["quantity"], ev["unit_price_cents"])
                if q + ev["quantity"] > MAX_QTY or sum(a * b for a, b in cart.values()) > INT64_MAX:
                    self.refuse("cart overflow")
                    continue
            progress = t if progress is None else max(progress, t)
            u = users.get(uid)
            if u is None:
                u = users[uid] = dict(open=False, cart={}, last=None,
                                      start=None, reason=None,
                                      currency="USD", recoverable=False,
                                      abandoned_at=None, ab_start=None,
                                      deadline=None, recent=[])
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
            if ev["event_id"]:
                u["recent"] = ([ev["event_id"]] + u["recent"])[:4]
            schedule(uid)
            cand = t - self.lateness
            if wm is None or cand > wm:
                wm = cand
            fire()
        for u in users.values():
            if u["open"]:
                r = self.at_risk.setdefault(u["currency"], [0, 0, 0])
                r[0] += 1
                if u["cart"]:
                    r[1] += 1
                    r[2] += sum(q * pr for q, pr in u["cart"].values())
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
    ap.add_argument("--max-ahead", type=int, default=15 * 60000)
    ap.add_argument("--max-cart-items", type=int, default=1000)
    ap.add_argument("--drop-key-prefix", default=None,
                    help="leave out records without a key or whose key "
                    "starts with this")
    a = ap.parse_args()
    events = read_events(a.bootstrap, a.topic, a.schema)
    if a.drop_key_prefix:
        prefix = a.drop_key_prefix.encode()
        events = [e for e in events
                  if e[2] is not None and not e[2].startswith(prefix)]
    o = Oracle(a.session_timeout, a.allowed_lateness, a.cart_ttl,
               a.recovery_window, a.max_ahead, a.max_cart_items)
    for part in sorted({e[0] for e in events}):
        o.run_partition([e for e in events if e[0] == part])
    doc = o.document()
    doc["events"] = len(events)
    doc["rejected"] = o.rejected
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
