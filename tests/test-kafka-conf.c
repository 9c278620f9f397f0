/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-kafka-conf — common/cw_kafka: the user's -X properties win over a
 * binary's defaults, a refused property is named in the error, client
 * creation owns the configuration even when it fails, the manual-commit
 * consumer keeps its settings whatever -X says, and librdkafka's own log
 * comes out as cw_log records in logfmt and JSON. No broker: nothing here
 * gets an answer.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cw_kafka.h"
#include "cw_log.h"
#include "harness.h"

/* Nobody listens on port 1; a client made here never gets an answer. */
#define NOWHERE "127.0.0.1:1"

static char *keys[6], *values[6];

/* A -X list of up to six "key=value" texts. */
static struct cw_kv_list user_list(const char *const *pairs, size_t n)
{
	REQUIRE(n <= 6);
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(pairs[i], '=');

		REQUIRE(eq);
		keys[i] = strndup(pairs[i], (size_t)(eq - pairs[i]));
		values[i] = strdup(eq + 1);
		REQUIRE(keys[i] && values[i]);
	}
	return (struct cw_kv_list){keys, values, n};
}

static void user_list_free(struct cw_kv_list *kv)
{
	for (size_t i = 0; i < kv->count; i++) {
		free(kv->keys[i]);
		free(kv->values[i]);
	}
}

/* The value of @key in @conf, or "" when it has none. */
static const char *conf_get(const rd_kafka_conf_t *conf, const char *key)
{
	static char buf[256];
	size_t size = sizeof(buf);

	if (rd_kafka_conf_get(conf, key, buf, &size) != RD_KAFKA_CONF_OK)
		return "";
	return buf;
}

static void test_user_wins(void)
{
	static const struct cw_kafka_prop defaults[] = {
		{"linger.ms", "5"},
		{"enable.idempotence", "true"},
		{NULL, NULL},
	};
	const char *pairs[] = {"linger.ms=42", "client.id=shop-1"};
	struct cw_kv_list user = user_list(pairs, 2);
	char errstr[256] = "";
	rd_kafka_conf_t *conf;

	conf = cw_kafka_conf_new(NOWHERE, defaults, &user, errstr,
				 sizeof(errstr));
	REQUIRE(conf);
	CHECK_STR_EQ(conf_get(conf, "bootstrap.servers"), NOWHERE);
	CHECK_STR_EQ(conf_get(conf, "linger.ms"), "42");
	CHECK_STR_EQ(conf_get(conf, "enable.idempotence"), "true");
	CHECK_STR_EQ(conf_get(conf, "client.id"), "shop-1");
	/* A forced setting comes after the user's and wins. */
	CHECK_INT_EQ(cw_kafka_conf_set(conf, "client.id", "forced", errstr,
				       sizeof(errstr)),
		     0);
	CHECK_STR_EQ(conf_get(conf, "client.id"), "forced");
	rd_kafka_conf_destroy(conf);

	/* No defaults, no user list. */
	conf = cw_kafka_conf_new(NOWHERE, NULL, NULL, errstr, sizeof(errstr));
	REQUIRE(conf);
	CHECK_STR_EQ(conf_get(conf, "linger.ms"), "5"); /* librdkafka's */
	rd_kafka_conf_destroy(conf);
	user_list_free(&user);
}

static void test_refused_property_named(void)
{
	static const struct {
		const char *pair, *want;
	} cases[] = {
		{"bogus.property=1", "Kafka property bogus.property: "},
		{"linger.ms=soon", "Kafka property linger.ms: "},
		{"acks=-7", "Kafka property acks: "},
	};
	static const struct cw_kafka_prop bad_default[] = {
		{"no.such.default", "x"},
		{NULL, NULL},
	};
	char errstr[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cw_kv_list user = user_list(&cases[i].pair, 1);

		errstr[0] = '\0';
		CHECK(!cw_kafka_conf_new(NOWHERE, NULL, &user, errstr,
					 sizeof(errstr)));
		if (strncmp(errstr, cases[i].want, strlen(cases[i].want))) {
			fprintf(stderr, "%s: got \"%s\"\n", cases[i].pair,
				errstr);
			CHECK(!"the error names the property");
		}
		user_list_free(&user);
	}
	errstr[0] = '\0';
	CHECK(!cw_kafka_conf_new(NOWHERE, bad_default, NULL, errstr,
				 sizeof(errstr)));
	CHECK(!strncmp(errstr, "Kafka property no.such.default: ", 32));

	/* A refused value is not echoed by us (it may be a password);
	 * librdkafka's reason for an unknown key does not hold it either. */
	const char *secret = "x.password=s3cret";
	struct cw_kv_list user = user_list(&secret, 1);
	CHECK(!cw_kafka_conf_new(NOWHERE, NULL, &user, errstr, sizeof(errstr)));
	CHECK(strstr(errstr, "x.password") && !strstr(errstr, "s3cret"));
	user_list_free(&user);

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	CHECK_INT_EQ(cw_kafka_conf_set(conf, "group.id.nope", "g", errstr,
				       sizeof(errstr)),
		     -EINVAL);
	CHECK(!strncmp(errstr, "Kafka property group.id.nope: ", 30));
	rd_kafka_conf_destroy(conf);
}

