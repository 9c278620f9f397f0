/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_restore — what the processor reads back from PostgreSQL through its
 * sink: partition claims (fencing), the resume state of a partition's
 * users and the abandonment outbox, and the outbox deletes once the
 * broker acknowledged. See pg_restore.h. Not for: writing a flush
 * (pg_sink.c).
 */
#include "pg_restore.h"
#include "pg_sink_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cw_log.h"
#include "pack.h"
#include "pg_buf.h"
#include "pg_copy.h"

/* clang-format off */
/* A partition's state: its latest full snapshot and every later chunk,
 * in order ($1 topic, $2 partition; the primary key serves both), each
 * row with the records of all of them (sum of users, read without the
 * chunks' bytes, once), for the size callback. */
static const char load_chunks_sql[] =
	"WITH s AS (SELECT coalesce((SELECT max(seq) FROM cw_state_chunks"
	"     WHERE topic = $1 AND partition = $2 AND full_snapshot), 0) AS from_seq),"
	" t AS (SELECT sum(users)::int8 AS records FROM cw_state_chunks, s"
	"     WHERE topic = $1 AND partition = $2 AND seq >= s.from_seq)"
	" SELECT c.seq, c.chunk, t.records FROM cw_state_chunks c, s, t"
	" WHERE c.topic = $1 AND c.partition = $2 AND c.seq >= s.from_seq"
	" ORDER BY c.seq";
/* clang-format on */

/* ---- claims ------------------------------------------------------------ */

bool pg_sink_watermark_checked(const struct pg_sink *ps)
{
	return ps->watermark_checked;
}

int pg_sink_claim_partition(struct pg_sink *ps, int32_t partition,
			    const char *owner, int64_t *generation,
			    int64_t *next_offset, int64_t *watermark_ms)
{
	char part[16];
	const char *params[3] = {ps->topic, part, owner ? owner : ""};
	PGresult *res;
	int r;

	r = pg_sink_connect(ps);
	if (r < 0)
		return r;
	snprintf(part, sizeof(part), "%" PRId32, partition);
	res = PQexecParams(ps->conn,
			   "INSERT INTO cw_partitions AS p "
			   "  (topic, partition, owner) VALUES ($1, $2, $3) "
			   "ON CONFLICT (topic, partition) DO UPDATE "
			   "  SET generation = p.generation + 1, "
			   "      owner = EXCLUDED.owner, last_flush = NULL, "
			   "      updated_at = now() "
			   "RETURNING generation, next_offset, watermark_ms, "
			   "  watermark_checked",
			   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		r = pg_sink_fail(ps, res, "claiming the partition");
		goto out;
	}
	*generation = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*next_offset = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	*watermark_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	ps->watermark_checked = PQgetvalue(res, 0, 3)[0] == 't';
	cw_info("partition claimed",
		"topic=%s partition=%" PRId32 " generation=%" PRId64
		" next_offset=%" PRId64,
		ps->topic, partition, *generation, *next_offset);
out:
	PQclear(res);
	return r;
}

/* Read a single-row-mode query's rows, calling @row for each. The query
 * was sent with binary results. Always drains the connection. */
static int stream_rows(struct pg_sink *ps, const char *what,
		       int (*row)(const PGresult *res, void *arg), void *arg)
{
	PGresult *res;
	int r = 0;

	if (!PQsetSingleRowMode(ps->conn)) {
		r = -EIO;
		pg_sink_set_err(ps, "%s: single-row mode refused", what);
	}
	while ((res = PQgetResult(ps->conn))) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_SINGLE_TUPLE) {
			if (r == 0)
				r = row(res, arg);
		} else if (st != PGRES_TUPLES_OK && r == 0) {
			r = pg_sink_fail(ps, res, what);
		}
		PQclear(res);
	}
	return r;
}

struct chunk_rows {
	struct pg_sink *ps;
	int32_t partition;
	pg_sink_user_cb cb;
	pg_sink_size_cb size_cb; /* may be NULL */
	bool sized;		 /* size_cb was called */
	void *opaque;
	uint64_t bytes; /* chunk bytes read */
	char *key;	/* NUL-terminated copy of the current user id */
	size_t key_cap;
};

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* One cw_state_chunks row (seq, chunk, records of all chunks; binary):
 * for the first, the count to the size callback; then every record to the
 * callback, in order. */
