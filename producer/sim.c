/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim — shopper state machines on an event-time heap. See sim.h.
 *
 * The tuning constants below are the model; tests/test-producer-sim.c
 * checks the funnel they produce (abandonment 55-85%, reasons, quantities,
 * recovered carts).
 */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prng.h"
#include "traffic.h"

#define SECOND_MS 1000.0
#define MINUTE_MS 60000.0
#define HOUR_MS	  3600000.0

#define MAX_LINES 4

/* Order roughly as in Baymard Institute's checkout surveys. */
const char *const sim_reasons[SIM_REASON_COUNT] = {
	"extra costs too high",	  "just browsing",     "account required",
	"did not trust the site", "delivery too slow", "checkout too long",
	"could not see total",	  "site errors",       "returns policy",
	"payment methods",	  "card declined",
};
static const double reason_weights[SIM_REASON_COUNT] = {
	48, 30, 26, 25, 23, 22, 21, 17, 15, 13, 4,
};
static const double items_weights[MAX_LINES] = {45, 30, 15, 10}; /* 1..4 */
static const double qty_weights[4] = {70, 18, 7, 5};		 /* 1..4 */

enum shopper_state {
	SHOPPER_IDLE,	  /* next action: start a visit */
	SHOPPER_SHOPPING, /* adds, then removes, then the decision */
	SHOPPER_CHECKOUT, /* next action: checkout_complete */
};

struct cart_line {
	uint16_t product;
	uint16_t qty;
	uint32_t price_cents;
};

struct shopper {
	uint8_t state;
	uint8_t adds_left;
	uint8_t removes_left;
	uint8_t nlines;
	uint8_t removed;   /* removed something this visit */
	uint8_t recovered; /* the pending checkout is a recovery */
	struct cart_line lines[MAX_LINES];
};

struct heap_entry {
	int64_t at; /* simulated offset of the shopper's next action */
	uint32_t shopper;
};

struct sim {
	const struct catalog *cat;
	struct sim_config sc;
	struct prng pr;
	struct sim_stats st;
	double reason_total, items_total, qty_total;
	struct shopper *shoppers;
	struct heap_entry *heap; /* sc.users entries, min-heap on (at, id) */
	void *heap_mem;		 /* heap's allocation */
	char event_id[PRNG_UUID_LEN];
	char user_id[24];
	struct traffic tr; /* large (the curve's integral): last */
};

static inline int entry_less(const struct heap_entry *a,
			     const struct heap_entry *b)
{
	return a->at < b->at || (a->at == b->at && a->shopper < b->shopper);
}

/* A 4-ary heap: half the depth of a binary one, and the four children of
 * a node share one cache line (see sim_new()), which matters once the
 * population no longer fits in the cache. */
static void sift_down(struct heap_entry *heap, size_t n, size_t i)
{
	struct heap_entry e = heap[i];

	for (;;) {
		size_t c = 4 * i + 1, best, end;

		if (c >= n)
			break;
		best = c;
		end = c + 4 < n ? c + 4 : n;
		for (size_t k = c + 1; k < end; k++)
			if (entry_less(&heap[k], &heap[best]))
				best = k;
		if (!entry_less(&heap[best], &e))
			break;
		heap[i] = heap[best];
		i = best;
	}
	heap[i] = e;
}

/* When a shopper who is free from @from_ms visits next: at least an hour
 * later (so a new visit never merges with the last one's session), then
 * following the traffic curve with a mean gap of six ordinary hours. */
static int64_t next_visit(struct sim *sim, int64_t from_ms, int first)
{
	int64_t earliest = first ? from_ms : from_ms + (int64_t)HOUR_MS;

	return traffic_next_arrival(&sim->tr, earliest,
				    prng_exp(&sim->pr, 6 * HOUR_MS));
}

/* Pause between two clicks of one visit: 8 s plus about a minute, capped
 * well inside the session timeout. */
static int64_t think_gap(struct sim *sim, double mean_ms, double cap_ms)
{
	double gap = 8 * SECOND_MS + prng_exp(&sim->pr, mean_ms);

	return (int64_t)(gap < cap_ms ? gap : cap_ms);
}

/* Write "user_<id>" into sim->user_id; returns the length. */
static size_t format_user(struct sim *sim, uint32_t id)
{
	char digits[10];
	size_t n = 0, len = 5;

	memcpy(sim->user_id, "user_", 5);
	do {
		digits[n++] = (char)('0' + id % 10);
		id /= 10;
	} while (id);
	while (n)
		sim->user_id[len++] = digits[--n];
	sim->user_id[len] = '\0'; /* not promised, but kind to debuggers */
	return len;
}

