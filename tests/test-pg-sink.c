/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-pg-sink — migrations and the exactly-once PostgreSQL sink against a
 * real throwaway server (run-with-servers --pg): schema versions applied
 * once even by concurrent runners, every table's rows after a flush
 * (ms-exact times, hostile strings, recoveries, summed increments),
 * fencing, failures mid-flush, a server restart and a lost COMMIT answer
 * (through a TCP proxy), loading state chunks (deltas, deletions, full
 * snapshots, corrupt chunks, migration 004's conversion of per-user rows)
 * and the outbox back.
 *
 * Each case works in a database of its own, so cases do not see each
 * other's rows and can run alone (test-pg-sink CASE).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "batch.h"
#include "harness.h"
#include "migrate.h"
#include "pack.h"
#include "pg_copy.h"
#include "pg_sink.h"

/* ---- database helpers --------------------------------------------------- */

static PGconn *db_connect(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		fprintf(stderr, "connect: %s", PQerrorMessage(conn));
	REQUIRE(PQstatus(conn) == CONNECTION_OK);
	return conn;
}

static void db_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
	REQUIRE(PQresultStatus(res) == PGRES_COMMAND_OK ||
		PQresultStatus(res) == PGRES_TUPLES_OK);
	PQclear(res);
}

/* A new, empty database named @name on the test's throwaway server;
 * returns its conninfo (free it). */
static char *db_create(const char *name)
{
	const char *base = harness_require_env("CARTWATCH_PG");
	PGconn *conn = db_connect(base);
	char sql[256], *conninfo;

	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	db_exec(conn, sql);
	PQfinish(conn);
	REQUIRE(asprintf(&conninfo, "%s dbname=%s", base, name) > 0);
	return conninfo;
}

/* The result of @sql as text: columns joined by '|', rows by '\n', NULL
 * shown as "NULL". Caller frees. */
static char *query_text(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
		PQclear(res);
		return strdup("(query failed)");
	}
	f = open_memstream(&out, &len);
	REQUIRE(f);
	for (int r = 0; r < PQntuples(res); r++) {
		if (r)
			fputc('\n', f);
		for (int c = 0; c < PQnfields(res); c++) {
			if (c)
				fputc('|', f);
			fputs(PQgetisnull(res, r, c) ? "NULL"
						     : PQgetvalue(res, r, c),
			      f);
		}
	}
	fclose(f);
	PQclear(res);
	return out;
}

/* The result of @sql (one number) equals @expect. */
#define CHECK_QUERY_INT(conn, sql, expect)                                     \
	do {                                                                   \
		char *got_ = query_text((conn), (sql));                        \
		CHECK_INT_EQ(strtoll(got_, NULL, 10), (expect));               \
		free(got_);                                                    \
	} while (0)

#define CHECK_QUERY(conn, sql, expect)                                         \
	do {                                                                   \
		char *got_ = query_text((conn), (sql));                        \
		CHECK_STR_EQ(got_, (expect));                                  \
		free(got_);                                                    \
	} while (0)

/* Row counts of every table a flush writes, as one string; for the state
 * chunks, the records they hold. */
static const char count_all_sql[] =
	"SELECT (SELECT count(*) FROM cart_abandonments) || ' ' ||"
	" (SELECT count(*) FROM abandoned_items) || ' ' ||"
	" (SELECT count(*) FROM cart_conversions) || ' ' ||"
	" (SELECT count(*) FROM cart_abandonments WHERE recovered_at IS NOT "
	"NULL)"
	" || ' ' || (SELECT count(*) FROM product_stats_minute) || ' ' ||"
	" (SELECT count(*) FROM remove_reasons_minute) || ' ' ||"
	" (SELECT coalesce(sum(users), 0) FROM cw_state_chunks) || ' ' ||"
	" (SELECT count(*) FROM cw_outbox_chunks)";

/* A migrated database and a sink on it. */
struct fixture {
	char *conninfo;
	PGconn *conn; /* the test's own connection, for checks */
	struct pg_sink *ps;
};

static void fixture_init(struct fixture *fx, const char *dbname,
			 const char *topic)
{
	char errstr[512];

	fx->conninfo = db_create(dbname);
	fx->conn = db_connect(fx->conninfo);
	fx->ps = pg_sink_new(fx->conninfo, topic, errstr, sizeof(errstr));
	if (!fx->ps)
		fprintf(stderr, "pg_sink_new: %s\n", errstr);
	REQUIRE(fx->ps);
	if (pg_sink_migrate(fx->ps) != 0) {
		fprintf(stderr, "migrate: %s\n", pg_sink_last_error(fx->ps));
		exit(1);
	}
}

static void fixture_fini(struct fixture *fx)
{
	pg_sink_destroy(fx->ps);
	PQfinish(fx->conn);
	free(fx->conninfo);
}

/* Claim @partition and return a batch fenced on the new generation. */
static struct batch *claimed_batch(struct pg_sink *ps, int32_t partition)
{
	int64_t gen, off, wm;
	struct batch *b;

	REQUIRE(pg_sink_claim_partition(ps, partition, "test", &gen, &off,
					&wm) == 0);
	b = batch_new(partition);
	REQUIRE(b);
	b->generation = gen;
	return b;
}

static int flush1(struct pg_sink *ps, struct batch *b)
{
	int32_t fenced = -1;
	int r = pg_sink_flush(ps, &b, 1, &fenced);
	if (r != 0)
		fprintf(stderr, "flush: %d %s\n", r, pg_sink_last_error(ps));
	return r;
}

static const char *bs(struct batch *b, const char *s)
{
	return s ? batch_strdup(b, s, strlen(s)) : NULL;
}

static struct batch_abandonment *add_abandonment(struct batch *b,
						 const char *id,
						 const char *user,
						 int64_t at_ms, int64_t value)
{
	struct batch_abandonment *ab = batch_add_abandonment(b);

	REQUIRE(ab);
	REQUIRE(strlen(id) < sizeof(ab->abandonment_id));
	memcpy(ab->abandonment_id, id, strlen(id) + 1);
	ab->user_id = bs(b, user);
	ab->session_start_ms = at_ms - 60000;
	ab->last_activity_ms = at_ms - 1800000 + 1;
	ab->abandoned_at_ms = at_ms;
	ab->item_count = 1;
	ab->cart_value_cents = value;
	ab->currency = bs(b, "USD");
	return ab;
}

static void add_items(struct batch *b, struct batch_abandonment *ab, size_t n,
		      const char *const *products, const int32_t *qty,
		      const int64_t *price)
{
	struct batch_item zero[8] = {{0}};

	REQUIRE(n <= 8);
	ab->items = batch_memdup(b, zero, n * sizeof(*zero));
	REQUIRE(ab->items);
	for (size_t i = 0; i < n; i++) {
		ab->items[i].product_id = bs(b, products[i]);
		ab->items[i].quantity = qty[i];
		ab->items[i].unit_price_cents = price[i];
	}
	ab->n_items = n;
}

static void add_conversion(struct batch *b, const char *id, const char *user,
			   int64_t at_ms, int64_t value, const char *recovers)
{
	struct batch_conversion *cv = batch_add_conversion(b);

	REQUIRE(cv);
	snprintf(cv->conversion_id, sizeof(cv->conversion_id), "%s", id);
	cv->user_id = bs(b, user);
	cv->event_id = bs(b, id + 24);
	cv->checkout_at_ms = at_ms;
	cv->item_count = 2;
	cv->cart_value_cents = value;
	cv->currency = bs(b, "EUR");
	cv->recovered_abandonment_id = bs(b, recovers);
	if (recovers) {
		struct batch_recovery *rc = batch_add_recovery(b);
		REQUIRE(rc);
		snprintf(rc->abandonment_id, sizeof(rc->abandonment_id), "%s",
			 recovers);
		rc->recovered_at_ms = at_ms;
		rc->recovered_value_cents = value;
	}
}

static void add_product_stat(struct batch *b, int64_t bucket_ms,
			     const char *product, int64_t base)
{
	struct batch_product_stat *st = batch_add_product_stat(b);

	REQUIRE(st);
	st->bucket_ms = bucket_ms;
	st->product_id = bs(b, product);
	st->added_qty = base;
	st->removed_qty = base + 1;
	st->purchased_qty = base + 2;
	st->purchased_value_cents = base * 1000;
	st->abandoned_qty = base + 3;
	st->abandoned_value_cents = base * 100000000000LL; /* > 2^32 */
}

static void add_reason_stat(struct batch *b, int64_t bucket_ms,
			    const char *product, const char *reason,
			    int64_t qty)
{
	struct batch_reason_stat *st = batch_add_reason_stat(b);

	REQUIRE(st);
	st->bucket_ms = bucket_ms;
	st->product_id = bs(b, product);
	st->reason = bs(b, reason);
	st->removed_qty = qty;
}

/* Append a record to @b's state chunk; @state NULL: a deletion. */
static void add_user_state(struct batch *b, const char *user, const void *state,
			   size_t len)
{
	REQUIRE(pack_put(&b->state, user, strlen(user), state, len) == 0);
}

/* The state of a partition as pg_sink_load_users() delivers it, applied
 * in order (a later record replaces, a deletion removes). */
#define STATE_MAP_MAX 2048
struct state_map {
	int n, records, deletions;
	char *user[STATE_MAP_MAX];
	uint8_t *state[STATE_MAP_MAX];
	size_t len[STATE_MAP_MAX];
};

static int state_map_find(const struct state_map *m, const char *user)
{
	for (int i = 0; i < m->n; i++)
		if (strcmp(m->user[i], user) == 0)
			return i;
	return -1;
}

static int on_state(void *opaque, const char *user_id, const uint8_t *state,
		    size_t len)
{
	struct state_map *m = opaque;
	int i = state_map_find(m, user_id);

	m->records++;
	if (!state) {
		m->deletions++;
		if (i >= 0) {
			free(m->user[i]);
			free(m->state[i]);
			m->n--;
			m->user[i] = m->user[m->n];
			m->state[i] = m->state[m->n];
			m->len[i] = m->len[m->n];
		}
		return 0;
	}
	if (i < 0) {
		REQUIRE(m->n < STATE_MAP_MAX);
		i = m->n++;
		m->user[i] = strdup(user_id);
	} else {
		free(m->state[i]);
	}
	m->state[i] = malloc(len ? len : 1);
	REQUIRE(m->user[i] && m->state[i]);
	memcpy(m->state[i], state, len);
	m->len[i] = len;
	return 0;
}

static void state_map_clear(struct state_map *m)
{
	for (int i = 0; i < m->n; i++) {
		free(m->user[i]);
		free(m->state[i]);
	}
	memset(m, 0, sizeof(*m));
}

