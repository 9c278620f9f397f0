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

Beyond the shape, the panels must tell the truth (issue 14). A few
JSON-lines events in EUR are added to the simulated USD ones: a cart
carried over and abandoned twice, a cart abandoned after a removal, a
checkout. A processor_status row and history of a stopped instance
(updated 3 minutes ago) are inserted, and a row of a running one with 7
open sessions. The test then computes in Python,
from the raw rows of cart_abandonments and cart_conversions (not from the
views), what the panels must show and compares: the abandonment rate at
every minute (each cart at its last activity), the rate over the range,
missed revenue per currency with a carried-over cart counted once, the
carried-over carts, the abandonment causes, carts at risk now and that no
panel counts the stopped instance. Dashboard variables are expanded
($currency to every currency in the data, $bucket to 1m). The provisioned
alert rules (docker/grafana/provisioning/alerting) must parse, have the
fields Grafana requires, and their queries must run and give a value.

Carts at risk now: a second processor (instance dashboard-risk) reads its
own one-partition topic, cart-events-risk, holding carts at risk in USD and
EUR, a carried-over cart, a user back with one, open sessions with empty
carts and a cart whose currency changed, and is stopped with those sessions
open. tests/e2e/oracle.py, fed the events read back from Kafka, says what
was open once the last event was applied; the processor's
processor_status_open_value rows, its /metrics and the "Carts at risk now"
panel (plus live-test's rows, not the stopped instance's) must say the
same.

Product categories: a catalog CSV made from the simulator's catalog (every
fifth product left out, one with an empty category) is loaded with
cartwatch-report load-catalog; the $category variable must list its
categories and '(uncategorized)', and the product panels with one category
selected must show exactly the numbers of that category's products in the
raw rows (categories from the CSV, not from SQL).

