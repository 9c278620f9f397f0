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
	double max_rate;
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

extern const struct cw_opt notify_opts[];
extern const size_t notify_opts_count;

/* Check values the table cannot (ranges, required options). Returns 0 or
 * -EINVAL with a message in @errstr. */
int notify_config_validate(const struct notify_config *cfg, char *errstr,
			   size_t errstr_size);
