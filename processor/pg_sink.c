/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_sink — exactly-once writes into PostgreSQL. See pg_sink.h. This file
 * owns the sink (connection, errors, status) and the flush transaction;
 * the COPY field encoders are in pg_copy.c, the buffer in pg_buf.c, the
 * claims and resume-state reads in pg_restore.c.
 *
 * A flush is: BEGIN; one UPDATE fencing and advancing all partitions; a
 * binary COPY straight into each append-only table (abandonments with
 * their items as arrays, outbox chunks, conversions, the product and reason
 * increments, summed per key here first, and the resume state chunks: one row
 * per partition); a text COPY of the recoveries, which update existing rows,
 * into a TEMP staging table (ON COMMIT DELETE ROWS, created once per
 * connection); one multi-statement query applying them set-wise and
 * deleting the state chunks that full snapshots replaced;
 * COMMIT. So the round trips do not depend on the number of rows or
 * partitions.
 */
#include "pg_sink.h"
#include "pg_sink_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <libpq-fe.h>

#include "batch.h"
#include "cw_log.h"
#include "migrate.h"
#include "pack.h"
#include "pg_buf.h"
#include "pg_copy.h"

/* COPY data is sent to the server in chunks of about this size. */
#define COPY_CHUNK (256 * 1024)

/* ---- small helpers --------------------------------------------------- */

/* Copy the first line of @msg into ps->primary, without libpq's
 * "ERROR:  " prefix. */
static void sink_set_primary(struct pg_sink *ps, const char *msg)
{
	size_t len;

	if (strncmp(msg, "ERROR:  ", 8) == 0 ||
	    strncmp(msg, "FATAL:  ", 8) == 0)
		msg += 8;
	len = strcspn(msg, "\n");
	if (len >= sizeof(ps->primary))
		len = sizeof(ps->primary) - 1;
	memcpy(ps->primary, msg, len);
	ps->primary[len] = '\0';
}

/* See pg_sink_priv.h. */
void pg_sink_set_err(struct pg_sink *ps, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(ps->err, sizeof(ps->err), fmt, ap);
	va_end(ap);
	len = strlen(ps->err);
	while (len && ps->err[len - 1] == '\n')
		ps->err[--len] = '\0';
	/* Not from the server unless pg_sink_fail() says otherwise. */
	ps->errclass = PG_SINK_ERR_TRANSIENT;
	ps->sqlstate[0] = '\0';
	sink_set_primary(ps, ps->err);
}

/* The connection failed or broke: @msg is libpq's message. */
static void sink_set_unreachable(struct pg_sink *ps, const char *msg)
{
	ps->errclass = PG_SINK_ERR_UNREACHABLE;
	ps->sqlstate[0] = '\0';
	sink_set_primary(ps, msg);
}

/* See pg_sink_priv.h. */
int pg_sink_fail(struct pg_sink *ps, const PGresult *res, const char *what)
{
	const char *msg = res ? PQresultErrorMessage(res) : "";
	const char *state =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary =
		res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (!msg[0])
		msg = PQerrorMessage(ps->conn);
	pg_sink_set_err(ps, "%s: %s", what, msg);
	sink_set_primary(ps, primary ? primary : msg);
	if (state)
		snprintf(ps->sqlstate, sizeof(ps->sqlstate), "%s", state);
	if (PQstatus(ps->conn) != CONNECTION_OK ||
	    (state &&
	     (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0))) {
		ps->errclass = PG_SINK_ERR_UNREACHABLE;
		return -ENOTCONN;
	}
	ps->errclass = PG_SINK_ERR_TRANSIENT;
	if (state) {
		if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
			return -EAGAIN;
		if (strncmp(state, "22", 2) == 0 ||
		    strncmp(state, "23", 2) == 0) {
			ps->errclass = PG_SINK_ERR_PERMANENT;
			return -EBADMSG;
		}
	}
	return -EIO;
}

/* Run @sql (no parameters, possibly several statements), expecting no rows
 * back. */
static int sink_exec(struct pg_sink *ps, const char *sql, const char *what)
{
	PGresult *res = PQexec(ps->conn, sql);
	int r = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		r = pg_sink_fail(ps, res, what);
	PQclear(res);
	return r;
}

/* See pg_sink_priv.h. */
int pg_sink_command(struct pg_sink *ps, const char *sql, int n,
		    const char *const *params, const char *what)
{
	PGresult *res;
	int r = pg_sink_connect(ps);

	if (r < 0)
		return r;
	res = PQexecParams(ps->conn, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		r = pg_sink_fail(ps, res, what);
	PQclear(res);
	return r;
}

/* Roll back an open transaction; on a broken connection the server does. */
static void sink_rollback(struct pg_sink *ps)
{
	if (ps->conn && PQstatus(ps->conn) == CONNECTION_OK &&
	    PQtransactionStatus(ps->conn) != PQTRANS_IDLE)
		PQclear(PQexec(ps->conn, "ROLLBACK"));
}

/* ---- COPY ------------------------------------------------------------- */

/* Send what ps->copy holds to the COPY in progress. */
static int copy_send(struct pg_sink *ps)
{
	if (ps->copy.oom) {
		pg_sink_set_err(ps, "out of memory building COPY data");
		return -ENOMEM;
	}
	if (ps->copy.len &&
	    PQputCopyData(ps->conn, ps->copy.p, (int)ps->copy.len) != 1)
		return pg_sink_fail(ps, NULL, "sending COPY data");
	pg_buf_clear(&ps->copy);
	return 0;
}

static int copy_begin(struct pg_sink *ps, const char *sql)
{
	PGresult *res = PQexec(ps->conn, sql);
	int r = 0;

	if (PQresultStatus(res) != PGRES_COPY_IN)
		r = pg_sink_fail(ps, res, sql);
	PQclear(res);
	pg_buf_clear(&ps->copy);
	return r;
}

/* Send a full chunk when the buffer is large enough. */
static int copy_maybe_send(struct pg_sink *ps)
{
	return ps->copy.len >= COPY_CHUNK || ps->copy.oom ? copy_send(ps) : 0;
}

/* End the COPY: with @r < 0 abort it (the server discards the rows),
 * else send the rest and check the server accepted everything. */
static int copy_end(struct pg_sink *ps, int r, const char *what)
{
	PGresult *res;

	if (r == 0)
		r = copy_send(ps);
	if (PQputCopyEnd(ps->conn, r < 0 ? "client error" : NULL) != 1 &&
	    r == 0)
		r = pg_sink_fail(ps, NULL, what);
	while ((res = PQgetResult(ps->conn))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && r == 0)
			r = pg_sink_fail(ps, res, what);
		PQclear(res);
	}
	return r;
}

/* ---- COPY binary format ---------------------------------------------- */

