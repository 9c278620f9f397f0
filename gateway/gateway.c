/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gateway — HTTP requests in, Kafka messages out, answers from the
 * delivery reports. See gateway.h.
 *
 * A POST /v1/events goes: headers (route, token, content type, declared
 * length, Idempotency-Key) → body, accumulated up to --max-body → parsed
 * into messages under the catalog's read lock (ingest.c; 400/422 here,
 * nothing produced) → produced under one lock after checking that Kafka
 * is reachable and the local queue has room for all of them (else 503,
 * nothing produced) → the connection is suspended → each delivery report
 * (main thread) counts down the request's pending messages, and the last
 * one resumes the connection → the handler answers 202 when every message
 * was acknowledged, 503 otherwise.
 */
#include "gateway.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>

#include "cw_catalog.h"
#include "cw_http.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_prom.h"
#include "idem.h"
#include "ingest.h"

/* Seconds a client is told to wait before retrying a 503. */
#define RETRY_AFTER "1"
/* How often the prober asks Kafka for the topic's metadata. */
#define PROBE_DOWN_MS	 500
#define PROBE_UP_MS	 5000
#define PROBE_TIMEOUT_MS 2000
/* Longest Idempotency-Key header accepted; the memory's key adds the
 * client's token index (idem.h allows for it). */
#define GATEWAY_MAX_IDEM_KEY 255

enum route {
	ROUTE_EVENTS,
	ROUTE_METRICS,
	ROUTE_HEALTH,
	ROUTE_OTHER,
	N_ROUTES,
};
static const char *const route_label[N_ROUTES] = {"/v1/events", "/metrics",
						  "/healthz", "other"};

static const unsigned status_codes[] = {200, 202, 204, 400, 401, 404, 405,
					409, 413, 415, 422, 500, 503};
#define N_STATUS (sizeof(status_codes) / sizeof(status_codes[0]))

/* Produce latency: from the first message queued to the last report. */
static const double latency_bounds[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_LATENCY_BOUNDS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

struct gateway {
	const struct gateway_config *cfg;
	volatile sig_atomic_t *stop, *reload;

	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	struct MHD_Daemon *mhd;
	int port;

	/* The catalog: read by the HTTP threads while they parse, replaced
	 * on SIGHUP by the main thread. */
	pthread_rwlock_t catalog_lock;
	struct cw_catalog *catalog;

	char **tokens; /* --token-file, one a line; NULL: open */
	size_t n_tokens;

	struct idem_cache *idem;

	/* One request's messages go in together: the room check and the
	 * produce calls are atomic with respect to other requests. */
	pthread_mutex_t produce_lock;

	/* Kafka reachability: set by the prober and the error callback. */
	atomic_bool kafka_up;
	atomic_bool fatal;
	atomic_bool draining;
	pthread_mutex_t health_lock;
	char kafka_reason[192];

	pthread_t prober;
	bool prober_started;
	pthread_mutex_t prober_lock;
	pthread_cond_t prober_cond;
	bool prober_stop;

	atomic_size_t buffered; /* request body bytes held */
	atomic_int inflight;	/* event requests not yet completed */

	/* Counters. */
	atomic_uint_fast64_t requests[N_ROUTES][N_STATUS];
	atomic_uint_fast64_t events_accepted;
	atomic_uint_fast64_t events_rejected[INGEST_REASONS];
	atomic_uint_fast64_t events_failed;
	atomic_uint_fast64_t idem_replays;
	atomic_uint_fast64_t catalog_reloads, catalog_reload_failures;
	pthread_mutex_t latency_lock;
	struct cw_prom_histogram latency;
};

/* One request's state, MHD's *req_cls. */
struct request {
	struct gateway *gw;
	struct MHD_Connection *conn;
	enum route route;
	enum ingest_format fmt;
	bool counted;  /* in gw->inflight */
	bool answered; /* a response is queued */
	bool replayed; /* answered from the Idempotency-Key memory */

	char *body;
	size_t len, cap;
	bool too_large, busy;
	size_t dropped; /* bytes read past --max-body */

	char idem_key[IDEM_MAX_KEY_LEN + 1];
	size_t idem_len;
	uint64_t idem_token;

	/* Delivery: set before the connection is suspended; @pending and
	 * @failed change on the main thread (reports) until @pending is 0,
	 * when the connection is resumed and the handler reads them. */
	bool produced;
	size_t n_events;
	atomic_size_t pending;
	atomic_size_t failed;
	_Atomic int first_error; /* rd_kafka_resp_err_t */
	int64_t produce_start_ns;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ms(void)
{
	return mono_ns() / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(struct gateway *gw, enum route route, unsigned status)
{
	for (size_t i = 0; i < N_STATUS; i++)
		if (status_codes[i] == status) {
			atomic_fetch_add(&gw->requests[route][i], 1);
			return;
		}
}

static void set_kafka_state(struct gateway *gw, bool up, const char *reason)
{
	bool was = atomic_exchange(&gw->kafka_up, up);

	pthread_mutex_lock(&gw->health_lock);
	snprintf(gw->kafka_reason, sizeof(gw->kafka_reason), "%s",
		 reason ? reason : "");
	pthread_mutex_unlock(&gw->health_lock);
	if (was != up) {
		if (up)
			cw_info("kafka reachable", NULL);
		else
			cw_warn("kafka unreachable: answering 503",
				"reason=\"%s\"", reason ? reason : "");
	}
}

/* ---- answers ------------------------------------------------------------ */

/* Queue @body (@len bytes, copied) with @status on a /v1/events request,
 * with the CORS header and, for a 503, Retry-After. */
static enum MHD_Result respond(struct request *r, unsigned status,
			       const char *content_type, const char *body,
			       size_t len, const char *allow)
{
	const struct gateway_config *cfg = r->gw->cfg;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	bool ok = true;

	resp = MHD_create_response_from_buffer(len, (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (content_type)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					     content_type) == MHD_YES;
	ok = ok && MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
					   "no-store") == MHD_YES;
	if (ok && allow)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					     allow) == MHD_YES;
	if (ok && status == MHD_HTTP_SERVICE_UNAVAILABLE)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
					     RETRY_AFTER) == MHD_YES;
	/* Draining: keep-alive clients must move to another gateway. */
	if (ok && atomic_load(&r->gw->draining))
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					     "close") == MHD_YES;
	if (ok && r->replayed)
		ok = MHD_add_response_header(resp, "Idempotent-Replayed",
					     "true") == MHD_YES;
	if (ok && status == MHD_HTTP_UNAUTHORIZED)
		ok = MHD_add_response_header(resp,
					     MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					     "Bearer") == MHD_YES;
	if (ok && cfg->cors_origin && r->route == ROUTE_EVENTS) {
		ok = MHD_add_response_header(resp,
					     "Access-Control-Allow-Origin",
					     cfg->cors_origin) == MHD_YES &&
		     MHD_add_response_header(resp, "Vary", "Origin") ==
			     MHD_YES &&
		     MHD_add_response_header(resp,
					     "Access-Control-Expose-Headers",
					     "Retry-After") == MHD_YES;
		if (ok && status == MHD_HTTP_NO_CONTENT)
			ok = MHD_add_response_header(
				     resp, "Access-Control-Allow-Methods",
				     "POST, OPTIONS") == MHD_YES &&
			     MHD_add_response_header(
				     resp, "Access-Control-Allow-Headers",
				     "Content-Type, Authorization, "
				     "Idempotency-Key") == MHD_YES &&
			     MHD_add_response_header(resp,
						     "Access-Control-Max-Age",
						     "600") == MHD_YES;
	}
	if (!ok) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		r->answered = true;
		count(r->gw, r->route, status);
	}
	return ret;
}

