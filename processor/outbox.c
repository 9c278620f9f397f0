/* SPDX-License-Identifier: Apache-2.0 */
/*
 * outbox — what the processor produces to Kafka: abandonments (the outbox
 * chunks committed with each flush) and dead letters. See outbox.h.
 * Everything here runs on the poll thread (delivery reports come from
 * rd_kafka_poll() there).
 */
#include "outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "cw_log.h"
#include "cw_time.h"

struct outbox {
	rd_kafka_t *producer; /* not owned */
	const char *abandonment_topic, *dlq_topic;
	struct daemon_counters *c;     /* the daemon's, counted in here */
	struct metrics_snapshot *snap; /* the daemon's: publish latency */
	int *fatal;		       /* the daemon's: set to leave its loop */

	/* Outbox chunks whose every record the broker acknowledged, to
	 * delete from PostgreSQL. */
	struct outbox_ref **acked;
	size_t n_acked, cap_acked;

	/* Records whose production failed, produced again by
	 * outbox_retry() until the broker acknowledges them. */
	struct produce_retry *retry;
	size_t n_retry, cap_retry;
	int64_t next_retry;
	/* Per partition id: its dead letters not yet acknowledged. */
	uint32_t *dlq_unacked;
	int32_t n_dlq_unacked;
};

/* One outbox chunk (all the abandonments of one partition in one flush)
 * being published. Its row is deleted once the broker acknowledged every
 * record in it; a record whose delivery failed is produced again (see
 * outbox_retry()). Only when the processor exits first does the chunk
 * stay, to be published again by the partition's next owner (consumers
 * de-duplicate by abandonment id). */
enum produced_kind {
	PRODUCED_ABANDONMENT,	    /* opaque: its outbox_ref */
	PRODUCED_TIMED_ABANDONMENT, /* opaque: its outbox_timed */
	PRODUCED_DEAD_LETTER	    /* opaque: its dlq_ref */
};

/* An abandonment this process detected (its message opaque): when, for
 * the publish-latency histogram, and its chunk. Lives in the chunk's
 * outbox_ref, which outlives every record of it. */
struct outbox_timed {
	enum produced_kind kind; /* PRODUCED_TIMED_ABANDONMENT */
	struct outbox_ref *ref;
	int64_t detected_ms; /* batch_abandonment.detected_ms */
};

struct outbox_ref {
	enum produced_kind kind; /* first: tells the opaques apart */
	uint32_t pending;	 /* records in flight, +1 while producing */
	bool failed;
	char id[BATCH_UUID_LEN + 1]; /* cw_outbox_chunks.chunk_id */
	size_t n_timed, cap_timed;
	struct outbox_timed timed[];
};

/* A dead letter being produced (its message opaque): the partition whose
 * offset waits for the broker's acknowledgement. */
struct dlq_ref {
	enum produced_kind kind; /* PRODUCED_DEAD_LETTER */
	int32_t partition;
};

/* A record whose production failed, kept (copied) to produce again. */
struct produce_retry {
	const char *topic; /* one of the configuration's */
	void *key, *value;
	size_t key_len, len;
	rd_kafka_headers_t *headers; /* owned; NULL: none */
	void *opaque; /* its message opaque (enum produced_kind) */
};

struct outbox_ref *outbox_chunk_new(const char *chunk_id, size_t n_timed)
{
	struct outbox_ref *ref =
		calloc(1, sizeof(*ref) + n_timed * sizeof(ref->timed[0]));

	if (ref) {
		ref->kind = PRODUCED_ABANDONMENT;
		ref->pending = 1;
		ref->cap_timed = n_timed;
		snprintf(ref->id, sizeof(ref->id), "%s", chunk_id);
	}
	return ref;
}

/* The chunk an abandonment's message opaque belongs to. */
static struct outbox_ref *ref_of(void *opaque)
{
	struct outbox_timed *t = opaque;

	return t->kind == PRODUCED_TIMED_ABANDONMENT ? t->ref : opaque;
}

