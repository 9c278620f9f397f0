/* SPDX-License-Identifier: Apache-2.0 */
/*
 * intern — open-addressing string → id table. See intern.h.
 */
#include "intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash64.h"

struct intern_entry {
	char *str;
	size_t len;
	uint64_t hash;
};

struct intern {
	struct intern_entry *entries; /* by id; entries[0] unused */
	uint32_t n_entries;	      /* next id */
	uint32_t cap_entries;
	uint32_t *slots;  /* hash slots holding ids, 0 = empty */
	uint32_t n_slots; /* power of two */
};

/* The slot hash of a string: eight bytes at a time (then the 1..7 left),
 * each word folded in with a multiply, and splitmix64's finaliser so
 * that the low bits, which pick the slot, depend on every byte. Only for
 * this table (never stored): ids do not depend on it. */
static uint64_t hash_bytes(const char *p, size_t len)
{
	uint64_t h = HASH64_FNV_OFFSET ^ len, w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, sizeof(w));
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 32;
	}
	if (len) {
		w = 0;
		for (size_t i = 0; i < len; i++)
			w |= (uint64_t)(unsigned char)p[i] << (8 * i);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	}
	return hash64_mix(h);
}

struct intern *intern_new(void)
{
	struct intern *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->n_slots = 256;
	in->slots = calloc(in->n_slots, sizeof(*in->slots));
	in->cap_entries = 64;
	in->entries = calloc(in->cap_entries, sizeof(*in->entries));
	if (!in->slots || !in->entries) {
		intern_destroy(in);
		return NULL;
	}
	in->n_entries = 1;
	return in;
}

void intern_destroy(struct intern *in)
{
	if (!in)
		return;
	for (uint32_t i = 1; i < in->n_entries; i++)
		free(in->entries[i].str);
	free(in->entries);
	free(in->slots);
	free(in);
}

static int grow_slots(struct intern *in)
{
	uint32_t n = in->n_slots * 2;
	uint32_t *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint32_t id = 1; id < in->n_entries; id++) {
		uint32_t i = (uint32_t)in->entries[id].hash & (n - 1);
		while (slots[i])
			i = (i + 1) & (n - 1);
		slots[i] = id;
	}
	free(in->slots);
	in->slots = slots;
	in->n_slots = n;
	return 0;
}

uint32_t intern_find(const struct intern *in, struct cw_str s)
{
	uint64_t h;

	if (!s.ptr)
		return 0;
	h = hash_bytes(s.ptr, s.len);
	for (uint32_t i = (uint32_t)h & (in->n_slots - 1); in->slots[i];
	     i = (i + 1) & (in->n_slots - 1)) {
		const struct intern_entry *e = &in->entries[in->slots[i]];
		if (e->hash == h && e->len == s.len &&
		    memcmp(e->str, s.ptr, s.len) == 0)
			return in->slots[i];
	}
	return 0;
}

uint32_t intern_id(struct intern *in, struct cw_str s, int *err)
{
	uint64_t h;
	uint32_t i;

	if (err)
		*err = 0;
	if (!s.ptr)
		return 0;
	h = hash_bytes(s.ptr, s.len);
	for (i = (uint32_t)h & (in->n_slots - 1); in->slots[i];
	     i = (i + 1) & (in->n_slots - 1)) {
		const struct intern_entry *e = &in->entries[in->slots[i]];
		if (e->hash == h && e->len == s.len &&
		    memcmp(e->str, s.ptr, s.len) == 0)
			return in->slots[i];
	}
	/* New string. Keep the load factor under one half. */
	if ((in->n_entries + 1) * 2 > in->n_slots) {
		if (grow_slots(in) < 0)
			goto nomem;
		return intern_id(in, s, err);
	}
	if (in->n_entries == in->cap_entries) {
		struct intern_entry *e =
			realloc(in->entries, 2 * in->cap_entries * sizeof(*e));
		if (!e)
			goto nomem;
		in->entries = e;
		in->cap_entries *= 2;
	}
	char *copy = malloc(s.len + 1);
	if (!copy)
		goto nomem;
	memcpy(copy, s.ptr, s.len);
	copy[s.len] = '\0';
	in->entries[in->n_entries] =
		(struct intern_entry){.str = copy, .len = s.len, .hash = h};
	in->slots[i] = in->n_entries;
	return in->n_entries++;
nomem:
	if (err)
		*err = -ENOMEM;
	return 0;
}

const char *intern_str(const struct intern *in, uint32_t id)
{
	return id && id < in->n_entries ? in->entries[id].str : NULL;
}

size_t intern_len(const struct intern *in, uint32_t id)
{
	return id && id < in->n_entries ? in->entries[id].len : 0;
}

struct cw_str intern_cw_str(const struct intern *in, uint32_t id)
{
	if (!id || id >= in->n_entries)
		return CW_STR_NULL;
	return (struct cw_str){in->entries[id].str, in->entries[id].len};
}

size_t intern_count(const struct intern *in)
{
	return in->n_entries - 1;
}
