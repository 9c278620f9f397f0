/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_event — schema-specific Avro codec for cartwatch.CartEvent
 * (schemas/cart_event.avsc), single-object framed.
 *
 * The field order below is the schema's field order and must stay in step
 * with schemas/cart_event.avsc and cw_event_schema_pcf; tests/test-codec.c
 * cross-checks both directions against avro-c's generic codec, and
 * tests/fingerprint.py checks the PCF and fingerprint against python3-avro.
 * The decoder treats its input as hostile (it is fuzzed by
 * tests/fuzz-event.c) and never allocates.
 *
 * Not for: reading data written with any other schema version; there is no
 * schema resolution here, an unknown fingerprint is an error (cw_schema.c
 * resolves the other known writer schemas and calls this for today's).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cw_avro.h"

#define RECORD "cart event"
#include "cw_event.h"

/* Parsing Canonical Form of schemas/cart_event.avsc, by the spec's rules:
 * fullnames, only name/type/fields/symbols/items/values/size kept in that
 * order, logical types reduced to their primitive, no whitespace. */
const char cw_event_schema_pcf[] =
	"{\"name\":\"cartwatch.CartEvent\",\"type\":\"record\",\"fields\":["
	"{\"name\":\"event_id\",\"type\":\"string\"},"
	"{\"name\":\"event_type\",\"type\":{\"name\":\"cartwatch.EventType\","
	"\"type\":\"enum\",\"symbols\":[\"cart_add\",\"cart_remove\","
	"\"checkout_complete\"]}},"
	"{\"name\":\"event_time\",\"type\":\"long\"},"
	"{\"name\":\"user_id\",\"type\":\"string\"},"
	"{\"name\":\"product_id\",\"type\":[\"null\",\"string\"]},"
	"{\"name\":\"quantity\",\"type\":\"int\"},"
	"{\"name\":\"unit_price_cents\",\"type\":\"long\"},"
	"{\"name\":\"currency\",\"type\":\"string\"},"
	"{\"name\":\"reason\",\"type\":[\"null\",\"string\"]}]}";

/* CRC-64-AVRO of cw_event_schema_pcf (checked by tests/test-codec.c and
 * tests/fingerprint.py). */
const uint64_t cw_event_fingerprint = UINT64_C(0x0de94d9d1e16ab23);

static const char *const type_names[CW_EVENT_TYPE_COUNT] = {
	[CW_EVENT_CART_ADD] = "cart_add",
	[CW_EVENT_CART_REMOVE] = "cart_remove",
	[CW_EVENT_CHECKOUT_COMPLETE] = "checkout_complete",
};

const char *cw_event_type_name(enum cw_event_type type)
{
	if ((unsigned)type >= CW_EVENT_TYPE_COUNT)
		return NULL;
	return type_names[type];
}

int cw_event_type_parse(const char *name, size_t len, enum cw_event_type *type)
{
	if (!name)
		return -EINVAL;
	for (unsigned i = 0; i < CW_EVENT_TYPE_COUNT; i++) {
		if (strlen(type_names[i]) == len &&
		    memcmp(type_names[i], name, len) == 0) {
			if (type)
				*type = (enum cw_event_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

void cw_event_init(struct cw_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->event_id = CW_STR_NULL;
	ev->type = CW_EVENT_CART_ADD;
	ev->user_id = CW_STR_NULL;
	ev->product_id = CW_STR_NULL;
	ev->quantity = 1;
	ev->unit_price_cents = 0;
	ev->currency = (struct cw_str){"USD", 3};
	ev->reason = CW_STR_NULL;
}

static size_t str_len(struct cw_str s)
{
	return s.ptr ? s.len : 0;
}

size_t cw_event_encoded_max(const struct cw_event *ev)
{
	return CW_AVRO_FRAME_HEADER + CW_AVRO_VARINT_MAX +
	       str_len(ev->event_id) + CW_AVRO_VARINT_INT_MAX + /* event_type */
	       CW_AVRO_VARINT_MAX +				/* event_time */
	       CW_AVRO_VARINT_MAX + str_len(ev->user_id) + 1 +
	       CW_AVRO_VARINT_MAX + str_len(ev->product_id) +
	       CW_AVRO_VARINT_INT_MAX + /* quantity */
	       CW_AVRO_VARINT_MAX +	/* unit_price */
	       CW_AVRO_VARINT_MAX + str_len(ev->currency) + 1 +
	       CW_AVRO_VARINT_MAX + str_len(ev->reason);
}

static size_t string_size(struct cw_str s)
{
	return cw_avro_long_size((int64_t)s.len) + s.len;
}

/* Exact framed size of a valid @ev. */
static size_t encoded_size(const struct cw_event *ev)
{
	return CW_AVRO_FRAME_HEADER + string_size(ev->event_id) +
	       cw_avro_long_size(ev->type) +
	       cw_avro_long_size(ev->event_time_ms) + string_size(ev->user_id) +
	       cw_avro_opt_string_size(ev->product_id) +
	       cw_avro_long_size(ev->quantity) +
	       cw_avro_long_size(ev->unit_price_cents) +
	       string_size(ev->currency) + cw_avro_opt_string_size(ev->reason);
}

ssize_t cw_event_encode(const struct cw_event *ev, uint8_t *buf, size_t size)
{
	uint8_t *p;

	if (!ev || !buf || (unsigned)ev->type >= CW_EVENT_TYPE_COUNT ||
	    !ev->event_id.ptr || !ev->user_id.ptr || !ev->currency.ptr)
		return -EINVAL;
	/* The cheap bound first; the exact size only for tight buffers. */
	if (size < cw_event_encoded_max(ev) && size < encoded_size(ev))
		return -ENOSPC;

	p = cw_avro_frame_write(buf, cw_event_fingerprint);
	p = cw_avro_write_string(p, ev->event_id.ptr, ev->event_id.len);
	p = cw_avro_write_int(p, (int32_t)ev->type);
	p = cw_avro_write_long(p, ev->event_time_ms);
	p = cw_avro_write_string(p, ev->user_id.ptr, ev->user_id.len);
	p = cw_avro_write_opt_string(p, ev->product_id);
	p = cw_avro_write_int(p, ev->quantity);
	p = cw_avro_write_long(p, ev->unit_price_cents);
	p = cw_avro_write_string(p, ev->currency.ptr, ev->currency.len);
	p = cw_avro_write_opt_string(p, ev->reason);
	return p - buf;
}

int cw_event_decode(const uint8_t *buf, size_t len, struct cw_event *ev,
		    char *errstr, size_t errstr_size)
{
	uint64_t fp;

	if ((!buf && len) || !ev)
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "cart event: NULL argument");
	if (cw_avro_frame_parse(buf, len, &fp))
		return cw_avro_fail(errstr, errstr_size, -CW_EVENT_EBADMAGIC,
				    "cart event: not Avro single-object framed "
				    "(%zu bytes, want 0xC3 0x01 + 8-byte "
				    "fingerprint)",
				    len);
	if (fp != cw_event_fingerprint)
		return cw_avro_fail(errstr, errstr_size, -CW_EVENT_EFINGERPRINT,
				    "cart event: unknown schema fingerprint "
				    "%016" PRIx64 " (cartwatch.CartEvent is "
				    "%016" PRIx64 ")",
				    fp, cw_event_fingerprint);
	return cw_event_decode_body(buf, len, ev, errstr, errstr_size);
}

int cw_event_decode_body(const uint8_t *buf, size_t len, struct cw_event *ev,
			 char *errstr, size_t errstr_size)
{
	struct cw_avro_reader r;
	int32_t type;
	size_t at;
	int err;

	r = cw_avro_reader_init(buf + CW_AVRO_FRAME_HEADER,
				len - CW_AVRO_FRAME_HEADER);
	CW_AVRO_READ_FIELD(RECORD, "event_id",
			   cw_avro_read_string(&r, &ev->event_id));
	CW_AVRO_READ_FIELD(RECORD, "event_type", cw_avro_read_int(&r, &type));
	if (type < 0 || type >= CW_EVENT_TYPE_COUNT)
		return cw_avro_fail(errstr, errstr_size, -CW_EVENT_EBADBODY,
				    "cart event: field event_type at byte %zu: "
				    "enum index %" PRId32 " out of range 0..%d",
				    at, type, CW_EVENT_TYPE_COUNT - 1);
	ev->type = (enum cw_event_type)type;
	CW_AVRO_READ_FIELD(RECORD, "event_time",
			   cw_avro_read_long(&r, &ev->event_time_ms));
	CW_AVRO_READ_FIELD(RECORD, "user_id",
			   cw_avro_read_string(&r, &ev->user_id));
	CW_AVRO_READ_FIELD(RECORD, "product_id",
			   cw_avro_read_opt_string(&r, &ev->product_id, NULL));
	CW_AVRO_READ_FIELD(RECORD, "quantity",
			   cw_avro_read_int(&r, &ev->quantity));
	CW_AVRO_READ_FIELD(RECORD, "unit_price_cents",
			   cw_avro_read_long(&r, &ev->unit_price_cents));
	CW_AVRO_READ_FIELD(RECORD, "currency",
			   cw_avro_read_string(&r, &ev->currency));
	CW_AVRO_READ_FIELD(RECORD, "reason",
			   cw_avro_read_opt_string(&r, &ev->reason, NULL));
	if (r.p != r.end)
		return cw_avro_fail(
			errstr, errstr_size, -CW_EVENT_EBADBODY,
			"cart event: %zu trailing bytes after the body "
			"at byte %zu",
			cw_avro_reader_left(&r), (size_t)(r.p - buf));
	return 0;
}
