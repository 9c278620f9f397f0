/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim — the shopper simulation: a population of shoppers, each a small
 * state machine (idle -> shopping -> checkout pending -> idle), interleaved
 * by a binary heap keyed on each shopper's next action time, so the stream
 * is in event-time order and each user's events are strictly increasing.
 *
 * Funnel: a visit adds 1-4 items (quantity 1-4 each), sometimes removes
 * some with a reason from the weighted taxonomy (sim_reasons), then checks
 * out or abandons; expensive carts and shallow discounts are abandoned
 * more (about 70% overall). Some abandoners come back after more than the
 * 30-minute session timeout and check out (recovered carts), the rest do
 * not. Visits follow the traffic curve (traffic.h); lightning deals pull
 * shoppers to their product.
 *
 * Deterministic: everything comes from one seeded PRNG, event times from
 * the simulated clock (start + offset), never the wall clock.
 *
 * Not for: pacing or sending; see run.h and sink.h.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "cw_event.h"

struct sim_config {
	uint64_t seed;
	uint32_t users;	     /* population size, >= 1 */
	int64_t start_ms;    /* event time of simulated offset 0 */
	int64_t duration_ms; /* end of the simulation (offset); 0: never */
};

/* The removal-reason taxonomy, most frequent first, and its size. */
#define SIM_REASON_COUNT 11
extern const char *const sim_reasons[SIM_REASON_COUNT];

/* Session timeout the funnel is designed around: a recovered shopper
 * returns later than this. */
#define SIM_SESSION_TIMEOUT_MS (30 * 60 * 1000)

/* What happened to the carts so far (for the summary and tests). */
struct sim_stats {
	uint64_t sessions;  /* visits that added something */
	uint64_t checkouts; /* checked out within the visit */
	uint64_t recovered; /* abandoned, then checked out after a long gap */
	uint64_t abandoned; /* never checked out (emptied carts included) */
};

struct sim;

/* Create a simulation over @cat (borrowed: must outlive the sim) with
 * @sc. Returns NULL with a reason in @errstr on a bad config or out of
 * memory. The caller frees it with sim_destroy(). */
struct sim *sim_new(const struct catalog *cat, const struct sim_config *sc,
		    char *errstr, size_t errstr_size);

/* Free @sim (NULL is fine). */
void sim_destroy(struct sim *sim);

/* Produce the next event into @ev and the catalog index of its product
 * into *@product (-1 for checkout_complete). Returns 1, or 0 when the
 * simulation has reached its duration. @ev's strings point into @sim and
 * the catalog and stay valid until the next call. Never allocates. */
int sim_next(struct sim *sim, struct cw_event *ev, long *product);

/* Copy the cart counters so far. Can't fail. */
void sim_get_stats(const struct sim *sim, struct sim_stats *st);
