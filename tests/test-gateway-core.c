/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-gateway-core — the gateway's request logic without a server:
 * gateway/idem.c (first sight, in progress, replay, abandon, expiry, the
 * size bound) and gateway/ingest.c (framings, all-or-nothing, 400 with
 * line and column, 422 with index and line, messages keyed by user_id that
 * decode to the events sent).
 */
#include <errno.h>

#include "cw_event.h"
#include "harness.h"
#include "idem.h"
#include "ingest.h"

static void test_idem(void)
{
	struct idem_cache *c = idem_new(2, 1000);
	uint64_t t1, t2, t3, t;
	unsigned status = 0;
	char *body = NULL;
	size_t len = 0;

	REQUIRE(c);
	CHECK_INT_EQ(idem_begin(c, "a", 1, 0, &t1, &status, &body, &len),
		     IDEM_NEW);
	CHECK(t1 != 0);
	CHECK_INT_EQ(idem_begin(c, "a", 1, 10, &t, &status, &body, &len),
		     IDEM_PENDING);
	idem_finish(c, "a", 1, t1, 202, "{\"accepted\":1}", 14, 100);
	CHECK_INT_EQ(idem_begin(c, "a", 1, 200, &t, &status, &body, &len),
		     IDEM_DONE);
	CHECK_INT_EQ(status, 202);
	CHECK(len == 14 && body && memcmp(body, "{\"accepted\":1}", 14) == 0);
	free(body);
	body = NULL;
	/* Abandoned: the retry runs. */
	CHECK_INT_EQ(idem_begin(c, "b", 1, 200, &t2, &status, &body, &len),
		     IDEM_NEW);
	idem_abandon(c, "b", 1, t2);
	CHECK_INT_EQ(idem_begin(c, "b", 1, 210, &t2, &status, &body, &len),
		     IDEM_NEW);
	CHECK_INT_EQ(idem_count(c), 2);
	/* Full (2): a third key forgets the oldest, "a". */
	CHECK_INT_EQ(idem_begin(c, "c", 1, 220, &t3, &status, &body, &len),
		     IDEM_NEW);
	CHECK_INT_EQ(idem_count(c), 2);
	idem_finish(c, "b", 1, t2, 422, "x", 1, 230);
	CHECK_INT_EQ(idem_begin(c, "a", 1, 240, &t, &status, &body, &len),
		     IDEM_NEW); /* evicted "c" (pending, oldest) */
	idem_finish(c, "c", 1, t3, 202, "y", 1, 250); /* gone: no-op */
	CHECK_INT_EQ(idem_begin(c, "b", 1, 260, &t, &status, &body, &len),
		     IDEM_DONE);
	CHECK_INT_EQ(status, 422);
	free(body);
	body = NULL;
	/* Expired after the ttl from its answer (230 + 1000). */
	CHECK_INT_EQ(idem_begin(c, "b", 1, 1231, &t, &status, &body, &len),
		     IDEM_NEW);
	idem_destroy(c);

	c = idem_new(0, 1000); /* remembers nothing */
	REQUIRE(c);
	CHECK_INT_EQ(idem_begin(c, "a", 1, 0, &t, &status, &body, &len),
		     IDEM_NEW);
	CHECK_INT_EQ(t, 0);
	CHECK_INT_EQ(idem_begin(c, "a", 1, 0, &t, &status, &body, &len),
		     IDEM_NEW);
	idem_destroy(c);
}

/* 2026-11-29T04:00:00Z */
#define NOW_MS INT64_C(1795924800000)

static void test_ingest(void)
{
	struct cw_event_json_opts o = {NULL, NOW_MS, 900000};
	struct ingest_batch b = {0};
	const char *nd =
		"{\"user_id\":\"a\",\"event_type\":\"checkout_complete\"}"
		"\n\r\n"
		"{\"user_id\":\"bb\",\"event_type\":\"cart_add\","
		"\"product_id\":\"P\",\"unit_price_cents\":5}\n";
	struct cw_event ev;
	char errstr[128];
	json_t *e;

	CHECK_INT_EQ(ingest_parse(&b, nd, strlen(nd), INGEST_NDJSON, &o), 0);
	CHECK_INT_EQ(b.status, 0);
	REQUIRE(b.n == 2);
	CHECK(b.msgs[1].key_len == 2 &&
	      memcmp(b.buf + b.msgs[1].key_off, "bb", 2) == 0);
	CHECK_INT_EQ(cw_event_decode((uint8_t *)b.buf + b.msgs[1].value_off,
				     b.msgs[1].value_len, &ev, errstr,
				     sizeof(errstr)),
		     0);
	CHECK_INT_EQ(ev.type, CW_EVENT_CART_ADD);
	CHECK_INT_EQ(ev.unit_price_cents, 5);
	CHECK_INT_EQ(ev.event_time_ms, NOW_MS);
	ingest_batch_free(&b);

	/* One bad line: nothing, the error names index and line. */
	nd = "{\"user_id\":\"a\",\"event_type\":\"checkout_complete\"}\n\n"
	     "{\"user_id\":\"b\",\"event_type\":\"cart_add\",\"product_id\":"
	     "\"P\"}\n";
	CHECK_INT_EQ(ingest_parse(&b, nd, strlen(nd), INGEST_NDJSON, &o), 0);
	CHECK_INT_EQ(b.status, 422);
	CHECK_INT_EQ(b.n, 0);
	e = json_array_get(json_object_get(b.answer, "errors"), 0);
	CHECK_INT_EQ(json_integer_value(json_object_get(e, "index")), 1);
	CHECK_INT_EQ(json_integer_value(json_object_get(e, "line")), 3);
	CHECK_STR_EQ(json_string_value(json_object_get(e, "field")),
		     "product_id");
	CHECK_INT_EQ(b.rejected[2], 1); /* product_id */
	ingest_batch_free(&b);

	nd = "{\"user_id\":\"a\"}\n{\"user_id\" \"b\"}\n";
	CHECK_INT_EQ(ingest_parse(&b, nd, strlen(nd), INGEST_NDJSON, &o), 0);
	CHECK_INT_EQ(b.status, 400);
	CHECK_INT_EQ(json_integer_value(json_object_get(b.answer, "line")), 2);
	CHECK_INT_EQ(json_integer_value(json_object_get(b.answer, "column")),
		     14); /* jansson: the end of the bad token */
	ingest_batch_free(&b);

	static const char *const bad400[] = {
		"", "  ", "[]", "\"x\"", "{} {}", "{\"a\":1,\"a\":2}"};
	for (size_t i = 0; i < sizeof(bad400) / sizeof(bad400[0]); i++) {
		CHECK_INT_EQ(ingest_parse(&b, bad400[i], strlen(bad400[i]),
					  INGEST_JSON, &o),
			     0);
		if (b.status != 400)
			fprintf(stderr, "  '%s': status %u\n", bad400[i],
				b.status);
		CHECK_INT_EQ(b.status, 400);
		ingest_batch_free(&b);
	}
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"idem", test_idem},
		{"ingest", test_ingest},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
