/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_log — logfmt lines on stderr. See cw_log.h.
 */
#include "cw_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_min_level = CW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void cw_log_set_level(enum cw_log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

int cw_log_parse_level(const char *name, enum cw_log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level = (enum cw_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*level = CW_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

void cw_log(enum cw_log_level level, const char *msg, const char *kvfmt, ...)
{
	char line[2048];
	size_t n = 0;
	struct timeval tv;
	struct tm tm;

	if ((int)level < atomic_load(&log_min_level))
		return;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n += strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
			      ".%03ldZ level=%s msg=\"",
			      (long)tv.tv_usec / 1000, level_names[level]);
	/* Escape the message so one event stays one line. */
	for (const char *p = msg; *p && n < sizeof(line) - 4; p++) {
		if (*p == '"' || *p == '\\') {
			line[n++] = '\\';
			line[n++] = *p;
		} else if (*p == '\n') {
			line[n++] = '\\';
			line[n++] = 'n';
		} else {
			line[n++] = *p;
		}
	}
	line[n++] = '"';
	if (kvfmt && *kvfmt && n < sizeof(line) - 2) {
		va_list ap;
		int w;

		line[n++] = ' ';
		va_start(ap, kvfmt);
		w = vsnprintf(line + n, sizeof(line) - n, kvfmt, ap);
		va_end(ap);
		if (w > 0)
			n += (size_t)w < sizeof(line) - n
				     ? (size_t)w
				     : sizeof(line) - n - 1;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write so concurrent lines never interleave. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report it. */
	}
}
