/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_time — the monotonic clock every module measures intervals with
 * (timeouts, backoffs, staleness). Never for event time or timestamps
 * shown to people: those are wall-clock (CLOCK_REALTIME).
 */
#pragma once

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: only differences mean anything. Can't
 * fail; any thread. */
static inline int64_t cw_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
