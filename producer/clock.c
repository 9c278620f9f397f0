/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock — RFC 3339 parsing/formatting and clock reads. See clock.h.
 */
#include "clock.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Read exactly @n digits at *@p into *@out and advance. */
static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int parse_epoch_ms(const char *text, int64_t *ms)
{
	int64_t v = 0;

	for (const char *p = text; *p; p++) {
		if (!isdigit((unsigned char)*p) || v > INT64_MAX / 10 - 9)
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	*ms = v;
	return 0;
}

int clock_parse_time(const char *text, int64_t *ms)
{
	const char *p = text;
	struct tm tm = {0};
	int year, mon, day, hour, min, sec, frac_ms = 0, off_min = 0;
	time_t t;

	if (!text || !*text)
		return -EINVAL;
	if (strspn(text, "0123456789") == strlen(text))
		return parse_epoch_ms(text, ms);
	if (digits(&p, 4, &year) || *p++ != '-' || digits(&p, 2, &mon) ||
	    *p++ != '-' || digits(&p, 2, &day))
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (digits(&p, 2, &hour) || *p++ != ':' || digits(&p, 2, &min) ||
	    *p++ != ':' || digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.') {
		int scale = 100;

		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++, scale /= 10)
			frac_ms += (*p - '0') * scale;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;

		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
		off_min = sign * (oh * 60 + om);
	} else {
		return -EINVAL;
	}
	if (*p || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
	    min > 59 || sec > 60)
		return -EINVAL;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 && year != 1969)
		return -EINVAL;
	*ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac_ms;
	return 0;
}

const char *clock_format_time(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)t * 1000));
	return buf;
}

int64_t clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
