/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-pg — the throwaway PostgreSQL the harness starts is real and usable:
 * create a table, write rows in a transaction, read them back.
 */
#include <libpq-fe.h>

#include "harness.h"

static PGconn *connect_or_die(void)
{
	PGconn *conn = PQconnectdb(harness_require_env("CARTWATCH_PG"));
	if (PQstatus(conn) != CONNECTION_OK)
		fprintf(stderr, "connect: %s", PQerrorMessage(conn));
	REQUIRE(PQstatus(conn) == CONNECTION_OK);
	return conn;
}

static void exec_ok(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
	CHECK_INT_EQ(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
}

static void test_write_read(void)
{
	PGconn *conn = connect_or_die();
	PGresult *res;

	exec_ok(conn, "CREATE TABLE t (id int PRIMARY KEY, name text, "
		      "cents bigint, at timestamptz)");
	exec_ok(conn, "BEGIN");
	for (int i = 0; i < 100; i++) {
		char id[16], cents[32];
		const char *params[3] = {id, "widget", cents};
		snprintf(id, sizeof(id), "%d", i);
		snprintf(cents, sizeof(cents), "%lld", 5000000000LL + i);
		res = PQexecParams(conn,
				   "INSERT INTO t VALUES ($1, $2, $3, "
				   "'2026-07-08T00:00:00Z')",
				   3, NULL, params, NULL, NULL, 0);
		CHECK_INT_EQ(PQresultStatus(res), PGRES_COMMAND_OK);
		PQclear(res);
	}
	exec_ok(conn, "COMMIT");

	res = PQexec(conn, "SELECT count(*), sum(cents), min(name), "
			   "extract(epoch from min(at))::bigint FROM t");
	REQUIRE(PQresultStatus(res) == PGRES_TUPLES_OK);
	CHECK_STR_EQ(PQgetvalue(res, 0, 0), "100");
	/* 100 * 5e9 + (0 + ... + 99) */
	CHECK_STR_EQ(PQgetvalue(res, 0, 1), "500000004950");
	CHECK_STR_EQ(PQgetvalue(res, 0, 2), "widget");
	CHECK_STR_EQ(PQgetvalue(res, 0, 3), "1783468800");
	PQclear(res);

	/* A rolled-back write leaves nothing behind. */
	exec_ok(conn, "BEGIN");
	exec_ok(conn, "DELETE FROM t");
	exec_ok(conn, "ROLLBACK");
	res = PQexec(conn, "SELECT count(*) FROM t");
	CHECK_STR_EQ(PQgetvalue(res, 0, 0), "100");
	PQclear(res);
	PQfinish(conn);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"write_read", test_write_read},
	};
	return harness_run(cases, 1, argc, argv);
}
