/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-codec — unit tests of the hand-written Avro codecs (cw_avro,
 * cw_event, cw_abandonment), using avro-c's generic API as the reference
 * oracle in both directions: our encoder -> avro-c generic reader, and
 * avro-c generic writer (+ our single-object header) -> our decoder, plus
 * byte-for-byte equality of the two encodings. Also hostile inputs
 * (every truncation, bad magic/fingerprint/union/enum, overlong varints,
 * trailing bytes) and the encoder's -ENOSPC/-EINVAL paths.
 *
 * The schemas are read from $CARTWATCH_SOURCE_ROOT/schemas (falling back to
 * the CARTWATCH_SOURCE_ROOT define set by meson). Output is TAP.
 *
 * `test-codec --print-contract` prints the fingerprints, canonical forms,
 * enum symbols and defaults the C code uses, for tests/fingerprint.py to
 * check against python3-avro. Not for: benchmarking (see bench/).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "cw_abandonment.h"
#include "cw_avro.h"
#include "cw_event.h"

#ifndef CARTWATCH_SOURCE_ROOT
#define CARTWATCH_SOURCE_ROOT "."
#endif

static int failures;
static int test_no;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			failures++;                                            \
			printf("# %s:%d: CHECK(%s) failed: ", __FILE__,        \
			       __LINE__, #cond);                               \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
		}                                                              \
	} while (0)

