#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-processor — cartwatch-processor throughput on a pre-filled topic
# against kcat reading the same topic, in one run.
#
#   bench/bench-processor.sh           (or `meson test --benchmark processor`)
#   N=1000000 USERS=200000 TRIALS=3 bench/bench-processor.sh
#   BROKER=real bench/bench-processor.sh     (Apache Kafka, tests/kafka)
#   PROFILE=callgrind|perf|none  PROFILE_N=100000
#   PROFILE_FLUSH_INTERVAL=1s: the profiled processor's --flush-interval; a
#     long one (20s) makes the number of flushes, and so the flush side's
#     instructions, independent of how fast the machine was (to compare
#     two builds' counts)
#   PG_STATS=1: load pg_stat_statements and print the server time by statement
#   BROKER=real PEER=kstreams: also the Kafka Streams peer (bench/peers/kstreams)
#     KSTREAMS_STORE=rocksdb|memory (its session store), KSTREAMS_JAVA_OPTS
#
# One broker and one throwaway PostgreSQL (tests/pg) for the whole run.
# cart-events is pre-filled once with N events by cartwatch-producer
# (--rate 0 --seed 1 --start-time 2026-07-08T00:00:00Z). Then TRIALS rounds,
# alternating, each timing:
#   kcat       kcat -C -e -o beginning -f '%o\n' > file: read all N and exit
#              at the end of every partition. The one-offset-per-line format
#              is the cheapest that still lets us check the count (an empty
#              -f '' writes nothing, so nothing proves kcat read all N; the
#              offsets cost ~7 buffered bytes per message). kcat gets the
#              processor's fetch.wait.max.ms=100 so that both sides wait the
#              same at the end of a partition.
#   processor  cartwatch-processor (defaults, --idle-timeout 1h so that no
#              session closes by idling, --flush-interval 1s, a fresh
#              database and consumer group per trial) from exec until
#              PostgreSQL shows every event committed
#              (SELECT sum(next_offset) FROM cw_partitions = N, polled every
#              50 ms over one psql session); also from its first
#              "partition assigned" log line (after migrations and the group
#              join, which cost fixed seconds) to done. Its final status line
#              must say events=N and dead_letters=0.
#   kstreams   (PEER=kstreams, BROKER=real only) the same job as a Kafka
#              Streams application, once with processing.guarantee
#              exactly_once_v2 and once with at_least_once, each with a
#              fresh application id, state directory and output topic,
#              commit.interval.ms=1000 (cartwatch's --flush-interval 1s),
#              from exec until the group's committed offsets on cart-events
#              add up to N (a separate JVM, cartwatch.kstreams.Watch, polls
#              them every 50 ms through the Admin API); also from its first
#              RUNNING state. CPU: the application's JVM (/proc/PID/stat,
#              read when done) and the broker. Then the abandonment records
#              on its output topic (read_committed) against the rows
#              cartwatch wrote to cart_abandonments in the same trial.
# Reported: events/s of each (best and median of TRIALS) and their ratios.
#
# The embedded broker is librdkafka's mock cluster, which keeps at most 5 MB
# per partition (older message sets are dropped, the log start moves up;
# hard-coded in rdkafka_mock.c). So with BROKER=embedded the topic gets
# enough partitions for ~30k events each (at least 4); the script checks
# that every partition still starts at offset 0 before it measures.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
n=${N:-1000000}
users=${USERS:-200000}
trials=${TRIALS:-3}
broker=${BROKER:-embedded}
profile=${PROFILE:-callgrind}
profile_n=${PROFILE_N:-100000}
flush_interval=1s
pg_stats=${PG_STATS:-0}
peer=${PEER:-none}
kstreams_dir=$here/peers/kstreams
kstreams_java_opts=${KSTREAMS_JAVA_OPTS:--Xms1g -Xmx2g}
kstreams_store=${KSTREAMS_STORE:-rocksdb}
partitions=$(topic_partitions "$n" 4)
topic=cart-events
ptopic=cart-events-profile
pparts=$(mock_partitions "$profile_n")
sim=(--rate 0 --users "$users" --duration 0 --seed 1
	--start-time 2026-07-08T00:00:00Z --log-level warn)

