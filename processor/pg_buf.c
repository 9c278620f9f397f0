/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_buf — the growable byte buffer of the PostgreSQL writer. See pg_buf.h.
 */
#include "pg_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void pg_buf_reserve(struct pg_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom || b->len + more <= b->cap)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

void pg_buf_printf(struct pg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	pg_buf_reserve(b, (size_t)n + 1);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void pg_buf_clear(struct pg_buf *b)
{
	b->len = 0;
	b->oom = false;
}

const char *pg_buf_cstr(struct pg_buf *b)
{
	pg_buf_putc(b, '\0');
	if (b->oom)
		return NULL;
	b->len--;
	return b->p;
}

void pg_buf_free(struct pg_buf *b)
{
	free(b->p);
	*b = (struct pg_buf){0};
}