/* Probability that a shopper checks out the cart @sp now holds: falls with
 * the cart's value, rises with the discount off list. */
static double checkout_probability(const struct sim *sim,
				   const struct shopper *sp)
{
	double value = 0, list = 0, disc, p;

	for (int i = 0; i < sp->nlines; i++) {
		value += (double)sp->lines[i].qty * sp->lines[i].price_cents;
		list += (double)sp->lines[i].qty *
			(double)catalog_product(sim->cat, sp->lines[i].product)
				->list_cents;
	}
	disc = list > 0 ? 1.0 - value / list : 0;
	p = 0.46 - 0.09 * log2(1.0 + value / 100.0 / 50.0) +
	    0.5 * (disc - 0.3) - (sp->removed ? 0.08 : 0);
	return p < 0.03 ? 0.03 : p > 0.9 ? 0.9 : p;
}

static void do_add(struct sim *sim, struct shopper *sp, int64_t now,
		   struct cw_event *ev, long *product)
{
	const struct catalog_lightning *cl =
		catalog_lightning_at(sim->cat, now);
	size_t p;
	int qty, i;

	if (cl && prng_uniform(&sim->pr) < 0.3)
		p = cl->product; /* the deal everyone is rushing for */
	else
		p = catalog_pick(sim->cat, prng_uniform(&sim->pr));
	qty = 1 + (int)prng_weighted(&sim->pr, qty_weights, 4, sim->qty_total);
	for (i = 0; i < sp->nlines; i++)
		if (sp->lines[i].product == p)
			break;
	if (i == sp->nlines) {
		sp->nlines++;
		sp->lines[i] = (struct cart_line){
			(uint16_t)p, 0,
			(uint32_t)catalog_price_cents(sim->cat, p, now)};
	}
	sp->lines[i].qty = (uint16_t)(sp->lines[i].qty + qty);

	ev->type = CW_EVENT_CART_ADD;
	ev->product_id = cw_str_c(catalog_product(sim->cat, p)->id);
	ev->quantity = qty;
	ev->unit_price_cents = sp->lines[i].price_cents;
	*product = (long)p;
}

static void do_remove(struct sim *sim, struct shopper *sp, struct cw_event *ev,
		      long *product)
{
	int i = (int)prng_below(&sim->pr, sp->nlines);
	struct cart_line *line = &sp->lines[i];
	int qty = 1 + (int)prng_below(&sim->pr, line->qty);
	size_t r = prng_weighted(&sim->pr, reason_weights, SIM_REASON_COUNT,
				 sim->reason_total);

	ev->type = CW_EVENT_CART_REMOVE;
	ev->product_id = cw_str_c(catalog_product(sim->cat, line->product)->id);
	ev->quantity = qty;
	ev->unit_price_cents = line->price_cents;
	ev->reason = cw_str_c(sim_reasons[r]);
	*product = line->product;
	sp->removed = 1;
	line->qty = (uint16_t)(line->qty - qty);
	if (line->qty == 0)
		sp->lines[i] = sp->lines[--sp->nlines];
}

/* The visit's last click is done: check out soon, come back much later
 * and check out (recovered), or leave for good. Returns the offset of the
 * shopper's next action. */
static int64_t decide(struct sim *sim, struct shopper *sp, int64_t now)
{
	if (sp->nlines &&
	    prng_uniform(&sim->pr) < checkout_probability(sim, sp)) {
		sp->state = SHOPPER_CHECKOUT;
		sp->recovered = 0;
		return now + think_gap(sim, 90 * SECOND_MS, 20 * MINUTE_MS);
	}
	if (sp->nlines && prng_uniform(&sim->pr) < 0.12) {
		sp->state = SHOPPER_CHECKOUT;
		sp->recovered = 1;
		return now + (int64_t)(35 * MINUTE_MS +
				       prng_exp(&sim->pr, 3 * HOUR_MS));
	}
	sim->st.abandoned++;
	sp->state = SHOPPER_IDLE;
	sp->nlines = 0;
	return next_visit(sim, now, 0);
}

/* Run the action of shopper @id due at @now. Returns 1 if it produced an
 * event, and the offset of the shopper's next action in *@next. */
