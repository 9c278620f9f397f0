/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-open-value — the per-currency carts at risk a partition keeps
 * (processor/open_value.c, kept by processor/partition.c): after every
 * event, timer, restore and repair of a seeded random stream, the running
 * totals equal a recount over every user the partition holds; currencies
 * beyond the cap land in "(other)"; a partition restored from the state
 * the flushes wrote holds the same totals; sums never wrap.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "open_value.h"
#include "pack.h"
#include "partition.h"

#define MIN  (60 * 1000LL)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

static const struct session_params params = {
	.session_timeout_ms = 30 * MIN,
	.allowed_lateness_ms = 5000,
	.cart_ttl_ms = 2 * DAY,
	.recovery_window_ms = DAY,
	.idle_timeout_ms = 5000,
	.time_scale = 1,
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(uint64_t n)
{
	return harness_rand(&rng_state, n);
}

/* The entry of @pt's totals a session in @currency is counted in. */
static int entry_index(const struct open_value *ov, uint32_t currency)
{
	for (uint32_t i = 0; i < ov->n; i++)
		if (ov->e[i].currency == currency)
			return (int)i;
	for (uint32_t i = 0; i < ov->n; i++)
		if (ov->e[i].currency == OPEN_VALUE_OTHER)
			return (int)i;
	return -1;
}

/* Σ quantity × price of @c from its items, saturated at INT64_MAX (what
 * cart_totals() promises), walked here rather than asked of the cart,
 * which keeps its value (cart_value()). */
static int64_t items_value(const struct cart *c)
{
	const struct cart_item *items = cart_items_const(c);
	open_value_cents v = 0;

	for (uint16_t i = 0; i < c->n; i++)
		v += (open_value_cents)items[i].quantity *
		     items[i].unit_price_cents;
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Recount every user of @pt and compare with its running totals. */
static void check_recount(const struct partition *pt, const char *where)
{
	const struct open_value *ov = &pt->open_value;
	int64_t sessions[OPEN_VALUE_CURRENCIES + 1] = {0};
	int64_t carts[OPEN_VALUE_CURRENCIES + 1] = {0};
	open_value_cents value[OPEN_VALUE_CURRENCIES + 1] = {0};
	uint32_t open = 0;
	bool ok = true;

	for (uint32_t i = 0; i < pt->n_slots; i++) {
		const struct user *u = pt->slots[i];
		int k;
		if (u && cart_value(&u->cart) != items_value(&u->cart)) {
			fprintf(stderr,
				"%s: user %s's cart keeps %lld, its "
				"items are worth %lld\n",
				where, u->id, (long long)cart_value(&u->cart),
				(long long)items_value(&u->cart));
			ok = false;
		}
		if (!u || !(u->flags & USER_SESSION_OPEN))
			continue;
		open++;
		k = entry_index(ov, u->currency);
		if (k < 0) {
			fprintf(stderr, "%s: user %s's currency has no entry\n",
				where, u->id);
			ok = false;
			continue;
		}
		sessions[k]++;
		if (u->cart.n) {
			carts[k]++;
			value[k] += items_value(&u->cart);
		}
	}
	for (uint32_t k = 0; k < ov->n; k++) {
		if (ov->e[k].sessions != sessions[k] ||
		    ov->e[k].carts != carts[k] ||
		    ov->e[k].value_cents != value[k]) {
			fprintf(stderr,
				"%s: entry %u: kept %lld sessions %lld carts "
				"%lld cents, recount %lld %lld %lld\n",
				where, k, (long long)ov->e[k].sessions,
				(long long)ov->e[k].carts,
				(long long)ov->e[k].value_cents,
				(long long)sessions[k], (long long)carts[k],
				(long long)value[k]);
			ok = false;
		}
	}
	CHECK(ok);
	CHECK_INT_EQ(open, pt->n_open_sessions);
}

/* Restore every record of a state chunk into @pt (as the daemon does). */
static void restore_chunk(struct partition *pt, const struct pack_buf *chunk)
{
	struct pack_reader rd = pack_reader_init(chunk->p, chunk->len);
	const uint8_t *key, *val;
	size_t klen, vlen;
	char user[64];
	int r;

	while ((r = pack_next(&rd, &key, &klen, &val, &vlen)) == 1) {
		REQUIRE(klen < sizeof(user));
		memcpy(user, key, klen);
		user[klen] = '\0';
		CHECK_INT_EQ(partition_restore_user(pt, user, val, vlen), 0);
	}
	CHECK_INT_EQ(r, 0);
}

/* Per-currency rows of one partition, for comparing two of them. */
static struct open_value_rows rows_of(const struct partition *pt)
{
	struct open_value_rows rows = {0};
	open_value_rows_add(&rows, &pt->open_value, pt->intern);
	return rows;
}

static int64_t row_sum(const struct open_value_rows *rows, const char *cur,
		       int what)
{
	for (uint32_t i = 0; i < rows->n; i++)
		if (!strcmp(rows->row[i].currency, cur))
			return what == 0   ? rows->row[i].sessions
			       : what == 1 ? rows->row[i].carts
					   : rows->row[i].value_cents;
	return 0;
}

/* A seeded stream of adds, removes, checkouts, gaps, late events and
 * watermark moves over 60 users and @n_cur currencies; a flush now and
 * then whose state is restored into a mirror partition. With @big, one
 * add in 4 has a price of up to $50M, so that carts go past the value a
 * cart keeps (2^32 cents) and back under it by removes and checkouts. */
static void random_stream(int n_cur, int steps, bool big)
{
	struct intern *in = intern_new();
	struct partition *pt = partition_new(0, &params, in);
	struct partition *mirror = partition_new(0, &params, in);
	int64_t t = 1783468800000, offset = 0; /* 2026-07-08 */
	char where[64], id[37], user[16], product[8], cur[4];

	REQUIRE(in && pt && mirror);
	for (int i = 0; i < steps; i++) {
		uint64_t op = rnd(100);
		snprintf(where, sizeof(where), "%d currencies, step %d", n_cur,
			 i);
		if (op < 3) {
			t += HOUR + (int64_t)rnd(3 * DAY);
			CHECK_INT_EQ(partition_advance_watermark(pt, t), 0);
		} else {
			struct cw_event ev;
			uint64_t kind = rnd(10);
			int64_t at = t;
			if (rnd(20) == 0)
				at -= (int64_t)rnd(40 * MIN); /* late */
			t += (int64_t)rnd(3 * MIN);
			snprintf(id, sizeof(id),
				 "00000000-0000-4000-8000-%012d", i);
			snprintf(user, sizeof(user), "u%02d", (int)rnd(60));
			snprintf(product, sizeof(product), "P%d", (int)rnd(6));
			/* Mostly one currency per user, sometimes another. */
			int c = rnd(8) ? (int)(user[2] - '0' + user[1] * 7) %
						 n_cur
				       : (int)rnd((uint64_t)n_cur);
			snprintf(cur, sizeof(cur), "%c%c%c", 'A' + c / 26,
				 'A' + c % 26, 'X');
			cw_event_init(&ev);
			ev.event_id = cw_str_c(id);
			ev.event_time_ms = at;
			ev.user_id = cw_str_c(user);
			ev.currency = cw_str_c(cur);
			ev.product_id = cw_str_c(product);
			ev.quantity = 1 + (int32_t)rnd(3);
			ev.unit_price_cents = (int64_t)rnd(100000);
			if (big && rnd(4) == 0)
				ev.unit_price_cents =
					(int64_t)rnd(5000000001) +
					(rnd(2) ? 0 : (int64_t)UINT32_MAX - 2);
			ev.type = kind < 6   ? CW_EVENT_CART_ADD
				  : kind < 9 ? CW_EVENT_CART_REMOVE
					     : CW_EVENT_CHECKOUT_COMPLETE;
			if (ev.type == CW_EVENT_CART_REMOVE)
				ev.reason = cw_str_c("Changed mind");
			CHECK_INT_EQ(partition_process(pt, &ev, offset++), 0);
		}
		check_recount(pt, where);
		if (i % 97 == 96) {
			REQUIRE(partition_prepare_flush(pt) == 0);
			if (pt->sealed->state_full) {
				partition_destroy(mirror);
				mirror = partition_new(0, &params, in);
				REQUIRE(mirror);
			}
			restore_chunk(mirror, &pt->sealed->state);
			partition_flush_done(pt);
			check_recount(mirror, where);
			if (n_cur <= OPEN_VALUE_CURRENCIES) {
				struct open_value_rows a = rows_of(pt),
						       b = rows_of(mirror);
				for (uint32_t k = 0; k < a.n; k++)
					for (int w = 0; w < 3; w++)
						CHECK_INT_EQ(
							row_sum(&b,
								a.row[k].currency,
								w),
							row_sum(&a,
								a.row[k].currency,
								w));
			}
		}
	}
	if (n_cur > OPEN_VALUE_CURRENCIES) {
		CHECK_INT_EQ(pt->open_value.n, OPEN_VALUE_CURRENCIES + 1);
		CHECK(pt->open_value.e[OPEN_VALUE_CURRENCIES].currency ==
		      OPEN_VALUE_OTHER);
		struct open_value_rows rows = rows_of(pt);
		CHECK_INT_EQ(rows.n, OPEN_VALUE_CURRENCIES + 1);
		CHECK_STR_EQ(rows.row[OPEN_VALUE_CURRENCIES].currency,
			     OPEN_VALUE_OTHER_NAME);
	}
	/* Everything closes in the end. */
	CHECK_INT_EQ(partition_advance_watermark(pt, t + 10 * DAY), 0);
	check_recount(pt, "final");
	for (uint32_t k = 0; k < pt->open_value.n; k++) {
		CHECK_INT_EQ(pt->open_value.e[k].sessions, 0);
		CHECK_INT_EQ(pt->open_value.e[k].carts, 0);
		CHECK(pt->open_value.e[k].value_cents == 0);
	}
	partition_destroy(pt);
	partition_destroy(mirror);
	intern_destroy(in);
}

static void test_stream_few_currencies(void)
{
	random_stream(4, 3000, false);
}

static void test_stream_big_carts(void)
{
	random_stream(3, 3000, true);
}

static void test_stream_many_currencies(void)
{
	random_stream(OPEN_VALUE_CURRENCIES + 6, 3000, false);
}

/* The value a cart keeps: by cart_add() and cart_remove() while it is
 * under 2^32 cents, then counted from the items until cart_clear(). */
static void test_cart_value(void)
{
	struct cart c = {0};
	int64_t price;

	CHECK_INT_EQ(cart_add(&c, 1, 2, 1000), 0);
	CHECK_INT_EQ(cart_add(&c, 2, 1, 550), 0);
	CHECK_INT_EQ(cart_add(&c, 1, 1, 900), 0); /* the new price: 3 x 900 */
	CHECK(c.value == 3250);
	CHECK_INT_EQ(cart_add(&c, 3, 1, 7), 0); /* spills past CART_INLINE */
	CHECK_INT_EQ(cart_remove(&c, 2, 5, &price), 1);
	CHECK(c.value == 2707 && cart_value(&c) == 2707);
	/* One line to exactly the last kept value, then one cent more. */
	CHECK_INT_EQ(cart_add(&c, 4, 1, (int64_t)UINT32_MAX - 1 - 2707), 0);
	CHECK(c.value == UINT32_MAX - 1);
	CHECK_INT_EQ(cart_add(&c, 5, 1, 1), 0);
	CHECK(c.value == CART_VALUE_UNKNOWN);
	CHECK(cart_value(&c) == (int64_t)UINT32_MAX);
	CHECK_INT_EQ(cart_remove(&c, 4, 1, NULL), 1);
	CHECK(cart_value(&c) == 2708); /* counted, no longer kept */
	cart_clear(&c);
	CHECK(c.value == 0);
	/* A single line beyond it; and a cart past INT64_MAX saturates. */
	CHECK_INT_EQ(cart_add(&c, 1, 1000000, 10000000000), 0);
	CHECK(c.value == CART_VALUE_UNKNOWN);
	CHECK(cart_value(&c) == 10000000000000000);
	for (uint32_t p = 2; p < 1000; p++)
		CHECK_INT_EQ(cart_add(&c, p, 1000000, 10000000000), 0);
	CHECK(cart_value(&c) == INT64_MAX);
	cart_clear(&c);
}

/* A hand-checked case: what is at risk, what is carried over. */
static void test_at_risk_by_hand(void)
{
	struct intern *in = intern_new();
	struct partition *pt = partition_new(0, &params, in);
	int64_t t = 1783468800000, offset = 0;
	struct {
		const char *user, *cur;
		int64_t at;
		enum cw_event_type type;
		int32_t qty;
		int64_t price;
	} ev[] = {
		/* carry: abandoned (its session closes), cart kept */
		{"carry", "USD", 0, CW_EVENT_CART_ADD, 1, 1234},
		{"usd", "USD", 2 * HOUR, CW_EVENT_CART_ADD, 2, 1000},
		{"usd", "USD", 2 * HOUR + MIN, CW_EVENT_CART_ADD, 1, 550},
		{"eur", "EUR", 2 * HOUR, CW_EVENT_CART_ADD, 1, 1999},
		{"empty", "EUR", 2 * HOUR, CW_EVENT_CART_ADD, 1, 500},
		{"empty", "EUR", 2 * HOUR + MIN, CW_EVENT_CART_REMOVE, 1, 0},
		/* switch: its cart counts in the latest event's currency */
		{"switch", "GBP", 2 * HOUR, CW_EVENT_CART_ADD, 1, 500},
		{"switch", "USD", 2 * HOUR + MIN, CW_EVENT_CART_ADD, 1, 100},
	};
	char id[37], product[8];

	REQUIRE(in && pt);
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		struct cw_event e;
		cw_event_init(&e);
		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012zu", i);
		e.event_id = cw_str_c(id);
		e.user_id = cw_str_c(ev[i].user);
		e.currency = cw_str_c(ev[i].cur);
		e.event_time_ms = t + ev[i].at;
		e.type = ev[i].type;
		/* Each add its own product; the remove takes the one before. */
		snprintf(product, sizeof(product), "P%zu",
			 ev[i].type == CW_EVENT_CART_REMOVE ? i - 1 : i);
		e.product_id = cw_str_c(product);
		if (ev[i].type == CW_EVENT_CART_REMOVE)
			e.reason = cw_str_c("Changed mind");
		e.quantity = ev[i].qty;
		e.unit_price_cents = ev[i].price;
		CHECK_INT_EQ(partition_process(pt, &e, offset++), 0);
	}
	struct open_value_rows rows = rows_of(pt);
	CHECK_INT_EQ(pt->n_open_carts, 4); /* carry, usd, eur, switch */
	CHECK_INT_EQ(row_sum(&rows, "USD", 0), 2);
	CHECK_INT_EQ(row_sum(&rows, "USD", 1), 2);
	CHECK_INT_EQ(row_sum(&rows, "USD", 2), 2550 + 600);
	CHECK_INT_EQ(row_sum(&rows, "EUR", 0), 2);
	CHECK_INT_EQ(row_sum(&rows, "EUR", 1), 1);
	CHECK_INT_EQ(row_sum(&rows, "EUR", 2), 1999);
	CHECK_INT_EQ(row_sum(&rows, "GBP", 0), 0);
	CHECK_INT_EQ(row_sum(&rows, "GBP", 2), 0);
	check_recount(pt, "by hand");

	/* The watermark jumps past everything: nothing is at risk; the
	 * currencies stay, with zeros. */
	CHECK_INT_EQ(partition_advance_watermark(pt, t + 3 * HOUR), 0);
	rows = rows_of(pt);
	CHECK_INT_EQ(rows.n, 3);
	for (uint32_t k = 0; k < rows.n; k++) {
		CHECK_INT_EQ(rows.row[k].sessions, 0);
		CHECK_INT_EQ(rows.row[k].value_cents, 0);
	}
	partition_destroy(pt);
	intern_destroy(in);
}

/* A repaired watermark drops the poisoned user's open session. */
static void test_repair(void)
{
	const int64_t now = 1795910400000;
	struct session_params sp = params;
	struct intern *in = intern_new();
	struct partition *pt;
	struct cw_event ev;

	sp.max_ahead_ms = 15 * MIN;
	pt = partition_new(0, &sp, in);
	REQUIRE(in && pt);
	cw_event_init(&ev);
	ev.event_id = cw_str_c("00000000-0000-4000-8000-000000000001");
	ev.user_id = cw_str_c("poison");
	ev.event_time_ms = 253402300799000;
	ev.product_id = cw_str_c("P1");
	ev.quantity = 3;
	ev.unit_price_cents = 700;
	CHECK_INT_EQ(partition_process(pt, &ev, 0), 0);
	CHECK(pt->open_value.e[0].value_cents == 2100);
	CHECK_INT_EQ(partition_repair_watermark(pt, now), 1);
	check_recount(pt, "repaired");
	CHECK_INT_EQ(pt->open_value.e[0].sessions, 0);
	CHECK(pt->open_value.e[0].value_cents == 0);
	partition_destroy(pt);
	intern_destroy(in);
}

/* The module alone: the cap, "(other)", and sums that cannot wrap. */
static void test_module(void)
{
	struct open_value ov = {0}, ov2 = {0};
	struct open_value_rows rows = {0};
	struct intern *in = intern_new();
	uint32_t usd;
	int err = 0;

	REQUIRE(in);
	usd = intern_id(in, cw_str_c("USD"), &err);
	for (uint32_t c = 1; c <= OPEN_VALUE_CURRENCIES + 3; c++)
		open_value_add(&ov, c == 1 ? usd : 1000 + c, 1, 1, 10);
	CHECK_INT_EQ(ov.n, OPEN_VALUE_CURRENCIES + 1);
	CHECK_INT_EQ(ov.e[OPEN_VALUE_CURRENCIES].sessions, 3);
	CHECK(ov.e[OPEN_VALUE_CURRENCIES].value_cents == 30);
	/* Counted out of the entry it was counted in. */
	open_value_add(&ov, 1000 + OPEN_VALUE_CURRENCIES + 2, -1, 1, 10);
	CHECK_INT_EQ(ov.e[OPEN_VALUE_CURRENCIES].sessions, 2);

	/* Three carts of INT64_MAX: exact per partition, saturated when
	 * published. */
	for (int i = 0; i < 3; i++)
		open_value_add(&ov2, usd, 1, 1, INT64_MAX);
	open_value_rows_add(&rows, &ov2, in);
	CHECK_INT_EQ(rows.n, 1);
	CHECK_STR_EQ(rows.row[0].currency, "USD");
	CHECK_INT_EQ(rows.row[0].value_cents, INT64_MAX);
	open_value_add(&ov2, usd, -1, 1, INT64_MAX);
	open_value_add(&ov2, usd, -1, 1, INT64_MAX);
	CHECK(ov2.e[0].value_cents == INT64_MAX);

	/* Unknown ids (no name) other than USD's are "(other)"; rows beyond
	 * OPEN_VALUE_ROWS go there too. */
	rows = (struct open_value_rows){0};
	open_value_rows_add(&rows, &ov, in);
	CHECK_INT_EQ(rows.n, 2);
	CHECK_STR_EQ(rows.row[1].currency, OPEN_VALUE_OTHER_NAME);
	CHECK_INT_EQ(rows.row[1].sessions, OPEN_VALUE_CURRENCIES - 1 + 2);
	rows = (struct open_value_rows){0};
	for (int p = 0; p < 3; p++) {
		struct open_value one = {0};
		char name[4];
		for (int c = 0; c < OPEN_VALUE_CURRENCIES; c++) {
			snprintf(name, sizeof(name), "Q%c%c", 'A' + p, 'A' + c);
			open_value_add(&one,
				       intern_id(in, cw_str_c(name), &err), 1,
				       1, 5);
		}
		open_value_rows_add(&rows, &one, in);
	}
	CHECK_INT_EQ(err, 0);
	CHECK_INT_EQ(rows.n, OPEN_VALUE_ROWS);
	CHECK_STR_EQ(rows.row[OPEN_VALUE_ROWS - 1].currency,
		     OPEN_VALUE_OTHER_NAME);
	CHECK_INT_EQ(rows.row[OPEN_VALUE_ROWS - 1].sessions,
		     OPEN_VALUE_CURRENCIES);
	intern_destroy(in);
}

int main(int argc, char **argv)
{
	static const struct harness_case hc[] = {
		{"module", test_module},
		{"at_risk_by_hand", test_at_risk_by_hand},
		{"stream_few_currencies", test_stream_few_currencies},
		{"stream_many_currencies", test_stream_many_currencies},
		{"stream_big_carts", test_stream_big_carts},
		{"cart_value", test_cart_value},
		{"repair", test_repair},
	};
	return harness_run(hc, sizeof(hc) / sizeof(hc[0]), argc, argv);
}
