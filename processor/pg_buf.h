/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_buf — a growable byte buffer for the PostgreSQL writer: COPY data and
 * statement text are built in one and reused from flush to flush. A failed
 * allocation sets oom and drops every later write, so a caller builds a
 * whole row or statement and checks oom once, before the bytes are used.
 *
 * Thread: a buffer belongs to one thread (its sink's). Not for: anything
 * that needs its bytes before the oom check, or bounded memory (it grows
 * to the largest thing built in it and keeps that).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Zero-initialise ({0}) to get an empty buffer; free p with free() or
 * pg_buf_free(). */
struct pg_buf {
	char *p;
	size_t len;
	size_t cap;
	bool oom;
};

/* Make room for @more bytes after len (doubling from 4 KiB). On allocation
 * failure sets b->oom and leaves the bytes as they were. Can't fail
 * otherwise; a buffer already oom is left alone. */
void pg_buf_reserve(struct pg_buf *b, size_t more);

/* Append @len bytes at @p (dropped once b->oom is set). Inline: the COPY
 * encoders call it per field. */
static inline void pg_buf_put(struct pg_buf *b, const void *p, size_t len)
{
	if (b->len + len > b->cap)
		pg_buf_reserve(b, len);
	if (b->oom)
		return;
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

/* Append one byte (dropped once b->oom is set). */
static inline void pg_buf_putc(struct pg_buf *b, char c)
{
	if (b->len + 1 > b->cap)
		pg_buf_reserve(b, 1);
	if (!b->oom)
		b->p[b->len++] = c;
}

/* Append the NUL-terminated @s, without its NUL. */
static inline void pg_buf_puts(struct pg_buf *b, const char *s)
{
	pg_buf_put(b, s, strlen(s));
}

/* Append printf-formatted text (without a NUL). A formatting error sets
 * b->oom like a failed allocation. */
__attribute__((format(printf, 2, 3))) void pg_buf_printf(struct pg_buf *b,
							 const char *fmt, ...);

/* Empty @b and clear its oom flag; the memory is kept for reuse. */
void pg_buf_clear(struct pg_buf *b);

/* NUL-terminate the text (the NUL is not counted in len, so appending
 * goes on after it) and return it, owned by @b and valid until its next
 * write; NULL when b->oom is set. */
const char *pg_buf_cstr(struct pg_buf *b);

/* Free @b's memory and leave it empty. */
void pg_buf_free(struct pg_buf *b);
