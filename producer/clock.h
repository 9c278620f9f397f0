/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock — time values the producer reads from people and from the system:
 * RFC 3339 / epoch-millisecond parsing for --start-time and the JSON
 * feed's event_time, and the wall and monotonic clocks.
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

/* Parse @text as an RFC 3339 timestamp ("2024-07-16T00:00:00Z",
 * "2024-07-16 07:00:00.250+07:00"; fractions beyond milliseconds are
 * truncated) or, if it is all digits, as milliseconds since the epoch.
 * Returns 0 and sets *@ms, or -EINVAL. Thread-safe. */
int clock_parse_time(const char *text, int64_t *ms);

/* Format @ms as RFC 3339 UTC with milliseconds into @buf. Returns @buf.
 * Can't fail (truncates to @size). */
const char *clock_format_time(int64_t ms, char *buf, size_t size);

/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);

/* Monotonic nanoseconds, for pacing and rates. */
int64_t clock_mono_ns(void);
