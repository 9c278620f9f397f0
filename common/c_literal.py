# SPDX-License-Identifier: Apache-2.0
"""c_literal — text as a C string literal, for the build scripts that embed
files in the binaries (common/embed_schemas.py, processor/embed_migrations.py).
"""


def c_string(text):
    """The text as adjacent C string literals, one per source line."""
    out = []
    for line in text.splitlines(keepends=True):
        esc = (line.replace('\\', '\\\\').replace('"', '\\"')
               .replace('\t', '\\t').replace('\r', '\\r').replace('\n', '\\n'))
        # Keep trigraph-like sequences inert.
        esc = esc.replace('??', '?\\?')
        out.append('\t"%s"' % esc)
    return '\n'.join(out) if out else '\t""'
