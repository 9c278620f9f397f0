#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""hostile.py DIR — write the hostile cart-event records of the dlq e2e
mode into DIR: keyed.bin for `kcat -P -K KEY_DELIM -D MSG_DELIM` (the
delimiters below), nokey.val (one record without a key, for `kcat -P`),
and refused.txt, the dead-letter reason fragment each refused record must
produce, one a line. Prints the number of records.

The records are encoded here by hand from schemas/cart_event.avsc's field
order (zig-zag varints, length-prefixed bytes), independently of the C
codec, so that they can carry what no well-behaved writer would: invalid
UTF-8, 70 KB ids, times past year 9999.

Keys of refused records start with "hostile", so that the oracle run
without them (--drop-key-prefix hostile) must give the same document.
Bot users ("bot-...") are accepted up to the limits and refused beyond.
"""
import os
import sys

FRAME = b"\xc3\x01" + (0x0DE94D9D1E16AB23).to_bytes(8, "little")
KEY_DELIM, MSG_DELIM = b"%%CW-KEY%%", b"\n%%CW-END%%\n"
TYPES = {"cart_add": 0, "cart_remove": 1, "checkout_complete": 2}
# 2026-07-11T00:00:00Z: after the simulated traffic (from 2026-07-08, at
# most 48 h), so that nothing of it is too old for the watermark the
# normal events left; before the wall clock, so nothing is too far ahead.
T0 = 1783728000000


def zz(n):
    n = (n << 1) ^ (n >> 63)
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def string(b):
    b = b.encode() if isinstance(b, str) else b
    return zz(len(b)) + b


def opt(b):
    return b"\x00" if b is None else b"\x02" + string(b)


serial = 0


def event(user, typ="cart_add", t=T0, product="HOSTILE_P", qty=1,
          price=100, currency="USD", reason=None):
    global serial
    serial += 1
    event_id = f"00000000-0000-4000-8000-{serial:012d}"
    return (FRAME + string(event_id) + zz(TYPES[typ]) + zz(t) + string(user)
            + opt(product if typ != "checkout_complete" else None)
            + zz(qty) + zz(price) + string(currency) + opt(reason))


def records():
    """(key, value, expected reason fragment or None if accepted)."""
    yield b"hostile-9999", event("hostile-9999", t=253402300799000), "is ahead of the bound"
    yield b"hostile-1e16", event("hostile-1e16", t=10**16), "is after 9999-12-31"
    yield b"hostile-max", event("hostile-max", t=(1 << 63) - 1), "is after 9999-12-31"
    yield b"hostile-neg", event("hostile-neg", t=-1), "is before 1970"
    yield b"hostile-utf8", event("hostile-utf8", product=b"ECHO\xff\xfe"), "product_id is not printable UTF-8"
    yield b"hostile-nul\x00x", event(b"hostile-nul\x00x"), "user_id is not printable UTF-8"
    long_user = b"hostile-" + b"u" * 70000
    yield long_user, event(long_user), "user_id is 70008 bytes long"
    yield b"hostile-pid", event("hostile-pid", product="P" * 10240), "product_id is 10240 bytes long"
    yield b"hostile-rsn", event("hostile-rsn", typ="cart_remove", reason="R" * 10240), "reason is 10240 bytes long"
    yield b"hostile-qty0", event("hostile-qty0", qty=0), "quantity 0 is not in"
    yield b"hostile-qtybig", event("hostile-qtybig", qty=2_000_000), "quantity 2000000 is not in"
    yield b"hostile-price", event("hostile-price", price=(1 << 63) - 1), "unit_price_cents 9223372036854775807"
    yield b"hostile-cur", event("hostile-cur", currency="usd"), "currency must be 3 capital letters"
    yield b"hostile-old", event("hostile-old", t=1000), "older than the watermark"
    # The same body under another key, and under none.
    yield b"hostile-k2", event("hostile-k1"), "record key differs"
    yield None, event("hostile-k1"), "record has no key"
    # A bot: 20 products fit (--max-cart-items 20), the 21st does not.
    for i in range(21):
        yield b"bot-1", event("bot-1", product=f"BOT_{i}"), None if i < 20 else "--max-cart-items 20"
    # A line of 10^6 units fits, one more unit does not.
    big = event("bot-2", product="BOT_BIG", qty=10**6, price=10**10)
    yield b"bot-2", big, None
    # The same record again (a client's retry): a duplicate, dropped.
    yield b"bot-2", big, None
    yield b"bot-2", event("bot-2", product="BOT_BIG", qty=1, price=10**10), "1000000 units"
    # 1000 checkouts of 10^16 cents of one product in one minute: its
    # per-minute purchased value saturates at 2^63 - 1.
    for i in range(1000):
        yield b"bot-3", event("bot-3", product="BOT_SAT", qty=10**6, price=10**10, t=T0 + i), None
        yield b"bot-3", event("bot-3", typ="checkout_complete", t=T0 + i), None


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0
    with open(os.path.join(out, "keyed.bin"), "wb") as keyed, \
            open(os.path.join(out, "refused.txt"), "w") as refused:
        for key, val, why in records():
            assert MSG_DELIM not in val and KEY_DELIM not in val
            if key is None:
                open(os.path.join(out, "nokey.val"), "wb").write(val)
            else:
                keyed.write(key + KEY_DELIM + val + MSG_DELIM)
            if why:
                refused.write(why + "\n")
            n += 1
    print(n)


if __name__ == "__main__":
    main()
