/* SPDX-License-Identifier: Apache-2.0 */
/*
 * catalog — the compiled-in product table (catalog_table.inc), its lightning
 * deals and the derived prices, weights and lookup index. See catalog.h.
 */
#include "catalog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINUTE_MS INT64_C(60000)
#define HOUR_MS	  (60 * MINUTE_MS)

static const struct catalog_product products[] = {
#define P(id, cat, cents, pct) {id, cat, cents, pct},
#include "catalog_table.inc"
#undef P
};
#define N_PRODUCTS (sizeof(products) / sizeof(products[0]))

/* Lightning deals over the 48 hours of Prime Day: short, deep, and on
 * products people rush for, so each one causes a burst. */
static const struct {
	const char *id;
	int64_t start_offset_ms;
	int64_t duration_ms;
	int deal_pct;
} lightning_table[] = {
	{"ECHO_SHOW_8", 40 * MINUTE_MS, 30 * MINUTE_MS, 65},
	{"AIRPODS_PRO_2", 2 * HOUR_MS + 15 * MINUTE_MS, 20 * MINUTE_MS, 40},
	{"NINJA_CREAMI", 5 * HOUR_MS, 45 * MINUTE_MS, 50},
	{"LEGO_STAR_WARS_MILLENNIUM_FALCON", 9 * HOUR_MS + 30 * MINUTE_MS,
	 30 * MINUTE_MS, 45},
	{"SONY_WH1000XM5", 14 * HOUR_MS, 25 * MINUTE_MS, 38},
	{"ROOMBA_J7_PLUS", 20 * HOUR_MS + 30 * MINUTE_MS, 40 * MINUTE_MS, 60},
	{"KINDLE_PAPERWHITE", 26 * HOUR_MS, 30 * MINUTE_MS, 45},
	{"PS5_CONSOLE", 33 * HOUR_MS, 15 * MINUTE_MS, 25},
	{"DYSON_V8_ABSOLUTE", 39 * HOUR_MS + 45 * MINUTE_MS, 35 * MINUTE_MS,
	 50},
	{"FIRE_TV_OMNI_65", 45 * HOUR_MS, 30 * MINUTE_MS, 55},
};
#define N_LIGHTNING (sizeof(lightning_table) / sizeof(lightning_table[0]))

struct catalog {
	double cum_weight[N_PRODUCTS]; /* running sum of popularity weights */
	size_t by_id[N_PRODUCTS];      /* product indexes sorted by id */
	struct catalog_lightning lightning[N_LIGHTNING];
};

static int cmp_by_id(const void *a, const void *b)
{
	return strcmp(products[*(const size_t *)a].id,
		      products[*(const size_t *)b].id);
}

struct catalog *catalog_new(char *errstr, size_t errstr_size)
{
	struct catalog *cat = calloc(1, sizeof(*cat));
	double sum = 0;

	if (!cat) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < N_PRODUCTS; i++) {
		double usd = (double)products[i].list_cents / 100.0;

		/* Cheap things sell more, deep discounts sell more. */
		sum += (1.0 + products[i].deal_pct / 25.0) / sqrt(usd + 10.0);
		cat->cum_weight[i] = sum;
		cat->by_id[i] = i;
	}
	qsort(cat->by_id, N_PRODUCTS, sizeof(cat->by_id[0]), cmp_by_id);
	for (size_t i = 1; i < N_PRODUCTS; i++) {
		if (!strcmp(products[cat->by_id[i]].id,
			    products[cat->by_id[i - 1]].id)) {
			snprintf(errstr, errstr_size,
				 "catalog: duplicate product id %s",
				 products[cat->by_id[i]].id);
			goto fail;
		}
	}
	for (size_t i = 0; i < N_LIGHTNING; i++) {
		long p = catalog_find(cat, lightning_table[i].id,
				      strlen(lightning_table[i].id));

		if (p < 0 ||
		    (i > 0 &&
		     lightning_table[i].start_offset_ms <
			     cat->lightning[i - 1].start_offset_ms +
				     cat->lightning[i - 1].duration_ms)) {
			snprintf(errstr, errstr_size,
				 "catalog: lightning deal %s is unknown or "
				 "overlaps the one before",
				 lightning_table[i].id);
			goto fail;
		}
		cat->lightning[i] = (struct catalog_lightning){
			(size_t)p, lightning_table[i].start_offset_ms,
			lightning_table[i].duration_ms,
			lightning_table[i].deal_pct};
	}
	return cat;
fail:
	free(cat);
	return NULL;
}

void catalog_destroy(struct catalog *cat)
{
	free(cat);
}

size_t catalog_count(const struct catalog *cat)
{
	(void)cat;
	return N_PRODUCTS;
}

const struct catalog_product *catalog_product(const struct catalog *cat,
					      size_t i)
{
	(void)cat;
	return &products[i];
}

long catalog_find(const struct catalog *cat, const char *id, size_t len)
{
	size_t lo = 0, hi = N_PRODUCTS;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *cand = products[cat->by_id[mid]].id;
		int c = strncmp(cand, id, len);

		if (c == 0 && cand[len] != '\0')
			c = 1; /* cand is longer, so it sorts after id */
		if (c == 0)
			return (long)cat->by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* @list_cents less @pct percent, rounded down to a price ending in .99 (but
 * never above list and never below 0.99). */
static int64_t deal_price(int64_t list_cents, int pct)
{
	int64_t p = list_cents * (100 - pct) / 100;

	p = p - p % 100 - 1;
	if (p < 99)
		p = 99;
	return p < list_cents ? p : list_cents;
}

int64_t catalog_price_cents(const struct catalog *cat, size_t i,
			    int64_t offset_ms)
{
	const struct catalog_lightning *cl =
		catalog_lightning_at(cat, offset_ms);

	if (cl && cl->product == i)
		return deal_price(products[i].list_cents, cl->deal_pct);
	return deal_price(products[i].list_cents, products[i].deal_pct);
}

size_t catalog_pick(const struct catalog *cat, double u)
{
	double x = u * cat->cum_weight[N_PRODUCTS - 1];
	size_t lo = 0, hi = N_PRODUCTS - 1;

	while (lo < hi) { /* first i with cum_weight[i] > x */
		size_t mid = lo + (hi - lo) / 2;

		if (cat->cum_weight[mid] > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

const struct catalog_lightning *catalog_lightning(const struct catalog *cat,
						  size_t *n)
{
	*n = N_LIGHTNING;
	return cat->lightning;
}

const struct catalog_lightning *catalog_lightning_at(const struct catalog *cat,
						     int64_t offset_ms)
{
	for (size_t i = 0; i < N_LIGHTNING; i++) {
		const struct catalog_lightning *cl = &cat->lightning[i];

		if (offset_ms < cl->start_offset_ms)
			return NULL; /* sorted: none later can match */
		if (offset_ms < cl->start_offset_ms + cl->duration_ms)
			return cl;
	}
	return NULL;
}
