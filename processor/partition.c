/* SPDX-License-Identifier: Apache-2.0 */
/*
 * partition — per-partition container: users, timers, watermark, resume
 * state. See partition.h; the rules are in session.c, the ids in ids.c,
 * the per-minute aggregates in minute_stats.c.
 */
#include "partition.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cw_avro.h"
#include "cw_validate.h"
#include "hash64.h"
#include "minute_stats.h"
#include "session.h"

#define HEAP_NONE UINT32_MAX

/* ---- users: hash table -------------------------------------------------- */

static uint64_t user_hash(const char *id, size_t len)
{
	return hash64_mix(hash64_fnv1a(HASH64_FNV_OFFSET, id, len));
}

/* Rehash the table into @n slots (a power of two, larger than the number
 * of users). Returns 0 or -ENOMEM (the table is then unchanged). */
static int users_resize(struct partition *pt, uint32_t n)
{
	struct user **slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < pt->n_slots; i++) {
		struct user *u = pt->slots[i];
		if (!u)
			continue;
		uint32_t j = (uint32_t)user_hash(u->id, u->id_len) & (n - 1);
		while (slots[j])
			j = (j + 1) & (n - 1);
		slots[j] = u;
	}
	free(pt->slots);
	pt->slots = slots;
	pt->n_slots = n;
	return 0;
}

static int users_grow(struct partition *pt)
{
	return users_resize(pt, pt->n_slots ? pt->n_slots * 2 : 1024);
}

/* Largest number of users partition_reserve_users() sizes the table for
 * at once (2^24 users: 2^25 slots, 256 MiB of pointers); beyond, the
 * table grows as users come. */
#define USERS_RESERVE_MAX (UINT32_C(1) << 24)

int partition_reserve_users(struct partition *pt, uint64_t n)
{
	uint32_t slots = pt->n_slots ? pt->n_slots : 1024;

	if (n > USERS_RESERVE_MAX)
		n = USERS_RESERVE_MAX;
	/* The growth rule of users_get(): at most 70% full. */
	while (n * 10 > (uint64_t)slots * 7)
		slots *= 2;
	return slots > pt->n_slots ? users_resize(pt, slots) : 0;
}

/* Slot index of @id, or of the empty slot where it would go. */
static uint32_t users_slot(const struct partition *pt, const char *id,
			   size_t len)
{
	uint32_t j = (uint32_t)user_hash(id, len) & (pt->n_slots - 1);
	while (pt->slots[j]) {
		const struct user *u = pt->slots[j];
		if (u->id_len == len && memcmp(u->id, id, len) == 0)
			break;
		j = (j + 1) & (pt->n_slots - 1);
	}
	return j;
}

/* Remove slot @j, shifting later entries of the cluster back (linear
 * probing deletion without tombstones). */
static void users_remove_slot(struct partition *pt, uint32_t j)
{
	uint32_t mask = pt->n_slots - 1, i = j;
	pt->slots[j] = NULL;
	for (;;) {
		i = (i + 1) & mask;
		struct user *u = pt->slots[i];
		if (!u)
			break;
		uint32_t home = (uint32_t)user_hash(u->id, u->id_len) & mask;
		/* Move u into the hole if its home is not in (j, i]. */
		if ((i > j && (home <= j || home > i)) ||
		    (i < j && (home <= j && home > i))) {
			pt->slots[j] = u;
			pt->slots[i] = NULL;
			j = i;
		}
	}
	pt->n_users--;
}

static struct user *user_new(const char *id, size_t len)
{
	struct user *u = calloc(1, sizeof(*u) + len + 1);
	if (!u)
		return NULL;
	memcpy(u->id, id, len);
	u->id[len] = '\0';
	u->id_len = (uint16_t)len;
	u->heap_idx = HEAP_NONE;
	u->deadline_ms = ETIME_NONE;
	u->abandon_start_ms = ETIME_NONE;
	u->abandoned_at_ms = ETIME_NONE;
	return u;
}

static void user_free(struct user *u)
{
	cart_clear(&u->cart);
	free(u);
}

/* Find or create the user @id, whose slot users_slot() gave as @j on the
 * table as it is now (growing the table finds it again). NULL on ENOMEM.
 * A user retired earlier in this flush interval (USER_DEAD) comes back to
 * life with no state. */
static inline struct user *users_get_at(struct partition *pt, uint32_t j,
					const char *id, size_t len)
{
	struct user *u;

	if ((pt->n_users + 1) * 10 > pt->n_slots * 7) {
		if (users_grow(pt) < 0)
			return NULL;
		j = users_slot(pt, id, len);
	}
	u = pt->slots[j];
	if (u) {
		u->flags &= (uint8_t)~USER_DEAD;
		return u;
	}
	u = user_new(id, len);
	if (!u)
		return NULL;
	pt->slots[j] = u;
	pt->n_users++;
	return u;
}