/* Load @partition into a fresh map; returns pg_sink_load_users()'s
 * result. */
static int load_state(struct pg_sink *ps, int32_t partition,
		      struct state_map *m, uint64_t *log_bytes)
{
	state_map_clear(m);
	return pg_sink_load_users(ps, partition, on_state, NULL, m, log_bytes);
}

/* @user's state in @m in hex, "absent" if none. Static buffer. */
static const char *state_hex(const struct state_map *m, const char *user)
{
	static char buf[256];
	int i = state_map_find(m, user);

	if (i < 0)
		return "absent";
	buf[0] = '\0';
	for (size_t k = 0; k < m->len[i] && k < 120; k++)
		snprintf(buf + 2 * k, 3, "%02x", m->state[i][k]);
	return buf;
}

#define ID(n) "00000000-0000-4000-8000-0000000000" #n
/* 2026-07-08T00:00:00.123Z */
#define T0 INT64_C(1783468800123)

/* ---- migrations ---------------------------------------------------------- */

static const char versions_sql[] =
	"SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
	"FROM cw_schema_migrations";

/* What versions_sql shows once every built-in migration is applied. */
static const char *all_versions(void)
{
	static char buf[1024];
	size_t len = 0;

	for (size_t i = 0; i < migrate_n_migrations; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%d:%s",
					i ? "," : "",
					migrate_migrations[i].version,
					migrate_migrations[i].name);
	return buf;
}

static void test_migrate_fresh_then_noop(void)
{
	char *conninfo = db_create("t_migrate");
	PGconn *conn = db_connect(conninfo);
	char errstr[512] = "";
	char *applied_at;

	/* The build embedded the files, in version order. */
	REQUIRE(migrate_n_migrations >= 2);
	CHECK_STR_EQ(migrate_migrations[0].name, "001_schema");
	CHECK_STR_EQ(migrate_migrations[1].name, "002_reports");
	CHECK(strstr(migrate_migrations[0].sql,
		     "CREATE TABLE cart_abandonments"));

	CHECK_INT_EQ(migrate_apply(conn, errstr, sizeof(errstr)), 0);
	CHECK_QUERY(conn, versions_sql, all_versions());
	applied_at = query_text(conn, "SELECT max(applied_at) FROM "
				      "cw_schema_migrations");
	CHECK_QUERY(conn,
		    "SELECT count(*) FROM pg_views WHERE viewname LIKE "
		    "'report\\_%' AND obj_description(format('%I', viewname)"
		    "::regclass, 'pg_class') IS NOT NULL",
		    "12");

	/* A second run has nothing to do and changes nothing. */
	CHECK_INT_EQ(migrate_apply(conn, errstr, sizeof(errstr)), 0);
	CHECK_QUERY(conn, versions_sql, all_versions());
	CHECK_QUERY(conn, "SELECT max(applied_at) FROM cw_schema_migrations",
		    applied_at);
	CHECK_INT_EQ(PQtransactionStatus(conn), PQTRANS_IDLE);
	/* The advisory lock was released. */
	CHECK_QUERY(conn,
		    "SELECT count(*) FROM pg_locks WHERE "
		    "locktype = 'advisory'",
		    "0");
	free(applied_at);
	PQfinish(conn);
	free(conninfo);
}

struct applier {
	const char *conninfo;
	pthread_barrier_t *start;
	int r;
	char errstr[256];
};

static void *applier_main(void *arg)
{
	struct applier *a = arg;
	PGconn *conn = PQconnectdb(a->conninfo);

	pthread_barrier_wait(a->start);
	a->r = migrate_apply(conn, a->errstr, sizeof(a->errstr));
	PQfinish(conn);
	return NULL;
}

