/* SPDX-License-Identifier: Apache-2.0 */
/*
 * partition_priv — the bookkeeping partition.c offers to session.c: the
 * aggregates, the timer heap, dirty tracking and the output batch.
 * Not a public interface.
 */
#pragma once

#include "partition.h"

enum stat_field {
	STAT_ADDED_QTY,
	STAT_REMOVED_QTY,
	STAT_PURCHASED_QTY,
	STAT_PURCHASED_VALUE,
	STAT_ABANDONED_QTY,
	STAT_ABANDONED_VALUE,
	STAT_FIELDS,
};

/* Add @qty and @value (fields @qf, @vf; @vf may be -1) for @product in the
 * minute of @at_ms. Returns 0 or -ENOMEM. */
int partition_stat_add(struct partition *pt, etime_t at_ms, uint32_t product,
		       enum stat_field qf, int64_t qty, int vf, int64_t value);

/* Add @qty removed units of @product for @reason (0: "unspecified"). */
int partition_reason_add(struct partition *pt, etime_t at_ms, uint32_t product,
			 uint32_t reason, int64_t qty);

/* Record that @u's resume state changed. Returns 0 or -ENOMEM. */
int partition_mark_dirty(struct partition *pt, struct user *u);

/* (Re)schedule @u at its session_next_deadline(), or retire it (USER_DEAD,
 * removed from the heap, deleted at the next flush) when it has none.
 * Returns 0 or -ENOMEM. */
int partition_reschedule(struct partition *pt, struct user *u);
