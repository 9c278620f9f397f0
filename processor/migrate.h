/* SPDX-License-Identifier: Apache-2.0 */
/*
 * migrate — brings a PostgreSQL database to the schema this binary was built
 * with. The migrations are migrations/NNN_name.sql, embedded at build time
 * by processor/embed_migrations.py (so an installed daemon needs no data
 * directory); each is applied once, in version order, in its own
 * transaction, and recorded in cw_schema_migrations.
 *
 * Several processors may start at once: everything runs under a session
 * advisory lock (MIGRATE_LOCK_KEY), so one applies and the others wait, then
 * find nothing left to do.
 *
 * Not for: downgrades, or data backfills that cannot run in one transaction.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* pg_advisory_lock() key serialising migration runners ("cartwmig"). */
#define MIGRATE_LOCK_KEY INT64_C(0x636172746d696721)

struct migrate_migration {
	int version;	  /* the NNN prefix of the file name */
	const char *name; /* the file name without ".sql", e.g. "001_schema" */
	const char *sql;  /* the file's text, several statements */
};

/* The migrations built into this binary, sorted by version (generated). */
extern const struct migrate_migration migrate_migrations[];
extern const size_t migrate_n_migrations;

/* Apply the built-in migrations that @conn's database has not recorded.
 * Same as migrate_apply_list(conn, migrate_migrations, migrate_n_migrations,
 * ...). */
int migrate_apply(PGconn *conn, char *errstr, size_t errstr_size);

/* Apply, in the order given (@list sorted by version), every migration of
 * @list not yet recorded in cw_schema_migrations; each in one transaction
 * that also records it. Holds pg_advisory_lock(MIGRATE_LOCK_KEY) throughout
 * and releases it before returning, so concurrent callers (processes or
 * connections) are safe and each version is applied exactly once.
 *
 * @conn must be connected and idle (not inside a transaction); it is
 * borrowed, and left idle. Blocks while another runner holds the lock.
 * Returns 0 (also when there was nothing to do), or, with a message in
 * @errstr:
 *   -ENOTCONN  @conn is not connected, or the connection broke;
 *   -EINVAL    @conn is inside a transaction;
 *   -EPROTO    the database records a version @list does not know (a newer
 *              cartwatch migrated it: refuse to run on a schema we do not
 *              understand); nothing is applied;
 *   -EIO       a migration failed: it is rolled back, earlier ones stay
 *              applied; the message names the migration and quotes the
 *              PostgreSQL error.
 * Thread: any, one call per connection at a time. */
int migrate_apply_list(PGconn *conn, const struct migrate_migration *list,
		       size_t n, char *errstr, size_t errstr_size);
