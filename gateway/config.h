/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config — cartwatch-gateway's options, declared once in a table
 * (config.c) from which the command line, the CARTWATCH_* environment
 * variables, --help and docs/configuration.md are derived.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_config.h"
#include "cw_daemon.h"

struct gateway_config {
	char *bootstrap_servers;
	char *listen;
	char *topic;
	char *catalog;
	char *token_file;
	char *cors_origin;
	char *max_body;
	int64_t max_clock_skew_ms;
	int64_t delivery_timeout_ms;
	int64_t max_queue;
	int64_t max_connections;
	int64_t max_connections_per_ip;
	int64_t connection_timeout_ms;
	int64_t http_threads;
	int64_t idempotency_ttl_ms;
	int64_t idempotency_max;
	char *max_buffered;
	int64_t drain_timeout_ms;
	char *log_level;
	char *log_format;
	struct cw_kv_list kafka_props;

	/* Derived by gateway_spec's checks (cw_daemon_init()). */
	size_t max_body_bytes;
	size_t max_buffered_bytes;
};

/* The gateway's name, synopsis, option table and the checks the table
 * cannot make (ranges, sizes; they also fill the derived fields), for
 * cw_daemon_init() on a struct gateway_config. */
extern const struct cw_daemon_spec gateway_spec;

/* Parse a byte size: a whole number with an optional unit B, KB, MB, GB
 * (powers of 1024; KiB, MiB, GiB also accepted). Returns 0 or -EINVAL. */
int gateway_size_parse(const char *text, size_t *bytes);
