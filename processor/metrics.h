/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics — the processor's HTTP side door: `GET /metrics` in the
 * Prometheus text exposition format 0.0.4, `GET /livez` (the poll loop
 * runs) and `GET /readyz` = `GET /healthz` (consuming, PostgreSQL
 * reachable) for load balancers and orchestrators, served by
 * common/cw_status from one libmicrohttpd thread of its own.
 *
 * The poll thread never blocks on HTTP: it fills a plain-data snapshot and
 * hands it over with metrics_publish(), which copies it under a mutex; the
 * HTTP thread renders from its own copy. Not for: computing the numbers
 * (daemon.c owns the counters) or any other endpoint; nothing here reads
 * daemon or partition state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_prom.h"
#include "open_value.h"

/* Partitions exported per snapshot; assigned ones beyond this are counted
 * in assigned_partitions but get no per-partition series. */
#define METRICS_MAX_PARTITIONS 256

/* Flush-duration histogram: finite upper bounds in seconds (the +Inf
 * bucket is `count`). */
#define METRICS_FLUSH_BUCKETS 10
#define METRICS_FLUSH_BOUNDS                                                   \
	{                                                                      \
		0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5            \
	}

/* Indexed like enum cw_event_type: cart_add, cart_remove,
 * checkout_complete. */
#define METRICS_EVENT_TYPES 3

struct metrics_partition {
	int32_t id;
	int64_t lag;		  /* messages behind the high watermark;
				   * < 0: unknown (series omitted) */
	double watermark_delay_s; /* wall now - watermark event time;
				   * NaN: no watermark (series omitted) */
	int64_t next_offset;	  /* next offset to process; < 0: none yet
				   * (series omitted) */
};

/* The counters the daemon itself keeps (struct daemon_counters has the
 * same fields, from this list), as X(name): one list, so that a new
 * counter is declared once and publish_metrics() copies them all. */
#define METRICS_DAEMON_COUNTERS(X)                                             \
	X(decode_errors)                                                       \
	X(invalid_events)                                                      \
	X(key_mismatches)                                                      \
	X(events_ahead)                                                        \
	X(events_too_old)                                                      \
	X(cart_limit_events)                                                   \
	X(duplicate_events)                                                    \
	X(intern_full_events)                                                  \
	X(dlq_records)                                                         \
	X(dlq_failures)                                                        \
	X(abandonments) /* committed to PostgreSQL */                          \
	X(conversions)	/* committed to PostgreSQL */                          \
	X(flushes)                                                             \
	X(flush_failures)                                                      \
	X(fenced)                                                              \
	X(pg_rewinds) /* partitions re-taken: the database lost commits */     \
	X(abandonments_published)                                              \
	X(publish_failures)                                                    \
	X(pg_errors)                                                           \
	X(pg_retries)                                                          \
	X(offset_gaps)                                                         \
	X(offset_gap_records)
#define METRICS_COUNTER_FIELD(name) uint64_t name;

/* Everything /metrics and /healthz show, as plain data (no pointers), so
 * that publishing is one copy. Counters must only grow for the life of
 * the process; gauges are the current value. */
struct metrics_snapshot {
	/* Counters. */
	METRICS_DAEMON_COUNTERS(METRICS_COUNTER_FIELD)
	/* Summed over the partitions (struct partition_counters). */
	uint64_t events[METRICS_EVENT_TYPES];
	uint64_t late_events;
	uint64_t recovered;
	uint64_t carts_expired;
	struct cw_prom_histogram flush_seconds;

	/* Gauges. */
	uint64_t open_carts;
	uint64_t open_sessions;
	uint64_t users;
	uint64_t assigned_partitions;	     /* may exceed n_partitions */
	uint64_t quarantined_partitions;     /* set aside: permanent PG error */
	uint64_t partitions_watermark_ahead; /* held: poisoned watermark */
	/* Carts at risk (open sessions, their carts and value) by currency. */
	struct open_value_rows open_value;

	/* Per partition: entries [0, n_partitions). */
	uint32_t n_partitions;
	struct metrics_partition partitions[METRICS_MAX_PARTITIONS];

	/* Health: /healthz is 200 only when both are true. @health_reason
	 * says why not (e.g. "postgresql unreachable: ..."); empty: a
	 * generic reason is given. */
	bool consuming;
	bool pg_ok;
	char health_reason[128];
};

struct metrics;

/* Default for metrics_set_stale_after(). */
#define METRICS_STALE_MS 30000

/* Bind @addr ("HOST:PORT": "127.0.0.1:9464", "0.0.0.0:9464",
 * "[::1]:9464", "localhost:9464"; port 0 picks a free one) and start the
 * HTTP thread. Until the first metrics_publish() /healthz answers 503
 * "starting" and /metrics shows zeros.
 * Returns NULL with a message naming @addr in @errstr when the address
 * does not parse or resolve, cannot be bound (port in use, not a local
 * address) or on ENOMEM. Any thread; normally main, before the loop. */
struct metrics *metrics_new(const char *addr, char *errstr, size_t errstr_size);

/* The bound port (the chosen one when @addr said port 0). Can't fail.
 * Any thread. */
int metrics_port(const struct metrics *m);

/* /livez and /readyz answer 503 "stale: ..." when no snapshot was published for
 * @ms milliseconds (a wedged poll loop must not look healthy); 0 turns
 * the check off. Default METRICS_STALE_MS. Any thread. */
void metrics_set_stale_after(struct metrics *m, int64_t ms);

/* Copy @snap for the HTTP thread: later requests render this copy. The
 * caller keeps @snap. Takes a mutex held only for the copy (a few KB),
 * never during rendering or I/O. Can't fail. The poll thread (any single
 * publisher). */
void metrics_publish(struct metrics *m, const struct metrics_snapshot *snap);

/* Add one flush duration of @seconds to @snap's histogram. The caller
 * keeps the snapshot between publishes so the histogram accumulates.
 * Can't fail. Whichever thread owns @snap (the poll thread). */
void metrics_flush_observe(struct metrics_snapshot *snap, double seconds);

/* Stop the HTTP thread (waits for requests in progress), close the socket
 * and free everything. NULL is allowed. The thread that called
 * metrics_new(), after the last metrics_publish(). */
void metrics_destroy(struct metrics *m);
