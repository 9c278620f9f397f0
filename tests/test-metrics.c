/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-metrics — the processor's HTTP endpoint (processor/metrics.c) over
 * loopback, fetched with the curl command-line tool ($CARTWATCH_CURL): the
 * exact exposition lines, the histogram's cumulative buckets, /healthz
 * turning 200 → 503 with a reason → 200, staleness, 404/405, bind errors
 * that name the address, an atomic snapshot hand-over, no fd leaks, and
 * /healthz staying answerable while another address holds idle sockets and
 * slowloris connections against the port.
 */
#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "cw_time.h"
#include "metrics.h"

/* ---- an HTTP client: the curl CLI --------------------------------------- */

struct reply {
	int status;
	char *raw;	  /* the whole output of curl -i */
	const char *body; /* into @raw, after the blank line */
};

static void reply_free(struct reply *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

/* @method on http://@host:@port@path. Returns 0 or -1 (curl failed; the
 * check is reported here). */
static int fetch(const char *method, const char *host, int port,
		 const char *path, struct reply *r)
{
	const char *curl = getenv("CARTWATCH_CURL");
	char cmd[1024], flags[64];
	size_t len = 0, cap = 4096;
	FILE *p;
	int st;
	char *sep;

	memset(r, 0, sizeof(*r));
	if (!curl || !*curl) {
		fprintf(stderr, "CARTWATCH_CURL is not set: curl was not found "
				"when meson configured (scripts/bootstrap "
				"installs it); run this test through meson "
				"test\n");
		exit(1);
	}
	if (strcmp(method, "GET") == 0)
		flags[0] = '\0';
	else if (strcmp(method, "HEAD") == 0)
		snprintf(flags, sizeof(flags), "-I");
	else
		snprintf(flags, sizeof(flags), "-X %s", method);
	snprintf(cmd, sizeof(cmd),
		 "'%s' -sS -g -i --max-time 20 %s 'http://%s:%d%s'", curl,
		 flags, host, port, path);
	p = popen(cmd, "r");
	REQUIRE(p);
	r->raw = malloc(cap);
	REQUIRE(r->raw);
	for (;;) {
		size_t n = fread(r->raw + len, 1, cap - len - 1, p);
		len += n;
		if (n == 0)
			break;
		if (len + 1 == cap) {
			cap *= 2;
			r->raw = realloc(r->raw, cap);
			REQUIRE(r->raw);
		}
	}
	r->raw[len] = '\0';
	st = pclose(p);
	if (st != 0 || sscanf(r->raw, "HTTP/%*s %d", &r->status) != 1) {
		fprintf(stderr, "curl failed (status %d): %s\n", st, cmd);
		harness_failures++;
		return -1;
	}
	sep = strstr(r->raw, "\r\n\r\n");
	r->body = sep ? sep + 4 : r->raw + len;
	return 0;
}

/* The value of header @name (case-insensitive), copied into @out. */
static const char *header(const struct reply *r, const char *name, char *out,
			  size_t out_size)
{
	size_t n = strlen(name);

	out[0] = '\0';
	for (const char *l = strstr(r->raw, "\r\n"); l && l + 2 < r->body;
	     l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
			const char *v = h + n + 1, *e = strstr(v, "\r\n");
			while (*v == ' ')
				v++;
			snprintf(out, out_size, "%.*s", (int)(e - v), v);
			break;
		}
	}
	return out;
}

/* Is @line one whole line of @text? */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

#define CHECK_LINE(text, line)                                                 \
	do {                                                                   \
		if (!has_line(text, line)) {                                   \
			fprintf(stderr, "%s:%d: no line \"%s\"\n", __FILE__,   \
				__LINE__, line);                               \
			harness_failures++;                                    \
		}                                                              \
	} while (0)

/* The value of the sample @series ("name{labels}"), or NaN. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; (p = strstr(p, series)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

/* Text format 0.0.4 as a scraper checks it: every sample belongs to a
 * family declared once by # HELP and # TYPE before it, the value parses,
 * and the text ends with a newline. */
