/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics — what the processor shows on /metrics, /livez, /readyz and
 * /healthz (served by common/cw_status). See metrics.h. Two threads meet
 * here and only in metrics_publish() and the two cw_status callbacks, all
 * under m->lock; everything else in this file runs on one side only.
 */
#include "metrics.h"
#include "cw_time.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cw_status.h"

struct metrics {
	struct cw_status *server;

	/* Shared with the HTTP thread: everything below, under @lock. */
	pthread_mutex_t lock;
	struct metrics_snapshot snap;
	bool published;	      /* a first snapshot arrived */
	int64_t published_ms; /* monotonic time of the latest one */
	int64_t stale_ms;     /* 0: no staleness check */
};

static const double flush_bounds[METRICS_FLUSH_BUCKETS] = METRICS_FLUSH_BOUNDS;

static const char *const event_type_label[METRICS_EVENT_TYPES] = {
	"cart_add", "cart_remove", "checkout_complete"};

/* ---- the exposition text ------------------------------------------------ */

/* The single-value series, declared once: name, type, help, field. Every
 * field is a uint64_t of struct metrics_snapshot. */
struct metric_desc {
	const char *name;
	const char *type;
	const char *help;
	size_t offset;
};

#define SNAP(field) offsetof(struct metrics_snapshot, field)

static const struct metric_desc scalar_metrics[] = {
	{"cartwatch_decode_errors_total", "counter",
	 "Records that did not decode as a cart event.", SNAP(decode_errors)},
	{"cartwatch_invalid_events_total", "counter",
	 "Decoded events that failed the semantic checks.",
	 SNAP(invalid_events)},
	{"cartwatch_key_mismatches_total", "counter",
	 "Records whose Kafka key is not the body's user_id (dead-lettered).",
	 SNAP(key_mismatches)},
	{"cartwatch_events_ahead_total", "counter",
	 "Events stamped beyond --max-clock-skew ahead (dead-lettered).",
	 SNAP(events_ahead)},
	{"cartwatch_events_too_old_total", "counter",
	 "Events older than the watermark by more than the cart TTL and the "
	 "recovery window (dead-lettered).",
	 SNAP(events_too_old)},
	{"cartwatch_cart_limit_events_total", "counter",
	 "cart_add events refused by --max-cart-items or the cart's value "
	 "bound (dead-lettered).",
	 SNAP(cart_limit_events)},
	{"cartwatch_duplicate_events_total", "counter",
	 "Events dropped because the user's recent events had their "
	 "event_id (client or gateway retries).",
	 SNAP(duplicate_events)},
	{"cartwatch_products_full_events_total", "counter",
	 "Events naming a new product, reason or currency beyond "
	 "--max-products (dead-lettered).",
	 SNAP(intern_full_events)},
	{"cartwatch_partitions_watermark_ahead", "gauge",
	 "Assigned partitions whose restored watermark is beyond "
	 "--max-clock-skew (see --repair-future-watermarks).",
	 SNAP(partitions_watermark_ahead)},
	{"cartwatch_dead_letter_records_total", "counter",
	 "Records sent to the dead-letter topic.", SNAP(dlq_records)},
	{"cartwatch_dead_letter_failures_total", "counter",
	 "Dead letters that could not be produced or delivered.",
	 SNAP(dlq_failures)},
	{"cartwatch_late_events_total", "counter",
	 "Events older than the watermark when they arrived.",
	 SNAP(late_events)},
	{"cartwatch_abandonments_total", "counter",
	 "Abandonments committed to PostgreSQL.", SNAP(abandonments)},
	{"cartwatch_conversions_total", "counter",
	 "Checkouts committed to PostgreSQL.", SNAP(conversions)},
	{"cartwatch_recovered_total", "counter",
	 "Checkouts that recovered an earlier abandonment.", SNAP(recovered)},
	{"cartwatch_carts_expired_total", "counter",
	 "Carts dropped after the cart TTL.", SNAP(carts_expired)},
	{"cartwatch_flushes_total", "counter",
	 "Flushes committed to PostgreSQL.", SNAP(flushes)},
	{"cartwatch_flush_failures_total", "counter",
	 "Flushes PostgreSQL did not accept (retried after backoff).",
	 SNAP(flush_failures)},
	{"cartwatch_postgresql_errors_total", "counter",
	 "Failed PostgreSQL operations.", SNAP(pg_errors)},
	{"cartwatch_postgresql_retries_total", "counter",
	 "PostgreSQL operations retried after a backoff.", SNAP(pg_retries)},
	{"cartwatch_fenced_partitions_total", "counter",
	 "Partitions dropped because another processor took them.",
	 SNAP(fenced)},
	{"cartwatch_postgresql_rewinds_total", "counter",
	 "Partitions re-taken and replayed because PostgreSQL no longer held "
	 "offsets this processor had committed (the database went back in "
	 "time).",
	 SNAP(pg_rewinds)},
	{"cartwatch_abandonments_published_total", "counter",
	 "Abandonments the broker acknowledged on the abandonment topic.",
	 SNAP(abandonments_published)},
	{"cartwatch_abandonment_publish_failures_total", "counter",
	 "Abandonments not published (kept in the outbox for a retry).",
	 SNAP(publish_failures)},
	{"cartwatch_offset_gaps_total", "counter",
	 "Times a partition's next record was no longer in the log (lost "
	 "to retention).",
	 SNAP(offset_gaps)},
	{"cartwatch_offset_gap_records_total", "counter",
	 "Records skipped over by those gaps, never processed.",
	 SNAP(offset_gap_records)},
	{"cartwatch_open_carts", "gauge", "Carts with items, in memory.",
	 SNAP(open_carts)},
	{"cartwatch_open_sessions", "gauge", "Sessions not yet closed.",
	 SNAP(open_sessions)},
	{"cartwatch_users", "gauge", "Users held in memory.", SNAP(users)},
	{"cartwatch_assigned_partitions", "gauge",
	 "Partitions this processor owns.", SNAP(assigned_partitions)},
	{"cartwatch_partitions_quarantined", "gauge",
	 "Partitions set aside (not consumed, not flushed) after a permanent "
	 "PostgreSQL error, until they are assigned again.",
	 SNAP(quarantined_partitions)},
};