/* Answer with the JSON @doc (stolen), remembering it for the request's
 * Idempotency-Key unless it invites a retry. */
static enum MHD_Result respond_json(struct request *r, unsigned status,
				    json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	enum MHD_Result ret;
	size_t len;

	json_decref(doc);
	if (!text) {
		static const char oom[] = "{\"error\":\"out of memory\"}";
		if (r->idem_token)
			idem_abandon(r->gw->idem, r->idem_key, r->idem_len,
				     r->idem_token);
		r->idem_token = 0;
		return respond(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
			       CW_HTTP_CONTENT_JSON, oom, sizeof(oom) - 1,
			       NULL);
	}
	len = strlen(text);
	if (r->idem_token) {
		if (status == MHD_HTTP_SERVICE_UNAVAILABLE ||
		    status == MHD_HTTP_INTERNAL_SERVER_ERROR)
			idem_abandon(r->gw->idem, r->idem_key, r->idem_len,
				     r->idem_token);
		else
			idem_finish(r->gw->idem, r->idem_key, r->idem_len,
				    r->idem_token, status, text, len,
				    mono_ms());
		r->idem_token = 0;
	}
	ret = respond(r, status, CW_HTTP_CONTENT_JSON, text, len, NULL);
	free(text);
	return ret;
}

static enum MHD_Result respond_error(struct request *r, unsigned status,
				     const char *message)
{
	return respond_json(r, status, json_pack("{s:s}", "error", message));
}

/* ---- /metrics and health --------------------------------------------------
 */

