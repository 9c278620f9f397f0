/* SPDX-License-Identifier: Apache-2.0 */
/*
 * minute_stats — the per-minute aggregates of one partition between two
 * flushes: per (minute, product) the added, removed, purchased and
 * abandoned units and values, and per (minute, product, reason) the
 * removed units. The rules (session.c) add to them; a flush moves them
 * into its batch (minute_stats_drain()) and the sink adds them to the
 * stored rows. Sums saturate at INT64_MAX, as the sink's do.
 *
 * Single-threaded (the partition's). Not for: anything kept across
 * flushes (drained, the map is empty again).
 */
#pragma once

#include <stdint.h>

struct batch;
struct intern;
struct minute_stats;

/* The counters of a (minute, product) row. */
enum stat_field {
	STAT_ADDED_QTY,
	STAT_REMOVED_QTY,
	STAT_PURCHASED_QTY,
	STAT_PURCHASED_VALUE,
	STAT_ABANDONED_QTY,
	STAT_ABANDONED_VALUE,
	STAT_FIELDS,
};

/* An empty map. Returns NULL on ENOMEM. Free with minute_stats_destroy(). */
struct minute_stats *minute_stats_new(void);

/* Free @ms. NULL is allowed. */
void minute_stats_destroy(struct minute_stats *ms);

/* Add @qty and @value (fields @qf, @vf; @vf may be -1) for the interned
 * @product (non-zero) in the minute of @at_ms (event time, ms). Returns 0
 * or -ENOMEM (nothing added). */
int minute_stats_add(struct minute_stats *ms, int64_t at_ms, uint32_t product,
		     enum stat_field qf, int64_t qty, int vf, int64_t value);

/* Add @qty removed units of @product for the interned @reason (0:
 * "unspecified") in the minute of @at_ms. Returns 0 or -ENOMEM. */
int minute_stats_add_reason(struct minute_stats *ms, int64_t at_ms,
			    uint32_t product, uint32_t reason, int64_t qty);

/* Move every row into @b (batch_add_product_stat()/_reason_stat(), the
 * strings from @intern, which must outlive @b) and empty @ms. Returns 0,
 * or -ENOMEM with the rows moved so far in @b and the rest still in @ms. */
int minute_stats_drain(struct minute_stats *ms, struct batch *b,
		       const struct intern *intern);
