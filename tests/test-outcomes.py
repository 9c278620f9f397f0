#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""test-outcomes — report_abandonment_outcomes as computed since 014 (window
functions, no per-user index) against its 008 definition (two lookups per
row), row for row, on random user histories in the run-with-servers
PostgreSQL.

The reference is 008's CREATE VIEW statement itself, read from the
migration file and created under another name before 014 replaces the
view. The histories mix what the processor writes (one user's sessions one
after another, checkouts between them, recoveries) with the boundaries of
the definition (a checkout at the very instant of an abandonment's last
activity or of the next one's, a session starting at the instant the
previous one ended) and users whose abandonments overlap in time, which the
processor never writes but the definition still answers. Compared: the
whole view, and report_abandonment_outcomes_between() on random ranges
(some empty, some cutting through a user's history) against the reference
filtered by the same range, as Grafana's $__timeFilter does.
"""
import datetime as dt
import os
import pathlib
import random
import re
import subprocess
import sys
import uuid

SRC = pathlib.Path(os.environ["CARTWATCH_SOURCE_ROOT"])
PG = os.environ["CARTWATCH_PG"]
DB = "t_outcomes"
T0 = dt.datetime(2026, 7, 8, tzinfo=dt.timezone.utc)


def fail(msg):
    print(f"test-outcomes: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(f"test-outcomes: {msg}", file=sys.stderr)


def psql(sql=None, file=None, db=DB, stdin=None):
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", f"{PG} dbname={db}"]
    if file:
        cmd += ["-1", "-f", str(file)]
    else:
        cmd += ["-c", sql]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"psql failed: {r.stderr.strip()}\n{(sql or str(file))[:300]}")
    return r.stdout.strip()


def histories(rng):
    """Random abandonment and conversion rows (CSV lines) for 400 users."""
    ab, co = [], []
    counts = {"overlapping users": 0, "ties": 0}
    for u in range(400):
        user = f"user-{u}"
        t = T0 + dt.timedelta(seconds=rng.randrange(0, 3600))
        overlapping = u % 10 == 0
        counts["overlapping users"] += overlapping
        starts = set()
        for _ in range(rng.randrange(1, 9)):
            kind = rng.random()
            if kind < 0.35:  # a checkout
                t += dt.timedelta(seconds=rng.randrange(0, 600))
                co.append((user, t))
                continue
            if overlapping and ab and rng.random() < 0.5:
                # Starts inside an earlier session of the user.
                start = t - dt.timedelta(seconds=rng.randrange(1, 900))
            elif rng.random() < 0.1:
                start = t  # starts the instant the previous one ended
                counts["ties"] += 1
            else:
                start = t + dt.timedelta(seconds=rng.randrange(60, 4000))
            if start in starts:  # (user, session start) is unique, as ids are
                start += dt.timedelta(milliseconds=1)
            starts.add(start)
            last = start + dt.timedelta(seconds=rng.randrange(0, 1200))
            timeout = dt.timedelta(seconds=rng.choice((60, 600, 1800)))
            recovered = rng.random() < 0.15
            ab.append((user, start, last, last + timeout, recovered))
            t = max(t, last)
            if rng.random() < 0.15:  # a checkout at the instant of its end
                co.append((user, last))
                counts["ties"] += 1
    ab_rows = []
    for i, (user, start, last, abandoned, recovered) in enumerate(ab):
        rec_at = (abandoned + dt.timedelta(minutes=5)).isoformat() if recovered else ""
        rec_val = "500" if recovered else ""
        ab_rows.append(f"{uuid.UUID(int=rng.getrandbits(128))},{user},{start.isoformat()},"
                       f"{last.isoformat()},{abandoned.isoformat()},1,{1000 + i},EUR,,"
                       f"{rec_at},{rec_val},0,{{}},{{}},{{}}")
    co_rows = [f"{uuid.UUID(int=rng.getrandbits(128))},{user},e{i},{at.isoformat()},1,700,EUR,,0"
               for i, (user, at) in enumerate(co)]
    return ab_rows, co_rows, counts


def differences(got_sql, want_sql):
    return int(psql(f"SELECT count(*) FROM (({got_sql} EXCEPT ALL {want_sql}) UNION ALL "
                    f"({want_sql} EXCEPT ALL {got_sql})) d"))


def main():
    seed = int(os.environ.get("CARTWATCH_TEST_SEED", random.randrange(1 << 30)))
    log(f"seed {seed} (CARTWATCH_TEST_SEED repeats it)")
    rng = random.Random(seed)
    psql(f"CREATE DATABASE {DB}", db="postgres")
    migrations = sorted((SRC / "migrations").glob("[0-9][0-9][0-9]_*.sql"))
    before = [m for m in migrations if m.name < "014"]
    after = [m for m in migrations if m.name >= "014"]
    for m in before:
        psql(file=m)
    # 008's definition, kept under another name as the reference.
    text = (SRC / "migrations" / "008_report_truth.sql").read_text()
    ref = re.search(r"CREATE VIEW report_abandonment_outcomes AS.*?;\n", text, re.S)
    if not ref:
        fail("no CREATE VIEW report_abandonment_outcomes in 008")
    psql(ref.group(0).replace("report_abandonment_outcomes", "ref_outcomes_008", 1))
    for m in after:
        psql(file=m)
    if psql("SELECT count(*) FROM pg_indexes WHERE indexname IN "
            "('cart_abandonments_user_id_idx', 'cart_conversions_user_id_idx')") != "0":
        fail("the per-user indexes are still there after 014")

    ab_rows, co_rows, counts = histories(rng)
    psql("\\copy cart_abandonments (abandonment_id, user_id, session_start, last_activity_at, "
         "abandoned_at, item_count, cart_value_cents, currency, last_remove_reason, recovered_at, "
         "recovered_value_cents, kafka_partition, item_product_ids, item_quantities, "
         "item_unit_price_cents) FROM STDIN WITH (FORMAT csv)", stdin="\n".join(ab_rows) + "\n")
    psql("\\copy cart_conversions (conversion_id, user_id, event_id, checkout_at, item_count, "
         "cart_value_cents, currency, recovered_abandonment_id, kafka_partition) "
         "FROM STDIN WITH (FORMAT csv)", stdin="\n".join(co_rows) + "\n")
    stats = psql("SELECT count(*), count(superseded_by), count(*) FILTER (WHERE carried_over), "
                 "count(*) FILTER (WHERE missed AND NOT carried_over) FROM ref_outcomes_008")
    n, superseded, carried, missed_bought = map(int, stats.split("|"))
    log(f"{len(ab_rows)} abandonments, {len(co_rows)} checkouts: {superseded} superseded, "
        f"{carried} carried over, {missed_bought} missed then bought; {counts}")
    if min(superseded, carried, missed_bought) < 10 or n != len(ab_rows):
        fail("the histories do not exercise every outcome: the test proves nothing")

    bad = differences("SELECT * FROM report_abandonment_outcomes",
                      "SELECT * FROM ref_outcomes_008")
    if bad:
        fail(f"report_abandonment_outcomes differs from 008's in {bad} rows")
    log(f"the view equals 008's on all {n} rows")

    lo = psql("SELECT extract(epoch FROM min(abandoned_at)) FROM cart_abandonments")
    hi = psql("SELECT extract(epoch FROM max(abandoned_at)) FROM cart_abandonments")
    lo, hi = float(lo), float(hi)
    total = 0
    for i in range(40):
        a = rng.uniform(lo - 600, hi + 600)
        b = a + rng.choice((0, 60, 900, 3600, 4 * 3600, 48 * 3600))
        frm = dt.datetime.fromtimestamp(a, dt.timezone.utc).isoformat()
        to = dt.datetime.fromtimestamp(b, dt.timezone.utc).isoformat()
        want = (f"SELECT * FROM ref_outcomes_008 "
                f"WHERE abandoned_at BETWEEN '{frm}' AND '{to}'")
        got = f"SELECT * FROM report_abandonment_outcomes_between('{frm}', '{to}')"
        bad = differences(got, want)
        if bad:
            fail(f"report_abandonment_outcomes_between('{frm}', '{to}') differs from 008's "
                 f"view in that range in {bad} rows")
        total += int(psql(f"SELECT count(*) FROM ({want}) w"))
    if total == 0:
        fail("no range held an abandonment: the test proves nothing")
    log(f"report_abandonment_outcomes_between equals 008's on 40 ranges ({total} rows)")
    log("PASS")


main()