/* The tables that only ever get new rows (abandonments with their items,
 * conversions, outbox chunks) are written with a binary COPY straight into
 * the table: no staging table, no INSERT ... SELECT, no text parsing of
 * timestamps on the server (the encoders are in pg_copy.c). */

/* uuid field from its text form; NULL @s is NULL. Returns 0 or -EINVAL
 * (message set). */
static int bin_uuid(struct pg_sink *ps, const char *s)
{
	if (pg_copy_bin_uuid(&ps->copy, s) < 0) {
		pg_sink_set_err(ps, "not a uuid: \"%.40s\"", s);
		return -EINVAL;
	}
	return 0;
}

/* Start a binary COPY: the command, then the file header. */
static int copy_begin_binary(struct pg_sink *ps, const char *sql)
{
	int r = copy_begin(ps, sql);

	pg_copy_bin_header(&ps->copy);
	return r;
}

/* End a binary COPY with its trailer (see copy_end()). */
static int copy_end_binary(struct pg_sink *ps, int r, const char *what)
{
	if (r == 0)
		pg_copy_bin_trailer(&ps->copy);
	return copy_end(ps, r, what);
}

/* ---- SQL ---------------------------------------------------------------- */
/* clang-format off */

/* Event times travel as ms since the epoch (bigint) and become timestamptz
 * here: bigint * interval is exact to the microsecond up to year ~2255. */
#define TS(col) "(timestamptz 'epoch' + " col " * interval '1 millisecond')"

static const char staging_sql[] =
	"CREATE TEMP TABLE cw_stage_recoveries ("
	"  abandonment_id uuid, recovered_at_ms bigint,"
	"  recovered_value_cents bigint) ON COMMIT DELETE ROWS;";

/* The set-based statements, one per record kind; @TOPIC@ stands for the
 * topic literal (see sql_with_topic()). */
static const char copy_abandonments_sql[] =
	"COPY cart_abandonments (abandonment_id, user_id, session_start,"
	"  last_activity_at, abandoned_at, item_count, cart_value_cents,"
	"  currency, last_remove_reason, kafka_partition, item_product_ids,"
	"  item_quantities, item_unit_price_cents)"
	" FROM STDIN (FORMAT binary)";
static const char copy_conversions_sql[] =
	"COPY cart_conversions (conversion_id, user_id, event_id, checkout_at,"
	"  item_count, cart_value_cents, currency, recovered_abandonment_id,"
	"  kafka_partition) FROM STDIN (FORMAT binary)";
/* The per-minute counters are appended, one row per key and flush
 * (012_minute_stats_appended.sql); the views of the same names sum them. */
static const char copy_product_stats_sql[] =
	"COPY product_stats_minute_deltas (bucket, product_id, added_qty,"
	"  removed_qty, purchased_qty, purchased_value_cents, abandoned_qty,"
	"  abandoned_value_cents) FROM STDIN (FORMAT binary)";
static const char copy_reason_stats_sql[] =
	"COPY remove_reasons_minute_deltas (bucket, product_id, reason,"
	"  removed_qty) FROM STDIN (FORMAT binary)";
static const char copy_outbox_sql[] =
	"COPY cw_outbox_chunks (chunk_id, topic, partition, records, chunk)"
	" FROM STDIN (FORMAT binary)";
/* After the abandonment inserts: a recovery may point at one of them. */
static const char apply_recoveries_sql[] =
	"UPDATE cart_abandonments a"
	"  SET recovered_at = " TS("r.recovered_at_ms") ","
	"      recovered_value_cents = r.recovered_value_cents"
	"  FROM (SELECT DISTINCT ON (abandonment_id) abandonment_id,"
	"          recovered_at_ms, recovered_value_cents"
	"        FROM cw_stage_recoveries"
	"        ORDER BY abandonment_id, recovered_at_ms) r"
	"  WHERE a.abandonment_id = r.abandonment_id"
	"    AND a.recovered_at IS NULL;";
/* After the state chunks were copied in: each full snapshot replaces the
 * earlier chunks of its partition. Completed with two arrays, e.g.
 * '{3,5}'::int[], '{f,t}'::bool[]: the partitions whose flush wrote a full
 * snapshot and whether it was empty (0 users: no row was written, delete
 * them all). Else the new row is the partition's latest: nobody else
 * writes the partition meanwhile (the fence holds its row lock until
 * COMMIT), and an identity only grows. */
static const char delete_chunks_head_sql[] =
	"DELETE FROM cw_state_chunks c USING ("
	"  SELECT v.partition, CASE WHEN v.empty THEN NULL ELSE"
	"    (SELECT max(m.seq) FROM cw_state_chunks m"
	"      WHERE m.topic = @TOPIC@ AND m.partition = v.partition) END"
	"    AS keep_from"
	"  FROM unnest(";
static const char delete_chunks_tail_sql[] =
	") AS v(partition, empty)) k"
	" WHERE c.topic = @TOPIC@ AND c.partition = k.partition"
	"   AND (k.keep_from IS NULL OR c.seq < k.keep_from);";
/* clang-format on */

/* ---- connection ------------------------------------------------------ */

/* @tmpl with every @TOPIC@ replaced by @topic as an SQL literal: an E''
 * literal reads the same whatever standard_conforming_strings says, once
 * backslashes and quotes are doubled. Returns a malloc'd string or NULL. */
static char *sql_with_topic(const char *tmpl, const char *topic)
{
	static const char mark[] = "@TOPIC@";
	struct pg_buf sql = {0};
	const char *at;

	while ((at = strstr(tmpl, mark))) {
		pg_buf_put(&sql, tmpl, (size_t)(at - tmpl));
		pg_buf_puts(&sql, "E'");
		for (const char *s = topic; *s; s++) {
			if (*s == '\\' || *s == '\'')
				pg_buf_putc(&sql, *s);
			pg_buf_putc(&sql, *s);
		}
		pg_buf_putc(&sql, '\'');
		tmpl = at + sizeof(mark) - 1;
	}
	pg_buf_puts(&sql, tmpl);
	if (!pg_buf_cstr(&sql)) {
		free(sql.p);
		return NULL;
	}
	return sql.p;
}

static void sink_notice(void *arg, const char *message)
{
	size_t len = strlen(message);

	(void)arg;
	while (len && message[len - 1] == '\n')
		len--;
	cw_info("postgresql notice", "text=\"%.*s\"", (int)len, message);
}

