#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""webhook_receiver.py — the HTTP receiver of tests/e2e/test-notify.sh
(and of scripts/demo).

Verifies every request's X-Cartwatch-Signature (HMAC-SHA256 of "t.body"
with the secret) and that its Idempotency-Key is the body's
abandonment_id, and appends one JSON line per request to LOG: key, status
answered, fault injected, sig_ok, key_ok, at (arrival, unix ms) and the
body. Unless --no-faults, some first attempts get a fault, chosen from a
hash of the key so that the test can tell which: 500, 429 with
Retry-After: 1, or a stall past the sender's timeout; one key is refused
with 400 on every attempt.

Usage: webhook_receiver.py [--port N] [--no-faults] SECRET_FILE PORT_FILE LOG
  --port N     listen on this loopback port (default: any free one); a
               receiver restarted on its predecessor's port comes back at
               the same URL
  PORT_FILE    gets the port once the socket listens"""
import argparse
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser(usage=__doc__.split("Usage: ")[1])
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--no-faults", dest="faults", action="store_false")
ap.add_argument("secret_file")
ap.add_argument("port_file")
ap.add_argument("log")
args = ap.parse_args()

secret = open(args.secret_file, "rb").read().rstrip(b"\n")
lock = threading.Lock()
seen = set()
refused = []
log = open(args.log, "a", buffering=1)


def verify(header, body):
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    want = hmac.new(secret, parts.get("t", "").encode() + b"." + body,
                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts.get("v1", ""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        key = self.headers.get("Idempotency-Key", "")
        sig_ok = verify(self.headers.get("X-Cartwatch-Signature", ""), body)
        try:
            doc = json.loads(body)
            key_ok = doc["abandonment_id"] == key
        except (ValueError, KeyError, TypeError):
            doc, key_ok = None, False
        h = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 20
        with lock:
            first = key not in seen
            seen.add(key)
            if args.faults and first and h == 2 and not refused:
                refused.append(key)
        status, extra, fault = 200, {}, ""
        if key in refused:
            status, fault = 400, "refused"
        elif args.faults and first and h == 0:
            status, fault = 500, "500"
        elif args.faults and first and h == 1:
            status, extra, fault = 429, {"Retry-After": "1"}, "429"
        elif args.faults and first and h == 4:
            fault = "stall"
        log.write(json.dumps({"key": key, "status": status, "fault": fault,
                              "at": int(time.time() * 1000),
                              "sig_ok": sig_ok, "key_ok": key_ok,
                              "body": doc}) + "\n")
        if fault == "stall":
            time.sleep(2.5)  # past the sender's --request-timeout
        reply = b"nope: test refusal" if status == 400 else b"ok"
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
server.serve_forever()
