/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config — cartwatch-notify's options, declared once in a table (config.c)
 * from which the command line, the CARTWATCH_* environment variables,
 * --help and docs/configuration.md are derived.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cw_config.h"
#include "cw_daemon.h"

struct notify_config {
	char *bootstrap_servers;
	char *topic;
	char *group;
	char *dlq_topic;
	char *webhook_url;
	char *secret_file;
	char *cart_url_template;
	char *pg;
	int64_t delay_ms;
	double time_scale;
	int64_t concurrency;
	char *max_rate_text; /* as given: "50/s", "600/m", "50" */
	double max_rate;     /* per second, 0: none; set by notify_spec */
	int64_t max_attempts;
	int64_t request_timeout_ms;
	int64_t retry_backoff_ms;
	int64_t max_backoff_ms;
	int64_t shutdown_timeout_ms;
	char *metrics_addr;
	char *log_level;
	char *log_format;
	struct cw_kv_list kafka_props;
};

/* The notifier's name, synopsis, option table and the checks the table
 * cannot make (required options, ranges; they also derive max_rate from
 * max_rate_text), for cw_daemon_init() on a struct notify_config. */
extern const struct cw_daemon_spec notify_spec;

/* Parse a rate: "N/s", "N/m" (or "N/min"), "N/h", or a bare N (per
 * second), N a non-negative decimal number. Sets *@per_s. Returns 0 or
 * -EINVAL. */
int notify_rate_parse(const char *text, double *per_s);