/* Drop one hold on @ref; the last one queues the chunk for deletion (or
 * frees it when a record failed: the row stays). */
void outbox_chunk_done(struct outbox *o, struct outbox_ref *ref)
{
	if (--ref->pending)
		return;
	if (!ref->failed) {
		if (o->n_acked == o->cap_acked) {
			size_t n = o->cap_acked ? o->cap_acked * 2 : 64;
			struct outbox_ref **a =
				realloc(o->acked, n * sizeof(*a));
			if (!a) {
				free(ref); /* deleted after a restart instead */
				return;
			}
			o->acked = a;
			o->cap_acked = n;
		}
		o->acked[o->n_acked++] = ref;
		return;
	}
	free(ref);
}

/* The count of unacknowledged dead letters of partition @id, grown on
 * demand. NULL without memory. Poll thread. */
static uint32_t *dlq_unacked_slot(struct outbox *o, int32_t id)
{
	if (id < 0)
		return NULL;
	if (id >= o->n_dlq_unacked) {
		uint32_t *v =
			realloc(o->dlq_unacked, (size_t)(id + 1) * sizeof(*v));
		if (!v)
			return NULL;
		memset(v + o->n_dlq_unacked, 0,
		       (size_t)(id + 1 - o->n_dlq_unacked) * sizeof(*v));
		o->dlq_unacked = v;
		o->n_dlq_unacked = id + 1;
	}
	return &o->dlq_unacked[id];
}

bool outbox_dlq_pending(const struct outbox *o, int32_t id)
{
	return id < o->n_dlq_unacked && o->dlq_unacked[id];
}

/* The dead letter of @ref is acknowledged (or given up at exit). */
static void dlq_ref_done(struct outbox *o, struct dlq_ref *ref)
{
	uint32_t *n = dlq_unacked_slot(o, ref->partition);

	if (n && *n)
		(*n)--;
	free(ref);
}

/* Keep a copy of a record whose production failed, to produce it again
 * (outbox_retry()). Takes ownership of @headers in every case. Returns 0
 * or -ENOMEM. */
static int retry_add(struct outbox *o, const char *topic, const void *key,
		     size_t key_len, const void *value, size_t len,
		     rd_kafka_headers_t *headers, void *opaque)
{
	struct produce_retry *pr;

	if (o->n_retry == o->cap_retry) {
		size_t n = o->cap_retry ? o->cap_retry * 2 : 16;
		pr = realloc(o->retry, n * sizeof(*pr));
		if (!pr)
			goto nomem;
		o->retry = pr;
		o->cap_retry = n;
	}
	pr = &o->retry[o->n_retry];
	*pr = (struct produce_retry){.topic = topic,
				     .key_len = key_len,
				     .len = len,
				     .headers = headers,
				     .opaque = opaque};
	if ((key_len && !(pr->key = malloc(key_len))) ||
	    (len && !(pr->value = malloc(len)))) {
		free(pr->key);
		goto nomem;
	}
	if (key_len)
		memcpy(pr->key, key, key_len);
	if (len)
		memcpy(pr->value, value, len);
	o->n_retry++;
	return 0;
nomem:
	if (headers)
		rd_kafka_headers_destroy(headers);
	return -ENOMEM;
}

/* A record that will not be produced again (exit, or no memory to keep
 * it): an abandonment's chunk stays in the outbox for the partition's next
 * owner; a dead letter's partition offset was not committed past it
 * while it was pending, so the record is read again after a restart. */
static void produced_abandon(struct outbox *o, void *opaque)
{
	const enum produced_kind *kind = opaque;
	struct outbox_ref *ref;

	if (*kind == PRODUCED_DEAD_LETTER) {
		dlq_ref_done(o, opaque);
		return;
	}
	ref = ref_of(opaque);
	ref->failed = true;
	outbox_chunk_done(o, ref);
}