#define AVRO_OK(call)                                                          \
	do {                                                                   \
		if ((call) != 0) {                                             \
			printf("Bail out! %s:%d: %s: %s\n", __FILE__,          \
			       __LINE__, #call, avro_strerror());              \
			exit(1);                                               \
		}                                                              \
	} while (0)

static void run(const char *name, void (*fn)(void))
{
	int before = failures;

	fn();
	printf("%s %d - %s\n", failures == before ? "ok" : "not ok", ++test_no,
	       name);
	fflush(stdout);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	return p;
}

/* A heap copy of exactly @len bytes, so ASan/valgrind see any overread. */
static uint8_t *dup_exact(const void *src, size_t len)
{
	uint8_t *p = xmalloc(len);

	if (len)
		memcpy(p, src, len);
	return p;
}

/* ---- schemas via avro-c ------------------------------------------------ */

static avro_schema_t event_schema, aband_schema;
static avro_value_iface_t *event_iface, *aband_iface;

static avro_schema_t load_schema(const char *file)
{
	const char *root = getenv("CARTWATCH_SOURCE_ROOT");
	char path[4096];
	avro_schema_t schema;
	FILE *f;
	char *json;
	long n;

	if (!root || !*root)
		root = CARTWATCH_SOURCE_ROOT;
	snprintf(path, sizeof(path), "%s/schemas/%s", root, file);
	f = fopen(path, "rb");
	if (!f) {
		printf("Bail out! cannot open %s: %s (set "
		       "CARTWATCH_SOURCE_ROOT)\n",
		       path, strerror(errno));
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	json = xmalloc((size_t)n + 1);
	if (fread(json, 1, (size_t)n, f) != (size_t)n) {
		printf("Bail out! short read on %s\n", path);
		exit(1);
	}
	json[n] = '\0';
	fclose(f);
	AVRO_OK(avro_schema_from_json_length(json, (size_t)n, &schema));
	free(json);
	return schema;
}

/* ---- avro-c value helpers ---------------------------------------------- */

static avro_value_t field(avro_value_t *rec, const char *name)
{
	avro_value_t f;

	AVRO_OK(avro_value_get_by_name(rec, name, &f, NULL));
	return f;
}

static bool avro_str_eq(avro_value_t *v, struct cw_str want)
{
	const char *s;
	size_t size; /* includes the NUL avro-c adds */

	if (avro_value_get_string(v, &s, &size) != 0 || size == 0)
		return false;
	return want.ptr && size - 1 == want.len &&
	       memcmp(s, want.ptr, want.len) == 0;
}

static bool avro_opt_str_eq(avro_value_t *v, struct cw_str want)
{
	avro_value_t branch;
	int disc;

	AVRO_OK(avro_value_get_discriminant(v, &disc));
	if (!want.ptr)
		return disc == 0;
	if (disc != 1)
		return false;
	AVRO_OK(avro_value_get_current_branch(v, &branch));
	return avro_str_eq(&branch, want);
}

static int64_t avro_long(avro_value_t *v)
{
	int64_t x;

	AVRO_OK(avro_value_get_long(v, &x));
	return x;
}

static int32_t avro_int(avro_value_t *v)
{
	int32_t x;

	AVRO_OK(avro_value_get_int(v, &x));
	return x;
}

/* avro-c copies size bytes including a NUL; our test strings always have
 * one at [len]. */
static void set_str(avro_value_t *v, struct cw_str s)
{
	AVRO_OK(avro_value_set_string_len(v, s.ptr, s.len + 1));
}

static void set_opt_str(avro_value_t *v, struct cw_str s)
{
	avro_value_t branch;

	AVRO_OK(avro_value_set_branch(v, s.ptr ? 1 : 0, &branch));
	if (s.ptr)
		set_str(&branch, s);
	else
		AVRO_OK(avro_value_set_null(&branch));
}

/* Write @val with avro-c into a new framed buffer; returns its length. */
static size_t avro_c_encode(avro_value_t *val, uint64_t fp, uint8_t **out)
{
	size_t cap = 1 << 20;
	uint8_t *buf = xmalloc(cap);
	avro_writer_t w;
	int64_t n;

	cw_avro_frame_write(buf, fp);
	w = avro_writer_memory((char *)buf + CW_AVRO_FRAME_HEADER,
			       (int64_t)(cap - CW_AVRO_FRAME_HEADER));
	AVRO_OK(avro_value_write(w, val));
	n = avro_writer_tell(w);
	avro_writer_free(w);
	*out = buf;
	return CW_AVRO_FRAME_HEADER + (size_t)n;
}

/* Read the body of framed @buf with avro-c into @val; checks that it
 * consumed every byte. */
static void avro_c_decode(const uint8_t *buf, size_t len, avro_value_t *val)
{
	avro_reader_t r =
		avro_reader_memory((const char *)buf + CW_AVRO_FRAME_HEADER,
				   (int64_t)(len - CW_AVRO_FRAME_HEADER));

	AVRO_OK(avro_value_reset(val));
	AVRO_OK(avro_value_read(r, val));
	{
		/* avro_reader_is_eof() is only for file readers. */
		char extra;

		CHECK(avro_read(r, &extra, 1) != 0, "avro-c left bytes unread");
	}
	avro_reader_free(r);
}

/* ---- test data --------------------------------------------------------- */

#define LONG_LEN 70000 /* a 3-byte length varint */
static char *long_str;

static struct cw_str S(const char *s) {
	return cw_str_c(s);
}

#define N_EVENT_CASES 10

static void
event_case(int i, struct cw_event *ev)
{
	cw_event_init(ev);
	ev->event_id = S("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b");
	ev->user_id = S("user-42");
	ev->event_time_ms = 1700000000123;
	switch (i) {
	case 0: /* schema defaults for everything optional */
		break;
	case 1:
		ev->product_id = S("sku-1");
		ev->quantity = 3;
		ev->unit_price_cents = 1999;
		break;
	case 2:
		ev->type = CW_EVENT_CART_REMOVE;
		ev->product_id = S("sku-1");
		ev->reason = S("too expensive");
		ev->currency = S("EUR");
		break;
	case 3:
		ev->type = CW_EVENT_CHECKOUT_COMPLETE;
		ev->quantity = 0;
		break;
	case 4: /* empty strings, including the nullable ones (not null) */
		ev->event_id = S("");
		ev->user_id = S("");
		ev->product_id = S("");
		ev->currency = S("");
		ev->reason = S("");
		break;
	case 5: /* long strings */
		ev->type = CW_EVENT_CART_REMOVE;
		ev->user_id = (struct cw_str){long_str, LONG_LEN};
		ev->product_id = (struct cw_str){long_str, 127};
		ev->reason = (struct cw_str){long_str, 128};
		ev->currency = (struct cw_str){long_str, 16383};
		break;
	case 6:
		ev->event_time_ms = INT64_MIN;
		ev->quantity = INT32_MIN;
		ev->unit_price_cents = INT64_MAX;
		break;
	case 7:
		ev->event_time_ms = INT64_MAX;
		ev->quantity = INT32_MAX;
		ev->unit_price_cents = INT64_MIN;
		break;
	case 8: /* varint size boundaries */
		ev->type = CW_EVENT_CHECKOUT_COMPLETE;
		ev->event_time_ms = -1;
		ev->quantity = -64;
		ev->unit_price_cents = 64;
		ev->product_id = S("x");
		break;
	case 9:
		ev->user_id = S("\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80");
		ev->event_time_ms = 0;
		ev->quantity = 8191;
		ev->unit_price_cents = -8192;
		break;
	}
}

static bool event_eq(const struct cw_event *a, const struct cw_event *b)
{
	return cw_str_eq(a->event_id, b->event_id) && a->type == b->type &&
	       a->event_time_ms == b->event_time_ms &&
	       cw_str_eq(a->user_id, b->user_id) &&
	       cw_str_eq(a->product_id, b->product_id) &&
	       a->quantity == b->quantity &&
	       a->unit_price_cents == b->unit_price_cents &&
	       cw_str_eq(a->currency, b->currency) &&
	       cw_str_eq(a->reason, b->reason);
}

static void event_to_avro(const struct cw_event *ev, avro_value_t *val)
{
	avro_value_t f;

	AVRO_OK(avro_value_reset(val));
	f = field(val, "event_id");
	set_str(&f, ev->event_id);
	f = field(val, "event_type");
	AVRO_OK(avro_value_set_enum(&f, (int)ev->type));
	f = field(val, "event_time");
	AVRO_OK(avro_value_set_long(&f, ev->event_time_ms));
	f = field(val, "user_id");
	set_str(&f, ev->user_id);
	f = field(val, "product_id");
	set_opt_str(&f, ev->product_id);
	f = field(val, "quantity");
	AVRO_OK(avro_value_set_int(&f, ev->quantity));
	f = field(val, "unit_price_cents");
	AVRO_OK(avro_value_set_long(&f, ev->unit_price_cents));
	f = field(val, "currency");
	set_str(&f, ev->currency);
	f = field(val, "reason");
	set_opt_str(&f, ev->reason);
}

static uint8_t *encode_event(const struct cw_event *ev, size_t *len)
{
	size_t cap = cw_event_encoded_max(ev);
	uint8_t *buf = xmalloc(cap);
	ssize_t n = cw_event_encode(ev, buf, cap);

	CHECK(n > 0, "cw_event_encode: %zd", n);
	*len = n > 0 ? (size_t)n : 0;
	return buf;
}

/* ---- tests -------------------------------------------------------------- */

static void test_fingerprint(void)
{
	CHECK(cw_avro_fingerprint64("", 0) == CW_AVRO_FP_EMPTY, "empty");
	CHECK(cw_avro_fingerprint64(NULL, 0) == CW_AVRO_FP_EMPTY, "NULL");
	CHECK(cw_avro_fingerprint64("\"null\"", 6) ==
		      UINT64_C(0x63dd24e7cc258f8a),
	      "spec vector for \"null\"");
	CHECK(cw_avro_fingerprint64(cw_event_schema_pcf,
				    strlen(cw_event_schema_pcf)) ==
		      cw_event_fingerprint,
	      "cw_event_fingerprint is not the CRC-64-AVRO of the PCF");
	CHECK(cw_avro_fingerprint64(cw_abandonment_schema_pcf,
				    strlen(cw_abandonment_schema_pcf)) ==
		      cw_abandonment_fingerprint,
	      "cw_abandonment_fingerprint is not the CRC-64-AVRO of the PCF");
}

static void test_pcf_parses(void)
{
	/* The hand-written PCFs must be schemas avro-c accepts and that
	 * have the same shape as the .avsc files. */
	avro_schema_t s;

	AVRO_OK(avro_schema_from_json_length(cw_event_schema_pcf,
					     strlen(cw_event_schema_pcf), &s));
	CHECK(avro_schema_equal(s, event_schema), "event PCF != avsc");
	avro_schema_decref(s);
	AVRO_OK(avro_schema_from_json_length(cw_abandonment_schema_pcf,
					     strlen(cw_abandonment_schema_pcf),
					     &s));
	CHECK(avro_schema_equal(s, aband_schema), "abandonment PCF != avsc");
	avro_schema_decref(s);
}

static void test_varints(void)
{
	static const int64_t vals[] = {
		0,
		1,
		-1,
		63,
		-64,
		64,
		-65,
		8191,
		-8192,
		8192,
		INT32_MAX,
		INT32_MIN,
		(int64_t)INT32_MAX + 1,
		(int64_t)INT32_MIN - 1,
		INT64_MAX,
		INT64_MIN,
		INT64_MAX - 1,
		INT64_MIN + 1,
		(int64_t)1 << 62,
		-((int64_t)1 << 62),
	};
	avro_schema_t ls = avro_schema_long();
	avro_value_iface_t *li = avro_generic_class_from_schema(ls);
	avro_value_t lv;

	AVRO_OK(avro_generic_value_new(li, &lv));
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t ours[CW_AVRO_VARINT_MAX], theirs[16];
		size_t n = (size_t)(cw_avro_write_long(ours, vals[i]) - ours);
		avro_writer_t w =
			avro_writer_memory((char *)theirs, sizeof(theirs));
		struct cw_avro_reader r;
		int64_t back = 0;

		AVRO_OK(avro_value_set_long(&lv, vals[i]));
		AVRO_OK(avro_value_write(w, &lv));
		CHECK((size_t)avro_writer_tell(w) == n &&
			      memcmp(ours, theirs, n) == 0,
		      "varint of %" PRId64 " differs from avro-c", vals[i]);
		avro_writer_free(w);
		CHECK(n == cw_avro_long_size(vals[i]), "size of %" PRId64,
		      vals[i]);
		r = cw_avro_reader_init(ours, n);
		CHECK(cw_avro_read_long(&r, &back) == 0 && back == vals[i] &&
			      r.p == r.end,
		      "read back %" PRId64, vals[i]);
		for (size_t cut = 0; cut < n; cut++) {
			uint8_t *t = dup_exact(ours, cut);

			r = cw_avro_reader_init(t, cut);
			CHECK(cw_avro_read_long(&r, &back) == -ENODATA &&
				      r.p == t,
			      "truncated varint");
			free(t);
		}
	}
	avro_value_decref(&lv);
	avro_value_iface_decref(li);
	avro_schema_decref(ls);

	{
		/* 11 bytes: continuation on the 10th. */
		uint8_t b[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
				 0x80, 0x80, 0x80, 0x80, 0x00};
		struct cw_avro_reader r = cw_avro_reader_init(b, sizeof(b));
		int64_t v;
		int32_t i32;

		CHECK(cw_avro_read_long(&r, &v) == -EOVERFLOW, "11 bytes");
		b[9] = 0x02; /* 10th byte sets bit 64 */
		r = cw_avro_reader_init(b, 10);
		CHECK(cw_avro_read_long(&r, &v) == -EOVERFLOW, "65 bits");
		b[9] = 0x01; /* largest legal 10-byte varint */
		r = cw_avro_reader_init(b, 10);
		CHECK(cw_avro_read_long(&r, &v) == 0 && v == (int64_t)1 << 62 &&
			      r.p == b + 10,
		      "10-byte varint (zig-zag 2^63)");
		/* int range */
		{
			uint8_t big[CW_AVRO_VARINT_MAX];
			size_t n =
				(size_t)(cw_avro_write_long(
						 big, (int64_t)INT32_MAX + 1) -
					 big);

			r = cw_avro_reader_init(big, n);
			CHECK(cw_avro_read_int(&r, &i32) == -EOVERFLOW,
			      "int out of range");
		}
	}
	{
		/* strings: negative length, length past the end, empty. */
		uint8_t neg[] = {0x01, 'a'};
		uint8_t past[] = {0x06, 'a', 'b'};
		uint8_t empty[] = {0x00};
		struct cw_str s;
		struct cw_avro_reader r = cw_avro_reader_init(neg, 2);

		CHECK(cw_avro_read_string(&r, &s) == -EBADMSG, "neg len");
		r = cw_avro_reader_init(past, 3);
		CHECK(cw_avro_read_string(&r, &s) == -ENODATA, "past end");
		r = cw_avro_reader_init(empty, 1);
		CHECK(cw_avro_read_string(&r, &s) == 0 && s.ptr && s.len == 0,
		      "empty string is not null");
	}
}

static void test_frame(void)
{
	uint8_t b[CW_AVRO_FRAME_HEADER];
	uint64_t fp = 0;

	CHECK(cw_avro_frame_write(b, UINT64_C(0x0102030405060708)) ==
		      b + CW_AVRO_FRAME_HEADER,
	      "end");
	CHECK(b[0] == 0xC3 && b[1] == 0x01 && b[2] == 0x08 && b[9] == 0x01,
	      "little-endian fingerprint");
	CHECK(cw_avro_frame_parse(b, sizeof(b), &fp) == 0 &&
		      fp == UINT64_C(0x0102030405060708),
	      "parse");
	CHECK(cw_avro_frame_parse(b, sizeof(b) - 1, &fp) == -EPROTO, "short");
	b[1] = 0x02;
	CHECK(cw_avro_frame_parse(b, sizeof(b), &fp) == -EPROTO, "magic");
}

static void test_event_types(void)
{
	enum cw_event_type t;

	for (int i = 0; i < CW_EVENT_TYPE_COUNT; i++) {
		const char *name = cw_event_type_name((enum cw_event_type)i);
		const char *avro_name = avro_schema_enum_get(
			avro_schema_record_field_get(event_schema,
						     "event_type"),
			i);

		CHECK(name && avro_name && strcmp(name, avro_name) == 0,
		      "symbol %d: %s vs schema %s", i, name, avro_name);
		CHECK(cw_event_type_parse(name, strlen(name), &t) == 0 &&
			      (int)t == i,
		      "parse %s", name);
	}
	CHECK(cw_event_type_name((enum cw_event_type)3) == NULL, "3");
	CHECK(cw_event_type_name((enum cw_event_type) - 1) == NULL, "-1");
	CHECK(cw_event_type_parse("cart_ad", 7, &t) == -EINVAL, "prefix");
	CHECK(cw_event_type_parse("cart_addx", 9, &t) == -EINVAL, "longer");
	CHECK(cw_event_type_parse("cart_add", 8, &t) == 0, "exact");
	CHECK(cw_event_type_parse("cart_addx", 8, &t) == 0 &&
		      t == CW_EVENT_CART_ADD,
	      "length-bounded");
}

static void test_event_init(void)
{
	struct cw_event ev;

	cw_event_init(&ev);
	CHECK(ev.quantity == 1 && ev.unit_price_cents == 0, "numbers");
	CHECK(cw_str_eq(ev.currency, S("USD")), "currency");
	CHECK(!ev.product_id.ptr && !ev.reason.ptr, "nulls");
	CHECK(!ev.event_id.ptr && !ev.user_id.ptr, "required unset");
}

static void test_event_to_avro_c(void)
{
	avro_value_t val;

	AVRO_OK(avro_generic_value_new(event_iface, &val));
	for (int i = 0; i < N_EVENT_CASES; i++) {
		struct cw_event ev, back;
		avro_value_t f;
		uint64_t fp = 0;
		size_t len;
		uint8_t *buf;
		int enum_idx;
		char err[256] = "";

		event_case(i, &ev);
		buf = encode_event(&ev, &len);
		CHECK(cw_avro_frame_parse(buf, len, &fp) == 0 &&
			      fp == cw_event_fingerprint,
		      "case %d: header", i);
		avro_c_decode(buf, len, &val);

		f = field(&val, "event_id");
		CHECK(avro_str_eq(&f, ev.event_id), "case %d: event_id", i);
		f = field(&val, "event_type");
		AVRO_OK(avro_value_get_enum(&f, &enum_idx));
		CHECK(enum_idx == (int)ev.type, "case %d: event_type", i);
		f = field(&val, "event_time");
		CHECK(avro_long(&f) == ev.event_time_ms, "case %d: time", i);
		f = field(&val, "user_id");
		CHECK(avro_str_eq(&f, ev.user_id), "case %d: user_id", i);
		f = field(&val, "product_id");
		CHECK(avro_opt_str_eq(&f, ev.product_id), "case %d: product",
		      i);
		f = field(&val, "quantity");
		CHECK(avro_int(&f) == ev.quantity, "case %d: quantity", i);
		f = field(&val, "unit_price_cents");
		CHECK(avro_long(&f) == ev.unit_price_cents, "case %d: price",
		      i);
		f = field(&val, "currency");
		CHECK(avro_str_eq(&f, ev.currency), "case %d: currency", i);
		f = field(&val, "reason");
		CHECK(avro_opt_str_eq(&f, ev.reason), "case %d: reason", i);

		/* and back through our own decoder */
		CHECK(cw_event_decode(buf, len, &back, err, sizeof(err)) == 0,
		      "case %d: decode: %s", i, err);
		CHECK(event_eq(&ev, &back), "case %d: self round trip", i);
		CHECK(back.event_id.ptr >= (const char *)buf &&
			      back.event_id.ptr < (const char *)buf + len,
		      "case %d: zero-copy", i);
		free(buf);
	}
	avro_value_decref(&val);
}

static void test_avro_c_to_event(void)
{
	avro_value_t val;

	AVRO_OK(avro_generic_value_new(event_iface, &val));
	for (int i = 0; i < N_EVENT_CASES; i++) {
		struct cw_event ev, back;
		uint8_t *theirs, *ours, *exact;
		size_t tlen, olen;
		char err[256] = "";

		event_case(i, &ev);
		event_to_avro(&ev, &val);
		tlen = avro_c_encode(&val, cw_event_fingerprint, &theirs);
		exact = dup_exact(theirs, tlen);
		CHECK(cw_event_decode(exact, tlen, &back, err, sizeof(err)) ==
			      0,
		      "case %d: decode avro-c output: %s", i, err);
		CHECK(event_eq(&ev, &back), "case %d: fields", i);
		ours = encode_event(&ev, &olen);
		CHECK(olen == tlen && memcmp(ours, theirs, tlen) == 0,
		      "case %d: our bytes differ from avro-c's", i);
		free(theirs);
		free(exact);
		free(ours);
	}
	avro_value_decref(&val);
}

static void test_event_encode_errors(void)
{
	struct cw_event ev;
	uint8_t buf[256];
	ssize_t exact;

	event_case(2, &ev);
	exact = cw_event_encode(&ev, buf, sizeof(buf));
	CHECK(exact > 0, "encode");
	CHECK((size_t)exact <= cw_event_encoded_max(&ev), "max bound");
	for (size_t size = 0; size < (size_t)exact; size++) {
		uint8_t *small = xmalloc(size);

		CHECK(cw_event_encode(&ev, small, size) == -ENOSPC, "size %zu",
		      size);
		free(small);
	}
	{
		uint8_t *tight = xmalloc((size_t)exact);

		CHECK(cw_event_encode(&ev, tight, (size_t)exact) == exact &&
			      memcmp(tight, buf, (size_t)exact) == 0,
		      "exact-size buffer");
		free(tight);
	}
	ev.type = (enum cw_event_type)3;
	CHECK(cw_event_encode(&ev, buf, sizeof(buf)) == -EINVAL, "type 3");
	ev.type = (enum cw_event_type) - 1;
	CHECK(cw_event_encode(&ev, buf, sizeof(buf)) == -EINVAL, "type -1");
	event_case(2, &ev);
	ev.user_id = CW_STR_NULL;
	CHECK(cw_event_encode(&ev, buf, sizeof(buf)) == -EINVAL, "user_id");
	event_case(2, &ev);
	ev.event_id = CW_STR_NULL;
	CHECK(cw_event_encode(&ev, buf, sizeof(buf)) == -EINVAL, "event_id");
	event_case(2, &ev);
	ev.currency = CW_STR_NULL;
	CHECK(cw_event_encode(&ev, buf, sizeof(buf)) == -EINVAL, "currency");
	CHECK(cw_event_encode(NULL, buf, sizeof(buf)) == -EINVAL, "NULL ev");
}

/* Decode @len bytes at @msg (copied to an exact-size heap buffer) and
 * expect error @want with @needle in the message. */
static void expect_event_error(const uint8_t *msg, size_t len, int want,
			       const char *needle, const char *what)
{
	uint8_t *b = dup_exact(msg, len);
	struct cw_event ev;
	char err[256] = "";
	int rc = cw_event_decode(b, len, &ev, err, sizeof(err));

	CHECK(rc == want, "%s: got %d (%s), want %d", what, rc, err, want);
	CHECK(!needle || strstr(err, needle), "%s: '%s' lacks '%s'", what, err,
	      needle);
	free(b);
}

/* Build a framed event body by hand from pieces. */
struct msg {
	uint8_t b[512];
	size_t n;
};

static void put(struct msg *m, const void *p, size_t n)
{
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void put_long(struct msg *m, int64_t v)
{
	m->n = (size_t)(cw_avro_write_long(m->b + m->n, v) - m->b);
}

static void put_str(struct msg *m, const char *s)
{
	m->n = (size_t)(cw_avro_write_string(m->b + m->n, s, strlen(s)) - m->b);
}

/* A valid event with overridable raw pieces: -1 means "the normal value". */
struct raw_event {
	int64_t type;
	int64_t product_branch;
	int64_t reason_branch;
	int64_t id_len; /* length prefix written for event_id */
	bool overlong_time;
	int64_t quantity;
};

static void build_event(struct msg *m, const struct raw_event *r)
{
	m->n = 0;
	m->n = (size_t)(cw_avro_frame_write(m->b, cw_event_fingerprint) - m->b);
	put_long(m, r->id_len);
	put(m, "abcd", 4);
	put_long(m, r->type);
	if (r->overlong_time)
		put(m, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11);
	else
		put_long(m, 1234);
	put_str(m, "u1");
	put_long(m, r->product_branch);
	if (r->product_branch == 1)
		put_str(m, "p1");
	put_long(m, r->quantity);
	put_long(m, 100);
	put_str(m, "USD");
	put_long(m, r->reason_branch);
	if (r->reason_branch == 1)
		put_str(m, "why");
}

static const struct raw_event good_raw = {
	.type = 1,
	.product_branch = 1,
	.reason_branch = 1,
	.id_len = 4,
	.quantity = 1,
};

static void test_event_malformed(void)
{
	struct msg m;
	struct raw_event r;
	struct cw_event ev;
	uint8_t *valid;
	size_t len;

	build_event(&m, &good_raw);
	expect_event_error(m.b, m.n, 0, NULL, "hand-built valid message");

	/* every truncation of every test case */
	for (int i = 0; i < N_EVENT_CASES; i++) {
		event_case(i, &ev);
		valid = encode_event(&ev, &len);
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *b = dup_exact(valid, cut);
			int rc = cw_event_decode(b, cut, &ev, NULL, 0);

			CHECK(rc == (cut < CW_AVRO_FRAME_HEADER ? -EPROTO
								: -EBADMSG),
			      "case %d cut at %zu: %d", i, cut, rc);
			free(b);
		}
		free(valid);
	}
	expect_event_error(NULL, 0, -EPROTO, "framed", "empty");

	event_case(1, &ev);
	valid = encode_event(&ev, &len);
	valid[0] ^= 0xff;
	expect_event_error(valid, len, -CW_EVENT_EBADMAGIC, "framed",
			   "bad magic 0");
	valid[0] ^= 0xff;
	valid[1] = 0x02;
	expect_event_error(valid, len, -CW_EVENT_EBADMAGIC, "framed",
			   "bad magic 1");
	valid[1] = 0x01;
	valid[9] ^= 0x40;
	expect_event_error(valid, len, -CW_EVENT_EFINGERPRINT, "fingerprint",
			   "unknown fingerprint");
	valid[9] ^= 0x40;
	/* An abandonment is not an event. */
	cw_avro_frame_write(valid, cw_abandonment_fingerprint);
	expect_event_error(valid, len, -CW_EVENT_EFINGERPRINT, "fingerprint",
			   "abandonment fingerprint");
	free(valid);

	r = good_raw;
	r.product_branch = 2;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "product_id", "union 2");
	r.product_branch = -1;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "product_id", "union -1");
	r = good_raw;
	r.reason_branch = 7;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "reason", "union 7");
	r = good_raw;
	r.product_branch = 0; /* null is fine */
	r.reason_branch = 0;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, 0, NULL, "null unions");

	r = good_raw;
	r.type = 3;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_type", "enum 3");
	r.type = -1;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_type", "enum -1");
	r.type = (int64_t)1 << 40;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_type", "enum 2^40");

	r = good_raw;
	r.id_len = -1;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_id", "negative len");
	r.id_len = 1000;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_id", "len past end");
	r.id_len = INT64_MAX;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_id", "len INT64_MAX");
	r.id_len = INT64_MIN;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_id", "len INT64_MIN");

	r = good_raw;
	r.overlong_time = true;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "event_time", "11-byte long");

	r = good_raw;
	r.quantity = (int64_t)INT32_MAX + 1;
	build_event(&m, &r);
	expect_event_error(m.b, m.n, -EBADMSG, "quantity", "int overflow");

	build_event(&m, &good_raw);
	put(&m, "\0", 1);
	expect_event_error(m.b, m.n, -EBADMSG, "trailing", "1 trailing byte");
	put(&m, "xyz", 3);
	expect_event_error(m.b, m.n, -EBADMSG, "4 trailing",
			   "4 trailing bytes");
}

