/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-producer-sim — the producer's simulation without a broker: the
 * catalog is big enough and consistent, the same seed gives the same
 * encoded bytes (and another seed other bytes), and the funnel looks like a
 * Prime Day (abandonment 55-85%, reasons from the taxonomy, quantities
 * 1-4, per-user and global event time order, recovered carts, kickoff and
 * lightning-deal bursts).
 */
#include <math.h>

#include "catalog.h"
#include "cw_event.h"
#include "harness.h"
#include "sim.h"
#include "traffic.h"

#define START_MS INT64_C(1721088000000) /* 2024-07-16T00:00:00Z */
#define HOUR_MS	 INT64_C(3600000)

static struct catalog *catalog(void)
{
	char errstr[256];
	struct catalog *cat = catalog_new(errstr, sizeof(errstr));

	if (!cat)
		fprintf(stderr, "catalog_new: %s\n", errstr);
	REQUIRE(cat);
	return cat;
}

static struct sim *sim(const struct catalog *cat, uint64_t seed, uint32_t users,
		       int64_t duration_ms)
{
	struct sim_config sc = {seed, users, START_MS, duration_ms};
	char errstr[256];
	struct sim *s = sim_new(cat, &sc, errstr, sizeof(errstr));

	if (!s)
		fprintf(stderr, "sim_new: %s\n", errstr);
	REQUIRE(s);
	return s;
}

static void test_catalog(void)
{
	struct catalog *cat = catalog();
	size_t n = catalog_count(cat), nl;
	const struct catalog_lightning *cl = catalog_lightning(cat, &nl);

	CHECK(n >= 200);
	for (size_t i = 0; i < n; i++) {
		const struct catalog_product *p = catalog_product(cat, i);

		/* Unique ids: each finds itself. */
		CHECK_INT_EQ(catalog_find(cat, p->id, strlen(p->id)), (long)i);
		CHECK(p->list_cents > 0 && p->category && *p->category);
		CHECK(catalog_price_cents(cat, i, 0) <= p->list_cents);
		CHECK(catalog_price_cents(cat, i, 0) > 0);
	}
	CHECK_INT_EQ(catalog_find(cat, "NO_SUCH_PRODUCT", 15), -1);
	CHECK_INT_EQ(catalog_find(cat, "ECHO_DOT", 8), -1); /* a prefix */
	CHECK(nl >= 3);
	for (size_t i = 0; i < nl; i++) {
		int64_t mid = cl[i].start_offset_ms + cl[i].duration_ms / 2;

		CHECK(catalog_lightning_at(cat, mid) == &cl[i]);
		CHECK(catalog_price_cents(cat, cl[i].product, mid) <
		      catalog_price_cents(cat, cl[i].product, -1));
	}
	catalog_destroy(cat);
}

static void test_traffic(void)
{
	struct catalog *cat = catalog();
	static struct traffic tr;

	traffic_init(&tr, cat);
	/* Kickoff spike, then waves around 1. */
	CHECK(traffic_intensity(&tr, 0) > 5.0);
	CHECK(traffic_intensity(&tr, 30 * HOUR_MS) < 1.5);
	CHECK_INT_EQ(traffic_next_arrival(&tr, 1234, 0), 1234);
	/* One ordinary hour of "work" takes less than an hour at kickoff and
	 * about an hour later on; past the table the curve is flat. */
	CHECK(traffic_next_arrival(&tr, 0, (double)HOUR_MS) < HOUR_MS / 2);
	CHECK(llabs(traffic_next_arrival(&tr, 100 * HOUR_MS, (double)HOUR_MS) -
		    101 * HOUR_MS) <= 1);
	for (int64_t t = 0; t < 50 * HOUR_MS; t += 7 * 60000 + 13)
		CHECK(traffic_next_arrival(&tr, t, 1000.0) >= t);
	catalog_destroy(cat);
}