static void check_exposition(const char *text)
{
	char families[128][96];
	int n_families = 0;
	const char *l = text;

	CHECK(*text && text[strlen(text) - 1] == '\n');
	while (*l) {
		const char *e = strchr(l, '\n');
		char line[512], name[96];
		size_t len = e ? (size_t)(e - l) : strlen(l);

		snprintf(line, sizeof(line), "%.*s", (int)len, l);
		l += len + (e ? 1 : 0);
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char type[32];
			REQUIRE(sscanf(line + 7, "%95s %31s", name, type) == 2);
			CHECK(strcmp(type, "counter") == 0 ||
			      strcmp(type, "gauge") == 0 ||
			      strcmp(type, "histogram") == 0);
			for (int i = 0; i < n_families; i++)
				CHECK(strcmp(families[i], name) != 0);
			REQUIRE(n_families < 128);
			snprintf(families[n_families++], 96, "%s", name);
			continue;
		}
		size_t nl = strcspn(line, "{ ");
		const char *value = strrchr(line, ' ');
		char *end;
		bool known = false;

		snprintf(name, sizeof(name), "%.*s", (int)nl, line);
		REQUIRE(value);
		strtod(value + 1, &end);
		CHECK(*end == '\0' && end != value + 1);
		for (int i = 0; i < n_families && !known; i++) {
			size_t fl = strlen(families[i]);
			known = strcmp(name, families[i]) == 0 ||
				(strncmp(name, families[i], fl) == 0 &&
				 (strcmp(name + fl, "_bucket") == 0 ||
				  strcmp(name + fl, "_sum") == 0 ||
				  strcmp(name + fl, "_count") == 0));
		}
		if (!known) {
			fprintf(stderr, "sample without # TYPE: %s\n", line);
			harness_failures++;
		}
	}
}

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	REQUIRE(dir);
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static struct metrics *start(void)
{
	char err[256];
	struct metrics *m = metrics_new("127.0.0.1:0", err, sizeof(err));

	if (!m)
		fprintf(stderr, "metrics_new: %s\n", err);
	REQUIRE(m);
	REQUIRE(metrics_port(m) > 0);
	return m;
}

static void healthy(struct metrics_snapshot *s)
{
	s->consuming = true;
	s->pg_ok = true;
	s->health_reason[0] = '\0';
}

/* ---- cases ----------------------------------------------------------------
 */

