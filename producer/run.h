/* SPDX-License-Identifier: Apache-2.0 */
/*
 * run — the producer's main loop: take events from the simulation or the
 * JSON feed, count them, pace them (--time-scale, --rate), hand them to the
 * sink, show the live progress line, and on the way out wait for every
 * delivery report.
 *
 * Pacing: with --rate 0 nothing waits (event times still come from the
 * simulated clock). Otherwise simulated offset t is sent at wall time
 * t / time_scale after the start, and never faster than --rate events per
 * second (bursts of at most 100 ms worth after a stall).
 *
 * Not for: signal handling (main installs the handler; this loop only reads
 * the flag it sets) or option parsing.
 */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "json_feed.h"
#include "sim.h"
#include "sink.h"
#include "summary.h"

struct run_config {
	double rate;	      /* events per wall second, 0: unlimited */
	double time_scale;    /* simulated seconds per wall second, > 0 */
	uint64_t max_events;  /* stop after this many, 0: unlimited */
	int64_t sim_start_ms; /* event time of simulated offset 0 */
	bool progress;	      /* draw the live line on stderr */
};

/* Where events come from: exactly one of sim and feed is set (borrowed).
 * @in is the stream the feed reads (or NULL): while it has nothing ready
 * the loop sends what it holds and waits for it, rather than blocking in a
 * read with events still unsent. */
struct run_source {
	struct sim *sim;
	struct json_feed *feed;
	FILE *in;
};

/* Run until the source ends, @max_events are generated or *@stop becomes
 * non-zero (SIGINT/SIGTERM), then flush the sink. Counts every accepted
 * event in @sum. Returns 0 (even if some deliveries failed: see the sink's
 * counters), -EINVAL when --strict stopped on a bad input line, or -EIO
 * when the output could not be written or the input read.
 * Runs in the calling thread only. */
int run_loop(const struct run_config *rc, const struct run_source *src,
	     struct sink *sk, struct summary *sum,
	     const volatile sig_atomic_t *stop);
