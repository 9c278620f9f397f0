/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon — the processor's main loop, Kafka side and flush cycle.
 * See daemon.h.
 */
#include "daemon.h"
#include "cw_time.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cw_event.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_schema.h"
#include "cw_validate.h"
#include "intern.h"
#include "flusher.h"
#include "metrics.h"
#include "outbox.h"
#include "pack.h"
#include "partition.h"
#include "housekeeping.h"
#include "pg_sink.h"

/* Flushes run on this many threads and connections, each for the
 * partitions whose id modulo FLUSH_CONNECTIONS is its index: each partition
 * still commits in one transaction, and PostgreSQL works on more than one core
 * (+15-19% in bench-processor on 2 cores, bench/README.md). */
#define FLUSH_CONNECTIONS 2

#define POLL_BATCH 10000 /* messages per loop round at most */
#define TICK_MS	   100
/* While a flush runs: how long an idle poll waits at most, and how many
 * messages between looks at the flush and the producer's delivery
 * reports, so a commit is published (and its acknowledgement seen) within
 * milliseconds rather than at the next tick. */
#define FLUSH_WAIT_MS	  10
#define POLL_CHECK_EVERY  128
#define STATS_INTERVAL_MS 10000
#define BACKOFF_MIN_MS	  200
#define BACKOFF_MAX_MS	  10000

struct daemon {
	const struct processor_config *cfg;
	volatile sig_atomic_t *stop;
	struct session_params sp;
	struct intern *intern;
	struct cw_schema_set *schemas; /* known writer schemas */
	char owner[128];

	rd_kafka_t *consumer;
	rd_kafka_t *producer; /* abandonments and dead letters */
	struct pg_sink *sink;

	/* Owned partitions by id; NULL when not owned. */
	struct partition **parts;
	int32_t n_parts;

	walltime_t next_tick, next_stats;
	int64_t backoff_ms;
	bool paused;	 /* consumption paused (PostgreSQL or memory) */
	bool kafka_down; /* brokers unreachable: no idle watermarks */
	int fatal;	 /* set by callbacks: leave the loop with it */

	/* Flushes run on their own threads with their own connections (see
	 * FLUSH_CONNECTIONS); the sink above serves the poll thread (claims,
	 * loads, status). */
	struct flusher *flushers[FLUSH_CONNECTIONS];
	/* Partitions ahead, old ones dropped: its own thread and connection
	 * (housekeeping.h), never on the flush path. */
	struct housekeeping *housekeeping;
	struct batch **flush_batches[FLUSH_CONNECTIONS];
	size_t cap_flush_batches[FLUSH_CONNECTIONS];
	size_t flush_partitions[FLUSH_CONNECTIONS];
	/* Per connection, of the flush in flight: when it was sealed and
	 * when its oldest abandonment was found (0: none), for the debug
	 * log of every flush. */
	walltime_t flush_sealed_ms[FLUSH_CONNECTIONS];
	walltime_t flush_oldest_ms[FLUSH_CONNECTIONS];
	/* Why it was sealed: "interval", "retry", "abandonment" (see
	 * abandonment_due()), "caught_up" (caught_up_due()) or "drain" (a
	 * rebalance or the stop, flush()). */
	const char *flush_why[FLUSH_CONNECTIONS];
	/* Per connection: its last flush failed and waits for a retry. */
	bool flush_failed[FLUSH_CONNECTIONS];
	/* Per connection: when its batches are sealed at the latest (the
	 * flush interval after its last seal, or the retry after a failure);
	 * a connection busy at that time seals as soon as it is free. */
	walltime_t next_flush[FLUSH_CONNECTIONS];
	/* Per connection: a decaying maximum of its recent flush durations,
	 * the flush time an abandonment sealed now should expect (see
	 * abandonment_due()). */
	int64_t flush_est_ms[FLUSH_CONNECTIONS];
	/* Until when the rebalance callback in progress may keep retrying
	 * claims (see take_budget_ms()). */
	walltime_t take_deadline;
	walltime_t next_kafka_probe;

	/* Abandonments and dead letters on their way to the broker. A
	 * partition with a dead letter not yet acknowledged is not sealed,
	 * so its offset is not committed (flush_submit()). */
	struct outbox *outbox;

	struct daemon_counters c;
	uint64_t messages_at_last_stats;

	/* Metrics: NULL when --metrics-addr is empty. The snapshot lives
	 * across ticks because its flush histogram accumulates. */
	struct metrics *metrics;
	struct metrics_snapshot *snap;
	struct partition_counters retired; /* of partitions given up */
	bool pg_ok;
	char pg_reason[128];
	/* Partitions set aside after a permanent PostgreSQL error (see
	 * partition_quarantine()), the reason of the latest. */
	int32_t quarantined[64];
	int n_quarantined;
	char quarantine_reason[128];
	/* The latest offset gap (records lost to retention), shown on
	 * /healthz until gap_shown_until. */
	char gap_reason[112];
	walltime_t gap_shown_until;

	/* processor_status: written after a flush, at most once a second. */
	etime_t started_at;
	walltime_t last_status;
	uint64_t messages_at_last_status;
};

