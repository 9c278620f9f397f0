/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-notify — entry point: options, signals, run, tear down.
 * The work is in notify.c; what a delivery is made of in webhook.c.
 */
#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "cw_daemon.h"
#include "cw_log.h"
#include "notify.h"

int main(int argc, char **argv)
{
	struct notify_config cfg = {0};
	volatile sig_atomic_t *stop;
	struct notify *n = NULL;
	char errstr[512];
	int r, status = 1;

	r = cw_daemon_init(&notify_spec, &cfg, argc, argv);
	if (r != 0) {
		status = cw_daemon_exit_status(r);
		goto out;
	}
	/* First SIGTERM/SIGINT: stop taking records, finish what is in
	 * flight, commit. Second: exit now; uncommitted records are delivered
	 * again after a restart (receivers de-duplicate by Idempotency-Key). */
	stop = cw_daemon_catch_stop();

	n = notify_new(&cfg, stop, errstr, sizeof(errstr));
	if (!n) {
		cw_error("cannot start", "error=\"%s\"", errstr);
		goto out;
	}
	status = notify_run(n) == 0 ? 0 : 1;
out:
	notify_destroy(n);
	cw_config_free(notify_spec.opts, notify_spec.n_opts, &cfg);
	return status;
}