static void test_migrate_concurrent(void)
{
	enum { N = 4 };
	char *conninfo = db_create("t_migrate_concurrent");
	struct applier appliers[N];
	pthread_t threads[N];
	pthread_barrier_t start;
	PGconn *conn;

	pthread_barrier_init(&start, NULL, N);
	for (int i = 0; i < N; i++) {
		appliers[i] = (struct applier){conninfo, &start, -1, ""};
		REQUIRE(pthread_create(&threads[i], NULL, applier_main,
				       &appliers[i]) == 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(threads[i], NULL);
		if (appliers[i].r != 0)
			fprintf(stderr, "applier %d: %s\n", i,
				appliers[i].errstr);
		CHECK_INT_EQ(appliers[i].r, 0);
	}
	pthread_barrier_destroy(&start);

	conn = db_connect(conninfo);
	CHECK_QUERY(conn, versions_sql, all_versions());
	PQfinish(conn);
	free(conninfo);
}

static void test_migrate_refuses_newer_schema(void)
{
	char *conninfo = db_create("t_migrate_newer");
	PGconn *conn = db_connect(conninfo);
	char errstr[512] = "";

	CHECK_INT_EQ(migrate_apply(conn, errstr, sizeof(errstr)), 0);
	db_exec(conn, "INSERT INTO cw_schema_migrations (version, name) "
		      "VALUES (999, '999_from_the_future')");
	CHECK_INT_EQ(migrate_apply(conn, errstr, sizeof(errstr)), -EPROTO);
	CHECK(strstr(errstr, "999") != NULL);
	CHECK(strstr(errstr, "999_from_the_future") != NULL);
	PQfinish(conn);
	free(conninfo);
}

static void test_migrate_failure_rolls_back(void)
{
	static const struct migrate_migration list[] = {
		{1, "001_ok",
		 "CREATE TABLE cw_schema_migrations (version int PRIMARY KEY,"
		 " name text NOT NULL, applied_at timestamptz DEFAULT now());"
		 "CREATE TABLE a (x int);"},
		{2, "002_broken",
		 "CREATE TABLE b (x int); SELECT no_such_function();"},
		{3, "003_never", "CREATE TABLE c (x int);"},
	};
	char *conninfo = db_create("t_migrate_fail");
	PGconn *conn = db_connect(conninfo);
	char errstr[512] = "";

	CHECK_INT_EQ(migrate_apply_list(conn, list, 3, errstr, sizeof(errstr)),
		     -EIO);
	CHECK(strstr(errstr, "002_broken") != NULL);
	CHECK(strstr(errstr, "no_such_function") != NULL);
	CHECK_QUERY(conn, versions_sql, "1:001_ok");
	CHECK_QUERY(conn,
		    "SELECT to_regclass('a') IS NOT NULL, "
		    "to_regclass('b') IS NULL, to_regclass('c') IS NULL",
		    "t|t|t");
	CHECK_INT_EQ(PQtransactionStatus(conn), PQTRANS_IDLE);
	PQfinish(conn);
	free(conninfo);
}

/* ---- claiming ------------------------------------------------------------ */

static void test_claim(void)
{
	struct fixture fx;
	int64_t gen, off, wm;
	struct batch *b;

	fixture_init(&fx, "t_claim", "cart-events");
	CHECK_INT_EQ(pg_sink_claim_partition(fx.ps, 0, "a", &gen, &off, &wm),
		     0);
	CHECK_INT_EQ(gen, 1);
	CHECK_INT_EQ(off, PG_SINK_OFFSET_NONE);
	CHECK(wm == PG_SINK_WATERMARK_NONE);

	b = batch_new(0);
	REQUIRE(b);
	b->generation = gen;
	b->next_offset = 42;
	b->watermark_ms = T0;
	CHECK_INT_EQ(flush1(fx.ps, b), 0);

	CHECK_INT_EQ(pg_sink_claim_partition(fx.ps, 0, "b", &gen, &off, &wm),
		     0);
	CHECK_INT_EQ(gen, 2);
	CHECK_INT_EQ(off, 42);
	CHECK_INT_EQ(wm, T0);
	CHECK_QUERY(fx.conn, "SELECT owner FROM cw_partitions", "b");
	batch_destroy(b);
	fixture_fini(&fx);
}

/* ---- flushing ------------------------------------------------------------ */

static const char hostile_user[] = "u\tone\nline\\back\\N'quote\"\r é€😀";

static void test_flush_rows(void)
{
	static const uint8_t avro1[] = {0xc3, 0x01, 0x00, '\t', '\\', 0xff};
	static const uint8_t state1[] = {0, 1, 2, '\n', '\\', 0xfe};
	static const char *const products1[] = {"p\\1", "p\t2"};
	static const int32_t qty1[] = {1, 2};
	static const int64_t price1[] = {999, 1999};
	static const char *const products2[] = {"p3"};
	static const int32_t qty2[] = {4};
	static const int64_t price2[] = {250};
	struct batch_abandonment *ab;
	struct fixture fx;
	struct batch *b;

	fixture_init(&fx, "t_flush_rows", "cart-events");
	b = claimed_batch(fx.ps, 3);

	/* Flush 1: an abandonment that a later flush recovers, and states
	 * of which one is deleted later. */
	add_abandonment(b, ID(00), "old-user", T0 - 3600000, 100);
	add_user_state(b, "gone", "x", 1);
	add_user_state(b, "kept", "old", 3);
	b->next_offset = 10;
	b->watermark_ms = T0 - 1;
	REQUIRE(flush1(fx.ps, b) == 0);
	batch_reset(b);

	/* Flush 2. */
	ab = add_abandonment(b, ID(01), hostile_user, T0, 4997);
	ab->item_count = 3;
	ab->session_start_ms = T0 - 999;
	ab->last_activity_ms = T0 - 1;
	ab->avro = batch_memdup(b, avro1, sizeof(avro1));
	ab->avro_len = sizeof(avro1);
	add_items(b, ab, 2, products1, qty1, price1);

	ab = add_abandonment(b, ID(02), "u2", T0 + 1, 1000);
	ab->last_remove_reason = bs(b, "too expensive\r\n");
	add_items(b, ab, 1, products2, qty2, price2);
	/* no avro: no outbox row */

	add_conversion(b, ID(11), "u2", T0 + 60001, 1100, ID(02));
	add_conversion(b, ID(12), "old-user", T0 + 60002, 120, ID(00));
	add_conversion(b, ID(13), "u4", T0 + 60003, 777, NULL);

	add_product_stat(b, 1783468800000, "p3", 1);
	add_product_stat(b, 1783468800000, "p3", 10); /* same key */
	add_product_stat(b, 1783468860000, "p3", 100);
	add_reason_stat(b, 1783468800000, "p3", "too expensive\r\n", 2);
	add_reason_stat(b, 1783468800000, "p3", "too expensive\r\n", 3);
	add_reason_stat(b, 1783468800000, "p3", "other", 7);

	add_user_state(b, "gone", NULL, 0);
	add_user_state(b, "kept", "first", 5);
	add_user_state(b, "kept", "second", 6); /* the last one wins */
	add_user_state(b, hostile_user, state1, sizeof(state1));
	b->next_offset = 20;
	b->watermark_ms = T0 + 60003;
	REQUIRE(flush1(fx.ps, b) == 0);

	CHECK_QUERY(fx.conn, count_all_sql, "3 3 3 2 2 2 6 1");
	CHECK_QUERY(fx.conn,
		    "SELECT next_offset, watermark_ms, generation "
		    "FROM cw_partitions WHERE topic = 'cart-events' "
		    "AND partition = 3",
		    "20|1783468860126|1");

	/* Times exact to the ms, strings byte for byte. */
	CHECK_QUERY(
		fx.conn,
		"SELECT (extract(epoch FROM session_start) * 1000)::bigint,"
		" (extract(epoch FROM last_activity_at) * 1000)::bigint,"
		" to_char(abandoned_at AT TIME ZONE 'UTC',"
		"   'YYYY-MM-DD\"T\"HH24:MI:SS.US'),"
		" item_count, cart_value_cents, currency,"
		" last_remove_reason, kafka_partition, recovered_at"
		" FROM cart_abandonments WHERE abandonment_id = '" ID(01) "'",
		"1783468799124|1783468800122|2026-07-08T00:00:00.123000|"
		"3|4997|USD|NULL|3|NULL");
	CHECK_QUERY(fx.conn,
		    "SELECT count(*) FROM cart_abandonments WHERE user_id = "
		    "E'u\\tone\\nline\\\\back\\\\N''quote\"\\r é€😀'",
		    "1");
	CHECK_QUERY(fx.conn,
		    "SELECT product_id, quantity, unit_price_cents "
		    "FROM abandoned_items ORDER BY product_id",
		    "p\t2|2|1999\np3|4|250\np\\1|1|999");
	/* The items as stored (011): arrays in the abandonment's row, item k
	 * at position k of each, in the batch's order; none: empty arrays. */
	CHECK_QUERY(
		fx.conn,
		"SELECT item_product_ids = ARRAY[E'p\\\\1', E'p\\t2'],"
		" item_quantities, item_unit_price_cents"
		" FROM cart_abandonments WHERE abandonment_id = '" ID(01) "'",
		"t|{1,2}|{999,1999}");
	CHECK_QUERY(fx.conn,
		    "SELECT item_product_ids, item_quantities,"
		    " item_unit_price_cents FROM cart_abandonments"
		    " WHERE abandonment_id = '" ID(00) "'",
		    "{}|{}|{}");
	CHECK_QUERY(
		fx.conn,
		"SELECT last_remove_reason = E'too expensive\\r\\n' "
		"FROM cart_abandonments WHERE abandonment_id = '" ID(02) "'",
		"t");

	/* Recoveries: one of the same flush, one of an earlier flush. */
	CHECK_QUERY(fx.conn,
		    "SELECT abandonment_id, (extract(epoch FROM recovered_at)"
		    " * 1000)::bigint, recovered_value_cents "
		    "FROM cart_abandonments WHERE recovered_at IS NOT NULL "
		    "ORDER BY abandonment_id",
		    ID(00) "|1783468860125|120\n" ID(02) "|1783468860124|1100");
	/* clang-format off */
	CHECK_QUERY(fx.conn,
		    "SELECT conversion_id, user_id, event_id,"
		    " (extract(epoch FROM checkout_at) * 1000)::bigint,"
		    " item_count, cart_value_cents, currency,"
		    " recovered_abandonment_id, kafka_partition "
		    "FROM cart_conversions ORDER BY conversion_id",
		    ID(11) "|u2|000000000011|1783468860124|2|1100|EUR|" ID(02)
		    "|3\n" ID(12) "|old-user|000000000012|1783468860125|2|120|"
		    "EUR|" ID(00) "|3\n" ID(13) "|u4|000000000013|"
		    "1783468860126|2|777|EUR|NULL|3");
	/* clang-format on */

	/* Increments with the same key in one batch are summed. */
	CHECK_QUERY(fx.conn,
		    "SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI:SS'),"
		    " product_id, added_qty, removed_qty, purchased_qty,"
		    " purchased_value_cents, abandoned_qty,"
		    " abandoned_value_cents FROM product_stats_minute "
		    "ORDER BY bucket",
		    "00:00:00|p3|11|13|15|11000|17|1100000000000\n"
		    "00:01:00|p3|100|101|102|100000|103|10000000000000");
	CHECK_QUERY(fx.conn,
		    "SELECT reason = E'too expensive\\r\\n', removed_qty "
		    "FROM remove_reasons_minute ORDER BY reason",
		    "f|7\nt|5");

	/* User states: one delta chunk per flush; deleted, last one wins,
	 * binary bytes and the hostile user id intact. */
	CHECK_QUERY(fx.conn,
		    "SELECT partition, full_snapshot, users FROM "
		    "cw_state_chunks ORDER BY seq",
		    "3|f|2\n3|f|4");
	{
		struct state_map *m = calloc(1, sizeof(*m));
		uint64_t log_bytes = 0;

		REQUIRE(m);
		CHECK_INT_EQ(load_state(fx.ps, 3, m, &log_bytes), 0);
		CHECK_INT_EQ(m->n, 2);
		CHECK_INT_EQ(m->records, 6);
		CHECK_STR_EQ(state_hex(m, "kept"), "7365636f6e64");
		CHECK_STR_EQ(state_hex(m, hostile_user), "0001020a5cfe");
		CHECK_STR_EQ(state_hex(m, "gone"), "absent");
		CHECK_QUERY_INT(fx.conn,
				"SELECT sum(octet_length(chunk)) FROM "
				"cw_state_chunks",
				log_bytes);
		state_map_clear(m);
		free(m);
	}
	/* One outbox chunk for the partition, with the one record that has
	 * Avro, in the pack format as plain SQL builds it (migration 005). */
	CHECK_QUERY(fx.conn,
		    "SELECT chunk_id, topic, partition, records, "
		    " chunk = int4send(octet_length(convert_to(a.user_id, "
		    "  'UTF8'))) || convert_to(a.user_id, 'UTF8') || "
		    "  int4send(6) || '\\xc30100095cff'::bytea "
		    "FROM cw_outbox_chunks JOIN cart_abandonments a "
		    " ON a.abandonment_id = chunk_id",
		    ID(01) "|cart-events|3|1|t");

	batch_destroy(b);
	fixture_fini(&fx);
}

static void test_aggregates_add_up(void)
{
	struct fixture fx;
	struct batch *b;

	fixture_init(&fx, "t_aggregates", "cart-events");
	b = claimed_batch(fx.ps, 0);
	for (int flush = 0; flush < 2; flush++) {
		add_product_stat(b, 1783468800000, "a", 1);
		add_product_stat(b, 1783468800000, "a", 2);
		add_product_stat(b, 1783468800000, "b", 5);
		add_reason_stat(b, 1783468800000, "a", "r", 1);
		add_reason_stat(b, 1783468800000, "a", "r", 1);
		b->next_offset = 100 + flush;
		REQUIRE(flush1(fx.ps, b) == 0);
		batch_reset(b);
	}
	CHECK_QUERY(fx.conn,
		    "SELECT product_id, added_qty, abandoned_value_cents "
		    "FROM product_stats_minute ORDER BY product_id",
		    "a|6|600000000000\nb|10|1000000000000");
	CHECK_QUERY(fx.conn, "SELECT removed_qty FROM remove_reasons_minute",
		    "4");
	/* Appended: one row per key and flush, a flush's duplicates summed
	 * (012_minute_stats_appended.sql). */
	CHECK_QUERY(
		fx.conn,
		"SELECT product_id, added_qty FROM "
		"product_stats_minute_deltas ORDER BY product_id, added_qty",
		"a|3\na|3\nb|5\nb|5");
	CHECK_QUERY(fx.conn,
		    "SELECT reason, removed_qty FROM "
		    "remove_reasons_minute_deltas",
		    "r|2\nr|2");
	/* Sums over flushes saturate at the bigint maximum, as the upsert
	 * did; the other keys keep their sums. */
	for (int flush = 0; flush < 2; flush++) {
		add_product_stat(b, 1783468800000, "a",
				 INT64_MAX / 100000000000LL);
		add_reason_stat(b, 1783468800000, "a", "r", INT64_MAX - 1);
		b->next_offset = 102 + flush;
		REQUIRE(flush1(fx.ps, b) == 0);
		batch_reset(b);
	}
	CHECK_QUERY(fx.conn,
		    "SELECT product_id, added_qty, abandoned_value_cents,"
		    " pg_typeof(abandoned_value_cents) "
		    "FROM product_stats_minute ORDER BY product_id",
		    "a|184467446|9223372036854775807|bigint\n"
		    "b|10|1000000000000|bigint");
	CHECK_QUERY(fx.conn,
		    "SELECT removed_qty, pg_typeof(removed_qty) FROM "
		    "remove_reasons_minute",
		    "9223372036854775807|bigint");
	/* Within one flush too: the appended row of a key saturates. */
	add_product_stat(b, 1783468800000, "c", INT64_MAX / 100000000000LL);
	add_product_stat(b, 1783468800000, "c", INT64_MAX / 100000000000LL);
	add_reason_stat(b, 1783468800000, "c", "s", INT64_MAX - 1);
	add_reason_stat(b, 1783468800000, "c", "s", 2);
	b->next_offset = 104;
	REQUIRE(flush1(fx.ps, b) == 0);
	CHECK_QUERY(fx.conn,
		    "SELECT added_qty, abandoned_value_cents FROM "
		    "product_stats_minute_deltas WHERE product_id = 'c'",
		    "184467440|9223372036854775807");
	CHECK_QUERY(fx.conn,
		    "SELECT removed_qty FROM remove_reasons_minute_deltas "
		    "WHERE product_id = 'c'",
		    "9223372036854775807");
	batch_destroy(b);
	fixture_fini(&fx);
}

static void test_fencing(void)
{
	struct fixture fx;
	struct pg_sink *other;
	struct batch *b1, *b2, *stale;
	struct batch *both[2];
	int64_t gen, off, wm;
	int32_t fenced = -1;
	char errstr[256];

	fixture_init(&fx, "t_fencing", "cart-events");
	other = pg_sink_new(fx.conninfo, "cart-events", errstr, sizeof(errstr));
	REQUIRE(other);

	b1 = claimed_batch(fx.ps, 1); /* generation 1 */
	b2 = claimed_batch(fx.ps, 2);
	/* Another processor takes partition 1: generation 2. */
	REQUIRE(pg_sink_claim_partition(other, 1, "other", &gen, &off, &wm) ==
		0);
	CHECK_INT_EQ(gen, 2);

	for (int i = 0; i < 2; i++) {
		struct batch *b = i ? b2 : b1;
		add_abandonment(b, i ? ID(22) : ID(21), "u", T0, 5);
		add_conversion(b, i ? ID(32) : ID(31), "u", T0, 5,
			       i ? ID(22) : ID(21));
		add_product_stat(b, 1783468800000, "p", 1);
		add_reason_stat(b, 1783468800000, "p", "r", 1);
		add_user_state(b, "u", "s", 1);
		b->next_offset = 50;
		b->watermark_ms = T0;
	}
	both[0] = b2;
	both[1] = b1;
	CHECK_INT_EQ(pg_sink_flush(fx.ps, both, 2, &fenced), -ESTALE);
	CHECK_INT_EQ(fenced, 1);
	CHECK(strstr(pg_sink_last_error(fx.ps), "partition 1") != NULL);
	/* Nothing at all was written, not even partition 2's. */
	CHECK_QUERY(fx.conn, count_all_sql, "0 0 0 0 0 0 0 0");
	CHECK_QUERY(fx.conn,
		    "SELECT partition, generation, next_offset FROM "
		    "cw_partitions ORDER BY partition",
		    "1|2|-1\n2|1|-1");

	/* The caller drops partition 1 and flushes the rest. */
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b2, 1, &fenced), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "1 0 1 1 1 1 1 0");

	/* The new owner flushes with its generation. */
	stale = b1;
	stale->generation = gen;
	CHECK_INT_EQ(flush1(other, stale), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "2 0 2 2 1 1 2 0");
	CHECK_QUERY(fx.conn, "SELECT added_qty FROM product_stats_minute", "2");

	/* Two batches of one partition are refused. */
	both[0] = b2;
	both[1] = b2;
	CHECK_INT_EQ(pg_sink_flush(fx.ps, both, 2, &fenced), -EINVAL);

	/* An id that is not a uuid is refused, and the flush rolled back. */
	batch_reset(b2);
	add_abandonment(b2, "00000000-0000-4000-8000-00000000000g", "u", T0, 1);
	CHECK_INT_EQ(flush1(fx.ps, b2), -EINVAL);
	CHECK(strstr(pg_sink_last_error(fx.ps), "not a uuid") != NULL);
	batch_reset(b2);
	add_abandonment(b2, "00000000-0000-4000-8000-00000000001", "u", T0, 1);
	CHECK_INT_EQ(flush1(fx.ps, b2), -EINVAL);
	CHECK_QUERY(fx.conn, count_all_sql, "2 0 2 2 1 1 2 0");

	batch_destroy(b1);
	batch_destroy(b2);
	pg_sink_destroy(other);
	fixture_fini(&fx);
}

