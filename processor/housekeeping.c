/* SPDX-License-Identifier: Apache-2.0 */
/*
 * housekeeping — partitions created ahead, old ones dropped. See
 * housekeeping.h; the partitioning itself is described in
 * migrations/010_partitioning.sql.
 */
#include "housekeeping.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cw_log.h"

#define DAY_MS 86400000LL
/* The longest a step waits for a lock it did not take with NOWAIT first
 * (see step()): a flush arriving meanwhile queues behind the waiting step,
 * so this bounds how long a flush can wait for housekeeping. */
#define LOCK_TIMEOUT  "200ms"
#define LOCK_TRIES    5
#define LOCK_RETRY_MS 30
/* Processors sharing a database run their passes one at a time. */
#define ADVISORY_KEY "7510931148"
/* Ids from this time on are the first scheme's (random first bits, see
 * the migration's <table>_ids_v1 partitions), not a day. */
#define IDS_V1_FROM_MS 7258118400000LL /* 2200-01-01 */
/* A day partition of appended counters is folded once it ended this long
 * ago: by then the sessions of its minutes have closed and late events
 * for it are rare (they would only add a row, summed like any other). */
#define FOLD_AFTER_MS (6 * 3600000LL)

/* FROM and WHERE of a query over the partitions c (default included) of
 * the partitioned table pt whose name fills the %s. */
#define PARTITIONS_OF                                                          \
	" FROM pg_partitioned_table pt"                                        \
	" JOIN pg_inherits i ON i.inhparent = pt.partrelid"                    \
	" JOIN pg_class c ON c.oid = i.inhrelid AND c.relkind = 'r'"           \
	" WHERE pt.partrelid = '%s'::regclass"

/* The sum of @col over a key's rows as the views of 012 compute it. */
#define SAT_SUM(col) "LEAST(sum(" #col "), 9223372036854775807)::bigint"
/* clang-format off */
#define PRODUCT_SUMS                                                           \
	SAT_SUM(added_qty) ", " SAT_SUM(removed_qty) ", "                      \
	SAT_SUM(purchased_qty) ", " SAT_SUM(purchased_value_cents) ", "        \
	SAT_SUM(abandoned_qty) ", " SAT_SUM(abandoned_value_cents)
/* clang-format on */

/* The partitioned tables and their keys (010_partitioning.sql; the
 * per-minute counters were renamed to *_deltas by 012). abandoned_items
 * is a view since 011: its rows are in cart_abandonments' and leave with
 * them. */
static const struct hk_table {
	const char *name;
	const char *key;
	bool uuid_key;	     /* time-ordered id: bounds via cw_time_uuid() */
	bool status;	     /* --status-retention, not --retention */
	const char *storage; /* WITH (...) of each new partition, or "" */
	/* Appended per-key counters (012): the key columns and the sums that
	 * fold a past day's rows into one per key; NULL: not folded. */
	const char *fold_key;
	const char *fold_sums;
} hk_tables[] = {
	{"cart_abandonments", "abandonment_id", true, false,
	 " WITH (fillfactor = 90)", NULL, NULL}, /* 013: HOT recoveries */
	{"cart_conversions", "conversion_id", true, false, "", NULL, NULL},
	{"product_stats_minute_deltas", "bucket", false, false, "",
	 "bucket, product_id", PRODUCT_SUMS},
	{"remove_reasons_minute_deltas", "bucket", false, false, "",
	 "bucket, product_id, reason", SAT_SUM(removed_qty)},
	{"processor_status_history", "at", false, true, "", NULL, NULL},
};

/* The SQL expression of the bound for time @ms in @t's key. */
static void bound_sql(const struct hk_table *t, int64_t ms, char *out,
		      size_t size)
{
	snprintf(out, size,
		 "%s(timestamptz 'epoch' + %" PRId64
		 " * interval '1 millisecond')%s",
		 t->uuid_key ? "cw_time_uuid" : "", ms,
		 t->uuid_key ? "" : "::timestamptz");
}

/* Did the last command fail because its lock was not granted in time? */
static bool lock_timed_out(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return state && strcmp(state, "55P03") == 0;
}

