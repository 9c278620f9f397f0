// SPDX-License-Identifier: Apache-2.0
package cartwatch.kstreams;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindowedKStream;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.Stores;

/**
 * cartwatch's job as an idiomatic Kafka Streams application, the peer that
 * bench/bench-processor.sh measures cartwatch-processor against:
 *
 * <pre>
 * cart-events (key user_id, Avro single-object CartEvent)
 *   -> groupByKey                  (already keyed by user: no repartition)
 *   -> session windows             (30 min inactivity gap, 5 s grace, event time)
 *   -> aggregate to a Cart         (RocksDB session store + changelog)
 *   -> emit on window close        (suppress untilWindowCloses, or emitStrategy onWindowClose)
 *   -> carts left with items       -> Avro single-object CartAbandonment
 *   -> the abandonments topic      (key user_id)
 * </pre>
 *
 * Unlike cartwatch it writes only to Kafka: no PostgreSQL, no conversions,
 * no per-minute statistics, no recoveries. Records that do not decode are
 * logged and skipped (LogAndContinueExceptionHandler). It runs until
 * SIGTERM, then closes (committing) and exits 0.
 *
 * Usage: CartStreams --bootstrap HOST:PORT [--input cart-events]
 *   [--output kstreams-abandonments] [--app-id cartwatch-kstreams]
 *   [--guarantee exactly_once_v2|at_least_once] [--state-dir DIR]
 *   [--commit-ms 1000] [--emit suppress|close] [--threads 1] [--store rocksdb|memory]
 * Prints "kstreams: RUNNING <epoch ms>" on stdout at each transition to RUNNING.
 */
public final class CartStreams {
    static final Duration GAP = Duration.ofMinutes(30);
    static final Duration GRACE = Duration.ofSeconds(5);
    static final Schema ABANDONMENT = CartEvent.schema("cart_abandonment.avsc");

    /** Event time is the record's event_time, as in cartwatch. */
    static final class EventTime implements TimestampExtractor {
        @Override
        public long extract(org.apache.kafka.clients.consumer.ConsumerRecord<Object, Object> r,
                long partitionTime) {
            return r.value() instanceof CartEvent ev ? ev.eventTime() : partitionTime;
        }
    }

    /** A closed session with items left, as the cart_abandonment.avsc record. */
    static byte[] abandonment(BinaryMessageEncoder<GenericRecord> enc, Windowed<String> w, Cart c) {
        Schema itemSchema = ABANDONMENT.getField("items").schema().getElementType();
        List<GenericRecord> items = new ArrayList<>(c.items.size());
        for (Map.Entry<String, long[]> e : c.items.entrySet()) {
            GenericRecord it = new GenericData.Record(itemSchema);
            it.put(0, e.getKey());
            it.put(1, (int) e.getValue()[0]);
            it.put(2, e.getValue()[1]);
            items.add(it);
        }
        String user = w.key();
        GenericRecord r = new GenericData.Record(ABANDONMENT);
        // Stable across replays: the same user and session start give the same id.
        r.put(0, UUID.nameUUIDFromBytes((user + "/" + w.window().start())
                .getBytes(StandardCharsets.UTF_8)).toString());
        r.put(1, user);
        r.put(2, w.window().start());
        r.put(3, w.window().end());
        r.put(4, w.window().end() + GAP.toMillis());
        r.put(5, items);
        r.put(6, c.itemCount());
        r.put(7, c.valueCents());
        r.put(8, c.currency);
        r.put(9, c.lastReason);
        try {
            ByteBuffer b = enc.encode(r);
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Topology topology(String input, String output, boolean suppress, boolean inMemory) {
        StreamsBuilder sb = new StreamsBuilder();
        Serde<CartEvent> events = Serdes.serdeFrom((t, v) -> {
            throw new UnsupportedOperationException("cart events are only read");
        }, new CartEvent.AvroDeserializer());
        SessionWindowedKStream<String, CartEvent> sessions = sb
                .stream(input, Consumed.with(Serdes.String(), events)
                        .withTimestampExtractor(new EventTime()))
                .groupByKey()
                .windowedBy(SessionWindows.ofInactivityGapAndGrace(GAP, GRACE));
        if (!suppress)
            sessions = sessions.emitStrategy(EmitStrategy.onWindowClose());
        // The default store is RocksDB, segmented by event time (a new
        // RocksDB instance every retention / 2); the in-memory one is kept
        // in a skip list, both with a changelog topic.
        Materialized<String, Cart, org.apache.kafka.streams.state.SessionStore<org.apache.kafka.common.utils.Bytes, byte[]>> store =
                inMemory ? Materialized.as(Stores.inMemorySessionStore("carts", GAP.plus(GRACE)))
                         : Materialized.as("carts");
        KTable<Windowed<String>, Cart> carts = sessions.aggregate(Cart::new, Cart::apply,
                Cart::merge, store.withKeySerde(Serdes.String()).withValueSerde(Cart.SERDE));
        if (suppress)
            carts = carts.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
        BinaryMessageEncoder<GenericRecord> enc =
                new BinaryMessageEncoder<>(GenericData.get(), ABANDONMENT);
        carts.toStream()
                .filter((w, c) -> c != null && !c.items.isEmpty())
                .map((w, c) -> KeyValue.pair(w.key(), abandonment(enc, w, c)))
                .to(output, Produced.with(Serdes.String(), Serdes.ByteArray()));
        return sb.build();
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new java.util.HashMap<>(Map.of("--input", "cart-events",
                "--output", "kstreams-abandonments", "--app-id", "cartwatch-kstreams",
                "--guarantee", StreamsConfig.EXACTLY_ONCE_V2, "--state-dir",
                System.getProperty("java.io.tmpdir") + "/cartwatch-kstreams",
                "--commit-ms", "1000", "--emit", "suppress", "--threads", "1", "--store", "rocksdb"));
        for (int i = 0; i < argv.length; i += 2) {
            if (i + 1 >= argv.length || !a.containsKey(argv[i]) && !argv[i].equals("--bootstrap")) {
                System.err.println("CartStreams: unknown or incomplete option " + argv[i]);
                System.exit(2);
            }
            a.put(argv[i], argv[i + 1]);
        }
        if (!a.containsKey("--bootstrap")) {
            System.err.println("CartStreams: --bootstrap HOST:PORT is required");
            System.exit(2);
        }
        String emit = a.get("--emit");
        if (!emit.equals("suppress") && !emit.equals("close")) {
            System.err.println("CartStreams: --emit must be suppress or close");
            System.exit(2);
        }

        String storeKind = a.get("--store");
        if (!storeKind.equals("rocksdb") && !storeKind.equals("memory")) {
            System.err.println("CartStreams: --store must be rocksdb or memory");
            System.exit(2);
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("--app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("--bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a.get("--guarantee"));
        p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("--state-dir"));
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.get("--commit-ms"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.get("--threads"));
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG,
                LogAndContinueExceptionHandler.class);

        KafkaStreams streams = new KafkaStreams(
                topology(a.get("--input"), a.get("--output"), emit.equals("suppress"),
                        storeKind.equals("memory")), p);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING)
                System.out.println("kstreams: RUNNING " + System.currentTimeMillis());
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING)
                stopped.countDown();
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams: stream thread failed: " + e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            stopped.countDown();
        }));
        streams.cleanUp(); // a fresh local state directory for each run
        streams.start();
        stopped.await();
        if (streams.state() == KafkaStreams.State.ERROR)
            System.exit(1);
    }
}
