/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics — Prometheus /metrics and /healthz over libmicrohttpd.
 * See metrics.h. Two threads meet here and only in metrics_publish() and
 * the request handler, both under m->lock; everything else in this file
 * runs on one side only.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cw_log.h"

/* A client that opens sockets in a loop fills the accept queue faster than
 * the server can refuse them over its limits; a deep queue keeps a probe's
 * SYN from being dropped (and retried a second later). The kernel caps it
 * at net.core.somaxconn. */
#define LISTEN_BACKLOG 1024
/* Who may hold the server's connections. Scrapers and probes send their
 * request at once and read the answer; anything else (idle sockets, a
 * slowloris dribbling header bytes) must not crowd them out. So: many slots
 * in all, few per client address (a Prometheus and a kubelet each need one
 * or two), and a client that sends nothing for CONNECTION_TIMEOUT seconds is
 * dropped. Together, clients on one address can hold at most
 * PER_IP_CONNECTION_LIMIT slots however they behave, and /healthz stays
 * answerable from every other address. */
#define CONNECTION_LIMIT	256
#define PER_IP_CONNECTION_LIMIT 16
#define CONNECTION_TIMEOUT	2 /* seconds without a byte from the client */
#define MHD_LOG_INTERVAL_MS	1000 /* at most one MHD log line a second */
#define CONTENT_TYPE_PROM	"text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT	"text/plain; charset=utf-8"

