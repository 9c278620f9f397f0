/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_config — one declarative option table per binary.
 *
 * Each binary describes its options once (name, type, default, help) in a
 * table of struct cw_opt that points into its own config struct. From that
 * table this module derives the command-line parser, the CARTWATCH_*
 * environment variables, `--help` and the markdown reference in the docs.
 * Precedence: built-in default < environment < command line.
 *
 * Not for: runtime reconfiguration, config files.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cw_opt_type {
	CW_OPT_STRING,	 /* char *, strdup'ed, NULL when unset */
	CW_OPT_INT,	 /* int64_t */
	CW_OPT_DOUBLE,	 /* double */
	CW_OPT_DURATION, /* int64_t milliseconds; text "500ms", "30s", "5m"...
			  */
	CW_OPT_BOOL,	 /* bool; takes no value on the command line, env
			  * accepts 1/0/true/false/yes/no */
	CW_OPT_KV,	 /* struct cw_kv_list, repeatable key=value */
};

/* A repeatable key=value option (librdkafka's -X). Owned by the config. */
struct cw_kv_list {
	char **keys;
	char **values;
	size_t count;
};

struct cw_opt {
	const char *name; /* long option name, e.g. "bootstrap-servers" */
	char short_name;  /* single-letter option, or 0 */
	enum cw_opt_type type;
	size_t offset;	     /* offsetof(struct my_config, field) */
	const char *def;     /* default as text, or NULL */
	const char *metavar; /* shown in --help, e.g. "HOST:PORT" */
	const char *help;    /* one sentence */
	bool no_env;	     /* true: no CARTWATCH_* variable */
	const char *env;     /* its variable when not CARTWATCH_<NAME>
			      * (two binaries, one option name) */
};

/* The table entries every cartwatch binary has, written once. @type is the
 * binary's config struct; it holds the fields named. */

/* clang-format off */
/* --bootstrap-servers / -b: char *bootstrap_servers. */
#define CW_OPT_BOOTSTRAP_SERVERS(type)                                         \
	{"bootstrap-servers", 'b', CW_OPT_STRING,                              \
	 offsetof(type, bootstrap_servers), "localhost:9092", "HOST:PORT,...", \
	 "Kafka bootstrap servers", false}

/* --log-level and --log-format: char *log_level, char *log_format, which
 * cw_daemon_init() applies to cw_log. */
#define CW_OPT_LOG(type)                                                       \
	{"log-level", 0, CW_OPT_STRING, offsetof(type, log_level), "info",     \
	 "LEVEL", "debug, info, warn or error", false},                        \
	{"log-format", 0, CW_OPT_STRING, offsetof(type, log_format), "logfmt", \
	 "FORMAT", "logfmt (key=value lines) or json (one object a line)",     \
	 false}
/* clang-format on */

/* Returned by cw_config_parse() when an option that only prints was given
 * and printed: --help, --version, --help-markdown (the reference table of
 * docs/configuration.md) or --help-man (the man page). The caller exits 0. */
#define CW_CONFIG_HELP 1

/* Parse a duration such as "250ms", "30s", "5m", "2h", "7d" or a bare number
 * of seconds into milliseconds. Returns 0 or -EINVAL (also for negative
 * values and overflow). */
int cw_duration_parse(const char *text, int64_t *ms);

/* Format @ms as the shortest exact duration text ("30m", "1500ms").
 * Returns @buf. Can't fail. */
const char *cw_duration_format(int64_t ms, char *buf, size_t size);

/* The environment variable name of @opt: "CARTWATCH_" + upper-case name with
 * '-' as '_'. Returns @buf. */
const char *cw_opt_env_name(const struct cw_opt *opt, char *buf, size_t size);

/* Fill @cfg from the defaults in @table (@n entries), then the environment,
 * then @argv. Positional arguments are not accepted.
 * Returns 0, CW_CONFIG_HELP when --help/-h, --version or another printing
 * option was given (printed to stdout), or -EINVAL with a message in @errstr
 * for a usage error (unknown option, bad value). On any return the caller must
 * cw_config_free(). */
int cw_config_parse(const struct cw_opt *table, size_t n, void *cfg,
		    const char *prog, const char *synopsis, int argc,
		    char **argv, char *errstr, size_t errstr_size);

/* Print "PROG: ERRSTR" and a pointer to --help on stderr, for the usage
 * errors cw_config_parse() reports. Can't fail. */
void cw_config_usage_error(const char *prog, const char *errstr);

/* Print the usage text derived from the table. Can't fail. */
void cw_config_usage(const struct cw_opt *table, size_t n, const char *prog,
		     const char *synopsis, FILE *out);

/* Print "PROG VERSION" (the meson project version, and `git describe`
 * in parentheses when the build came from a git checkout). Can't fail. */
void cw_config_version(const char *prog, FILE *out);

/* Print a man page (roff, section 1) for @prog from the table: name,
 * synopsis, description, every option with its environment variable and
 * default, and an ENVIRONMENT section. Can't fail. */
void cw_config_man(const struct cw_opt *table, size_t n, const char *prog,
		   const char *synopsis, FILE *out);

/* Print a markdown table (option, env, default, help) for the docs. */
void cw_config_markdown(const struct cw_opt *table, size_t n, FILE *out);

/* Free the strings and key/value lists the table's fields own. */
void cw_config_free(const struct cw_opt *table, size_t n, void *cfg);

/* Return the value of @key in @kv, or NULL. */
const char *cw_kv_get(const struct cw_kv_list *kv, const char *key);
