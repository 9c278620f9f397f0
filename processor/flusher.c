/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flusher — pg_sink_flush() on its own thread. See flusher.h.
 */
#include "flusher.h"
#include "cw_time.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_sink.h"

struct flusher {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* job submitted, job done, or quit */
	struct pg_sink *sink; /* used by the thread only */

	/* Under lock. */
	struct batch **batches;
	size_t n, cap;
	bool submitted; /* a job waits or runs */
	bool done;	/* its result is ready */
	bool quit;
	struct flusher_result result;
};

static void *flusher_main(void *arg)
{
	struct flusher *fl = arg;

	pthread_mutex_lock(&fl->lock);
	for (;;) {
		while (!fl->quit && (!fl->submitted || fl->done))
			pthread_cond_wait(&fl->cond, &fl->lock);
		if (fl->quit)
			break;
		/* The batches are ours until the result is collected; the
		 * lock is not held during the flush. */
		struct flusher_result res = {.fenced = -1};
		int64_t t0 = cw_mono_ms();
		pthread_mutex_unlock(&fl->lock);
		res.r = pg_sink_flush(fl->sink, fl->batches, fl->n,
				      &res.fenced);
		res.done_ms = cw_mono_ms();
		res.ms = res.done_ms - t0;
		if (res.r < 0) {
			snprintf(res.err, sizeof(res.err), "%s",
				 pg_sink_last_error(fl->sink));
			res.errclass = pg_sink_last_errclass(fl->sink);
			snprintf(res.sqlstate, sizeof(res.sqlstate), "%s",
				 pg_sink_last_sqlstate(fl->sink));
			pg_sink_last_reason(fl->sink, res.reason,
					    sizeof(res.reason));
		}
		pthread_mutex_lock(&fl->lock);
		fl->result = res;
		fl->done = true;
		pthread_cond_broadcast(&fl->cond);
	}
	pthread_mutex_unlock(&fl->lock);
	return NULL;
}

struct flusher *flusher_new(const char *conninfo, const char *topic,
			    char *errstr, size_t errstr_size)
{
	struct flusher *fl = calloc(1, sizeof(*fl));
	sigset_t all, old;
	int r;

	if (!fl) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	fl->sink = pg_sink_new(conninfo, topic, errstr, errstr_size);
	if (!fl->sink) {
		free(fl);
		return NULL;
	}
	pthread_mutex_init(&fl->lock, NULL);
	pthread_cond_init(&fl->cond, NULL);
	/* Signals belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&fl->thread, NULL, flusher_main, fl);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		snprintf(errstr, errstr_size,
			 "cannot start the flush thread: %s", strerror(r));
		pg_sink_destroy(fl->sink);
		pthread_mutex_destroy(&fl->lock);
		pthread_cond_destroy(&fl->cond);
		free(fl);
		return NULL;
	}
	return fl;
}

void flusher_destroy(struct flusher *fl)
{
	if (!fl)
		return;
	pthread_mutex_lock(&fl->lock);
	fl->quit = true;
	pthread_cond_broadcast(&fl->cond);
	pthread_mutex_unlock(&fl->lock);
	pthread_join(fl->thread, NULL);
	pg_sink_destroy(fl->sink);
	pthread_mutex_destroy(&fl->lock);
	pthread_cond_destroy(&fl->cond);
	free(fl->batches);
	free(fl);
}

int flusher_submit(struct flusher *fl, struct batch *const *batches, size_t n)
{
	int r = 0;

	pthread_mutex_lock(&fl->lock);
	if (fl->submitted) {
		r = -EBUSY;
		goto out;
	}
	if (n > fl->cap) {
		struct batch **b = realloc(fl->batches, n * sizeof(*b));
		if (!b) {
			r = -ENOMEM;
			goto out;
		}
		fl->batches = b;
		fl->cap = n;
	}
	memcpy(fl->batches, batches, n * sizeof(*batches));
	fl->n = n;
	fl->submitted = true;
	fl->done = false;
	pthread_cond_broadcast(&fl->cond);
out:
	pthread_mutex_unlock(&fl->lock);
	return r;
}

bool flusher_busy(const struct flusher *fl)
{
	bool busy;
	pthread_mutex_lock((pthread_mutex_t *)&fl->lock);
	busy = fl->submitted;
	pthread_mutex_unlock((pthread_mutex_t *)&fl->lock);
	return busy;
}

bool flusher_done(const struct flusher *fl)
{
	bool done;
	pthread_mutex_lock((pthread_mutex_t *)&fl->lock);
	done = fl->submitted && fl->done;
	pthread_mutex_unlock((pthread_mutex_t *)&fl->lock);
	return done;
}

int flusher_collect(struct flusher *fl, bool wait, struct flusher_result *out)
{
	int got = 0;

	pthread_mutex_lock(&fl->lock);
	if (fl->submitted) {
		while (wait && !fl->done)
			pthread_cond_wait(&fl->cond, &fl->lock);
		if (fl->done) {
			*out = fl->result;
			fl->submitted = false;
			fl->done = false;
			got = 1;
		}
	}
	pthread_mutex_unlock(&fl->lock);
	return got;
}
