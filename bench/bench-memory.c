/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-memory — bytes per open cart with a million open carts.
 *
 *   bench-memory [USERS [PARTITIONS]]      (default 1000000 users, 4)
 *
 * USERS shoppers, spread over PARTITIONS partitions (user i in partition
 * i % PARTITIONS), each send 1-3 cart_add events for distinct products of
 * a 250-id catalogue; ids look like "user_123456"; event times are spread
 * over one hour, in order, so the watermark moves as in production. The
 * session timeout is set to 2 h so that every session stays open (a closed
 * session would put an abandonment in the output batch, which is flushed
 * output, not per-cart state). The events go through partition_process(),
 * the daemon's own path.
 *
 * Memory is then measured two ways, against a baseline taken after the
 * partitions were created and the catalogue interned:
 *   (a) partition_memory(): the processor's own accounting of users,
 *       carts, hash table, timer heap and dirty list;
 *   (b) glibc: mallinfo2() bytes in use (uordblks + hblkhd: malloc's
 *       rounding and chunk headers included) and the resident set size
 *       (/proc/self/statm: what the machine pays, fragmentation and the
 *       per-minute aggregates included).
 * Three points: right after the events (every user dirty, aggregates
 * pending), after one flush cycle (partition_prepare_flush() +
 * partition_flush_done(): the resume states were encoded into a batch that
 * is kept for reuse) and after a second cycle with nothing to write.
 * A breakdown by component follows. Target: <= 256 bytes per open cart.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "partition.h"

#define CATALOGUE 250
#define T0_MS	  1783468800000LL /* 2026-07-08T00:00:00Z */
#define HOUR_MS	  3600000LL
#define TARGET	  256.0

struct mem {
	size_t malloc_bytes; /* uordblks + hblkhd */
	size_t rss;
};

static struct mem mem_now(void)
{
	struct mallinfo2 mi = mallinfo2();
	struct mem m = {mi.uordblks + mi.hblkhd, 0};
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) == 2)
			m.rss = resident * (size_t)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	return m;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: deterministic, no libc state. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t sum_memory(struct partition **pts, int np)
{
	size_t n = 0;
	for (int i = 0; i < np; i++)
		n += partition_memory(pts[i]);
	return n;
}

static uint64_t sum_open_carts(struct partition **pts, int np)
{
	uint64_t n = 0;
	for (int i = 0; i < np; i++)
		n += pts[i]->n_open_carts;
	return n;
}

static void report(const char *label, struct partition **pts, int np,
		   struct mem base)
{
	struct mem m = mem_now();
	uint64_t carts = sum_open_carts(pts, np);
	double acc = (double)sum_memory(pts, np) / (double)carts;
	double mal = ((double)m.malloc_bytes - (double)base.malloc_bytes) /
		     (double)carts;
	double rss = ((double)m.rss - (double)base.rss) / (double)carts;

	printf("RESULT %s open_carts=%" PRIu64
	       " partition_memory=%.1f B/cart malloc_in_use=%.1f B/cart "
	       "rss=%.1f B/cart target=%.0f %s\n",
	       label, carts, acc, mal, rss, TARGET,
	       mal <= TARGET && rss <= TARGET ? "met" : "MISSED");
}

