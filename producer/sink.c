/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sink — Kafka producer and file output behind one interface. See sink.h.
 */
#include "sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cw_kafka.h"
#include "cw_log.h"
#include "http_out.h"

/* Large enough for any event the simulation or the JSON feed (which caps
 * its strings) makes. */
#define ENCODE_BUF_SIZE 8192
#define OUTPUT_BUF_SIZE (1 << 20)
/* Events are produced in batches (rd_kafka_produce_batch(): one call and
 * one topic lock per batch instead of per event), encoded into an arena
 * that librdkafka copies from, so both are reused at once. */
#define BATCH_MAX  1024
#define ARENA_SIZE (256 * 1024)

struct sink {
	struct sink_config conf;
	struct sink_stats st;
	/* Kafka */
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	rd_kafka_message_t batch[BATCH_MAX];
	size_t nbatch;
	size_t arena_used;
	uint8_t arena[ARENA_SIZE];
	/* --http */
	struct http_out *http;
	bool http_broken; /* a batch was refused or given up: stop */
	/* file */
	FILE *out;
	bool out_is_stdout;
	char *out_buf; /* stdio buffer for out */
	uint8_t buf[ENCODE_BUF_SIZE];
	char line[2 * ENCODE_BUF_SIZE];
};

/* The throughput defaults; -X properties given by the user win. */
static const struct cw_kafka_prop kafka_defaults[] = {
	{"enable.idempotence", "true"},
	{"linger.ms", "20"},
	{"batch.num.messages", "100000"},
	{"batch.size", "1000000"},
	{"queue.buffering.max.messages", "1000000"},
	{"queue.buffering.max.kbytes", "1048576"},
	{"sticky.partitioning.linger.ms", "20"},
	{NULL, NULL},
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	struct sink *sk = opaque;

	(void)rk;
	if (!m->err) {
		sk->st.delivered++;
		return;
	}
	/* The first few in full, then a reminder now and then. */
	if (sk->st.failed < 5 || sk->st.failed % 10000 == 0)
		cw_error("delivery failed",
			 "topic=%s partition=%" PRId32
			 " error=\"%s\" failed=%" PRIu64,
			 sk->conf.topic, m->partition, rd_kafka_err2str(m->err),
			 sk->st.failed + 1);
	sk->st.failed++;
}

/* Create the producer and wait (bounded) for the topic's metadata, so an
 * unreachable broker is an error up front, not 5 minutes of retries. On
 * failure nothing is left behind (sk->rk and sk->rkt stay NULL). Returns
 * 0, or -EINVAL (bad property, no client or topic), -EHOSTUNREACH (no
 * metadata in time) or -ENOENT (the topic is not usable), with the reason
 * in @errstr. */
static int kafka_open(struct sink *sk, char *errstr, size_t errstr_size)
{
	const struct sink_config *c = &sk->conf;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_conf_t *kconf;
	rd_kafka_resp_err_t err;
	int r = -EINVAL;

	kconf = cw_kafka_conf_new(c->bootstrap_servers, kafka_defaults,
				  c->properties, errstr, errstr_size);
	if (!kconf)
		return -EINVAL;
	rd_kafka_conf_set_dr_msg_cb(kconf, on_delivery);
	rd_kafka_conf_set_opaque(kconf, sk);
	sk->rk = cw_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, errstr_size);
	if (!sk->rk)
		return -EINVAL;
	sk->rkt = rd_kafka_topic_new(sk->rk, c->topic, NULL);
	if (!sk->rkt) {
		snprintf(errstr, errstr_size, "topic %s: %s", c->topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		goto fail_rk;
	}
	err = rd_kafka_metadata(sk->rk, 0, sk->rkt, &md,
				(int)c->connect_timeout_ms);
	if (err) {
		snprintf(errstr, errstr_size,
			 "broker unreachable: no metadata from %s within "
			 "%" PRId64
			 " ms (%s); check --bootstrap-servers or raise "
			 "--connect-timeout",
			 c->bootstrap_servers, c->connect_timeout_ms,
			 rd_kafka_err2str(err));
		r = -EHOSTUNREACH;
		goto fail_rkt;
	}
	if (md->topic_cnt != 1 || md->topics[0].err) {
		snprintf(errstr, errstr_size, "topic %s is not usable: %s",
			 c->topic,
			 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
				       : "not in metadata");
		r = -ENOENT;
		goto fail_md;
	}
	rd_kafka_metadata_destroy(md);
	return 0;

fail_md:
	rd_kafka_metadata_destroy(md);
fail_rkt:
	rd_kafka_topic_destroy(sk->rkt);
	sk->rkt = NULL;
fail_rk:
	rd_kafka_destroy(sk->rk);
	sk->rk = NULL;
	return r;
}

