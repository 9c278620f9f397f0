/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ids — the deterministic ids of the processor's outputs: abandonment ids
 * from the user and the session start, conversion ids from the user and
 * the checkout's offset. A replay derives the same ids, so PostgreSQL's
 * primary keys (and the outbox) see a replayed output as the same row.
 * The derivation is documented in ids.c; tests/e2e/oracle.py repeats it.
 *
 * Pure functions, any thread. Not for: random or wall-clock ids
 * (cw_uuid.c).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Deterministic abandonment id: a UUID (version 8 layout) derived from the
 * user id and the session start, so a replay produces the same id. Its
 * first 48 bits are the session start (ms), so ids sort by time.
 * @out receives 36 characters and a NUL. Can't fail. */
void ids_abandonment(const char *user_id, size_t user_id_len,
		     int64_t session_start_ms, char out[37]);

/* The same id as computed before ids were time-ordered (resume state
 * version 1): all 128 bits from the hash. Only to link a recovery to an
 * abandonment written then. Can't fail. */
void ids_abandonment_v1(const char *user_id, size_t user_id_len,
			int64_t session_start_ms, char out[37]);

/* Conversion id: derived from the partition offset of the checkout, so
 * unique by construction and identical on replay; its first 48 bits are
 * the checkout time @checkout_ms. Can't fail. */
void ids_conversion(const char *user_id, size_t user_id_len, int64_t offset,
		    int64_t checkout_ms, char out[37]);