/* cw_kafka_new() takes the configuration in every case: ASan and
 * valgrind see a leak or a double free here otherwise. */
static void test_new_owns_conf(void)
{
	char errstr[256] = "";
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;

	/* Idempotence needs acks=all: librdkafka refuses the client. */
	conf = cw_kafka_conf_new(
		NOWHERE,
		(const struct cw_kafka_prop[]){{"enable.idempotence", "true"},
					       {"acks", "1"},
					       {NULL, NULL}},
		NULL, errstr, sizeof(errstr));
	REQUIRE(conf);
	rk = cw_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	CHECK(!rk);
	CHECK(!strncmp(errstr, "cannot create the Kafka producer: ", 34));
	CHECK(strstr(errstr, "acks") != NULL);

	conf = cw_kafka_conf_new(NOWHERE, NULL, NULL, errstr, sizeof(errstr));
	REQUIRE(conf);
	rk = cw_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	CHECK(rk != NULL);
	if (rk)
		rd_kafka_destroy(rk);
}

static void on_error_seen(rd_kafka_t *rk, int err, const char *reason,
			  void *opaque)
{
	(void)rk;
	(void)err;
	(void)reason;
	(*(int *)opaque)++;
}

/* The common consumer settings win over the defaults and -X, the binary's
 * forced ones over both; the rest of -X still wins over the defaults. The
 * error callback and opaque are the caller's and are served by
 * rd_kafka_consumer_poll() (the main queue is redirected). */
static void test_consumer_forced(void)
{
	static const struct cw_kafka_prop defaults[] = {
		{"fetch.wait.max.ms", "100"},
		{"enable.auto.commit", "true"},
		{NULL, NULL},
	};
	const char *pairs[] = {
		"group.id=theirs",
		"enable.auto.commit=true",
		"enable.auto.offset.store=true",
		"enable.partition.eof=false",
		"auto.offset.reset=latest",
		"fetch.wait.max.ms=42",
	};
	struct cw_kv_list user = user_list(pairs, 6);
	rd_kafka_topic_partition_list_t *subscription = NULL;
	char errstr[256] = "";
	int errors_seen = 0;
	rd_kafka_t *rk;

	rk = cw_kafka_consumer_new(
		&(struct cw_kafka_consumer_params){
			.bootstrap_servers = NOWHERE,
			.defaults = defaults,
			.user = &user,
			.forced =
				(const struct cw_kafka_prop[]){
					{"auto.offset.reset", "earliest"},
					{NULL, NULL},
				},
			.group = "cw-test",
			.topic = "carts",
			.error_cb = on_error_seen,
			.opaque = &errors_seen,
		},
		errstr, sizeof(errstr));
	user_list_free(&user);
	if (!rk)
		fprintf(stderr, "cw_kafka_consumer_new: %s\n", errstr);
	REQUIRE(rk);
	const rd_kafka_conf_t *conf = rd_kafka_conf(rk);
	CHECK_STR_EQ(conf_get(conf, "bootstrap.servers"), NOWHERE);
	CHECK_STR_EQ(conf_get(conf, "group.id"), "cw-test");
	CHECK_STR_EQ(conf_get(conf, "enable.auto.commit"), "false");
	CHECK_STR_EQ(conf_get(conf, "enable.auto.offset.store"), "false");
	CHECK_STR_EQ(conf_get(conf, "enable.partition.eof"), "true");
	/* librdkafka keeps its own name for earliest (latest: "largest"). */
	CHECK_STR_EQ(conf_get(conf, "auto.offset.reset"), "smallest");
	CHECK_STR_EQ(conf_get(conf, "fetch.wait.max.ms"), "42");
	CHECK(rd_kafka_opaque(rk) == &errors_seen);

	CHECK_INT_EQ(rd_kafka_subscription(rk, &subscription), 0);
	REQUIRE(subscription);
	CHECK_INT_EQ(subscription->cnt, 1);
	if (subscription->cnt == 1)
		CHECK_STR_EQ(subscription->elems[0].topic, "carts");
	rd_kafka_topic_partition_list_destroy(subscription);

	/* Nobody answers on NOWHERE: "all brokers down" comes to the error
	 * callback, from the consumer's poll. */
	for (int i = 0; i < 100 && !errors_seen; i++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		if (m)
			rd_kafka_message_destroy(m);
	}
	CHECK(errors_seen > 0);
	rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* Every way cw_kafka_consumer_new() fails says why, and leaks nothing
 * (valgrind): a refused -X or forced property, a refused subscription. */
static void test_consumer_errors(void)
{
	static const struct cw_kafka_prop bad_forced[] = {
		{"auto.offset.reset", "sometime"},
		{NULL, NULL},
	};
	static const struct cw_kafka_prop none[] = {{NULL, NULL}};
	const char *pair = "bogus.property=1";
	struct cw_kv_list user = user_list(&pair, 1);
	static const struct {
		const struct cw_kafka_prop *forced;
		bool bad_user;
		const char *topic, *want;
	} cases[] = {
		{none, true, "carts", "Kafka property bogus.property: "},
		{bad_forced, false, "carts",
		 "Kafka property auto.offset.reset: "},
		/* An invalid regular expression: librdkafka refuses it. */
		{none, false, "^[", "cannot subscribe to ^[: "},
	};
	char errstr[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		errstr[0] = '\0';
		CHECK(!cw_kafka_consumer_new(
			&(struct cw_kafka_consumer_params){
				.bootstrap_servers = NOWHERE,
				.user = cases[i].bad_user ? &user : NULL,
				.forced = cases[i].forced,
				.group = "cw-test",
				.topic = cases[i].topic,
			},
			errstr, sizeof(errstr)));
		if (strncmp(errstr, cases[i].want, strlen(cases[i].want))) {
			fprintf(stderr, "case %zu: got \"%s\"\n", i, errstr);
			CHECK(!"the error says why");
		}
	}
	user_list_free(&user);
}

/* Make a producer with a consumer-only property: librdkafka warns
 * (syslog level 4, facility CONFWARN) while rd_kafka_new() runs. Returns
 * what went to stderr. */
static char *confwarn_output(void)
{
	static const struct cw_kafka_prop consumer_only[] = {
		{"auto.offset.reset", "earliest"},
		{NULL, NULL},
	};
	char errstr[256];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;

	conf = cw_kafka_conf_new(NOWHERE, consumer_only, NULL, errstr,
				 sizeof(errstr));
	REQUIRE(conf);
	harness_capture_begin();
	rk = cw_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk)
		rd_kafka_destroy(rk); /* joins librdkafka's threads */
	char *out = harness_capture_end();
	REQUIRE(rk);
	return out;
}

