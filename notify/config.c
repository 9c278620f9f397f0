/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config — cartwatch-notify's option table. See config.h.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT(field) offsetof(struct notify_config, field)

static const struct cw_opt notify_opts[] = {
	CW_OPT_BOOTSTRAP_SERVERS(struct notify_config),
	{"topic", 't', CW_OPT_STRING, OPT(topic), "cart-abandonments", "NAME",
	 "Topic of abandonments (Avro) to act on", false},
	{"group", 'g', CW_OPT_STRING, OPT(group), "cartwatch-notify", "ID",
	 "Kafka consumer group (notifiers in one group share partitions)",
	 false},
	{"dlq-topic", 0, CW_OPT_STRING, OPT(dlq_topic), "cart-abandonments-dlq",
	 "NAME",
	 "Dead-letter topic for records that do not decode or cannot be "
	 "delivered",
	 false},
	{"webhook-url", 0, CW_OPT_STRING, OPT(webhook_url), NULL, "URL",
	 "Where each abandonment is POSTed as JSON (required)", false},
	{"secret-file", 0, CW_OPT_STRING, OPT(secret_file), NULL, "FILE",
	 "File holding the HMAC-SHA256 signing secret (required; one "
	 "trailing newline is ignored)",
	 false},
	{"cart-url-template", 0, CW_OPT_STRING, OPT(cart_url_template), NULL,
	 "URL",
	 "Adds cart_url to the body: {user_id} and {abandonment_id} are "
	 "replaced, URL-encoded",
	 false},
	{"pg", 0, CW_OPT_STRING, OPT(pg), NULL, "CONNINFO",
	 "PostgreSQL connection string; when set, abandonments already "
	 "recovered when due are skipped, not sent",
	 false},
	{"delay", 0, CW_OPT_DURATION, OPT(delay_ms), "0s", NULL,
	 "Send when abandoned_at plus this is reached", false},
	{"time-scale", 0, CW_OPT_DOUBLE, OPT(time_scale), "1", "X",
	 "Event seconds per wall second (match the simulator's "
	 "--time-scale): other than 1, a record is due --delay / X after it "
	 "was written",
	 false},
	{"concurrency", 0, CW_OPT_INT, OPT(concurrency), "8", "N",
	 "Requests in flight or waiting to be retried at once", false},
	{"max-rate", 0, CW_OPT_STRING, OPT(max_rate_text), "0", "N/s",
	 "At most N requests per second (also N/m, N/h; a bare N is per "
	 "second; 0: no limit)",
	 false},
	{"max-attempts", 0, CW_OPT_INT, OPT(max_attempts), "10", "N",
	 "Dead-letter an abandonment after this many failed attempts", false},
	{"request-timeout", 0, CW_OPT_DURATION, OPT(request_timeout_ms), "10s",
	 NULL, "A request without a complete answer by then is retried", false},
	{"retry-backoff", 0, CW_OPT_DURATION, OPT(retry_backoff_ms), "1s", NULL,
	 "Wait before the first retry; doubles each time, with jitter", false},
	{"max-backoff", 0, CW_OPT_DURATION, OPT(max_backoff_ms), "5m", NULL,
	 "Longest wait between attempts (also caps Retry-After)", false},
	{"shutdown-timeout", 0, CW_OPT_DURATION, OPT(shutdown_timeout_ms),
	 "15s", NULL,
	 "On SIGTERM, how long requests in flight may still finish", false},
	{"metrics-addr", 0, CW_OPT_STRING, OPT(metrics_addr), "", "HOST:PORT",
	 "Serve Prometheus /metrics and /healthz on this address (port 0: any "
	 "free port; empty: off)",
	 false},
	CW_OPT_LOG(struct notify_config),
	{"kafka-property", 'X', CW_OPT_KV, OPT(kafka_props), NULL, "KEY=VALUE",
	 "librdkafka property for the consumer and the dead-letter producer "
	 "(repeatable; the environment form takes a comma-separated list)",
	 false},
};

int notify_rate_parse(const char *text, double *per_s)
{
	static const struct {
		const char *unit;
		double seconds;
	} units[] = {
		{"", 1}, {"/s", 1}, {"/m", 60}, {"/min", 60}, {"/h", 3600}};
	char *end;
	double v;

	if (!text || (!(text[0] >= '0' && text[0] <= '9') && text[0] != '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || !isfinite(v) || v < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0) {
			*per_s = v / units[i].seconds;
			return 0;
		}
	return -EINVAL;
}

static int validate(void *config, char *errstr, size_t errstr_size)
{
	struct notify_config *cfg = config;
	const char *bad = NULL;

	if (!cfg->webhook_url || !cfg->webhook_url[0])
		bad = "--webhook-url is required";
	else if (!cfg->secret_file || !cfg->secret_file[0])
		bad = "--secret-file is required";
	else if (!(cfg->time_scale > 0 && cfg->time_scale <= 1e9))
		bad = "--time-scale must be above 0 and at most 1e9";
	else if (cfg->concurrency < 1 || cfg->concurrency > 1024)
		bad = "--concurrency must be between 1 and 1024";
	else if (notify_rate_parse(cfg->max_rate_text, &cfg->max_rate) < 0)
		bad = "--max-rate must be a rate such as 50/s, 600/m or 50";
	else if (cfg->max_rate > 1e6)
		bad = "--max-rate must be at most 1000000/s";
	else if (cfg->max_attempts < 1 || cfg->max_attempts > 1000)
		bad = "--max-attempts must be between 1 and 1000";
	else if (cfg->request_timeout_ms < 10 ||
		 cfg->request_timeout_ms > 3600000)
		bad = "--request-timeout must be between 10ms and 1h";
	else if (cfg->retry_backoff_ms < 1 ||
		 cfg->max_backoff_ms < cfg->retry_backoff_ms ||
		 cfg->max_backoff_ms > 86400000)
		bad = "--retry-backoff must be positive and at most "
		      "--max-backoff, itself at most 1d";
	else if (cfg->delay_ms > 366LL * 86400000)
		bad = "--delay must be at most 366d";
	else if (cfg->shutdown_timeout_ms > 3600000)
		bad = "--shutdown-timeout must be at most 1h";
	else if (!cfg->topic[0] || !cfg->group[0] || !cfg->dlq_topic[0])
		bad = "--topic, --group and --dlq-topic must not be empty";
	if (bad) {
		snprintf(errstr, errstr_size, "%s", bad);
		return -EINVAL;
	}
	return 0;
}

const struct cw_daemon_spec notify_spec = {
	"cartwatch-notify",
	"POST each cart abandonment from Kafka to a webhook, signed, after a "
	"delay,\nretried until delivered or dead-lettered, skipping carts "
	"recovered meanwhile.",
	notify_opts,
	sizeof(notify_opts) / sizeof(notify_opts[0]),
	validate,
};
