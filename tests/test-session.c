/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-session — table-driven tests of the session state machine
 * (processor/session.c through processor/partition.c): session gaps at
 * and around T, late events, removes beyond the quantity, recovered and
 * unrecovered checkouts, cart TTL, empty checkouts, per-minute aggregates,
 * resume state that restores to the same results (replacements and
 * deletions with exact counters, compaction into full snapshots), and the
 * pack format the state chunks use.
 */
#include <errno.h>
#include <stdint.h>

#include "cw_avro.h"
#include "harness.h"
#include "cw_validate.h"
#include "partition.h"

#define MIN  (60 * 1000LL)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define T    (30 * MIN)
#define FAR  (365 * DAY)

/* A step: 'A' add, 'R' remove, 'C' checkout, 'W' advance the watermark. */
struct step {
	char op;
	const char *user;
	int64_t t;
	const char *product;
	int32_t qty;
	int64_t price;
	const char *reason;
};

struct expect_ab {
	const char *user;
	int64_t session_start, last_activity;
	int32_t item_count;
	int64_t value;
	const char *reason; /* NULL: none */
	size_t n_items;
};

struct expect_cv {
	const char *user;
	int64_t checkout_at;
	int32_t item_count;
	int64_t value;
	bool recovered;
};

struct scase {
	const char *name;
	int64_t ttl, window; /* 0: defaults (7 d) */
	struct step steps[16];
	struct expect_ab ab[4];
	size_t n_ab;
	struct expect_cv cv[4];
	size_t n_cv;
	uint64_t late, not_in_cart, empty_checkouts, expired, recovered;
};

