/* SPDX-License-Identifier: Apache-2.0 */
/*
 * webhook — what one delivery is made of, without any I/O: the JSON body
 * of an abandonment, its X-Cartwatch-Signature, the verdict on an answer
 * (delivered, retry, dead-letter) and the wait before a retry. The daemon
 * (notify.c) does the Kafka and HTTP around these. Thread-safe, no state.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cw_abandonment.h"

/* The body for @ab: a JSON object with abandonment_id, user_id,
 * session_start, abandoned_at (RFC 3339, UTC, milliseconds), items
 * (product_id, quantity, unit_price_cents), item_count, cart_value_cents,
 * currency, last_remove_reason (null when absent) and, when @cart_url_tpl
 * is not NULL, cart_url with {user_id} and {abandonment_id} replaced by
 * their URL-encoded values. Returns a malloc'ed NUL-terminated string the
 * caller frees, or NULL when out of memory or a string is not UTF-8 (the
 * record is then dead-lettered). */
char *webhook_body(const struct cw_abandonment *ab, const char *cart_url_tpl);

/* Write "t=<@t>,v1=<hex HMAC-SHA256 of "<@t>.<@body>" keyed by @secret>"
 * into @out (at least 96 bytes). Returns 0, or -EINVAL when @out_size is
 * too small, -ENOMEM, or -EIO when libcrypto fails. */
int webhook_sign(const void *secret, size_t secret_len, int64_t t,
		 const char *body, size_t body_len, char *out, size_t out_size);

enum webhook_verdict {
	WEBHOOK_DELIVERED, /* 2xx */
	WEBHOOK_RETRY,	   /* transport error, timeout, 408, 429, 5xx */
	WEBHOOK_REFUSED,   /* any other status: dead-letter at once */
};

/* The verdict on one attempt: @status is the HTTP status, or 0 when no
 * answer came (connection error, timeout). Can't fail. */
enum webhook_verdict webhook_verdict(long status);

/* Milliseconds to wait before attempt @attempt + 1 (@attempt >= 1 failed
 * so far): @base_ms doubled per failed attempt, capped at @max_ms, then
 * drawn uniformly from its upper half (jitter) with @rnd in [0, 1).
 * A Retry-After of @retry_after_ms >= 0 takes precedence, capped at
 * @max_ms. Can't fail. */
int64_t webhook_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms,
			   int64_t retry_after_ms, double rnd);

/* Parse a Retry-After header value: delay-seconds or an HTTP-date,
 * relative to @now_s (unix seconds). Returns the wait in ms (>= 0), or -1
 * when the value does not parse. */
int64_t webhook_retry_after_ms(const char *value, int64_t now_s);