/* The user @id (live, dead or absent: NULL) and its slot in *@j. The
 * table always has slots (partition_new() grows it). */
static struct user *users_find(const struct partition *pt, const char *id,
			       size_t len, uint32_t *j)
{
	*j = users_slot(pt, id, len);
	return pt->slots[*j];
}

/* Find or create the user @id (users_get_at(), growing the table first).
 * NULL on ENOMEM. */
static struct user *users_get(struct partition *pt, const char *id, size_t len)
{
	if ((pt->n_users + 1) * 10 > pt->n_slots * 7 && users_grow(pt) < 0)
		return NULL;
	return users_get_at(pt, users_slot(pt, id, len), id, len);
}
struct user *partition_find_user(struct partition *pt, const char *user_id)
{
	size_t len = strlen(user_id);
	struct user *u;
	if (!pt->n_slots)
		return NULL;
	u = pt->slots[users_slot(pt, user_id, len)];
	return u && !(u->flags & USER_DEAD) ? u : NULL;
}

/* ---- timers: binary min-heap on deadline_ms ------------------------------ */

static void heap_set(struct partition *pt, uint32_t i, struct user *u)
{
	pt->heap[i] = u;
	u->heap_idx = i;
}

static void heap_up(struct partition *pt, uint32_t i)
{
	struct user *u = pt->heap[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (pt->heap[p]->deadline_ms <= u->deadline_ms)
			break;
		heap_set(pt, i, pt->heap[p]);
		i = p;
	}
	heap_set(pt, i, u);
}

static void heap_down(struct partition *pt, uint32_t i)
{
	struct user *u = pt->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= pt->heap_len)
			break;
		if (c + 1 < pt->heap_len &&
		    pt->heap[c + 1]->deadline_ms < pt->heap[c]->deadline_ms)
			c++;
		if (pt->heap[c]->deadline_ms >= u->deadline_ms)
			break;
		heap_set(pt, i, pt->heap[c]);
		i = c;
	}
	heap_set(pt, i, u);
}

static void heap_remove(struct partition *pt, struct user *u)
{
	uint32_t i = u->heap_idx;
	struct user *last;

	if (i == HEAP_NONE)
		return;
	u->heap_idx = HEAP_NONE;
	last = pt->heap[--pt->heap_len];
	if (last == u)
		return;
	heap_set(pt, i, last);
	heap_up(pt, i);
	heap_down(pt, last->heap_idx);
}

/* Record that @u's resume state changed. Returns 0 or -ENOMEM. */
static inline int partition_mark_dirty(struct partition *pt, struct user *u)
{
	if (u->flags & USER_DIRTY)
		return 0;
	if (pt->n_dirty == pt->dirty_cap) {
		uint32_t n = pt->dirty_cap ? pt->dirty_cap * 2 : 1024;
		struct user **d = realloc(pt->dirty, n * sizeof(*d));
		if (!d)
			return -ENOMEM;
		pt->dirty = d;
		pt->dirty_cap = n;
	}
	pt->dirty[pt->n_dirty++] = u;
	u->flags |= USER_DIRTY;
	return 0;
}

/* (Re)schedule @u at its session_next_deadline(), or retire it (USER_DEAD,
 * removed from the heap, deleted at the next flush) when it has none.
 * Returns 0 or -ENOMEM. */