static void test_metrics_exposition(void)
{
	struct metrics *m = start();
	struct metrics_snapshot *s = calloc(1, sizeof(*s));
	struct reply r;
	char ct[128];

	REQUIRE(s);
	s->events[0] = 42;
	s->events[1] = 7;
	s->events[2] = 3;
	s->decode_errors = 1;
	s->invalid_events = 2;
	s->dlq_records = 4;
	s->dlq_failures = 5;
	s->late_events = 6;
	s->abandonments = 8;
	s->conversions = 9;
	s->recovered = 10;
	s->carts_expired = 11;
	s->flushes = 12;
	s->flush_failures = 13;
	s->pg_errors = 14;
	s->pg_retries = 15;
	s->fenced = 16;
	s->abandonments_published = 17;
	s->publish_failures = 18;
	s->open_carts = 19;
	s->open_sessions = 20;
	s->users = 21;
	s->assigned_partitions = 2;
	s->n_partitions = 2;
	s->partitions[0] = (struct metrics_partition){0, 5, 1.5, 100};
	s->partitions[1] = (struct metrics_partition){3, 0, NAN, 7};
	s->open_value.n = 2;
	s->open_value.row[0] = (struct open_value_row){"USD", 5, 3, 123456};
	s->open_value.row[1] = (struct open_value_row){"(other)", 1, 0, 0};
	healthy(s);
	metrics_publish(m, s);

	REQUIRE(fetch("GET", "127.0.0.1", metrics_port(m), "/metrics", &r) ==
		0);
	CHECK_INT_EQ(r.status, 200);
	CHECK_STR_EQ(header(&r, "Content-Type", ct, sizeof(ct)),
		     "text/plain; version=0.0.4; charset=utf-8");
	check_exposition(r.body);
	CHECK_LINE(r.body, "# TYPE cartwatch_events_consumed_total counter");
	CHECK_LINE(r.body,
		   "cartwatch_events_consumed_total{type=\"cart_add\"} 42");
	CHECK_LINE(r.body,
		   "cartwatch_events_consumed_total{type=\"cart_remove\"} 7");
	CHECK_LINE(r.body, "cartwatch_events_consumed_total{type=\"checkout_"
			   "complete\"} 3");
	CHECK_LINE(r.body, "cartwatch_decode_errors_total 1");
	CHECK_LINE(r.body, "cartwatch_invalid_events_total 2");
	CHECK_LINE(r.body, "cartwatch_dead_letter_records_total 4");
	CHECK_LINE(r.body, "cartwatch_dead_letter_failures_total 5");
	CHECK_LINE(r.body, "cartwatch_late_events_total 6");
	CHECK_LINE(r.body, "cartwatch_abandonments_total 8");
	CHECK_LINE(r.body, "cartwatch_conversions_total 9");
	CHECK_LINE(r.body, "cartwatch_recovered_total 10");
	CHECK_LINE(r.body, "cartwatch_carts_expired_total 11");
	CHECK_LINE(r.body, "cartwatch_flushes_total 12");
	CHECK_LINE(r.body, "cartwatch_flush_failures_total 13");
	CHECK_LINE(r.body, "cartwatch_postgresql_errors_total 14");
	CHECK_LINE(r.body, "cartwatch_postgresql_retries_total 15");
	CHECK_LINE(r.body, "cartwatch_fenced_partitions_total 16");
	CHECK_LINE(r.body, "cartwatch_abandonments_published_total 17");
	CHECK_LINE(r.body, "cartwatch_abandonment_publish_failures_total 18");
	CHECK_LINE(r.body, "# TYPE cartwatch_open_carts gauge");
	CHECK_LINE(r.body, "cartwatch_open_carts 19");
	CHECK_LINE(r.body, "cartwatch_open_sessions 20");
	CHECK_LINE(r.body, "cartwatch_users 21");
	CHECK_LINE(r.body, "cartwatch_assigned_partitions 2");
	CHECK_LINE(r.body, "# TYPE cartwatch_open_cart_value_cents gauge");
	CHECK_LINE(r.body,
		   "cartwatch_open_cart_value_cents{currency=\"USD\"} 123456");
	CHECK_LINE(r.body,
		   "cartwatch_open_cart_value_cents{currency=\"(other)\"} 0");
	CHECK_LINE(r.body, "cartwatch_open_value_carts{currency=\"USD\"} 3");
	CHECK_LINE(r.body, "cartwatch_open_value_sessions{currency=\"USD\"} 5");
	CHECK_LINE(r.body,
		   "cartwatch_open_value_sessions{currency=\"(other)\"} 1");
	CHECK_LINE(r.body, "# TYPE cartwatch_partition_lag_messages gauge");
	CHECK_LINE(r.body,
		   "cartwatch_partition_lag_messages{partition=\"0\"} 5");
	CHECK_LINE(r.body,
		   "cartwatch_partition_lag_messages{partition=\"3\"} 0");
	CHECK_LINE(r.body, "cartwatch_partition_watermark_delay_seconds{"
			   "partition=\"0\"} 1.5");
	/* No watermark yet: no series rather than a NaN. */
	CHECK(!strstr(r.body, "watermark_delay_seconds{partition=\"3\"}"));
	CHECK_LINE(r.body,
		   "cartwatch_partition_next_offset{partition=\"0\"} 100");
	CHECK_LINE(r.body,
		   "cartwatch_partition_next_offset{partition=\"3\"} 7");
	CHECK_LINE(r.body, "# TYPE cartwatch_flush_duration_seconds histogram");
	CHECK_LINE(r.body, "cartwatch_flush_duration_seconds_count 0");
	CHECK_LINE(r.body, "cartwatch_consuming 1");
	CHECK_LINE(r.body, "cartwatch_postgresql_up 1");
	CHECK(sample(r.body, "cartwatch_snapshot_age_seconds") >= 0);
	/* What every daemon says about itself. */
	{
		char want[96];
		snprintf(want, sizeof(want),
			 "cartwatch_build_info{binary=\"processor\","
			 "version=\"%s\"} 1",
			 cw_version());
		CHECK_LINE(r.body, want);
		CHECK(strcmp(cw_version(), "unknown") != 0);
	}
	CHECK(sample(r.body, "process_cpu_seconds_total") >= 0);
	CHECK(sample(r.body, "process_resident_memory_bytes") > 1e6);
	CHECK(sample(r.body, "process_virtual_memory_bytes") >=
	      sample(r.body, "process_resident_memory_bytes"));
	CHECK(sample(r.body, "process_open_fds") >= 3);
	CHECK(sample(r.body, "process_max_fds") >=
	      sample(r.body, "process_open_fds"));
	/* Started a moment ago (a minute at most, valgrind included). */
	CHECK(fabs(sample(r.body, "process_start_time_seconds") -
		   (double)time(NULL)) < 60);
	reply_free(&r);
	free(s);
	metrics_destroy(m);
}