struct metrics {
	struct MHD_Daemon *mhd;
	int port;

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

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* A growing text buffer; @oom sticks once an allocation failed. */
struct text {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void text_printf(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap * 2 > t->len + (size_t)n + 1
				     ? t->cap * 2
				     : t->len + (size_t)n + 1;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->oom = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

/* A float as Prometheus reads it: NaN, +Inf, -Inf, or the shortest of
 * %.15g/%.17g that reads back exactly. The process never calls
 * setlocale(), so the decimal point is '.'. */
static const char *fmt_double(double v, char buf[32])
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	snprintf(buf, 32, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, 32, "%.17g", v);
	return buf;
}

static void family(struct text *t, const char *name, const char *type,
		   const char *help)
{
	text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_metrics(struct text *t, const struct metrics_snapshot *s,
			   double age_s)
{
	const struct metrics_histogram *h = &s->flush_seconds;
	uint32_t np = s->n_partitions < METRICS_MAX_PARTITIONS
			      ? s->n_partitions
			      : METRICS_MAX_PARTITIONS;
	char num[32];
	bool any;

	family(t, "cartwatch_events_consumed_total", "counter",
	       "Cart events decoded and applied, by type.");
	for (int i = 0; i < METRICS_EVENT_TYPES; i++)
		text_printf(t,
			    "cartwatch_events_consumed_total{type=\"%s\"} "
			    "%" PRIu64 "\n",
			    event_type_label[i], s->events[i]);

	for (size_t i = 0;
	     i < sizeof(scalar_metrics) / sizeof(scalar_metrics[0]); i++) {
		const struct metric_desc *md = &scalar_metrics[i];
		uint64_t v;

		memcpy(&v, (const char *)s + md->offset, sizeof(v));
		family(t, md->name, md->type, md->help);
		text_printf(t, "%s %" PRIu64 "\n", md->name, v);
	}

	family(t, "cartwatch_flush_duration_seconds", "histogram",
	       "Wall time of each committed PostgreSQL flush.");
	for (int i = 0; i < METRICS_FLUSH_BUCKETS; i++)
		text_printf(
			t,
			"cartwatch_flush_duration_seconds_bucket{le=\"%s\"} "
			"%" PRIu64 "\n",
			fmt_double(flush_bounds[i], num), h->bucket[i]);
	text_printf(t,
		    "cartwatch_flush_duration_seconds_bucket{le=\"+Inf\"} "
		    "%" PRIu64 "\n",
		    h->count);
	text_printf(t, "cartwatch_flush_duration_seconds_sum %s\n",
		    fmt_double(h->sum, num));
	text_printf(t, "cartwatch_flush_duration_seconds_count %" PRIu64 "\n",
		    h->count);

	/* Per partition; a family is written only when it has a series. */
	any = false;
	for (uint32_t i = 0; i < np; i++) {
		const struct metrics_partition *p = &s->partitions[i];
		if (p->lag < 0)
			continue;
		if (!any)
			family(t, "cartwatch_partition_lag_messages", "gauge",
			       "Messages between the next offset to process "
			       "and the partition's high watermark.");
		any = true;
		text_printf(
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
			family(t, "cartwatch_partition_watermark_delay_seconds",
			       "gauge",
			       "Wall clock minus the partition's event-time "
			       "watermark.");
		any = true;
		text_printf(t,
			    "cartwatch_partition_watermark_delay_seconds{"
			    "partition=\"%" PRId32 "\"} %s\n",
			    p->id, fmt_double(p->watermark_delay_s, num));
	}
	any = false;
	for (uint32_t i = 0; i < np; i++) {
		const struct metrics_partition *p = &s->partitions[i];
		if (p->next_offset < 0)
			continue;
		if (!any)
			family(t, "cartwatch_partition_next_offset", "gauge",
			       "Next Kafka offset to process.");
		any = true;
		text_printf(
			t,
			"cartwatch_partition_next_offset{partition=\"%" PRId32
			"\"} %" PRId64 "\n",
			p->id, p->next_offset);
	}

	family(t, "cartwatch_consuming", "gauge",
	       "1 while the processor consumes (not paused or stopped).");
	text_printf(t, "cartwatch_consuming %d\n", s->consuming ? 1 : 0);
	family(t, "cartwatch_postgresql_up", "gauge",
	       "1 while PostgreSQL accepts the processor's work.");
	text_printf(t, "cartwatch_postgresql_up %d\n", s->pg_ok ? 1 : 0);
	family(t, "cartwatch_snapshot_age_seconds", "gauge",
	       "Time since the poll loop last published these numbers.");
	text_printf(t, "cartwatch_snapshot_age_seconds %s\n",
		    fmt_double(age_s, num));
}

/* ---- HTTP --------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
			     const char *content_type, const char *allow,
			     void *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO; /* MHD closes the connection */
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    content_type) != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				    "no-store") != MHD_YES ||
	    (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					      allow) != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reply_static(struct MHD_Connection *conn,
				    unsigned int status, const char *allow,
				    const char *body)
{
	return reply(conn, status, CONTENT_TYPE_TEXT, allow, (void *)body,
		     strlen(body), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result serve_metrics(struct metrics *m,
				     struct MHD_Connection *conn)
{
	struct metrics_snapshot *s = malloc(sizeof(*s));
	struct text t = {0};
	double age_s = 0;

	if (!s)
		return MHD_NO;
	/* Copy, then render without the lock: the poll thread never waits
	 * for formatting or for a slow client. */
	pthread_mutex_lock(&m->lock);
	*s = m->snap;
	if (m->published)
		age_s = (double)(mono_ms() - m->published_ms) / 1000.0;
	pthread_mutex_unlock(&m->lock);

	t.cap = 8192;
	t.buf = malloc(t.cap);
	t.oom = !t.buf;
	render_metrics(&t, s, age_s);
	free(s);
	if (t.oom) {
		free(t.buf);
		return MHD_NO;
	}
	return reply(conn, MHD_HTTP_OK, CONTENT_TYPE_PROM, NULL, t.buf, t.len,
		     MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result serve_healthz(struct metrics *m,
				     struct MHD_Connection *conn)
{
	char body[192];
	bool published, consuming, pg_ok;
	char reason[sizeof(m->snap.health_reason)];
	int64_t age_ms, stale_ms;

	pthread_mutex_lock(&m->lock);
	published = m->published;
	consuming = m->snap.consuming;
	pg_ok = m->snap.pg_ok;
	memcpy(reason, m->snap.health_reason, sizeof(reason));
	age_ms = mono_ms() - m->published_ms;
	stale_ms = m->stale_ms;
	pthread_mutex_unlock(&m->lock);

	if (!published)
		return reply_static(conn, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				    "starting\n");
	if (stale_ms > 0 && age_ms > stale_ms)
		snprintf(body, sizeof(body),
			 "stale: no snapshot from the poll loop for %.1fs\n",
			 (double)age_ms / 1000.0);
	else if (consuming && pg_ok && reason[0]) {
		/* Healthy, with something to say (records lost to a gap). */
		int n = snprintf(body, sizeof(body), "ok: %s\n", reason);
		return reply(conn, MHD_HTTP_OK, CONTENT_TYPE_TEXT, NULL, body,
			     (size_t)n, MHD_RESPMEM_MUST_COPY);
	} else if (consuming && pg_ok)
		return reply_static(conn, MHD_HTTP_OK, NULL, "ok\n");
	else if (reason[0])
		snprintf(body, sizeof(body), "%s\n", reason);
	else
		snprintf(body, sizeof(body), "%s\n",
			 !pg_ok ? "postgresql unreachable" : "not consuming");
	return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT,
		     NULL, body, strlen(body), MHD_RESPMEM_MUST_COPY);
}

/* MHD's access handler, on the HTTP thread. Every answer is decided on the
 * first call (headers only); a request body, if any, is discarded. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct metrics *m = cls;
	bool is_metrics = strcmp(url, "/metrics") == 0;
	bool is_healthz = strcmp(url, "/healthz") == 0;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (!is_metrics && !is_healthz)
		return reply_static(conn, MHD_HTTP_NOT_FOUND, NULL,
				    "not found: try /metrics or /healthz\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "GET, HEAD", "method not allowed\n");
	/* HEAD: MHD sends the headers of the same response, no body. */
	return is_metrics ? serve_metrics(m, conn) : serve_healthz(m, conn);
}

/* MHD's own error messages (accept failures, broken clients, connections
 * refused over the limits) go to the process log, one line each, but at
 * most one a second: a client opening sockets in a loop must not flood the
 * log. The lines left out are counted in the next one written. Runs on
 * MHD's thread. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static _Atomic int64_t last_ms = INT64_MIN / 2;
	static atomic_uint_fast64_t suppressed;
	int64_t now = mono_ms(), prev = atomic_load(&last_ms);
	uint64_t skipped;
	char buf[256];
	size_t n;

	(void)cls;
	if (now - prev < MHD_LOG_INTERVAL_MS ||
	    !atomic_compare_exchange_strong(&last_ms, &prev, now)) {
		atomic_fetch_add(&suppressed, 1);
		return;
	}
	skipped = atomic_exchange(&suppressed, 0);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '"')
			*p = '\'';
	cw_warn("metrics http server", "detail=\"%s\" suppressed=%" PRIu64, buf,
		skipped);
}

/* ---- listening socket --------------------------------------------------- */

/* Split "HOST:PORT" / "[V6]:PORT" into @host (empty: every address) and
 * @port. Returns 0 or -EINVAL with the reason in @errstr. */
static int split_addr(const char *addr, char *host, size_t host_size,
		      char port[8], char *errstr, size_t errstr_size)
{
	const char *colon, *h = addr;
	size_t hlen, digits;
	long p;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':') {
			snprintf(errstr, errstr_size,
				 "bad metrics address '%s': expected "
				 "[IPV6]:PORT",
				 addr);
			return -EINVAL;
		}
		h = addr + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr))) {
			snprintf(errstr, errstr_size,
				 "bad metrics address '%s': expected HOST:PORT "
				 "(IPv6 in brackets: [::1]:9464)",
				 addr);
			return -EINVAL;
		}
		hlen = (size_t)(colon - addr);
	}
	digits = strspn(colon + 1, "0123456789");
	p = digits >= 1 && digits <= 5 ? strtol(colon + 1, NULL, 10) : -1;
	if (colon[1 + digits] || p < 0 || p > 65535) {
		snprintf(errstr, errstr_size,
			 "bad metrics address '%s': port must be 0-65535",
			 addr);
		return -EINVAL;
	}
	if (hlen >= host_size) {
		snprintf(errstr, errstr_size,
			 "bad metrics address '%s': host too long", addr);
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	snprintf(port, 8, "%ld", p);
	return 0;
}

