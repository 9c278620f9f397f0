/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_conninfo — masking secrets in libpq connection strings by letting
 * libpq parse them. See cw_conninfo.h.
 */
#include "cw_conninfo.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#define UNPARSEABLE "<unparseable conninfo>"

/* Bounded writer into the caller's buffer; output past the end is lost. */
struct out {
	char *buf;
	size_t size, len;
};

static void out_char(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len++] = c;
}

static void out_str(struct out *o, const char *s)
{
	while (*s)
		out_char(o, *s++);
}

/* @v as a libpq key=value value: bare when it has no space, quote or
 * backslash and is not empty, otherwise in single quotes with \' and \\.
 * Characters unsafe in a log line are shown as '?'. */
static void out_value(struct out *o, const char *v)
{
	bool quote = !*v || strpbrk(v, " \t\n\r\f\v'\\") != NULL;

	if (quote)
		out_char(o, '\'');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '"') {
			out_char(o, '?');
			continue;
		}
		if (quote && (*p == '\'' || *p == '\\'))
			out_char(o, '\\');
		out_char(o, (char)*p);
	}
	if (quote)
		out_char(o, '\'');
}

void cw_log_redact_conninfo(const char *conninfo, char *out, size_t out_size)
{
	struct out o = {out, out_size, 0};
	PQconninfoOption *opts;
	char *err = NULL;
	bool first = true;

	if (!out_size)
		return;
	out[0] = '\0';
	if (!conninfo) {
		snprintf(out, out_size, "(default)");
		return;
	}
	if (strcmp(conninfo, "(default)") == 0 ||
	    strcmp(conninfo, "(environment)") == 0) {
		snprintf(out, out_size, "%s", conninfo);
		return;
	}
	opts = PQconninfoParse(conninfo, &err);
	PQfreemem(err); /* its text may quote the string: never shown */
	if (!opts) {
		snprintf(out, out_size, UNPARSEABLE);
		return;
	}
	for (const PQconninfoOption *opt = opts; opt->keyword; opt++) {
		if (!opt->val)
			continue; /* not in the string */
		if (!first)
			out_char(&o, ' ');
		first = false;
		out_str(&o, opt->keyword);
		out_char(&o, '=');
		if (opt->dispchar && strchr(opt->dispchar, '*'))
			out_str(&o, "***");
		else
			out_value(&o, opt->val);
	}
	out[o.len] = '\0';
	PQconninfoFree(opts);
}

int cw_conninfo_parse_error(const char *conninfo, char *out, size_t out_size)
{
	struct out o = {out, out_size, 0};
	PQconninfoOption *opts;
	char *err = NULL;

	if (!out_size)
		return -EINVAL;
	out[0] = '\0';
	opts = PQconninfoParse(conninfo ? conninfo : "", &err);
	if (opts) {
		PQconninfoFree(opts);
		PQfreemem(err);
		return 0;
	}
	if (!err) {
		snprintf(out, out_size, "out of memory");
		return -ENOMEM;
	}
	/* libpq's messages are fixed text with the offending piece of the
	 * string in double quotes (aside from the literal "=" of `missing
	 * "="` and `separator "="`). Everything from
	 * the first other quote to the last quote is dropped: a token that
	 * itself holds quotes cannot bring part of the string out. */
	const char *first = NULL, *last = strrchr(err, '"');
	for (const char *p = err; *p; p++) {
		if (*p == '"' && strncmp(p, "\"=\" ", 4) == 0 &&
		    ((p - err >= 8 && strncmp(p - 8, "missing ", 8) == 0) ||
		     (p - err >= 10 &&
		      strncmp(p - 10, "separator ", 10) == 0))) {
			p += 3;
		} else if (*p == '"') {
			first = p;
			break;
		}
	}
	for (const char *p = err; *p; p++) {
		if (first && p == first) {
			out_str(&o, "\"...\"");
			p = last;
		} else if (*p == '\n' || *p == '\r') {
			if (p[1])
				out_char(&o, ' ');
		} else {
			out_char(&o, *p);
		}
	}
	out[o.len] = '\0';
	PQfreemem(err);
	return -EINVAL;
}
