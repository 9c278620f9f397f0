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
#include "cw_daemon.h"
#include "cw_event_json.h"

#define PROG	   "cartwatch-producer"
#define OPT(field) offsetof(struct options, field)

static const struct cw_opt options_table[] = {
	CW_OPT_BOOTSTRAP_SERVERS(struct options),
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
	 "Seed of the simulation and of its event ids; the same options and "
	 "seed give the same events (--stdin-json generates UUIDv7 ids, "
	 "unique across runs)",
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
	{"catalog", 0, CW_OPT_STRING, OPT(catalog), NULL, "FILE",
	 "The shop's price list (CSV with a header, at least "
	 "product_id,unit_price_cents; the gateway's --catalog) for "
	 "--stdin-json events without unit_price_cents [default: the "
	 "built-in Prime-Day catalog]",
	 false},
	{"http", 0, CW_OPT_STRING, OPT(http), NULL, "URL",
	 "Send the events to a cartwatch-gateway's POST /v1/events at URL "
	 "(e.g. http://localhost:8080/v1/events) instead of Kafka",
	 false},
	{"http-token-file", 0, CW_OPT_STRING, OPT(http_token_file), NULL,
	 "FILE",
	 "Bearer token for --http, read from FILE (the gateway's "
	 "--token-file)",
	 false},
	{"http-timeout", 0, CW_OPT_DURATION, OPT(http_timeout_ms), "5m",
	 "DURATION",
	 "How long --http retries a batch (503, connection errors) before "
	 "counting it as failed",
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
	{"max-clock-skew", 0, CW_OPT_DURATION, OPT(max_clock_skew_ms), "15m",
	 "DURATION",
	 "--stdin-json: refuse events stamped further ahead of the wall "
	 "clock, as the gateway and the processor do (0: no bound, to feed "
	 "test records)",
	 false},
	{"strict", 0, CW_OPT_BOOL, OPT(strict), "false", NULL,
	 "Stop with exit status 1 at the first invalid --stdin-json line "
	 "instead of skipping it",
	 false},
	{"connect-timeout", 0, CW_OPT_DURATION, OPT(connect_timeout_ms), "10s",
	 "DURATION", "How long to wait for the broker before giving up", false},
	CW_OPT_LOG(struct options),
};
/* Write the usage error into @errstr; returns -EINVAL. */
__attribute__((format(printf, 3, 4))) static int
bad(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The checks the table cannot make, and the derived fields. */
static int validate(void *config, char *errstr, size_t errstr_size)
{
	struct options *o = config;

	if (isnan(o->rate))
		o->rate = o->stdin_json ? 0 : 1000; /* a feed is not paced */
	if (o->users < 1 || o->users > 50000000)
		return bad(errstr, errstr_size, "--users must be 1..50000000");
	if (o->rate < 0)
		return bad(errstr, errstr_size, "--rate must be >= 0");
	if (o->events < 0)
		return bad(errstr, errstr_size, "--events must be >= 0");
	if (!(o->time_scale > 0))
		return bad(errstr, errstr_size, "--time-scale must be > 0");
	if (o->connect_timeout_ms < 1 || o->connect_timeout_ms > INT32_MAX)
		return bad(errstr, errstr_size,
			   "--connect-timeout must be 1ms..24d");
	if (!o->topic || !*o->topic)
		return bad(errstr, errstr_size, "--topic must not be empty");
	if (o->http && o->output)
		return bad(errstr, errstr_size,
			   "--http and --output exclude each other");
	if (o->http && strncmp(o->http, "http://", 7) &&
	    strncmp(o->http, "https://", 8))
		return bad(errstr, errstr_size,
			   "--http wants an http:// or https:// URL, "
			   "not '%s'",
			   o->http);
	if (o->http_timeout_ms < 1)
		return bad(errstr, errstr_size, "--http-timeout must be > 0");
	if (!o->output && !o->http &&
	    (!o->bootstrap_servers || !*o->bootstrap_servers))
		return bad(errstr, errstr_size,
			   "--bootstrap-servers must not be empty");
	if (!strcmp(o->format, "json"))
		o->sink_format = SINK_FORMAT_JSON;
	else if (!strcmp(o->format, "avro"))
		o->sink_format = SINK_FORMAT_AVRO;
	else
		return bad(errstr, errstr_size,
			   "--format must be json or avro, not '%s'",
			   o->format);
	if (!o->start_time)
		/* As fast as possible is a backfill: the simulated span ends
		 * now, so that no event is stamped in the future (processors
		 * refuse events beyond their --max-clock-skew). */
		o->start_ms =
			clock_wall_ms() - (o->rate == 0 ? o->duration_ms : 0);
	else if (cw_event_json_parse_time(o->start_time, strlen(o->start_time),
					  &o->start_ms) < 0)
		return bad(errstr, errstr_size,
			   "--start-time '%s' is neither RFC 3339 "
			   "(2024-07-16T00:00:00Z) nor epoch ms",
			   o->start_time);
	return 0;
}

static const struct cw_daemon_spec options_spec = {
	PROG,
	"Simulate Prime-Day shoppers (or read JSON lines) and produce their "
	"cart events to Kafka.",
	options_table,
	sizeof(options_table) / sizeof(options_table[0]),
	validate,
};

int options_parse(struct options *o, int argc, char **argv)
{
	/* --rate has no table default: unset stays NaN (no value parses to
	 * NaN), then takes the default of the source. */
	o->rate = NAN;
	return cw_daemon_init(&options_spec, o, argc, argv);
}

void options_free(struct options *o)
{
	cw_config_free(options_spec.opts, options_spec.n_opts, o);
}
