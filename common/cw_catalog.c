/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_catalog — CSV price list into an open-addressing hash table. See
 * cw_catalog.h.
 */
#include "cw_catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_validate.h"

struct cw_catalog {
	struct cw_catalog_item *items; /* in file order */
	size_t n, cap;
	uint32_t *slots; /* index + 1 into items; 0: empty */
	size_t mask;
};

/* The fields of one CSV record, unquoted, each NUL-terminated in @buf. */
#define MAX_FIELDS 64
struct record {
	char *buf;
	size_t cap;
	size_t off[MAX_FIELDS];
	size_t len[MAX_FIELDS];
	int n;
};

__attribute__((format(printf, 3, 4))) static void
fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
}

static uint64_t hash(const char *s, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* Read one record from *@p (before @end) into @rec. Returns 1 for a
 * record, 0 at the end of the text, -EINVAL on a malformed record (quote
 * not closed, text after a closing quote, too many fields), -ENOMEM. Lines
 * end in LF or CRLF; a quoted field may hold commas, quotes ("") and line
 * breaks, which then count in *@line. */
static int read_record(const char **p, const char *end, struct record *rec,
		       size_t *line)
{
	const char *s = *p;
	size_t used = 0;

	if (s >= end)
		return 0;
	rec->n = 0;
	for (;;) {
		bool quoted = s < end && *s == '"';

		if (rec->n == MAX_FIELDS)
			return -EINVAL;
		rec->off[rec->n] = used;
		if (quoted)
			s++;
		for (;;) {
			char c;

			if (s >= end) {
				if (quoted)
					return -EINVAL;
				break;
			}
			c = *s;
			if (quoted && c == '"') {
				if (s + 1 < end && s[1] == '"') {
					s++;
				} else {
					s++;
					quoted = false;
					if (s < end && *s != ',' &&
					    *s != '\n' && *s != '\r')
						return -EINVAL;
					continue;
				}
			} else if (!quoted &&
				   (c == ',' || c == '\n' || c == '\r')) {
				break;
			} else if (c == '\n') {
				(*line)++;
			}
			if (used + 2 > rec->cap) {
				size_t cap = rec->cap ? rec->cap * 2 : 256;
				char *b = realloc(rec->buf, cap);
				if (!b)
					return -ENOMEM;
				rec->buf = b;
				rec->cap = cap;
			}
			rec->buf[used++] = c;
			s++;
		}
		if (used + 1 > rec->cap) {
			char *b = realloc(rec->buf, rec->cap + 256);
			if (!b)
				return -ENOMEM;
			rec->buf = b;
			rec->cap += 256;
		}
		rec->len[rec->n] = used - rec->off[rec->n];
		rec->buf[used++] = '\0';
		rec->n++;
		if (s < end && *s == ',') {
			s++;
			continue;
		}
		if (s < end && *s == '\r')
			s++;
		if (s < end && *s == '\n')
			s++;
		break;
	}
	*p = s;
	return 1;
}

static const char *field(const struct record *rec, int i)
{
	return rec->buf + rec->off[i];
}

static bool blank(const struct record *rec)
{
	return rec->n == 1 && rec->len[0] == 0;
}

static int add_item(struct cw_catalog *cat, const char *id, size_t id_len,
		    int64_t price, const char *currency)
{
	struct cw_catalog_item *it;
	char *copy;

	if (cat->n == cat->cap) {
		size_t cap = cat->cap ? cat->cap * 2 : 64;
		struct cw_catalog_item *items =
			realloc(cat->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		cat->items = items;
		cat->cap = cap;
	}
	copy = malloc(id_len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, id, id_len + 1);
	it = &cat->items[cat->n++];
	it->product_id = copy;
	it->product_id_len = id_len;
	it->unit_price_cents = price;
	snprintf(it->currency, sizeof(it->currency), "%s", currency);
	return 0;
}

/* Index every item; the first duplicate id is an error (its item index in
 * *@dup). */
static int build_index(struct cw_catalog *cat, size_t *dup)
{
	size_t size = 16;

	while (size < cat->n * 2)
		size *= 2;
	cat->slots = calloc(size, sizeof(*cat->slots));
	if (!cat->slots)
		return -ENOMEM;
	cat->mask = size - 1;
	for (size_t i = 0; i < cat->n; i++) {
		const struct cw_catalog_item *it = &cat->items[i];
		size_t s = hash(it->product_id, it->product_id_len) & cat->mask;

		for (; cat->slots[s]; s = (s + 1) & cat->mask) {
			const struct cw_catalog_item *o =
				&cat->items[cat->slots[s] - 1];
			if (o->product_id_len == it->product_id_len &&
			    memcmp(o->product_id, it->product_id,
				   it->product_id_len) == 0) {
				*dup = i;
				return -EEXIST;
			}
		}
		cat->slots[s] = (uint32_t)(i + 1);
	}
	return 0;
}

static int parse_price(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;

	if (len == 0 || len > 11)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v > CW_EVENT_MAX_PRICE_CENTS)
		return -EINVAL;
	*out = v;
	return 0;
}

struct cw_catalog *cw_catalog_parse(const char *text, size_t len,
				    const char *name, char *errstr,
				    size_t errstr_size)
{
	struct cw_catalog *cat = calloc(1, sizeof(*cat));
	struct record rec = {0};
	const char *p = text, *end = text + len;
	int col_id = -1, col_price = -1, col_cur = -1;
	size_t line = 1, rec_line, dup;
	int r;

	if (!name)
		name = "catalog";
	if (!cat) {
		fail(errstr, errstr_size, "out of memory");
		return NULL;
	}
	/* The header: the first record that is not blank. */
	do {
		rec_line = line;
		r = read_record(&p, end, &rec, &line);
		line++;
	} while (r == 1 && blank(&rec));
	if (r <= 0) {
		fail(errstr, errstr_size,
		     r == 0	    ? "%s: empty (want a header line "
				      "product_id,unit_price_cents,...)"
		     : r == -ENOMEM ? "%s: out of memory"
				    : "%s:1: malformed header line",
		     name);
		goto fail;
	}
	for (int i = 0; i < rec.n; i++) {
		const char *f = field(&rec, i);
		if (strcmp(f, "product_id") == 0)
			col_id = i;
		else if (strcmp(f, "unit_price_cents") == 0)
			col_price = i;
		else if (strcmp(f, "currency") == 0)
			col_cur = i;
	}
	if (col_id < 0 || col_price < 0) {
		fail(errstr, errstr_size,
		     "%s:%zu: header must name the columns product_id and "
		     "unit_price_cents",
		     name, rec_line);
		goto fail;
	}
	for (;;) {
		const char *id, *cur = "";
		int64_t price;

		rec_line = line;
		r = read_record(&p, end, &rec, &line);
		line++;
		if (r == 0)
			break;
		if (r < 0) {
			fail(errstr, errstr_size,
			     r == -ENOMEM ? "%s: out of memory"
					  : "%s:%zu: malformed CSV line",
			     name, rec_line);
			goto fail;
		}
		if (blank(&rec))
			continue;
		if (rec.n <= col_id || rec.n <= col_price ||
		    (col_cur >= 0 && rec.n <= col_cur)) {
			fail(errstr, errstr_size,
			     "%s:%zu: %d fields, fewer than the header's", name,
			     rec_line, rec.n);
			goto fail;
		}
		id = field(&rec, col_id);
		if (rec.len[col_id] == 0 ||
		    rec.len[col_id] > CW_EVENT_MAX_ID_LEN ||
		    !cw_utf8_printable(id, rec.len[col_id])) {
			fail(errstr, errstr_size,
			     "%s:%zu: product_id must be 1 to %d bytes of "
			     "printable UTF-8",
			     name, rec_line, CW_EVENT_MAX_ID_LEN);
			goto fail;
		}
		if (parse_price(field(&rec, col_price), rec.len[col_price],
				&price)) {
			fail(errstr, errstr_size,
			     "%s:%zu: unit_price_cents must be a whole number "
			     "of cents in 0..%" PRId64,
			     name, rec_line, CW_EVENT_MAX_PRICE_CENTS);
			goto fail;
		}
		if (col_cur >= 0 && rec.len[col_cur] > 0) {
			cur = field(&rec, col_cur);
			if (rec.len[col_cur] != 3 || cur[0] < 'A' ||
			    cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' ||
			    cur[2] < 'A' || cur[2] > 'Z') {
				fail(errstr, errstr_size,
				     "%s:%zu: currency must be 3 capital "
				     "letters (ISO 4217) or empty",
				     name, rec_line);
				goto fail;
			}
		}
		if (cat->n >= UINT32_MAX - 1 ||
		    add_item(cat, id, rec.len[col_id], price, cur) < 0) {
			fail(errstr, errstr_size, "%s: out of memory", name);
			goto fail;
		}
	}
	r = build_index(cat, &dup);
	if (r == -EEXIST) {
		fail(errstr, errstr_size, "%s: product_id '%.64s' listed twice",
		     name, cat->items[dup].product_id);
		goto fail;
	} else if (r < 0) {
		fail(errstr, errstr_size, "%s: out of memory", name);
		goto fail;
	}
	free(rec.buf);
	return cat;

fail:
	free(rec.buf);
	cw_catalog_destroy(cat);
	return NULL;
}

struct cw_catalog *cw_catalog_load(const char *path, char *errstr,
				   size_t errstr_size)
{
	struct cw_catalog *cat = NULL;
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		fail(errstr, errstr_size, "cannot open catalog %s: %s", path,
		     strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *b;

			if (cap >= CW_CATALOG_MAX_BYTES + 1) {
				fail(errstr, errstr_size,
				     "catalog %s is larger than %u bytes", path,
				     CW_CATALOG_MAX_BYTES);
				goto out;
			}
			if (ncap > CW_CATALOG_MAX_BYTES + 1)
				ncap = CW_CATALOG_MAX_BYTES + 1;
			b = realloc(buf, ncap);
			if (!b) {
				fail(errstr, errstr_size, "out of memory");
				goto out;
			}
			buf = b;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fail(errstr, errstr_size, "cannot read catalog %s", path);
		goto out;
	}
	if (len > CW_CATALOG_MAX_BYTES) {
		fail(errstr, errstr_size, "catalog %s is larger than %u bytes",
		     path, CW_CATALOG_MAX_BYTES);
		goto out;
	}
	cat = cw_catalog_parse(buf, len, path, errstr, errstr_size);
out:
	free(buf);
	fclose(f);
	return cat;
}

void cw_catalog_destroy(struct cw_catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->n; i++)
		free((char *)cat->items[i].product_id);
	free(cat->items);
	free(cat->slots);
	free(cat);
}

const struct cw_catalog_item *cw_catalog_find(const struct cw_catalog *cat,
					      const char *product_id,
					      size_t len)
{
	if (!cat || !cat->slots)
		return NULL;
	for (size_t s = hash(product_id, len) & cat->mask; cat->slots[s];
	     s = (s + 1) & cat->mask) {
		const struct cw_catalog_item *it =
			&cat->items[cat->slots[s] - 1];
		if (it->product_id_len == len &&
		    memcmp(it->product_id, product_id, len) == 0)
			return it;
	}
	return NULL;
}

size_t cw_catalog_count(const struct cw_catalog *cat)
{
	return cat ? cat->n : 0;
}
