#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-helm.sh — the Helm chart deploy/helm/cartwatch (issue 13): `helm lint
# --strict` and `helm template` with the default values, with the
# production-like tests/helm/production-values.yaml, and with the passwords
# given as values (the chart then creates the Secrets), each render checked
# by tests/helm/check-rendered.py (probes, ports, PDB, replicas, Secrets by
# reference only). Renders that must be refused (no PostgreSQL secret at
# all; notify without a webhook URL) must fail with a message naming the
# value. helm comes from tests/helm/helm-fetch (pinned, built from the Go
# module proxy, cached); a failed fetch is a failure, never a skip.
set -uo pipefail
src=${CARTWATCH_SOURCE_ROOT:?}
chart=$src/deploy/helm/cartwatch
prod=$src/tests/helm/production-values.yaml
check=$src/tests/helm/check-rendered.py
work=$(mktemp -d "${CARTWATCH_TEST_DIR:-${TMPDIR:-/tmp}}/helm.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
t0=$SECONDS

helm=$("$src/tests/helm/helm-fetch") || { fail "tests/helm/helm-fetch could not provide helm"; exit 1; }
ok "$("$helm" version --short) ($helm, $((SECONDS - t0)) s)"
# helm keeps nothing of ours: no repositories, no plugins, no cache.
export HELM_CACHE_HOME=$work/cache HELM_CONFIG_HOME=$work/config HELM_DATA_HOME=$work/data

for v in default production; do
	args=()
	[ $v = production ] && args=(-f "$prod")
	if out=$("$helm" lint --strict "$chart" "${args[@]}" 2>&1); then
		ok "helm lint --strict ($v values)"
	else
		echo "$out"; fail "helm lint --strict ($v values)"
	fi
done

# render NAME [helm template args...] -- [check-rendered args...]
render() {
	local name=$1; shift
	local targs=() cargs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do targs+=("$1"); shift; done
	shift
	cargs=("$@")
	if ! "$helm" template cw "$chart" --namespace shop "${targs[@]}" >"$work/$name.yaml" 2>"$work/$name.err"; then
		cat "$work/$name.err"; fail "helm template ($name)"; return
	fi
	ok "helm template ($name): $(grep -c '^kind:' "$work/$name.yaml") objects"
	python3 "$check" "$work/$name.yaml" "${cargs[@]}" | sed 's/^/  /'
	[ "${PIPESTATUS[0]}" = 0 ] && ok "rendered chart checks ($name)" || fail "rendered chart checks ($name)"
}

render default -- "$chart/values.yaml"
render production -f "$prod" -- "$chart/values.yaml" "$prod" --expect-gateway --expect-notify
# Passwords given as values: the chart makes Secrets, pods reference them.
pw='pl41n-Pg-pa55word' hook='pl41n-hmac-k3y'
cat >"$work/created-values.yaml" <<VALUES
postgresql: {auth: {existingSecret: "", password: "$pw"}}
notify: {enabled: true, webhookUrl: "https://hooks.example/x", webhookSecret: {existingSecret: "", value: "$hook"}}
VALUES
render created -f "$work/created-values.yaml" -- "$chart/values.yaml" "$work/created-values.yaml" \
	--created-password "$pw" --created-webhook "$hook" --expect-notify
# Replicas come from the values, whatever they are.
render replicas --set processor.replicas=7 -- "$chart/values.yaml" <(echo 'processor: {replicas: 7}')

# Every option and CARTWATCH_* variable the production render gives a
# container is one its binary's --help lists (a misspelt or missing flag
# would crash-loop the pod).
python3 - "$work/production.yaml" <<'PY' && ok "every rendered flag and variable is in the binaries' --help" || fail "the chart passes options the binaries do not have"
import os, re, subprocess, sys, yaml
bins = {"cartwatch-processor": os.environ["CARTWATCH_PROCESSOR"],
        "cartwatch-gateway": os.environ["CARTWATCH_GATEWAY"],
        "cartwatch-notify": os.environ["CARTWATCH_NOTIFY"]}
helps = {k: subprocess.run([v, "--help"], capture_output=True, text=True).stdout
         for k, v in bins.items()}
bad, seen = [], set()
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if not doc or doc.get("kind") != "Deployment":
        continue
    for c in doc["spec"]["template"]["spec"]["containers"]:
        cmd = (c.get("command") or []) + (c.get("args") or [])
        prog = next((b for b in bins if any(b in x for x in cmd) or c["name"] in b), None)
        if not prog:
            bad.append(f"container {c['name']}: which binary?")
            continue
        seen.add(prog)
        h = helps[prog]
        for a in cmd:
            m = re.match(r"(--[a-z][a-z0-9-]*)", a)
            if m and not re.search(re.escape(m.group(1)) + r"\b", h):
                bad.append(f"{prog}: {m.group(1)} not in --help")
        for e in c.get("env") or []:
            if e["name"].startswith("CARTWATCH_") and e["name"] not in h:
                bad.append(f"{prog}: {e['name']} not in --help")
for b in bad:
    print("  " + b)
sys.exit(1 if bad or len(seen) < 3 else 0)
PY

# The checks can fail: a chart bent the wrong way (liveness on /readyz,
# a password as a plain env value, the PDB off) must be caught, by name.
"$helm" template cw "$chart" --set processor.livenessProbe.httpGet.path=/readyz \
	--set processor.pdb.enabled=false --set 'processor.extraEnv[0].name=PGPASSWORD' \
	--set 'processor.extraEnv[0].value=pl41n-leak' >"$work/bent.yaml" 2>&1 || fail "helm template (bent)"
bent=$(python3 "$check" "$work/bent.yaml" "$chart/values.yaml" --created-password pl41n-leak)
rc=$?
for want in 'FAIL liveness: GET /livez' 'FAIL one PodDisruptionBudget for processor' \
	'FAIL processor/processor: no secret in env values or arguments.*PGPASSWORD is a plain value' \
	"FAIL the plain secret value 'pl41n-leak' appears nowhere"; do
	grep -q -- "$want" <<<"$bent" && ok "bent chart caught: ${want#FAIL }" || fail "bent chart not caught: $want"
done
[ $rc = 1 ] && ok "check-rendered.py exits 1 on the bent chart" || fail "check-rendered.py exit $rc on the bent chart"

# Refusals: each must fail and say which value is missing.
refuse() { # WHAT EXPECTED-TEXT helm-args...
	local what=$1 want=$2; shift 2
	if out=$("$helm" template cw "$chart" "$@" 2>&1); then
		fail "helm template rendered $what"
	elif grep -q -- "$want" <<<"$out"; then
		ok "refused: $what ($(grep -o -- "$want.*" <<<"$out" | head -n 1))"
	else
		echo "$out"; fail "refused $what without naming $want"
	fi
}
refuse "no PostgreSQL secret" "postgresql.auth" --set postgresql.auth.existingSecret=
refuse "notify without a webhook URL" "notify.webhookUrl" --set notify.enabled=true
refuse "notify without a webhook secret" "notify.webhookSecret" \
	--set notify.enabled=true,notify.webhookUrl=https://x,notify.webhookSecret.existingSecret=

echo "test-helm: $((SECONDS - t0)) s"
exit $((fails > 0))