/* The real-time clock, only to compare with event times (watermark delay). */
static etime_t epoch_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (etime_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Note a PostgreSQL failure for health and metrics. */
static void pg_failed(struct daemon *d)
{
	d->c.pg_errors++;
	d->pg_ok = false;
	pg_sink_last_reason(d->sink, d->pg_reason, sizeof(d->pg_reason));
}

/* Forget quarantined partitions that were taken again since (a rebalance
 * assigned them anew: they are consumed again) or that this processor no
 * longer has (their next owner meets the error). Poll thread. */
static void quarantine_prune(struct daemon *d)
{
	rd_kafka_topic_partition_list_t *assigned = NULL;
	int k = 0;

	if (!d->n_quarantined)
		return;
	if (rd_kafka_assignment(d->consumer, &assigned))
		assigned = NULL;
	for (int i = 0; i < d->n_quarantined; i++) {
		int32_t id = d->quarantined[i];
		if (id < d->n_parts && d->parts[id])
			continue;
		if (assigned && !rd_kafka_topic_partition_list_find(
					assigned, d->cfg->topic, id))
			continue;
		d->quarantined[k++] = id;
	}
	d->n_quarantined = k;
	if (assigned)
		rd_kafka_topic_partition_list_destroy(assigned);
}

/* Fill the snapshot from the counters and partitions and hand it to the
 * HTTP thread. Poll thread only. */
static void publish_metrics(struct daemon *d)
{
	struct metrics_snapshot *s = d->snap;
	struct partition_counters pc = d->retired;
	etime_t wall = epoch_ms();
	int64_t lo, hi;
	int32_t stuck; /* a partition stopped by offset_lost_stop(), or -1 */

	if (!d->metrics)
		return;
	s->users = s->open_carts = s->open_sessions = 0;
	s->open_value.n = 0;
	s->assigned_partitions = s->n_partitions = 0;
	s->partitions_watermark_ahead = 0;
	stuck = -1;
	for (int32_t i = 0; i < d->n_parts; i++) {
		struct partition *pt = d->parts[i];
		if (!pt)
			continue;
		for (int k = 0; k < CW_EVENT_TYPE_COUNT; k++)
			pc.events[k] += pt->counters.events[k];
		pc.late_events += pt->counters.late_events;
		pc.carts_expired += pt->counters.carts_expired;
		pc.recovered += pt->counters.recovered;
		s->users += pt->n_users;
		s->open_carts += pt->n_open_carts;
		s->open_sessions += pt->n_open_sessions;
		open_value_rows_add(&s->open_value, &pt->open_value, d->intern);
		s->assigned_partitions++;
		s->partitions_watermark_ahead += pt->watermark_ahead;
		if (pt->offset_lost && stuck < 0)
			stuck = pt->id;
		if (s->n_partitions == METRICS_MAX_PARTITIONS)
			continue;
		struct metrics_partition *mp =
			&s->partitions[s->n_partitions++];
		mp->id = pt->id;
		mp->next_offset = pt->next_offset;
		mp->lag = -1;
		/* Cached high watermark: does not block. */
		if (pt->next_offset >= 0 &&
		    !rd_kafka_get_watermark_offsets(d->consumer, d->cfg->topic,
						    pt->id, &lo, &hi) &&
		    hi >= 0)
			mp->lag =
				hi > pt->next_offset ? hi - pt->next_offset : 0;
		mp->watermark_delay_s =
			pt->watermark_ms == ETIME_NONE
				? NAN
				: (double)(wall - pt->watermark_ms) / 1000.0;
	}
	for (int k = 0; k < CW_EVENT_TYPE_COUNT; k++)
		s->events[k] = pc.events[k];
	s->late_events = pc.late_events;
	s->carts_expired = pc.carts_expired;
	s->recovered = pc.recovered;
#define COPY_COUNTER(name) s->name = d->c.name;
	METRICS_DAEMON_COUNTERS(COPY_COUNTER)
#undef COPY_COUNTER
	/* A quarantined partition is work PostgreSQL does not accept. */
	quarantine_prune(d);
	s->quarantined_partitions = (uint64_t)d->n_quarantined;
	s->pg_ok = d->pg_ok && !d->n_quarantined;
	s->consuming = !d->paused && !*d->stop && !d->kafka_down && stuck < 0;
	if (d->kafka_down)
		snprintf(s->health_reason, sizeof(s->health_reason),
			 "kafka unreachable");
	else if (!d->pg_ok)
		snprintf(s->health_reason, sizeof(s->health_reason), "%s",
			 d->pg_reason[0] ? d->pg_reason : "postgresql error");
	else if (d->n_quarantined)
		snprintf(s->health_reason, sizeof(s->health_reason), "%s",
			 d->quarantine_reason);
	else if (d->paused && outbox_waiting(d->outbox))
		snprintf(s->health_reason, sizeof(s->health_reason),
			 "paused: %zu records wait to be produced again (Kafka "
			 "refused them)",
			 outbox_waiting(d->outbox));
	else if (d->paused)
		snprintf(s->health_reason, sizeof(s->health_reason),
			 "paused: too many records wait for PostgreSQL");
	else if (*d->stop)
		snprintf(s->health_reason, sizeof(s->health_reason),
			 "stopping");
	else if (stuck >= 0)
		snprintf(s->health_reason, sizeof(s->health_reason),
			 "partition %d stopped: its next offset left the log "
			 "(auto.offset.reset=error)",
			 stuck);
	else if (d->gap_reason[0] && cw_mono_ms() < d->gap_shown_until)
		snprintf(s->health_reason, sizeof(s->health_reason), "%s",
			 d->gap_reason);
	else
		s->health_reason[0] = '\0';
	metrics_publish(d->metrics, s);
}

/* ---- Kafka clients ---------------------------------------------------- */

/* The consumer's and the producer's settings that -X may change. */
static const struct cw_kafka_prop producer_defaults[] = {
	{"enable.idempotence", "true"},
	{"linger.ms", "5"},
	{NULL, NULL},
};
/* queued.min.messages: librdkafka before 2.2 (bookworm has 2.0.2) stops
 * fetching for a fixed second once this many records wait in the
 * consumer's queue (one queue for all partitions of a group consumer).
 * At its default of 100,000 the processor drained the queue in ~0.3 s and
 * then waited: ~120k events/s from assignment. 300,000 lasts about the
 * second: ~270k events/s, peak RSS 278 -> 474 MB with 200k users
 * (bench/README.md, "the consumer's queue"). Lower it with -X to trade
 * catch-up speed for memory. */
static const struct cw_kafka_prop consumer_defaults[] = {
	{"auto.offset.reset", "earliest"},
	{"fetch.wait.max.ms", "100"},
	{"queued.min.messages", "300000"},
	{NULL, NULL},
};

/* Client-level errors (the poll thread). When the brokers cannot be
 * reached, silence is not idleness: idle watermarks stop until a probe
 * shows the cluster is back. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct daemon *d = opaque;

	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
	    err == RD_KAFKA_RESP_ERR__TRANSPORT ||
	    err == RD_KAFKA_RESP_ERR__RESOLVE) {
		if (!d->kafka_down)
			cw_warn("Kafka unreachable; idle watermarks held",
				"error=\"%s\"", reason);
		d->kafka_down = true;
		return;
	}
	cw_warn("Kafka client error", "error=\"%s\" detail=\"%s\"",
		rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

/* While Kafka is marked down, ask for metadata (briefly, at most once a
 * second); when it answers, restart every partition's idle clock. */
static void probe_kafka(struct daemon *d, walltime_t now)
{
	const struct rd_kafka_metadata *md;

	if (!d->kafka_down || now < d->next_kafka_probe)
		return;
	d->next_kafka_probe = now + 1000;
	if (rd_kafka_metadata(d->consumer, 0, NULL, &md, 200) != 0)
		return;
	rd_kafka_metadata_destroy(md);
	d->kafka_down = false;
	now = cw_mono_ms();
	for (int32_t i = 0; i < d->n_parts; i++)
		if (d->parts[i])
			partition_reset_idle(d->parts[i], now);
	cw_info("Kafka reachable again", NULL);
}

/* The producer's delivery reports (rd_kafka_poll(), poll thread). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	struct daemon *d = opaque;

	(void)rk;
	outbox_on_delivery(d->outbox, m);
}

/* ---- partitions: assignment, restore, fencing ------------------------- */

struct restore_ctx {
	struct daemon *d;
	struct partition *pt;
	uint64_t users, bad; /* records applied, unreadable */
};

/* Before the state chunks are applied: size the user table for as many
 * users as they hold records (at most twice the live users, as the
 * compaction rule bounds the chunks since the last snapshot). A table
 * that cannot be sized simply grows as users come. */
static int restore_size_cb(void *opaque, uint64_t records)
{
	struct restore_ctx *rc = opaque;

	partition_reserve_users(rc->pt, rc->pt->n_users + records);
	return 0;
}

/* One record of the partition's state chunks, in order: a state (restore
 * or replace the user) or a deletion (state NULL). */
static int restore_user_cb(void *opaque, const char *user_id,
			   const uint8_t *state, size_t len)
{
	struct restore_ctx *rc = opaque;
	int r = partition_restore_user(rc->pt, user_id, state, len);
	if (r == -EBADMSG) {
		/* Written by a newer or broken version: refuse to guess. */
		rc->bad++;
		cw_error("unreadable user state", "partition=%d user=%s",
			 rc->pt->id, user_id);
		return -EBADMSG;
	}
	rc->users++;
	return r;
}

/* An outbox chunk left by an earlier owner: publish its records again. */
static int outbox_cb(void *opaque, const char *chunk_id, const uint8_t *chunk,
		     size_t len)
{
	struct restore_ctx *rc = opaque;
	struct pack_reader pr = pack_reader_init(chunk, len);
	struct outbox_ref *ref = outbox_chunk_new(chunk_id, 0);
	const uint8_t *key, *val;
	size_t klen, vlen;
	int r;

	if (!ref)
		return -ENOMEM;
	while ((r = pack_next(&pr, &key, &klen, &val, &vlen)) > 0 && val)
		outbox_publish(rc->d->outbox, ref, (const char *)key, klen, val,
			       vlen, -1);
	if (r != 0) {
		/* Not ours to fix: leave the row, say which one. */
		outbox_chunk_unreadable(ref);
		cw_error("unreadable outbox chunk, left in place",
			 "partition=%d outbox_chunk=%s", rc->pt->id, chunk_id);
	}
	outbox_chunk_done(rc->d->outbox, ref);
	return 0;
}

/* A partition restored with a watermark beyond the clock-skew bound was
 * poisoned by a far-future event before that bound existed: every later
 * event of it would count as late and close its session at once. Report
 * it with the remedy, or repair it with --repair-future-watermarks.
 * Returns 0 or -ENOMEM. */
static int check_watermark(struct daemon *d, struct partition *pt)
{
	etime_t wall = epoch_ms();
	int64_t dropped;

	/* A watermark written by a processor that bounds event time is the
	 * partition's own progress (a simulation may run far ahead). */
	if (pg_sink_watermark_checked(d->sink) ||
	    !partition_watermark_ahead(pt, wall))
		return 0;
	if (!d->cfg->repair_future_watermarks) {
		pt->watermark_ahead = true;
		cw_error("partition watermark is beyond --max-clock-skew: the "
			 "partition is held (its records wait in Kafka, "
			 "nothing is written for it); restart with "
			 "--repair-future-watermarks to set the watermark back "
			 "to the wall clock (committed results are kept)",
			 "partition=%d watermark_ms=%" PRId64
			 " bound_ms=%" PRId64,
			 pt->id, pt->watermark_ms, wall + d->sp.max_ahead_ms);
		return 0;
	}
	etime_t was = pt->watermark_ms;
	if ((dropped = partition_repair_watermark(pt, wall)) < 0)
		return (int)dropped;
	cw_warn("partition watermark repaired: set back to the wall clock",
		"partition=%d watermark_ms=%" PRId64 " now_ms=%" PRId64
		" users_dropped=%" PRId64,
		pt->id, was, wall, dropped);
	return 0;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* How long one rebalance callback may retry claims while PostgreSQL
 * fails: half of max.poll.interval.ms (librdkafka's default: 300 s). The
 * callback runs inside rd_kafka_consumer_poll(), so blocking longer would
 * get this member expelled from the group with partitions it half took;
 * instead it gives up and exits with a clear error (see partition_take()):
 * a restarted processor waits for PostgreSQL before it joins the group
 * again, and the other members keep the partitions meanwhile. */
static int64_t take_budget_ms(const struct processor_config *cfg)
{
	const char *v = cw_kv_get(&cfg->kafka_props, "max.poll.interval.ms");
	long long ms = v ? strtoll(v, NULL, 10) : 300000;

	return (ms > 0 ? ms : 300000) / 2;
}

/* Claim and restore partition @id. Retries with backoff while PostgreSQL
 * is unreachable, until d->take_deadline (take_budget_ms()): then it sets
 * d->fatal to -ETIMEDOUT. Returns the partition, or NULL when stopping,
 * out of time, or on a persistent error. *@offset receives the offset to
 * start at. */
static struct partition *partition_take(struct daemon *d, int32_t id,
					int64_t *offset)
{
	int64_t backoff = BACKOFF_MIN_MS;

	while (!*d->stop && !d->fatal) {
		int64_t gen, next, wm;
		uint64_t log_bytes = 0;
		struct partition *pt;
		struct restore_ctx rc = {d, NULL, 0, 0};
		walltime_t t0 = cw_mono_ms();
		int r;

		r = pg_sink_claim_partition(d->sink, id, d->owner, &gen, &next,
					    &wm);
		if (r == 0) {
			pt = partition_new(id, &d->sp, d->intern);
			if (!pt)
				return NULL;
			pt->generation = gen;
			rc.pt = pt;
			r = pg_sink_load_users(d->sink, id, restore_user_cb,
					       restore_size_cb, &rc,
					       &log_bytes);
			if (r == -EBADMSG && !rc.bad)
				cw_error("unreadable state chunk",
					 "partition=%d error=\"%s\"", id,
					 pg_sink_last_error(d->sink));
			if (r == 0) {
				partition_set_state_log(pt, log_bytes);
				pt->next_offset = next;
				pt->watermark_ms = wm == PG_SINK_WATERMARK_NONE
							   ? ETIME_NONE
							   : wm;
				pt->max_event_ms = pt->watermark_ms;
				r = check_watermark(d, pt);
				/* Republish what the broker never
				 * acknowledged (consumers de-duplicate). */
				if (r == 0)
					r = pg_sink_load_outbox(d->sink, id,
								outbox_cb, &rc);
			}
			if (r == 0) {
				d->pg_ok = true;
				*offset = next == PG_SINK_OFFSET_NONE
						  ? RD_KAFKA_OFFSET_BEGINNING
						  : next;
				cw_info("partition assigned",
					"partition=%d generation=%" PRId64
					" offset=%" PRId64 " users=%" PRIu32
					" state_records=%" PRIu64
					" state_bytes=%" PRIu64
					" restore_ms=%" PRId64,
					id, gen, next, pt->n_users, rc.users,
					log_bytes, cw_mono_ms() - t0);
				return pt;
			}
			partition_destroy(pt);
			if (r == -ENOMEM || r == -EBADMSG)
				return NULL;
		}
		pg_failed(d);
		d->c.pg_retries++;
		publish_metrics(d);
		if (cw_mono_ms() + backoff > d->take_deadline) {
			cw_error("cannot take partition within half of "
				 "max.poll.interval.ms; exiting before the "
				 "group expels this member",
				 "partition=%d error=\"%s\"", id,
				 pg_sink_last_error(d->sink));
			d->fatal = -ETIMEDOUT;
			return NULL;
		}
		cw_warn("cannot take partition, retrying",
			"partition=%d error=\"%s\" retry_ms=%" PRId64, id,
			pg_sink_last_error(d->sink), backoff);
		sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
						       : backoff * 2;
	}
	return NULL;
}

static void partition_drop(struct daemon *d, int32_t id)
{
	struct partition *pt;

	if (id < 0 || id >= d->n_parts || !d->parts[id])
		return;
	pt = d->parts[id];
	/* Keep the counters monotonic across revocations. */
	for (int k = 0; k < CW_EVENT_TYPE_COUNT; k++)
		d->retired.events[k] += pt->counters.events[k];
	d->retired.late_events += pt->counters.late_events;
	d->retired.carts_expired += pt->counters.carts_expired;
	d->retired.recovered += pt->counters.recovered;
	partition_destroy(pt);
	d->parts[id] = NULL;
}

static int flush(struct daemon *d, bool final);
static void pause_after_assign(struct daemon *d);

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct daemon *d = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		d->take_deadline = cw_mono_ms() + take_budget_ms(d->cfg);
		for (int i = 0; i < parts->cnt; i++) {
			rd_kafka_topic_partition_t *tp = &parts->elems[i];
			int32_t id = tp->partition;
			int64_t offset = RD_KAFKA_OFFSET_BEGINNING;

			if (id >= d->n_parts) {
				struct partition **np =
					realloc(d->parts,
						(size_t)(id + 1) * sizeof(*np));
				if (!np) {
					d->fatal = -ENOMEM;
					continue;
				}
				memset(np + d->n_parts, 0,
				       (size_t)(id + 1 - d->n_parts) *
					       sizeof(*np));
				d->parts = np;
				d->n_parts = id + 1;
			}
			partition_drop(d, id);
			d->parts[id] = partition_take(d, id, &offset);
			tp->offset = offset;
			if (!d->parts[id] && !*d->stop && !d->fatal) {
				/* Unreadable state or no memory: do not run
				 * without the partition, stop and say so. */
				cw_error("cannot restore partition; stopping",
					 "partition=%d", id);
				d->fatal = -EIO;
			}
		}
		rd_kafka_assign(rk, parts);
		pause_after_assign(d);
	} else {
		/* Commit what we have for the partitions we give up, then
		 * forget them: the next owner resumes from PostgreSQL. If
		 * the flush fails, uncommitted work is simply redone there.
		 * Dead letters in flight get a moment to be acknowledged
		 * first, or their partitions do not commit past them. */
		outbox_settle(d->outbox, 5000);
		if (flush(d, true) < 0)
			cw_warn("final flush before revocation failed; the "
				"next owner redoes the uncommitted part",
				"error=\"%s\"", d->pg_reason);
		for (int i = 0; i < parts->cnt; i++) {
			partition_drop(d, parts->elems[i].partition);
			cw_info("partition revoked", "partition=%d",
				parts->elems[i].partition);
		}
		rd_kafka_assign(rk, NULL);
	}
}

/* ---- processing --------------------------------------------------------- */

#define GAP_SHOWN_MS (15 * 60 * 1000) /* on /healthz after an offset gap */

/* A record arrived past the partition's next offset @pt->next_offset.
 * Unless the offsets in between are still in the log (transaction markers
 * and compaction take offsets without records), their records were lost:
 * retention removed them while this group did not read, and
 * auto.offset.reset jumped over them with only a librdkafka warning.
 * Count the gap and the records, log the range as an error and show it on
 * /healthz for GAP_SHOWN_MS; consumption goes on. Poll thread. */
static void offset_gap_check(struct daemon *d, const struct partition *pt,
			     const rd_kafka_message_t *m)
{
	int64_t lo = -1, hi = -1, lost;

	if (pt->next_offset < 0 || m->offset <= pt->next_offset)
		return;
	/* The cached log start first (from fetch responses); asking the
	 * broker blocks, but only on this rare path. */
	if (rd_kafka_get_watermark_offsets(d->consumer, d->cfg->topic, pt->id,
					   &lo, &hi) ||
	    lo < 0)
		if (rd_kafka_query_watermark_offsets(d->consumer, d->cfg->topic,
						     pt->id, &lo, &hi, 1000))
			lo = -1; /* unknown: report it, better than not */
	if (lo >= 0 && lo <= pt->next_offset)
		return;
	lost = m->offset - pt->next_offset;
	d->c.offset_gaps++;
	d->c.offset_gap_records += (uint64_t)lost;
	snprintf(d->gap_reason, sizeof(d->gap_reason),
		 "records lost: partition %d offsets %" PRId64 "-%" PRId64
		 " left the log unread",
		 pt->id, pt->next_offset, m->offset - 1);
	d->gap_shown_until = cw_mono_ms() + GAP_SHOWN_MS;
	cw_error("offset gap: records left the log before they were "
		 "processed, skipped",
		 "partition=%d first_lost=%" PRId64 " last_lost=%" PRId64
		 " records=%" PRId64 " log_start=%" PRId64,
		 pt->id, pt->next_offset, m->offset - 1, lost, lo);
}

/* The consumer stopped partition @pt: its next offset is out of range
 * (retention removed the records) and auto.offset.reset=error forbids a
 * jump. The records are lost either way; say so loudly, count the gap
 * and keep /healthz at 503 until an operator decides (restart with
 * auto.offset.reset=earliest to skip them). Poll thread. */
static void offset_lost_stop(struct daemon *d, struct partition *pt,
			     const rd_kafka_message_t *m)
{
	if (pt->offset_lost)
		return;
	pt->offset_lost = true;
	d->c.offset_gaps++;
	cw_error("partition stopped: its next offset is no longer in the log "
		 "and auto.offset.reset=error; the records before the log "
		 "start are lost (restart with -X auto.offset.reset=earliest "
		 "to skip them)",
		 "partition=%d next_offset=%" PRId64 " error=\"%s\"", pt->id,
		 pt->next_offset, rd_kafka_message_errstr(m));
}

/* Refuse record @m of @pt (dead letter, counted) and move past it. */
static void refuse(struct daemon *d, struct partition *pt,
		   const rd_kafka_message_t *m, uint64_t *counter,
		   const char *why, const char *const *extra)
{
	(*counter)++;
	outbox_dead_letter(d->outbox, m, why, extra);
	pt->next_offset = m->offset + 1;
}

/* Known writer schemas: schemas/history, then --schema-dir. Returns 0 or
 * -errno with the reason in @errstr. */
static int schemas_load(struct daemon *d, char *errstr, size_t errstr_size)
{
	size_t usable = 0, refused = 0;
	int r;

	if ((r = cw_schema_set_new(NULL, false, &d->schemas, errstr,
				   errstr_size)) ||
	    (r = cw_schema_set_add_history(d->schemas, errstr, errstr_size)))
		return r;
	if (d->cfg->schema_dir && *d->cfg->schema_dir &&
	    (r = cw_schema_set_add_dir(d->schemas, d->cfg->schema_dir, errstr,
				       errstr_size)))
		return r;
	cw_schema_set_counts(d->schemas, &usable, &refused);
	cw_info("writer schemas loaded", "usable=%zu refused=%zu", usable,
		refused);
	if (refused)
		cw_warn("some writer schemas cannot be read as today's "
			"cart event; their records are dead-lettered",
			"refused=%zu", refused);
	return 0;
}

static int handle_message(struct daemon *d, rd_kafka_message_t *m,
			  walltime_t now)
{
	struct partition *pt = NULL;
	struct cw_event ev;
	char errstr[256];
	const char *why;
	int r;

	if (m->partition >= 0 && m->partition < d->n_parts)
		pt = d->parts[m->partition];
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (pt)
			partition_note_eof(pt, now);
		return 0;
	}
	if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && pt) {
		offset_lost_stop(d, pt, m);
		return 0;
	}
	if (m->err) {
		cw_warn("consumer error", "error=\"%s\"",
			rd_kafka_message_errstr(m));
		return 0;
	}
	if (!pt || m->offset < pt->next_offset || pt->watermark_ahead)
		return 0; /* fenced, already processed, or held */
	offset_gap_check(d, pt, m);
	d->c.messages++;
	partition_note_message(pt, now);

	r = cw_schema_decode(d->schemas, m->payload, m->len, &ev, errstr,
			     sizeof(errstr));
	if (r < 0) {
		refuse(d, pt, m, &d->c.decode_errors, errstr, NULL);
		return 0;
	}
	if (cw_event_validate(&ev, errstr, sizeof(errstr)) < 0) {
		refuse(d, pt, m, &d->c.invalid_events, errstr, NULL);
		return 0;
	}
	if ((why = cw_event_key_mismatch(m->key, m->key_len, &ev))) {
		refuse(d, pt, m, &d->c.key_mismatches, why, NULL);
		return 0;
	}
	etime_t wall = epoch_ms();
	int refused;
	r = partition_check_and_process(pt, &ev, m->offset, wall, errstr,
					sizeof(errstr), &refused);
	if (r < 0)
		return r;
	r = refused;
	if (r == -ERANGE) {
		char t[24], bound[24];
		bool ahead = ev.event_time_ms > pt->watermark_ms;
		snprintf(t, sizeof(t), "%" PRId64, ev.event_time_ms);
		snprintf(bound, sizeof(bound), "%" PRId64,
			 ahead ? partition_ahead_bound(pt, wall)
			       : pt->watermark_ms);
		const char *extra[] = {"cartwatch.event_time", t,
				       ahead ? "cartwatch.bound"
					     : "cartwatch.watermark",
				       bound, NULL};
		refuse(d, pt, m,
		       ahead ? &d->c.events_ahead : &d->c.events_too_old,
		       errstr, extra);
		return 0;
	}
	if (r == -EALREADY) {
		/* A retry of an event applied already: no error, no dead
		 * letter; counted. */
		d->c.duplicate_events++;
		pt->next_offset = m->offset + 1;
		return 0;
	}
	if (r == -ENOSPC) {
		refuse(d, pt, m, &d->c.intern_full_events, errstr, NULL);
		return 0;
	}
	if (r < 0)
		refuse(d, pt, m, &d->c.cart_limit_events, errstr, NULL);
	return 0;
}

