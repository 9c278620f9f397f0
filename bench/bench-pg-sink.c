/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-pg-sink — how fast pg_sink_flush() writes a large flush: batches
 * over 4 partitions holding 10k abandonments (3 items each, with a 120-byte
 * outbox payload), 10k conversions, 2k product/minute increments, 100k
 * user states (96 bytes, packed into one state chunk per partition) and,
 * from the second round on, 5k recoveries of the previous round's
 * abandonments (every other one), several rounds (the same users: the
 * first round's chunks are full snapshots, the later ones deltas). Then
 * pg_sink_load_users() of all the chunks.
 * Needs a PostgreSQL in CARTWATCH_PG (run through tests/run-with-servers
 * --pg, as `meson test --benchmark pg-sink` does).
 *
 *   bench-pg-sink [ROUNDS]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "batch.h"
#include "pg_sink.h"

#define PARTITIONS   4
#define ABANDONMENTS 10000
#define USERS	     100000
#define RECOVERIES   5000
#define STATE_LEN    96

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *dup(struct batch *b, const char *s)
{
	return batch_strdup(b, s, strlen(s));
}

static int fill(struct batch **bs, int round)
{
	static const uint8_t payload[120] = {0xc3, 0x01};
	uint8_t state[STATE_LEN];
	char user[32], product[16];

	for (int i = 0; i < ABANDONMENTS; i++) {
		struct batch *b = bs[i % PARTITIONS];
		struct batch_abandonment *ab = batch_add_abandonment(b);
		struct batch_conversion *cv = batch_add_conversion(b);

		if (!ab || !cv)
			return -ENOMEM;
		snprintf(user, sizeof(user), "user-%d", i * 7 % USERS);
		snprintf(ab->abandonment_id, sizeof(ab->abandonment_id),
			 "00000000-0000-4000-8%03u-%012u",
			 (unsigned)round % 1000u, (unsigned)i);
		ab->user_id = dup(b, user);
		ab->session_start_ms = 1783468800000 + i;
		ab->last_activity_ms = ab->session_start_ms + 60000;
		ab->abandoned_at_ms = ab->last_activity_ms + 1800000;
		ab->item_count = 3;
		ab->cart_value_cents = 4500;
		ab->currency = dup(b, "USD");
		ab->last_remove_reason = i % 3 ? NULL : dup(b, "too expensive");
		ab->items = batch_memdup(b, (struct batch_item[3]){{0}},
					 3 * sizeof(struct batch_item));
		if (!ab->items)
			return -ENOMEM;
		for (int k = 0; k < 3; k++) {
			snprintf(product, sizeof(product), "sku-%04d",
				 (i + k) % 500);
			ab->items[k].product_id = dup(b, product);
			ab->items[k].quantity = 1;
			ab->items[k].unit_price_cents = 1500;
		}
		ab->n_items = 3;
		ab->avro = payload;
		ab->avro_len = sizeof(payload);

		snprintf(cv->conversion_id, sizeof(cv->conversion_id),
			 "10000000-0000-4000-8%03u-%012u",
			 (unsigned)round % 1000u, (unsigned)i);
		cv->user_id = ab->user_id;
		cv->event_id = dup(b, cv->conversion_id);
		cv->checkout_at_ms = ab->abandoned_at_ms + 1;
		cv->item_count = 2;
		cv->cart_value_cents = 3000;
		cv->currency = ab->currency;
	}
	for (int i = 0; i < 2000; i++) {
		struct batch *b = bs[i % PARTITIONS];
		struct batch_product_stat *st = batch_add_product_stat(b);
		if (!st)
			return -ENOMEM;
		snprintf(product, sizeof(product), "sku-%04d", i % 500);
		st->bucket_ms = 1783468800000 + (int64_t)(i / 500) * 60000;
		st->product_id = dup(b, product);
		st->added_qty = 3;
		st->abandoned_qty = 1;
	}
	for (int i = 0; round > 0 && i < RECOVERIES; i++) {
		struct batch *b = bs[i % PARTITIONS];
		struct batch_recovery *rc = batch_add_recovery(b);
		if (!rc)
			return -ENOMEM;
		snprintf(rc->abandonment_id, sizeof(rc->abandonment_id),
			 "00000000-0000-4000-8%03u-%012u",
			 (unsigned)(round - 1) % 1000u, (unsigned)i * 2);
		rc->recovered_at_ms = 1783468800000 + i * 2 + 1861001;
		rc->recovered_value_cents = 3000;
	}
	memset(state, 0xab, sizeof(state));
	for (int i = 0; i < USERS; i++) {
		struct batch *b = bs[i % PARTITIONS];
		int n = snprintf(user, sizeof(user), "user-%d", i);

		state[0] = (uint8_t)round;
		if (pack_put(&b->state, user, (size_t)n, state, sizeof(state)) <
		    0)
			return -ENOMEM;
	}
	for (int p = 0; p < PARTITIONS; p++)
		bs[p]->state_full = round == 0;
	for (int p = 0; p < PARTITIONS; p++)
		bs[p]->next_offset = (int64_t)(round + 1) * 1000000;
	return 0;
}

static int count_state(void *opaque, const char *user_id, const uint8_t *state,
		       size_t len)
{
	size_t *n = opaque;
	(void)user_id, (void)state;
	*n += len == STATE_LEN;
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	struct batch *bs[PARTITIONS] = {0};
	struct pg_sink *ps;
	char errstr[256];
	double best = 1e9, total = 0;
	size_t rows = 0, loaded = 0;
	int r = 1;

	ps = pg_sink_new(getenv("CARTWATCH_PG"), "cart-events", errstr,
			 sizeof(errstr));
	if (!ps) {
		fprintf(stderr, "bench-pg-sink: %s\n", errstr);
		return 1;
	}
	if (pg_sink_migrate(ps) < 0)
		goto fail;
	for (int p = 0; p < PARTITIONS; p++) {
		int64_t off, wm;
		bs[p] = batch_new(p);
		if (!bs[p])
			goto fail;
		if (pg_sink_claim_partition(ps, p, "bench", &bs[p]->generation,
					    &off, &wm) < 0)
			goto fail;
	}

	for (int round = 0; round < rounds; round++) {
		double t0, dt;

		if (fill(bs, round) < 0)
			goto fail;
		rows = 0;
		for (int p = 0; p < PARTITIONS; p++)
			rows += batch_records(bs[p]);
		t0 = now_s();
		if (pg_sink_flush(ps, bs, PARTITIONS, NULL) < 0)
			goto fail;
		dt = now_s() - t0;
		total += dt;
		if (dt < best)
			best = dt;
		printf("round %d: %zu records in %.3f s (%.0f records/s)\n",
		       round, rows, dt, (double)rows / dt);
		for (int p = 0; p < PARTITIONS; p++)
			batch_reset(bs[p]);
	}
	printf("flush: %zu records (10k abandonments + 30k items, 10k "
	       "conversions, 2k increments, 100k user states, 5k recoveries "
	       "from round 1): best %.3f s, "
	       "mean %.3f s, best %.0f records/s\n",
	       rows, best, total / rounds, (double)rows / best);

	{
		double t0 = now_s(), dt;
		for (int p = 0; p < PARTITIONS; p++)
			if (pg_sink_load_users(ps, p, count_state, NULL,
					       &loaded, NULL) < 0)
				goto fail;
		dt = now_s() - t0;
		printf("load_users: %zu state records in %.3f s (%.0f "
		       "records/s)\n",
		       loaded, dt, (double)loaded / dt);
	}
	r = loaded == (size_t)rounds * USERS ? 0 : 1;
	if (rounds > 1) {
		/* Every recovery must have landed. */
		PGconn *c = PQconnectdb(getenv("CARTWATCH_PG"));
		PGresult *res = PQexec(c, "SELECT count(*) FROM "
					  "cart_abandonments WHERE "
					  "recovered_at IS NOT NULL");
		long got = PQresultStatus(res) == PGRES_TUPLES_OK
				   ? atol(PQgetvalue(res, 0, 0))
				   : -1;
		printf("recovered: %ld rows\n", got);
		if (got != (long)(rounds - 1) * RECOVERIES)
			r = 1;
		PQclear(res);
		PQfinish(c);
	}
	goto out;
fail:
	fprintf(stderr, "bench-pg-sink: %s\n", pg_sink_last_error(ps));
out:
	for (int p = 0; p < PARTITIONS; p++)
		batch_destroy(bs[p]);
	pg_sink_destroy(ps);
	return r;
}
