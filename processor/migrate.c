/* SPDX-License-Identifier: Apache-2.0 */
/*
 * migrate — applies the embedded schema migrations. See migrate.h.
 */
#include "migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_log.h"

__attribute__((format(printf, 3, 4))) static void
set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	if (!errstr || !errstr_size)
		return;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	/* PostgreSQL messages end with a newline; a log line must not. */
	size_t len = strlen(errstr);
	while (len && errstr[len - 1] == '\n')
		errstr[--len] = '\0';
}

/* The error code for a failed command on @conn: -ENOTCONN when the
 * connection itself is gone (the caller reconnects), else @otherwise. */
static int conn_error(PGconn *conn, int otherwise)
{
	return PQstatus(conn) == CONNECTION_OK ? otherwise : -ENOTCONN;
}

/* Run @sql (no parameters, any number of statements) expecting no rows. */
static int exec_command(PGconn *conn, const char *sql, const char *what,
			char *errstr, size_t errstr_size)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int r = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		set_err(errstr, errstr_size, "%s: %s", what,
			PQerrorMessage(conn));
		r = conn_error(conn, -EIO);
	}
	PQclear(res);
	return r;
}

/* Run @sql, which returns rows: the result, or NULL with the error in
 * @errstr and *@r set (connection lost: -ENOTCONN, else -EIO). */
static PGresult *query_rows(PGconn *conn, const char *sql, int *r, char *errstr,
			    size_t errstr_size)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	set_err(errstr, errstr_size, "reading the schema version: %s",
		PQerrorMessage(conn));
	*r = conn_error(conn, -EIO);
	PQclear(res);
	return NULL;
}

/* Fill @applied[i] for each list entry already recorded in the database;
 * fail with -EPROTO on a recorded version the list does not have. */
static int read_applied(PGconn *conn, const struct migrate_migration *list,
			size_t n, bool *applied, char *errstr,
			size_t errstr_size)
{
	PGresult *res;
	bool exists;
	int r = 0;

	res = query_rows(
		conn, "SELECT to_regclass('cw_schema_migrations') IS NOT NULL",
		&r, errstr, errstr_size);
	if (!res)
		return r;
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!exists)
		return 0; /* a new database: nothing applied */

	res = query_rows(conn,
			 "SELECT version, name FROM cw_schema_migrations "
			 "ORDER BY version",
			 &r, errstr, errstr_size);
	if (!res)
		return r;
	for (int row = 0; row < PQntuples(res) && r == 0; row++) {
		int version = atoi(PQgetvalue(res, row, 0));
		size_t i;

		for (i = 0; i < n && list[i].version != version; i++)
			;
		if (i == n) {
			set_err(errstr, errstr_size,
				"the database has schema version %d (%s), "
				"unknown to this binary: it was migrated by a "
				"newer cartwatch",
				version, PQgetvalue(res, row, 1));
			r = -EPROTO;
		} else {
			applied[i] = true;
		}
	}
	PQclear(res);
	return r;
}

/* Apply one migration and record it, in one transaction. */
static int apply_one(PGconn *conn, const struct migrate_migration *m,
		     char *errstr, size_t errstr_size)
{
	char version[16];
	const char *params[2] = {version, m->name};
	PGresult *res;
	int r;

	r = exec_command(conn, "BEGIN", "BEGIN", errstr, errstr_size);
	if (r < 0)
		return r;

	r = exec_command(conn, m->sql, m->name, errstr, errstr_size);
	if (r < 0)
		goto rollback;

	snprintf(version, sizeof(version), "%d", m->version);
	res = PQexecParams(conn,
			   "INSERT INTO cw_schema_migrations (version, name) "
			   "VALUES ($1, $2)",
			   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		set_err(errstr, errstr_size, "%s: recording it: %s", m->name,
			PQerrorMessage(conn));
		r = conn_error(conn, -EIO);
		PQclear(res);
		goto rollback;
	}
	PQclear(res);

	r = exec_command(conn, "COMMIT", m->name, errstr, errstr_size);
	if (r < 0)
		goto rollback;
	cw_info("schema migration applied", "version=%d name=%s", m->version,
		m->name);
	return 0;

rollback:
	/* Best effort: on a broken connection the server rolls back. */
	if (PQstatus(conn) == CONNECTION_OK)
		PQclear(PQexec(conn, "ROLLBACK"));
	return r;
}

int migrate_apply(PGconn *conn, char *errstr, size_t errstr_size)
{
	return migrate_apply_list(conn, migrate_migrations,
				  migrate_n_migrations, errstr, errstr_size);
}

int migrate_apply_list(PGconn *conn, const struct migrate_migration *list,
		       size_t n, char *errstr, size_t errstr_size)
{
	char lock_sql[96], unlock_sql[96];
	bool *applied = NULL;
	int r;

	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		set_err(errstr, errstr_size, "not connected to PostgreSQL");
		return -ENOTCONN;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		set_err(errstr, errstr_size,
			"migrations must run outside a transaction");
		return -EINVAL;
	}
	applied = calloc(n ? n : 1, sizeof(*applied));
	if (!applied) {
		set_err(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}

	snprintf(lock_sql, sizeof(lock_sql),
		 "SELECT pg_advisory_lock(%" PRId64 ")", MIGRATE_LOCK_KEY);
	snprintf(unlock_sql, sizeof(unlock_sql),
		 "SELECT pg_advisory_unlock(%" PRId64 ")", MIGRATE_LOCK_KEY);
	r = exec_command(conn, lock_sql, "taking the migration lock", errstr,
			 errstr_size);
	if (r < 0)
		goto out;

	/* Read under the lock: a runner that waited sees what the one before
	 * it applied. */
	r = read_applied(conn, list, n, applied, errstr, errstr_size);
	if (r < 0)
		goto unlock;
	for (size_t i = 0; i < n; i++) {
		if (applied[i])
			continue;
		r = apply_one(conn, &list[i], errstr, errstr_size);
		if (r < 0)
			goto unlock;
	}

unlock:
	/* A broken connection released the session lock with the session. */
	if (PQstatus(conn) == CONNECTION_OK)
		PQclear(PQexec(conn, unlock_sql));
out:
	free(applied);
	return r;
}
