/* SPDX-License-Identifier: Apache-2.0 */
/*
 * partition — all the stream state of one Kafka partition: the users (their
 * carts and sessions) in a hash table, a deadline heap for session/TTL/
 * recovery timers, the event-time watermark, per-minute aggregates, and the
 * batch of outputs waiting for the next flush.
 *
 * Every user lives in exactly one partition (the key is the user id), so a
 * partition is self-contained: on assignment it is restored from PostgreSQL
 * and on revocation it is flushed and dropped. Nothing is shared between
 * partitions except the read-mostly intern table.
 *
 * The session rules themselves live in session.c; this module is the
 * container and the bookkeeping, and calls them: partition → session →
 * ids, minute_stats → batch, never back up. Single-threaded: the poll
 * thread.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "cart.h"
#include "cw_event.h"
#include "ids.h"
#include "intern.h"
#include "open_value.h"

/* Event time (ms since the epoch, from the events) and wall time are kept
 * apart by name: every event-time variable ends in _ms and is an etime_t,
 * every wall-clock one is a walltime_t. */
typedef int64_t etime_t;
typedef int64_t walltime_t;

#define ETIME_NONE INT64_MIN

struct session_params {
	int64_t session_timeout_ms; /* T */
	int64_t allowed_lateness_ms;
	int64_t cart_ttl_ms;
	int64_t recovery_window_ms;
	int64_t idle_timeout_ms; /* wall time at end of partition */
	double time_scale;	 /* event ms per wall ms when idle */
	/* Untrusted input (see partition_check_event()): how far event time
	 * may run ahead, in event ms (--max-clock-skew scaled by
	 * --time-scale when above 1), and products per cart. */
	int64_t max_ahead_ms;
	uint32_t max_cart_items;
	uint32_t max_interned; /* distinct strings in the intern table; 0:
				* no bound */
};

enum user_flags {
	USER_SESSION_OPEN = 1 << 0,
	USER_RECOVERABLE = 1 << 1, /* latest abandonment not yet recovered */
	USER_DIRTY = 1 << 2,	   /* resume state changed since last flush */
	USER_DEAD = 1 << 3,	   /* no state left; deleted at next flush */
	USER_LEGACY_ID = 1 << 4,   /* the latest abandonment has an id of the
				    * first scheme (ids_abandonment_v1) */
};

/* Event ids remembered per user to drop duplicates (a client's or a
 * gateway's retry): the last few, as 32-bit hashes, 16 bytes a user. */
#define USER_RECENT_IDS 4

/* The flags kept in the resume state. */
#define USER_STATE_FLAGS (USER_SESSION_OPEN | USER_RECOVERABLE | USER_LEGACY_ID)

struct user {
	etime_t last_event_ms;	  /* latest event time of the user */
	etime_t session_start_ms; /* first event time of the open session */
	etime_t abandon_start_ms; /* session_start of the latest abandonment */
	etime_t abandoned_at_ms;  /* abandoned_at of the latest abandonment */
	etime_t deadline_ms;	  /* next timer, ETIME_NONE: none */
	uint32_t heap_idx;	  /* position in the timer heap */
	uint32_t last_reason;	  /* interned reason of the session's last
				   * cart_remove, 0: none */
	uint32_t currency;	  /* interned currency of the latest event */
	uint16_t id_len;
	uint8_t flags;
	/* Hashes of the event ids of the user's latest applied events, newest
	 * first, 0: none (partition_check_event() drops a repeat). */
	uint32_t recent_ids[USER_RECENT_IDS];
	struct cart cart;
	char id[]; /* NUL-terminated user id */
};

/* Counters of one partition since it was assigned (for logs and metrics). */
struct partition_counters {
	uint64_t events[CW_EVENT_TYPE_COUNT];
	uint64_t late_events;
	uint64_t remove_not_in_cart;
	uint64_t empty_checkouts;
	uint64_t carts_expired;
	uint64_t abandonments;
	uint64_t conversions;
	uint64_t recovered;
	uint64_t sessions_opened;
};

struct partition {
	int32_t id;
	int64_t generation;  /* owner generation in PostgreSQL */
	int64_t next_offset; /* next Kafka offset to process */
	etime_t watermark_ms;
	etime_t max_event_ms; /* latest event time accepted */
	/* Restored with a watermark beyond the clock-skew bound and not
	 * repaired (partition_watermark_ahead()): held, its records are not
	 * processed and its watermark does not move until it is repaired. */
	bool watermark_ahead;
	/* Its next offset left the log and auto.offset.reset=error stopped
	 * the consumer on it: nothing more arrives until it is assigned
	 * again. Set by the daemon. */
	bool offset_lost;

