/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-conninfo — common/cw_conninfo.c: every way libpq lets a password be
 * written (key=value with any spacing, quoted values with spaces and escaped
 * quotes, sslpassword, URIs with the password in the userinfo or a ?query
 * parameter, percent-encoded) comes out masked, the rest of the string
 * still readable and re-parseable by libpq; strings libpq rejects show
 * nothing of themselves, in the display form or in the parse error.
 */
#include <errno.h>
#include <string.h>

#include <libpq-fe.h>

#include "cw_conninfo.h"
#include "harness.h"

/* The value of @keyword in @conninfo as libpq reads it, or NULL; the caller
 * frees it. */
static char *parsed(const char *conninfo, const char *keyword)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	char *v = NULL;

	REQUIRE(opts);
	for (const PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val)
			v = strdup(o->val);
	PQconninfoFree(opts);
	return v;
}

/* Every accepted form: libpq itself reads the password @secret from the
 * input (so the case is what the test claims), the display has neither the
 * secret nor the raw text it was written as (@raw), shows the password
 * masked, keeps the host, and parses again with the same host. */
static void test_secrets_masked(void)
{
	static const struct {
		const char *in, *secret, *raw, *host;
	} cases[] = {
		{"host=db password=hunter2 user=cw", "hunter2", "hunter2",
		 "db"},
		{"host=db password = hunter2", "hunter2", "hunter2", "db"},
		{"host=db password= hunter2", "hunter2", "hunter2", "db"},
		{"host=db password =hunter2", "hunter2", "hunter2", "db"},
		{"host=db\tpassword\t=\n hunter2\n", "hunter2", "hunter2",
		 "db"},
		{"password='hunter 2' host=db", "hunter 2", "hunter", "db"},
		{"host=db password = 'hun\\'ter2'", "hun'ter2", "ter2", "db"},
		{"host=db password='hun\\\\ter2 x'", "hun\\ter2 x", "ter2",
		 "db"},
		{"host=db password=''", "", "password=''", "db"},
		{"postgresql://cw:hunter2@db:5432/cartwatch", "hunter2",
		 "hunter2", "db"},
		{"postgres://cw:hunter2@db1:5432,db2:5433/x", "hunter2",
		 "hunter2", "db1,db2"},
		{"postgresql://db/x?password=hunter2&sslmode=require",
		 "hunter2", "hunter2", "db"},
		{"postgresql://cw@db/x?sslmode=disable&password=hunter2",
		 "hunter2", "hunter2", "db"},
		{"postgresql://cw:hun%74er%202@db/x", "hunter 2", "hun%74er",
		 "db"},
		{"postgresql://db/x?password=hun%74er%20%27%22", "hunter '\"",
		 "hun%74er", "db"},
		{"postgresql://cw:hunter2@[::1]:5432/x", "hunter2", "hunter2",
		 "::1"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[512], *pw, *host;

		pw = parsed(cases[i].in, "password");
		CHECK(pw && strcmp(pw, cases[i].secret) == 0);
		free(pw);
		cw_log_redact_conninfo(cases[i].in, out, sizeof(out));
		if (cases[i].secret[0])
			CHECK(strstr(out, cases[i].secret) == NULL);
		CHECK(strstr(out, cases[i].raw) == NULL);
		CHECK(strstr(out, "password=***") != NULL);
		CHECK(strchr(out, '"') == NULL && strchr(out, '\n') == NULL);
		host = parsed(out, "host");
		CHECK(host && strcmp(host, cases[i].host) == 0);
		if (harness_failures)
			fprintf(stderr, "case %zu: '%s' -> '%s'\n", i,
				cases[i].in, out);
		free(host);
	}
}

/* Every option libpq marks secret (dispchar "*"), not only "password". */
static void test_every_secret_keyword(void)
{
	PQconninfoOption *defs = PQconndefaults();
	int secrets = 0;

	REQUIRE(defs);
	for (const PQconninfoOption *d = defs; d->keyword; d++) {
		char in[256], out[512];

		if (!d->dispchar || !strchr(d->dispchar, '*'))
			continue;
		secrets++;
		snprintf(in, sizeof(in), "host=db %s = 'hunter 2'", d->keyword);
		cw_log_redact_conninfo(in, out, sizeof(out));
		CHECK(strstr(out, "hunter") == NULL);
		snprintf(in, sizeof(in), "%s=***", d->keyword);
		CHECK(strstr(out, in) != NULL);
	}
	PQconninfoFree(defs);
	CHECK(secrets >= 1); /* at least "password" */
}

/* Nothing secret is shown as it was written and libpq reads it back the
 * same: quoting of spaces, quotes and backslashes, an empty value. */
static void test_display_round_trips(void)
{
	char out[512], *v;

	cw_log_redact_conninfo("host=db user=cw", out, sizeof(out));
	CHECK_STR_EQ(out, "user=cw host=db");
	cw_log_redact_conninfo("application_name = 'my app\\'s \\\\ x' "
			       "options=''",
			       out, sizeof(out));
	CHECK_STR_EQ(out, "options='' application_name='my app\\'s \\\\ x'");
	v = parsed(out, "application_name");
	CHECK(v && strcmp(v, "my app's \\ x") == 0);
	free(v);
	/* Characters that would break a logfmt line are shown as '?'. */
	cw_log_redact_conninfo("application_name='a\"b\nc'", out, sizeof(out));
	CHECK_STR_EQ(out, "application_name='a?b?c'");
	cw_log_redact_conninfo("postgresql://cw@db:5433/shop", out,
			       sizeof(out));
	CHECK_STR_EQ(out, "user=cw dbname=shop host=db port=5433");
}

/* Placeholders, truncation, an empty string. */
static void test_edges(void)
{
	char out[512], small[16];

	cw_log_redact_conninfo(NULL, out, sizeof(out));
	CHECK_STR_EQ(out, "(default)");
	cw_log_redact_conninfo("(environment)", out, sizeof(out));
	CHECK_STR_EQ(out, "(environment)");
	cw_log_redact_conninfo("", out, sizeof(out));
	CHECK_STR_EQ(out, "");
	cw_log_redact_conninfo("user=cw password=hunter2 host=db", small,
			       sizeof(small));
	CHECK_INT_EQ((long long)strlen(small), (long long)sizeof(small) - 1);
	CHECK(strstr(small, "hunter") == NULL);
	cw_log_redact_conninfo("host=db", small, 0); /* writes nothing */
}

/* Strings libpq rejects: nothing of them in the display form nor in the
 * parse error, which still says what kind of mistake it is. */
static void test_unparseable(void)
{
	static const struct {
		const char *in, *why;
	} cases[] = {
		{"host=db password hunter2", "missing \"=\" after"},
		{"host=db hunter2", "missing \"=\" after"},
		{"host=db password=hunter 2", "missing \"=\" after"},
		{"host=db password='hunter2", "unterminated quoted string"},
		{"host=db hunter2=x", "invalid connection option"},
		{"host=db hun\"ter2\"=x", "invalid connection option"},
		{"postgresql://cw:hunter2@db/x?bogus=hunter2", "invalid"},
		{"postgresql://cw:hunter2@[::1/x", "end of string reached"},
		{"postgresql://cw:hunter2@db/x?password=hun%zzter2",
		 "percent-encoded"},
		{"postgresql://cw:hunter2@db/x?password=a=hunter2",
		 "separator \"=\""},
		{"postgresql://cw:hunter2@db/x?password=hun%00ter2", "%00"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[512], why[512];

		cw_log_redact_conninfo(cases[i].in, out, sizeof(out));
		CHECK_STR_EQ(out, "<unparseable conninfo>");
		CHECK_INT_EQ(
			cw_conninfo_parse_error(cases[i].in, why, sizeof(why)),
			-EINVAL);
		CHECK(strstr(why, "hun") == NULL &&
		      strstr(why, "ter2") == NULL);
		CHECK(strstr(why, cases[i].why) != NULL);
		CHECK(strchr(why, '\n') == NULL);
		if (harness_failures)
			fprintf(stderr, "case %zu: '%s' -> '%s'\n", i,
				cases[i].in, why);
	}
	{
		char why[64] = "x";

		CHECK_INT_EQ(
			cw_conninfo_parse_error("host=db", why, sizeof(why)),
			0);
		CHECK_STR_EQ(why, "");
	}
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"secrets_masked", test_secrets_masked},
		{"every_secret_keyword", test_every_secret_keyword},
		{"display_round_trips", test_display_round_trips},
		{"edges", test_edges},
		{"unparseable", test_unparseable},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
