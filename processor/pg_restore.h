/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_restore — the sink's reads: claiming a partition (fencing every
 * earlier owner's flushes), streaming back the resume state of its users
 * and its outbox of unacknowledged abandonments, and deleting outbox
 * chunks the broker acknowledged. These run on a struct pg_sink
 * (pg_sink.h: creation, connection, errors) and follow its rules: the
 * sink's thread, blocking calls, a broken connection is reset first and
 * -ENOTCONN means back off and call again; messages in
 * pg_sink_last_error().
 *
 * Not for: the flush transaction (pg_sink.h), or keeping what was read
 * (the callbacks copy what they keep).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pg_sink;

/* Take @partition for this processor (@owner: a name for humans, e.g.
 * "host:pid"). In one statement, insert the cw_partitions row or bump its
 * generation (clearing its last flush token, so no earlier flush whose
 * COMMIT answer was lost can be mistaken for a later one), and return the new
 * *generation (fence every later flush of the partition with it:
 * batch->generation), the committed *next_offset (PG_SINK_OFFSET_NONE if none)
 * and *watermark_ms (PG_SINK_WATERMARK_NONE if none). From then on, flushes by
 * any earlier owner fail with -ESTALE. Returns 0, -ENOTCONN (retry later) or
 * -EIO/-EAGAIN with the message in pg_sink_last_error(). */
int pg_sink_claim_partition(struct pg_sink *ps, int32_t partition,
			    const char *owner, int64_t *generation,
			    int64_t *next_offset, int64_t *watermark_ms);

/* Whether the watermark the last successful pg_sink_claim_partition()
 * returned was written by a flush of a processor that bounds event time
 * (cw_partitions.watermark_checked, migration 007): only an unchecked one
 * beyond the clock-skew bound can be an earlier version's poison. Can't
 * fail. The sink's thread. */
bool pg_sink_watermark_checked(const struct pg_sink *ps);

/* Called once per record (user state) or row (outbox) by the loaders. The
 * pointers are valid only during the call (copy what you keep); @user_id
 * and @abandonment_id are NUL-terminated; @state is NULL (and @len 0) for
 * a user deleted by a later chunk. Return 0 to go on, or a negative errno
 * code to stop: the loader then returns that code (after draining the
 * query). */
typedef int (*pg_sink_user_cb)(void *opaque, const char *user_id,
			       const uint8_t *state, size_t len);

/* Called once by pg_sink_load_users() before the first record with how
 * many records the chunks to load hold in all (the sum of their
 * cw_state_chunks.users): an upper bound on the users they restore (a
 * user changed in several chunks counts in each, a deletion counts), to
 * size tables before they fill. Same return rule as the record
 * callbacks. */
typedef int (*pg_sink_size_cb)(void *opaque, uint64_t records);

typedef int (*pg_sink_outbox_cb)(void *opaque, const char *chunk_id,
				 const uint8_t *chunk, size_t len);

/* Stream the stored resume state of @partition to @cb (and first their
 * number to @size_cb, unless NULL): the records of
 * its cw_state_chunks rows from the latest full snapshot on, in seq order,
 * so a user may come several times and the last record wins (@state NULL:
 * deleted). One chunk in memory at a time (single-row mode, binary
 * results: no bytea decoding). *@log_bytes (may be NULL) receives the
 * bytes of the chunks read, for the compaction rule
 * (partition_set_state_log()); 0 on failure.
 * Returns 0, the callback's error, -EBADMSG for a chunk that does not
 * parse (the message names the partition and the chunk's seq), -ENOMEM,
 * or -ENOTCONN/-EIO; a failure after some records were delivered means
 * the caller must discard what it loaded. */
int pg_sink_load_users(struct pg_sink *ps, int32_t partition,
		       pg_sink_user_cb cb, pg_sink_size_cb size_cb,
		       void *opaque, uint64_t *log_bytes);

/* Stream the outbox chunks of @partition (abandonments written to
 * PostgreSQL but not yet acknowledged by the broker), oldest first. A
 * chunk holds the abandonments of one partition in one flush, in pack
 * format (pack.h: key user id, value the framed Avro record); its id is
 * the first abandonment's id. Same contract as pg_sink_load_users(). */
int pg_sink_load_outbox(struct pg_sink *ps, int32_t partition,
			pg_sink_outbox_cb cb, void *opaque);

/* Delete the outbox chunks of the @n chunk ids (uuid text) in one
 * statement, once the broker acknowledged all their records. Unknown ids are
 * ignored (deleting twice is harmless). Returns 0, -EINVAL if an id is not a
 * uuid, -ENOTCONN or -EIO. */
int pg_sink_outbox_delete(struct pg_sink *ps, const char *const *chunk_ids,
			  size_t n);
