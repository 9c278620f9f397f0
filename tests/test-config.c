/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-config — the option table engine: durations, precedence of default,
 * environment and command line, usage errors, -X lists, and the
 * connection-string redaction used in logs.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "cw_config.h"
#include "cw_log.h"
#include "harness.h"

struct cfg {
	char *name;
	int64_t count;
	int64_t timeout_ms;
	double scale;
	bool verbose;
	struct cw_kv_list props;
};

static const struct cw_opt opts[] = {
	{"name", 'n', CW_OPT_STRING, offsetof(struct cfg, name), "dflt", NULL,
	 "A name", false},
	{"count", 'c', CW_OPT_INT, offsetof(struct cfg, count), "3", NULL,
	 "A count", false},
	{"timeout", 0, CW_OPT_DURATION, offsetof(struct cfg, timeout_ms), "30m",
	 NULL, "A timeout", false},
	{"scale", 0, CW_OPT_DOUBLE, offsetof(struct cfg, scale), "1", NULL,
	 "A scale", false, "CARTWATCH_T_SCALE"},
	{"verbose", 'v', CW_OPT_BOOL, offsetof(struct cfg, verbose), NULL, NULL,
	 "Talk more", false},
	{"property", 'X', CW_OPT_KV, offsetof(struct cfg, props), NULL, NULL,
	 "A key=value", false},
};
#define N (sizeof(opts) / sizeof(opts[0]))

static int parse(struct cfg *c, int argc, char **argv, char *err, size_t n)
{
	memset(c, 0, sizeof(*c));
	return cw_config_parse(opts, N, c, "t", NULL, argc, argv, err, n);
}