static int chunk_row(const PGresult *res, void *arg)
{
	struct chunk_rows *cr = arg;
	int64_t seq = PQgetlength(res, 0, 0) == 8
			      ? (int64_t)get_be64(
					(const uint8_t *)PQgetvalue(res, 0, 0))
			      : -1;
	size_t len = (size_t)PQgetlength(res, 0, 1);
	struct pack_reader rd =
		pack_reader_init((const uint8_t *)PQgetvalue(res, 0, 1), len);
	const uint8_t *key, *val;
	size_t klen, vlen;
	int r;

	cr->bytes += len;
	if (cr->size_cb && !cr->sized && PQgetlength(res, 0, 2) == 8) {
		int64_t n = (int64_t)get_be64(
			(const uint8_t *)PQgetvalue(res, 0, 2));
		cr->sized = true;
		if ((r = cr->size_cb(cr->opaque, n > 0 ? (uint64_t)n : 0)) < 0)
			return r;
	}
	while ((r = pack_next(&rd, &key, &klen, &val, &vlen)) == 1) {
		if (klen >= cr->key_cap) {
			size_t cap = klen + 64;
			char *k = realloc(cr->key, cap);
			if (!k) {
				pg_sink_set_err(cr->ps, "loading user states: "
							"out of memory");
				return -ENOMEM;
			}
			cr->key = k;
			cr->key_cap = cap;
		}
		memcpy(cr->key, key, klen);
		cr->key[klen] = '\0';
		r = cr->cb(cr->opaque, cr->key, val, vlen);
		if (r < 0)
			return r;
	}
	if (r < 0) {
		pg_sink_set_err(cr->ps,
				"state chunk seq %" PRId64
				" of partition %" PRId32
				" of %s is corrupt (truncated record)",
				seq, cr->partition, cr->ps->topic);
		return r;
	}
	return 0;
}

/* Send a SELECT with params topic and partition, binary results. */
static int send_partition_query(struct pg_sink *ps, const char *sql,
				int32_t partition, const char *what)
{
	char part[16];
	const char *params[2] = {ps->topic, part};
	int r = pg_sink_connect(ps);

	if (r < 0)
		return r;
	snprintf(part, sizeof(part), "%" PRId32, partition);
	if (!PQsendQueryParams(ps->conn, sql, 2, NULL, params, NULL, NULL, 1))
		return pg_sink_fail(ps, NULL, what);
	return 0;
}

int pg_sink_load_users(struct pg_sink *ps, int32_t partition,
		       pg_sink_user_cb cb, pg_sink_size_cb size_cb,
		       void *opaque, uint64_t *log_bytes)
{
	struct chunk_rows cr = {.ps = ps,
				.partition = partition,
				.cb = cb,
				.size_cb = size_cb,
				.opaque = opaque};
	int r;

	if (log_bytes)
		*log_bytes = 0;
	r = send_partition_query(ps, load_chunks_sql, partition,
				 "loading user states");
	if (r < 0)
		return r;
	r = stream_rows(ps, "loading user states", chunk_row, &cr);
	free(cr.key);
	if (r == 0 && log_bytes)
		*log_bytes = cr.bytes;
	return r;
}

struct outbox_rows {
	pg_sink_outbox_cb cb;
	void *opaque;
};

static int outbox_row(const PGresult *res, void *arg)
{
	struct outbox_rows *orows = arg;

	return orows->cb(orows->opaque, PQgetvalue(res, 0, 0),
			 (const uint8_t *)PQgetvalue(res, 0, 1),
			 (size_t)PQgetlength(res, 0, 1));
}

int pg_sink_load_outbox(struct pg_sink *ps, int32_t partition,
			pg_sink_outbox_cb cb, void *opaque)
{
	struct outbox_rows orows = {cb, opaque};
	int r;

	r = send_partition_query(
		ps,
		"SELECT chunk_id::text, chunk FROM cw_outbox_chunks "
		"WHERE topic = $1 AND partition = $2 "
		"ORDER BY created_at, chunk_id",
		partition, "loading the outbox");
	if (r < 0)
		return r;
	return stream_rows(ps, "loading the outbox", outbox_row, &orows);
}

int pg_sink_outbox_delete(struct pg_sink *ps, const char *const *chunk_ids,
			  size_t n)
{
	const char *params[1];

	if (n == 0)
		return 0;
	pg_buf_clear(&ps->sql);
	pg_buf_putc(&ps->sql, '{');
	for (size_t i = 0; i < n; i++) {
		uint8_t u[16];

		/* Checked, since the ids go into an array literal. */
		if (!chunk_ids[i] || pg_copy_parse_uuid(chunk_ids[i], u) < 0) {
			pg_sink_set_err(ps, "outbox delete: not a uuid: \"%s\"",
					chunk_ids[i] ? chunk_ids[i] : "(null)");
			return -EINVAL;
		}
		if (i)
			pg_buf_putc(&ps->sql, ',');
		pg_buf_puts(&ps->sql, chunk_ids[i]);
	}
	pg_buf_putc(&ps->sql, '}');
	params[0] = pg_buf_cstr(&ps->sql);
	if (!params[0]) {
		pg_sink_set_err(ps, "outbox delete: out of memory");
		return -ENOMEM;
	}

	return pg_sink_command(ps,
			       "DELETE FROM cw_outbox_chunks "
			       "WHERE chunk_id = ANY($1::uuid[])",
			       1, params, "deleting from the outbox");
}