static int step(struct sim *sim, uint32_t id, int64_t now, struct cw_event *ev,
		long *product, int64_t *next)
{
	struct shopper *sp = &sim->shoppers[id];

	switch (sp->state) {
	case SHOPPER_IDLE:
		sp->state = SHOPPER_SHOPPING;
		sp->adds_left =
			(uint8_t)(1 + prng_weighted(&sim->pr, items_weights,
						    MAX_LINES,
						    sim->items_total));
		{
			double u = prng_uniform(&sim->pr);

			sp->removes_left = u < 0.07 ? 2 : u < 0.30 ? 1 : 0;
		}
		if (sp->removes_left > sp->adds_left)
			sp->removes_left = sp->adds_left;
		sp->nlines = 0;
		sp->removed = 0;
		sim->st.sessions++;
		/* A visit starts with its first add. */
		__attribute__((fallthrough));
	case SHOPPER_SHOPPING:
		if (sp->adds_left) {
			sp->adds_left--;
			do_add(sim, sp, now, ev, product);
		} else if (sp->removes_left && sp->nlines) {
			sp->removes_left--;
			do_remove(sim, sp, ev, product);
		} else {
			*next = decide(sim, sp, now);
			return 0;
		}
		if (!sp->adds_left && (!sp->removes_left || !sp->nlines))
			*next = decide(sim, sp, now);
		else
			*next = now +
				think_gap(sim, 50 * SECOND_MS, 15 * MINUTE_MS);
		return 1;
	case SHOPPER_CHECKOUT:
	default:
		ev->type = CW_EVENT_CHECKOUT_COMPLETE;
		*product = -1;
		if (sp->recovered)
			sim->st.recovered++;
		else
			sim->st.checkouts++;
		sp->state = SHOPPER_IDLE;
		sp->nlines = 0;
		*next = next_visit(sim, now, 0);
		return 1;
	}
}

struct sim *sim_new(const struct catalog *cat, const struct sim_config *sc,
		    char *errstr, size_t errstr_size)
{
	struct sim *sim;

	if (sc->users < 1 || sc->duration_ms < 0) {
		snprintf(errstr, errstr_size,
			 "simulation needs at least one user and a duration "
			 ">= 0");
		return NULL;
	}
	sim = calloc(1, sizeof(*sim));
	if (!sim)
		goto oom;
	sim->cat = cat;
	sim->sc = *sc;
	prng_seed(&sim->pr, sc->seed);
	traffic_init(&sim->tr, cat);
	for (int i = 0; i < SIM_REASON_COUNT; i++)
		sim->reason_total += reason_weights[i];
	for (int i = 0; i < MAX_LINES; i++)
		sim->items_total += items_weights[i];
	for (int i = 0; i < 4; i++)
		sim->qty_total += qty_weights[i];
	sim->shoppers = calloc(sc->users, sizeof(*sim->shoppers));
	/* Children 4i+1..4i+4 of 16-byte entries: start the heap 3 entries
	 * into a 64-byte aligned block so each group fills one line. */
	sim->heap_mem = aligned_alloc(64, ((size_t)sc->users + 3 + 3) / 4 * 64);
	if (!sim->shoppers || !sim->heap_mem)
		goto oom;
	sim->heap = (struct heap_entry *)sim->heap_mem + 3;
	for (uint32_t i = 0; i < sc->users; i++)
		sim->heap[i] = (struct heap_entry){next_visit(sim, 0, 1), i};
	for (size_t i = sc->users / 4 + 1; i-- > 0;)
		sift_down(sim->heap, sc->users, i);
	return sim;
oom:
	snprintf(errstr, errstr_size, "out of memory for %u shoppers",
		 sc->users);
	sim_destroy(sim);
	return NULL;
}

void sim_destroy(struct sim *sim)
{
	if (!sim)
		return;
	free(sim->heap_mem);
	free(sim->shoppers);
	free(sim);
}

int sim_next(struct sim *sim, struct cw_event *ev, long *product)
{
	for (;;) {
		struct heap_entry *top = &sim->heap[0];
		int64_t now = top->at, next;
		uint32_t id = top->shopper;
		int produced;

		if (sim->sc.duration_ms && now >= sim->sc.duration_ms)
			return 0;
		cw_event_init(ev);
		produced = step(sim, id, now, ev, product, &next);
		top->at = next;
		sift_down(sim->heap, sim->sc.users, 0);
		/* The next shopper is known now: start loading its state
		 * while the caller sends this event (a cache miss otherwise,
		 * with a large population). */
		__builtin_prefetch(&sim->shoppers[sim->heap[0].shopper], 1);
		if (!produced)
			continue;
		prng_uuid(&sim->pr, sim->event_id);
		ev->event_id = (struct cw_str){sim->event_id, PRNG_UUID_LEN};
		ev->user_id =
			(struct cw_str){sim->user_id, format_user(sim, id)};
		ev->event_time_ms = sim->sc.start_ms + now;
		return 1;
	}
}

void sim_get_stats(const struct sim *sim, struct sim_stats *st)
{
	*st = sim->st;
}