/* Pause or resume every partition of the current assignment, whatever
 * d->paused says, and record the new state. On resume every partition's
 * idle clock restarts: the silence of a pause was not idleness (idle
 * watermarks are held while paused, see housekeeping()). Returns 0, or
 * the librdkafka error after which d->paused is left unchanged. */
static int pause_apply(struct daemon *d, bool pause)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_resp_err_t err;
	walltime_t now = cw_mono_ms();

	if ((err = rd_kafka_assignment(d->consumer, &parts)) || !parts) {
		cw_error("cannot read the assignment to pause or resume it",
			 "error=\"%s\"", rd_kafka_err2str(err));
		return -EIO;
	}
	err = pause ? rd_kafka_pause_partitions(d->consumer, parts)
		    : rd_kafka_resume_partitions(d->consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err) {
		cw_error(pause ? "cannot pause consumption"
			       : "cannot resume consumption",
			 "error=\"%s\"", rd_kafka_err2str(err));
		return -EIO;
	}
	if (d->paused != pause)
		cw_info(pause ? "consumption paused" : "consumption resumed",
			NULL);
	if (!pause)
		for (int32_t i = 0; i < d->n_parts; i++)
			if (d->parts[i])
				partition_reset_idle(d->parts[i], now);
	d->paused = pause;
	return 0;
}

