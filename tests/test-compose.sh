#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-compose — docker/compose.yaml is valid and configures the binaries
# only with what they accept. No Docker engine is needed: docker-compose
# `config -q` validates the file (with and without the simulate profile),
# then `config` (variables substituted) is read with Python's yaml and, for
# the processor (cartwatch-processor), simulator (cartwatch-producer) and gateway
# (cartwatch-gateway) services, every CARTWATCH_* variable and every --option of the command
# must appear in that binary's --help as "(env CARTWATCH_X)" / "--option",
# and the binary run with that environment and those options plus --help
# must exit 0 (so every value parses). A misspelled name or a bad value
# fails. Also checked: the services, healthchecks and start order the
# stack relies on, and the topics kafka-init creates.
# Needs CARTWATCH_PROCESSOR, CARTWATCH_PRODUCER, CARTWATCH_GATEWAY (meson)
# and docker-compose.
set -euo pipefail

src=${CARTWATCH_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
compose=$src/docker/compose.yaml
: "${CARTWATCH_PROCESSOR:?run through meson test}" "${CARTWATCH_PRODUCER:?run through meson test}" "${CARTWATCH_GATEWAY:?run through meson test}" "${CARTWATCH_NOTIFY:?run through meson test}"
fail() { echo "test-compose: FAIL: $*" >&2; exit 1; }

command -v docker-compose >/dev/null ||
	fail "docker-compose not found (Debian package docker-compose): run scripts/bootstrap"
# The project directory holds docker/.env; run from elsewhere to prove
# nothing depends on the current directory.
cd /
docker-compose -f "$compose" config -q || fail "docker-compose config -q rejects $compose"
docker-compose -f "$compose" --profile simulate config -q ||
	fail "docker-compose --profile simulate config -q rejects $compose"
echo "ok   docker-compose config -q (default and simulate profiles)"

work=$(mktemp -d "${TMPDIR:-/tmp}/test-compose.XXXXXX")
trap 'rm -rf "$work"' EXIT
docker-compose -f "$compose" --profile simulate --profile notify config >"$work/resolved.yaml"
"$CARTWATCH_PROCESSOR" --help >"$work/processor.help"
"$CARTWATCH_PRODUCER" --help >"$work/producer.help"
"$CARTWATCH_GATEWAY" --help >"$work/gateway.help"
"$CARTWATCH_NOTIFY" --help >"$work/notify.help"

/usr/bin/python3 - "$work" "$CARTWATCH_PROCESSOR" "$CARTWATCH_PRODUCER" "$CARTWATCH_GATEWAY" "$CARTWATCH_NOTIFY" <<'PY'
import os, re, subprocess, sys
import yaml  # python3-yaml, a dependency of Debian's docker-compose

work, processor, producer, gateway, notify = sys.argv[1:6]
cfg = yaml.safe_load(open(os.path.join(work, "resolved.yaml")))
services = cfg["services"]
bad = []

# service -> (binary path, the program name its command must start with)
binaries = {"processor": (processor, "cartwatch-processor", "processor.help"),
            "simulator": (producer, "cartwatch-producer", "producer.help"),
            "gateway": (gateway, "cartwatch-gateway", "gateway.help"),
            "notify": (notify, "cartwatch-notify", "notify.help")}

def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}

def as_list(cmd):
    if cmd is None:
        return []
    return cmd if isinstance(cmd, list) else cmd.split()

