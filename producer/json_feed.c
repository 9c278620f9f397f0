/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_feed — JSON lines to cart events through cw_event_json. See
 * json_feed.h.
 */
#include "json_feed.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "cw_event_json.h"
#include "cw_log.h"
#include "cw_uuid.h"

struct json_feed {
	FILE *in;
	const struct catalog *cat;
	const struct cw_catalog *prices; /* shop's, or builtin */
	struct cw_catalog *builtin;	 /* owned; NULL with a shop catalog */
	bool strict;
	int64_t max_skew_ms; /* <= 0: no bound */
	uint64_t lines, invalid;
	char *line;
	size_t line_cap;
	json_t *cur; /* the object the current event's strings point into */
	char event_id[CW_UUID_LEN + 1];
};

/* The built-in catalog as a cw_catalog: every product at the day's deal
 * price (offset -1: before any lightning deal), in USD. */
static struct cw_catalog *builtin_prices(const struct catalog *cat,
					 char *errstr, size_t errstr_size)
{
	size_t n = catalog_count(cat), cap = 64 + n * 96, len;
	char *csv = malloc(cap);
	struct cw_catalog *cc;
	int w;

	if (!csv) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	len = (size_t)snprintf(csv, cap,
			       "product_id,unit_price_cents,currency\n");
	for (size_t i = 0; i < n; i++) {
		w = snprintf(csv + len, cap - len, "%s,%" PRId64 ",USD\n",
			     catalog_product(cat, i)->id,
			     catalog_price_cents(cat, i, -1));
		if (w < 0 || (size_t)w >= cap - len) {
			free(csv);
			snprintf(errstr, errstr_size,
				 "built-in catalog: product id too long");
			return NULL;
		}
		len += (size_t)w;
	}
	cc = cw_catalog_parse(csv, len, "built-in catalog", errstr,
			      errstr_size);
	free(csv);
	return cc;
}

struct json_feed *json_feed_new(FILE *in, const struct catalog *cat,
				const struct cw_catalog *shop, bool strict,
				int64_t max_skew_ms, char *errstr,
				size_t errstr_size)
{
	struct json_feed *jf = calloc(1, sizeof(*jf));

	if (!jf) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	jf->in = in;
	jf->cat = cat;
	jf->strict = strict;
	jf->max_skew_ms = max_skew_ms;
	if (shop) {
		jf->prices = shop;
	} else if (!(jf->prices = jf->builtin =
			     builtin_prices(cat, errstr, errstr_size))) {
		free(jf);
		return NULL;
	}
	return jf;
}

void json_feed_destroy(struct json_feed *jf)
{
	if (!jf)
		return;
	json_decref(jf->cur);
	cw_catalog_destroy(jf->builtin);
	free(jf->line);
	free(jf);
}

int json_feed_next(struct json_feed *jf, struct cw_event *ev, long *product)
{
	for (;;) {
		struct cw_event_json_opts opts = {jf->prices, clock_wall_ms(),
						  jf->max_skew_ms};
		struct cw_event_json_error err = {"", ""};
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
		if (!jf->cur) {
			/* jansson's text is ASCII but may hold quotes */
			snprintf(err.field, sizeof(err.field), "json");
			snprintf(err.reason, sizeof(err.reason),
				 "bad JSON at column %d: %s", jerr.column,
				 jerr.text);
			for (char *p = err.reason; *p; p++)
				if (*p == '"' || *p == '\\' || *p < 0x20)
					*p = '\'';
			r = -EINVAL;
		} else {
			r = cw_event_json_to_event(jf->cur, &opts, ev,
						   jf->event_id, &err);
		}
		if (r == 0) {
			*product = ev->product_id.ptr
					   ? catalog_find(jf->cat,
							  ev->product_id.ptr,
							  ev->product_id.len)
					   : -1;
			return 1;
		}
		if (r != -EINVAL) {
			cw_error("cannot complete the event, stopping",
				 "line=%" PRIu64 " field=\"%s\" problem=\"%s\"",
				 jf->lines, err.field, err.reason);
			return r;
		}
		jf->invalid++;
		if (jf->strict) {
			cw_error("invalid input line, stopping (--strict)",
				 "line=%" PRIu64 " field=\"%s\" problem=\"%s\"",
				 jf->lines, err.field, err.reason);
			return -EINVAL;
		}
		cw_warn("skipping invalid input line",
			"line=%" PRIu64 " field=\"%s\" problem=\"%s\"",
			jf->lines, err.field, err.reason);
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
