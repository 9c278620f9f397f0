/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-schema — libFuzzer target for cw_schema_decode()'s resolving path:
 * the bounds-checked body walk, avro-c's generic reader and resolved
 * reader, and the copy into struct cw_event.
 *
 * The first input byte picks the writer schema whose header is prepended:
 * 0 today's schema forced through the resolver (differential: it must agree
 * with cw_event_decode() on accept/reject and on every field), 1 a v2 with
 * an added optional coupon_code, 2 an older v0 without currency/reason,
 * 3 a writer with arrays, maps and a recursive record (the walk's block
 * counts and depth limit), 4 the rest as is through the processor's set.
 * Inputs are copied to exact-size heap buffers so ASan catches overreads.
 *
 * Not built by default. Build and run (after `ninja -C build`, which
 * generates build/common/schemas.c):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
 *         tests/fuzz-schema.c common/cw_schema.c build/common/schemas.c \
 *         common/cw_avro.c common/cw_event.c \
 *         $(pkg-config --cflags --libs avro-c jansson) -o fuzz-schema
 *   ./fuzz-schema -max_total_time=60 corpus/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_avro.h"
#include "cw_event.h"
#include "cw_schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD                                                                   \
	"{\"type\":\"record\",\"name\":\"CartEvent\",\"namespace\":"           \
	"\"cartwatch\",\"fields\":["                                           \
	"{\"name\":\"event_id\",\"type\":\"string\"},"                         \
	"{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":"       \
	"\"EventType\",\"symbols\":[\"cart_add\",\"cart_remove\","             \
	"\"checkout_complete\"]}},"                                            \
	"{\"name\":\"event_time\",\"type\":\"long\"},"                         \
	"{\"name\":\"user_id\",\"type\":\"string\"},"                          \
	"{\"name\":\"product_id\",\"type\":[\"null\",\"string\"]},"            \
	"{\"name\":\"quantity\",\"type\":\"int\"},"                            \
	"{\"name\":\"unit_price_cents\",\"type\":\"long\"}"
#define TAIL                                                                   \
	",{\"name\":\"currency\",\"type\":\"string\"},"                        \
	"{\"name\":\"reason\",\"type\":[\"null\",\"string\"]}"

static const char *const writers[] = {
	HEAD TAIL ",{\"name\":\"coupon_code\",\"type\":[\"null\",\"string\"],"
		  "\"default\":null}]}",
	HEAD "]}",
	HEAD TAIL
	",{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":"
	"{\"type\":\"array\",\"items\":[\"null\",\"boolean\","
	"\"double\",\"float\",{\"type\":\"fixed\",\"name\":\"F4\","
	"\"size\":4}]}}},"
	"{\"name\":\"next\",\"type\":[\"null\",{\"type\":\"record\","
	"\"name\":\"Node\",\"fields\":[{\"name\":\"v\",\"type\":"
	"\"bytes\"},{\"name\":\"n\",\"type\":[\"null\",\"Node\"]}]}]}]}",
};
#define N_WRITERS (sizeof(writers) / sizeof(writers[0]))

static struct cw_schema_set *fast, *slow;
static uint64_t fps[N_WRITERS];

/* Free the sets at exit, so LeakSanitizer's final check sees only real
 * leaks. */
static void teardown(void)
{
	cw_schema_set_free(fast);
	cw_schema_set_free(slow);
}

static void setup(void)
{
	char err[512];

	if (cw_schema_set_new(NULL, false, &fast, err, sizeof(err)) ||
	    cw_schema_set_add_history(fast, err, sizeof(err)) ||
	    cw_schema_set_new(NULL, true, &slow, err, sizeof(err)) ||
	    cw_schema_set_add_history(slow, err, sizeof(err))) {
		fprintf(stderr, "fuzz-schema: %s\n", err);
		abort();
	}
	for (size_t i = 0; i < N_WRITERS; i++) {
		if (cw_schema_set_add(fast, writers[i], strlen(writers[i]),
				      "fuzz", &fps[i], err, sizeof(err))) {
			fprintf(stderr, "fuzz-schema: writer %zu: %s\n", i,
				err);
			abort();
		}
	}
	atexit(teardown);
}

static void check_explained(int r, const char *err)
{
	if (r && (!memchr(err, '\0', 256) || !err[0]))
		abort(); /* every error must explain itself */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cw_event a, b;
	char ea[256], eb[256];
	uint8_t mode, *buf;
	size_t len;
	int ra, rb;

	if (!fast)
		setup();
	if (size < 1)
		return 0;
	mode = data[0] % (N_WRITERS + 2);
	data++;
	size--;
	len = size + (mode <= N_WRITERS ? CW_AVRO_FRAME_HEADER : 0);
	if (!(buf = malloc(len ? len : 1)))
		return 0;
	if (mode <= N_WRITERS)
		cw_avro_frame_write(buf, mode ? fps[mode - 1]
					      : cw_event_fingerprint);
	if (size)
		memcpy(buf + len - size, data, size);

	if (mode == 0) {
		ra = cw_event_decode(buf, len, &a, ea, sizeof(ea));
		rb = cw_schema_decode(slow, buf, len, &b, eb, sizeof(eb));
		check_explained(ra, ea);
		check_explained(rb, eb);
		if ((ra == 0) != (rb == 0))
			abort();
		if (!ra &&
		    (!cw_str_eq(a.event_id, b.event_id) || a.type != b.type ||
		     a.event_time_ms != b.event_time_ms ||
		     !cw_str_eq(a.user_id, b.user_id) ||
		     !cw_str_eq(a.product_id, b.product_id) ||
		     !!a.product_id.ptr != !!b.product_id.ptr ||
		     a.quantity != b.quantity ||
		     a.unit_price_cents != b.unit_price_cents ||
		     !cw_str_eq(a.currency, b.currency) ||
		     !cw_str_eq(a.reason, b.reason) ||
		     !!a.reason.ptr != !!b.reason.ptr))
			abort();
	} else {
		ra = cw_schema_decode(fast, buf, len, &a, ea, sizeof(ea));
		check_explained(ra, ea);
		if (!ra &&
		    (!a.event_id.ptr || !a.user_id.ptr || !a.currency.ptr ||
		     (unsigned)a.type >= CW_EVENT_TYPE_COUNT))
			abort();
	}
	free(buf);
	return 0;
}