/* Pause or resume every assigned partition. */
static void set_paused(struct daemon *d, bool pause)
{
	if (d->paused != pause)
		pause_apply(d, pause);
}

/* Whether a flush connection still waits to retry a failed flush: a
 * connection whose partitions have no sealed batch left (they committed at
 * the revocation, or were revoked) has nothing to retry, so its failure
 * flag is cleared here. Poll thread. */
static bool flush_failing(struct daemon *d)
{
	bool failing = false;

	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++) {
		bool work = false;
		for (int32_t i = fk; i < d->n_parts; i += FLUSH_CONNECTIONS)
			work |= d->parts[i] && d->parts[i]->sealed;
		if (!work)
			d->flush_failed[fk] = false;
		failing |= d->flush_failed[fk];
	}
	return failing;
}

static size_t pending_records(const struct daemon *d);

/* After rd_kafka_assign(): librdkafka keeps an application pause across a
 * re-assignment and newly assigned partitions start unpaused, so the pause
 * is applied again to the whole assignment as the daemon's state says:
 * still paused while a flush connection waits to retry or too much waits
 * for PostgreSQL, else resumed (explicitly). Rebalance callback. */
static void pause_after_assign(struct daemon *d)
{
	bool pause = flush_failing(d) ||
		     pending_records(d) > (size_t)d->cfg->max_pending;

	if (!pause && d->paused)
		d->backoff_ms = BACKOFF_MIN_MS;
	if (pause_apply(d, pause) < 0)
		d->fatal = -EIO; /* a pause state we cannot know: restart */
}