bench_start ks_pid watch_pid proc_pid psql_pid broker_pid

need kcat kcat
need_built "$producer" "$processor"
case $peer in
none) ;;
kstreams)
	[ "$broker" = real ] || die "PEER=kstreams needs BROKER=real (Kafka Streams needs transactions)"
	need java openjdk-17-jdk-headless
	jar=$kstreams_dir/target/cartwatch-kstreams.jar
	if [ ! -s "$jar" ] || [ -n "$(find "$kstreams_dir/src" "$kstreams_dir/pom.xml" "$src/schemas" -newer "$jar" -print -quit)" ]; then
		# Offline when ~/.m2 already holds everything, else from Maven Central.
		echo "building $kstreams_dir (mvn package)..."
		(cd "$kstreams_dir" && { mvn -q -B -o package >"$work/mvn.log" 2>&1 ||
			mvn -q -B package >>"$work/mvn.log" 2>&1; }) ||
			{ tail -n 30 "$work/mvn.log" >&2; die "mvn package failed in $kstreams_dir"; }
	fi
	ks_cp="$kstreams_dir/target/cartwatch-kstreams.jar:$kstreams_dir/target/lib/*"
	;;
*) die "PEER must be none or kstreams" ;;
esac

# ---- servers ----------------------------------------------------------------
if [ "$pg_stats" = 1 ]; then
	export CARTWATCH_PG_CONF="shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all"
fi
start_pg
start_broker "$topic:$partitions" "$ptopic:$pparts" cart-abandonments:4 cart-events-dlq:1
[ "$broker" = real ] && broker_pid=$(cat "$work/kafka/kafka.pid") # for its CPU time only

# Sum of the topic's partitions' offsets: -1 = high watermarks, -2 = log starts.
topic_offsets() { offsets_sum "$topic" "$partitions" "$1"; }
time_now() { echo "$EPOCHREALTIME"; }

echo "pre-filling $topic ($partitions partitions, $broker broker) with $n events of $users users..."
t0=$(time_now)
"$producer" -b "$bs" -t "$topic" "${sim[@]}" --events "$n" 2>"$work/producer.log" ||
	{ cat "$work/producer.log" >&2; die "producer failed"; }
echo "  produced in $(elapsed "$t0" "$(time_now)") s"
hw=$(topic_offsets -1) low=$(topic_offsets -2)
[ "$hw" = "$n" ] || die "$hw messages on the broker, want $n"
[ "$low" = 0 ] || die "the broker dropped the first $low messages (the mock cluster keeps 5 MB per partition): use more PARTITIONS"

# ---- kcat ---------------------------------------------------------------------
run_kcat() { # prints the wall time
	local t0 t1 got
	t0=$(time_now)
	kcat -C -b "$bs" -t "$topic" -e -q -o beginning -f '%o\n' \
		-X fetch.wait.max.ms=100 >"$work/kcat.out"
	t1=$(time_now)
	got=$(wc -l <"$work/kcat.out")
	[ "$got" = "$n" ] || die "kcat read $got messages, want $n"
	elapsed "$t0" "$t1"
}

# ---- processor ----------------------------------------------------------------
# One psql session for the polls (a psql per poll would cost the processor
# a good part of a core on a 2-CPU machine).
done_query() { # DB
	echo "SELECT coalesce(sum(next_offset), -1) FROM cw_partitions WHERE topic = '$topic';"
}

# CPU seconds (user + system) so far. cpu_children sets $cpu to those of
# this shell's waited-for children (the processor, psql); call it directly,
# since in a pipe or $(...) `times` would see a subshell. cpu_with_reaped
# (lib.sh) gives the postmaster's including every backend that has exited.
cpu_children() {
	times >"$work/times"
	cpu=$(awk 'NR == 2 {gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4}' "$work/times")
}

