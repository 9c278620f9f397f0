#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-prometheus — the compose stack's monitoring is consistent with the
# processor it watches: docker/prometheus/prometheus.yml and its alert
# rules pass promtool's checks, the rules' own unit tests
# (tests/prometheus/*.test.yml: each required alert fires on a synthetic
# outage and stays quiet otherwise) pass, and every cartwatch_* metric the
# rules and the operations dashboard name is one cartwatch-processor
# really serves on /metrics (read from a running processor; the
# per-partition families, written only once partitions are assigned, from
# processor/metrics.c). Also: the dashboard uses the provisioned Prometheus
# datasource, the Prometheus service mounts this configuration and scrapes
# the processor's service name on its CARTWATCH_METRICS_ADDR port.
# promtool comes with Debian's prometheus package (scripts/bootstrap
# installs it); without it the test fails.
set -euo pipefail
src=${CARTWATCH_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
proc=${CARTWATCH_PROCESSOR:?run through meson test}
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "test-prometheus: FAIL: $*" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/test-prometheus.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT

command -v promtool >/dev/null ||
	fail "promtool not installed (Debian package prometheus; run scripts/bootstrap)"
promtool check config "$src/docker/prometheus/prometheus.yml" >/dev/null ||
	fail "promtool check config rejects docker/prometheus/prometheus.yml"
promtool check rules "$src"/docker/prometheus/rules/*.yml >/dev/null ||
	fail "promtool check rules rejects docker/prometheus/rules/"
(cd "$here/prometheus" && promtool test rules ./*.test.yml) ||
	fail "the alert rules' unit tests (tests/prometheus/) fail"
echo "ok   promtool: config, rules and the rules' unit tests"

# What a processor serves: PostgreSQL unreachable, so it runs, serves
# /metrics and never gets partitions.
pgport=$("$here/lib/free-port")
mport=$("$here/lib/free-port")
"$proc" --pg "host=127.0.0.1 port=$pgport connect_timeout=1" -b 127.0.0.1:1 \
	--metrics-addr "127.0.0.1:$mport" >"$work/proc.log" 2>&1 &
pid=$!
deadline=$((SECONDS + 20))
until curl -fsS -o "$work/metrics" "http://127.0.0.1:$mport/metrics" 2>/dev/null &&
	grep -q '^cartwatch_' "$work/metrics"; do
	[ $SECONDS -lt $deadline ] || fail "no /metrics from the processor within 20 s: $(tail -3 "$work/proc.log")"
	sleep 0.1
done
kill $pid && wait $pid 2>/dev/null || true
pid=

cd /
docker-compose -f "$src/docker/compose.yaml" config >"$work/compose.yaml" ||
	fail "docker-compose config rejects docker/compose.yaml"

/usr/bin/python3 - "$src" "$work" <<'PY'
import glob, json, os, re, sys
import yaml

src, work = sys.argv[1:3]
bad = []
served = {l.split("{")[0].split()[0] for l in open(os.path.join(work, "metrics"))
          if l.startswith("cartwatch_")}
source = open(os.path.join(src, "processor/metrics.c")).read()
NAME = re.compile(r"\b(cartwatch_[a-z0-9_]+)\b")

def check_names(where, text):
    names = set(NAME.findall(text))
    for n in sorted(names):
        if n in served:
            continue
        if n.startswith("cartwatch_partition_") and re.search(r'"%s[{"]' % n, source):
            continue  # per-partition family: served once partitions exist
        bad.append(f"{where}: {n} is not a metric cartwatch-processor serves")
    return names

# The alert rules: structure, and the three alerts the issue asks for.
alerts = {}
for path in sorted(glob.glob(os.path.join(src, "docker/prometheus/rules/*.yml"))):
    doc = yaml.safe_load(open(path))
    for g in doc.get("groups") or []:
        for r in g.get("rules") or []:
            name = r.get("alert")
            if not name or not r.get("expr"):
                bad.append(f"{path}: a rule without alert or expr: {r}")
                continue
            if not (r.get("labels") or {}).get("severity"):
                bad.append(f"{path}: {name} has no severity label")
            if not (r.get("annotations") or {}).get("summary"):
                bad.append(f"{path}: {name} has no summary annotation")
            alerts[name] = r["expr"]
            check_names(f"alert {name}", r["expr"])
for need, metric in [("CartwatchConsumerLagGrowing", "cartwatch_partition_lag_messages"),
                     ("CartwatchNoProcessor", 'up{job="cartwatch-processor"}'),
                     ("CartwatchDeadLetters", "cartwatch_dead_letter_records_total")]:
    if metric not in alerts.get(need, ""):
        bad.append(f"alert {need} missing or not on {metric}")

# The operations dashboard: every panel on the provisioned Prometheus
# datasource, and all of lag, flush duration, PostgreSQL errors, DLQ shown.
ds = yaml.safe_load(open(os.path.join(src, "docker/grafana/provisioning/datasources/prometheus.yaml")))
prom = [d for d in ds["datasources"] if d["type"] == "prometheus"]
if len(prom) != 1 or prom[0].get("url") != "http://prometheus:9090":
    bad.append("provisioning/datasources/prometheus.yaml: one prometheus datasource at http://prometheus:9090 expected")
uid = prom[0]["uid"] if prom else None
dash = json.load(open(os.path.join(src, "docker/grafana/dashboards/cartwatch-operations.json")))
used = set()
for p in dash["panels"]:
    for t in p.get("targets") or []:
        if (t.get("datasource") or p.get("datasource") or {}).get("uid") != uid:
            bad.append(f"panel {p['title']!r}: datasource is not {uid}")
        used |= check_names(f"panel {p['title']!r}", t.get("expr", ""))
        if t.get("expr", "").count("(") != t.get("expr", "").count(")"):
            bad.append(f"panel {p['title']!r}: unbalanced parentheses")
for need in ("cartwatch_partition_lag_messages", "cartwatch_flush_duration_seconds_bucket",
             "cartwatch_postgresql_errors_total", "cartwatch_dead_letter_records_total"):
    if need not in used:
        bad.append(f"operations dashboard does not show {need}")

# The compose service: mounts this directory, scrapes the processor.
cfg = yaml.safe_load(open(os.path.join(work, "compose.yaml")))
svc = cfg["services"]
p = svc.get("prometheus")
if not p:
    bad.append("compose: no prometheus service")
else:
    mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in p.get("volumes") or []]
    if not any(m.startswith(os.path.join(src, "docker/prometheus") + ":/etc/prometheus") for m in mounts):
        bad.append(f"compose: prometheus does not mount docker/prometheus at /etc/prometheus: {mounts}")
    if not p.get("healthcheck"):
        bad.append("compose: prometheus has no healthcheck")
pcfg = yaml.safe_load(open(os.path.join(src, "docker/prometheus/prometheus.yml")))
job = [j for j in pcfg["scrape_configs"] if j["job_name"] == "cartwatch-processor"]
addr = str((svc["processor"].get("environment") or {}).get("CARTWATCH_METRICS_ADDR", ""))
port = int(addr.rsplit(":", 1)[-1]) if ":" in addr else None
targets = set()
for j in job:
    for d in j.get("dns_sd_configs") or []:
        targets |= {(n, d.get("port")) for n in d.get("names") or []}
    for s in j.get("static_configs") or []:
        targets |= {(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in s.get("targets") or []}
if ("processor", port) not in targets:
    bad.append(f"prometheus.yml: job cartwatch-processor does not scrape processor:{port} ({targets})")

if bad:
    for b in bad:
        print("test-prometheus: FAIL:", b, file=sys.stderr)
    sys.exit(1)
print(f"ok   {len(alerts)} alert rules, {len(dash['panels'])} panels: "
      f"{len(used)} metric names, all served by cartwatch-processor; compose and scrape target agree")
PY
echo "test-prometheus: ok"
