/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-session — table-driven tests of the session state machine
 * (processor/session.c through processor/partition.c): session gaps at
 * and around T, late events, removes beyond the quantity, recovered and
 * unrecovered checkouts, cart TTL, empty checkouts, per-minute aggregates,
 * and resume state that restores to the same results.
 */
#include <errno.h>
#include <stdint.h>

#include "harness.h"
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

int main(int argc, char **argv)
{
	static const struct harness_case hc[] = {
		{"table", test_table},
		{"aggregates", test_aggregates},
		{"restore", test_restore},
		{"idle_watermark", test_idle_watermark},
	};
	return harness_run(hc, sizeof(hc) / sizeof(hc[0]), argc, argv);
}
