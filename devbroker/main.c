/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cartwatch-devbroker — an embedded, in-memory Kafka cluster for
 * development, demos and tests, built on librdkafka's mock cluster.
 *
 * It listens on 127.0.0.1 (the port is chosen by the system and printed),
 * creates the topics it is told to, prints its bootstrap address (and writes
 * it to a file on request) and runs until SIGTERM/SIGINT. Any Kafka client,
 * in any process, can use it.
 *
 * Fault injection for tests: SIGUSR1 takes every broker down (connections
 * are refused and dropped), SIGUSR2 brings them back, and SIGHUP makes the
 * next --fail-produce produce requests fail with a permanent error
 * (TOPIC_AUTHORIZATION_FAILED), so producers see failed deliveries.
 *
 * NOT for production: every message lives in this process's memory only and
 * is gone when it exits; there is no replication, no persistence and no
 * security. Use a real Apache Kafka cluster for anything that matters.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cw_config.h"
#include "cw_daemon.h"
#include "cw_log.h"

struct devbroker_config {
	char *topics;
	int64_t partitions;
	int64_t brokers;
	char *bootstrap_file;
	char *log_level;
	char *log_format;
	int64_t fail_produce;
};

#define OPT(field) offsetof(struct devbroker_config, field)
static const struct cw_opt devbroker_opts[] = {
	{"topics", 't', CW_OPT_STRING, OPT(topics),
	 "cart-events,cart-abandonments,cart-events-dlq:1", "NAME[:N],...",
	 "Topics to create, each with N partitions (else --partitions)", false},
	{"partitions", 'p', CW_OPT_INT, OPT(partitions), "6", "N",
	 "Default partition count of each topic", false},
	{"brokers", 0, CW_OPT_INT, OPT(brokers), "1", "N",
	 "Number of mock brokers in the cluster", false},
	{"bootstrap-file", 'o', CW_OPT_STRING, OPT(bootstrap_file), NULL,
	 "FILE", "Also write the bootstrap address to FILE (atomically)",
	 false},
	CW_OPT_LOG(struct devbroker_config),
	{"fail-produce", 0, CW_OPT_INT, OPT(fail_produce), "10", "N",
	 "Produce requests failed after each SIGHUP (fault injection)", false},
};

static int validate(void *config, char *errstr, size_t errstr_size)
{
	const struct devbroker_config *cfg = config;
	const char *bad = NULL;

	if (cfg->partitions < 1)
		bad = "--partitions must be at least 1";
	else if (cfg->brokers < 1 || cfg->brokers > 16)
		bad = "--brokers must be between 1 and 16";
	else if (cfg->fail_produce < 0 || cfg->fail_produce > 1000)
		bad = "--fail-produce must be between 0 and 1000";
	if (bad) {
		snprintf(errstr, errstr_size, "%s", bad);
		return -EINVAL;
	}
	return 0;
}

static const struct cw_daemon_spec devbroker_spec = {
	"cartwatch-devbroker",
	"Run an in-memory Kafka cluster for development and tests (data is "
	"lost on exit).",
	devbroker_opts,
	sizeof(devbroker_opts) / sizeof(devbroker_opts[0]),
	validate,
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t want_down = -1; /* -1: no change asked */
static volatile sig_atomic_t want_produce_errors;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		want_down = 1;
	else if (sig == SIGUSR2)
		want_down = 0;
	else if (sig == SIGHUP)
		want_produce_errors = 1;
	else
		stop_requested = 1;
}

/* Write @text to @path through a temporary file and rename(2), so a reader
 * polling for the file never sees it half-written. */