struct pg_sink *pg_sink_new(const char *conninfo, const char *topic,
			    char *errstr, size_t errstr_size)
{
	struct pg_sink *ps = NULL;
	PQconninfoOption *opts;
	char *perr = NULL;
	uint64_t seed;

	if (!topic || !*topic) {
		snprintf(errstr, errstr_size, "pg_sink: empty topic");
		return NULL;
	}
	if (conninfo && *conninfo) {
		opts = PQconninfoParse(conninfo, &perr);
		if (!opts) {
			char why[256]; /* libpq's text quotes the string */

			cw_conninfo_parse_error(conninfo, why, sizeof(why));
			snprintf(errstr, errstr_size,
				 "invalid PostgreSQL connection string: %s",
				 why);
			PQfreemem(perr);
			return NULL;
		}
		PQconninfoFree(opts);
	}

	ps = calloc(1, sizeof(*ps));
	if (!ps)
		goto oom;
	ps->topic = strdup(topic);
	ps->sums = stat_sum_new();
	if (!ps->topic || !ps->sums)
		goto oom;
	if (conninfo && *conninfo) {
		ps->conninfo = strdup(conninfo);
		if (!ps->conninfo)
			goto oom;
	}
	ps->delete_chunks_head = sql_with_topic(delete_chunks_head_sql, topic);
	ps->delete_chunks_tail = sql_with_topic(delete_chunks_tail_sql, topic);
	if (!ps->delete_chunks_head || !ps->delete_chunks_tail)
		goto oom;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)time(NULL) * 2654435761u;
	ps->next_token = (int64_t)(seed >> 2); /* positive, room to count */
	return ps;

oom:
	snprintf(errstr, errstr_size, "pg_sink: out of memory");
	pg_sink_destroy(ps);
	return NULL;
}

void pg_sink_destroy(struct pg_sink *ps)
{
	if (!ps)
		return;
	if (ps->conn)
		PQfinish(ps->conn);
	free(ps->copy.p);
	free(ps->sql.p);
	pack_free(&ps->pack);
	stat_sum_free(ps->sums);
	free(ps->doubt);
	free(ps->last);
	free(ps->subset);
	free(ps->delete_chunks_head);
	free(ps->delete_chunks_tail);
	free(ps->topic);
	free(ps->conninfo);
	free(ps);
}

const char *pg_sink_last_error(const struct pg_sink *ps)
{
	return ps->err;
}

enum pg_sink_errclass pg_sink_last_errclass(const struct pg_sink *ps)
{
	return ps->err[0] ? ps->errclass : PG_SINK_ERR_NONE;
}

const char *pg_sink_last_sqlstate(const struct pg_sink *ps)
{
	return ps->sqlstate;
}

void pg_sink_last_reason(const struct pg_sink *ps, char *buf, size_t size)
{
	if (!ps->err[0])
		snprintf(buf, size, "%s", "");
	else if (ps->errclass == PG_SINK_ERR_UNREACHABLE)
		snprintf(buf, size, "postgresql unreachable: %s", ps->primary);
	else if (ps->sqlstate[0])
		snprintf(buf, size, "postgresql error %s: %s", ps->sqlstate,
			 ps->primary);
	else
		snprintf(buf, size, "postgresql error: %s", ps->primary);
}

int pg_sink_connect(struct pg_sink *ps)
{
	char redacted[512];

	if (ps->conn && PQstatus(ps->conn) == CONNECTION_OK) {
		/* A call that failed half-way may have left a transaction. */
		sink_rollback(ps);
		if (PQstatus(ps->conn) == CONNECTION_OK)
			return 0;
	}
	if (!ps->conn) {
		const char *keys[] = {"dbname", "fallback_application_name",
				      NULL};
		const char *vals[] = {ps->conninfo, "cartwatch-processor",
				      NULL};
		ps->conn = PQconnectdbParams(keys, vals, 1);
		if (!ps->conn) {
			pg_sink_set_err(ps, "connecting to PostgreSQL: out of "
					    "memory");
			return -ENOMEM;
		}
		PQsetNoticeProcessor(ps->conn, sink_notice, NULL);
	} else {
		PQreset(ps->conn);
	}
	ps->staged = false; /* a new session has no TEMP tables */
	cw_log_redact_conninfo(ps->conninfo ? ps->conninfo : "(environment)",
			       redacted, sizeof(redacted));
	if (PQstatus(ps->conn) != CONNECTION_OK) {
		pg_sink_set_err(ps, "connecting to PostgreSQL (%s): %s",
				redacted, PQerrorMessage(ps->conn));
		sink_set_unreachable(ps, PQerrorMessage(ps->conn));
		return -ENOTCONN;
	}
	cw_info("connected to PostgreSQL", "conninfo=\"%s\" server_pid=%d",
		redacted, PQbackendPID(ps->conn));
	return 0;
}

int pg_sink_migrate(struct pg_sink *ps)
{
	int r = pg_sink_connect(ps);

	if (r < 0)
		return r;
	return migrate_apply(ps->conn, ps->err, sizeof(ps->err));
}

/* ---- flush ------------------------------------------------------------ */

/* The three item array fields of @ab's cart_abandonments row (011): the
 * products, quantities and unit prices, item k at position k of each.
 * The abandoned_items view unnests them into one row per item. */
static void copy_items(struct pg_buf *b, const struct batch_abandonment *ab)
{
	size_t at;

	at = pg_copy_bin_array_begin(b, PG_COPY_OID_TEXT, ab->n_items);
	for (size_t k = 0; k < ab->n_items; k++)
		pg_copy_bin_text(b, ab->items[k].product_id);
	pg_copy_bin_array_end(b, at);
	at = pg_copy_bin_array_begin(b, PG_COPY_OID_INT4, ab->n_items);
	for (size_t k = 0; k < ab->n_items; k++)
		pg_copy_bin_i32(b, ab->items[k].quantity);
	pg_copy_bin_array_end(b, at);
	at = pg_copy_bin_array_begin(b, PG_COPY_OID_INT8, ab->n_items);
	for (size_t k = 0; k < ab->n_items; k++)
		pg_copy_bin_i64(b, ab->items[k].unit_price_cents);
	pg_copy_bin_array_end(b, at);
}

static int copy_abandonments(struct pg_sink *ps, struct batch *const *bs,
			     size_t n)
{
	struct pg_buf *b = &ps->copy;
	int r = copy_begin_binary(ps, copy_abandonments_sql);

	for (size_t i = 0; r == 0 && i < n; i++) {
		for (size_t j = 0; r == 0 && j < bs[i]->abandonments.n; j++) {
			const struct batch_abandonment *ab =
				&bs[i]->abandonments.v[j];

			pg_copy_bin_row(b, 13);
			if ((r = bin_uuid(ps, ab->abandonment_id)) < 0)
				break;
			pg_copy_bin_text(b, ab->user_id);
			pg_copy_bin_ts(b, ab->session_start_ms);
			pg_copy_bin_ts(b, ab->last_activity_ms);
			pg_copy_bin_ts(b, ab->abandoned_at_ms);
			pg_copy_bin_i32(b, ab->item_count);
			pg_copy_bin_i64(b, ab->cart_value_cents);
			pg_copy_bin_text(b, ab->currency);
			pg_copy_bin_text(b, ab->last_remove_reason);
			pg_copy_bin_i32(b, bs[i]->partition);
			copy_items(b, ab);
			r = copy_maybe_send(ps);
		}
	}
	return copy_end_binary(ps, r, "writing abandonments");
}