static void render_metrics(struct gateway *gw, struct cw_text *t)
{
	struct cw_prom_histogram h;

	cw_prom_family(t, "cartwatch_gateway_requests_total", "counter",
		       "HTTP requests answered, by route and status.");
	for (int r = 0; r < N_ROUTES; r++)
		for (size_t i = 0; i < N_STATUS; i++) {
			uint64_t v = atomic_load(&gw->requests[r][i]);
			if (v)
				cw_text_printf(
					t,
					"cartwatch_gateway_requests_total{"
					"route=\"%s\",status=\"%u\"} %" PRIu64
					"\n",
					route_label[r], status_codes[i], v);
		}
	cw_prom_family(t, "cartwatch_gateway_events_accepted_total", "counter",
		       "Events Kafka acknowledged (answered 202).");
	cw_text_printf(t,
		       "cartwatch_gateway_events_accepted_total %" PRIu64 "\n",
		       (uint64_t)atomic_load(&gw->events_accepted));
	cw_prom_family(t, "cartwatch_gateway_events_rejected_total", "counter",
		       "Invalid events (answered 422), by the field at fault.");
	for (int i = 0; i < INGEST_REASONS; i++)
		cw_text_printf(t,
			       "cartwatch_gateway_events_rejected_total{reason="
			       "\"%s\"} %" PRIu64 "\n",
			       ingest_reason_names[i],
			       (uint64_t)atomic_load(&gw->events_rejected[i]));
	cw_prom_family(t, "cartwatch_gateway_events_failed_total", "counter",
		       "Events Kafka did not acknowledge (their request was "
		       "answered 503).");
	cw_text_printf(t, "cartwatch_gateway_events_failed_total %" PRIu64 "\n",
		       (uint64_t)atomic_load(&gw->events_failed));
	cw_prom_family(t, "cartwatch_gateway_idempotent_replays_total",
		       "counter",
		       "Requests answered from the Idempotency-Key memory.");
	cw_text_printf(
		t, "cartwatch_gateway_idempotent_replays_total %" PRIu64 "\n",
		(uint64_t)atomic_load(&gw->idem_replays));
	cw_prom_family(t, "cartwatch_gateway_idempotency_keys", "gauge",
		       "Idempotency keys remembered.");
	cw_text_printf(t, "cartwatch_gateway_idempotency_keys %zu\n",
		       idem_count(gw->idem));
	cw_prom_family(t, "cartwatch_gateway_kafka_up", "gauge",
		       "1 while Kafka is reachable and the topic usable.");
	cw_text_printf(t, "cartwatch_gateway_kafka_up %d\n",
		       atomic_load(&gw->kafka_up) ? 1 : 0);
	cw_prom_family(t, "cartwatch_gateway_requests_in_flight", "gauge",
		       "Event requests received and not yet answered.");
	cw_text_printf(t, "cartwatch_gateway_requests_in_flight %d\n",
		       atomic_load(&gw->inflight));
	cw_prom_family(t, "cartwatch_gateway_buffered_bytes", "gauge",
		       "Request body bytes held in memory.");
	cw_text_printf(t, "cartwatch_gateway_buffered_bytes %zu\n",
		       atomic_load(&gw->buffered));
	cw_prom_family(t, "cartwatch_gateway_catalog_products", "gauge",
		       "Products in the loaded catalog.");
	pthread_rwlock_rdlock(&gw->catalog_lock);
	cw_text_printf(t, "cartwatch_gateway_catalog_products %zu\n",
		       cw_catalog_count(gw->catalog));
	pthread_rwlock_unlock(&gw->catalog_lock);
	cw_prom_family(t, "cartwatch_gateway_catalog_reloads_total", "counter",
		       "Catalog re-reads on SIGHUP, by outcome.");
	cw_text_printf(t,
		       "cartwatch_gateway_catalog_reloads_total{outcome="
		       "\"ok\"} %" PRIu64 "\n"
		       "cartwatch_gateway_catalog_reloads_total{outcome="
		       "\"failed\"} %" PRIu64 "\n",
		       (uint64_t)atomic_load(&gw->catalog_reloads),
		       (uint64_t)atomic_load(&gw->catalog_reload_failures));
	pthread_mutex_lock(&gw->latency_lock);
	h = gw->latency;
	pthread_mutex_unlock(&gw->latency_lock);
	cw_prom_histogram_write(t, "cartwatch_gateway_produce_seconds",
				"Time from a request's first message queued to "
				"Kafka's last acknowledgement.",
				NULL, true, latency_bounds, N_LATENCY_BOUNDS,
				&h);
	cw_prom_process(t, "gateway");
}

static enum MHD_Result serve_status(struct request *r, const char *url)
{
	struct gateway *gw = r->gw;
	char body[256];

	if (strcmp(url, "/metrics") == 0) {
		struct cw_text t = {0};
		enum MHD_Result ret;

		render_metrics(gw, &t);
		if (t.oom) {
			cw_text_free(&t);
			return MHD_NO;
		}
		ret = respond(r, MHD_HTTP_OK, CW_HTTP_CONTENT_PROM, t.buf,
			      t.len, NULL);
		cw_text_free(&t);
		return ret;
	}
	if (strcmp(url, "/livez") == 0)
		return respond(r, MHD_HTTP_OK, CW_HTTP_CONTENT_TEXT, "ok\n", 3,
			       NULL);
	/* /healthz and /readyz: can events be accepted now? */
	if (atomic_load(&gw->draining)) {
		snprintf(body, sizeof(body), "draining: shutting down\n");
	} else if (!atomic_load(&gw->kafka_up)) {
		pthread_mutex_lock(&gw->health_lock);
		snprintf(body, sizeof(body), "kafka unreachable: %s\n",
			 gw->kafka_reason[0] ? gw->kafka_reason : "starting");
		pthread_mutex_unlock(&gw->health_lock);
	} else {
		return respond(r, MHD_HTTP_OK, CW_HTTP_CONTENT_TEXT, "ok\n", 3,
			       NULL);
	}
	return respond(r, MHD_HTTP_SERVICE_UNAVAILABLE, CW_HTTP_CONTENT_TEXT,
		       body, strlen(body), NULL);
}

/* ---- POST /v1/events ------------------------------------------------------
 */

/* Equal without an early exit: the time taken depends on the lengths only,
 * never on where the first difference is. */