/* Roll back the transaction a failed command left open, if any: an error
 * inside a step's multi-statement BEGIN ... COMMIT leaves it open. */
static void hk_rollback(PGconn *conn)
{
	if (PQtransactionStatus(conn) == PQTRANS_INERROR)
		PQclear(PQexec(conn, "ROLLBACK"));
}

/* The command that returned @res failed; takes @res. Returns -ENOTCONN
 * when the connection is gone: nothing is counted, the pass stops and the
 * thread reconnects. Otherwise counts the failure in @st, logs @msg with
 * the step @what and the @table concerned (each NULL: not logged; a step
 * names its table) and the server's message, rolls back the transaction the
 * command left open (a step's BEGIN ... COMMIT) and returns -EIO. */
static int hk_failed(PGconn *conn, PGresult *res, struct housekeeping_stats *st,
		     const char *msg, const char *what, const char *table)
{
	const char *err;

	if (PQstatus(conn) != CONNECTION_OK) {
		PQclear(res);
		return -ENOTCONN;
	}
	st->failures++;
	err = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (what)
		cw_warn(msg, "step=%s table=%s error=\"%s\"", what, table, err);
	else if (table)
		cw_warn(msg, "table=%s error=\"%s\"", table, err);
	else
		cw_warn(msg, "error=\"%s\"", err);
	PQclear(res);
	hk_rollback(conn);
	return -EIO;
}

/* Run @sql as one transaction, after @lock (a LOCK TABLE ... NOWAIT, or
 * ""): NOWAIT fails at once instead of queueing, so while a flush or a
 * report holds the table, flushes never line up behind a waiting
 * housekeeping lock. The lock is tried LOCK_TRIES times, LOCK_RETRY_MS
 * apart, between flushes. Returns 0, -EAGAIN when the lock was never
 * granted, -ENOTCONN or -EIO (logged with @what). */
static int step(PGconn *conn, const char *lock, const char *sql,
		const char *what, const char *table,
		struct housekeeping_stats *st)
{
	char buf[2048];
	PGresult *res;

	snprintf(buf, sizeof(buf),
		 "BEGIN; SET LOCAL lock_timeout = '" LOCK_TIMEOUT "'; %s%s; "
		 "COMMIT",
		 lock, sql);
	for (int attempt = 1;; attempt++) {
		res = PQexec(conn, buf);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			PQclear(res);
			return 0;
		}
		if (PQstatus(conn) != CONNECTION_OK || !lock_timed_out(res))
			return hk_failed(conn, res, st,
					 "housekeeping step failed", what,
					 table);
		PQclear(res);
		hk_rollback(conn);
		if (attempt == LOCK_TRIES)
			break;
		nanosleep(&(struct timespec){0, LOCK_RETRY_MS * 1000000L},
			  NULL);
	}
	st->lock_timeouts++;
	cw_info("housekeeping step left for later: table busy",
		"step=%s table=%s", what, table);
	return -EAGAIN;
}

/* A step on partition @part of @t succeeded: count it in *@count and log
 * @msg. */
static void partition_done(const struct hk_table *t, const char *part,
			   uint64_t *count, const char *msg)
{
	(*count)++;
	cw_info(msg, "table=%s partition=%s", t->name, part);
}

/* Partition name suffix of the UTC day starting at @ms: pYYYYMMDD. */
static void day_name(const struct hk_table *t, int64_t ms, char *out,
		     size_t size)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(out, size, "%s_p%04d%02d%02d", t->name, tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday);
}

