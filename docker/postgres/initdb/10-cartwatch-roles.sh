#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# 10-cartwatch-roles.sh — PostgreSQL roles for the compose stack, run once
# by the postgres image's entrypoint when it initialises an empty data
# volume (docker-entrypoint-initdb.d, as POSTGRES_USER in POSTGRES_DB).
#
#   $CARTWATCH_DB_WRITER  cartwatch-processor: creates the schema (the
#                         processor applies its migrations at start) and
#                         writes every table; owns what it creates.
#   $CARTWATCH_DB_READER  Grafana: SELECT on whatever the writer creates in
#                         schema public (default privileges), read-only
#                         transactions, a statement timeout.
#
# Passwords come from CARTWATCH_DB_WRITER_PASSWORD/_READER_PASSWORD and are
# passed to psql as variables (quoted by psql, never spliced into SQL).
# tests/test-dashboard.py runs this script against its throwaway server too.
set -euo pipefail

: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
writer=${CARTWATCH_DB_WRITER:-cartwatch_writer}
reader=${CARTWATCH_DB_READER:-cartwatch_reader}

psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v db="$POSTGRES_DB" -v writer="$writer" -v reader="$reader" \
	-v writer_pw="${CARTWATCH_DB_WRITER_PASSWORD:?}" \
	-v reader_pw="${CARTWATCH_DB_READER_PASSWORD:?}" <<'SQL'
CREATE ROLE :"writer" LOGIN PASSWORD :'writer_pw';
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_pw';

GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"writer";
GRANT CONNECT ON DATABASE :"db" TO :"reader";
-- PostgreSQL 15 no longer lets everyone create in schema public.
GRANT USAGE, CREATE ON SCHEMA public TO :"writer";
GRANT USAGE ON SCHEMA public TO :"reader";

-- Tables and views the writer creates later (its migrations) are readable.
ALTER DEFAULT PRIVILEGES FOR ROLE :"writer" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";

ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
SQL
echo "10-cartwatch-roles: created roles $writer (writer) and $reader (read-only)"