static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = alen != blen;
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* Is the request's bearer token one of --token-file's? *@who: which one
 * (0 without --token-file), so that clients with different tokens never
 * share Idempotency-Keys. */
static bool authorized(struct request *r, size_t *who)
{
	struct gateway *gw = r->gw;
	const char *h, *tok = NULL;
	bool ok = false;

	*who = 0;
	if (!gw->tokens)
		return true;
	h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	if (h && strncasecmp(h, "Bearer ", 7) == 0)
		tok = h + 7;
	else /* navigator.sendBeacon() cannot set headers */
		tok = MHD_lookup_connection_value(
			r->conn, MHD_GET_ARGUMENT_KIND, "access_token");
	if (!tok)
		return false;
	while (*tok == ' ')
		tok++;
	/* Every token is compared, whichever matches. */
	for (size_t i = 0; i < gw->n_tokens; i++) {
		bool match = ct_equal(tok, strlen(tok), gw->tokens[i],
				      strlen(gw->tokens[i]));
		ok |= match;
		*who = match ? i : *who;
	}
	return ok;
}

/* The body format from Content-Type; -1: unsupported. */
static int body_format(struct MHD_Connection *conn)
{
	const char *ct = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n;

	if (!ct)
		return INGEST_JSON;
	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; ");
	if ((n == 16 && strncasecmp(ct, "application/json", n) == 0) ||
	    (n == 10 && strncasecmp(ct, "text/plain", n) == 0))
		return INGEST_JSON;
	if ((n == 20 && strncasecmp(ct, "application/x-ndjson", n) == 0) ||
	    (n == 18 && strncasecmp(ct, "application/ndjson", n) == 0))
		return INGEST_NDJSON;
	return -1;
}

/* The headers of a POST /v1/events: decide what can be decided before the
 * body. Returns MHD_YES with nothing queued to go on reading the body. */
static enum MHD_Result begin_events(struct request *r)
{
	struct gateway *gw = r->gw;
	const char *cl, *key;
	unsigned status;
	char *body = NULL;
	size_t body_len = 0, who;
	int fmt;

	if (!authorized(r, &who))
		return respond_error(r, MHD_HTTP_UNAUTHORIZED,
				     "missing or wrong bearer token");
	fmt = body_format(r->conn);
	if (fmt < 0)
		return respond_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				     "Content-Type must be application/json "
				     "or application/x-ndjson");
	r->fmt = (enum ingest_format)fmt;
	cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > gw->cfg->max_body_bytes)
		return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
				     "body larger than --max-body");
	key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
					  "Idempotency-Key");
	if (key) {
		size_t n = strlen(key);
		bool printable = n > 0 && n <= GATEWAY_MAX_IDEM_KEY;

		for (size_t i = 0; printable && i < n; i++)
			printable = key[i] > 0x20 && key[i] < 0x7f;
		if (!printable)
			return respond_error(r, MHD_HTTP_BAD_REQUEST,
					     "Idempotency-Key must be 1 to 255 "
					     "printable ASCII characters");
		/* Remembered per client: "<token index>:<key>". */
		r->idem_len = (size_t)snprintf(r->idem_key, sizeof(r->idem_key),
					       "%zu:%s", who, key);
		switch (idem_begin(gw->idem, r->idem_key, r->idem_len,
				   mono_ms(), &r->idem_token, &status, &body,
				   &body_len)) {
		case IDEM_PENDING:
			return respond_error(r, MHD_HTTP_CONFLICT,
					     "a request with this "
					     "Idempotency-Key is in progress");
		case IDEM_DONE: {
			enum MHD_Result ret;

			atomic_fetch_add(&gw->idem_replays, 1);
			r->replayed = true;
			ret = respond(r, status, CW_HTTP_CONTENT_JSON, body,
				      body_len, NULL);
			free(body);
			return ret;
		}
		case IDEM_NEW:
			break;
		}
	}
	r->counted = true;
	atomic_fetch_add(&gw->inflight, 1);
	return MHD_YES;
}

/* Append an upload chunk; over --max-body or --max-buffered it is dropped
 * and the request marked. */
static void take_chunk(struct request *r, const char *data, size_t n)
{
	struct gateway *gw = r->gw;
	size_t max = gw->cfg->max_body_bytes;

	if (r->too_large || r->busy)
		return;
	if (n > max - r->len) {
		r->too_large = true;
		return;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096, add;
		char *b;

		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > max + 1)
			cap = max + 1;
		add = cap - r->cap;
		if (atomic_fetch_add(&gw->buffered, add) + add >
		    gw->cfg->max_buffered_bytes) {
			atomic_fetch_sub(&gw->buffered, add);
			r->busy = true;
			return;
		}
		b = realloc(r->body, cap);
		if (!b) {
			atomic_fetch_sub(&gw->buffered, add);
			r->busy = true;
			return;
		}
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
}

/* Count one report for @r; the last one resumes its connection. */
static void request_report(struct request *r)
{
	struct MHD_Connection *conn = r->conn;

	if (atomic_fetch_sub(&r->pending, 1) == 1)
		MHD_resume_connection(conn);
}

/* Produce every message of @b for @r. Returns 0 once they are queued (the
 * connection is then suspended until their reports), or the HTTP status
 * to answer now (nothing queued). */
