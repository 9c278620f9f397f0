/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-processor — entry point: options, signals, run, tear down.
 * The work is in daemon.c; the rules in session.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cw_log.h"
#include "daemon.h"

static volatile sig_atomic_t stop_requested;

/* First signal: drain (final flush, leave the group). Second: exit now;
 * PostgreSQL still holds a consistent state, a restart resumes from it. */
static void on_signal(int sig)
{
	(void)sig;
	if (stop_requested)
		_exit(130);
	stop_requested = 1;
}

int main(int argc, char **argv)
{
	struct processor_config cfg = {0};
	struct sigaction sa = {.sa_handler = on_signal};
	struct daemon *d = NULL;
	enum cw_log_level lvl;
	enum cw_log_format fmt;
	char errstr[512];
	int r, status = 1;

	r = cw_config_parse(
		processor_opts, processor_opts_count, &cfg,
		"cartwatch-processor",
		"Track cart sessions from Kafka and write abandonments, "
		"conversions and\nper-product aggregates to PostgreSQL, "
		"exactly once.",
		argc, argv, errstr, sizeof(errstr));
	if (r == CW_CONFIG_HELP) {
		status = 0;
		goto out;
	}
	if (r < 0 ||
	    (r = processor_config_validate(&cfg, errstr, sizeof(errstr))) < 0 ||
	    (cw_log_parse_level(cfg.log_level, &lvl) < 0 &&
	     snprintf(errstr, sizeof(errstr), "bad --log-level '%s'",
		      cfg.log_level) > 0) ||
	    (cw_log_parse_format(cfg.log_format, &fmt) < 0 &&
	     snprintf(errstr, sizeof(errstr),
		      "bad --log-format '%s' (logfmt or json)",
		      cfg.log_format) > 0)) {
		cw_config_usage_error("cartwatch-processor", errstr);
		status = 2;
		goto out;
	}
	cw_log_set_level(lvl);
	cw_log_set_format(fmt);

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	d = daemon_new(&cfg, &stop_requested, errstr, sizeof(errstr));
	if (!d) {
		if (stop_requested) {
			/* Stopped while waiting for PostgreSQL: not an error.
			 */
			cw_info("stopped before startup completed", NULL);
			status = 0;
		} else {
			cw_error("cannot start", "error=\"%s\"", errstr);
		}
		goto out;
	}
	status = daemon_run(d) == 0 ? 0 : 1;
out:
	daemon_destroy(d);
	cw_config_free(processor_opts, processor_opts_count, &cfg);
	return status;
}
