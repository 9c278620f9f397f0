/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traffic — the traffic curve and its integral. See traffic.h.
 */
#include "traffic.h"

#include <math.h>

#define MINUTE_MS    60000.0
#define TABLE_END_MS ((int64_t)TRAFFIC_TABLE_MINUTES * 60000)
#define SUBSTEPS     12

double traffic_intensity(const struct traffic *tr, int64_t offset_ms)
{
	double t = (double)offset_ms;
	double kickoff, wave;

	if (offset_ms >= TABLE_END_MS)
		return 1.0;
	kickoff = 1.0 + 5.0 * exp(-t / (20 * MINUTE_MS));
	wave = 1.0 + 0.35 * cos(2 * M_PI * t / (60 * MINUTE_MS));
	return kickoff * wave *
	       (catalog_lightning_at(tr->cat, offset_ms) ? 3.0 : 1.0);
}

void traffic_init(struct traffic *tr, const struct catalog *cat)
{
	tr->cat = cat;
	tr->cum[0] = 0;
	for (int i = 0; i < TRAFFIC_TABLE_MINUTES; i++) {
		double sum = 0;

		/* Midpoint rule; lightning deals start on whole minutes, so
		 * the steps in the curve fall on table points. */
		for (int s = 0; s < SUBSTEPS; s++)
			sum += traffic_intensity(
				tr, (int64_t)((i + (s + 0.5) / SUBSTEPS) *
					      MINUTE_MS));
		tr->cum[i + 1] = tr->cum[i] + sum / SUBSTEPS * MINUTE_MS;
	}
}

/* The integral of the curve over [0, @t]. */
static double integral(const struct traffic *tr, int64_t t)
{
	int64_t i;

	if (t >= TABLE_END_MS)
		return tr->cum[TRAFFIC_TABLE_MINUTES] +
		       (double)(t - TABLE_END_MS);
	i = t / 60000;
	return tr->cum[i] + (tr->cum[i + 1] - tr->cum[i]) *
				    ((double)(t - i * 60000) / MINUTE_MS);
}

int64_t traffic_next_arrival(const struct traffic *tr, int64_t from_ms,
			     double work)
{
	double target = integral(tr, from_ms) + work;
	size_t lo, hi;
	int64_t t;

	if (target >= tr->cum[TRAFFIC_TABLE_MINUTES])
		return TABLE_END_MS +
		       (int64_t)ceil(target - tr->cum[TRAFFIC_TABLE_MINUTES]);
	/* First table point at or past the target... */
	lo = (size_t)(from_ms / 60000);
	hi = TRAFFIC_TABLE_MINUTES;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (tr->cum[mid] >= target)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* ...then linear inside the minute before it. */
	if (lo == 0)
		return 0;
	t = (int64_t)(lo - 1) * 60000 +
	    (int64_t)ceil((target - tr->cum[lo - 1]) /
			  (tr->cum[lo] - tr->cum[lo - 1]) * MINUTE_MS);
	return t < from_ms ? from_ms : t;
}