static unsigned produce_batch(struct request *r, const struct ingest_batch *b,
			      char *why, size_t why_size)
{
	struct gateway *gw = r->gw;
	size_t queued = 0;

	if (!atomic_load(&gw->kafka_up)) {
		pthread_mutex_lock(&gw->health_lock);
		snprintf(why, why_size, "kafka unreachable: %s",
			 gw->kafka_reason[0] ? gw->kafka_reason : "starting");
		pthread_mutex_unlock(&gw->health_lock);
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	pthread_mutex_lock(&gw->produce_lock);
	if ((size_t)rd_kafka_outq_len(gw->rk) + b->n >
	    (size_t)gw->cfg->max_queue) {
		pthread_mutex_unlock(&gw->produce_lock);
		snprintf(why, why_size,
			 "local queue full (--max-queue %" PRId64
			 " events waiting for Kafka)",
			 gw->cfg->max_queue);
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	r->n_events = b->n;
	/* One extra count held by this function, so the reports of the
	 * first messages cannot resume the connection before it is
	 * suspended and every message queued. */
	atomic_store(&r->pending, b->n + 1);
	atomic_store(&r->failed, 0);
	atomic_store(&r->first_error, RD_KAFKA_RESP_ERR_NO_ERROR);
	r->produced = true;
	r->produce_start_ns = mono_ns();
	MHD_suspend_connection(r->conn);
	for (; queued < b->n; queued++) {
		const struct ingest_msg *m = &b->msgs[queued];

		if (rd_kafka_produce(gw->rkt, RD_KAFKA_PARTITION_UA,
				     RD_KAFKA_MSG_F_COPY, b->buf + m->value_off,
				     m->value_len, b->buf + m->key_off,
				     m->key_len, r) < 0)
			break;
	}
	if (queued < b->n) {
		size_t lost = b->n - queued;
		int expected = RD_KAFKA_RESP_ERR_NO_ERROR;

		atomic_compare_exchange_strong(&r->first_error, &expected,
					       (int)rd_kafka_last_error());
		atomic_fetch_add(&r->failed, lost);
		atomic_fetch_sub(&r->pending, lost);
	}
	pthread_mutex_unlock(&gw->produce_lock);
	request_report(r);
	return 0;
}

/* The answer once every report of @r is in. */
static enum MHD_Result finish_events(struct request *r)
{
	struct gateway *gw = r->gw;
	size_t failed = atomic_load(&r->failed);
	double s = (double)(mono_ns() - r->produce_start_ns) / 1e9;
	char why[256];

	pthread_mutex_lock(&gw->latency_lock);
	cw_prom_observe(&gw->latency, latency_bounds, N_LATENCY_BOUNDS, s);
	pthread_mutex_unlock(&gw->latency_lock);
	if (failed == 0) {
		atomic_fetch_add(&gw->events_accepted, r->n_events);
		return respond_json(r, MHD_HTTP_ACCEPTED,
				    json_pack("{s:I}", "accepted",
					      (json_int_t)r->n_events));
	}
	atomic_fetch_add(&gw->events_failed, failed);
	atomic_fetch_add(&gw->events_accepted, r->n_events - failed);
	snprintf(why, sizeof(why),
		 "kafka did not acknowledge %zu of the %zu events (%s); "
		 "retry the request",
		 failed, r->n_events,
		 rd_kafka_err2str(
			 (rd_kafka_resp_err_t)atomic_load(&r->first_error)));
	return respond_json(r, MHD_HTTP_SERVICE_UNAVAILABLE,
			    json_pack("{s:s,s:I,s:I}", "error", why,
				      "acknowledged",
				      (json_int_t)(r->n_events - failed),
				      "failed", (json_int_t)failed));
}

/* The whole body is in: parse, then produce or answer. */
static enum MHD_Result body_complete(struct request *r)
{
	struct gateway *gw = r->gw;
	struct ingest_batch b = {0};
	struct cw_event_json_opts o;
	char why[256];
	unsigned status;
	enum MHD_Result ret;
	int err;

	if (r->too_large)
		return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
				     "body larger than --max-body");
	if (r->busy)
		return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
				     "too many request bodies held in memory "
				     "(--max-buffered); retry");
	o.now_ms = wall_ms();
	o.max_skew_ms = gw->cfg->max_clock_skew_ms;
	/* The messages carry the catalog's currency strings encoded, so
	 * the catalog may change once ingest_parse() returns. */
	pthread_rwlock_rdlock(&gw->catalog_lock);
	o.catalog = gw->catalog;
	err = ingest_parse(&b, r->body ? r->body : "", r->len, r->fmt, &o);
	pthread_rwlock_unlock(&gw->catalog_lock);
	for (int i = 0; i < INGEST_REASONS; i++)
		if (b.rejected[i])
			atomic_fetch_add(&gw->events_rejected[i],
					 b.rejected[i]);
	if (err < 0) {
		cw_error("cannot process a request", "error=\"%s\"",
			 strerror(-err));
		ingest_batch_free(&b);
		return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     "internal error; retry");
	}
	if (b.status) {
		json_t *answer = json_incref(b.answer);
		status = b.status;
		ingest_batch_free(&b);
		return respond_json(r, status, answer);
	}
	status = produce_batch(r, &b, why, sizeof(why));
	ingest_batch_free(&b);
	if (status == 0)
		return MHD_YES; /* suspended until the reports */
	ret = respond_error(r, status, why);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct gateway *gw = cls;
	struct request *r = *req_cls;

	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->gw = gw;
		r->conn = conn;
		*req_cls = r;
		if (strcmp(url, "/v1/events") == 0) {
			r->route = ROUTE_EVENTS;
			if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
				return respond(r, MHD_HTTP_NO_CONTENT, NULL, "",
					       0, "POST, OPTIONS");
			if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
				return respond(r, MHD_HTTP_METHOD_NOT_ALLOWED,
					       CW_HTTP_CONTENT_JSON,
					       "{\"error\":\"use POST\"}", 20,
					       "POST, OPTIONS");
			return begin_events(r);
		}
		if (strcmp(url, "/metrics") == 0)
			r->route = ROUTE_METRICS;
		else if (strcmp(url, "/healthz") == 0 ||
			 strcmp(url, "/readyz") == 0 ||
			 strcmp(url, "/livez") == 0)
			r->route = ROUTE_HEALTH;
		else
			r->route = ROUTE_OTHER;
		if (r->route == ROUTE_OTHER)
			return respond(
				r, MHD_HTTP_NOT_FOUND, CW_HTTP_CONTENT_TEXT,
				"not found: POST /v1/events\n", 27, NULL);
		if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
		    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
			return respond(r, MHD_HTTP_METHOD_NOT_ALLOWED,
				       CW_HTTP_CONTENT_TEXT,
				       "method not allowed\n", 19, "GET, HEAD");
		return serve_status(r, url);
	}
	if (r->route != ROUTE_EVENTS || r->answered) {
		*upload_data_size = 0; /* a body after an answer: dropped */
		return MHD_YES;
	}
	if (r->produced)
		return finish_events(r); /* resumed: every report is in */
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		take_chunk(r, upload_data, n);
		/* libmicrohttpd answers only once the body is read: a body
		 * of unannounced length past --max-body is read on and
		 * dropped, up to as much again, so the client gets its 413;
		 * beyond that the connection is closed. */
		if (r->too_large && (r->dropped += n) > gw->cfg->max_body_bytes)
			return MHD_NO;
		return MHD_YES;
	}
	return body_complete(r);
}