/* ---- abandonment -------------------------------------------------------- */

#define N_ABAND_CASES 5
#define MANY	      1000
static struct cw_abandoned_item case_items[MANY];
static char item_names[MANY][16];

static void aband_case(int i, struct cw_abandonment *ab)
{
	memset(ab, 0, sizeof(*ab));
	ab->abandonment_id = S("0b5e7f0e-1d2c-4b3a-9f8e-7d6c5b4a3928");
	ab->user_id = S("user-42");
	ab->session_start_ms = 1700000000000;
	ab->last_activity_at_ms = 1700000600000;
	ab->abandoned_at_ms = 1700002400000;
	ab->currency = S("USD");
	for (int k = 0; k < MANY; k++) {
		snprintf(item_names[k], sizeof(item_names[k]), "sku-%d", k);
		case_items[k].product_id = S(item_names[k]);
		case_items[k].quantity = k % 7 - 3;
		case_items[k].unit_price_cents = (int64_t)k * 1000003 - 7;
	}
	switch (i) {
	case 0: /* no items */
		break;
	case 1: /* one item, a reason */
		ab->items = case_items;
		ab->n_items = 1;
		ab->item_count = 2;
		ab->cart_value_cents = 3998;
		ab->last_remove_reason = S("changed my mind");
		break;
	case 2: /* many items */
		ab->items = case_items;
		ab->n_items = MANY;
		ab->item_count = 123456;
		ab->cart_value_cents = INT64_MAX;
		break;
	case 3: /* extremes, empty strings */
		ab->items = case_items + 5;
		ab->n_items = 64; /* count varint 0x80 0x01 */
		ab->abandonment_id = S("");
		ab->user_id = (struct cw_str){long_str, LONG_LEN};
		ab->session_start_ms = INT64_MIN;
		ab->last_activity_at_ms = -1;
		ab->abandoned_at_ms = INT64_MAX;
		ab->item_count = INT32_MIN;
		ab->cart_value_cents = INT64_MIN;
		ab->currency = S("");
		ab->last_remove_reason = S("");
		break;
	case 4: /* an item with an empty product id */
		case_items[0].product_id = S("");
		ab->items = case_items;
		ab->n_items = 2;
		ab->item_count = INT32_MAX;
		break;
	}
}

