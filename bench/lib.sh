# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# bench/lib.sh — what the bench scripts share; sourced (bash), never run.
#
#   . "$(dirname "$0")/lib.sh"
#
# Sourcing it defines functions and these variables, nothing else (no
# trap, no directory, no process):
#   here       this directory (bench/), src its source root, bench_name the
#              script's name without .sh (the prefix of die's messages);
#   build      CARTWATCH_BUILD_ROOT, else $src/build;
#   producer, processor, devbroker
#              CARTWATCH_PRODUCER, CARTWATCH_PROCESSOR, CARTWATCH_DEVBROKER,
#              else the binaries in $build (meson benchmark() passes them).
# Then bench_start makes the work directory and the trap that stops
# everything the script started (its processes, tests/pg, tests/kafka) and
# removes the directory (kept when CARTWATCH_KEEP_BENCH_DIR is set);
# start_pg and start_broker / start_devbroker start the servers
# (topic_partitions sizes a topic for the embedded broker); wait_until polls
# a condition, watching processes; stop_proc stops one and checks its exit
# status; the rest are small helpers for offsets, times and CPU figures.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
bench_name=$(basename "$0" .sh)
build=${CARTWATCH_BUILD_ROOT:-$src/build}
producer=${CARTWATCH_PRODUCER:-$build/producer/cartwatch-producer}
processor=${CARTWATCH_PROCESSOR:-$build/processor/cartwatch-processor}
devbroker=${CARTWATCH_DEVBROKER:-$build/devbroker/cartwatch-devbroker}
bench_pid_vars=()

# die MSG...: prints "bench-NAME: MSG" on stderr and exits 1.
die() {
	echo "$bench_name: $*" >&2
	exit 1
}

# need CMD PACKAGE: dies unless CMD is on the PATH, naming the Debian
# PACKAGE that has it.
need() { command -v "$1" >/dev/null || die "$1 not found (apt-get install -y $2)"; }

# need_built BIN...: dies "BIN not built" unless every BIN is executable.
need_built() {
	local b
	for b; do [ -x "$b" ] || die "$b not built"; done
}

# bench_start [PIDVAR...]: sets work to a fresh directory and installs the
# exit trap (bench_cleanup); each PIDVAR is emptied now and, at exit, the
# process whose pid it then holds is killed and waited for, in the order
# given (put the broker last). INT and TERM exit 130 through the trap.
bench_start() {
	local v
	for v; do printf -v "$v" '%s' ''; done
	bench_pid_vars=("$@")
	work=$(mktemp -d "${TMPDIR:-/tmp}/$bench_name.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

# bench_cleanup: the exit trap; never fails. Stops the processes of
# bench_start's PIDVARs, then tests/kafka and tests/pg if they were started
# in $work, and removes $work unless CARTWATCH_KEEP_BENCH_DIR is set. Does
# nothing in a subshell (one that a signal ends runs the trap too).
bench_cleanup() {
	[ "$BASHPID" = $$ ] || return 0
	set +eu
	local v p
	for v in "${bench_pid_vars[@]}"; do
		p=${!v}
		[ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[ -d "$work/kafka" ] && "$src/tests/kafka/kafka-stop" "$work/kafka" >/dev/null 2>&1
	[ -d "$work/pg" ] && "$src/tests/pg/pg-stop" "$work/pg"
	[ -z "${CARTWATCH_KEEP_BENCH_DIR:-}" ] && rm -rf "$work"
}

# start_pg: starts a throwaway PostgreSQL in $work/pg (tests/pg/pg-start)
# and exports its PG* variables.
start_pg() {
	"$src/tests/pg/pg-start" "$work/pg" >/dev/null
	set -a
	# shellcheck disable=SC1091 # written by pg-start
	. "$work/pg/env"
	set +a
}

# start_devbroker TOPIC:PARTITIONS...: (re)starts the embedded broker with
# these topics (stopping the one this script runs, if any); sets broker_pid
# and bs (its bootstrap address); its stderr goes to $work/devbroker.log.
start_devbroker() {
	[ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
	broker_pid=
	rm -f "$work/bootstrap"
	"$devbroker" --topics "$(IFS=,; echo "$*")" --bootstrap-file "$work/bootstrap" \
		>/dev/null 2>"$work/devbroker.log" &
	broker_pid=$!
	wait_until -p "$broker_pid" "$work/devbroker.log" devbroker 15 0.05 \
		"devbroker did not start" test -s "$work/bootstrap"
	bs=$(cat "$work/bootstrap")
}

# start_broker TOPIC:PARTITIONS...: the broker $broker names with these
# topics: "embedded" (start_devbroker) or "real" (Apache Kafka in
# $work/kafka, tests/kafka; broker_pid stays empty); sets bs.
start_broker() {
	local t
	case $broker in
	embedded) start_devbroker "$@" ;;
	real)
		bs=$("$src/tests/kafka/kafka-start" "$work/kafka")
		for t; do
			"$src/tests/kafka/kafka-create-topic" "$bs" "${t%%:*}" "${t##*:}" >/dev/null
		done
		;;
	*) die "BROKER must be embedded or real" ;;
	esac
}

# mock_partitions N: prints how many partitions N events need on the
# embedded broker, which keeps at most 5 MB a partition (librdkafka's mock
# cluster drops older message sets): one per 30,000 events, at least 4.
mock_partitions() {
	local p=$((($1 + 29999) / 30000))
	[ "$p" -ge 4 ] || p=4
	echo "$p"
}

# topic_partitions N REAL: prints the partitions of a topic for N events:
# PARTITIONS if set, else mock_partitions N on the embedded broker
# ($broker), else REAL.
topic_partitions() {
	if [ -n "${PARTITIONS:-}" ]; then
		echo "$PARTITIONS"
	elif [ "$broker" = embedded ]; then
		mock_partitions "$1"
	else
		echo "$2"
	fi
}

# offsets_sum TOPIC PARTITIONS WHICH: prints the sum over the topic's
# partitions of their high watermarks (WHICH -1) or log starts (-2), on $bs.
offsets_sum() {
	local args=() p
	for p in $(seq 0 $(($2 - 1))); do args+=(-t "$1:$p:$3"); done
	kcat -Q -b "$bs" "${args[@]}" | awk '{s += $NF} END {print s + 0}'
}

# free_port: prints a TCP port of 127.0.0.1 that is free now.
free_port() { "$src/tests/lib/free-port"; }

# http_ok URL: succeeds if a GET of URL answers 200.
http_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; }

