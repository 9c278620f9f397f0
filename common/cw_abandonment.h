/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_abandonment — the cart abandonment contract
 * (schemas/cart_abandonment.avsc) in C: a schema-specific Avro binary
 * encoder and zero-copy decoder for cartwatch.CartAbandonment, wrapped in
 * Avro single-object framing like cw_event. The processor encodes these;
 * the decoder is for tests and downstream consumers. Nothing allocates.
 *
 * Not for: schema evolution or registry framing, and not for building the
 * record (summing items etc.); that is the processor's business.
 */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cw_str.h"

/* One line of an abandoned cart (record cartwatch.AbandonedItem). */
struct cw_abandoned_item {
	struct cw_str product_id;
	int32_t quantity;
	int64_t unit_price_cents;
};

/* A decoded or to-be-encoded abandonment. Strings are views; after
 * cw_abandonment_decode() they point into the decoder's input buffer. */
struct cw_abandonment {
	struct cw_str abandonment_id; /* uuid text, 36 chars */
	struct cw_str user_id;	      /* also the Kafka key */
	int64_t session_start_ms;     /* ms since the epoch (UTC) */
	int64_t last_activity_at_ms;
	int64_t abandoned_at_ms;
	const struct cw_abandoned_item *items; /* n_items entries */
	size_t n_items;	    /* length of the Avro items array */
	int32_t item_count; /* schema field: total units */
	int64_t cart_value_cents;
	struct cw_str currency;
	struct cw_str last_remove_reason; /* .ptr == NULL for Avro null */
};

/* Error codes (negated) returned by cw_abandonment_decode(). */
#define CW_ABANDONMENT_EBADMAGIC    EPROTO	    /* not framed */
#define CW_ABANDONMENT_EFINGERPRINT EPROTONOSUPPORT /* unknown schema */
#define CW_ABANDONMENT_EBADBODY	    EBADMSG	    /* body does not decode */
#define CW_ABANDONMENT_ETOOMANY	    ENOBUFS	    /* items_cap too small */

/* CRC-64-AVRO fingerprint of the Parsing Canonical Form of
 * schemas/cart_abandonment.avsc. Checked by tests against python3-avro. */
extern const uint64_t cw_abandonment_fingerprint;

/* Parsing Canonical Form of the schema (NUL-terminated). */
extern const char cw_abandonment_schema_pcf[];

/* Upper bound of the framed encoding of @ab, in bytes. Can't fail.
 * Thread-safe. */
size_t cw_abandonment_encoded_max(const struct cw_abandonment *ab);

/* Encode @ab, framed, into @buf of @size bytes.
 * Returns the number of bytes written, or -ENOSPC if @buf is too small, or
 * -EINVAL if @ab is not valid for the schema (NULL abandonment_id, user_id
 * or currency, NULL items with n_items > 0, an item with a NULL product_id)
 * or @buf is NULL. Never allocates. Thread-safe (no shared state). */
ssize_t cw_abandonment_encode(const struct cw_abandonment *ab, uint8_t *buf,
			      size_t size);

/* Decode a framed message of @len bytes at @buf into @out, storing the items
 * in the caller's array @items of @items_cap entries (may be NULL if 0);
 * out->items points at it and out->n_items says how many were filled.
 * Returns 0, or a negated CW_ABANDONMENT_E* code with a human-readable
 * reason naming the failing field in @errstr (may be NULL); ETOOMANY means
 * the message is well-formed so far but has more than @items_cap items.
 * -EINVAL if @out is NULL. On success the strings point into @buf; on
 * failure @out and @items are unspecified.
 * Never allocates. Thread-safe. */
int cw_abandonment_decode(const uint8_t *buf, size_t len,
			  struct cw_abandonment *out,
			  struct cw_abandoned_item *items, size_t items_cap,
			  char *errstr, size_t errstr_size);