static bool aband_eq(const struct cw_abandonment *a,
		     const struct cw_abandonment *b)
{
	if (!(cw_str_eq(a->abandonment_id, b->abandonment_id) &&
	      cw_str_eq(a->user_id, b->user_id) &&
	      a->session_start_ms == b->session_start_ms &&
	      a->last_activity_at_ms == b->last_activity_at_ms &&
	      a->abandoned_at_ms == b->abandoned_at_ms &&
	      a->n_items == b->n_items && a->item_count == b->item_count &&
	      a->cart_value_cents == b->cart_value_cents &&
	      cw_str_eq(a->currency, b->currency) &&
	      cw_str_eq(a->last_remove_reason, b->last_remove_reason)))
		return false;
	for (size_t i = 0; i < a->n_items; i++)
		if (!cw_str_eq(a->items[i].product_id,
			       b->items[i].product_id) ||
		    a->items[i].quantity != b->items[i].quantity ||
		    a->items[i].unit_price_cents !=
			    b->items[i].unit_price_cents)
			return false;
	return true;
}

static void aband_to_avro(const struct cw_abandonment *ab, avro_value_t *val)
{
	avro_value_t f, items;

	AVRO_OK(avro_value_reset(val));
	f = field(val, "abandonment_id");
	set_str(&f, ab->abandonment_id);
	f = field(val, "user_id");
	set_str(&f, ab->user_id);
	f = field(val, "session_start");
	AVRO_OK(avro_value_set_long(&f, ab->session_start_ms));
	f = field(val, "last_activity_at");
	AVRO_OK(avro_value_set_long(&f, ab->last_activity_at_ms));
	f = field(val, "abandoned_at");
	AVRO_OK(avro_value_set_long(&f, ab->abandoned_at_ms));
	items = field(val, "items");
	for (size_t i = 0; i < ab->n_items; i++) {
		avro_value_t it;

		AVRO_OK(avro_value_append(&items, &it, NULL));
		f = field(&it, "product_id");
		set_str(&f, ab->items[i].product_id);
		f = field(&it, "quantity");
		AVRO_OK(avro_value_set_int(&f, ab->items[i].quantity));
		f = field(&it, "unit_price_cents");
		AVRO_OK(avro_value_set_long(&f, ab->items[i].unit_price_cents));
	}
	f = field(val, "item_count");
	AVRO_OK(avro_value_set_int(&f, ab->item_count));
	f = field(val, "cart_value_cents");
	AVRO_OK(avro_value_set_long(&f, ab->cart_value_cents));
	f = field(val, "currency");
	set_str(&f, ab->currency);
	f = field(val, "last_remove_reason");
	set_opt_str(&f, ab->last_remove_reason);
}