static int create_day(PGconn *conn, const struct hk_table *t, const char *deflt,
		      int64_t lo_ms, struct housekeeping_stats *st)
{
	char name[96], lo[128], hi[128], sql[1800], move[600] = "";
	int r;

	day_name(t, lo_ms, name, sizeof(name));
	bound_sql(t, lo_ms, lo, sizeof(lo));
	bound_sql(t, lo_ms + DAY_MS, hi, sizeof(hi));
	/* Rows the default partition took for this day move with it: the
	 * ATTACH below checks that the default partition holds none. */
	if (*deflt)
		snprintf(move, sizeof(move),
			 "; WITH m AS (DELETE FROM %s WHERE %s >= %s AND %s < "
			 "%s RETURNING *) INSERT INTO %s SELECT * FROM m",
			 deflt, t->key, lo, t->key, hi, name);
	/* CREATE TABLE ... PARTITION OF would lock the parent ACCESS
	 * EXCLUSIVE; ATTACH takes SHARE UPDATE EXCLUSIVE, which lets
	 * flushes write meanwhile, and ACCESS EXCLUSIVE on the default
	 * partition, which it scans (kept small, see the migration): that
	 * one is taken with NOWAIT first (see step()). */
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING "
		 "CONSTRAINTS)%s%s; ALTER TABLE %s ATTACH PARTITION %s FOR "
		 "VALUES FROM (%s) TO (%s)",
		 name, t->name, t->storage, move, t->name, name, lo, hi);
	char lock[160] = "";
	if (*deflt)
		snprintf(lock, sizeof(lock),
			 "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT; ",
			 deflt);
	r = step(conn, lock, sql, "create", name, st);
	if (r == 0)
		partition_done(t, name, &st->created, "partition created");
	return r;
}

static int drop_partition(PGconn *conn, const struct hk_table *t,
			  const char *part, struct housekeeping_stats *st)
{
	char sql[256];
	int r;

	/* DROP locks the parent ACCESS EXCLUSIVE for a moment (catalog work
	 * only); DETACH ... CONCURRENTLY is refused while a default
	 * partition exists. Taken with NOWAIT first (see step()). */
	char lock[160];
	snprintf(lock, sizeof(lock),
		 "LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE NOWAIT; ",
		 t->name);
	snprintf(sql, sizeof(sql), "DROP TABLE %s", part);
	r = step(conn, lock, sql, "drop", part, st);
	if (r == 0)
		partition_done(t, part, &st->dropped, "partition dropped");
	return r;
}

static int delete_default_rows(PGconn *conn, const struct hk_table *t,
			       const char *deflt, int64_t cutoff_ms,
			       struct housekeeping_stats *st)
{
	char bound[128], sql[512];
	PGresult *res;
	uint64_t n;

	bound_sql(t, cutoff_ms, bound, sizeof(bound));
	/* Row locks only (ROW EXCLUSIVE): flushes are never blocked. */
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s < %s", deflt,
		 t->key, bound);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return hk_failed(conn, res, st, "housekeeping step failed",
				 "delete", deflt);
	n = strtoull(PQcmdTuples(res), NULL, 10);
	st->rows_deleted += n;
	if (n)
		cw_info("old rows deleted from default partition",
			"table=%s rows=%" PRIu64, t->name, n);
	PQclear(res);
	return 0;
}

/* Fold the rows of the oldest day partition of @t that ended at least
 * FOLD_AFTER_MS ago and was not folded yet into one row per key (the views
 * over the table answer the same; readers group fewer rows). One
 * partition per pass. Row locks only: flushes go on appending meanwhile,
 * and what they append is not in the DELETE's snapshot, so it stays as it
 * is (a late row for a folded day is summed by the views like any other).
 * cw_compacted_partitions remembers what was folded. Returns 0, -ENOTCONN
 * or -EIO (logged). */
static int fold_day(PGconn *conn, const struct hk_table *t, int64_t now_ms,
		    struct housekeeping_stats *st)
{
	char sql[1600], part[80];
	PGresult *res;
	int r;

