#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""check-rendered.py — assertions on `helm template` output of the cartwatch
chart (deploy/helm/cartwatch), for tests/test-helm.sh.

    check-rendered.py RENDERED.yaml VALUES.yaml [--created-password P]
                      [--created-webhook W] [--expect-gateway] [--expect-notify]

VALUES.yaml is the chart's values.yaml merged with the -f file of the
render (the script merges them itself), so every expectation comes from
the values the chart was given: replicas, ports, Secret names. Prints one
ok/FAIL line per check; exit 1 when any failed. Not a schema validator:
it checks what issue 13 asks of the chart.
"""
import argparse
import base64
import re
import sys

import yaml

fails = 0


def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails += 1
    return cond


def merge(a, b):
    out = dict(a)
    for k, v in (b or {}).items():
        out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def find(docs, kind, component):
    return [d for d in docs if d["kind"] == kind and
            d["metadata"]["labels"].get("app.kubernetes.io/component") == component]


def one(docs, kind, component):
    found = find(docs, kind, component)
    check(len(found) == 1, "one %s for %s (found %d)" % (kind, component, len(found)))
    return found[0] if found else None


def port_number(container, port):
    """A probe's port (a name or a number) as the container's number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def selector_matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_pod(dep, component, secrets, rendered_secrets, plain):
    """What every pod of the chart must hold: secrets only by reference,
    resource requests, a non-root security context, scrape annotations."""
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    check(selector_matches(dep["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]),
          "%s: Deployment selector matches its pod labels" % component)
    check(spec.get("securityContext", {}).get("runAsNonRoot") is True,
          "%s: pods run as non-root" % component)
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics",
          "%s: Prometheus scrape annotations" % component)
    for c in spec["containers"]:
        req = c.get("resources", {}).get("requests", {})
        check("cpu" in req and "memory" in req,
              "%s/%s: cpu and memory requests (%s)" % (component, c["name"], req))
        check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True and
              c["securityContext"].get("allowPrivilegeEscalation") is False,
              "%s/%s: read-only root, no privilege escalation" % (component, c["name"]))
        check(str(ann.get("prometheus.io/port")) in [str(p["containerPort"]) for p in c.get("ports", [])],
              "%s: prometheus.io/port %s is a container port" % (component, ann.get("prometheus.io/port")))
        bad, refs = [], []
        for e in c.get("env", []):
            if "value" in e:
                v = str(e["value"])
                if re.search(r"PASSWORD|SECRET|TOKEN", e["name"]):
                    bad.append("%s is a plain value" % e["name"])
                bad += ["%s holds a secret value" % e["name"] for p in plain if p in v]
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.append("%s<-%s/%s" % (e["name"], ref["name"], ref["key"]))
                if (ref["name"], ref["key"]) not in secrets:
                    bad.append("%s names Secret %s/%s, neither in the values nor rendered"
                               % (e["name"], ref["name"], ref["key"]))
        bad += ["argument %r holds a secret value" % a
                for a in c.get("args", []) + c.get("command", []) for p in plain if p in str(a)]
        check(not bad, "%s/%s: no secret in env values or arguments; secretKeyRef %s%s"
              % (component, c["name"], ", ".join(refs) or "none", ("; " + "; ".join(bad)) if bad else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("values", nargs="+")
    ap.add_argument("--created-password")
    ap.add_argument("--created-webhook")
    ap.add_argument("--expect-gateway", action="store_true")
    ap.add_argument("--expect-notify", action="store_true")
    o = ap.parse_args()

    values = {}
    for f in o.values:
        with open(f) as fh:
            values = merge(values, yaml.safe_load(fh))
    with open(o.rendered) as fh:
        text = fh.read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = sorted("%s/%s" % (d["kind"], d["metadata"]["name"]) for d in docs)
    print("     objects: " + ", ".join(kinds))

    pg = values["postgresql"]["auth"]
    wh = values["notify"]["webhookSecret"]
    plain = [p for p in (o.created_password, o.created_webhook) if p]
    # The Secrets pods may name: the operator's, or the ones rendered here.
    rendered_secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    secrets = {(n, k) for n, d in rendered_secrets.items() for k in d.get("data", {})}
    if pg["existingSecret"]:
        secrets.add((pg["existingSecret"], pg["existingSecretKey"]))
    if wh["existingSecret"]:
        secrets.add((wh["existingSecret"], wh["existingSecretKey"]))

    # Plain secret values appear nowhere but base64 in a Secret's data.
    for p in plain:
        check(p not in text, "the plain secret value %r appears nowhere in the rendered YAML" % p)
        enc = base64.b64encode(p.encode()).decode()
        check(any(enc in d.get("data", {}).values() for d in rendered_secrets.values()),
              "a rendered Secret holds %r (base64)" % p)
    if not o.created_password:
        check(not any(d.get("data", {}).get("password") for d in rendered_secrets.values()),
              "no PostgreSQL password Secret rendered when existingSecret is named")

    # The processor: a consumer group as a Deployment.
    pv = values["processor"]
    dep = one(docs, "Deployment", "processor")
    if dep:
        spec = dep["spec"]["template"]["spec"]
        c = spec["containers"][0]
        check(dep["spec"]["replicas"] == pv["replicas"],
              "processor replicas %s = processor.replicas %s" % (dep["spec"]["replicas"], pv["replicas"]))
        port = pv["metricsPort"]
        check(port_number(c, "metrics") == port, "processor container port 'metrics' is %s" % port)
        env = {e["name"]: e for e in c.get("env", [])}
        check(env.get("CARTWATCH_METRICS_ADDR", {}).get("value") == "0.0.0.0:%d" % port,
              "processor serves /livez and /readyz on 0.0.0.0:%d" % port)
        lp, rp = c.get("livenessProbe", {}).get("httpGet", {}), c.get("readinessProbe", {}).get("httpGet", {})
        check(lp.get("path") == "/livez" and port_number(c, lp.get("port")) == port,
              "liveness: GET /livez on %s (got %s)" % (port, lp))
        check(rp.get("path") == "/readyz" and port_number(c, rp.get("port")) == port,
              "readiness: GET /readyz on %s (got %s)" % (port, rp))
        grace = spec.get("terminationGracePeriodSeconds", 30)
        check(60 <= grace <= 600 and grace == pv["terminationGracePeriodSeconds"],
              "terminationGracePeriodSeconds %s outlasts a flush drain (60-600 s)" % grace)
        check(env.get("CARTWATCH_GROUP", {}).get("value") == pv["group"], "group %s" % pv["group"])
        check(env.get("CARTWATCH_BOOTSTRAP_SERVERS", {}).get("value") == values["kafka"]["bootstrapServers"],
              "bootstrap servers from kafka.bootstrapServers")
        check("fieldRef" in env.get("CARTWATCH_INSTANCE", {}).get("valueFrom", {}),
              "each member named after its pod (CARTWATCH_INSTANCE)")
        ref = env.get("PGPASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
        want = (pg["existingSecret"], pg["existingSecretKey"]) if pg["existingSecret"] else (None, "password")
        check(ref and "value" not in env["PGPASSWORD"] and
              (ref.get("name") == want[0] or want[0] is None) and ref.get("key") == want[1],
              "PGPASSWORD from secretKeyRef %s (want %s)" % (ref, want))
        check_pod(dep, "processor", secrets, rendered_secrets, plain)
        pdb = one(docs, "PodDisruptionBudget", "processor")
        if pdb:
            check(selector_matches(pdb["spec"]["selector"]["matchLabels"],
                                   dep["spec"]["template"]["metadata"]["labels"]),
                  "processor PDB selects the processor pods")
            check(pdb["spec"].get("maxUnavailable") == pv["pdb"]["maxUnavailable"],
                  "processor PDB maxUnavailable %s" % pdb["spec"].get("maxUnavailable"))

    # The gateway: a Deployment behind a Service on 8080, or nothing.
    gv = values["gateway"]
    if o.expect_gateway:
        dep, svc = one(docs, "Deployment", "gateway"), one(docs, "Service", "gateway")
        if dep and svc:
            c = dep["spec"]["template"]["spec"]["containers"][0]
            check(dep["spec"]["replicas"] == gv["replicas"], "gateway replicas %s" % gv["replicas"])
            check(port_number(c, "http") == gv["port"] and "--listen=0.0.0.0:%d" % gv["port"] in c["args"],
                  "gateway listens on %d" % gv["port"])
            rp = c.get("readinessProbe", {}).get("httpGet", {})
            check(rp.get("path") == "/healthz" and port_number(c, rp.get("port")) == gv["port"],
                  "gateway readiness: GET /healthz on %d" % gv["port"])
            sp = svc["spec"]["ports"][0]
            check(sp["port"] == gv["service"]["port"] and port_number(c, sp["targetPort"]) == gv["port"],
                  "gateway Service %s -> container %d" % (sp["port"], gv["port"]))
            check(selector_matches(svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]),
                  "gateway Service selects the gateway pods")
            check_pod(dep, "gateway", secrets, rendered_secrets, plain)
    else:
        check(not [d for d in docs if d["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"],
              "no gateway objects while gateway.enabled=false")

    # notify: webhook URL as an argument, its secret as a mounted file.
    nv = values["notify"]
    if o.expect_notify:
        dep = one(docs, "Deployment", "notify")
        if dep:
            spec = dep["spec"]["template"]["spec"]
            c = spec["containers"][0]
            check("--webhook-url=" + nv["webhookUrl"] in c["args"], "notify --webhook-url %s" % nv["webhookUrl"])
            sf = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--secret-file=")]
            check(len(sf) == 1, "notify --secret-file given once")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            vol = None
            for path, name in mounts.items():
                if sf and sf[0].startswith(path.rstrip("/") + "/"):
                    vol = vols.get(name)
            sec = (vol or {}).get("secret", {})
            want = wh["existingSecret"] or next((n for n in rendered_secrets if n.endswith("-webhook")), None)
            key = wh["existingSecretKey"] if wh["existingSecret"] else "secret"
            check(sec.get("secretName") == want and
                  [i["key"] for i in sec.get("items", []) if sf and sf[0].endswith("/" + i["path"])] == [key],
                  "notify --secret-file is key %s of Secret %s, mounted (%s)" % (key, want, sec))
            check_pod(dep, "notify", secrets, rendered_secrets, plain)
    else:
        check(not [d for d in docs if d["metadata"]["labels"].get("app.kubernetes.io/component") == "notify"],
              "no notify objects while notify.enabled=false")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
