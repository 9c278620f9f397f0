/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_feed — the --stdin-json source: one JSON object per input line, e.g.
 *   {"user_id":"user_10","product_id":"MACBOOK_PRO_2023",
 *    "event_type":"cart_remove","reason":"Too expensive"}
 * validated and completed into a cart event. Missing event_id gets a
 * UUIDv4 from the seeded PRNG, missing event_time the wall clock, a
 * missing unit_price_cents the catalog's Prime-Day deal price when the
 * product is known. Optional: quantity, unit_price_cents, currency,
 * event_time (epoch ms number or RFC 3339 string), event_id, reason.
 *
 * A bad line (not JSON, not an object, unknown event_type, missing
 * user_id, missing product_id on an add/remove, quantity below 1, wrong
 * field type, oversized string) is reported as a logfmt warning naming the
 * line number and the problem, counted and skipped, or, in strict mode,
 * ends the feed with an error.
 *
 * Not for: the simulation's hot path (jansson allocates per line).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "catalog.h"
#include "cw_event.h"

/* Longest accepted string field, in bytes (keeps every event encodable). */
#define JSON_FEED_MAX_STRING 512

struct json_feed;

/* Read lines from @in (borrowed, not closed) pricing with @cat (borrowed);
 * @seed seeds the event-id PRNG. Returns NULL when out of memory. Free
 * with json_feed_destroy(). */
struct json_feed *json_feed_new(FILE *in, const struct catalog *cat,
				uint64_t seed, bool strict);

/* Free @jf (NULL is fine). */
void json_feed_destroy(struct json_feed *jf);

/* Read up to the next valid line and fill @ev and *@product (catalog index
 * or -1). Returns 1, 0 at end of input or when a signal interrupted the
 * read, -EINVAL for a bad line in strict mode (already logged) or -EIO on a
 * read error. @ev's strings live until the next call. */
int json_feed_next(struct json_feed *jf, struct cw_event *ev, long *product);

/* Lines read and lines skipped as invalid so far. Can't fail. */
uint64_t json_feed_lines(const struct json_feed *jf);
uint64_t json_feed_invalid(const struct json_feed *jf);
