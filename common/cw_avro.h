/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_avro — the Avro binary-encoding primitives shared by the hand-written
 * record codecs (cw_event, cw_abandonment): the CRC-64-AVRO (Rabin) schema
 * fingerprint, single-object framing (0xC3 0x01 + 8-byte little-endian
 * fingerprint), zig-zag varints and length-prefixed strings.
 *
 * The writers are unchecked and static inline: the caller has already sized
 * the buffer (see CW_AVRO_VARINT_MAX). The readers work on a bounded cursor
 * and check every byte, so they are safe on untrusted input; strings are
 * returned as views into the input, nothing here allocates.
 *
 * Not for: schema parsing, schema resolution/evolution, object container
 * files, or Confluent schema-registry framing; use avro-c for those.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cw_str.h"

/* Size of the single-object header: 2 magic bytes + 8-byte fingerprint. */
#define CW_AVRO_FRAME_HEADER 10
#define CW_AVRO_MAGIC0	     0xC3
#define CW_AVRO_MAGIC1	     0x01

/* Longest zig-zag varint encoding of an int64 / int32, in bytes. */
#define CW_AVRO_VARINT_MAX     10
#define CW_AVRO_VARINT_INT_MAX 5

/* CRC-64-AVRO of the empty input (the spec's EMPTY constant). */
#define CW_AVRO_FP_EMPTY UINT64_C(0xc15d213aa4d7a795)

/* Compute the CRC-64-AVRO (Rabin) fingerprint of @len bytes at @data, as
 * defined in the Avro spec ("Schema Fingerprints"). Apply it to a schema's
 * Parsing Canonical Form to get the fingerprint used in single-object
 * framing. @data may be NULL when @len is 0.
 * Can't fail. Not meant for hot paths (bitwise, no table). Thread-safe. */
uint64_t cw_avro_fingerprint64(const void *data, size_t len);

/* Write the 10-byte single-object header for schema fingerprint @fp at @p.
 * The caller guarantees CW_AVRO_FRAME_HEADER bytes of room.
 * Returns @p + CW_AVRO_FRAME_HEADER. */
static inline uint8_t *cw_avro_frame_write(uint8_t *p, uint64_t fp)
{
	p[0] = CW_AVRO_MAGIC0;
	p[1] = CW_AVRO_MAGIC1;
	for (int i = 0; i < 8; i++)
		p[2 + i] = (uint8_t)(fp >> (8 * i));
	return p + CW_AVRO_FRAME_HEADER;
}

/* Parse a single-object header from @len bytes at @buf.
 * Returns 0 and sets *@fp (may be NULL) to the schema fingerprint, or
 * -EPROTO if @buf is shorter than the header or the magic is wrong.
 * The body starts at @buf + CW_AVRO_FRAME_HEADER. */
static inline int cw_avro_frame_parse(const uint8_t *buf, size_t len,
				      uint64_t *fp)
{
	uint64_t v = 0;

	if (len < CW_AVRO_FRAME_HEADER || buf[0] != CW_AVRO_MAGIC0 ||
	    buf[1] != CW_AVRO_MAGIC1)
		return -EPROTO;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)buf[2 + i] << (8 * i);
	if (fp)
		*fp = v;
	return 0;
}

static inline uint64_t cw_avro_zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t cw_avro_unzigzag(uint64_t u)
{
	return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* Number of bytes cw_avro_write_long(@v) writes (1..10). */
static inline size_t cw_avro_long_size(int64_t v)
{
	uint64_t u = cw_avro_zigzag(v);
	size_t n = 1;

	while (u >= 0x80) {
		u >>= 7;
		n++;
	}
	return n;
}

/* Write @v as a zig-zag varint at @p; the caller guarantees
 * CW_AVRO_VARINT_MAX bytes of room (CW_AVRO_VARINT_INT_MAX for
 * cw_avro_write_int). Return the byte after the last one written. */
static inline uint8_t *cw_avro_write_long(uint8_t *p, int64_t v)
{
	uint64_t u = cw_avro_zigzag(v);

	while (u >= 0x80) {
		*p++ = (uint8_t)(u | 0x80);
		u >>= 7;
	}
	*p++ = (uint8_t)u;
	return p;
}

static inline uint8_t *cw_avro_write_int(uint8_t *p, int32_t v)
{
	return cw_avro_write_long(p, v);
}

/* Write a length-prefixed Avro string (or bytes) of @len bytes from @s.
 * The caller guarantees cw_avro_long_size(len) + @len bytes of room.
 * Returns the byte after the last one written. */
static inline uint8_t *cw_avro_write_string(uint8_t *p, const char *s,
					    size_t len)
{
	p = cw_avro_write_long(p, (int64_t)len);
	if (len)
		memcpy(p, s, len);
	return p + len;
}

/* A bounded read cursor over untrusted input: p <= end always holds. */
struct cw_avro_reader {
	const uint8_t *p;
	const uint8_t *end;
};

static inline struct cw_avro_reader cw_avro_reader_init(const void *buf,
							size_t len)
{
	const uint8_t *b = buf;

	return (struct cw_avro_reader){b, b + len};
}

static inline size_t cw_avro_reader_left(const struct cw_avro_reader *r)
{
	return (size_t)(r->end - r->p);
}

/* Read a zig-zag varint long.
 * Returns 0 and sets *@out, or -ENODATA if the input ends inside the varint
 * (cursor unchanged), or -EOVERFLOW if it is longer than 10 bytes or does not
 * fit 64 bits. Thread-safe on distinct readers. */
static inline int cw_avro_read_long(struct cw_avro_reader *r, int64_t *out)
{
	const uint8_t *p = r->p;
	uint64_t u = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (p == r->end)
			return -ENODATA;
		b = *p++;
		if (shift == 63 && b > 1)
			return -EOVERFLOW; /* 10th byte: only bit 63 left */
		u |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			r->p = p;
			*out = cw_avro_unzigzag(u);
			return 0;
		}
	}
	return -EOVERFLOW; /* unreachable: the 10th byte check exits */
}

