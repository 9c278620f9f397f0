/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cart — one shopper's cart: product id → quantity and last seen unit price,
 * stored compactly (two items inline, a heap array beyond that) because a
 * processor holds a million of them.
 *
 * Products are interned ids (intern.h). Items keep their insertion order.
 * Single-threaded.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct cart_item {
	uint32_t product; /* interned product id */
	int32_t quantity; /* > 0 while in the cart */
	int64_t unit_price_cents;
};

#define CART_INLINE 2

/* cart.value when the cart does not keep its value (see struct cart). */
#define CART_VALUE_UNKNOWN UINT32_MAX

struct cart {
	uint16_t n;
	uint16_t cap; /* 0: items are inline */
	/* Σ quantity × price, kept by cart_add() and cart_remove() while
	 * every line and the sum lie in [0, CART_VALUE_UNKNOWN) (carts of
	 * up to ~$42M, in what was padding); CART_VALUE_UNKNOWN from the
	 * first change that leaves that range until cart_clear(), and then
	 * cart_value() counts. */
	uint32_t value;
	struct cart_item *spill;
	struct cart_item inline_items[CART_INLINE];
};

/* The items array (inline or spilled). */
static inline struct cart_item *cart_items(struct cart *c)
{
	return c->cap ? c->spill : c->inline_items;
}

static inline const struct cart_item *cart_items_const(const struct cart *c)
{
	return c->cap ? c->spill : c->inline_items;
}

/* cart_value() of a cart that does not keep its value: Σ quantity ×
 * price, saturated at INT64_MAX. Can't fail. */
int64_t cart_value_count(const struct cart *c);

/* The cart's value, Σ quantity × price saturated at INT64_MAX (what
 * cart_totals() gives), without walking the items when the cart keeps it.
 * Can't fail. */
static inline int64_t cart_value(const struct cart *c)
{
	return c->value != CART_VALUE_UNKNOWN ? (int64_t)c->value
					      : cart_value_count(c);
}

/* Add @qty (> 0) units of @product at @price (the price replaces the old
 * one). Returns 0, -ENOMEM, or -E2BIG when the cart holds 65535 products. */
int cart_add(struct cart *c, uint32_t product, int32_t qty, int64_t price);

/* Whether adding @qty units of @product (0: a product in no cart yet) at
 * @price keeps the cart within @max_items products, @max_qty units in the
 * product's line, and a value (sum of quantity x price, the new price
 * applying to the whole line as cart_add() does) that fits in an int64.
 * Returns 0, -E2BIG (one product too many) or -EOVERFLOW (a line or the
 * value too large); changes nothing. Can't fail otherwise. */
int cart_check_add(const struct cart *c, uint32_t product, int32_t qty,
		   int64_t price, uint32_t max_items, int32_t max_qty);

/* Remove up to @qty units of @product; the product leaves at 0.
 * Returns the number of units actually removed (0 when absent).
 * Sets *@price (may be NULL) to the product's last price. Can't fail. */
int32_t cart_remove(struct cart *c, uint32_t product, int32_t qty,
		    int64_t *price);

/* Σ quantity and Σ quantity × price, each saturated at its type's maximum
 * (carts built through cart_check_add() never reach it). Can't fail. */
void cart_totals(const struct cart *c, int32_t *item_count, int64_t *value);

/* Empty the cart and release any spill array. Can't fail. */
void cart_clear(struct cart *c);

/* Bytes the cart holds on the heap (for memory accounting). */
size_t cart_heap_bytes(const struct cart *c);
