/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_copy — encoders for PostgreSQL's COPY data: fields in the text
 * format (the staging tables) and in the binary format (the append-only
 * tables), appended to a pg_buf. Pure encoding: no connection, no COPY
 * commands, no error messages (the sink, pg_sink.c, does those).
 *
 * Binary format: the file header (pg_copy_bin_header()), then per row the
 * field count (int16) and per field its length (int32, -1 for NULL) and
 * its bytes in the type's binary send format, all big-endian, then the
 * trailer (pg_copy_bin_trailer()).
 *
 * Errors: the writers cannot fail by themselves; a failed allocation sets
 * the buffer's oom flag (pg_buf.h), checked before the data is sent.
 * Thread: any, on a buffer of its own.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pg_buf.h"

/* ---- text format --------------------------------------------------------
 * Each field writer appends the field and then @end: '\t' between fields,
 * '\n' after the last one of a row. */

/* A bigint field, in the text "%" PRId64 would give (INT64_MIN too). */
void pg_copy_i64(struct pg_buf *b, int64_t v, char end);

/* A text field: NULL @s is \N; backslash, tab, newline and carriage
 * return are escaped (COPY text format rules). */
void pg_copy_text(struct pg_buf *b, const char *s, char end);

/* ---- binary format ------------------------------------------------------ */

/* PostgreSQL's timestamp epoch (2000-01-01) in Unix ms. */
#define PG_COPY_EPOCH_MS INT64_C(946684800000)

/* The binary file header: signature, flags, header extension length. */
void pg_copy_bin_header(struct pg_buf *b);

/* The binary file trailer (a field count of -1). */
void pg_copy_bin_trailer(struct pg_buf *b);

/* @v as @bytes (1..8) big-endian bytes. Inline, like the field writers
 * below: they run for every field of every row of a flush. */
static inline void pg_copy_bin_be(struct pg_buf *b, uint64_t v, int bytes)
{
	uint8_t tmp[8];

	for (int i = 0; i < bytes; i++)
		tmp[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	pg_buf_put(b, tmp, (size_t)bytes);
}

/* Start a row of @fields fields. */
static inline void pg_copy_bin_row(struct pg_buf *b, int fields)
{
	pg_copy_bin_be(b, (uint64_t)fields, 2);
}

/* A NULL field. */
static inline void pg_copy_bin_null(struct pg_buf *b)
{
	pg_copy_bin_be(b, UINT32_MAX, 4);
}

/* An int4 field. */
static inline void pg_copy_bin_i32(struct pg_buf *b, int32_t v)
{
	pg_copy_bin_be(b, 4, 4);
	pg_copy_bin_be(b, (uint32_t)v, 4);
}

/* An int8 field. */
static inline void pg_copy_bin_i64(struct pg_buf *b, int64_t v)
{
	pg_copy_bin_be(b, 8, 4);
	pg_copy_bin_be(b, (uint64_t)v, 8);
}

/* A timestamptz field from Unix ms (microseconds since 2000-01-01 UTC). */
static inline void pg_copy_bin_ts(struct pg_buf *b, int64_t unix_ms)
{
	pg_copy_bin_i64(b, (unix_ms - PG_COPY_EPOCH_MS) * 1000);
}

/* The length word of a @len-byte field whose bytes the caller sends
 * separately (a large bytea straight from its own memory). */
static inline void pg_copy_bin_len(struct pg_buf *b, size_t len)
{
	pg_copy_bin_be(b, (uint32_t)len, 4);
}

/* A bytea (or any raw) field of @len bytes at @p. */
static inline void pg_copy_bin_bytes(struct pg_buf *b, const void *p,
				     size_t len)
{
	pg_copy_bin_len(b, len);
	pg_buf_put(b, p, len);
}

/* A text field (the server checks the encoding); NULL @s is NULL. */
static inline void pg_copy_bin_text(struct pg_buf *b, const char *s)
{
	if (s)
		pg_copy_bin_bytes(b, s, strlen(s));
	else
		pg_copy_bin_null(b);
}

/* Element type oids of the arrays the sink writes (pg_type.oid, fixed
 * for built-in types). */
#define PG_COPY_OID_INT8 20u
#define PG_COPY_OID_INT4 23u
#define PG_COPY_OID_TEXT 25u

/* Start a one-dimensional array field of @n elements of type @elem_oid
 * (array_send's layout: dimensions, flags, element type, then per
 * dimension its size and lower bound 1; an empty array has no dimension).
 * Then write the @n elements with the field writers above (an element is
 * encoded like a field: length word and bytes, NULL as -1), then call
 * pg_copy_bin_array_end() with the value returned here, which fills in the
 * field's length. */
size_t pg_copy_bin_array_begin(struct pg_buf *b, uint32_t elem_oid, size_t n);

/* End the array field begun at @start (pg_copy_bin_array_begin()'s
 * return value): writes its length word. */
void pg_copy_bin_array_end(struct pg_buf *b, size_t start);

/* The 16 bytes of a uuid from its 36-character text form (hex digits of
 * either case, dashes at 8, 13, 18 and 23). Returns 0, or -EINVAL when @s
 * is not a uuid (@u then holds garbage). Can't fail otherwise. */
int pg_copy_parse_uuid(const char *s, uint8_t u[16]);

/* A uuid field from its text form; NULL @s is NULL. Returns 0, or -EINVAL
 * (nothing appended) when @s is not a uuid. */
int pg_copy_bin_uuid(struct pg_buf *b, const char *s);
