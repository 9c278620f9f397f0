/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-event-json — common/cw_event_json.c, cw_catalog.c and cw_uuid.c:
 * a table of JSON objects, each either completed into the expected event
 * (defaults, catalog prices and currencies, both time forms, ids kept or
 * generated) or refused with the expected field and reason; the catalog
 * CSV reader's accepted and refused files; UUIDv7 layout and uniqueness.
 */
#include <errno.h>

#include "cw_catalog.h"
#include "cw_event_json.h"
#include "cw_prom.h"
#include "harness.h"

/* 2026-11-29T04:00:00Z, the "receive time" of every case. */
#define NOW_MS	INT64_C(1795924800000)
#define SKEW_MS (15 * 60 * 1000)

static const char catalog_csv[] =
	"product_id,unit_price_cents,currency,name,category\r\n"
	"MACBOOK_PRO_2023,199900,USD,\"MacBook Pro 14\"\", 2023\",Laptops\r\n"
	"EURO_KETTLE,4599,EUR,Kettle,Kitchen\r\n"
	"\r\n"
	"NO_CURRENCY,500,,\"multi\nline name\",Misc\r\n"
	"FREE_SAMPLE,0,USD,Sample,Misc\r\n";

static struct cw_catalog *test_catalog(void)
{
	char errstr[256];
	struct cw_catalog *cat =
		cw_catalog_parse(catalog_csv, sizeof(catalog_csv) - 1,
				 "test.csv", errstr, sizeof(errstr));

	if (!cat)
		fprintf(stderr, "catalog: %s\n", errstr);
	REQUIRE(cat);
	return cat;
}

struct ok_case {
	const char *json;
	enum cw_event_type type;
	const char *user_id, *product_id, *reason, *currency;
	int32_t quantity;
	int64_t price, time_ms;
	const char *event_id; /* NULL: a generated UUIDv7 */
};

static void test_accepted(void)
{
	static const struct ok_case cases[] = {
		/* The example, as it is. */
		{"{\"user_id\": \"user_10\", \"product_id\": "
		 "\"MACBOOK_PRO_2023\", \"event_type\": \"cart_remove\", "
		 "\"reason\": \"Too expensive\"}",
		 CW_EVENT_CART_REMOVE, "user_10", "MACBOOK_PRO_2023",
		 "Too expensive", "USD", 1, 199900, NOW_MS, NULL},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"EURO_KETTLE\",\"quantity\":3,\"event_time\":"
		 "\"2026-11-29T03:59:00.25Z\"}",
		 CW_EVENT_CART_ADD, "u", "EURO_KETTLE", NULL, "EUR", 3, 4599,
		 NOW_MS - 60000 + 250, NULL},
		/* Own price: any product, currency kept. */
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"NOT_IN_CATALOG\",\"unit_price_cents\":1234,\"currency\":"
		 "\"GBP\",\"event_time\":1795924400000,\"event_id\":\"my-id-"
		 "1\"}",
		 CW_EVENT_CART_ADD, "u", "NOT_IN_CATALOG", NULL, "GBP", 1, 1234,
		 INT64_C(1795924400000), "my-id-1"},
		/* Catalog row without a currency: USD; explicit one kept. */
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"NO_CURRENCY\",\"currency\":\"JPY\"}",
		 CW_EVENT_CART_ADD, "u", "NO_CURRENCY", NULL, "JPY", 1, 500,
		 NOW_MS, NULL},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"FREE_SAMPLE\",\"currency\":\"USD\",\"reason\":null}",
		 CW_EVENT_CART_ADD, "u", "FREE_SAMPLE", NULL, "USD", 1, 0,
		 NOW_MS, NULL},
		/* Checkout: no product, no price needed. */
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\"}",
		 CW_EVENT_CHECKOUT_COMPLETE, "u", NULL, NULL, "USD", 1, 0,
		 NOW_MS, NULL},
		/* RFC 3339 with an offset, epoch ms as a string, at the skew
		 * bound exactly. */
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":\"2026-11-29T05:00:00+01:00\"}",
		 CW_EVENT_CHECKOUT_COMPLETE, "u", NULL, NULL, "USD", 1, 0,
		 NOW_MS, NULL},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":\"1795924800000\"}",
		 CW_EVENT_CHECKOUT_COMPLETE, "u", NULL, NULL, "USD", 1, 0,
		 NOW_MS, NULL},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":1795925700000}",
		 CW_EVENT_CHECKOUT_COMPLETE, "u", NULL, NULL, "USD", 1, 0,
		 NOW_MS + SKEW_MS, NULL},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"MACBOOK_PRO_2023\",\"quantity\":1000000,\"event_time\":"
		 "\"2016-12-31T23:59:60Z\"}",
		 CW_EVENT_CART_ADD, "u", "MACBOOK_PRO_2023", NULL, "USD",
		 1000000, 199900, INT64_C(1483228799999), NULL},
	};
	struct cw_catalog *cat = test_catalog();
	struct cw_event_json_opts o = {cat, NOW_MS, SKEW_MS};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ok_case *c = &cases[i];
		struct cw_event_json_error err = {{0}, {0}};
		char id[CW_UUID_LEN + 1];
		json_error_t jerr;
		json_t *obj = json_loads(c->json, 0, &jerr);
		struct cw_event ev;
		int before = harness_failures, r;

		REQUIRE(obj);
		r = cw_event_json_to_event(obj, &o, &ev, id, &err);
		if (r != 0) {
			fprintf(stderr, "  accepted case %zu refused: %s: %s\n",
				i, err.field, err.reason);
			harness_failures++;
			json_decref(obj);
			continue;
		}
		CHECK_INT_EQ(ev.type, c->type);
		CHECK(cw_str_eq(ev.user_id, cw_str_c(c->user_id)));
		CHECK(cw_str_eq(ev.product_id, cw_str_c(c->product_id)));
		CHECK(cw_str_eq(ev.reason, cw_str_c(c->reason)));
		CHECK(cw_str_eq(ev.currency, cw_str_c(c->currency)));
		CHECK_INT_EQ(ev.quantity, c->quantity);
		CHECK_INT_EQ(ev.unit_price_cents, c->price);
		CHECK_INT_EQ(ev.event_time_ms, c->time_ms);
		if (c->event_id) {
			CHECK(cw_str_eq(ev.event_id, cw_str_c(c->event_id)));
		} else {
			CHECK(ev.event_id.ptr == id);
			CHECK_INT_EQ(ev.event_id.len, CW_UUID_LEN);
			CHECK_INT_EQ(id[14], '7');
		}
		if (harness_failures != before)
			fprintf(stderr, "  (after accepted case %zu)\n", i);
		json_decref(obj);
	}
	cw_catalog_destroy(cat);
}

