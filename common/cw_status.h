/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_status — a daemon's HTTP side door: `GET /metrics` (Prometheus text
 * format), `GET /livez` (the process is serving), `GET /readyz` (it can do
 * its work) and `GET /healthz` (the same as /readyz, kept for existing
 * probes), on one internal libmicrohttpd thread.
 *
 * What to say comes from the daemon through two callbacks, called on the
 * HTTP thread: they must take whatever lock guards what they read and
 * must not block. Everything else (routing, methods, limits against idle
 * and slow clients, cartwatch_build_info and process_* metrics) is here.
 * Probes: point a liveness probe at /livez, so that an outage of Kafka or
 * PostgreSQL (a /readyz 503) never gets every replica restarted.
 *
 * Not for: any other endpoint, or keeping the numbers.
 */
#pragma once

#include <stddef.h>

#include "cw_prom.h"

/* What a health callback found. */
enum cw_health {
	CW_HEALTH_READY,     /* 200 everywhere */
	CW_HEALTH_NOT_READY, /* alive, but cannot work: /readyz 503 */
	CW_HEALTH_STALLED,   /* not serving (a wedged loop): /livez 503 too */
};

struct cw_status_ops {
	/* Append the daemon's own series to @out. */
	void (*metrics)(void *opaque, struct cw_text *out);
	/* Say how the daemon is; write a one-line reason (why not ready, or
	 * a note worth showing when ready) into @reason, or leave it
	 * empty. */
	enum cw_health (*health)(void *opaque, char *reason, size_t size);
};

struct cw_status;

/* Listen on @addr (see cw_http_listen()) and serve. @binary labels
 * cartwatch_build_info ("processor"). @ops and @opaque must outlive the
 * server. Returns NULL with a message naming @addr in @errstr when the
 * address is bad or cannot be bound, or on ENOMEM. */
struct cw_status *cw_status_start(const char *addr, const char *binary,
				  const struct cw_status_ops *ops, void *opaque,
				  char *errstr, size_t errstr_size);

/* The bound port (useful with port 0). */
int cw_status_port(const struct cw_status *s);

/* Stop serving (waits for the HTTP thread) and free. NULL is a no-op.
 * After it returns no callback runs. */
void cw_status_stop(struct cw_status *s);