static int copy_conversions(struct pg_sink *ps, struct batch *const *bs,
			    size_t n)
{
	struct pg_buf *b = &ps->copy;
	int r = copy_begin_binary(ps, copy_conversions_sql);

	for (size_t i = 0; r == 0 && i < n; i++) {
		for (size_t j = 0; r == 0 && j < bs[i]->conversions.n; j++) {
			const struct batch_conversion *cv =
				&bs[i]->conversions.v[j];

			pg_copy_bin_row(b, 9);
			if ((r = bin_uuid(ps, cv->conversion_id)) < 0)
				break;
			pg_copy_bin_text(b, cv->user_id);
			pg_copy_bin_text(b, cv->event_id);
			pg_copy_bin_ts(b, cv->checkout_at_ms);
			pg_copy_bin_i32(b, cv->item_count);
			pg_copy_bin_i64(b, cv->cart_value_cents);
			pg_copy_bin_text(b, cv->currency);
			if ((r = bin_uuid(ps, cv->recovered_abandonment_id)) <
			    0)
				break;
			pg_copy_bin_i32(b, bs[i]->partition);
			r = copy_maybe_send(ps);
		}
	}
	return copy_end_binary(ps, r, "writing conversions");
}

/* One outbox chunk per partition with abandonments: their framed Avro
 * records keyed by user, in pack format (pack.h), under the id of the
 * partition's first abandonment in the flush (what the daemon deletes by
 * once the broker acknowledged them all). */
static int copy_outbox(struct pg_sink *ps, struct batch *const *bs, size_t n)
{
	struct pg_buf *b = &ps->copy;
	struct pack_buf *pk = &ps->pack;
	int r = copy_begin_binary(ps, copy_outbox_sql);

	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct batch *bt = bs[i];

		pack_reset(pk, 4 << 20);
		for (size_t j = 0; r == 0 && j < bt->abandonments.n; j++) {
			const struct batch_abandonment *ab =
				&bt->abandonments.v[j];
			if (ab->avro)
				r = pack_put(pk, ab->user_id,
					     strlen(ab->user_id), ab->avro,
					     ab->avro_len);
		}
		if (r < 0) {
			pg_sink_set_err(ps, "packing the outbox: %s",
					strerror(-r));
			break;
		}
		if (!pk->records)
			continue;
		pg_copy_bin_row(b, 5);
		if ((r = bin_uuid(ps, bt->abandonments.v[0].abandonment_id)) <
		    0)
			break;
		pg_copy_bin_text(b, ps->topic);
		pg_copy_bin_i32(b, bt->partition);
		pg_copy_bin_i32(b, (int32_t)pk->records);
		pg_copy_bin_bytes(b, pk->p, pk->len);
		r = copy_maybe_send(ps);
	}
	return copy_end_binary(ps, r, "writing the outbox");
}

static int stage_recoveries(struct pg_sink *ps, struct batch *const *bs,
			    size_t n)
{
	struct pg_buf *b = &ps->copy;
	int r = copy_begin(ps, "COPY cw_stage_recoveries FROM STDIN");

	for (size_t i = 0; r == 0 && i < n; i++) {
		for (size_t j = 0; r == 0 && j < bs[i]->recoveries.n; j++) {
			const struct batch_recovery *rc =
				&bs[i]->recoveries.v[j];

			pg_copy_text(b, rc->abandonment_id, '\t');
			pg_copy_i64(b, rc->recovered_at_ms, '\t');
			pg_copy_i64(b, rc->recovered_value_cents, '\n');
			r = copy_maybe_send(ps);
		}
	}
	return copy_end(ps, r, "staging recoveries");
}

/* The product increments of all batches, summed per (bucket, product)
 * here rather than by the server (the partitions of a flush touch the same
 * keys: ~4x fewer rows in bench-processor) and appended. */
static int copy_product_stats(struct pg_sink *ps, struct batch *const *bs,
			      size_t n, size_t total)
{
	struct pg_buf *b = &ps->copy;
	const struct batch_product_stat *v;
	size_t m;
	int r = stat_sum_products(ps->sums, bs, n, total, &v, &m);

	if (r < 0) {
		pg_sink_set_err(ps, "out of memory summing product stats");
		return r;
	}
	r = copy_begin_binary(ps, copy_product_stats_sql);
	for (size_t i = 0; r == 0 && i < m; i++) {
		pg_copy_bin_row(b, 8);
		pg_copy_bin_ts(b, v[i].bucket_ms);
		pg_copy_bin_text(b, v[i].product_id);
		pg_copy_bin_i64(b, v[i].added_qty);
		pg_copy_bin_i64(b, v[i].removed_qty);
		pg_copy_bin_i64(b, v[i].purchased_qty);
		pg_copy_bin_i64(b, v[i].purchased_value_cents);
		pg_copy_bin_i64(b, v[i].abandoned_qty);
		pg_copy_bin_i64(b, v[i].abandoned_value_cents);
		r = copy_maybe_send(ps);
	}
	return copy_end_binary(ps, r, "writing product stats");
}

/* The reason increments, summed per (bucket, product, reason). */
static int copy_reason_stats(struct pg_sink *ps, struct batch *const *bs,
			     size_t n, size_t total)
{
	struct pg_buf *b = &ps->copy;
	const struct batch_reason_stat *v;
	size_t m;
	int r = stat_sum_reasons(ps->sums, bs, n, total, &v, &m);

	if (r < 0) {
		pg_sink_set_err(ps, "out of memory summing reason stats");
		return r;
	}
	r = copy_begin_binary(ps, copy_reason_stats_sql);
	for (size_t i = 0; r == 0 && i < m; i++) {
		pg_copy_bin_row(b, 4);
		pg_copy_bin_ts(b, v[i].bucket_ms);
		pg_copy_bin_text(b, v[i].product_id);
		pg_copy_bin_text(b, v[i].reason);
		pg_copy_bin_i64(b, v[i].removed_qty);
		r = copy_maybe_send(ps);
	}
	return copy_end_binary(ps, r, "writing reason stats");
}

/* The state chunks of the batches that have records: one row each, in
 * COPY binary format (no hex doubling of the bytes). A large chunk is sent
 * from the batch directly rather than copied. */
