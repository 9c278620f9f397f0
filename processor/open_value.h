/* SPDX-License-Identifier: Apache-2.0 */
/*
 * open_value — carts at risk now: per currency, the open sessions of one
 * partition, how many of them hold a cart with items and what those carts
 * are worth. The partition keeps it up to date as sessions open, change
 * and close (never by scanning its users), and the daemon adds the
 * partitions up for processor_status and /metrics.
 *
 * A partition has room for OPEN_VALUE_CURRENCIES currencies; a currency
 * first seen after they are taken is counted in the "(other)" entry for
 * the partition's life. Entries are never freed, so a cart always leaves
 * the entry it was counted in. Not for carried-over carts (a closed
 * session with items): those are the partition's open carts minus these.
 *
 * Plain data, no allocation; single-threaded (the poll thread).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct intern;

/* Currencies a partition counts by name; the rest go to "(other)". */
#define OPEN_VALUE_CURRENCIES 16
/* The currency id of the "(other)" entry. */
#define OPEN_VALUE_OTHER      UINT32_MAX
#define OPEN_VALUE_OTHER_NAME "(other)"

/* 128 bits: carts of up to INT64_MAX cents each cannot overflow the sum. */
__extension__ typedef __int128 open_value_cents;

struct open_value_entry {
	uint32_t currency; /* interned id, or OPEN_VALUE_OTHER */
	int64_t sessions;  /* open sessions whose latest event was in it */
	int64_t carts;	   /* those of them holding items */
	open_value_cents value_cents; /* Σ of those carts' values */
};

struct open_value {
	uint32_t n;
	struct open_value_entry e[OPEN_VALUE_CURRENCIES + 1];
};

/* Count one open session of @currency into (@sign +1) or out of (-1) @ov:
 * with a cart of @value_cents when @has_cart. The caller counts a session
 * out with exactly what it counted in (same currency, same value).
 * Can't fail. */
void open_value_add(struct open_value *ov, uint32_t currency, int sign,
		    int has_cart, int64_t value_cents);

/* One open session of @currency stays open in it while its cart goes from
 * @was_cents (when @had_cart) to @now_cents (when @has_cart): the same as
 * open_value_add() out with the old cart and in with the new one, in one
 * step. Can't fail. */
void open_value_change(struct open_value *ov, uint32_t currency, int had_cart,
		       int64_t was_cents, int has_cart, int64_t now_cents);

/* One currency over several partitions, as published. */
struct open_value_row {
	char currency[8]; /* ISO 4217 code or "(other)" */
	int64_t sessions;
	int64_t carts;
	int64_t value_cents; /* saturated at INT64_MAX */
};

/* Rows one processor publishes: twice a partition's currencies and
 * "(other)", beyond which currencies are added to "(other)" too. */
#define OPEN_VALUE_ROWS (2 * OPEN_VALUE_CURRENCIES + 1)

struct open_value_rows {
	uint32_t n;
	struct open_value_row row[OPEN_VALUE_ROWS];
};

/* Add the entries of @ov to @rows by currency name (@in names the ids).
 * A currency a partition has seen stays, with zeros when it has no open
 * session left, so its series does not come and go. Can't fail. */
void open_value_rows_add(struct open_value_rows *rows,
			 const struct open_value *ov, const struct intern *in);
