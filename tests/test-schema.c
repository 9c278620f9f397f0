/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-schema — unit tests of cw_schema: cart events written with other
 * versions of schemas/cart_event.avsc, resolved to the processor's reader
 * schema. Records are written with avro-c's generic writer (an independent
 * encoder) and framed with the writer schema's fingerprint, then read back
 * through cw_schema_decode() into struct cw_event.
 *
 * Covers forward compatibility (a v2 writer with an added optional field,
 * read by today's reader), backward compatibility (today's v1 records read
 * by a v2 reader, the new field from its default; an older v0 writer
 * without currency/reason), promotions, refused writers (user_id as int, a
 * required field missing), unknown fingerprints, hostile bodies, the
 * --schema-dir loader, and that the resolver and the fast decoder agree on
 * today's schema. Not for: the daemon (the processor tests cover it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avro.h>

#include "cw_avro.h"
#include "cw_event.h"
#include "cw_schema.h"
#include "harness.h"

/* Today's fields, in a writer schema template: %s slots are for the
 * user_id type, an extra field list and the record name. */
#define FIELD_EVENT_ID "{\"name\":\"event_id\",\"type\":\"string\"},"
#define FIELD_TYPE                                                             \
	"{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":"       \
	"\"EventType\",\"namespace\":\"cartwatch\",\"symbols\":[\"cart_add\"," \
	"\"cart_remove\",\"checkout_complete\"]}},"
#define FIELD_TIME "{\"name\":\"event_time\",\"type\":\"long\"},"
#define FIELD_USER "{\"name\":\"user_id\",\"type\":\"string\"},"
#define FIELD_PRODUCT                                                          \
	"{\"name\":\"product_id\",\"type\":[\"null\",\"string\"],"             \
	"\"default\":null},"
#define FIELD_QTY "{\"name\":\"quantity\",\"type\":\"int\",\"default\":1},"
#define FIELD_PRICE                                                            \
	"{\"name\":\"unit_price_cents\",\"type\":\"long\",\"default\":0},"
#define FIELD_CURRENCY                                                         \
	"{\"name\":\"currency\",\"type\":\"string\",\"default\":\"USD\"},"
#define FIELD_REASON                                                           \
	"{\"name\":\"reason\",\"type\":[\"null\",\"string\"],\"default\":"     \
	"null}"
#define FIELD_COUPON                                                           \
	",{\"name\":\"coupon_code\",\"type\":[\"null\",\"string\"],"           \
	"\"default\":null}"
#define RECORD(fields)                                                         \
	"{\"type\":\"record\",\"name\":\"CartEvent\",\"namespace\":"           \
	"\"cartwatch\",\"fields\":[" fields "]}"

/* v2: today's schema plus an optional coupon_code. */
static const char v2_json[] = RECORD(
	FIELD_EVENT_ID FIELD_TYPE FIELD_TIME FIELD_USER FIELD_PRODUCT FIELD_QTY
		FIELD_PRICE FIELD_CURRENCY FIELD_REASON FIELD_COUPON);

/* One writer schema and what the processor must make of it. */
struct writer_case {
	const char *name;
	const char *json;
	int add;	       /* cw_schema_set_add() result */
	const char *defaulted; /* fields from defaults, if add == 0 */
	const char *refusal;   /* substring of the reason, if refused */
	bool product_always;   /* product_id is not nullable */
};