/* MHD's completion callback: the request is over (answered, or the
 * client went away). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct gateway *gw = cls;
	struct request *r = *req_cls;

	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (r->idem_token) /* never answered: a retry must run */
		idem_abandon(gw->idem, r->idem_key, r->idem_len, r->idem_token);
	if (r->cap)
		atomic_fetch_sub(&gw->buffered, r->cap);
	if (r->counted)
		atomic_fetch_sub(&gw->inflight, 1);
	free(r->body);
	free(r);
	*req_cls = NULL;
}

/* ---- Kafka ------------------------------------------------------------------
 */

/* Delivery reports, on the main thread (rd_kafka_poll()). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	struct gateway *gw = opaque;
	struct request *r = m->_private;

	(void)rk;
	if (m->err) {
		int expected = RD_KAFKA_RESP_ERR_NO_ERROR;

		atomic_compare_exchange_strong(&r->first_error, &expected,
					       (int)m->err);
		atomic_fetch_add(&r->failed, 1);
		if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
			set_kafka_state(gw, false, rd_kafka_err2str(m->err));
	}
	request_report(r);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct gateway *gw = opaque;
	char fatal[256];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		cw_error("kafka producer failed for good", "reason=\"%s\"",
			 fatal);
		atomic_store(&gw->fatal, true);
		set_kafka_state(gw, false, "fatal producer error");
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
	    err == RD_KAFKA_RESP_ERR__RESOLVE ||
	    err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		set_kafka_state(gw, false, rd_kafka_err2str(err));
	cw_debug("kafka", "error=\"%s\" reason=\"%s\"", rd_kafka_err2str(err),
		 reason);
}

/* The prober: asks for the topic's metadata, often while Kafka is down,
 * seldom while up; the one way back to "up" after an outage. */
static void *prober_main(void *arg)
{
	struct gateway *gw = arg;

	pthread_mutex_lock(&gw->prober_lock);
	while (!gw->prober_stop) {
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t err;
		int64_t wait_ms;
		struct timespec ts;

		pthread_mutex_unlock(&gw->prober_lock);
		err = rd_kafka_metadata(gw->rk, 0, gw->rkt, &md,
					PROBE_TIMEOUT_MS);
		if (err) {
			set_kafka_state(gw, false, rd_kafka_err2str(err));
		} else if (md->topic_cnt != 1 || md->topics[0].err) {
			char why[160];
			snprintf(why, sizeof(why), "topic %s: %s",
				 gw->cfg->topic,
				 md->topic_cnt
					 ? rd_kafka_err2str(md->topics[0].err)
					 : "not in the metadata");
			set_kafka_state(gw, false, why);
		} else if (!atomic_load(&gw->fatal)) {
			set_kafka_state(gw, true, NULL);
		}
		if (md)
			rd_kafka_metadata_destroy(md);
		wait_ms = atomic_load(&gw->kafka_up) ? PROBE_UP_MS
						     : PROBE_DOWN_MS;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&gw->prober_lock);
		if (!gw->prober_stop)
			pthread_cond_timedwait(&gw->prober_cond,
					       &gw->prober_lock, &ts);
	}
	pthread_mutex_unlock(&gw->prober_lock);
	return NULL;
}