/* Record this processor's status in PostgreSQL for dashboards: after a
 * successful flush, at most once a second. Failures are only logged. */
static void write_status(struct daemon *d, double flush_ms, bool force)
{
	walltime_t now = cw_mono_ms();
	struct pg_sink_status st = {0};
	struct open_value_rows ov = {0};
	char parts[2048];
	size_t n = 0;
	int64_t lo, hi;

	if (!force && now - d->last_status < 1000)
		return;
	st.instance = d->owner;
	st.started_at_ms = d->started_at;
	st.watermark_ms = PG_SINK_WATERMARK_NONE;
	n += (size_t)snprintf(parts, sizeof(parts), "{");
	for (int32_t i = 0; i < d->n_parts; i++) {
		struct partition *pt = d->parts[i];
		if (!pt)
			continue;
		if (n < sizeof(parts) - 16)
			n += (size_t)snprintf(parts + n, sizeof(parts) - n,
					      "%s%d", n > 1 ? "," : "", pt->id);
		st.users += pt->n_users;
		st.open_carts += pt->n_open_carts;
		st.open_sessions += pt->n_open_sessions;
		open_value_rows_add(&ov, &pt->open_value, d->intern);
		if (pt->watermark_ms != ETIME_NONE &&
		    (st.watermark_ms == PG_SINK_WATERMARK_NONE ||
		     pt->watermark_ms < st.watermark_ms))
			st.watermark_ms = pt->watermark_ms;
		if (pt->next_offset >= 0 &&
		    !rd_kafka_get_watermark_offsets(d->consumer, d->cfg->topic,
						    pt->id, &lo, &hi) &&
		    hi > pt->next_offset)
			st.consumer_lag += hi - pt->next_offset;
	}
	snprintf(parts + n, sizeof(parts) - n, "}");
	st.partitions = parts;
	st.open_value = &ov;
	st.events_total = (int64_t)d->c.messages;
	if (d->last_status && now > d->last_status)
		st.events_per_second =
			(double)(d->c.messages - d->messages_at_last_status) *
			1000.0 / (double)(now - d->last_status);
	st.dead_letters = (int64_t)d->c.dlq_records;
	st.last_flush_ms = flush_ms;
	if (pg_sink_write_status(d->sink, &st) < 0)
		cw_debug("status not written", "error=\"%s\"",
			 pg_sink_last_error(d->sink));
	d->last_status = now;
	d->messages_at_last_status = d->c.messages;
}

/* Publish the committed abandonments, time them from detection to
 * @committed_ms (the flusher's cw_mono_ms() at commit), tell Kafka the
 * offsets (for lag monitoring only) and recycle the batches. */
static void after_commit(struct daemon *d, int fk, int64_t committed_ms)
{
	rd_kafka_topic_partition_list_t *offsets =
		rd_kafka_topic_partition_list_new(8);

	for (int32_t i = 0; i < d->n_parts; i++) {
		struct partition *pt = d->parts[i];
		if (!pt || !pt->sealed || i % FLUSH_CONNECTIONS != fk)
			continue;
		struct batch *b = pt->sealed;
		struct outbox_ref *ref =
			b->abandonments.n
				? outbox_chunk_new(
					  b->abandonments.v[0].abandonment_id,
					  b->abandonments.n)
				: NULL;
		for (size_t k = 0; k < b->abandonments.n; k++)
			metrics_commit_latency_observe(
				d->snap,
				(double)(committed_ms -
					 b->abandonments.v[k].detected_ms) /
					1000.0);
		/* Without memory for the ref the chunk stays in the outbox
		 * and is published by the partition's next owner. */
		for (size_t k = 0; ref && k < b->abandonments.n; k++) {
			const struct batch_abandonment *a =
				&b->abandonments.v[k];
			if (a->avro)
				outbox_publish(d->outbox, ref, a->user_id,
					       strlen(a->user_id), a->avro,
					       a->avro_len, a->detected_ms);
		}
		if (ref)
			outbox_chunk_done(d->outbox, ref);
		if (b->next_offset >= 0)
			rd_kafka_topic_partition_list_add(offsets,
							  d->cfg->topic, i)
				->offset = b->next_offset;
		d->c.abandonments += b->abandonments.n;
		d->c.conversions += b->conversions.n;
		partition_flush_done(pt);
	}
	if (offsets->cnt)
		rd_kafka_commit(d->consumer, offsets, 1);
	rd_kafka_topic_partition_list_destroy(offsets);
}

/* Whether flush_submit() takes partition @i when its connection flushes:
 * a batch sealed earlier is retried as it is; an open batch is sealed,
 * unless the partition is held (watermark ahead: it writes nothing, not
 * even the mark that its watermark was checked) or a dead letter of it
 * waits for the broker's acknowledgement (the batch must not commit
 * offsets past it; it is sealed at a later round). The early-seal rules
 * (abandonment_due(), caught_up_due()) ask it too, so that they only
 * count what a seal would take. Poll thread. */
static bool flush_takes(const struct daemon *d, int32_t i)
{
	const struct partition *pt = d->parts[i];

	return pt && !pt->watermark_ahead &&
	       (pt->sealed || !outbox_dlq_pending(d->outbox, i));
}

/* Seal every partition's batch and hand them to the flush thread (first
 * deleting acknowledged outbox rows). Returns 0 (also when there was
 * nothing to flush: then no job is in flight) or -ENOMEM. */
static int flush_submit(struct daemon *d, int fk)
{
	size_t n = 0;
	walltime_t oldest = 0;
	int r;

	if (flusher_busy(d->flushers[fk]))
		return 0;
	const char **ids;
	size_t n_ids = outbox_acked(d->outbox, &ids);
	if (n_ids) {
		r = pg_sink_outbox_delete(d->sink, ids, n_ids);
		free(ids);
		if (r == 0)
			outbox_acked_clear(d->outbox);
		else
			pg_failed(d);
	}
	if ((size_t)d->n_parts > d->cap_flush_batches[fk]) {
		struct batch **b = realloc(d->flush_batches[fk],
					   (size_t)d->n_parts * sizeof(*b));
		if (!b)
			return -ENOMEM;
		d->flush_batches[fk] = b;
		d->cap_flush_batches[fk] = (size_t)d->n_parts;
	}
	for (int32_t i = 0; i < d->n_parts; i++) {
		struct partition *pt = d->parts[i];
		if (i % FLUSH_CONNECTIONS != fk || !flush_takes(d, i))
			continue;
		if ((r = partition_prepare_flush(pt)) < 0)
			return r;
		d->flush_batches[fk][n++] = pt->sealed;
		if (pt->sealed->abandonments.n &&
		    (!oldest ||
		     pt->sealed->abandonments.v[0].detected_ms < oldest))
			oldest = pt->sealed->abandonments.v[0].detected_ms;
	}
	d->flush_partitions[fk] = n;
	d->flush_sealed_ms[fk] = cw_mono_ms();
	d->flush_oldest_ms[fk] = oldest;
	return n ? flusher_submit(d->flushers[fk], d->flush_batches[fk], n) : 0;
}

/* The database no longer holds what this processor committed for @id
 * (-ENOTRECOVERABLE), or holds a batch other than the one retried
 * (-EPROTO): drop the partition, take it again from PostgreSQL (new
 * generation, stored offset and state) and seek the consumer back to the
 * stored offset, so what the database lost is processed again. Poll
 * thread. */
