/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stat_sum — one flush's per-minute rows summed by key. See stat_sum.h.
 *
 * An open-addressing table of row numbers (plus one; 0 is empty) with
 * linear probing, at most half full, cleared per call; the summed rows
 * live in an array that grows as needed and is kept for the next flush.
 * The key's hash is kept beside each summed row so that a probe compares
 * strings only when the hashes agree.
 *
 * The rows are not sorted: a flush's rows are appended together, so the
 * BRIN summaries of the delta tables on bucket span the flush's minutes
 * in any order (one or two minutes live, an hour or so of event time a
 * flush in a backfill). Sorting the summed rows by minute cost more than
 * the summing (callgrind, bench-processor).
 */
#include "stat_sum.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "hash64.h"

struct stat_sum {
	uint32_t *slots; /* row number + 1, 0: empty */
	size_t cap_slots;
	size_t mask;	  /* this call's table size (a power of two) - 1 */
	uint64_t *hashes; /* of each summed row's key */
	struct batch_product_stat *prod;
	size_t cap_prod;
	struct batch_reason_stat *reas;
	size_t cap_reas;
	size_t cap_hashes;
};

struct stat_sum *stat_sum_new(void)
{
	return calloc(1, sizeof(struct stat_sum));
}

void stat_sum_free(struct stat_sum *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s->hashes);
	free(s->prod);
	free(s->reas);
	free(s);
}

/* Grow *@p (of *@cap elements of @size bytes) to at least @n. */
static int reserve(void *p, size_t *cap, size_t n, size_t size)
{
	void *q;

	if (n <= *cap)
		return 0;
	if (n > SIZE_MAX / size)
		return -ENOMEM;
	if (!(q = realloc(*(void **)p, n * size)))
		return -ENOMEM;
	*(void **)p = q;
	*cap = n;
	return 0;
}

/* Room for @total distinct keys: an empty table at most half full, the
 * hashes. Returns 0 or -ENOMEM. */
static int begin(struct stat_sum *s, size_t total)
{
	size_t want = 16;

	if (total > UINT32_MAX - 1)
		return -ENOMEM;
	while (want < 2 * total)
		want *= 2;
	if (want > s->cap_slots) {
		uint32_t *slots = malloc(want * sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		free(s->slots);
		s->slots = slots;
		s->cap_slots = want;
	}
	/* Only what this call uses: a small flush after a big one does
	 * not clear the big one's table. */
	memset(s->slots, 0, want * sizeof(*s->slots));
	s->mask = want - 1;
	return reserve(&s->hashes, &s->cap_hashes, total, sizeof(*s->hashes));
}

static uint64_t key_hash(int64_t bucket_ms, const char *product,
			 const char *reason)
{
	uint64_t h = hash64_fnv1a(HASH64_FNV_OFFSET, product, strlen(product));

	if (reason)
		h = hash64_fnv1a(h ^ 0xff, reason, strlen(reason));
	return hash64_mix(h ^ (uint64_t)bucket_ms);
}

/* Does summed row @at have the key of row @x? One per kind of row. */
typedef bool stat_same_fn(const struct stat_sum *s, size_t at, const void *x);

static bool same_product(const struct stat_sum *s, size_t at, const void *x)
{
	const struct batch_product_stat *c = &s->prod[at], *st = x;

	return c->bucket_ms == st->bucket_ms &&
	       strcmp(c->product_id, st->product_id) == 0;
}

static bool same_reason(const struct stat_sum *s, size_t at, const void *x)
{
	const struct batch_reason_stat *c = &s->reas[at], *st = x;

	return c->bucket_ms == st->bucket_ms &&
	       strcmp(c->product_id, st->product_id) == 0 &&
	       strcmp(c->reason, st->reason) == 0;
}

/* The summed row with the key of row @x (hash @h) among the @m summed so
 * far: its index, or @m when the key is new, its slot and hash then taken
 * for the row the caller puts at @m. Inline so that each caller's
 * constant @same is called directly. */
static inline size_t find_or_add(struct stat_sum *s, uint64_t h, size_t m,
				 stat_same_fn *same, const void *x)
{
	uint32_t *slots = s->slots;
	uint64_t *hashes = s->hashes;
	size_t mask = s->mask, k = (size_t)h & mask;

	for (; slots[k]; k = (k + 1) & mask) {
		size_t at = slots[k] - 1;

		if (hashes[at] == h && same(s, at, x))
			return at;
	}
	hashes[m] = h;
	slots[k] = (uint32_t)(m + 1);
	return m;
}

int stat_sum_products(struct stat_sum *s, struct batch *const *bs, size_t n,
		      size_t total, const struct batch_product_stat **rows,
		      size_t *n_rows)
{
	size_t m = 0;
	int r;

	if ((r = begin(s, total)) < 0 ||
	    (r = reserve(&s->prod, &s->cap_prod, total, sizeof(*s->prod))) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < bs[i]->product_stats.n; j++) {
			const struct batch_product_stat *st =
				&bs[i]->product_stats.v[j];
			uint64_t h =
				key_hash(st->bucket_ms, st->product_id, NULL);
			size_t at = find_or_add(s, h, m, same_product, st);
			struct batch_product_stat *sum = &s->prod[at];

			if (at == m) {
				s->prod[m++] = *st;
				continue;
			}
			batch_stat_add(&sum->added_qty, st->added_qty);
			batch_stat_add(&sum->removed_qty, st->removed_qty);
			batch_stat_add(&sum->purchased_qty, st->purchased_qty);
			batch_stat_add(&sum->purchased_value_cents,
				       st->purchased_value_cents);
			batch_stat_add(&sum->abandoned_qty, st->abandoned_qty);
			batch_stat_add(&sum->abandoned_value_cents,
				       st->abandoned_value_cents);
		}
	}
	*rows = s->prod;
	*n_rows = m;
	return 0;
}

int stat_sum_reasons(struct stat_sum *s, struct batch *const *bs, size_t n,
		     size_t total, const struct batch_reason_stat **rows,
		     size_t *n_rows)
{
	size_t m = 0;
	int r;

	if ((r = begin(s, total)) < 0 ||
	    (r = reserve(&s->reas, &s->cap_reas, total, sizeof(*s->reas))) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < bs[i]->reason_stats.n; j++) {
			const struct batch_reason_stat *st =
				&bs[i]->reason_stats.v[j];
			uint64_t h = key_hash(st->bucket_ms, st->product_id,
					      st->reason);
			size_t at = find_or_add(s, h, m, same_reason, st);

			if (at == m)
				s->reas[m++] = *st;
			else
				batch_stat_add(&s->reas[at].removed_qty,
					       st->removed_qty);
		}
	}
	*rows = s->reas;
	*n_rows = m;
	return 0;
}
