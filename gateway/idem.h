/* SPDX-License-Identifier: Apache-2.0 */
/*
 * idem — the gateway's Idempotency-Key memory: the answer given to a
 * request carrying a key is kept for a while (10 minutes by default), and a
 * retry with the same key gets that answer again instead of producing its
 * events a second time. A key whose first request is still in flight is
 * reported as such (the gateway answers 409). Answers that invite a retry
 * (503) are not kept: the retry must run.
 *
 * Bounded: at most @max keys; beyond it the oldest is forgotten first.
 * Thread-safe (one mutex): the HTTP threads begin and finish requests.
 *
 * Not for: deduplicating events (the processor does that by event_id).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct idem_cache;

enum idem_state {
	IDEM_NEW,     /* first sight: the caller runs the request */
	IDEM_PENDING, /* a request with this key is in flight */
	IDEM_DONE,    /* answered: replay *status and *body */
};

/* Longest key accepted, in bytes. */
#define IDEM_MAX_KEY_LEN 255

/* A cache of at most @max keys (0: keep nothing), each kept @ttl_ms after
 * its answer. Returns NULL on ENOMEM. */
struct idem_cache *idem_new(size_t max, int64_t ttl_ms);

/* Free @c and every kept answer. NULL is fine. */
void idem_destroy(struct idem_cache *c);

/* Look @key (@len bytes, at most IDEM_MAX_KEY_LEN) up at time @now_ms
 * (monotonic). IDEM_NEW: a pending entry now holds the key, identified by
 * *@token for idem_finish()/idem_abandon(). IDEM_DONE: *@status and a
 * malloc'ed copy of the answer in *@body (*@body_len bytes; the caller
 * frees it). On ENOMEM the request runs unremembered: IDEM_NEW with
 * *@token 0. */
enum idem_state idem_begin(struct idem_cache *c, const char *key, size_t len,
			   int64_t now_ms, uint64_t *token, unsigned *status,
			   char **body, size_t *body_len);

/* Keep the answer (@status, @body of @body_len bytes, copied) for the
 * entry @token made for @key. A no-op when that entry was forgotten
 * meanwhile (evicted) or @token is 0. */
void idem_finish(struct idem_cache *c, const char *key, size_t len,
		 uint64_t token, unsigned status, const char *body,
		 size_t body_len, int64_t now_ms);

/* Forget the pending entry @token made for @key, so a retry runs. */
void idem_abandon(struct idem_cache *c, const char *key, size_t len,
		  uint64_t token);

/* Keys held now. */
size_t idem_count(struct idem_cache *c);
