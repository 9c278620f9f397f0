/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_validate — the rules a cart event must satisfy before any cartwatch
 * program acts on it, beyond what the Avro schema can say: bounded and
 * well-formed strings (UTF-8 without control characters, as PostgreSQL's
 * text type and the logs need), positive bounded quantities, bounded
 * prices, and event times within what PostgreSQL and 64-bit arithmetic on
 * times can hold.
 *
 * The bounds are chosen so that no sum the processor forms from valid
 * events can overflow on its own account (per-cart sums are checked where
 * carts are held, see processor/cart.h), and so that a hostile record
 * cannot make one user or product cost more than a few hundred bytes.
 *
 * Not for: rules that need state (clock skew, cart size, duplicates:
 * processor/partition.c).
 * Pure functions; thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_event.h"

/* Longest user_id, product_id and reason, in bytes. */
#define CW_EVENT_MAX_ID_LEN	  256
#define CW_EVENT_MAX_REASON_LEN	  256
#define CW_EVENT_MAX_EVENT_ID_LEN 64
/* Units in one event and in one cart line. */
#define CW_EVENT_MAX_QUANTITY 1000000
/* Unit price: 10^10 cents (100 million in the currency's unit). */
#define CW_EVENT_MAX_PRICE_CENTS INT64_C(10000000000)
/* Event times: from the epoch to 9999-12-31T23:59:59.999Z. Earlier or
 * later times are refused, not clamped: they are a client's bug. */
#define CW_EVENT_MIN_TIME_MS INT64_C(0)
#define CW_EVENT_MAX_TIME_MS INT64_C(253402300799999)

/* True when @s (@len bytes) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) holding no NUL, C0 control or DEL
 * character. Can't fail. */
bool cw_utf8_printable(const char *s, size_t len);

/* Check @ev against the rules above. Returns 0, or -EINVAL with a reason
 * naming the field and the bound in @errstr (may be NULL; the reason never
 * quotes the offending bytes, which may be anything).
 * Thread-safe; never allocates. */
int cw_event_validate(const struct cw_event *ev, char *errstr,
		      size_t errstr_size);

/* The Kafka key of a record must be its body's user_id. The key chose the
 * partition, and a user's state lives in exactly one partition: under the
 * body's id the record would split the user across partitions (two owners
 * deriving the same abandonment ids), under the key's it would put one
 * shopper's cart in another's. Neither wins: the record is refused.
 * Returns NULL when they agree, else the reason (a static string). @key
 * may be NULL (no key). Can't fail. */
const char *cw_event_key_mismatch(const void *key, size_t key_len,
				  const struct cw_event *ev);