for name, (path, prog, helpfile) in binaries.items():
    if name not in services:
        bad.append(f"service {name} is missing")
        continue
    svc = services[name]
    help_text = open(os.path.join(work, helpfile)).read()
    help_envs = set(re.findall(r"\(env (CARTWATCH_[A-Z0-9_]+)\)", help_text))
    help_opts = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", help_text))
    if not help_envs or not help_opts:
        bad.append(f"{prog} --help lists no options or variables: cannot check {name}")
        continue
    env = env_of(svc)
    used_envs = sorted(k for k in env if k.startswith("CARTWATCH_"))
    cmd = as_list(svc.get("command"))
    entry = as_list(svc.get("entrypoint"))
    # notify's entrypoint is a shell that writes the secret file, then
    # runs the command.
    argv = cmd if name == "notify" else entry + cmd
    if not argv or os.path.basename(argv[0]) != prog:
        bad.append(f"{name}: command {argv} does not run {prog}")
        continue
    used_opts = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--")]
    for k in used_envs:
        if k not in help_envs:
            bad.append(f"{name}: {k} is not a variable {prog} reads (its --help lists {sorted(help_envs)})")
    for o in used_opts:
        if o not in help_opts:
            bad.append(f"{name}: {o} is not an option of {prog}")
    # The values too: run it with exactly that environment and those
    # options, then --help (which exits 0 once everything before it parsed).
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    run_env.update({k: env[k] for k in used_envs})
    r = subprocess.run([path] + argv[1:] + ["--help"], env=run_env, text=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        bad.append(f"{name}: {prog} rejects the compose configuration: {r.stderr.strip()}")
    print(f"ok   {name}: {len(used_envs)} variables ({', '.join(used_envs)}) and "
          f"{len(used_opts)} options checked against {prog} --help")

# What the stack relies on besides the binaries' options.
def dep(svc, on):
    d = services[svc].get("depends_on") or {}
    return d.get(on, {}).get("condition") if isinstance(d, dict) else None

for svc in ("kafka", "postgres", "processor", "gateway"):
    if not services.get(svc, {}).get("healthcheck"):
        bad.append(f"{svc} has no healthcheck")
checks = [("processor", "kafka-init", "service_completed_successfully"),
          ("processor", "postgres", "service_healthy"),
          ("simulator", "gateway", "service_healthy"),
          ("kafka-init", "kafka", "service_healthy"),
          ("grafana", "postgres", "service_healthy")]
for svc, on, cond in checks:
    if dep(svc, on) != cond:
        bad.append(f"{svc} must depend on {on} with condition {cond}, has {dep(svc, on)}")
if "simulate" not in (services["simulator"].get("profiles") or []):
    bad.append("simulator is not under the simulate profile")
hc = " ".join(as_list(services["processor"].get("healthcheck", {}).get("test")))
addr = env_of(services["processor"]).get("CARTWATCH_METRICS_ADDR", "")
port = addr.rsplit(":", 1)[-1] if addr else None
if not port or f"localhost:{port}/healthz" not in hc:
    bad.append(f"processor healthcheck {hc!r} does not fetch /healthz on CARTWATCH_METRICS_ADDR {addr!r}")
if "gateway" in services:
    hc = " ".join(as_list(services["gateway"].get("healthcheck", {}).get("test")))
    addr = env_of(services["gateway"]).get("CARTWATCH_LISTEN", "")
    if "localhost:8080/healthz" not in hc or not addr.endswith(":8080"):
        bad.append(f"gateway must listen on 8080 (CARTWATCH_LISTEN {addr!r}) with a /healthz healthcheck ({hc!r})")
    if dep("gateway", "kafka-init") != "service_completed_successfully":
        bad.append("gateway must start after kafka-init completed")
init = " ".join(as_list(services["kafka-init"].get("entrypoint")) +
                as_list(services["kafka-init"].get("command")))
topics = {"cart-events": r"cart-events:6(?![\w-])|--topic\s+cart-events\s+--partitions\s+6\b",
          "cart-abandonments": r"(?<![\w-])cart-abandonments(?![\w-])",
          "cart-events-dlq": r"(?<![\w-])cart-events-dlq(?![\w-])"}
for topic, pattern in topics.items():
    if not re.search(pattern, init):
        bad.append(f"kafka-init does not create {topic}" +
                   (" with 6 partitions" if topic == "cart-events" else ""))
for svc, s in services.items():
    for v in s.get("volumes") or []:
        vs = v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}"
        src = vs.split(":", 1)[0]
        if not src.startswith("/") and src not in (cfg.get("volumes") or {}):
            bad.append(f"{svc}: volume {src} is not a named volume")

if bad:
    for b in bad:
        print("test-compose: FAIL:", b, file=sys.stderr)
    sys.exit(1)
print("ok   healthchecks, start order, profile, topics, named volumes")
PY
echo "test-compose: ok"