struct sink *sink_new(const struct sink_config *conf, char *errstr,
		      size_t errstr_size)
{
	struct sink *sk = calloc(1, sizeof(*sk));

	if (!sk) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	sk->conf = *conf;
	if (conf->http_url) {
		sk->http = http_out_new(conf->http_url, conf->http_token_file,
					conf->http_timeout_ms, conf->stop,
					errstr, errstr_size);
		if (!sk->http)
			goto fail;
		return sk;
	}
	if (!conf->output) {
		if (kafka_open(sk, errstr, errstr_size) < 0)
			goto fail;
		return sk;
	}
	if (!strcmp(conf->output, "-")) {
		sk->out = stdout;
		sk->out_is_stdout = true;
	} else {
		sk->out = fopen(conf->output, "wb");
		if (!sk->out) {
			snprintf(errstr, errstr_size, "cannot open %s: %s",
				 conf->output, strerror(errno));
			goto fail;
		}
	}
	if (!sk->out_is_stdout) {
		/* Big writes for big files; stdout keeps its own buffer. */
		sk->out_buf = malloc(OUTPUT_BUF_SIZE);
		if (sk->out_buf)
			setvbuf(sk->out, sk->out_buf, _IOFBF, OUTPUT_BUF_SIZE);
	}
	return sk;
fail:
	sink_destroy(sk);
	return NULL;
}

/* Append @s as a JSON string (quoted, escaped) at @p; the caller leaves
 * 6 * s.len + 2 bytes of room. Returns the end. */
static char *json_string(char *p, struct cw_str s)
{
	static const char hex[] = "0123456789abcdef";

	if (!s.ptr) {
		memcpy(p, "null", 4);
		return p + 4;
	}
	*p++ = '"';
	for (size_t i = 0; i < s.len; i++) {
		unsigned char ch = (unsigned char)s.ptr[i];

		if (ch == '"' || ch == '\\') {
			*p++ = '\\';
			*p++ = (char)ch;
		} else if (ch < 0x20) {
			memcpy(p, "\\u00", 4);
			p[4] = hex[ch >> 4];
			p[5] = hex[ch & 15];
			p += 6;
		} else {
			*p++ = (char)ch;
		}
	}
	*p++ = '"';
	return p;
}

/* One JSON object with the schema's field names (docs/json-events.md);
 * event_time in epoch ms. Formats into sk->line, without the newline, and
 * returns its length or -EMSGSIZE. */
static ssize_t format_json(struct sink *sk, const struct cw_event *ev)
{
	size_t need = 256 + 6 * (ev->event_id.len + ev->user_id.len +
				 ev->product_id.len + ev->currency.len +
				 ev->reason.len);
	char *p = sk->line;

	if (need > sizeof(sk->line))
		return -EMSGSIZE;
	p += sprintf(p, "{\"event_id\":");
	p = json_string(p, ev->event_id);
	p += sprintf(p,
		     ",\"event_type\":\"%s\",\"event_time\":%" PRId64
		     ",\"user_id\":",
		     cw_event_type_name(ev->type), ev->event_time_ms);
	p = json_string(p, ev->user_id);
	p += sprintf(p, ",\"product_id\":");
	p = json_string(p, ev->product_id);
	p += sprintf(p,
		     ",\"quantity\":%" PRId32 ",\"unit_price_cents\":%" PRId64
		     ",\"currency\":",
		     ev->quantity, ev->unit_price_cents);
	p = json_string(p, ev->currency);
	p += sprintf(p, ",\"reason\":");
	p = json_string(p, ev->reason);
	*p++ = '}';
	return p - sk->line;
}

/* One JSON line to the output file. */
static int write_json(struct sink *sk, const struct cw_event *ev)
{
	ssize_t len = format_json(sk, ev);

	if (len < 0)
		return (int)len;
	sk->line[len++] = '\n';
	return fwrite(sk->line, 1, (size_t)len, sk->out) == (size_t)len ? 0
									: -EIO;
}

/* Counters of the --http sink: sent counts what went into a batch. */
static void http_sync_stats(struct sink *sk)
{
	struct http_out_stats hs;

	http_out_get_stats(sk->http, &hs);
	sk->st.delivered = hs.delivered;
	sk->st.failed = hs.failed;
}

static int http_send(struct sink *sk, const struct cw_event *ev)
{
	ssize_t len = format_json(sk, ev);
	int r;

	if (sk->http_broken)
		return -EPIPE;
	if (len < 0)
		return (int)len;
	r = http_out_add(sk->http, sk->line, (size_t)len);
	http_sync_stats(sk);
	if (r == 0)
		sk->st.sent++; /* in the batch; delivered or failed with it */
	if (r == -EPIPE)
		sk->http_broken = true;
	return r;
}

static int write_avro(struct sink *sk, size_t len)
{
	uint8_t be[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
			 (uint8_t)(len >> 8), (uint8_t)len};

	if (fwrite(be, 1, 4, sk->out) != 4 ||
	    fwrite(sk->buf, 1, len, sk->out) != len)
		return -EIO;
	return 0;
}

/* Encode @ev and its key into the arena as the next batch entry.
 * Returns 0, -ENOBUFS when the batch or the arena is full, or an error of
 * cw_event_encode(). */
