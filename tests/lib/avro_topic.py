# SPDX-License-Identifier: Apache-2.0
"""avro_topic.py — read a topic of Avro single-object records with kcat and
decode them with Python's avro library, for the tests that compare what a
cartwatch binary wrote with what they expect.

    records(bootstrap, topic, schema_path, fingerprint)

yields (key, framed, record) for every message from the beginning to the
current end: key as text, framed True when the value starts with the
single-object header of FINGERPRINT (the schema's CRC-64-AVRO, checked by
tests/fingerprint.py), record the decoded value (None when not framed).
"""
import io
import subprocess

import avro.io
import avro.schema


def reader(schema_path):
    """A DatumReader of the schema. The logical types are renamed so that
    the library hands back the plain long and string on the wire."""
    text = open(schema_path).read()
    for lt in ('"timestamp-millis"', '"uuid"'):
        text = text.replace('"logicalType": ' + lt, '"cwLogicalType": ' + lt)
    return avro.io.DatumReader(avro.schema.parse(text))


def records(bootstrap, topic, schema_path, fingerprint):
    header = b"\xc3\x01" + fingerprint.to_bytes(8, "little")
    datum_reader = reader(schema_path)
    out = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e",
         "-q", "-f", "%K %S\n%k%s"], check=True, stdout=subprocess.PIPE).stdout
    pos = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        klen, vlen = (int(x) for x in out[pos:nl].split())
        pos = nl + 1
        key = out[pos:pos + klen].decode()
        pos += klen
        val = out[pos:pos + vlen]
        pos += vlen
        framed = val[:10] == header
        rec = (datum_reader.read(avro.io.BinaryDecoder(io.BytesIO(val[10:])))
               if framed else None)
        yield key, framed, rec