static const struct scase cases[] = {
	{.name = "gap exactly T closes the session first",
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'A', "u", T, "P2", 1, 50, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 /* The cart persists: the second session abandons both items. */
	 .ab = {{"u", 0, 0, 1, 100, NULL, 1}, {"u", T, T, 2, 150, NULL, 2}},
	 .n_ab = 2,
	 .expired = 1},
	{.name = "gap just under T stays in the session",
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'A', "u", T - 1, "P1", 2, 90, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 /* The later price wins for the whole quantity. */
	 .ab = {{"u", 0, T - 1, 3, 270, NULL, 1}},
	 .n_ab = 1,
	 .expired = 1},
	{.name = "watermark exactly at last+T closes, one ms before does not",
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'W', NULL, T - 1, NULL, 0, 0, NULL},
		   {'A', "u", T - 1, "P1", 1, 100, NULL},
		   {'W', NULL, 2 * T - 2, NULL, 0, 0, NULL},
		   {'W', NULL, 2 * T - 1, NULL, 0, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 .ab = {{"u", 0, T - 1, 2, 200, NULL, 1}},
	 .n_ab = 1,
	 .expired = 1},
	{.name = "late event opens a new session, never reopens a closed one",
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'A', "v", T + 10 * MIN, "P9", 1, 1, NULL},
		   /* watermark is now T + 10 min - 5 s: u's session closed */
		   {'A', "u", 1000, "P2", 1, 10, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 /* The late event's session is already past the watermark: it
	  * closes at once, before v's. */
	 .ab = {{"u", 0, 0, 1, 100, NULL, 1},
		{"u", 1000, 1000, 2, 110, NULL, 2},
		{"v", T + 10 * MIN, T + 10 * MIN, 1, 1, NULL, 1}},
	 .n_ab = 3,
	 .late = 1,
	 .expired = 2},
	{.name = "removes beyond quantity and of absent products",
	 .steps = {{'A', "u", 0, "P1", 2, 100, NULL},
		   {'A', "u", 1000, "P2", 1, 30, NULL},
		   {'R', "u", 2000, "P1", 5, 0, "Too expensive"},
		   {'R', "u", 3000, "P3", 1, 0, "Just browsing"},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 /* The last cart_remove's reason, even though it removed nothing. */
	 .ab = {{"u", 0, 3000, 1, 30, "Just browsing", 1}},
	 .n_ab = 1,
	 .not_in_cart = 1,
	 .expired = 1},
	{.name = "empty cart at session end is no abandonment",
	 .steps = {{'A', "u", 0, "P1", 2, 100, NULL},
		   {'R', "u", 1000, "P1", 2, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}}},
	{.name = "checkout after abandonment is recovered, once",
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'W', NULL, T, NULL, 0, 0, NULL},
		   {'A', "u", 2 * HOUR, "P2", 1, 20, NULL},
		   {'C', "u", 2 * HOUR + 1000, NULL, 0, 0, NULL},
		   {'A', "u", 2 * HOUR + 2000, "P2", 1, 20, NULL},
		   {'C', "u", 2 * HOUR + 3000, NULL, 0, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 .ab = {{"u", 0, 0, 1, 100, NULL, 1}},
	 .n_ab = 1,
	 .cv = {{"u", 2 * HOUR + 1000, 2, 120, true},
		{"u", 2 * HOUR + 3000, 1, 20, false}},
	 .n_cv = 2,
	 .recovered = 1},
	{.name = "checkout at the end of the recovery window is recovered",
	 .ttl = 30 * DAY,
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'W', NULL, T, NULL, 0, 0, NULL},
		   {'C', "u", T + 7 * DAY, NULL, 0, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 .ab = {{"u", 0, 0, 1, 100, NULL, 1}},
	 .n_ab = 1,
	 .cv = {{"u", T + 7 * DAY, 1, 100, true}},
	 .n_cv = 1,
	 .recovered = 1},
	{.name = "checkout outside the recovery window is not recovered",
	 .ttl = 30 * DAY,
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'W', NULL, T, NULL, 0, 0, NULL},
		   {'C', "u", T + 7 * DAY + 1, NULL, 0, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 .ab = {{"u", 0, 0, 1, 100, NULL, 1}},
	 .n_ab = 1,
	 .cv = {{"u", T + 7 * DAY + 1, 1, 100, false}},
	 .n_cv = 1},
	{.name = "cart TTL drops the cart; a later checkout is empty",
	 .steps = {{'A', "u", 0, "P1", 1, 100, NULL},
		   {'W', NULL, 7 * DAY, NULL, 0, 0, NULL},
		   {'C', "u", 7 * DAY + 1, NULL, 0, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 .ab = {{"u", 0, 0, 1, 100, NULL, 1}},
	 .n_ab = 1,
	 .expired = 1,
	 .empty_checkouts = 1},
	{.name = "empty checkout is counted, no conversion",
	 .steps = {{'C', "u", 0, NULL, 0, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 .empty_checkouts = 1},
	{.name = "checkout within the session converts, no abandonment",
	 .steps = {{'A', "u", 0, "P1", 3, 100, NULL},
		   {'A', "u", 1000, "P2", 1, 5, NULL},
		   {'C', "u", 2000, NULL, 0, 0, NULL},
		   {'W', NULL, FAR, NULL, 0, 0, NULL}},
	 .cv = {{"u", 2000, 4, 305, false}},
	 .n_cv = 1},
};

static const struct session_params default_params = {
	.session_timeout_ms = T,
	.allowed_lateness_ms = 5000,
	.cart_ttl_ms = 7 * DAY,
	.recovery_window_ms = 7 * DAY,
	.idle_timeout_ms = 5000,
	.time_scale = 1,
};

static int64_t offset_counter;

static void apply(struct partition *pt, const struct step *s)
{
	struct cw_event ev;
	char id[37];

	if (s->op == 'W') {
		CHECK_INT_EQ(partition_advance_watermark(pt, s->t), 0);
		return;
	}
	cw_event_init(&ev);
	snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012lld",
		 (long long)offset_counter);
	ev.event_id = cw_str_c(id);
	ev.type = s->op == 'A'	 ? CW_EVENT_CART_ADD
		  : s->op == 'R' ? CW_EVENT_CART_REMOVE
				 : CW_EVENT_CHECKOUT_COMPLETE;
	ev.event_time_ms = s->t;
	ev.user_id = cw_str_c(s->user);
	ev.product_id = cw_str_c(s->product);
	ev.quantity = s->qty;
	ev.unit_price_cents = s->price;
	ev.reason = cw_str_c(s->reason);
	CHECK_INT_EQ(partition_process(pt, &ev, offset_counter++), 0);
}

static void check_case(const struct scase *c, struct partition *pt)
{
	struct batch *b = pt->batch;

	fprintf(stderr, "  case: %s\n", c->name);
	CHECK_INT_EQ(b->abandonments.n, c->n_ab);
	for (size_t i = 0; i < c->n_ab && i < b->abandonments.n; i++) {
		const struct batch_abandonment *a = &b->abandonments.v[i];
		const struct expect_ab *e = &c->ab[i];
		char id[37];
		CHECK_STR_EQ(a->user_id, e->user);
		CHECK_INT_EQ(a->session_start_ms, e->session_start);
		CHECK_INT_EQ(a->last_activity_ms, e->last_activity);
		CHECK_INT_EQ(a->abandoned_at_ms, e->last_activity + T);
		CHECK_INT_EQ(a->item_count, e->item_count);
		CHECK_INT_EQ(a->cart_value_cents, e->value);
		CHECK_INT_EQ(a->n_items, e->n_items);
		CHECK_STR_EQ(a->currency, "USD");
		if (e->reason)
			CHECK_STR_EQ(a->last_remove_reason, e->reason);
		else
			CHECK(a->last_remove_reason == NULL);
		partition_abandonment_id(e->user, strlen(e->user),
					 e->session_start, id);
		CHECK_STR_EQ(a->abandonment_id, id);
		CHECK(a->avro_len > 10);
	}
	CHECK_INT_EQ(b->conversions.n, c->n_cv);
	for (size_t i = 0; i < c->n_cv && i < b->conversions.n; i++) {
		const struct batch_conversion *v = &b->conversions.v[i];
		const struct expect_cv *e = &c->cv[i];
		CHECK_STR_EQ(v->user_id, e->user);
		CHECK_INT_EQ(v->checkout_at_ms, e->checkout_at);
		CHECK_INT_EQ(v->item_count, e->item_count);
		CHECK_INT_EQ(v->cart_value_cents, e->value);
		CHECK_INT_EQ(v->recovered_abandonment_id != NULL, e->recovered);
		if (e->recovered && v->recovered_abandonment_id)
			CHECK_STR_EQ(v->recovered_abandonment_id,
				     b->abandonments.v[0].abandonment_id);
	}
	CHECK_INT_EQ(b->recoveries.n, c->recovered);
	CHECK_INT_EQ(pt->counters.late_events, c->late);
	CHECK_INT_EQ(pt->counters.remove_not_in_cart, c->not_in_cart);
	CHECK_INT_EQ(pt->counters.empty_checkouts, c->empty_checkouts);
	CHECK_INT_EQ(pt->counters.carts_expired, c->expired);
	CHECK_INT_EQ(pt->counters.recovered, c->recovered);
	/* After the far watermark nobody holds state any more. */
	CHECK_INT_EQ(pt->n_open_sessions, 0);
	CHECK_INT_EQ(pt->n_open_carts, 0);
	CHECK_INT_EQ(pt->heap_len, 0);
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct scase *c = &cases[i];
		struct session_params sp = default_params;
		struct intern *in = intern_new();
		struct partition *pt;

		if (c->ttl)
			sp.cart_ttl_ms = c->ttl;
		if (c->window)
			sp.recovery_window_ms = c->window;
		pt = partition_new(0, &sp, in);
		REQUIRE(pt);
		for (size_t s = 0; s < 16 && c->steps[s].op; s++)
			apply(pt, &c->steps[s]);
		check_case(c, pt);
		partition_destroy(pt);
		intern_destroy(in);
	}
}

/* Per-minute aggregates: adds at the add minute, removes counting units
 * actually removed, purchases at the checkout minute, abandonments at
 * abandoned_at's minute, and reasons per product. */
static void test_aggregates(void)
{
	static const struct step steps[] = {
		{'A', "u", 10 * 1000, "P1", 3, 100, NULL},
		{'R', "u", 70 * 1000, "P1", 5, 0, "Card declined"},
		{'A', "u", 80 * 1000, "P1", 2, 100, NULL},
		{'A', "w", 90 * 1000, "P1", 1, 100, NULL},
		{'C', "w", 130 * 1000, NULL, 0, 0, NULL},
		{'W', NULL, 2 * HOUR, NULL, 0, 0, NULL},
	};
	struct intern *in = intern_new();
	struct partition *pt = partition_new(3, &default_params, in);
	int64_t added = 0, removed = 0, purchased = 0, abandoned = 0,
		abandoned_value = 0, reasons = 0;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		apply(pt, &steps[i]);
	REQUIRE(partition_prepare_flush(pt) == 0);
	REQUIRE(pt->sealed);
	for (size_t i = 0; i < pt->sealed->product_stats.n; i++) {
		const struct batch_product_stat *s =
			&pt->sealed->product_stats.v[i];
		CHECK_STR_EQ(s->product_id, "P1");
		CHECK_INT_EQ(s->bucket_ms % MIN, 0);
		if (s->added_qty)
			CHECK(s->bucket_ms == 0 || s->bucket_ms == MIN);
		if (s->purchased_qty)
			CHECK_INT_EQ(s->bucket_ms, 2 * MIN);
		if (s->abandoned_qty)
			CHECK_INT_EQ(s->bucket_ms, (80 * 1000 + T) / MIN * MIN);
		added += s->added_qty;
		removed += s->removed_qty;
		purchased += s->purchased_qty;
		abandoned += s->abandoned_qty;
		abandoned_value += s->abandoned_value_cents;
	}
	CHECK_INT_EQ(added, 6);
	CHECK_INT_EQ(removed, 3);
	CHECK_INT_EQ(purchased, 1);
	CHECK_INT_EQ(abandoned, 2);
	CHECK_INT_EQ(abandoned_value, 200);
	for (size_t i = 0; i < pt->sealed->reason_stats.n; i++) {
		const struct batch_reason_stat *r =
			&pt->sealed->reason_stats.v[i];
		CHECK_STR_EQ(r->reason, "Card declined");
		CHECK_INT_EQ(r->bucket_ms, MIN);
		reasons += r->removed_qty;
	}
	CHECK_INT_EQ(reasons, 3);
	CHECK_INT_EQ(pt->sealed->next_offset, offset_counter);
	/* Events after the seal go to a new batch, never the sealed one. */
	static const struct step more = {'A', "x", 3 * HOUR, "P1", 1, 1, NULL};
	apply(pt, &more);
	CHECK_INT_EQ(pt->sealed->next_offset, offset_counter - 1);
	CHECK_INT_EQ(partition_prepare_flush(pt), 0); /* still pending */
	CHECK_INT_EQ(pt->sealed->next_offset, offset_counter - 1);
	partition_flush_done(pt);
	CHECK(pt->sealed == NULL);
	CHECK_INT_EQ(partition_prepare_flush(pt), 0);
	CHECK_INT_EQ(pt->sealed->next_offset, offset_counter);
	CHECK_INT_EQ(pt->sealed->product_stats.n, 1);
	partition_destroy(pt);
	intern_destroy(in);
}

/* Restore every record of a state chunk into @pt, as the daemon does with
 * the chunks it loads. Returns the records restored. */
static int restore_chunk(struct partition *pt, const struct pack_buf *chunk)
{
	struct pack_reader rd = pack_reader_init(chunk->p, chunk->len);
	const uint8_t *key, *val;
	size_t klen, vlen;
	char user[256];
	int r, n = 0;

	while ((r = pack_next(&rd, &key, &klen, &val, &vlen)) == 1) {
		REQUIRE(klen < sizeof(user));
		memcpy(user, key, klen);
		user[klen] = '\0';
		CHECK_INT_EQ(partition_restore_user(pt, user, val, vlen), 0);
		n++;
	}
	CHECK_INT_EQ(r, 0);
	return n;
}

/* Resume state: stop half-way, restore a fresh partition from the user
 * states the flush wrote, continue: the outputs equal one uninterrupted
 * run. This is what makes restarts exactly-once. */
static void test_restore(void)
{
	static const struct step steps[] = {
		{'A', "a", 0, "P1", 2, 100, NULL},
		{'A', "b", 1000, "P2", 1, 7, NULL},
		{'R', "a", 2000, "P1", 1, 0, "Delivery too slow"},
		{'W', NULL, T + 1000, NULL, 0, 0, NULL}, /* b abandons */
		{'A', "c", T + 2000, "P3", 1, 1, NULL},
		/* --- split here --- */
		/* a's gap >= T: a abandons, then checks out, recovered. */
		{'C', "a", T + HOUR, NULL, 0, 0, NULL},
		/* late: b's closed session is not reopened */
		{'A', "b", T + 1500, "P2", 1, 7, NULL},
		{'W', NULL, FAR, NULL, 0, 0, NULL},
	};
	const size_t split = 5, n = sizeof(steps) / sizeof(steps[0]);
	struct intern *in = intern_new();
	struct partition *whole = partition_new(0, &default_params, in);
	struct partition *first = partition_new(0, &default_params, in);
	struct partition *second = partition_new(0, &default_params, in);

	offset_counter = 0;
	for (size_t i = 0; i < n; i++)
		apply(whole, &steps[i]);
	offset_counter = 0;
	for (size_t i = 0; i < split; i++)
		apply(first, &steps[i]);
	REQUIRE(partition_prepare_flush(first) == 0);
	struct batch *fb = first->sealed;
	CHECK(!fb->state_full);
	CHECK_INT_EQ(fb->state.records, 3);
	/* Sized ahead as the daemon does (70% full at most, never shrunk):
	 * the restored users are found in the larger table. */
	CHECK_INT_EQ(partition_reserve_users(second, 3000), 0);
	CHECK_INT_EQ(second->n_slots, 8192);
	CHECK_INT_EQ(partition_reserve_users(second, 3), 0);
	CHECK_INT_EQ(second->n_slots, 8192);
	CHECK_INT_EQ(restore_chunk(second, &fb->state), 3);
	CHECK_INT_EQ(partition_advance_watermark(second, fb->watermark_ms), 0);
	second->next_offset = fb->next_offset;
	for (size_t i = split; i < n; i++)
		apply(second, &steps[i]);

	/* Abandonments: first's + second's == whole's, field by field. */
	size_t na = fb->abandonments.n + second->batch->abandonments.n;
	CHECK_INT_EQ(na, whole->batch->abandonments.n);
	CHECK_INT_EQ(na, 4);
	for (size_t i = 0; i < na && i < whole->batch->abandonments.n; i++) {
		const struct batch_abandonment *w =
			&whole->batch->abandonments.v[i];
		const struct batch_abandonment *p =
			i < fb->abandonments.n
				? &fb->abandonments.v[i]
				: &second->batch->abandonments
					   .v[i - fb->abandonments.n];
		CHECK_STR_EQ(p->abandonment_id, w->abandonment_id);
		CHECK_INT_EQ(p->cart_value_cents, w->cart_value_cents);
		CHECK_INT_EQ(p->last_activity_ms, w->last_activity_ms);
		CHECK_INT_EQ(p->avro_len, w->avro_len);
		CHECK(memcmp(p->avro, w->avro, w->avro_len) == 0);
	}
	CHECK_INT_EQ(second->batch->conversions.n, 1);
	CHECK_INT_EQ(whole->batch->conversions.n, 1);
	CHECK_STR_EQ(second->batch->conversions.v[0].conversion_id,
		     whole->batch->conversions.v[0].conversion_id);
	CHECK(second->batch->conversions.v[0].recovered_abandonment_id != NULL);
	CHECK_INT_EQ(second->counters.recovered, 1);

	/* A corrupt blob is refused and leaves no user behind. */
	static const uint8_t junk[] = {1, 0, 0xff};
	CHECK_INT_EQ(partition_restore_user(second, "zz", junk, sizeof(junk)),
		     -EBADMSG);
	CHECK(partition_find_user(second, "zz") == NULL);

	partition_destroy(whole);
	partition_destroy(first);
	partition_destroy(second);
	intern_destroy(in);
}

/* Idle partitions: the watermark moves with the wall clock only after the
 * idle timeout at the end of the partition, scaled by time_scale. */
static void test_idle_watermark(void)
{
	struct session_params sp = default_params;
	struct intern *in = intern_new();
	struct partition *pt;
	static const struct step add = {'A', "u", 1000000, "P1", 1, 100, NULL};

	sp.time_scale = 60;
	pt = partition_new(0, &sp, in);
	apply(pt, &add);
	partition_note_message(pt, 10000);
	CHECK_INT_EQ(pt->watermark_ms, 1000000 - 5000);
	partition_note_eof(pt, 10001);
	CHECK_INT_EQ(partition_tick(pt, 14000), 0); /* not idle long enough */
	CHECK_INT_EQ(pt->watermark_ms, 1000000 - 5000);
	CHECK_INT_EQ(partition_tick(pt, 15000), 0); /* idle reached */
	CHECK_INT_EQ(pt->watermark_ms, 1000000 - 5000);
	CHECK_INT_EQ(partition_tick(pt, 16000), 0); /* +1 s wall = +60 s */
	CHECK_INT_EQ(pt->watermark_ms, 1000000 - 5000 + 60000);
	CHECK_INT_EQ(pt->batch->abandonments.n, 0);
	/* 30 more wall seconds at 60x: the session closes. */
	CHECK_INT_EQ(partition_tick(pt, 46000), 0);
	CHECK_INT_EQ(pt->batch->abandonments.n, 1);
	/* A message resets idleness. */
	partition_note_message(pt, 47000);
	int64_t wm = pt->watermark_ms;
	CHECK_INT_EQ(partition_tick(pt, 50000), 0);
	CHECK_INT_EQ(pt->watermark_ms, wm);
	partition_destroy(pt);
	intern_destroy(in);
}

/* The state blob of @user after @steps (a fresh partition, one flush):
 * a malloc'd copy, its length in *len. */
static uint8_t *state_after(const struct step *steps, size_t n,
			    const char *user, size_t *len)
{
	struct intern *in = intern_new();
	struct partition *pt = partition_new(0, &default_params, in);
	struct pack_reader rd;
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint8_t *out = NULL;

	offset_counter = 0;
	for (size_t i = 0; i < n; i++)
		apply(pt, &steps[i]);
	REQUIRE(partition_prepare_flush(pt) == 0);
	rd = pack_reader_init(pt->sealed->state.p, pt->sealed->state.len);
	while (pack_next(&rd, &key, &klen, &val, &vlen) == 1) {
		if (klen == strlen(user) && memcmp(key, user, klen) == 0 &&
		    val) {
			out = malloc(vlen);
			REQUIRE(out);
			memcpy(out, val, vlen);
			*len = vlen;
		}
	}
	REQUIRE(out);
	partition_destroy(pt);
	intern_destroy(in);
	return out;
}

enum rstate { R_END, R_OPEN_CART, R_CLOSED_CART, R_OPEN_EMPTY, R_DEL, R_BAD };

struct rcase {
	const char *name;
	enum rstate ops[6]; /* restores of user "u", in order */
	int last_result;    /* of the last op */
	uint32_t users, sessions, carts, heap;
};

/* Restoring chunks in order: a later record of a user replaces the
 * earlier one, a deletion removes it; the open session and cart counters
 * and the timer heap stay exact. User "v" (open session and cart) is
 * restored first in every case and must survive untouched. */
static const struct rcase rcases[] = {
	{"new", {R_OPEN_CART}, 0, 2, 2, 2, 2},
	{"open cart replaced by closed cart",
	 {R_OPEN_CART, R_CLOSED_CART},
	 0,
	 2,
	 1,
	 2,
	 2},
	{"closed cart replaced by open empty",
	 {R_CLOSED_CART, R_OPEN_EMPTY},
	 0,
	 2,
	 2,
	 1,
	 2},
	{"replaced by the same", {R_OPEN_CART, R_OPEN_CART}, 0, 2, 2, 2, 2},
	{"deleted", {R_OPEN_CART, R_DEL}, 0, 1, 1, 1, 1},
	{"closed cart deleted", {R_CLOSED_CART, R_DEL}, 0, 1, 1, 1, 1},
	{"unknown user deleted", {R_DEL}, 0, 1, 1, 1, 1},
	{"deleted twice", {R_OPEN_EMPTY, R_DEL, R_DEL}, 0, 1, 1, 1, 1},
	{"deleted then back",
	 {R_OPEN_CART, R_DEL, R_CLOSED_CART},
	 0,
	 2,
	 1,
	 2,
	 2},
	{"bad replacement leaves no user",
	 {R_OPEN_CART, R_BAD},
	 -EBADMSG,
	 1,
	 1,
	 1,
	 1},
};

static void test_restore_replace_delete(void)
{
	static const struct step open_cart[] = {
		{'A', "u", 0, "P1", 2, 100, NULL},
	};
	static const struct step closed_cart[] = {
		{'A', "u", 0, "P1", 1, 100, NULL},
		{'W', NULL, T + 1000, NULL, 0, 0, NULL},
	};
	static const struct step open_empty[] = {
		{'A', "u", 0, "P1", 1, 100, NULL},
		{'R', "u", 1000, "P1", 1, 0, NULL},
	};
	static const uint8_t bad[] = {1, 0, 0xff};
	size_t len[3];
	uint8_t *blob[3];

	blob[0] = state_after(open_cart, 1, "u", &len[0]);
	blob[1] = state_after(closed_cart, 2, "u", &len[1]);
	blob[2] = state_after(open_empty, 2, "u", &len[2]);
	for (size_t c = 0; c < sizeof(rcases) / sizeof(rcases[0]); c++) {
		const struct rcase *rc = &rcases[c];
		struct intern *in = intern_new();
		struct partition *pt = partition_new(0, &default_params, in);
		int r = 0;

		fprintf(stderr, "  case: %s\n", rc->name);
		REQUIRE(pt);
		CHECK_INT_EQ(partition_restore_user(pt, "v", blob[0], len[0]),
			     0);
		for (size_t i = 0; i < 6 && rc->ops[i] != R_END; i++) {
			enum rstate op = rc->ops[i];
			r = op == R_DEL
				    ? partition_restore_user(pt, "u", NULL, 0)
			    : op == R_BAD
				    ? partition_restore_user(pt, "u", bad,
							     sizeof(bad))
				    : partition_restore_user(
					      pt, "u", blob[op - R_OPEN_CART],
					      len[op - R_OPEN_CART]);
			if (i + 1 < 6 && rc->ops[i + 1] != R_END)
				CHECK_INT_EQ(r, 0);
		}
		CHECK_INT_EQ(r, rc->last_result);
		CHECK_INT_EQ(pt->n_users, rc->users);
		CHECK_INT_EQ(pt->n_open_sessions, rc->sessions);
		CHECK_INT_EQ(pt->n_open_carts, rc->carts);
		CHECK_INT_EQ(pt->heap_len, rc->heap);
		CHECK(partition_find_user(pt, "v") != NULL);
		CHECK_INT_EQ(partition_find_user(pt, "u") != NULL,
			     rc->users == 2);
		/* Everything closes and expires: no counter is off by one
		 * and the heap is intact. */
		CHECK_INT_EQ(partition_advance_watermark(pt, FAR), 0);
		CHECK_INT_EQ(pt->n_open_sessions, 0);
		CHECK_INT_EQ(pt->n_open_carts, 0);
		CHECK_INT_EQ(pt->heap_len, 0);
		partition_destroy(pt);
		intern_destroy(in);
	}
	for (int i = 0; i < 3; i++)
		free(blob[i]);
}

/* Compaction: a partition whose chunks since the last snapshot would grow
 * past max(1 MB, 2x its live state) writes a full snapshot of every live
 * user instead of the delta, and restoring that snapshot alone gives the
 * same partition. A partition left without users writes an empty one. */
static void test_compaction(void)
{
	static const struct step steps[] = {
		{'A', "a", 0, "P1", 2, 100, NULL},
		{'A', "b", 1000, "P2", 1, 7, NULL},
		{'R', "a", 2000, "P1", 1, 0, "Delivery too slow"},
		{'W', NULL, T + 1000, NULL, 0, 0, NULL}, /* b abandons */
		{'A', "c", T + 2000, "P3", 1, 1, NULL},
		{'A', "d", T + 3000, "P3", 1, 1, NULL},
	};
	static const struct step touch = {'A', "c", T + 4000, "P1", 1, 1, NULL};
	static const char *const users[] = {"a", "b", "c", "d"};
	struct intern *in = intern_new();
	struct partition *pt = partition_new(0, &default_params, in);
	struct partition *copy = partition_new(0, &default_params, in);
	struct batch *b;
	uint64_t log;

	offset_counter = 0;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		apply(pt, &steps[i]);
	/* A small log: a delta. */
	REQUIRE(partition_prepare_flush(pt) == 0);
	b = pt->sealed;
	CHECK(!b->state_full);
	CHECK_INT_EQ(b->state.records, 4);
	CHECK_INT_EQ(pt->state_log_bytes, b->state.len);
	log = pt->state_log_bytes;
	partition_flush_done(pt);

	/* One user changes, but the log is at the limit: a full snapshot. */
	partition_set_state_log(pt, (1u << 20) - 1);
	apply(pt, &touch);
	REQUIRE(partition_prepare_flush(pt) == 0);
	b = pt->sealed;
	CHECK(b->state_full);
	CHECK(!batch_is_empty(b));
	CHECK_INT_EQ(b->state.records, 4);
	CHECK_INT_EQ(pt->state_log_bytes, b->state.len);
	CHECK(b->state.len > log); /* c's cart grew */

	/* The snapshot alone restores the same partition. */
	CHECK_INT_EQ(restore_chunk(copy, &b->state), 4);
	CHECK_INT_EQ(copy->n_users, pt->n_users);
	CHECK_INT_EQ(copy->n_open_sessions, pt->n_open_sessions);
	CHECK_INT_EQ(copy->n_open_carts, pt->n_open_carts);
	CHECK_INT_EQ(copy->heap_len, pt->heap_len);
	for (size_t i = 0; i < 4; i++) {
		const struct user *u = partition_find_user(pt, users[i]);
		const struct user *v = partition_find_user(copy, users[i]);
		REQUIRE(u && v);
		CHECK_INT_EQ(u->last_event_ms, v->last_event_ms);
		CHECK_INT_EQ(u->session_start_ms, v->session_start_ms);
		CHECK_INT_EQ(u->abandon_start_ms, v->abandon_start_ms);
		CHECK_INT_EQ(u->deadline_ms, v->deadline_ms);
		CHECK_INT_EQ(u->flags & (USER_SESSION_OPEN | USER_RECOVERABLE),
			     v->flags & (USER_SESSION_OPEN | USER_RECOVERABLE));
		CHECK_INT_EQ(u->cart.n, v->cart.n);
	}
	copy->watermark_ms = pt->watermark_ms;
	partition_flush_done(pt);

	/* The same future on both: the same abandonments. */
	CHECK_INT_EQ(partition_advance_watermark(pt, FAR), 0);
	CHECK_INT_EQ(partition_advance_watermark(copy, FAR), 0);
	CHECK_INT_EQ(copy->batch->abandonments.n, pt->batch->abandonments.n);
	for (size_t i = 0;
	     i < pt->batch->abandonments.n && i < copy->batch->abandonments.n;
	     i++)
		CHECK_STR_EQ(copy->batch->abandonments.v[i].abandonment_id,
			     pt->batch->abandonments.v[i].abandonment_id);

	/* Everybody is gone: the deletions are due, and with no user left
	 * the flush is an empty snapshot that leaves no chunk behind. */
	CHECK_INT_EQ(pt->n_users, 4); /* dead, deleted by the flush */
	REQUIRE(partition_prepare_flush(pt) == 0);
	b = pt->sealed;
	CHECK_INT_EQ(pt->n_users, 0);
	CHECK(b->state_full);
	CHECK_INT_EQ(b->state.records, 0);
	CHECK(!batch_is_empty(b));
	CHECK_INT_EQ(pt->state_log_bytes, 0);
	partition_flush_done(pt);
	/* Nothing left: the next flush writes no state at all. */
	REQUIRE(partition_prepare_flush(pt) == 0);
	CHECK(!pt->sealed->state_full);
	CHECK_INT_EQ(pt->sealed->state.records, 0);
	partition_flush_done(pt);

	/* A partition restored from chunks that leave nobody (the last
	 * ones delete every user) compacts at its first flush. */
	partition_destroy(copy);
	copy = partition_new(1, &default_params, in);
	CHECK_INT_EQ(partition_restore_user(copy, "a", NULL, 0), 0);
	partition_set_state_log(copy, 100);
	REQUIRE(partition_prepare_flush(copy) == 0);
	CHECK(copy->sealed->state_full);
	CHECK_INT_EQ(copy->sealed->state.records, 0);

	partition_destroy(pt);
	partition_destroy(copy);
	intern_destroy(in);
}

/* The pack format: records round-trip in order (empty key, empty value,
 * no value), and every truncation is detected. */
/* Ids are time-ordered: an abandonment id starts with the session start
 * (48 bits, ms), a conversion id with the checkout time. A resume state
 * written before that (version 1) links the recovery of the user's latest
 * abandonment to its id of the first scheme; the user's next abandonment
 * gets a time-ordered id again. */
static void test_ids(void)
{
	static const int64_t t0 = INT64_C(1783468800000); /* 2026-07-08 */
	struct intern *in = intern_new();
	struct partition *pt = partition_new(0, &default_params, in);
	uint8_t st[64], *p = st;
	char want[37], prefix[16];
	struct batch *b;

	REQUIRE(in && pt);
	/* Known answers, from tests/e2e/oracle.py's derive_uuid (an
	 * independent implementation of the documented derivation). */
	ids_abandonment("user-000042", 11, INT64_C(1783500000123), want);
	CHECK_STR_EQ(want, "019f40e2-4b7b-8b17-8e6d-1860576cb313");
	ids_conversion("u-7", 3, 123456, INT64_C(1783500000999), want);
	CHECK_STR_EQ(want, "019f40e2-4ee7-8070-b10a-5684baffae7e");
	ids_abandonment_v1("u", 1, t0, want);
	CHECK_STR_EQ(want, "063139cc-a479-86cc-a872-22000dada123");
	/* Version 1: recoverable, last event and session start t0,
	 * abandoned at t0 + T, USD, no reason, p1 x1 at 100. */
	*p++ = 1;
	*p++ = USER_RECOVERABLE;
	p = cw_avro_write_long(p, t0);
	p = cw_avro_write_long(p, t0);
	p = cw_avro_write_long(p, t0);
	p = cw_avro_write_long(p, t0 + T);
	p = cw_avro_write_opt_string(p, cw_str_c("USD"));
	p = cw_avro_write_opt_string(p, cw_str_c(NULL));
	p = cw_avro_write_long(p, 1);
	p = cw_avro_write_string(p, "p1", 2);
	p = cw_avro_write_long(p, 1);
	p = cw_avro_write_long(p, 100);
	CHECK_INT_EQ(partition_restore_user(pt, "u", st, (size_t)(p - st)), 0);
	CHECK(partition_find_user(pt, "u")->flags & USER_LEGACY_ID);

	/* Recovered within the window: the first-scheme id. */
	apply(pt, &(struct step){'C', "u", t0 + HOUR, NULL, 0, 0, NULL});
	b = pt->batch;
	REQUIRE(b->conversions.n == 1 && b->recoveries.n == 1);
	partition_abandonment_id_v1("u", 1, t0, want);
	CHECK_STR_EQ(b->recoveries.v[0].abandonment_id, want);
	CHECK_STR_EQ(b->conversions.v[0].recovered_abandonment_id, want);
	partition_abandonment_id("u", 1, t0, want);
	CHECK(strcmp(b->recoveries.v[0].abandonment_id, want) != 0);
	/* The conversion id starts with the checkout time. */
	snprintf(prefix, sizeof(prefix), "%08llx-%04llx",
		 (unsigned long long)((t0 + HOUR) >> 16),
		 (unsigned long long)((t0 + HOUR) & 0xffff));
	CHECK(strncmp(b->conversions.v[0].conversion_id, prefix, 13) == 0);

	/* A new abandonment: time-ordered id, and its recovery links to it. */
	apply(pt, &(struct step){'A', "u", t0 + 2 * HOUR, "p2", 1, 5, NULL});
	apply(pt,
	      &(struct step){'W', NULL, t0 + 2 * HOUR + T, NULL, 0, 0, NULL});
	REQUIRE(b->abandonments.n == 1);
	partition_abandonment_id("u", 1, t0 + 2 * HOUR, want);
	CHECK_STR_EQ(b->abandonments.v[0].abandonment_id, want);
	snprintf(prefix, sizeof(prefix), "%08llx-%04llx",
		 (unsigned long long)((t0 + 2 * HOUR) >> 16),
		 (unsigned long long)((t0 + 2 * HOUR) & 0xffff));
	CHECK(strncmp(want, prefix, 13) == 0);
	CHECK(!(partition_find_user(pt, "u")->flags & USER_LEGACY_ID));
	apply(pt, &(struct step){'C', "u", t0 + 3 * HOUR, NULL, 0, 0, NULL});
	REQUIRE(b->recoveries.n == 2);
	CHECK_STR_EQ(b->recoveries.v[1].abandonment_id, want);

	partition_destroy(pt);
	intern_destroy(in);
}

/* batch_reset() keeps a vector's and the state buffer's capacity through
 * flushes that use a varying part of it, and releases it only after
 * eight resets in a row that used under a quarter. */
static void test_batch_reuse(void)
{
	static uint8_t blob[4096];
	struct batch *b = batch_new(0);
	size_t cap, scap;

	REQUIRE(b);
	for (int i = 0; i < 20000; i++)
		REQUIRE(batch_add_abandonment(b));
	for (int i = 0; i < 600; i++)
		REQUIRE(pack_put(&b->state, "k", 1, blob, sizeof(blob)) == 0);
	cap = b->abandonments.cap;
	scap = b->state.cap;
	CHECK(cap >= 20000 && scap > (1 << 20));
	for (int round = 0; round < 7; round++) {
		batch_reset(b);
		CHECK_INT_EQ(b->abandonments.n, 0);
		CHECK_INT_EQ(b->state.len, 0);
		CHECK(b->abandonments.cap == cap && b->state.cap == scap);
		REQUIRE(batch_add_abandonment(b));
		REQUIRE(pack_put(&b->state, "k", 1, blob, 8) == 0);
	}
	/* A flush that uses a quarter or more starts the count again. */
	for (size_t i = b->abandonments.n; i < cap / 4 + 1; i++)
		REQUIRE(batch_add_abandonment(b));
	for (size_t i = 0; i < scap / 4 / sizeof(blob) + 1; i++)
		REQUIRE(pack_put(&b->state, "k", 1, blob, sizeof(blob)) == 0);
	batch_reset(b);
	for (int round = 0; round < 7; round++) {
		batch_reset(b);
		CHECK(b->abandonments.cap == cap && b->state.cap == scap);
	}
	/* The eighth small one in a row releases. */
	batch_reset(b);
	CHECK_INT_EQ(b->abandonments.cap, 0);
	CHECK(b->state.cap <= (1 << 20));
	REQUIRE(batch_add_abandonment(b));
	CHECK_INT_EQ(b->abandonments.n, 1);
	batch_destroy(b);
}

static void test_pack(void)
{
	struct pack_buf b = {0};
	struct pack_reader rd;
	const uint8_t *key, *val;
	size_t klen, vlen, bounds[4], nb = 0;
	static const uint8_t big[5000] = {1, 2, 3};

	CHECK_INT_EQ(pack_put(&b, "user-1", 6, "\0state", 6), 0);
	bounds[nb++] = b.len;
	CHECK_INT_EQ(pack_put(&b, "gone", 4, NULL, 99), 0);
	bounds[nb++] = b.len;
	CHECK_INT_EQ(pack_put(&b, "", 0, "", 0), 0);
	bounds[nb++] = b.len;
	CHECK_INT_EQ(pack_put(&b, "x", 1, big, sizeof(big)), 0); /* grows */
	bounds[nb++] = b.len;
	CHECK_INT_EQ(b.records, 4);
	CHECK_INT_EQ(b.len, (8 + 6 + 6) + (8 + 4) + 8 + (8 + 1 + 5000));
	/* Lengths are big-endian u32; no value is 0xffffffff. */
	CHECK(memcmp(b.p, "\0\0\0\6user-1\0\0\0\6", 14) == 0);
	CHECK(memcmp(b.p + 20, "\0\0\0\4gone\377\377\377\377", 12) == 0);

	rd = pack_reader_init(b.p, b.len);
	CHECK_INT_EQ(pack_next(&rd, &key, &klen, &val, &vlen), 1);
	CHECK(klen == 6 && memcmp(key, "user-1", 6) == 0);
	CHECK(val && vlen == 6 && memcmp(val, "\0state", 6) == 0);
	CHECK_INT_EQ(pack_next(&rd, &key, &klen, &val, &vlen), 1);
	CHECK(klen == 4 && memcmp(key, "gone", 4) == 0);
	CHECK(val == NULL && vlen == 0);
	CHECK_INT_EQ(pack_next(&rd, &key, &klen, &val, &vlen), 1);
	CHECK(klen == 0 && val != NULL && vlen == 0);
	CHECK_INT_EQ(pack_next(&rd, &key, &klen, &val, &vlen), 1);
	CHECK(klen == 1 && vlen == sizeof(big) && val[2] == 3);
	CHECK_INT_EQ(pack_next(&rd, &key, &klen, &val, &vlen), 0);
	CHECK_INT_EQ(pack_next(&rd, &key, &klen, &val, &vlen), 0);

	/* Every prefix: records up to the cut, then the clean end at a
	 * record boundary and -EBADMSG anywhere else. */
	for (size_t cut = 0; cut < b.len; cut++) {
		bool boundary = cut == 0;
		int r, n = 0;

		for (size_t i = 0; i < nb; i++)
			boundary |= bounds[i] == cut;
		rd = pack_reader_init(b.p, cut);
		while ((r = pack_next(&rd, &key, &klen, &val, &vlen)) == 1)
			n++;
		if (r != (boundary ? 0 : -EBADMSG)) {
			fprintf(stderr, "  cut %zu: %d\n", cut, r);
			CHECK(0);
			break;
		}
	}
	/* A key length beyond the input. */
	static const uint8_t huge_key[] = {0xff, 0xff, 0xff, 0xfe, 'a'};
	rd = pack_reader_init(huge_key, sizeof(huge_key));
	CHECK_INT_EQ(pack_next(&rd, &key, &klen, &val, &vlen), -EBADMSG);

	/* Reset keeps the buffer up to @keep bytes, frees beyond. */
	pack_reset(&b, SIZE_MAX);
	CHECK(b.p != NULL && b.len == 0 && b.records == 0);
	pack_reset(&b, 16);
	CHECK(b.p == NULL && b.cap == 0);
	CHECK_INT_EQ(pack_put(&b, "k", 1, "v", 1), 0);
	CHECK_INT_EQ(b.records, 1);
	pack_free(&b);
	CHECK(b.p == NULL && b.records == 0);
}

/* An event for the guard tests: cart_add of @product by @user at @t. */
static struct cw_event guard_event(const char *user, int64_t t,
				   const char *product, int32_t qty,
				   int64_t price)
{
	static char ids[64][37];
	static unsigned next_id;
	char *id = ids[next_id++ % 64];
	struct cw_event ev;

	/* A fresh event id each time (repeats are the duplicates test's). */
	snprintf(id, 37, "00000000-0000-4000-8000-%012u", next_id);
	cw_event_init(&ev);
	ev.event_id = cw_str_c(id);
	ev.event_time_ms = t;
	ev.user_id = cw_str_c(user);
	ev.product_id = cw_str_c(product);
	ev.quantity = qty;
	ev.unit_price_cents = price;
	return ev;
}

/* Check @ev and apply it when it passes; return the check's result. */
static int guarded(struct partition *pt, const struct cw_event *ev,
		   int64_t wall, char *why, size_t why_size)
{
	int r = partition_check_event(pt, ev, wall, why, why_size);
	if (r == 0)
		CHECK_INT_EQ(partition_process(pt, ev, offset_counter++), 0);
	return r;
}

/* partition_check_event(): untrusted clocks and carts (issue 9). Wall
 * clock "now" is 2026-11-29; 200 shoppers add one product each a minute
 * ago, then one event claims year 9999: refused, and nothing moved. */
static void test_guards(void)
{
	const int64_t now = 1795910400000, skew = 15 * MIN;
	struct session_params sp = default_params;
	struct intern *in = intern_new();
	struct partition *pt;
	struct cw_event ev;
	char why[256], user[16], prod[16];

	sp.max_ahead_ms = skew;
	sp.max_cart_items = 3;
	pt = partition_new(0, &sp, in);
	REQUIRE(pt);
	offset_counter = 0;
	for (int i = 0; i < 200; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		ev = guard_event(user, now - MIN, "P1", 1, 100);
		CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);
	}
	int64_t wm = pt->watermark_ms;
	CHECK_INT_EQ(pt->n_open_sessions, 200);

	/* Year 9999, and just past the bound: refused, with the bound. */
	ev = guard_event("hostile", 253402300799000, "P1", 1, 100);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), -ERANGE);
	CHECK(strstr(why, "is ahead of the bound") != NULL);
	ev = guard_event("hostile", now + skew + 1, "P1", 1, 100);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), -ERANGE);
	CHECK_INT_EQ(partition_ahead_bound(pt, now), now + skew);
	CHECK_INT_EQ(pt->watermark_ms, wm);
	CHECK_INT_EQ(pt->n_open_sessions, 200);
	CHECK(partition_find_user(pt, "hostile") == NULL);
	CHECK_INT_EQ(pt->batch->abandonments.n, 0);

	/* At the bound: accepted. Then the partition's own progress is
	 * trusted: a simulation running ahead of the wall clock in steps
	 * is never refused. */
	ev = guard_event("sim", now + skew, "P1", 1, 100);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);
	for (int i = 1; i <= 8; i++) {
		ev = guard_event("sim", now + skew + i * (skew - 1), "P1", 1,
				 100);
		CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);
	}
	CHECK_INT_EQ(pt->max_event_ms, now + skew + 8 * (skew - 1));

	/* Too old: behind the watermark by more than TTL and window. */
	ev = guard_event("old", pt->watermark_ms - 7 * DAY - 1, "P1", 1, 1);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), -ERANGE);
	CHECK(strstr(why, "older than the watermark") != NULL);
	ev = guard_event("old", pt->watermark_ms - 7 * DAY, "P1", 1, 1);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);

	/* --max-cart-items 3: a fourth product is refused, more of one
	 * already held is not. */
	int64_t t = pt->max_event_ms;
	for (int i = 0; i < 3; i++) {
		snprintf(prod, sizeof(prod), "B%d", i);
		ev = guard_event("bot", t, prod, 1, 100);
		CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);
	}
	ev = guard_event("bot", t, "B3", 1, 100);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), -E2BIG);
	CHECK(strstr(why, "--max-cart-items 3") != NULL);
	ev = guard_event("bot", t, "B0", 5, 100);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);
	CHECK_INT_EQ(partition_find_user(pt, "bot")->cart.n, 3);

	/* Lines and values: a line past 1,000,000 units, and a value past
	 * 64 bits (3 lines of 10^6 units at 10^10 cents = 3e16: fits; the
	 * quantity bound is what stops it before). */
	ev = guard_event("bot", t, "B1", 999999, 100);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);
	ev = guard_event("bot", t, "B1", 1, 100);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), -EOVERFLOW);
	CHECK(strstr(why, "1000000 units") != NULL);
	ev = guard_event("bot", t, "B1", 0, INT64_MAX / 1000);
	ev.quantity = 0; /* not validated here: the line alone overflows */
	CHECK_INT_EQ(partition_check_event(pt, &ev, now, why, sizeof(why)),
		     -EOVERFLOW);

	/* --max-products: once the table is full, a new string is refused
	 * (the table never frees one), known ones still pass. */
	sp.max_interned = (uint32_t)intern_count(in);
	ev = guard_event("shopper", t, "NEW_PRODUCT", 1, 1);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), -ENOSPC);
	CHECK(strstr(why, "--max-products") != NULL);
	ev = guard_event("shopper", t, "P1", 1, 1);
	ev.reason = cw_str_c("a brand new reason");
	ev.type = CW_EVENT_CART_REMOVE;
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), -ENOSPC);
	ev = guard_event("shopper", t, "P1", 1, 1);
	CHECK_INT_EQ(guarded(pt, &ev, now, why, sizeof(why)), 0);
	sp.max_interned = 0;

	/* The value sums never wrap. */
	int32_t count;
	int64_t value;
	cart_totals(&partition_find_user(pt, "bot")->cart, &count, &value);
	CHECK_INT_EQ(count, 6 + 1000000 + 1); /* B0, B1, B2 */
	CHECK_INT_EQ(value, (6 + 1000000 + 1) * 100LL);

	partition_destroy(pt);
	intern_destroy(in);
}

