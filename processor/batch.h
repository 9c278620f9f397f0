/* SPDX-License-Identifier: Apache-2.0 */
/*
 * batch — everything one partition produced since its last flush, in plain
 * records: the interface between the stream logic (partition.c) and the
 * PostgreSQL sink (pg_sink.c), so that neither knows the other's internals.
 *
 * A batch owns its memory: strings are copied into its arena when a record
 * is added and all of it is released at once by batch_reset() after the
 * transaction that holds it commits. Single-threaded: a batch is used by the
 * thread that polls the consumer.
 *
 * Not for: aggregation (records are appended as they come; the sink sums
 * product/reason increments with SQL, see pg_sink.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pack.h"

#define BATCH_UUID_LEN 36

struct batch_item {
	const char *product_id;
	int32_t quantity;
	int64_t unit_price_cents;
};

struct batch_abandonment {
	char abandonment_id[BATCH_UUID_LEN + 1];
	const char *user_id;
	int64_t session_start_ms;
	int64_t last_activity_ms;
	int64_t abandoned_at_ms;
	int32_t item_count;
	int64_t cart_value_cents;
	const char *currency;
	const char *last_remove_reason; /* NULL: none in the session */
	struct batch_item *items;
	size_t n_items;
	/* The framed Avro record for the cart-abandonments topic; kept in the
	 * outbox table until the broker acknowledged it. */
	const uint8_t *avro;
	size_t avro_len;
	/* cw_mono_ms() when the session was found abandoned: set by
	 * batch_add_abandonment(), which the stream logic calls at that very
	 * moment. Only for the latency histograms (detection to commit, to
	 * the broker's acknowledgement); never written anywhere. */
	int64_t detected_ms;
};

struct batch_conversion {
	char conversion_id[BATCH_UUID_LEN + 1];
	const char *user_id;
	const char *event_id; /* the checkout event's id */
	int64_t checkout_at_ms;
	int32_t item_count;
	int64_t cart_value_cents;
	const char *currency;
	const char *recovered_abandonment_id; /* NULL: not a recovery */
};

/* A recovered conversion marks its abandonment (which may be in the same
 * batch or committed long ago). */
struct batch_recovery {
	char abandonment_id[BATCH_UUID_LEN + 1];
	int64_t recovered_at_ms;
	int64_t recovered_value_cents;
};

/* Increments of one product's counters in one event-time minute. */
struct batch_product_stat {
	int64_t bucket_ms; /* start of the minute */
	const char *product_id;
	int64_t added_qty;
	int64_t removed_qty;
	int64_t purchased_qty;
	int64_t purchased_value_cents;
	int64_t abandoned_qty;
	int64_t abandoned_value_cents;
};

struct batch_reason_stat {
	int64_t bucket_ms;
	const char *product_id;
	const char *reason;
	int64_t removed_qty;
};

/* Add @x to the per-minute counter *@sum, saturating at INT64_MAX: a
 * minute's sums are bounded, never wrapped, however many maximal events a
 * bot sends, in the partition (minute_stats.c), across a flush's
 * partitions (stat_sum.c) and in the views over the appended rows. For
 * non-negative @x. Can't fail. */
static inline void batch_stat_add(int64_t *sum, int64_t x)
{
	if (__builtin_add_overflow(*sum, x, sum))
		*sum = INT64_MAX;
}

#define BATCH_VEC(type, name)                                                  \
	struct {                                                               \
		type *v;                                                       \
		size_t n;                                                      \
		size_t cap;                                                    \
		uint32_t idle; /* resets in a row that used under 1/4 */       \
	} name

struct batch {
	int32_t partition;
	int64_t generation;   /* owner generation the flush is fenced on */
	int64_t next_offset;  /* offset of the next message to process */
	int64_t watermark_ms; /* partition watermark after this batch */

	BATCH_VEC(struct batch_abandonment, abandonments);
	BATCH_VEC(struct batch_conversion, conversions);
	BATCH_VEC(struct batch_recovery, recoveries);
	BATCH_VEC(struct batch_product_stat, product_stats);
	BATCH_VEC(struct batch_reason_stat, reason_stats);

	/* The resume state of the partition's changed users, one pack record
	 * each (key user id, value the state blob from user_state_encode in
	 * partition.c; no value: the user was deleted): written as ONE
	 * cw_state_chunks row. When state_full is set the chunk is a full
	 * snapshot of the partition (every live user) and replaces all its
	 * earlier chunks; it then reaches the sink even with 0 records. */
	struct pack_buf state;
	bool state_full;
	uint32_t state_idle; /* as the vectors' idle, for state's capacity */

	struct batch_arena *arena;
};

/* Create an empty batch for @partition. Returns NULL on ENOMEM. */
struct batch *batch_new(int32_t partition);

/* Free @b and everything it holds. NULL is allowed. */
void batch_destroy(struct batch *b);

/* Drop every record (the state chunk too, and state_full). Up to 1 MB of
 * arena, 1 MB of state chunk and the record arrays are kept for reuse;
 * what a burst grew beyond that is freed. Called once the transaction
 * holding the batch committed. */
void batch_reset(struct batch *b);

/* True when the batch holds no record (offsets may still have moved). A
 * full state snapshot with 0 records is not empty: it deletes the
 * partition's earlier chunks. */
bool batch_is_empty(const struct batch *b);

/* Number of records of all kinds (state chunk records included), for
 * memory bounds and metrics. */
size_t batch_records(const struct batch *b);

/* Copy @len bytes (@s need not be NUL-terminated) into the arena and return
 * a NUL-terminated copy, or NULL on ENOMEM. Lives until batch_reset(). */
const char *batch_strdup(struct batch *b, const char *s, size_t len);

/* Allocate @len bytes (16-byte aligned, uninitialised) in the arena.
 * NULL on ENOMEM. Lives until batch_reset(). */
void *batch_alloc(struct batch *b, size_t len);

/* Copy @len bytes into the arena. NULL on ENOMEM. */
void *batch_memdup(struct batch *b, const void *p, size_t len);

/* Append a zeroed record and return it, or NULL on ENOMEM. The record's
 * pointers must point into the arena (batch_strdup) or static storage.
 * An abandonment also gets its detected_ms: call batch_add_abandonment()
 * when the session is found abandoned, not later. */
struct batch_abandonment *batch_add_abandonment(struct batch *b);
struct batch_conversion *batch_add_conversion(struct batch *b);
struct batch_recovery *batch_add_recovery(struct batch *b);
struct batch_product_stat *batch_add_product_stat(struct batch *b);
struct batch_reason_stat *batch_add_reason_stat(struct batch *b);
