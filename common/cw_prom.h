/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_prom — writing the Prometheus text exposition format (0.0.4).
 *
 * A growable text buffer, the # HELP/# TYPE preamble of a family, floats
 * the way Prometheus reads them, cumulative histograms, and the metrics
 * every cartwatch daemon exports about itself (cartwatch_build_info and
 * the standard process_* family). Pure formatting: no locking, no I/O
 * beyond reading /proc/self for the process metrics.
 *
 * Not for: serving HTTP (cw_status, cw_http) or keeping counters.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing text buffer; @oom sticks once an allocation failed, and every
 * later write is a no-op. Zero-initialise; release with cw_text_free(). */
struct cw_text {
	char *buf;
	size_t len, cap;
	bool oom;
};

/* Append printf-style text to @t. Can't fail: a failed allocation sets
 * @t->oom instead. */
void cw_text_printf(struct cw_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Release @t's buffer and reset it to empty. */
void cw_text_free(struct cw_text *t);

/* @v as Prometheus reads it: NaN, +Inf, -Inf, or the shortest of
 * %.15g/%.17g that reads back exactly ('.' as decimal point: cartwatch
 * never calls setlocale()). Returns @buf or a string constant. */
const char *cw_prom_double(double v, char buf[32]);

/* Write the # HELP and # TYPE lines of family @name. */
void cw_prom_family(struct cw_text *t, const char *name, const char *type,
		    const char *help);

/* Most finite buckets a cw_prom_histogram holds. */
#define CW_PROM_MAX_BUCKETS 16

/* Cumulative, like Prometheus: bucket[i] counts observations <= bounds[i]
 * (the bounds live with the caller), count counts all of them (+Inf). */
struct cw_prom_histogram {
	uint64_t bucket[CW_PROM_MAX_BUCKETS];
	uint64_t count;
	double sum;
};

/* Record @v in @h over the @n ascending finite @bounds (n <=
 * CW_PROM_MAX_BUCKETS). NaN is ignored; a negative value counts as 0, so
 * a clock step never makes the sum shrink. */
void cw_prom_observe(struct cw_prom_histogram *h, const double *bounds,
		     size_t n, double v);

/* Write the _bucket, _sum and _count series of histogram @name (family
 * lines included). @labels is NULL or extra labels without braces, e.g.
 * `route="/v1/events"`; @with_family false writes the series alone, for a
 * family with several label sets. */
void cw_prom_histogram_write(struct cw_text *t, const char *name,
			     const char *help, const char *labels,
			     bool with_family, const double *bounds, size_t n,
			     const struct cw_prom_histogram *h);

/* Write cartwatch_build_info{binary,version} and the process_* family
 * (CPU seconds, resident and virtual memory, open and max fds, start
 * time). A figure that cannot be read (no /proc) is left out. */
void cw_prom_process(struct cw_text *t, const char *binary);

/* The version every binary reports (meson's project version). */
const char *cw_version(void);