/* A partition restored with a far-future watermark (written before the
 * bound existed) is detected, and the repair sets it back to the wall
 * clock and drops the user whose events are that far ahead. */
static void test_watermark_repair(void)
{
	const int64_t now = 1795910400000, skew = 15 * MIN;
	struct session_params sp = default_params;
	struct intern *in = intern_new();
	struct partition *pt;
	struct cw_event ev;
	char why[256];

	sp.max_ahead_ms = skew;
	sp.max_cart_items = 1000;
	pt = partition_new(0, &sp, in);
	REQUIRE(pt);
	offset_counter = 0;
	ev = guard_event("early", now - MIN, "P1", 1, 100);
	CHECK_INT_EQ(partition_process(pt, &ev, offset_counter++), 0);
	/* What an earlier version did with the year-9999 event. */
	ev = guard_event("poison", 253402300799000, "P1", 1, 100);
	CHECK_INT_EQ(partition_process(pt, &ev, offset_counter++), 0);
	CHECK_INT_EQ(pt->batch->abandonments.n, 1); /* "early", falsely */
	CHECK(!partition_watermark_ahead(pt, 253402300799000));
	CHECK(partition_watermark_ahead(pt, now));
	CHECK_INT_EQ(pt->n_open_sessions, 1);

	/* Detected, not repaired: progress is not trusted, and a normal
	 * event is older than the watermark allows. */
	pt->watermark_ahead = true;
	CHECK_INT_EQ(partition_ahead_bound(pt, now), now + skew);
	ev = guard_event("later", now, "P1", 1, 100);
	CHECK_INT_EQ(partition_check_event(pt, &ev, now, why, sizeof(why)),
		     -ERANGE);

	/* Repaired. */
	pt->watermark_ahead = false;
	CHECK_INT_EQ(partition_repair_watermark(pt, now), 1);
	CHECK_INT_EQ(pt->watermark_ms, now);
	CHECK(!partition_watermark_ahead(pt, now));
	CHECK(partition_find_user(pt, "poison") == NULL);
	CHECK_INT_EQ(pt->n_open_sessions, 0);
	/* The poison's watermark expired every other cart too: gone. */
	CHECK_INT_EQ(pt->n_open_carts, 0);
	CHECK(partition_find_user(pt, "early") == NULL);
	CHECK_INT_EQ(partition_check_event(pt, &ev, now, why, sizeof(why)), 0);
	CHECK_INT_EQ(partition_process(pt, &ev, offset_counter++), 0);
	CHECK_INT_EQ(pt->n_open_sessions, 1);
	/* The poisoned user's deletion is in the next state chunk. */
	REQUIRE(partition_prepare_flush(pt) == 0);
	CHECK_INT_EQ(pt->n_open_carts, 1);
	CHECK_INT_EQ(pt->sealed->watermark_ms, now);
	partition_destroy(pt);
	intern_destroy(in);
}

