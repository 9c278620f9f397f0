#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""test-producer-http.py — cartwatch-producer --http through the real
cartwatch-gateway to the broker in CARTWATCH_BOOTSTRAP_SERVERS
(run-with-servers), everything read back with kcat and python3-avro:

  * the simulation: the events on the topic are exactly, field by field
    and key = user_id, the ones the same options write with --output, as
    many as --summary-json counts, in ceil(N / 500) requests of up to 500;
  * --stdin-json --catalog: the issue's example priced from the shop's
    catalog, generated UUIDv7 ids, a product with no price refused; a
    line reaches the gateway while the input stays open;
  * a wrong token: exit 1 at once, the gateway's 401 and its body logged;
  * no gateway listening yet: retried until one starts, then delivered;
    no gateway at all: given up after --http-timeout, exit 1, or at once
    on SIGTERM;
  * embedded broker only: Kafka down (devbroker SIGUSR1) -> the gateway
    answers 503, the producer retries, Kafka back (SIGUSR2) -> every
    event on the topic, exit 0.

Needs CARTWATCH_PRODUCER, CARTWATCH_GATEWAY (meson) and
CARTWATCH_BOOTSTRAP_SERVERS; honours CARTWATCH_TEST_WRAPPER and
CARTWATCH_SLOW.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ["CARTWATCH_SOURCE_ROOT"]
sys.path.insert(0, os.path.join(SRC, "tests/lib"))
import avro_topic  # noqa: E402
from gateway import BOOTSTRAP, SLOW, WRAPPER, Gateway, wait_until  # noqa: E402

PRODUCER = os.environ["CARTWATCH_PRODUCER"]
EMBEDDED = os.environ.get("CARTWATCH_TEST_KAFKA") == "embedded"
TOPIC = "cart-events"
# Fingerprint of cartwatch.CartEvent, checked by tests/fingerprint.py.
FINGERPRINT = 0x0DE94D9D1E16AB23
TOKEN = "feeder-token"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                   r"[0-9a-f]{12}$")
FIELDS = ("event_id", "event_type", "event_time", "user_id", "product_id",
          "quantity", "unit_price_cents", "currency", "reason")

failures = []


def check(cond, what):
    if cond:
        print("ok  ", what[:160])  # the details are for failures
    else:
        print("FAIL", what, file=sys.stderr)
        failures.append(what)


def free_port():
    return int(subprocess.run([os.path.join(SRC, "tests/lib/free-port")], check=True,
                              stdout=subprocess.PIPE, text=True).stdout)


def start_gateway(work, name, port=0):
    return Gateway(work, ["--catalog", os.path.join(work, "shop.csv"),
                          "--token-file", os.path.join(work, "tokens"),
                          "--delivery-timeout", "3s"], name, port)


def stop_gateway(gw):
    check(gw.stop() == 0, "gateway exit 0 on SIGTERM")


def requests_202(gw):
    return sum(int(n) for n in re.findall(
        r'cartwatch_gateway_requests_total\{route="[^"]*events[^"]*",status="202"\} (\d+)',
        gw.metrics()))


def events_accepted(gw):
    m = re.search(r"^cartwatch_gateway_events_accepted_total (\d+)$", gw.metrics(), re.M)
    return int(m.group(1)) if m else 0


def producer(args, work, name, stdin=None, timeout=120):
    """Run the producer to its end: (exit status, stderr text)."""
    with open(os.path.join(work, name + ".err"), "w+") as err:
        p = subprocess.run(WRAPPER + [PRODUCER] + args, input=stdin, stdout=subprocess.DEVNULL,
                           stderr=err, timeout=timeout * SLOW, text=True)
        err.seek(0)
        return p.returncode, err.read()


def read_topic():
    events, bad = [], 0
    for key, framed, ev in avro_topic.records(
            BOOTSTRAP, TOPIC, os.path.join(SRC, "schemas/cart_event.avsc"), FINGERPRINT):
        if not framed or key != ev["user_id"]:
            bad += 1
        if ev:
            events.append(ev)
    check(bad == 0, "every message framed, key = user_id (%d bad)" % bad)
    return events


def by_id(events, ids):
    got = {}
    for e in events:
        if e["event_id"] in ids:
            got.setdefault(e["event_id"], []).append(e)
    return got


