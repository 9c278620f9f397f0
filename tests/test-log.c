/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-log — common/cw_log.c: whatever the values hold (a PostgreSQL error
 * spread over lines with quotes, backslashes and tabs, a user id with
 * spaces and '=', control bytes, bytes that are not UTF-8, a value longer
 * than a record), every call writes exactly one line, and that line parses
 * back — as logfmt with an independent decoder here, as JSON with jansson —
 * into the very values the caller passed. Random bytes in a value and the
 * message never split or break a record either.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cw_log.h"
#include "harness.h"

/* What PostgreSQL sends for a refused batch: several lines, quotes, a
 * backslash, a tab, a carriage return and a control byte. */
static const char pg_error[] =
	"ERROR:  duplicate key value violates unique constraint "
	"\"sessions_pkey\"\n"
	"DETAIL:  Key (user_id, started_at)=(u 1, 2026-11-29) already "
	"exists.\r\n"
	"CONTEXT:\tCOPY sessions, line 3: \"u 1\\t\x01\"";

/* Split @text into lines in place; returns the count. Every record must
 * end with '\n', so a last line without one fails the test. */
static size_t split_lines(char *text, char **lines, size_t max)
{
	size_t n = 0;
	char *p = text;

	while (*p) {
		char *nl = strchr(p, '\n');

		CHECK(nl != NULL);
		if (!nl)
			break;
		*nl = '\0';
		REQUIRE(n < max);
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

struct kv {
	char key[64];
	char val[8192];
};

/* Append code point @cp as UTF-8. */
static size_t put_utf8(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	out[0] = (char)(0xe0 | (cp >> 12));
	out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

/* A strict logfmt decoder, written apart from cw_log: `key=value` or
 * `key="escaped"` separated by single spaces, escapes \" \\ \n \r \t
 * \uXXXX. Returns the number of pairs, or -1 on anything malformed. */
static int parse_logfmt(const char *line, struct kv *kv, int max)
{
	const char *p = line;
	int n = 0;

	while (*p) {
		size_t k = 0, v = 0;

		if (n >= max)
			return -1;
		while (*p && *p != '=' && *p != ' ' && *p != '"' &&
		       k < sizeof(kv[n].key) - 1)
			kv[n].key[k++] = *p++;
		kv[n].key[k] = '\0';
		if (k == 0 || *p != '=')
			return -1;
		p++;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (v > sizeof(kv[n].val) - 8)
					return -1;
				if (*p != '\\') {
					if ((unsigned char)*p < 0x20)
						return -1;
					kv[n].val[v++] = *p++;
					continue;
				}
				p++;
				switch (*p) {
				case '"':
				case '\\':
					kv[n].val[v++] = *p;
					break;
				case 'n':
					kv[n].val[v++] = '\n';
					break;
				case 'r':
					kv[n].val[v++] = '\r';
					break;
				case 't':
					kv[n].val[v++] = '\t';
					break;
				case 'u': {
					char hex[5] = {0};
					char *end;
					unsigned long cp;

					if (strlen(p + 1) < 4)
						return -1;
					memcpy(hex, p + 1, 4);
					cp = strtoul(hex, &end, 16);
					if (*end)
						return -1;
					v += put_utf8(kv[n].val + v,
						      (unsigned)cp);
					p += 4;
					break;
				}
				default:
					return -1;
				}
				p++;
			}
			if (*p != '"')
				return -1;
			p++;
		} else {
			while (*p && *p != ' ') {
				if (*p == '"' || *p == '=' ||
				    (unsigned char)*p < 0x20 ||
				    v >= sizeof(kv[n].val) - 1)
					return -1;
				kv[n].val[v++] = *p++;
			}
		}
		kv[n].val[v] = '\0';
		n++;
		if (*p == ' ')
			p++;
		else if (*p)
			return -1;
	}
	return n;
}

static const char *kv_get(const struct kv *kv, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return kv[i].val;
	return NULL;
}

/* The calls both formats are checked with: what a processor logs when
 * PostgreSQL refuses a batch, and a status-like line with every kind of
 * conversion the call sites use. */
static void log_samples(void)
{
	cw_error("permanent PostgreSQL error: \"quarantined\"\nsee below",
		 "partition=%d sqlstate=%s error=\"%s\"", 3, "23505", pg_error);
	cw_warn("status",
		"events=%" PRIu64 " rate=%.0f/s user=%s text=\"%.*s\" "
		"pct=100%% empty=\"%s\" size=%zu neg=%" PRId64,
		(uint64_t)1234567890123ULL, 12.4, "u=1 x \"y\"", 5, "abcdefgh",
		"", (size_t)42, (int64_t)-7);
	cw_info("plain", NULL);
}

static void test_logfmt_round_trip(void)
{
	char *out, *lines[16];
	struct kv *kv = calloc(16, sizeof(*kv));
	size_t n;
	int m;

	REQUIRE(kv);
	cw_log_set_format(CW_LOG_LOGFMT);
	cw_log_set_level(CW_LOG_DEBUG);
	harness_capture_begin();
	log_samples();
	out = harness_capture_end();
	n = split_lines(out, lines, 16);
	CHECK_INT_EQ(n, 3);
	for (size_t i = 0; i < n; i++) {
		m = parse_logfmt(lines[i], kv, 16);
		CHECK(m >= 3);
		if (m < 3) {
			fprintf(stderr, "unparseable: %s\n", lines[i]);
			continue;
		}
		CHECK(strncmp(kv_get(kv, m, "ts"), "20", 2) == 0);
		if (i == 0) {
			CHECK_INT_EQ(m, 6);
			CHECK_STR_EQ(kv_get(kv, m, "level"), "error");
			CHECK_STR_EQ(kv_get(kv, m, "msg"),
				     "permanent PostgreSQL error: "
				     "\"quarantined\"\nsee below");
			CHECK_STR_EQ(kv_get(kv, m, "partition"), "3");
			CHECK_STR_EQ(kv_get(kv, m, "sqlstate"), "23505");
			CHECK_STR_EQ(kv_get(kv, m, "error"), pg_error);
		} else if (i == 1) {
			CHECK_INT_EQ(m, 11);
			CHECK_STR_EQ(kv_get(kv, m, "level"), "warn");
			CHECK_STR_EQ(kv_get(kv, m, "events"), "1234567890123");
			CHECK_STR_EQ(kv_get(kv, m, "rate"), "12/s");
			CHECK_STR_EQ(kv_get(kv, m, "user"), "u=1 x \"y\"");
			CHECK_STR_EQ(kv_get(kv, m, "text"), "abcde");
			CHECK_STR_EQ(kv_get(kv, m, "pct"), "100%");
			CHECK_STR_EQ(kv_get(kv, m, "empty"), "");
			CHECK_STR_EQ(kv_get(kv, m, "size"), "42");
			CHECK_STR_EQ(kv_get(kv, m, "neg"), "-7");
		} else {
			CHECK_INT_EQ(m, 3);
			CHECK_STR_EQ(kv_get(kv, m, "msg"), "plain");
		}
	}
	/* Simple values stay unquoted, for grep. */
	CHECK(n == 3 && strstr(lines[0], " partition=3 sqlstate=23505 "));
	free(out);
	free(kv);
}

static void test_json_round_trip(void)
{
	char *out, *lines[16];
	size_t n;

	cw_log_set_format(CW_LOG_JSON);
	cw_log_set_level(CW_LOG_DEBUG);
	harness_capture_begin();
	log_samples();
	out = harness_capture_end();
	cw_log_set_format(CW_LOG_LOGFMT);
	n = split_lines(out, lines, 16);
	CHECK_INT_EQ(n, 3);
	for (size_t i = 0; i < n; i++) {
		json_error_t err;
		json_t *o = json_loads(lines[i], JSON_REJECT_DUPLICATES, &err);

		CHECK(json_is_object(o));
		if (!o) {
			fprintf(stderr, "not JSON (%s): %s\n", err.text,
				lines[i]);
			continue;
		}
		CHECK(json_is_string(json_object_get(o, "ts")));
		if (i == 0) {
			CHECK_INT_EQ(json_object_size(o), 6);
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "level")),
				"error");
			CHECK_INT_EQ(json_integer_value(
					     json_object_get(o, "partition")),
				     3);
			CHECK_STR_EQ(json_string_value(
					     json_object_get(o, "sqlstate")),
				     "23505");
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "error")),
				pg_error);
		} else if (i == 1) {
			CHECK_INT_EQ(json_object_size(o), 11);
			CHECK_INT_EQ(json_integer_value(
					     json_object_get(o, "events")),
				     1234567890123LL);
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "rate")),
				"12/s");
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "user")),
				"u=1 x \"y\"");
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "pct")),
				"100%");
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "empty")),
				"");
			CHECK_INT_EQ(
				json_integer_value(json_object_get(o, "size")),
				42);
			CHECK_INT_EQ(
				json_integer_value(json_object_get(o, "neg")),
				-7);
		}
		json_decref(o);
	}
	free(out);
}

