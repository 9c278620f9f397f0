/* SPDX-License-Identifier: Apache-2.0 */
/*
 * run — generate, pace, send, report, drain. See run.h.
 */
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cw_log.h"

#define NS_PER_MS   INT64_C(1000000)
#define NS_PER_S    INT64_C(1000000000)
#define PROGRESS_NS (500 * NS_PER_MS)
#define BURST_NS    (100 * NS_PER_MS)

struct run_state {
	const struct run_config *rc;
	struct sink *sk;
	struct summary *sum;
	int64_t t0_ns;
	int64_t slot_ns;     /* --rate: when the next event may go */
	int64_t progress_ns; /* when the progress line was last drawn */
	uint64_t progress_events;
	bool progress_drawn;
};

static void draw_progress(struct run_state *rs, int64_t now)
{
	struct sink_stats st;
	uint64_t n = summary_events(rs->sum);
	double dt = (double)(now - rs->progress_ns) / NS_PER_S;

	sink_get_stats(rs->sk, &st);
	fprintf(stderr,
		"\r%9.0f events/s  sent %" PRIu64 "  delivered %" PRIu64
		"  failed %" PRIu64 "  add %" PRIu64 "  remove %" PRIu64
		"  checkout %" PRIu64 "\033[K",
		dt > 0 ? (double)(n - rs->progress_events) / dt : 0.0, st.sent,
		st.delivered, st.failed,
		summary_events_of(rs->sum, CW_EVENT_CART_ADD),
		summary_events_of(rs->sum, CW_EVENT_CART_REMOVE),
		summary_events_of(rs->sum, CW_EVENT_CHECKOUT_COMPLETE));
	rs->progress_ns = now;
	rs->progress_events = n;
	rs->progress_drawn = true;
}

/* The housekeeping tick: delivery reports and the progress line. */
static void tick(struct run_state *rs, int64_t now)
{
	if (rs->rc->progress && now - rs->progress_ns >= PROGRESS_NS)
		draw_progress(rs, now);
}

/* Sleep until monotonic @target_ns, serving delivery reports meanwhile;
 * returns early when *@stop is set. */
static void wait_until(struct run_state *rs, int64_t target_ns,
		       const volatile sig_atomic_t *stop)
{
	for (;;) {
		int64_t now = clock_mono_ns(), left = target_ns - now;
		struct timespec ts;

		tick(rs, now);
		if (left <= 0 || *stop)
			return;
		if (left > 100 * NS_PER_MS)
			left = 100 * NS_PER_MS;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		sink_poll(rs->sk, 0);
		nanosleep(&ts, NULL);
	}
}

/* Whether @in holds a whole line in its stdio buffer, so the next getline()
 * returns without reading. Peeks at glibc's FILE fields (bookworm's libc);
 * elsewhere the answer is "no", which only costs a poll(2). */
static bool input_line_buffered(FILE *in, bool *partial)
{
#ifdef __GLIBC__
	const char *p = in->_IO_read_ptr, *end = in->_IO_read_end;

	*partial = p && end > p;
	return *partial && memchr(p, '\n', (size_t)(end - p)) != NULL;
#else
	*partial = false;
	return false;
#endif
}

/* Before the JSON feed reads its next line: if that read could block (no
 * whole line buffered, nothing ready on the descriptor), send what the sink
 * holds and serve delivery reports until input arrives or *@stop is set,
 * so a line that was read reaches Kafka within linger.ms however long the
 * next one takes (`tail -F events.jsonl | cartwatch-producer --stdin-json`).
 * When input keeps coming nothing here waits; the batch only goes out
 * early where the stdio buffer ends inside a line (every few KiB of input):
 * 200,000 piped lines took 0.75-0.8 s to the embedded broker, as before. */