	/* Idle detection: wall time of the last message or watermark tick,
	 * and whether the consumer reported the end of the partition since. */
	walltime_t last_activity_wall;
	walltime_t last_idle_tick_wall;
	bool at_eof;

	const struct session_params *params;
	struct intern *intern; /* shared, not owned */

	/* Users by id: open addressing, linear probing. */
	struct user **slots;
	uint32_t n_slots;
	uint32_t n_users;
	uint32_t n_open_sessions;
	uint32_t n_open_carts;
	/* Open sessions, their carts and value by currency (carts at risk),
	 * kept by partition.c around every session change. */
	struct open_value open_value;

	/* Timer heap of users ordered by deadline_ms. */
	struct user **heap;
	uint32_t heap_len;
	uint32_t heap_cap;

	/* Users whose resume state changed since the last flush. */
	struct user **dirty;
	uint32_t n_dirty;
	uint32_t dirty_cap;

	/* Resume state chunks (see partition_prepare_flush()): bytes of the
	 * chunks written since the partition's last full snapshot, that
	 * snapshot included (set from PostgreSQL at restore), and totals of
	 * the pack record sizes of encoded users, for the average that
	 * estimates the live state (n_users x average). */
	uint64_t state_log_bytes;
	uint64_t state_enc_bytes;
	uint64_t state_enc_count;

	struct minute_stats *stats; /* per-minute aggregates since last flush */
	struct batch *batch;	    /* outputs being collected */
	struct batch *sealed;	    /* prepared, being flushed (or retried);
				     * NULL when no flush is pending */
	struct batch *spare;	    /* a committed batch kept for reuse */

	struct partition_counters counters;
};

/* Create an empty partition @id. @params and @intern must outlive it.
 * Returns NULL on ENOMEM. */
struct partition *partition_new(int32_t id, const struct session_params *params,
				struct intern *intern);

/* Free the partition, all its users and its batch. NULL is allowed. */
void partition_destroy(struct partition *pt);

/* Apply one decoded event read at @offset. Outputs (abandonments,
 * conversions, aggregates) go to the partition's batch and stats.
 * Returns 0 or -ENOMEM (the partition is then unusable: the caller exits
 * without committing, so nothing is lost). */
int partition_process(struct partition *pt, const struct cw_event *ev,
		      int64_t offset);

/* The rules an event must pass against the partition's state before
 * partition_process() applies it; on failure nothing has changed and the
 * caller dead-letters the record with the reason written to @why:
 *  -ERANGE     event time further ahead than params->max_ahead_ms past
 *              the latest of @wall_ms (the real-time clock), the latest
 *              event time the partition accepted and its watermark (which
 *              idle partitions advance by --time-scale), or older than the
 *              watermark by more than the cart TTL and the recovery
 *              window (too old to belong to any cart still held);
 *  -E2BIG      a cart_add of a product that would make the cart hold
 *              more than params->max_cart_items products;
 *  -EOVERFLOW  a cart_add after which the line would hold more than
 *              CW_EVENT_MAX_QUANTITY units or the cart's value would not
 *              fit in 64 bits.
 *  -ENOSPC     the event names a product, reason or currency the intern
 *              table does not hold while it holds params->max_interned
 *              strings (interned strings are never freed);
 *  -EALREADY   the event_id is one of the user's last USER_RECENT_IDS
 *              applied events' (a duplicate: drop it, it is no error).
 * @ev must have passed cw_event_validate(). Returns 0 when the event may
 * be applied. Never allocates; can't fail otherwise. */
int partition_check_event(const struct partition *pt, const struct cw_event *ev,
			  etime_t wall_ms, char *why, size_t why_size);

/* partition_check_event() and, when it passes, partition_process(), with
 * one user lookup instead of two (the daemon's path for every record).
 * *@refused receives the check's result: 0 when the event was applied,
 * else its code (-ERANGE, -E2BIG, -EOVERFLOW, -ENOSPC, -EALREADY; nothing
 * changed, @why says why). Returns 0 (applied or refused) or
 * partition_process()'s error (the partition is then unusable). */
int partition_check_and_process(struct partition *pt, const struct cw_event *ev,
				int64_t offset, etime_t wall_ms, char *why,
				size_t why_size, int *refused);

/* The latest event time the partition will accept now (see
 * partition_check_event()). Can't fail. */
etime_t partition_ahead_bound(const struct partition *pt, etime_t wall_ms);