static int batch_append(struct sink *sk, const struct cw_event *ev)
{
	size_t room = ARENA_SIZE - sk->arena_used;
	uint8_t *p = sk->arena + sk->arena_used;
	ssize_t len;

	if (sk->nbatch == BATCH_MAX || room < ev->user_id.len)
		return -ENOBUFS;
	len = cw_event_encode(ev, p, room - ev->user_id.len);
	if (len == -ENOSPC)
		return -ENOBUFS;
	if (len < 0)
		return (int)len;
	memcpy(p + len, ev->user_id.ptr, ev->user_id.len);
	sk->batch[sk->nbatch++] =
		(rd_kafka_message_t){.payload = p,
				     .len = (size_t)len,
				     .key = p + len,
				     .key_len = ev->user_id.len};
	sk->arena_used += (size_t)len + ev->user_id.len;
	return 0;
}

/* Produce the pending batch. Messages refused for a full queue are retried
 * (in order) after serving delivery reports; any other refusal is logged
 * and counted as failed. Returns 0, or -EPIPE after a fatal producer
 * error. */
static int batch_send(struct sink *sk)
{
	size_t n = sk->nbatch;
	int r = 0;

	while (n) {
		size_t retry = 0;

		rd_kafka_produce_batch(sk->rkt, RD_KAFKA_PARTITION_UA,
				       RD_KAFKA_MSG_F_COPY, sk->batch, (int)n);
		for (size_t i = 0; i < n; i++) {
			rd_kafka_resp_err_t err = sk->batch[i].err;

			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				sk->batch[i].err = 0;
				sk->batch[retry++] = sk->batch[i];
				continue;
			}
			if (!err) {
				sk->st.sent++;
				continue;
			}
			if (sk->st.failed < 5)
				cw_error("produce failed",
					 "topic=%s error=\"%s\"",
					 sk->conf.topic, rd_kafka_err2str(err));
			sk->st.failed++;
			if (err == RD_KAFKA_RESP_ERR__FATAL)
				r = -EPIPE;
		}
		n = retry;
		/* Let delivery reports drain the queue, or just serve them. */
		rd_kafka_poll(sk->rk, n ? 10 : 0);
	}
	sk->nbatch = 0;
	sk->arena_used = 0;
	return r;
}

static int kafka_send(struct sink *sk, const struct cw_event *ev)
{
	int r = batch_append(sk, ev);

	if (r != -ENOBUFS)
		return r;
	if ((r = batch_send(sk)) < 0)
		return r;
	r = batch_append(sk, ev);
	return r == -ENOBUFS ? -EMSGSIZE : r; /* larger than the arena */
}

static int file_send(struct sink *sk, const struct cw_event *ev)
{
	ssize_t len;
	int r;

	if (sk->conf.format == SINK_FORMAT_JSON) {
		r = write_json(sk, ev);
	} else {
		len = cw_event_encode(ev, sk->buf, sizeof(sk->buf));
		if (len < 0)
			return len == -ENOSPC ? -EMSGSIZE : (int)len;
		r = write_avro(sk, (size_t)len);
	}
	if (r == -EIO) {
		if (sk->st.failed++ == 0)
			cw_error("cannot write output", "path=%s error=\"%s\"",
				 sk->conf.output, strerror(errno));
		return -EPIPE;
	}
	if (r < 0)
		return r;
	sk->st.sent++;
	sk->st.delivered++;
	return 0;
}

int sink_send(struct sink *sk, const struct cw_event *ev)
{
	if (sk->http)
		return http_send(sk, ev);
	return sk->rk ? kafka_send(sk, ev) : file_send(sk, ev);
}

void sink_poll(struct sink *sk, int timeout_ms)
{
	if (sk->http) {
		if (http_out_poll(sk->http) < 0)
			sk->http_broken = true; /* the next send says so */
		http_sync_stats(sk);
		return;
	}
	if (!sk->rk)
		return;
	if (sk->nbatch)
		batch_send(
			sk); /* failures are counted; the run loop sees them */
	rd_kafka_poll(sk->rk, timeout_ms);
}

int sink_flush(struct sink *sk, int timeout_ms)
{
	if (sk->http) {
		int r = http_out_send(sk->http);

		http_sync_stats(sk);
		return r < 0 || sk->http_broken ? -EIO : 0;
	}
	if (!sk->rk)
		return fflush(sk->out) == 0 ? 0 : -EIO;
	if (sk->nbatch && batch_send(sk) < 0)
		return -EIO;
	rd_kafka_flush(sk->rk, timeout_ms);
	return rd_kafka_outq_len(sk->rk) > 0 ? -ETIMEDOUT : 0;
}

void sink_get_stats(const struct sink *sk, struct sink_stats *st)
{
	*st = sk->st;
}

int sink_destroy(struct sink *sk)
{
	int r = 0;

	if (!sk)
		return 0;
	http_out_destroy(sk->http);
	if (sk->rkt)
		rd_kafka_topic_destroy(sk->rkt);
	if (sk->rk)
		rd_kafka_destroy(sk->rk);
	if (sk->out && !sk->out_is_stdout && fclose(sk->out) != 0)
		r = -EIO;
	if (sk->out_is_stdout && fflush(stdout) != 0)
		r = -EIO;
	free(sk->out_buf);
	free(sk);
	return r;
}
