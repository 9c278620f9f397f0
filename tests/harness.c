/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness — see harness.h.
 */
#include "harness.h"

#include <time.h>
#include <unistd.h>

int harness_failures;

int harness_run(const struct harness_case *cases, size_t n, int argc,
		char **argv)
{
	size_t ran = 0;
	for (size_t i = 0; i < n; i++) {
		int before = harness_failures;
		int64_t t0;

		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		t0 = harness_now_ms();
		cases[i].fn();
		ran++;
		printf("%s %s (%" PRId64 " ms)\n",
		       harness_failures == before ? "ok  " : "FAIL",
		       cases[i].name, harness_now_ms() - t0);
		fflush(stdout);
	}
	if (ran == 0) {
		fprintf(stderr, "no test case named %s\n",
			argc > 1 ? argv[1] : "(none)");
		return 1;
	}
	if (harness_failures)
		fprintf(stderr, "%d check(s) failed\n", harness_failures);
	return harness_failures ? 1 : 0;
}

int64_t harness_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *harness_require_env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr,
			"environment variable %s is not set: run this test "
			"through meson test (tests/run-with-servers)\n",
			name);
		exit(1);
	}
	return v;
}

const char *harness_source_path(const char *rel)
{
	static char buf[4096];
	snprintf(buf, sizeof(buf), "%s/%s",
		 harness_require_env("CARTWATCH_SOURCE_ROOT"), rel);
	return buf;
}

static int capture_saved_fd = -1;
static char capture_path[] = "/tmp/cw-harness-XXXXXX";

void harness_capture_begin(void)
{
	int fd;

	strcpy(capture_path, "/tmp/cw-harness-XXXXXX");
	fd = mkstemp(capture_path);
	REQUIRE(fd >= 0);
	capture_saved_fd = dup(STDERR_FILENO);
	REQUIRE(capture_saved_fd >= 0);
	REQUIRE(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	close(fd);
}

char *harness_capture_end(void)
{
	FILE *f;
	char *out;
	long len;

	REQUIRE(dup2(capture_saved_fd, STDERR_FILENO) == STDERR_FILENO);
	close(capture_saved_fd);
	capture_saved_fd = -1;
	f = fopen(capture_path, "rb");
	REQUIRE(f);
	REQUIRE(fseek(f, 0, SEEK_END) == 0);
	len = ftell(f);
	REQUIRE(len >= 0);
	rewind(f);
	out = calloc(1, (size_t)len + 1);
	REQUIRE(out);
	REQUIRE(fread(out, 1, (size_t)len, f) == (size_t)len);
	fclose(f);
	unlink(capture_path);
	return out;
}