no_backends() { # DB
	[ "$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$1'")" = 0 ]
}

# run_processor DB GROUP [WRAPPER...]: sets p_wall p_from_assign p_events
# and p_cpu (CPU seconds of the processor, PostgreSQL and the broker)
run_processor() {
	local db=$1 group=$2 log=$work/processor-$1.log t0 t1 ta sum deadline
	shift 2
	psql -XAtq -d postgres -c "CREATE DATABASE $db" >/dev/null
	local c0 pg0 b0 cpu
	cpu_children; c0=$cpu
	pg0=$(cpu_with_reaped "$(postmaster_pid)") b0=$(cpu_with_reaped "${broker_pid:-0}")
	t0=$(time_now)
	PGDATABASE=$db "$@" "$processor" -b "$bs" -t "$topic" --group "$group" \
		--idle-timeout 1h --flush-interval "$flush_interval" 2>"$log" &
	proc_pid=$!
	# Wait for the first assignment (migrations are applied by then).
	deadline=$((SECONDS + 300))
	wait_until -p "$proc_pid" "$log" processor 300 0.05 "processor got no partition in 300 s" \
		grep -q 'msg="partition assigned"' "$log"
	coproc PSQL { PGDATABASE=$db exec psql -XAtq 2>&1; }
	psql_pid=$PSQL_PID
	while :; do
		done_query >&"${PSQL[1]}"
		IFS= read -r -t 30 sum <&"${PSQL[0]}" || die "psql did not answer"
		t1=$(time_now)
		[ "$sum" = "$n" ] && break
		[[ $sum =~ ^-?[0-9]+$ ]] || die "psql: $sum"
		kill -0 "$proc_pid" 2>/dev/null || { tail "$log" >&2; die "processor exited"; }
		[ $SECONDS -lt $deadline ] || die "processor not done in 300 s (committed $sum)"
		sleep 0.05
	done
	eval "exec ${PSQL[1]}>&-"
	wait "$psql_pid" 2>/dev/null || true; psql_pid=
	stop_proc proc_pid processor
	# Its backends are gone (and counted in the postmaster's children).
	wait_until $((deadline - SECONDS)) 0.05 "backends of $db did not exit" no_backends "$db"
	cpu_children
	p_cpu_nums=$(awk -v c="$cpu" -v c0="$c0" -v pg="$(cpu_with_reaped "$(postmaster_pid)")" -v pg0="$pg0" \
		-v b="$(cpu_with_reaped "${broker_pid:-0}")" -v b0="$b0" \
		'BEGIN {printf "%.2f %.2f %.2f", c - c0, pg - pg0, b - b0}')
	p_cpu=$(awk -v c="$cpu" -v c0="$c0" -v pg="$(cpu_with_reaped "$(postmaster_pid)")" -v pg0="$pg0" \
		-v b="$(cpu_with_reaped "${broker_pid:-0}")" -v b0="$b0" -v w="$(elapsed "$t0" "$t1")" \
		'BEGIN {printf "processor %.1f s, PostgreSQL %.1f s, broker %.1f s (of %.1f s wall x %d CPUs)", c - c0, pg - pg0, b - b0, w, '"$(nproc)"'}')
	ta=$(log_epoch "$log" "partition assigned")
	p_wall=$(elapsed "$t0" "$t1")
	p_from_assign=$(elapsed "$ta" "$t1")
	# The final status line: every event read, none dead-lettered.
	local last
	last=$(grep 'msg="status"' "$log" | tail -n 1)
	p_events=$(sed -n 's/.* events=\([0-9]*\).*/\1/p' <<<"$last")
	[ "$p_events" = "$n" ] || die "processor read $p_events events, want $n: $last"
	[[ $last == *" dead_letters=0 "* ]] || die "dead letters: $last"
	p_status=$last
	p_abandonments=$(psql -XAtq -d "$db" -c "SELECT count(*) FROM cart_abandonments")
}

