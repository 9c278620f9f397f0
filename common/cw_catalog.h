/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_catalog — a shop's price list, read from a CSV file, for pricing JSON
 * events that carry no unit_price_cents (the gateway's --catalog).
 *
 * The file has a header line naming its columns; product_id and
 * unit_price_cents are required, currency is used when present, any other
 * column (name, category...) is ignored. Fields may be double-quoted as in
 * RFC 4180. The whole file is checked before anything is used: one bad
 * line refuses the file, naming the line.
 *
 * A catalog is immutable once built, so any number of threads may read it.
 * Reloading means building a new one and swapping the pointer (the caller's
 * business, with whatever lock it holds readers under).
 *
 * Not for: the simulator's compiled-in catalog (producer/catalog.h).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct cw_catalog;

struct cw_catalog_item {
	const char *product_id; /* NUL-terminated */
	size_t product_id_len;
	int64_t unit_price_cents;
	char currency[4]; /* "" when the file has no currency for it */
};

/* Largest catalog file read, in bytes. */
#define CW_CATALOG_MAX_BYTES (256u << 20)

/* Build a catalog from the @len bytes of CSV at @text; @name (the file
 * name, for messages) may be NULL. Returns NULL with the reason (and the
 * line number) in @errstr on a malformed file or allocation failure.
 * The caller owns the result (cw_catalog_destroy()). Thread-safe. */
struct cw_catalog *cw_catalog_parse(const char *text, size_t len,
				    const char *name, char *errstr,
				    size_t errstr_size);

/* cw_catalog_parse() on the contents of the file at @path. Returns NULL
 * with the reason in @errstr when the file cannot be read, is larger than
 * CW_CATALOG_MAX_BYTES, or does not parse. */
struct cw_catalog *cw_catalog_load(const char *path, char *errstr,
				   size_t errstr_size);

/* Free @cat (NULL is fine). Items found in it die with it. */
void cw_catalog_destroy(struct cw_catalog *cat);

/* The item for the @len bytes at @product_id, or NULL. O(1). The pointer
 * lives as long as @cat. Thread-safe (read-only). */
const struct cw_catalog_item *cw_catalog_find(const struct cw_catalog *cat,
					      const char *product_id,
					      size_t len);

/* Number of products. Can't fail. */
size_t cw_catalog_count(const struct cw_catalog *cat);