static const struct writer_case writer_cases[] = {
	{"v2: added optional coupon_code", v2_json, 0, "", NULL, false},
	{"v0: no currency, no reason (defaults)",
	 RECORD(FIELD_EVENT_ID FIELD_TYPE FIELD_TIME FIELD_USER FIELD_PRODUCT
			FIELD_QTY "{\"name\":\"unit_price_cents\",\"type\":"
				  "\"long\"}"),
	 0, "currency,reason", NULL, false},
	{"promotions: product_id plain string, price int",
	 RECORD(FIELD_EVENT_ID FIELD_TYPE FIELD_TIME FIELD_USER
		"{\"name\":\"product_id\",\"type\":\"string\"},"
		"{\"name\":\"quantity\",\"type\":\"int\"},"
		"{\"name\":\"unit_price_cents\",\"type\":\"int\"},"
		"{\"name\":\"currency\",\"type\":\"string\"},"
		"{\"name\":\"reason\",\"type\":[\"null\",\"string\"]}"),
	 0, "", NULL, true},
	{"fields in another order",
	 RECORD(FIELD_REASON "," FIELD_USER FIELD_CURRENCY FIELD_EVENT_ID
			FIELD_PRICE FIELD_TYPE FIELD_QTY FIELD_PRODUCT
			     "{\"name\":\"event_time\",\"type\":\"long\"}"),
	 0, "", NULL, false},
	{"incompatible: user_id is an int",
	 RECORD(FIELD_EVENT_ID FIELD_TYPE FIELD_TIME
		"{\"name\":\"user_id\",\"type\":\"int\"}," FIELD_PRODUCT
			FIELD_QTY FIELD_PRICE FIELD_CURRENCY FIELD_REASON),
	 -CW_SCHEMA_EINCOMPATIBLE, NULL, "user_id", false},
	{"incompatible: event_time missing, no default",
	 RECORD(FIELD_EVENT_ID FIELD_TYPE FIELD_USER FIELD_PRODUCT FIELD_QTY
			FIELD_PRICE FIELD_CURRENCY FIELD_REASON),
	 -CW_SCHEMA_EINCOMPATIBLE, NULL,
	 "reader field event_time is not in the writer schema and has no "
	 "default",
	 false},
	{"incompatible: not a record", "\"string\"", -CW_SCHEMA_EINCOMPATIBLE,
	 NULL, "not a record", false},
	{"not a schema", "{\"type\":\"recrod\"}", -EINVAL, NULL, NULL, false},
};

/* Sample events; the resolver must give back exactly these. */
static struct cw_event sample(int i)
{
	static const char *ids[] = {"00000000-0000-4000-8000-000000000001",
				    "00000000-0000-4000-8000-000000000002",
				    "00000000-0000-4000-8000-000000000003"};
	struct cw_event ev;

	cw_event_init(&ev);
	ev.event_id = (struct cw_str){ids[i % 3], 36};
	ev.type = (enum cw_event_type)(i % CW_EVENT_TYPE_COUNT);
	ev.event_time_ms = 1783500000000LL + i * 977;
	ev.user_id = (struct cw_str){"user-42", 7};
	if (ev.type != CW_EVENT_CHECKOUT_COMPLETE)
		ev.product_id = (struct cw_str){"sku-\xc3\xa9", 6};
	ev.quantity = 1 + i;
	ev.unit_price_cents = 1999LL * i;
	if (i % 2)
		ev.currency = (struct cw_str){"EUR", 3};
	if (ev.type == CW_EVENT_CART_REMOVE)
		ev.reason = (struct cw_str){"too pricey", 10};
	return ev;
}

static bool str_eq(struct cw_str a, struct cw_str b)
{
	if (!a.ptr || !b.ptr)
		return !a.ptr && !b.ptr;
	return a.len == b.len && !memcmp(a.ptr, b.ptr, a.len);
}

/* Fields of @got equal @want; @has lists what the writer carried. */
static void check_event(const struct cw_event *got, const struct cw_event *want,
			bool has_currency_reason)
{
	CHECK(str_eq(got->event_id, want->event_id));
	CHECK_INT_EQ(got->type, want->type);
	CHECK_INT_EQ(got->event_time_ms, want->event_time_ms);
	CHECK(str_eq(got->user_id, want->user_id));
	CHECK(str_eq(got->product_id, want->product_id));
	CHECK_INT_EQ(got->quantity, want->quantity);
	CHECK_INT_EQ(got->unit_price_cents, want->unit_price_cents);
	if (has_currency_reason) {
		CHECK(str_eq(got->currency, want->currency));
		CHECK(str_eq(got->reason, want->reason));
	} else {
		CHECK(str_eq(got->currency, ((struct cw_str){"USD", 3})));
		CHECK(!got->reason.ptr);
	}
}

static void set_string(avro_value_t *f, struct cw_str s)
{
	avro_value_t b;

	if (avro_value_get_type(f) == AVRO_UNION) {
		REQUIRE(!avro_value_set_branch(f, s.ptr ? 1 : 0, &b));
		if (!s.ptr) {
			REQUIRE(!avro_value_set_null(&b));
			return;
		}
		f = &b;
	}
	REQUIRE(s.ptr);
	REQUIRE(!avro_value_set_string_len(f, s.ptr, s.len + 1));
}

/* Encode @ev (+ @coupon where the schema has coupon_code) with avro-c's
 * generic writer under @json, framed with @fp. Returns the length. */