struct bad_case {
	const char *json;
	const char *field;
	const char *reason_part; /* must occur in the reason */
};

static void test_refused(void)
{
	static const struct bad_case cases[] = {
		{"[1]", "event", "not a JSON object"},
		{"{\"event_type\":\"cart_add\",\"product_id\":\"FREE_SAMPLE\"}",
		 "user_id", "missing"},
		{"{\"user_id\":\"\",\"event_type\":\"checkout_complete\"}",
		 "user_id", "empty"},
		{"{\"user_id\":7,\"event_type\":\"checkout_complete\"}",
		 "user_id", "must be a string"},
		{"{\"user_id\":\"u\"}", "event_type", "missing"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_view\"}",
		 "event_type", "'cart_view' is not cart_add"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\"}",
		 "product_id", "missing"},
		/* Unknown product, no price: never a silent 0. */
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"GHOST_PRODUCT\"}",
		 "product_id", "unknown product 'GHOST_PRODUCT'"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"FREE_SAMPLE\",\"quantity\":0}",
		 "quantity", "0 is not in 1..1000000"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"FREE_SAMPLE\",\"quantity\":1000001}",
		 "quantity", "not in 1..1000000"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"FREE_SAMPLE\",\"quantity\":1.5}",
		 "quantity", "whole number"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"FREE_SAMPLE\",\"quantity\":\"2\"}",
		 "quantity", "whole number"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"X\",\"unit_price_cents\":-1}",
		 "unit_price_cents", "-1 is not in 0.."},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"X\",\"unit_price_cents\":10000000001}",
		 "unit_price_cents", "not in 0..10000000000"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_add\",\"product_"
		 "id\":"
		 "\"EURO_KETTLE\",\"currency\":\"USD\"}",
		 "currency", "differs from the catalog's EUR"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"currency\":\"usd\"}",
		 "currency", "3 capital letters"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":\"2026-11-29 04:00:00\"}",
		 "event_time", "neither RFC 3339"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":\"2026-02-30T00:00:00Z\"}",
		 "event_time", "neither RFC 3339"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":true}",
		 "event_time", "epoch milliseconds or an RFC 3339"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":-1}",
		 "event_time", "outside 1970-01-01"},
		/* One ms past the skew bound; an hour past. */
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":1795925700001}",
		 "event_time", "allowed clock skew of 15m"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_time\":\"2026-11-29T05:00:00Z\"}",
		 "event_time", "is 1h ahead of the receiver's clock"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_id\":\"\"}",
		 "event_id", "empty"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"event_id\":\"a\\u0001b\"}",
		 "event_id", "not printable UTF-8"},
		{"{\"user_id\":\"u\\nv\",\"event_type\":\"checkout_complete\"}",
		 "user_id", "not printable UTF-8"},
		{"{\"user_id\":\"u\",\"event_type\":\"checkout_complete\","
		 "\"quantiy\":2}",
		 "quantiy", "unknown field"},
		{"{\"user_id\":\"u\",\"event_type\":\"cart_remove\",\"product_"
		 "id\":"
		 "\"FREE_SAMPLE\",\"reason\":5}",
		 "reason", "must be a string"},
	};
	struct cw_catalog *cat = test_catalog();
	struct cw_event_json_opts o = {cat, NOW_MS, SKEW_MS};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		struct cw_event_json_error err = {{0}, {0}};
		char id[CW_UUID_LEN + 1];
		json_error_t jerr;
		json_t *obj = json_loads(c->json, JSON_DECODE_ANY, &jerr);
		struct cw_event ev;
		int r;

		REQUIRE(obj);
		r = cw_event_json_to_event(obj, &o, &ev, id, &err);
		if (r != -EINVAL || strcmp(err.field, c->field) != 0 ||
		    !strstr(err.reason, c->reason_part)) {
			fprintf(stderr,
				"  refused case %zu: r=%d field '%s' reason "
				"'%s' (want '%s' '...%s...')\n",
				i, r, err.field, err.reason, c->field,
				c->reason_part);
			harness_failures++;
		}
		json_decref(obj);
	}
	/* Without a catalog, the reason says so. */
	{
		struct cw_event_json_opts none = {NULL, NOW_MS, SKEW_MS};
		struct cw_event_json_error err;
		char id[CW_UUID_LEN + 1];
		json_t *obj =
			json_pack("{s:s,s:s,s:s}", "user_id", "u", "event_type",
				  "cart_add", "product_id", "MACBOOK_PRO_2023");
		struct cw_event ev;

		REQUIRE(obj);
		CHECK_INT_EQ(cw_event_json_to_event(obj, &none, &ev, id, &err),
			     -EINVAL);
		CHECK_STR_EQ(err.field, "product_id");
		CHECK(strstr(err.reason, "no catalog loaded") != NULL);
		json_decref(obj);
	}
	cw_catalog_destroy(cat);
}

