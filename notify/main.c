/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-notify — entry point: options, signals, run, tear down.
 * The work is in notify.c; what a delivery is made of in webhook.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cw_log.h"
#include "notify.h"

static volatile sig_atomic_t stop_requested;

/* First signal: stop taking records, finish what is in flight, commit.
 * Second: exit now; uncommitted records are delivered again after a
 * restart (receivers de-duplicate by Idempotency-Key). */
static void on_signal(int sig)
{
	(void)sig;
	if (stop_requested)
		_exit(130);
	stop_requested = 1;
}

int main(int argc, char **argv)
{
	struct notify_config cfg = {0};
	struct sigaction sa = {.sa_handler = on_signal};
	struct notify *n = NULL;
	enum cw_log_level lvl;
	enum cw_log_format fmt;
	char errstr[512];
	int r, status = 1;

	r = cw_config_parse(
		notify_opts, notify_opts_count, &cfg, "cartwatch-notify",
		"POST each cart abandonment from Kafka to a webhook, signed, "
		"after a delay,\nretried until delivered or dead-lettered, "
		"skipping carts recovered meanwhile.",
		argc, argv, errstr, sizeof(errstr));
	if (r == CW_CONFIG_HELP) {
		status = 0;
		goto out;
	}
	if (r < 0 ||
	    (r = notify_config_validate(&cfg, errstr, sizeof(errstr))) < 0 ||
	    (cw_log_parse_level(cfg.log_level, &lvl) < 0 &&
	     snprintf(errstr, sizeof(errstr), "bad --log-level '%s'",
		      cfg.log_level) > 0) ||
	    (cw_log_parse_format(cfg.log_format, &fmt) < 0 &&
	     snprintf(errstr, sizeof(errstr),
		      "bad --log-format '%s' (logfmt or json)",
		      cfg.log_format) > 0)) {
		cw_config_usage_error("cartwatch-notify", errstr);
		status = 2;
		goto out;
	}
	cw_log_set_level(lvl);
	cw_log_set_format(fmt);

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	n = notify_new(&cfg, &stop_requested, errstr, sizeof(errstr));
	if (!n) {
		cw_error("cannot start", "error=\"%s\"", errstr);
		goto out;
	}
	status = notify_run(n) == 0 ? 0 : 1;
out:
	notify_destroy(n);
	cw_config_free(notify_opts, notify_opts_count, &cfg);
	return status;
}
