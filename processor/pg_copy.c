/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_copy — COPY text and binary field encoders. See pg_copy.h.
 */
#include "pg_copy.h"

#include <errno.h>

void pg_copy_i64(struct pg_buf *b, int64_t v, char end)
{
	/* The same text as "%" PRId64, written by hand: snprintf here was
	 * ~22% of the processor's instructions (bench/README.md). The
	 * magnitude is taken in unsigned arithmetic so INT64_MIN works. */
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	*--p = end;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	pg_buf_put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void pg_copy_text(struct pg_buf *b, const char *s, char end)
{
	const char *run;

	if (!s) {
		pg_buf_put(b, "\\N", 2);
		pg_buf_putc(b, end);
		return;
	}
	run = s;
	for (; *s; s++) {
		const char *esc;

		switch (*s) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		pg_buf_put(b, run, (size_t)(s - run));
		pg_buf_put(b, esc, 2);
		run = s + 1;
	}
	pg_buf_put(b, run, (size_t)(s - run));
	pg_buf_putc(b, end);
}

void pg_copy_bin_header(struct pg_buf *b)
{
	static const uint8_t header[19] = {'P',	 'G',  'C',  'O',  'P', 'Y',
					   '\n', 0xff, '\r', '\n', 0};

	pg_buf_put(b, header, sizeof(header)); /* + flags, ext. len */
}

void pg_copy_bin_trailer(struct pg_buf *b)
{
	pg_copy_bin_be(b, 0xffff, 2);
}

size_t pg_copy_bin_array_begin(struct pg_buf *b, uint32_t elem_oid, size_t n)
{
	size_t start = b->len;

	pg_copy_bin_len(b, 0); /* the field's length, see _array_end() */
	pg_copy_bin_be(b, n ? 1 : 0, 4); /* dimensions */
	pg_copy_bin_be(b, 0, 4); /* flags: has-nulls, ignored on input */
	pg_copy_bin_be(b, elem_oid, 4);
	if (n) {
		pg_copy_bin_be(b, (uint32_t)n, 4); /* elements */
		pg_copy_bin_be(b, 1, 4);	   /* lower bound */
	}
	return start;
}

void pg_copy_bin_array_end(struct pg_buf *b, size_t start)
{
	size_t len = b->len - start - 4;

	if (b->oom)
		return; /* b->len may be short of start: nothing to patch */
	for (int i = 0; i < 4; i++)
		b->p[start + (size_t)i] = (char)(uint8_t)(len >> (8 * (3 - i)));
}

/* Value of a hex digit, -1 for anything else. */
static int hexval(unsigned char c)
{
	static const signed char v[256] = {
		['0'] = 1,  ['1'] = 2,	['2'] = 3,  ['3'] = 4,	['4'] = 5,
		['5'] = 6,  ['6'] = 7,	['7'] = 8,  ['8'] = 9,	['9'] = 10,
		['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
		['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14,
		['E'] = 15, ['F'] = 16,
	};
	return v[c] - 1;
}

int pg_copy_parse_uuid(const char *s, uint8_t u[16])
{
	/* Where each byte's two digits start in 8-4-4-4-12. */
	static const uint8_t at[16] = {0,  2,  4,  6,  9,  11, 14, 16,
				       19, 21, 24, 26, 28, 30, 32, 34};

	for (int k = 0; k < 16; k++) {
		int hi, lo;

		/* The dash before bytes 4, 6, 8 and 10; checked before the
		 * digits after it, so a short string stops at its NUL. */
		if ((k == 4 || k == 6 || k == 8 || k == 10) &&
		    s[at[k] - 1] != '-')
			return -EINVAL;
		if ((hi = hexval((unsigned char)s[at[k]])) < 0 ||
		    (lo = hexval((unsigned char)s[at[k] + 1])) < 0)
			return -EINVAL;
		u[k] = (uint8_t)(hi << 4 | lo);
	}
	return s[36] ? -EINVAL : 0;
}

int pg_copy_bin_uuid(struct pg_buf *b, const char *s)
{
	uint8_t u[16];
	int r;

	if (!s) {
		pg_copy_bin_null(b);
		return 0;
	}
	if ((r = pg_copy_parse_uuid(s, u)) == 0)
		pg_copy_bin_bytes(b, u, sizeof(u));
	return r;
}
