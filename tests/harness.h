/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness — the few helpers every cartwatch C test uses: checks that report
 * file:line and the values, a table of named cases, and polling with a
 * deadline (tests wait for conditions, they never sleep and hope).
 */
#pragma once

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int harness_failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			harness_failures++;                                    \
		}                                                              \
	} while (0)

#define CHECK_INT_EQ(a, b)                                                     \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ != b_) {                                                \
			fprintf(stderr,                                        \
				"%s:%d: CHECK failed: %s == %s (%lld != "      \
				"%lld)\n",                                     \
				__FILE__, __LINE__, #a, #b, a_, b_);           \
			harness_failures++;                                    \
		}                                                              \
	} while (0)

#define CHECK_STR_EQ(a, b)                                                     \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                       \
			fprintf(stderr,                                        \
				"%s:%d: CHECK failed: %s == %s (\"%s\" != "    \
				"\"%s\")\n",                                   \
				__FILE__, __LINE__, #a, #b,                    \
				a_ ? a_ : "(null)", b_ ? b_ : "(null)");       \
			harness_failures++;                                    \
		}                                                              \
	} while (0)

/* Abort the test at once: for failures that make the rest meaningless. */
#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: REQUIRE failed: %s\n",         \
				__FILE__, __LINE__, #cond);                    \
			exit(1);                                               \
		}                                                              \
	} while (0)

struct harness_case {
	const char *name;
	void (*fn)(void);
};

/* Run the cases (all, or the one named in argv[1]), print one line per
 * case and return the process exit status: 0 only if no check failed. */
int harness_run(const struct harness_case *cases, size_t n, int argc,
		char **argv);

/* Monotonic milliseconds. */
int64_t harness_now_ms(void);

/* A pseudo-random number in [0, @n) from the xorshift64 state *@state
 * (non-zero; seed it with a constant so that a failure repeats). @n > 0. */
static inline uint64_t harness_rand(uint64_t *state, uint64_t n)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state % n;
}

/* Return the value of environment variable @name, or fail the test with a
 * message that says which variable is missing (no silent skips). */
const char *harness_require_env(const char *name);

/* Path of a file in the source tree: $CARTWATCH_SOURCE_ROOT/@rel.
 * Returns a static buffer. */
const char *harness_source_path(const char *rel);

/* Send stderr (where cw_log writes) to a fresh temporary file until
 * harness_capture_end(). No CHECK may run in between (its message would be
 * captured); REQUIRE may. Not nested. */
void harness_capture_begin(void);

/* Restore stderr and return what was written since
 * harness_capture_begin(), NUL-terminated; the caller frees it. */
char *harness_capture_end(void);