/* Delivery report of an abandonment (opaque: its outbox_ref, or its
 * outbox_timed when this process detected it) or a dead letter (opaque:
 * its dlq_ref). A failed delivery is produced again from the report's
 * copy (payload, key and headers) by outbox_retry(), so no offset or
 * outbox row moves past what the broker acknowledged. Runs in
 * rd_kafka_poll() on the loop thread. */
void outbox_on_delivery(struct outbox *o, const rd_kafka_message_t *m)
{
	const enum produced_kind *kind = m->_private;
	bool dlq = kind && *kind == PRODUCED_DEAD_LETTER;
	rd_kafka_headers_t *hdrs = NULL;

	if (!kind)
		return; /* not ours to track */
	if (!m->err) {
		if (dlq) {
			dlq_ref_done(o, m->_private);
			return;
		}
		if (*kind == PRODUCED_TIMED_ABANDONMENT) {
			const struct outbox_timed *t = m->_private;
			metrics_publish_latency_observe(
				o->snap,
				(double)(cw_mono_ms() - t->detected_ms) /
					1000.0);
		}
		o->c->abandonments_published++;
		outbox_chunk_done(o, ref_of(m->_private));
		return;
	}
	if (dlq)
		o->c->dlq_failures++;
	else
		o->c->publish_failures++;
	if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
	    m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
		produced_abandon(o, m->_private); /* exiting */
		return;
	}
	if (!rd_kafka_message_headers(m, &hdrs))
		hdrs = rd_kafka_headers_copy(hdrs);
	else
		hdrs = NULL;
	/* The configuration's topic name: it outlives the message's. */
	if (retry_add(o, dlq ? o->dlq_topic : o->abandonment_topic, m->key,
		      m->key_len, m->payload, m->len, hdrs, m->_private) < 0) {
		produced_abandon(o, m->_private);
		if (dlq)
			*o->fatal =
				-ENOMEM; /* exit: read again after restart */
		return;
	}
	/* Rate-limited: a broker refusing everything fails each record. */
	if (o->n_retry <= 10 || o->n_retry % 1000 == 0)
		cw_error(dlq ? "dead letter not delivered, producing it again"
			     : "abandonment not published, producing it "
			       "again",
			 "error=\"%s\" waiting=%zu", rd_kafka_err2str(m->err),
			 o->n_retry);
}

/* Produce again the records whose production failed, at most once a
 * second; those refused again stay for the next round. Poll thread. */
