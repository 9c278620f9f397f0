#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-docs.sh — docs/configuration.md documents every option of every
# program exactly as the programs' option tables say (`--help-markdown`),
# and every option in a table also shows in `--help`. Regenerate the
# document with scripts/gen-docs after changing an option. The README's
# command lines use only options the programs have, a simulation recipe
# gives the processor the producer's --time-scale (the producer's default
# is 60), and every devbroker example creates the dead-letter topic.
set -euo pipefail
src=${CARTWATCH_SOURCE_ROOT:?}
build=${CARTWATCH_BUILD_ROOT:?}
doc=$src/docs/configuration.md
fail=0
for prog in processor/cartwatch-processor producer/cartwatch-producer devbroker/cartwatch-devbroker gateway/cartwatch-gateway notify/cartwatch-notify; do
	want=$("$build/$prog" --help-markdown)
	have=$(awk -v p="$prog" '$0 == "<!-- BEGIN " p " -->" { on = 1; next } /^<!-- END / { on = 0 } on' "$doc")
	if [ "$want" != "$have" ]; then
		echo "docs/configuration.md is out of date for $prog (run scripts/gen-docs):" >&2
		diff <(echo "$have") <(echo "$want") >&2 || true
		fail=1
	fi
	n=0
	# Captured once: `--help | grep -q` would let grep's early exit kill
	# the writer with SIGPIPE, a failure under pipefail.
	help=$("$build/$prog" --help)
	while read -r opt; do
		grep -q -- "$opt" <<<"$help" || { echo "$prog: $opt missing from --help" >&2; fail=1; }
		n=$((n + 1))
	done < <(echo "$want" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
	[ $n -ge 3 ] || { echo "$prog: only $n options found; the check is broken" >&2; fail=1; }
	echo "$prog: $n options documented"
done
/usr/bin/python3 - "$src/README.md" "$build" <<'PY' || fail=1
import re, shlex, subprocess, sys
readme, build = sys.argv[1:3]
progs = {"cartwatch-processor": "processor", "cartwatch-producer": "producer",
         "cartwatch-devbroker": "devbroker"}
helps = {p: subprocess.run([f"{build}/{d}/{p}", "--help"], capture_output=True,
                           text=True).stdout for p, d in progs.items()}
bad, blocks = [], re.findall(r"```sh\n(.*?)```", open(readme).read(), re.S)
for block in blocks:
    cmds = {}
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0].split("/")[-1] not in progs:
            continue
        prog = words[0].split("/")[-1]
        cmds[prog] = words
        for w in words[1:]:
            opt = w.split("=", 1)[0]
            if opt.startswith("--") and not re.search(r"(?<![\w-])" + re.escape(opt) + r"\b", helps[prog]):
                bad.append(f"README: {prog} has no option {opt}")
        if prog == "cartwatch-devbroker":
            topics = words[words.index("--topics") + 1] if "--topics" in words else ""
            names = {t.split(":")[0] for t in topics.split(",")}
            if not {"cart-events", "cart-abandonments", "cart-events-dlq"} <= names:
                bad.append(f"README: devbroker example creates {sorted(names)}, not all three topics")
    def scale(words):
        return words[words.index("--time-scale") + 1] if "--time-scale" in words else None
    if "cartwatch-processor" in cmds and "cartwatch-producer" in cmds:
        want = scale(cmds["cartwatch-producer"]) or "60"
        if scale(cmds["cartwatch-processor"]) != want:
            bad.append(f"README: the producer runs at --time-scale {want}, the processor at "
                       f"{scale(cmds['cartwatch-processor']) or 'its default 1'}")
for b in bad:
    print(b, file=sys.stderr)
print(f"README: {len(blocks)} command blocks checked")
sys.exit(1 if bad else 0)
PY
exit $fail