static size_t write_generic(const char *json, uint64_t fp,
			    const struct cw_event *ev, const char *coupon,
			    uint8_t *buf, size_t size)
{
	avro_schema_t s;
	avro_value_iface_t *iface;
	avro_value_t v, f;
	avro_writer_t w;
	size_t n;

	REQUIRE(!avro_schema_from_json_length(json, strlen(json), &s));
	REQUIRE((iface = avro_generic_class_from_schema(s)));
	REQUIRE(!avro_generic_value_new(iface, &v));
	for (size_t i = 0; i < avro_schema_record_size(s); i++) {
		const char *name = avro_schema_record_field_name(s, (int)i);

		REQUIRE(!avro_value_get_by_index(&v, i, &f, NULL));
		if (!strcmp(name, "event_id"))
			set_string(&f, ev->event_id);
		else if (!strcmp(name, "user_id"))
			set_string(&f, ev->user_id);
		else if (!strcmp(name, "product_id"))
			set_string(&f, ev->product_id);
		else if (!strcmp(name, "currency"))
			set_string(&f, ev->currency);
		else if (!strcmp(name, "reason"))
			set_string(&f, ev->reason);
		else if (!strcmp(name, "coupon_code"))
			set_string(&f, (struct cw_str){coupon,
						       coupon ? strlen(coupon)
							      : 0});
		else if (!strcmp(name, "event_type"))
			REQUIRE(!avro_value_set_enum(&f, (int)ev->type));
		else if (!strcmp(name, "event_time"))
			REQUIRE(!avro_value_set_long(&f, ev->event_time_ms));
		else if (!strcmp(name, "quantity"))
			REQUIRE(!avro_value_set_int(&f, ev->quantity));
		else if (!strcmp(name, "unit_price_cents"))
			REQUIRE(avro_value_get_type(&f) == AVRO_INT32
					? !avro_value_set_int(
						  &f,
						  (int32_t)ev->unit_price_cents)
					: !avro_value_set_long(
						  &f, ev->unit_price_cents));
		else
			REQUIRE(!"unexpected field");
	}
	REQUIRE(size > CW_AVRO_FRAME_HEADER);
	cw_avro_frame_write(buf, fp);
	w = avro_writer_memory((char *)buf + CW_AVRO_FRAME_HEADER,
			       (int64_t)(size - CW_AVRO_FRAME_HEADER));
	REQUIRE(w);
	REQUIRE(!avro_value_write(w, &v));
	n = CW_AVRO_FRAME_HEADER + (size_t)avro_writer_tell(w);
	avro_writer_free(w);
	avro_value_decref(&v);
	avro_value_iface_decref(iface);
	avro_schema_decref(s);
	return n;
}

static struct cw_schema_set *new_set(const char *reader, bool no_fast)
{
	struct cw_schema_set *set = NULL;
	char err[256];

	REQUIRE(!cw_schema_set_new(reader, no_fast, &set, err, sizeof(err)));
	REQUIRE(!cw_schema_set_add_history(set, err, sizeof(err)));
	return set;
}

/* The PCF code reproduces the hand-written constant of cw_event.c, and the
 * embedded history holds today's schema. */
static void test_pcf(void)
{
	char pcf[2048], err[256];
	struct cw_schema_set *set = NULL;
	uint64_t fp = 0;
	size_t usable = 0, refused = 9;

	CHECK_INT_EQ(cw_schema_pcf(cw_schema_reader_json,
				   strlen(cw_schema_reader_json), pcf,
				   sizeof(pcf)),
		     (long long)strlen(cw_event_schema_pcf));
	CHECK_STR_EQ(pcf, cw_event_schema_pcf);
	CHECK_INT_EQ(cw_schema_pcf(cw_schema_reader_json,
				   strlen(cw_schema_reader_json), pcf, 10),
		     -ENOSPC);
	CHECK_INT_EQ(cw_schema_pcf("{", 1, pcf, sizeof(pcf)), -EINVAL);
	REQUIRE(!cw_schema_set_new(NULL, false, &set, err, sizeof(err)));
	REQUIRE(cw_schema_history_count >= 1);
	CHECK_INT_EQ(cw_schema_set_add(set, cw_schema_history[0].json,
				       strlen(cw_schema_history[0].json), "v1",
				       &fp, err, sizeof(err)),
		     0);
	CHECK_INT_EQ(fp, cw_event_fingerprint);
	CHECK_STR_EQ(cw_schema_set_defaulted(set, fp), "");
	CHECK_INT_EQ(cw_schema_set_add_history(set, err, sizeof(err)), 0);
	/* schemas/cart_event.avsc itself must be in schemas/history, or
	 * the next version's processors could not read today's records. */
	CHECK_INT_EQ(cw_schema_set_add(set, cw_schema_reader_json,
				       strlen(cw_schema_reader_json), "reader",
				       &fp, err, sizeof(err)),
		     0);
	cw_schema_set_counts(set, &usable, &refused);
	CHECK_INT_EQ(usable, cw_schema_history_count);
	CHECK_INT_EQ(refused, 0);
	cw_schema_set_free(set);
}

