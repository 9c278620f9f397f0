/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon — the running processor: a Kafka consumer in a group, the
 * partitions it owns (partition.c), the PostgreSQL sink (pg_sink.c), and a
 * producer for abandonments and dead letters, driven by one loop in one
 * thread: poll, process, housekeeping tick (idle watermarks, flush, stats).
 *
 * Exactly once: PostgreSQL holds the results, the resume state and the
 * offsets, written together by each flush; on assignment a partition is
 * restored from there and the consumer seeks to the stored offset. Kafka's
 * committed offsets are informational only.
 *
 * Not for: parsing options (config.c) or signal handling (main.c).
 */
#pragma once

#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

struct daemon;

/* Counters of the daemon itself since start, for logs and metrics; the
 * stream counters (events by type, late events, recoveries, expired carts)
 * are kept per partition (struct partition_counters). */
struct daemon_counters {
	uint64_t messages;
	METRICS_DAEMON_COUNTERS(METRICS_COUNTER_FIELD)
};

/* Build the daemon: Kafka clients (subscribed, not yet assigned) and the
 * PostgreSQL sink, whose migrations are applied now (retried with backoff
 * while PostgreSQL is unreachable, until *@stop is set).
 * @cfg must outlive the daemon. Returns NULL with a message in @errstr. */
struct daemon *daemon_new(const struct processor_config *cfg,
			  volatile sig_atomic_t *stop, char *errstr,
			  size_t errstr_size);

/* Run until *@stop is set (by a signal handler), then flush what is left,
 * commit, and leave the group cleanly. Returns 0, or a negative errno code
 * after a fatal error (ENOMEM); results committed so far stay valid. */
int daemon_run(struct daemon *d);

/* Current counters. Can't fail. */
void daemon_get_counters(const struct daemon *d, struct daemon_counters *out);

/* Close everything. NULL is allowed. */
void daemon_destroy(struct daemon *d);
