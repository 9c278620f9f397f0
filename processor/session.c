/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session — the per-user cart and session rules. See session.h.
 */
#include "session.h"

#include <errno.h>

#include "cw_abandonment.h"
#include "ids.h"
#include "minute_stats.h"

static int emit_abandonment(struct partition *pt, struct user *u)
{
	struct batch *b = pt->batch;
	struct batch_abandonment *ab;
	struct cart_item *items = cart_items(&u->cart);
	struct cw_abandoned_item *avro_items;
	int32_t item_count;
	int64_t value;
	int r;

	cart_totals(&u->cart, &item_count, &value);
	ab = batch_add_abandonment(b);
	if (!ab)
		return -ENOMEM;
	ids_abandonment(u->id, u->id_len, u->session_start_ms,
			ab->abandonment_id);
	ab->user_id = batch_strdup(b, u->id, u->id_len);
	ab->session_start_ms = u->session_start_ms;
	ab->last_activity_ms = u->last_event_ms;
	ab->abandoned_at_ms = u->last_event_ms + pt->params->session_timeout_ms;
	ab->item_count = item_count;
	ab->cart_value_cents = value;
	ab->currency = intern_str(pt->intern, u->currency);
	if (!ab->currency)
		ab->currency = "USD";
	ab->last_remove_reason = intern_str(pt->intern, u->last_reason);
	ab->n_items = u->cart.n;
	/* Items: product strings are interned and outlive the batch. */
	struct batch_item *bi =
		batch_alloc(b, u->cart.n * sizeof(struct batch_item));
	avro_items =
		batch_alloc(b, u->cart.n * sizeof(struct cw_abandoned_item));
	if (!ab->user_id || !bi || !avro_items)
		return -ENOMEM;
	for (uint16_t i = 0; i < u->cart.n; i++) {
		const char *pid = intern_str(pt->intern, items[i].product);
		bi[i] = (struct batch_item){pid, items[i].quantity,
					    items[i].unit_price_cents};
		avro_items[i] = (struct cw_abandoned_item){
			cw_str_c(pid), items[i].quantity,
			items[i].unit_price_cents};
		r = minute_stats_add(pt->stats, ab->abandoned_at_ms,
				     items[i].product, STAT_ABANDONED_QTY,
				     items[i].quantity, STAT_ABANDONED_VALUE,
				     (int64_t)items[i].quantity *
					     items[i].unit_price_cents);
		if (r < 0)
			return r;
	}
	ab->items = bi;

	/* The record for the cart-abandonments topic, kept with the row. */
	struct cw_abandonment rec = {
		.abandonment_id = {ab->abandonment_id, BATCH_UUID_LEN},
		.user_id = {ab->user_id, u->id_len},
		.session_start_ms = ab->session_start_ms,
		.last_activity_at_ms = ab->last_activity_ms,
		.abandoned_at_ms = ab->abandoned_at_ms,
		.items = avro_items,
		.n_items = ab->n_items,
		.item_count = item_count,
		.cart_value_cents = value,
		.currency = cw_str_c(ab->currency),
		.last_remove_reason = cw_str_c(ab->last_remove_reason),
	};
	size_t max = cw_abandonment_encoded_max(&rec);
	uint8_t *buf = batch_alloc(b, max);
	if (!buf)
		return -ENOMEM;
	ssize_t n = cw_abandonment_encode(&rec, buf, max);
	if (n < 0)
		return (int)n;
	ab->avro = buf;
	ab->avro_len = (size_t)n;

	u->abandon_start_ms = u->session_start_ms;
	u->abandoned_at_ms = ab->abandoned_at_ms;
	u->flags = (uint8_t)((u->flags | USER_RECOVERABLE) & ~USER_LEGACY_ID);
	pt->counters.abandonments++;
	return 0;
}

static int close_session(struct partition *pt, struct user *u)
{
	int r = 0;

	if (u->cart.n)
		r = emit_abandonment(pt, u);
	u->flags &= (uint8_t)~USER_SESSION_OPEN;
	u->last_reason = 0;
	pt->n_open_sessions--;
	return r;
}

static int checkout(struct partition *pt, struct user *u, etime_t t,
		    int64_t offset, const struct cw_event *ev)
{
	struct batch *b = pt->batch;
	struct batch_conversion *cv;
	struct cart_item *items = cart_items(&u->cart);
	int32_t item_count;
	int64_t value;
	int r;

	if (!u->cart.n) {
		pt->counters.empty_checkouts++;
		return 0;
	}
	cart_totals(&u->cart, &item_count, &value);
	cv = batch_add_conversion(b);
	if (!cv)
		return -ENOMEM;
	ids_conversion(u->id, u->id_len, offset, t, cv->conversion_id);
	cv->user_id = batch_strdup(b, u->id, u->id_len);
	cv->event_id = batch_strdup(b, ev->event_id.ptr ? ev->event_id.ptr : "",
				    ev->event_id.len);
	cv->checkout_at_ms = t;
	cv->item_count = item_count;
	cv->cart_value_cents = value;
	cv->currency = intern_str(pt->intern, u->currency);
	if (!cv->currency)
		cv->currency = "USD";
	if (!cv->user_id || !cv->event_id)
		return -ENOMEM;

	for (uint16_t i = 0; i < u->cart.n; i++) {
		r = minute_stats_add(
			pt->stats, t, items[i].product, STAT_PURCHASED_QTY,
			items[i].quantity, STAT_PURCHASED_VALUE,
			(int64_t)items[i].quantity * items[i].unit_price_cents);
		if (r < 0)
			return r;
	}

	if ((u->flags & USER_RECOVERABLE) &&
	    t - u->abandoned_at_ms <= pt->params->recovery_window_ms) {
		struct batch_recovery *rc = batch_add_recovery(b);
		char *id;
		if (!rc)
			return -ENOMEM;
		(u->flags & USER_LEGACY_ID ? ids_abandonment_v1
					   : ids_abandonment)(
			u->id, u->id_len, u->abandon_start_ms,
			rc->abandonment_id);
		rc->recovered_at_ms = t;
		rc->recovered_value_cents = value;
		id = (char *)batch_strdup(b, rc->abandonment_id,
					  BATCH_UUID_LEN);
		if (!id)
			return -ENOMEM;
		cv->recovered_abandonment_id = id;
		u->flags &= (uint8_t)~USER_RECOVERABLE;
		pt->counters.recovered++;
	}
	cart_clear(&u->cart);
	pt->n_open_carts--;
	pt->counters.conversions++;
	return 0;
}