/* Control bytes and bytes that are not UTF-8 come out escaped; JSON
 * parsers (jansson refuses invalid UTF-8) still accept the line. */
static void test_bad_bytes(void)
{
	static const char raw[] = "a\xff b\x7f\x1b[31m\xc3\xa9";
	static const char back[] = "a\xef\xbf\xbd b\x7f\x1b[31m\xc3\xa9";
	char *out, *lines[4];
	struct kv *kv = calloc(8, sizeof(*kv));
	size_t n;
	int m;

	REQUIRE(kv);
	harness_capture_begin();
	cw_warn("bad bytes", "user=%s", raw);
	cw_log_set_format(CW_LOG_JSON);
	cw_warn("bad bytes", "user=%s", raw);
	cw_log_set_format(CW_LOG_LOGFMT);
	out = harness_capture_end();
	n = split_lines(out, lines, 4);
	CHECK_INT_EQ(n, 2);
	if (n == 2) {
		json_t *o;

		m = parse_logfmt(lines[0], kv, 8);
		CHECK_INT_EQ(m, 4);
		CHECK_STR_EQ(kv_get(kv, m, "user"), back);
		CHECK(strchr(lines[0], '\x1b') == NULL);
		o = json_loads(lines[1], 0, NULL);
		CHECK(o != NULL);
		CHECK_STR_EQ(json_string_value(json_object_get(o, "user")),
			     back);
		json_decref(o);
	}
	free(out);
	free(kv);
}