static void test_log_logfmt(void)
{
	char *out, *line;

	cw_log_set_format(CW_LOG_LOGFMT);
	cw_log_set_level(CW_LOG_WARN);
	out = confwarn_output();
	line = strstr(out, "facility=CONFWARN");
	CHECK(line != NULL);
	if (line) {
		char *start = line, *end = strchr(line, '\n');

		while (start > out && start[-1] != '\n')
			start--;
		if (end)
			*end = '\0';
		CHECK(!strncmp(start, "ts=", 3));
		CHECK(strstr(start, " level=warn msg=\"librdkafka\" ") != NULL);
		CHECK(strstr(start, "detail=\"") != NULL);
		CHECK(strstr(start, "auto.offset.reset") != NULL);
	} else {
		fprintf(stderr, "captured: %s\n", out);
	}
	free(out);
	cw_log_set_level(CW_LOG_INFO);
}

static void test_log_json(void)
{
	char *out, *save = NULL;
	int confwarn = 0;

	cw_log_set_format(CW_LOG_JSON);
	cw_log_set_level(CW_LOG_WARN);
	out = confwarn_output();
	cw_log_set_format(CW_LOG_LOGFMT);
	cw_log_set_level(CW_LOG_INFO);
	/* Every line one JSON object; the warning among them. */
	for (char *l = strtok_r(out, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		json_error_t err;
		json_t *o = json_loads(l, JSON_REJECT_DUPLICATES, &err);

		CHECK(json_is_object(o));
		if (!o) {
			fprintf(stderr, "not JSON: %s\n", l);
			continue;
		}
		const char *fac =
			json_string_value(json_object_get(o, "facility"));

		if (fac && !strcmp(fac, "CONFWARN")) {
			confwarn++;
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "level")),
				"warn");
			CHECK_STR_EQ(
				json_string_value(json_object_get(o, "msg")),
				"librdkafka");
			CHECK(strstr(json_string_value(
					     json_object_get(o, "detail")),
				     "auto.offset.reset") != NULL);
		}
		json_decref(o);
	}
	CHECK(confwarn >= 1);
	free(out);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"user_wins", test_user_wins},
		{"refused_property_named", test_refused_property_named},
		{"new_owns_conf", test_new_owns_conf},
		{"consumer_forced", test_consumer_forced},
		{"consumer_errors", test_consumer_errors},
		{"log_logfmt", test_log_logfmt},
		{"log_json", test_log_json},
	};
	return harness_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