static int stage_state_chunks(struct pg_sink *ps, struct batch *const *bs,
			      size_t n)
{
	struct pg_buf *b = &ps->copy;
	int r = copy_begin_binary(ps, "COPY cw_state_chunks (topic, partition, "
				      "full_snapshot, users, chunk) FROM STDIN "
				      "(FORMAT binary)");

	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct pack_buf *st = &bs[i]->state;

		if (!st->records)
			continue;
		if (st->oom || st->len > INT32_MAX) {
			pg_sink_set_err(ps,
					"state chunk of partition %" PRId32
					" is %s",
					bs[i]->partition,
					st->oom ? "incomplete (out of memory)"
						: "over 2 GB");
			r = st->oom ? -ENOMEM : -EINVAL;
			break;
		}
		pg_copy_bin_row(b, 5);
		pg_copy_bin_text(b, ps->topic);
		pg_copy_bin_i32(b, bs[i]->partition);
		pg_copy_bin_bytes(b, bs[i]->state_full ? "\1" : "\0",
				  1); /* bool */
		pg_copy_bin_i32(b, (int32_t)st->records);
		if (st->len < COPY_CHUNK) {
			pg_copy_bin_bytes(b, st->p, st->len);
			r = copy_maybe_send(ps);
			continue;
		}
		/* A large chunk goes to libpq as it is, not through the
		 * buffer. */
		pg_copy_bin_len(b, st->len);
		r = copy_send(ps);
		if (r == 0 && PQputCopyData(ps->conn, (const char *)st->p,
					    (int)st->len) != 1)
			r = pg_sink_fail(ps, NULL, "sending COPY data");
	}
	return copy_end_binary(ps, r, "writing state chunks");
}

/* Append the DELETE of the chunks the full snapshots of @bs replace. */
static void put_delete_chunks(struct pg_sink *ps, struct batch *const *bs,
			      size_t n)
{
	struct pg_buf *sql = &ps->sql;
	bool first = true;

	pg_buf_puts(sql, ps->delete_chunks_head);
	pg_buf_puts(sql, "'{");
	for (size_t i = 0; i < n; i++) {
		if (!bs[i]->state_full)
			continue;
		pg_buf_printf(sql, "%s%" PRId32, first ? "" : ",",
			      bs[i]->partition);
		first = false;
	}
	pg_buf_puts(sql, "}'::int[], '{");
	first = true;
	for (size_t i = 0; i < n; i++) {
		if (!bs[i]->state_full)
			continue;
		pg_buf_puts(sql, first ? "" : ",");
		pg_buf_putc(sql, bs[i]->state.records ? 'f' : 't');
		first = false;
	}
	pg_buf_puts(sql, "}'::bool[]");
	pg_buf_puts(sql, ps->delete_chunks_tail);
}

/* The entry of @partition in @v, or NULL. */
static struct sink_part *part_find(struct sink_part *v, size_t n,
				   int32_t partition)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].partition == partition)
			return &v[i];
	return NULL;
}

/* Set @partition's entry in @v (grown as needed). -ENOMEM. */
static int part_set(struct sink_part **v, size_t *n, size_t *cap,
		    const struct sink_part *sp)
{
	struct sink_part *e = part_find(*v, *n, sp->partition);

	if (!e) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			struct sink_part *nv = realloc(*v, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			*v = nv;
			*cap = nc;
		}
		e = &(*v)[(*n)++];
	}
	*e = *sp;
	return 0;
}

/* Remember what the flush of @bs committed (for the rewind check). Only
 * memory can fail, and then the check is skipped for those partitions. */
static void note_committed(struct pg_sink *ps, struct batch *const *bs,
			   size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sink_part sp = {bs[i]->partition, bs[i]->generation,
				       bs[i]->next_offset, true};
		if (part_set(&ps->last, &ps->n_last, &ps->cap_last, &sp) < 0) {
			struct sink_part *e =
				part_find(ps->last, ps->n_last, sp.partition);
			if (e)
				e->generation = -1; /* unknown now */
		}
	}
}

/* Where this sink's last commit left @partition in @generation, or
 * PG_SINK_OFFSET_NONE - 1 when it does not know (none since the claim). */
static int64_t expected_offset(struct pg_sink *ps, int32_t partition,
			       int64_t generation)
{
	struct sink_part *e = part_find(ps->last, ps->n_last, partition);

	return e && e->generation == generation ? e->next_offset
						: PG_SINK_OFFSET_NONE - 1;
}

/* Fence and advance every partition of the flush in one statement, and
 * check that the database continues from what this sink last committed.
 * The statement also returns the rows as they were before it (old, read
 * with its snapshot: no FOR UPDATE, which would skip the rows the UPDATE
 * changes in the same statement), so a partition that does not come back
 * from the UPDATE can be told apart: claimed by
 * someone else since (a higher generation: -ESTALE) or a database that
 * lost commits (a lower generation, or an offset behind the last commit:
 * -ENOTRECOVERABLE). */
static int fence_partitions(struct pg_sink *ps, struct batch *const *bs,
			    size_t n, int64_t token, int32_t *fenced)
{
	struct pg_buf *sql = &ps->sql;
	size_t offs[4];
	char tok[24];
	const char *params[6];
	PGresult *res = NULL;
	int r = 0;

	/* Four array literals, NUL-separated in one buffer. */
	pg_buf_clear(sql);
	for (int col = 0; col < 4; col++) {
		offs[col] = sql->len;
		pg_buf_putc(sql, '{');
		for (size_t i = 0; i < n; i++) {
			const struct batch *bt = bs[i];
			int64_t v = col == 0   ? bt->partition
				    : col == 1 ? bt->generation
				    : col == 2 ? bt->next_offset
					       : bt->watermark_ms;
			pg_buf_printf(sql, "%s%" PRId64, i ? "," : "", v);
		}
		pg_buf_putc(sql, '}');
		pg_buf_putc(sql, '\0');
	}
	if (sql->oom) {
		pg_sink_set_err(ps, "out of memory");
		return -ENOMEM;
	}
	snprintf(tok, sizeof(tok), "%" PRId64, token);
	params[0] = ps->topic;
	for (int col = 0; col < 4; col++)
		params[1 + col] = sql->p + offs[col];
	params[5] = tok;

	res = PQexecParams(
		ps->conn,
		"WITH old AS ("
		"  SELECT partition, generation, next_offset"
		"    FROM cw_partitions"
		"   WHERE topic = $1 AND partition = ANY($2::int[])),"
		" upd AS ("
		"  UPDATE cw_partitions p"
		"  SET next_offset = v.next_offset,"
		"      watermark_ms = v.watermark_ms,"
		"      watermark_checked = true,"
		"      last_flush = $6, updated_at = now()"
		"  FROM unnest($2::int[], $3::bigint[], $4::bigint[],"
		"              $5::bigint[])"
		"       AS v(partition, generation, next_offset, watermark_ms)"
		"  WHERE p.topic = $1 AND p.partition = v.partition"
		"    AND p.generation = v.generation"
		"  RETURNING p.partition)"
		" SELECT old.partition, old.generation, old.next_offset,"
		"        upd.partition IS NOT NULL"
		"   FROM old LEFT JOIN upd ON upd.partition = old.partition",
		6, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = pg_sink_fail(ps, res, "fencing the partitions");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct batch *bt = bs[i];
		int64_t gen = -1, off = 0, expect;
		bool updated = false;

		for (int row = 0; row < PQntuples(res); row++) {
			if (atoi(PQgetvalue(res, row, 0)) != bt->partition)
				continue;
			gen = strtoll(PQgetvalue(res, row, 1), NULL, 10);
			off = strtoll(PQgetvalue(res, row, 2), NULL, 10);
			updated = PQgetvalue(res, row, 3)[0] == 't';
		}
		if (fenced)
			*fenced = bt->partition;
		expect = expected_offset(ps, bt->partition, bt->generation);
		if (gen >= 0 && gen < bt->generation) {
			pg_sink_set_err(
				ps,
				"partition %" PRId32 " of %s: the database "
				"went back in time: it stores generation "
				"%" PRId64 " (offset %" PRId64
				") but this processor claimed generation "
				"%" PRId64,
				bt->partition, ps->topic, gen, off,
				bt->generation);
			r = -ENOTRECOVERABLE;
			goto out;
		}
		if (!updated) {
			pg_sink_set_err(
				ps,
				"partition %" PRId32 " of %s was claimed "
				"by another processor (generation %" PRId64
				" is stale)",
				bt->partition, ps->topic, bt->generation);
			r = -ESTALE;
			goto out;
		}
		if (expect >= PG_SINK_OFFSET_NONE && off != expect) {
			pg_sink_set_err(
				ps,
				"partition %" PRId32 " of %s: the database "
				"went back in time: it stores next offset "
				"%" PRId64 " but this processor committed "
				"%" PRId64 " (generation %" PRId64 ")",
				bt->partition, ps->topic, off, expect,
				bt->generation);
			r = -ENOTRECOVERABLE;
			goto out;
		}
	}
	if (fenced)
		*fenced = -1;
out:
	PQclear(res);
	return r;
}

