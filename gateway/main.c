/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-gateway — entry point: options, signals, run, tear down.
 * The work is in gateway.c; JSON to events in common/cw_event_json.c.
 */
#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "cw_daemon.h"
#include "cw_log.h"
#include "gateway.h"

static volatile sig_atomic_t reload_requested;

/* SIGHUP: re-read the catalog (the gateway's loop does it). */
static void on_reload(int sig)
{
	(void)sig;
	reload_requested = 1;
}

int main(int argc, char **argv)
{
	struct gateway_config cfg = {0};
	struct sigaction sh = {.sa_handler = on_reload};
	volatile sig_atomic_t *stop;
	struct gateway *gw = NULL;
	char errstr[512];
	int r, status = 1;

	r = cw_daemon_init(&gateway_spec, &cfg, argc, argv);
	if (r != 0) {
		status = cw_daemon_exit_status(r);
		goto out;
	}
	/* First SIGTERM/SIGINT: drain (answer what is in flight, flush).
	 * Second: exit now; clients whose requests were not answered retry
	 * them. */
	stop = cw_daemon_catch_stop();
	sigaction(SIGHUP, &sh, NULL);

	gw = gateway_new(&cfg, stop, &reload_requested, errstr, sizeof(errstr));
	if (!gw) {
		cw_error("cannot start", "error=\"%s\"", errstr);
		goto out;
	}
	status = gateway_run(gw) == 0 ? 0 : 1;
out:
	gateway_destroy(gw);
	cw_config_free(gateway_spec.opts, gateway_spec.n_opts, &cfg);
	return status;
}