static uint8_t *encode_aband(const struct cw_abandonment *ab, size_t *len)
{
	size_t cap = cw_abandonment_encoded_max(ab);
	uint8_t *buf = xmalloc(cap);
	ssize_t n = cw_abandonment_encode(ab, buf, cap);

	CHECK(n > 0, "cw_abandonment_encode: %zd", n);
	*len = n > 0 ? (size_t)n : 0;
	return buf;
}

static struct cw_abandoned_item out_items[MANY];

static void test_aband_to_avro_c(void)
{
	avro_value_t val;

	AVRO_OK(avro_generic_value_new(aband_iface, &val));
	for (int i = 0; i < N_ABAND_CASES; i++) {
		struct cw_abandonment ab, back;
		avro_value_t f, items;
		size_t len, n;
		uint8_t *buf;
		char err[256] = "";

		aband_case(i, &ab);
		buf = encode_aband(&ab, &len);
		avro_c_decode(buf, len, &val);
		f = field(&val, "abandonment_id");
		CHECK(avro_str_eq(&f, ab.abandonment_id), "case %d: id", i);
		f = field(&val, "user_id");
		CHECK(avro_str_eq(&f, ab.user_id), "case %d: user", i);
		f = field(&val, "session_start");
		CHECK(avro_long(&f) == ab.session_start_ms, "case %d", i);
		f = field(&val, "last_activity_at");
		CHECK(avro_long(&f) == ab.last_activity_at_ms, "case %d", i);
		f = field(&val, "abandoned_at");
		CHECK(avro_long(&f) == ab.abandoned_at_ms, "case %d", i);
		items = field(&val, "items");
		AVRO_OK(avro_value_get_size(&items, &n));
		CHECK(n == ab.n_items, "case %d: %zu items, want %zu", i, n,
		      ab.n_items);
		for (size_t k = 0; k < n && k < ab.n_items; k++) {
			avro_value_t it;

			AVRO_OK(avro_value_get_by_index(&items, k, &it, NULL));
			f = field(&it, "product_id");
			CHECK(avro_str_eq(&f, ab.items[k].product_id),
			      "case %d item %zu", i, k);
			f = field(&it, "quantity");
			CHECK(avro_int(&f) == ab.items[k].quantity,
			      "case %d item %zu", i, k);
			f = field(&it, "unit_price_cents");
			CHECK(avro_long(&f) == ab.items[k].unit_price_cents,
			      "case %d item %zu", i, k);
		}
		f = field(&val, "item_count");
		CHECK(avro_int(&f) == ab.item_count, "case %d", i);
		f = field(&val, "cart_value_cents");
		CHECK(avro_long(&f) == ab.cart_value_cents, "case %d", i);
		f = field(&val, "currency");
		CHECK(avro_str_eq(&f, ab.currency), "case %d", i);
		f = field(&val, "last_remove_reason");
		CHECK(avro_opt_str_eq(&f, ab.last_remove_reason),
		      "case %d: reason", i);

		CHECK(cw_abandonment_decode(buf, len, &back, out_items, MANY,
					    err, sizeof(err)) == 0,
		      "case %d: decode: %s", i, err);
		CHECK(aband_eq(&ab, &back), "case %d: self round trip", i);
		CHECK(back.items == out_items, "case %d: items array", i);
		if (ab.n_items) {
			CHECK(cw_abandonment_decode(buf, len, &back, out_items,
						    ab.n_items - 1, err,
						    sizeof(err)) ==
				      -CW_ABANDONMENT_ETOOMANY,
			      "case %d: items_cap too small: %s", i, err);
		}
		free(buf);
	}
	avro_value_decref(&val);
}