static void wait_for_input(struct run_state *rs, FILE *in,
			   const volatile sig_atomic_t *stop)
{
	struct pollfd pfd = {.fd = fileno(in), .events = POLLIN};
	bool partial, flushed = false;

	if (pfd.fd < 0 || input_line_buffered(in, &partial))
		return;
	if (partial) {
		/* The rest of the line may be a long way off. */
		sink_poll(rs->sk, 0);
		flushed = true;
	}
	while (!*stop) {
		int n = poll(&pfd, 1, flushed ? 100 : 0);

		if (n > 0 || (n < 0 && errno != EINTR))
			return; /* data, end of input or an error: read it */
		sink_poll(rs->sk, 0); /* the batch first, then reports */
		flushed = true;
		tick(rs, clock_mono_ns());
	}
}

/* Hold @ev until its time has come under --time-scale and --rate. */
static void pace(struct run_state *rs, const struct cw_event *ev, bool sim,
		 const volatile sig_atomic_t *stop)
{
	const struct run_config *rc = rs->rc;
	int64_t now = clock_mono_ns(), target = now;

	if (sim) {
		double off_ms = (double)(ev->event_time_ms - rc->sim_start_ms);

		target = rs->t0_ns +
			 (int64_t)(off_ms * NS_PER_MS / rc->time_scale);
	}
	rs->slot_ns += (int64_t)(NS_PER_S / rc->rate);
	if (rs->slot_ns < now - BURST_NS)
		rs->slot_ns = now - BURST_NS;
	if (rs->slot_ns > target)
		target = rs->slot_ns;
	if (target > now)
		wait_until(rs, target, stop);
	else
		tick(rs, now);
}

/* Wait for every delivery report; a second signal ends the process from
 * the handler, so this needs no way out of its own. */
static int drain(struct run_state *rs)
{
	int r;

	while ((r = sink_flush(rs->sk, 100)) == -ETIMEDOUT)
		tick(rs, clock_mono_ns());
	return r;
}

int run_loop(const struct run_config *rc, const struct run_source *src,
	     struct sink *sk, struct summary *sum,
	     const volatile sig_atomic_t *stop)
{
	struct run_state rs = {.rc = rc, .sk = sk, .sum = sum};
	uint64_t generated = 0;
	bool paced = rc->rate > 0;
	int r = 0, dr;

	rs.t0_ns = rs.slot_ns = rs.progress_ns = clock_mono_ns();
	while (!*stop && (!rc->max_events || generated < rc->max_events)) {
		struct cw_event ev;
		long product;
		int got;

		if (src->feed && src->in)
			wait_for_input(&rs, src->in, stop);
		if (*stop)
			break;
		got = src->sim ? sim_next(src->sim, &ev, &product)
			       : json_feed_next(src->feed, &ev, &product);
		if (got <= 0) {
			r = got;
			break;
		}
		generated++;
		if (paced)
			pace(&rs, &ev, src->sim != NULL, stop);
		else if ((generated & 4095) == 0)
			tick(&rs, clock_mono_ns());
		r = sink_send(sk, &ev);
		if (r == 0) {
			/* Counted after the sink took it: the summary is
			 * what was sent. Cannot fail for catalog products. */
			if (summary_count(sum, &ev, product) < 0)
				cw_warn("summary: out of memory for product",
					"product_id=%.*s",
					(int)ev.product_id.len,
					ev.product_id.ptr);
			continue;
		}
		if (r == -EPIPE)
			break; /* the sink cannot go on; already logged */
		if (r != -EIO)
			cw_warn("event not sent", "event_id=%.*s error=\"%s\"",
				(int)ev.event_id.len, ev.event_id.ptr,
				strerror(-r));
		r = 0;
	}
	if (*stop)
		cw_info("stop requested, flushing", "generated=%" PRIu64,
			generated);
	dr = drain(&rs);
	if (rc->progress) {
		draw_progress(&rs, clock_mono_ns());
		fputc('\n', stderr);
	}
	if (r == -EPIPE || dr < 0)
		return -EIO;
	return r;
}
