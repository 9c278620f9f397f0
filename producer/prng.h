/* SPDX-License-Identifier: Apache-2.0 */
/*
 * prng — the producer's only source of randomness: xoshiro256** seeded
 * through splitmix64, plus the draws the simulation needs (uniform, below-n,
 * exponential, weighted choice) and UUIDv4-format ids.
 *
 * Everything here is a pure function of the seed, so the same --seed gives
 * the same event stream, event ids included; nothing reads the wall clock.
 * Header-only and static inline because it is on the per-event hot path.
 *
 * Not for: cryptography or anything that must be unguessable.
 */
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>

struct prng {
	uint64_t s[4];
};

static inline uint64_t prng_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Seed @pr from @seed (any value, 0 included). Can't fail. */
static inline void prng_seed(struct prng *pr, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		pr->s[i] = prng_splitmix64(&seed);
}

static inline uint64_t prng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Next 64 random bits (xoshiro256**). */
static inline uint64_t prng_next(struct prng *pr)
{
	uint64_t *s = pr->s;
	uint64_t result = prng_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = prng_rotl(s[3], 45);
	return result;
}

/* Uniform double in [0, 1). */
static inline double prng_uniform(struct prng *pr)
{
	return (double)(prng_next(pr) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, @n), @n > 0 (multiply-shift; the bias is below
 * 2^-32 for the small @n used here). */
static inline uint32_t prng_below(struct prng *pr, uint32_t n)
{
	return (uint32_t)(((prng_next(pr) >> 32) * (uint64_t)n) >> 32);
}

/* Exponentially distributed value with mean @mean. */
static inline double prng_exp(struct prng *pr, double mean)
{
	return -mean * log1p(-prng_uniform(pr));
}

/* Index i with probability @weights[i] / sum(@weights) over @n entries;
 * @total is that sum (callers keep it precomputed). */
static inline size_t prng_weighted(struct prng *pr, const double *weights,
				   size_t n, double total)
{
	double x = prng_uniform(pr) * total;

	for (size_t i = 0; i + 1 < n; i++) {
		if (x < weights[i])
			return i;
		x -= weights[i];
	}
	return n - 1;
}

#define PRNG_UUID_LEN 36

/* Write a random RFC 4122 version-4 UUID as 36 characters of text (no NUL)
 * to @out. Can't fail. */
static inline void prng_uuid(struct prng *pr, char out[PRNG_UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t hi = prng_next(pr), lo = prng_next(pr);
	int o = 0;

	hi = (hi & ~UINT64_C(0xf000)) | UINT64_C(0x4000);	/* version 4 */
	lo = (lo & ~(UINT64_C(3) << 62)) | (UINT64_C(2) << 62); /* variant 10 */
	for (int i = 0; i < 32; i++) {
		uint64_t w = i < 16 ? hi : lo;
		int shift = 60 - 4 * (i & 15);

		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[o++] = '-';
		out[o++] = hex[(w >> shift) & 0xf];
	}
}
