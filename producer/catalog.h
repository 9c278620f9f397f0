/* SPDX-License-Identifier: Apache-2.0 */
/*
 * catalog — the Prime-Day product catalog the simulation shops from and the
 * JSON feeder prices unknown-price events with: a few hundred products in
 * realistic categories, each with a list price and a Prime-Day deal
 * discount, plus a schedule of time-limited lightning deals that cause
 * traffic bursts.
 *
 * The table is compiled in, so the catalog is the same on every run (a
 * precondition of deterministic output). A struct catalog adds the derived
 * data: deal prices, popularity weights and a sorted index for lookups.
 *
 * Not for: inventory, stock-outs or currencies other than USD.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct catalog_product {
	const char *id;	      /* e.g. "ECHO_DOT_5TH_GEN"; upper-case ASCII */
	const char *category; /* e.g. "Smart Home" */
	int64_t list_cents;   /* list price */
	int deal_pct;	      /* Prime-Day discount off list, 0..90 */
};

/* A lightning deal: @product is deeply discounted for a short window of
 * simulated time measured from the start of the simulation. */
struct catalog_lightning {
	size_t product;		 /* index into the catalog */
	int64_t start_offset_ms; /* from the simulation start */
	int64_t duration_ms;
	int deal_pct; /* replaces the product's deal_pct */
};

struct catalog;

/* Build the catalog from the compiled-in table. Returns NULL (with a reason
 * in @errstr) only on allocation failure or a broken table (duplicate id,
 * lightning deal naming an unknown product). The caller owns the result
 * and frees it with catalog_destroy(). */
struct catalog *catalog_new(char *errstr, size_t errstr_size);

/* Free @cat (NULL is fine). */
void catalog_destroy(struct catalog *cat);

/* Number of products. Can't fail. */
size_t catalog_count(const struct catalog *cat);

/* Product @i (0 <= @i < catalog_count()). The pointer lives as long as
 * @cat. */
const struct catalog_product *catalog_product(const struct catalog *cat,
					      size_t i);

/* Index of the product whose id is the @len bytes at @id, or -1 if there is
 * none. O(log n). Thread-safe (read-only). */
long catalog_find(const struct catalog *cat, const char *id, size_t len);

/* Price of one unit of product @i at simulated offset @offset_ms: the
 * lightning-deal price while one runs for it, else the Prime-Day deal
 * price. Prices end in .99 like real ones. */
int64_t catalog_price_cents(const struct catalog *cat, size_t i,
			    int64_t offset_ms);

/* The product a shopper picks for a uniform draw @u in [0, 1), by
 * popularity: cheap items and deep discounts sell more. O(log n). */
size_t catalog_pick(const struct catalog *cat, double u);

/* The lightning-deal schedule, sorted by start, non-overlapping. */
const struct catalog_lightning *catalog_lightning(const struct catalog *cat,
						  size_t *n);

/* The lightning deal running at @offset_ms, or NULL. */
const struct catalog_lightning *catalog_lightning_at(const struct catalog *cat,
						     int64_t offset_ms);