static void test_durations(void)
{
	static const struct {
		const char *text;
		int r;
		int64_t ms;
	} cases[] = {
		{"250ms", 0, 250},     {"30s", 0, 30000},    {"5m", 0, 300000},
		{"2h", 0, 7200000},    {"7d", 0, 604800000}, {"1.5s", 0, 1500},
		{"10", 0, 10000},      {"0", 0, 0},	     {"", -EINVAL, 0},
		{"-1s", -EINVAL, 0},   {"5x", -EINVAL, 0},   {"s", -EINVAL, 0},
		{"1e30d", -EINVAL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		int r = cw_duration_parse(cases[i].text, &ms);
		CHECK_INT_EQ(r, cases[i].r);
		if (r == 0)
			CHECK_INT_EQ(ms, cases[i].ms);
	}
	char buf[32];
	CHECK_STR_EQ(cw_duration_format(1800000, buf, sizeof(buf)), "30m");
	CHECK_STR_EQ(cw_duration_format(1500, buf, sizeof(buf)), "1500ms");
	CHECK_STR_EQ(cw_duration_format(0, buf, sizeof(buf)), "0ms");
}

static void test_precedence(void)
{
	struct cfg c;
	char err[256] = "";
	char *argv[] = {"t",   "--count", "9",	"-X",
			"a=1", "-Xb=x=y", "-v", NULL};

	/* Defaults only. */
	unsetenv("CARTWATCH_COUNT");
	unsetenv("CARTWATCH_NAME");
	CHECK_INT_EQ(parse(&c, 1, argv, err, sizeof(err)), 0);
	CHECK_STR_EQ(c.name, "dflt");
	CHECK_INT_EQ(c.count, 3);
	CHECK_INT_EQ(c.timeout_ms, 1800000);
	CHECK(!c.verbose);
	cw_config_free(opts, N, &c);

	/* Environment beats default, command line beats environment. */
	setenv("CARTWATCH_NAME", "from-env", 1);
	setenv("CARTWATCH_COUNT", "5", 1);
	setenv("CARTWATCH_TIMEOUT", "2m", 1);
	CHECK_INT_EQ(parse(&c, 7, argv, err, sizeof(err)), 0);
	CHECK_STR_EQ(c.name, "from-env");
	CHECK_INT_EQ(c.count, 9);
	CHECK_INT_EQ(c.timeout_ms, 120000);
	CHECK(c.verbose);
	CHECK_INT_EQ(c.props.count, 2);
	CHECK_STR_EQ(cw_kv_get(&c.props, "a"), "1");
	CHECK_STR_EQ(cw_kv_get(&c.props, "b"), "x=y");
	CHECK(cw_kv_get(&c.props, "c") == NULL);
	cw_config_free(opts, N, &c);
	unsetenv("CARTWATCH_NAME");
	unsetenv("CARTWATCH_COUNT");
	unsetenv("CARTWATCH_TIMEOUT");

	/* An option with a variable of its own reads that one only. */
	setenv("CARTWATCH_SCALE", "7", 1);
	CHECK_INT_EQ(parse(&c, 1, argv, err, sizeof(err)), 0);
	CHECK(c.scale == 1);
	cw_config_free(opts, N, &c);
	setenv("CARTWATCH_T_SCALE", "2.5", 1);
	CHECK_INT_EQ(parse(&c, 1, argv, err, sizeof(err)), 0);
	CHECK(c.scale == 2.5);
	cw_config_free(opts, N, &c);
	unsetenv("CARTWATCH_SCALE");
	unsetenv("CARTWATCH_T_SCALE");
}

/* librdkafka values may hold commas: the command line takes one pair as
 * it is; in the environment's list a piece without '=' continues the
 * previous value. */
static void test_kv_lists(void)
{
	static const struct {
		const char *env;
		const char *argv_x; /* NULL: none */
		int r;
		size_t count;
		const char *debug, *linger, *a;
	} cases[] = {
		{NULL, "debug=cgrp,protocol", 0, 1, "cgrp,protocol", NULL,
		 NULL},
		{NULL, "debug=a b", 0, 1, "a b", NULL, NULL},
		{"debug=cgrp,fetch,linger.ms=5", NULL, 0, 2, "cgrp,fetch", "5",
		 NULL},
		{"linger.ms=5 debug=all, a=1", NULL, 0, 3, "all", "5", "1"},
		{"a=1,debug=x", "debug=cgrp,fetch", 0, 3, "cgrp,fetch", NULL,
		 "1"},
		{"garbage,a=1", NULL, -EINVAL, 0, NULL, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"t", "-X", (char *)cases[i].argv_x, NULL};
		struct cfg c;
		char err[256] = "";

		if (cases[i].env)
			setenv("CARTWATCH_PROPERTY", cases[i].env, 1);
		else
			unsetenv("CARTWATCH_PROPERTY");
		CHECK_INT_EQ(parse(&c, cases[i].argv_x ? 3 : 1, argv, err,
				   sizeof(err)),
			     cases[i].r);
		if (cases[i].r == 0) {
			CHECK_INT_EQ(c.props.count, cases[i].count);
			/* The command line's pair comes last and wins. */
			if (cases[i].debug)
				CHECK_STR_EQ(cw_kv_get(&c.props, "debug"),
					     cases[i].debug);
			if (cases[i].linger)
				CHECK_STR_EQ(cw_kv_get(&c.props, "linger.ms"),
					     cases[i].linger);
			if (cases[i].a)
				CHECK_STR_EQ(cw_kv_get(&c.props, "a"),
					     cases[i].a);
		} else {
			CHECK(strstr(err, "CARTWATCH_PROPERTY") != NULL);
		}
		cw_config_free(opts, N, &c);
	}
	unsetenv("CARTWATCH_PROPERTY");
}

static void test_usage_errors(void)
{
	static char *bad[][4] = {
		{"t", "--count", "x", NULL},	 {"t", "--nope", NULL, NULL},
		{"t", "--timeout", "5y", NULL},	 {"t", "stray", NULL, NULL},
		{"t", "-X", "novalue", NULL},	 {"t", "--count", NULL, NULL},
		{"t", "--scale", "1.0.0", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg c;
		char err[256] = "";
		int argc = 0;
		while (bad[i][argc])
			argc++;
		CHECK_INT_EQ(parse(&c, argc, bad[i], err, sizeof(err)),
			     -EINVAL);
		CHECK(err[0] != '\0');
		cw_config_free(opts, N, &c);
	}
	/* A bad environment value names the variable. */
	struct cfg c;
	char err[256] = "";
	char *argv[] = {"t", NULL};
	setenv("CARTWATCH_TIMEOUT", "soon", 1);
	CHECK_INT_EQ(parse(&c, 1, argv, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "CARTWATCH_TIMEOUT") != NULL);
	cw_config_free(opts, N, &c);
	unsetenv("CARTWATCH_TIMEOUT");
}

static void test_redaction(void)
{
	static const char *cases[][2] = {
		{"host=db password=s3cret user=cw",
		 "user=cw password=*** host=db"},
		{"password='a b\\' c' host=x", "password=*** host=x"},
		{"postgresql://cw:s3cret@db:5432/cartwatch",
		 "user=cw password=*** dbname=cartwatch host=db port=5432"},
		{"postgresql://db:5432/x?password=abc&sslmode=require",
		 "password=*** dbname=x host=db port=5432 sslmode=require"},
		{"host=db user=cw", "user=cw host=db"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		cw_log_redact_conninfo(cases[i][0], out, sizeof(out));
		CHECK_STR_EQ(out, cases[i][1]);
		CHECK(strstr(out, "s3cret") == NULL);
	}
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"durations", test_durations},
		{"precedence", test_precedence},
		{"kv_lists", test_kv_lists},
		{"usage_errors", test_usage_errors},
		{"redaction", test_redaction},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
