/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_daemon — options, log set-up and stop signals for every main(). See
 * cw_daemon.h.
 */
#include "cw_daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cw_log.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	if (stop_requested)
		_exit(128 + sig);
	stop_requested = 1;
}

/* The value of the string option @name of @spec's table in @cfg, or NULL
 * when the table has no such option. */
static const char *opt_string(const struct cw_daemon_spec *spec,
			      const void *cfg, const char *name)
{
	for (size_t i = 0; i < spec->n_opts; i++)
		if (spec->opts[i].type == CW_OPT_STRING &&
		    strcmp(spec->opts[i].name, name) == 0)
			return *(char *const *)((const char *)cfg +
						spec->opts[i].offset);
	return NULL;
}

/* Set cw_log from the table's --log-level and --log-format. Returns 0 or
 * -EINVAL with the bad value in @errstr; sets nothing then. */
static int log_setup(const struct cw_daemon_spec *spec, const void *cfg,
		     char *errstr, size_t errstr_size)
{
	const char *level = opt_string(spec, cfg, "log-level");
	const char *format = opt_string(spec, cfg, "log-format");
	enum cw_log_level lvl = CW_LOG_INFO;
	enum cw_log_format fmt = CW_LOG_LOGFMT;

	if (level && cw_log_parse_level(level, &lvl) < 0) {
		snprintf(errstr, errstr_size,
			 "bad --log-level '%s' (debug, info, warn or error)",
			 level);
		return -EINVAL;
	}
	if (format && cw_log_parse_format(format, &fmt) < 0) {
		snprintf(errstr, errstr_size,
			 "bad --log-format '%s' (logfmt or json)", format);
		return -EINVAL;
	}
	cw_log_set_level(lvl);
	cw_log_set_format(fmt);
	return 0;
}

int cw_daemon_init(const struct cw_daemon_spec *spec, void *cfg, int argc,
		   char **argv)
{
	char errstr[512] = "";
	int r;

	r = cw_config_parse(spec->opts, spec->n_opts, cfg, spec->prog,
			    spec->synopsis, argc, argv, errstr, sizeof(errstr));
	if (r == CW_CONFIG_HELP)
		return r;
	if (r == 0 && spec->validate)
		r = spec->validate(cfg, errstr, sizeof(errstr));
	if (r == 0)
		r = log_setup(spec, cfg, errstr, sizeof(errstr));
	if (r < 0) {
		if (!errstr[0])
			snprintf(errstr, sizeof(errstr), "%s", strerror(-r));
		cw_config_usage_error(spec->prog, errstr);
	}
	return r;
}

volatile sig_atomic_t *cw_daemon_catch_stop(void)
{
	struct sigaction sa = {.sa_handler = on_stop};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return &stop_requested;
}
