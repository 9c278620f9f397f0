#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-deb.sh — the Debian package of issue 13, built as an operator or CI
# would (`dpkg-buildpackage -us -uc -b`) from a copy of the source tree in a
# temporary directory, so the tree itself gains no obj-*/ or debian/cartwatch/.
# Checks: the package holds everything `meson install` of the same build
# installs (so binaries and units added later land without editing debian/),
# the commands, man pages, units, schemas and examples by name; Depends names
# only runtime libraries (+ postgresql-client for cartwatch-report's psql);
# lintian reports no error (its warnings are printed); and the binaries,
# unpacked with `dpkg -x` into a throwaway root, run with the system's
# libraries (LD_LIBRARY_PATH untouched). Missing tools are failures, never
# skips (scripts/bootstrap installs them).
set -uo pipefail
src=${CARTWATCH_SOURCE_ROOT:?}
work=$(mktemp -d "${CARTWATCH_TEST_DIR:-${TMPDIR:-/tmp}}/deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
t0=$SECONDS

for tool in dpkg-buildpackage dpkg-deb dh lintian meson; do
	command -v $tool >/dev/null || { fail "$tool not found (scripts/bootstrap installs debhelper, dpkg-dev, lintian)"; exit 1; }
done

# The copy: the tree minus git, build directories (anything holding
# meson-private/) and leftovers of a package build run in the tree.
mkdir "$work/src"
tar -C "$src" --exclude-vcs --exclude-tag-all=meson-private --exclude='./build*' \
	--exclude='./obj-*' --exclude=./debian/cartwatch --exclude=./debian/.debhelper \
	--exclude=./debian/files --exclude='./debian/*.substvars' --exclude=./debian/debhelper-build-stamp \
	-cf - . | tar -C "$work/src" -xf - || { fail "copying the source tree"; exit 1; }
[ -f "$work/src/debian/control" ] || { fail "no debian/control in the copy of $src"; exit 1; }

# nocheck: the build's own unit tests run elsewhere in this suite.
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="nocheck parallel=${CARTWATCH_DEB_JOBS:-2}" \
	dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	tail -n 40 "$work/build.log"; fail "dpkg-buildpackage -us -uc -b"; exit 1
fi
arch=$(dpkg --print-architecture)
debs=("$work"/cartwatch_*_"$arch".deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || { ls "$work"; fail "want one cartwatch_*_$arch.deb, got: ${debs[*]}"; exit 1; }
deb=${debs[0]}
ok "built ${deb##*/} ($(stat -c %s "$deb") bytes) in $((SECONDS - t0)) s"

# Control fields: Depends holds runtime libraries only.
[ "$(dpkg-deb -f "$deb" Package)" = cartwatch ] && ok "Package: cartwatch" || fail "Package: $(dpkg-deb -f "$deb" Package)"
depends=$(dpkg-deb -f "$deb" Depends)
echo "     Depends: $depends"
n=0
while read -r name; do
	[ -n "$name" ] || continue
	n=$((n + 1))
	case $name in
	*-dev | *-dbg | *-dbgsym) fail "Depends names a development package: $name" ;;
	lib*) ;;
	postgresql-client) ;;
	*) fail "Depends names $name, which is no runtime library" ;;
	esac
done < <(tr ',|' '\n\n' <<<"$depends" | sed -E 's/\(.*\)//; s/:any//; s/^ +| +$//g')
for lib in libc6 librdkafka1 libpq5 libjansson4 libmicrohttpd12; do
	grep -Eq "(^|, )$lib( |,|$)" <<<"$depends" && ok "Depends has $lib" || fail "Depends lacks $lib"
done
grep -Eq '(^|, )libavro[0-9a-z.]*( |,|$)' <<<"$depends" && ok "Depends has libavro" || fail "Depends lacks libavro*"
grep -Eq '(^|, )postgresql-client( |,|$)' <<<"$depends" && ok "Depends has postgresql-client (psql, for cartwatch-report)" ||
	fail "Depends lacks postgresql-client"

