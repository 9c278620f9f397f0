# SPDX-License-Identifier: Apache-2.0
# lib.sh — the helpers the end-to-end scripts share. Source it after
# setting test_name (the prefix of every message) and, optionally, url (a
# processor's metrics address, for metric) and a check_alive function
# that fails the test when a process it started has died (wait_until
# calls it on every poll).
# shellcheck shell=bash

slow=${CARTWATCH_SLOW:-1}

fail() { echo "$test_name: FAIL: $*" >&2; exit 1; }
log() { echo "$test_name: $*" >&2; }

sql() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
# Offsets committed to PostgreSQL over every partition (a partition
# claimed before any of its records was read holds -1: it counts 0).
committed() { sql "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM cw_partitions" 2>/dev/null || echo 0; }
committed_is() { [ "$(committed)" = "$1" ]; }
committed_at_least() { [ "$(committed)" -ge "$1" ]; }
# One sample of the processor's /metrics at $url.
metric() { curl -fsS "$url/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_at_least() { local v; v=$(metric "$1") && [ -n "$v" ] && [ "${v%.*}" -ge "$2" ]; }
# The HTTP status of GET PATH on $url.
http_status_is() { [ "$(curl -sS -o /dev/null -w '%{http_code}' "$url$1")" = "$2" ]; }
# The single value QUERY returns.
sql_is() { [ "$(sql "$1" 2>/dev/null)" = "$2" ]; }

declare -F check_alive >/dev/null || check_alive() { :; }

# Poll until CMD... succeeds, or fail after SECONDS (scaled by
# CARTWATCH_SLOW under valgrind).
wait_until() { # SECONDS DESCRIPTION CMD...
	local deadline=$((SECONDS + $1 * slow)) what=$2
	shift 2
	until "$@"; do
		[ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
		check_alive
		sleep 0.1
	done
}