static void render_metrics(struct cw_text *t, const struct metrics_snapshot *s,
			   double age_s)
{
	const struct cw_prom_histogram *h = &s->flush_seconds;
	uint32_t np = s->n_partitions < METRICS_MAX_PARTITIONS
			      ? s->n_partitions
			      : METRICS_MAX_PARTITIONS;
	char num[32];
	bool any;

	cw_prom_family(t, "cartwatch_events_consumed_total", "counter",
		       "Cart events decoded and applied, by type.");
	for (int i = 0; i < METRICS_EVENT_TYPES; i++)
		cw_text_printf(t,
			       "cartwatch_events_consumed_total{type=\"%s\"} "
			       "%" PRIu64 "\n",
			       event_type_label[i], s->events[i]);

	for (size_t i = 0;
	     i < sizeof(scalar_metrics) / sizeof(scalar_metrics[0]); i++) {
		const struct metric_desc *md = &scalar_metrics[i];
		uint64_t v;

		memcpy(&v, (const char *)s + md->offset, sizeof(v));
		cw_prom_family(t, md->name, md->type, md->help);
		cw_text_printf(t, "%s %" PRIu64 "\n", md->name, v);
	}

	cw_prom_histogram_write(t, "cartwatch_flush_duration_seconds",
				"Wall time of each committed PostgreSQL flush.",
				NULL, true, flush_bounds, METRICS_FLUSH_BUCKETS,
				h);

	/* Per partition; a family is written only when it has a series. */
	any = false;
	for (uint32_t i = 0; i < np; i++) {
		const struct metrics_partition *p = &s->partitions[i];
		if (p->lag < 0)
			continue;
		if (!any)
			cw_prom_family(
				t, "cartwatch_partition_lag_messages", "gauge",
				"Messages between the next offset to process "
				"and the partition's high watermark.");
		any = true;
		cw_text_printf(
			t,
			"cartwatch_partition_lag_messages{partition=\"%" PRId32
			"\"} %" PRId64 "\n",
			p->id, p->lag);
	}
	any = false;
	for (uint32_t i = 0; i < np; i++) {
		const struct metrics_partition *p = &s->partitions[i];
		if (isnan(p->watermark_delay_s))
			continue;
		if (!any)
			cw_prom_family(
				t,
				"cartwatch_partition_watermark_delay_seconds",
				"gauge",
				"Wall clock minus the partition's event-time "
				"watermark; negative while events are stamped "
				"ahead of the wall clock (a simulation at "
				"--time-scale above 1).");
		any = true;
		cw_text_printf(t,
			       "cartwatch_partition_watermark_delay_seconds{"
			       "partition=\"%" PRId32 "\"} %s\n",
			       p->id,
			       cw_prom_double(p->watermark_delay_s, num));
	}
	any = false;
	for (uint32_t i = 0; i < np; i++) {
		const struct metrics_partition *p = &s->partitions[i];
		if (p->next_offset < 0)
			continue;
		if (!any)
			cw_prom_family(t, "cartwatch_partition_next_offset",
				       "gauge",
				       "Next Kafka offset to process.");
		any = true;
		cw_text_printf(
			t,
			"cartwatch_partition_next_offset{partition=\"%" PRId32
			"\"} %" PRId64 "\n",
			p->id, p->next_offset);
	}

	/* Carts at risk: a currency stays once seen, so its series do not
	 * come and go; none before the first session. */
	if (s->open_value.n) {
		static const struct {
			const char *name, *help;
		} fam[3] = {
			{"cartwatch_open_value_sessions",
			 "Open sessions by the currency of their latest "
			 "event."},
			{"cartwatch_open_value_carts",
			 "Open sessions holding items (carts at risk), by "
			 "currency."},
			{"cartwatch_open_cart_value_cents",
			 "Value of the carts at risk (open sessions holding "
			 "items), in cents of the currency; carried-over carts "
			 "are not in it."},
		};
		uint32_t n = s->open_value.n < OPEN_VALUE_ROWS
				     ? s->open_value.n
				     : OPEN_VALUE_ROWS;
		for (int k = 0; k < 3; k++) {
			cw_prom_family(t, fam[k].name, "gauge", fam[k].help);
			for (uint32_t i = 0; i < n; i++) {
				const struct open_value_row *r =
					&s->open_value.row[i];
				int64_t v = k == 0   ? r->sessions
					    : k == 1 ? r->carts
						     : r->value_cents;
				cw_text_printf(
					t, "%s{currency=\"%s\"} %" PRId64 "\n",
					fam[k].name, r->currency, v);
			}
		}
	}

	cw_prom_family(
		t, "cartwatch_consuming", "gauge",
		"1 while the processor consumes (not paused or stopped).");
	cw_text_printf(t, "cartwatch_consuming %d\n", s->consuming ? 1 : 0);
	cw_prom_family(t, "cartwatch_postgresql_up", "gauge",
		       "1 while PostgreSQL accepts the processor's work.");
	cw_text_printf(t, "cartwatch_postgresql_up %d\n", s->pg_ok ? 1 : 0);
	cw_prom_family(
		t, "cartwatch_snapshot_age_seconds", "gauge",
		"Time since the poll loop last published these numbers.");
	cw_text_printf(t, "cartwatch_snapshot_age_seconds %s\n",
		       cw_prom_double(age_s, num));
}