/* Create the producer and its topic. On failure nothing is left behind
 * (gw->rk and gw->rkt stay NULL). Returns 0 or -EINVAL with the reason in
 * @errstr. */
static int kafka_open(struct gateway *gw, char *errstr, size_t errstr_size)
{
	const struct gateway_config *cfg = gw->cfg;
	char timeout[32], queue[32];
	/* acks=all and no duplicates or reordering from retries; librdkafka's
	 * queue bound sits above ours, so a full queue is our 503 before it
	 * is librdkafka's refusal halfway through a request. */
	const struct cw_kafka_prop defaults[] = {
		{"enable.idempotence", "true"},
		{"linger.ms", "5"},
		{"message.timeout.ms", timeout},
		{"queue.buffering.max.messages", queue},
		{NULL, NULL},
	};
	rd_kafka_conf_t *kconf;

	snprintf(timeout, sizeof(timeout), "%" PRId64,
		 cfg->delivery_timeout_ms);
	snprintf(queue, sizeof(queue), "%" PRId64, cfg->max_queue + 100000);
	kconf = cw_kafka_conf_new(cfg->bootstrap_servers, defaults,
				  &cfg->kafka_props, errstr, errstr_size);
	if (!kconf)
		return -EINVAL;
	rd_kafka_conf_set_dr_msg_cb(kconf, on_delivery);
	rd_kafka_conf_set_error_cb(kconf, on_error);
	rd_kafka_conf_set_opaque(kconf, gw);
	gw->rk = cw_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, errstr_size);
	if (!gw->rk)
		return -EINVAL;
	gw->rkt = rd_kafka_topic_new(gw->rk, cfg->topic, NULL);
	if (!gw->rkt) {
		snprintf(errstr, errstr_size, "topic %s: %s", cfg->topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		goto fail_rk;
	}
	return 0;
fail_rk:
	rd_kafka_destroy(gw->rk);
	gw->rk = NULL;
	return -EINVAL;
}

/* ---- setup
 * -------------------------------------------------------------------- */

/* Read the tokens of @path, one a line, blank lines and '#' comments
 * skipped. */
static int load_tokens(struct gateway *gw, const char *path, char *errstr,
		       size_t errstr_size)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r = 0;

	if (!f) {
		snprintf(errstr, errstr_size, "cannot open --token-file %s: %s",
			 path, strerror(errno));
		return -errno;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char **t;

		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		t = realloc(gw->tokens, (gw->n_tokens + 1) * sizeof(*t));
		if (!t || !(t[gw->n_tokens] = strdup(line))) {
			if (t)
				gw->tokens = t;
			r = -ENOMEM;
			snprintf(errstr, errstr_size, "out of memory");
			break;
		}
		gw->tokens = t;
		gw->n_tokens++;
	}
	free(line);
	fclose(f);
	if (r == 0 && gw->n_tokens == 0) {
		snprintf(errstr, errstr_size,
			 "--token-file %s holds no token: nobody could send "
			 "events",
			 path);
		r = -EINVAL;
	}
	return r;
}

static void reload_catalog(struct gateway *gw)
{
	struct cw_catalog *cat, *old;
	char errstr[512];

	if (!gw->cfg->catalog) {
		cw_info("SIGHUP: no --catalog to re-read", NULL);
		return;
	}
	cat = cw_catalog_load(gw->cfg->catalog, errstr, sizeof(errstr));
	if (!cat) {
		atomic_fetch_add(&gw->catalog_reload_failures, 1);
		cw_error("catalog not reloaded, keeping the previous one",
			 "error=\"%s\"", errstr);
		return;
	}
	pthread_rwlock_wrlock(&gw->catalog_lock);
	old = gw->catalog;
	gw->catalog = cat;
	pthread_rwlock_unlock(&gw->catalog_lock);
	cw_catalog_destroy(old);
	atomic_fetch_add(&gw->catalog_reloads, 1);
	cw_info("catalog reloaded", "file=\"%s\" products=%zu",
		gw->cfg->catalog, cw_catalog_count(cat));
}

