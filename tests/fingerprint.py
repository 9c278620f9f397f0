#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Check the C codec's schema contract against an independent implementation.

Runs `test-codec --print-contract` and checks, for schemas/cart_event.avsc
and schemas/cart_abandonment.avsc, that the Parsing Canonical Form and
CRC-64-AVRO fingerprint compiled into common/cw_event.c and
common/cw_abandonment.c are what python3-avro (Debian package python3-avro,
Apache Avro 1.11) derives from the .avsc files, and that the enum symbols
and cw_event_init() defaults match the schema.

python3-avro 1.11 has canonical_form but no fingerprint function, so the
Rabin fingerprint is computed here from the spec, and checked first against
the spec's published test vectors (share/test/data/schema-tests.txt).
Its canonical_form also keeps primitives that carry a logicalType as
{"type":"long"} instead of the spec's simple form "long" ([PRIMITIVES]
rule; the Java reference gives "long"), so that one rule is re-applied
here, and reported.

Not for: testing the binary encoding; tests/test-codec.c does that.

With TEST_SCHEMA, also checks that cw_schema's own PCF code (the one that
keys --schema-dir and schemas/history files) gives python3-avro's PCF and
fingerprint for every schemas/history/*.avsc.

Usage: fingerprint.py TEST_CODEC [SOURCE_ROOT [TEST_SCHEMA]]. Output is TAP; fails (does
not skip) if no python with the avro module is available.
"""

import json
import os
import subprocess
import sys

try:
    import avro.schema
except ImportError:
    # A pyenv/venv python3 may shadow Debian's, which has python3-avro.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3") \
            and not os.environ.get("CW_FP_REEXEC"):
        os.environ["CW_FP_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    # No silent skips (see run-with-servers): a missing oracle is a failure.
    print("Bail out! python module avro not found: apt-get install python3-avro")
    sys.exit(1)

EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) fingerprint, as in the Avro spec."""
    fp = EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


# (schema as written, published fingerprint as signed int64) from
# apache/avro share/test/data/schema-tests.txt
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('{"type":"null"}', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('{"type":"fixed","name":"foo","size":15}', 1756455273707447556),
    ('{"type":"record","name":"foo","fields":[{"name":"f1","type":"boolean"}]}',
     7843277075252814651),
]

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def simplify_primitives(node):
    """Apply the spec's [PRIMITIVES] rule: {"type":"int"} -> "int"."""
    if isinstance(node, dict):
        if list(node.keys()) == ["type"] and node["type"] in PRIMITIVES:
            return node["type"]
        return {k: simplify_primitives(v) for k, v in node.items()}
    if isinstance(node, list):
        return [simplify_primitives(v) for v in node]
    return node


def pcf(schema) -> str:
    lib = schema.canonical_form
    fixed = json.dumps(simplify_primitives(json.loads(lib)), separators=(",", ":"))
    return lib, fixed


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, name, diag=None):
        self.n += 1
        print(("ok" if ok else "not ok"), self.n, "-", name)
        if not ok:
            self.failed += 1
            if diag:
                for line in str(diag).splitlines():
                    print("#", line)


def main():
    if len(sys.argv) < 2:
        print("usage: fingerprint.py TEST_CODEC [SOURCE_ROOT]", file=sys.stderr)
        return 2
    binary = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else \
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tap = Tap()

    for text, want in SPEC_VECTORS:
        lib, fixed = pcf(avro.schema.parse(text))
        got = crc64_avro(fixed.encode())
        tap.check(got == want & 0xFFFFFFFFFFFFFFFF,
                  f"spec vector {text}", f"got {got:016x}, want {want & (2**64 - 1):016x}")
    tap.check(crc64_avro(b'"null"') == 0x63DD24E7CC258F8A, 'fp("null") = 0x63dd24e7cc258f8a')

    out = subprocess.run([binary, "--print-contract"], check=True,
                         capture_output=True, text=True).stdout
    c_fp, c_pcf, c_symbols, c_defaults = {}, {}, {}, {}
    for line in out.splitlines():
        kind, name, value = line.split(" ", 2)
        if kind == "fingerprint":
            c_fp[name] = int(value, 16)
        elif kind == "pcf":
            c_pcf[name] = value
        elif kind == "symbols":
            c_symbols[name] = json.loads(value)
        elif kind == "default":
            field, val = value.split(" ", 1)
            c_defaults.setdefault(name, {})[field] = json.loads(val)

    for file in ("cart_event.avsc", "cart_abandonment.avsc"):
        with open(os.path.join(root, "schemas", file), encoding="utf-8") as f:
            schema = avro.schema.parse(f.read())
        name = schema.fullname
        lib, fixed = pcf(schema)
        if lib != fixed:
            print(f"# {name}: python-avro canonical_form keeps logical-type "
                  "primitives as {\"type\":...}; applied the spec's [PRIMITIVES] rule")
        py_fp = crc64_avro(fixed.encode())
        print(f"# {name}: python fingerprint {py_fp:016x}, "
              f"C fingerprint {c_fp.get(name, 0):016x}")
        tap.check(c_pcf.get(name) == fixed, f"{name}: C PCF == python-avro PCF",
                  f"C:      {c_pcf.get(name)}\npython: {fixed}")
        tap.check(c_fp.get(name) == py_fp, f"{name}: C fingerprint == CRC-64-AVRO(PCF)",
                  f"C {c_fp.get(name, 0):016x}, python {py_fp:016x}")

        if name == "cartwatch.CartEvent":
            enum = schema.fields_dict["event_type"].type
            tap.check(c_symbols.get(enum.fullname) == list(enum.symbols),
                      f"{enum.fullname}: C symbols == schema symbols",
                      f"C {c_symbols.get(enum.fullname)}, schema {enum.symbols}")
            for fname, cval in c_defaults.get(name, {}).items():
                fld = schema.fields_dict[fname]
                tap.check(fld.has_default and fld.default == cval,
                          f"{name}.{fname}: cw_event_init default == schema default",
                          f"C {cval!r}, schema {fld.default!r}")
            with_default = {f.name for f in schema.fields if f.has_default}
            tap.check(with_default == set(c_defaults.get(name, {})),
                      f"{name}: every schema default is set by cw_event_init",
                      f"schema {sorted(with_default)}, C {sorted(c_defaults.get(name, {}))}")

    schema_bin = sys.argv[3] if len(sys.argv) > 3 else None
    history = os.path.join(root, "schemas", "history")
    if schema_bin:
        files = sorted(f for f in os.listdir(history) if f.endswith(".avsc"))
        tap.check(bool(files), "schemas/history holds at least one schema")
        for file in files:
            path = os.path.join(history, file)
            with open(path, encoding="utf-8") as f:
                _, fixed = pcf(avro.schema.parse(f.read()))
            out = subprocess.run([schema_bin, "--print-pcf", path], check=True,
                                 capture_output=True, text=True).stdout
            got = dict(line.split(" ", 1) for line in out.splitlines())
            tap.check(got.get("pcf") == fixed,
                      f"history/{file}: cw_schema PCF == python-avro PCF",
                      f"C:      {got.get('pcf')}\npython: {fixed}")
            tap.check(int(got.get("fingerprint", "0"), 16) == crc64_avro(fixed.encode()),
                      f"history/{file}: cw_schema fingerprint == CRC-64-AVRO(PCF)")

    print(f"1..{tap.n}")
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