static void partition_retake(struct daemon *d, int32_t id)
{
	rd_kafka_topic_partition_list_t *tpl;
	rd_kafka_error_t *error;
	int64_t offset = RD_KAFKA_OFFSET_BEGINNING;

	partition_drop(d, id);
	d->parts[id] = partition_take(d, id, &offset);
	if (!d->parts[id]) {
		if (!*d->stop && !d->fatal) {
			cw_error("cannot restore partition; stopping",
				 "partition=%d", id);
			d->fatal = -EIO;
		}
		return;
	}
	tpl = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(tpl, d->cfg->topic, id)->offset =
		offset;
	/* No timeout: a seek is local to the client (the fetcher takes the
	 * new position), and librdkafka before 2.1.0 (Debian bookworm ships
	 * 2.0.2) waits a thousandth of the timeout it is given, so 10 s
	 * failed after 10 ms on a slow (valgrind) run. */
	error = rd_kafka_seek_partitions(d->consumer, tpl, -1);
	if (error || tpl->elems[0].err) {
		cw_error("cannot seek the re-taken partition; stopping",
			 "partition=%d offset=%" PRId64 " error=\"%s\"", id,
			 offset,
			 error ? rd_kafka_error_string(error)
			       : rd_kafka_err2str(tpl->elems[0].err));
		d->fatal = -EIO;
	} else {
		cw_warn("partition re-taken, replaying from PostgreSQL's "
			"offset",
			"partition=%d offset=%" PRId64, id, offset);
	}
	if (error)
		rd_kafka_error_destroy(error);
	rd_kafka_topic_partition_list_destroy(tpl);
}

/* A permanent PostgreSQL error (bad data, integrity violation) in @res's
 * partition: set it aside so the other partitions keep flowing. It is
 * paused in the consumer and dropped (so no flush carries it); it stays
 * quarantined, counted and shown on /healthz until a rebalance assigns it
 * again (which reads the same records again: an operator should look at
 * the logged offsets first). Poll thread. */
static void partition_quarantine(struct daemon *d,
				 const struct flusher_result *res)
{
	rd_kafka_topic_partition_list_t *tpl;
	int32_t id = res->fenced;

	cw_error("permanent PostgreSQL error: partition quarantined (not "
		 "consumed, not flushed) until it is assigned again",
		 "partition=%d sqlstate=%s error=\"%s\"", id, res->sqlstate,
		 res->err);
	tpl = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(tpl, d->cfg->topic, id);
	rd_kafka_pause_partitions(d->consumer, tpl);
	rd_kafka_topic_partition_list_destroy(tpl);
	partition_drop(d, id);
	snprintf(d->quarantine_reason, sizeof(d->quarantine_reason),
		 "partition %d quarantined: %.96s", id, res->reason);
	for (int i = 0; i < d->n_quarantined; i++)
		if (d->quarantined[i] == id)
			return;
	if (d->n_quarantined <
	    (int)(sizeof(d->quarantined) / sizeof(d->quarantined[0])))
		d->quarantined[d->n_quarantined++] = id;
}

/* Act on a finished flush. Returns 0 when it committed (abandonments are
 * published and the batches recycled), 1 when it should be submitted
 * again at once (a fenced partition was dropped, or a serialization
 * retry), or the negative error after which to back off (the sealed
 * batches stay for the retry). Poll thread. */
static int flush_result(struct daemon *d, const struct flusher_result *res,
			bool final, int fk)
{
	if (res->r == 0) {
		d->c.flushes++;
		/* PostgreSQL is healthy again only when no other connection's
		 * flush is failing: a commit that was in flight when the
		 * server went away must not hide the failure of the other. */
		d->flush_failed[fk] = false;
		if (!flush_failing(d))
			d->pg_ok = true;
		metrics_flush_observe(d->snap, (double)res->ms / 1000.0);
		after_commit(d, fk, res->done_ms);
		write_status(d, (double)res->ms, final);
		/* Every flush at debug level: where an abandonment's commit
		 * latency went (waiting for the seal, or the flush itself). */
		walltime_t oldest = d->flush_oldest_ms[fk];
		cw_log(final || res->ms > 1000 ? CW_LOG_INFO : CW_LOG_DEBUG,
		       "flushed",
		       "connection=%d sealed=%s partitions=%zu ms=%" PRId64
		       " oldest_abandonment_sealed_after_ms=%" PRId64
		       " oldest_abandonment_committed_after_ms=%" PRId64,
		       fk, d->flush_why[fk] ? d->flush_why[fk] : "drain",
		       d->flush_partitions[fk], res->ms,
		       oldest ? d->flush_sealed_ms[fk] - oldest : 0,
		       oldest ? res->done_ms - oldest : 0);
		return 0;
	}
	if (res->r == -ESTALE && res->fenced >= 0) {
		d->c.fenced++;
		cw_warn("partition taken by another processor, dropped",
			"partition=%d", res->fenced);
		partition_drop(d, res->fenced);
		return 1;
	}
	if ((res->r == -ENOTRECOVERABLE || res->r == -EPROTO) &&
	    res->fenced >= 0) {
		d->c.pg_rewinds += res->r == -ENOTRECOVERABLE;
		cw_error("PostgreSQL does not hold what this processor "
			 "committed; taking the partition again to replay",
			 "partition=%d error=\"%s\"", res->fenced, res->err);
		/* Before giving the partition up, the next owner replays. */
		if (final)
			partition_drop(d, res->fenced);
		else
			partition_retake(d, res->fenced);
		return 1;
	}
	if (res->r == -EBADMSG && res->fenced >= 0) {
		d->c.flush_failures++;
		d->c.pg_errors++;
		partition_quarantine(d, res);
		return 1;
	}
	if (res->r == -EAGAIN)
		return 1;
	d->c.flush_failures++;
	d->c.pg_errors++;
	d->pg_ok = false;
	snprintf(d->pg_reason, sizeof(d->pg_reason), "%s",
		 res->reason[0] ? res->reason : "postgresql error");
	cw_error("flush failed; consumption paused until PostgreSQL accepts it",
		 "error=\"%s\" retry_ms=%" PRId64, res->err, d->backoff_ms);
	return res->r;
}

/* Flush everything now and wait for it (rebalance, shutdown): first the
 * job in flight, then whatever was processed since. Returns 0 or the last
 * error. Poll thread. */
static int flush(struct daemon *d, bool final)
{
	struct flusher_result res;
	int r = 0, worst = 0;

	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++)
		if (flusher_collect(d->flushers[fk], true, &res) == 1)
			flush_result(d, &res, final, fk);
	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++) {
		for (int attempt = 0;; attempt++) {
			if (attempt == 10)
				return -EAGAIN;
			d->flush_why[fk] = "drain";
			if ((r = flush_submit(d, fk)) < 0)
				return r;
			if (flusher_collect(d->flushers[fk], true, &res) == 0)
				break;
			r = flush_result(d, &res, final, fk);
			if (r <= 0)
				break;
		}
		if (r < 0)
			worst = r;
	}
	return worst;
}

static size_t pending_records(const struct daemon *d)
{
	size_t n = 0;
	for (int32_t i = 0; i < d->n_parts; i++)
		if (d->parts[i])
			n += batch_records(d->parts[i]->batch) +
			     d->parts[i]->n_dirty;
	return n;
}

static void log_stats(struct daemon *d, walltime_t now, walltime_t elapsed)
{
	uint64_t users = 0, carts = 0, sessions = 0;

	for (int32_t i = 0; i < d->n_parts; i++) {
		struct partition *pt = d->parts[i];
		if (!pt)
			continue;
		users += pt->n_users;
		carts += pt->n_open_carts;
		sessions += pt->n_open_sessions;
	}
	cw_info("status",
		"events=%" PRIu64 " rate=%.0f/s users=%" PRIu64
		" open_carts=%" PRIu64 " open_sessions=%" PRIu64
		" abandonments=%" PRIu64 " conversions=%" PRIu64
		" dead_letters=%" PRIu64 " flushes=%" PRIu64
		" flush_failures=%" PRIu64,
		d->c.messages,
		elapsed > 0
			? (double)(d->c.messages - d->messages_at_last_stats) *
				  1000.0 / (double)elapsed
			: 0.0,
		users, carts, sessions, d->c.abandonments, d->c.conversions,
		d->c.dlq_records, d->c.flushes, d->c.flush_failures);
	d->messages_at_last_stats = d->c.messages;
	(void)now;
}

