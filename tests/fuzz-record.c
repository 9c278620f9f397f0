/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-record — libFuzzer target for the processor's whole record path,
 * from the bytes of a Kafka record to the cart update, as daemon.c's
 * handle_message() runs it: cw_event_decode(), cw_event_validate(), the
 * key rule, partition_check_event() (clock skew, too old, duplicates,
 * cart size and value) and partition_process(); plus watermark advances
 * and flushes whose resume state is restored into a fresh partition that
 * must then hold the same users, sessions and carts.
 *
 * The input is a list of steps, each one byte of opcode, two of length
 * and that many bytes: opcode % 4 == 0 a record keyed by its own user_id,
 * 1 a record whose key is the first half of the bytes, 2 a watermark
 * advance by the bytes read as a number of seconds, 3 a flush and restore.
 * Records get the CartEvent single-object header so the fuzzer spends its
 * time in bodies. Aborts when a step fails in a way a hostile record must
 * never cause (partition_process() refusing an accepted event, counters
 * out of step with the users, state that does not restore).
 *
 * Not built by default. Build and run (clang with libFuzzer):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Iprocessor \
 *         tests/fuzz-record.c common/cw_avro.c common/cw_event.c \
 *         common/cw_abandonment.c common/cw_validate.c processor/batch.c \
 *         processor/cart.c processor/intern.c processor/pack.c \
 *         processor/partition.c processor/session.c -o fuzz-record
 *   ./fuzz-record -max_total_time=600 corpus/
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_avro.h"
#include "cw_event.h"
#include "cw_validate.h"
#include "partition.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MIN  (60 * 1000LL)
#define WALL 1795910400000LL /* 2026-11-29: the wall clock of the run */

static const struct session_params params = {
	.session_timeout_ms = 30 * MIN,
	.allowed_lateness_ms = 5000,
	.cart_ttl_ms = 7 * 24 * 60 * MIN,
	.recovery_window_ms = 24 * 60 * MIN,
	.idle_timeout_ms = 5000,
	.time_scale = 1,
	.max_ahead_ms = 15 * MIN,
	.max_cart_items = 8,
};

#define FAIL(...)                                                              \
	do {                                                                   \
		fprintf(stderr, "fuzz-record: " __VA_ARGS__);                  \
		fputc('\n', stderr);                                           \
		abort();                                                       \
	} while (0)

/* The counters must agree with the users they count. */
static void check_counts(const struct partition *pt)
{
	uint32_t users = 0, sessions = 0, carts = 0;

	for (uint32_t i = 0; i < pt->n_slots; i++) {
		const struct user *u = pt->slots[i];
		if (!u)
			continue;
		users++;
		sessions += !!(u->flags & USER_SESSION_OPEN);
		carts += u->cart.n > 0;
		if (u->cart.n > params.max_cart_items)
			FAIL("a cart holds %u products", u->cart.n);
		int32_t count;
		int64_t value;
		cart_totals(&u->cart, &count, &value);
		if (value < 0 || value == INT64_MAX)
			FAIL("a cart's value is %lld", (long long)value);
	}
	if (users != pt->n_users || sessions != pt->n_open_sessions ||
	    carts != pt->n_open_carts)
		FAIL("counters %u/%u/%u, users say %u/%u/%u", pt->n_users,
		     pt->n_open_sessions, pt->n_open_carts, users, sessions,
		     carts);
}

/* Flush @pt and restore its state chunk into a fresh partition that must
 * hold the same live users; the fresh one replaces @pt. */
static struct partition *flush_restore(struct partition *pt, struct intern *in)
{
	struct partition *back = partition_new(0, &params, in);
	const uint8_t *key, *val;
	size_t klen, vlen;
	int r;