/* A batch for partition @p with @n abandonments and states, ids from
 * @base. */
static void fill_batch(struct batch *b, int base, int n)
{
	for (int i = 0; i < n; i++) {
		char id[40], user[32];
		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d",
			 base + i);
		snprintf(user, sizeof(user), "user-%d", base + i);
		add_abandonment(b, id, user, T0 + i, 100 + i);
		add_user_state(b, user, user, strlen(user));
	}
	add_product_stat(b, 1783468800000, "p", n);
	b->next_offset = base + n;
}

struct terminator {
	const char *conninfo;
	bool wait_for_lock; /* kill only once the sink waits on a lock */
	atomic_int killed;
};

/* Terminate the sink's backend (application_name cartwatch-processor). */
static void *terminator_main(void *arg)
{
	struct terminator *t = arg;
	PGconn *conn = db_connect(t->conninfo);
	int64_t deadline = harness_now_ms() + 30000;
	char *n;

	while (harness_now_ms() < deadline) {
		n = query_text(
			conn,
			t->wait_for_lock
				? "SELECT count(pg_terminate_backend(pid))"
				  " FROM pg_stat_activity WHERE"
				  " application_name = 'cartwatch-processor'"
				  " AND wait_event_type = 'Lock'"
				: "SELECT count(pg_terminate_backend(pid))"
				  " FROM pg_stat_activity WHERE"
				  " application_name = 'cartwatch-processor'");
		bool done = strcmp(n, "0") != 0;
		free(n);
		if (done) {
			atomic_store(&t->killed, 1);
			break;
		}
		usleep(10000);
	}
	PQfinish(conn);
	return NULL;
}

static void test_connection_killed(void)
{
	struct terminator t = {0};
	struct fixture fx;
	pthread_t thread;
	PGconn *blocker;
	struct batch *b;

	fixture_init(&fx, "t_killed", "cart-events");
	t.conninfo = fx.conninfo;
	b = claimed_batch(fx.ps, 0);

	/* Killed while idle: the next flush fails and does not write. */
	t.wait_for_lock = false;
	terminator_main(&t);
	REQUIRE(atomic_load(&t.killed));
	fill_batch(b, 0, 100);
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b, 1, NULL), -ENOTCONN);
	CHECK(pg_sink_last_error(fx.ps)[0] != '\0');
	CHECK_QUERY(fx.conn, count_all_sql, "0 0 0 0 0 0 0 0");
	/* The retry reconnects and writes everything once. */
	CHECK_INT_EQ(flush1(fx.ps, b), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "100 0 0 0 1 0 100 0");
	batch_reset(b);

	/* Killed in the middle of the transaction (after the first COPYs,
	 * while the append of the per-minute counters waits for a lock
	 * another session holds). */
	blocker = db_connect(fx.conninfo);
	db_exec(blocker, "BEGIN");
	db_exec(blocker,
		"LOCK TABLE product_stats_minute_deltas IN SHARE MODE");
	atomic_store(&t.killed, 0);
	t.wait_for_lock = true;
	REQUIRE(pthread_create(&thread, NULL, terminator_main, &t) == 0);
	fill_batch(b, 100, 100);
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b, 1, NULL), -ENOTCONN);
	pthread_join(thread, NULL);
	CHECK(atomic_load(&t.killed));
	db_exec(blocker, "ROLLBACK");
	PQfinish(blocker);
	CHECK_QUERY(fx.conn, count_all_sql, "100 0 0 0 1 0 100 0");
	CHECK_INT_EQ(flush1(fx.ps, b), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "200 0 0 0 1 0 200 0");
	CHECK_QUERY(fx.conn, "SELECT added_qty FROM product_stats_minute",
		    "200");
	CHECK_QUERY(fx.conn, "SELECT next_offset FROM cw_partitions", "200");
	batch_destroy(b);
	fixture_fini(&fx);
}

/* Stop or start the run-with-servers PostgreSQL. */
static int pg_ctl(const char *action)
{
	char cmd[1024];
	const char *dir = harness_require_env("CARTWATCH_TEST_DIR");

	if (strcmp(action, "stop") == 0)
		snprintf(cmd, sizeof(cmd), "%s '%s/pg'",
			 harness_source_path("tests/pg/pg-stop"), dir);
	else
		snprintf(
			cmd, sizeof(cmd),
			"bindir=${CARTWATCH_PG_BINDIR:-$(ls -d "
			"/usr/lib/postgresql/*/bin | sort -V | tail -n 1)}; "
			"run=; [ \"$(id -u)\" = 0 ] && run='runuser -u "
			"postgres --'; $run \"$bindir/pg_ctl\" -D '%s/pg/data' "
			"-l '%s/pg/postgres.log' -w -t 60 start >/dev/null",
			dir, dir);
	return system(cmd);
}

static void test_server_restart(void)
{
	struct fixture fx;
	struct batch *b;
	int64_t gen, off, wm;

	fixture_init(&fx, "t_restart", "cart-events");
	b = claimed_batch(fx.ps, 0);
	fill_batch(b, 0, 50);
	PQfinish(fx.conn);

	REQUIRE(pg_ctl("stop") == 0);
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b, 1, NULL), -ENOTCONN);
	/* Down: every call fails fast, none crashes. */
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b, 1, NULL), -ENOTCONN);
	CHECK_INT_EQ(pg_sink_claim_partition(fx.ps, 1, "t", &gen, &off, &wm),
		     -ENOTCONN);
	CHECK(strstr(pg_sink_last_error(fx.ps), "connecting") != NULL);
	REQUIRE(pg_ctl("start") == 0);

	CHECK_INT_EQ(flush1(fx.ps, b), 0);
	fx.conn = db_connect(fx.conninfo);
	CHECK_QUERY(fx.conn, count_all_sql, "50 0 0 0 1 0 50 0");
	CHECK_QUERY(fx.conn, "SELECT next_offset FROM cw_partitions", "50");
	batch_destroy(b);
	fixture_fini(&fx);
}

/* ---- a lost COMMIT answer, through a TCP proxy ------------------------- */

/* Forwards one client connection at a time to the server's TCP port. With
 * drop_commit set it forwards the client's COMMIT query, waits until the
 * server answered, and closes both sides without passing the answer on:
 * the client cannot know whether the transaction committed. */
struct proxy {
	int listen_fd;
	int port;
	int server_port;
	atomic_int drop_commit;
	atomic_int swallow_commit; /* close before forwarding the COMMIT */
	atomic_int dropped;
	atomic_int stop;
	pthread_t thread;
};

static int tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool contains_commit(const char *buf, size_t len)
{
	static const char q[] = "COMMIT";
	for (size_t i = 0; i + sizeof(q) <= len; i++)
		if (memcmp(buf + i, q, sizeof(q)) == 0) /* with its NUL */
			return true;
	return false;
}

static void proxy_session(struct proxy *px, int client)
{
	int server = tcp_connect(px->server_port);
	char buf[65536];
	bool committing = false;

	if (server < 0)
		return;
	while (!atomic_load(&px->stop)) {
		struct pollfd fds[2] = {{client, POLLIN, 0},
					{server, POLLIN, 0}};
		ssize_t n;

		if (poll(fds, 2, 100) <= 0)
			continue;
		if (fds[0].revents) {
			n = read(client, buf, sizeof(buf));
			if (n > 0 && atomic_load(&px->swallow_commit) &&
			    contains_commit(buf, (size_t)n)) {
				/* The server never sees it: rolled back. */
				atomic_store(&px->swallow_commit, 0);
				atomic_store(&px->dropped, 1);
				break;
			}
			if (n <= 0 || write(server, buf, (size_t)n) != n)
				break;
			if (atomic_load(&px->drop_commit) &&
			    contains_commit(buf, (size_t)n))
				committing = true;
		}
		if (fds[1].revents) {
			n = read(server, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (committing) {
				/* The server answered the COMMIT: drop it. */
				atomic_store(&px->drop_commit, 0);
				atomic_store(&px->dropped, 1);
				break;
			}
			if (write(client, buf, (size_t)n) != n)
				break;
		}
	}
	close(server);
}

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;

	while (!atomic_load(&px->stop)) {
		struct pollfd pfd = {px->listen_fd, POLLIN, 0};
		int client;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		client = accept(px->listen_fd, NULL, NULL);
		if (client < 0)
			continue;
		proxy_session(px, client);
		close(client);
	}
	return NULL;
}

