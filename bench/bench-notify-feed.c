/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-notify-feed — produce N abandonment records (the processor's Avro
 * format, common/cw_abandonment) to a topic, as fast as the broker takes
 * them, for bench-notify.sh. Each has 3 items, a unique id and user, and
 * abandoned_at = ABANDONED_AT_MS (+1 ms per record, so a partition's
 * records stay in abandoned_at order as the processor writes them).
 *
 *   bench-notify-feed BOOTSTRAP TOPIC N ABANDONED_AT_MS
 *
 * Exits 0 once every record was acknowledged, 1 otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cw_abandonment.h"

static int failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err)
		failed++;
}

int main(int argc, char **argv)
{
	char errstr[512], id[64], user[32];
	uint8_t buf[1024];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	long n;
	int64_t at;

	if (argc != 5) {
		fprintf(stderr, "usage: bench-notify-feed BOOTSTRAP TOPIC N "
				"ABANDONED_AT_MS\n");
		return 2;
	}
	n = strtol(argv[3], NULL, 10);
	at = strtoll(argv[4], NULL, 10);
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
			      sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", errstr,
			      sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000",
			      errstr, sizeof(errstr))) {
		fprintf(stderr, "bench-notify-feed: %s\n", errstr);
		return 2;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "bench-notify-feed: %s\n", errstr);
		return 2;
	}
	for (long i = 0; i < n; i++) {
		const struct cw_abandoned_item items[3] = {
			{{"MACBOOK_PRO_2023", sizeof("MACBOOK_PRO_2023") - 1},
			 1,
			 199900},
			{{"USB_C_CABLE", sizeof("USB_C_CABLE") - 1}, 2, 1299},
			{{"LAPTOP_SLEEVE", sizeof("LAPTOP_SLEEVE") - 1},
			 1,
			 3499},
		};
		struct cw_abandonment ab = {
			.items = items,
			.n_items = 3,
			.item_count = 4,
			.cart_value_cents = 199900 + 2 * 1299 + 3499,
			.currency = {"USD", sizeof("USD") - 1},
			.last_remove_reason = {"Too expensive",
					       sizeof("Too expensive") - 1},
		};
		ssize_t len;

		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012ld", i);
		snprintf(user, sizeof(user), "user_%ld", i);
		ab.abandonment_id = (struct cw_str){id, strlen(id)};
		ab.user_id = (struct cw_str){user, strlen(user)};
		ab.abandoned_at_ms = at + i;
		ab.last_activity_at_ms = ab.abandoned_at_ms - 1800000;
		ab.session_start_ms = ab.last_activity_at_ms - 600000;
		len = cw_abandonment_encode(&ab, buf, sizeof(buf));
		if (len < 0) {
			fprintf(stderr, "bench-notify-feed: encode failed\n");
			return 1;
		}
		while (rd_kafka_producev(
			       rk, RD_KAFKA_V_TOPIC(argv[2]),
			       RD_KAFKA_V_KEY(user, strlen(user)),
			       RD_KAFKA_V_VALUE(buf, (size_t)len),
			       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			       RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 100);
		rd_kafka_poll(rk, 0);
	}
	rd_kafka_flush(rk, 60000);
	if (rd_kafka_outq_len(rk) > 0)
		failed++;
	rd_kafka_destroy(rk);
	return failed ? 1 : 0;
}
