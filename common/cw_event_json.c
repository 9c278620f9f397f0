/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_event_json — JSON object to cart event. See cw_event_json.h.
 */
#include "cw_event_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cw_config.h"
#include "cw_validate.h"

static const char *const known_fields[] = {
	"user_id",	    "event_type", "product_id", "reason",   "quantity",
	"unit_price_cents", "currency",	  "event_time", "event_id",
};
#define N_KNOWN (sizeof(known_fields) / sizeof(known_fields[0]))

/* Copy at most @len bytes of @s into @out as printable ASCII, for
 * quoting input in a reason. */
static const char *ascii(const char *s, size_t len, char *out, size_t size)
{
	size_t i;

	for (i = 0; i < len && i + 1 < size; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' &&
					 s[i] != '\\'
				 ? s[i]
				 : '?';
	out[i] = '\0';
	return out;
}

__attribute__((format(printf, 3, 4))) static int
refuse(struct cw_event_json_error *err, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -EINVAL;
	ascii(field, strlen(field), err->field, sizeof(err->field));
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Field @name as a string view: CW_STR_NULL when absent or null. */
static int get_string(const json_t *obj, const char *name, bool required,
		      struct cw_str *out, struct cw_event_json_error *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = CW_STR_NULL;
	if (!v || json_is_null(v))
		return required ? refuse(err, name, "missing (required)") : 0;
	if (!json_is_string(v))
		return refuse(err, name, "must be a string");
	out->ptr = json_string_value(v);
	out->len = json_string_length(v);
	if (out->len == 0)
		return refuse(err, name, "is empty");
	return 0;
}

/* Field @name as an integer; *@present false when absent or null. */
static int get_int(const json_t *obj, const char *name, int64_t *out,
		   bool *present, struct cw_event_json_error *err)
{
	const json_t *v = json_object_get(obj, name);

	*present = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return refuse(err, name, "must be a whole number");
	*out = json_integer_value(v);
	*present = true;
	return 0;
}

static int digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (*p >= end || **p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

/* Days from 1970-01-01 to @y-@m-@d (proleptic Gregorian), after Howard
 * Hinnant's days_from_civil. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dim[] = {31, 28, 31, 30, 31, 30,
				  31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

int cw_event_json_parse_time(const char *text, size_t len, int64_t *ms)
{
	const char *p = text, *end = text + len;
	int year, mon, day, hour, min, sec, frac = 0, off = 0;
	int64_t v = 0;

	if (len == 0)
		return -EINVAL;
	if (strspn(text, "0123456789") >= len) {
		if (len > 15) /* beyond year 9999 anyway */
			return -EINVAL;
		for (size_t i = 0; i < len; i++)
			v = v * 10 + (text[i] - '0');
		*ms = v;
		return 0;
	}
	if (digits(&p, end, 4, &year) || p >= end || *p++ != '-' ||
	    digits(&p, end, 2, &mon) || p >= end || *p++ != '-' ||
	    digits(&p, end, 2, &day) || p >= end ||
	    (*p != 'T' && *p != 't' && *p != ' '))
		return -EINVAL;
	p++;
	if (digits(&p, end, 2, &hour) || p >= end || *p++ != ':' ||
	    digits(&p, end, 2, &min) || p >= end || *p++ != ':' ||
	    digits(&p, end, 2, &sec))
		return -EINVAL;
	if (p < end && *p == '.') {
		int n = 0, scale = 100;

		for (p++; p < end && *p >= '0' && *p <= '9'; p++, n++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
		if (n == 0 || n > 9)
			return -EINVAL;
	}
	if (p < end && (*p == 'Z' || *p == 'z')) {
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		int sign = *p++ == '-' ? -1 : 1, oh, om;

		if (digits(&p, end, 2, &oh) || p >= end || *p++ != ':' ||
		    digits(&p, end, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 60 + om);
	} else {
		return -EINVAL;
	}
	if (p != end || mon < 1 || mon > 12 || day < 1 ||
	    day > days_in_month(year, mon) || hour > 23 || min > 59 || sec > 60)
		return -EINVAL;
	/* A leap second (:60) is the last instant of its minute. */
	if (sec == 60) {
		sec = 59;
		frac = 999;
	}
	v = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 +
	    sec - (int64_t)off * 60;
	*ms = v * 1000 + frac;
	return 0;
}

/* The field a cw_event_validate() reason is about: its first word when
 * that is a field name. */
static const char *validate_field(const char *reason)
{
	for (size_t i = 0; i < N_KNOWN; i++) {
		size_t n = strlen(known_fields[i]);
		if (strncmp(reason, known_fields[i], n) == 0 &&
		    reason[n] == ' ')
			return known_fields[i];
	}
	return "event";
}

static int fill_time(const json_t *obj, const struct cw_event_json_opts *o,
		     struct cw_event *ev, struct cw_event_json_error *err)
{
	const json_t *tv = json_object_get(obj, "event_time");
	char q[48], d1[32], d2[32];

	if (!tv || json_is_null(tv)) {
		ev->event_time_ms = o->now_ms;
		return 0;
	}
	if (json_is_integer(tv)) {
		ev->event_time_ms = json_integer_value(tv);
	} else if (json_is_string(tv)) {
		if (cw_event_json_parse_time(json_string_value(tv),
					     json_string_length(tv),
					     &ev->event_time_ms))
			return refuse(err, "event_time",
				      "'%s' is neither RFC 3339 with a time "
				      "zone (2024-07-16T09:30:00Z) nor epoch "
				      "milliseconds",
				      ascii(json_string_value(tv),
					    json_string_length(tv), q,
					    sizeof(q)));
	} else {
		return refuse(err, "event_time",
			      "must be epoch milliseconds or an RFC 3339 "
			      "string");
	}
	if (ev->event_time_ms < CW_EVENT_MIN_TIME_MS ||
	    ev->event_time_ms > CW_EVENT_MAX_TIME_MS)
		return refuse(err, "event_time",
			      "%" PRId64 " ms is outside 1970-01-01 .. "
			      "9999-12-31",
			      ev->event_time_ms);
	if (o->max_skew_ms > 0 && ev->event_time_ms > o->now_ms &&
	    ev->event_time_ms - o->now_ms > o->max_skew_ms)
		return refuse(
			err, "event_time",
			"is %s ahead of the receiver's clock, more than the "
			"allowed clock skew of %s",
			cw_duration_format((ev->event_time_ms - o->now_ms) /
						   1000 * 1000,
					   d1, sizeof(d1)),
			cw_duration_format(o->max_skew_ms, d2, sizeof(d2)));
	return 0;
}

int cw_event_json_to_event(const json_t *obj,
			   const struct cw_event_json_opts *o,
			   struct cw_event *ev, char id_buf[CW_UUID_LEN + 1],
			   struct cw_event_json_error *err)
{
	const struct cw_catalog_item *item = NULL;
	struct cw_str type;
	const char *key;
	const json_t *value;
	char q[72], reason[192];
	int64_t v;
	bool present, has_item;
	int r;

	cw_event_init(ev);
	if (!json_is_object(obj))
		return refuse(err, "event", "is not a JSON object");
	json_object_foreach((json_t *)obj, key, value)
	{
		size_t i;

		for (i = 0; i < N_KNOWN; i++)
			if (strcmp(key, known_fields[i]) == 0)
				break;
		if (i == N_KNOWN)
			return refuse(err, key,
				      "unknown field (see "
				      "docs/json-events.md)");
	}
	if ((r = get_string(obj, "user_id", true, &ev->user_id, err)) ||
	    (r = get_string(obj, "event_type", true, &type, err)))
		return r;
	if (cw_event_type_parse(type.ptr, type.len, &ev->type))
		return refuse(err, "event_type",
			      "'%s' is not cart_add, cart_remove or "
			      "checkout_complete",
			      ascii(type.ptr, type.len, q, 40));
	has_item = ev->type != CW_EVENT_CHECKOUT_COMPLETE;
	if ((r = get_string(obj, "product_id", has_item, &ev->product_id,
			    err)) ||
	    (r = get_string(obj, "reason", false, &ev->reason, err)) ||
	    (r = get_string(obj, "event_id", false, &ev->event_id, err)) ||
	    (r = get_string(obj, "currency", false, &ev->currency, err)))
		return r;

	if ((r = get_int(obj, "quantity", &v, &present, err)))
		return r;
	if (present && (v < 1 || v > CW_EVENT_MAX_QUANTITY))
		return refuse(err, "quantity", "%" PRId64 " is not in 1..%d", v,
			      CW_EVENT_MAX_QUANTITY);
	if (present)
		ev->quantity = (int32_t)v;

	if ((r = get_int(obj, "unit_price_cents", &v, &present, err)))
		return r;
	if (present && (v < 0 || v > CW_EVENT_MAX_PRICE_CENTS))
		return refuse(err, "unit_price_cents",
			      "%" PRId64 " is not in 0..%" PRId64, v,
			      CW_EVENT_MAX_PRICE_CENTS);
	if (present) {
		ev->unit_price_cents = v;
	} else if (has_item) {
		/* Never a silent 0: revenue figures are sums of these. */
		item = cw_catalog_find(o->catalog, ev->product_id.ptr,
				       ev->product_id.len);
		if (!item)
			return refuse(
				err, "product_id",
				"unknown product '%s': no unit_price_cents "
				"given and %s",
				ascii(ev->product_id.ptr, ev->product_id.len, q,
				      64),
				o->catalog ? "not in the catalog"
					   : "no catalog loaded");
		ev->unit_price_cents = item->unit_price_cents;
	}

	if (item && item->currency[0]) {
		if (ev->currency.ptr &&
		    !cw_str_eq(ev->currency, cw_str_c(item->currency)))
			return refuse(
				err, "currency",
				"'%s' differs from the catalog's %s for "
				"the product's price",
				ascii(ev->currency.ptr, ev->currency.len, q, 8),
				item->currency);
		ev->currency = (struct cw_str){item->currency, 3};
	} else if (!ev->currency.ptr) {
		ev->currency = (struct cw_str){"USD", 3};
	}

	if ((r = fill_time(obj, o, ev, err)))
		return r;

	if (ev->event_id.ptr) {
		/* kept as given: a client's retry must keep its id */
	} else if ((r = cw_uuid_v7(id_buf)) < 0) {
		if (err) {
			snprintf(err->field, sizeof(err->field), "event_id");
			snprintf(err->reason, sizeof(err->reason),
				 "cannot be generated: getrandom: %s",
				 strerror(-r));
		}
		return r;
	} else {
		ev->event_id = (struct cw_str){id_buf, CW_UUID_LEN};
	}

	if (cw_event_validate(ev, reason, sizeof(reason)) < 0) {
		const char *field = validate_field(reason);
		size_t skip = strcmp(field, "event") ? strlen(field) + 1 : 0;

		return refuse(err, field, "%s", reason + skip);
	}
	return 0;
}