static void proxy_start(struct proxy *px)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);

	px->server_port = atoi(harness_require_env("PGPORT"));
	px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(px->listen_fd >= 0);
	REQUIRE(bind(px->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	REQUIRE(listen(px->listen_fd, 4) == 0);
	REQUIRE(getsockname(px->listen_fd, (struct sockaddr *)&sa, &len) == 0);
	px->port = ntohs(sa.sin_port);
	REQUIRE(pthread_create(&px->thread, NULL, proxy_main, px) == 0);
}

static void proxy_stop(struct proxy *px)
{
	atomic_store(&px->stop, 1);
	pthread_join(px->thread, NULL);
	close(px->listen_fd);
}

static void test_lost_commit_answer(void)
{
	struct proxy px = {0};
	struct fixture fx;
	struct pg_sink *ps;
	struct batch *b;
	char conninfo[512], errstr[256];

	fixture_init(&fx, "t_lost_commit", "cart-events");
	proxy_start(&px);
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d dbname=t_lost_commit user=%s "
		 "sslmode=disable gssencmode=disable",
		 px.port, harness_require_env("PGUSER"));
	ps = pg_sink_new(conninfo, "cart-events", errstr, sizeof(errstr));
	REQUIRE(ps);
	b = claimed_batch(ps, 0);

	/* The COMMIT lands but its answer is lost: the flush fails, the
	 * retry finds it committed and writes nothing more. */
	fill_batch(b, 0, 20);
	atomic_store(&px.drop_commit, 1);
	CHECK_INT_EQ(pg_sink_flush(ps, &b, 1, NULL), -ENOTCONN);
	CHECK(atomic_load(&px.dropped));
	CHECK_QUERY(fx.conn, count_all_sql, "20 0 0 0 1 0 20 0");
	CHECK_INT_EQ(flush1(ps, b), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "20 0 0 0 1 0 20 0");
	CHECK_QUERY(fx.conn, "SELECT added_qty FROM product_stats_minute",
		    "20");
	batch_reset(b);

	/* Retrying with other batches than the ones that landed is
	 * refused loudly. */
	fill_batch(b, 20, 5);
	atomic_store(&px.dropped, 0);
	atomic_store(&px.drop_commit, 1);
	CHECK_INT_EQ(pg_sink_flush(ps, &b, 1, NULL), -ENOTCONN);
	CHECK(atomic_load(&px.dropped));
	fill_batch(b, 25, 5);
	CHECK_INT_EQ(pg_sink_flush(ps, &b, 1, NULL), -EPROTO);
	CHECK_QUERY(fx.conn, count_all_sql, "25 0 0 0 1 0 25 0");

	/* A flush after the in-doubt one is normal again. */
	batch_reset(b);
	fill_batch(b, 30, 5);
	CHECK_INT_EQ(flush1(ps, b), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "30 0 0 0 1 0 30 0");

	batch_destroy(b);
	pg_sink_destroy(ps);
	proxy_stop(&px);
	fixture_fini(&fx);
}

/* A sink on database @dbname through @px. */
static struct pg_sink *proxied_sink(struct proxy *px, const char *dbname)
{
	char conninfo[512], errstr[256];
	struct pg_sink *ps;

	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d dbname=%s user=%s "
		 "sslmode=disable gssencmode=disable",
		 px->port, dbname, harness_require_env("PGUSER"));
	ps = pg_sink_new(conninfo, "cart-events", errstr, sizeof(errstr));
	REQUIRE(ps);
	return ps;
}

/* Flush @n batches through @px losing the COMMIT answer. */
static void flush_losing_commit(struct proxy *px, struct pg_sink *ps,
				struct batch **bs, size_t n)
{
	atomic_store(&px->dropped, 0);
	atomic_store(&px->drop_commit, 1);
	CHECK_INT_EQ(pg_sink_flush(ps, bs, n, NULL), -ENOTCONN);
	CHECK(atomic_load(&px->dropped));
}

/* Issue 15 item 4: a flush whose COMMIT answer was lost did land; the
 * partition is claimed again and a DIFFERENT batch ending at the same
 * offset (abandonments from timers, no new records) must be written, not
 * taken for the one that landed. */
static void test_lost_commit_then_reclaim(void)
{
	struct proxy px = {0};
	struct fixture fx;
	struct pg_sink *ps;
	struct batch *b;

	fixture_init(&fx, "t_lost_reclaim", "cart-events");
	proxy_start(&px);
	ps = proxied_sink(&px, "t_lost_reclaim");
	b = claimed_batch(ps, 0);
	fill_batch(b, 0, 10);
	CHECK_INT_EQ(flush1(ps, b), 0);
	batch_reset(b);

	add_abandonment(b, ID(90), "timer-1", T0, 1);
	b->next_offset = 10;
	flush_losing_commit(&px, ps, &b, 1);
	CHECK_QUERY(fx.conn, "SELECT count(*) FROM cart_abandonments", "11");
	batch_destroy(b);

	/* The partition is taken again (generation 2, offset 10) and its
	 * timers produce another abandonment at the same offset. */
	b = claimed_batch(fx.ps, 0);
	add_abandonment(b, ID(91), "timer-2", T0, 2);
	b->next_offset = 10;
	CHECK_INT_EQ(flush1(ps, b), 0);
	CHECK_QUERY(fx.conn,
		    "SELECT user_id FROM cart_abandonments WHERE user_id "
		    "LIKE 'timer-%' ORDER BY 1",
		    "timer-1\ntimer-2");
	CHECK_QUERY(fx.conn,
		    "SELECT generation, next_offset FROM cw_partitions",
		    "2|10");

	batch_destroy(b);
	pg_sink_destroy(ps);
	proxy_stop(&px);
	fixture_fini(&fx);
}

/* Issue 15 item 9: a flush of partitions 0 and 1 lands but its answer is
 * lost, then another processor takes partition 1. The retry of partition
 * 0 alone must be recognised as committed (not refused, not written
 * twice), and partition 0 goes on normally. */
static void test_lost_commit_then_partition_taken(void)
{
	struct proxy px = {0};
	struct fixture fx;
	struct pg_sink *ps;
	struct batch *both[2];
	int64_t gen, off, wm;
	int32_t part = 7;

	fixture_init(&fx, "t_lost_taken", "cart-events");
	proxy_start(&px);
	ps = proxied_sink(&px, "t_lost_taken");
	both[0] = claimed_batch(ps, 0);
	both[1] = claimed_batch(ps, 1);
	fill_batch(both[0], 0, 5);
	fill_batch(both[1], 100, 5);
	flush_losing_commit(&px, ps, both, 2);
	CHECK_QUERY(fx.conn, count_all_sql, "10 0 0 0 1 0 10 0");

	REQUIRE(pg_sink_claim_partition(fx.ps, 1, "other", &gen, &off, &wm) ==
		0);
	CHECK_INT_EQ(off, 105);

	/* The retry holds partition 0 only (1 was revoked meanwhile). */
	CHECK_INT_EQ(pg_sink_flush(ps, &both[0], 1, &part), 0);
	CHECK_INT_EQ(part, -1);
	CHECK_QUERY(fx.conn, count_all_sql, "10 0 0 0 1 0 10 0");
	CHECK_QUERY(fx.conn, "SELECT added_qty FROM product_stats_minute",
		    "10");

	/* Partition 0's next batch is written once. */
	batch_reset(both[0]);
	fill_batch(both[0], 5, 5);
	CHECK_INT_EQ(flush1(ps, both[0]), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "15 0 0 0 1 0 15 0");
	CHECK_QUERY(fx.conn,
		    "SELECT partition, generation, next_offset FROM "
		    "cw_partitions ORDER BY 1",
		    "0|1|10\n1|2|105");

	/* The old batch of partition 1 is fenced, not re-applied. */
	CHECK_INT_EQ(pg_sink_flush(ps, &both[1], 1, &part), -ESTALE);
	CHECK_INT_EQ(part, 1);
	CHECK_QUERY(fx.conn, count_all_sql, "15 0 0 0 1 0 15 0");

	batch_destroy(both[0]);
	batch_destroy(both[1]);
	pg_sink_destroy(ps);
	proxy_stop(&px);
	fixture_fini(&fx);
}

/* Item 9, the other outcome: the COMMIT never reached the server, and
 * partition 1 is taken meanwhile. Partition 0's retry is written (once),
 * partition 1's old batch is fenced. */
static void test_lost_commit_not_landed_partition_taken(void)
{
	struct proxy px = {0};
	struct fixture fx;
	struct pg_sink *ps;
	struct batch *both[2];
	int64_t gen, off, wm;
	int32_t part = 7;

	fixture_init(&fx, "t_lost_not_landed", "cart-events");
	proxy_start(&px);
	ps = proxied_sink(&px, "t_lost_not_landed");
	both[0] = claimed_batch(ps, 0);
	both[1] = claimed_batch(ps, 1);
	fill_batch(both[0], 0, 5);
	fill_batch(both[1], 100, 5);
	atomic_store(&px.swallow_commit, 1);
	CHECK_INT_EQ(pg_sink_flush(ps, both, 2, NULL), -ENOTCONN);
	CHECK(atomic_load(&px.dropped));
	/* The server rolls back when it sees the connection closed; the
	 * claim waits for the row locks until then. */
	REQUIRE(pg_sink_claim_partition(fx.ps, 1, "other", &gen, &off, &wm) ==
		0);
	CHECK_INT_EQ(off, PG_SINK_OFFSET_NONE);

	CHECK_INT_EQ(pg_sink_flush(ps, &both[0], 1, &part), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "5 0 0 0 1 0 5 0");
	CHECK_INT_EQ(pg_sink_flush(ps, &both[1], 1, &part), -ESTALE);
	CHECK_INT_EQ(part, 1);
	CHECK_QUERY(fx.conn,
		    "SELECT partition, generation, next_offset FROM "
		    "cw_partitions ORDER BY 1",
		    "0|1|5\n1|2|-1");

	batch_destroy(both[0]);
	batch_destroy(both[1]);
	pg_sink_destroy(ps);
	proxy_stop(&px);
	fixture_fini(&fx);
}

/* Issue 15 item 5: the database forgets commits (an older snapshot
 * restored, asynchronous failover): the next flush refuses to continue
 * from where it no longer is, for the offset and for the generation. */