	if (!back || partition_prepare_flush(pt) < 0)
		FAIL("out of memory");
	/* A full snapshot is needed: deltas alone do not rebuild. */
	if (!pt->sealed->state_full) {
		partition_flush_done(pt);
		pt->state_log_bytes = UINT64_MAX / 4; /* force a snapshot */
		if (partition_prepare_flush(pt) < 0)
			FAIL("out of memory");
	}
	struct pack_reader rd =
		pack_reader_init(pt->sealed->state.p, pt->sealed->state.len);
	while ((r = pack_next(&rd, &key, &klen, &val, &vlen)) > 0) {
		char id[CW_EVENT_MAX_ID_LEN + 1];
		if (klen > CW_EVENT_MAX_ID_LEN)
			FAIL("a state key of %zu bytes", klen);
		memcpy(id, key, klen);
		id[klen] = '\0';
		if (partition_restore_user(back, id, val, vlen) < 0)
			FAIL("user state does not restore");
	}
	if (r < 0)
		FAIL("state chunk does not read back");
	back->watermark_ms = pt->sealed->watermark_ms;
	back->max_event_ms = pt->max_event_ms;
	back->next_offset = pt->next_offset;
	if (back->n_users != pt->n_users ||
	    back->n_open_sessions != pt->n_open_sessions ||
	    back->n_open_carts != pt->n_open_carts)
		FAIL("restored %u/%u/%u, flushed %u/%u/%u", back->n_users,
		     back->n_open_sessions, back->n_open_carts, pt->n_users,
		     pt->n_open_sessions, pt->n_open_carts);
	partition_destroy(pt);
	return back;
}

static void record(struct partition *pt, const uint8_t *body, size_t len,
		   const uint8_t *key, size_t key_len, bool own_key,
		   int64_t offset)
{
	uint8_t *buf = malloc(CW_AVRO_FRAME_HEADER + len);
	struct cw_event ev;
	char why[256];
	int r;

	if (!buf)
		FAIL("out of memory");
	cw_avro_frame_write(buf, cw_event_fingerprint);
	memcpy(buf + CW_AVRO_FRAME_HEADER, body, len);
	if (cw_event_decode(buf, CW_AVRO_FRAME_HEADER + len, &ev, why,
			    sizeof(why)) < 0 ||
	    cw_event_validate(&ev, why, sizeof(why)) < 0)
		goto out;
	if (own_key) {
		key = (const uint8_t *)ev.user_id.ptr;
		key_len = ev.user_id.len;
	}
	if (cw_event_key_mismatch(key, key_len, &ev))
		goto out;
	r = partition_check_event(pt, &ev, WALL, why, sizeof(why));
	if (r == -ERANGE || r == -E2BIG || r == -EOVERFLOW || r == -EALREADY)
		goto out;
	if (r != 0)
		FAIL("partition_check_event: %d", r);
	if ((r = partition_process(pt, &ev, offset)) != 0)
		FAIL("partition_process refused a checked event: %d", r);
out:
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct intern *in = intern_new();
	struct partition *pt = partition_new(0, &params, in);
	int64_t offset = 0;

	if (!in || !pt)
		FAIL("out of memory");
	while (size >= 3) {
		uint8_t op = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		switch (op % 4) {
		case 0:
			record(pt, data, len, NULL, 0, true, offset++);
			break;
		case 1:
			record(pt, data + len / 2, len - len / 2, data, len / 2,
			       false, offset++);
			break;
		case 2: {
			int64_t s = 0;
			for (size_t i = 0; i < len && i < 4; i++)
				s = s << 8 | data[i];
			etime_t wm = pt->watermark_ms == ETIME_NONE
					     ? WALL
					     : pt->watermark_ms;
			if (partition_advance_watermark(pt, wm + s * 1000) < 0)
				FAIL("out of memory");
			break;
		}
		case 3:
			pt = flush_restore(pt, in);
			break;
		}
		check_counts(pt);
		data += len;
		size -= len;
	}
	partition_destroy(pt);
	intern_destroy(in);
	return 0;
}
