/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_abandonment — schema-specific Avro codec for cartwatch.CartAbandonment
 * (schemas/cart_abandonment.avsc), single-object framed.
 *
 * The field order below is the schema's field order and must stay in step
 * with schemas/cart_abandonment.avsc and cw_abandonment_schema_pcf. The
 * items array is written as one block (count, items, 0); the decoder
 * accepts any blocking the spec allows, including negative block counts
 * followed by a byte size. The decoder is fuzzed and never allocates.
 *
 * Not for: reading other schema versions (no schema resolution).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cw_abandonment.h"
#include "cw_avro.h"

#define RECORD "cart abandonment"

/* Parsing Canonical Form of schemas/cart_abandonment.avsc (see the rules in
 * cw_event.c). */
const char cw_abandonment_schema_pcf[] =
	"{\"name\":\"cartwatch.CartAbandonment\",\"type\":\"record\","
	"\"fields\":["
	"{\"name\":\"abandonment_id\",\"type\":\"string\"},"
	"{\"name\":\"user_id\",\"type\":\"string\"},"
	"{\"name\":\"session_start\",\"type\":\"long\"},"
	"{\"name\":\"last_activity_at\",\"type\":\"long\"},"
	"{\"name\":\"abandoned_at\",\"type\":\"long\"},"
	"{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":"
	"{\"name\":\"cartwatch.AbandonedItem\",\"type\":\"record\","
	"\"fields\":["
	"{\"name\":\"product_id\",\"type\":\"string\"},"
	"{\"name\":\"quantity\",\"type\":\"int\"},"
	"{\"name\":\"unit_price_cents\",\"type\":\"long\"}]}}},"
	"{\"name\":\"item_count\",\"type\":\"int\"},"
	"{\"name\":\"cart_value_cents\",\"type\":\"long\"},"
	"{\"name\":\"currency\",\"type\":\"string\"},"
	"{\"name\":\"last_remove_reason\",\"type\":[\"null\",\"string\"]}]}";

/* CRC-64-AVRO of cw_abandonment_schema_pcf (checked by the tests). */
const uint64_t cw_abandonment_fingerprint = UINT64_C(0xa3425df97d9c9d14);

/* Smallest encoding of one AbandonedItem: three 1-byte varints. */
#define ITEM_MIN_BYTES 3

static size_t str_len(struct cw_str s)
{
	return s.ptr ? s.len : 0;
}

size_t cw_abandonment_encoded_max(const struct cw_abandonment *ab)
{
	size_t n = CW_AVRO_FRAME_HEADER + CW_AVRO_VARINT_MAX +
		   str_len(ab->abandonment_id) + CW_AVRO_VARINT_MAX +
		   str_len(ab->user_id) +
		   3 * CW_AVRO_VARINT_MAX + /* timestamps */
		   2 * CW_AVRO_VARINT_MAX + /* block count, 0 */
		   CW_AVRO_VARINT_INT_MAX + /* item_count */
		   CW_AVRO_VARINT_MAX +	    /* cart_value */
		   CW_AVRO_VARINT_MAX + str_len(ab->currency) + 1 +
		   CW_AVRO_VARINT_MAX + str_len(ab->last_remove_reason);

	if (ab->items) {
		for (size_t i = 0; i < ab->n_items; i++)
			n += CW_AVRO_VARINT_MAX +
			     str_len(ab->items[i].product_id) +
			     CW_AVRO_VARINT_INT_MAX + CW_AVRO_VARINT_MAX;
	}
	return n;
}

static size_t string_size(struct cw_str s)
{
	return cw_avro_long_size((int64_t)s.len) + s.len;
}

