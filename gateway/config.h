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

	/* Derived by gateway_config_validate(). */
	size_t max_body_bytes;
	size_t max_buffered_bytes;
};

extern const struct cw_opt gateway_opts[];
extern const size_t gateway_opts_count;

/* Parse a byte size: a whole number with an optional unit B, KB, MB, GB
 * (powers of 1024; KiB, MiB, GiB also accepted). Returns 0 or -EINVAL. */
int gateway_size_parse(const char *text, size_t *bytes);

/* Check what the table cannot (ranges, sizes) and fill the derived fields.
 * Returns 0 or -EINVAL with a message in @errstr. */
int gateway_config_validate(struct gateway_config *cfg, char *errstr,
			    size_t errstr_size);