/* Whether connection @fk should seal now, before its interval is up, so
 * that an abandonment commits within the flush interval of being found:
 * true once the oldest abandonment waiting in its partitions' open
 * batches has waited the interval less the connection's expected flush
 * time (flush_est_ms) and two ticks (one for the seal to notice, one for
 * the poll thread to collect the commit and publish), but never before
 * half the interval, so that under load (slow flushes) a connection
 * flushes at most twice as often as its interval and its batches stay
 * large. When flushes take longer than that the connection is busy
 * whenever this is asked, and seals as soon as it is free: batches are
 * as large as the input of one flush, as without this rule. Poll
 * thread. */
static bool abandonment_due(const struct daemon *d, int fk, walltime_t now)
{
	int64_t interval = d->cfg->flush_interval_ms;
	int64_t wait = interval - d->flush_est_ms[fk] - 2 * TICK_MS;
	walltime_t oldest = INT64_MAX;

	if (wait < interval / 2)
		wait = interval / 2;
	for (int32_t i = fk; i < d->n_parts; i += FLUSH_CONNECTIONS) {
		const struct partition *pt = d->parts[i];
		/* Only open batches that a seal would take count. */
		if (!flush_takes(d, i) || pt->sealed ||
		    !pt->batch->abandonments.n)
			continue;
		if (pt->batch->abandonments.v[0].detected_ms < oldest)
			oldest = pt->batch->abandonments.v[0].detected_ms;
	}
	return oldest != INT64_MAX && now - oldest >= wait;
}

/* Whether connection @fk should seal now because its partitions have
 * caught up: each has read to the end of its log (nothing more waits in
 * Kafka), one of them has something to commit, and a quarter of the
 * interval has passed since the connection's last seal. Waiting for the
 * interval would only delay results: no further record of these
 * partitions would join the batch meanwhile. The quarter bounds the
 * transactions of a connection whose partitions trickle (at most four
 * per interval); input that keeps arriving never looks caught up for
 * long, and batches stay as large as before. Poll thread. */
static bool caught_up_due(const struct daemon *d, int fk, walltime_t now)
{
	int64_t interval = d->cfg->flush_interval_ms;
	bool pending = false;

	if (now < d->next_flush[fk] - interval + interval / 4)
		return false;
	for (int32_t i = fk; i < d->n_parts; i += FLUSH_CONNECTIONS) {
		const struct partition *pt = d->parts[i];
		/* Only open batches that a seal would take count. */
		if (!flush_takes(d, i) || pt->sealed)
			continue;
		if (!pt->at_eof)
			return false;
		if (batch_records(pt->batch) || pt->n_dirty)
			pending = true;
	}
	return pending;
}

static int housekeeping(struct daemon *d, walltime_t now)
{
	int r;

	/* A callback failed (no memory to keep a dead letter): exit before
	 * anything is committed past it. */
	if (d->fatal)
		return d->fatal;
	probe_kafka(d, now);
	outbox_retry(d->outbox, now);
	/* Idle watermarks hold while Kafka is unreachable and while
	 * consumption is paused (PostgreSQL or memory): the partitions are
	 * silent because we do not read them, not because shoppers left. */
	for (int32_t i = 0; i < d->n_parts && !d->kafka_down && !d->paused; i++)
		if (d->parts[i] && (r = partition_tick(d->parts[i], now)) < 0)
			return r;

	/* Flushes run on their own threads; act on each once it is done. */
	struct flusher_result res;
	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++) {
		if (flusher_collect(d->flushers[fk], false, &res) == 1) {
			/* Up at once to the duration of a slow flush, down by
			 * an eighth a flush. */
			int64_t est = d->flush_est_ms[fk];
			est -= est / 8;
			d->flush_est_ms[fk] = res.ms > est ? res.ms : est;
			r = flush_result(d, &res, false, fk);
			if (r == 1) {
				/* Again at once, without the fenced one. */
				d->next_flush[fk] = now;
			} else if (r < 0) {
				d->flush_failed[fk] = true;
				d->c.pg_retries++;
				set_paused(d, true);
				d->next_flush[fk] = now + d->backoff_ms;
				d->backoff_ms =
					d->backoff_ms * 2 > BACKOFF_MAX_MS
						? BACKOFF_MAX_MS
						: d->backoff_ms * 2;
			} else {
				d->flush_failed[fk] = false;
				/* Resume only when every connection is
				 * committing again. */
				if (!flush_failing(d)) {
					d->backoff_ms = BACKOFF_MIN_MS;
					set_paused(d, false);
				}
			}
		}
	}
	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++) {
		if (flusher_busy(d->flushers[fk]))
			continue;
		/* A failed flush waits for its retry time. */
		if (now >= d->next_flush[fk])
			d->flush_why[fk] =
				d->flush_failed[fk] ? "retry" : "interval";
		else if (d->flush_failed[fk])
			continue;
		else if (abandonment_due(d, fk, now))
			d->flush_why[fk] = "abandonment";
		else if (caught_up_due(d, fk, now))
			d->flush_why[fk] = "caught_up";
		else
			continue;
		if ((r = flush_submit(d, fk)) < 0)
			return r;
		d->next_flush[fk] = now + d->cfg->flush_interval_ms;
	}
	/* Memory bound: stop reading while too much waits for PostgreSQL. */
	if (!d->paused && pending_records(d) > (size_t)d->cfg->max_pending) {
		set_paused(d, true);
		for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++)
			d->next_flush[fk] = now;
	}
	if (now >= d->next_stats) {
		log_stats(d, now, now - (d->next_stats - STATS_INTERVAL_MS));
		d->next_stats = now + STATS_INTERVAL_MS;
	}
	publish_metrics(d);
	return 0;
}

/* Whether a flush job is running or waits to be collected. */
static bool flush_in_flight(const struct daemon *d)
{
	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++)
		if (flusher_busy(d->flushers[fk]))
			return true;
	return false;
}

/* Whether a flush job is done and waits to be collected. */
static bool flush_ready(const struct daemon *d)
{
	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++)
		if (flusher_done(d->flushers[fk]))
			return true;
	return false;
}

int daemon_run(struct daemon *d)
{
	int r = 0;
	walltime_t now = cw_mono_ms();

	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++)
		d->next_flush[fk] = now + d->cfg->flush_interval_ms;
	d->next_stats = now + STATS_INTERVAL_MS;
	d->next_tick = now;
	d->backoff_ms = BACKOFF_MIN_MS;

	while (!*d->stop && !d->fatal) {
		int n = 0;
		walltime_t round_end = cw_mono_ms() + TICK_MS;
		bool in_flight = flush_in_flight(d);

		while (n < POLL_BATCH && !*d->stop) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(
				d->consumer,
				n ? 0 : (in_flight ? FLUSH_WAIT_MS : TICK_MS));
			if (!m)
				break;
			r = handle_message(d, m, now);
			rd_kafka_message_destroy(m);
			if (r < 0)
				goto fatal;
			n++;
			if (n % POLL_CHECK_EVERY == 0) {
				rd_kafka_poll(d->producer, 0);
				now = cw_mono_ms();
				if (now >= round_end ||
				    (in_flight && flush_ready(d)))
					break;
			}
		}
		rd_kafka_poll(d->producer, 0);
		now = cw_mono_ms();
		/* A finished flush is acted on (published) at once. */
		if (now >= d->next_tick || (in_flight && flush_ready(d))) {
			if ((r = housekeeping(d, now)) < 0)
				goto fatal;
			d->next_tick = now + TICK_MS;
		}
	}

	if (d->fatal) {
		r = d->fatal;
		goto fatal;
	}
	/* Drain: flush (a few tries), leave the group, deliver the rest. */
	publish_metrics(d);
	cw_info("stopping: final flush", NULL);
	outbox_settle(d->outbox, 10000);
	for (int attempt = 0; attempt < 3; attempt++) {
		if ((r = flush(d, true)) == 0)
			break;
		sleep_ms(500);
	}
	if (r < 0)
		cw_error("final flush failed; a restart redoes the "
			 "uncommitted part",
			 "error=\"%s\"", d->pg_reason);
	rd_kafka_consumer_close(d->consumer);
	/* Deliver the rest, failed abandonments again too. */
	for (walltime_t end = cw_mono_ms() + 10000;
	     cw_mono_ms() < end && (outbox_waiting(d->outbox) ||
				    rd_kafka_outq_len(d->producer) > 0);) {
		outbox_retry(d->outbox, cw_mono_ms());
		rd_kafka_poll(d->producer, 100);
	}
	const char **ids;
	if (outbox_acked(d->outbox, &ids)) {
		free(ids);
		flush(d, true); /* deletes acknowledged outbox rows */
	}
	log_stats(d, cw_mono_ms(), 0);
	return 0;
