/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_sink_priv — what the sink's own files share: struct pg_sink and the
 * error recording every call uses. pg_sink.c owns the object (connection,
 * errors, the flush transaction); pg_restore.c reads through it (claims,
 * resume state, outbox). Not a public interface: callers use pg_sink.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pack.h"
#include "pg_buf.h"
#include "pg_sink.h"
#include "stat_sum.h"

/* One partition's batch in a flush: enough to recognise it again. */
struct sink_part {
	int32_t partition;
	int64_t generation;
	int64_t next_offset;
	bool committed; /* in ps->doubt: known to have landed */
};

struct pg_sink {
	char *conninfo; /* NULL: libpq environment */
	char *topic;
	char *delete_chunks_head; /* delete_chunks_*_sql, topic filled in */
	char *delete_chunks_tail;
	PGconn *conn;
	bool staged; /* the TEMP staging tables exist on this connection */
	/* cw_partitions.watermark_checked of the latest claim. */
	bool watermark_checked;

	/* Flush tokens (cw_partitions.last_flush): random start, +1 per
	 * flush, so two sinks never share one. */
	int64_t next_token;
	bool in_doubt; /* a COMMIT was sent but its answer lost */
	int64_t in_doubt_token;
	/* The batches of the in-doubt flush (in_doubt), or, once it was
	 * found committed, the ones the caller has not been told about yet
	 * (in_doubt false, n_doubt > 0). */
	struct sink_part *doubt;
	size_t n_doubt, cap_doubt;
	/* What this sink last committed per partition: a flush of the same
	 * generation must find exactly this offset stored (rewind check). */
	struct sink_part *last;
	size_t n_last, cap_last;
	/* Subsets of a flush's batches (skipping committed ones, isolating
	 * a permanent error), reused. */
	struct batch **subset;
	size_t cap_subset;

	/* The last error, classified (pg_sink_last_errclass()). */
	enum pg_sink_errclass errclass;
	char sqlstate[6];
	char primary[160]; /* first line of the server's or libpq's message */

	struct pg_buf copy;   /* COPY rows, reused */
	struct pg_buf sql;    /* per-flush statement text, reused */
	struct pack_buf pack; /* one outbox chunk, reused */
	/* The flush's product and reason increments summed across its
	 * partitions before they are sent (reused). */
	struct stat_sum *sums;
	char err[1024];
};

/* Set @ps's last error to the printf-formatted message (trailing newlines
 * dropped), classed PG_SINK_ERR_TRANSIENT with no SQLSTATE: a local
 * failure (memory, a bad argument, corrupt stored data). Can't fail. */
__attribute__((format(printf, 2, 3))) void
pg_sink_set_err(struct pg_sink *ps, const char *fmt, ...);

/* Record why @what failed (from @res if it has a message, else from the
 * connection; @res may be NULL and is not freed), classify it and map it
 * to an errno code:
 *   -ENOTCONN  connection lost, or the server shutting down (08xxx, 57P0x):
 *              back off;
 *   -EAGAIN    serialization failure or deadlock (40001, 40P01): retry now;
 *   -EBADMSG   the data cannot be written (22xxx data exceptions, 23xxx
 *              integrity violations): permanent, retrying fails again;
 *   -EIO       anything else, taken as transient: insufficient resources
 *              (53xxx, e.g. disk full), a privilege revoked (42501), ...
 *              An operator fixes those; back off and retry. */
int pg_sink_fail(struct pg_sink *ps, const PGresult *res, const char *what);

/* Connect if need be, then run the one command @sql with the @n text
 * parameters @params (NULL entries are SQL NULL), expecting no rows back.
 * Returns 0, pg_sink_connect()'s error, or pg_sink_fail()'s code with
 * @what naming the command in the message. Same thread as the sink. */
int pg_sink_command(struct pg_sink *ps, const char *sql, int n,
		    const char *const *params, const char *what);
