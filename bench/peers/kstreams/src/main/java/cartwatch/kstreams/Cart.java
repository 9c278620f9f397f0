// SPDX-License-Identifier: Apache-2.0
package cartwatch.kstreams;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * The aggregate of one shopper's session window: what is in the cart
 * (product to quantity and last-seen unit price), its currency, the last
 * remove reason, and how many checkouts the session converted. The rules
 * follow processor/session.c and processor/cart.c: an add sums quantities
 * and takes the new price, a remove takes away at most what is there (a
 * product not in the cart changes nothing but the reason), a checkout of a
 * non-empty cart is a conversion and empties it. A session that closes with
 * items left is an abandonment.
 *
 * Unlike cartwatch, the cart does not outlive its session: a session window
 * starts from an empty aggregate (see bench/README.md).
 */
public final class Cart {
    /** product id -> {quantity, unit price in cents}, in first-add order */
    final LinkedHashMap<String, long[]> items = new LinkedHashMap<>();
    String currency = "USD";
    String lastReason;
    int conversions;

    /** The Aggregator: applies one event. Never fails. */
    static Cart apply(String userId, CartEvent ev, Cart c) {
        c.currency = ev.currency();
        switch (ev.type()) {
            case "cart_add" -> {
                long[] line = c.items.computeIfAbsent(ev.productId(), k -> new long[2]);
                line[0] = Math.min(Integer.MAX_VALUE, line[0] + ev.quantity());
                line[1] = ev.unitPriceCents();
            }
            case "cart_remove" -> {
                c.lastReason = ev.reason();
                long[] line = c.items.get(ev.productId());
                if (line != null) {
                    line[0] -= Math.min(line[0], ev.quantity());
                    if (line[0] == 0)
                        c.items.remove(ev.productId());
                }
            }
            case "checkout_complete" -> {
                if (!c.items.isEmpty()) {
                    c.conversions++;
                    c.items.clear();
                }
            }
            default -> { }
        }
        return c;
    }

    /**
     * The Merger, for an out-of-order event that bridges two sessions: the
     * later session's lines win on price, quantities add up. Order inside
     * the merged session is lost, as in any merge of aggregates.
     */
    static Cart merge(String userId, Cart a, Cart b) {
        Cart m = new Cart();
        m.items.putAll(a.items);
        for (Map.Entry<String, long[]> e : b.items.entrySet())
            m.items.merge(e.getKey(), e.getValue().clone(),
                    (x, y) -> new long[] {Math.min(Integer.MAX_VALUE, x[0] + y[0]), y[1]});
        m.currency = b.currency;
        m.lastReason = b.lastReason != null ? b.lastReason : a.lastReason;
        m.conversions = a.conversions + b.conversions;
        return m;
    }

    int itemCount() {
        long n = 0;
        for (long[] l : items.values())
            n += l[0];
        return (int) Math.min(Integer.MAX_VALUE, n);
    }

    long valueCents() {
        long v = 0;
        for (long[] l : items.values())
            v += l[0] * l[1];
        return v;
    }

    // ---- serde for the session store and its changelog --------------------
    // A compact hand-written layout: conversions, currency, reason (or -1),
    // n, then n x (product, quantity, price). Strings are length-prefixed
    // UTF-8.

    private static int strSize(byte[] b) {
        return 4 + (b == null ? 0 : b.length);
    }

    private static void putStr(ByteBuffer buf, byte[] b) {
        if (b == null) {
            buf.putInt(-1);
        } else {
            buf.putInt(b.length);
            buf.put(b);
        }
    }

    private static String getStr(ByteBuffer buf) {
        int n = buf.getInt();
        if (n < 0)
            return null;
        String s = new String(buf.array(), buf.arrayOffset() + buf.position(), n,
                StandardCharsets.UTF_8);
        buf.position(buf.position() + n);
        return s;
    }

    static final Serializer<Cart> SERIALIZER = (topic, c) -> {
        if (c == null)
            return null;
        byte[] cur = c.currency.getBytes(StandardCharsets.UTF_8);
        byte[] reason = c.lastReason == null ? null : c.lastReason.getBytes(StandardCharsets.UTF_8);
        byte[][] pids = new byte[c.items.size()][];
        int size = 4 + strSize(cur) + strSize(reason) + 4, i = 0;
        for (String p : c.items.keySet()) {
            pids[i] = p.getBytes(StandardCharsets.UTF_8);
            size += strSize(pids[i++]) + 16;
        }
        ByteBuffer buf = ByteBuffer.allocate(size);
        buf.putInt(c.conversions);
        putStr(buf, cur);
        putStr(buf, reason);
        buf.putInt(pids.length);
        i = 0;
        for (long[] l : c.items.values()) {
            putStr(buf, pids[i++]);
            buf.putLong(l[0]).putLong(l[1]);
        }
        return buf.array();
    };

    static final Deserializer<Cart> DESERIALIZER = (topic, data) -> {
        if (data == null)
            return null;
        ByteBuffer buf = ByteBuffer.wrap(data);
        Cart c = new Cart();
        c.conversions = buf.getInt();
        c.currency = getStr(buf);
        c.lastReason = getStr(buf);
        for (int n = buf.getInt(); n > 0; n--) {
            String p = getStr(buf);
            c.items.put(p, new long[] {buf.getLong(), buf.getLong()});
        }
        return c;
    };

    static final Serde<Cart> SERDE = Serdes.serdeFrom(SERIALIZER, DESERIALIZER);
}
