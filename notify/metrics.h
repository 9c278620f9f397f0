/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics — cartwatch-notify's /metrics and /healthz (/livez, /readyz)
 * through common/cw_status. The loop keeps its numbers in a struct
 * notify_stats and publishes a copy now and then; the HTTP thread reads
 * only that copy, under a lock.
 *
 * Not for: keeping the numbers (notify.c does), logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_prom.h"

/* Response-time buckets (seconds) of cartwatch_notify_response_seconds. */
#define NOTIFY_LATENCY_BUCKETS 10
extern const double notify_latency_bounds[NOTIFY_LATENCY_BUCKETS];

struct notify_stats {
	uint64_t delivered, skipped_recovered, dead_lettered;
	uint64_t attempts, retries, undecodable;
	struct cw_prom_histogram latency;
	int64_t waiting;   /* records held for their delay or a free slot */
	int64_t in_flight; /* requests under way */
	int64_t backoff;   /* records waiting to be retried */
	int64_t lag;	   /* high watermark minus committed position, summed */
	bool kafka_down;
	char kafka_error[160];
};

struct notify_metrics;

/* Serve on @addr ("HOST:PORT", port 0: any). Returns NULL with a reason
 * in @errstr. Main thread. */
struct notify_metrics *notify_metrics_start(const char *addr, char *errstr,
					    size_t errstr_size);

/* The bound port. */
int notify_metrics_port(const struct notify_metrics *m);

/* Publish a copy of @s (the loop's thread). NULL @m is a no-op. */
void notify_metrics_publish(struct notify_metrics *m,
			    const struct notify_stats *s);

/* Stop serving and free; NULL is a no-op. */
void notify_metrics_stop(struct notify_metrics *m);
