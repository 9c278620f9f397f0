/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sink — where events go: a Kafka topic (idempotent librdkafka producer,
 * key = user_id, value = the Avro single-object framed event), with --http
 * a cartwatch-gateway (JSON lines of docs/json-events.md in batches,
 * http_out.h), or, with
 * --output, a file of JSON lines or of length-prefixed Avro messages
 * (4-byte big-endian length, then the framed event) for inspection and test
 * oracles.
 *
 * The send path encodes into a reused arena, produces in batches
 * (rd_kafka_produce_batch) and never allocates in this module (librdkafka
 * copies each message: RD_KAFKA_MSG_F_COPY). A full
 * producer queue is handled by serving delivery reports and retrying.
 *
 * Not for: consuming, or any topic but the one it was created for.
 * Locality: one thread (the run loop); delivery reports are served from
 * sink_send()/sink_poll()/sink_flush() in that thread.
 */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_config.h"
#include "cw_event.h"

enum sink_format {
	SINK_FORMAT_JSON,
	SINK_FORMAT_AVRO,
};

struct sink_config {
	const char *output;   /* file path, "-" for stdout, NULL: Kafka */
	const char *http_url; /* gateway POST URL, NULL: Kafka */
	const char *http_token_file; /* bearer token for http_url, or NULL */
	int64_t http_timeout_ms;     /* retry a batch this long */
	const volatile sig_atomic_t *stop; /* --http: give up retrying */
	enum sink_format format;	   /* for output only */
	const char *bootstrap_servers;
	const char *topic;
	const struct cw_kv_list *properties; /* -X pairs, applied last */
	int64_t connect_timeout_ms; /* bounded wait for broker metadata */
};

struct sink_stats {
	uint64_t sent;	    /* accepted by sink_send() */
	uint64_t delivered; /* acknowledged by the broker, or written */
	uint64_t failed;    /* delivery failed (reported once each) */
};

struct sink;

/* Open the sink: for --http, prepare the client (the first batch shows
 * whether the gateway answers); for Kafka, create the idempotent producer and
 * check that the broker answers and the topic exists within connect_timeout_ms.
 * Returns NULL with a reason in @errstr (bad -X property, broker
 * unreachable, unknown topic, cannot open the file). Free with
 * sink_destroy(). */
struct sink *sink_new(const struct sink_config *conf, char *errstr,
		      size_t errstr_size);

/* Send @ev (borrowed; copied before return). Returns 0; -EINVAL when @ev
 * does not encode or -EMSGSIZE when it is over 8 KiB encoded (nothing
 * sent); -EIO when this one event could not be produced (logged, counted
 * as failed; later ones may succeed); -EPIPE when the sink cannot go on
 * (output write error, fatal producer error). Blocks only while the
 * producer queue is full. */
int sink_send(struct sink *sk, const struct cw_event *ev);

/* Produce the pending batch (sink_send() batches up to 1024 events), then
 * serve delivery reports, waiting up to @timeout_ms for one (0: don't
 * wait). The run loop calls it whenever it waits, so paced events never
 * sit in the batch. With --http: POST the pending batch once its oldest
 * event waited HTTP_OUT_LINGER_MS (blocks while it is retried; a refused
 * batch makes the next sink_send() return -EPIPE). Can't fail (failures
 * land in the counters). */
void sink_poll(struct sink *sk, int timeout_ms);

/* Wait up to @timeout_ms until every sent event has its delivery report
 * (or is written out). Returns 0, -ETIMEDOUT (call again to keep
 * waiting) or -EIO when flushing the output file failed. */
int sink_flush(struct sink *sk, int timeout_ms);

/* Copy the counters. Can't fail. */
void sink_get_stats(const struct sink *sk, struct sink_stats *st);

/* Close the sink: the file is flushed and closed, the producer destroyed
 * (undelivered messages are dropped; call sink_flush() first). Returns 0 or
 * -EIO if closing the output file failed. NULL is fine. */
int sink_destroy(struct sink *sk);