# ---- Kafka Streams peer (PEER=kstreams) -----------------------------------------
# run_kstreams GUARANTEE TAG: sets k_wall k_from_running k_cpu k_broker_cpu
# k_abandonments
run_kstreams() {
	local g=$1 tag=$2 app out log t0 t1 tr b0 line
	app=kstreams-$tag-$$ out=kstreams-abandonments-$tag log=$work/kstreams-$tag
	"$src/tests/kafka/kafka-create-topic" "$bs" "$out" 4 >/dev/null
	# Kafka Streams stamps its output with event time (the session's end:
	# July 2026 here), so the broker's 7-day time retention would delete
	# the records before they are counted: keep them.
	java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$("$src/tests/kafka/kafka-fetch")/*" \
		-Dlog4j2.configurationFile=/dev/null kafka.admin.ConfigCommand --bootstrap-server "$bs" \
		--alter --entity-type topics --entity-name "$out" --add-config retention.ms=-1 \
		>"$log.config" 2>&1 || { cat "$log.config" >&2; die "could not set retention.ms on $out"; }
	# The probe first: its JVM start is not the application's time.
	: >"$log.watch"
	java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$ks_cp" \
		-Dorg.slf4j.simpleLogger.defaultLogLevel=warn cartwatch.kstreams.Watch \
		"$bs" "$app" "$topic" "$n" 600 >"$log.watch" 2>"$log.watch.err" &
	watch_pid=$!
	wait_until -p "$watch_pid" "$log.watch.err" Watch 120 0.05 "Watch did not connect in 120 s" \
		grep -q '^ready' "$log.watch"
	b0=$(cpu_with_reaped "$broker_pid")
	t0=$(time_now)
	# shellcheck disable=SC2086 # KSTREAMS_JAVA_OPTS is a list of options
	java $kstreams_java_opts -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
		-cp "$ks_cp" cartwatch.kstreams.CartStreams --bootstrap "$bs" \
		--app-id "$app" --guarantee "$g" --output "$out" --commit-ms 1000 \
		--store "$kstreams_store" \
		--state-dir "$work/kstreams-state-$tag" >"$log.out" 2>"$log.err" &
	ks_pid=$!
	wait_until -p "$ks_pid" "$log.err" "kstreams ($g)" -p "$watch_pid" "$log.watch.err" Watch \
		900 0.05 "kstreams ($g) not done in 900 s" grep -q '^done ' "$log.watch"
	line=$(grep -m1 '^done ' "$log.watch")
	k_cpu=$(cpu_with_reaped "$ks_pid")
	k_broker_cpu=$(awk -v b="$(cpu_with_reaped "$broker_pid")" -v b0="$b0" 'BEGIN {printf "%.2f", b - b0}')
	t1=${line#done }
	wait "$watch_pid" 2>/dev/null || true; watch_pid=
	# A JVM that ran its shutdown hooks on SIGTERM exits with 143.
	stop_proc ks_pid "kstreams ($g)" 143
	tr=$(sed -n 's/^kstreams: RUNNING //p' "$log.out" | head -n 1)
	[ -n "$tr" ] || die "kstreams ($g) never reported RUNNING"
	k_wall=$(elapsed "$t0" "$t1")
	k_from_running=$(elapsed "$(awk -v t="$tr" 'BEGIN {printf "%.3f", t / 1000}')" "$t1")
	# librdkafka reads read_committed by default: aborted output is not counted.
	k_abandonments=$(kcat -C -b "$bs" -t "$out" -e -q -o beginning -f '\n' \
		-X isolation.level=read_committed | wc -l)
	if grep -q 'Exception' "$log.err"; then
		echo "  kstreams ($g) logged exceptions:" >&2; grep -m5 'Exception' "$log.err" >&2
	fi
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
best() { sort -g | head -n 1; }

: >"$work/k.times"; : >"$work/p.times"; : >"$work/a.times"
: >"$work/eos.times"; : >"$work/alos.times"
for trial in $(seq "$trials"); do
	# Alternate the order, so neither side always runs on a warmer broker.
	if [ $((trial % 2)) = 1 ]; then order="kcat processor"; else order="processor kcat"; fi
	if [ "$peer" = kstreams ]; then
		if [ $((trial % 2)) = 1 ]; then order="$order eos alos"; else order="alos eos $order"; fi
	fi
	for side in $order; do
		case $side in
		kcat) k=$(run_kcat); echo "$k" >>"$work/k.times" ;;
		processor)
			run_processor "bench$trial" "bench-$trial-$$"
			echo "$p_wall" >>"$work/p.times"; echo "$p_from_assign" >>"$work/a.times"
			;;
		eos | alos)
			if [ "$side" = eos ]; then g=exactly_once_v2; else g=at_least_once; fi
			run_kstreams "$g" "$side-$trial"
			echo "$k_wall" >>"$work/$side.times"
			printf -v "ks_${side}" '%s' "$g $k_wall s ($(eps "$n" "$k_wall") events/s), from RUNNING $k_from_running s ($(eps "$n" "$k_from_running") events/s); CPU: JVM $k_cpu s, broker $k_broker_cpu s; abandonments $k_abandonments"
			printf -v "ks_${side}_result" '%s' "$k_wall $k_from_running $k_cpu $k_broker_cpu $k_abandonments"
			;;
		esac
	done
	echo "trial $trial: kcat $k s ($(eps "$n" "$k") events/s), processor $p_wall s ($(eps "$n" "$p_wall") events/s), from first assignment $p_from_assign s ($(eps "$n" "$p_from_assign") events/s)"
	echo "  CPU during the processor's run: $p_cpu; abandonments $p_abandonments"
	if [ "$peer" = kstreams ]; then
		echo "  kstreams $ks_eos"
		echo "  kstreams $ks_alos"
		for side in eos alos; do
			r=ks_${side}_result
			# shellcheck disable=SC2086
			set -- ${!r}
			awk -v t="$trial" -v s="$side" -v n="$n" -v kw="$1" -v kr="$2" -v kc="$3" -v kb="$4" -v ka="$5" \
				-v pw="$p_wall" -v pa="$p_from_assign" -v pc="$p_cpu_nums" -v pab="$p_abandonments" 'BEGIN {
				split(pc, c, " ")
				printf "RESULT kstreams trial=%d guarantee=%s events=%d kstreams_eps=%.0f kstreams_from_running_eps=%.0f kstreams_cpu_s=%.2f kstreams_broker_cpu_s=%.2f kstreams_cpu_us_per_event=%.2f kstreams_abandonments=%d cartwatch_eps=%.0f cartwatch_from_assign_eps=%.0f cartwatch_cpu_s=%.2f postgresql_cpu_s=%.2f cartwatch_broker_cpu_s=%.2f cartwatch_abandonments=%d cartwatch_over_kstreams=%.2f\n",
					t, s, n, n / kw, n / kr, kc, kb, kc * 1e6 / n, ka, n / pw, n / pa, c[1], c[2], c[3], pab, kw / pw }'
		done
	fi
done
echo "  processor's last status: ${p_status#* msg=\"status\" }"

report() { # LABEL STAT
	local k p a
	k=$($2 <"$work/k.times") p=$($2 <"$work/p.times") a=$($2 <"$work/a.times")
	awk -v l="$1" -v n="$n" -v k="$k" -v p="$p" -v a="$a" -v c="$(nproc)" -v parts="$partitions" -v b="$broker" 'BEGIN {
		printf "RESULT %s events=%d partitions=%d broker=%s cpus=%d kcat_eps=%.0f processor_eps=%.0f ratio=%.2f processor_from_assign_eps=%.0f ratio_from_assign=%.2f (kcat %.3f s, processor %.3f s, from assignment %.3f s)\n",
			l, n, parts, b, c, n / k, n / p, k / p, n / a, k / a, k, p, a }'
}
report best best
report median median

# ---- PostgreSQL time by statement (PG_STATS=1) -------------------------------------
# pg_stat_statements over every trial: where the server spends the flushes.
if [ "$pg_stats" = 1 ]; then
	echo "PG_STATS: server time by statement over all trials (ms total, calls, rows; first 90 characters)"
	psql -XAtq -d postgres -F ' | ' -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "
		SELECT round(sum(total_exec_time)::numeric), sum(calls), sum(rows),
		       left(regexp_replace(query, '\s+', ' ', 'g'), 90)
		FROM pg_stat_statements GROUP BY query
		ORDER BY 1 DESC LIMIT 20"
	# The recoveries' UPDATE is cheap when HOT (migration 013).
	for d in $(psql -XAtq -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'bench%' ORDER BY 1"); do
		psql -XAtq -d "$d" -c "SELECT '$d: cart_abandonments row updates ' || coalesce(sum(n_tup_upd), 0)
			|| ', HOT ' || coalesce(sum(n_tup_hot_upd), 0)
			FROM pg_stat_user_tables WHERE relname LIKE 'cart_abandonments%'"
	done
fi

# ---- profile --------------------------------------------------------------------
# A smaller run under a profiler: the processor's own functions by
# instructions (callgrind: exact counts, stable on a noisy machine) or by
# CPU samples (perf record -e cpu-clock: no hardware counters needed).
case $profile in
none) exit 0 ;;
callgrind) command -v valgrind >/dev/null || { echo "PROFILE skipped: valgrind not installed"; exit 0; } ;;
perf) command -v perf >/dev/null || { echo "PROFILE skipped: perf not installed"; exit 0; } ;;
*) die "PROFILE must be callgrind, perf or none" ;;
esac
# A topic of its own (created with the others) with PROFILE_N events.
"$producer" -b "$bs" -t "$ptopic" "${sim[@]}" --events "$profile_n" 2>>"$work/producer.log"
topic=$ptopic partitions=$pparts n=$profile_n
[ "$(topic_offsets -1)" = "$n" ] || die "profile topic: want $n messages"
[ "$(topic_offsets -2)" = 0 ] || die "profile topic lost messages: lower PROFILE_N"
set +o pipefail # head closes the pipes early
flush_interval=${PROFILE_FLUSH_INTERVAL:-1s}
case $profile in
callgrind)
	run_processor profile "bench-profile-$$" valgrind --tool=callgrind \
		--callgrind-out-file="$work/callgrind.out" --trace-children=no
	echo "PROFILE callgrind, $n events: top functions by own instructions (Ir), whole process"
	callgrind_annotate --inclusive=no "$work/callgrind.out" 2>/dev/null |
		sed -n '/^-*$/,$p' | grep -E '^ *[0-9,]+ ' | head -n 25
	echo "PROFILE callgrind: inclusive, the processor's loop"
	callgrind_annotate --inclusive=yes "$work/callgrind.out" 2>/dev/null |
		grep -E 'handle_message|partition_process|cw_event_decode|session_on_event|pg_sink_flush|partition_prepare_flush|rd_kafka_consumer_poll|users_get|minute_stats_add|partition_check_and_process|partition_reschedule|fire_timers|intern_id|after_commit|publish_abandonment' |
		head -n 20
	[ -n "${CALLGRIND_KEEP:-}" ] && cp "$work/callgrind.out" "$CALLGRIND_KEEP"
	;;
perf)
	run_processor profile "bench-profile-$$" perf record -q -e cpu-clock -F 2000 -g \
		-o "$work/perf.data"
	echo "PROFILE perf cpu-clock, $n events: top symbols (self)"
	perf report -i "$work/perf.data" --no-children --stdio --sort dso,sym 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 25
	;;
esac
exit 0
