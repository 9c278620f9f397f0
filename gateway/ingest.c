/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest — request body to Kafka messages. See ingest.h.
 */
#include "ingest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ingest_reason_names[INGEST_REASONS] = {
	"user_id",  "event_type",	"product_id",	 "reason",
	"quantity", "unit_price_cents", "currency",	 "event_time",
	"event_id", "unknown_field",	"not_an_object",
};

static size_t reason_index(const char *field)
{
	for (size_t i = 0; i < INGEST_REASONS - 2; i++)
		if (strcmp(field, ingest_reason_names[i]) == 0)
			return i;
	return strcmp(field, "event") == 0 ? INGEST_REASONS - 1
					   : INGEST_REASONS - 2;
}

static int reserve(struct ingest_batch *b, size_t more)
{
	if (b->len + more > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + more)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p)
			return -ENOMEM;
		b->buf = p;
		b->cap = cap;
	}
	if (b->n == b->msgs_cap) {
		size_t cap = b->msgs_cap ? b->msgs_cap * 2 : 16;
		struct ingest_msg *m = realloc(b->msgs, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		b->msgs = m;
		b->msgs_cap = cap;
	}
	return 0;
}

/* Append the message for @ev. */
static int add_message(struct ingest_batch *b, const struct cw_event *ev)
{
	size_t max = cw_event_encoded_max(ev);
	struct ingest_msg *m;
	ssize_t n;
	int r;

	if ((r = reserve(b, ev->user_id.len + max)) < 0)
		return r;
	m = &b->msgs[b->n];
	m->key_off = b->len;
	m->key_len = ev->user_id.len;
	memcpy(b->buf + b->len, ev->user_id.ptr, ev->user_id.len);
	b->len += ev->user_id.len;
	n = cw_event_encode(ev, (uint8_t *)b->buf + b->len, max);
	if (n < 0)
		return (int)n; /* validated events always encode */
	m->value_off = b->len;
	m->value_len = (size_t)n;
	b->len += (size_t)n;
	b->n++;
	return 0;
}

/* One event at @index (and NDJSON @line, 0: none). Invalid: a listed
 * error (up to the limit), counted. */
static int one_event(struct ingest_batch *b, const json_t *obj, size_t index,
		     size_t line, const struct cw_event_json_opts *o)
{
	struct cw_event_json_error err;
	char id[CW_UUID_LEN + 1],
		text[sizeof(err.field) + sizeof(err.reason) + 2];
	struct cw_event ev;
	json_t *e;
	int r;

	r = cw_event_json_to_event(obj, o, &ev, id, &err);
	if (r == 0)
		return b->status ? 0 : add_message(b, &ev);
	if (r != -EINVAL)
		return r;
	b->rejected[reason_index(err.field)]++;
	if (!b->answer) {
		b->answer = json_pack("{s:[]}", "errors");
		if (!b->answer)
			return -ENOMEM;
	}
	b->status = 422;
	if (json_array_size(json_object_get(b->answer, "errors")) >=
	    INGEST_MAX_LISTED_ERRORS)
		return 0;
	snprintf(text, sizeof(text), "%s: %s", err.field, err.reason);
	e = line ? json_pack("{s:I,s:I,s:s,s:s}", "index", (json_int_t)index,
			     "line", (json_int_t)line, "field", err.field,
			     "error", text)
		 : json_pack("{s:I,s:s,s:s}", "index", (json_int_t)index,
			     "field", err.field, "error", text);
	if (!e ||
	    json_array_append_new(json_object_get(b->answer, "errors"), e) < 0)
		return -ENOMEM;
	return 0;
}

static int malformed(struct ingest_batch *b, size_t line, size_t column,
		     const char *what)
{
	char text[320];

	snprintf(text, sizeof(text),
		 "malformed JSON at line %zu, column %zu: %s", line, column,
		 what);
	b->status = 400;
	json_decref(b->answer);
	b->answer = json_pack("{s:s,s:I,s:I}", "error", text, "line",
			      (json_int_t)line, "column", (json_int_t)column);
	return b->answer ? 0 : -ENOMEM;
}

static int parse_json(struct ingest_batch *b, const char *body, size_t len,
		      const struct cw_event_json_opts *o)
{
	json_error_t jerr;
	json_t *root;
	int r = 0;

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return malformed(b, jerr.line > 0 ? (size_t)jerr.line : 1,
				 jerr.column > 0 ? (size_t)jerr.column : 1,
				 jerr.text);
	if (json_is_object(root)) {
		r = one_event(b, root, 0, 0, o);
	} else if (json_is_array(root)) {
		for (size_t i = 0; r == 0 && i < json_array_size(root); i++)
			r = one_event(b, json_array_get(root, i), i, 0, o);
	} else {
		r = malformed(b, 1, 1,
			      "expected an object or an array of objects");
	}
	json_decref(root);
	return r;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

static int parse_ndjson(struct ingest_batch *b, const char *body, size_t len,
			const struct cw_event_json_opts *o)
{
	const char *p = body, *end = body + len;
	size_t line = 0, index = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		json_error_t jerr;
		json_t *obj;
		int r;

		line++;
		if (blank(p, n)) {
			p += n + 1;
			continue;
		}
		obj = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
		if (!obj)
			return malformed(b, line,
					 jerr.column > 0 ? (size_t)jerr.column
							 : 1,
					 jerr.text);
		r = one_event(b, obj, index++, line, o);
		json_decref(obj);
		if (r < 0)
			return r;
		p += n + 1;
	}
	return 0;
}

int ingest_parse(struct ingest_batch *b, const char *body, size_t len,
		 enum ingest_format fmt, const struct cw_event_json_opts *o)
{
	int r;

	r = fmt == INGEST_NDJSON ? parse_ndjson(b, body, len, o)
				 : parse_json(b, body, len, o);
	if (r == 0 && b->status == 0 && b->n == 0)
		r = malformed(b, 1, 1, "no events in the body");
	if (r == 0 && b->status != 0) {
		/* All or nothing: an answer other than 202 carries no
		 * message. */
		b->n = 0;
		b->len = 0;
	}
	return r;
}

void ingest_batch_free(struct ingest_batch *b)
{
	json_decref(b->answer);
	free(b->buf);
	free(b->msgs);
	memset(b, 0, sizeof(*b));
}
