#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-install.sh — `meson install --destdir` gives an operator what issue
# 13 lists: every binary, cartwatch-report (running from any directory),
# the Avro schemas and migrations under share/cartwatch/, a man page per
# command that matches its --help (the installed page is byte for byte the
# binary's --help-man, names every option of --help, and groff renders it
# without warnings), and the systemd template unit with its example
# environment file, checked with `systemd-analyze verify`. A missing tool
# (groff, systemd-analyze) is a failure, never a skip.
set -uo pipefail
build=${CARTWATCH_BUILD_ROOT:?}
work=$(mktemp -d "${CARTWATCH_TEST_DIR:-${TMPDIR:-/tmp}}/install.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

dest=$work/root
if ! meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$work/install.log" 2>&1; then
	cat "$work/install.log"; fail "meson install"; exit 1
fi
# The configured directories (absolute prefix, the others relative to it).
eval "$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
for k in ("prefix", "bindir", "datadir", "mandir"):
    print("%s=%s" % (k, o[k]))')"
bin=$dest$prefix/$bindir share=$dest$prefix/$datadir man1=$dest$prefix/$mandir/man1
unitdir=$dest$prefix/lib/systemd/system

progs=(cartwatch-processor cartwatch-producer cartwatch-devbroker cartwatch-gateway cartwatch-notify)
daemons=(processor gateway notify)
expected=()
for p in "${progs[@]}" cartwatch-report; do expected+=("$bin/$p" "$man1/$p.1"); done
expected+=("$share/cartwatch/schemas/cart_event.avsc" "$share/cartwatch/schemas/cart_abandonment.avsc"
	"$share/cartwatch/schemas/history/cart_event.v1.avsc" "$share/cartwatch/migrations/001_schema.sql"
	"$share/cartwatch/examples/processor.env" "$unitdir/cartwatch-processor@.service"
	"$share/cartwatch/examples/gateway.env" "$unitdir/cartwatch-gateway@.service"
	"$share/cartwatch/examples/notify.env" "$unitdir/cartwatch-notify@.service")
for f in "${expected[@]}"; do
	[ -s "$f" ] && ok "installed ${f#"$dest"}" || fail "not installed: ${f#"$dest"}"
done
for p in "${progs[@]}" cartwatch-report; do
	[ -x "$bin/$p" ] || fail "$p is not executable"
done
n=$(find "$share/cartwatch/migrations" -name '*.sql' | wc -l)
want=$(find "${CARTWATCH_SOURCE_ROOT:?}/migrations" -name '*.sql' | wc -l)
[ "$n" = "$want" ] && ok "$n migrations installed" || fail "$n migrations installed, want $want"

# The installed commands run on their own, from anywhere.
for p in "${progs[@]}"; do
	out=$(cd / && "$bin/$p" --version) && [[ $out == "$p "* ]] && ok "installed $p --version: $out" ||
		fail "installed $p --version: $out"
done
(cd / && "$bin/cartwatch-report" --help) | grep -q -- '--pg CONNINFO' && ok "cartwatch-report --help from /" ||
	fail "cartwatch-report --help from /"
(cd / && "$bin/cartwatch-report" --bogus >/dev/null 2>&1); rc=$?
[ $rc = 2 ] && ok "cartwatch-report usage error exits 2" || fail "cartwatch-report --bogus: exit $rc, want 2"

# Man pages: in step with --help, and clean roff.
command -v groff >/dev/null || fail "groff not found (Debian package groff-base; scripts/bootstrap installs it)"
for p in "${progs[@]}" cartwatch-report; do
	page=$man1/$p.1
	[ -s "$page" ] || continue
	if [ "$p" != cartwatch-report ]; then
		cmp -s "$page" <("$bin/$p" --help-man) && ok "$p.1 is $p --help-man" ||
			fail "$p.1 differs from $p --help-man"
	fi
	text=$(sed 's/\\-/-/g' "$page")
	n=0
	while read -r opt; do
		n=$((n + 1))
		grep -q -- "$opt\b" <<<"$text" || fail "$p.1 lacks $opt (in --help)"
	done < <("$bin/$p" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
	[ $n -ge 3 ] && ok "$p.1 names all $n options of --help" || fail "$p --help: only $n options found"
	if command -v groff >/dev/null; then
		warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
		[ -z "$warn" ] && ok "$p.1 renders without warnings" || fail "$p.1: groff says: $warn"
	fi
done

# The unit: systemd's own checker, on a copy whose ExecStart points into
# the destdir (verify insists the binary exists) and with the installed
# man pages on MANPATH (it checks Documentation=man:...).
for daemon in "${daemons[@]}"; do
unit=$unitdir/cartwatch-$daemon@.service
grep -qx "ExecStart=$prefix/$bindir/cartwatch-$daemon" "$unit" && ok "unit runs $prefix/$bindir/cartwatch-$daemon" ||
	fail "unit ExecStart: $(grep ExecStart= "$unit")"
for key in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes Restart=on-failure \
	'EnvironmentFile=/etc/cartwatch/%i.env'; do
	grep -qx -- "$key" "$unit" && ok "$daemon unit has $key" || fail "$daemon unit lacks $key"
done
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")
[ "${stop:-0}" -gt 30 ] && ok "$daemon: TimeoutStopSec=${stop}s outlasts the drain (>30 s)" || fail "$daemon: TimeoutStopSec '${stop}' too short"
if ! command -v systemd-analyze >/dev/null; then
	fail "systemd-analyze not found (Debian package systemd; scripts/bootstrap installs it)"
else
	mkdir -p "$work/units"
	sed "s|^ExecStart=$prefix/$bindir/|ExecStart=$bin/|" "$unit" >"$work/units/cartwatch-$daemon@check.service"
	if out=$(MANPATH=$dest$prefix/$mandir: SYSTEMD_LOG_COLOR=0 systemd-analyze verify \
		"$work/units/cartwatch-$daemon@check.service" 2>&1) && [ -z "$out" ]; then
		ok "systemd-analyze verify cartwatch-$daemon@.service: clean"
	else
		fail "systemd-analyze verify cartwatch-$daemon@.service: $out"
	fi
fi
done
exit $((fails > 0))