/* Duplicates: an event id among the user's last USER_RECENT_IDS applied
 * is dropped, one further back is not, and a restore remembers them. */
static void test_duplicates(void)
{
	const int64_t now = 1795910400000;
	struct session_params sp = default_params;
	struct intern *in = intern_new();
	struct partition *pt, *back;
	struct cw_event ev[USER_RECENT_IDS + 1];
	char why[256];

	sp.max_ahead_ms = 15 * MIN;
	sp.max_cart_items = 1000;
	pt = partition_new(0, &sp, in);
	back = partition_new(0, &sp, in);
	REQUIRE(pt && back);
	offset_counter = 0;
	for (int i = 0; i <= USER_RECENT_IDS; i++)
		ev[i] = guard_event("retry", now - MIN + i, "P1", 1, 100);
	CHECK_INT_EQ(guarded(pt, &ev[0], now, why, sizeof(why)), 0);
	CHECK_INT_EQ(guarded(pt, &ev[0], now, why, sizeof(why)), -EALREADY);
	CHECK(strstr(why, "duplicate event_id") != NULL);
	CHECK_INT_EQ(partition_find_user(pt, "retry")->cart.n, 1);
	CHECK_INT_EQ(
		cart_items(&partition_find_user(pt, "retry")->cart)[0].quantity,
		1);
	for (int i = 1; i < USER_RECENT_IDS; i++)
		CHECK_INT_EQ(guarded(pt, &ev[i], now, why, sizeof(why)), 0);
	/* A refused event is not remembered; another user's id is theirs. */
	struct cw_event other = ev[1];
	other.user_id = cw_str_c("someone_else");
	CHECK_INT_EQ(guarded(pt, &other, now, why, sizeof(why)), 0);

	/* The state written by a flush restores the same memory. */
	REQUIRE(partition_prepare_flush(pt) == 0);
	CHECK_INT_EQ(restore_chunk(back, &pt->sealed->state), 2);
	for (int i = 0; i < USER_RECENT_IDS; i++) {
		CHECK_INT_EQ(guarded(back, &ev[i], now, why, sizeof(why)),
			     -EALREADY);
		CHECK_INT_EQ(partition_check_event(pt, &ev[i], now, why,
						   sizeof(why)),
			     -EALREADY);
	}
	/* One more event pushes the oldest id out of the window. */
	CHECK_INT_EQ(guarded(pt, &ev[USER_RECENT_IDS], now, why, sizeof(why)),
		     0);
	CHECK_INT_EQ(partition_check_event(pt, &ev[0], now, why, sizeof(why)),
		     0);
	CHECK_INT_EQ(partition_check_event(pt, &ev[1], now, why, sizeof(why)),
		     -EALREADY);
	int32_t count;
	int64_t value;
	cart_totals(&partition_find_user(pt, "retry")->cart, &count, &value);
	CHECK_INT_EQ(count, USER_RECENT_IDS + 1);
	partition_destroy(pt);
	partition_destroy(back);
	intern_destroy(in);
}

