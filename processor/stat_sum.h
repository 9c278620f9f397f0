/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stat_sum — one flush's per-minute rows summed by key across its
 * batches. Each partition's batch holds at most one row per (minute,
 * product) and per (minute, product, reason), but the partitions of one
 * flush touch the same keys, so the sink writes ~4x fewer rows once they
 * are summed here. A hash table on the key does it in one pass (the sort
 * it replaced cost ~8% of the processor's instructions).
 *
 * The rows come out in the order their keys first appear (batch by batch),
 * each a copy of its key's first row with the counters added up,
 * saturating at INT64_MAX as the stored sums do. The batches are not
 * changed (a failed flush is retried with them as they are).
 *
 * Single-threaded (the flush connection's). Not for: anything kept across
 * flushes; keys an attacker may aim collisions at beyond what linear
 * probing tolerates (as hash64.h).
 */
#pragma once

#include <stddef.h>

struct batch;
struct batch_product_stat;
struct batch_reason_stat;
struct stat_sum;

/* An empty summer. Returns NULL on ENOMEM. Free with stat_sum_free(). */
struct stat_sum *stat_sum_new(void);

/* Free @s and the rows it returned. NULL is allowed. */
void stat_sum_free(struct stat_sum *s);

/* The product rows of @bs[0..@n) (@total rows in all), one per (minute,
 * product), in *@rows (valid until the next call on @s) and their number
 * in *@n_rows. Returns 0 or -ENOMEM. */
int stat_sum_products(struct stat_sum *s, struct batch *const *bs, size_t n,
		      size_t total, const struct batch_product_stat **rows,
		      size_t *n_rows);

/* The same for the reason rows, one per (minute, product, reason). */
int stat_sum_reasons(struct stat_sum *s, struct batch *const *bs, size_t n,
		     size_t total, const struct batch_reason_stat **rows,
		     size_t *n_rows);
