-- SPDX-License-Identifier: Apache-2.0
-- 007_watermark_checked — which stored watermarks may be trusted.
--
-- Processors before this migration let one far-future event time move a
-- partition's watermark for good. Processors from this migration on refuse
-- events further ahead than --max-clock-skew, and every flush they write
-- sets watermark_checked. At assignment a processor reports and holds a
-- partition whose watermark is beyond the bound and was NOT written that
-- way (see README, "A partition poisoned by an earlier version"); a
-- checked watermark ahead of the wall clock is a simulation's and trusted.
-- No BEGIN/COMMIT here: the runner wraps each file in its own transaction.
ALTER TABLE cw_partitions
    ADD COLUMN watermark_checked boolean NOT NULL DEFAULT false;
