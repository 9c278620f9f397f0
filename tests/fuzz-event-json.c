/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-event-json — libFuzzer target for the JSON → cart event path a
 * request body takes in cartwatch-gateway (and a line in the producer's
 * JSON feeder): gateway/ingest.c's framing (a JSON value, or NDJSON) over
 * cw_event_json_to_event() with a catalog, the clock-skew bound and
 * generated ids; and cw_catalog_parse() on the same bytes as CSV (memory errors
 * only, with the sanitizers).
 *
 * The first byte picks the framing (bit 0: NDJSON) and whether the bytes
 * are also read as a catalog (bit 1). Aborts when the path breaks its
 * promises: an accepted batch whose messages do not decode, fail
 * cw_event_validate(), or are keyed by anything but their user_id; a
 * refused batch that still holds messages; an outcome other than
 * 0/400/422; a catalog that does not find the products it loaded.
 *
 * Not built by default. Build and run (clang with libFuzzer):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Igateway \
 *         tests/fuzz-event-json.c gateway/ingest.c common/cw_event_json.c \
 *         common/cw_catalog.c common/cw_uuid.c common/cw_event.c \
 *         common/cw_validate.c common/cw_avro.c common/cw_config.c \
 *         common/cw_log.c -ljansson -o fuzz-event-json
 *   ./fuzz-event-json -max_total_time=600 corpus/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_catalog.h"
#include "cw_event.h"
#include "cw_validate.h"
#include "ingest.h"

/* 2026-11-29T04:00:00Z */
#define NOW_MS INT64_C(1795924800000)

static const char catalog_csv[] = "product_id,unit_price_cents,currency,name\n"
				  "MACBOOK_PRO_2023,199900,USD,Mac\n"
				  "EURO_KETTLE,4599,EUR,Kettle\n"
				  "A,0,,free\n";

static struct cw_catalog *catalog;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-event-json: %s\n", what);
		abort();
	}
}

static void fuzz_catalog(const uint8_t *data, size_t size)
{
	char errstr[256];
	struct cw_catalog *cat = cw_catalog_parse((const char *)data, size,
						  NULL, errstr, sizeof(errstr));

	if (!cat)
		return;
	check(cw_catalog_count(cat) < size, "more products than lines");
	cw_catalog_destroy(cat);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cw_event_json_opts o = {NULL, NOW_MS, 15 * 60 * 1000};
	struct ingest_batch b = {0};
	uint8_t mode;
	int r;

	if (size < 1)
		return 0;
	if (!catalog) {
		char errstr[256];
		catalog = cw_catalog_parse(catalog_csv, sizeof(catalog_csv) - 1,
					   NULL, errstr, sizeof(errstr));
		check(catalog != NULL, "built-in catalog refused");
		check(cw_catalog_find(catalog, "EURO_KETTLE", 11) != NULL,
		      "catalog lost a product");
	}
	mode = data[0];
	data++;
	size--;
	if (mode & 2)
		fuzz_catalog(data, size);
	o.catalog = mode & 4 ? NULL : catalog;
	r = ingest_parse(&b, (const char *)data, size,
			 mode & 1 ? INGEST_NDJSON : INGEST_JSON, &o);
	if (r < 0) {
		ingest_batch_free(&b);
		return 0; /* ENOMEM */
	}
	check(b.status == 0 || b.status == 400 || b.status == 422,
	      "unexpected outcome");
	check(b.status == 0 || b.n == 0, "a refused batch holds messages");
	check(b.status == 0 || b.answer != NULL, "a refusal without a body");
	check(b.status != 0 || b.n > 0, "an accepted batch without events");
	for (size_t i = 0; i < b.n; i++) {
		const struct ingest_msg *m = &b.msgs[i];
		struct cw_event ev;
		char errstr[256];

		check(cw_event_decode((const uint8_t *)b.buf + m->value_off,
				      m->value_len, &ev, errstr,
				      sizeof(errstr)) == 0,
		      "an accepted event does not decode");
		check(cw_event_validate(&ev, errstr, sizeof(errstr)) == 0,
		      "an accepted event fails validation");
		check(ev.event_time_ms <= NOW_MS + 15 * 60 * 1000,
		      "an event beyond the clock skew bound");
		check(m->key_len == ev.user_id.len &&
			      memcmp(b.buf + m->key_off, ev.user_id.ptr,
				     m->key_len) == 0,
		      "key is not user_id");
	}
	ingest_batch_free(&b);
	return 0;
}