# Contents: the named files, then everything meson install installs.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | sort >"$work/contents"
for f in /usr/bin/cartwatch-processor /usr/bin/cartwatch-producer /usr/bin/cartwatch-devbroker /usr/bin/cartwatch-gateway /usr/bin/cartwatch-notify \
	/usr/bin/cartwatch-report /usr/share/man/man1/cartwatch-processor.1.gz \
	/usr/share/man/man1/cartwatch-report.1.gz /lib/systemd/system/cartwatch-processor@.service \
	/lib/systemd/system/cartwatch-gateway@.service /lib/systemd/system/cartwatch-notify@.service \
	/usr/share/cartwatch/schemas/cart_event.avsc /usr/share/cartwatch/schemas/cart_abandonment.avsc \
	/usr/share/cartwatch/migrations/001_schema.sql /usr/share/cartwatch/examples/processor.env \
	/usr/share/doc/cartwatch/copyright; do
	grep -qx -- "$f" "$work/contents" && ok "package has $f" || fail "package lacks $f"
done
for b in $(grep '^/usr/bin/' "$work/contents"); do
	grep -qx "/usr/share/man/man1/${b##*/}.1.gz" "$work/contents" || fail "${b##*/} has no man page in the package"
done
obj=$(echo "$work"/src/obj-*)
if [ -d "$obj" ] && meson install -C "$obj" --no-rebuild --quiet --destdir "$work/mi" >"$work/mi.log" 2>&1; then
	missing=$( (cd "$work/mi" && find . ! -type d) | sed 's|^\.||; s|^/usr/lib/systemd/|/lib/systemd/|;
		s|^\(/usr/share/man/.*\.[0-9]\)$|\1.gz|' | sort | comm -23 - "$work/contents")
	[ -z "$missing" ] && ok "package holds all $(cd "$work/mi" && find . ! -type d | wc -l) files meson install installs" ||
		fail "meson install installs files the package lacks: $missing"
else
	cat "$work/mi.log" 2>/dev/null; fail "meson install from the package's build dir ($obj)"
fi

# lintian: no error; warnings and info are listed, not fatal. (It says it
# should not run as root; CI runs as root, the package is only read.)
lintian --tag-display-limit 0 --display-info "$deb" >"$work/lintian.log" 2>&1
grep -v 'running with root privileges' "$work/lintian.log" | sed 's/^/     lintian: /' 
errors=$(grep -c '^E: ' "$work/lintian.log")
[ "$errors" = 0 ] && ok "lintian: no errors ($(grep -c '^W: ' "$work/lintian.log") warnings)" ||
	fail "lintian: $errors errors"

# A throwaway root: the unpacked commands run on the system's libraries.
dpkg -x "$deb" "$work/root" || fail "dpkg -x"
version=$(dpkg-deb -f "$deb" Version)
for p in cartwatch-processor cartwatch-producer cartwatch-devbroker cartwatch-gateway cartwatch-notify; do
	exe=$work/root/usr/bin/$p
	nf=$(ldd "$exe" 2>&1 | grep -c 'not found')
	[ "$nf" = 0 ] || fail "$p: ldd finds $nf missing libraries"
	out=$(cd / && "$exe" --version 2>&1) && [[ $out == "$p ${version%%-*}"* ]] &&
		ok "unpacked $p --version: $out" || fail "unpacked $p --version: $out (want $p ${version%%-*})"
done
help=$(cd / && "$work/root/usr/bin/cartwatch-report" --help)
grep -q -- '--pg CONNINFO' <<<"$help" &&
	ok "unpacked cartwatch-report --help" || fail "unpacked cartwatch-report --help"
grep -qx 'ExecStart=/usr/bin/cartwatch-processor' "$work/root/lib/systemd/system/cartwatch-processor@.service" &&
	ok "unit runs /usr/bin/cartwatch-processor" || fail "unit ExecStart: $(grep ExecStart= "$work/root/lib/systemd/system/cartwatch-processor@.service")"
page=$(zcat "$work/root/usr/share/man/man1/cartwatch-processor.1.gz" | sed 's/\\-/-/g')
grep -q -- '--metrics-addr' <<<"$page" &&
	ok "cartwatch-processor.1.gz documents --metrics-addr" || fail "cartwatch-processor.1.gz lacks --metrics-addr"

echo "test-deb: $((SECONDS - t0)) s"
exit $((fails > 0))