/* Every writer of the table: added or refused as expected; the usable ones
 * decode each sample into the right struct, the refused ones are refused
 * per record with the same reason. */
static void test_writers(void)
{
	for (size_t c = 0; c < sizeof(writer_cases) / sizeof(writer_cases[0]);
	     c++) {
		const struct writer_case *wc = &writer_cases[c];
		struct cw_schema_set *set = new_set(NULL, false);
		char err[512] = "";
		uint64_t fp = 0;
		int r;

		fprintf(stderr, "# writer: %s\n", wc->name);
		r = cw_schema_set_add(set, wc->json, strlen(wc->json), wc->name,
				      &fp, err, sizeof(err));
		CHECK_INT_EQ(r, wc->add);
		if (r)
			fprintf(stderr, "# refused: %s\n", err);
		if (wc->refusal)
			CHECK(strstr(err, wc->refusal));
		if (r == 0) {
			CHECK_STR_EQ(cw_schema_set_defaulted(set, fp),
				     wc->defaulted);
			for (int i = 0; i < 6; i++) {
				struct cw_event want = sample(i), got;
				uint8_t buf[512];
				size_t n;
				bool full = !*wc->defaulted;

				if (wc->product_always && !want.product_id.ptr)
					continue;
				n = write_generic(wc->json, fp, &want, "SAVE10",
						  buf, sizeof(buf));
				r = cw_schema_decode(set, buf, n, &got, err,
						     sizeof(err));
				CHECK_INT_EQ(r, 0);
				if (r)
					fprintf(stderr, "# %s\n", err);
				else
					check_event(&got, &want, full);
			}
		} else if (r == -CW_SCHEMA_EINCOMPATIBLE) {
			/* A record framed with it: refused, same reason. */
			uint8_t buf[64] = {0};
			char derr[512] = "";

			cw_avro_frame_write(buf, fp);
			CHECK_INT_EQ(cw_schema_decode(set, buf, sizeof(buf),
						      &(struct cw_event){0},
						      derr, sizeof(derr)),
				     -CW_SCHEMA_EINCOMPATIBLE);
			CHECK(strstr(derr, "cannot be read as CartEvent"));
			if (wc->refusal)
				CHECK(strstr(derr, wc->refusal));
		}
		cw_schema_set_free(set);
	}
}

/* (a) forward: a v2 producer's records, read by today's processor. */
static void test_forward_v2(void)
{
	struct cw_schema_set *set = new_set(NULL, false);
	struct cw_event want = sample(0), got;
	char err[256];
	uint8_t buf[512];
	uint64_t fp = 0;
	size_t n;

	REQUIRE(!cw_schema_set_add(set, v2_json, strlen(v2_json), "v2", &fp,
				   err, sizeof(err)));
	CHECK(fp != cw_event_fingerprint);
	n = write_generic(v2_json, fp, &want, "SAVE10", buf, sizeof(buf));
	/* Without the v2 schema, today's processor dead-letters it. */
	CHECK_INT_EQ(cw_event_decode(buf, n, &got, err, sizeof(err)),
		     -CW_EVENT_EFINGERPRINT);
	CHECK_INT_EQ(cw_schema_decode(set, buf, n, &got, err, sizeof(err)), 0);
	check_event(&got, &want, true);
	/* A null coupon too. */
	n = write_generic(v2_json, fp, &want, NULL, buf, sizeof(buf));
	CHECK_INT_EQ(cw_schema_decode(set, buf, n, &got, err, sizeof(err)), 0);
	check_event(&got, &want, true);
	cw_schema_set_free(set);
}

/* (b) backward: today's v1 records read by a processor whose reader schema
 * is v2: coupon_code comes from its default. */
