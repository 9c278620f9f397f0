/* SPDX-License-Identifier: Apache-2.0 */
/*
 * housekeeping — keeps the day partitions of the time-ordered tables
 * (migrations/010_partitioning.sql) ahead of the clock and drops the old
 * ones, on a thread and a PostgreSQL connection of its own, so a flush
 * never waits for it longer than a short lock_timeout.
 *
 * Every pass, for each partitioned table: create the partitions of today
 * and the next HOUSEKEEPING_AHEAD_DAYS days (UTC, by the database's clock)
 * that do not exist yet, moving the rows the default partition holds for
 * such a day into it; then, with a retention set, drop every partition
 * whose upper bound is at or before now - retention and delete the rows of
 * the default partition older than that. Each step is its own short
 * transaction under lock_timeout: a step that cannot get its lock (a flush
 * or a long report holds the table) is left for the next pass. Then, for
 * the appended per-minute counters (012_minute_stats_appended.sql), the
 * oldest day partition that ended 6 hours ago and was not folded yet has
 * its rows folded into one per key (one partition per table and pass; a
 * large day takes seconds, with row locks only). Processors
 * sharing a database take turns through an advisory lock.
 * Not for: anything on the flush path; it never touches Kafka or batches.
 */
#pragma once

#include <stdint.h>

#include <libpq-fe.h>

/* Partitions are created for today and this many days after. */
#define HOUSEKEEPING_AHEAD_DAYS 3

struct housekeeping;

struct housekeeping_params {
	const char *conninfo; /* as for PQconnectdb(); NULL: environment */
	int64_t retention_ms; /* the data tables; 0: keep everything */
	/* processor_status_history; 0: keep everything */
	int64_t status_retention_ms;
	int64_t interval_ms; /* between passes; the first runs at once */
};

/* What the passes did so far (counters only grow). */
struct housekeeping_stats {
	uint64_t passes;	/* completed, with or without failed steps */
	uint64_t created;	/* partitions created */
	uint64_t dropped;	/* partitions dropped */
	uint64_t rows_deleted;	/* old rows deleted from default partitions */
	uint64_t folded;	/* day partitions folded to one row per key */
	uint64_t lock_timeouts; /* steps left for later: lock not granted */
	uint64_t failures;	/* other failed steps and connections */
};

/* One pass over all tables on @conn (a connection the caller owns, in no
 * transaction; its session lock_timeout and TimeZone are changed). Adds
 * to @st. Returns 0, or -EIO when a step failed for another reason than a
 * lock timeout (the error is logged), -ENOTCONN when the connection is
 * lost. Another processor's pass in progress makes it return 0 at once.
 * Any thread that owns @conn. */
int housekeeping_pass(PGconn *conn, const struct housekeeping_params *p,
		      struct housekeeping_stats *st);

/* Start the thread; its first pass runs at once. @p is copied (conninfo
 * too). Returns NULL with a message in @errstr. */
struct housekeeping *housekeeping_new(const struct housekeeping_params *p,
				      char *errstr, size_t errstr_size);

/* Stop the thread (a step in progress finishes first; each is short) and
 * free everything. NULL is allowed. */
void housekeeping_destroy(struct housekeeping *hk);

/* A copy of the counters. Any thread. */
void housekeeping_get_stats(struct housekeeping *hk,
			    struct housekeeping_stats *out);