static int write_file_atomic(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", text);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

/* Create every topic of the comma-separated @spec. Returns 0 or -EINVAL. */
static int create_topics(rd_kafka_mock_cluster_t *mcluster, const char *spec,
			 int def_partitions, int replication)
{
	char *copy = strdup(spec), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		int parts = def_partitions;
		rd_kafka_resp_err_t err;

		if (colon) {
			char *end;
			*colon = '\0';
			parts = (int)strtol(colon + 1, &end, 10);
			if (*end || parts < 1) {
				cw_error("bad partition count", "topic=%s",
					 tok);
				r = -EINVAL;
				break;
			}
		}
		if (!*tok) {
			cw_error("empty topic name", NULL);
			r = -EINVAL;
			break;
		}
		err = rd_kafka_mock_topic_create(mcluster, tok, parts,
						 replication);
		if (err) {
			cw_error("cannot create topic", "topic=%s error=\"%s\"",
				 tok, rd_kafka_err2str(err));
			r = -EINVAL;
			break;
		}
		cw_info("topic created", "topic=%s partitions=%d", tok, parts);
	}
	free(copy);
	return r;
}

int main(int argc, char **argv)
{
	struct devbroker_config cfg = {0};
	rd_kafka_mock_cluster_t *mcluster = NULL;
	rd_kafka_t *rk = NULL;
	rd_kafka_conf_t *conf;
	char errstr[512];
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t block, orig;
	int r, status = 1;

	r = cw_daemon_init(&devbroker_spec, &cfg, argc, argv);
	if (r != 0) {
		status = cw_daemon_exit_status(r);
		goto out;
	}

	/* Block the stop signals before any thread exists (threads inherit
	 * the mask) and until sigsuspend(), so no signal is lost or taken by
	 * a librdkafka thread. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The mock cluster needs a client handle for its bookkeeping only. */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		cw_error("cannot create client handle", "error=\"%s\"", errstr);
		goto out;
	}
	mcluster = rd_kafka_mock_cluster_new(rk, (int)cfg.brokers);
	if (!mcluster) {
		cw_error("cannot create mock cluster", NULL);
		goto out;
	}
#if RD_KAFKA_VERSION >= 0x020600ff
	/* Like group.initial.rebalance.delay.ms=0 on tests/kafka and the
	 * compose broker: a new group's first member gets its assignment at
	 * once instead of after the mock's default 3 s. */
	rd_kafka_mock_group_initial_rebalance_delay_ms(mcluster, 0);
#endif
	if (create_topics(mcluster, cfg.topics, (int)cfg.partitions,
			  (int)cfg.brokers) < 0)
		goto out;

	const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
	if (cfg.bootstrap_file &&
	    (r = write_file_atomic(cfg.bootstrap_file, bootstraps)) < 0) {
		cw_error("cannot write bootstrap file", "path=%s error=\"%s\"",
			 cfg.bootstrap_file, strerror(-r));
		goto out;
	}
	printf("%s\n", bootstraps);
	fflush(stdout);
	cw_info("devbroker ready (in-memory only, data is lost on exit)",
		"bootstrap=%s brokers=%d", bootstraps, (int)cfg.brokers);

	while (!stop_requested) {
		sigsuspend(&orig);
		if (want_produce_errors) {
			want_produce_errors = 0;
			for (int64_t i = 0; i < cfg.fail_produce; i++)
				rd_kafka_mock_push_request_errors(
					mcluster, 0 /* Produce */, 1,
					RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
			cw_info("produce requests will fail (fault injection)",
				"count=%d", (int)cfg.fail_produce);
		}
		if (want_down >= 0) {
			for (int b = 1; b <= (int)cfg.brokers; b++) {
				if (want_down)
					rd_kafka_mock_broker_set_down(mcluster,
								      b);
				else
					rd_kafka_mock_broker_set_up(mcluster,
								    b);
			}
			cw_info(want_down ? "brokers down (fault injection)"
					  : "brokers up again",
				NULL);
			want_down = -1;
		}
	}

	cw_info("devbroker stopping", NULL);
	status = 0;
out:
	if (mcluster)
		rd_kafka_mock_cluster_destroy(mcluster);
	if (rk)
		rd_kafka_destroy(rk);
	if (cfg.bootstrap_file && status == 0)
		unlink(cfg.bootstrap_file);
	cw_config_free(devbroker_spec.opts, devbroker_spec.n_opts, &cfg);
	return status;
}
