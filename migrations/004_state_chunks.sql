-- SPDX-License-Identifier: Apache-2.0
-- 004_state_chunks — the processor's resume state as packed chunks instead
-- of one row per user: each flush writes, per partition, ONE bytea row
-- holding every user of the partition whose state changed (format of
-- processor/pack.h: per record u32 key length, user id bytes, u32 value
-- length or 0xffffffff for "user deleted", state blob; big-endian). One row
-- per partition and flush costs a fraction of the per-user UPDATE/INSERT
-- of cw_user_state (~2.2 s of server time per 1M events, bench/README.md).
--
-- Internal to the processor; never read it from elsewhere. A partition's
-- state is its latest full_snapshot chunk followed by every later chunk in
-- seq order (a later record of a user replaces an earlier one). A flush
-- writes a full snapshot when the deltas since the last one grow past
-- max(1 MB, 2 x the live state), and then deletes the partition's older
-- chunks in the same transaction (processor/partition.c explains the rule).
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.

CREATE TABLE cw_state_chunks (
    topic         text NOT NULL,
    partition     int NOT NULL,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    full_snapshot boolean NOT NULL, -- true: replaces every earlier chunk of the partition
    users         int NOT NULL,     -- records in chunk
    chunk         bytea NOT NULL,
    PRIMARY KEY (topic, partition, seq)
);
-- The chunks are written once and read at restore: no pglz CPU on write.
ALTER TABLE cw_state_chunks ALTER COLUMN chunk SET STORAGE EXTERNAL;

-- Carry the existing per-user rows over: one full snapshot per
-- (topic, partition), built in the pack format by SQL.
INSERT INTO cw_state_chunks (topic, partition, full_snapshot, users, chunk)
SELECT topic, partition, true, count(*)::int,
       string_agg(int4send(octet_length(convert_to(user_id, 'UTF8')))
                  || convert_to(user_id, 'UTF8')
                  || int4send(length(state)) || state,
                  ''::bytea ORDER BY user_id)
  FROM cw_user_state
 GROUP BY topic, partition
 ORDER BY topic, partition;

DROP TABLE cw_user_state;
