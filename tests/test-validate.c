/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-validate — the rules of common/cw_validate.c, table-driven: every
 * field at, just inside and just past its bound, malformed UTF-8 of each
 * kind, control characters, and the reason each refusal gives.
 */
#include <errno.h>
#include <string.h>

#include "cw_validate.h"
#include "harness.h"

static void test_utf8(void)
{
	static const struct {
		const char *s;
		size_t len;
		bool ok;
	} cases[] = {
		{"plain ascii", 11, true},
		{"", 0, true},
		{"caf\xc3\xa9", 5, true},	/* é */
		{"\xe2\x82\xac", 3, true},	/* € */
		{"\xf0\x9f\x9b\x92", 4, true},	/* 🛒 */
		{"\xf4\x8f\xbf\xbf", 4, true},	/* U+10FFFF */
		{"ECHO\xff\xfe", 6, false},	/* the audit's id */
		{"\xc3", 1, false},		/* truncated */
		{"\xe2\x82", 2, false},		/* truncated */
		{"\xc0\xaf", 2, false},		/* overlong '/' */
		{"\xe0\x80\xaf", 3, false},	/* overlong */
		{"\xf0\x80\x80\xaf", 4, false}, /* overlong */
		{"\xed\xa0\x80", 3, false},	/* surrogate D800 */
		{"\xf4\x90\x80\x80", 4, false}, /* > U+10FFFF */
		{"\xf5\x80\x80\x80", 4, false}, /* bad lead */
		{"\x80", 1, false},		/* lone continuation */
		{"a\0b", 3, false},		/* NUL */
		{"line\nbreak", 10, false},	/* C0 */
		{"tab\t", 4, false},		/* C0 */
		{"del\x7f", 4, false},		/* DEL */
		{"\xc2\x85", 2, false},		/* C1 (NEL) */
		{"\xc2\xa0", 2, true},		/* NBSP */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = cw_utf8_printable(cases[i].s, cases[i].len);
		if (ok != cases[i].ok) {
			fprintf(stderr, "  utf8 case %zu: got %d\n", i, ok);
			harness_failures++;
		}
	}
}

/* The eight-bytes-at-a-time path: any one byte at any position of a
 * printable ASCII string (past several words) is judged as it is alone;
 * multi-byte characters across a word boundary. */
static void test_utf8_words(void)
{
	char s[27];

	for (int pos = 0; pos < 26; pos++) {
		for (int b = 0; b < 256; b++) {
			memcpy(s, "abcdefghijklmnopqrstuvwxyz", 26);
			s[pos] = (char)b;
			bool want = b >= 0x20 && b < 0x7f;
			if (cw_utf8_printable(s, 26) != want) {
				fprintf(stderr, "  byte %#x at %d\n", b, pos);
				harness_failures++;
			}
		}
	}
	CHECK(cw_utf8_printable("1234567\xc3\xa9"
				"abcdefgh\xe2\x82\xac",
				20));
	CHECK(!cw_utf8_printable("1234567\xc3\xc3"
				 "abcdefgh",
				 17));
	CHECK(!cw_utf8_printable("12345678abcdefg\xc2\x85", 17));
	CHECK(!cw_utf8_printable("12345678abcdefgh\x7f", 17));
}

/* A valid cart_add to start every case from. */
static struct cw_event base(void)
{
	struct cw_event ev;

	cw_event_init(&ev);
	ev.event_id = cw_str_c("0190a1b2-0000-7000-8000-000000000001");
	ev.type = CW_EVENT_CART_ADD;
	ev.event_time_ms = 1783468800000; /* 2026-07-08 */
	ev.user_id = cw_str_c("user_1");
	ev.product_id = cw_str_c("MACBOOK_PRO_2023");
	ev.quantity = 1;
	ev.unit_price_cents = 199900;
	return ev;
}

static char long_buf[70000];