static int partition_reschedule(struct partition *pt, struct user *u)
{
	etime_t d = session_next_deadline(pt, u);

	if (d == ETIME_NONE) {
		heap_remove(pt, u);
		u->deadline_ms = ETIME_NONE;
		u->flags |= USER_DEAD;
		/* Retired users keep nothing, not even their event ids: the
		 * duplicate window is the user's life in the state. */
		memset(u->recent_ids, 0, sizeof(u->recent_ids));
		return partition_mark_dirty(pt, u);
	}
	u->deadline_ms = d;
	if (u->heap_idx == HEAP_NONE) {
		if (pt->heap_len == pt->heap_cap) {
			uint32_t n = pt->heap_cap ? pt->heap_cap * 2 : 1024;
			struct user **h = realloc(pt->heap, n * sizeof(*h));
			if (!h)
				return -ENOMEM;
			pt->heap = h;
			pt->heap_cap = n;
		}
		pt->heap[pt->heap_len] = u;
		u->heap_idx = pt->heap_len++;
		heap_up(pt, u->heap_idx);
	} else {
		heap_up(pt, u->heap_idx);
		heap_down(pt, u->heap_idx);
	}
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------
 */

struct partition *partition_new(int32_t id, const struct session_params *params,
				struct intern *intern)
{
	struct partition *pt = calloc(1, sizeof(*pt));
	if (!pt)
		return NULL;
	pt->id = id;
	pt->params = params;
	pt->intern = intern;
	pt->next_offset = -1;
	pt->watermark_ms = ETIME_NONE;
	pt->max_event_ms = ETIME_NONE;
	pt->stats = minute_stats_new();
	pt->batch = batch_new(id);
	if (!pt->stats || !pt->batch || users_grow(pt) < 0) {
		partition_destroy(pt);
		return NULL;
	}
	return pt;
}

void partition_destroy(struct partition *pt)
{
	if (!pt)
		return;
	for (uint32_t i = 0; i < pt->n_slots; i++)
		if (pt->slots[i])
			user_free(pt->slots[i]);
	free(pt->slots);
	free(pt->heap);
	free(pt->dirty);
	minute_stats_destroy(pt->stats);
	batch_destroy(pt->batch);
	batch_destroy(pt->sealed);
	batch_destroy(pt->spare);
	free(pt);
}

/* ---- processing ------------------------------------------------------------
 */

/* What @u's open session, if any, counts in the partition's carts at
 * risk (open_value). */
struct at_risk {
	bool open;
	bool cart; /* the session holds items */
	uint32_t currency;
	int64_t value; /* cart_value(), 0 without items */
};

static inline struct at_risk at_risk_of(const struct user *u)
{
	struct at_risk a = {.open = (u->flags & USER_SESSION_OPEN) != 0,
			    .cart = u->cart.n > 0,
			    .currency = u->currency};

	if (a.open && a.cart)
		a.value = cart_value(&u->cart);
	return a;
}

/* Move what a user counts in the carts at risk from @was (taken before a
 * change to its session) to @now (after it). A session that stays open in
 * the same currency is one update of its entry; nothing when its cart's
 * value is unchanged too. Since the cart keeps its value (cart_value()),
 * neither side walks the items. */
static inline void at_risk_move(struct partition *pt, const struct at_risk *was,
				const struct at_risk *now)
{
	if (was->open && now->open && was->currency == now->currency) {
		if (was->cart != now->cart || was->value != now->value)
			open_value_change(&pt->open_value, now->currency,
					  was->cart, was->value, now->cart,
					  now->value);
		return;
	}
	if (was->open)
		open_value_add(&pt->open_value, was->currency, -1, was->cart,
			       was->value);
	if (now->open)
		open_value_add(&pt->open_value, now->currency, 1, now->cart,
			       now->value);
}

/* Count @u's open session, if any, into (@sign 1) or out of (-1) the
 * partition's carts at risk. What is counted out is what was counted in:
 * callers bracket every change to a session (or use at_risk_move()). */
static void user_at_risk(struct partition *pt, const struct user *u, int sign)
{
	struct at_risk a = at_risk_of(u);

	if (a.open)
		open_value_add(&pt->open_value, a.currency, sign, a.cart,
			       a.value);
}

static int fire_timers(struct partition *pt)
{
	int r;
	while (pt->heap_len && pt->heap[0]->deadline_ms <= pt->watermark_ms) {
		struct user *u = pt->heap[0];
		etime_t before = u->deadline_ms;
		struct at_risk was = at_risk_of(u), now;
		if ((r = session_on_timer(pt, u)) < 0 ||
		    (r = partition_mark_dirty(pt, u)) < 0 ||
		    (r = partition_reschedule(pt, u)) < 0)
			return r;
		now = at_risk_of(u);
		at_risk_move(pt, &was, &now);
		/* session_on_timer always moves the deadline past the
		 * watermark or retires the user; guard against a loop. */
		if (u->heap_idx == 0 && u->deadline_ms == before)
			return -EINVAL;
	}
	return 0;
}

/* The 32-bit hash a user remembers of an event id; 0 for none. */
static uint32_t event_id_hash(struct cw_str id)
{
	uint64_t h;

	if (!id.ptr || !id.len)
		return 0;
	h = hash64_mix(hash64_fnv1a(HASH64_FNV_OFFSET, id.ptr, id.len));
	return (uint32_t)(h ^ (h >> 32)) | 1;
}

/* Remember @id_hash (event_id_hash() of an event's id) as @u's newest. */
static void user_note_event_id(struct user *u, uint32_t id_hash)
{
	if (!id_hash)
		return;
	memmove(&u->recent_ids[1], &u->recent_ids[0],
		(USER_RECENT_IDS - 1) * sizeof(u->recent_ids[0]));
	u->recent_ids[0] = id_hash;
}

etime_t partition_ahead_bound(const struct partition *pt, etime_t wall_ms)
{
	etime_t base = wall_ms;

	/* A partition restored with a poisoned watermark has no progress to
	 * trust until repaired. */
	if (pt->watermark_ahead)
		return base + pt->params->max_ahead_ms;
	if (pt->max_event_ms != ETIME_NONE && pt->max_event_ms > base)
		base = pt->max_event_ms;
	/* The idle watermark follows a simulation's clock (--time-scale)
	 * through pauses in its traffic. */
	if (pt->watermark_ms != ETIME_NONE && pt->watermark_ms > base)
		base = pt->watermark_ms;
	return base + pt->params->max_ahead_ms;
}

/* partition_check_event() for @u, the event's user as it is now (NULL:
 * none), given @id_hash, event_id_hash() of the event's id. */
static int check_event(const struct partition *pt, const struct user *u,
		       const struct cw_event *ev, uint32_t id_hash,
		       etime_t wall_ms, char *why, size_t why_size)
{
	const struct session_params *sp = pt->params;
	etime_t t = ev->event_time_ms,
		bound = partition_ahead_bound(pt, wall_ms);
	int r;

	if (t > bound) {
		snprintf(why, why_size,
			 "event_time %" PRId64 " is ahead of the bound %" PRId64
			 " (the latest of the wall clock %" PRId64
			 " and the partition's progress, plus "
			 "--max-clock-skew %" PRId64 " ms)",
			 t, bound, wall_ms, sp->max_ahead_ms);
		return -ERANGE;
	}
	if (pt->watermark_ms != ETIME_NONE) {
		etime_t keep = sp->cart_ttl_ms > sp->recovery_window_ms
				       ? sp->cart_ttl_ms
				       : sp->recovery_window_ms;
		if (t < pt->watermark_ms - keep) {
			snprintf(why, why_size,
				 "event_time %" PRId64
				 " is older than the watermark %" PRId64
				 " by more than the cart TTL and the recovery "
				 "window (%" PRId64 " ms)",
				 t, pt->watermark_ms, keep);
			return -ERANGE;
		}
	}
	if (sp->max_interned && intern_count(pt->intern) >= sp->max_interned &&
	    ((ev->product_id.ptr && !intern_find(pt->intern, ev->product_id)) ||
	     (ev->reason.ptr && !intern_find(pt->intern, ev->reason)) ||
	     !intern_find(pt->intern, ev->currency))) {
		snprintf(why, why_size,
			 "a new product id, reason or currency beyond "
			 "--max-products %" PRIu32,
			 sp->max_interned);
		return -ENOSPC;
	}
	if (!u)
		return 0; /* no state: an empty cart, nothing seen */
	for (int i = 0; id_hash && i < USER_RECENT_IDS; i++) {
		if (u->recent_ids[i] == id_hash) {
			snprintf(why, why_size,
				 "duplicate event_id: one of the user's last "
				 "%d events",
				 USER_RECENT_IDS);
			return -EALREADY;
		}
	}
	if (ev->type != CW_EVENT_CART_ADD)
		return 0;
	/* A cart_add must leave the cart within its bounds. */
	r = cart_check_add(&u->cart, intern_find(pt->intern, ev->product_id),
			   ev->quantity, ev->unit_price_cents,
			   sp->max_cart_items, CW_EVENT_MAX_QUANTITY);
	if (r == -E2BIG)
		snprintf(why, why_size,
			 "cart of user already holds %u products "
			 "(--max-cart-items %" PRIu32 ")",
			 (unsigned)u->cart.n, sp->max_cart_items);
	else if (r == -EOVERFLOW)
		snprintf(why, why_size,
			 "cart_add would take the product's line past %d "
			 "units or the cart's value past 64 bits",
			 CW_EVENT_MAX_QUANTITY);
	return r;
}

bool partition_watermark_ahead(const struct partition *pt, etime_t wall_ms)
{
	return pt->watermark_ms != ETIME_NONE &&
	       pt->watermark_ms > wall_ms + pt->params->max_ahead_ms;
}

int64_t partition_repair_watermark(struct partition *pt, etime_t wall_ms)
{
	etime_t bound = wall_ms + pt->params->max_ahead_ms;
	int64_t dropped = 0;

	pt->watermark_ms = wall_ms;
	pt->max_event_ms = wall_ms;
	for (uint32_t i = 0; i < pt->n_slots; i++) {
		struct user *u = pt->slots[i];
		if (!u || (u->flags & USER_DEAD) || u->last_event_ms <= bound)
			continue;
		/* Its state is gone; the next flush deletes it. */
		user_at_risk(pt, u, -1);
		if (u->flags & USER_SESSION_OPEN)
			pt->n_open_sessions--;
		if (u->cart.n)
			pt->n_open_carts--;
		cart_clear(&u->cart);
		u->flags &= (uint8_t) ~(USER_SESSION_OPEN | USER_RECOVERABLE);
		heap_remove(pt, u);
		u->deadline_ms = ETIME_NONE;
		u->flags |= USER_DEAD;
		memset(u->recent_ids, 0, sizeof(u->recent_ids));
		if (partition_mark_dirty(pt, u) < 0)
			return -ENOMEM;
		dropped++;
	}
	return dropped;
}

int partition_advance_watermark(struct partition *pt, etime_t watermark_ms)
{
	/* Fire even when the watermark stays: a late event can open a session
	 * that is already past it, and it must close now, not at the next
	 * advance, or results would depend on what comes next. */
	if (watermark_ms > pt->watermark_ms)
		pt->watermark_ms = watermark_ms;
	return fire_timers(pt);
}

/* partition_process() for @u, the event's user (found or created);
 * @id_hash is event_id_hash() of the event's id. */
static inline int process_event(struct partition *pt, struct user *u,
				const struct cw_event *ev, uint32_t id_hash,
				int64_t offset)
{
	int r;

	if (ev->event_time_ms < pt->watermark_ms)
		pt->counters.late_events++;
	if ((unsigned)ev->type < CW_EVENT_TYPE_COUNT)
		pt->counters.events[ev->type]++;
	struct at_risk was = at_risk_of(u), now;
	if ((r = session_on_event(pt, u, ev, offset)) < 0 ||
	    (r = partition_mark_dirty(pt, u)) < 0 ||
	    (r = partition_reschedule(pt, u)) < 0)
		return r;
	now = at_risk_of(u);
	at_risk_move(pt, &was, &now);
	user_note_event_id(u, id_hash);
	pt->next_offset = offset + 1;
	if (ev->event_time_ms > pt->max_event_ms)
		pt->max_event_ms = ev->event_time_ms;
	return partition_advance_watermark(
		pt, ev->event_time_ms - pt->params->allowed_lateness_ms);
}

int partition_check_event(const struct partition *pt, const struct cw_event *ev,
			  etime_t wall_ms, char *why, size_t why_size)
{
	uint32_t j;
	const struct user *u =
		users_find(pt, ev->user_id.ptr, ev->user_id.len, &j);

	return check_event(pt, u, ev, event_id_hash(ev->event_id), wall_ms, why,
			   why_size);
}

int partition_process(struct partition *pt, const struct cw_event *ev,
		      int64_t offset)
{
	struct user *u = users_get(pt, ev->user_id.ptr, ev->user_id.len);

	if (!u)
		return -ENOMEM;
	return process_event(pt, u, ev, event_id_hash(ev->event_id), offset);
}

int partition_check_and_process(struct partition *pt, const struct cw_event *ev,
				int64_t offset, etime_t wall_ms, char *why,
				size_t why_size, int *refused)
{
	uint32_t j;
	struct user *u = users_find(pt, ev->user_id.ptr, ev->user_id.len, &j);

	/* The id's hash, once for the duplicate check and the user's memory. */
	uint32_t id_hash = event_id_hash(ev->event_id);

	*refused = check_event(pt, u, ev, id_hash, wall_ms, why, why_size);
	if (*refused < 0)
		return 0;
	/* The slot found for the check serves the insert: one probe. */
	u = users_get_at(pt, j, ev->user_id.ptr, ev->user_id.len);
	if (!u)
		return -ENOMEM;
	return process_event(pt, u, ev, id_hash, offset);
}

void partition_note_message(struct partition *pt, walltime_t now)
{
	pt->at_eof = false;
	pt->last_activity_wall = now;
	pt->last_idle_tick_wall = now;
}

void partition_reset_idle(struct partition *pt, walltime_t now)
{
	pt->last_activity_wall = now;
	pt->last_idle_tick_wall = now;
}

void partition_note_eof(struct partition *pt, walltime_t now)
{
	if (!pt->at_eof) {
		pt->at_eof = true;
		pt->last_idle_tick_wall = now;
		if (!pt->last_activity_wall)
			pt->last_activity_wall = now;
	}
}

int partition_tick(struct partition *pt, walltime_t now)
{
	walltime_t elapsed;

	if (!pt->at_eof || pt->watermark_ms == ETIME_NONE ||
	    pt->watermark_ahead ||
	    now - pt->last_activity_wall < pt->params->idle_timeout_ms) {
		return 0;
	}
	/* Idle: event time advances with the wall clock from the moment the
	 * idle timeout was reached. */
	if (pt->last_idle_tick_wall <
	    pt->last_activity_wall + pt->params->idle_timeout_ms)
		pt->last_idle_tick_wall =
			pt->last_activity_wall + pt->params->idle_timeout_ms;
	elapsed = now - pt->last_idle_tick_wall;
	if (elapsed <= 0)
		return 0;
	pt->last_idle_tick_wall = now;
	return partition_advance_watermark(
		pt, pt->watermark_ms + (etime_t)((double)elapsed *
						 pt->params->time_scale));
}

/* ---- resume state ----------------------------------------------------------
 */

/* 2: time-ordered ids, USER_LEGACY_ID; 3: recent event ids. Versions 1
 * and 2 are still read (with no recent event ids). */
#define STATE_VERSION 3

/* Scratch space for encoding one user's state on the stack: enough for
 * carts of up to ~12 items; larger ones use a heap buffer. */
#define USER_STATE_STACK 512

static size_t user_state_max(const struct partition *pt, const struct user *u)
{
	size_t n = 2 + 4 * CW_AVRO_VARINT_MAX + 2 * CW_AVRO_VARINT_MAX +
		   intern_len(pt->intern, u->currency) +
		   intern_len(pt->intern, u->last_reason) + CW_AVRO_VARINT_MAX +
		   1 + 4 * USER_RECENT_IDS;
	const struct cart_item *items = cart_items_const(&u->cart);
	for (uint16_t i = 0; i < u->cart.n; i++)
		n += 3 * CW_AVRO_VARINT_MAX +
		     intern_len(pt->intern, items[i].product);
	return n;
}

/* Layout: version, flags (session open, recoverable), last_event,
 * session_start, abandon_start, abandoned_at (zig-zag varints), currency,
 * last_reason (length-prefixed, -1 for none), item count, then per item
 * product, quantity, unit price; then (version 3) the number of recent
 * event id hashes and each as 4 little-endian bytes, newest first. */
static uint8_t *user_state_encode(const struct partition *pt,
				  const struct user *u, uint8_t *p)
{
	const struct cart_item *items = cart_items_const(&u->cart);
	struct cw_str cur = intern_cw_str(pt->intern, u->currency),
		      rsn = intern_cw_str(pt->intern, u->last_reason);

	*p++ = STATE_VERSION;
	*p++ = u->flags & USER_STATE_FLAGS;
	p = cw_avro_write_long(p, u->last_event_ms);
	p = cw_avro_write_long(p, u->session_start_ms);
	p = cw_avro_write_long(p, u->abandon_start_ms);
	p = cw_avro_write_long(p, u->abandoned_at_ms);
	p = cw_avro_write_opt_string(p, cur);
	p = cw_avro_write_opt_string(p, rsn);
	p = cw_avro_write_long(p, u->cart.n);
	for (uint16_t i = 0; i < u->cart.n; i++) {
		struct cw_str pid = intern_cw_str(pt->intern, items[i].product);
		p = cw_avro_write_string(p, pid.ptr, pid.len);
		p = cw_avro_write_long(p, items[i].quantity);
		p = cw_avro_write_long(p, items[i].unit_price_cents);
	}
	uint8_t *n = p++;
	*n = 0;
	for (int i = 0; i < USER_RECENT_IDS && u->recent_ids[i]; i++, (*n)++)
		for (int k = 0; k < 4; k++)
			*p++ = (uint8_t)(u->recent_ids[i] >> (8 * k));
	return p;
}

/* Forget @u in the dirty list (restore only: a restored user without a
 * deadline was retired and marked dirty, then replaced or deleted by a
 * later chunk). Linear, and rare. */
static void dirty_forget(struct partition *pt, struct user *u)
{
	if (!(u->flags & USER_DIRTY))
		return;
	for (uint32_t i = pt->n_dirty; i-- > 0;) {
		if (pt->dirty[i] == u) {
			pt->dirty[i] = pt->dirty[--pt->n_dirty];
			break;
		}
	}
	u->flags &= (uint8_t)~USER_DIRTY;
}

/* Take @u's session and cart out of the partition's counters. */
static void user_uncount(struct partition *pt, const struct user *u)
{
	user_at_risk(pt, u, -1);
	if (u->flags & USER_SESSION_OPEN)
		pt->n_open_sessions--;
	if (u->cart.n)
		pt->n_open_carts--;
}

/* Remove @u from the table, the timer heap and the dirty list and free it;
 * its counters must already be out (user_uncount()). */
static void user_remove(struct partition *pt, struct user *u)
{
	heap_remove(pt, u);
	dirty_forget(pt, u);
	users_remove_slot(pt, users_slot(pt, u->id, u->id_len));
	user_free(u);
}

/* Note a pack record of @klen + @vlen bytes for the live state estimate.
 * The totals are halved now and then so the average follows the recent
 * users. */
static void state_note(struct partition *pt, size_t klen, size_t vlen)
{
	if (pt->state_enc_count >= (1u << 20)) {
		pt->state_enc_bytes /= 2;
		pt->state_enc_count /= 2;
	}
	pt->state_enc_bytes += 8 + klen + vlen;
	pt->state_enc_count++;
}

void partition_set_state_log(struct partition *pt, uint64_t bytes)
{
	pt->state_log_bytes = bytes;
}

int partition_restore_user(struct partition *pt, const char *user_id,
			   const uint8_t *state, size_t len)
{
	size_t id_len = strlen(user_id);
	struct cw_avro_reader r;
	struct cw_str cur, rsn;
	int64_t n, flags;
	struct user *u;
	int err = 0;

	if (!state) {
		u = pt->n_slots ? pt->slots[users_slot(pt, user_id, id_len)]
				: NULL;
		if (u) {
			user_uncount(pt, u);
			user_remove(pt, u);
		}
		return 0;
	}
	u = users_get(pt, user_id, id_len);
	if (!u)
		return -ENOMEM;
	/* A replacement: the old state no longer counts. */
	user_uncount(pt, u);
	u->flags &= (uint8_t)~USER_STATE_FLAGS;
	if (len < 2 || state[0] < 1 || state[0] > STATE_VERSION)
		goto bad;
	flags = state[1] & USER_STATE_FLAGS;
	/* Written before the time-ordered ids: the latest abandonment, if it
	 * can still be recovered, has an id of the first scheme. */
	if (state[0] == 1)
		flags = (flags & (USER_SESSION_OPEN | USER_RECOVERABLE)) |
			(flags & USER_RECOVERABLE ? USER_LEGACY_ID : 0);
	r = cw_avro_reader_init(state + 2, len - 2);
	if (cw_avro_read_long(&r, &u->last_event_ms) < 0 ||
	    cw_avro_read_long(&r, &u->session_start_ms) < 0 ||
	    cw_avro_read_long(&r, &u->abandon_start_ms) < 0 ||
	    cw_avro_read_long(&r, &u->abandoned_at_ms) < 0 ||
	    cw_avro_read_opt_string(&r, &cur, NULL) < 0 ||
	    cw_avro_read_opt_string(&r, &rsn, NULL) < 0 ||
	    cw_avro_read_long(&r, &n) < 0 || n < 0 || n > UINT16_MAX)
		goto bad;
	u->currency = intern_id(pt->intern, cur, &err);
	u->last_reason = intern_id(pt->intern, rsn, &err);
	cart_clear(&u->cart);
	for (int64_t i = 0; i < n; i++) {
		struct cw_str pid;
		int64_t q, price;
		if (cw_avro_read_string(&r, &pid) < 0 ||
		    cw_avro_read_long(&r, &q) < 0 ||
		    cw_avro_read_long(&r, &price) < 0 || q <= 0 ||
		    q > INT32_MAX)
			goto bad;
		uint32_t prod = intern_id(pt->intern, pid, &err);
		if (err || cart_add(&u->cart, prod, (int32_t)q, price) < 0) {
			err = -ENOMEM;
			break;
		}
	}
	if (err) {
		/* Out of memory: the partition is dropped anyway, but keep
		 * the counters true to the table. */
		cart_clear(&u->cart);
		user_remove(pt, u);
		return err;
	}
	memset(u->recent_ids, 0, sizeof(u->recent_ids));
	if (state[0] >= 3) {
		size_t k = r.p < r.end ? *r.p++ : SIZE_MAX;
		if (k > USER_RECENT_IDS || cw_avro_reader_left(&r) < 4 * k)
			goto bad;
		for (size_t i = 0; i < k; i++, r.p += 4)
			u->recent_ids[i] =
				(uint32_t)r.p[0] | (uint32_t)r.p[1] << 8 |
				(uint32_t)r.p[2] << 16 | (uint32_t)r.p[3] << 24;
	}
	if (cw_avro_reader_left(&r))
		goto bad;
	/* Keep USER_DIRTY (the user may be in the dirty list already). */
	u->flags = (uint8_t)((u->flags & USER_DIRTY) | flags);
	user_at_risk(pt, u, 1);
	if (u->flags & USER_SESSION_OPEN)
		pt->n_open_sessions++;
	if (u->cart.n)
		pt->n_open_carts++;
	state_note(pt, id_len, len);
	return partition_reschedule(pt, u);
bad:
	/* Leave no half-restored user behind (nor the one it replaced). */
	cart_clear(&u->cart);
	user_remove(pt, u);
	return -EBADMSG;
}

/* Append @u's resume state to @b's state chunk: encoded into a scratch
 * buffer (the stack unless the cart is large), then packed. */
static int pack_user(struct partition *pt, struct batch *b,
		     const struct user *u)
{
	uint8_t stackbuf[USER_STATE_STACK];
	size_t max = user_state_max(pt, u), len;
	uint8_t *buf = max <= sizeof(stackbuf) ? stackbuf : malloc(max);
	int r;

	if (!buf)
		return -ENOMEM;
	len = (size_t)(user_state_encode(pt, u, buf) - buf);
	r = pack_put(&b->state, u->id, u->id_len, buf, len);
	if (buf != stackbuf)
		free(buf);
	if (r == 0)
		state_note(pt, u->id_len, len);
	return r;
}

/* Size under which state chunks are never compacted. */
#define STATE_LOG_MIN (1u << 20)

/* Compaction of the state chunks. PostgreSQL holds, per partition, a full
 * snapshot and the delta chunks written after it; restore reads all of
 * them. Let L be the live state (n_users x the average pack record, an
 * estimate) and D the bytes of those chunks, the snapshot included
 * (state_log_bytes; restore sets it to what it read). When D plus this
 * flush's delta would exceed max(1 MB, 2L), this flush writes a full
 * snapshot (~L bytes) instead of the delta, and the sink deletes the
 * older chunks in the same transaction. So
 *   - restore reads at most max(1 MB, 2L) (L as estimated at the last
 *     flush): ~2x the live state, ~3x if the estimate is 50% high;
 *   - a snapshot (~L) comes after at least ~L bytes of deltas (D started
 *     at the previous snapshot's ~L and grew past 2L): the amortized
 *     write is at most ~2x the deltas, near 1x where the 1 MB floor
 *     dominates (a small partition snapshots once per 1 MB of deltas).
 * A partition left without users but with chunks writes an empty snapshot
 * at once, so that it leaves no rows behind. */
static bool state_needs_snapshot(const struct partition *pt, size_t delta)
{
	uint64_t live, limit;

	if (pt->n_users == 0)
		return pt->state_log_bytes > 0;
	live = pt->state_enc_count
		       ? (uint64_t)pt->n_users *
				 (pt->state_enc_bytes / pt->state_enc_count)
		       : 0;
	limit = 2 * live > STATE_LOG_MIN ? 2 * live : STATE_LOG_MIN;
	return pt->state_log_bytes + delta > limit;
}

int partition_prepare_flush(struct partition *pt)
{
	struct batch *b = pt->batch;
	int r;

	if (pt->sealed)
		return 0;
	if (!pt->spare && !(pt->spare = batch_new(pt->id)))
		return -ENOMEM;

	if ((r = minute_stats_drain(pt->stats, b, pt->intern)) < 0)
		return r;

	/* The delta: every changed user, a deletion for the dead ones. */
	for (uint32_t i = 0; i < pt->n_dirty; i++) {
		struct user *u = pt->dirty[i];
		u->flags &= (uint8_t)~USER_DIRTY;
		if (u->flags & USER_DEAD) {
			if (pack_put(&b->state, u->id, u->id_len, NULL, 0) < 0)
				return -ENOMEM;
			users_remove_slot(pt, users_slot(pt, u->id, u->id_len));
			user_free(u);
			continue;
		}
		if ((r = pack_user(pt, b, u)) < 0)
			return r;
	}
	pt->n_dirty = 0;

	if (state_needs_snapshot(pt, b->state.len)) {
		pack_reset(&b->state, SIZE_MAX);
		for (uint32_t i = 0; i < pt->n_slots; i++) {
			const struct user *u = pt->slots[i];
			if (u && !(u->flags & USER_DEAD) &&
			    (r = pack_user(pt, b, u)) < 0)
				return r;
		}
		b->state_full = true;
		pt->state_log_bytes = b->state.len;
	} else {
		pt->state_log_bytes += b->state.len;
	}

	b->next_offset = pt->next_offset;
	b->watermark_ms = pt->watermark_ms;
	b->generation = pt->generation;
	pt->sealed = b;
	pt->batch = pt->spare;
	pt->spare = NULL;
	return 0;
}

void partition_flush_done(struct partition *pt)
{
	if (!pt->sealed)
		return;
	batch_reset(pt->sealed);
	pt->spare = pt->sealed;
	pt->sealed = NULL;
}

size_t partition_memory(const struct partition *pt)
{
	size_t n = (size_t)pt->n_slots * sizeof(*pt->slots) +
		   (size_t)pt->heap_cap * sizeof(*pt->heap) +
		   (size_t)pt->dirty_cap * sizeof(*pt->dirty);
	for (uint32_t i = 0; i < pt->n_slots; i++) {
		const struct user *u = pt->slots[i];
		if (u)
			n += sizeof(*u) + u->id_len + 1 +
			     cart_heap_bytes(&u->cart);
	}
	return n;
}
