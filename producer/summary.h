/* SPDX-License-Identifier: Apache-2.0 */
/*
 * summary — what the producer sent: events by type, and units and value by
 * product. It feeds the final summary line (stderr), the live progress
 * line and --summary-json, the file tests compare with what they read back
 * from Kafka.
 *
 * Counting an event of a catalog product is a few additions (hot path);
 * products outside the catalog (from --stdin-json) are kept in a small
 * side table.
 *
 * Not for: delivery accounting; the sink counts deliveries and failures and
 * hands them to summary_write_json()/summary_log() in struct summary_extra.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "catalog.h"
#include "cw_event.h"
#include "sim.h"

struct summary;

/* Counters that other modules own, reported alongside. */
struct summary_extra {
	uint64_t delivered;	     /* acknowledged by the broker / written */
	uint64_t failed;	     /* delivery or write failed */
	uint64_t invalid_lines;	     /* --stdin-json lines skipped */
	const struct sim_stats *sim; /* NULL with --stdin-json */
	double elapsed_s;	     /* wall time of the run */
};

/* Create an empty summary over @cat (borrowed). Returns NULL when out of
 * memory. Free with summary_destroy(). */
struct summary *summary_new(const struct catalog *cat);

/* Free @sum (NULL is fine). */
void summary_destroy(struct summary *sum);

/* Count @ev. @product is its catalog index, or -1 to look the product up by
 * id (unknown ids get their own entry). Returns 0, or -ENOMEM when a new
 * unknown product cannot be recorded (the event's type is still counted).
 * Allocates only for a product id not seen before. */
int summary_count(struct summary *sum, const struct cw_event *ev, long product);

/* Events counted so far, in total and of @type. Can't fail. */
uint64_t summary_events(const struct summary *sum);
uint64_t summary_events_of(const struct summary *sum, enum cw_event_type type);

/* Write the totals as one JSON object to @path: events_total,
 * events_by_type, delivered, failed, invalid_lines, units and value, the
 * cart funnel (sim only) and products {id: {added_qty, removed_qty,
 * value_added_cents, value_removed_cents}} for every product with events.
 * Returns 0 or -errno. */
int summary_write_json(const struct summary *sum, const struct summary_extra *x,
		       const char *path);

/* Log the final summary as one logfmt info line. Can't fail. */
void summary_log(const struct summary *sum, const struct summary_extra *x);
