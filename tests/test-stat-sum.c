/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-stat-sum — a flush's per-minute rows summed across its batches
 * (processor/stat_sum.c): for seeded random batches whose keys repeat
 * within and across batches (equal strings at different addresses), the
 * rows equal a naive recount, one per key, in the order the keys first
 * appear, with sums
 * saturating at INT64_MAX; the batches are left as they were; one summer
 * serves flushes of growing and shrinking size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "harness.h"
#include "stat_sum.h"

#define BATCHES	 6
#define PRODUCTS 40
#define REASONS	 4

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(uint64_t n)
{
	return harness_rand(&rng_state, n);
}

/* Each batch gets its own copies of the names, as partitions intern
 * their own. */
static char names[BATCHES][PRODUCTS + REASONS][16];

static void make_names(void)
{
	for (int b = 0; b < BATCHES; b++) {
		for (int p = 0; p < PRODUCTS; p++)
			snprintf(names[b][p], sizeof(names[b][p]), "sku-%d", p);
		for (int r = 0; r < REASONS; r++)
			snprintf(names[b][PRODUCTS + r], sizeof(names[b][0]),
				 "reason-%d", r);
	}
}

static int64_t sat(int64_t a, int64_t b)
{
	int64_t s;
	return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

/* A random amount, now and then a huge one so that sums saturate. */
static int64_t amount(void)
{
	return rnd(50) == 0 ? INT64_MAX / 3 + (int64_t)rnd(1000)
			    : (int64_t)rnd(1000);
}

/* Fill @bs with up to @rows_max rows each (keys unique within a batch,
 * as minute_stats_drain() gives them). Returns the number of product rows
 * in *@np and reason rows in *@nr. */
static void fill(struct batch **bs, size_t rows_max, size_t *np, size_t *nr)
{
	*np = *nr = 0;
	for (int b = 0; b < BATCHES; b++) {
		batch_reset(bs[b]);
		size_t rows = rnd(rows_max + 1);
		for (size_t i = 0; i < rows; i++) {
			int64_t bucket = (int64_t)rnd(5) * 60000;
			int p = (int)rnd(PRODUCTS);
			int dup = 0;
			for (size_t j = 0; j < bs[b]->product_stats.n; j++)
				if (bs[b]->product_stats.v[j].bucket_ms ==
					    bucket &&
				    strcmp(bs[b]->product_stats.v[j].product_id,
					   names[b][p]) == 0)
					dup = 1;
			if (!dup) {
				struct batch_product_stat *st =
					batch_add_product_stat(bs[b]);
				REQUIRE(st);
				*st = (struct batch_product_stat){
					.bucket_ms = bucket,
					.product_id = names[b][p],
					.added_qty = amount(),
					.removed_qty = amount(),
					.purchased_qty = amount(),
					.purchased_value_cents = amount(),
					.abandoned_qty = amount(),
					.abandoned_value_cents = amount(),
				};
				(*np)++;
			}
			int r = (int)rnd(REASONS);
			dup = 0;
			for (size_t j = 0; j < bs[b]->reason_stats.n; j++) {
				const struct batch_reason_stat *x =
					&bs[b]->reason_stats.v[j];
				if (x->bucket_ms == bucket &&
				    strcmp(x->product_id, names[b][p]) == 0 &&
				    strcmp(x->reason, names[b][PRODUCTS + r]) ==
					    0)
					dup = 1;
			}
			if (!dup) {
				struct batch_reason_stat *st =
					batch_add_reason_stat(bs[b]);
				REQUIRE(st);
				*st = (struct batch_reason_stat){
					.bucket_ms = bucket,
					.product_id = names[b][p],
					.reason = names[b][PRODUCTS + r],
					.removed_qty = amount(),
				};
				(*nr)++;
			}
		}
	}
}

/* The naive sum of one product key, and how many rows have it. */
static struct batch_product_stat recount_product(struct batch *const *bs,
						 int64_t bucket,
						 const char *product, int *n)
{
	struct batch_product_stat s = {.bucket_ms = bucket};
	*n = 0;
	for (int b = 0; b < BATCHES; b++)
		for (size_t j = 0; j < bs[b]->product_stats.n; j++) {
			const struct batch_product_stat *x =
				&bs[b]->product_stats.v[j];
			if (x->bucket_ms != bucket ||
			    strcmp(x->product_id, product) != 0)
				continue;
			(*n)++;
			s.added_qty = sat(s.added_qty, x->added_qty);
			s.removed_qty = sat(s.removed_qty, x->removed_qty);
			s.purchased_qty =
				sat(s.purchased_qty, x->purchased_qty);
			s.purchased_value_cents = sat(s.purchased_value_cents,
						      x->purchased_value_cents);
			s.abandoned_qty =
				sat(s.abandoned_qty, x->abandoned_qty);
			s.abandoned_value_cents = sat(s.abandoned_value_cents,
						      x->abandoned_value_cents);
		}
	return s;
}

static int64_t recount_reason(struct batch *const *bs, int64_t bucket,
			      const char *product, const char *reason, int *n)
{
	int64_t s = 0;
	*n = 0;
	for (int b = 0; b < BATCHES; b++)
		for (size_t j = 0; j < bs[b]->reason_stats.n; j++) {
			const struct batch_reason_stat *x =
				&bs[b]->reason_stats.v[j];
			if (x->bucket_ms == bucket &&
			    strcmp(x->product_id, product) == 0 &&
			    strcmp(x->reason, reason) == 0) {
				(*n)++;
				s = sat(s, x->removed_qty);
			}
		}
	return s;
}

/* Where the key of product row @x first appears in the batches, counting
 * rows batch after batch. */
static size_t first_product(struct batch *const *bs,
			    const struct batch_product_stat *x)
{
	size_t at = 0;
	for (int b = 0; b < BATCHES; b++)
		for (size_t j = 0; j < bs[b]->product_stats.n; j++, at++)
			if (bs[b]->product_stats.v[j].bucket_ms ==
				    x->bucket_ms &&
			    strcmp(bs[b]->product_stats.v[j].product_id,
				   x->product_id) == 0)
				return at;
	return SIZE_MAX;
}

static size_t first_reason(struct batch *const *bs,
			   const struct batch_reason_stat *x)
{
	size_t at = 0;
	for (int b = 0; b < BATCHES; b++)
		for (size_t j = 0; j < bs[b]->reason_stats.n; j++, at++) {
			const struct batch_reason_stat *y =
				&bs[b]->reason_stats.v[j];
			if (y->bucket_ms == x->bucket_ms &&
			    strcmp(y->product_id, x->product_id) == 0 &&
			    strcmp(y->reason, x->reason) == 0)
				return at;
		}
	return SIZE_MAX;
}

/* Every key once, sums equal to the recount, in the order of the keys'
 * first rows; the rows
 * cover all input rows. */
static void check_products(struct batch *const *bs, size_t total,
			   const struct batch_product_stat *v, size_t m)
{
	size_t covered = 0;
	for (size_t i = 0; i < m; i++) {
		int n;
		struct batch_product_stat want = recount_product(
			bs, v[i].bucket_ms, v[i].product_id, &n);
		CHECK(n >= 1);
		covered += (size_t)n;
		CHECK(v[i].added_qty == want.added_qty);
		CHECK(v[i].removed_qty == want.removed_qty);
		CHECK(v[i].purchased_qty == want.purchased_qty);
		CHECK(v[i].purchased_value_cents == want.purchased_value_cents);
		CHECK(v[i].abandoned_qty == want.abandoned_qty);
		CHECK(v[i].abandoned_value_cents == want.abandoned_value_cents);
		if (i)
			CHECK(first_product(bs, &v[i - 1]) <
			      first_product(bs, &v[i]));
		for (size_t k = 0; k < i; k++)
			CHECK(v[k].bucket_ms != v[i].bucket_ms ||
			      strcmp(v[k].product_id, v[i].product_id) != 0);
	}
	CHECK_INT_EQ(covered, total);
}

static void check_reasons(struct batch *const *bs, size_t total,
			  const struct batch_reason_stat *v, size_t m)
{
	size_t covered = 0;
	for (size_t i = 0; i < m; i++) {
		int n;
		int64_t want = recount_reason(bs, v[i].bucket_ms,
					      v[i].product_id, v[i].reason, &n);
		CHECK(n >= 1);
		covered += (size_t)n;
		CHECK(v[i].removed_qty == want);
		if (i)
			CHECK(first_reason(bs, &v[i - 1]) <
			      first_reason(bs, &v[i]));
		for (size_t k = 0; k < i; k++)
			CHECK(v[k].bucket_ms != v[i].bucket_ms ||
			      strcmp(v[k].product_id, v[i].product_id) != 0 ||
			      strcmp(v[k].reason, v[i].reason) != 0);
	}
	CHECK_INT_EQ(covered, total);
}

static void test_random_flushes(void)
{
	struct batch *bs[BATCHES];
	struct stat_sum *s = stat_sum_new();
	/* Sizes up and down: the summer's arrays are reused. */
	static const size_t sizes[] = {3, 40, 200, 0, 7, 150, 1, 60};

	REQUIRE(s);
	make_names();
	for (int b = 0; b < BATCHES; b++)
		REQUIRE((bs[b] = batch_new(b)));
	for (size_t round = 0; round < 40; round++) {
		size_t np, nr, m;
		const struct batch_product_stat *pv;
		const struct batch_reason_stat *rv;

		fill(bs, sizes[round % 8], &np, &nr);
		/* A copy of the input, to see that it is left alone. */
		struct batch_product_stat before[BATCHES][256];
		for (int b = 0; b < BATCHES; b++) {
			REQUIRE(bs[b]->product_stats.n <= 256);
			if (bs[b]->product_stats.n) /* v may be NULL */
				memcpy(before[b], bs[b]->product_stats.v,
				       bs[b]->product_stats.n *
					       sizeof(before[b][0]));
		}
		CHECK_INT_EQ(stat_sum_products(s, bs, BATCHES, np, &pv, &m), 0);
		check_products(bs, np, pv, m);
		CHECK(np == 0 || m >= 1);
		for (int b = 0; b < BATCHES; b++)
			CHECK(!bs[b]->product_stats.n ||
			      memcmp(before[b], bs[b]->product_stats.v,
				     bs[b]->product_stats.n *
					     sizeof(before[b][0])) == 0);
		CHECK_INT_EQ(stat_sum_reasons(s, bs, BATCHES, nr, &rv, &m), 0);
		check_reasons(bs, nr, rv, m);
	}
	for (int b = 0; b < BATCHES; b++)
		batch_destroy(bs[b]);
	stat_sum_free(s);
}

/* The same key in every batch sums into one row, saturating. */
static void test_one_key_everywhere(void)
{
	struct batch *bs[BATCHES];
	struct stat_sum *s = stat_sum_new();
	const struct batch_product_stat *pv;
	const struct batch_reason_stat *rv;
	size_t m;

	REQUIRE(s);
	make_names();
	for (int b = 0; b < BATCHES; b++) {
		REQUIRE((bs[b] = batch_new(b)));
		struct batch_product_stat *p = batch_add_product_stat(bs[b]);
		struct batch_reason_stat *r = batch_add_reason_stat(bs[b]);
		REQUIRE(p && r);
		*p = (struct batch_product_stat){
			.bucket_ms = 120000,
			.product_id = names[b][7],
			.added_qty = 2,
			.abandoned_value_cents = INT64_MAX / 4,
		};
		*r = (struct batch_reason_stat){
			.bucket_ms = 120000,
			.product_id = names[b][7],
			.reason = names[b][PRODUCTS + 1],
			.removed_qty = 5,
		};
	}
	CHECK_INT_EQ(stat_sum_products(s, bs, BATCHES, BATCHES, &pv, &m), 0);
	CHECK_INT_EQ(m, 1);
	CHECK_STR_EQ(pv[0].product_id, "sku-7");
	CHECK(pv[0].added_qty == 2 * BATCHES);
	CHECK(pv[0].abandoned_value_cents == INT64_MAX);
	CHECK(pv[0].removed_qty == 0);
	CHECK_INT_EQ(stat_sum_reasons(s, bs, BATCHES, BATCHES, &rv, &m), 0);
	CHECK_INT_EQ(m, 1);
	CHECK_STR_EQ(rv[0].reason, "reason-1");
	CHECK(rv[0].removed_qty == 5 * BATCHES);
	/* Nothing at all. */
	CHECK_INT_EQ(stat_sum_products(s, bs, 0, 0, &pv, &m), 0);
	CHECK_INT_EQ(m, 0);
	for (int b = 0; b < BATCHES; b++)
		batch_destroy(bs[b]);
	stat_sum_free(s);
	stat_sum_free(NULL);
}

int main(int argc, char **argv)
{
	static const struct harness_case hc[] = {
		{"random_flushes", test_random_flushes},
		{"one_key_everywhere", test_one_key_everywhere},
	};
	return harness_run(hc, sizeof(hc) / sizeof(hc[0]), argc, argv);
}
