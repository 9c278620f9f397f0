#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""test-dashboard.py — every panel of the Grafana dashboard
(docker/grafana/dashboards/cartwatch.json) returns data with the columns
the panel uses, on a database filled by the real pipeline.

Runs under tests/run-with-servers --pg --kafka embedded. It creates the
compose stack's roles with docker/postgres/initdb/10-cartwatch-roles.sh,
produces 20000 simulated events, runs cartwatch-processor as the writer
role until everything is processed, then for every panel target expands
Grafana's macros the way its PostgreSQL datasource does ($__timeFilter,
$__timeGroup, $__timeGroupAlias, $__timeFrom, $__timeTo, $__interval,
$__interval_ms, ...) and runs the SQL with psql as the read-only role
Grafana logs in as. Each target must return at least one row; a time
series needs a numeric or timestamp "time" column in ascending order and
numeric values; every column the panel names (field overrides, the table's
organize transformation, a stat's or bar chart's field) must be in the
result. The datasource uid of every panel must be the provisioned one.

Event panels are run over the event-time range of the data (2026-07-08),
processor status panels over the wall-clock minutes of the run.
Needs CARTWATCH_PRODUCER, CARTWATCH_PROCESSOR (meson), PG* and
CARTWATCH_BOOTSTRAP_SERVERS (run-with-servers); honours
CARTWATCH_TEST_WRAPPER and CARTWATCH_SLOW.
"""
import csv
import datetime as dt
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

SRC = os.environ.get("CARTWATCH_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(SRC, "docker/grafana/dashboards/cartwatch.json")
DATASOURCES = os.path.join(SRC, "docker/grafana/provisioning/datasources/cartwatch.yaml")
ROLES_SCRIPT = os.path.join(SRC, "docker/postgres/initdb/10-cartwatch-roles.sh")
WRITER, READER = "cartwatch_writer", "cartwatch_reader"
EVENTS = 20000
SLOW = float(os.environ.get("CARTWATCH_SLOW", "1"))

failures = []


def log(msg):
    print(f"test-dashboard: {msg}", flush=True)


def fail(msg):
    failures.append(msg)
    print(f"test-dashboard: FAIL: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"test-dashboard: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def psql(sql, user, csv_out=False, stdin=None, check=True):
    """Run SQL through psql as USER; the completed process."""
    env = dict(os.environ, PGUSER=user)
    env.pop("CARTWATCH_PG", None)
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    args += ["--csv"] if csv_out else ["-At"]
    if stdin is None:
        args += ["-c", sql]
    r = subprocess.run(args, input=stdin, env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        die(f"psql as {user} failed: {r.stderr.strip()}\n{sql}")
    return r


def scalar(sql, user=WRITER):
    return psql(sql, user).stdout.strip()


# ---------------------------------------------------------------- pipeline

def wrapper():
    return shlex.split(os.environ.get("CARTWATCH_TEST_WRAPPER", ""))


def create_roles():
    env = dict(os.environ, POSTGRES_USER=os.environ["PGUSER"],
               POSTGRES_DB=os.environ["PGDATABASE"],
               CARTWATCH_DB_WRITER_PASSWORD="writer-test",
               CARTWATCH_DB_READER_PASSWORD="reader-test")
    r = subprocess.run([ROLES_SCRIPT], env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        die(f"{ROLES_SCRIPT} failed:\n{r.stdout}")
    log("roles created by docker/postgres/initdb/10-cartwatch-roles.sh")


def produce(work):
    cmd = wrapper() + [os.environ["CARTWATCH_PRODUCER"],
                       "-b", os.environ["CARTWATCH_BOOTSTRAP_SERVERS"],
                       "--rate", "0", "--events", str(EVENTS), "--seed", "3",
                       "--start-time", "2026-07-08T00:00:00Z"]
    with open(os.path.join(work, "producer.log"), "w") as logf:
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=logf,
                           timeout=300 * SLOW)
    if r.returncode != 0:
        die(f"cartwatch-producer exited {r.returncode}, see {work}/producer.log")
    log(f"{EVENTS} events produced")


def run_processor(work):
    env = dict(os.environ, PGUSER=WRITER)
    env.pop("CARTWATCH_PG", None)  # its conninfo names the superuser
    cmd = wrapper() + [os.environ["CARTWATCH_PROCESSOR"],
                       "--session-timeout", "10m", "--idle-timeout", "1s",
                       "--time-scale", "1000000", "--flush-interval", "200ms",
                       "--instance", "dashboard-test"]
    logpath = os.path.join(work, "processor.log")
    logf = open(logpath, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180 * SLOW
    try:
        while True:
            if proc.poll() is not None:
                die(f"cartwatch-processor exited {proc.returncode}:\n"
                    + open(logpath).read()[-2000:])
            done = psql("SELECT coalesce(sum(next_offset), 0) = %d AND "
                        "(SELECT count(*) FROM cw_state_chunks) = 0 "
                        "FROM cw_partitions" % EVENTS, WRITER, check=False)
            if done.returncode == 0 and done.stdout.strip() == "t":
                break
            if time.monotonic() > deadline:
                die("timed out waiting for the processor to process every event "
                    "and close every session:\n" + open(logpath).read()[-2000:])
            time.sleep(0.2)
        # One more flush period, so a status row of the last flush lands.
        time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60 * SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                fail("cartwatch-processor did not stop within 60 s of SIGTERM")
        logf.close()
    if proc.returncode != 0:
        fail(f"cartwatch-processor exited {proc.returncode} after SIGTERM")
    log("processor done: every event processed, no open session left")


def ensure_status_rows():
    """Insert processor_status(+_history) rows if the processor wrote none."""
    if scalar("SELECT count(*) FROM processor_status") == "0":
        log("NOTE: cartwatch-processor wrote no processor_status row (it does not "
            "write one yet, or removed it at exit): inserting a SYNTHETIC row so "
            "the status panels have something to show")
        psql("""INSERT INTO processor_status (instance, updated_at, started_at,
                    partitions, events_total, events_per_second, users, open_carts,
                    open_sessions, consumer_lag, watermark, dead_letters, last_flush_ms)
                SELECT 'synthetic', now(), now() - interval '1 minute', '{0,1,2,3}',
                       sum(next_offset), 1234.5, 10, 42, 17, 0,
                       to_timestamp(min(watermark_ms) / 1000.0), 0, 12.5
                FROM cw_partitions""", WRITER)
    else:
        log("processor_status written by cartwatch-processor: "
            + scalar("SELECT string_agg(instance, ', ') FROM processor_status"))
    if scalar("SELECT count(*) FROM processor_status_history") == "0":
        log("NOTE: cartwatch-processor wrote no processor_status_history row: "
            "inserting SYNTHETIC history (one row a second for a minute)")
        psql("""INSERT INTO processor_status_history
                    (instance, at, open_carts, open_sessions, consumer_lag, events_per_second)
                SELECT 'synthetic', date_trunc('second', now()) - i * interval '1 second',
                       100 + i, 50 + i, 1000 - 10 * i, 500.0
                FROM generate_series(0, 59) i""", WRITER)
    else:
        log("processor_status_history written by cartwatch-processor: "
            + scalar("SELECT count(*) FROM processor_status_history") + " rows")


# ------------------------------------------------------- Grafana's macros

def rfc3339nano(t):
    """Go's time.RFC3339Nano of a UTC time: trailing zeros of the fraction dropped."""
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ("." + "%06d" % t.microsecond).rstrip("0")
    return s + "Z"