/* The previous flush lost the answer to its COMMIT: did it land? Looks at
 * every partition of that flush (ps->doubt), whether or not the retry still
 * holds it. A partition whose generation is still the flush's tells: its
 * last_flush is the flush's token if and only if the transaction committed
 * (a claim bumps the generation and clears last_flush; this sink writes
 * nothing more until it knows). When every partition was claimed since,
 * the answer does not matter any more: the fence refuses those batches.
 * Returns 0 with ps->in_doubt cleared and ps->n_doubt > 0 only if it
 * landed; on error the question stays open. */
static int resolve_in_doubt(struct pg_sink *ps)
{
	struct pg_buf *sql = &ps->sql;
	char tok[24];
	const char *params[3] = {ps->topic, NULL, tok};
	PGresult *res;
	int landed = 0, not_landed = 0, r = 0;

	pg_buf_clear(sql);
	pg_buf_putc(sql, '{');
	for (size_t i = 0, k = 0; i < ps->n_doubt; i++)
		if (!ps->doubt[i].committed)
			pg_buf_printf(sql, "%s%" PRId32, k++ ? "," : "",
				      ps->doubt[i].partition);
	pg_buf_putc(sql, '}');
	if (!pg_buf_cstr(sql)) {
		pg_sink_set_err(ps, "out of memory");
		return -ENOMEM;
	}
	params[1] = sql->p;
	snprintf(tok, sizeof(tok), "%" PRId64, ps->in_doubt_token);
	res = PQexecParams(ps->conn,
			   "SELECT partition, generation,"
			   "       coalesce(last_flush = $3, false)"
			   "  FROM cw_partitions"
			   " WHERE topic = $1 AND partition = ANY($2::int[])",
			   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = pg_sink_fail(ps, res, "checking the last flush");
		goto out;
	}
	for (int row = 0; row < PQntuples(res); row++) {
		struct sink_part *e = part_find(ps->doubt, ps->n_doubt,
						atoi(PQgetvalue(res, row, 0)));
		if (!e || e->committed ||
		    strtoll(PQgetvalue(res, row, 1), NULL, 10) != e->generation)
			continue; /* claimed since: cannot tell, moot */
		if (PQgetvalue(res, row, 2)[0] == 't')
			landed++;
		else
			not_landed++;
	}
	ps->in_doubt = false;
	if (landed) {
		/* A partition that disagrees lost its part afterwards: the
		 * rewind check of its next flush reports it. */
		for (size_t i = 0; i < ps->n_doubt; i++) {
			struct sink_part *dp = &ps->doubt[i];

			if (dp->committed)
				continue;
			dp->committed = true;
			if (part_set(&ps->last, &ps->n_last, &ps->cap_last,
				     dp) < 0) {
				struct sink_part *e = part_find(
					ps->last, ps->n_last, dp->partition);
				if (e)
					e->generation = -1;
			}
		}
		cw_info("flush with lost COMMIT answer had landed",
			"token=%" PRId64 " partitions=%zu disagreeing=%d",
			ps->in_doubt_token, ps->n_doubt, not_landed);
	} else {
		/* Keep only what earlier resolutions found committed. */
		size_t k = 0;

		for (size_t i = 0; i < ps->n_doubt; i++)
			if (ps->doubt[i].committed)
				ps->doubt[k++] = ps->doubt[i];
		ps->n_doubt = k;
		if (not_landed)
			cw_warn("flush with lost COMMIT answer did not land, "
				"retrying",
				"token=%" PRId64, ps->in_doubt_token);
		else
			cw_warn("flush with lost COMMIT answer: every "
				"partition "
				"was claimed since, its batches are fenced",
				"token=%" PRId64, ps->in_doubt_token);
	}
out:
	PQclear(res);
	return r;
}

/* Make room for @n batch pointers in ps->subset. */
static int reserve_subset(struct pg_sink *ps, size_t n)
{
	struct batch **v;

	if (n <= ps->cap_subset)
		return 0;
	v = realloc(ps->subset, n * sizeof(*v));
	if (!v) {
		pg_sink_set_err(ps, "out of memory");
		return -ENOMEM;
	}
	ps->subset = v;
	ps->cap_subset = n;
	return 0;
}

/* One flush transaction for @bs. With @commit false it is rolled back
 * (a trial run, to find which batch fails). */
