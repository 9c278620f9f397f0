/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hash64 — the two 64-bit hash steps the processor core builds on: FNV-1a
 * over bytes and splitmix64's finaliser. ids.c derives the abandonment and
 * conversion ids from them (a documented derivation other tools repeat:
 * changing either changes every id), and the hash tables of partition.c
 * and minute_stats.c index with them. Header-only so the per-event lookups
 * inline them. Not for: anything an attacker may aim collisions at beyond
 * what linear probing tolerates.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* FNV-1a's 64-bit offset basis, the usual start for hash64_fnv1a(). */
#define HASH64_FNV_OFFSET 0xcbf29ce484222325ULL
/* FNV-1a's 64-bit prime: each byte is XORed in, then multiplied by it. */
#define HASH64_FNV_PRIME 0x100000001b3ULL

/* splitmix64's finaliser of @z. Can't fail. */
static inline uint64_t hash64_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* FNV-1a of the @len bytes at @p, continuing from @h. Can't fail. */
static inline uint64_t hash64_fnv1a(uint64_t h, const void *p, size_t len)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= HASH64_FNV_PRIME;
	}
	return h;
}
