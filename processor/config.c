/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config — the processor's option table. See config.h.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#define OPT(field) offsetof(struct processor_config, field)

static const struct cw_opt processor_opts[] = {
	CW_OPT_BOOTSTRAP_SERVERS(struct processor_config),
	{"topic", 't', CW_OPT_STRING, OPT(topic), "cart-events", "NAME",
	 "Topic of cart events to consume", false},
	{"group", 'g', CW_OPT_STRING, OPT(group), "cartwatch", "ID",
	 "Kafka consumer group (processors in one group share partitions)",
	 false},
	{"abandonment-topic", 0, CW_OPT_STRING, OPT(abandonment_topic),
	 "cart-abandonments", "NAME",
	 "Topic that receives each abandonment as Avro", false},
	{"dlq-topic", 0, CW_OPT_STRING, OPT(dlq_topic), "cart-events-dlq",
	 "NAME", "Dead-letter topic for records that do not decode", false},
	{"pg", 0, CW_OPT_STRING, OPT(pg), NULL, "CONNINFO",
	 "PostgreSQL connection string; unset: libpq's PGHOST, PGDATABASE, "
	 "PGPASSWORD/PGPASSFILE... environment",
	 false},
	{"session-timeout", 0, CW_OPT_DURATION, OPT(session_timeout_ms), "30m",
	 NULL, "Event-time gap that ends a session", false},
	{"allowed-lateness", 0, CW_OPT_DURATION, OPT(allowed_lateness_ms), "5s",
	 NULL, "Watermark = max event time seen minus this", false},
	{"idle-timeout", 0, CW_OPT_DURATION, OPT(idle_timeout_ms), "5s", NULL,
	 "Wall time at the end of a partition before its watermark follows "
	 "the clock",
	 false},
	{"time-scale", 0, CW_OPT_DOUBLE, OPT(time_scale), "1", "X",
	 "Event seconds per wall second for idle watermarks (match the "
	 "simulator's --time-scale)",
	 false},
	{"flush-interval", 0, CW_OPT_DURATION, OPT(flush_interval_ms), "1s",
	 NULL,
	 "How often results and offsets commit to PostgreSQL; sooner when "
	 "everything read is processed (after a quarter of it at the "
	 "least) and while an abandonment would otherwise take longer than "
	 "this to commit",
	 false},
	{"cart-ttl", 0, CW_OPT_DURATION, OPT(cart_ttl_ms), "7d", NULL,
	 "Carts untouched this long (event time) are dropped", false},
	{"recovery-window", 0, CW_OPT_DURATION, OPT(recovery_window_ms), "7d",
	 NULL, "A checkout this soon after an abandonment recovers it", false},
	{"max-clock-skew", 0, CW_OPT_DURATION, OPT(max_clock_skew_ms), "15m",
	 NULL,
	 "Dead-letter events stamped further ahead of the later of the wall "
	 "clock and the partition's latest accepted event (times "
	 "--time-scale when above 1)",
	 false},
	{"repair-future-watermarks", 0, CW_OPT_BOOL,
	 OPT(repair_future_watermarks), NULL, NULL,
	 "At assignment, set a watermark beyond --max-clock-skew back to the "
	 "wall clock and drop users with events that far ahead (committed "
	 "results are kept)",
	 false},
	{"max-products", 0, CW_OPT_INT, OPT(max_products), "1000000", "N",
	 "Distinct product ids, removal reasons and currencies held in "
	 "memory; an event naming a new one beyond this is dead-lettered",
	 false},
	{"max-cart-items", 0, CW_OPT_INT, OPT(max_cart_items), "1000", "N",
	 "Dead-letter a cart_add that would put more distinct products than "
	 "this in one cart",
	 false},
	{"max-pending", 0, CW_OPT_INT, OPT(max_pending), "1000000", "N",
	 "Pause consuming while this many output records wait for "
	 "PostgreSQL",
	 false},
	{"retention", 0, CW_OPT_DURATION, OPT(retention_ms), "0", NULL,
	 "Drop the day partitions of abandonments, items, conversions and "
	 "per-minute stats once they are wholly this much older than the "
	 "database clock (0: keep everything)",
	 false},
	{"status-retention", 0, CW_OPT_DURATION, OPT(status_retention_ms), "7d",
	 NULL, "The same for processor_status_history (0: keep everything)",
	 false},
	{"housekeeping-interval", 0, CW_OPT_DURATION,
	 OPT(housekeeping_interval_ms), "1m", NULL,
	 "How often partitions are created ahead and old ones dropped", false},
	{"instance", 0, CW_OPT_STRING, OPT(instance), NULL, "NAME",
	 "Name of this processor in logs and PostgreSQL [default: "
	 "host:pid]",
	 false},
	{"metrics-addr", 0, CW_OPT_STRING, OPT(metrics_addr), "", "HOST:PORT",
	 "Serve Prometheus /metrics, /livez and /readyz (= /healthz) on this "
	 "address (e.g. 127.0.0.1:9464; port 0: any free port; empty: off)",
	 false},
	{"schema-dir", 0, CW_OPT_STRING, OPT(schema_dir), "", "DIR",
	 "Also accept cart events written with any writer schema (*.avsc) in "
	 "this directory, resolved to this version's (read at start)",
	 false},
	CW_OPT_LOG(struct processor_config),
	{"kafka-property", 'X', CW_OPT_KV, OPT(kafka_props), NULL, "KEY=VALUE",
	 "librdkafka property for the consumer and producers (repeatable; the "
	 "environment form takes a comma-separated list)",
	 false},
};

