# SPDX-License-Identifier: Apache-2.0
"""gateway.py — a cartwatch-gateway for the Python tests, and polling.

    sys.path.insert(0, os.path.join(os.environ["CARTWATCH_SOURCE_ROOT"], "tests/lib"))
    from gateway import Gateway, wait_until

Gateway(work, args) starts CARTWATCH_GATEWAY (under CARTWATCH_TEST_WRAPPER,
if set) on 127.0.0.1 against CARTWATCH_BOOTSTRAP_SERVERS, its log in
WORK/NAME.log, and returns once it logs the port it listens on. A gateway
still running when the test exits, by failure or not, is killed then.
Timeouts are multiplied by CARTWATCH_SLOW (valgrind runs set it).
"""
import atexit
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.request

GATEWAY = os.environ["CARTWATCH_GATEWAY"]
BOOTSTRAP = os.environ["CARTWATCH_BOOTSTRAP_SERVERS"]
SLOW = float(os.environ.get("CARTWATCH_SLOW", "1"))
WRAPPER = shlex.split(os.environ.get("CARTWATCH_TEST_WRAPPER", ""))


def wait_until(what, fn, timeout=20):
    """fn()'s first true value, polled every 50 ms for up to TIMEOUT
    seconds (times CARTWATCH_SLOW); exits the test naming WHAT if none."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit("timed out waiting for " + what)


class Gateway:
    """A running cartwatch-gateway: .proc (its Popen), .port, .url
    ("http://127.0.0.1:PORT", no path), .text() (its log so far)."""

    def __init__(self, work, args=(), name="gateway", port=0):
        self.log = open(os.path.join(work, name + ".log"), "w+")
        self.proc = subprocess.Popen(
            WRAPPER + [GATEWAY, "-b", BOOTSTRAP, "--listen", "127.0.0.1:%d" % port]
            + list(args),
            stdout=subprocess.DEVNULL, stderr=self.log)
        atexit.register(self.kill)
        self.port = wait_until("the gateway's port", self._port)
        self.url = "http://127.0.0.1:%d" % self.port

    def _port(self):
        if self.proc.poll() is not None:
            raise SystemExit("gateway exited: " + self.text())
        m = re.search(r'msg="gateway listening" .* port=(\d+)', self.text())
        return int(m.group(1)) if m else None

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def metrics(self):
        """The text of its /metrics."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10 * SLOW) as r:
            return r.read().decode()

    def stop(self, timeout=30):
        """SIGTERM, then its exit status once it has drained."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout * SLOW)

    def kill(self):
        """Kill it unless it has exited already (no orphan after a
        failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
