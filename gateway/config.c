/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config — the gateway's option table. See config.h.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define OPT(field) offsetof(struct gateway_config, field)

static const struct cw_opt gateway_opts[] = {
	CW_OPT_BOOTSTRAP_SERVERS(struct gateway_config),
	{"listen", 0, CW_OPT_STRING, OPT(listen), "0.0.0.0:8080", "ADDR:PORT",
	 "Serve POST /v1/events, /metrics and /healthz on this address (IPv6 "
	 "in brackets; port 0: any free port)",
	 false},
	{"topic", 't', CW_OPT_STRING, OPT(topic), "cart-events", "NAME",
	 "Topic the cart events are produced to, keyed by user_id", false},
	{"catalog", 0, CW_OPT_STRING, OPT(catalog), NULL, "FILE",
	 "Shop catalog CSV (header product_id,unit_price_cents[,currency,...]) "
	 "pricing events sent without unit_price_cents; re-read on SIGHUP",
	 false},
	{"token-file", 0, CW_OPT_STRING, OPT(token_file), NULL, "FILE",
	 "Accept only requests with a bearer token listed in this file (one a "
	 "line); unset: open to anyone who can connect",
	 false},
	{"cors-origin", 0, CW_OPT_STRING, OPT(cors_origin), NULL, "ORIGIN",
	 "Allow browsers on this origin (e.g. https://shop.example, or *) to "
	 "send events (CORS)",
	 false},
	{"max-body", 0, CW_OPT_STRING, OPT(max_body), "1MB", "SIZE",
	 "Largest request body; a larger one is refused with 413", false},
	{"max-clock-skew", 0, CW_OPT_DURATION, OPT(max_clock_skew_ms), "15m",
	 NULL, "Refuse events stamped further ahead of the gateway's clock",
	 false},
	{"delivery-timeout", 0, CW_OPT_DURATION, OPT(delivery_timeout_ms),
	 "10s", NULL,
	 "How long Kafka may take to acknowledge an event before the request "
	 "is answered 503",
	 false},
	{"max-queue", 0, CW_OPT_INT, OPT(max_queue), "100000", "N",
	 "Events waiting for Kafka's acknowledgement; a request that would "
	 "exceed it is answered 503",
	 false},
	{"max-connections", 0, CW_OPT_INT, OPT(max_connections), "1024", "N",
	 "Open HTTP connections in all", false},
	{"max-connections-per-ip", 0, CW_OPT_INT, OPT(max_connections_per_ip),
	 "128", "N", "Open HTTP connections from one client address", false},
	{"connection-timeout", 0, CW_OPT_DURATION, OPT(connection_timeout_ms),
	 "10s", NULL,
	 "Close a connection whose client sends nothing for this long", false},
	{"http-threads", 0, CW_OPT_INT, OPT(http_threads), "2", "N",
	 "HTTP server threads", false},
	{"idempotency-ttl", 0, CW_OPT_DURATION, OPT(idempotency_ttl_ms), "10m",
	 NULL,
	 "How long the answer to a request with an Idempotency-Key is "
	 "replayed to its retries",
	 false},
	{"idempotency-max", 0, CW_OPT_INT, OPT(idempotency_max), "100000", "N",
	 "Idempotency keys remembered (the oldest is forgotten first)", false},
	{"max-buffered", 0, CW_OPT_STRING, OPT(max_buffered), "64MB", "SIZE",
	 "Request bodies held in memory at once, over all connections; "
	 "beyond it requests are answered 503",
	 false},
	{"drain-timeout", 0, CW_OPT_DURATION, OPT(drain_timeout_ms), "30s",
	 NULL,
	 "On SIGTERM, how long to wait for requests in flight before exiting",
	 false},
	CW_OPT_LOG(struct gateway_config),
	{"kafka-property", 'X', CW_OPT_KV, OPT(kafka_props), NULL, "KEY=VALUE",
	 "librdkafka producer property (repeatable; the environment form "
	 "takes a comma-separated list)",
	 false},
};

