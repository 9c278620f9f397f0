/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_log — one-record-per-line logging to stderr for every binary.
 *
 * Each record is one line, as logfmt (`ts=<RFC 3339> level=<lvl>
 * msg="<text>" key=value ...`, the default) or as one JSON object
 * (`--log-format json`), so humans can grep it and log shippers can parse
 * it. cw_log escapes every value itself: callers write plain `key=%s` (or
 * `key="%s"`, the quotes are accepted and dropped) and whatever the
 * argument holds — a PostgreSQL error with quotes and newlines, a hostile
 * user id — stays inside its one field of its one line.
 * Not for metrics and not for high-rate per-event tracing: the caller
 * rate-limits.
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

enum cw_log_format {
	CW_LOG_LOGFMT = 0,
	CW_LOG_JSON,
};

/* Set the minimum level that is written. Thread-safe (atomic). */
void cw_log_set_level(enum cw_log_level level);

/* Parse "debug", "info", "warn" or "error". Returns 0 or -EINVAL. */
int cw_log_parse_level(const char *name, enum cw_log_level *level);

/* Choose logfmt (the default) or JSON lines. Thread-safe (atomic); meant
 * to be called once at start, before other threads log. */
void cw_log_set_format(enum cw_log_format format);

/* Parse "logfmt" or "json". Returns 0 or -EINVAL. */
int cw_log_parse_format(const char *name, enum cw_log_format *format);

/* Write one record at @level with message @msg and, when @kvfmt is not
 * NULL, the fields of the printf-style `key=value ...` list @kvfmt. Each
 * field is `key=` followed by any mix of literal text and conversions up
 * to the next space outside double quotes; cw_log formats every conversion
 * itself and escapes the whole value, so callers never quote or escape.
 * Supported conversions: d i u o x X f F e E g G a A c s p and %%, with
 * flags, width, precision (also `*`) and the C99 length modifiers; %s of
 * NULL prints "(null)". In JSON a value made of a single numeric
 * conversion is a JSON number, anything else a string.
 * A record longer than 4 KiB is cut, but it stays one well-formed line.
 * Thread-safe: one write(2) per record. Never fails visibly. */
void cw_log(enum cw_log_level level, const char *msg, const char *kvfmt, ...)
	__attribute__((format(printf, 3, 4)));

#define cw_debug(msg, ...) cw_log(CW_LOG_DEBUG, msg, __VA_ARGS__)
#define cw_info(msg, ...)  cw_log(CW_LOG_INFO, msg, __VA_ARGS__)
#define cw_warn(msg, ...)  cw_log(CW_LOG_WARN, msg, __VA_ARGS__)
#define cw_error(msg, ...) cw_log(CW_LOG_ERROR, msg, __VA_ARGS__)
