/* SPDX-License-Identifier: Apache-2.0 */
/*
 * summary — per-type and per-product totals. See summary.h.
 */
#include "summary.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cw_log.h"

struct product_totals {
	uint64_t added_qty;
	uint64_t removed_qty;
	int64_t value_added_cents;
	int64_t value_removed_cents;
};

/* A product id that is not in the catalog (JSON feed only). */
struct unknown_product {
	char *id;
	struct product_totals t;
};

struct summary {
	const struct catalog *cat;
	uint64_t by_type[CW_EVENT_TYPE_COUNT];
	struct product_totals *known; /* one per catalog product */
	struct unknown_product *unknown;
	size_t n_unknown, cap_unknown;
};

struct summary *summary_new(const struct catalog *cat)
{
	struct summary *sum = calloc(1, sizeof(*sum));

	if (!sum)
		return NULL;
	sum->cat = cat;
	sum->known = calloc(catalog_count(cat), sizeof(*sum->known));
	if (!sum->known) {
		free(sum);
		return NULL;
	}
	return sum;
}

void summary_destroy(struct summary *sum)
{
	if (!sum)
		return;
	for (size_t i = 0; i < sum->n_unknown; i++)
		free(sum->unknown[i].id);
	free(sum->unknown);
	free(sum->known);
	free(sum);
}

/* The totals of the product with id @id, outside the catalog; NULL when
 * out of memory. Linear: the JSON feed sees few such products. */
static struct product_totals *unknown_totals(struct summary *sum,
					     struct cw_str id)
{
	struct unknown_product *up;

	for (size_t i = 0; i < sum->n_unknown; i++)
		if (strlen(sum->unknown[i].id) == id.len &&
		    !memcmp(sum->unknown[i].id, id.ptr, id.len))
			return &sum->unknown[i].t;
	if (sum->n_unknown == sum->cap_unknown) {
		size_t cap = sum->cap_unknown ? 2 * sum->cap_unknown : 16;

		up = realloc(sum->unknown, cap * sizeof(*up));
		if (!up)
			return NULL;
		sum->unknown = up;
		sum->cap_unknown = cap;
	}
	up = &sum->unknown[sum->n_unknown];
	memset(up, 0, sizeof(*up));
	up->id = strndup(id.ptr, id.len);
	if (!up->id)
		return NULL;
	sum->n_unknown++;
	return &up->t;
}

int summary_count(struct summary *sum, const struct cw_event *ev, long product)
{
	struct product_totals *t;
	int64_t value;

	sum->by_type[ev->type]++;
	if (ev->type == CW_EVENT_CHECKOUT_COMPLETE || !ev->product_id.ptr)
		return 0;
	if (product < 0)
		product = catalog_find(sum->cat, ev->product_id.ptr,
				       ev->product_id.len);
	t = product >= 0 ? &sum->known[product]
			 : unknown_totals(sum, ev->product_id);
	if (!t)
		return -ENOMEM;
	value = (int64_t)ev->quantity * ev->unit_price_cents;
	if (ev->type == CW_EVENT_CART_ADD) {
		t->added_qty += (uint64_t)ev->quantity;
		t->value_added_cents += value;
	} else {
		t->removed_qty += (uint64_t)ev->quantity;
		t->value_removed_cents += value;
	}
	return 0;
}

uint64_t summary_events(const struct summary *sum)
{
	uint64_t n = 0;

	for (int i = 0; i < CW_EVENT_TYPE_COUNT; i++)
		n += sum->by_type[i];
	return n;
}

uint64_t summary_events_of(const struct summary *sum, enum cw_event_type type)
{
	return sum->by_type[type];
}

/* Add @t under @id to @products, and its units and value to the totals. */
static int add_product(json_t *products, const char *id,
		       const struct product_totals *t, uint64_t *added,
		       uint64_t *removed, int64_t *value)
{
	if (!t->added_qty && !t->removed_qty)
		return 0;
	*added += t->added_qty;
	*removed += t->removed_qty;
	*value += t->value_added_cents;
	return json_object_set_new(
		products, id,
		json_pack("{sIsIsIsI}", "added_qty", (json_int_t)t->added_qty,
			  "removed_qty", (json_int_t)t->removed_qty,
			  "value_added_cents", (json_int_t)t->value_added_cents,
			  "value_removed_cents",
			  (json_int_t)t->value_removed_cents));
}

int summary_write_json(const struct summary *sum, const struct summary_extra *x,
		       const char *path)
{
	json_t *root = NULL, *products = json_object(),
	       *by_type = json_object();
	uint64_t added = 0, removed = 0;
	int64_t value = 0;
	int r = -ENOMEM;

	if (!products || !by_type)
		goto out;
	for (int i = 0; i < CW_EVENT_TYPE_COUNT; i++)
		if (json_object_set_new(
			    by_type, cw_event_type_name((enum cw_event_type)i),
			    json_integer((json_int_t)sum->by_type[i])))
			goto out;
	for (size_t i = 0; i < catalog_count(sum->cat); i++)
		if (add_product(products, catalog_product(sum->cat, i)->id,
				&sum->known[i], &added, &removed, &value))
			goto out;
	for (size_t i = 0; i < sum->n_unknown; i++)
		if (add_product(products, sum->unknown[i].id,
				&sum->unknown[i].t, &added, &removed, &value))
			goto out;
	root = json_pack("{sIsOsIsIsIsIsIsIsO}", "events_total",
			 (json_int_t)summary_events(sum), "events_by_type",
			 by_type, "delivered", (json_int_t)x->delivered,
			 "failed", (json_int_t)x->failed, "invalid_lines",
			 (json_int_t)x->invalid_lines, "units_added",
			 (json_int_t)added, "units_removed",
			 (json_int_t)removed, "value_added_cents",
			 (json_int_t)value, "products", products);
	if (!root)
		goto out;
	if (x->sim &&
	    json_object_set_new(
		    root, "carts",
		    json_pack("{sIsIsIsI}", "sessions",
			      (json_int_t)x->sim->sessions, "checkouts",
			      (json_int_t)x->sim->checkouts, "recovered",
			      (json_int_t)x->sim->recovered, "abandoned",
			      (json_int_t)x->sim->abandoned)))
		goto out;
	r = json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS) ? -EIO
									: 0;
out:
	json_decref(root);
	json_decref(products);
	json_decref(by_type);
	return r;
}

void summary_log(const struct summary *sum, const struct summary_extra *x)
{
	uint64_t n = summary_events(sum);

	cw_info("summary",
		"events=%" PRIu64 " cart_add=%" PRIu64 " cart_remove=%" PRIu64
		" checkout_complete=%" PRIu64 " delivered=%" PRIu64
		" failed=%" PRIu64 " invalid_lines=%" PRIu64
		" elapsed_s=%.3f events_per_s=%.0f",
		n, sum->by_type[CW_EVENT_CART_ADD],
		sum->by_type[CW_EVENT_CART_REMOVE],
		sum->by_type[CW_EVENT_CHECKOUT_COMPLETE], x->delivered,
		x->failed, x->invalid_lines, x->elapsed_s,
		x->elapsed_s > 0 ? (double)n / x->elapsed_s : 0.0);
	if (x->sim)
		cw_info("carts",
			"sessions=%" PRIu64 " checkouts=%" PRIu64
			" recovered=%" PRIu64 " abandoned=%" PRIu64,
			x->sim->sessions, x->sim->checkouts, x->sim->recovered,
			x->sim->abandoned);
}
