/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock — time values the producer shows people and reads from the
 * system: RFC 3339 formatting, the wall and monotonic clocks. (Parsing
 * --start-time and event_time is cw_event_json_parse_time()'s, one parser
 * for the gateway and the producer.)
 *
 * Event time and wall time are kept apart: the simulation never calls the
 * clock functions here, only the pacing, the progress line and the JSON
 * feed's "now" for missing event_time do.
 *
 * Not for: time zones other than a numeric UTC offset.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Format @ms as RFC 3339 UTC with milliseconds into @buf. Returns @buf.
 * Can't fail (truncates to @size). */
const char *clock_format_time(int64_t ms, char *buf, size_t size);

/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);

/* Monotonic nanoseconds, for pacing and rates. */
int64_t clock_mono_ns(void);