static int validate(void *config, char *errstr, size_t errstr_size)
{
	const struct processor_config *cfg = config;
	const char *bad = NULL;

	if (cfg->session_timeout_ms <= 0)
		bad = "--session-timeout must be positive";
	else if (cfg->flush_interval_ms < 10)
		bad = "--flush-interval must be at least 10ms";
	else if (!(cfg->time_scale > 0 && cfg->time_scale <= 1e9))
		bad = "--time-scale must be above 0 and at most 1e9";
	else if (cfg->max_clock_skew_ms < 1000 ||
		 cfg->max_clock_skew_ms > 366LL * 86400000)
		bad = "--max-clock-skew must be between 1s and 366d";
	else if (cfg->max_products < 100 || cfg->max_products > 100000000)
		bad = "--max-products must be between 100 and 100000000";
	else if (cfg->max_cart_items < 1 || cfg->max_cart_items > 65535)
		bad = "--max-cart-items must be between 1 and 65535";
	else if (cfg->session_timeout_ms > 366LL * 86400000 ||
		 cfg->cart_ttl_ms > 3660LL * 86400000 ||
		 cfg->recovery_window_ms > 3660LL * 86400000 ||
		 cfg->allowed_lateness_ms > 366LL * 86400000)
		bad = "--session-timeout and --allowed-lateness must be at "
		      "most "
		      "366d, --cart-ttl and --recovery-window at most 3660d";
	else if (cfg->cart_ttl_ms < cfg->session_timeout_ms)
		bad = "--cart-ttl must not be shorter than --session-timeout";
	else if (cfg->max_pending < 1000)
		bad = "--max-pending must be at least 1000";
	else if ((cfg->retention_ms && cfg->retention_ms < 3600000) ||
		 (cfg->status_retention_ms &&
		  cfg->status_retention_ms < 3600000))
		bad = "--retention and --status-retention must be 0 (keep "
		      "everything) or at least 1h";
	else if (cfg->housekeeping_interval_ms < 1000 ||
		 cfg->housekeeping_interval_ms > 86400000)
		bad = "--housekeeping-interval must be between 1s and 1d";
	else if (!cfg->topic[0] || !cfg->group[0])
		bad = "--topic and --group must not be empty";
	if (bad) {
		snprintf(errstr, errstr_size, "%s", bad);
		return -EINVAL;
	}
	return 0;
}

const struct cw_daemon_spec processor_spec = {
	"cartwatch-processor",
	"Track cart sessions from Kafka and write abandonments, conversions "
	"and\nper-product aggregates to PostgreSQL, exactly once.",
	processor_opts,
	sizeof(processor_opts) / sizeof(processor_opts[0]),
	validate,
};
