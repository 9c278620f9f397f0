/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest — a request body (JSON object, JSON array of objects, or NDJSON)
 * to the Kafka messages it stands for: key = user_id, value = the event in
 * Avro single-object encoding, via cw_event_json_to_event(). All or
 * nothing: one invalid event and the batch holds no message, only the
 * reasons, so a request with any invalid event produces nothing.
 *
 * Pure apart from generating event ids; the caller holds whatever keeps
 * the catalog alive while it runs.
 *
 * Not for: HTTP (gateway.c), producing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cw_event_json.h"

enum ingest_format {
	INGEST_JSON,   /* one object or an array of objects */
	INGEST_NDJSON, /* one object a line; blank lines skipped */
};

/* Where the messages' bytes are in ingest_batch.buf. */
struct ingest_msg {
	size_t key_off, key_len;
	size_t value_off, value_len;
};

/* Counted refusals, by the field named (docs/json-events.md). The
 * caller's metrics add them up. */
#define INGEST_REASONS 11
extern const char *const ingest_reason_names[INGEST_REASONS];

/* At most this many errors are listed in a 422 answer. */
#define INGEST_MAX_LISTED_ERRORS 100

struct ingest_batch {
	/* Outcome: 0 (messages below), 400 (malformed body: @answer says
	 * where) or 422 (invalid events: @answer lists them). */
	unsigned status;
	json_t *answer; /* owned; NULL when status is 0 */
	char *buf;	/* keys and values of the messages */
	size_t len, cap;
	struct ingest_msg *msgs;
	size_t n, msgs_cap;
	uint64_t rejected[INGEST_REASONS]; /* invalid events by reason */
};

/* Read the @len bytes of @body as @fmt into @b (zero-initialised by the
 * caller), completing events with @o. Returns 0 with the outcome in
 * @b->status, or -ENOMEM (or another negative errno, e.g. from
 * getrandom) when it could not be decided: the caller answers 500/503.
 * Free @b with ingest_batch_free() in every case. Thread-safe. */
int ingest_parse(struct ingest_batch *b, const char *body, size_t len,
		 enum ingest_format fmt, const struct cw_event_json_opts *o);

/* Release what @b holds. */
void ingest_batch_free(struct ingest_batch *b);
