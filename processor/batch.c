/* SPDX-License-Identifier: Apache-2.0 */
/*
 * batch — per-partition flush records and their arena. See batch.h.
 */
#include "batch.h"
#include "cw_time.h"

#include <stdlib.h>
#include <string.h>

/* A chain of blocks; allocation bumps a pointer, reset rewinds to the first
 * block and keeps the following ones for reuse up to ARENA_KEEP bytes, so a
 * steady state allocates nothing while one large flush (a burst of resume
 * states) does not pin its peak for the life of the partition. */
struct arena_block {
	struct arena_block *next;
	size_t size;
	size_t used;
	max_align_t data[];
};

struct batch_arena {
	struct arena_block *head; /* block being filled */
	struct arena_block *first;
};

#define ARENA_BLOCK_MIN (64 * 1024)
/* Bytes of blocks (the first one always included) kept by a reset. */
#define ARENA_KEEP (1024 * 1024)
/* A record vector whose capacity exceeds VEC_KEEP_MIN elements and was
 * over VEC_SHRINK_RATIO times what the batch used at VEC_IDLE_RESETS resets
 * in a row is released by the last of them (release_due()): a one-off
 * burst does not keep its peak, while flushes that vary in size do not
 * regrow the vectors by realloc each time. */
#define VEC_KEEP_MIN	 4096
#define VEC_SHRINK_RATIO 4
#define VEC_IDLE_RESETS	 8
/* Bytes of state chunk capacity kept by a reset in any case; more is kept
 * under the same rule as the vectors. */
#define STATE_KEEP (1 << 20)

static void *arena_alloc(struct batch_arena *a, size_t len)
{
	struct arena_block *blk = a->head;
	size_t need = (len + 15) & ~(size_t)15;

	while (blk && blk->used + need > blk->size) {
		/* Reuse a kept block if it is big enough. */
		if (blk->next) {
			blk = blk->next;
			blk->used = 0;
			a->head = blk;
			continue;
		}
		blk = NULL;
	}
	if (!blk) {
		size_t size = need > ARENA_BLOCK_MIN ? need : ARENA_BLOCK_MIN;
		blk = malloc(sizeof(*blk) + size);
		if (!blk)
			return NULL;
		blk->next = NULL;
		blk->size = size;
		blk->used = 0;
		if (a->head) {
			/* Insert after head, keeping later spare blocks. */
			blk->next = a->head->next;
			a->head->next = blk;
		} else {
			a->first = blk;
		}
		a->head = blk;
	}
	void *p = (char *)blk->data + blk->used;
	blk->used += need;
	return p;
}

static void arena_reset(struct batch_arena *a)
{
	struct arena_block *blk = a->first, **link;
	size_t kept = 0;

	a->head = a->first;
	if (!blk)
		return;
	blk->used = 0;
	/* Keep the first block and the following ones while they fit in
	 * ARENA_KEEP; free the rest. */
	kept = blk->size;
	link = &blk->next;
	while ((blk = *link)) {
		if (kept + blk->size <= ARENA_KEEP) {
			kept += blk->size;
			link = &blk->next;
			continue;
		}
		*link = blk->next;
		free(blk);
	}
}

static void arena_free(struct batch_arena *a)
{
	struct arena_block *blk = a->first;
	while (blk) {
		struct arena_block *next = blk->next;
		free(blk);
		blk = next;
	}
}

struct batch *batch_new(int32_t partition)
{
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->arena = calloc(1, sizeof(*b->arena));
	if (!b->arena) {
		free(b);
		return NULL;
	}
	b->partition = partition;
	b->next_offset = -1;
	return b;
}

void batch_destroy(struct batch *b)
{
	if (!b)
		return;
	free(b->abandonments.v);
	free(b->conversions.v);
	free(b->recoveries.v);
	free(b->product_stats.v);
	free(b->reason_stats.v);
	pack_free(&b->state);
	arena_free(b->arena);
	free(b->arena);
	free(b);
}

