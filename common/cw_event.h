/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_event — the cart event contract (schemas/cart_event.avsc) in C.
 *
 * A schema-specific Avro binary encoder and zero-copy decoder for
 * cartwatch.CartEvent, wrapped in Avro single-object framing
 * (0xC3 0x01, 8-byte little-endian CRC-64-AVRO fingerprint, body).
 * It is the hot path of both binaries, so it never allocates.
 * avro-c's generic API is kept in the tests as the reference oracle.
 *
 * Not for: schema evolution (cw_schema.h resolves other writer versions and
 * falls back to this one for today's) or registry framing; see cw_avro.h for
 * the framing helpers shared with other record types.
 */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cw_str.h"

enum cw_event_type {
	CW_EVENT_CART_ADD = 0,
	CW_EVENT_CART_REMOVE = 1,
	CW_EVENT_CHECKOUT_COMPLETE = 2,
};
#define CW_EVENT_TYPE_COUNT 3

/* A decoded or to-be-encoded event. Strings are views: after
 * cw_event_decode() they point into the decoder's input buffer and live as
 * long as it does. A union [null, string] field that is null has
 * .ptr == NULL. */
struct cw_event {
	struct cw_str event_id; /* uuid text, 36 chars */
	enum cw_event_type type;
	int64_t event_time_ms;	  /* event time, ms since the epoch (UTC) */
	struct cw_str user_id;	  /* also the Kafka key */
	struct cw_str product_id; /* null for checkout_complete */
	int32_t quantity;	  /* default 1 */
	int64_t unit_price_cents; /* default 0 */
	struct cw_str currency;	  /* default "USD" */
	struct cw_str reason;	  /* null unless cart_remove has one */
};

/* Error codes (negated) returned by cw_event_decode(). */
#define CW_EVENT_EBADMAGIC    EPROTO	      /* not single-object framed */
#define CW_EVENT_EFINGERPRINT EPROTONOSUPPORT /* framed, unknown schema */
#define CW_EVENT_EBADBODY     EBADMSG	      /* body does not decode */

/* The CRC-64-AVRO fingerprint of the Parsing Canonical Form of
 * schemas/cart_event.avsc. Checked by tests against python3-avro. */
extern const uint64_t cw_event_fingerprint;

/* Parsing Canonical Form of the schema (NUL-terminated). */
extern const char cw_event_schema_pcf[];

/* Return the symbol name ("cart_add", ...) of @type, or NULL if out of range.
 * Can't fail otherwise. */
const char *cw_event_type_name(enum cw_event_type type);

/* Parse a symbol name; returns 0 and sets *type, or -EINVAL. */
int cw_event_type_parse(const char *name, size_t len, enum cw_event_type *type);

/* Fill @ev with the schema defaults (quantity 1, price 0, currency "USD",
 * nulls). Can't fail. */
void cw_event_init(struct cw_event *ev);

/* Upper bound of the framed encoding of @ev, in bytes. Can't fail. */
size_t cw_event_encoded_max(const struct cw_event *ev);

/* Encode @ev, framed, into @buf of @size bytes.
 * Returns the number of bytes written, or -ENOSPC if @buf is too small,
 * or -EINVAL if @ev is not valid for the schema (bad type, NULL event_id,
 * user_id or currency) or @buf is NULL.
 * Never allocates. Thread-safe (no shared state). */
ssize_t cw_event_encode(const struct cw_event *ev, uint8_t *buf, size_t size);

/* Decode a framed message of @len bytes at @buf into @ev.
 * Returns 0, or a negated CW_EVENT_E* code with a human-readable reason
 * naming the failing field in @errstr (may be NULL), or -EINVAL if @ev is
 * NULL. Every byte is bounds-checked; trailing bytes after the body, bad
 * union/enum indexes, negative or overlong lengths and varints longer than
 * 10 bytes are CW_EVENT_EBADBODY. On success @ev's strings point into @buf;
 * on failure @ev's contents are unspecified.
 * Never allocates. Thread-safe. */
int cw_event_decode(const uint8_t *buf, size_t len, struct cw_event *ev,
		    char *errstr, size_t errstr_size);

/* cw_event_decode() for a caller that has already checked the framing and
 * that the fingerprint is cw_event_fingerprint (cw_schema_decode): @buf
 * still starts with the 10-byte header, which is not looked at again.
 * Same results otherwise. Never allocates. Thread-safe. */
int cw_event_decode_body(const uint8_t *buf, size_t len, struct cw_event *ev,
			 char *errstr, size_t errstr_size);
