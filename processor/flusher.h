/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flusher — runs pg_sink_flush() on a thread of its own, with its own
 * PostgreSQL connection, so the poll thread keeps consuming and processing
 * while a flush commits: wall time becomes the larger of the two costs,
 * not their sum.
 *
 * One job at a time. The poll thread submits the sealed batches of its
 * partitions (see partition_prepare_flush()), must not touch them until it
 * has collected the result, and then acts on it (publish, drop a fenced
 * partition, back off) itself: the flusher never calls back.
 * Not for: anything but flushes (claims and loads stay on the poll thread).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_sink.h"

struct batch;
struct flusher;

struct flusher_result {
	int r; /* pg_sink_flush()'s return value */
	/* The partition pg_sink_flush() blames (-ESTALE, -ENOTRECOVERABLE,
	 * -EBADMSG, -EPROTO), else -1. */
	int32_t fenced;
	int64_t ms;	 /* how long the flush took */
	int64_t done_ms; /* cw_mono_ms() when it returned: the commit */
	char err[512];	 /* pg_sink_last_error() when r < 0 */
	/* When r < 0: pg_sink_last_errclass(), pg_sink_last_sqlstate() and
	 * pg_sink_last_reason() (one bounded line for /healthz). */
	enum pg_sink_errclass errclass;
	char sqlstate[6];
	char reason[128];
};

/* Start the thread. @conninfo and @topic as for pg_sink_new() (copied).
 * Returns NULL with a message in @errstr. Poll thread. */
struct flusher *flusher_new(const char *conninfo, const char *topic,
			    char *errstr, size_t errstr_size);

/* Stop the thread after its current job and free everything; a result not
 * collected is lost (nothing of it is acted upon, so a restart redoes it).
 * NULL is allowed. Poll thread. */
void flusher_destroy(struct flusher *fl);

/* Hand @n batches to the thread (the array is copied, the batches are
 * not: they belong to the flusher until flusher_collect() returns 1).
 * Returns 0, -EBUSY while a job is in flight, or -ENOMEM. Poll thread. */
int flusher_submit(struct flusher *fl, struct batch *const *batches, size_t n);

/* True between flusher_submit() and the flusher_collect() that returns 1. */
bool flusher_busy(const struct flusher *fl);

/* True when the job in flight is done and its result waits for
 * flusher_collect(). Any thread (cheap: one uncontended lock). */
bool flusher_done(const struct flusher *fl);

/* Collect the result of the job in flight into @out: returns 1 when
 * collected, 0 when it is still running (and @wait is false) or no job is
 * in flight. With @wait, blocks until the job is done. Poll thread. */
int flusher_collect(struct flusher *fl, bool wait, struct flusher_result *out);