static int flush_tx(struct pg_sink *ps, struct batch *const *batches, size_t n,
		    int32_t *fenced_partition, bool commit)
{
	/* abandonments (with their items), conversions, recoveries, product
	 * stats, reason stats, state chunks, full snapshots */
	size_t counts[7] = {0};
	int64_t token;
	PGresult *res;
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct batch *bt = batches[i];

		counts[0] += bt->abandonments.n;
		counts[1] += bt->conversions.n;
		counts[2] += bt->recoveries.n;
		counts[3] += bt->product_stats.n;
		counts[4] += bt->reason_stats.n;
		counts[5] += bt->state.records > 0;
		counts[6] += bt->state_full;
	}
	if (!ps->staged) {
		r = sink_exec(ps, staging_sql, "creating staging tables");
		if (r < 0)
			return r;
		ps->staged = true;
	}

	token = ps->next_token++;
	r = sink_exec(ps, "BEGIN", "BEGIN");
	if (r < 0)
		goto fail;
	r = fence_partitions(ps, batches, n, token, fenced_partition);
	if (r < 0)
		goto fail;

	if (counts[0] && (r = copy_abandonments(ps, batches, n)) < 0)
		goto fail;
	if (counts[0] && (r = copy_outbox(ps, batches, n)) < 0)
		goto fail;
	if (counts[1] && (r = copy_conversions(ps, batches, n)) < 0)
		goto fail;
	if (counts[2] && (r = stage_recoveries(ps, batches, n)) < 0)
		goto fail;
	if (counts[3] &&
	    (r = copy_product_stats(ps, batches, n, counts[3])) < 0)
		goto fail;
	if (counts[4] && (r = copy_reason_stats(ps, batches, n, counts[4])) < 0)
		goto fail;
	if (counts[5] && (r = stage_state_chunks(ps, batches, n)) < 0)
		goto fail;

	/* One round trip for all set-based statements. Recoveries come after
	 * the abandonments (copied above) they may point at. */
	pg_buf_clear(&ps->sql);
	if (counts[2])
		pg_buf_puts(&ps->sql, apply_recoveries_sql);
	if (counts[6])
		put_delete_chunks(ps, batches, n);
	if (!pg_buf_cstr(&ps->sql)) {
		pg_sink_set_err(ps, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	if (ps->sql.len && (r = sink_exec(ps, ps->sql.p, "writing rows")) < 0)
		goto fail;
	if (!commit) {
		sink_rollback(ps);
		return PQstatus(ps->conn) == CONNECTION_OK ? 0 : -ENOTCONN;
	}

	/* From here a lost connection leaves the outcome unknown. */
	res = PQexec(ps->conn, "COMMIT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK ||
	    strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		r = pg_sink_fail(ps, res, "COMMIT");
		PQclear(res);
		if (r == -ENOTCONN) {
			/* Keep what is still unacknowledged from an earlier
			 * in-doubt flush: both are resolved together. */
			for (size_t i = 0; i < n && r == -ENOTCONN; i++) {
				struct sink_part sp = {batches[i]->partition,
						       batches[i]->generation,
						       batches[i]->next_offset,
						       false};
				if (part_set(&ps->doubt, &ps->n_doubt,
					     &ps->cap_doubt, &sp) < 0)
					r = -ENOMEM;
			}
			/* Without memory to remember it, the flush cannot
			 * be resolved: stop rather than guess. */
			if (r == -ENOMEM)
				pg_sink_set_err(ps, "out of memory remembering "
						    "an in-doubt COMMIT");
			ps->in_doubt = true;
			ps->in_doubt_token = token;
		}
		goto fail;
	}
	PQclear(res);
	note_committed(ps, batches, n);
	cw_debug("flush committed",
		 "partitions=%zu abandonments=%zu conversions=%zu "
		 "state_chunks=%zu full_snapshots=%zu",
		 n, counts[0], counts[1], counts[5], counts[6]);
	return 0;

fail:
	sink_rollback(ps);
	return r;
}

/* A flush of @n > 0 batches failed with a permanent error: find the batch
 * that makes it fail, by trial runs of growing prefixes (the first prefix
 * that fails ends with it; this also finds a batch that only fails
 * together with an earlier one, e.g. the same abandonment id twice). The
 * trial runs are rolled back. Returns -EBADMSG with *@partition set and
 * the first failure's message, or another error from a trial. */
static int isolate_permanent(struct pg_sink *ps, struct batch *const *bs,
			     size_t n, int32_t *partition)
{
	char err[sizeof(ps->err)], primary[sizeof(ps->primary)];
	char state[sizeof(ps->sqlstate)];
	size_t k = n - 1;
	int r;

	memcpy(err, ps->err, sizeof(err));
	memcpy(primary, ps->primary, sizeof(primary));
	memcpy(state, ps->sqlstate, sizeof(state));
	for (size_t i = 0; i + 1 < n; i++) {
		r = flush_tx(ps, bs, i + 1, partition, false);
		if (r == -EBADMSG) {
			k = i;
			memcpy(err, ps->err, sizeof(err));
			memcpy(primary, ps->primary, sizeof(primary));
			memcpy(state, ps->sqlstate, sizeof(state));
			break;
		}
		if (r < 0)
			return r;
	}
	if (partition)
		*partition = bs[k]->partition;
	{
		struct sink_part *e =
			part_find(ps->last, ps->n_last, bs[k]->partition);
		bool known = e && e->generation == bs[k]->generation;

		char range[64];

		if (known)
			snprintf(range, sizeof(range),
				 "offsets %" PRId64 "..%" PRId64,
				 e->next_offset < 0 ? 0 : e->next_offset,
				 bs[k]->next_offset - 1);
		else
			snprintf(range, sizeof(range),
				 "offsets up to %" PRId64 " since its claim",
				 bs[k]->next_offset - 1);
		snprintf(ps->err, sizeof(ps->err),
			 "partition %" PRId32 " (%s) cannot be written: %.900s",
			 bs[k]->partition, range, err);
	}
	memcpy(ps->primary, primary, sizeof(primary));
	memcpy(ps->sqlstate, state, sizeof(state));
	ps->errclass = PG_SINK_ERR_PERMANENT;
	return -EBADMSG;
}

int pg_sink_flush(struct pg_sink *ps, struct batch *const *batches, size_t n,
		  int32_t *fenced_partition)
{
	size_t nw = 0;
	int r;

	if (fenced_partition)
		*fenced_partition = -1;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (batches[j]->partition == batches[i]->partition) {
				pg_sink_set_err(
					ps,
					"two batches for partition %" PRId32,
					batches[i]->partition);
				return -EINVAL;
			}
	if (n == 0)
		return 0;

	r = pg_sink_connect(ps);
	if (r < 0)
		return r;
	if (ps->in_doubt && (r = resolve_in_doubt(ps)) < 0)
		return r;

	/* Leave out the batches an in-doubt flush was found to have
	 * committed (same partition and generation): never write one twice.
	 * A batch of the same generation that ends elsewhere was changed
	 * since, against the contract: the caller must reload. */
	if ((r = reserve_subset(ps, n)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct sink_part *e = part_find(ps->doubt, ps->n_doubt,
						batches[i]->partition);
		if (!e || e->generation != batches[i]->generation) {
			ps->subset[nw++] = batches[i];
			continue;
		}
		if (e->next_offset != batches[i]->next_offset) {
			pg_sink_set_err(
				ps,
				"the flush whose COMMIT answer was lost "
				"did commit, but partition %" PRId32
				" was retried with different batches "
				"(next offset %" PRId64 ", committed %" PRId64
				")",
				batches[i]->partition, batches[i]->next_offset,
				e->next_offset);
			if (fenced_partition)
				*fenced_partition = batches[i]->partition;
			ps->n_doubt = 0;
			return -EPROTO;
		}
	}
	if (nw > 0) {
		r = flush_tx(ps, ps->subset, nw, fenced_partition, true);
		if (r == -EBADMSG)
			r = isolate_permanent(ps, ps->subset, nw,
					      fenced_partition);
		if (r < 0)
			return r;
	}
	ps->n_doubt = 0;
	return 0;
}

/* ---- processor status ---------------------------------------------------- */

/* The arrays of @ov as PostgreSQL array literals: currencies (quoted) into
 * @cur, and the three counts into @n[0..2]. Each buffer holds
 * OPEN_VALUE_ROWS entries. */
#define OPEN_VALUE_ARRAY_SIZE (OPEN_VALUE_ROWS * 24 + 4)
static void open_value_arrays(const struct open_value_rows *ov,
			      char cur[OPEN_VALUE_ARRAY_SIZE],
			      char n[3][OPEN_VALUE_ARRAY_SIZE])
{
	size_t lc = 0, ln[3] = {0, 0, 0};

	cur[lc++] = '{';
	for (int k = 0; k < 3; k++)
		n[k][ln[k]++] = '{';
	for (uint32_t i = 0; i < ov->n && i < OPEN_VALUE_ROWS; i++) {
		const struct open_value_row *r = &ov->row[i];
		int64_t v[3] = {r->sessions, r->carts, r->value_cents};
		if (i) {
			cur[lc++] = ',';
			for (int k = 0; k < 3; k++)
				n[k][ln[k]++] = ',';
		}
		cur[lc++] = '"';
		for (const char *c = r->currency; *c; c++) {
			if (*c == '"' || *c == '\\')
				cur[lc++] = '\\';
			cur[lc++] = *c;
		}
		cur[lc++] = '"';
		for (int k = 0; k < 3; k++)
			ln[k] += (size_t)snprintf(n[k] + ln[k],
						  OPEN_VALUE_ARRAY_SIZE - ln[k],
						  "%" PRId64, v[k]);
	}
	cur[lc++] = '}';
	cur[lc] = '\0';
	for (int k = 0; k < 3; k++) {
		n[k][ln[k]++] = '}';
		n[k][ln[k]] = '\0';
	}
}

int pg_sink_write_status(struct pg_sink *ps, const struct pg_sink_status *st)
{
	char started[32], total[32], eps[32], users[32], carts[32],
		sessions[32], lag[32], wm[32], dead[32], flush_ms[32];
	char ov_cur[OPEN_VALUE_ARRAY_SIZE], ov_n[3][OPEN_VALUE_ARRAY_SIZE];
	const char *params[16] = {
		st->instance, started, st->partitions, total,
		eps,	      users,   carts,	       sessions,
		lag,	      NULL,    dead,	       flush_ms,
		NULL,	      NULL,    NULL,	       NULL};

	if (st->open_value) {
		open_value_arrays(st->open_value, ov_cur, ov_n);
		params[12] = ov_cur;
		params[13] = ov_n[0];
		params[14] = ov_n[1];
		params[15] = ov_n[2];
	}

	snprintf(started, sizeof(started), "%" PRId64, st->started_at_ms);
	snprintf(total, sizeof(total), "%" PRId64, st->events_total);
	snprintf(eps, sizeof(eps), "%.3f", st->events_per_second);
	snprintf(users, sizeof(users), "%" PRId64, st->users);
	snprintf(carts, sizeof(carts), "%" PRId64, st->open_carts);
	snprintf(sessions, sizeof(sessions), "%" PRId64, st->open_sessions);
	snprintf(lag, sizeof(lag), "%" PRId64, st->consumer_lag);
	snprintf(dead, sizeof(dead), "%" PRId64, st->dead_letters);
	snprintf(flush_ms, sizeof(flush_ms), "%.3f", st->last_flush_ms);
	if (st->watermark_ms != PG_SINK_WATERMARK_NONE) {
		snprintf(wm, sizeof(wm), "%" PRId64, st->watermark_ms);
		params[9] = wm;
	}
	return pg_sink_command(
		ps,
		"WITH s AS ("
		" INSERT INTO processor_status AS p (instance, updated_at,"
		"  started_at, partitions, events_total, events_per_second,"
		"  users, open_carts, open_sessions, consumer_lag, watermark,"
		"  dead_letters, last_flush_ms)"
		" VALUES ($1, now(), 'epoch'::timestamptz + $2::bigint *"
		"  interval '1 millisecond', $3::int[], $4, $5, $6, $7, $8, $9,"
		"  'epoch'::timestamptz + $10::bigint * interval '1 "
		"millisecond',"
		"  $11, $12)"
		" ON CONFLICT (instance) DO UPDATE SET updated_at = now(),"
		"  started_at = EXCLUDED.started_at,"
		"  partitions = EXCLUDED.partitions,"
		"  events_total = EXCLUDED.events_total,"
		"  events_per_second = EXCLUDED.events_per_second,"
		"  users = EXCLUDED.users, open_carts = EXCLUDED.open_carts,"
		"  open_sessions = EXCLUDED.open_sessions,"
		"  consumer_lag = EXCLUDED.consumer_lag,"
		"  watermark = EXCLUDED.watermark,"
		"  dead_letters = EXCLUDED.dead_letters,"
		"  last_flush_ms = EXCLUDED.last_flush_ms"
		" RETURNING instance, updated_at, open_carts, open_sessions,"
		"  consumer_lag, events_per_second)"
		", h AS (INSERT INTO processor_status_history (instance, at,"
		"  open_carts, open_sessions, consumer_lag, events_per_second)"
		" SELECT * FROM s ON CONFLICT DO NOTHING)"
		/* Carts at risk: upsert this flush's currencies, delete the
		 * others (disjoint rows, so one statement can do both). A
		 * NULL $13 touches nothing. */
		", v AS (INSERT INTO processor_status_open_value AS o"
		"  (instance, currency, open_sessions, open_carts,"
		"   open_value_cents)"
		" SELECT $1, * FROM unnest($13::text[], $14::bigint[],"
		"  $15::bigint[], $16::bigint[])"
		" ON CONFLICT (instance, currency) DO UPDATE SET"
		"  open_sessions = EXCLUDED.open_sessions,"
		"  open_carts = EXCLUDED.open_carts,"
		"  open_value_cents = EXCLUDED.open_value_cents)"
		" DELETE FROM processor_status_open_value"
		" WHERE instance = $1 AND currency <> ALL ($13::text[])",
		16, params, "writing processor_status");
}