void outbox_retry(struct outbox *o, int64_t now)
{
	size_t kept = 0;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (!o->n_retry || now < o->next_retry)
		return;
	o->next_retry = now + 1000;
	for (size_t i = 0; i < o->n_retry; i++) {
		struct produce_retry *pr = &o->retry[i];
		/* librdkafka owns the headers once producev() succeeds. */
		rd_kafka_headers_t *hdrs =
			pr->headers ? rd_kafka_headers_copy(pr->headers) : NULL;

		if (!err)
			err = rd_kafka_producev(
				o->producer, RD_KAFKA_V_TOPIC(pr->topic),
				RD_KAFKA_V_KEY(pr->key, pr->key_len),
				RD_KAFKA_V_VALUE(pr->value, pr->len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_HEADERS(hdrs),
				RD_KAFKA_V_OPAQUE(pr->opaque), RD_KAFKA_V_END);
		if (err) {
			/* Keep it and the rest, in order, for later. */
			if (hdrs)
				rd_kafka_headers_destroy(hdrs);
			o->retry[kept++] = *pr;
			continue;
		}
		free(pr->key);
		free(pr->value);
		if (pr->headers)
			rd_kafka_headers_destroy(pr->headers);
	}
	if (err)
		cw_warn("records still not produced, retrying",
			"error=\"%s\" waiting=%zu", rd_kafka_err2str(err),
			kept);
	o->n_retry = kept;
}

/* Give up every record waiting to be produced again (exit). */
static void retry_clear(struct outbox *o)
{
	for (size_t i = 0; i < o->n_retry; i++) {
		free(o->retry[i].key);
		free(o->retry[i].value);
		if (o->retry[i].headers)
			rd_kafka_headers_destroy(o->retry[i].headers);
		produced_abandon(o, o->retry[i].opaque);
	}
	o->n_retry = 0;
	free(o->retry);
	o->retry = NULL;
}

/* Wait up to @timeout_ms for the broker to acknowledge every dead letter
 * in flight, so that their partitions can commit (revocation, shutdown).
 * Poll thread. */
void outbox_settle(struct outbox *o, int64_t timeout_ms)
{
	int64_t end = cw_mono_ms() + timeout_ms;

	for (;;) {
		bool pending = false;
		for (int32_t i = 0; i < o->n_dlq_unacked && !pending; i++)
			pending = o->dlq_unacked[i] != 0;
		if (!pending || cw_mono_ms() >= end)
			return;
		outbox_retry(o, cw_mono_ms());
		rd_kafka_poll(o->producer, 50);
	}
}

/* Produce one abandonment record of the outbox chunk @ref (whose row is
 * deleted once the broker acknowledged all its records). */
void outbox_publish(struct outbox *o, struct outbox_ref *ref,
		    const char *user_id, size_t user_id_len,
		    const uint8_t *avro, size_t len, int64_t detected_ms)
{
	rd_kafka_resp_err_t err;
	void *opaque = ref;

	if (detected_ms >= 0 && ref->n_timed < ref->cap_timed) {
		struct outbox_timed *t = &ref->timed[ref->n_timed++];
		*t = (struct outbox_timed){PRODUCED_TIMED_ABANDONMENT, ref,
					   detected_ms};
		opaque = t;
	}
	ref->pending++;
	for (;;) {
		err = rd_kafka_producev(
			o->producer, RD_KAFKA_V_TOPIC(o->abandonment_topic),
			RD_KAFKA_V_KEY(user_id, user_id_len),
			RD_KAFKA_V_VALUE((void *)avro, len),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(o->producer, 100);
	}
	if (err) {
		o->c->publish_failures++;
		cw_warn("abandonment not published, producing it again",
			"outbox_chunk=%s error=\"%s\"", ref->id,
			rd_kafka_err2str(err));
		if (retry_add(o, o->abandonment_topic, user_id, user_id_len,
			      avro, len, NULL, opaque) < 0)
			produced_abandon(o, opaque); /* stays in the outbox */
	}
}

/* A dead letter of @partition about to be produced: its partition will
 * not commit until the broker acknowledges it. NULL without memory. */
static struct dlq_ref *dlq_ref_new(struct outbox *o, int32_t partition)
{
	uint32_t *n = dlq_unacked_slot(o, partition);
	struct dlq_ref *ref = n ? malloc(sizeof(*ref)) : NULL;

	if (ref) {
		ref->kind = PRODUCED_DEAD_LETTER;
		ref->partition = partition;
		(*n)++;
	}
	return ref;
}

/* The headers of a dead letter of @m: the reason, its origin (@part and
 * @off as text) and @extra (NULL or name/value pairs ending with a NULL
 * name). The caller owns them. */
static rd_kafka_headers_t *dlq_headers(const rd_kafka_message_t *m,
				       const char *why, const char *part,
				       const char *off,
				       const char *const *extra)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);

	rd_kafka_header_add(h, "cartwatch.error", -1, why, -1);
	rd_kafka_header_add(h, "cartwatch.source.topic", -1,
			    rd_kafka_topic_name(m->rkt), -1);
	rd_kafka_header_add(h, "cartwatch.source.partition", -1, part, -1);
	rd_kafka_header_add(h, "cartwatch.source.offset", -1, off, -1);
	for (size_t i = 0; extra && extra[i]; i += 2)
		rd_kafka_header_add(h, extra[i], -1, extra[i + 1], -1);
	return h;
}

