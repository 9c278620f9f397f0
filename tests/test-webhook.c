/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-webhook — notify/webhook.c without I/O: the signature against a
 * vector computed with `openssl dgst -hmac`, the verdict on each kind of
 * answer, backoff bounds and Retry-After parsing, and the JSON body
 * (fields, null reason, URL-encoded cart_url, refusal of non-UTF-8).
 */
#include <jansson.h>

#include "harness.h"
#include "webhook.h"

static void test_sign(void)
{
	char out[128];

	/* printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac sekret */
	CHECK_INT_EQ(webhook_sign("sekret", 6, 1700000000, "{\"a\":1}", 7, out,
				  sizeof(out)),
		     0);
	CHECK_STR_EQ(out, "t=1700000000,v1=10be3b6b2644ed2b13d525be7004b23fae6"
			  "ab58a4646a0a4b89a0fb5ef23c7b8");
	CHECK_INT_EQ(webhook_sign("sekret", 6, 1, "{}", 2, out, 40), -EINVAL);
}

static void test_verdict(void)
{
	CHECK_INT_EQ(webhook_verdict(200), WEBHOOK_DELIVERED);
	CHECK_INT_EQ(webhook_verdict(204), WEBHOOK_DELIVERED);
	CHECK_INT_EQ(webhook_verdict(0), WEBHOOK_RETRY);
	CHECK_INT_EQ(webhook_verdict(408), WEBHOOK_RETRY);
	CHECK_INT_EQ(webhook_verdict(429), WEBHOOK_RETRY);
	CHECK_INT_EQ(webhook_verdict(500), WEBHOOK_RETRY);
	CHECK_INT_EQ(webhook_verdict(503), WEBHOOK_RETRY);
	CHECK_INT_EQ(webhook_verdict(301), WEBHOOK_REFUSED);
	CHECK_INT_EQ(webhook_verdict(400), WEBHOOK_REFUSED);
	CHECK_INT_EQ(webhook_verdict(401), WEBHOOK_REFUSED);
	CHECK_INT_EQ(webhook_verdict(404), WEBHOOK_REFUSED);
}

static void test_backoff(void)
{
	CHECK_INT_EQ(webhook_backoff_ms(1, 1000, 60000, -1, 0), 500);
	CHECK(webhook_backoff_ms(1, 1000, 60000, -1, 0.999) <= 1000);
	CHECK_INT_EQ(webhook_backoff_ms(3, 1000, 60000, -1, 0), 2000);
	CHECK(webhook_backoff_ms(3, 1000, 60000, -1, 0.999) <= 4000);
	CHECK_INT_EQ(webhook_backoff_ms(40, 1000, 60000, -1, 0), 30000);
	CHECK(webhook_backoff_ms(40, 1000, 60000, -1, 0.999) <= 60000);
	CHECK_INT_EQ(webhook_backoff_ms(1, 1000, 60000, 5000, 0.5), 5000);
	CHECK_INT_EQ(webhook_backoff_ms(1, 1000, 60000, 0, 0.5), 0);
	CHECK_INT_EQ(webhook_backoff_ms(1, 1000, 60000, 999999, 0.5), 60000);

	CHECK_INT_EQ(webhook_retry_after_ms("5", 0), 5000);
	CHECK_INT_EQ(webhook_retry_after_ms(" 12 \r\n", 0), 12000);
	CHECK_INT_EQ(webhook_retry_after_ms("abc", 0), -1);
	CHECK_INT_EQ(webhook_retry_after_ms("5s", 0), -1);
	CHECK_INT_EQ(webhook_retry_after_ms("99999999999", 0), -1);
	CHECK_INT_EQ(webhook_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT",
					    1445412480 - 10),
		     10000);
	CHECK_INT_EQ(webhook_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT",
					    1445412480 + 10),
		     0);
}

static struct cw_abandonment sample(struct cw_abandoned_item *items)
{
	items[0] = (struct cw_abandoned_item){cw_str_c("SKU-1"), 2, 1999};
	items[1] = (struct cw_abandoned_item){cw_str_c("SKU-2"), 1, 500};
	return (struct cw_abandonment){
		.abandonment_id =
			cw_str_c("019f3f06-4407-865c-95aa-137acb97e7ea"),
		.user_id = cw_str_c("a b/\xc3\xa9"),
		.session_start_ms = 1783468800000,
		.last_activity_at_ms = 1783468860000,
		.abandoned_at_ms = 1783470660123,
		.items = items,
		.n_items = 2,
		.item_count = 3,
		.cart_value_cents = 4498,
		.currency = cw_str_c("USD"),
		.last_remove_reason = CW_STR_NULL,
	};
}

static void test_body(void)
{
	struct cw_abandoned_item items[2];
	struct cw_abandonment ab = sample(items);
	json_error_t err;
	char *text = webhook_body(&ab, "https://x/c?u={user_id}&a={"
				       "abandonment_id}&{other}");
	json_t *o, *it;

	REQUIRE(text);
	o = json_loads(text, 0, &err);
	REQUIRE(o);
	CHECK_STR_EQ(json_string_value(json_object_get(o, "abandonment_id")),
		     "019f3f06-4407-865c-95aa-137acb97e7ea");
	CHECK_STR_EQ(json_string_value(json_object_get(o, "user_id")),
		     "a b/\xc3\xa9");
	CHECK_STR_EQ(json_string_value(json_object_get(o, "session_start")),
		     "2026-07-08T00:00:00.000Z");
	CHECK_STR_EQ(json_string_value(json_object_get(o, "abandoned_at")),
		     "2026-07-08T00:31:00.123Z");
	CHECK_INT_EQ(json_integer_value(json_object_get(o, "item_count")), 3);
	CHECK_INT_EQ(json_integer_value(json_object_get(o, "cart_value_cents")),
		     4498);
	CHECK_STR_EQ(json_string_value(json_object_get(o, "currency")), "USD");
	CHECK(json_is_null(json_object_get(o, "last_remove_reason")));
	CHECK_STR_EQ(json_string_value(json_object_get(o, "cart_url")),
		     "https://x/c?u=a%20b%2F%C3%A9&a=019f3f06-4407-865c-95aa-"
		     "137acb97e7ea&{other}");
	it = json_array_get(json_object_get(o, "items"), 1);
	CHECK_INT_EQ(json_array_size(json_object_get(o, "items")), 2);
	CHECK_STR_EQ(json_string_value(json_object_get(it, "product_id")),
		     "SKU-2");
	CHECK_INT_EQ(json_integer_value(json_object_get(it, "quantity")), 1);
	CHECK_INT_EQ(
		json_integer_value(json_object_get(it, "unit_price_cents")),
		500);
	json_decref(o);
	free(text);

	/* No template: no cart_url. A reason is a string. */
	ab.last_remove_reason = cw_str_c("too expensive");
	text = webhook_body(&ab, NULL);
	REQUIRE(text);
	CHECK(!strstr(text, "cart_url"));
	CHECK(strstr(text, "\"last_remove_reason\":\"too expensive\""));
	free(text);

	/* Not UTF-8: no body (the daemon dead-letters the record). */
	ab.user_id = cw_str_c("bad\xff");
	CHECK(webhook_body(&ab, NULL) == NULL);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"sign", test_sign},
		{"verdict", test_verdict},
		{"backoff", test_backoff},
		{"body", test_body},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