static void test_before_first_publish(void)
{
	struct metrics *m = start();
	struct reply r;

	REQUIRE(fetch("GET", "127.0.0.1", metrics_port(m), "/healthz", &r) ==
		0);
	CHECK_INT_EQ(r.status, 503);
	CHECK_STR_EQ(r.body, "starting\n");
	reply_free(&r);

	/* Counters from zero; no partitions, so no per-partition families. */
	REQUIRE(fetch("GET", "127.0.0.1", metrics_port(m), "/metrics", &r) ==
		0);
	CHECK_INT_EQ(r.status, 200);
	check_exposition(r.body);
	CHECK_LINE(r.body,
		   "cartwatch_events_consumed_total{type=\"cart_add\"} 0");
	CHECK_LINE(r.body, "cartwatch_consuming 0");
	CHECK(!strstr(r.body, "cartwatch_partition_"));
	reply_free(&r);
	metrics_destroy(m);
}

static void test_flush_histogram(void)
{
	static const char *const le[] = {"0.005", "0.01", "0.025", "0.05",
					 "0.1",	  "0.25", "0.5",   "1",
					 "2.5",	  "5",	  "+Inf"};
	/* Exact in binary, so the sum prints exactly. */
	static const double obs[] = {0.00390625, 0.0078125, 0.03125,
				     0.0625,	 0.375,	    8};
	static const uint64_t want[] = {1, 2, 2, 3, 4, 4, 5, 5, 5, 5, 6};
	struct metrics *m = start();
	struct metrics_snapshot *s = calloc(1, sizeof(*s));
	struct reply r;
	double prev = 0;

	REQUIRE(s);
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		metrics_flush_observe(s, obs[i]);
	metrics_flush_observe(s, NAN); /* ignored */
	for (int i = 0; i < METRICS_FLUSH_BUCKETS; i++)
		CHECK_INT_EQ(s->flush_seconds.bucket[i], want[i]);
	CHECK_INT_EQ(s->flush_seconds.count, 6);
	CHECK(s->flush_seconds.sum == 8.48046875);
	healthy(s);
	metrics_publish(m, s);

	REQUIRE(fetch("GET", "127.0.0.1", metrics_port(m), "/metrics", &r) ==
		0);
	check_exposition(r.body);
	for (int i = 0; i < 11; i++) {
		char line[128];
		double v;

		snprintf(line, sizeof(line),
			 "cartwatch_flush_duration_seconds_bucket{le=\"%s\"} "
			 "%" PRIu64,
			 le[i], want[i]);
		CHECK_LINE(r.body, line);
		/* Cumulative: never decreasing, in the order written. */
		snprintf(line, sizeof(line),
			 "cartwatch_flush_duration_seconds_bucket{le=\"%s\"}",
			 le[i]);
		v = sample(r.body, line);
		CHECK(v >= prev);
		prev = v;
	}
	CHECK(strstr(r.body, "_bucket{le=\"0.005\"}") <
	      strstr(r.body, "_bucket{le=\"+Inf\"}"));
	CHECK_LINE(r.body, "cartwatch_flush_duration_seconds_sum 8.48046875");
	CHECK_LINE(r.body, "cartwatch_flush_duration_seconds_count 6");
	reply_free(&r);

	/* Upper bounds are inclusive (le = "less or equal"); a negative
	 * duration (clock step) counts as 0. */
	memset(s, 0, sizeof(*s));
	metrics_flush_observe(s, 0.005);
	metrics_flush_observe(s, -1);
	CHECK_INT_EQ(s->flush_seconds.bucket[0], 2);
	CHECK_INT_EQ(s->flush_seconds.count, 2);
	CHECK(s->flush_seconds.sum == 0.005);
	free(s);
	metrics_destroy(m);
}