/* Encode @n events of a fresh simulation into a new buffer. */
static uint8_t *encode_run(const struct catalog *cat, uint64_t seed, int n,
			   size_t *len)
{
	struct sim *s = sim(cat, seed, 5000, 0);
	size_t cap = (size_t)n * 256, off = 0;
	uint8_t *buf = malloc(cap);
	struct cw_event ev;
	long product;

	REQUIRE(buf);
	for (int i = 0; i < n; i++) {
		ssize_t r;

		REQUIRE(sim_next(s, &ev, &product) == 1);
		r = cw_event_encode(&ev, buf + off, cap - off);
		REQUIRE(r > 0);
		off += (size_t)r;
	}
	sim_destroy(s);
	*len = off;
	return buf;
}

static void test_determinism(void)
{
	struct catalog *cat = catalog();
	size_t la, lb, lc;
	uint8_t *a = encode_run(cat, 42, 50000, &la);
	uint8_t *b = encode_run(cat, 42, 50000, &lb);
	uint8_t *c = encode_run(cat, 43, 50000, &lc);

	CHECK_INT_EQ(la, lb);
	CHECK(la == lb && memcmp(a, b, la) == 0);
	CHECK(la != lc || memcmp(a, c, la) != 0);
	free(a);
	free(b);
	free(c);
	catalog_destroy(cat);
}

static bool is_reason(struct cw_str r)
{
	for (int i = 0; i < SIM_REASON_COUNT; i++)
		if (cw_str_eq(r, cw_str_c(sim_reasons[i])))
			return true;
	return false;
}

static bool is_uuid4(struct cw_str id)
{
	if (id.len != 36 || id.ptr[14] != '4' || !strchr("89ab", id.ptr[19]))
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? id.ptr[i] != '-'
			 : !strchr("0123456789abcdef", id.ptr[i]))
			return false;
	}
	return true;
}

/* Per user, as seen in the stream: a cart opens with an add; a gap longer
 * than the session timeout ends the visit (abandoned), and a checkout
 * after such a gap is a recovered cart. */
struct user_view {
	int64_t last_ms;
	int64_t cart_start_ms;
	bool open;
};

#define FUNNEL_USERS  20000
#define FUNNEL_HOURS  48
#define JUDGED_BEFORE (36 * HOUR_MS) /* later carts may not be resolved */

