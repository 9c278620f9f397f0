/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session — the cart and session rules of cartwatch, applied to one user:
 *
 *  - cart_add adds units and updates the price; cart_remove subtracts
 *    (never below 0) and removing what is not in the cart changes nothing
 *    (counted); checkout_complete converts the whole cart and empties it
 *    (an empty checkout is counted, no conversion).
 *  - A session is the user's events with event-time gaps < T. It ends when
 *    the watermark reaches last_event + T (timer) or when the next event
 *    comes with a gap >= T (closed first, then the event opens a new one).
 *    A session that ends with a non-empty cart is an abandonment.
 *  - Carts persist across sessions; a checkout within the recovery window
 *    after the latest abandonment is a recovered conversion (once per
 *    abandonment). Carts untouched for cart_ttl are dropped (counted).
 *
 * Everything here depends only on event times and the watermark, never on
 * the wall clock, so a replay gives identical results.
 * Internal to the processor; single-threaded. Calls only go down: the
 * partition calls in, this module uses ids.c, minute_stats.c and the
 * batch, never the partition's functions.
 */
#pragma once

#include "partition.h"

/* Apply @ev (read at @offset) to user @u of @pt: its cart, its session,
 * the outputs in pt->batch and the aggregates in pt->stats. The caller
 * (partition.c) then marks @u dirty and reschedules it. Returns 0 or
 * -ENOMEM. */
int session_on_event(struct partition *pt, struct user *u,
		     const struct cw_event *ev, int64_t offset);

/* @u's deadline is <= the watermark: close its session, expire its cart
 * or its recovery window, whatever is due. The caller (partition.c) then
 * marks @u dirty and reschedules or retires it (session_next_deadline()).
 * Returns 0 or -ENOMEM. */
int session_on_timer(struct partition *pt, struct user *u);

/* The next event time at which @u needs a timer, or ETIME_NONE when it
 * holds no state worth keeping. Can't fail. */
etime_t session_next_deadline(const struct partition *pt, const struct user *u);