static void test_healthz_transitions(void)
{
	struct metrics *m = start();
	struct metrics_snapshot *s = calloc(1, sizeof(*s));
	int port = metrics_port(m);
	struct reply r;
	char ct[128];

	REQUIRE(s);
	healthy(s);
	metrics_publish(m, s);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 200);
	CHECK_STR_EQ(r.body, "ok\n");
	CHECK_STR_EQ(header(&r, "Content-Type", ct, sizeof(ct)),
		     "text/plain; charset=utf-8");
	reply_free(&r);

	s->pg_ok = false;
	snprintf(s->health_reason, sizeof(s->health_reason),
		 "postgresql unreachable: connection refused");
	metrics_publish(m, s);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 503);
	CHECK_STR_EQ(r.body, "postgresql unreachable: connection refused\n");
	reply_free(&r);
	/* /readyz is /healthz; /livez stays 200 through an outage, so a
	 * liveness probe never restarts a processor waiting for it. */
	REQUIRE(fetch("GET", "127.0.0.1", port, "/readyz", &r) == 0);
	CHECK_INT_EQ(r.status, 503);
	CHECK_STR_EQ(r.body, "postgresql unreachable: connection refused\n");
	reply_free(&r);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/livez", &r) == 0);
	CHECK_INT_EQ(r.status, 200);
	CHECK_STR_EQ(r.body,
		     "ok: postgresql unreachable: connection refused\n");
	reply_free(&r);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/metrics", &r) == 0);
	CHECK_LINE(r.body, "cartwatch_postgresql_up 0");
	CHECK_LINE(r.body, "cartwatch_consuming 1");
	reply_free(&r);

	/* No reason given: a generic one. */
	healthy(s);
	s->consuming = false;
	metrics_publish(m, s);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 503);
	CHECK_STR_EQ(r.body, "not consuming\n");
	reply_free(&r);

	/* A reason that fills the whole buffer is cut, never overread. */
	s->pg_ok = false;
	memset(s->health_reason, 'x', sizeof(s->health_reason));
	metrics_publish(m, s);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 503);
	CHECK_INT_EQ(strlen(r.body), sizeof(s->health_reason));
	reply_free(&r);

	healthy(s);
	metrics_publish(m, s);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 200);
	CHECK_STR_EQ(r.body, "ok\n");
	reply_free(&r);
	free(s);
	metrics_destroy(m);
}

static void test_healthz_stale(void)
{
	struct metrics *m = start();
	struct metrics_snapshot *s = calloc(1, sizeof(*s));
	int port = metrics_port(m);
	int64_t deadline;
	struct reply r;
	bool stale = false;

	REQUIRE(s);
	metrics_set_stale_after(m, 300);
	healthy(s);
	metrics_publish(m, s);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 200);
	reply_free(&r);

	/* The poll loop stops publishing: unhealthy within the limit. */
	deadline = harness_now_ms() + 10000;
	while (!stale && harness_now_ms() < deadline) {
		REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
		stale = r.status == 503 &&
			strncmp(r.body, "stale: no snapshot", 18) == 0;
		reply_free(&r);
		if (!stale)
			sleep_ms(50);
	}
	CHECK(stale);
	/* A wedged poll loop is not alive: /livez fails too. */
	REQUIRE(fetch("GET", "127.0.0.1", port, "/livez", &r) == 0);
	CHECK_INT_EQ(r.status, 503);
	CHECK(strncmp(r.body, "stale: no snapshot", 18) == 0);
	reply_free(&r);

	metrics_publish(m, s);
	REQUIRE(fetch("GET", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 200);
	reply_free(&r);
	free(s);
	metrics_destroy(m);
}

