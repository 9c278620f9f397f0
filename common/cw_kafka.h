/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_kafka — the librdkafka set-up every binary shares: a configuration
 * built from the binary's defaults and the user's -X key=value list, with
 * an error that names the property librdkafka refused; librdkafka's own
 * log routed into cw_log (so it follows --log-format and --log-level);
 * client creation with an error that says which client failed; and the
 * group consumer of one topic that commits only what its binary says is
 * done (the processor and notify).
 *
 * Not for: what the callbacks do, producing or consuming; each binary
 * keeps those, they differ.
 */
#pragma once

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "cw_config.h"

/* One librdkafka property, key and value as librdkafka spells them. */
struct cw_kafka_prop {
	const char *key;
	const char *value;
};

/* A new configuration holding, in this order: bootstrap.servers =
 * @bootstrap_servers, the binary's @defaults (an array ended by an entry
 * with a NULL key; NULL: none), then the user's @user properties (NULL:
 * none), so that the user's win over the defaults. Its log callback writes
 * librdkafka's messages through cw_log: syslog levels 0-3 as error, 4 as
 * warn, 5 as info, 6 and 7 as debug.
 * Returns the configuration, which the caller owns (it passes it to
 * cw_kafka_new() or rd_kafka_conf_destroy()), or NULL with
 * "Kafka property KEY: <librdkafka's reason>" in @errstr. Any thread. */
rd_kafka_conf_t *cw_kafka_conf_new(const char *bootstrap_servers,
				   const struct cw_kafka_prop *defaults,
				   const struct cw_kv_list *user, char *errstr,
				   size_t errstr_size);

/* Set @key to @value on @conf whatever the user asked: for the settings a
 * binary depends on (group.id, enable.auto.commit=false...). Returns 0, or
 * -EINVAL with "Kafka property KEY: <reason>" in @errstr. */
int cw_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
		      char *errstr, size_t errstr_size);

/* Create a producer or consumer from @conf. Takes ownership of @conf in
 * every case: the client owns it on success, and it is destroyed on
 * failure. Returns the client, or NULL with "cannot create the Kafka
 * producer: <reason>" (or consumer) in @errstr. */
rd_kafka_t *cw_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
			 char *errstr, size_t errstr_size);

/* What cw_kafka_consumer_new() builds a consumer from. */
struct cw_kafka_consumer_params {
	const char *bootstrap_servers;
	/* The binary's defaults and the user's -X list, as for
	 * cw_kafka_conf_new() (NULL: none). */
	const struct cw_kafka_prop *defaults;
	const struct cw_kv_list *user;
	/* Settings the binary forces on top of the common ones (NULL key
	 * ends the array; NULL: none), e.g. auto.offset.reset. */
	const struct cw_kafka_prop *forced;
	const char *group; /* group.id */
	const char *topic; /* the one topic subscribed to */
	/* NULL: librdkafka's own handling (it assigns and revokes by
	 * itself; it logs errors). */
	void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			     rd_kafka_topic_partition_list_t *partitions,
			     void *opaque);
	void (*error_cb)(rd_kafka_t *rk, int err, const char *reason,
			 void *opaque);
	void *opaque; /* handed to both callbacks */
};

/* A consumer in group @p->group, subscribed to @p->topic, that never
 * commits or stores an offset by itself: the configuration of
 * cw_kafka_conf_new(), then, whatever the defaults or -X say, group.id,
 * enable.auto.commit=false, enable.auto.offset.store=false and
 * enable.partition.eof=true (idle detection needs the end of a
 * partition), then @p->forced. librdkafka's main queue is redirected to
 * the consumer's, so the callbacks run in the thread that calls
 * rd_kafka_consumer_poll().
 * Returns the consumer, which the caller owns (it closes and destroys
 * it), or NULL with the error in @errstr: "Kafka property KEY: ...",
 * "cannot create the Kafka consumer: ..." or "cannot subscribe to TOPIC:
 * ...". Any thread; does not wait for the brokers. */
rd_kafka_t *cw_kafka_consumer_new(const struct cw_kafka_consumer_params *p,
				  char *errstr, size_t errstr_size);