/* ---- the HTTP side (cw_status callbacks, on its thread) ----------------- */

static void on_metrics(void *opaque, struct cw_text *t)
{
	struct metrics *m = opaque;
	struct metrics_snapshot *s = malloc(sizeof(*s));
	double age_s = 0;

	if (!s) {
		t->oom = true;
		return;
	}
	/* Copy, then render without the lock: the poll thread never waits
	 * for formatting or for a slow client. */
	pthread_mutex_lock(&m->lock);
	*s = m->snap;
	if (m->published)
		age_s = (double)(cw_mono_ms() - m->published_ms) / 1000.0;
	pthread_mutex_unlock(&m->lock);
	render_metrics(t, s, age_s);
	free(s);
}

/* Ready: consuming with PostgreSQL reachable. Alive unless the poll loop
 * stopped publishing (it publishes every second whatever Kafka and
 * PostgreSQL do), so an outage of either never fails /livez. */
static enum cw_health on_health(void *opaque, char *reason, size_t size)
{
	struct metrics *m = opaque;
	bool published, consuming, pg_ok;
	char why[sizeof(m->snap.health_reason)];
	int64_t age_ms, stale_ms;

	pthread_mutex_lock(&m->lock);
	published = m->published;
	consuming = m->snap.consuming;
	pg_ok = m->snap.pg_ok;
	memcpy(why, m->snap.health_reason, sizeof(why));
	age_ms = cw_mono_ms() - m->published_ms;
	stale_ms = m->stale_ms;
	pthread_mutex_unlock(&m->lock);