/* A dead letter producev refused: keep it (payload and headers @h, which
 * this takes) to produce again each second until acknowledged. */
static void dlq_keep(struct outbox *o, const rd_kafka_message_t *m,
		     rd_kafka_headers_t *h, struct dlq_ref *ref)
{
	if (retry_add(o, o->dlq_topic, m->key, m->key_len, m->payload, m->len,
		      h, ref) < 0) {
		dlq_ref_done(o, ref);
		*o->fatal = -ENOMEM; /* exit before its offset is committed */
	}
}

/* Send a record that could not be processed to the dead-letter topic with
 * its origin and the reason in headers, plus @extra: NULL or name/value
 * pairs ending with a NULL name. Its partition does not commit past it
 * until the broker acknowledged it (dlq_unacked). */
void outbox_dead_letter(struct outbox *o, const rd_kafka_message_t *m,
			const char *why, const char *const *extra)
{
	char part[16], off[32];
	rd_kafka_resp_err_t err;
	rd_kafka_headers_t *hdrs;
	struct dlq_ref *ref = dlq_ref_new(o, m->partition);

	snprintf(part, sizeof(part), "%" PRId32, m->partition);
	snprintf(off, sizeof(off), "%" PRId64, m->offset);
	o->c->dlq_records++;
	if (!ref) {
		*o->fatal = -ENOMEM; /* exit before its offset is committed */
		return;
	}
	for (;;) {
		hdrs = dlq_headers(m, why, part, off, extra);
		/* On success the message owns the headers. */
		err = rd_kafka_producev(
			o->producer, RD_KAFKA_V_TOPIC(o->dlq_topic),
			RD_KAFKA_V_KEY(m->key, m->key_len),
			RD_KAFKA_V_VALUE(m->payload, m->len),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(ref),
			RD_KAFKA_V_END);
		if (err)
			rd_kafka_headers_destroy(hdrs);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(o->producer, 100);
	}
	if (err) {
		o->c->dlq_failures++;
		cw_error("dead letter not produced, producing it again",
			 "error=\"%s\"", rd_kafka_err2str(err));
		dlq_keep(o, m, dlq_headers(m, why, part, off, extra), ref);
	}
	/* Rate-limit the log: the first few, then every 1000th. */
	if (o->c->dlq_records <= 10 || o->c->dlq_records % 1000 == 0)
		cw_warn("record sent to the dead-letter topic",
			"partition=%s offset=%s reason=\"%s\" total=%" PRIu64,
			part, off, why, o->c->dlq_records);
}

struct outbox *outbox_new(rd_kafka_t *producer, const char *abandonment_topic,
			  const char *dlq_topic, struct daemon_counters *c,
			  struct metrics_snapshot *snap, int *fatal)
{
	struct outbox *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->producer = producer;
	o->abandonment_topic = abandonment_topic;
	o->dlq_topic = dlq_topic;
	o->c = c;
	o->snap = snap;
	o->fatal = fatal;
	return o;
}

size_t outbox_waiting(const struct outbox *o)
{
	return o->n_retry;
}

size_t outbox_acked(const struct outbox *o, const char ***ids)
{
	*ids = NULL;
	if (!o->n_acked)
		return 0;
	*ids = malloc(o->n_acked * sizeof(**ids));
	if (!*ids)
		return 0;
	for (size_t i = 0; i < o->n_acked; i++)
		(*ids)[i] = o->acked[i]->id;
	return o->n_acked;
}

void outbox_acked_clear(struct outbox *o)
{
	for (size_t i = 0; i < o->n_acked; i++)
		free(o->acked[i]);
	o->n_acked = 0;
}

void outbox_chunk_unreadable(struct outbox_ref *ref)
{
	ref->failed = true;
}

void outbox_destroy(struct outbox *o)
{
	if (!o)
		return;
	retry_clear(o);
	free(o->dlq_unacked);
	outbox_acked_clear(o);
	free(o->acked);
	free(o);
}