UNITS_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000,
            "w": 7 * 86400000, "M": 30 * 86400000, "y": 365 * 86400000}


def parse_interval_ms(text):
    """gtime.ParseInterval for the forms Grafana produces and users write."""
    m = re.fullmatch(r"\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d|w|M|y)'?\s*", text)
    if not m:
        raise ValueError(f"bad interval {text!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def format_interval(ms):
    """gtime.FormatInterval: the largest whole unit."""
    for unit, size in (("y", UNITS_MS["y"]), ("d", UNITS_MS["d"]), ("h", 3600000),
                       ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            return "%d%s" % (ms // size, unit)
    return "1ms"


def round_interval(ms):
    """Grafana's roundInterval (rangeutil): the next 'nice' interval."""
    table = [(15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
             (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000),
             (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
             (210000, 120000), (450000, 300000), (750000, 600000),
             (1050000, 900000), (1500000, 1200000), (2700000, 1800000),
             (5400000, 3600000), (9000000, 7200000), (16200000, 10800000),
             (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
             (1814400000, 604800000), (3628800000, 2592000000)]
    for limit, nice in table:
        if ms < limit:
            return nice
    return 31536000000


def panel_interval_ms(panel, t_from, t_to, ds_min_interval):
    """$__interval as Grafana computes it for PANEL: range / max data points
    (the panel's width in pixels), rounded, at least the min interval."""
    range_ms = (t_to - t_from).total_seconds() * 1000
    points = panel.get("maxDataPoints") or panel.get("gridPos", {}).get("w", 12) * 80
    ms = round_interval(range_ms / points)
    lower = panel.get("interval") or ds_min_interval
    if lower:
        ms = max(ms, parse_interval_ms(lower.lstrip(">")))
    return int(ms)


MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


def expand(sql, t_from, t_to, interval_ms):
    """The SQL Grafana's PostgreSQL datasource sends for a range and interval."""
    # Template variables first (frontend and sqleng.Interpolate): _ms first.
    for name, value in (("__interval_ms", str(interval_ms)),
                        ("__interval", format_interval(interval_ms)),
                        ("__from", str(int(t_from.timestamp() * 1000))),
                        ("__to", str(int(t_to.timestamp() * 1000)))):
        sql = re.sub(r"\$\{%s\}|\$%s(?!\w)" % (name, name), value, sql)
    sql = sql.replace("$__unixEpochFrom()", str(int(t_from.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(t_to.timestamp())))
    frm, to = rfc3339nano(t_from), rfc3339nano(t_to)

    def group(args):
        if len(args) < 2:
            raise ValueError("$__timeGroup needs a column and an interval")
        secs = parse_interval_ms(args[1].strip("'")) / 1000
        return "floor(extract(epoch from %s)/%s)*%s" % (args[0], "%g" % secs, "%g" % secs)

    def one(m):
        name = m.group(1)
        args = [a.strip(" ") for a in m.group(2).split(",")]
        # Grafana < 5.3 compatibility: "$__timeGroup(...)," means the alias form.
        if name == "__timeGroup" and sql[m.end():m.end() + 1] == ",":
            name = "__timeGroupAlias"
        if name == "__time":
            return '%s AS "time"' % args[0]
        if name == "__timeEpoch":
            return 'extract(epoch from %s) as "time"' % args[0]
        if name == "__timeFilter":
            return "%s BETWEEN '%s' AND '%s'" % (args[0], frm, to)
        if name == "__timeFrom":
            return "'%s'" % frm
        if name == "__timeTo":
            return "'%s'" % to
        if name == "__timeGroup":
            return group(args)
        if name == "__timeGroupAlias":
            return group(args) + ' AS "time"'
        if name == "__unixEpochFilter":
            return "%s >= %d AND %s <= %d" % (args[0], int(t_from.timestamp()),
                                              args[0], int(t_to.timestamp()))
        raise ValueError(f"macro ${name} is not one Grafana's PostgreSQL datasource knows")

    sql = MACRO_RE.sub(one, sql)
    left = re.search(r"\$\{?[_a-zA-Z]\w*", sql)
    if left:
        raise ValueError(f"unexpanded variable {left.group(0)}")
    return sql


# ------------------------------------------------------------- the checks

NUMERIC = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
TIMEISH = NUMERIC | {"timestamp with time zone", "timestamp without time zone", "date"}


def run_target(sql):
    """(columns, types, rows) of SQL run as the read-only role."""
    body = sql.strip().rstrip(";")
    desc = psql(None, READER, csv_out=True, stdin=body + "\n\\gdesc\n", check=False)
    if desc.returncode != 0:
        raise RuntimeError(desc.stderr.strip())
    described = list(csv.reader(io.StringIO(desc.stdout)))[1:]
    types = {name: re.sub(r"\(.*\)", "", typ) for name, typ in described}
    out = psql(None, READER, csv_out=True, stdin=body + ";\n", check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    table = list(csv.reader(io.StringIO(out.stdout)))
    return [n for n, _ in described], types, table[1:]


def named_columns(panel):
    """The field names PANEL refers to: overrides, organize, stat/barchart fields."""
    names = set()
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        m = o.get("matcher", {})
        if m.get("id") == "byName":
            names.add(m["options"])
    for t in panel.get("transformations", []):
        if t.get("id") == "organize":
            opts = t.get("options", {})
            for key in ("renameByName", "indexByName", "excludeByName"):
                names.update(opts.get(key, {}))
    opts = panel.get("options", {})
    if opts.get("xField"):
        names.add(opts["xField"])
    return names


def check_target(panel, target, cols, types, rows):
    title = panel.get("title")
    where = f"panel {title!r}, target {target.get('refId')}"
    if len(set(cols)) != len(cols):
        fail(f"{where}: duplicate column names {cols}")
    if not rows:
        fail(f"{where}: no rows")
        return
    for name in sorted(named_columns(panel) - set(cols)):
        fail(f"{where}: the panel uses column {name!r}, the query returns {cols}")
    fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if fields:
        pat = fields[1:-1] if fields.startswith("/") and fields.endswith("/") else \
            "^" + re.escape(fields) + "$"
        if not any(re.search(pat, c) for c in cols):
            fail(f"{where}: reduceOptions.fields {fields} matches none of {cols}")
    fmt = target.get("format", "time_series")
    value_cols = [c for c in cols if c not in ("time", "time_sec", "metric")]
    if fmt == "time_series":
        if "time" not in cols:
            fail(f"{where}: a time series needs a column named time, got {cols}")
            return
        if types["time"] not in TIMEISH:
            fail(f"{where}: column time is {types['time']}, not a time or a number")
        i = cols.index("time")
        times = [r[i] for r in rows]
        if any(t == "" for t in times):
            fail(f"{where}: NULL time")
        elif types["time"] in NUMERIC and \
                [float(t) for t in times] != sorted(float(t) for t in times):
            fail(f"{where}: rows are not in ascending time order")
        if "metric" in cols and types["metric"] not in ("text", "character varying"):
            fail(f"{where}: column metric is {types['metric']}, not text")
        if not value_cols:
            fail(f"{where}: no value column besides time, got {cols}")
    for c in value_cols:
        if panel["type"] in ("timeseries", "stat") and types[c] not in NUMERIC:
            fail(f"{where}: value column {c} is {types[c]}, not numeric")
    numeric = [c for c in value_cols if types[c] in NUMERIC]
    if panel["type"] != "table" and numeric and not any(
            r[cols.index(c)] != "" for r in rows for c in numeric):
        fail(f"{where}: every value is NULL")


def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows


def status_panel(panel):
    return any(re.search(r"\bprocessor_status", t.get("rawSql", ""))
               for t in panel.get("targets", []))


def main():
    for var in ("CARTWATCH_PRODUCER", "CARTWATCH_PROCESSOR", "CARTWATCH_BOOTSTRAP_SERVERS",
                "PGHOST", "PGDATABASE", "PGUSER"):
        if not os.environ.get(var):
            die(f"{var} is not set: run through meson test (run-with-servers --pg --kafka)")
    work = os.environ.get("CARTWATCH_TEST_DIR") or "/tmp"

    ds_yaml = open(DATASOURCES).read()
    m = re.search(r"^\s*uid:\s*(\S+)\s*$", ds_yaml, re.M)
    ds_uid = m.group(1) if m else die("no uid in " + DATASOURCES)
    m = re.search(r"^\s*timeInterval:\s*(\S+)\s*$", ds_yaml, re.M)
    ds_min_interval = m.group(1) if m else None
    dash = json.load(open(DASHBOARD))

    run_started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    create_roles()
    produce(work)
    run_processor(work)
    ensure_status_rows()
    if psql("INSERT INTO processor_status (instance, updated_at, started_at) "
            "VALUES ('x', now(), now())", READER, check=False).returncode == 0:
        fail(f"{READER} can write: it must be read-only")

    # Event panels: the event-time span of the data, to the minute.
    span = scalar("""SELECT extract(epoch from min(t))::bigint || ' ' || extract(epoch from max(t))::bigint
                     FROM (SELECT bucket AS t FROM product_stats_minute
                           UNION ALL SELECT abandoned_at FROM cart_abandonments
                           UNION ALL SELECT recovered_at FROM cart_abandonments
                           UNION ALL SELECT checkout_at FROM cart_conversions) s""")
    lo, hi = (int(x) for x in span.split())
    utc = dt.timezone.utc
    event_range = (dt.datetime.fromtimestamp(lo - lo % 60, utc),
                   dt.datetime.fromtimestamp(hi - hi % 60 + 60, utc))
    wall_range = (run_started - dt.timedelta(minutes=5),
                  dt.datetime.now(utc).replace(microsecond=0) + dt.timedelta(minutes=1))
    log(f"event-time range {rfc3339nano(event_range[0])} .. {rfc3339nano(event_range[1])}, "
        f"wall-clock range {rfc3339nano(wall_range[0])} .. {rfc3339nano(wall_range[1])}")
    log("data: " + scalar("""SELECT format('%s abandonments (%s recovered), %s conversions, '
                                        '%s product-minute rows, %s reason-minute rows',
        (SELECT count(*) FROM cart_abandonments),
        (SELECT count(recovered_at) FROM cart_abandonments),
        (SELECT count(*) FROM cart_conversions),
        (SELECT count(*) FROM product_stats_minute),
        (SELECT count(*) FROM remove_reasons_minute))"""))

    checked = 0
    for panel in panels_of(dash):
        if panel.get("type") == "row":
            continue
        title = panel.get("title")
        targets = panel.get("targets", [])
        if not targets:
            fail(f"panel {title!r} has no query")
        for ds in [panel.get("datasource")] + [t.get("datasource") for t in targets]:
            if not ds or ds.get("uid") != ds_uid:
                fail(f"panel {title!r}: datasource {ds} is not the provisioned uid {ds_uid}")
        t_from, t_to = wall_range if status_panel(panel) else event_range
        interval_ms = panel_interval_ms(panel, t_from, t_to, ds_min_interval)
        for target in targets:
            if target.get("rawQuery") is False or target.get("editorMode") != "code":
                fail(f"panel {title!r}: target {target.get('refId')} is not a raw SQL (code) query")
            try:
                sql = expand(target.get("rawSql", ""), t_from, t_to, interval_ms)
                cols, types, rows = run_target(sql)
            except (ValueError, RuntimeError) as e:
                fail(f"panel {title!r}, target {target.get('refId')}: {e}")
                continue
            check_target(panel, target, cols, types, rows)
            checked += 1
            log(f"ok   {title!r} ({panel['type']}, $__interval {format_interval(interval_ms)}): "
                f"{len(rows)} rows, columns {', '.join(cols)}")
    if checked < 10:
        fail(f"only {checked} panel queries ran; the dashboard lost panels")
    if failures:
        die(f"{len(failures)} failure(s)")
    log(f"all {checked} panel queries return the columns their panels use")


if __name__ == "__main__":
    main()
