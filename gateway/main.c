/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-gateway — entry point: options, signals, run, tear down.
 * The work is in gateway.c; JSON to events in common/cw_event_json.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cw_log.h"
#include "gateway.h"

static volatile sig_atomic_t stop_requested, reload_requested;

/* First SIGTERM/SIGINT: drain (answer what is in flight, flush). Second:
 * exit now; clients whose requests were not answered retry them. */
static void on_stop(int sig)
{
	(void)sig;
	if (stop_requested)
		_exit(130);
	stop_requested = 1;
}

static void on_reload(int sig)
{
	(void)sig;
	reload_requested = 1;
}

int main(int argc, char **argv)
{
	struct gateway_config cfg = {0};
	struct sigaction sa = {.sa_handler = on_stop};
	struct sigaction sh = {.sa_handler = on_reload};
	struct gateway *gw = NULL;
	enum cw_log_level lvl;
	enum cw_log_format fmt;
	char errstr[512];
	int r, status = 1;

	r = cw_config_parse(gateway_opts, gateway_opts_count, &cfg,
			    "cartwatch-gateway",
			    "Take a shop's cart events over HTTP (POST "
			    "/v1/events, JSON or NDJSON) and produce them\n"
			    "to Kafka, answering 202 only once Kafka has "
			    "acknowledged every one.",
			    argc, argv, errstr, sizeof(errstr));
	if (r == CW_CONFIG_HELP) {
		status = 0;
		goto out;
	}
	if (r < 0 ||
	    (r = gateway_config_validate(&cfg, errstr, sizeof(errstr))) < 0 ||
	    (cw_log_parse_level(cfg.log_level, &lvl) < 0 &&
	     snprintf(errstr, sizeof(errstr), "bad --log-level '%s'",
		      cfg.log_level) > 0) ||
	    (cw_log_parse_format(cfg.log_format, &fmt) < 0 &&
	     snprintf(errstr, sizeof(errstr),
		      "bad --log-format '%s' (logfmt or json)",
		      cfg.log_format) > 0)) {
		cw_config_usage_error("cartwatch-gateway", errstr);
		status = 2;
		goto out;
	}
	cw_log_set_level(lvl);
	cw_log_set_format(fmt);

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sh, NULL);
	signal(SIGPIPE, SIG_IGN);

	gw = gateway_new(&cfg, &stop_requested, &reload_requested, errstr,
			 sizeof(errstr));
	if (!gw) {
		cw_error("cannot start", "error=\"%s\"", errstr);
		goto out;
	}
	status = gateway_run(gw) == 0 ? 0 : 1;
out:
	gateway_destroy(gw);
	cw_config_free(gateway_opts, gateway_opts_count, &cfg);
	return status;
}
