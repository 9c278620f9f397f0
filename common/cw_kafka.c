/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_kafka — librdkafka configuration, logging and client creation. See
 * cw_kafka.h.
 */
#include "cw_kafka.h"

#include <errno.h>
#include <stdio.h>

#include "cw_log.h"

/* librdkafka's log, from its own threads: cw_log is thread-safe. Its
 * levels are syslog's; informational chatter (6) stays at debug. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	(void)rk;
	cw_log(level <= 3   ? CW_LOG_ERROR
	       : level == 4 ? CW_LOG_WARN
	       : level == 5 ? CW_LOG_INFO
			    : CW_LOG_DEBUG,
	       "librdkafka", "facility=%s detail=%s", fac, buf);
}

int cw_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
		      char *errstr, size_t errstr_size)
{
	char reason[256];

	if (rd_kafka_conf_set(conf, key, value, reason, sizeof(reason)) ==
	    RD_KAFKA_CONF_OK)
		return 0;
	/* The key, not the value: a value may be a password. librdkafka's
	 * reason quotes a refused value itself. */
	snprintf(errstr, errstr_size, "Kafka property %s: %s", key, reason);
	return -EINVAL;
}

/* Set every property of @props (ended by a NULL key; NULL: none), in
 * order. Returns 0 or cw_kafka_conf_set()'s error. */
static int conf_set_props(rd_kafka_conf_t *conf,
			  const struct cw_kafka_prop *props, char *errstr,
			  size_t errstr_size)
{
	for (size_t i = 0; props && props[i].key; i++)
		if (cw_kafka_conf_set(conf, props[i].key, props[i].value,
				      errstr, errstr_size) < 0)
			return -EINVAL;
	return 0;
}

rd_kafka_conf_t *cw_kafka_conf_new(const char *bootstrap_servers,
				   const struct cw_kafka_prop *defaults,
				   const struct cw_kv_list *user, char *errstr,
				   size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (cw_kafka_conf_set(conf, "bootstrap.servers", bootstrap_servers,
			      errstr, errstr_size) < 0)
		goto fail;
	if (conf_set_props(conf, defaults, errstr, errstr_size) < 0)
		goto fail;
	for (size_t i = 0; user && i < user->count; i++)
		if (cw_kafka_conf_set(conf, user->keys[i], user->values[i],
				      errstr, errstr_size) < 0)
			goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

rd_kafka_t *cw_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
			 char *errstr, size_t errstr_size)
{
	char reason[512];
	rd_kafka_t *rk = rd_kafka_new(type, conf, reason, sizeof(reason));

	if (rk)
		return rk;
	rd_kafka_conf_destroy(conf);
	snprintf(errstr, errstr_size, "cannot create the Kafka %s: %s",
		 type == RD_KAFKA_PRODUCER ? "producer" : "consumer", reason);
	return NULL;
}

rd_kafka_t *cw_kafka_consumer_new(const struct cw_kafka_consumer_params *p,
				  char *errstr, size_t errstr_size)
{
	/* Offsets are the binary's to commit, after its work is done. */
	const struct cw_kafka_prop manual_commit[] = {
		{"group.id", p->group},
		{"enable.auto.commit", "false"},
		{"enable.auto.offset.store", "false"},
		{"enable.partition.eof", "true"},
		{NULL, NULL},
	};
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;

	conf = cw_kafka_conf_new(p->bootstrap_servers, p->defaults, p->user,
				 errstr, errstr_size);
	if (!conf)
		return NULL;
	if (conf_set_props(conf, manual_commit, errstr, errstr_size) < 0 ||
	    conf_set_props(conf, p->forced, errstr, errstr_size) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_rebalance_cb(conf, p->rebalance_cb);
	rd_kafka_conf_set_error_cb(conf, p->error_cb);
	rd_kafka_conf_set_opaque(conf, p->opaque);
	rk = cw_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
	if (!rk)
		return NULL; /* cw_kafka_new() destroyed conf */
	rd_kafka_poll_set_consumer(rk);

	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, p->topic,
					  RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		snprintf(errstr, errstr_size, "cannot subscribe to %s: %s",
			 p->topic, rd_kafka_err2str(err));
		/* Nothing was assigned: no close, no callback into a
		 * half-built caller. */
		rd_kafka_destroy_flags(rk,
				       RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
		return NULL;
	}
	return rk;
}
