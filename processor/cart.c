/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cart — compact per-user cart. See cart.h.
 */
#include "cart.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Capacity of the first spill array (then doubled). */
#define CART_SPILL_FIRST 4

int cart_add(struct cart *c, uint32_t product, int32_t qty, int64_t price)
{
	struct cart_item *items = cart_items(c);

	for (uint16_t i = 0; i < c->n; i++) {
		if (items[i].product == product) {
			/* Saturate rather than overflow on absurd input. */
			int64_t q = (int64_t)items[i].quantity + qty;
			items[i].quantity =
				q > INT32_MAX ? INT32_MAX : (int32_t)q;
			items[i].unit_price_cents = price;
			return 0;
		}
	}
	if (c->n == UINT16_MAX)
		return -E2BIG;
	if (!c->cap && c->n == CART_INLINE) {
		/* Most carts that spill hold 3 or 4 items: start small (a
		 * 64-byte array, 80-byte malloc chunk), double beyond. */
		struct cart_item *spill =
			malloc(CART_SPILL_FIRST * sizeof(*spill));
		if (!spill)
			return -ENOMEM;
		memcpy(spill, c->inline_items, sizeof(c->inline_items));
		c->spill = spill;
		c->cap = CART_SPILL_FIRST;
	} else if (c->cap && c->n == c->cap) {
		uint32_t ncap = (uint32_t)c->cap * 2;
		if (ncap > UINT16_MAX)
			ncap = UINT16_MAX;
		struct cart_item *spill =
			realloc(c->spill, ncap * sizeof(*spill));
		if (!spill)
			return -ENOMEM;
		c->spill = spill;
		c->cap = (uint16_t)ncap;
	}
	items = cart_items(c);
	items[c->n++] = (struct cart_item){product, qty, price};
	return 0;
}

int32_t cart_remove(struct cart *c, uint32_t product, int32_t qty,
		    int64_t *price)
{
	struct cart_item *items = cart_items(c);

	for (uint16_t i = 0; i < c->n; i++) {
		if (items[i].product != product)
			continue;
		int32_t removed =
			qty < items[i].quantity ? qty : items[i].quantity;
		if (price)
			*price = items[i].unit_price_cents;
		items[i].quantity -= removed;
		if (items[i].quantity == 0) {
			memmove(&items[i], &items[i + 1],
				(size_t)(c->n - i - 1) * sizeof(*items));
			c->n--;
		}
		return removed;
	}
	return 0;
}

void cart_totals(const struct cart *c, int32_t *item_count, int64_t *value)
{
	const struct cart_item *items = cart_items_const(c);
	int64_t n = 0, v = 0;

	for (uint16_t i = 0; i < c->n; i++) {
		n += items[i].quantity;
		v += (int64_t)items[i].quantity * items[i].unit_price_cents;
	}
	*item_count = n > INT32_MAX ? INT32_MAX : (int32_t)n;
	*value = v;
}

void cart_clear(struct cart *c)
{
	if (c->cap)
		free(c->spill);
	memset(c, 0, sizeof(*c));
}

size_t cart_heap_bytes(const struct cart *c)
{
	return c->cap ? (size_t)c->cap * sizeof(struct cart_item) : 0;
}