/* At assignment: whether the restored watermark lies beyond
 * partition_ahead_bound() (a partition poisoned by a far-future event
 * before that bound existed). Can't fail. */
bool partition_watermark_ahead(const struct partition *pt, etime_t wall_ms);

/* Repair a partition for which partition_watermark_ahead() holds: its
 * watermark and latest accepted event time go back to @wall_ms, and users
 * whose latest event is beyond the bound are dropped (their deletion is
 * written by the next flush; results already committed stay as they
 * are). Returns the number of users dropped, or -ENOMEM. */
int64_t partition_repair_watermark(struct partition *pt, etime_t wall_ms);

/* Advance the watermark to @watermark_ms if it is later, and fire every
 * timer due. Returns 0 or -ENOMEM. */
int partition_advance_watermark(struct partition *pt, etime_t watermark_ms);

/* Idle handling, called on each housekeeping tick with the wall clock:
 * when the partition has been at its end for idle_timeout, its watermark
 * advances by time_scale × the wall time since the previous tick (never
 * for a partition held with pt->watermark_ahead).
 * Returns 0 or -ENOMEM. */
int partition_tick(struct partition *pt, walltime_t now);

/* Restart the idle clock at @now without forgetting that the partition is
 * at its end: after Kafka was unreachable, the silence was not idleness. */
void partition_reset_idle(struct partition *pt, walltime_t now);

/* Note that a message arrived (@now wall time) or the end was reached. */
void partition_note_message(struct partition *pt, walltime_t now);
void partition_note_eof(struct partition *pt, walltime_t now);

/* Move the aggregates and the resume state of every changed user into the
 * collecting batch, stamp it with the offset, watermark and generation, and
 * seal it (pt->sealed); later events go to a fresh batch. The states go
 * into the batch's state chunk (one pack record per changed user, no value
 * for a deleted one), or, when the compaction rule says so (see
 * partition.c), the chunk becomes a full snapshot of every live user and
 * batch->state_full is set. Users left without state are deleted from
 * memory here (their deletion is in the sealed batch). Does nothing when a
 * sealed batch is still pending: a failed flush is retried with the same
 * batch, so a retry never writes an output twice or pairs outputs with the
 * wrong offset.
 * Returns 0 or -ENOMEM. */
int partition_prepare_flush(struct partition *pt);

/* The sealed batch committed: recycle it. Can't fail. */
void partition_flush_done(struct partition *pt);

/* Size the user table for @n users in all (capped at 2^24) before a
 * restore adds them, so it does not grow and rehash step by step as they
 * come (a 1M-user restore spent ~30% of its CPU there). Never shrinks.
 * Returns 0 or -ENOMEM (the table is unchanged and still usable). */
int partition_reserve_users(struct partition *pt, uint64_t n);

/* Restore one user from its resume state (as written by a flush), in chunk
 * order: a user restored before is replaced (the open session and open
 * cart counters follow), and @state NULL deletes the user (from the table
 * and the timer heap; unknown users are ignored).
 * Returns 0, -EBADMSG for a blob that does not decode (the user is then
 * absent, whatever it was before), or -ENOMEM. */
int partition_restore_user(struct partition *pt, const char *user_id,
			   const uint8_t *state, size_t len);

/* Set the bytes of state chunks PostgreSQL holds for the partition since
 * its latest full snapshot (pg_sink_load_users()' *log_bytes), which the
 * compaction rule of partition_prepare_flush() counts on. Can't fail. */
void partition_set_state_log(struct partition *pt, uint64_t bytes);

/* Look up a user (for tests and diagnostics); NULL when absent or dead. */
struct user *partition_find_user(struct partition *pt, const char *user_id);

/* Approximate heap bytes held by the partition's users, carts, table and
 * heap (for the memory benchmark). */
size_t partition_memory(const struct partition *pt);

/* The abandonment id of a user's session (ids_abandonment()), under the
 * name the tests know it by. Can't fail. */
static inline void partition_abandonment_id(const char *user_id,
					    size_t user_id_len,
					    etime_t session_start_ms,
					    char out[37])
{
	ids_abandonment(user_id, user_id_len, session_start_ms, out);
}

/* The first scheme's abandonment id (ids_abandonment_v1()). Can't fail. */
static inline void partition_abandonment_id_v1(const char *user_id,
					       size_t user_id_len,
					       etime_t session_start_ms,
					       char out[37])
{
	ids_abandonment_v1(user_id, user_id_len, session_start_ms, out);
}