static void test_not_found_and_methods(void)
{
	struct metrics *m = start();
	int port = metrics_port(m);
	struct reply r;
	char v[128];

	static const char *const missing[] = {"/", "/metrics/", "/healthzx",
					      "/favicon.ico"};
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		REQUIRE(fetch("GET", "127.0.0.1", port, missing[i], &r) == 0);
		CHECK_INT_EQ(r.status, 404);
		reply_free(&r);
	}
	REQUIRE(fetch("POST", "127.0.0.1", port, "/metrics", &r) == 0);
	CHECK_INT_EQ(r.status, 405);
	CHECK_STR_EQ(header(&r, "Allow", v, sizeof(v)), "GET, HEAD");
	reply_free(&r);
	REQUIRE(fetch("DELETE", "127.0.0.1", port, "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 405);
	reply_free(&r);

	/* HEAD: the GET headers, no body. */
	REQUIRE(fetch("HEAD", "127.0.0.1", port, "/metrics", &r) == 0);
	CHECK_INT_EQ(r.status, 200);
	CHECK_STR_EQ(header(&r, "Content-Type", v, sizeof(v)),
		     "text/plain; version=0.0.4; charset=utf-8");
	CHECK_STR_EQ(r.body, "");
	reply_free(&r);

	/* A query string does not change the path. */
	REQUIRE(fetch("GET", "127.0.0.1", port, "/metrics?name[]=x", &r) == 0);
	CHECK_INT_EQ(r.status, 200);
	reply_free(&r);
	metrics_destroy(m);
}

static void test_port_in_use(void)
{
	struct metrics *m = start();
	char addr[64], err[256] = "";
	struct metrics *m2;
	struct reply r;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", metrics_port(m));
	m2 = metrics_new(addr, err, sizeof(err));
	CHECK(m2 == NULL);
	metrics_destroy(m2);
	CHECK(strstr(err, addr) != NULL);
	CHECK(strstr(err, "Address already in use") != NULL);
	fprintf(stderr, "(expected) %s\n", err);

	/* The first one is unharmed. */
	REQUIRE(fetch("GET", "127.0.0.1", metrics_port(m), "/healthz", &r) ==
		0);
	CHECK_INT_EQ(r.status, 503);
	CHECK_STR_EQ(r.body, "starting\n");
	reply_free(&r);
	metrics_destroy(m);
}

static void test_bad_addresses(void)
{
	static const char *const bad[] = {
		"127.0.0.1",	   "127.0.0.1:",   "127.0.0.1:abc",
		"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1: 80",
		"::1:9464",	   "[::1]9464",	   "[::1",
		"192.0.2.1:0", /* TEST-NET-1: not an address of this host */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct metrics *m = metrics_new(bad[i], err, sizeof(err));

		CHECK(m == NULL);
		metrics_destroy(m);
		if (!strstr(err, bad[i])) {
			fprintf(stderr,
				"message for '%s' does not name it: %s\n",
				bad[i], err);
			harness_failures++;
		}
	}
}

static void test_ipv6_loopback(void)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool have_v6 =
		fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	char err[256] = "";
	struct metrics *m;
	struct reply r;

	if (fd >= 0)
		close(fd);
	m = metrics_new("[::1]:0", err, sizeof(err));
	if (!have_v6) {
		/* A host without IPv6: the error must still say where. */
		fprintf(stderr, "no IPv6 loopback here; checking the error\n");
		CHECK(m == NULL);
		CHECK(strstr(err, "[::1]:0") != NULL);
		metrics_destroy(m);
		return;
	}
	REQUIRE(m);
	REQUIRE(fetch("GET", "[::1]", metrics_port(m), "/healthz", &r) == 0);
	CHECK_INT_EQ(r.status, 503);
	CHECK_STR_EQ(r.body, "starting\n");
	reply_free(&r);
	metrics_destroy(m);
}

