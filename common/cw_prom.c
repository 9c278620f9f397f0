/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_prom — Prometheus text exposition helpers. See cw_prom.h.
 */
#include "cw_prom.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cw_version.h"

const char *cw_version(void)
{
	return CW_VERSION;
}

void cw_text_printf(struct cw_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t need = t->len + (size_t)n + 1;
		size_t cap = t->cap * 2 > need ? t->cap * 2 : need;
		if (cap < 4096)
			cap = 4096;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->oom = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

void cw_text_free(struct cw_text *t)
{
	free(t->buf);
	*t = (struct cw_text){0};
}

const char *cw_prom_double(double v, char buf[32])
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	snprintf(buf, 32, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, 32, "%.17g", v);
	return buf;
}

void cw_prom_family(struct cw_text *t, const char *name, const char *type,
		    const char *help)
{
	cw_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		       type);
}

void cw_prom_observe(struct cw_prom_histogram *h, const double *bounds,
		     size_t n, double v)
{
	if (isnan(v))
		return;
	if (v < 0)
		v = 0;
	if (n > CW_PROM_MAX_BUCKETS)
		n = CW_PROM_MAX_BUCKETS;
	for (size_t i = 0; i < n; i++)
		if (v <= bounds[i])
			h->bucket[i]++;
	h->count++;
	h->sum += v;
}

void cw_prom_histogram_write(struct cw_text *t, const char *name,
			     const char *help, const char *labels,
			     bool with_family, const double *bounds, size_t n,
			     const struct cw_prom_histogram *h)
{
	const char *sep = labels && labels[0] ? "," : "";
	const char *l = labels ? labels : "";
	char num[32];

	if (n > CW_PROM_MAX_BUCKETS)
		n = CW_PROM_MAX_BUCKETS;
	if (with_family)
		cw_prom_family(t, name, "histogram", help);
	for (size_t i = 0; i < n; i++)
		cw_text_printf(t, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n",
			       name, l, sep, cw_prom_double(bounds[i], num),
			       h->bucket[i]);
	cw_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, l,
		       sep, h->count);
	if (l[0]) {
		cw_text_printf(t, "%s_sum{%s} %s\n", name, l,
			       cw_prom_double(h->sum, num));
		cw_text_printf(t, "%s_count{%s} %" PRIu64 "\n", name, l,
			       h->count);
	} else {
		cw_text_printf(t, "%s_sum %s\n", name,
			       cw_prom_double(h->sum, num));
		cw_text_printf(t, "%s_count %" PRIu64 "\n", name, h->count);
	}
}

/* Seconds since the epoch at which the system booted (/proc/stat btime),
 * or -1. */
static long long boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	char line[256];
	long long bt = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

/* Field 22 of /proc/self/stat (start time in clock ticks after boot), or
 * -1. The command name (field 2) may hold spaces and parentheses: parse
 * from the last ')'. */
static long long start_ticks(void)
{
	FILE *f = fopen("/proc/self/stat", "re");
	char buf[1024], *p;
	unsigned long long ticks;
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* After ") ": field 3 (state) ... field 22 is the 20th token. */
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	if (sscanf(p, " %llu", &ticks) != 1)
		return -1;
	return (long long)ticks;
}

void cw_prom_process(struct cw_text *t, const char *binary)
{
	struct rusage ru;
	struct rlimit rl;
	unsigned long long vm_pages, rss_pages;
	long page = sysconf(_SC_PAGESIZE), tck = sysconf(_SC_CLK_TCK);
	long long bt, st;
	char num[32];
	FILE *f;
	DIR *d;

	cw_prom_family(t, "cartwatch_build_info", "gauge",
		       "Always 1; the labels say which binary and version "
		       "this is.");
	cw_text_printf(t,
		       "cartwatch_build_info{binary=\"%s\",version=\"%s\"} 1\n",
		       binary, cw_version());
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu =
			(double)ru.ru_utime.tv_sec +
			(double)ru.ru_stime.tv_sec +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) /
				1e6;
		cw_prom_family(t, "process_cpu_seconds_total", "counter",
			       "Total user and system CPU time spent in "
			       "seconds.");
		cw_text_printf(t, "process_cpu_seconds_total %s\n",
			       cw_prom_double(cpu, num));
	}
	f = fopen("/proc/self/statm", "re");
	if (f) {
		if (fscanf(f, "%llu %llu", &vm_pages, &rss_pages) == 2 &&
		    page > 0) {
			cw_prom_family(t, "process_virtual_memory_bytes",
				       "gauge",
				       "Virtual memory size in bytes.");
			cw_text_printf(t, "process_virtual_memory_bytes %llu\n",
				       vm_pages * (unsigned long long)page);
			cw_prom_family(t, "process_resident_memory_bytes",
				       "gauge",
				       "Resident memory size in bytes.");
			cw_text_printf(t,
				       "process_resident_memory_bytes %llu\n",
				       rss_pages * (unsigned long long)page);
		}
		fclose(f);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		long n = 0;
		while (readdir(d))
			n++;
		closedir(d);
		/* ".", ".." and the directory's own fd. */
		n = n >= 3 ? n - 3 : 0;
		cw_prom_family(t, "process_open_fds", "gauge",
			       "Number of open file descriptors.");
		cw_text_printf(t, "process_open_fds %ld\n", n);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY) {
		cw_prom_family(t, "process_max_fds", "gauge",
			       "Maximum number of open file descriptors.");
		cw_text_printf(t, "process_max_fds %llu\n",
			       (unsigned long long)rl.rlim_cur);
	}
	bt = boot_time();
	st = start_ticks();
	if (bt >= 0 && st >= 0 && tck > 0) {
		cw_prom_family(t, "process_start_time_seconds", "gauge",
			       "Start time of the process since unix epoch in "
			       "seconds.");
		cw_text_printf(
			t, "process_start_time_seconds %s\n",
			cw_prom_double((double)bt + (double)st / (double)tck,
				       num));
	}
}
