// SPDX-License-Identifier: Apache-2.0
package cartwatch.kstreams;

import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * The bench's "done" probe for the Kafka Streams peer, run as a process of
 * its own so its CPU is not the application's: polls the committed offsets
 * of consumer group GROUP on TOPIC every 50 ms and prints
 * "done EPOCH_SECONDS" once they add up to N (under exactly_once_v2 that
 * is when the transaction holding the last input offsets has committed, so
 * its output is visible to read_committed consumers). Prints "ready" once
 * connected. Exits 1 after TIMEOUT_S seconds without reaching N.
 *
 * Usage: Watch BOOTSTRAP GROUP TOPIC N TIMEOUT_S
 */
public final class Watch {
    public static void main(String[] argv) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, argv[0]);
        String group = argv[1], topic = argv[2];
        long n = Long.parseLong(argv[3]);
        long deadline = System.currentTimeMillis() + 1000L * Long.parseLong(argv[4]);
        try (Admin admin = Admin.create(p)) {
            admin.describeCluster().clusterId().get();
            System.out.println("ready");
            System.out.flush();
            long sum = 0;
            while (System.currentTimeMillis() < deadline) {
                sum = 0;
                Map<TopicPartition, OffsetAndMetadata> m =
                        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : m.entrySet())
                    if (e.getKey().topic().equals(topic) && e.getValue() != null)
                        sum += e.getValue().offset();
                if (sum >= n) {
                    System.out.printf("done %.3f%n", System.currentTimeMillis() / 1000.0);
                    return;
                }
                Thread.sleep(50);
            }
            System.out.println("timeout committed=" + sum);
            System.exit(1);
        }
    }
}
