/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config — the processor's options, declared once in a table (config.c)
 * from which the command line, the CARTWATCH_* environment variables,
 * --help and docs/processor-options.md are derived.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cw_config.h"
#include "cw_daemon.h"

struct processor_config {
	char *bootstrap_servers;
	char *topic;
	char *group;
	char *abandonment_topic;
	char *dlq_topic;
	char *pg;
	int64_t session_timeout_ms;
	int64_t allowed_lateness_ms;
	int64_t idle_timeout_ms;
	double time_scale;
	int64_t flush_interval_ms;
	int64_t cart_ttl_ms;
	int64_t recovery_window_ms;
	int64_t max_clock_skew_ms;
	bool repair_future_watermarks;
	int64_t max_cart_items;
	int64_t max_products;
	int64_t max_pending;
	int64_t retention_ms;
	int64_t status_retention_ms;
	int64_t housekeeping_interval_ms;
	char *instance;
	char *metrics_addr;
	char *log_level;
	char *log_format;
	char *schema_dir;
	struct cw_kv_list kafka_props;
};

/* The processor's name, synopsis, option table and the checks the table
 * cannot make (ranges, relations), for cw_daemon_init() on a struct
 * processor_config. */
extern const struct cw_daemon_spec processor_spec;
