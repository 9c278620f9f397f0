#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-docs.sh — docs/configuration.md documents every option of every
# program exactly as the programs' option tables say (`--help-markdown`),
# and every option in a table also shows in `--help`. Regenerate the
# document with scripts/gen-docs after changing an option.
set -euo pipefail
src=${CARTWATCH_SOURCE_ROOT:?}
build=${CARTWATCH_BUILD_ROOT:?}
doc=$src/docs/configuration.md
fail=0
for prog in processor/cartwatch-processor producer/cartwatch-producer devbroker/cartwatch-devbroker notify/cartwatch-notify; do
	want=$("$build/$prog" --help-markdown)
	have=$(awk -v p="$prog" '$0 == "<!-- BEGIN " p " -->" { on = 1; next } /^<!-- END / { on = 0 } on' "$doc")
	if [ "$want" != "$have" ]; then
		echo "docs/configuration.md is out of date for $prog (run scripts/gen-docs):" >&2
		diff <(echo "$have") <(echo "$want") >&2 || true
		fail=1
	fi
	n=0
	while read -r opt; do
		"$build/$prog" --help | grep -q -- "$opt" || { echo "$prog: $opt missing from --help" >&2; fail=1; }
		n=$((n + 1))
	done < <(echo "$want" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
	[ $n -ge 3 ] || { echo "$prog: only $n options found; the check is broken" >&2; fail=1; }
	echo "$prog: $n options documented"
done
exit $fail
