/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_config — table-driven options, environment and --help. See cw_config.h.
 */
#include "cw_config.h"
#include "cw_version.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* getopt values of the long-only options: below 256 (table options are
 * 256 + index) and no letter, so no short option can shadow them. */
#define OPT_VERSION  1
#define OPT_HELP_MAN 2

#define FIELD(cfg, opt, type) ((type *)((char *)(cfg) + (opt)->offset))

int cw_duration_parse(const char *text, int64_t *ms)
{
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{"ms", 1},     {"s", 1e3},     {"m", 60e3},
		{"h", 3600e3}, {"d", 86400e3}, {"", 1e3},
	};
	char *end;
	double v;

	if (!text || !*text)
		return -EINVAL;
	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || v < 0 || !isfinite(v))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			double r = v * units[i].mult;
			if (r > 9.2e18)
				return -EINVAL;
			*ms = (int64_t)llround(r);
			return 0;
		}
	}
	return -EINVAL;
}

const char *cw_duration_format(int64_t ms, char *buf, size_t size)
{
	static const struct {
		const char *suffix;
		int64_t mult;
	} units[] = {
		{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms && ms % units[i].mult == 0) {
			snprintf(buf, size, "%" PRId64 "%s", ms / units[i].mult,
				 units[i].suffix);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRId64 "ms", ms);
	return buf;
}

const char *cw_opt_env_name(const struct cw_opt *opt, char *buf, size_t size)
{
	size_t n;

	if (opt->env) {
		snprintf(buf, size, "%s", opt->env);
		return buf;
	}
	n = (size_t)snprintf(buf, size, "CARTWATCH_");
	for (const char *p = opt->name; *p && n + 1 < size; p++)
		buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	buf[n < size ? n : size - 1] = '\0';
	return buf;
}

static int set_error(char *errstr, size_t errstr_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_error(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_bool(const char *s, bool *out)
{
	if (!strcasecmp(s, "1") || !strcasecmp(s, "true") ||
	    !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
		*out = true;
	else if (!strcasecmp(s, "0") || !strcasecmp(s, "false") ||
		 !strcasecmp(s, "no") || !strcasecmp(s, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int kv_add(struct cw_kv_list *kv, const char *text)
{
	const char *eq = strchr(text, '=');
	char **keys, **values;

	if (!eq || eq == text)
		return -EINVAL;
	keys = realloc(kv->keys, (kv->count + 1) * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	kv->keys = keys;
	values = realloc(kv->values, (kv->count + 1) * sizeof(*values));
	if (!values)
		return -ENOMEM;
	kv->values = values;
	kv->keys[kv->count] = strndup(text, (size_t)(eq - text));
	kv->values[kv->count] = strdup(eq + 1);
	if (!kv->keys[kv->count] || !kv->values[kv->count]) {
		free(kv->keys[kv->count]);
		free(kv->values[kv->count]);
		return -ENOMEM;
	}
	kv->count++;
	return 0;
}

/* Append ",@piece" to the last value of @kv (which has one). */
static int kv_append(struct cw_kv_list *kv, const char *piece)
{
	char **last = &kv->values[kv->count - 1];
	size_t len = strlen(*last), plen = strlen(piece);
	char *v = realloc(*last, len + plen + 2);

	if (!v)
		return -ENOMEM;
	v[len] = ',';
	memcpy(v + len + 1, piece, plen + 1);
	*last = v;
	return 0;
}

/* Store @text into the field of @opt. @origin names where it came from, for
 * the error message. @env: @text is an environment variable's, where a
 * key=value option holds a list of pairs. */
static int opt_set(const struct cw_opt *opt, void *cfg, const char *text,
		   const char *origin, bool env, char *errstr,
		   size_t errstr_size)
{
	char *end;

	switch (opt->type) {
	case CW_OPT_STRING: {
		char **s = FIELD(cfg, opt, char *);
		free(*s);
		*s = strdup(text);
		return *s ? 0 : -ENOMEM;
	}
	case CW_OPT_INT: {
		long long v;
		errno = 0;
		v = strtoll(text, &end, 10);
		if (errno || end == text || *end)
			return set_error(errstr, errstr_size,
					 "%s: '%s' is not an integer", origin,
					 text);
		*FIELD(cfg, opt, int64_t) = v;
		return 0;
	}
	case CW_OPT_DOUBLE: {
		double v;
		errno = 0;
		v = strtod(text, &end);
		if (errno || end == text || *end || !isfinite(v))
			return set_error(errstr, errstr_size,
					 "%s: '%s' is not a number", origin,
					 text);
		*FIELD(cfg, opt, double) = v;
		return 0;
	}
	case CW_OPT_DURATION:
		if (cw_duration_parse(text, FIELD(cfg, opt, int64_t)) < 0)
			return set_error(
				errstr, errstr_size,
				"%s: '%s' is not a duration (use e.g. 500ms, "
				"30s, 5m, 2h, 7d)",
				origin, text);
		return 0;
	case CW_OPT_BOOL:
		if (parse_bool(text, FIELD(cfg, opt, bool)) < 0)
			return set_error(errstr, errstr_size,
					 "%s: '%s' is not a boolean", origin,
					 text);
		return 0;
	case CW_OPT_KV: {
		struct cw_kv_list *kv = FIELD(cfg, opt, struct cw_kv_list);
		char *copy, *save = NULL, *tok;
		int r = 0;

		/* The command line takes one pair, as it is: librdkafka
		 * values may hold commas (debug=cgrp,fetch). */
		if (!env) {
			r = kv_add(kv, text);
			goto kv_done;
		}
		/* The environment holds a list separated by commas or
		 * whitespace; a piece without '=' continues the previous
		 * value's comma list ("debug=cgrp,fetch,linger.ms=5"). */
		copy = strdup(text);
		if (!copy)
			return -ENOMEM;
		for (tok = strtok_r(copy, ", \t\n", &save); tok && !r;
		     tok = strtok_r(NULL, ", \t\n", &save))
			r = strchr(tok, '=') || !kv->count ? kv_add(kv, tok)
							   : kv_append(kv, tok);
		free(copy);
	kv_done:
		if (r == -EINVAL)
			return set_error(errstr, errstr_size,
					 "%s: '%s' is not key=value", origin,
					 text);
		return r;
	}
	}
	return -EINVAL;
}

int cw_config_parse(const struct cw_opt *table, size_t n, void *cfg,
		    const char *prog, const char *synopsis, int argc,
		    char **argv, char *errstr, size_t errstr_size)
{
	struct option *longopts;
	char shortopts[128] = "+h";
	size_t sn = 2;
	int r = 0;

	/* Defaults. */
	for (size_t i = 0; i < n; i++) {
		if (table[i].def && table[i].type != CW_OPT_KV &&
		    (r = opt_set(&table[i], cfg, table[i].def, "default", false,
				 errstr, errstr_size)) < 0)
			return r;
	}
	/* Environment. */
	for (size_t i = 0; i < n; i++) {
		char env[128], origin[160];
		const char *v;

		if (table[i].no_env)
			continue;
		cw_opt_env_name(&table[i], env, sizeof(env));
		v = getenv(env);
		if (!v || !*v)
			continue;
		snprintf(origin, sizeof(origin), "environment %s", env);
		if ((r = opt_set(&table[i], cfg, v, origin, true, errstr,
				 errstr_size)) < 0)
			return r;
	}
	/* Command line. */
	longopts = calloc(n + 5, sizeof(*longopts));
	if (!longopts)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		longopts[i].name = table[i].name;
		longopts[i].has_arg = table[i].type == CW_OPT_BOOL
					      ? optional_argument
					      : required_argument;
		longopts[i].val = 256 + (int)i;
		if (table[i].short_name && sn + 3 < sizeof(shortopts)) {
			shortopts[sn++] = table[i].short_name;
			if (table[i].type != CW_OPT_BOOL)
				shortopts[sn++] = ':';
		}
	}
	longopts[n].name = "help";
	longopts[n].val = 'h';
	/* Not in the usage text: prints the reference table that
	 * docs/configuration.md holds (tests keep the two equal). */
	longopts[n + 1].name = "help-markdown";
	longopts[n + 1].val = 'M';
	longopts[n + 2].name = "version";
	longopts[n + 2].val = OPT_VERSION;
	/* Not in the usage text either: the man page meson installs. */
	longopts[n + 3].name = "help-man";
	longopts[n + 3].val = OPT_HELP_MAN;
	shortopts[sn] = '\0';

	optind = 1;
	opterr = 0;
	for (;;) {
		int li = -1;
		int c = getopt_long(argc, argv, shortopts, longopts, &li);
		const struct cw_opt *opt = NULL;
		char origin[160];

		if (c == -1)
			break;
		if (c == 'h') {
			cw_config_usage(table, n, prog, synopsis, stdout);
			r = CW_CONFIG_HELP;
			goto out;
		}
		if (c == 'M') {
			cw_config_markdown(table, n, stdout);
			r = CW_CONFIG_HELP;
			goto out;
		}
		if (c == OPT_VERSION) {
			cw_config_version(prog, stdout);
			r = CW_CONFIG_HELP;
			goto out;
		}
		if (c == OPT_HELP_MAN) {
			cw_config_man(table, n, prog, synopsis, stdout);
			r = CW_CONFIG_HELP;
			goto out;
		}
		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];
			if (optopt && optopt < 256)
				r = set_error(
					errstr, errstr_size,
					c == ':' ? "option -%c needs a value"
						 : "unknown option -%c",
					optopt);
			else
				r = set_error(
					errstr, errstr_size,
					"unknown option or missing value: %s",
					bad);
			goto out;
		}
		if (c >= 256)
			opt = &table[c - 256];
		else
			for (size_t i = 0; i < n; i++)
				if (table[i].short_name == c)
					opt = &table[i];
		if (!opt) {
			r = set_error(errstr, errstr_size, "unknown option");
			goto out;
		}
		snprintf(origin, sizeof(origin), "--%s", opt->name);
		if (opt->type == CW_OPT_BOOL && !optarg) {
			*FIELD(cfg, opt, bool) = true;
			continue;
		}
		if ((r = opt_set(opt, cfg, optarg, origin, false, errstr,
				 errstr_size)) < 0)
			goto out;
	}
	if (optind < argc)
		r = set_error(errstr, errstr_size, "unexpected argument '%s'",
			      argv[optind]);
out:
	free(longopts);
	return r;
}

static const char *type_metavar(const struct cw_opt *opt)
{
	if (opt->metavar)
		return opt->metavar;
	switch (opt->type) {
	case CW_OPT_INT:
		return "N";
	case CW_OPT_DOUBLE:
		return "X";
	case CW_OPT_DURATION:
		return "DURATION";
	case CW_OPT_KV:
		return "KEY=VALUE";
	case CW_OPT_BOOL:
		return "";
	default:
		return "VALUE";
	}
}

void cw_config_usage_error(const char *prog, const char *errstr)
{
	fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, errstr, prog);
}

void cw_config_usage(const struct cw_opt *table, size_t n, const char *prog,
		     const char *synopsis, FILE *out)
{
	fprintf(out, "Usage: %s [OPTION]...\n%s\n\nOptions:\n", prog,
		synopsis ? synopsis : "");
	for (size_t i = 0; i < n; i++) {
		const struct cw_opt *opt = &table[i];
		char left[96], env[128];
		int w;

		if (opt->short_name)
			w = snprintf(left, sizeof(left), "  -%c, --%s%s%s",
				     opt->short_name, opt->name,
				     opt->type == CW_OPT_BOOL ? "" : " ",
				     type_metavar(opt));
		else
			w = snprintf(left, sizeof(left), "      --%s%s%s",
				     opt->name,
				     opt->type == CW_OPT_BOOL ? "" : " ",
				     type_metavar(opt));
		fprintf(out, "%s%*s%s", left, w < 40 ? 40 - w : 1, "",
			opt->help);
		if (opt->def)
			fprintf(out, " [default: %s]", opt->def);
		if (!opt->no_env)
			fprintf(out, " (env %s)",
				cw_opt_env_name(opt, env, sizeof(env)));
		fputc('\n', out);
	}
	fprintf(out, "  -h, --help%*s%s\n", 40 - 12, "",
		"Show this help and exit");
	fprintf(out, "      --version%*s%s\n", 40 - 15, "",
		"Show the version and exit");
}

void cw_config_version(const char *prog, FILE *out)
{
	/* CW_VCS_DESCRIBE is "" outside a git checkout (a release tarball). */
	if (*CW_VCS_DESCRIBE && strcmp(CW_VCS_DESCRIBE, CW_VERSION) != 0)
		fprintf(out, "%s %s (%s)\n", prog, CW_VERSION, CW_VCS_DESCRIBE);
	else
		fprintf(out, "%s %s\n", prog, CW_VERSION);
}

/* Write @s as roff text: a leading '.' or '\'' would be a request, '\\'
 * an escape, '-' a hyphen rather than the minus of an option name. */
static void man_text(const char *s, FILE *out)
{
	for (const char *p = s; *p; p++) {
		if ((p == s || p[-1] == '\n') && (*p == '.' || *p == '\''))
			fputs("\\&", out);
		if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-')
			fputs("\\-", out);
		else
			fputc(*p, out);
	}
}

void cw_config_man(const struct cw_opt *table, size_t n, const char *prog,
		   const char *synopsis, FILE *out)
{
	char env[128];

	fprintf(out, ".TH ");
	for (const char *p = prog; *p; p++)
		fputc(toupper((unsigned char)*p), out);
	fprintf(out, " 1 \"\" \"cartwatch %s\" \"cartwatch\"\n", CW_VERSION);
	fprintf(out, ".SH NAME\n");
	man_text(prog, out);
	fprintf(out, " \\- ");
	/* The synopsis's first sentence, on one line. */
	for (const char *p = synopsis ? synopsis : ""; *p && *p != '.'; p++)
		fputc(*p == '\n' ? ' ' : *p, out);
	fprintf(out, "\n.SH SYNOPSIS\n.B ");
	man_text(prog, out);
	fprintf(out, "\n[\\fIOPTION\\fR]...\n.SH DESCRIPTION\n");
	man_text(synopsis ? synopsis : "", out);
	fprintf(out, "\n.PP\nEvery option can also be set by the environment "
		     "variable named after it (see ENVIRONMENT); the command "
		     "line wins over the environment, which wins over the "
		     "built-in default.\n.SH OPTIONS\n");
	for (size_t i = 0; i < n; i++) {
		const struct cw_opt *opt = &table[i];

		fprintf(out, ".TP\n");
		if (opt->short_name)
			fprintf(out, "\\fB\\-%c\\fR, ", opt->short_name);
		fprintf(out, "\\fB\\-\\-");
		man_text(opt->name, out);
		fprintf(out, "\\fR");
		if (opt->type != CW_OPT_BOOL) {
			fprintf(out, " \\fI");
			man_text(type_metavar(opt), out);
			fprintf(out, "\\fR");
		}
		fputc('\n', out);
		man_text(opt->help, out);
		if (*opt->help && opt->help[strlen(opt->help) - 1] != '.')
			fputc('.', out);
		if (opt->def && *opt->def) {
			fprintf(out, " Default: ");
			man_text(opt->def, out);
			fputc('.', out);
		}
		if (!opt->no_env) {
			fprintf(out, " Environment: \\fB");
			man_text(cw_opt_env_name(opt, env, sizeof(env)), out);
			fprintf(out, "\\fR.");
		}
		fputc('\n', out);
	}
	fprintf(out, ".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\n"
		     "Show the usage and exit.\n"
		     ".TP\n\\fB\\-\\-version\\fR\n"
		     "Show the version and exit.\n"
		     ".SH ENVIRONMENT\n");
	for (size_t i = 0; i < n; i++) {
		if (table[i].no_env)
			continue;
		fprintf(out, ".TP\n.B ");
		man_text(cw_opt_env_name(&table[i], env, sizeof(env)), out);
		fprintf(out, "\nAs \\fB\\-\\-");
		man_text(table[i].name, out);
		fprintf(out, "\\fR.\n");
	}
	fprintf(out, ".SH EXIT STATUS\n0 on success, 1 on a runtime failure, "
		     "2 on a usage error.\n"
		     ".SH SEE ALSO\n"
		     "The option reference, docs/configuration.md, and the "
		     "README of the cartwatch source tree.\n");
}

void cw_config_markdown(const struct cw_opt *table, size_t n, FILE *out)
{
	fprintf(out, "| option | environment | default | meaning |\n"
		     "|---|---|---|---|\n");
	for (size_t i = 0; i < n; i++) {
		char env[128];
		const struct cw_opt *opt = &table[i];
		fprintf(out, "| `");
		if (opt->short_name)
			fprintf(out, "-%c, ", opt->short_name);
		fprintf(out, "--%s` | %s%s%s | %s%s%s | %s |\n", opt->name,
			opt->no_env ? "" : "`",
			opt->no_env ? ""
				    : cw_opt_env_name(opt, env, sizeof(env)),
			opt->no_env ? "" : "`",
			opt->def && *opt->def ? "`" : "",
			opt->def ? opt->def : "",
			opt->def && *opt->def ? "`" : "", opt->help);
	}
}

void cw_config_free(const struct cw_opt *table, size_t n, void *cfg)
{
	for (size_t i = 0; i < n; i++) {
		const struct cw_opt *opt = &table[i];
		if (opt->type == CW_OPT_STRING) {
			char **s = FIELD(cfg, opt, char *);
			free(*s);
			*s = NULL;
		} else if (opt->type == CW_OPT_KV) {
			struct cw_kv_list *kv =
				FIELD(cfg, opt, struct cw_kv_list);
			for (size_t k = 0; k < kv->count; k++) {
				free(kv->keys[k]);
				free(kv->values[k]);
			}
			free(kv->keys);
			free(kv->values);
			memset(kv, 0, sizeof(*kv));
		}
	}
}

const char *cw_kv_get(const struct cw_kv_list *kv, const char *key)
{
	const char *v = NULL;
	for (size_t i = 0; i < kv->count; i++)
		if (strcmp(kv->keys[i], key) == 0)
			v = kv->values[i]; /* last one wins, like librdkafka */
	return v;
}