/* The publisher writes snapshots whose fields all carry the same number;
 * a scrape that mixed two snapshots would show different ones. */
static atomic_bool publisher_stop;

static void *publisher(void *arg)
{
	struct metrics *m = arg;
	struct metrics_snapshot *s = calloc(1, sizeof(*s));

	REQUIRE(s);
	healthy(s);
	for (uint64_t i = 1; !atomic_load(&publisher_stop); i++) {
		s->events[0] = s->events[1] = s->users = i;
		s->n_partitions = METRICS_MAX_PARTITIONS;
		for (uint32_t k = 0; k < METRICS_MAX_PARTITIONS; k++)
			s->partitions[k] = (struct metrics_partition){
				(int32_t)k, (int64_t)i, NAN, (int64_t)i};
		metrics_publish(m, s);
		if ((i & 15) == 0)
			sched_yield(); /* valgrind runs one thread at a time */
	}
	free(s);
	return NULL;
}

static void test_publish_is_atomic(void)
{
	struct metrics *m = start();
	pthread_t th;

	atomic_store(&publisher_stop, false);
	REQUIRE(pthread_create(&th, NULL, publisher, m) == 0);
	for (int i = 0; i < 20; i++) {
		struct reply r;
		double a, b, u, last;

		REQUIRE(fetch("GET", "127.0.0.1", metrics_port(m), "/metrics",
			      &r) == 0);
		a = sample(
			r.body,
			"cartwatch_events_consumed_total{type=\"cart_add\"}");
		b = sample(r.body, "cartwatch_events_consumed_total{type="
				   "\"cart_remove\"}");
		u = sample(r.body, "cartwatch_users");
		last = sample(r.body, "cartwatch_partition_next_offset{"
				      "partition=\"255\"}");
		CHECK(a == b && b == u && (isnan(last) || last == u));
		reply_free(&r);
	}
	atomic_store(&publisher_stop, true);
	pthread_join(th, NULL);
	metrics_destroy(m);
}

static void test_no_fd_leak(void)
{
	int before = count_fds();
	char err[256], addr[64];
	struct metrics *m = start(), *m2;
	struct reply r;

	REQUIRE(fetch("GET", "127.0.0.1", metrics_port(m), "/metrics", &r) ==
		0);
	reply_free(&r);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", metrics_port(m));
	m2 = metrics_new(addr, err, sizeof(err));
	CHECK(m2 == NULL);
	metrics_destroy(m);
	CHECK_INT_EQ(count_fds(), before);
}

/* ---- /healthz under a connection flood ---------------------------------- */

#define FLOOD_IDLE    80  /* sockets that connect and send nothing */
#define FLOOD_SLOW    16  /* sockets that dribble header bytes */
#define FLOOD_TICK_MS 200 /* one byte per slowloris socket per tick */
#define FLOOD_PROBE_MS                                                         \
	6000 /* probing lasts this long (old idle timeout 10 s) */
#define FLOOD_BOUND_MS 1000 /* each probe must answer within this */

struct flood {
	int port;
	int fd[FLOOD_IDLE + FLOOD_SLOW];
	atomic_bool stop;
	atomic_int reconnects;
};

/* A non-blocking connection from 127.0.0.2 (another loopback address than
 * the prober's) to 127.0.0.1:@port, or -1. */
static int flood_connect(int port)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	struct sockaddr_in dst = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 &&
	     errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* True when the server closed @fd (EOF or a reset). */
static bool flood_closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			  errno != ENOTCONN);
}

/* The attacker: keeps FLOOD_IDLE idle sockets and FLOOD_SLOW slowloris
 * sockets open, reopening any the server drops, until @stop. */
