/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_event_json — one JSON object (a shop's cart event, docs/json-events.md)
 * to a struct cw_event: field types, the defaults (quantity 1, event time
 * = when it was received, currency from the catalog or USD), prices from
 * the shop's catalog, a UUIDv7 when no event_id is given, the clock-skew
 * bound, then cw_event_validate()'s rules. Every refusal names the field.
 *
 * One function, no I/O and no state besides the getrandom(2) call behind
 * generated ids, so the gateway and the producer's JSON feeder share it,
 * tests table-test it and a fuzzer drives it.
 *
 * Not for: parsing the JSON text (jansson), request framing (arrays,
 * NDJSON: the callers), Kafka.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cw_catalog.h"
#include "cw_event.h"
#include "cw_uuid.h"

struct cw_event_json_opts {
	const struct cw_catalog *catalog; /* prices; NULL: none */
	int64_t now_ms;	     /* receive time: default event_time, skew base */
	int64_t max_skew_ms; /* refuse event_time beyond now + this; <= 0: no
			      * bound */
};

/* Why an object was refused: the field ("user_id"..., "event" when it is
 * not about one field) and a reason that reads after "field: ". Both are
 * printable ASCII (bytes from the input are shown as '?' beyond it), so
 * they go into JSON and logfmt as they are. */
struct cw_event_json_error {
	char field[40];
	char reason[216];
};

/* Complete the JSON object @obj into @ev. Strings in @ev point into @obj,
 * into @id_buf (a generated event_id) and into @o->catalog (a currency
 * taken from it): @ev is valid as long as all three are.
 * Returns 0, -EINVAL with the field and reason in @err (may be NULL) when
 * the object is not a valid event, or a negative errno from cw_uuid_v7()
 * (with @err filled) when no id could be generated. Thread-safe. */
int cw_event_json_to_event(const json_t *obj,
			   const struct cw_event_json_opts *o,
			   struct cw_event *ev, char id_buf[CW_UUID_LEN + 1],
			   struct cw_event_json_error *err);

/* Parse an event time: RFC 3339 with a time zone ("2024-07-16T09:30:00Z",
 * "2024-07-16T11:30:00.250+02:00") or a string of digits read as epoch
 * milliseconds, the @len bytes at @text. Returns 0 and *@ms, or -EINVAL
 * (bad syntax, impossible date, out of the years 0000-9999). Pure. */
int cw_event_json_parse_time(const char *text, size_t len, int64_t *ms);
