/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_log — one-line logfmt logging to stderr for both binaries.
 *
 * Every line is `ts=<RFC 3339> level=<lvl> msg="<text>" key=value ...`, so it
 * can be grepped by humans and parsed by log shippers. Not for metrics and
 * not for high-rate per-event tracing: the caller rate-limits.
 */
#pragma once

#include <stddef.h>

/* cw_log_redact_conninfo(), for the callers that log connection strings;
 * it lives in cw_conninfo.c because it needs libpq. */
#include "cw_conninfo.h"

enum cw_log_level {
	CW_LOG_DEBUG = 0,
	CW_LOG_INFO,
	CW_LOG_WARN,
	CW_LOG_ERROR,
};

/* Set the minimum level that is written. Thread-safe (atomic). */
void cw_log_set_level(enum cw_log_level level);

/* Parse "debug", "info", "warn" or "error". Returns 0 or -EINVAL. */
int cw_log_parse_level(const char *name, enum cw_log_level *level);

/* Write one line at @level with message @msg and, when @kvfmt is not NULL,
 * the printf-formatted `key=value ...` pairs. Values with spaces must be
 * quoted by the caller (use %s with cw_log_quote() if unsure).
 * Thread-safe: one write(2) per line. Never fails visibly. */
void cw_log(enum cw_log_level level, const char *msg, const char *kvfmt, ...)
	__attribute__((format(printf, 3, 4)));

#define cw_debug(msg, ...) cw_log(CW_LOG_DEBUG, msg, __VA_ARGS__)
#define cw_info(msg, ...)  cw_log(CW_LOG_INFO, msg, __VA_ARGS__)
#define cw_warn(msg, ...)  cw_log(CW_LOG_WARN, msg, __VA_ARGS__)
#define cw_error(msg, ...) cw_log(CW_LOG_ERROR, msg, __VA_ARGS__)
