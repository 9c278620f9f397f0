/* SPDX-License-Identifier: Apache-2.0 */
/*
 * options — cartwatch-producer's option table (cw_config: --help and the
 * CARTWATCH_* environment variables derive from it) and the checks and
 * conversions that turn the parsed text into the values the modules take.
 *
 * Not for: defaults hidden anywhere else; every default is in the table.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_config.h"
#include "sink.h"

struct options {
	/* Filled from the table. */
	char *bootstrap_servers;
	char *topic;
	int64_t users;
	double rate;
	int64_t events;
	int64_t duration_ms;
	int64_t seed;
	char *start_time;
	double time_scale;
	struct cw_kv_list properties;
	bool stdin_json;
	char *catalog;
	char *http;
	char *http_token_file;
	int64_t http_timeout_ms;
	char *output;
	char *format;
	char *summary_json;
	bool strict;
	int64_t max_clock_skew_ms;
	int64_t connect_timeout_ms;
	char *log_level;
	char *log_format;
	/* Derived by options_parse(). */
	int64_t start_ms; /* --start-time, or now */
	enum sink_format sink_format;
};

/* Parse @argv (and the environment) into @o, check every value and set
 * the log level and format (cw_daemon_init()). Returns 0, CW_CONFIG_HELP
 * (usage printed to stdout), or -EINVAL after printing a usage error to
 * stderr (the caller exits with status 2: cw_daemon_exit_status()).
 * On every return the caller must options_free(@o). */
int options_parse(struct options *o, int argc, char **argv);

/* Free the strings @o owns. Can't fail. */
void options_free(struct options *o);