static void test_avro_c_to_aband(void)
{
	avro_value_t val;

	AVRO_OK(avro_generic_value_new(aband_iface, &val));
	for (int i = 0; i < N_ABAND_CASES; i++) {
		struct cw_abandonment ab, back;
		uint8_t *theirs, *ours, *exact;
		size_t tlen, olen;
		char err[256] = "";

		aband_case(i, &ab);
		aband_to_avro(&ab, &val);
		tlen = avro_c_encode(&val, cw_abandonment_fingerprint, &theirs);
		exact = dup_exact(theirs, tlen);
		CHECK(cw_abandonment_decode(exact, tlen, &back, out_items, MANY,
					    err, sizeof(err)) == 0,
		      "case %d: decode avro-c output: %s", i, err);
		CHECK(aband_eq(&ab, &back), "case %d: fields", i);
		ours = encode_aband(&ab, &olen);
		CHECK(olen == tlen && memcmp(ours, theirs, tlen) == 0,
		      "case %d: our bytes differ from avro-c's", i);
		free(theirs);
		free(exact);
		free(ours);
	}
	avro_value_decref(&val);
}

static void expect_aband_error(const uint8_t *msg, size_t len, int want,
			       const char *needle, const char *what)
{
	uint8_t *b = dup_exact(msg, len);
	struct cw_abandonment ab;
	struct cw_abandoned_item items[8];
	char err[256] = "";
	int rc = cw_abandonment_decode(b, len, &ab, items, 8, err, sizeof(err));

	CHECK(rc == want, "%s: got %d (%s), want %d", what, rc, err, want);
	CHECK(!needle || strstr(err, needle), "%s: '%s' lacks '%s'", what, err,
	      needle);
	free(b);
}

