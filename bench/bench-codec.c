/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-codec — how much the hand-written CartEvent codec (cw_event) saves
 * over avro-c's generic value API, per event, single-threaded.
 *
 * Encodes and decodes the same realistic event N times (default 5,000,000;
 * argv[1] overrides) with cw_event_encode/decode, and with avro-c using one
 * reused generic value, writer and reader: "set+write" fills the value from
 * a struct cw_event then avro_value_write()s it (what a producer would do),
 * "write" only writes the pre-filled value, "read" is avro_value_read() into
 * the reused value (without pulling the fields out). Prints ns/event and the
 * avro-c/ours ratio.
 *
 * Not for: correctness (tests/test-codec.c) or end-to-end throughput.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <avro.h>

#include "cw_avro.h"
#include "cw_event.h"
#include "cw_schema.h"

static volatile uint64_t sink;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-codec: %s: %s\n", what, avro_strerror());
	exit(1);
}

static void set_str(avro_value_t *rec, const char *name, struct cw_str s)
{
	avro_value_t f;

	if (avro_value_get_by_name(rec, name, &f, NULL) ||
	    avro_value_set_string_len(&f, s.ptr, s.len + 1))
		die(name);
}

static void set_opt(avro_value_t *rec, const char *name, struct cw_str s)
{
	avro_value_t f, b;

	if (avro_value_get_by_name(rec, name, &f, NULL) ||
	    avro_value_set_branch(&f, s.ptr ? 1 : 0, &b) ||
	    (s.ptr ? avro_value_set_string_len(&b, s.ptr, s.len + 1)
		   : avro_value_set_null(&b)))
		die(name);
}

static void fill(avro_value_t *v, const struct cw_event *ev)
{
	avro_value_t f;

	set_str(v, "event_id", ev->event_id);
	avro_value_get_by_name(v, "event_type", &f, NULL);
	avro_value_set_enum(&f, (int)ev->type);
	avro_value_get_by_name(v, "event_time", &f, NULL);
	avro_value_set_long(&f, ev->event_time_ms);
	set_str(v, "user_id", ev->user_id);
	set_opt(v, "product_id", ev->product_id);
	avro_value_get_by_name(v, "quantity", &f, NULL);
	avro_value_set_int(&f, ev->quantity);
	avro_value_get_by_name(v, "unit_price_cents", &f, NULL);
	avro_value_set_long(&f, ev->unit_price_cents);
	set_str(v, "currency", ev->currency);
	set_opt(v, "reason", ev->reason);
}

