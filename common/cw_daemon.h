/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_daemon — the start-up every cartwatch binary's main() shares: the
 * options from the binary's table (cw_config), --help and --version, usage
 * errors, the checks the table cannot make, the log level and format, and
 * the two-stage stop signal (the first SIGTERM/SIGINT asks for a drain, the
 * second exits at once).
 *
 * Not for: building or running the daemon itself, or any signal beyond the
 * stop pair (the gateway's SIGHUP reload stays in the gateway).
 */
#pragma once

#include <signal.h>
#include <stddef.h>

#include "cw_config.h"

/* What a binary tells cw_daemon_init() about itself. */
struct cw_daemon_spec {
	const char *prog;     /* "cartwatch-processor" */
	const char *synopsis; /* --help's and the man page's description */
	const struct cw_opt *opts;
	size_t n_opts;
	/* The checks the table cannot make (ranges, relations) and the
	 * derived fields; @cfg is the binary's config struct. Returns 0 or
	 * -EINVAL with a message in @errstr. NULL: nothing to check. */
	int (*validate)(void *cfg, char *errstr, size_t errstr_size);
};

/* Fill @cfg from the defaults, the environment and @argv (cw_config_parse),
 * check it with @spec->validate, then set cw_log's level and format from
 * the table's --log-level and --log-format (CW_OPT_LOG; without them the
 * log keeps its defaults).
 * Returns 0: run; CW_CONFIG_HELP: --help, --version or another printing
 * option was given and printed, exit with 0; -EINVAL (or -ENOMEM): a usage
 * error, already printed to stderr as "PROG: why" and a pointer to --help,
 * exit with 2 (cw_daemon_exit_status() maps both). On every return the
 * caller must cw_config_free() @cfg. Call from main() before any thread. */
int cw_daemon_init(const struct cw_daemon_spec *spec, void *cfg, int argc,
		   char **argv);

/* The exit status for a non-zero cw_daemon_init() result: 0 after a
 * printing option, 2 after a usage error. */
static inline int cw_daemon_exit_status(int r)
{
	return r == CW_CONFIG_HELP ? 0 : 2;
}

/* Catch SIGTERM and SIGINT, and ignore SIGPIPE (a closed socket is an
 * error return, not a death). The first stop signal sets the returned
 * flag, which the daemon's loop reads and then drains; a second one exits
 * at once with status 128 + the signal number. The handler is installed
 * without SA_RESTART, so the signal also interrupts a blocking read in the
 * thread that takes it.
 * Returns the flag: process-wide, as signal handlers need. Call once, from
 * main(). Can't fail. */
volatile sig_atomic_t *cw_daemon_catch_stop(void);
