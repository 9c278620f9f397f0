/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traffic — the Prime-Day traffic curve: how busy the store is at each
 * moment of simulated time, relative to an ordinary hour (1.0).
 *
 * The curve multiplies three shapes: the kickoff spike (6x at the start,
 * decaying over the first hour), hourly waves (new deals drop on the hour)
 * and lightning-deal bursts (3x while one runs). Shoppers' visits follow it
 * as a non-homogeneous Poisson process: traffic_next_arrival() inverts the
 * integrated curve, precomputed per minute, so a draw costs one binary
 * search instead of rejection sampling. After the 48 hours of Prime Day the
 * curve is flat at 1.0.
 *
 * Not for: pacing in wall time; that is the run loop's --rate/--time-scale.
 */
#pragma once

#include <stdint.h>

#include "catalog.h"

/* Minutes covered by the precomputed integral: Prime Day plus an hour. */
#define TRAFFIC_TABLE_MINUTES (49 * 60)

struct traffic {
	const struct catalog *cat; /* borrowed, for the lightning schedule */
	/* cum[i]: integral of the curve over [0, i minutes), in
	 * intensity-milliseconds. */
	double cum[TRAFFIC_TABLE_MINUTES + 1];
};

/* Precompute the curve for @cat's lightning deals into @tr. @cat must
 * outlive @tr. Can't fail. */
void traffic_init(struct traffic *tr, const struct catalog *cat);

/* The curve's value at @offset_ms (>= 0) of simulated time. */
double traffic_intensity(const struct traffic *tr, int64_t offset_ms);

/* The offset t >= @from_ms at which the integral of the curve over
 * [@from_ms, t] reaches @work (intensity-milliseconds, >= 0): with
 * @work = Exp(1) * mean gap, the next visit of a shopper who visits every
 * "mean gap" in an ordinary hour. Can't fail. */
int64_t traffic_next_arrival(const struct traffic *tr, int64_t from_ms,
			     double work);
