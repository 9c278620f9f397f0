/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_feed — JSON lines to cart events. See json_feed.h.
 */
#include "json_feed.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "cw_log.h"
#include "prng.h"

struct json_feed {
	FILE *in;
	const struct catalog *cat;
	struct prng pr;
	bool strict;
	uint64_t lines, invalid;
	char *line;
	size_t line_cap;
	json_t *cur; /* the object the current event's strings point into */
	char event_id[PRNG_UUID_LEN];
	char problem[256];
};

struct json_feed *json_feed_new(FILE *in, const struct catalog *cat,
				uint64_t seed, bool strict)
{
	struct json_feed *jf = calloc(1, sizeof(*jf));

	if (!jf)
		return NULL;
	jf->in = in;
	jf->cat = cat;
	jf->strict = strict;
	prng_seed(&jf->pr, seed);
	return jf;
}

void json_feed_destroy(struct json_feed *jf)
{
	if (!jf)
		return;
	json_decref(jf->cur);
	free(jf->line);
	free(jf);
}

__attribute__((format(printf, 2, 3))) static int problem(struct json_feed *jf,
							 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(jf->problem, sizeof(jf->problem), fmt, ap);
	va_end(ap);
	/* The text goes into a quoted logfmt value. */
	for (char *p = jf->problem; *p; p++)
		if (*p == '"' || *p == '\\' || *p == '\n')
			*p = '\'';
	return -EINVAL;
}

/* Field @name of @obj as a string view: CW_STR_NULL if absent or null when
 * @optional, else a problem. */
static int get_string(struct json_feed *jf, json_t *obj, const char *name,
		      bool optional, struct cw_str *out)
{
	json_t *v = json_object_get(obj, name);

	if (!v || json_is_null(v)) {
		*out = CW_STR_NULL;
		return optional ? 0 : problem(jf, "missing %s", name);
	}
	if (!json_is_string(v))
		return problem(jf, "%s must be a string", name);
	out->ptr = json_string_value(v);
	out->len = json_string_length(v);
	if (out->len == 0 && !optional)
		return problem(jf, "empty %s", name);
	if (out->len > JSON_FEED_MAX_STRING)
		return problem(jf, "%s longer than %d bytes", name,
			       JSON_FEED_MAX_STRING);
	return 0;
}

/* Field @name as an integer into *@out; absent or null leaves *@out and
 * clears *@present. */
static int get_int(struct json_feed *jf, json_t *obj, const char *name,
		   int64_t *out, bool *present)
{
	json_t *v = json_object_get(obj, name);

	*present = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return problem(jf, "%s must be an integer", name);
	*out = json_integer_value(v);
	*present = true;
	return 0;
}