int session_on_event(struct partition *pt, struct user *u,
		     const struct cw_event *ev, int64_t offset)
{
	const struct session_params *sp = pt->params;
	etime_t t = ev->event_time_ms;
	int err = 0, r;
	uint32_t product;

	/* A gap of T or more ends the session before the event is applied. */
	if ((u->flags & USER_SESSION_OPEN) &&
	    t - u->last_event_ms >= sp->session_timeout_ms &&
	    (r = close_session(pt, u)) < 0)
		return r;
	if (!(u->flags & USER_SESSION_OPEN)) {
		u->flags |= USER_SESSION_OPEN;
		u->session_start_ms = t;
		u->last_event_ms = t;
		u->last_reason = 0;
		pt->n_open_sessions++;
		pt->counters.sessions_opened++;
	} else {
		/* An out-of-order event inside the session. */
		if (t < u->session_start_ms)
			u->session_start_ms = t;
		if (t > u->last_event_ms)
			u->last_event_ms = t;
	}
	u->currency = intern_id(pt->intern, ev->currency, &err);
	if (err)
		return err;

	switch (ev->type) {
	case CW_EVENT_CART_ADD:
		product = intern_id(pt->intern, ev->product_id, &err);
		if (err)
			return err;
		if (!u->cart.n)
			pt->n_open_carts++;
		if ((r = cart_add(&u->cart, product, ev->quantity,
				  ev->unit_price_cents)) < 0)
			return r;
		if ((r = minute_stats_add(pt->stats, t, product, STAT_ADDED_QTY,
					  ev->quantity, -1, 0)) < 0)
			return r;
		break;
	case CW_EVENT_CART_REMOVE: {
		uint32_t reason = intern_id(pt->intern, ev->reason, &err);
		int32_t removed;
		if (err)
			return err;
		product = intern_id(pt->intern, ev->product_id, &err);
		if (err)
			return err;
		u->last_reason = reason;
		removed = cart_remove(&u->cart, product, ev->quantity, NULL);
		if (!removed) {
			pt->counters.remove_not_in_cart++;
			break;
		}
		if (!u->cart.n)
			pt->n_open_carts--;
		if ((r = minute_stats_add(pt->stats, t, product,
					  STAT_REMOVED_QTY, removed, -1, 0)) <
			    0 ||
		    (r = minute_stats_add_reason(pt->stats, t, product, reason,
						 removed)) < 0)
			return r;
		break;
	}
	case CW_EVENT_CHECKOUT_COMPLETE:
		if ((r = checkout(pt, u, t, offset, ev)) < 0)
			return r;
		break;
	}
	return 0;
}

etime_t session_next_deadline(const struct partition *pt, const struct user *u)
{
	const struct session_params *sp = pt->params;
	etime_t d = ETIME_NONE;

	if (u->flags & USER_SESSION_OPEN)
		return u->last_event_ms + sp->session_timeout_ms;
	if (u->cart.n)
		d = u->last_event_ms + sp->cart_ttl_ms;
	if (u->flags & USER_RECOVERABLE) {
		/* The window is inclusive: expire one ms after its end. */
		etime_t r = u->abandoned_at_ms + sp->recovery_window_ms + 1;
		if (d == ETIME_NONE || r < d)
			d = r;
	}
	return d;
}

int session_on_timer(struct partition *pt, struct user *u)
{
	const struct session_params *sp = pt->params;
	etime_t wm = pt->watermark_ms;
	int r;

	if ((u->flags & USER_SESSION_OPEN) &&
	    u->last_event_ms + sp->session_timeout_ms <= wm &&
	    (r = close_session(pt, u)) < 0)
		return r;
	if (!(u->flags & USER_SESSION_OPEN) && u->cart.n &&
	    u->last_event_ms + sp->cart_ttl_ms <= wm) {
		cart_clear(&u->cart);
		pt->n_open_carts--;
		pt->counters.carts_expired++;
	}
	if ((u->flags & USER_RECOVERABLE) &&
	    u->abandoned_at_ms + sp->recovery_window_ms + 1 <= wm)
		u->flags &= (uint8_t)~USER_RECOVERABLE;
	return 0;
}
