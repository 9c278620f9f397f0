/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_validate — semantic rules for cart events. See cw_validate.h.
 */
#include "cw_validate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cw_avro.h"

bool cw_utf8_printable(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;

	/* Eight bytes at a time while they are all printable ASCII (0x20..
	 * 0x7e): no high bit, no byte below 0x20, none equal to 0x7f. The
	 * tests find every such byte (they may also flag a good byte above a
	 * bad one, which only hands the word to the loop below), so a word
	 * skipped here is one the loop would have passed. */
	while (end - p >= 8) {
		uint64_t x, del;
		memcpy(&x, p, sizeof(x));
		del = x ^ (0x7f * ones);
		if ((x & highs) || ((x - 0x20 * ones) & ~x & highs) ||
		    ((del - ones) & ~del & highs))
			break;
		p += 8;
	}
	while (p < end) {
		unsigned c = *p;
		size_t n;
		uint32_t cp, min;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return false; /* continuation byte, 0xc0/0xc1, > 0xf4 */
		if ((size_t)(end - p) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		/* C1 controls (U+0080..U+009F) are as unprintable as C0. */
		if (cp < 0xa0)
			return false;
		p += n + 1;
	}
	return true;
}

/* A string field: present when @required, at most @max bytes, printable
 * UTF-8. Returns 0 or the refusal. */
static int check_string(const char *field, struct cw_str s, bool required,
			size_t max, char *errstr, size_t errstr_size)
{
	if (!s.ptr || !s.len) {
		if (required)
			return cw_avro_fail(errstr, errstr_size, -EINVAL,
					    "%s is empty", field);
		return 0;
	}
	if (s.len > max)
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "%s is %zu bytes long (at most %zu)", field,
				    s.len, max);
	if (!cw_utf8_printable(s.ptr, s.len))
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "%s is not printable UTF-8 (invalid byte "
				    "sequence or control character)",
				    field);
	return 0;
}

int cw_event_validate(const struct cw_event *ev, char *errstr,
		      size_t errstr_size)
{
	bool item = ev->type != CW_EVENT_CHECKOUT_COMPLETE;
	const struct cw_str *c = &ev->currency;
	int r;

	if ((r = check_string("user_id", ev->user_id, true, CW_EVENT_MAX_ID_LEN,
			      errstr, errstr_size)) ||
	    (r = check_string("event_id", ev->event_id, false,
			      CW_EVENT_MAX_EVENT_ID_LEN, errstr,
			      errstr_size)) ||
	    (r = check_string("product_id", ev->product_id, item,
			      CW_EVENT_MAX_ID_LEN, errstr, errstr_size)) ||
	    (r = check_string("reason", ev->reason, false,
			      CW_EVENT_MAX_REASON_LEN, errstr, errstr_size)))
		return r;
	if (!c->ptr || c->len != 3 || c->ptr[0] < 'A' || c->ptr[0] > 'Z' ||
	    c->ptr[1] < 'A' || c->ptr[1] > 'Z' || c->ptr[2] < 'A' ||
	    c->ptr[2] > 'Z')
		return cw_avro_fail(
			errstr, errstr_size, -EINVAL,
			"currency must be 3 capital letters (ISO 4217)");
	if (ev->event_time_ms < CW_EVENT_MIN_TIME_MS)
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "event_time %" PRId64
				    " is before 1970-01-01T00:00:00Z",
				    ev->event_time_ms);
	if (ev->event_time_ms > CW_EVENT_MAX_TIME_MS)
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "event_time %" PRId64
				    " is after 9999-12-31T23:59:59.999Z",
				    ev->event_time_ms);
	if (!item)
		return 0;
	if (ev->quantity <= 0 || ev->quantity > CW_EVENT_MAX_QUANTITY)
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "quantity %" PRId32 " is not in 1..%d",
				    ev->quantity, CW_EVENT_MAX_QUANTITY);
	if (ev->unit_price_cents < 0 ||
	    ev->unit_price_cents > CW_EVENT_MAX_PRICE_CENTS)
		return cw_avro_fail(
			errstr, errstr_size, -EINVAL,
			"unit_price_cents %" PRId64 " is not in 0..%" PRId64,
			ev->unit_price_cents, CW_EVENT_MAX_PRICE_CENTS);
	return 0;
}

const char *cw_event_key_mismatch(const void *key, size_t key_len,
				  const struct cw_event *ev)
{
	if (!key)
		return "record has no key (the key must be the user_id)";
	if (key_len != ev->user_id.len ||
	    (key_len && memcmp(key, ev->user_id.ptr, key_len) != 0))
		return "record key differs from the body's user_id (the key "
		       "chooses the partition and must be the user_id)";
	return NULL;
}
