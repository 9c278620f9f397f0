-- SPDX-License-Identifier: Apache-2.0
-- 005_outbox_chunks — the abandonment outbox as one row per partition and
-- flush instead of one row per abandonment.
--
-- A flush writes the framed Avro records of a partition's abandonments as
-- one chunk (processor/pack.h: per record a big-endian u32 key length, the
-- user id, a u32 value length, the record), and the processor deletes the
-- chunk once the broker acknowledged all of it. One row instead of
-- hundreds: the per-abandonment rows and their deletion were ~9% of the
-- server time of a flush (bench-processor PG_STATS=1).
--
-- Internal to the processor, like every cw_* table. No BEGIN/COMMIT here:
-- the runner wraps each file in its own transaction.

CREATE TABLE cw_outbox_chunks (
    chunk_id   uuid PRIMARY KEY,   -- the first abandonment's id in the chunk
    topic      text NOT NULL,      -- consumed topic (cw_partitions key)
    partition  int NOT NULL,
    records    int NOT NULL,
    chunk      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cw_outbox_chunks_partition_idx
    ON cw_outbox_chunks (topic, partition, created_at);
-- The chunks are written once, read after a crash, then deleted:
-- compressing them would only cost CPU.
ALTER TABLE cw_outbox_chunks ALTER COLUMN chunk SET STORAGE EXTERNAL;

-- What the old outbox still held becomes one chunk per abandonment, so
-- nothing waiting for the broker is lost by the upgrade.
INSERT INTO cw_outbox_chunks (chunk_id, topic, partition, records, chunk, created_at)
SELECT abandonment_id, topic, partition, 1,
       int4send(octet_length(convert_to(user_id, 'UTF8'))) || convert_to(user_id, 'UTF8')
         || int4send(length(payload)) || payload,
       created_at
FROM cw_outbox;
DROP TABLE cw_outbox;