static void test_rewind_detected(void)
{
	struct fixture fx;
	struct batch *b;
	int64_t gen, off, wm;
	int32_t part = -1;

	fixture_init(&fx, "t_rewind", "cart-events");
	b = claimed_batch(fx.ps, 0);
	fill_batch(b, 0, 5);
	CHECK_INT_EQ(flush1(fx.ps, b), 0);
	batch_reset(b);
	fill_batch(b, 5, 5);
	CHECK_INT_EQ(flush1(fx.ps, b), 0);
	batch_reset(b);

	/* Stand-in for a restored older snapshot of the row. */
	db_exec(fx.conn, "UPDATE cw_partitions SET next_offset = 5");
	fill_batch(b, 10, 5);
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b, 1, &part), -ENOTRECOVERABLE);
	CHECK_INT_EQ(part, 0);
	CHECK(strstr(pg_sink_last_error(fx.ps), "went back in time") != NULL);
	CHECK(strstr(pg_sink_last_error(fx.ps), "offset 5") != NULL);
	CHECK(strstr(pg_sink_last_error(fx.ps), "committed 10") != NULL);
	CHECK_QUERY(fx.conn, count_all_sql, "10 0 0 0 1 0 10 0");
	batch_destroy(b);

	/* Taken again, it replays from the stored offset and goes on. */
	REQUIRE(pg_sink_claim_partition(fx.ps, 0, "test", &gen, &off, &wm) ==
		0);
	CHECK_INT_EQ(off, 5);
	b = batch_new(0);
	REQUIRE(b);
	b->generation = gen;
	b->next_offset = 10;
	CHECK_INT_EQ(flush1(fx.ps, b), 0);
	batch_reset(b);
	b->next_offset = 11;
	CHECK_INT_EQ(flush1(fx.ps, b), 0);

	/* The claim itself lost: the generation went back. */
	db_exec(fx.conn,
		"UPDATE cw_partitions SET generation = generation - 1");
	batch_reset(b);
	b->next_offset = 12;
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b, 1, &part), -ENOTRECOVERABLE);
	CHECK_INT_EQ(part, 0);
	CHECK_QUERY(fx.conn, "SELECT next_offset FROM cw_partitions", "11");

	batch_destroy(b);
	fixture_fini(&fx);
}

/* Issue 15 item 1: a batch PostgreSQL can never take (invalid UTF-8, the
 * same abandonment id from two partitions) fails permanently and is
 * pinned on its partition; the other partitions' batches of the same
 * flush then commit without it. */
static void test_permanent_error_isolated(void)
{
	static const char *const bad_product[] = {"ECHO\xff\xfe"};
	static const int32_t qty[] = {1};
	static const int64_t price[] = {100};
	struct batch_abandonment *ab;
	struct fixture fx;
	struct batch *b[3], *rest[2];
	int32_t part = -1;
	char reason[160];

	fixture_init(&fx, "t_permanent", "cart-events");
	for (int i = 0; i < 3; i++) {
		b[i] = claimed_batch(fx.ps, i);
		fill_batch(b[i], 100 * i, 3);
	}
	ab = add_abandonment(b[1], ID(50), "bad-utf8", T0, 1);
	add_items(b[1], ab, 1, bad_product, qty, price);

	CHECK_INT_EQ(pg_sink_flush(fx.ps, b, 3, &part), -EBADMSG);
	CHECK_INT_EQ(part, 1);
	CHECK_INT_EQ(pg_sink_last_errclass(fx.ps), PG_SINK_ERR_PERMANENT);
	CHECK_STR_EQ(pg_sink_last_sqlstate(fx.ps), "22021");
	CHECK(strstr(pg_sink_last_error(fx.ps), "partition 1 (offsets") !=
	      NULL);
	pg_sink_last_reason(fx.ps, reason, sizeof(reason));
	CHECK(strncmp(reason, "postgresql error 22021: invalid byte sequence",
		      45) == 0);
	CHECK(strstr(reason, "COPY") == NULL && strchr(reason, '\n') == NULL);
	CHECK_QUERY(fx.conn, count_all_sql, "0 0 0 0 0 0 0 0");

	/* The others go on without it. */
	rest[0] = b[0];
	rest[1] = b[2];
	CHECK_INT_EQ(pg_sink_flush(fx.ps, rest, 2, &part), 0);
	CHECK_INT_EQ(part, -1);
	CHECK_QUERY(fx.conn, count_all_sql, "6 0 0 0 1 0 6 0");
	/* Alone, it fails the same way again. */
	CHECK_INT_EQ(pg_sink_flush(fx.ps, &b[1], 1, &part), -EBADMSG);
	CHECK_INT_EQ(part, 1);

	/* The same abandonment id from two partitions in one flush: the
	 * second one is to blame, the first commits. */
	batch_reset(b[0]);
	batch_reset(b[2]);
	add_abandonment(b[0], ID(60), "twice", T0, 1);
	add_abandonment(b[2], ID(60), "twice", T0, 1);
	b[0]->next_offset = 4;
	b[2]->next_offset = 204;
	CHECK_INT_EQ(pg_sink_flush(fx.ps, rest, 2, &part), -EBADMSG);
	CHECK_INT_EQ(part, 2);
	CHECK_STR_EQ(pg_sink_last_sqlstate(fx.ps), "23505");
	pg_sink_last_reason(fx.ps, reason, sizeof(reason));
	CHECK(strncmp(reason, "postgresql error 23505: duplicate key", 37) ==
	      0);
	CHECK_INT_EQ(flush1(fx.ps, b[0]), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "7 0 0 0 1 0 6 0");
	CHECK_QUERY(fx.conn,
		    "SELECT partition, next_offset FROM cw_partitions "
		    "ORDER BY 1",
		    "0|4\n1|-1\n2|203");

	for (int i = 0; i < 3; i++)
		batch_destroy(b[i]);
	fixture_fini(&fx);
}

/* Issue 15 items 1 and 6: a revoked privilege is an operator's doing,
 * undone later: transient (-EIO, back off), and said as it is, not as
 * "unreachable". The same batch commits once the grant is back. */
static void test_privilege_revoked_is_transient(void)
{
	struct fixture fx;
	struct pg_sink *ps;
	struct batch *b;
	char *conninfo, errstr[256], reason[160];

	fixture_init(&fx, "t_revoked", "cart-events");
	db_exec(fx.conn, "DO $$ BEGIN CREATE ROLE cw_writer LOGIN; "
			 "EXCEPTION WHEN duplicate_object THEN NULL; END $$");
	db_exec(fx.conn,
		"GRANT ALL ON ALL TABLES IN SCHEMA public TO cw_writer;"
		"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO cw_writer");
	REQUIRE(asprintf(&conninfo, "%s user=cw_writer", fx.conninfo) > 0);
	ps = pg_sink_new(conninfo, "cart-events", errstr, sizeof(errstr));
	REQUIRE(ps);
	b = claimed_batch(ps, 0);
	fill_batch(b, 0, 5);

	db_exec(fx.conn, "REVOKE INSERT ON cart_abandonments FROM cw_writer");
	CHECK_INT_EQ(pg_sink_flush(ps, &b, 1, NULL), -EIO);
	CHECK_INT_EQ(pg_sink_last_errclass(ps), PG_SINK_ERR_TRANSIENT);
	CHECK_STR_EQ(pg_sink_last_sqlstate(ps), "42501");
	pg_sink_last_reason(ps, reason, sizeof(reason));
	CHECK_STR_EQ(reason, "postgresql error 42501: permission denied for "
			     "table cart_abandonments");

	db_exec(fx.conn, "GRANT INSERT ON cart_abandonments TO cw_writer");
	CHECK_INT_EQ(flush1(ps, b), 0);
	CHECK_QUERY(fx.conn, count_all_sql, "5 0 0 0 1 0 5 0");

	batch_destroy(b);
	pg_sink_destroy(ps);
	free(conninfo);
	fixture_fini(&fx);
}

/* Issue 15 item 6: an unreachable server is described as such, in one
 * bounded line. */
static void test_unreachable_reason(void)
{
	struct pg_sink *ps;
	char errstr[256], reason[160];
	int64_t gen, off, wm;

	ps = pg_sink_new("host=127.0.0.1 port=1 connect_timeout=2 "
			 "password=secret",
			 "cart-events", errstr, sizeof(errstr));
	REQUIRE(ps);
	CHECK_INT_EQ(pg_sink_claim_partition(ps, 0, "t", &gen, &off, &wm),
		     -ENOTCONN);
	CHECK_INT_EQ(pg_sink_last_errclass(ps), PG_SINK_ERR_UNREACHABLE);
	pg_sink_last_reason(ps, reason, sizeof(reason));
	CHECK(strncmp(reason, "postgresql unreachable: ", 24) == 0);
	CHECK(strchr(reason, '\n') == NULL);
	CHECK(strstr(reason, "secret") == NULL);
	pg_sink_destroy(ps);
}

/* ---- loading back ---------------------------------------------------------
 */

struct loaded_users {
	int n;
	int bad;
	bool seen[1000];
	/* The size callback's counts, and n when each came. */
	uint64_t sizes[4];
	int n_at_size[4];
	int n_sizes;
};

/* fill_batch's users: "user-N" whose state is the user id, or NULL (a
 * deletion). Counts distinct live users in n. */
static int on_user(void *opaque, const char *user_id, const uint8_t *state,
		   size_t len)
{
	struct loaded_users *lu = opaque;
	int i = atoi(user_id + 5);

	if (strncmp(user_id, "user-", 5) != 0 || i < 0 || i >= 1000) {
		lu->bad++;
		return 0;
	}
	if (!state) {
		lu->n -= lu->seen[i];
		lu->seen[i] = false;
		return 0;
	}
	if (len != strlen(user_id) || memcmp(state, user_id, len) != 0) {
		lu->bad++;
		return 0;
	}
	lu->n += !lu->seen[i];
	lu->seen[i] = true;
	return 0;
}

static int on_user_size(void *opaque, uint64_t records)
{
	struct loaded_users *lu = opaque;

	if (lu->n_sizes < 4) {
		lu->sizes[lu->n_sizes] = records;
		lu->n_at_size[lu->n_sizes] = lu->n;
	}
	lu->n_sizes++;
	return 0;
}

static int on_user_stop(void *opaque, const char *user_id, const uint8_t *state,
			size_t len)
{
	int *calls = opaque;
	(void)user_id, (void)state, (void)len;
	return ++*calls == 3 ? -ECANCELED : 0;
}