/* The intern table over strings of 0..40 bytes that differ in one byte
 * (in a whole word, in the 1..7 left over) or only in length: distinct
 * ids in order of arrival, the same id again, found, named back. */
static void test_intern_table(void)
{
	struct intern *in = intern_new();
	char buf[64][41];
	uint32_t next = 1;
	int err;

	REQUIRE(in);
	for (int round = 0; round < 2; round++) {
		next = 1;
		for (int len = 0; len <= 40; len++) {
			for (int k = 0; k < 64; k++) {
				memset(buf[k], 'x', len);
				if (len)
					buf[k][k % len] = (char)('A' + k % 26);
				if (len && k >= 26)
					buf[k][(k * 7) % len] ^= 0x20;
				struct cw_str s = {buf[k], (size_t)len};
				uint32_t known = intern_find(in, s);
				uint32_t id = intern_id(in, s, &err);
				CHECK_INT_EQ(err, 0);
				REQUIRE(id != 0);
				if (round == 1 || known)
					CHECK(id == known);
				else
					CHECK(id == next);
				if (id >= next)
					next = id + 1;
				CHECK_INT_EQ(intern_len(in, id), len);
				CHECK(!memcmp(intern_str(in, id), buf[k], len));
			}
		}
	}
	/* A string and its prefixes are three entries. */
	uint32_t a = intern_id(in, cw_str_c("ECHO_DOT_5TH_GEN"), &err),
		 b = intern_id(in, cw_str_c("ECHO_DOT"), &err),
		 c = intern_id(in, cw_str_c("ECHO_DOT_5TH_GE"), &err);
	CHECK(a != b && b != c && a != c);
	CHECK(intern_find(in, cw_str_c("ECHO_DOT_5TH_GEN")) == a);
	CHECK(intern_find(in, cw_str_c("ECHO_DOT_5TH_GENX")) == 0);
	intern_destroy(in);
}

int main(int argc, char **argv)
{
	static const struct harness_case hc[] = {
		{"table", test_table},
		{"aggregates", test_aggregates},
		{"restore", test_restore},
		{"idle_watermark", test_idle_watermark},
		{"restore_replace_delete", test_restore_replace_delete},
		{"compaction", test_compaction},
		{"pack", test_pack},
		{"batch_reuse", test_batch_reuse},
		{"ids", test_ids},
		{"guards", test_guards},
		{"watermark_repair", test_watermark_repair},
		{"duplicates", test_duplicates},
		{"intern_table", test_intern_table},
	};
	return harness_run(hc, sizeof(hc) / sizeof(hc[0]), argc, argv);
}
