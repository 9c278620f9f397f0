/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-producer — simulate Prime-Day shoppers (or read JSON lines) and
 * produce their cart events, Avro single-object framed and keyed by
 * user_id, to Kafka, to a cartwatch-gateway (--http) or to a file.
 *
 * main only wires the modules together: parse options, build the catalog,
 * the source (sim or json_feed), the summary and the sink, install the
 * signal handler, run the loop, report, and tear down in reverse.
 * Exit status: 0 ok, 1 runtime failure (broker unreachable, failed
 * deliveries, --strict stop, I/O error), 2 usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "clock.h"
#include "cw_catalog.h"
#include "cw_daemon.h"
#include "cw_log.h"
#include "json_feed.h"
#include "options.h"
#include "run.h"
#include "sim.h"
#include "sink.h"
#include "summary.h"

int main(int argc, char **argv)
{
	struct options o = {0};
	struct catalog *cat = NULL;
	struct cw_catalog *shop = NULL;
	struct summary *sum = NULL;
	struct sim *sim = NULL;
	struct json_feed *feed = NULL;
	struct sink *sk = NULL;
	struct sim_stats simst;
	struct sink_stats st;
	volatile sig_atomic_t *stop;
	sigset_t block, orig;
	char errstr[512];
	int64_t t0;
	int r, status = 1;

	r = options_parse(&o, argc, argv);
	if (r != 0) {
		status = cw_daemon_exit_status(r);
		goto out;
	}

	cat = catalog_new(errstr, sizeof(errstr));
	sum = cat ? summary_new(cat) : NULL;
	if (!cat || !sum) {
		cw_error("cannot build the catalog", "error=\"%s\"",
			 cat ? "out of memory" : errstr);
		goto out;
	}
	if (o.catalog && !o.stdin_json)
		cw_warn("--catalog only prices --stdin-json events; the "
			"simulation uses its built-in catalog",
			"catalog=%s", o.catalog);
	if (o.stdin_json && o.catalog) {
		shop = cw_catalog_load(o.catalog, errstr, sizeof(errstr));
		if (!shop) {
			cw_error("cannot load the catalog",
				 "path=%s error=\"%s\"", o.catalog, errstr);
			goto out;
		}
		cw_info("catalog loaded", "path=%s products=%zu", o.catalog,
			cw_catalog_count(shop));
	}
	if (o.stdin_json) {
		feed = json_feed_new(stdin, cat, shop, o.strict,
				     o.max_clock_skew_ms, errstr,
				     sizeof(errstr));
		if (!feed) {
			cw_error("cannot start the JSON feed", "error=\"%s\"",
				 errstr);
			goto out;
		}
	} else {
		struct sim_config sc = {(uint64_t)o.seed, (uint32_t)o.users,
					o.start_ms, o.duration_ms};

		sim = sim_new(cat, &sc, errstr, sizeof(errstr));
		if (!sim) {
			cw_error("cannot start the simulation", "error=\"%s\"",
				 errstr);
			goto out;
		}
	}

	/* First SIGINT/SIGTERM: stop generating, flush, report. Second: leave
	 * now. librdkafka's threads inherit the blocked mask, so the stop
	 * signals always reach this thread, and (the handler has no
	 * SA_RESTART) end its stdin reads. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &orig);
	stop = cw_daemon_catch_stop();
	sk = sink_new(
		&(struct sink_config){.output = o.output,
				      .http_url = o.http,
				      .http_token_file = o.http_token_file,
				      .http_timeout_ms = o.http_timeout_ms,
				      .format = o.sink_format,
				      .bootstrap_servers = o.bootstrap_servers,
				      .topic = o.topic,
				      .properties = &o.properties,
				      .connect_timeout_ms =
					      o.connect_timeout_ms,
				      .stop = stop},
		errstr, sizeof(errstr));
	sigprocmask(SIG_SETMASK, &orig, NULL);
	if (!sk) {
		cw_error("cannot open the sink", "error=\"%s\"", errstr);
		goto out;
	}
	cw_info("producing",
		"source=%s sink=%s topic=%s seed=%" PRId64 " rate=%g "
		"time_scale=%g events=%" PRId64,
		sim ? "simulation" : "stdin-json",
		o.output ? o.output
		: o.http ? o.http
			 : "kafka",
		o.topic, o.seed, o.rate, o.time_scale, o.events);

	t0 = clock_mono_ns();
	r = run_loop(&(struct run_config){o.rate, o.time_scale,
					  (uint64_t)o.events, o.start_ms,
					  isatty(STDERR_FILENO) == 1},
		     &(struct run_source){sim, feed, feed ? stdin : NULL}, sk,
		     sum, stop);

	sink_get_stats(sk, &st);
	if (sim)
		sim_get_stats(sim, &simst);
	struct summary_extra x = {
		st.delivered, st.failed, feed ? json_feed_invalid(feed) : 0,
		sim ? &simst : NULL, (double)(clock_mono_ns() - t0) / 1e9};
	summary_log(sum, &x);
	status = r < 0 || st.failed ? 1 : 0;
	if (o.summary_json &&
	    (r = summary_write_json(sum, &x, o.summary_json))) {
		cw_error("cannot write the summary", "path=%s error=\"%s\"",
			 o.summary_json, strerror(-r));
		status = 1;
	}
out:
	if (sink_destroy(sk) < 0) {
		cw_error("cannot close the output", "path=%s", o.output);
		status = 1;
	}
	json_feed_destroy(feed);
	sim_destroy(sim);
	summary_destroy(sum);
	cw_catalog_destroy(shop);
	catalog_destroy(cat);
	options_free(&o);
	return status;
}