static struct cw_str repeat(size_t n)
{
	memset(long_buf, 'x', n);
	return (struct cw_str){long_buf, n};
}

enum field { F_NONE, F_USER, F_PRODUCT, F_REASON, F_EVENT_ID, F_CURRENCY };

static void test_events(void)
{
	static const struct {
		const char *name;
		enum field field; /* string field set to @s / @len */
		const char *s;
		size_t len;    /* 0 with s NULL: absent; else repeat(len) */
		int type;      /* -1: cart_add */
		int64_t time;  /* 0: keep */
		int64_t qty;   /* 0: keep */
		int64_t price; /* -2: keep */
		const char *reason_has; /* NULL: valid */
	} cases[] = {
		{"valid cart_add", F_NONE, NULL, 0, -1, 0, 0, -2, NULL},
		{"user_id empty", F_USER, "", 0, -1, 0, 0, -2,
		 "user_id is empty"},
		{"user_id 256 bytes", F_USER, NULL, 256, -1, 0, 0, -2, NULL},
		{"user_id 257 bytes", F_USER, NULL, 257, -1, 0, 0, -2,
		 "user_id is 257 bytes long (at most 256)"},
		{"user_id 65,536 bytes (uint16 wrap)", F_USER, NULL, 65536, -1,
		 0, 0, -2, "user_id is 65536 bytes"},
		{"user_id invalid UTF-8", F_USER, "u\xff", 2, -1, 0, 0, -2,
		 "user_id is not printable UTF-8"},
		{"product_id invalid UTF-8", F_PRODUCT, "ECHO\xff\xfe", 6, -1,
		 0, 0, -2, "product_id is not printable UTF-8"},
		{"product_id of 10 KB", F_PRODUCT, NULL, 10240, -1, 0, 0, -2,
		 "product_id is 10240 bytes long"},
		{"product_id absent on cart_add", F_PRODUCT, NULL, 0, -1, 0, 0,
		 -2, "product_id is empty"},
		{"product_id absent on checkout", F_PRODUCT, NULL, 0,
		 CW_EVENT_CHECKOUT_COMPLETE, 0, 0, -2, NULL},
		{"reason of 10 KB", F_REASON, NULL, 10240, CW_EVENT_CART_REMOVE,
		 0, 0, -2, "reason is 10240 bytes long"},
		{"reason with a newline", F_REASON, "a\nb", 3,
		 CW_EVENT_CART_REMOVE, 0, 0, -2,
		 "reason is not printable UTF-8"},
		{"reason UTF-8", F_REASON, "Trop cher \xe2\x82\xac", 13,
		 CW_EVENT_CART_REMOVE, 0, 0, -2, NULL},
		{"event_id 65 bytes", F_EVENT_ID, NULL, 65, -1, 0, 0, -2,
		 "event_id is 65 bytes long (at most 64)"},
		{"currency lower case", F_CURRENCY, "usd", 3, -1, 0, 0, -2,
		 "currency must be 3 capital letters"},
		{"currency 4 letters", F_CURRENCY, "EURO", 4, -1, 0, 0, -2,
		 "currency must be 3 capital letters"},
		{"currency EUR", F_CURRENCY, "EUR", 3, -1, 0, 0, -2, NULL},
		{"event_time -1 (before 1970)", F_NONE, NULL, 0, -1, -1, 0, -2,
		 "event_time -1 is before 1970"},
		{"event_time 1970-01-01", F_NONE, NULL, 0, -1, 1, 0, -2, NULL},
		{"event_time 9999-12-31T23:59:59.999Z", F_NONE, NULL, 0, -1,
		 CW_EVENT_MAX_TIME_MS, 0, -2, NULL},
		{"event_time 1e16", F_NONE, NULL, 0, -1, 10000000000000000, 0,
		 -2, "is after 9999-12-31"},
		{"event_time INT64_MAX", F_NONE, NULL, 0, -1, INT64_MAX, 0, -2,
		 "is after 9999-12-31"},
		{"event_time INT64_MIN", F_NONE, NULL, 0, -1, INT64_MIN, 0, -2,
		 "is before 1970"},
		{"quantity 0", F_NONE, NULL, 0, -1, 0, -5, -2,
		 "quantity -5 is not in 1..1000000"},
		{"quantity at the bound", F_NONE, NULL, 0, -1, 0,
		 CW_EVENT_MAX_QUANTITY, -2, NULL},
		{"quantity past the bound", F_NONE, NULL, 0, -1, 0,
		 CW_EVENT_MAX_QUANTITY + 1, -2,
		 "quantity 1000001 is not in 1..1000000"},
		{"quantity ignored on checkout", F_NONE, NULL, 0,
		 CW_EVENT_CHECKOUT_COMPLETE, 0, -5, -2, NULL},
		{"price negative", F_NONE, NULL, 0, -1, 0, 0, -1,
		 "unit_price_cents -1 is not in 0..10000000000"},
		{"price 0", F_NONE, NULL, 0, -1, 0, 0, 0, NULL},
		{"price at the bound", F_NONE, NULL, 0, -1, 0, 0,
		 CW_EVENT_MAX_PRICE_CENTS, NULL},
		{"price INT64_MAX", F_NONE, NULL, 0, -1, 0, 0, INT64_MAX,
		 "unit_price_cents 9223372036854775807 is not in"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cw_event ev = base();
		struct cw_str s =
			cases[i].s ? (struct cw_str){cases[i].s, cases[i].len}
			: cases[i].len ? repeat(cases[i].len)
				       : CW_STR_NULL;
		char why[256] = "";
		int r;

		if (cases[i].type >= 0)
			ev.type = (enum cw_event_type)cases[i].type;
		if (cases[i].field == F_USER)
			ev.user_id = s;
		else if (cases[i].field == F_PRODUCT)
			ev.product_id = s;
		else if (cases[i].field == F_REASON)
			ev.reason = s;
		else if (cases[i].field == F_EVENT_ID)
			ev.event_id = s;
		else if (cases[i].field == F_CURRENCY)
			ev.currency = s;
		if (cases[i].time)
			ev.event_time_ms = cases[i].time;
		if (cases[i].qty)
			ev.quantity = (int32_t)cases[i].qty;
		if (cases[i].price != -2)
			ev.unit_price_cents = cases[i].price;
		r = cw_event_validate(&ev, why, sizeof(why));
		if (!cases[i].reason_has) {
			if (r != 0) {
				fprintf(stderr, "  %s: refused: %s\n",
					cases[i].name, why);
				harness_failures++;
			}
			continue;
		}
		if (r != -EINVAL || !strstr(why, cases[i].reason_has)) {
			fprintf(stderr,
				"  %s: r=%d reason \"%s\", want \"%s\"\n",
				cases[i].name, r, why, cases[i].reason_has);
			harness_failures++;
		}
		/* A reason never carries the offending bytes. */
		CHECK(cw_utf8_printable(why, strlen(why)));
	}
}

/* The key must be the user_id, byte for byte; no key is refused too. */
static void test_key(void)
{
	struct cw_event ev = base();

	CHECK(cw_event_key_mismatch("user_1", 6, &ev) == NULL);
	CHECK(strstr(cw_event_key_mismatch(NULL, 0, &ev), "no key"));
	CHECK(strstr(cw_event_key_mismatch("user_2", 6, &ev), "differs"));
	CHECK(strstr(cw_event_key_mismatch("user_1x", 7, &ev), "differs"));
	CHECK(strstr(cw_event_key_mismatch("user_", 5, &ev), "differs"));
	CHECK(strstr(cw_event_key_mismatch("", 0, &ev), "differs"));
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"utf8", test_utf8},
		{"utf8_words", test_utf8_words},
		{"events", test_events},
		{"key", test_key},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
