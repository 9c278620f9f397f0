/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_uuid — UUIDv7 event ids (RFC 9562): 48 bits of Unix time in
 * milliseconds, then 74 random bits from getrandom(2). Ids are unique
 * across processes and restarts without coordination, and sort roughly by
 * creation time like the processor's own ids.
 *
 * cw_uuid_format() writes the text form of any 16 bytes (the processor's
 * derived ids use it too).
 *
 * Not for: deterministic ids (the simulator derives its ids from its seed,
 * producer/prng.h; the processor's from its inputs, processor/ids.c) or
 * parsing uuids.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Length of the text form, without the NUL. */
#define CW_UUID_LEN 36

/* The text form of the 16 bytes at @b: lower-case hex digits in the
 * 8-4-4-4-12 layout, NUL-terminated, into @out. Any bytes (version and
 * variant are the caller's). Can't fail. Thread-safe. */
void cw_uuid_format(const uint8_t b[16], char out[CW_UUID_LEN + 1]);

/* Format a UUIDv7 for @unix_ms (low 48 bits used) and the 10 bytes at
 * @rnd (74 of their bits used) as lower-case text into @out, NUL-terminated.
 * Can't fail. Thread-safe. */
void cw_uuid_v7_format(int64_t unix_ms, const uint8_t rnd[10],
		       char out[CW_UUID_LEN + 1]);

/* A fresh UUIDv7 for the current wall-clock time into @out. Returns 0, or
 * a negative errno from getrandom(2) (-ENOSYS on kernels without it), in
 * which case @out is not written: a caller must refuse to make up an id
 * rather than fall back to a weak source. Thread-safe. */
int cw_uuid_v7(char out[CW_UUID_LEN + 1]);