int main(int argc, char **argv)
{
	long users = argc > 1 ? atol(argv[1]) : 1000000;
	int np = argc > 2 ? atoi(argv[2]) : 4;
	struct session_params sp = {
		.session_timeout_ms = 2 * HOUR_MS, /* keep every session open */
		.allowed_lateness_ms = 5000,
		.cart_ttl_ms = 7 * 24 * HOUR_MS,
		.recovery_window_ms = 7 * 24 * HOUR_MS,
		.idle_timeout_ms = HOUR_MS,
		.time_scale = 1,
	};
	char products[CATALOGUE][16], uid[32], eid[40];
	struct partition **pts;
	struct intern *in;
	struct mem base;
	int err = 0;
	uint64_t events = 0, items = 0;
	double t0;

	if (users <= 0 || np <= 0) {
		fprintf(stderr, "usage: bench-memory [USERS [PARTITIONS]]\n");
		return 2;
	}
	in = intern_new();
	pts = calloc((size_t)np, sizeof(*pts));
	if (!in || !pts)
		return 1;
	for (int i = 0; i < CATALOGUE; i++) {
		snprintf(products[i], sizeof(products[i]), "SKU-%05d",
			 1000 + i * 37);
		intern_id(in, cw_str_c(products[i]), &err);
	}
	intern_id(in, cw_str_c("USD"), &err);
	for (int i = 0; i < np && !err; i++)
		if (!(pts[i] = partition_new(i, &sp, in)))
			err = -ENOMEM;
	if (err) {
		fprintf(stderr, "bench-memory: out of memory\n");
		return 1;
	}
	base = mem_now();

	t0 = now_s();
	for (long u = 0; u < users; u++) {
		struct partition *pt = pts[u % np];
		etime_t t = T0_MS + (etime_t)((double)u * HOUR_MS / users);
		int n = 1 + (int)(rnd() % 3);
		uint32_t first = (uint32_t)(rnd() % CATALOGUE);

		snprintf(uid, sizeof(uid), "user_%06ld", u);
		for (int k = 0; k < n; k++) {
			/* Distinct products: consecutive catalogue slots. */
			const char *pid =
				products[(first + (uint32_t)k * 7) % CATALOGUE];
			struct cw_event ev = {
				.event_id = {eid, 36},
				.type = CW_EVENT_CART_ADD,
				.event_time_ms = t + k * 1000,
				.user_id = {uid, strlen(uid)},
				.product_id = cw_str_c(pid),
				.quantity = 1 + (int32_t)(rnd() % 2),
				.unit_price_cents =
					499 + (int64_t)(rnd() % 20000),
				.currency = cw_str_c("USD"),
				.reason = CW_STR_NULL,
			};
			snprintf(eid, sizeof(eid),
				 "00000000-0000-4000-8000-%012" PRIu64, events);
			int r = partition_process(pt, &ev,
						  (int64_t)events / np);
			if (r < 0) {
				fprintf(stderr, "partition_process: %s\n",
					strerror(-r));
				return 1;
			}
			events++;
			items++;
		}
	}
	printf("built %ld users, %" PRIu64 " cart_add events, %" PRIu64
	       " open carts in %d partitions in %.2f s (%.0f events/s "
	       "through partition_process)\n",
	       users, events, sum_open_carts(pts, np), np, now_s() - t0,
	       (double)events / (now_s() - t0));

	report("after-events", pts, np, base);
	for (int i = 0; i < np; i++) {
		if (partition_prepare_flush(pts[i]) < 0)
			return 1;
		partition_flush_done(pts[i]);
	}
	report("after-flush", pts, np, base);
	for (int i = 0; i < np; i++) {
		if (partition_prepare_flush(pts[i]) < 0)
			return 1;
		partition_flush_done(pts[i]);
	}
	report("steady", pts, np, base);

	/* Breakdown, per open cart. */
	uint64_t carts = sum_open_carts(pts, np), spilled = 0, n_users = 0;
	size_t slots = 0, heap = 0, dirty = 0, user_req = 0, user_usable = 0,
	       spill_usable = 0;
	for (int i = 0; i < np; i++) {
		struct partition *pt = pts[i];
		slots += (size_t)pt->n_slots * sizeof(*pt->slots);
		heap += (size_t)pt->heap_cap * sizeof(*pt->heap);
		dirty += (size_t)pt->dirty_cap * sizeof(*pt->dirty);
		n_users += pt->n_users;
		for (uint32_t j = 0; j < pt->n_slots; j++) {
			struct user *u = pt->slots[j];
			if (!u)
				continue;
			user_req += sizeof(*u) + u->id_len + 1;
			user_usable += malloc_usable_size(u);
			if (u->cart.cap) {
				spilled++;
				spill_usable +=
					malloc_usable_size(u->cart.spill);
			}
		}
	}
	double c = (double)carts;
	printf("BREAKDOWN per open cart (%" PRIu64 " carts, %" PRIu64
	       " users, %.0f%% of carts spilled past %d inline items):\n",
	       carts, n_users, 100.0 * (double)spilled / c, CART_INLINE);
	printf("  struct user          %5.1f B  (sizeof %zu + id %.1f; "
	       "malloc usable %.1f, + 8 B chunk header = %.1f)\n",
	       (double)user_req / c, sizeof(struct user),
	       (double)user_req / c - (double)sizeof(struct user),
	       (double)user_usable / c, (double)user_usable / c + 8);
	printf("  cart spill arrays    %5.1f B  (%zu B requested each, "
	       "usable %.0f + 8 header)\n",
	       (double)spill_usable / c, 8 * sizeof(struct cart_item),
	       spilled ? (double)spill_usable / (double)spilled : 0.0);
	printf("  hash slots           %5.1f B  (load %.2f)\n",
	       (double)slots / c,
	       (double)n_users / ((double)slots / sizeof(void *)));
	printf("  timer heap           %5.1f B\n", (double)heap / c);
	printf("  dirty list           %5.1f B  (capacity kept after a "
	       "flush)\n",
	       (double)dirty / c);
	printf("  items per cart       %5.2f\n", (double)items / c);

	for (int i = 0; i < np; i++)
		partition_destroy(pts[i]);
	free(pts);
	intern_destroy(in);
	return 0;
}