	snprintf(sql, sizeof(sql),
		 "SELECT c.relname" PARTITIONS_OF " AND c.oid <> pt.partdefid"
		 "   AND cw_partition_upper_ms(c.oid) <= %" PRId64
		 "   AND NOT EXISTS (SELECT 1 FROM cw_compacted_partitions k"
		 "     WHERE k.partition = c.relname)"
		 " ORDER BY cw_partition_upper_ms(c.oid) LIMIT 1",
		 t->name, (int64_t)(now_ms - FOLD_AFTER_MS));
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return hk_failed(conn, res, st,
				 "housekeeping: cannot list partitions to fold",
				 NULL, t->name);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	snprintf(part, sizeof(part), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	/* Entries of partitions dropped since go in the same step. */
	snprintf(sql, sizeof(sql),
		 "DELETE FROM cw_compacted_partitions"
		 "  WHERE to_regclass(quote_ident(partition)) IS NULL;"
		 " WITH d AS (DELETE FROM %s RETURNING *),"
		 " f AS (INSERT INTO %s SELECT %s, %s FROM d GROUP BY %s"
		 "   ORDER BY bucket RETURNING 1)"
		 " INSERT INTO cw_compacted_partitions"
		 "   (partition, rows_before, rows_after)"
		 " SELECT '%s', (SELECT count(*) FROM d), (SELECT count(*) "
		 "FROM f)",
		 part, part, t->fold_key, t->fold_sums, t->fold_key, part);
	r = step(conn, "", sql, "fold", part, st);
	if (r == 0)
		partition_done(t, part, &st->folded,
			       "day partition folded to one row per key");
	return r == -EAGAIN ? 0 : r;
}

/* One table: create ahead, then drop and delete what is older than
 * @retention_ms (0: nothing). */
static int table_pass(PGconn *conn, const struct hk_table *t, int64_t now_ms,
		      int64_t retention_ms, struct housekeeping_stats *st)
{
	char sql[512], deflt[80] = "";
	int64_t newest = INT64_MIN, today = now_ms - now_ms % DAY_MS;
	int64_t cutoff = retention_ms ? now_ms - retention_ms : INT64_MIN;
	PGresult *res;
	int r, worst = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT c.relname, cw_partition_upper_ms(c.oid),"
		 "  c.oid = pt.partdefid" PARTITIONS_OF,
		 t->name);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return hk_failed(conn, res, st,
				 "housekeeping: cannot list partitions", NULL,
				 t->name);
	int n = PQntuples(res);
	char(*old)[80] = calloc((size_t)n + 1, sizeof(*old));
	int n_old = 0;
	if (!old) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		const char *rel = PQgetvalue(res, i, 0);
		if (PQgetvalue(res, i, 2)[0] == 't') {
			snprintf(deflt, sizeof(deflt), "%s", rel);
			continue;
		}
		if (PQgetisnull(res, i, 1))
			continue; /* up to MAXVALUE: the ids_v1 partition */
		int64_t upper = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		if (upper >= IDS_V1_FROM_MS)
			continue;
		if (upper > newest)
			newest = upper;
		if (upper <= cutoff)
			snprintf(old[n_old++], sizeof(old[0]), "%s", rel);
	}
	PQclear(res);

	/* Days missing between the newest partition and today stay in the
	 * default partition: only today and later are created. */
	for (int64_t lo = newest > today ? newest : today;
	     lo <= today + HOUSEKEEPING_AHEAD_DAYS * DAY_MS; lo += DAY_MS) {
		r = create_day(conn, t, deflt, lo, st);
		if (r == -ENOTCONN) {
			free(old);
			return r;
		}
		if (r < 0) {
			worst = worst ? worst : r;
			break; /* the next day would not be contiguous */
		}
	}
	for (int i = 0; i < n_old; i++) {
		r = drop_partition(conn, t, old[i], st);
		if (r == -ENOTCONN) {
			free(old);
			return r;
		}
		if (r < 0 && !worst)
			worst = r;
		if (r == -EAGAIN)
			break; /* the table is busy: the rest next pass */
	}
	free(old);
	if (retention_ms && *deflt) {
		r = delete_default_rows(conn, t, deflt, cutoff, st);
		if (r < 0 && !worst)
			worst = r;
	}
	return worst;
}

int housekeeping_pass(PGconn *conn, const struct housekeeping_params *p,
		      struct housekeeping_stats *st)
{
	PGresult *res;
	int64_t now_ms;
	int r, worst = 0;

	res = PQexec(conn, "SET TimeZone = 'UTC'; SELECT "
			   "pg_try_advisory_lock(" ADVISORY_KEY
			   "), (extract(epoch FROM now()) * 1000)::bigint");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return hk_failed(conn, res, st,
				 "housekeeping: cannot start a pass", NULL,
				 NULL);
	bool mine = PQgetvalue(res, 0, 0)[0] == 't';
	now_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (!mine)
		return 0; /* another processor's pass is running */

