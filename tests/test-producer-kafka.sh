#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-producer-kafka — 100k simulated events through the broker in
# $CARTWATCH_BOOTSTRAP_SERVERS (embedded or real, via run-with-servers),
# read back with kcat and decoded by Python's avro, an independent decoder:
#   * every event arrives, once (count, unique event ids), keyed by user_id,
#     single-object framed with the fingerprint of schemas/cart_event.avsc;
#   * totals by type and per-product units equal --summary-json;
#   * the messages are exactly the ones --output --format avro writes for
#     the same options (deterministic, byte for byte), and each user's
#     events arrive in event-time order.
set -euo pipefail

producer=${CARTWATCH_PRODUCER:?run through meson test}
bootstrap=${CARTWATCH_BOOTSTRAP_SERVERS:?run through run-with-servers}
source_root=${CARTWATCH_SOURCE_ROOT:?run through meson test}
work=$(mktemp -d "${CARTWATCH_TEST_DIR:-${TMPDIR:-/tmp}}/producer-kafka.XXXXXX")
trap 'rm -rf "$work"' EXIT
n=100000
topic=cart-events

# Python with the avro package (Debian's python3-avro is in /usr/bin).
py=
for cand in python3 /usr/bin/python3; do
	if "$cand" -c 'import avro.io' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "test-producer-kafka: no python3 with the avro module (apt install python3-avro)" >&2; exit 1; }

args=(--rate 0 --events "$n" --seed 20240716 --users 50000
      --start-time 2024-07-16T00:00:00Z --topic "$topic")
# shellcheck disable=SC2086 # the wrapper is a command line
${CARTWATCH_TEST_WRAPPER:-} "$producer" -b "$bootstrap" "${args[@]}" \
	--summary-json "$work/summary.json" 2>"$work/producer.log" || {
	cat "$work/producer.log" >&2; echo "test-producer-kafka: producer failed" >&2; exit 1; }
"$producer" "${args[@]}" -o "$work/expected.avro" --format avro 2>/dev/null

# Binary-safe dump: "<key length> <value length>\n<key><value>" per message.
kcat -C -b "$bootstrap" -t "$topic" -o beginning -e -q -f '%K %S\n%k%s' \
	>"$work/consumed.bin"

"$py" - "$work/consumed.bin" "$work/expected.avro" "$work/summary.json" \
	"$source_root/schemas/cart_event.avsc" "$n" <<'PY'
import collections, io, json, re, struct, sys
import avro.io, avro.schema

consumed_path, expected_path, summary_path, schema_path, n = sys.argv[1:]
n = int(n)
schema = avro.schema.parse(open(schema_path).read())

def crc64_avro(data):
    """CRC-64-AVRO (Rabin) as in the Avro spec, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp

# python3-avro 1.11 writes a primitive that had a logicalType as
# {"type":"long"}; the spec's Parsing Canonical Form (and Java) say "long".
pcf = re.sub(r'\{"type":"(null|boolean|int|long|float|double|bytes|string)"\}',
             r'"\1"', schema.canonical_form)
header = b"\xc3\x01" + struct.pack("<Q", crc64_avro(pcf.encode()))
reader = avro.io.DatumReader(schema)

def decode(value):
    assert value[:10] == header, "bad single-object header %r" % value[:10]
    return reader.read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))

messages = []
data = open(consumed_path, "rb").read()
off = 0
while off < len(data):
    nl = data.index(b"\n", off)
    klen, vlen = map(int, data[off:nl].split())
    key = data[nl + 1:nl + 1 + klen]
    value = data[nl + 1 + klen:nl + 1 + klen + vlen]
    messages.append((key, value))
    off = nl + 1 + klen + vlen

errors = []
def check(cond, what):
    if not cond:
        errors.append(what)

check(len(messages) == n, "consumed %d messages, want %d" % (len(messages), n))
by_type = collections.Counter()
added = collections.Counter()
removed = collections.Counter()
ids = set()
last_time = {}
for key, value in messages:
    ev = decode(value)
    check(key.decode() == ev["user_id"], "key %r is not user_id %r" % (key, ev["user_id"]))
    by_type[ev["event_type"]] += 1
    ids.add(ev["event_id"])
    if ev["event_type"] == "cart_add":
        added[ev["product_id"]] += ev["quantity"]
    elif ev["event_type"] == "cart_remove":
        removed[ev["product_id"]] += ev["quantity"]
        check(ev["reason"] is not None, "cart_remove without reason")
    # One user is one partition, and kcat keeps each partition's order.
    prev = last_time.get(key)
    check(prev is None or ev["event_time"] > prev, "user %r out of event-time order" % key)
    last_time[key] = ev["event_time"]
check(len(ids) == n, "%d distinct event ids, want %d" % (len(ids), n))

summary = json.load(open(summary_path))
check(summary["events_total"] == n and summary["delivered"] == n and summary["failed"] == 0,
      "summary totals %r" % {k: summary[k] for k in ("events_total", "delivered", "failed")})
check(dict(by_type) == {k: v for k, v in summary["events_by_type"].items() if v},
      "events by type: consumed %r, summary %r" % (dict(by_type), summary["events_by_type"]))
for pid, t in summary["products"].items():
    check(added[pid] == t["added_qty"], "%s added_qty consumed %d summary %d" % (pid, added[pid], t["added_qty"]))
    check(removed[pid] == t["removed_qty"], "%s removed_qty consumed %d summary %d" % (pid, removed[pid], t["removed_qty"]))
check(set(added) <= set(summary["products"]), "consumed products missing from the summary")

expected = []
data = open(expected_path, "rb").read()
off = 0
while off < len(data):
    (length,) = struct.unpack(">I", data[off:off + 4])
    expected.append(data[off + 4:off + 4 + length])
    off += 4 + length
check(sorted(v for _, v in messages) == sorted(expected),
      "consumed messages differ from --output --format avro of the same run")

for e in errors[:20]:
    print("FAIL:", e, file=sys.stderr)
if errors:
    sys.exit(1)
print("ok   %d events consumed and decoded; by type %s; %d products match the summary"
      % (len(messages), dict(by_type), len(summary["products"])))
PY
