#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-processor-cli.sh — cartwatch-processor's behaviour at its edges:
# usage errors exit 2 and name the option or variable; --help exits 0;
# with PostgreSQL unreachable it keeps running, says why on /healthz (503)
# and in its log, never logs the password, and stops cleanly on SIGTERM;
# a taken metrics port is a clear startup error; a password written in any
# form libpq accepts (or in a string it rejects) appears nowhere: not in the
# log, the error messages, /healthz or /metrics.
set -uo pipefail
proc=${CARTWATCH_PROCESSOR:?}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
fails=0
check() { # DESCRIPTION CONDITION...
	local what=$1; shift
	if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
expect_exit() { # STATUS PATTERN -- CMD...
	local want=$1 pat=$2; shift 3
	local out rc
	out=$("$@" 2>&1); rc=$?
	[ "$rc" = "$want" ] && grep -q -- "$pat" <<<"$out"
}

check "--help exits 0 and lists options" expect_exit 0 "--session-timeout" -- "$proc" --help
check "unknown option exits 2" expect_exit 2 "unknown option" -- "$proc" --bogus
check "bad duration exits 2 naming the option" expect_exit 2 "\-\-session-timeout: '5x' is not a duration" -- "$proc" --session-timeout 5x
check "bad environment value names the variable" expect_exit 2 "CARTWATCH_FLUSH_INTERVAL" -- env CARTWATCH_FLUSH_INTERVAL=soon "$proc"
check "stray argument exits 2" expect_exit 2 "unexpected argument" -- "$proc" extra
check "cart TTL shorter than the session is refused" expect_exit 2 "cart-ttl" -- "$proc" --cart-ttl 1m
check "bad log level exits 2" expect_exit 2 "log-level" -- "$proc" --log-level loud
check "bad log format exits 2" expect_exit 2 "log-format" -- "$proc" --log-format xml
check "an absurd time scale is refused" expect_exit 2 "time-scale must be above 0 and at most 1e9" -- "$proc" --time-scale 1e308
check "a zero clock skew is refused" expect_exit 2 "max-clock-skew must be between" -- "$proc" --max-clock-skew 0s
check "a cart limit past 65535 is refused" expect_exit 2 "max-cart-items must be between" -- "$proc" --max-cart-items 70000
check "a session timeout of centuries is refused" expect_exit 2 "at most 366d" -- "$proc" --session-timeout 100000d --cart-ttl 100000d

# PostgreSQL unreachable: a port nobody listens on.
pgport=$("$here/lib/free-port")
mport=$("$here/lib/free-port")
"$proc" --pg "host=127.0.0.1 port=$pgport dbname=x user=u password=s3cret-pw connect_timeout=1" \
	--metrics-addr "127.0.0.1:$mport" -b 127.0.0.1:1 >"$work/log" 2>&1 &
pid=$!
code=
for _ in $(seq 1 100); do
	code=$(curl -s -o "$work/health" -w '%{http_code}' "http://127.0.0.1:$mport/healthz") && [ "$code" = 503 ] &&
		grep -q "postgresql unreachable" "$work/health" && break
	sleep 0.1
done
check "/healthz is 503 with the reason while PostgreSQL is down" grep -q "postgresql unreachable" "$work/health"
for _ in $(seq 1 100); do grep -q "PostgreSQL unreachable, retrying" "$work/log" && break; sleep 0.1; done
check "it logs the retry" grep -q "PostgreSQL unreachable, retrying" "$work/log"
check "it keeps running" kill -0 $pid
check "the retries are counted in /metrics" bash -c "curl -s http://127.0.0.1:$mport/metrics | grep -Eq '^cartwatch_postgresql_retries_total [1-9]'"

# A bogus librdkafka property is an error at once, not after PostgreSQL
# answers (here it never does).
check "a bogus -X property fails at once, naming it" expect_exit 1 "bogus.property" -- timeout 10 "$proc" --pg "host=127.0.0.1 port=$pgport connect_timeout=1" -b 127.0.0.1:1 -X bogus.property=1
# --log-format json: every line of that error is one JSON object.
timeout 10 "$proc" --log-format json --pg "host=127.0.0.1 port=$pgport connect_timeout=1" -b 127.0.0.1:1 \
	-X bogus.property=1 >"$work/json.log" 2>&1
check "--log-format json writes one JSON object a line" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
recs = [json.loads(l) for l in lines]
assert recs and all(r["level"] and r["msg"] for r in recs)
assert any("bogus.property" in r.get("error", "") for r in recs)
' "$work/json.log"

# A second processor cannot take the same metrics port.
check "a taken metrics port is a startup error naming it" expect_exit 1 "127.0.0.1:$mport" -- "$proc" --metrics-addr "127.0.0.1:$mport" --pg "host=127.0.0.1 port=$pgport"

kill -TERM $pid
wait $pid; rc=$?
pid=
check "SIGTERM while waiting for PostgreSQL exits 0 (got $rc)" [ "$rc" = 0 ]
check "the password never reaches the log" bash -c "! grep -q s3cret-pw '$work/log'"
# The password in every form libpq accepts, PostgreSQL unreachable: the log
# shows the connection string with the password masked, /healthz says why
# (without the connection string), and none of them nor /metrics ever shows
# the password (nor its percent-encoded spelling).
secret_run() { # NAME CONNINFO
	local name=$1 cs=$2 port spid
	port=$("$here/lib/free-port")
	"$proc" --pg "$cs" --metrics-addr "127.0.0.1:$port" -b 127.0.0.1:1 >"$work/$name.log" 2>&1 &
	spid=$!
	for _ in $(seq 1 100); do
		curl -s -o "$work/$name.health" "http://127.0.0.1:$port/healthz" &&
			grep -q "postgresql unreachable" "$work/$name.health" &&
			grep -q "PostgreSQL unreachable, retrying" "$work/$name.log" && break
		sleep 0.1
	done
	curl -s -o "$work/$name.metrics" "http://127.0.0.1:$port/metrics"
	kill -TERM $spid; wait $spid
	check "$name: /healthz says PostgreSQL is unreachable" grep -q "postgresql unreachable" "$work/$name.health"
	check "$name: the log shows the password masked" grep -q "password=\*\*\*" "$work/$name.log"
	check "$name: /metrics answered" grep -q "^cartwatch_postgresql_up 0" "$work/$name.metrics"
	check "$name: no trace of the password anywhere" bash -c \
		"! grep -E 'Sekr1t|Sekr%31t|Sekr%20' '$work/$name.log' '$work/$name.health' '$work/$name.metrics'"
}
secret_run spaced "host=127.0.0.1 port=$pgport user=u password = Sekr1t-A connect_timeout=1"
secret_run tabbed "host=127.0.0.1 port=$pgport user=u password	=
	Sekr1t-B connect_timeout=1"
secret_run quoted "host=127.0.0.1 port=$pgport user=u password= 'Sekr1t C \\' Sekr1t' connect_timeout=1"
secret_run uri-userinfo "postgresql://u:Sekr1t-D@127.0.0.1:$pgport/x?connect_timeout=1"
secret_run uri-query "postgresql://u@127.0.0.1:$pgport/x?password=Sekr1t-E&connect_timeout=1"
secret_run uri-percent "postgresql://u:Sekr%31t-F@127.0.0.1:$pgport/x?connect_timeout=1&application_name=a%20b"
secret_run uri-query-percent "postgresql://u@127.0.0.1:$pgport/x?password=Sekr%31t%20G&connect_timeout=1"

# Strings libpq rejects: a startup error that says why, without the string.
for cs in "host=127.0.0.1 password Sekr1t-H" "host=127.0.0.1 password=x Sekr1t-I" \
	"host=127.0.0.1 password='Sekr1t-J" "postgresql://u:Sekr1t-K@[::1/x" \
	"postgresql://u@h/x?password=Sekr%zz1t" "postgresql://u@h/x?Sekr1t-L=1"; do
	n=$((${n:-0} + 1))
	out=$("$proc" --pg "$cs" --metrics-addr 127.0.0.1:0 -b 127.0.0.1:1 2>&1); rc=$?
	check "unparseable string $n: exit 1 naming the problem" \
		bash -c "[ $rc = 1 ] && grep -q 'invalid PostgreSQL connection string' <<<'${out//\'/}'"
	check "unparseable string $n: no trace of the password" \
		bash -c "! grep -E 'Sekr1t|Sekr%' <<<'${out//\'/}'"
done

[ $fails = 0 ] || { echo "--- processor log"; cat "$work/log"; }
exit $fails