/* At a reset of a buffer of capacity @cap of which @used was used: whether
 * to release what exceeds @keep, i.e. whether the capacity has been over
 * @keep and VEC_SHRINK_RATIO times the use for VEC_IDLE_RESETS resets in a
 * row (*@idle counts them). */
static bool release_due(size_t cap, size_t used, size_t keep, uint32_t *idle)
{
	if (cap <= keep || cap <= VEC_SHRINK_RATIO * used) {
		*idle = 0;
		return false;
	}
	if (++*idle < VEC_IDLE_RESETS)
		return false;
	*idle = 0;
	return true;
}

/* Empty a vector; release its storage when release_due() says so. */
static void vec_reset(void **v, size_t *n, size_t *cap, uint32_t *idle)
{
	if (release_due(*cap, *n, VEC_KEEP_MIN, idle)) {
		free(*v);
		*v = NULL;
		*cap = 0;
	}
	*n = 0;
}

#define BATCH_VEC_RESET(b, vec)                                                \
	vec_reset((void **)&(b)->vec.v, &(b)->vec.n, &(b)->vec.cap,            \
		  &(b)->vec.idle)

void batch_reset(struct batch *b)
{
	BATCH_VEC_RESET(b, abandonments);
	BATCH_VEC_RESET(b, conversions);
	BATCH_VEC_RESET(b, recoveries);
	BATCH_VEC_RESET(b, product_stats);
	BATCH_VEC_RESET(b, reason_stats);
	pack_reset(&b->state, release_due(b->state.cap, b->state.len,
					  STATE_KEEP, &b->state_idle)
				      ? STATE_KEEP
				      : SIZE_MAX);
	b->state_full = false;
	arena_reset(b->arena);
}

size_t batch_records(const struct batch *b)
{
	return b->abandonments.n + b->conversions.n + b->recoveries.n +
	       b->product_stats.n + b->reason_stats.n + b->state.records;
}

bool batch_is_empty(const struct batch *b)
{
	return batch_records(b) == 0 && !b->state_full;
}

const char *batch_strdup(struct batch *b, const char *s, size_t len)
{
	char *p = arena_alloc(b->arena, len + 1);
	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void *batch_alloc(struct batch *b, size_t len)
{
	return arena_alloc(b->arena, len ? len : 1);
}

void *batch_memdup(struct batch *b, const void *p, size_t len)
{
	void *q = arena_alloc(b->arena, len ? len : 1);
	if (q && len)
		memcpy(q, p, len);
	return q;
}

/* Grow a vector by one zeroed element. */
static void *vec_push(void **v, size_t *n, size_t *cap, size_t elem)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		void *nv = realloc(*v, ncap * elem);
		if (!nv)
			return NULL;
		*v = nv;
		*cap = ncap;
	}
	void *p = (char *)*v + *n * elem;
	memset(p, 0, elem);
	(*n)++;
	return p;
}

#define BATCH_PUSH(b, vec)                                                     \
	vec_push((void **)&(b)->vec.v, &(b)->vec.n, &(b)->vec.cap,             \
		 sizeof(*(b)->vec.v))

/* One monotonic clock read per abandonment (a vDSO call, ~20 ns: noise
 * next to the ~2 us an event costs, and abandonments are a fraction of the
 * events). One time per batch would be cheaper still but wrong: a batch
 * stays open for as long as its flush connection is busy or backing off,
 * which can be many flush intervals, so its first abandonment's time would
 * overstate the others' latency. */
struct batch_abandonment *batch_add_abandonment(struct batch *b)
{
	struct batch_abandonment *ab = BATCH_PUSH(b, abandonments);

	if (ab)
		ab->detected_ms = cw_mono_ms();
	return ab;
}

struct batch_conversion *batch_add_conversion(struct batch *b)
{
	return BATCH_PUSH(b, conversions);
}

struct batch_recovery *batch_add_recovery(struct batch *b)
{
	return BATCH_PUSH(b, recoveries);
}

struct batch_product_stat *batch_add_product_stat(struct batch *b)
{
	return BATCH_PUSH(b, product_stats);
}

struct batch_reason_stat *batch_add_reason_stat(struct batch *b)
{
	return BATCH_PUSH(b, reason_stats);
}