int gateway_size_parse(const char *text, size_t *bytes)
{
	static const struct {
		const char *unit;
		int shift;
	} units[] = {{"", 0},	 {"B", 0},    {"KB", 10}, {"KiB", 10},
		     {"MB", 20}, {"MiB", 20}, {"GB", 30}, {"GiB", 30},
		     {"K", 10},	 {"M", 20},   {"G", 30}};
	unsigned long long v = 0;
	const char *p = text;

	if (!text || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (1ULL << 40))
			return -EINVAL;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(p, units[i].unit) == 0) {
			if (v > (1ULL << 40) >> units[i].shift)
				return -EINVAL;
			*bytes = (size_t)(v << units[i].shift);
			return 0;
		}
	return -EINVAL;
}

static int validate(void *config, char *errstr, size_t errstr_size)
{
	struct gateway_config *cfg = config;
	const char *bad = NULL;

	if (gateway_size_parse(cfg->max_body, &cfg->max_body_bytes) ||
	    cfg->max_body_bytes < 1024 || cfg->max_body_bytes > (256u << 20))
		bad = "--max-body must be a size between 1KB and 256MB (e.g. "
		      "1MB)";
	else if (gateway_size_parse(cfg->max_buffered,
				    &cfg->max_buffered_bytes) ||
		 cfg->max_buffered_bytes < cfg->max_body_bytes)
		bad = "--max-buffered must be a size of at least --max-body";
	else if (cfg->max_clock_skew_ms < 1000 ||
		 cfg->max_clock_skew_ms > 366LL * 86400000)
		bad = "--max-clock-skew must be between 1s and 366d";
	else if (cfg->delivery_timeout_ms < 100 ||
		 cfg->delivery_timeout_ms > 3600000)
		bad = "--delivery-timeout must be between 100ms and 1h";
	else if (cfg->max_queue < 1 || cfg->max_queue > 10000000)
		bad = "--max-queue must be between 1 and 10000000";
	else if (cfg->max_connections < 1 || cfg->max_connections > 1000000)
		bad = "--max-connections must be between 1 and 1000000";
	else if (cfg->max_connections_per_ip < 1 ||
		 cfg->max_connections_per_ip > cfg->max_connections)
		bad = "--max-connections-per-ip must be between 1 and "
		      "--max-connections";
	else if (cfg->connection_timeout_ms < 1000 ||
		 cfg->connection_timeout_ms > 3600000)
		bad = "--connection-timeout must be between 1s and 1h";
	else if (cfg->http_threads < 1 || cfg->http_threads > 64)
		bad = "--http-threads must be between 1 and 64";
	else if (cfg->idempotency_ttl_ms < 1000 ||
		 cfg->idempotency_ttl_ms > 7LL * 86400000)
		bad = "--idempotency-ttl must be between 1s and 7d";
	else if (cfg->idempotency_max < 0 || cfg->idempotency_max > 10000000)
		bad = "--idempotency-max must be between 0 and 10000000";
	else if (cfg->drain_timeout_ms < 0 || cfg->drain_timeout_ms > 3600000)
		bad = "--drain-timeout must be at most 1h";
	else if (!cfg->topic[0] || !cfg->listen[0])
		bad = "--topic and --listen must not be empty";
	if (bad) {
		snprintf(errstr, errstr_size, "%s", bad);
		return -EINVAL;
	}
	return 0;
}

const struct cw_daemon_spec gateway_spec = {
	"cartwatch-gateway",
	"Take a shop's cart events over HTTP (POST /v1/events, JSON or NDJSON) "
	"and produce them\nto Kafka, answering 202 only once Kafka has "
	"acknowledged every one.",
	gateway_opts,
	sizeof(gateway_opts) / sizeof(gateway_opts[0]),
	validate,
};