/* Abandonment with two items in the given block layout. */
static void build_aband(struct msg *m, int layout)
{
	m->n = (size_t)(cw_avro_frame_write(m->b, cw_abandonment_fingerprint) -
			m->b);
	put_str(m, "id");
	put_str(m, "u");
	put_long(m, 1);
	put_long(m, 2);
	put_long(m, 3);
	switch (layout) {
	case 0: /* two blocks of one */
		put_long(m, 1);
		put_str(m, "a");
		put_long(m, 1);
		put_long(m, 10);
		put_long(m, 1);
		put_str(m, "b");
		put_long(m, 2);
		put_long(m, 20);
		put_long(m, 0);
		break;
	case 1: /* negative count with a byte size */
		put_long(m, -2);
		put_long(m, 8);
		put_str(m, "a");
		put_long(m, 1);
		put_long(m, 10);
		put_str(m, "b");
		put_long(m, 2);
		put_long(m, 20);
		put_long(m, 0);
		break;
	case 2: /* count the input can't hold */
		put_long(m, INT64_MAX);
		put_long(m, 0);
		break;
	case 3: /* INT64_MIN count */
		put_long(m, INT64_MIN);
		put_long(m, 0);
		break;
	case 4: /* negative block size */
		put_long(m, -1);
		put_long(m, -5);
		put_str(m, "a");
		put_long(m, 1);
		put_long(m, 10);
		put_long(m, 0);
		break;
	case 5: /* 9 items, more than the 8 the test decodes into */
		put_long(m, 9);
		for (int k = 0; k < 9; k++) {
			put_str(m, "z");
			put_long(m, k);
			put_long(m, k);
		}
		put_long(m, 0);
		break;
	}
	put_long(m, 3);
	put_long(m, 50);
	put_str(m, "USD");
	put_long(m, 0);
}

static void test_aband_malformed(void)
{
	struct cw_abandonment ab, back;
	struct cw_abandoned_item items[8];
	struct msg m;

	for (int i = 0; i < N_ABAND_CASES; i++) {
		uint8_t *valid;
		size_t len;

		aband_case(i, &ab);
		valid = encode_aband(&ab, &len);
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *b = dup_exact(valid, cut);
			int rc = cw_abandonment_decode(b, cut, &back, out_items,
						       MANY, NULL, 0);

			CHECK(rc == (cut < CW_AVRO_FRAME_HEADER ? -EPROTO
								: -EBADMSG),
			      "case %d cut at %zu: %d", i, cut, rc);
			free(b);
		}
		/* trailing byte */
		{
			uint8_t *b = xmalloc(len + 1);

			memcpy(b, valid, len);
			b[len] = 0;
			expect_aband_error(b, len + 1,
					   ab.n_items > 8 ? -ENOBUFS : -EBADMSG,
					   NULL, "trailing");
			free(b);
		}
		valid[5] ^= 1;
		expect_aband_error(valid, len, -EPROTONOSUPPORT, "fingerprint",
				   "fingerprint");
		cw_avro_frame_write(valid, cw_event_fingerprint);
		expect_aband_error(valid, len, -EPROTONOSUPPORT, "fingerprint",
				   "event fingerprint");
		valid[0] = 0;
		expect_aband_error(valid, len, -EPROTO, "framed", "magic");
		free(valid);
	}

	build_aband(&m, 0);
	CHECK(cw_abandonment_decode(m.b, m.n, &back, items, 8, NULL, 0) == 0 &&
		      back.n_items == 2 && back.items[1].quantity == 2 &&
		      back.items[1].unit_price_cents == 20,
	      "two blocks");
	build_aband(&m, 1);
	CHECK(cw_abandonment_decode(m.b, m.n, &back, items, 8, NULL, 0) == 0 &&
		      back.n_items == 2 &&
		      cw_str_eq(back.items[1].product_id, S("b")),
	      "negative block count");
	build_aband(&m, 2);
	expect_aband_error(m.b, m.n, -EBADMSG, "items", "huge count");
	build_aband(&m, 3);
	expect_aband_error(m.b, m.n, -EBADMSG, "items", "INT64_MIN count");
	build_aband(&m, 4);
	expect_aband_error(m.b, m.n, -EBADMSG, "block size", "neg size");
	build_aband(&m, 5);
	expect_aband_error(m.b, m.n, -CW_ABANDONMENT_ETOOMANY, "items",
			   "too many");
	CHECK(cw_abandonment_decode(m.b, m.n, &back, out_items, 9, NULL, 0) ==
			      0 &&
		      back.n_items == 9,
	      "9 fit in 9");

	/* union index in last_remove_reason */
	build_aband(&m, 0);
	m.b[m.n - 1] = 4;
	expect_aband_error(m.b, m.n, -EBADMSG, "last_remove_reason", "union 2");
}

