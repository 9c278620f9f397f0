/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-processor — entry point: options, signals, run, tear down.
 * The work is in daemon.c; the rules in session.c.
 */
#include <stdio.h>

#include "config.h"
#include "cw_daemon.h"
#include "cw_log.h"
#include "daemon.h"

int main(int argc, char **argv)
{
	struct processor_config cfg = {0};
	volatile sig_atomic_t *stop;
	struct daemon *d = NULL;
	char errstr[512];
	int r, status = 1;

	r = cw_daemon_init(&processor_spec, &cfg, argc, argv);
	if (r != 0) {
		status = cw_daemon_exit_status(r);
		goto out;
	}
	/* First signal: drain (final flush, leave the group). Second: exit
	 * now; PostgreSQL still holds a consistent state, a restart resumes
	 * from it. */
	stop = cw_daemon_catch_stop();

	d = daemon_new(&cfg, stop, errstr, sizeof(errstr));
	if (!d) {
		if (*stop) {
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
	cw_config_free(processor_spec.opts, processor_spec.n_opts, &cfg);
	return status;
}