/* A listening TCP socket on @addr. Returns the fd, its family in *@family
 * and bound port in *@port; or -errno with the reason in @errstr. */
static int listen_on(const char *addr, int *family, int *port, char *errstr,
		     size_t errstr_size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], portstr[8];
	int fd = -1, err = 0, r;

	if ((r = split_addr(addr, host, sizeof(host), portstr, errstr,
			    errstr_size)) < 0)
		return r;
	r = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
	if (r) {
		snprintf(errstr, errstr_size,
			 "cannot resolve metrics address '%s': %s", addr,
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EINVAL;
	}
	/* The first address that binds wins (a name may resolve to v4 and
	 * v6); the error reported is the last one. */
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int on = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		/* Restart without waiting for TIME_WAIT; on Linux this still
		 * refuses a port another socket is listening on. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, LISTEN_BACKLOG) == 0 &&
		    getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
			*family = ai->ai_family;
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(errstr, errstr_size,
			 "cannot listen on metrics address %s: %s", addr,
			 strerror(err));
		return -err;
	}
	*port = ss.ss_family == AF_INET6
			? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			: ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* ---- API ---------------------------------------------------------------- */

struct metrics *metrics_new(const char *addr, char *errstr, size_t errstr_size)
{
	struct metrics *m = calloc(1, sizeof(*m));
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	sigset_t all, old;
	int fd, family = AF_INET;

	if (!m) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	m->stale_ms = METRICS_STALE_MS;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail_free;
	}
	fd = listen_on(addr, &family, &m->port, errstr, errstr_size);
	if (fd < 0)
		goto fail_mutex;
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* One internal thread (epoll or poll, never select: fds above
	 * FD_SETSIZE are normal next to librdkafka). Its sockets are
	 * non-blocking and every answer is rendered in memory at once, so
	 * a slow client holds a slot, never the thread. MHD owns @fd from
	 * here: it closes it in MHD_stop_daemon() and on its own failure
	 * paths, so it is not closed again below. The thread starts with
	 * every signal blocked, so SIGTERM/SIGINT reach the main thread's
	 * handler, as with librdkafka's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	m->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
		on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned int)PER_IP_CONNECTION_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT,
		MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!m->mhd) {
		snprintf(errstr, errstr_size,
			 "cannot start the metrics HTTP server on %s "
			 "(libmicrohttpd refused; see the log)",
			 addr);
		goto fail_mutex;
	}
	cw_info("metrics listening", "addr=%s port=%d", addr, m->port);
	return m;

fail_mutex:
	pthread_mutex_destroy(&m->lock);
fail_free:
	free(m);
	return NULL;
}

int metrics_port(const struct metrics *m)
{
	return m->port;
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
	m->published_ms = mono_ms();
	pthread_mutex_unlock(&m->lock);
}

void metrics_flush_observe(struct metrics_snapshot *snap, double seconds)
{
	struct metrics_histogram *h = &snap->flush_seconds;

	if (isnan(seconds))
		return;
	if (seconds < 0)
		seconds = 0; /* a clock step must not make the sum shrink */
	for (int i = 0; i < METRICS_FLUSH_BUCKETS; i++)
		if (seconds <= flush_bounds[i])
			h->bucket[i]++;
	h->count++;
	h->sum += seconds;
}

void metrics_destroy(struct metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
