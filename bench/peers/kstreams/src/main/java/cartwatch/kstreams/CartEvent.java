// SPDX-License-Identifier: Apache-2.0
package cartwatch.kstreams;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;

/**
 * One cart event of the cart-events topic, read from Avro single-object
 * encoding (C3 01, the 8-byte CRC-64-AVRO fingerprint of the writer schema,
 * then the body) with Avro's own {@link BinaryMessageDecoder}, which checks
 * the header and resolves any writer schema it was given (the current
 * schemas/cart_event.avsc and everything in schemas/history/) against the
 * current one. Not for writing events: cartwatch-producer does that.
 */
public record CartEvent(String eventId, String type, long eventTime, String userId,
        String productId, int quantity, long unitPriceCents, String currency, String reason) {

    static Schema schema(String resource) {
        try (InputStream in = CartEvent.class.getResourceAsStream("/" + resource)) {
            if (in == null)
                throw new IllegalStateException(resource + " is not on the classpath");
            return new Schema.Parser().parse(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static final Schema SCHEMA = schema("cart_event.avsc");

    private static String str(Object o) {
        return o == null ? null : o.toString();
    }

    /**
     * Kafka deserializer: a record that does not decode (bad header, an
     * unknown fingerprint, a truncated body) throws SerializationException,
     * which the application's deserialization exception handler turns into
     * a dead letter. One instance per stream task; not thread-safe (it
     * reuses its GenericRecord).
     */
    public static final class AvroDeserializer implements Deserializer<CartEvent> {
        private final BinaryMessageDecoder<GenericRecord> decoder =
                new BinaryMessageDecoder<>(GenericData.get(), SCHEMA);
        private GenericRecord reuse;

        public AvroDeserializer() {
            decoder.addSchema(schema("history/cart_event.v1.avsc"));
        }

        @Override
        public CartEvent deserialize(String topic, byte[] data) {
            if (data == null)
                return null;
            try {
                GenericRecord r = decoder.decode(data, reuse);
                reuse = r;
                return new CartEvent(str(r.get(0)), r.get(1).toString(), (Long) r.get(2),
                        str(r.get(3)), str(r.get(4)), (Integer) r.get(5), (Long) r.get(6),
                        str(r.get(7)), str(r.get(8)));
            } catch (IOException | RuntimeException e) {
                throw new SerializationException("cart event does not decode: " + e, e);
            }
        }
    }
}
