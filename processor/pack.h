/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pack — many (key, value) records in one byte string, so that a flush
 * writes one bytea per partition instead of one row per record: the
 * resume state of a partition's changed users (key user id, value state)
 * and the abandonments waiting for the broker (key user id, value framed
 * Avro).
 *
 * Format, repeated: key length (u32, big-endian), key bytes, value length
 * (u32, big-endian; PACK_NONE for "no value", e.g. a deleted user), value
 * bytes. Fixed-width lengths rather than varints so that plain SQL can
 * build and read the format too (int4send(), see migrations/004).
 *
 * Not for: anything a human or another program reads; it is internal to
 * the processor's tables.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value length meaning "no value". */
#define PACK_NONE UINT32_MAX

/* A growable output buffer. A failed allocation sets oom and drops the
 * record; check oom (or pack_put()'s result) before using the bytes. */
struct pack_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	uint32_t records;
	bool oom;
};

/* Append one record; @val NULL writes PACK_NONE (then @vlen is ignored).
 * Returns 0, or -ENOMEM (oom is set) or -EMSGSIZE (a length over 4 GB). */
int pack_put(struct pack_buf *b, const void *key, size_t klen, const void *val,
	     size_t vlen);

/* Forget the records; keep up to @keep bytes of capacity for reuse and
 * free the rest. */
void pack_reset(struct pack_buf *b, size_t keep);

/* Free the buffer (the struct itself is the caller's). */
void pack_free(struct pack_buf *b);

struct pack_reader {
	const uint8_t *p;
	const uint8_t *end;
};

static inline struct pack_reader pack_reader_init(const uint8_t *p, size_t len)
{
	/* An empty buffer may be NULL: no arithmetic on it (UB). */
	return (struct pack_reader){p, p ? p + len : p};
}

/* Read the next record: *key and *klen, *val and *vlen (*val NULL for
 * PACK_NONE). The pointers point into the input.
 * Returns 1 with a record, 0 at the clean end, -EBADMSG when the input
 * is truncated. */
int pack_next(struct pack_reader *r, const uint8_t **key, size_t *klen,
	      const uint8_t **val, size_t *vlen);