/* Validate and complete the parsed line @obj into @ev. */
static int fill_event(struct json_feed *jf, json_t *obj, struct cw_event *ev,
		      long *product)
{
	struct cw_str type, time_text;
	json_t *tv;
	int64_t v;
	bool present;
	int r;

	cw_event_init(ev);
	if (!json_is_object(obj))
		return problem(jf, "not a JSON object");
	if ((r = get_string(jf, obj, "user_id", false, &ev->user_id)) ||
	    (r = get_string(jf, obj, "event_type", false, &type)))
		return r;
	if (cw_event_type_parse(type.ptr, type.len, &ev->type))
		return problem(jf,
			       "unknown event_type '%.*s' (want cart_add, "
			       "cart_remove or checkout_complete)",
			       (int)(type.len > 64 ? 64 : type.len), type.ptr);
	if ((r = get_string(jf, obj, "product_id", true, &ev->product_id)) ||
	    (r = get_string(jf, obj, "reason", true, &ev->reason)) ||
	    (r = get_string(jf, obj, "event_id", true, &ev->event_id)))
		return r;
	if (ev->type != CW_EVENT_CHECKOUT_COMPLETE && !ev->product_id.ptr)
		return problem(jf, "missing product_id (required for %s)",
			       cw_event_type_name(ev->type));
	*product = ev->product_id.ptr
			   ? catalog_find(jf->cat, ev->product_id.ptr,
					  ev->product_id.len)
			   : -1;

	if ((r = get_int(jf, obj, "quantity", &v, &present)))
		return r;
	if (present && v < 0)
		return problem(jf, "negative quantity %" PRId64, v);
	if (present && (v < 1 || v > INT32_MAX))
		return problem(jf, "quantity %" PRId64 " out of range 1..%d", v,
			       INT32_MAX);
	if (present)
		ev->quantity = (int32_t)v;

	if ((r = get_int(jf, obj, "unit_price_cents", &v, &present)))
		return r;
	if (present && v < 0)
		return problem(jf, "negative unit_price_cents %" PRId64, v);
	if (present)
		ev->unit_price_cents = v;
	else if (*product >= 0 && ev->type != CW_EVENT_CHECKOUT_COMPLETE)
		/* Offset -1: before any lightning deal, the day's price. */
		ev->unit_price_cents =
			catalog_price_cents(jf->cat, (size_t)*product, -1);

	if ((r = get_string(jf, obj, "currency", true, &ev->currency)))
		return r;
	if (!ev->currency.ptr)
		ev->currency = (struct cw_str){"USD", 3};
	else if (ev->currency.len != 3)
		return problem(jf, "currency must be a 3-letter ISO 4217 code");

	tv = json_object_get(obj, "event_time");
	if (!tv || json_is_null(tv)) {
		ev->event_time_ms = clock_wall_ms();
	} else if (json_is_integer(tv)) {
		ev->event_time_ms = json_integer_value(tv);
		if (ev->event_time_ms < 0)
			return problem(jf, "negative event_time");
	} else if (json_is_string(tv)) {
		time_text = (struct cw_str){json_string_value(tv),
					    json_string_length(tv)};
		if (clock_parse_time(time_text.ptr, &ev->event_time_ms))
			return problem(
				jf,
				"event_time '%.*s' is neither epoch ms "
				"nor RFC 3339",
				(int)(time_text.len > 64 ? 64 : time_text.len),
				time_text.ptr);
	} else {
		return problem(jf, "event_time must be epoch ms or an RFC "
				   "3339 string");
	}

	if (!ev->event_id.ptr) {
		prng_uuid(&jf->pr, jf->event_id);
		ev->event_id = (struct cw_str){jf->event_id, PRNG_UUID_LEN};
	}
	return 0;
}

int json_feed_next(struct json_feed *jf, struct cw_event *ev, long *product)
{
	for (;;) {
		json_error_t jerr;
		ssize_t n;
		int r;

		json_decref(jf->cur);
		jf->cur = NULL;
		errno = 0;
		n = getline(&jf->line, &jf->line_cap, jf->in);
		if (n < 0) {
			if (errno == EINTR) {
				clearerr(jf->in);
				return 0;
			}
			return ferror(jf->in) ? -EIO : 0;
		}
		jf->lines++;
		if (strspn(jf->line, " \t\r\n") == (size_t)n)
			continue; /* blank lines are not events */
		jf->cur = json_loadb(jf->line, (size_t)n, 0, &jerr);
		if (!jf->cur)
			r = problem(jf, "bad JSON at column %d: %s",
				    jerr.column, jerr.text);
		else
			r = fill_event(jf, jf->cur, ev, product);
		if (r == 0)
			return 1;
		jf->invalid++;
		if (jf->strict) {
			cw_error("invalid input line, stopping (--strict)",
				 "line=%" PRIu64 " problem=\"%s\"", jf->lines,
				 jf->problem);
			return -EINVAL;
		}
		cw_warn("skipping invalid input line",
			"line=%" PRIu64 " problem=\"%s\"", jf->lines,
			jf->problem);
	}
}

uint64_t json_feed_lines(const struct json_feed *jf)
{
	return jf->lines;
}

uint64_t json_feed_invalid(const struct json_feed *jf)
{
	return jf->invalid;
}