/* Exact framed size of a valid @ab. */
static size_t encoded_size(const struct cw_abandonment *ab)
{
	size_t n = CW_AVRO_FRAME_HEADER + string_size(ab->abandonment_id) +
		   string_size(ab->user_id) +
		   cw_avro_long_size(ab->session_start_ms) +
		   cw_avro_long_size(ab->last_activity_at_ms) +
		   cw_avro_long_size(ab->abandoned_at_ms) +
		   1 + /* terminating 0 block */
		   cw_avro_long_size(ab->item_count) +
		   cw_avro_long_size(ab->cart_value_cents) +
		   string_size(ab->currency) +
		   cw_avro_opt_string_size(ab->last_remove_reason);

	if (ab->n_items)
		n += cw_avro_long_size((int64_t)ab->n_items);
	for (size_t i = 0; i < ab->n_items; i++)
		n += string_size(ab->items[i].product_id) +
		     cw_avro_long_size(ab->items[i].quantity) +
		     cw_avro_long_size(ab->items[i].unit_price_cents);
	return n;
}

ssize_t cw_abandonment_encode(const struct cw_abandonment *ab, uint8_t *buf,
			      size_t size)
{
	uint8_t *p;

	if (!ab || !buf || !ab->abandonment_id.ptr || !ab->user_id.ptr ||
	    !ab->currency.ptr || (ab->n_items && !ab->items) ||
	    ab->n_items > INT64_MAX)
		return -EINVAL;
	for (size_t i = 0; i < ab->n_items; i++)
		if (!ab->items[i].product_id.ptr)
			return -EINVAL;
	if (size < cw_abandonment_encoded_max(ab) && size < encoded_size(ab))
		return -ENOSPC;

	p = cw_avro_frame_write(buf, cw_abandonment_fingerprint);
	p = cw_avro_write_string(p, ab->abandonment_id.ptr,
				 ab->abandonment_id.len);
	p = cw_avro_write_string(p, ab->user_id.ptr, ab->user_id.len);
	p = cw_avro_write_long(p, ab->session_start_ms);
	p = cw_avro_write_long(p, ab->last_activity_at_ms);
	p = cw_avro_write_long(p, ab->abandoned_at_ms);
	if (ab->n_items) {
		p = cw_avro_write_long(p, (int64_t)ab->n_items);
		for (size_t i = 0; i < ab->n_items; i++) {
			const struct cw_abandoned_item *it = &ab->items[i];

			p = cw_avro_write_string(p, it->product_id.ptr,
						 it->product_id.len);
			p = cw_avro_write_int(p, it->quantity);
			p = cw_avro_write_long(p, it->unit_price_cents);
		}
	}
	*p++ = 0; /* end of array */
	p = cw_avro_write_int(p, ab->item_count);
	p = cw_avro_write_long(p, ab->cart_value_cents);
	p = cw_avro_write_string(p, ab->currency.ptr, ab->currency.len);
	p = cw_avro_write_opt_string(p, ab->last_remove_reason);
	return p - buf;
}

