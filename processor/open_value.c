/* SPDX-License-Identifier: Apache-2.0 */
/*
 * open_value — per-currency running totals of carts at risk. See
 * open_value.h.
 */
#include "open_value.h"

#include <string.h>

#include "intern.h"

static struct open_value_entry *entry_of(struct open_value *ov,
					 uint32_t currency)
{
	uint32_t i;

	for (i = 0; i < ov->n; i++)
		if (ov->e[i].currency == currency)
			return &ov->e[i];
	/* The last slot is "(other)" once every named one is taken. */
	if (ov->n == OPEN_VALUE_CURRENCIES)
		currency = OPEN_VALUE_OTHER;
	if (ov->n == OPEN_VALUE_CURRENCIES + 1)
		return &ov->e[OPEN_VALUE_CURRENCIES];
	ov->e[ov->n] = (struct open_value_entry){.currency = currency};
	return &ov->e[ov->n++];
}

void open_value_add(struct open_value *ov, uint32_t currency, int sign,
		    int has_cart, int64_t value_cents)
{
	struct open_value_entry *e = entry_of(ov, currency);

	e->sessions += sign;
	if (has_cart) {
		e->carts += sign;
		e->value_cents += (open_value_cents)sign * value_cents;
	}
}

void open_value_change(struct open_value *ov, uint32_t currency, int had_cart,
		       int64_t was_cents, int has_cart, int64_t now_cents)
{
	struct open_value_entry *e = entry_of(ov, currency);

	e->carts += (has_cart != 0) - (had_cart != 0);
	if (had_cart)
		e->value_cents -= was_cents;
	if (has_cart)
		e->value_cents += now_cents;
}

static int64_t add_sat(int64_t a, open_value_cents b)
{
	open_value_cents s = (open_value_cents)a + b;

	if (s > INT64_MAX)
		return INT64_MAX;
	if (s < INT64_MIN)
		return INT64_MIN;
	return (int64_t)s;
}

static struct open_value_row *row_of(struct open_value_rows *rows,
				     const char *name)
{
	uint32_t i;

	for (i = 0; i < rows->n; i++)
		if (!strcmp(rows->row[i].currency, name))
			return &rows->row[i];
	if (rows->n >= OPEN_VALUE_ROWS - 1)
		name = OPEN_VALUE_OTHER_NAME;
	for (i = 0; i < rows->n; i++)
		if (!strcmp(rows->row[i].currency, name))
			return &rows->row[i];
	struct open_value_row *r = &rows->row[rows->n++];
	*r = (struct open_value_row){0};
	memcpy(r->currency, name, strlen(name) + 1); /* fits: see the caller */
	return r;
}

void open_value_rows_add(struct open_value_rows *rows,
			 const struct open_value *ov, const struct intern *in)
{
	for (uint32_t i = 0; i < ov->n; i++) {
		const struct open_value_entry *e = &ov->e[i];
		const char *name = NULL;

		/* An event always names its currency; a restored state may
		 * not have one (id 0), and the outputs call that USD. */
		if (e->currency == 0)
			name = "USD";
		else if (e->currency != OPEN_VALUE_OTHER)
			name = intern_str(in, e->currency);
		if (!name || strlen(name) >= sizeof(rows->row[0].currency))
			name = OPEN_VALUE_OTHER_NAME;
		struct open_value_row *r = row_of(rows, name);
		r->sessions = add_sat(r->sessions, e->sessions);
		r->carts = add_sat(r->carts, e->carts);
		r->value_cents = add_sat(r->value_cents, e->value_cents);
	}
}