static void report(const char *what, double ns, long n, double base)
{
	printf("%-34s %8.1f ns/event", what, ns / (double)n);
	if (base > 0)
		printf("   %5.1fx ours", ns / base);
	printf("\n");
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000000;
	uint8_t buf[512], abuf[512];
	struct cw_event ev, out;
	avro_schema_t schema;
	avro_value_iface_t *iface;
	avro_value_t val;
	avro_writer_t w;
	avro_reader_t r;
	double t, enc, dec, a_setw, a_w, a_r, s_fast, s_res;
	struct cw_schema_set *fast_set = NULL, *res_set = NULL;
	ssize_t len = 0;
	int64_t alen;

	if (n <= 0)
		n = 1;
	cw_event_init(&ev);
	ev.event_id = cw_str_c("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b");
	ev.type = CW_EVENT_CART_ADD;
	ev.event_time_ms = 1700000000123;
	ev.user_id = cw_str_c("user-0012345");
	ev.product_id = cw_str_c("sku-000987");
	ev.quantity = 2;
	ev.unit_price_cents = 1999;

	/* ours */
	t = now_ns();
	for (long i = 0; i < n; i++) {
		ev.event_time_ms++;
		len = cw_event_encode(&ev, buf, sizeof(buf));
		sink += (uint64_t)len + buf[len - 1];
	}
	enc = now_ns() - t;
	t = now_ns();
	for (long i = 0; i < n; i++) {
		if (cw_event_decode(buf, (size_t)len, &out, NULL, 0))
			abort();
		sink += (uint64_t)out.event_time_ms + out.user_id.len;
	}
	dec = now_ns() - t;

	/* cw_schema_decode: today's fingerprint (the processor's path), and
	 * the same bytes forced through avro-c resolution. */
	if (cw_schema_set_new(NULL, false, &fast_set, NULL, 0) ||
	    cw_schema_set_add_history(fast_set, NULL, 0) ||
	    cw_schema_set_new(NULL, true, &res_set, NULL, 0) ||
	    cw_schema_set_add_history(res_set, NULL, 0))
		die("schema set");
	t = now_ns();
	for (long i = 0; i < n; i++) {
		if (cw_schema_decode(fast_set, buf, (size_t)len, &out, NULL, 0))
			abort();
		sink += (uint64_t)out.event_time_ms + out.user_id.len;
	}
	s_fast = now_ns() - t;
	t = now_ns();
	for (long i = 0; i < n / 10 + 1; i++) {
		if (cw_schema_decode(res_set, buf, (size_t)len, &out, NULL, 0))
			abort();
		sink += (uint64_t)out.event_time_ms + out.user_id.len;
	}
	s_res = (now_ns() - t) * (double)n / (double)(n / 10 + 1);

	/* avro-c generic */
	if (avro_schema_from_json_length(cw_event_schema_pcf,
					 strlen(cw_event_schema_pcf), &schema))
		die("schema");
	iface = avro_generic_class_from_schema(schema);
	if (!iface || avro_generic_value_new(iface, &val))
		die("generic value");
	w = avro_writer_memory((char *)abuf + CW_AVRO_FRAME_HEADER,
			       sizeof(abuf) - CW_AVRO_FRAME_HEADER);
	cw_avro_frame_write(abuf, cw_event_fingerprint);
	t = now_ns();
	for (long i = 0; i < n; i++) {
		ev.event_time_ms++;
		avro_writer_reset(w);
		fill(&val, &ev);
		if (avro_value_write(w, &val))
			die("write");
		sink += (uint64_t)avro_writer_tell(w);
	}
	a_setw = now_ns() - t;
	t = now_ns();
	for (long i = 0; i < n; i++) {
		avro_writer_reset(w);
		if (avro_value_write(w, &val))
			die("write");
		sink += (uint64_t)avro_writer_tell(w);
	}
	a_w = now_ns() - t;
	alen = avro_writer_tell(w);
	/* Same bytes as ours for the last event? */
	fill(&val, &ev);
	len = cw_event_encode(&ev, buf, sizeof(buf));
	avro_writer_reset(w);
	avro_value_write(w, &val);
	alen = avro_writer_tell(w);
	if (alen + CW_AVRO_FRAME_HEADER != len ||
	    memcmp(abuf, buf, (size_t)len))
		fprintf(stderr, "bench-codec: warning: encodings differ\n");

	r = avro_reader_memory((const char *)abuf + CW_AVRO_FRAME_HEADER, alen);
	t = now_ns();
	for (long i = 0; i < n; i++) {
		avro_reader_memory_set_source(
			r, (const char *)abuf + CW_AVRO_FRAME_HEADER, alen);
		if (avro_value_read(r, &val))
			die("read");
		sink += 1;
	}
	a_r = now_ns() - t;

	printf("bench-codec: %ld events of %zd bytes (framed)\n", n, len);
	report("cw_event_encode", enc, n, 0);
	report("avro-c set fields + value_write", a_setw, n, enc);
	report("avro-c value_write (pre-filled)", a_w, n, enc);
	report("cw_event_decode", dec, n, 0);
	report("avro-c value_read (reused value)", a_r, n, dec);
	report("cw_schema_decode, today's schema", s_fast, n, dec);
	report("cw_schema_decode, resolved (n/10)", s_res, n, dec);
	cw_schema_set_free(fast_set);
	cw_schema_set_free(res_set);

	avro_reader_free(r);
	avro_writer_free(w);
	avro_value_decref(&val);
	avro_value_iface_decref(iface);
	avro_schema_decref(schema);
	return 0;
}
