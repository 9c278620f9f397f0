/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_conninfo — libpq connection strings made safe to show: in logs, error
 * messages and the metrics endpoint. The string is parsed by libpq itself
 * (PQconninfoParse), so every form libpq accepts is understood the way the
 * connection will understand it, and the secrets libpq knows of are masked.
 *
 * Kept in its own object file: only programs that call it link libpq.
 */
#pragma once

#include <stddef.h>

/* Write into @out (NUL-terminated, truncated to @out_size) a display form
 * of libpq connection string @conninfo: its options as `keyword=value`
 * pairs in libpq's order, values quoted when needed, with every option libpq
 * marks as secret (the password and the like) shown as `***`. Accepts both
 * key=value strings (any spacing, quoted values) and postgresql:// URIs
 * (userinfo, ?query parameters, percent-encoding). NULL gives "(default)";
 * the placeholders "(default)" and "(environment)" are copied as they are.
 * A string libpq cannot parse gives "<unparseable conninfo>", never any part
 * of it. Characters that would break a log line (control characters, '"')
 * are shown as '?'. Thread-safe; can't fail visibly (out of memory gives
 * "<unparseable conninfo>" too). */
void cw_log_redact_conninfo(const char *conninfo, char *out, size_t out_size);

/* Why libpq cannot parse @conninfo, safe to show: libpq's own message with
 * the quoted piece of the string it names replaced by "..." (libpq quotes
 * the offending token, which may be a password, and for some URI errors
 * the whole string). Written into @out, truncated to @out_size.
 * Returns 0 when @conninfo parses (@out is then ""), -EINVAL otherwise,
 * -ENOMEM when libpq ran out of memory. Thread-safe. */
int cw_conninfo_parse_error(const char *conninfo, char *out, size_t out_size);
