/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-event — libFuzzer target for the hostile-input decoders
 * cw_event_decode() and cw_abandonment_decode().
 *
 * The first input byte picks how the rest is framed, so the fuzzer spends
 * its time in the bodies instead of guessing 8-byte fingerprints: 0 feeds
 * the rest as is (framing checks), 1 prepends the CartEvent header, 2 the
 * CartAbandonment header. Every message that decodes is re-encoded and
 * decoded again, and must give the same record (aborts otherwise). Inputs
 * are copied to exact-size heap buffers so ASan catches any overread.
 *
 * Not built by default. Build and run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
 *         tests/fuzz-event.c common/cw_avro.c common/cw_event.c \
 *         common/cw_abandonment.c -o fuzz-event
 *   ./fuzz-event -max_total_time=60 corpus/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_abandonment.h"
#include "cw_avro.h"
#include "cw_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ITEMS_CAP 64

static void check_event(const uint8_t *buf, size_t len)
{
	struct cw_event ev, again;
	char err[256];
	uint8_t *out;
	ssize_t n;

	if (cw_event_decode(buf, len, &ev, err, sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort(); /* every error must explain itself */
		return;
	}
	out = malloc(cw_event_encoded_max(&ev));
	if (!out)
		abort();
	n = cw_event_encode(&ev, out, cw_event_encoded_max(&ev));
	/* Re-encoding must give the same record, and can't be longer: the
	 * encoder writes minimal varints, the input may have padded ones. */
	if (n <= 0 || (size_t)n > len)
		abort();
	if (cw_event_decode(out, (size_t)n, &again, NULL, 0) != 0)
		abort();
	if (!cw_str_eq(ev.event_id, again.event_id) || ev.type != again.type ||
	    ev.event_time_ms != again.event_time_ms ||
	    !cw_str_eq(ev.user_id, again.user_id) ||
	    !cw_str_eq(ev.product_id, again.product_id) ||
	    ev.quantity != again.quantity ||
	    ev.unit_price_cents != again.unit_price_cents ||
	    !cw_str_eq(ev.currency, again.currency) ||
	    !cw_str_eq(ev.reason, again.reason))
		abort();
	free(out);
}

static void check_abandonment(const uint8_t *buf, size_t len)
{
	struct cw_abandoned_item items[ITEMS_CAP], items2[ITEMS_CAP];
	struct cw_abandonment ab, again;
	char err[256];
	uint8_t *out;
	ssize_t n;

	if (cw_abandonment_decode(buf, len, &ab, items, ITEMS_CAP, err,
				  sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		return;
	}
	out = malloc(cw_abandonment_encoded_max(&ab));
	if (!out)
		abort();
	n = cw_abandonment_encode(&ab, out, cw_abandonment_encoded_max(&ab));
	if (n <= 0)
		abort();
	if (cw_abandonment_decode(out, (size_t)n, &again, items2, ITEMS_CAP,
				  NULL, 0) != 0)
		abort();
	if (!cw_str_eq(ab.abandonment_id, again.abandonment_id) ||
	    !cw_str_eq(ab.user_id, again.user_id) ||
	    ab.session_start_ms != again.session_start_ms ||
	    ab.last_activity_at_ms != again.last_activity_at_ms ||
	    ab.abandoned_at_ms != again.abandoned_at_ms ||
	    ab.n_items != again.n_items || ab.item_count != again.item_count ||
	    ab.cart_value_cents != again.cart_value_cents ||
	    !cw_str_eq(ab.currency, again.currency) ||
	    !cw_str_eq(ab.last_remove_reason, again.last_remove_reason))
		abort();
	for (size_t i = 0; i < ab.n_items; i++)
		if (!cw_str_eq(ab.items[i].product_id,
			       again.items[i].product_id) ||
		    ab.items[i].quantity != again.items[i].quantity ||
		    ab.items[i].unit_price_cents !=
			    again.items[i].unit_price_cents)
			abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode;
	size_t len, off = 0;
	uint8_t *buf;

	if (size < 1)
		return 0;
	mode = data[0] % 3;
	data++;
	size--;
	len = size + (mode ? CW_AVRO_FRAME_HEADER : 0);
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	if (mode == 1)
		off = (size_t)(cw_avro_frame_write(buf, cw_event_fingerprint) -
			       buf);
	else if (mode == 2)
		off = (size_t)(cw_avro_frame_write(buf,
						   cw_abandonment_fingerprint) -
			       buf);
	if (size)
		memcpy(buf + off, data, size);
	check_event(buf, len);
	check_abandonment(buf, len);
	free(buf);
	return 0;
}