Event panels are run over the event-time range of the data (2026-07-08),
processor status panels over the wall-clock minutes of the run.
Needs CARTWATCH_PRODUCER, CARTWATCH_PROCESSOR (meson), PG* and
CARTWATCH_BOOTSTRAP_SERVERS (run-with-servers); honours
CARTWATCH_TEST_WRAPPER and CARTWATCH_SLOW.
"""
import csv
import decimal
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
ALERTS = os.path.join(SRC, "docker/grafana/provisioning/alerting/cartwatch.yaml")
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


# Event time of the extra EUR events: the day after the simulated sale.
EXTRA_BASE_MS = 1783555200000  # 2026-07-09T00:00:00Z
MINUTE_MS = 60000


def extra_events():
    """JSON-lines events in EUR: a carried-over cart abandoned twice, a cart
    abandoned after a removal, and a checkout (session timeout 10m)."""
    b, m = EXTRA_BASE_MS, MINUTE_MS
    ev = [
        ("eur_carry", "cart_add", "ECHO_DOT_5TH_GEN", 2, 1999, None, b),
        ("eur_carry", "cart_add", "MACBOOK_PRO_2023", 1, 150000, None, b + 30 * m),
        ("eur_cause", "cart_add", "ECHO_DOT_5TH_GEN", 1, 1999, None, b + 1 * m),
        # Every event names its price: the built-in catalog prices in USD,
        # and the feeder never takes a USD price for an EUR event.
        ("eur_cause", "cart_remove", "ECHO_DOT_5TH_GEN", 1, 1999, "Too expensive", b + 2 * m),
        ("eur_cause", "cart_add", "MACBOOK_PRO_2023", 1, 150000, None, b + 3 * m),
        ("eur_buy", "cart_add", "ECHO_DOT_5TH_GEN", 1, 1999, None, b + 1 * m),
        ("eur_buy", "checkout_complete", None, None, None, None, b + 4 * m),
    ]
    lines = []
    for user, typ, prod, qty, price, reason, t in ev:
        o = {"user_id": user, "event_type": typ, "currency": "EUR", "event_time": t}
        if prod:
            o["product_id"] = prod
        if qty:
            o["quantity"] = qty
        if price:
            o["unit_price_cents"] = price
        if reason:
            o["reason"] = reason
        lines.append(json.dumps(o))
    return "\n".join(lines) + "\n"


def produce_extra(work):
    text = extra_events()
    cmd = wrapper() + [os.environ["CARTWATCH_PRODUCER"],
                       "-b", os.environ["CARTWATCH_BOOTSTRAP_SERVERS"], "--stdin-json", "--strict"]
    with open(os.path.join(work, "producer-extra.log"), "w") as logf:
        r = subprocess.run(cmd, input=text, text=True, stdout=subprocess.DEVNULL, stderr=logf,
                           timeout=120 * SLOW)
    if r.returncode != 0:
        die(f"cartwatch-producer --stdin-json exited {r.returncode}, see {work}/producer-extra.log")
    n = text.count("\n")
    log(f"{n} extra EUR events produced")
    return n


def run_processor(work, total):
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
                        "FROM cw_partitions" % total, WRITER, check=False)
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


# Carts at risk: a second processor reads its own one-partition topic with
# sessions left open, stops, and oracle.py (tests/e2e) says from the events
# read back from Kafka what was open when the last event was applied.
RISK_TOPIC, RISK_INSTANCE = "cart-events-risk", "dashboard-risk"
RISK_T0 = EXTRA_BASE_MS + 24 * 60 * MINUTE_MS  # 2026-07-10T00:00:00Z
RISK_TIMEOUT_MS = 60 * MINUTE_MS


def risk_events():
    """JSON lines, in time order: carts at risk in USD and EUR, a carried-over
    cart (its session closed), a user back with a carried-over cart, open
    sessions with empty carts, a cart whose currency changed (GBP, then
    USD: counted in USD)."""
    t0, m = RISK_T0, MINUTE_MS
    ev = [
        ("risk_carry", "USD", "cart_add", "ECHO_POP", 1, 1234, None, t0 - 120 * m),
        ("risk_back", "USD", "cart_add", "BLINK_MINI", 1, 700, None, t0 - 120 * m),
        ("risk_usd", "USD", "cart_add", "ECHO_DOT_5TH_GEN", 2, 1000, None, t0),
        ("risk_eur", "EUR", "cart_add", "ECHO_DOT_5TH_GEN", 1, 1999, None, t0),
        ("risk_empty", "EUR", "cart_add", "ECHO_SHOW_5", 1, 500, None, t0),
        ("risk_bought", "USD", "cart_add", "ECHO_SHOW_8", 1, 300, None, t0),
        ("risk_back", "USD", "cart_add", "ECHO_STUDIO", 1, 300, None, t0),
        ("risk_switch", "GBP", "cart_add", "BLINK_MINI", 1, 500, None, t0),
        ("risk_usd", "USD", "cart_add", "FIRE_TV_STICK_4K", 1, 550, None, t0 + m),
        ("risk_empty", "EUR", "cart_remove", "ECHO_SHOW_5", 1, 500, "Changed mind", t0 + m),
        ("risk_bought", "USD", "checkout_complete", None, None, None, None, t0 + m),
        ("risk_switch", "USD", "cart_add", "ECHO_POP", 1, 100, None, t0 + m),
    ]
    lines = []
    for user, cur, typ, prod, qty, price, reason, t in ev:
        o = {"user_id": user, "event_type": typ, "currency": cur, "event_time": t}
        for k, v in (("product_id", prod), ("quantity", qty),
                     ("unit_price_cents", price), ("reason", reason)):
            if v:
                o[k] = v
        lines.append(json.dumps(o))
    return "\n".join(lines) + "\n"


def open_value_rows(instance):
    """{currency: [sessions, carts, value_cents]} of INSTANCE's
    processor_status_open_value rows with an open session."""
    return {r[0]: [int(r[1]), int(r[2]), int(r[3])] for r in rows_of(
        f"""SELECT currency, open_sessions, open_carts, open_value_cents
            FROM processor_status_open_value
            WHERE instance = '{instance}' AND open_sessions > 0""")}


def scrape_open_value(port):
    """The same from the processor's /metrics on PORT; None when it does
    not answer."""
    import urllib.request
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    out = {}
    for k, fam in enumerate(("cartwatch_open_value_sessions", "cartwatch_open_value_carts",
                             "cartwatch_open_cart_value_cents")):
        for cur, v in re.findall(r'^%s\{currency="([^"]+)"\} (\d+)$' % fam, text, re.M):
            out.setdefault(cur, [0, 0, 0])[k] = int(v)
    return {c: v for c, v in out.items() if v[0] > 0}


def run_risk_processor(work):
    """Feed risk_events() to RISK_TOPIC, run a processor on it until its
    status counts every event, stop it; return oracle.py's carts at risk
    {currency: [sessions, carts, value_cents]} for those events."""
    text = risk_events()
    n = text.count("\n")
    bs = os.environ["CARTWATCH_BOOTSTRAP_SERVERS"]
    with open(os.path.join(work, "producer-risk.log"), "w") as logf:
        r = subprocess.run(wrapper() + [os.environ["CARTWATCH_PRODUCER"], "-b", bs,
                                        "-t", RISK_TOPIC, "--stdin-json", "--strict"],
                           input=text, text=True, stdout=subprocess.DEVNULL, stderr=logf,
                           timeout=120 * SLOW)
    if r.returncode != 0:
        die(f"cartwatch-producer -t {RISK_TOPIC} exited {r.returncode}, see {work}/producer-risk.log")
    env = dict(os.environ, PGUSER=WRITER)
    env.pop("CARTWATCH_PG", None)
    cmd = wrapper() + [os.environ["CARTWATCH_PROCESSOR"], "-t", RISK_TOPIC,
                       "-g", "dashboard-risk", "--instance", RISK_INSTANCE,
                       "--session-timeout", "1h", "--allowed-lateness", "5s",
                       "--idle-timeout", "1s", "--time-scale", "1",
                       "--flush-interval", "200ms"]
    port = subprocess.run([os.path.join(SRC, "tests/lib/free-port")], text=True,
                          stdout=subprocess.PIPE, check=True).stdout.strip()
    cmd += ["--metrics-addr", "127.0.0.1:" + port]
    logpath = os.path.join(work, "processor-risk.log")
    with open(logpath, "w") as logf:
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120 * SLOW
        try:
            while True:
                if proc.poll() is not None:
                    die(f"cartwatch-processor on {RISK_TOPIC} exited {proc.returncode}:\n"
                        + open(logpath).read()[-2000:])
                done = psql(f"SELECT events_total FROM processor_status "
                            f"WHERE instance = '{RISK_INSTANCE}'", WRITER, check=False)
                if done.returncode == 0 and done.stdout.strip() == str(n):
                    break
                if time.monotonic() > deadline:
                    die(f"timed out waiting for {RISK_INSTANCE} to count {n} events:\n"
                        + open(logpath).read()[-2000:])
                time.sleep(0.2)
            # /metrics says the same as the status row (checked below
            # against oracle.py), once a snapshot after the last event is out.
            while True:
                metrics = scrape_open_value(port)
                if metrics == open_value_rows(RISK_INSTANCE) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60 * SLOW)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    fail(f"{RISK_INSTANCE} did not stop within 60 s of SIGTERM")
    if proc.returncode != 0:
        fail(f"{RISK_INSTANCE} exited {proc.returncode} after SIGTERM")
    sys.path.insert(0, os.path.join(SRC, "tests/e2e"))
    import oracle
    events = oracle.read_events(bs, RISK_TOPIC, os.path.join(SRC, "schemas/cart_event.avsc"))
    if len(events) != n:
        die(f"read {len(events)} events back from {RISK_TOPIC}, produced {n}")
    o = oracle.Oracle(RISK_TIMEOUT_MS, 5000, 7 * 86400000, 7 * 86400000)
    for part in sorted({e[0] for e in events}):
        o.run_partition([e for e in events if e[0] == part])
    if o.rejected:
        die(f"oracle.py refused events of {RISK_TOPIC}: {o.rejected}")
    # What the processor wrote with its status and served on /metrics:
    # the same, per currency.
    got = open_value_rows(RISK_INSTANCE)
    if got != o.at_risk:
        fail(f"{RISK_INSTANCE} wrote carts at risk {got}, oracle.py says {o.at_risk}")
    if metrics != o.at_risk:
        fail(f"{RISK_INSTANCE}'s /metrics gave carts at risk {metrics}, oracle.py says {o.at_risk}")
    st = scalar(f"SELECT open_sessions FROM processor_status WHERE instance = '{RISK_INSTANCE}'")
    if int(st) != sum(v[0] for v in o.at_risk.values()):
        fail(f"{RISK_INSTANCE}: processor_status.open_sessions {st}, oracle.py says "
             f"{sum(v[0] for v in o.at_risk.values())}")
    log(f"{n} events on {RISK_TOPIC}; carts at risk by oracle.py: {o.at_risk}")
    return o.at_risk


# Product categories: the shop's catalog CSV, made from the simulator's
# built-in catalog with every fifth product left out (uncategorized) and
# one with an empty category, loaded with cartwatch-report load-catalog.
REPORT = os.path.join(SRC, "scripts/report")
CATALOG_TABLE = os.path.join(SRC, "producer/catalog_table.inc")


def load_catalog(work):
    """Write and load the catalog; return {product_id: category} of every
    product the simulator knows ('(uncategorized)' when not in the file or
    with no category)."""
    rows = re.findall(r'^P\("([^"]+)", "([^"]+)", (\d+), \d+\)', open(CATALOG_TABLE).read(), re.M)
    if len(rows) < 50:
        die(f"read {len(rows)} products from {CATALOG_TABLE}")
    cats, lines = {}, ["name,product_id,category,unit_price_cents,currency"]
    for i, (pid, cat, price) in enumerate(rows):
        if i % 5 == 0:
            cats[pid] = "(uncategorized)"
            continue
        if i == 1:
            cat = ""
        cats[pid] = cat or "(uncategorized)"
        name = pid.replace("_", " ").title() + ', "deal"'
        lines.append('"%s",%s,%s,%s,USD' % (name.replace('"', '""'), pid, cat, price))
    path = os.path.join(work, "catalog.csv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    env = dict(os.environ, PGUSER=WRITER)
    env.pop("CARTWATCH_PG", None)
    r = subprocess.run([REPORT, "load-catalog", path], env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        die(f"cartwatch-report load-catalog failed: {r.stdout}")
    log(r.stdout.strip())
    return cats


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


def expand(sql, t_from, t_to, interval_ms, variables=None):
    """The SQL Grafana's PostgreSQL datasource sends for a range and interval,
    with the dashboard VARIABLES (name: text as Grafana interpolates it)."""
    for name, value in (variables or {}).items():
        sql = re.sub(r"\$\{%s\}|\$%s(?!\w)" % (name, name), lambda _m: value, sql)
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
        # A stat may name its rows by a text column (one value per currency).
        if panel["type"] == "stat" and fields and not re.search(pat, c):
            continue
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
    return any(re.search(r"\bprocessor_(status|open_value)", t.get("rawSql", ""))
               for t in panel.get("targets", []))


# ------------------------------------------------- what the panels must say

STALE = "stale-test"
STALE_BIG = 10 ** 7
LIVE = "live-test"  # a running instance with 7 open sessions
LIVE_AT_RISK = (7, 5, 123456)  # its open sessions, carts at risk, their value  # no real processor holds this many carts or lags this much


def insert_stale_instance():
    """A processor that stopped 3 minutes ago: its status and history stay."""
    psql(f"""INSERT INTO processor_status (instance, updated_at, started_at, partitions,
                 open_carts, open_sessions, consumer_lag)
             VALUES ('{STALE}', now() - interval '3 minutes', now() - interval '1 hour',
                     '{{0,1}}', {STALE_BIG}, {STALE_BIG}, {STALE_BIG});
             INSERT INTO processor_status_history
                 (instance, at, open_carts, open_sessions, consumer_lag, events_per_second)
             SELECT '{STALE}', now() - interval '3 minutes' - i * interval '1 second',
                    {STALE_BIG}, {STALE_BIG}, {STALE_BIG}, 1.0
             FROM generate_series(0, 59) i;
             -- The test's processor has just stopped: as if it were still running.
             UPDATE processor_status SET updated_at = now() WHERE instance <> '{STALE}';
             -- A second running one with carts at risk (open sessions) and
             -- more carts in memory than sessions (carried-over carts).
             INSERT INTO processor_status (instance, updated_at, started_at, partitions,
                 open_carts, open_sessions, consumer_lag)
             VALUES ('{LIVE}', now(), now() - interval '1 hour', '{{2,3}}', 50, 7, 11);
             -- Carts at risk of both: the stopped one's must not count.
             INSERT INTO processor_status_open_value
                 (instance, currency, open_sessions, open_carts, open_value_cents)
             VALUES ('{STALE}', 'USD', {STALE_BIG}, {STALE_BIG}, {STALE_BIG}),
                    ('{STALE}', 'XTS', {STALE_BIG}, {STALE_BIG}, {STALE_BIG}),
                    ('{LIVE}', 'USD', {LIVE_AT_RISK[0]}, {LIVE_AT_RISK[1]}, {LIVE_AT_RISK[2]})""",
         WRITER)


def rows_of(sql, user=WRITER):
    out = psql(None, user, csv_out=True, stdin=sql + ";\n")
    return list(csv.reader(io.StringIO(out.stdout)))[1:]


def round4(num, den):
    """num / den rounded to 4 places the way PostgreSQL rounds numeric (half up)."""
    q = decimal.Decimal(num) / decimal.Decimal(den)
    return float(q.quantize(decimal.Decimal("0.0001"), rounding=decimal.ROUND_HALF_UP))


def expected_values():
    """What the panels must show, computed here from the raw rows."""
    ab = [dict(id=r[0], user=r[1], start=float(r[2]), last=float(r[3]), value=int(r[4]),
               currency=r[5], reason=r[6] or None, recovered=r[7] == "t")
          for r in rows_of("""SELECT abandonment_id, user_id, extract(epoch from session_start),
                                     extract(epoch from last_activity_at), cart_value_cents,
                                     currency, last_remove_reason, recovered_at IS NOT NULL
                              FROM cart_abandonments""")]
    cv = [dict(user=r[0], t=float(r[1]), recovering=r[2] == "t")
          for r in rows_of("""SELECT user_id, extract(epoch from checkout_at),
                                     recovered_abandonment_id IS NOT NULL
                              FROM cart_conversions""")]
    by_user = {}
    for c in cv:
        by_user.setdefault(c["user"], []).append(c["t"])
    ab_by_user = {}
    for a in ab:
        ab_by_user.setdefault(a["user"], []).append(a)

    # Each ended cart at its last activity; a recovering checkout is no new cart.
    minutes = {}
    for a in ab:
        minutes.setdefault(a["last"] // 60 * 60, [0, 0])[0] += 1
    for c in cv:
        if not c["recovering"]:
            minutes.setdefault(c["t"] // 60 * 60, [0, 0])[1] += 1
    rate = {m: round4(n, n + k) for m, (n, k) in minutes.items()}
    n_ab = sum(n for n, _ in minutes.values())
    total_rate = round4(n_ab, sum(n + k for n, k in minutes.values()))

    missed, carried, superseded = {}, {}, set()
    for a in ab:
        if a["recovered"]:
            continue
        later = [n for n in ab_by_user[a["user"]] if n["start"] > a["last"]]
        same_cart = [n for n in later
                     if not any(a["last"] < t <= n["last"] for t in by_user.get(a["user"], []))]
        if same_cart:
            superseded.add(a["id"])
            continue
        missed[a["currency"]] = missed.get(a["currency"], 0) + a["value"]
        if not any(t > a["last"] for t in by_user.get(a["user"], [])):
            n, v = carried.get(a["currency"], (0, 0))
            carried[a["currency"]] = (n + 1, v + a["value"])
    causes = {}
    for a in ab:
        k = a["reason"] or "(nothing removed)"
        causes[k] = causes.get(k, 0) + 1
    live = rows_of(f"""SELECT coalesce(sum(open_sessions), 0), coalesce(sum(consumer_lag), 0)
                       FROM processor_status WHERE instance <> '{STALE}'""")[0]
    if int(live[0]) < 7:
        fail(f"the running instances hold {live[0]} open sessions, want at least {LIVE}'s 7")
    return dict(rate=rate, total_rate=total_rate, missed=missed, carried=carried,
                superseded=superseded, causes=causes, users={a["id"]: a["user"] for a in ab},
                open_sessions=int(live[0]), consumer_lag=int(live[1]))


def num(text):
    """A numeric cell rounded to 4 places; None for NULL."""
    return None if text == "" else round(float(text), 4)


def money(text):
    """A money cell (units) in cents; None for NULL."""
    return None if text == "" else round(float(text) * 100)


def check_truth(dash, event_range, wall_range, variables, at_risk, catalog):
    """Run the panels the issue found wrong and compare with expected_values()."""
    exp = expected_values()
    log(f"expected: missed {exp['missed']}, carried over {exp['carried']}, "
        f"{len(exp['superseded'])} superseded abandonments, overall rate {exp['total_rate']}, "
        f"{len(exp['rate'])} minutes with ended carts, causes {exp['causes']}")
    # The EUR events alone: the carried-over cart once (2 x 19.99 + 1500.00)
    # and the cart abandoned after a removal (1500.00).
    if exp["missed"].get("EUR") != 2 * 1999 + 150000 + 150000:
        fail(f"the pipeline's EUR rows are not the ones fed in: missed EUR {exp['missed'].get('EUR')}")
    if not any(exp["users"][i] == "eur_carry" for i in exp["superseded"]):
        fail("eur_carry's first abandonment is not superseded by its second")
    panels = {p.get("id"): p for p in panels_of(dash)}

    def run(pid, rng=event_range, variables=variables):
        p = panels.get(pid)
        if p is None:
            fail(f"no panel with id {pid}")
            return None
        try:
            sql = expand(p["targets"][0]["rawSql"], rng[0], rng[1], 60000, variables)
            cols, _, rows = run_target(sql)
        except (ValueError, RuntimeError) as e:
            fail(f"panel {p.get('title')!r}: {e}")
            return None
        return p.get("title"), [dict(zip(cols, r)) for r in rows]

    def need(got, title, col):
        if got and col not in got[0]:
            fail(f"panel {title!r}: no column {col} in {list(got[0])}")
            return False
        return True

    r = run(8)  # abandonment rate over time, 1-minute buckets
    if r and need(r[1], r[0], "abandonment_rate"):
        got = {float(x["time"]): num(x["abandonment_rate"]) for x in r[1]}
        wrong = sorted(m for m in set(got) | set(exp["rate"]) if got.get(m) != exp["rate"].get(m))
        if wrong:
            m = wrong[0]
            fail(f"panel {r[0]!r}: wrong at {len(wrong)} of {len(exp['rate'])} minutes, first "
                 f"{rfc3339nano(dt.datetime.fromtimestamp(m, dt.timezone.utc))}: "
                 f"{got.get(m)} instead of {exp['rate'].get(m)}")
        else:
            log(f"truth: {r[0]!r} right at all {len(got)} minutes")
    r = run(2)
    if r and need(r[1], r[0], "abandonment_rate"):
        got = num(r[1][0]["abandonment_rate"])
        if got != exp["total_rate"]:
            fail(f"panel {r[0]!r}: {got} instead of {exp['total_rate']}")
    r = run(3)  # missed revenue, per currency, carried-over carts once
    if r and need(r[1], r[0], "currency"):
        got = {x["currency"]: money(x["missed_value"]) for x in r[1]}
        if got != exp["missed"]:
            fail(f"panel {r[0]!r}: {got} (cents) instead of {exp['missed']}")
    r = run(9)  # missed revenue per minute: per currency, adds up to the same
    if r and need(r[1], r[0], "metric"):
        got = {}
        for x in r[1]:
            got[x["metric"]] = got.get(x["metric"], 0) + float(x["missed_value"] or 0)
        got = {k: round(v * 100) for k, v in got.items()}
        if got != exp["missed"]:
            fail(f"panel {r[0]!r}: adds up to {got} (cents) instead of {exp['missed']}")
    r = run(18)  # carried-over carts
    if r and need(r[1], r[0], "carried_over_carts"):
        got = {x["currency"]: (int(x["carried_over_carts"]), money(x["carried_over_value"]))
               for x in r[1]}
        if got != exp["carried"]:
            fail(f"panel {r[0]!r}: {got} instead of {exp['carried']}")
    r = run(17)  # why carts were abandoned
    if r and need(r[1], r[0], "cause"):
        got = {x["cause"]: int(x["carts"]) for x in r[1]}
        if got != exp["causes"]:
            fail(f"panel {r[0]!r}: {got} instead of {exp['causes']}")
    r = run(19)  # recent abandonments
    if r and need(r[1], r[0], "superseded"):
        rows = [x for x in r[1] if x["user_id"] == "eur_carry"]
        if sorted(x["superseded"] for x in rows) != ["f", "t"]:
            fail(f"panel {r[0]!r}: eur_carry's rows {rows}, want one superseded, one not")
    r = run(5, wall_range)  # carts at risk now: per currency, running instances
    if r and need(r[1], r[0], "open_value") and need(r[1], r[0], "open_carts"):
        # oracle.py's for the risk topic, live-test's, and nothing of the
        # first processor (it ran until every session had closed).
        want = {cur: (v[1], v[2]) for cur, v in at_risk.items()}
        n, v = want.get("USD", (0, 0))
        want["USD"] = (n + LIVE_AT_RISK[1], v + LIVE_AT_RISK[2])
        got = {x["currency"]: (int(float(x["open_carts"])), money(x["open_value"]))
               for x in r[1]}
        if any(got.get(k, (0, 0)) != want.get(k, (0, 0)) for k in set(got) | set(want)):
            fail(f"panel {r[0]!r}: {got} (carts, cents) instead of {want}")
        else:
            log(f"truth: {r[0]!r} shows {got} (carts, cents), as expected")
    check_categories(run, need, event_range, variables, catalog)
    r = run(6, wall_range)
    if r and need(r[1], r[0], "consumer_lag") and \
            int(float(r[1][0]["consumer_lag"] or 0)) != exp["consumer_lag"]:
        fail(f"panel {r[0]!r}: {r[1][0]} instead of {exp['consumer_lag']}")
    for pid in (14, 15):
        r = run(pid, wall_range)
        if r and any(float(v) >= STALE_BIG for x in r[1] for k, v in x.items()
                     if k != "time" and v != ""):
            fail(f"panel {r[0]!r}: counts the stopped instance {STALE}")
    r = run(16, wall_range)
    if r and any(x.get("instance") == STALE for x in r[1]):
        fail(f"panel {r[0]!r}: lists the stopped instance {STALE}")
    if r and not any(x.get("instance") == LIVE for x in r[1]):
        fail(f"panel {r[0]!r}: does not list the running instance {LIVE}")


def check_categories(run, need, event_range, variables, catalog):
    """The product panels with one category selected show that category's
    products only, with the numbers of the raw rows of those products (the
    categories from the CSV the test wrote, not from SQL)."""
    frm, to = rfc3339nano(event_range[0]), rfc3339nano(event_range[1])
    stats = rows_of(f"""SELECT product_id, sum(added_qty), sum(removed_qty), sum(purchased_qty)
                        FROM product_stats_minute WHERE bucket BETWEEN '{frm}' AND '{to}'
                        GROUP BY product_id""")
    reasons = rows_of(f"""SELECT product_id, reason, sum(removed_qty) FROM remove_reasons_minute
                          WHERE bucket BETWEEN '{frm}' AND '{to}' GROUP BY 1, 2""")
    items = rows_of(f"""SELECT i.product_id, a.currency, i.quantity::bigint * i.unit_price_cents
                        FROM abandoned_items i JOIN cart_abandonments a USING (abandonment_id)
                        WHERE a.abandoned_at BETWEEN '{frm}' AND '{to}'""")

    def cat(pid):
        return catalog.get(pid, "(uncategorized)")
    seen = set()
    for want in ("Smart Home", "(uncategorized)"):
        var = dict(variables, category="'%s'" % want)
        mine = [r for r in stats if cat(r[0]) == want]
        seen.update(r[0] for r in mine)
        totals = [sum(int(r[k]) for r in mine) for k in (1, 2, 3)]
        r = run(7, variables=var)  # cart activity
        if r and need(r[1], r[0], "added"):
            got = [round(sum(float(x[c] or 0) for x in r[1])) for c in ("added", "removed", "purchased")]
            if got != totals or not totals[0]:
                fail(f"panel {r[0]!r} for {want}: added/removed/purchased {got}, want {totals}")
        by_reason = {}
        for pid, reason, qty in reasons:
            if cat(pid) == want:
                by_reason[reason] = by_reason.get(reason, 0) + int(qty)
        r = run(12, variables=var)  # why units left carts
        if r and need(r[1], r[0], "units"):
            got = {x["reason"]: int(x["units"]) for x in r[1]}
            if got != by_reason or not got:
                fail(f"panel {r[0]!r} for {want}: {got}, want {by_reason}")
        r = run(13, variables=var)  # removals by reason per minute
        if r and need(r[1], r[0], "units"):
            got = round(sum(float(x["units"] or 0) for x in r[1]))
            if got != sum(by_reason.values()):
                fail(f"panel {r[0]!r} for {want}: {got} units, want {sum(by_reason.values())}")
        value = {}
        for pid, cur, v in items:
            if cat(pid) == want:
                value[(pid, cur)] = value.get((pid, cur), 0) + int(v)
        top = sorted(value.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        r = run(11, variables=var)  # top abandoned products
        if r and need(r[1], r[0], "category"):
            got = [((x["product_id"], x["currency"]), money(x["abandoned_value"])) for x in r[1]]
            if got != top or not top:
                fail(f"panel {r[0]!r} for {want}: {got[:3]}..., want {top[:3]}...")
            if any(x["category"] != want for x in r[1]):
                fail(f"panel {r[0]!r} for {want}: categories {sorted({x['category'] for x in r[1]})}")
        log(f"truth: category {want!r}: {len(mine)} products, added/removed/purchased {totals}, "
            f"{len(value)} abandoned product lines")
    if not seen or seen == {r[0] for r in stats}:
        fail("the two categories checked cover no product or every product")


def check_alert_rules(ds_uid):
    """The provisioned alert rules parse, have the fields Grafana requires,
    and every query runs as the read-only role and gives a numeric value."""
    import yaml
    try:
        doc = yaml.safe_load(open(ALERTS))
    except (OSError, yaml.YAMLError) as e:
        fail(f"{ALERTS}: {e}")
        return
    if doc.get("apiVersion") != 1 or not doc.get("groups"):
        fail(f"{ALERTS}: want apiVersion 1 and groups")
        return
    uids, n = set(), 0
    for g in doc["groups"]:
        for key in ("orgId", "name", "folder", "interval", "rules"):
            if key not in g:
                fail(f"{ALERTS}: group {g.get('name')!r} has no {key}")
        for r in g.get("rules", []):
            n += 1
            title = r.get("title")
            for key in ("uid", "title", "condition", "data", "noDataState", "execErrState",
                        "for", "annotations"):
                if key not in r:
                    fail(f"alert {title!r}: no {key}")
            if r.get("uid") in uids:
                fail(f"alert {title!r}: duplicate uid {r.get('uid')}")
            uids.add(r.get("uid"))
            refs = {d.get("refId"): d for d in r.get("data", [])}
            if r.get("condition") not in refs:
                fail(f"alert {title!r}: condition {r.get('condition')} is no refId")
            for ref, d in refs.items():
                model = d.get("model", {})
                if d.get("datasourceUid") == "__expr__":
                    if model.get("expression") not in refs:
                        fail(f"alert {title!r}: {ref} refers to {model.get('expression')}")
                    continue
                if d.get("datasourceUid") != ds_uid:
                    fail(f"alert {title!r}: {ref} datasource {d.get('datasourceUid')} is not {ds_uid}")
                    continue
                if not d.get("relativeTimeRange"):
                    fail(f"alert {title!r}: {ref} has no relativeTimeRange")
                try:
                    cols, types, rows = run_target(model.get("rawSql", ""))
                except RuntimeError as e:
                    fail(f"alert {title!r}: {ref}: {e}")
                    continue
                if "value" not in cols or types["value"] not in NUMERIC or not rows or \
                        any(x[cols.index("value")] == "" for x in rows):
                    fail(f"alert {title!r}: {ref} gives {cols} {rows[:3]}, want a numeric value")
                elif r.get("uid") == "cw-no-processor" and rows[0][0] != "3":
                    fail(f"alert {title!r}: {rows[0][0]} running processors, want 3 "
                         f"(the test's two and {LIVE}; the stopped {STALE} left out)")
    if n < 5:
        fail(f"{ALERTS}: {n} rules, want 5")
    log(f"{n} alert rules parse and their queries run")


def dashboard_variables(dash, catalog):
    """Each dashboard variable as the test expands it: $currency as every
    currency in the data and in the events the running processors hold
    (Grafana's "All", quoted), $bucket as 1m."""
    held = ",".join("('%s')" % c for c in sorted(set(re.findall(
        r'"currency": "([A-Z]{3})"', risk_events()))))
    currencies = scalar(f"""SELECT string_agg(quote_literal(c), ',' ORDER BY c) FROM (
                               SELECT currency AS c FROM cart_abandonments
                               UNION SELECT currency FROM cart_conversions
                               UNION VALUES {held}) s""")
    categories = sorted(set(catalog.values()) | {"(uncategorized)"})
    known = {"currency": currencies, "bucket": "1m",
             "category": ",".join("'%s'" % c for c in categories)}
    out = {}
    for v in dash.get("templating", {}).get("list", []):
        if v.get("name") not in known:
            fail(f"dashboard variable {v.get('name')!r} is unknown to this test")
            continue
        out[v["name"]] = known[v["name"]]
        if v.get("type") == "query":
            try:
                _, _, rows = run_target(v.get("query", ""))
            except RuntimeError as e:
                fail(f"variable {v['name']}: {e}")
                continue
            if v["name"] == "category":
                if sorted(r[0] for r in rows) != categories:
                    fail(f"variable category: query gives {rows}, want {categories}")
            elif ",".join("'%s'" % r[0] for r in rows) != currencies:
                fail(f"variable {v['name']}: query gives {rows}, want {currencies}")
    for name in sorted(set(known) - set(out)):
        fail(f"the dashboard has no variable {name!r}")
    cat = [v for v in dash.get("templating", {}).get("list", []) if v.get("name") == "category"]
    if cat and not (cat[0].get("multi") and cat[0].get("includeAll")):
        fail("variable category: want multi-value with All")
    return out


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
    extra = produce_extra(work)
    run_processor(work, EVENTS + extra)
    at_risk = run_risk_processor(work)
    catalog = load_catalog(work)
    ensure_status_rows()
    insert_stale_instance()
    variables = dashboard_variables(dash, catalog)
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
                sql = expand(target.get("rawSql", ""), t_from, t_to, interval_ms, variables)
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
    check_truth(dash, event_range, wall_range, variables, at_risk, catalog)
    check_alert_rules(ds_uid)
    if failures:
        die(f"{len(failures)} failure(s)")
    log(f"all {checked} panel queries return the columns their panels use")


if __name__ == "__main__":
    main()