# wait_until [-p PID LOG WHAT]... SECS PAUSE FAIL CMD...: runs CMD every
# PAUSE seconds until it succeeds. After each failed try it dies "WHAT
# exited" (after the tail of LOG) if a watched PID has ended, and with FAIL
# (after the tail of every watched LOG) once SECS seconds have passed.
wait_until() {
	local watch=() deadline pause fail i
	while [ "$1" = -p ]; do
		watch+=("$2" "$3" "$4")
		shift 4
	done
	deadline=$((SECONDS + $1)) pause=$2 fail=$3
	shift 3
	until "$@"; do
		for ((i = 0; i < ${#watch[@]}; i += 3)); do
			kill -0 "${watch[i]}" 2>/dev/null ||
				{ tail -n 30 "${watch[i + 1]}" >&2; die "${watch[i + 2]} exited"; }
		done
		if [ $SECONDS -ge $deadline ]; then
			for ((i = 0; i < ${#watch[@]}; i += 3)); do tail -n 30 "${watch[i + 1]}" >&2; done
			die "$fail"
		fi
		sleep "$pause"
	done
}

# stop_proc PIDVAR WHAT [STATUS...]: SIGTERMs the process whose pid PIDVAR
# holds, waits for it and empties PIDVAR; dies "WHAT exit status N" unless
# N is 0 or matches one of the STATUS patterns ('*': any).
stop_proc() {
	local pid=${!1} rc=0 ok
	kill -TERM "$pid" 2>/dev/null || true # it may have exited: wait tells how
	wait "$pid" || rc=$?
	printf -v "$1" '%s' ''
	[ $rc = 0 ] && return 0
	for ok in "${@:3}"; do
		# shellcheck disable=SC2254 # ok is a pattern
		case $rc in $ok) return 0 ;; esac
	done
	die "$2 exit status $rc"
}

# elapsed T0 T1: prints T1 - T0 (epoch seconds, e.g. $EPOCHREALTIME) in
# seconds with 3 decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

# eps N SECONDS: prints N / SECONDS rounded to a whole number (events/s).
eps() { awk -v n="$1" -v t="$2" 'BEGIN {printf "%.0f", n / t}'; }

# log_epoch LOG MSG [last]: prints the epoch seconds of the first (or last)
# line of LOG with msg="MSG"; fails if there is none.
log_epoch() {
	local line ts
	if [ "${3:-}" = last ]; then
		line=$(grep "msg=\"$2\"" "$1" | tail -n 1)
	else
		line=$(grep -m1 "msg=\"$2\"" "$1")
	fi
	ts=$(sed -n 's/^ts=\([^ ]*\) .*/\1/p' <<<"$line")
	[ -n "$ts" ] && date -u -d "$ts" +%s.%N
}

# cpu_of PID: prints the CPU seconds (user + system) PID has used so far,
# 0 if it is gone.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# cpu_with_reaped PID: the same plus those of the children PID has waited
# for (a postmaster's: every backend that has exited).
cpu_with_reaped() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# machine_cpu_now: prints "BUSY TOTAL", the machine's CPU seconds busy
# (user, nice, system, irq, softirq, steal) and in all (idle and iowait
# added) summed over its CPUs so far, from /proc/stat: the differences of
# two samples give how busy the machine was between them.
machine_cpu_now() {
	awk -v t="$(getconf CLK_TCK)" '$1 == "cpu" {
		b = $2 + $3 + $4 + $7 + $8 + $9
		printf "%.2f %.2f\n", b / t, (b + $5 + $6) / t }' /proc/stat
}

# postmaster_pid: prints the pid of start_pg's PostgreSQL.
postmaster_pid() { head -n 1 "$work/pg/data/postmaster.pid"; }

# pg_cpu_now: the CPU seconds start_pg's PostgreSQL has used so far, its
# live backends and workers included (cpu_with_reaped counts only those
# that exited): the difference of two samples is what it used between.
pg_cpu_now() {
	local pm c sum
	pm=$(postmaster_pid)
	sum=$(cpu_with_reaped "$pm")
	for c in $(pgrep -P "$pm"); do
		sum=$(awk -v a="$sum" -v b="$(cpu_of "$c")" 'BEGIN {print a + b}')
	done
	echo "$sum"
}
