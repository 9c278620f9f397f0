/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cart — compact per-user cart. See cart.h.
 */
#include "cart.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Capacity of the first spill array (then doubled). */
#define CART_SPILL_FIRST 4

/* Keep c->value across one line going from @old_q x @old_p (0 x 0: a new
 * line) to @new_q x @new_p (0: the line leaves). The old line is within
 * the kept value when it is kept (every line is, see struct cart). */
static void value_change(struct cart *c, int64_t old_q, int64_t old_p,
			 int64_t new_q, int64_t new_p)
{
	int64_t line, v;

	if (c->value == CART_VALUE_UNKNOWN)
		return;
	if (__builtin_mul_overflow(new_q, new_p, &line) || line < 0 ||
	    line >= CART_VALUE_UNKNOWN) {
		c->value = CART_VALUE_UNKNOWN;
		return;
	}
	v = (int64_t)c->value - old_q * old_p + line;
	c->value = v >= 0 && v < CART_VALUE_UNKNOWN ? (uint32_t)v
						    : CART_VALUE_UNKNOWN;
}

int cart_add(struct cart *c, uint32_t product, int32_t qty, int64_t price)
{
	struct cart_item *items = cart_items(c);

	for (uint16_t i = 0; i < c->n; i++) {
		if (items[i].product == product) {
			/* Saturate rather than overflow on absurd input. */
			int64_t q = (int64_t)items[i].quantity + qty;
			if (q > INT32_MAX)
				q = INT32_MAX;
			value_change(c, items[i].quantity,
				     items[i].unit_price_cents, q, price);
			items[i].quantity = (int32_t)q;
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
	value_change(c, 0, 0, qty, price);
	return 0;
}

int cart_check_add(const struct cart *c, uint32_t product, int32_t qty,
		   int64_t price, uint32_t max_items, int32_t max_qty)
{
	const struct cart_item *items = cart_items_const(c);
	int64_t value = 0, line;
	bool found = false;

	for (uint16_t i = 0; i < c->n; i++) {
		int64_t q = items[i].quantity, p = items[i].unit_price_cents;
		if (product && items[i].product == product) {
			found = true;
			q += qty;
			p = price;
			if (q > max_qty)
				return -EOVERFLOW;
		}
		if (__builtin_mul_overflow(q, p, &line) ||
		    __builtin_add_overflow(value, line, &value))
			return -EOVERFLOW;
	}
	if (found)
		return 0;
	if (c->n >= max_items || c->n == UINT16_MAX)
		return -E2BIG;
	if (qty > max_qty ||
	    __builtin_mul_overflow((int64_t)qty, price, &line) ||
	    __builtin_add_overflow(value, line, &value))
		return -EOVERFLOW;
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
		value_change(c, items[i].quantity, items[i].unit_price_cents,
			     items[i].quantity - removed,
			     items[i].unit_price_cents);
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
	int64_t n = 0;

	for (uint16_t i = 0; i < c->n; i++)
		n += items[i].quantity; /* at most 65535 x INT32_MAX */
	*item_count = n > INT32_MAX ? INT32_MAX : (int32_t)n;
	*value = cart_value(c);
}

int64_t cart_value_count(const struct cart *c)
{
	const struct cart_item *items = cart_items_const(c);
	int64_t v = 0, line;

	for (uint16_t i = 0; i < c->n; i++)
		if (__builtin_mul_overflow((int64_t)items[i].quantity,
					   items[i].unit_price_cents, &line) ||
		    __builtin_add_overflow(v, line, &v))
			v = INT64_MAX;
	return v;
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