struct gateway *gateway_new(const struct gateway_config *cfg,
			    volatile sig_atomic_t *stop,
			    volatile sig_atomic_t *reload, char *errstr,
			    size_t errstr_size)
{
	struct gateway *gw = calloc(1, sizeof(*gw));
	struct cw_http_limits lim;
	int fd, family;

	if (!gw) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	gw->cfg = cfg;
	gw->stop = stop;
	gw->reload = reload;
	pthread_rwlock_init(&gw->catalog_lock, NULL);
	pthread_mutex_init(&gw->produce_lock, NULL);
	pthread_mutex_init(&gw->health_lock, NULL);
	pthread_mutex_init(&gw->latency_lock, NULL);
	pthread_mutex_init(&gw->prober_lock, NULL);
	pthread_cond_init(&gw->prober_cond, NULL);

	if (cfg->catalog) {
		gw->catalog =
			cw_catalog_load(cfg->catalog, errstr, errstr_size);
		if (!gw->catalog)
			goto fail;
		cw_info("catalog loaded", "file=\"%s\" products=%zu",
			cfg->catalog, cw_catalog_count(gw->catalog));
	}
	if (cfg->token_file) {
		if (load_tokens(gw, cfg->token_file, errstr, errstr_size) < 0)
			goto fail;
	} else {
		cw_warn("no --token-file: anyone who can connect may send "
			"events",
			"listen=%s", cfg->listen);
	}
	gw->idem =
		idem_new((size_t)cfg->idempotency_max, cfg->idempotency_ttl_ms);
	if (!gw->idem) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	if (kafka_open(gw, errstr, errstr_size) < 0)
		goto fail;
	set_kafka_state(gw, false, "connecting");
	if (pthread_create(&gw->prober, NULL, prober_main, gw) != 0) {
		snprintf(errstr, errstr_size, "cannot start a thread");
		goto fail;
	}
	gw->prober_started = true;

	fd = cw_http_listen(cfg->listen, "gateway", &family, &gw->port, errstr,
			    errstr_size);
	if (fd < 0)
		goto fail;
	lim = (struct cw_http_limits){
		.connections = (unsigned)cfg->max_connections,
		.per_ip = (unsigned)cfg->max_connections_per_ip,
		.timeout_s =
			(unsigned)((cfg->connection_timeout_ms + 999) / 1000),
		.threads = (unsigned)cfg->http_threads,
		.suspend = true,
	};
	gw->mhd = cw_http_start(fd, family, "gateway", &lim, on_request, gw,
				on_completed, gw);
	if (!gw->mhd) {
		snprintf(errstr, errstr_size,
			 "cannot start the HTTP server on %s (libmicrohttpd "
			 "refused; see the log)",
			 cfg->listen);
		goto fail;
	}
	cw_info("gateway listening", "listen=%s port=%d topic=%s auth=%s",
		cfg->listen, gw->port, cfg->topic,
		gw->tokens ? "bearer" : "open");
	return gw;
fail:
	gateway_destroy(gw);
	return NULL;
}

int gateway_port(const struct gateway *gw)
{
	return gw->port;
}

int gateway_run(struct gateway *gw)
{
	int64_t deadline;
	MHD_socket fd;

	while (!*gw->stop && !atomic_load(&gw->fatal)) {
		rd_kafka_poll(gw->rk, 100);
		if (*gw->reload) {
			*gw->reload = 0;
			reload_catalog(gw);
		}
	}
	/* Drain: no new connections; what is in flight is answered from
	 * its reports, or purged and answered 503 at the deadline. */
	atomic_store(&gw->draining, true);
	cw_info("draining", "in_flight=%d", atomic_load(&gw->inflight));
	fd = MHD_quiesce_daemon(gw->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	deadline = mono_ms() + gw->cfg->drain_timeout_ms;
	while (atomic_load(&gw->inflight) > 0 && mono_ms() < deadline)
		rd_kafka_poll(gw->rk, 50);
	if (atomic_load(&gw->inflight) > 0) {
		cw_warn("drain timeout: purging what Kafka has not "
			"acknowledged (answered 503)",
			"in_flight=%d", atomic_load(&gw->inflight));
		rd_kafka_purge(gw->rk, RD_KAFKA_PURGE_F_QUEUE |
					       RD_KAFKA_PURGE_F_INFLIGHT);
		deadline = mono_ms() + 5000;
		while (atomic_load(&gw->inflight) > 0 && mono_ms() < deadline)
			rd_kafka_poll(gw->rk, 50);
	}
	rd_kafka_flush(gw->rk, 5000);
	cw_info("drained", "in_flight=%d accepted=%" PRIu64,
		atomic_load(&gw->inflight),
		(uint64_t)atomic_load(&gw->events_accepted));
	return atomic_load(&gw->fatal) ? -EIO : 0;
}

void gateway_destroy(struct gateway *gw)
{
	if (!gw)
		return;
	if (gw->mhd)
		MHD_stop_daemon(gw->mhd);
	if (gw->prober_started) {
		pthread_mutex_lock(&gw->prober_lock);
		gw->prober_stop = true;
		pthread_cond_signal(&gw->prober_cond);
		pthread_mutex_unlock(&gw->prober_lock);
		pthread_join(gw->prober, NULL);
	}
	if (gw->rkt)
		rd_kafka_topic_destroy(gw->rkt);
	if (gw->rk)
		rd_kafka_destroy(gw->rk);
	idem_destroy(gw->idem);
	for (size_t i = 0; i < gw->n_tokens; i++)
		free(gw->tokens[i]);
	free(gw->tokens);
	cw_catalog_destroy(gw->catalog);
	pthread_cond_destroy(&gw->prober_cond);
	pthread_mutex_destroy(&gw->prober_lock);
	pthread_mutex_destroy(&gw->latency_lock);
	pthread_mutex_destroy(&gw->health_lock);
	pthread_mutex_destroy(&gw->produce_lock);
	pthread_rwlock_destroy(&gw->catalog_lock);
	free(gw);
}