fatal:
	cw_error("fatal error, exiting without committing the rest",
		 "error=\"%s\"", strerror(-r));
	return r;
}

/* ---- construction ---------------------------------------------------------
 */

/* --max-clock-skew in event time: a simulation at --time-scale X runs
 * event time X times faster than the wall clock, so the skew it may show
 * grows with it. Bounded far below int64 overflow of times (~31,000
 * years). */
static int64_t max_ahead_ms(const struct processor_config *cfg)
{
	double ahead = (double)cfg->max_clock_skew_ms *
		       (cfg->time_scale > 1 ? cfg->time_scale : 1);
	return ahead < 1e15 ? (int64_t)ahead : (int64_t)1e15;
}

struct daemon *daemon_new(const struct processor_config *cfg,
			  volatile sig_atomic_t *stop, char *errstr,
			  size_t errstr_size)
{
	struct daemon *d = calloc(1, sizeof(*d));
	rd_kafka_conf_t *conf = NULL;
	char host[64] = "localhost";
	int64_t backoff = BACKOFF_MIN_MS;

	if (!d) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	d->cfg = cfg;
	d->stop = stop;
	d->started_at = epoch_ms();
	d->sp = (struct session_params){
		.session_timeout_ms = cfg->session_timeout_ms,
		.allowed_lateness_ms = cfg->allowed_lateness_ms,
		.cart_ttl_ms = cfg->cart_ttl_ms,
		.recovery_window_ms = cfg->recovery_window_ms,
		.idle_timeout_ms = cfg->idle_timeout_ms,
		.time_scale = cfg->time_scale,
		.max_ahead_ms = max_ahead_ms(cfg),
		.max_cart_items = (uint32_t)cfg->max_cart_items,
		.max_interned = (uint32_t)cfg->max_products,
	};
	gethostname(host, sizeof(host) - 1);
	if (cfg->instance)
		snprintf(d->owner, sizeof(d->owner), "%s", cfg->instance);
	else
		snprintf(d->owner, sizeof(d->owner), "%s:%d", host,
			 (int)getpid());
	d->intern = intern_new();
	d->snap = calloc(1, sizeof(*d->snap));
	if (!d->intern || !d->snap)
		goto fail_nomem;
	if (schemas_load(d, errstr, errstr_size))
		goto fail;
	d->pg_ok = true;
	/* Metrics first: a taken port fails fast, and /healthz answers (503)
	 * while PostgreSQL is still being waited for. */
	if (cfg->metrics_addr && *cfg->metrics_addr &&
	    !(d->metrics = metrics_new(cfg->metrics_addr, errstr, errstr_size)))
		goto fail;

	/* A bad -X property is reported at once, not after PostgreSQL
	 * answers. */
	if (!(conf = cw_kafka_conf_new(cfg->bootstrap_servers, NULL,
				       &cfg->kafka_props, errstr, errstr_size)))
		goto fail;
	rd_kafka_conf_destroy(conf);
	conf = NULL;

	/* PostgreSQL first: without the schema there is nothing to do. */
	d->sink = pg_sink_new(cfg->pg, cfg->topic, errstr, errstr_size);
	if (!d->sink)
		goto fail;
	for (;;) {
		int r = pg_sink_migrate(d->sink);
		if (r == 0)
			break;
		if (r != -ENOTCONN || *stop) {
			snprintf(errstr, errstr_size, "%s",
				 pg_sink_last_error(d->sink));
			goto fail;
		}
		pg_failed(d);
		d->c.pg_retries++;
		publish_metrics(d);
		cw_warn("PostgreSQL unreachable, retrying",
			"error=\"%s\" retry_ms=%" PRId64,
			pg_sink_last_error(d->sink), backoff);
		sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
						       : backoff * 2;
	}

	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++) {
		d->flushers[fk] =
			flusher_new(cfg->pg, cfg->topic, errstr, errstr_size);
		if (!d->flushers[fk])
			goto fail;
	}

	d->housekeeping = housekeeping_new(
		&(struct housekeeping_params){
			.conninfo = cfg->pg,
			.retention_ms = cfg->retention_ms,
			.status_retention_ms = cfg->status_retention_ms,
			.interval_ms = cfg->housekeeping_interval_ms,
		},
		errstr, errstr_size);
	if (!d->housekeeping)
		goto fail;

	/* Producer for abandonments and dead letters. */
	conf = cw_kafka_conf_new(cfg->bootstrap_servers, producer_defaults,
				 &cfg->kafka_props, errstr, errstr_size);
	if (!conf)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, d);
	d->producer =
		cw_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
	conf = NULL; /* the producer's now, or destroyed */
	if (!d->producer)
		goto fail;
	d->outbox = outbox_new(d->producer, cfg->abandonment_topic,
			       cfg->dlq_topic, &d->c, d->snap, &d->fatal);
	if (!d->outbox) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}

	/* Consumer: offsets come from PostgreSQL, so no auto commit. */
	d->consumer = cw_kafka_consumer_new(
		&(struct cw_kafka_consumer_params){
			.bootstrap_servers = cfg->bootstrap_servers,
			.defaults = consumer_defaults,
			.user = &cfg->kafka_props,
			.group = cfg->group,
			.topic = cfg->topic,
			.rebalance_cb = on_rebalance,
			.error_cb = on_error,
			.opaque = d,
		},
		errstr, errstr_size);
	if (!d->consumer)
		goto fail;
	char pg_redacted[256];
	cw_log_redact_conninfo(cfg->pg && *cfg->pg ? cfg->pg : NULL,
			       pg_redacted, sizeof(pg_redacted));
	cw_info("processor started",
		"instance=%s topic=%s group=%s pg=\"%s\" "
		"session_timeout_ms=%" PRId64 " flush_interval_ms=%" PRId64
		" metrics=%s",
		d->owner, cfg->topic, cfg->group, pg_redacted,
		cfg->session_timeout_ms, cfg->flush_interval_ms,
		cfg->metrics_addr && *cfg->metrics_addr ? cfg->metrics_addr
							: "off");
	return d;

fail_nomem:
	snprintf(errstr, errstr_size, "out of memory");
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	daemon_destroy(d);
	return NULL;
}

void daemon_get_counters(const struct daemon *d, struct daemon_counters *out)
{
	*out = d->c;
}

void daemon_destroy(struct daemon *d)
{
	if (!d)
		return;
	/* After daemon_run() the consumer is closed already; after a fatal
	 * error it must not run the revocation (no flush of broken state). */
	if (d->consumer)
		rd_kafka_destroy_flags(d->consumer,
				       RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (d->producer) {
		/* Undelivered messages get a delivery report now, which frees
		 * their opaques; their outbox rows stay for the next owner. */
		rd_kafka_purge(d->producer, RD_KAFKA_PURGE_F_QUEUE |
						    RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(d->producer, 0);
		rd_kafka_destroy(d->producer);
	}
	outbox_destroy(d->outbox);
	housekeeping_destroy(d->housekeeping);
	/* The flush thread may still hold sealed batches: stop it first. */
	for (int fk = 0; fk < FLUSH_CONNECTIONS; fk++) {
		flusher_destroy(d->flushers[fk]);
		free(d->flush_batches[fk]);
	}
	for (int32_t i = 0; i < d->n_parts; i++)
		partition_destroy(d->parts[i]);
	free(d->parts);
	pg_sink_destroy(d->sink);
	intern_destroy(d->intern);
	cw_schema_set_free(d->schemas);
	metrics_destroy(d->metrics);
	free(d->snap);
	free(d);
}
