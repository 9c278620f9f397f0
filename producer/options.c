/* SPDX-License-Identifier: Apache-2.0 */
/*
 * options — the producer's option table and its validation. See options.h.
 */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

#define PROG	   "cartwatch-producer"
#define OPT(field) offsetof(struct options, field)

const struct cw_opt options_table[] = {
	{"bootstrap-servers", 'b', CW_OPT_STRING, OPT(bootstrap_servers),
	 "localhost:9092", "HOST:PORT,...", "Kafka bootstrap servers", false},
	{"topic", 't', CW_OPT_STRING, OPT(topic), "cart-events", "NAME",
	 "Topic to produce the cart events to", false},
	{"users", 'u', CW_OPT_INT, OPT(users), "10000", "N",
	 "Number of simulated shoppers", false},
	{"rate", 'r', CW_OPT_DOUBLE, OPT(rate), NULL, "EVENTS/S",
	 "Cap on events sent per wall-clock second; 0 sends as fast as "
	 "possible, ignoring --time-scale [default: 1000 when simulating, "
	 "0 with --stdin-json]",
	 false},
	{"events", 'n', CW_OPT_INT, OPT(events), "0", "N",
	 "Stop after N events (0: no limit)", false},
	{"duration", 'd', CW_OPT_DURATION, OPT(duration_ms), "48h", "DURATION",
	 "Simulated time to run, from --start-time (0: no limit)", false},
	{"seed", 's', CW_OPT_INT, OPT(seed), "1", "N",
	 "Seed of the simulation and of generated event ids; the same "
	 "options and seed give the same events",
	 false},
	{"start-time", 0, CW_OPT_STRING, OPT(start_time), NULL, "TIME",
	 "Event time of the simulation start, RFC 3339 or epoch ms "
	 "[default: now; with --rate 0, now minus --duration]",
	 false},
	{"time-scale", 0, CW_OPT_DOUBLE, OPT(time_scale), "60", "X",
	 "Simulated seconds per wall-clock second (60: a Prime-Day hour "
	 "per minute)",
	 false, "CARTWATCH_PRODUCER_TIME_SCALE"},
	{"kafka-property", 'X', CW_OPT_KV, OPT(properties), NULL, "KEY=VALUE",
	 "Set any librdkafka property (repeatable; wins over the built-in "
	 "throughput defaults)",
	 false},
	{"stdin-json", 0, CW_OPT_BOOL, OPT(stdin_json), "false", NULL,
	 "Send the JSON-lines events read from stdin instead of simulating",
	 false},
	{"output", 'o', CW_OPT_STRING, OPT(output), NULL, "FILE",
	 "Write the events to FILE ('-': stdout) instead of Kafka", false},
	{"format", 'f', CW_OPT_STRING, OPT(format), "json", "json|avro",
	 "--output format: JSON lines, or Avro single-object messages each "
	 "prefixed by a 4-byte big-endian length",
	 false},
	{"summary-json", 0, CW_OPT_STRING, OPT(summary_json), NULL, "FILE",
	 "Write the totals (events by type, units and value by product) to "
	 "FILE at exit",
	 false},
	{"strict", 0, CW_OPT_BOOL, OPT(strict), "false", NULL,
	 "Stop with exit status 1 at the first invalid --stdin-json line "
	 "instead of skipping it",
	 false},
	{"connect-timeout", 0, CW_OPT_DURATION, OPT(connect_timeout_ms), "10s",
	 "DURATION", "How long to wait for the broker before giving up", false},
	{"log-level", 0, CW_OPT_STRING, OPT(log_level), "info", "LEVEL",
	 "debug, info, warn or error", false},
	{"log-format", 0, CW_OPT_STRING, OPT(log_format), "logfmt", "FORMAT",
	 "logfmt (key=value lines) or json (one object a line)", false},
};
const size_t options_table_size =
	sizeof(options_table) / sizeof(options_table[0]);

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
							     ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cw_config_usage_error(PROG, msg);
	return -EINVAL;
}

int options_parse(struct options *o, int argc, char **argv)
{
	char errstr[512];
	int r;

	/* --rate has no table default: unset stays NaN (no value parses to
	 * NaN), then takes the default of the source. */
	o->rate = NAN;
	r = cw_config_parse(
		options_table, options_table_size, o, PROG,
		"Simulate Prime-Day shoppers (or read JSON lines) and "
		"produce their cart events to Kafka.",
		argc, argv, errstr, sizeof(errstr));
	if (r == CW_CONFIG_HELP)
		return r;
	if (r < 0)
		return usage_error("%s", errstr);
	if (isnan(o->rate))
		o->rate = o->stdin_json ? 0 : 1000; /* a feed is not paced */
	if (o->users < 1 || o->users > 50000000)
		return usage_error("--users must be 1..50000000");
	if (o->rate < 0)
		return usage_error("--rate must be >= 0");
	if (o->events < 0)
		return usage_error("--events must be >= 0");
	if (!(o->time_scale > 0))
		return usage_error("--time-scale must be > 0");
	if (o->connect_timeout_ms < 1 || o->connect_timeout_ms > INT32_MAX)
		return usage_error("--connect-timeout must be 1ms..24d");
	if (!o->topic || !*o->topic)
		return usage_error("--topic must not be empty");
	if (!o->output && (!o->bootstrap_servers || !*o->bootstrap_servers))
		return usage_error("--bootstrap-servers must not be empty");
	if (!strcmp(o->format, "json"))
		o->sink_format = SINK_FORMAT_JSON;
	else if (!strcmp(o->format, "avro"))
		o->sink_format = SINK_FORMAT_AVRO;
	else
		return usage_error("--format must be json or avro, not '%s'",
				   o->format);
	if (cw_log_parse_level(o->log_level, &o->log_level_value) < 0)
		return usage_error("--log-level must be debug, info, warn or "
				   "error");
	if (cw_log_parse_format(o->log_format, &o->log_format_value) < 0)
		return usage_error("--log-format must be logfmt or json");
	if (!o->start_time)
		/* As fast as possible is a backfill: the simulated span ends
		 * now, so that no event is stamped in the future (processors
		 * refuse events beyond their --max-clock-skew). */
		o->start_ms =
			clock_wall_ms() - (o->rate == 0 ? o->duration_ms : 0);
	else if (clock_parse_time(o->start_time, &o->start_ms) < 0)
		return usage_error("--start-time '%s' is neither RFC 3339 "
				   "(2024-07-16T00:00:00Z) nor epoch ms",
				   o->start_time);
	return 0;
}

void options_free(struct options *o)
{
	cw_config_free(options_table, options_table_size, o);
}
