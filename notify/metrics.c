/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics — cartwatch-notify's Prometheus series and health. See
 * metrics.h.
 */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_status.h"
#include "cw_time.h"

const double notify_latency_bounds[NOTIFY_LATENCY_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

/* A loop that has not published for this long is wedged. */
#define STALLED_MS 60000

struct notify_metrics {
	struct cw_status *server;
	pthread_mutex_t lock;
	struct notify_stats snap;
	int64_t published_ms; /* 0: never */
};

static void counter(struct cw_text *t, const char *name, const char *help,
		    uint64_t v)
{
	cw_prom_family(t, name, "counter", help);
	cw_text_printf(t, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct cw_text *t, const char *name, const char *help,
		  int64_t v)
{
	cw_prom_family(t, name, "gauge", help);
	cw_text_printf(t, "%s %" PRId64 "\n", name, v);
}

static void on_metrics(void *opaque, struct cw_text *t)
{
	struct notify_metrics *m = opaque;
	struct notify_stats s;

	pthread_mutex_lock(&m->lock);
	s = m->snap;
	pthread_mutex_unlock(&m->lock);
	cw_prom_family(t, "cartwatch_notify_deliveries_total", "counter",
		       "Abandonments handled, by outcome");
	cw_text_printf(
		t,
		"cartwatch_notify_deliveries_total{outcome=\"delivered\"}"
		" %" PRIu64 "\n",
		s.delivered);
	cw_text_printf(t,
		       "cartwatch_notify_deliveries_total{outcome=\"skipped_"
		       "recovered\"} %" PRIu64 "\n",
		       s.skipped_recovered);
	cw_text_printf(t,
		       "cartwatch_notify_deliveries_total{outcome=\"dead_"
		       "lettered\"} %" PRIu64 "\n",
		       s.dead_lettered);
	counter(t, "cartwatch_notify_attempts_total",
		"HTTP requests sent to the webhook", s.attempts);
	counter(t, "cartwatch_notify_retries_total",
		"Attempts that failed and were scheduled again", s.retries);
	counter(t, "cartwatch_notify_undecodable_total",
		"Records that did not decode (dead-lettered)", s.undecodable);
	cw_prom_histogram_write(t, "cartwatch_notify_response_seconds",
				"Time from request to complete answer or error",
				NULL, true, notify_latency_bounds,
				NOTIFY_LATENCY_BUCKETS, &s.latency);
	gauge(t, "cartwatch_notify_waiting_records",
	      "Records held (partition paused) until due or a slot frees",
	      s.waiting);
	gauge(t, "cartwatch_notify_in_flight", "Requests under way",
	      s.in_flight);
	gauge(t, "cartwatch_notify_backoff_records",
	      "Records waiting to be retried", s.backoff);
	gauge(t, "cartwatch_notify_consumer_lag",
	      "Records on the assigned partitions not yet handled", s.lag);
}

static enum cw_health on_health(void *opaque, char *reason, size_t size)
{
	struct notify_metrics *m = opaque;
	enum cw_health h = CW_HEALTH_READY;

	pthread_mutex_lock(&m->lock);
	if (!m->published_ms) {
		snprintf(reason, size, "starting");
		h = CW_HEALTH_NOT_READY;
	} else if (cw_mono_ms() - m->published_ms > STALLED_MS) {
		snprintf(reason, size, "loop stalled");
		h = CW_HEALTH_STALLED;
	} else if (m->snap.kafka_down) {
		snprintf(reason, size, "Kafka unreachable: %s",
			 m->snap.kafka_error);
		h = CW_HEALTH_NOT_READY;
	}
	pthread_mutex_unlock(&m->lock);
	return h;
}

static const struct cw_status_ops ops = {on_metrics, on_health};

struct notify_metrics *notify_metrics_start(const char *addr, char *errstr,
					    size_t errstr_size)
{
	struct notify_metrics *m = calloc(1, sizeof(*m));

	if (!m) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->server =
		cw_status_start(addr, "notify", &ops, m, errstr, errstr_size);
	if (!m->server) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	return m;
}

int notify_metrics_port(const struct notify_metrics *m)
{
	return cw_status_port(m->server);
}

void notify_metrics_publish(struct notify_metrics *m,
			    const struct notify_stats *s)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->snap = *s;
	m->published_ms = cw_mono_ms();
	pthread_mutex_unlock(&m->lock);
}

void notify_metrics_stop(struct notify_metrics *m)
{
	if (!m)
		return;
	cw_status_stop(m->server);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
