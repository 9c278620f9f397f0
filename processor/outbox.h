/* SPDX-License-Identifier: Apache-2.0 */
/*
 * outbox — everything the processor produces to Kafka, and the promise
 * that nothing it commits runs ahead of what the broker acknowledged:
 *
 *  - abandonments: each flush commits its abandonments with an outbox
 *    chunk row in PostgreSQL; after the commit they are produced to the
 *    abandonment topic, and the chunk becomes deletable (outbox_acked())
 *    only when the broker acknowledged every record of it;
 *  - dead letters: a record that cannot be processed goes to the
 *    dead-letter topic, and its partition does not commit past it until
 *    the broker acknowledged it (outbox_dlq_pending()).
 *
 * A record the broker refuses is kept (copied) and produced again each
 * second (outbox_retry()) until acknowledged, never dropped; at exit what
 * is left stays in the outbox table, or is read again from Kafka.
 *
 * Not for: producing anything else, or deciding what to produce. Thread:
 * the daemon's poll thread only, delivery reports included (they run in
 * rd_kafka_poll() on the producer, which the daemon calls there).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "daemon.h"

struct outbox;
struct outbox_ref;

/* An outbox over @producer (not owned; its delivery-report callback must
 * call outbox_on_delivery()). The topic names, @c (whose
 * abandonments_published, publish_failures, dlq_records and dlq_failures
 * are counted here) and @snap (whose abandonment_publish_seconds histogram
 * is filled here) must outlive it; on an allocation failure that would
 * lose a dead letter, *@fatal is set to -ENOMEM (the daemon then exits
 * without committing past it). NULL on ENOMEM. */
struct outbox *outbox_new(rd_kafka_t *producer, const char *abandonment_topic,
			  const char *dlq_topic, struct daemon_counters *c,
			  struct metrics_snapshot *snap, int *fatal);

/* Give up what still waits to be produced again (its chunks stay in the
 * outbox table) and free. Call after the producer purged its queue. NULL
 * is a no-op. */
void outbox_destroy(struct outbox *o);

/* Start publishing the outbox chunk @chunk_id (cw_outbox_chunks.chunk_id),
 * with room for the detection times of @n_timed of its records (0 for a
 * chunk an earlier owner left). NULL on ENOMEM: the chunk then stays in
 * the table for the partition's next owner. */
struct outbox_ref *outbox_chunk_new(const char *chunk_id, size_t n_timed);

/* Produce one abandonment record of chunk @ref (keyed by @user_id). A
 * refusal is kept for outbox_retry(). @detected_ms is the record's
 * batch_abandonment.detected_ms, or -1 when this process did not detect
 * it: once the broker acknowledged the record, the time since then goes
 * to the publish-latency histogram (at most @n_timed records of a chunk
 * are timed). */
void outbox_publish(struct outbox *o, struct outbox_ref *ref,
		    const char *user_id, size_t user_id_len,
		    const uint8_t *avro, size_t len, int64_t detected_ms);

/* The chunk cannot be fully published (unreadable): its row is kept. */
void outbox_chunk_unreadable(struct outbox_ref *ref);

/* Every record of @ref was handed to outbox_publish(); the chunk becomes
 * deletable once they are all acknowledged. @ref is not used after. */
void outbox_chunk_done(struct outbox *o, struct outbox_ref *ref);

/* Send @m (a record that could not be processed) to the dead-letter topic
 * with headers: cartwatch.error = @why, its source topic, partition and
 * offset, plus @extra (NULL, or name/value pairs ending with a NULL
 * name). Counted in dlq_records. */
void outbox_dead_letter(struct outbox *o, const rd_kafka_message_t *m,
			const char *why, const char *const *extra);

/* Whether partition @id has a dead letter the broker has not
 * acknowledged yet (its offset must not be committed past it). */
bool outbox_dlq_pending(const struct outbox *o, int32_t id);

/* The producer's delivery report for @m. */
void outbox_on_delivery(struct outbox *o, const rd_kafka_message_t *m);

/* Produce again what the broker refused, at most once a second (@now:
 * cw_mono_ms()). */
void outbox_retry(struct outbox *o, int64_t now);

/* Wait up to @timeout_ms for every dead letter in flight to be
 * acknowledged (revocation, shutdown). */
void outbox_settle(struct outbox *o, int64_t timeout_ms);

/* Records waiting to be produced again. */
size_t outbox_waiting(const struct outbox *o);

/* The ids of the chunks whose records were all acknowledged, in a new
 * array *@ids (the caller frees the array, not the strings; valid until
 * outbox_acked_clear()). Returns their count; 0 with *@ids NULL when
 * there are none or on ENOMEM. */
size_t outbox_acked(const struct outbox *o, const char ***ids);

/* Those chunks were deleted from PostgreSQL: forget them. */
void outbox_acked_clear(struct outbox *o);
