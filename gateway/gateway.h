/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gateway — cartwatch-gateway's daemon: the HTTP front door a shop sends
 * its cart events to (POST /v1/events), producing each accepted event to
 * Kafka and answering only from Kafka's acknowledgements; /metrics and
 * the health endpoints on the same listener.
 *
 * Threads: the caller's (gateway_run(): Kafka delivery reports, signals'
 * flags, catalog reloads, the drain), libmicrohttpd's pool (requests), one
 * prober (is Kafka reachable?), and librdkafka's own.
 *
 * Not for: turning JSON into events (cw_event_json, ingest.c) or the
 * option table (config.c).
 */
#pragma once

#include <signal.h>
#include <stddef.h>

#include "config.h"

struct gateway;

/* Build the daemon from @cfg (which must outlive it): the catalog and
 * tokens are read, the Kafka producer created and the listener started.
 * @stop and @reload are the signal handlers' flags, read by
 * gateway_run(). Returns NULL with the reason in @errstr. Main thread. */
struct gateway *gateway_new(const struct gateway_config *cfg,
			    volatile sig_atomic_t *stop,
			    volatile sig_atomic_t *reload, char *errstr,
			    size_t errstr_size);

/* Serve until *stop is set, then drain: stop accepting connections,
 * answer the requests in flight from their delivery reports (within
 * --drain-timeout; later ones are purged and answered 503), flush.
 * Returns 0, or -EIO after a fatal producer error (also drained). Main
 * thread. */
int gateway_run(struct gateway *gw);

/* The port the listener is bound to (useful with port 0). */
int gateway_port(const struct gateway *gw);

/* Tear down (NULL is fine). Main thread, after gateway_run() or instead
 * of it. */
void gateway_destroy(struct gateway *gw);