def main():
    work = tempfile.mkdtemp(prefix="producer-http.", dir=os.environ.get("CARTWATCH_TEST_DIR"))
    with open(os.path.join(work, "shop.csv"), "w") as f:
        f.write("product_id,unit_price_cents,currency,name\n"
                "MACBOOK_PRO_2023,199900,USD,MacBook Pro 14\n"
                "SHOP_MUG,899,EUR,Mug\n")
    with open(os.path.join(work, "tokens"), "w") as f:
        f.write(TOKEN + "\n")
    with open(os.path.join(work, "token"), "w") as f:
        f.write(TOKEN + "\n")
    with open(os.path.join(work, "wrong-token"), "w") as f:
        f.write("not-the-token\n")
    gw = start_gateway(work, "gateway")
    http = ["--http", gw.url + "/v1/events", "--http-token-file", os.path.join(work, "token")]

    # --- the simulation through the gateway == the same run to a file -----
    start_ms = (int(time.time()) - 3 * 86400) * 1000
    sim = ["--rate", "0", "--events", "1200", "--users", "300", "--seed", "7",
           "--start-time", str(start_ms)]
    ref = os.path.join(work, "ref.jsonl")
    st, err = producer(sim + ["-o", ref], work, "ref")
    check(st == 0, "reference run to a file: exit %d %s" % (st, err))
    want = {e["event_id"]: e for e in map(json.loads, open(ref))}
    check(len(want) == 1200, "1200 distinct reference events (%d)" % len(want))
    summary = os.path.join(work, "sim.sum")
    st, err = producer(sim + http + ["--summary-json", summary], work, "sim")
    check(st == 0, "simulation --http: exit %d %s" % (st, err))
    s = json.load(open(summary))
    check(s["events_total"] == 1200 and s["delivered"] == 1200 and s["failed"] == 0,
          "summary: 1200 sent, delivered, none failed (%s)" %
          {k: s[k] for k in ("events_total", "delivered", "failed")})
    events = read_topic()
    got = by_id(events, want)
    check(len(got) == 1200 and all(len(v) == 1 for v in got.values()),
          "each of the 1200 events on the topic once (%d ids, %d messages)"
          % (len(got), sum(map(len, got.values()))))
    diff = [i for i, v in got.items()
            if any(v[0][f] != want[i][f] for f in FIELDS)]
    check(not diff, "every field as in --output (%d differ, e.g. %s vs %s)" %
          (len(diff), got[diff[0]][0] if diff else None, want[diff[0]] if diff else None))
    by_type = {}
    for v in got.values():
        by_type[v[0]["event_type"]] = by_type.get(v[0]["event_type"], 0) + 1
    check(by_type == {k: v for k, v in s["events_by_type"].items() if v},
          "events by type on the topic == --summary-json (%s, %s)" % (by_type, s["events_by_type"]))
    check(requests_202(gw) == 3, "1200 events in 3 requests of up to 500 (%d)" % requests_202(gw))

    # --- the JSON feeder through the gateway, priced from --catalog -------
    lines = ('{"user_id": "user_10", "product_id": "MACBOOK_PRO_2023", '
             '"event_type": "cart_remove", "reason": "Too expensive"}\n'
             '{"user_id":"feed_mug","product_id":"SHOP_MUG","event_type":"cart_add","quantity":2}\n'
             '{"user_id":"feed_ghost","product_id":"GHOST","event_type":"cart_add"}\n')
    t0 = int(time.time() * 1000)
    st, err = producer(["--stdin-json", "--catalog", os.path.join(work, "shop.csv")] + http,
                       work, "feed", stdin=lines)
    check(st == 0, "--stdin-json --http: exit %d %s" % (st, err))
    check("unknown product 'GHOST'" in err, "product without a price named")
    events = read_topic()
    fed = {e["user_id"]: e for e in events if e["user_id"] in ("user_10", "feed_mug", "feed_ghost")}
    ex = fed.get("user_10", {})
    check(ex.get("unit_price_cents") == 199900 and ex.get("currency") == "USD"
          and ex.get("reason") == "Too expensive" and ex.get("event_type") == "cart_remove"
          and UUID7.match(ex.get("event_id", "")) and ex.get("event_time", 0) >= t0,
          "the issue's example, priced from the catalog: %s" % ex)
    mug = fed.get("feed_mug", {})
    check(mug.get("unit_price_cents") == 899 and mug.get("currency") == "EUR"
          and mug.get("quantity") == 2, "catalog-only product: %s" % mug)
    check("feed_ghost" not in fed, "no event for the product without a price")

    # --- a line reaches the gateway while the input stays open ------------
    with open(os.path.join(work, "follow.err"), "w+") as err:
        p = subprocess.Popen(WRAPPER + [PRODUCER, "--stdin-json"] + http, stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=err, text=True)
        for i in (1, 2):
            n = events_accepted(gw)
            t = time.monotonic()
            p.stdin.write('{"user_id":"follow_%d","product_id":"SHOP_MUG",'
                          '"event_type":"cart_add","unit_price_cents":5}\n' % i)
            p.stdin.flush()
            wait_until("line %d at the gateway" % i, lambda: events_accepted(gw) > n, timeout=5)
            took = time.monotonic() - t
            check(took < 2 * SLOW, "line %d accepted %.0f ms after it was written, input open"
                  % (i, took * 1000))
        p.stdin.close()
        check(p.wait(timeout=30 * SLOW) == 0, "follow: exit 0 at the end of input")

    # --- 4xx: wrong token -> loud, at once --------------------------------
    t = time.monotonic()
    st, err = producer(["--events", "5", "--rate", "0", "--http", gw.url + "/v1/events",
                        "--http-token-file", os.path.join(work, "wrong-token")], work, "401")
    check(st == 1 and time.monotonic() - t < 10 * SLOW, "wrong token: exit %d" % st)
    check(re.search(r'level=error msg="gateway refused the batch, stopping".*status=401 '
                    r'events=5 body="\{.*error', err) is not None,
          "the 401 and the gateway's body logged: %s" % err)

    # --- transport errors: retried until a gateway listens ----------------
    port = free_port()
    url = "http://127.0.0.1:%d/v1/events" % port
    with open(os.path.join(work, "late.err"), "w+") as err:
        p = subprocess.Popen(WRAPPER + [PRODUCER, "--rate", "0", "--events", "50", "--seed", "8",
                                        "--users", "20", "--start-time", str(start_ms),
                                        "--http", url, "--http-token-file",
                                        os.path.join(work, "token"), "--http-timeout", "60s"],
                             stdout=subprocess.DEVNULL, stderr=err)
        wait_until("a retry", lambda: "gateway unavailable, retrying" in open(err.name).read())
        late = start_gateway(work, "gateway-late", port)
        st = p.wait(timeout=60 * SLOW)
        text = open(err.name).read()
    check(st == 0 and re.search(r'retrying.*status=0 error="[^"]+', text) is not None,
          "connection refused, retried, delivered once a gateway listens: exit %d %s" % (st, text))
    stop_gateway(late)
    t = time.monotonic()
    st, err = producer(["--events", "5", "--rate", "0", "--http", url, "--http-timeout", "1s"],
                       work, "gone")
    check(st == 1 and "giving up the batch" in err and time.monotonic() - t < 15 * SLOW,
          "no gateway: given up after --http-timeout, exit %d" % st)

    # SIGTERM while retrying: the batch is given up at once, not after
    # --http-timeout.
    with open(os.path.join(work, "term.err"), "w+") as err:
        p = subprocess.Popen(WRAPPER + [PRODUCER, "--events", "5", "--rate", "0", "--http", url,
                                        "--http-timeout", "10m"],
                             stdout=subprocess.DEVNULL, stderr=err)
        wait_until("a retry", lambda: "gateway unavailable, retrying" in open(err.name).read())
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        st = p.wait(timeout=60 * SLOW)
        text = open(err.name).read()
    check(st == 1 and time.monotonic() - t < 8 * SLOW
          and re.search(r"giving up the batch.*events=5 stop_requested=true", text),
          "SIGTERM while retrying: batch given up at once, exit %d (%.1f s) %s"
          % (st, time.monotonic() - t, text))

    # --- Kafka down: 503 retried until it is back --------------------------
    if EMBEDDED:
        devbroker = int(os.environ["CARTWATCH_DEVBROKER_PID"])
        ref9 = os.path.join(work, "ref9.jsonl")
        sim9 = ["--rate", "0", "--events", "600", "--users", "100", "--seed", "9",
                "--start-time", str(start_ms)]
        producer(sim9 + ["-o", ref9], work, "ref9")
        want9 = {e["event_id"] for e in map(json.loads, open(ref9))}
        os.kill(devbroker, signal.SIGUSR1)
        with open(os.path.join(work, "down.err"), "w+") as err:
            p = subprocess.Popen(WRAPPER + [PRODUCER] + sim9 + http,
                                 stdout=subprocess.DEVNULL, stderr=err)
            wait_until("a 503", lambda: re.search("retrying.*status=503", open(err.name).read()),
                       timeout=30)
            os.kill(devbroker, signal.SIGUSR2)
            st = p.wait(timeout=120 * SLOW)
            text = open(err.name).read()
        check(st == 0, "Kafka down then back: exit %d %s" % (st, text))
        got = by_id(read_topic(), want9)
        check(len(got) == 600, "all 600 events on the topic after the outage (%d)" % len(got))

    stop_gateway(gw)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        sys.exit(1)


main()