static void test_backward_v1_to_v2_reader(void)
{
	struct cw_schema_set *set = new_set(v2_json, true);
	char err[256];
	uint8_t buf[512];
	uint64_t fp = 0;

	CHECK_STR_EQ(cw_schema_set_defaulted(set, cw_event_fingerprint),
		     "coupon_code");
	for (int i = 0; i < 6; i++) {
		struct cw_event want = sample(i), got;
		ssize_t n = cw_event_encode(&want, buf, sizeof(buf));

		REQUIRE(n > 0);
		CHECK_INT_EQ(cw_schema_decode(set, buf, (size_t)n, &got, err,
					      sizeof(err)),
			     0);
		check_event(&got, &want, true);
	}
	/* And a v2 reader reads v2 records as themselves. */
	REQUIRE(!cw_schema_set_add(set, v2_json, strlen(v2_json), "v2", &fp,
				   err, sizeof(err)));
	CHECK_STR_EQ(cw_schema_set_defaulted(set, fp), "");
	cw_schema_set_free(set);
}

/* The resolver and the fast decoder agree on today's schema, byte for
 * byte of every string. */
static void test_resolver_matches_fast_path(void)
{
	struct cw_schema_set *slow = new_set(NULL, true);
	char err[256];
	uint8_t buf[512];

	for (int i = 0; i < 9; i++) {
		struct cw_event want = sample(i), fast, res;
		ssize_t n = cw_event_encode(&want, buf, sizeof(buf));

		REQUIRE(n > 0);
		REQUIRE(!cw_event_decode(buf, (size_t)n, &fast, err,
					 sizeof(err)));
		CHECK_INT_EQ(cw_schema_decode(slow, buf, (size_t)n, &res, err,
					      sizeof(err)),
			     0);
		check_event(&res, &fast, true);
		/* Resolved strings are copies, not views into buf. */
		CHECK(res.user_id.ptr < (const char *)buf ||
		      res.user_id.ptr >= (const char *)buf + n);
	}
	cw_schema_set_free(slow);
}

/* (d) an unknown fingerprint: the same error and text as before. */
static void test_unknown_fingerprint(void)
{
	struct cw_schema_set *set = new_set(NULL, false);
	struct cw_event want = sample(1), got;
	char e1[256], e2[256];
	uint8_t buf[512];
	ssize_t n = cw_event_encode(&want, buf, sizeof(buf));

	REQUIRE(n > 0);
	cw_avro_frame_write(buf, UINT64_C(0x1122334455667788));
	CHECK_INT_EQ(cw_event_decode(buf, (size_t)n, &got, e1, sizeof(e1)),
		     -CW_EVENT_EFINGERPRINT);
	CHECK_INT_EQ(
		cw_schema_decode(set, buf, (size_t)n, &got, e2, sizeof(e2)),
		-CW_EVENT_EFINGERPRINT);
	CHECK_STR_EQ(e1, e2);
	CHECK(strstr(e2, "unknown schema fingerprint 1122334455667788"));
	/* Not framed at all: cw_event_decode's error. */
	CHECK_INT_EQ(cw_schema_decode(set, (const uint8_t *)"{}", 2, &got, e2,
				      sizeof(e2)),
		     -CW_EVENT_EBADMAGIC);
	CHECK_INT_EQ(
		cw_schema_decode(NULL, buf, (size_t)n, &got, e2, sizeof(e2)),
		-EINVAL);
	cw_schema_set_free(set);
}

/* Hostile v2 bodies: every truncation, trailing bytes, a huge length, a
 * bad union index. Each is CW_EVENT_EBADBODY, none crashes. */
