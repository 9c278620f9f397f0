/* SPDX-License-Identifier: Apache-2.0 */
/*
 * idem — Idempotency-Key answers in a hash table with a FIFO of expiries.
 * See idem.h. Every entry lives in one bucket chain and in the FIFO, which
 * is in expiry order because every entry's expiry is its last update plus
 * the same ttl, and an update moves it to the tail.
 */
#include "idem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct idem_entry {
	struct idem_entry *chain;	/* next in the bucket */
	struct idem_entry *prev, *next; /* FIFO, oldest first */
	uint64_t token;
	int64_t expires_ms;
	bool done;
	unsigned status;
	char *body;
	size_t body_len;
	size_t key_len;
	char key[];
};

struct idem_cache {
	pthread_mutex_t lock;
	struct idem_entry **buckets;
	size_t mask;
	struct idem_entry *head, *tail;
	size_t n, max;
	int64_t ttl_ms;
	uint64_t next_token;
};

static uint64_t hash(const char *s, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

struct idem_cache *idem_new(size_t max, int64_t ttl_ms)
{
	struct idem_cache *c = calloc(1, sizeof(*c));
	size_t size = 16;

	if (!c)
		return NULL;
	while (size < max)
		size *= 2;
	c->buckets = calloc(size, sizeof(*c->buckets));
	if (!c->buckets || pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->buckets);
		free(c);
		return NULL;
	}
	c->mask = size - 1;
	c->max = max;
	c->ttl_ms = ttl_ms;
	c->next_token = 1;
	return c;
}

static struct idem_entry **find(struct idem_cache *c, const char *key,
				size_t len)
{
	struct idem_entry **pp = &c->buckets[hash(key, len) & c->mask];

	for (; *pp; pp = &(*pp)->chain)
		if ((*pp)->key_len == len && memcmp((*pp)->key, key, len) == 0)
			return pp;
	return pp;
}

static void fifo_unlink(struct idem_cache *c, struct idem_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void fifo_append(struct idem_cache *c, struct idem_entry *e)
{
	e->prev = c->tail;
	e->next = NULL;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
}

static void drop(struct idem_cache *c, struct idem_entry **pp)
{
	struct idem_entry *e = *pp;

	*pp = e->chain;
	fifo_unlink(c, e);
	free(e->body);
	free(e);
	c->n--;
}

/* Forget expired entries, and the oldest ones while over @room. */
static void trim(struct idem_cache *c, int64_t now_ms, size_t room)
{
	while (c->head && (c->head->expires_ms <= now_ms || c->n > room)) {
		struct idem_entry *e = c->head;
		drop(c, find(c, e->key, e->key_len));
	}
}

enum idem_state idem_begin(struct idem_cache *c, const char *key, size_t len,
			   int64_t now_ms, uint64_t *token, unsigned *status,
			   char **body, size_t *body_len)
{
	struct idem_entry **pp, *e;
	enum idem_state st = IDEM_NEW;

	*token = 0;
	if (c->max == 0 || len > IDEM_MAX_KEY_LEN)
		return IDEM_NEW;
	pthread_mutex_lock(&c->lock);
	trim(c, now_ms, c->max);
	pp = find(c, key, len);
	if (*pp) {
		e = *pp;
		if (!e->done) {
			st = IDEM_PENDING;
		} else {
			*body = malloc(e->body_len ? e->body_len : 1);
			if (*body) {
				memcpy(*body, e->body, e->body_len);
				*body_len = e->body_len;
				*status = e->status;
				st = IDEM_DONE;
			} else {
				st = IDEM_PENDING; /* ENOMEM: ask to retry */
			}
		}
		goto out;
	}
	trim(c, now_ms, c->max - 1);
	e = calloc(1, sizeof(*e) + len);
	if (!e)
		goto out;
	memcpy(e->key, key, len);
	e->key_len = len;
	e->token = c->next_token++;
	e->expires_ms = now_ms + c->ttl_ms;
	pp = find(c, key, len);
	*pp = e;
	fifo_append(c, e);
	c->n++;
	*token = e->token;
out:
	pthread_mutex_unlock(&c->lock);
	return st;
}

void idem_finish(struct idem_cache *c, const char *key, size_t len,
		 uint64_t token, unsigned status, const char *body,
		 size_t body_len, int64_t now_ms)
{
	struct idem_entry **pp, *e;
	char *copy;

	if (!token)
		return;
	copy = malloc(body_len ? body_len : 1);
	pthread_mutex_lock(&c->lock);
	pp = find(c, key, len);
	e = *pp;
	if (!e || e->token != token) {
		free(copy);
	} else if (!copy) {
		drop(c, pp); /* cannot keep it: let a retry run */
	} else {
		memcpy(copy, body, body_len);
		e->body = copy;
		e->body_len = body_len;
		e->status = status;
		e->done = true;
		e->expires_ms = now_ms + c->ttl_ms;
		fifo_unlink(c, e);
		fifo_append(c, e);
	}
	pthread_mutex_unlock(&c->lock);
}

void idem_abandon(struct idem_cache *c, const char *key, size_t len,
		  uint64_t token)
{
	struct idem_entry **pp;

	if (!token)
		return;
	pthread_mutex_lock(&c->lock);
	pp = find(c, key, len);
	if (*pp && (*pp)->token == token)
		drop(c, pp);
	pthread_mutex_unlock(&c->lock);
}

size_t idem_count(struct idem_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void idem_destroy(struct idem_cache *c)
{
	if (!c)
		return;
	while (c->head)
		drop(c, find(c, c->head->key, c->head->key_len));
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
