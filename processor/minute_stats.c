/* SPDX-License-Identifier: Apache-2.0 */
/*
 * minute_stats — per-minute aggregates between flushes: an open-addressing
 * map keyed by (minute, product, reason). See minute_stats.h.
 */
#include "minute_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "hash64.h"
#include "intern.h"

struct stat_entry {
	int64_t bucket_ms;
	uint32_t product;
	uint32_t reason; /* 0: product counters; else reason id + 1 */
	int64_t v[STAT_FIELDS];
};

struct minute_stats {
	struct stat_entry *e;
	uint32_t n_slots; /* power of two; e[i].product == 0 means empty */
	uint32_t n;
};

static int stats_grow(struct minute_stats *m)
{
	uint32_t n = m->n_slots ? m->n_slots * 2 : 256;
	struct stat_entry *e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->n_slots; i++) {
		struct stat_entry *o = &m->e[i];
		if (!o->product)
			continue;
		uint32_t j = (uint32_t)hash64_mix((uint64_t)o->bucket_ms ^
						  ((uint64_t)o->product << 32) ^
						  o->reason) &
			     (n - 1);
		while (e[j].product)
			j = (j + 1) & (n - 1);
		e[j] = *o;
	}
	free(m->e);
	m->e = e;
	m->n_slots = n;
	return 0;
}

static struct stat_entry *stats_get(struct minute_stats *m, int64_t bucket,
				    uint32_t product, uint32_t reason)
{
	if ((m->n + 1) * 4 > m->n_slots * 3 && stats_grow(m) < 0)
		return NULL;
	uint32_t j = (uint32_t)hash64_mix((uint64_t)bucket ^
					  ((uint64_t)product << 32) ^ reason) &
		     (m->n_slots - 1);
	while (m->e[j].product) {
		struct stat_entry *s = &m->e[j];
		if (s->bucket_ms == bucket && s->product == product &&
		    s->reason == reason)
			return s;
		j = (j + 1) & (m->n_slots - 1);
	}
	m->e[j].bucket_ms = bucket;
	m->e[j].product = product;
	m->e[j].reason = reason;
	m->n++;
	return &m->e[j];
}

static int64_t minute_of(int64_t t)
{
	int64_t m = t / 60000 * 60000;
	return m > t ? m - 60000 : m; /* floor for times before 1970 */
}

int minute_stats_add(struct minute_stats *m, int64_t at_ms, uint32_t product,
		     enum stat_field qf, int64_t qty, int vf, int64_t value)
{
	struct stat_entry *s = stats_get(m, minute_of(at_ms), product, 0);
	if (!s)
		return -ENOMEM;
	batch_stat_add(&s->v[qf], qty);
	if (vf >= 0)
		batch_stat_add(&s->v[vf], value);
	return 0;
}

int minute_stats_add_reason(struct minute_stats *m, int64_t at_ms,
			    uint32_t product, uint32_t reason, int64_t qty)
{
	struct stat_entry *s =
		stats_get(m, minute_of(at_ms), product, reason + 1);
	if (!s)
		return -ENOMEM;
	batch_stat_add(&s->v[0], qty);
	return 0;
}

struct minute_stats *minute_stats_new(void)
{
	struct minute_stats *m = calloc(1, sizeof(*m));

	if (!m || stats_grow(m) < 0) {
		minute_stats_destroy(m);
		return NULL;
	}
	return m;
}

void minute_stats_destroy(struct minute_stats *m)
{
	if (!m)
		return;
	free(m->e);
	free(m);
}

int minute_stats_drain(struct minute_stats *m, struct batch *b,
		       const struct intern *intern)
{
	for (uint32_t i = 0; i < m->n_slots && m->n; i++) {
		struct stat_entry *s = &m->e[i];
		if (!s->product)
			continue;
		const char *pid = intern_str(intern, s->product);
		if (s->reason == 0) {
			struct batch_product_stat *ps =
				batch_add_product_stat(b);
			if (!ps)
				return -ENOMEM;
			*ps = (struct batch_product_stat){
				.bucket_ms = s->bucket_ms,
				.product_id = pid,
				.added_qty = s->v[STAT_ADDED_QTY],
				.removed_qty = s->v[STAT_REMOVED_QTY],
				.purchased_qty = s->v[STAT_PURCHASED_QTY],
				.purchased_value_cents =
					s->v[STAT_PURCHASED_VALUE],
				.abandoned_qty = s->v[STAT_ABANDONED_QTY],
				.abandoned_value_cents =
					s->v[STAT_ABANDONED_VALUE],
			};
		} else {
			struct batch_reason_stat *rs = batch_add_reason_stat(b);
			const char *reason = intern_str(intern, s->reason - 1);
			if (!rs)
				return -ENOMEM;
			*rs = (struct batch_reason_stat){
				.bucket_ms = s->bucket_ms,
				.product_id = pid,
				.reason = reason ? reason : "unspecified",
				.removed_qty = s->v[0],
			};
		}
		memset(s, 0, sizeof(*s));
		m->n--;
	}
	return 0;
}
