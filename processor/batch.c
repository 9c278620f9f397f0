/* SPDX-License-Identifier: Apache-2.0 */
/*
 * batch — per-partition flush records and their arena. See batch.h.
 */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

/* A chain of blocks; allocation bumps a pointer, reset rewinds to the first
 * block and keeps the others for reuse, so a steady state allocates nothing. */
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
	a->head = a->first;
	if (a->head)
		a->head->used = 0;
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
	free(b->user_states.v);
	arena_free(b->arena);
	free(b->arena);
	free(b);
}

void batch_reset(struct batch *b)
{
	b->abandonments.n = 0;
	b->conversions.n = 0;
	b->recoveries.n = 0;
	b->product_stats.n = 0;
	b->reason_stats.n = 0;
	b->user_states.n = 0;
	arena_reset(b->arena);
}

size_t batch_records(const struct batch *b)
{
	return b->abandonments.n + b->conversions.n + b->recoveries.n +
	       b->product_stats.n + b->reason_stats.n + b->user_states.n;
}

bool batch_is_empty(const struct batch *b)
{
	return batch_records(b) == 0;
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

#define BATCH_PUSH(b, vec) \
	vec_push((void **)&(b)->vec.v, &(b)->vec.n, &(b)->vec.cap, \
		 sizeof(*(b)->vec.v))

struct batch_abandonment *batch_add_abandonment(struct batch *b)
{
	return BATCH_PUSH(b, abandonments);
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

struct batch_user_state *batch_add_user_state(struct batch *b)
{
	return BATCH_PUSH(b, user_states);
}