	if (!published) {
		snprintf(reason, size, "starting");
		return CW_HEALTH_NOT_READY;
	}
	if (stale_ms > 0 && age_ms > stale_ms) {
		snprintf(reason, size,
			 "stale: no snapshot from the poll loop for %.1fs",
			 (double)age_ms / 1000.0);
		return CW_HEALTH_STALLED;
	}
	/* Healthy or not, a reason is worth showing (records lost to a
	 * gap, or what is wrong). */
	if (why[0])
		snprintf(reason, size, "%s", why);
	if (consuming && pg_ok)
		return CW_HEALTH_READY;
	if (!why[0])
		snprintf(reason, size, "%s",
			 !pg_ok ? "postgresql unreachable" : "not consuming");
	return CW_HEALTH_NOT_READY;
}

static const struct cw_status_ops metrics_ops = {
	.metrics = on_metrics,
	.health = on_health,
};

/* ---- API ---------------------------------------------------------------- */

struct metrics *metrics_new(const char *addr, char *errstr, size_t errstr_size)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	m->stale_ms = METRICS_STALE_MS;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		snprintf(errstr, errstr_size, "out of memory");
		free(m);
		return NULL;
	}
	m->server = cw_status_start(addr, "processor", &metrics_ops, m, errstr,
				    errstr_size);
	if (!m->server) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	return m;
}

int metrics_port(const struct metrics *m)
{
	return cw_status_port(m->server);
}

void metrics_set_stale_after(struct metrics *m, int64_t ms)
{
	pthread_mutex_lock(&m->lock);
	m->stale_ms = ms > 0 ? ms : 0;
	pthread_mutex_unlock(&m->lock);
}

void metrics_publish(struct metrics *m, const struct metrics_snapshot *snap)
{
	pthread_mutex_lock(&m->lock);
	m->snap = *snap;
	m->snap.health_reason[sizeof(m->snap.health_reason) - 1] = '\0';
	m->published = true;
	m->published_ms = cw_mono_ms();
	pthread_mutex_unlock(&m->lock);
}

void metrics_flush_observe(struct metrics_snapshot *snap, double seconds)
{
	cw_prom_observe(&snap->flush_seconds, flush_bounds,
			METRICS_FLUSH_BUCKETS, seconds);
}

void metrics_destroy(struct metrics *m)
{
	if (!m)
		return;
	cw_status_stop(m->server); /* no callback runs after this */
	pthread_mutex_destroy(&m->lock);
	free(m);
}