static void test_aband_encode_errors(void)
{
	struct cw_abandonment ab;
	uint8_t buf[512];
	ssize_t exact;

	aband_case(4, &ab);
	exact = cw_abandonment_encode(&ab, buf, sizeof(buf));
	CHECK(exact > 0 && (size_t)exact <= cw_abandonment_encoded_max(&ab),
	      "encode");
	for (size_t size = 0; size < (size_t)exact; size++) {
		uint8_t *small = xmalloc(size);

		CHECK(cw_abandonment_encode(&ab, small, size) == -ENOSPC,
		      "size %zu", size);
		free(small);
	}
	{
		uint8_t *tight = xmalloc((size_t)exact);

		CHECK(cw_abandonment_encode(&ab, tight, (size_t)exact) ==
				      exact &&
			      memcmp(tight, buf, (size_t)exact) == 0,
		      "exact-size buffer");
		free(tight);
	}
	ab.items = NULL;
	CHECK(cw_abandonment_encode(&ab, buf, sizeof(buf)) == -EINVAL,
	      "NULL items");
	aband_case(4, &ab);
	ab.currency = CW_STR_NULL;
	CHECK(cw_abandonment_encode(&ab, buf, sizeof(buf)) == -EINVAL,
	      "NULL currency");
	aband_case(4, &ab);
	case_items[1].product_id = CW_STR_NULL;
	CHECK(cw_abandonment_encode(&ab, buf, sizeof(buf)) == -EINVAL,
	      "NULL product_id");
	aband_case(0, &ab); /* restores case_items */
}

/* ---- --print-contract -----------------------------------------------------
 */

static int print_contract(void)
{
	struct cw_event ev;

	cw_event_init(&ev);
	printf("fingerprint cartwatch.CartEvent %016" PRIx64 "\n",
	       cw_event_fingerprint);
	printf("fingerprint cartwatch.CartAbandonment %016" PRIx64 "\n",
	       cw_abandonment_fingerprint);
	printf("pcf cartwatch.CartEvent %s\n", cw_event_schema_pcf);
	printf("pcf cartwatch.CartAbandonment %s\n", cw_abandonment_schema_pcf);
	printf("symbols cartwatch.EventType [");
	for (int i = 0; i < CW_EVENT_TYPE_COUNT; i++)
		printf("%s\"%s\"", i ? "," : "",
		       cw_event_type_name((enum cw_event_type)i));
	printf("]\n");
	/* cw_event_init()'s defaults, as JSON, for the schema's defaults */
	printf("default cartwatch.CartEvent product_id null\n");
	printf("default cartwatch.CartEvent quantity %" PRId32 "\n",
	       ev.quantity);
	printf("default cartwatch.CartEvent unit_price_cents %" PRId64 "\n",
	       ev.unit_price_cents);
	printf("default cartwatch.CartEvent currency \"%.*s\"\n",
	       (int)ev.currency.len, ev.currency.ptr);
	printf("default cartwatch.CartEvent reason %s\n",
	       ev.reason.ptr ? "\"?\"" : "null");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--print-contract") == 0)
		return print_contract();
	if (argc > 1) {
		fprintf(stderr, "usage: %s [--print-contract]\n", argv[0]);
		return 2;
	}

	long_str = xmalloc(LONG_LEN + 1);
	for (size_t i = 0; i < LONG_LEN; i++)
		long_str[i] = (char)('a' + i % 26);
	long_str[LONG_LEN] = '\0';

	event_schema = load_schema("cart_event.avsc");
	aband_schema = load_schema("cart_abandonment.avsc");
	event_iface = avro_generic_class_from_schema(event_schema);
	aband_iface = avro_generic_class_from_schema(aband_schema);
	if (!event_iface || !aband_iface) {
		printf("Bail out! avro_generic_class_from_schema: %s\n",
		       avro_strerror());
		return 1;
	}

	run("fingerprints (spec vector, PCF constants)", test_fingerprint);
	run("hand-written PCFs parse and equal the .avsc", test_pcf_parses);
	run("varints and strings vs avro-c", test_varints);
	run("single-object framing", test_frame);
	run("event type names vs schema symbols", test_event_types);
	run("cw_event_init defaults", test_event_init);
	run("event: cw_event_encode -> avro-c reader", test_event_to_avro_c);
	run("event: avro-c writer -> cw_event_decode, same bytes",
	    test_avro_c_to_event);
	run("event: encode -ENOSPC/-EINVAL", test_event_encode_errors);
	run("event: malformed input", test_event_malformed);
	run("abandonment: encode -> avro-c reader", test_aband_to_avro_c);
	run("abandonment: avro-c writer -> decode, same bytes",
	    test_avro_c_to_aband);
	run("abandonment: malformed input", test_aband_malformed);
	run("abandonment: encode -ENOSPC/-EINVAL", test_aband_encode_errors);
	printf("1..%d\n", test_no);

	avro_value_iface_decref(event_iface);
	avro_value_iface_decref(aband_iface);
	avro_schema_decref(event_schema);
	avro_schema_decref(aband_schema);
	free(long_str);
	return failures ? 1 : 0;
}