/* A value longer than a record is cut, and the line still ends properly
 * and parses; the fields after it are left out whole. */
static void test_long_value(void)
{
	size_t big = 10000;
	char *v = malloc(big + 1), *out, *lines[4];
	struct kv *kv = calloc(8, sizeof(*kv));
	size_t n;

	REQUIRE(v && kv);
	for (size_t i = 0; i < big; i++)
		v[i] = "\x01\"\n\\"[i % 4];
	v[big] = '\0';
	harness_capture_begin();
	cw_error("long", "error=\"%s\" after=1", v);
	cw_log_set_format(CW_LOG_JSON);
	cw_error("long", "error=\"%s\" after=1", v);
	cw_log_set_format(CW_LOG_LOGFMT);
	out = harness_capture_end();
	n = split_lines(out, lines, 4);
	CHECK_INT_EQ(n, 2);
	if (n == 2) {
		json_t *o;
		int m = parse_logfmt(lines[0], kv, 8);
		const char *got = kv_get(kv, m, "error");

		CHECK(strlen(lines[0]) < 4096);
		CHECK(strlen(lines[1]) < 4096);
		CHECK_INT_EQ(m, 4);
		CHECK(got && strlen(got) > 1000 &&
		      strncmp(got, v, strlen(got)) == 0);
		o = json_loads(lines[1], 0, NULL);
		CHECK(o != NULL);
		got = json_string_value(json_object_get(o, "error"));
		CHECK(got && strlen(got) > 1000 &&
		      strncmp(got, v, strlen(got)) == 0);
		json_decref(o);
	}
	free(out);
	free(kv);
	free(v);
}

/* Random bytes (fixed seed) in a value: always one line a record, and it
 * always parses, in both formats. */
static void test_random_bytes(void)
{
	enum { RECORDS = 500 };
	char *out, **lines = calloc(RECORDS + 1, sizeof(*lines));
	struct kv *kv = calloc(8, sizeof(*kv));
	unsigned seed = 12345;
	size_t n;

	REQUIRE(lines && kv);
	harness_capture_begin();
	for (int i = 0; i < RECORDS; i++) {
		char v[300];
		size_t len = (size_t)(rand_r(&seed) % (sizeof(v) - 1));

		for (size_t j = 0; j < len; j++)
			v[j] = (char)(rand_r(&seed) % 255 + 1);
		v[len] = '\0';
		cw_log_set_format(i % 2 ? CW_LOG_JSON : CW_LOG_LOGFMT);
		cw_warn(v, "k=%s n=%d", v, i);
	}
	cw_log_set_format(CW_LOG_LOGFMT);
	out = harness_capture_end();
	n = split_lines(out, lines, RECORDS + 1);
	CHECK_INT_EQ(n, RECORDS);
	for (size_t i = 0; i < n; i++) {
		if (i % 2) {
			json_t *o = json_loads(lines[i], 0, NULL);

			CHECK(o && json_integer_value(json_object_get(
					   o, "n")) == (json_int_t)i);
			json_decref(o);
		} else {
			int m = parse_logfmt(lines[i], kv, 8);
			const char *num = m == 5 ? kv_get(kv, m, "n") : NULL;

			CHECK(num && strtol(num, NULL, 10) == (long)i);
		}
	}
	free(out);
	free(lines);
	free(kv);
}

static void test_options(void)
{
	enum cw_log_format f = CW_LOG_LOGFMT;
	enum cw_log_level l = CW_LOG_DEBUG;
	char *out;

	CHECK_INT_EQ(cw_log_parse_format("json", &f), 0);
	CHECK_INT_EQ(f, CW_LOG_JSON);
	CHECK_INT_EQ(cw_log_parse_format("LOGFMT", &f), 0);
	CHECK_INT_EQ(f, CW_LOG_LOGFMT);
	CHECK_INT_EQ(cw_log_parse_format("xml", &f), -EINVAL);
	CHECK_INT_EQ(cw_log_parse_level("warning", &l), 0);
	CHECK_INT_EQ(l, CW_LOG_WARN);
	cw_log_set_level(CW_LOG_WARN);
	harness_capture_begin();
	cw_info("hidden", "x=%d", 1);
	cw_debug("hidden", NULL);
	out = harness_capture_end();
	cw_log_set_level(CW_LOG_DEBUG);
	CHECK_STR_EQ(out, "");
	free(out);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"logfmt_round_trip", test_logfmt_round_trip},
		{"json_round_trip", test_json_round_trip},
		{"bad_bytes", test_bad_bytes},
		{"long_value", test_long_value},
		{"random_bytes", test_random_bytes},
		{"options", test_options},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