/* Read a zig-zag varint int. As cw_avro_read_long(), and also -EOVERFLOW if
 * the value does not fit int32. */
static inline int cw_avro_read_int(struct cw_avro_reader *r, int32_t *out)
{
	int64_t v;
	int err = cw_avro_read_long(r, &v);

	if (err)
		return err;
	if (v < INT32_MIN || v > INT32_MAX)
		return -EOVERFLOW;
	*out = (int32_t)v;
	return 0;
}

/* Read a length-prefixed string as a zero-copy view into the input: on
 * success out->ptr points at the bytes (non-NULL even when empty) and lives
 * as long as the input does.
 * Returns 0, or an error of cw_avro_read_long() for the length, or -EBADMSG
 * for a negative length, or -ENODATA if the length runs past the input. */
static inline int cw_avro_read_string(struct cw_avro_reader *r,
				      struct cw_str *out)
{
	int64_t n;
	int err = cw_avro_read_long(r, &n);

	if (err)
		return err;
	if (n < 0)
		return -EBADMSG;
	if ((uint64_t)n > cw_avro_reader_left(r))
		return -ENODATA;
	out->ptr = (const char *)r->p;
	out->len = (size_t)n;
	r->p += n;
	return 0;
}

/* Write a ["null","string"] union: branch 0 if @s.ptr is NULL, else branch
 * 1 and the string. The caller guarantees 1 + cw_avro_long_size(s.len) +
 * s.len bytes of room. Returns the byte after the last one written. */
static inline uint8_t *cw_avro_write_opt_string(uint8_t *p, struct cw_str s)
{
	if (!s.ptr) {
		*p++ = 0;
		return p;
	}
	*p++ = 2; /* zig-zag(1) */
	return cw_avro_write_string(p, s.ptr, s.len);
}

/* Bytes cw_avro_write_opt_string() writes for @s. */
static inline size_t cw_avro_opt_string_size(struct cw_str s)
{
	if (!s.ptr)
		return 1;
	return 1 + cw_avro_long_size((int64_t)s.len) + s.len;
}

/* Read a ["null","string"] union: branch 0 gives CW_STR_NULL, branch 1 a
 * string view as cw_avro_read_string(). *@branch (may be NULL) is set to the
 * branch index once it is read. Returns 0, an error of cw_avro_read_string(),
 * or -ERANGE if the branch index is neither 0 nor 1. */
static inline int cw_avro_read_opt_string(struct cw_avro_reader *r,
					  struct cw_str *out, int64_t *branch)
{
	int64_t idx;
	int err = cw_avro_read_long(r, &idx);

	if (err)
		return err;
	if (branch)
		*branch = idx;
	if (idx == 0) {
		*out = CW_STR_NULL;
		return 0;
	}
	if (idx != 1)
		return -ERANGE;
	return cw_avro_read_string(r, out);
}

/* Short human-readable text for the errors the readers above return. */
static inline const char *cw_avro_strerror(int err)
{
	switch (err) {
	case -ENODATA:
		return "truncated";
	case -EOVERFLOW:
		return "varint too long or out of range";
	case -EBADMSG:
		return "negative length";
	case -ERANGE:
		return "union branch index is not 0 (null) or 1 (string)";
	default:
		return "malformed";
	}
}

/* Format a decoding error into @errstr (may be NULL) and return @err, for
 * the record decoders' error paths. Thread-safe. */
int cw_avro_fail(char *errstr, size_t errstr_size, int err, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));

/* Inside a record decoder: read one field with @call (an expression
 * returning 0 or a cw_avro_read_* error); on error fill errstr with
 * "@record: field @field at byte N: reason" and return -EBADMSG. Expects
 * the decoder's locals `r` (reader), `buf`, `at`, `err`, `errstr` and
 * `errstr_size`. */
#define CW_AVRO_READ_FIELD(record, field, call)                                \
	do {                                                                   \
		at = (size_t)(r.p - buf);                                      \
		err = (call);                                                  \
		if (err)                                                       \
			return cw_avro_fail(errstr, errstr_size, -EBADMSG,     \
					    "%s: field %s at byte %zu: %s",    \
					    record, field, at,                 \
					    cw_avro_strerror(err));            \
	} while (0)
