/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_uuid — UUIDv7 event ids (RFC 9562): 48 bits of Unix time in
 * milliseconds, then 74 random bits from getrandom(2). Ids are unique
 * across processes and restarts without coordination, and sort roughly by
 * creation time like the processor's own ids.
 *
 * Not for: deterministic ids (the simulator derives its ids from its seed,
 * producer/prng.h) or parsing uuids.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Length of the text form, without the NUL. */
#define CW_UUID_LEN 36

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