	for (size_t i = 0; i < sizeof(hk_tables) / sizeof(hk_tables[0]); i++) {
		const struct hk_table *t = &hk_tables[i];
		r = table_pass(conn, t, now_ms,
			       t->status ? p->status_retention_ms
					 : p->retention_ms,
			       st);
		if (r == -ENOTCONN)
			return r;
		if (r == -ENOMEM)
			break;
		if (r < 0 && r != -EAGAIN && !worst)
			worst = r;
	}
	for (size_t i = 0;
	     worst != -ENOMEM && i < sizeof(hk_tables) / sizeof(hk_tables[0]);
	     i++) {
		if (!hk_tables[i].fold_key)
			continue;
		r = fold_day(conn, &hk_tables[i], now_ms, st);
		if (r == -ENOTCONN)
			return r;
		if (r < 0 && !worst)
			worst = r;
	}
	PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" ADVISORY_KEY ")"));
	if (worst != -ENOMEM)
		st->passes++;
	return worst;
}

/* ---- the thread ------------------------------------------------------- */

struct housekeeping {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* quit */
	struct housekeeping_params p;
	char *conninfo;

	/* Under lock. */
	bool quit;
	struct housekeeping_stats stats;
};

static void *housekeeping_main(void *arg)
{
	struct housekeeping *hk = arg;
	PGconn *conn = NULL;
	struct housekeeping_stats st;

	pthread_mutex_lock(&hk->lock);
	st = hk->stats;
	while (!hk->quit) {
		pthread_mutex_unlock(&hk->lock);
		if (conn && PQstatus(conn) != CONNECTION_OK) {
			PQfinish(conn);
			conn = NULL;
		}
		if (!conn) {
			conn = PQconnectdb(hk->conninfo ? hk->conninfo : "");
			if (PQstatus(conn) != CONNECTION_OK) {
				st.failures++;
				cw_warn("housekeeping: PostgreSQL unreachable, "
					"retrying at the next pass",
					"error=\"%s\"", PQerrorMessage(conn));
			}
		}
		if (PQstatus(conn) == CONNECTION_OK)
			housekeeping_pass(conn, &hk->p, &st);

		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(hk->p.interval_ms / 1000);
		until.tv_nsec += (long)(hk->p.interval_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&hk->lock);
		hk->stats = st;
		while (!hk->quit && pthread_cond_timedwait(&hk->cond, &hk->lock,
							   &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&hk->lock);
	PQfinish(conn);
	return NULL;
}

struct housekeeping *housekeeping_new(const struct housekeeping_params *p,
				      char *errstr, size_t errstr_size)
{
	struct housekeeping *hk = calloc(1, sizeof(*hk));

	if (!hk || (p->conninfo && !(hk->conninfo = strdup(p->conninfo)))) {
		snprintf(errstr, errstr_size, "out of memory");
		free(hk);
		return NULL;
	}
	hk->p = *p;
	hk->p.conninfo = hk->conninfo;
	pthread_mutex_init(&hk->lock, NULL);
	pthread_cond_init(&hk->cond, NULL);
	if (pthread_create(&hk->thread, NULL, housekeeping_main, hk) != 0) {
		snprintf(errstr, errstr_size,
			 "cannot start the housekeeping thread");
		pthread_cond_destroy(&hk->cond);
		pthread_mutex_destroy(&hk->lock);
		free(hk->conninfo);
		free(hk);
		return NULL;
	}
	return hk;
}

void housekeeping_destroy(struct housekeeping *hk)
{
	if (!hk)
		return;
	pthread_mutex_lock(&hk->lock);
	hk->quit = true;
	pthread_cond_signal(&hk->cond);
	pthread_mutex_unlock(&hk->lock);
	pthread_join(hk->thread, NULL);
	pthread_cond_destroy(&hk->cond);
	pthread_mutex_destroy(&hk->lock);
	free(hk->conninfo);
	free(hk);
}

void housekeeping_get_stats(struct housekeeping *hk,
			    struct housekeeping_stats *out)
{
	pthread_mutex_lock(&hk->lock);
	*out = hk->stats;
	pthread_mutex_unlock(&hk->lock);
}