static void *flooder(void *arg)
{
	static const char slow_req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
				       "X-Slow: ";
	struct flood *f = arg;
	size_t sent[FLOOD_IDLE + FLOOD_SLOW] = {0};

	while (!atomic_load(&f->stop)) {
		for (int i = 0; i < FLOOD_IDLE + FLOOD_SLOW; i++) {
			bool slow = i >= FLOOD_IDLE;

			if (f->fd[i] >= 0 && flood_closed(f->fd[i])) {
				close(f->fd[i]);
				f->fd[i] = -1;
			}
			if (f->fd[i] < 0) {
				f->fd[i] = flood_connect(f->port);
				sent[i] = 0;
				atomic_fetch_add(&f->reconnects, 1);
				continue;
			}
			if (!slow)
				continue;
			/* The request line and a first header, then one
			 * header byte per tick, never the blank line. */
			char c = sent[i] < sizeof(slow_req) - 1
					 ? slow_req[sent[i]]
					 : 'a';
			if (send(f->fd[i], &c, 1,
				 MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
				sent[i]++;
		}
		sleep_ms(FLOOD_TICK_MS);
	}
	return NULL;
}

/* /healthz from 127.0.0.1 with curl, within FLOOD_BOUND_MS, while
 * 127.0.0.2 holds FLOOD_IDLE idle and FLOOD_SLOW slowloris connections
 * (more than the server's old limit of 32 in all). */
static void test_healthz_under_flood(void)
{
	struct metrics *m = start();
	struct metrics_snapshot *s = calloc(1, sizeof(*s));
	struct flood f = {.port = metrics_port(m)};
	int64_t worst = 0, until;
	int probes = 0, slow_probes = 0;
	pthread_t th;

	REQUIRE(s);
	healthy(s);
	metrics_publish(m, s);
	metrics_set_stale_after(m, 0);
	for (int i = 0; i < FLOOD_IDLE + FLOOD_SLOW; i++)
		f.fd[i] = -1;
	atomic_store(&f.stop, false);
	REQUIRE(pthread_create(&th, NULL, flooder, &f) == 0);
	sleep_ms(500); /* every attacking socket is connected */
	until = cw_mono_ms() + FLOOD_PROBE_MS;
	while (cw_mono_ms() < until) {
		struct reply r;
		int64_t t0 = cw_mono_ms(), dt;
		int rc = fetch("GET", "127.0.0.1", metrics_port(m), "/healthz",
			       &r);

		dt = cw_mono_ms() - t0;
		probes++;
		if (dt > worst)
			worst = dt;
		if (dt > FLOOD_BOUND_MS)
			slow_probes++;
		CHECK(rc == 0 && r.status == 200);
		reply_free(&r);
		sleep_ms(100);
	}
	atomic_store(&f.stop, true);
	pthread_join(th, NULL);
	fprintf(stderr,
		"flood: %d probes, worst %" PRId64 " ms, %d over %d ms, "
		"%d attacker (re)connections\n",
		probes, worst, slow_probes, FLOOD_BOUND_MS,
		atomic_load(&f.reconnects));
	CHECK(probes >= 5);
	CHECK_INT_EQ(slow_probes, 0);
	for (int i = 0; i < FLOOD_IDLE + FLOOD_SLOW; i++)
		if (f.fd[i] >= 0)
			close(f.fd[i]);
	free(s);
	metrics_destroy(m);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"metrics_exposition", test_metrics_exposition},
		{"before_first_publish", test_before_first_publish},
		{"flush_histogram", test_flush_histogram},
		{"healthz_transitions", test_healthz_transitions},
		{"healthz_stale", test_healthz_stale},
		{"not_found_and_methods", test_not_found_and_methods},
		{"port_in_use", test_port_in_use},
		{"bad_addresses", test_bad_addresses},
		{"ipv6_loopback", test_ipv6_loopback},
		{"publish_is_atomic", test_publish_is_atomic},
		{"no_fd_leak", test_no_fd_leak},
		{"healthz_under_flood", test_healthz_under_flood},
	};

	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
