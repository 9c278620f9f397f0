/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_sink — the processor's exactly-once writer into PostgreSQL. A flush
 * writes the batches of several partitions (struct batch, see batch.h) and
 * each partition's next offset and watermark in ONE transaction, so after a
 * crash the processor resumes from the committed offsets and nothing is
 * counted twice or lost. Through pg_restore.h it also claims partitions
 * (fencing), loads the resume state of a partition's users and the
 * abandonment outbox.
 *
 * Thread: a sink and its connection belong to one thread, the one polling
 * the consumer (rebalance callbacks run there too). Calls block on
 * PostgreSQL.
 *
 * Fencing: each cw_partitions row has an owner generation.
 * pg_sink_claim_partition() bumps it when this processor takes a partition;
 * the flush checks the generation of every batch inside its transaction and
 * rolls everything back if another processor claimed one since (-ESTALE).
 *
 * Failures and retries: every call first checks the connection and
 * reconnects (PQreset) if it broke; when the server cannot be reached it
 * returns -ENOTCONN at once, and the CALLER backs off and calls again, with
 * the SAME batches for a flush — the sink never keeps a copy and never
 * retries by itself. A failed flush is rolled back and leaves the batches
 * untouched. If the connection broke while COMMIT was in flight, the sink
 * remembers the flush's token and batches and the next pg_sink_flush()
 * first looks up whether that COMMIT landed; batches that did are not
 * written again (see pg_sink_flush()).
 * This is why the caller must not append to, or swap, the batches between
 * a failed flush and its retry (pause the consumer while PostgreSQL is
 * unreachable).
 *
 * Not for: reading reports, or buffering across failures (that is the
 * batches' job). The connection string is never logged with its password.
 */
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "open_value.h"

struct batch;
struct pg_sink;

/* The claims and reads (pg_sink_claim_partition(), pg_sink_load_users(),
 * pg_sink_load_outbox(), pg_sink_outbox_delete()) are declared there. */
#include "pg_restore.h"

/* next_offset of a partition nothing was committed for yet: start at the
 * beginning (RD_KAFKA_OFFSET_BEGINNING semantics, decided by the caller). */
#define PG_SINK_OFFSET_NONE (-1)
/* watermark_ms of a partition nothing was committed for yet. */
#define PG_SINK_WATERMARK_NONE INT64_MIN

/* Create a sink writing for consumer topic @topic (the cw_partitions and
 * cw_state_chunks key) to the database of @conninfo (a libpq connection
 * string or URI; NULL or "" uses the PG* environment variables). Does not
 * connect: the first call does, so the processor can start while
 * PostgreSQL is down. @conninfo and @topic are copied.
 * Returns NULL with a message in @errstr when @conninfo does not parse,
 * @topic is empty, or on ENOMEM. */
struct pg_sink *pg_sink_new(const char *conninfo, const char *topic,
			    char *errstr, size_t errstr_size);

/* Close the connection and free @ps. An open transaction is rolled back by
 * the server. NULL is allowed. */
void pg_sink_destroy(struct pg_sink *ps);

/* The message of the last failed call ("" if none): what failed and the
 * PostgreSQL or libpq error. Owned by @ps, valid until its next call. */
const char *pg_sink_last_error(const struct pg_sink *ps);

/* What kind of failure the last failed call met. */
enum pg_sink_errclass {
	PG_SINK_ERR_NONE = 0,
	/* PostgreSQL cannot be reached, the connection broke, or the
	 * server is shutting down (SQLSTATE 08xxx, 57P0x): back off. */
	PG_SINK_ERR_UNREACHABLE,
	/* The server refused for now (serialization failure or deadlock,
	 * insufficient resources such as a full disk (53xxx), a privilege
	 * revoked (42501), any unknown SQLSTATE), or a local failure
	 * (memory, fencing): back off and retry the same work. */
	PG_SINK_ERR_TRANSIENT,
	/* The data itself cannot be written (22xxx data exceptions such as
	 * invalid UTF-8 or an out-of-range time, 23xxx integrity violations
	 * such as a duplicate key): retrying fails again. */
	PG_SINK_ERR_PERMANENT,
};

/* The class of the last failed call's error (PG_SINK_ERR_NONE if no call
 * failed yet). Can't fail. Thread of @ps. */
enum pg_sink_errclass pg_sink_last_errclass(const struct pg_sink *ps);

/* The SQLSTATE of the last failed call ("" when the server gave none, e.g.
 * a lost connection). Owned by @ps, valid until its next call. */
const char *pg_sink_last_sqlstate(const struct pg_sink *ps);

/* A one-line, bounded description of the last failure for /healthz:
 * "postgresql unreachable: <libpq's first line>" for a connection that
 * failed or broke, else "postgresql error <SQLSTATE>: <first line of the
 * server's message>" — never the SQL text or the connection string. "" if
 * no call failed. Writes at most @size bytes (NUL included) to @buf. */
void pg_sink_last_reason(const struct pg_sink *ps, char *buf, size_t size);

/* (Re)connect if needed. Returns 0, or -ENOTCONN when PostgreSQL cannot be
 * reached (message in pg_sink_last_error()). Every other call does this
 * first; calling it is only useful to fail early at startup. */
int pg_sink_connect(struct pg_sink *ps);

/* Apply the schema migrations built into the binary (migrate_apply()) on
 * the sink's connection. Returns 0, -ENOTCONN, or migrate_apply_list()'s
 * errors (-EPROTO: the database is newer than this binary). */
int pg_sink_migrate(struct pg_sink *ps);

/* Write @n batches (distinct partitions; empty ones only move offsets) in
 * ONE transaction: fence and advance each partition's cw_partitions row
 * (next_offset, watermark_ms from the batch), insert the abandonments with
 * their items and one outbox chunk per partition, the conversions, mark
 * recovered abandonments (first recovery wins; the abandonment may be in
 * the same flush), add the product and reason increments (duplicate keys
 * are summed), and write each batch's state chunk (batch->state, when it
 * has records) as one cw_state_chunks row; for a full snapshot
 * (batch->state_full, possibly with 0 records) the partition's earlier
 * chunks are deleted. The batches are read, never changed or kept.
 *
 * Rewind check: inside the transaction each partition's stored row must
 * be exactly where this sink's last commit for that generation left it
 * (and carry the batch's generation, not an older one). A database that
 * lost commits (asynchronous failover, synchronous_commit=off or fsync=off
 * and a crash, a restored backup) fails the check.
 *
 * In-doubt COMMIT: the batches of a flush whose COMMIT answer was lost
 * are remembered by partition and generation; the next call looks up, on
 * any of those partitions still in that generation, whether the flush's
 * token landed, and leaves out the batches that did (a claim changes the
 * generation and clears the token, so a batch built after a claim is
 * always written). If the lookup fails, the question stays open.
 *
 * Returns 0 when everything committed (or an earlier attempt with the same
 * batches was found committed); the caller then resets the batches. On
 * error nothing was written, the message is in pg_sink_last_error(), the
 * class in pg_sink_last_errclass(), and *fenced_partition (may be NULL;
 * -1 when no partition is to blame) names the partition for:
 *   -ESTALE    claimed by another processor: drop that partition and flush
 *              the others again;
 *   -ENOTRECOVERABLE  the database went back in time for that partition
 *              (its stored offset or generation is behind what this
 *              processor committed): drop it, claim it again and replay
 *              from the stored offset;
 *   -EBADMSG   a permanent error (PG_SINK_ERR_PERMANENT; SQLSTATE in
 *              pg_sink_last_sqlstate()) caused by that partition's batch
 *              (found by rolled-back trial runs when there are several):
 *              set it aside and flush the others again; retrying it fails;
 *   -EPROTO    an earlier attempt whose COMMIT answer was lost did land,
 *              but that partition's batch (same generation) is not the
 *              one it wrote: reload its state.
 * and otherwise:
 *   -ENOTCONN  the connection is gone: back off, retry the same batches;
 *   -EAGAIN    serialization failure or deadlock: retry now;
 *   -EIO       any other PostgreSQL error, transient (disk full, a
 *              privilege revoked): back off, retry the same batches;
 *   -EINVAL    two batches for one partition;
 *   -ENOMEM. */
int pg_sink_flush(struct pg_sink *ps, struct batch *const *batches, size_t n,
		  int32_t *fenced_partition);

/* What a processor reports about itself (processor_status). */
struct pg_sink_status {
	const char *instance;
	int64_t started_at_ms;	/* wall clock, ms since the epoch */
	const char *partitions; /* PostgreSQL int[] text, e.g. "{0,3}" */
	int64_t events_total;
	double events_per_second;
	int64_t users;
	int64_t open_carts;
	int64_t open_sessions;
	int64_t consumer_lag;
	int64_t watermark_ms; /* lowest partition watermark (event time),
			       * PG_SINK_WATERMARK_NONE if none */
	int64_t dead_letters;
	double last_flush_ms;
	/* Carts at risk by currency (processor_status_open_value); NULL
	 * leaves the instance's rows as they are. */
	const struct open_value_rows *open_value;
};

/* Upsert the processor_status row of @st->instance, append a
 * processor_status_history row and replace the instance's
 * processor_status_open_value rows with @st->open_value, in one statement
 * outside any flush transaction (status is advisory; losing one is
 * harmless).
 * Returns 0, -ENOTCONN or -EIO (message in pg_sink_last_error()). */
int pg_sink_write_status(struct pg_sink *ps, const struct pg_sink_status *st);