int cw_abandonment_decode(const uint8_t *buf, size_t len,
			  struct cw_abandonment *out,
			  struct cw_abandoned_item *items, size_t items_cap,
			  char *errstr, size_t errstr_size)
{
	struct cw_avro_reader r;
	size_t n = 0, at;
	uint64_t fp;
	int err;

	if ((!buf && len) || !out || (!items && items_cap))
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "cart abandonment: NULL argument");
	if (cw_avro_frame_parse(buf, len, &fp))
		return cw_avro_fail(
			errstr, errstr_size, -CW_ABANDONMENT_EBADMAGIC,
			"cart abandonment: not Avro single-object framed "
			"(%zu bytes, want 0xC3 0x01 + 8-byte "
			"fingerprint)",
			len);
	if (fp != cw_abandonment_fingerprint)
		return cw_avro_fail(
			errstr, errstr_size, -CW_ABANDONMENT_EFINGERPRINT,
			"cart abandonment: unknown schema fingerprint "
			"%016" PRIx64 " (cartwatch.CartAbandonment is "
			"%016" PRIx64 ")",
			fp, cw_abandonment_fingerprint);

	r = cw_avro_reader_init(buf + CW_AVRO_FRAME_HEADER,
				len - CW_AVRO_FRAME_HEADER);
	CW_AVRO_READ_FIELD(RECORD, "abandonment_id",
			   cw_avro_read_string(&r, &out->abandonment_id));
	CW_AVRO_READ_FIELD(RECORD, "user_id",
			   cw_avro_read_string(&r, &out->user_id));
	CW_AVRO_READ_FIELD(RECORD, "session_start",
			   cw_avro_read_long(&r, &out->session_start_ms));
	CW_AVRO_READ_FIELD(RECORD, "last_activity_at",
			   cw_avro_read_long(&r, &out->last_activity_at_ms));
	CW_AVRO_READ_FIELD(RECORD, "abandoned_at",
			   cw_avro_read_long(&r, &out->abandoned_at_ms));

	for (;;) {
		int64_t count, bytes;

		CW_AVRO_READ_FIELD(RECORD, "items (block count)",
				   cw_avro_read_long(&r, &count));
		if (count == 0)
			break;
		if (count < 0) {
			/* Negative count: |count| items, then the block's
			 * size in bytes, which we don't need. */
			if (count == INT64_MIN)
				CW_AVRO_READ_FIELD(RECORD,
						   "items (block count)",
						   -EOVERFLOW);
			count = -count;
			CW_AVRO_READ_FIELD(RECORD, "items (block size)",
					   cw_avro_read_long(&r, &bytes));
			if (bytes < 0)
				CW_AVRO_READ_FIELD(RECORD, "items (block size)",
						   -EBADMSG);
		}
		/* Reject counts the remaining input can't hold before
		 * comparing against the caller's capacity. */
		if ((uint64_t)count > cw_avro_reader_left(&r) / ITEM_MIN_BYTES)
			return cw_avro_fail(
				errstr, errstr_size, -CW_ABANDONMENT_EBADBODY,
				"cart abandonment: field items at byte "
				"%zu: block of %" PRId64 " items is "
				"longer than the %zu bytes left",
				at, count, cw_avro_reader_left(&r));
		if ((uint64_t)count > items_cap - n)
			return cw_avro_fail(
				errstr, errstr_size, -CW_ABANDONMENT_ETOOMANY,
				"cart abandonment: field items at byte "
				"%zu: more than %zu items",
				at, items_cap);
		for (int64_t i = 0; i < count; i++, n++) {
			struct cw_abandoned_item *it = &items[n];

			CW_AVRO_READ_FIELD(
				RECORD, "items[].product_id",
				cw_avro_read_string(&r, &it->product_id));
			CW_AVRO_READ_FIELD(RECORD, "items[].quantity",
					   cw_avro_read_int(&r, &it->quantity));
			CW_AVRO_READ_FIELD(
				RECORD, "items[].unit_price_cents",
				cw_avro_read_long(&r, &it->unit_price_cents));
		}
	}
	out->items = items;
	out->n_items = n;

	CW_AVRO_READ_FIELD(RECORD, "item_count",
			   cw_avro_read_int(&r, &out->item_count));
	CW_AVRO_READ_FIELD(RECORD, "cart_value_cents",
			   cw_avro_read_long(&r, &out->cart_value_cents));
	CW_AVRO_READ_FIELD(RECORD, "currency",
			   cw_avro_read_string(&r, &out->currency));
	CW_AVRO_READ_FIELD(
		RECORD, "last_remove_reason",
		cw_avro_read_opt_string(&r, &out->last_remove_reason, NULL));
	if (r.p != r.end)
		return cw_avro_fail(
			errstr, errstr_size, -CW_ABANDONMENT_EBADBODY,
			"cart abandonment: %zu trailing bytes after the "
			"body at byte %zu",
			cw_avro_reader_left(&r), (size_t)(r.p - buf));
	return 0;
}