static void test_funnel(void)
{
	struct catalog *cat = catalog();
	struct sim *s = sim(cat, 7, FUNNEL_USERS, FUNNEL_HOURS * HOUR_MS);
	struct user_view *uv = calloc(FUNNEL_USERS, sizeof(*uv));
	uint64_t carts = 0, in_session = 0, recovered = 0, abandoned = 0;
	uint64_t by_type[CW_EVENT_TYPE_COUNT] = {0}, bad = 0;
	uint64_t first_hour = 0, hour_30 = 0, in_deal = 0, before_deal = 0;
	size_t nl;
	const struct catalog_lightning *cl = catalog_lightning(cat, &nl);
	/* A lightning deal well after the kickoff, compared with the same
	 * stretch of the hour before (same phase of the hourly wave). */
	const struct catalog_lightning *deal = &cl[2];
	int64_t last_ms = 0;
	struct cw_event ev;
	long product;

	REQUIRE(uv);
	while (sim_next(s, &ev, &product) == 1) {
		int64_t off = ev.event_time_ms - START_MS;
		unsigned id;
		struct user_view *u;

		REQUIRE(ev.user_id.len > 5 && ev.user_id.len < 16 &&
			!memcmp(ev.user_id.ptr, "user_", 5));
		id = 0;
		for (size_t i = 5; i < ev.user_id.len; i++)
			id = id * 10 + (unsigned)(ev.user_id.ptr[i] - '0');
		REQUIRE(id < FUNNEL_USERS);
		u = &uv[id];
		by_type[ev.type]++;
		/* Order: global non-decreasing, per user strictly increasing.
		 */
		if (ev.event_time_ms < last_ms ||
		    (u->last_ms && ev.event_time_ms <= u->last_ms))
			bad++;
		last_ms = ev.event_time_ms;
		if (!is_uuid4(ev.event_id) ||
		    !cw_str_eq(ev.currency, cw_str_c("USD")))
			bad++;
		if (off < HOUR_MS)
			first_hour++;
		else if (off >= 30 * HOUR_MS && off < 31 * HOUR_MS)
			hour_30++;
		if (off >= deal->start_offset_ms &&
		    off < deal->start_offset_ms + deal->duration_ms)
			in_deal++;
		else if (off >= deal->start_offset_ms - HOUR_MS &&
			 off < deal->start_offset_ms - HOUR_MS +
					 deal->duration_ms)
			before_deal++;

		switch (ev.type) {
		case CW_EVENT_CART_ADD:
			if (ev.quantity < 1 || ev.quantity > 4 || product < 0 ||
			    ev.reason.ptr || ev.unit_price_cents <= 0)
				bad++;
			if (u->open && ev.event_time_ms - u->last_ms >
					       SIM_SESSION_TIMEOUT_MS) {
				abandoned += u->cart_start_ms - START_MS <
					     JUDGED_BEFORE;
				u->open = false;
			}
			if (!u->open) {
				u->open = true;
				u->cart_start_ms = ev.event_time_ms;
				carts += off < JUDGED_BEFORE;
			}
			break;
		case CW_EVENT_CART_REMOVE:
			if (!is_reason(ev.reason) || ev.quantity < 1 ||
			    product < 0 || !u->open)
				bad++;
			break;
		case CW_EVENT_CHECKOUT_COMPLETE:
			if (ev.product_id.ptr || !u->open)
				bad++;
			if (u->cart_start_ms - START_MS < JUDGED_BEFORE) {
				if (ev.event_time_ms - u->last_ms >
				    SIM_SESSION_TIMEOUT_MS)
					recovered++;
				else
					in_session++;
			}
			u->open = false;
			break;
		}
		u->last_ms = ev.event_time_ms;
	}
	for (int i = 0; i < FUNNEL_USERS; i++)
		if (uv[i].open &&
		    uv[i].cart_start_ms - START_MS < JUDGED_BEFORE)
			abandoned++;

	double abandon_rate = 1.0 - (double)in_session / (double)carts;
	printf("carts=%" PRIu64 " checkout_in_session=%" PRIu64
	       " recovered=%" PRIu64 " abandoned=%" PRIu64
	       " abandonment=%.3f add=%" PRIu64 " remove=%" PRIu64
	       " checkout=%" PRIu64 " first_hour=%" PRIu64 " hour_30=%" PRIu64
	       " in_deal=%" PRIu64 " before_deal=%" PRIu64 "\n",
	       carts, in_session, recovered, abandoned, abandon_rate,
	       by_type[0], by_type[1], by_type[2], first_hour, hour_30, in_deal,
	       before_deal);
	CHECK_INT_EQ(bad, 0);
	CHECK(carts > 50000);
	/* Every judged cart ends exactly one way. */
	CHECK_INT_EQ(in_session + recovered + abandoned, carts);
	CHECK(abandon_rate >= 0.55 && abandon_rate <= 0.85);
	CHECK(recovered > carts / 100 && recovered < carts / 5);
	CHECK(by_type[CW_EVENT_CART_REMOVE] > 0);
	CHECK(first_hour > 2 * hour_30);      /* the kickoff spike */
	CHECK(in_deal > 3 * before_deal / 2); /* the lightning-deal burst */
	sim_destroy(s);
	free(uv);
	catalog_destroy(cat);
}

static void test_duration_ends(void)
{
	struct catalog *cat = catalog();
	struct sim *s = sim(cat, 1, 100, HOUR_MS);
	struct cw_event ev;
	long product;
	int n = 0;

	while (sim_next(s, &ev, &product) == 1) {
		CHECK(ev.event_time_ms < START_MS + HOUR_MS);
		n++;
	}
	CHECK(n > 0);
	CHECK_INT_EQ(sim_next(s, &ev, &product), 0); /* stays ended */
	sim_destroy(s);
	catalog_destroy(cat);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"catalog", test_catalog},
		{"traffic", test_traffic},
		{"determinism", test_determinism},
		{"funnel", test_funnel},
		{"duration-ends", test_duration_ends},
	};

	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
