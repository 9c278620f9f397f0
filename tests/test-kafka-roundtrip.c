/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-kafka-roundtrip — a message produced with librdkafka comes back
 * from the broker in $CARTWATCH_BOOTSTRAP_SERVERS (embedded or real) with the
 * same partition, key and payload, and the topic has the partition count
 * the harness created. Proves the broker harnesses work end to end.
 */
#include <librdkafka/rdkafka.h>

#include "harness.h"

#define TOPIC	   "cart-events"
#define PARTITIONS 4
#define N_MSGS	   200

struct sent {
	int32_t partition;
	int64_t offset;
	bool delivered;
};
static struct sent sent[N_MSGS];

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	int i = (int)(intptr_t)m->_private;
	(void)rk;
	(void)opaque;
	CHECK_INT_EQ(m->err, 0);
	sent[i].partition = m->partition;
	sent[i].offset = m->offset;
	sent[i].delivered = m->err == 0;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
	char errstr[512];
	rd_kafka_t *rk;

	REQUIRE(rd_kafka_conf_set(
			conf, "bootstrap.servers",
			harness_require_env("CARTWATCH_BOOTSTRAP_SERVERS"),
			errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK);
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (!rk)
		fprintf(stderr, "rd_kafka_new: %s\n", errstr);
	REQUIRE(rk);
	return rk;
}

static void test_roundtrip(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const struct rd_kafka_metadata *md;
	rd_kafka_t *producer, *consumer;
	rd_kafka_topic_partition_list_t *parts;
	int got = 0;
	int64_t deadline;

	rd_kafka_conf_set(conf, "enable.idempotence", "true", NULL, 0);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	producer = client_new(RD_KAFKA_PRODUCER, conf);

	/* The topic has exactly the partitions the harness asked for. */
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(producer, TOPIC, NULL);
	REQUIRE(rd_kafka_metadata(producer, 0, rkt, &md, 10000) == 0);
	REQUIRE(md->topic_cnt == 1);
	CHECK_INT_EQ(md->topics[0].err, 0);
	CHECK_INT_EQ(md->topics[0].partition_cnt, PARTITIONS);
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);

	for (int i = 0; i < N_MSGS; i++) {
		char key[32], val[64];
		snprintf(key, sizeof(key), "user_%d", i % 37);
		snprintf(val, sizeof(val), "payload-%d-\x01\x02", i);
		REQUIRE(rd_kafka_producev(
				producer, RD_KAFKA_V_TOPIC(TOPIC),
				RD_KAFKA_V_KEY(key, strlen(key)),
				RD_KAFKA_V_VALUE(val, strlen(val)),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_OPAQUE((void *)(intptr_t)i),
				RD_KAFKA_V_END) == 0);
	}
	CHECK_INT_EQ(rd_kafka_flush(producer, 30000), 0);
	for (int i = 0; i < N_MSGS; i++)
		CHECK(sent[i].delivered);
	/* Same key, same partition (keyed partitioning works). */
	for (int i = 37; i < N_MSGS; i++)
		CHECK_INT_EQ(sent[i].partition, sent[i - 37].partition);
	rd_kafka_destroy(producer);

	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "group.id", "roundtrip-test", NULL, 0);
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
	consumer = client_new(RD_KAFKA_CONSUMER, conf);
	parts = rd_kafka_topic_partition_list_new(PARTITIONS);
	for (int p = 0; p < PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	REQUIRE(rd_kafka_assign(consumer, parts) == 0);
	rd_kafka_topic_partition_list_destroy(parts);

	deadline = harness_now_ms() + 30000;
	while (got < N_MSGS && harness_now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 200);
		int i;
		char key[32], val[64];

		if (!m)
			continue;
		if (m->err) {
			rd_kafka_message_destroy(m);
			continue;
		}
		REQUIRE(m->len < sizeof(val) && m->key_len < sizeof(key));
		REQUIRE(sscanf(m->payload, "payload-%d-", &i) == 1);
		REQUIRE(i >= 0 && i < N_MSGS);
		snprintf(key, sizeof(key), "user_%d", i % 37);
		snprintf(val, sizeof(val), "payload-%d-\x01\x02", i);
		CHECK_INT_EQ(m->key_len, strlen(key));
		CHECK(memcmp(m->key, key, m->key_len) == 0);
		CHECK_INT_EQ(m->len, strlen(val));
		CHECK(memcmp(m->payload, val, m->len) == 0);
		CHECK_INT_EQ(m->partition, sent[i].partition);
		CHECK_INT_EQ(m->offset, sent[i].offset);
		got++;
		rd_kafka_message_destroy(m);
	}
	CHECK_INT_EQ(got, N_MSGS);
	rd_kafka_consumer_close(consumer);
	rd_kafka_destroy(consumer);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"roundtrip", test_roundtrip},
	};
	return harness_run(cases, 1, argc, argv);
}