static void test_time(void)
{
	static const struct {
		const char *text;
		int ok;
		int64_t ms;
	} cases[] = {
		{"1970-01-01T00:00:00Z", 1, 0},
		{"2024-02-29T12:00:00.123456789z", 1, INT64_C(1709208000123)},
		{"2024-07-16T09:30:00-07:30", 1, INT64_C(1721149200000)},
		{"9999-12-31T23:59:59.999Z", 1, INT64_C(253402300799999)},
		{"0", 1, 0},
		{"2023-02-29T00:00:00Z", 0, 0},
		{"2024-07-16T09:30:00", 0, 0},
		{"2024-07-16T24:00:00Z", 0, 0},
		{"2024-07-16T09:30:00.Z", 0, 0},
		{"2024-07-16T09:30:00.1234567890Z", 0, 0},
		{"2024-07-16T09:30:00+0200", 0, 0},
		{"2024-07-16T09:30:00Zjunk", 0, 0},
		{"2024-7-16T09:30:00Z", 0, 0},
		{"1234567890123456", 0, 0},
		{"", 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		int r = cw_event_json_parse_time(cases[i].text,
						 strlen(cases[i].text), &ms);
		if ((r == 0) != cases[i].ok || (r == 0 && ms != cases[i].ms)) {
			fprintf(stderr,
				"  time case %zu '%s': r=%d ms=%" PRId64 "\n",
				i, cases[i].text, r, ms);
			harness_failures++;
		}
	}
}

static void test_catalog_files(void)
{
	static const struct {
		const char *csv;
		const char *error_part; /* NULL: accepted */
	} cases[] = {
		{"unit_price_cents,product_id\n5,A\n", NULL},
		{"", "empty"},
		{"product_id,price\nA,5\n", "header must name"},
		{"product_id,unit_price_cents\nA,5\nA,6\n", "listed twice"},
		{"product_id,unit_price_cents\nA,5\nB,-1\n", ":3: unit_price"},
		{"product_id,unit_price_cents\nA,5.5\n", ":2: unit_price"},
		{"product_id,unit_price_cents\nA,10000000001\n", "0..1000"},
		{"product_id,unit_price_cents\n,5\n", ":2: product_id"},
		{"product_id,unit_price_cents\nA\n", "fewer than"},
		{"product_id,unit_price_cents\n\"A,5\n", "malformed"},
		{"product_id,unit_price_cents\n\"A\"x,5\n", "malformed"},
		{"product_id,unit_price_cents,currency\nA,5,euro\n",
		 "currency"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char errstr[256] = "";
		struct cw_catalog *cat =
			cw_catalog_parse(cases[i].csv, strlen(cases[i].csv),
					 "c.csv", errstr, sizeof(errstr));
		bool ok = cases[i].error_part
				  ? !cat && strstr(errstr, cases[i].error_part)
				  : cat != NULL;
		if (!ok) {
			fprintf(stderr, "  catalog case %zu: %s '%s'\n", i,
				cat ? "accepted" : "refused", errstr);
			harness_failures++;
		}
		cw_catalog_destroy(cat);
	}

	struct cw_catalog *cat = test_catalog();
	const struct cw_catalog_item *it;

	CHECK_INT_EQ(cw_catalog_count(cat), 4);
	it = cw_catalog_find(cat, "EURO_KETTLE", 11);
	REQUIRE(it);
	CHECK_INT_EQ(it->unit_price_cents, 4599);
	CHECK_STR_EQ(it->currency, "EUR");
	CHECK(cw_catalog_find(cat, "EURO_KETTL", 10) == NULL);
	CHECK(cw_catalog_find(NULL, "EURO_KETTLE", 11) == NULL);
	cw_catalog_destroy(cat);

	/* Many products: the table grows and every one is found. */
	{
		struct cw_text t = {0};
		char id[32], errstr[128];

		cw_text_printf(&t, "product_id,unit_price_cents\n");
		for (int i = 0; i < 5000; i++)
			cw_text_printf(&t, "P%d,%d\n", i, i);
		REQUIRE(!t.oom);
		cat = cw_catalog_parse(t.buf, t.len, NULL, errstr,
				       sizeof(errstr));
		REQUIRE(cat);
		CHECK_INT_EQ(cw_catalog_count(cat), 5000);
		for (int i = 0; i < 5000; i++) {
			int n = snprintf(id, sizeof(id), "P%d", i);
			it = cw_catalog_find(cat, id, (size_t)n);
			if (!it || it->unit_price_cents != i) {
				fprintf(stderr, "  P%d not found\n", i);
				harness_failures++;
				break;
			}
		}
		cw_catalog_destroy(cat);
		cw_text_free(&t);
	}
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_uuid(void)
{
	static const uint8_t rnd[10] = {0xff, 0xee, 0xdd, 0xcc, 0xbb,
					0xaa, 0x99, 0x88, 0x77, 0x66};
	enum { N = 10000 };
	char(*ids)[CW_UUID_LEN + 1] = calloc(N, sizeof(*ids));
	char out[CW_UUID_LEN + 1];

	/* RFC 9562's example time, 2022-02-22T19:22:22Z = 0x017F22E279B0. */
	cw_uuid_v7_format(INT64_C(0x017F22E279B0), rnd, out);
	CHECK_STR_EQ(out, "017f22e2-79b0-7fee-9dcc-bbaa99887766");

	REQUIRE(ids);
	for (int i = 0; i < N; i++)
		CHECK_INT_EQ(cw_uuid_v7(ids[i]), 0);
	/* Ordered by time to the millisecond: the first 12 hex digits never
	 * go back. */
	for (int i = 1; i < N; i++)
		if (strncmp(ids[i - 1], ids[i], 13) > 0) {
			fprintf(stderr, "  uuid %d goes back in time\n", i);
			harness_failures++;
			break;
		}
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (int i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0) {
			fprintf(stderr, "  duplicate uuid %s\n", ids[i]);
			harness_failures++;
		}
	for (int i = 0; i < N; i++)
		if (ids[i][14] != '7' || !strchr("89ab", ids[i][19])) {
			fprintf(stderr, "  bad version/variant %s\n", ids[i]);
			harness_failures++;
			break;
		}
	free(ids);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"accepted", test_accepted}, {"refused", test_refused},
		{"time", test_time},	     {"catalog", test_catalog_files},
		{"uuid", test_uuid},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