static void test_load_users(void)
{
	struct loaded_users *lu = calloc(1, sizeof(*lu));
	struct state_map *m = calloc(1, sizeof(*m));
	struct fixture fx;
	struct batch *b5, *b6;
	struct batch *both[2];
	uint64_t log_bytes = 1;
	int calls = 0;

	REQUIRE(lu && m);
	fixture_init(&fx, "t_load_users", "cart-events");
	b5 = claimed_batch(fx.ps, 5);
	b6 = claimed_batch(fx.ps, 6);
	for (int i = 0; i < 1000; i++) {
		char user[32];
		snprintf(user, sizeof(user), "user-%d", i);
		add_user_state(i < 900 ? b5 : b6, user, user, strlen(user));
	}
	both[0] = b5;
	both[1] = b6;
	REQUIRE(pg_sink_flush(fx.ps, both, 2, NULL) == 0);
	batch_reset(b5);
	add_user_state(b5, "user-0", NULL, 0); /* delete one */
	REQUIRE(flush1(fx.ps, b5) == 0);
	CHECK_QUERY(fx.conn,
		    "SELECT partition, full_snapshot, users FROM "
		    "cw_state_chunks ORDER BY seq",
		    "5|f|900\n6|f|100\n5|f|1");

	CHECK_INT_EQ(pg_sink_load_users(fx.ps, 5, on_user, on_user_size, lu,
					&log_bytes),
		     0);
	CHECK_INT_EQ(lu->n, 899);
	CHECK_INT_EQ(lu->bad, 0);
	/* The records of both chunks, once, before the first record. */
	CHECK_INT_EQ(lu->n_sizes, 1);
	CHECK_INT_EQ(lu->sizes[0], 901);
	CHECK_INT_EQ(lu->n_at_size[0], 0);
	CHECK(!lu->seen[0] && lu->seen[1] && lu->seen[899] && !lu->seen[900]);
	CHECK_QUERY_INT(fx.conn,
			"SELECT sum(octet_length(chunk)) FROM cw_state_chunks "
			"WHERE partition = 5",
			log_bytes);
	CHECK_INT_EQ(
		pg_sink_load_users(fx.ps, 7, on_user, NULL, lu, &log_bytes), 0);
	CHECK_INT_EQ(lu->n, 899);
	CHECK_INT_EQ(log_bytes, 0);

	/* The latest chunk wins: a later state replaces, a deleted user
	 * comes back. */
	batch_reset(b5);
	add_user_state(b5, "user-1", "new", 3);
	add_user_state(b5, "user-0", "back", 4);
	REQUIRE(flush1(fx.ps, b5) == 0);
	CHECK_INT_EQ(load_state(fx.ps, 5, m, NULL), 0);
	CHECK_INT_EQ(m->n, 900);
	CHECK_INT_EQ(m->records, 903);
	CHECK_INT_EQ(m->deletions, 1);
	CHECK_STR_EQ(state_hex(m, "user-1"), "6e6577");
	CHECK_STR_EQ(state_hex(m, "user-0"), "6261636b");
	CHECK_STR_EQ(state_hex(m, "user-2"), "757365722d32");

	/* A callback error stops the delivery and is returned; the
	 * connection is usable afterwards. */
	CHECK_INT_EQ(
		pg_sink_load_users(fx.ps, 5, on_user_stop, NULL, &calls, NULL),
		-ECANCELED);
	CHECK_INT_EQ(calls, 3);
	memset(lu, 0, sizeof(*lu));
	CHECK_INT_EQ(pg_sink_load_users(fx.ps, 6, on_user, NULL, lu, NULL), 0);
	CHECK_INT_EQ(lu->n, 100);

	state_map_clear(m);
	free(m);
	free(lu);
	batch_destroy(b5);
	batch_destroy(b6);
	fixture_fini(&fx);
}

/* A full snapshot replaces the earlier chunks of its partition (deleted in
 * the same transaction), other partitions' chunks stay; an empty one
 * deletes them all and writes no row. */
static void test_state_snapshot(void)
{
	struct state_map *m = calloc(1, sizeof(*m));
	struct fixture fx;
	struct batch *b1, *b2, *both[2];
	uint64_t log_bytes;

	REQUIRE(m);
	fixture_init(&fx, "t_state_snapshot", "cart-events");
	b1 = claimed_batch(fx.ps, 1);
	b2 = claimed_batch(fx.ps, 2);
	both[0] = b1;
	both[1] = b2;
	for (int round = 0; round < 3; round++) {
		add_user_state(b1, "a", "a1", 2);
		add_user_state(b1, round ? "c" : "b", "x", 1);
		add_user_state(b2, "z", "z", 1);
		REQUIRE(pg_sink_flush(fx.ps, both, 2, NULL) == 0);
		batch_reset(b1);
		batch_reset(b2);
	}
	CHECK_QUERY(fx.conn, "SELECT count(*) FROM cw_state_chunks", "6");

	/* Partition 1: a full snapshot holding a and b only. */
	add_user_state(b1, "a", "snap", 4);
	add_user_state(b1, "b", "snap", 4);
	b1->state_full = true;
	add_user_state(b2, "y", "y", 1); /* a delta beside it */
	REQUIRE(pg_sink_flush(fx.ps, both, 2, NULL) == 0);
	batch_reset(b1);
	batch_reset(b2);
	CHECK_QUERY(fx.conn,
		    "SELECT partition, full_snapshot, users FROM "
		    "cw_state_chunks ORDER BY seq",
		    "2|f|1\n2|f|1\n2|f|1\n1|t|2\n2|f|1");
	CHECK_INT_EQ(load_state(fx.ps, 1, m, &log_bytes), 0);
	CHECK_INT_EQ(m->n, 2);
	CHECK_INT_EQ(m->records, 2);
	CHECK_STR_EQ(state_hex(m, "a"), "736e6170");
	CHECK_STR_EQ(state_hex(m, "c"), "absent");
	CHECK_INT_EQ(log_bytes, 2 * (8 + 1 + 4));
	/* Deltas after the snapshot are read after it. */
	add_user_state(b1, "a", NULL, 0);
	REQUIRE(flush1(fx.ps, b1) == 0);
	batch_reset(b1);
	CHECK_INT_EQ(load_state(fx.ps, 1, m, &log_bytes), 0);
	CHECK_INT_EQ(m->n, 1);
	CHECK_STR_EQ(state_hex(m, "b"), "736e6170");
	CHECK_INT_EQ(log_bytes, 2 * (8 + 1 + 4) + 8 + 1);
	CHECK_INT_EQ(load_state(fx.ps, 2, m, NULL), 0);
	CHECK_INT_EQ(m->n, 2);

	/* An empty snapshot: partition 1 leaves no rows, 2 keeps its. */
	b1->state_full = true;
	CHECK(!batch_is_empty(b1));
	REQUIRE(flush1(fx.ps, b1) == 0);
	batch_reset(b1);
	CHECK(batch_is_empty(b1) && !b1->state_full);
	CHECK_QUERY(fx.conn,
		    "SELECT partition, count(*) FROM cw_state_chunks "
		    "GROUP BY 1 ORDER BY 1",
		    "2|4");
	CHECK_INT_EQ(load_state(fx.ps, 1, m, &log_bytes), 0);
	CHECK_INT_EQ(m->n, 0);
	CHECK_INT_EQ(log_bytes, 0);

	/* Two full snapshots in one flush: one DELETE for both. */
	add_user_state(b1, "k", "1", 1);
	b1->state_full = true;
	add_user_state(b2, "k", "2", 1);
	b2->state_full = true;
	REQUIRE(pg_sink_flush(fx.ps, both, 2, NULL) == 0);
	CHECK_QUERY(fx.conn,
		    "SELECT partition, full_snapshot, users FROM "
		    "cw_state_chunks ORDER BY seq",
		    "1|t|1\n2|t|1");

	state_map_clear(m);
	free(m);
	batch_destroy(b1);
	batch_destroy(b2);
	fixture_fini(&fx);
}

/* A chunk that does not parse stops the load with -EBADMSG and a message
 * naming the partition; the connection stays usable. */
static void test_bad_chunk(void)
{
	struct state_map *m = calloc(1, sizeof(*m));
	struct fixture fx;
	struct batch *b;

	REQUIRE(m);
	fixture_init(&fx, "t_bad_chunk", "cart-events");
	b = claimed_batch(fx.ps, 4);
	add_user_state(b, "a", "1", 1);
	REQUIRE(flush1(fx.ps, b) == 0);
	batch_reset(b);
	add_user_state(b, "b", "2", 1);
	REQUIRE(flush1(fx.ps, b) == 0);

	/* Truncated in the value, then in the key length. */
	db_exec(fx.conn, "UPDATE cw_state_chunks SET chunk = "
			 "substring(chunk from 1 for octet_length(chunk) - 1) "
			 "WHERE seq = (SELECT max(seq) FROM cw_state_chunks)");
	CHECK_INT_EQ(load_state(fx.ps, 4, m, NULL), -EBADMSG);
	CHECK(strstr(pg_sink_last_error(fx.ps), "partition 4") != NULL);
	CHECK(strstr(pg_sink_last_error(fx.ps), "seq 2") != NULL);
	db_exec(fx.conn, "UPDATE cw_state_chunks SET chunk = '\\x0000' "
			 "WHERE seq = 2");
	CHECK_INT_EQ(load_state(fx.ps, 4, m, NULL), -EBADMSG);
	CHECK(strstr(pg_sink_last_error(fx.ps), "partition 4") != NULL);
	/* The records before the bad chunk were delivered (the caller
	 * discards them); the connection works. */
	CHECK_INT_EQ(m->records, 1);
	CHECK_INT_EQ(load_state(fx.ps, 5, m, NULL), 0);

	state_map_clear(m);
	free(m);
	batch_destroy(b);
	fixture_fini(&fx);
}

/* Migration 004 turns the per-user rows of cw_user_state into one full
 * snapshot chunk per (topic, partition) that loads back the same. */
