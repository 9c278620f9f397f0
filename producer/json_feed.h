/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_feed — the --stdin-json source: one JSON object per input line, e.g.
 *   {"user_id":"user_10","product_id":"MACBOOK_PRO_2023",
 *    "event_type":"cart_remove","reason":"Too expensive"}
 * turned into a cart event by common/cw_event_json, the code the gateway
 * runs, so both accept and refuse the same objects (docs/json-events.md):
 * generated event ids are UUIDv7 (unique across runs), a missing event_time
 * is the wall clock, event times more than 15 min ahead are refused, and a
 * missing unit_price_cents comes from the price list: the shop's
 * --catalog FILE when given, else the simulator's built-in catalog at its
 * Prime-Day deal price. A product with no price anywhere is refused,
 * naming the product.
 *
 * A bad line (not JSON, or refused by cw_event_json) is reported as a
 * logfmt warning naming the line number, the field and the problem,
 * counted and skipped, or, in strict mode, ends the feed with an error.
 *
 * Not for: the simulation's hot path (jansson allocates per line).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "catalog.h"
#include "cw_catalog.h"
#include "cw_event.h"

struct json_feed;

/* Read lines from @in (borrowed, not closed), refusing event times more
 * than @max_skew_ms ahead of the wall clock (<= 0: no bound, for feeding
 * test records). Prices come from @shop
 * (borrowed; NULL: none) or, when it is NULL, from @cat (borrowed), the
 * built-in catalog, which also gives the summary its product indexes.
 * Returns NULL with the reason in @errstr when out of memory. Free with
 * json_feed_destroy(). */
struct json_feed *json_feed_new(FILE *in, const struct catalog *cat,
				const struct cw_catalog *shop, bool strict,
				int64_t max_skew_ms, char *errstr,
				size_t errstr_size);

/* Free @jf (NULL is fine). */
void json_feed_destroy(struct json_feed *jf);

/* Read up to the next valid line and fill @ev and *@product (built-in
 * catalog index or -1). Returns 1, 0 at end of input or when a signal
 * interrupted the read, -EINVAL for a bad line in strict mode (already
 * logged), -EIO on a read error, or a negative errno when no event id
 * could be generated (logged). @ev's strings live until the next call. */
int json_feed_next(struct json_feed *jf, struct cw_event *ev, long *product);

/* Lines read and lines skipped as invalid so far. Can't fail. */
uint64_t json_feed_lines(const struct json_feed *jf);
uint64_t json_feed_invalid(const struct json_feed *jf);