static void test_hostile_bodies(void)
{
	struct cw_schema_set *set = new_set(NULL, false);
	struct cw_event want = sample(1), got;
	char err[256];
	uint8_t buf[512], bad[520];
	uint64_t fp = 0;
	size_t n;

	REQUIRE(!cw_schema_set_add(set, v2_json, strlen(v2_json), "v2", &fp,
				   err, sizeof(err)));
	n = write_generic(v2_json, fp, &want, "SAVE10", buf, sizeof(buf));
	for (size_t cut = CW_AVRO_FRAME_HEADER; cut < n; cut++)
		CHECK_INT_EQ(
			cw_schema_decode(set, buf, cut, &got, err, sizeof(err)),
			-CW_EVENT_EBADBODY);
	memcpy(bad, buf, n);
	bad[n] = 0;
	CHECK_INT_EQ(cw_schema_decode(set, bad, n + 1, &got, err, sizeof(err)),
		     -CW_EVENT_EBADBODY);
	CHECK(strstr(err, "trailing bytes"));
	/* event_id length = 2^62 */
	memcpy(bad, buf, CW_AVRO_FRAME_HEADER);
	memcpy(bad + CW_AVRO_FRAME_HEADER,
	       "\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9);
	CHECK_INT_EQ(cw_schema_decode(set, bad, CW_AVRO_FRAME_HEADER + 9, &got,
				      err, sizeof(err)),
		     -CW_EVENT_EBADBODY);
	/* coupon_code union index 7: the last field, so patch its index. */
	memcpy(bad, buf, n);
	n = write_generic(v2_json, fp, &want, NULL, bad, sizeof(bad));
	bad[n - 1] = 14; /* zig-zag 7 */
	CHECK_INT_EQ(cw_schema_decode(set, bad, n, &got, err, sizeof(err)),
		     -CW_EVENT_EBADBODY);
	CHECK(strstr(err, "union branch index out of range"));
	cw_schema_set_free(set);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	REQUIRE((f = fopen(path, "w")));
	REQUIRE(fputs(text, f) >= 0);
	REQUIRE(!fclose(f));
}

static void remove_file(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

/* --schema-dir: *.avsc read, other files ignored, incompatible kept and
 * counted, a broken file is an error naming it. */
static void test_schema_dir(void)
{
	char dir[] = "/tmp/cw-test-schema-XXXXXX", err[512] = "";
	struct cw_schema_set *set = new_set(NULL, false);
	size_t usable = 0, refused = 0;

	REQUIRE(mkdtemp(dir));
	write_file(dir, "cart_event.v2.avsc", v2_json);
	write_file(dir, "user-int.avsc", writer_cases[4].json);
	write_file(dir, "notes.txt", "not a schema");
	CHECK_INT_EQ(cw_schema_set_add_dir(set, dir, err, sizeof(err)), 0);
	cw_schema_set_counts(set, &usable, &refused);
	CHECK_INT_EQ(usable, cw_schema_history_count + 1);
	CHECK_INT_EQ(refused, 1);
	write_file(dir, "broken.avsc", "{\"type\":");
	CHECK_INT_EQ(cw_schema_set_add_dir(set, dir, err, sizeof(err)),
		     -EINVAL);
	CHECK(strstr(err, "broken.avsc"));
	remove_file(dir, "cart_event.v2.avsc");
	remove_file(dir, "user-int.avsc");
	remove_file(dir, "notes.txt");
	remove_file(dir, "broken.avsc");
	CHECK_INT_EQ(rmdir(dir), 0);
	CHECK_INT_EQ(cw_schema_set_add_dir(set, dir, err, sizeof(err)),
		     -ENOENT);
	cw_schema_set_free(set);
}

/* `test-schema --print-pcf FILE`: the PCF and fingerprint cw_schema gives
 * FILE, for tests/fingerprint.py to compare with python3-avro. */
static int print_pcf(const char *path)
{
	static char json[1 << 16], pcf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n;
	ssize_t len;

	if (!f) {
		perror(path);
		return 1;
	}
	n = fread(json, 1, sizeof(json), f);
	fclose(f);
	len = cw_schema_pcf(json, n, pcf, sizeof(pcf));
	if (len < 0) {
		fprintf(stderr, "%s: no canonical form (%zd)\n", path, len);
		return 1;
	}
	printf("pcf %s\nfingerprint %016" PRIx64 "\n", pcf,
	       cw_avro_fingerprint64(pcf, (size_t)len));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct harness_case hc[] = {
		{"pcf", test_pcf},
		{"writers", test_writers},
		{"forward_v2", test_forward_v2},
		{"backward_v1_to_v2_reader", test_backward_v1_to_v2_reader},
		{"resolver_matches_fast_path", test_resolver_matches_fast_path},
		{"unknown_fingerprint", test_unknown_fingerprint},
		{"hostile_bodies", test_hostile_bodies},
		{"schema_dir", test_schema_dir},
	};
	if (argc == 3 && !strcmp(argv[1], "--print-pcf"))
		return print_pcf(argv[2]);
	return harness_run(hc, sizeof(hc) / sizeof(hc[0]), argc, argv);
}