static void test_migrate_state_chunks(void)
{
	static const char hostile[] = "u\tone\nline\\back'quote\" é€😀";
	struct state_map *m = calloc(1, sizeof(*m));
	char *conninfo = db_create("t_migrate_chunks");
	PGconn *conn = db_connect(conninfo);
	struct pg_sink *ps;
	char errstr[512] = "";
	size_t n3 = 0;
	uint64_t log_bytes = 0;

	REQUIRE(m);
	while (n3 < migrate_n_migrations && migrate_migrations[n3].version <= 3)
		n3++;
	REQUIRE(n3 == 3);
	CHECK_INT_EQ(migrate_apply_list(conn, migrate_migrations, n3, errstr,
					sizeof(errstr)),
		     0);
	{
		const char *params[4] = {"cart-events", "2", hostile,
					 "\\x0001025cff"};
		PGresult *res = PQexecParams(
			conn,
			"INSERT INTO cw_user_state (topic, partition, user_id,"
			" state) VALUES ($1, $2, $3, $4::bytea)",
			4, NULL, params, NULL, NULL, 0);
		REQUIRE(PQresultStatus(res) == PGRES_COMMAND_OK);
		PQclear(res);
	}
	db_exec(conn, "INSERT INTO cw_user_state (topic, partition, user_id, "
		      "state) SELECT 'cart-events', i % 2 + 1, 'user-' || i, "
		      "convert_to('user-' || i, 'UTF8') "
		      "FROM generate_series(0, 999) i;"
		      "INSERT INTO cw_user_state VALUES "
		      "('other-topic', 2, 'user-1', '\\x00'),"
		      "('cart-events', 3, 'empty', '\\x');");

	ps = pg_sink_new(conninfo, "cart-events", errstr, sizeof(errstr));
	REQUIRE(ps);
	CHECK_INT_EQ(pg_sink_migrate(ps), 0);
	CHECK_QUERY(conn, "SELECT to_regclass('cw_user_state') IS NULL", "t");
	CHECK_QUERY(conn,
		    "SELECT topic, partition, full_snapshot, users FROM "
		    "cw_state_chunks ORDER BY topic, partition",
		    "cart-events|1|t|500\ncart-events|2|t|501\n"
		    "cart-events|3|t|1\nother-topic|2|t|1");

	CHECK_INT_EQ(load_state(ps, 2, m, &log_bytes), 0);
	CHECK_INT_EQ(m->n, 501);
	CHECK_INT_EQ(m->records, 501);
	CHECK_STR_EQ(state_hex(m, hostile), "0001025cff");
	CHECK_STR_EQ(state_hex(m, "user-1"), "757365722d31");
	CHECK_STR_EQ(state_hex(m, "user-0"), "absent");
	CHECK_QUERY_INT(conn,
			"SELECT octet_length(chunk) FROM cw_state_chunks "
			"WHERE topic = 'cart-events' AND partition = 2",
			log_bytes);
	{
		struct loaded_users *lu = calloc(1, sizeof(*lu));
		REQUIRE(lu);
		CHECK_INT_EQ(pg_sink_load_users(ps, 1, on_user, NULL, lu, NULL),
			     0);
		CHECK_INT_EQ(lu->n, 500);
		CHECK_INT_EQ(lu->bad, 0);
		CHECK(lu->seen[0] && !lu->seen[1] && lu->seen[998]);
		free(lu);
	}
	CHECK_INT_EQ(load_state(ps, 3, m, NULL), 0);
	CHECK_INT_EQ(m->n, 1);
	CHECK_STR_EQ(state_hex(m, "empty"), "");

	state_map_clear(m);
	free(m);
	pg_sink_destroy(ps);
	PQfinish(conn);
	free(conninfo);
}

struct loaded_outbox {
	int n;		 /* chunks */
	int records;	 /* records in all chunks */
	char ids[4][40]; /* chunk ids */
	char records_text[4][64];
};

/* Each chunk's records as "user=payload;..." */
static int on_outbox(void *opaque, const char *chunk_id, const uint8_t *chunk,
		     size_t len)
{
	struct loaded_outbox *lo = opaque;
	struct pack_reader pr = pack_reader_init(chunk, len);
	const uint8_t *key, *val;
	size_t klen, vlen, used = 0;
	int r;

	if (lo->n < 4) {
		snprintf(lo->ids[lo->n], sizeof(lo->ids[0]), "%s", chunk_id);
		while ((r = pack_next(&pr, &key, &klen, &val, &vlen)) > 0) {
			used += (size_t)snprintf(
				lo->records_text[lo->n] + used,
				sizeof(lo->records_text[0]) - used,
				"%.*s=%.*s;", (int)klen, (const char *)key,
				(int)vlen, val ? (const char *)val : "");
			lo->records++;
		}
		CHECK_INT_EQ(r, 0);
	}
	lo->n++;
	return 0;
}

static void test_outbox(void)
{
	struct loaded_outbox lo = {0};
	struct fixture fx;
	struct batch *b;
	const char *ids[2] = {ID(41), ID(49)};
	const char *bad[1] = {"41'); DROP TABLE cw_outbox_chunks; --"};

	fixture_init(&fx, "t_outbox", "cart-events");
	b = claimed_batch(fx.ps, 7);
	/* Two flushes: two chunks, of 3 records and 1. */
	for (int i = 1; i <= 4; i++) {
		char id[40], payload[8], user[8];
		struct batch_abandonment *ab;
		snprintf(id, sizeof(id),
			 "00000000-0000-4000-8000-00000000004%d", i);
		snprintf(payload, sizeof(payload), "avro-%d", i);
		snprintf(user, sizeof(user), "u%d", i);
		ab = add_abandonment(b, id, user, T0, 1);
		ab->avro = batch_memdup(b, payload, strlen(payload));
		ab->avro_len = strlen(payload);
		if (i >= 3) {
			REQUIRE(flush1(fx.ps, b) == 0);
			batch_reset(b);
		}
	}

	CHECK_INT_EQ(pg_sink_load_outbox(fx.ps, 7, on_outbox, &lo), 0);
	CHECK_INT_EQ(lo.n, 2);
	CHECK_INT_EQ(lo.records, 4);
	CHECK_STR_EQ(lo.ids[0], ID(41));
	CHECK_STR_EQ(lo.records_text[0], "u1=avro-1;u2=avro-2;u3=avro-3;");
	CHECK_STR_EQ(lo.ids[1], ID(44));
	CHECK_STR_EQ(lo.records_text[1], "u4=avro-4;");
	memset(&lo, 0, sizeof(lo));
	CHECK_INT_EQ(pg_sink_load_outbox(fx.ps, 8, on_outbox, &lo), 0);
	CHECK_INT_EQ(lo.n, 0); /* another partition's */

	CHECK_INT_EQ(pg_sink_outbox_delete(fx.ps, ids, 2), 0);
	CHECK_INT_EQ(pg_sink_outbox_delete(fx.ps, ids, 2), 0); /* again */
	CHECK_INT_EQ(pg_sink_outbox_delete(fx.ps, ids, 0), 0);
	CHECK_INT_EQ(pg_sink_outbox_delete(fx.ps, bad, 1), -EINVAL);
	memset(&lo, 0, sizeof(lo));
	CHECK_INT_EQ(pg_sink_load_outbox(fx.ps, 7, on_outbox, &lo), 0);
	CHECK_INT_EQ(lo.n, 1);
	CHECK_STR_EQ(lo.ids[0], ID(44));
	/* The abandonment rows stay. */
	CHECK_QUERY(fx.conn, "SELECT count(*) FROM cart_abandonments", "4");

	batch_destroy(b);
	fixture_fini(&fx);
}

static void test_new_rejects_bad_conninfo(void)
{
	char errstr[256] = "";

	CHECK(pg_sink_new("host=x no_such_key=1", "t", errstr,
			  sizeof(errstr)) == NULL);
	/* Said without quoting the string (any piece could be a secret). */
	CHECK(strstr(errstr, "invalid connection option") != NULL);
	CHECK(strstr(errstr, "no_such_key") == NULL);
	CHECK(pg_sink_new(NULL, "", errstr, sizeof(errstr)) == NULL);
}

/* pg_copy_parse_uuid(): the 8-4-4-4-12 text form in either case, and
 * nothing else (short, long, misplaced or missing dashes, non-hex). */
static void test_parse_uuid(void)
{
	static const char *bad[] = {
		"",
		"019f40e2",
		"019f40e2-4b7b-8b17-8e6d-1860576cb31",
		"019f40e2-4b7b-8b17-8e6d-1860576cb3133",
		"019f40e2x4b7b-8b17-8e6d-1860576cb313",
		"019f40e2-4b7b-8b17-8e6d1-860576cb313",
		"019f40e2-4b7b-8b17-8e6d-1860576cb31g",
		"019f40e24b7b8b178e6d1860576cb313",
		"019f40e2-4b7b-8b17-8e6d-",
	};
	static const uint8_t want[16] = {0x01, 0x9f, 0x40, 0xe2, 0x4b, 0x7b,
					 0x8b, 0x17, 0x8e, 0x6d, 0x18, 0x60,
					 0x57, 0x6c, 0xb3, 0x13};
	uint8_t u[16];

	CHECK_INT_EQ(
		pg_copy_parse_uuid("019f40e2-4b7b-8b17-8e6d-1860576cb313", u),
		0);
	CHECK(memcmp(u, want, 16) == 0);
	CHECK_INT_EQ(
		pg_copy_parse_uuid("019F40E2-4B7B-8B17-8E6D-1860576CB313", u),
		0);
	CHECK(memcmp(u, want, 16) == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* A copy of exactly its length, so a read past the NUL is
		 * seen by the sanitizers and valgrind. */
		char *s = strdup(bad[i]);
		REQUIRE(s);
		if (pg_copy_parse_uuid(s, u) != -EINVAL) {
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
			CHECK(0);
		}
		free(s);
	}
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"migrate_fresh_then_noop", test_migrate_fresh_then_noop},
		{"migrate_concurrent", test_migrate_concurrent},
		{"migrate_refuses_newer_schema",
		 test_migrate_refuses_newer_schema},
		{"migrate_failure_rolls_back", test_migrate_failure_rolls_back},
		{"new_rejects_bad_conninfo", test_new_rejects_bad_conninfo},
		{"claim", test_claim},
		{"flush_rows", test_flush_rows},
		{"aggregates_add_up", test_aggregates_add_up},
		{"fencing", test_fencing},
		{"connection_killed", test_connection_killed},
		{"lost_commit_answer", test_lost_commit_answer},
		{"lost_commit_then_reclaim", test_lost_commit_then_reclaim},
		{"lost_commit_then_partition_taken",
		 test_lost_commit_then_partition_taken},
		{"lost_commit_not_landed_partition_taken",
		 test_lost_commit_not_landed_partition_taken},
		{"rewind_detected", test_rewind_detected},
		{"permanent_error_isolated", test_permanent_error_isolated},
		{"unreachable_reason", test_unreachable_reason},
		{"privilege_revoked_is_transient",
		 test_privilege_revoked_is_transient},
		{"load_users", test_load_users},
		{"state_snapshot", test_state_snapshot},
		{"bad_chunk", test_bad_chunk},
		{"migrate_state_chunks", test_migrate_state_chunks},
		{"outbox", test_outbox},
		{"server_restart", test_server_restart},
		{"parse_uuid", test_parse_uuid},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
