#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-version.sh — every cartwatch binary answers --version with
# "cartwatch-NAME VERSION" (the meson project version, optionally followed
# by "(git describe)"), exits 0 and lists --version in its --help.
set -uo pipefail
build=${CARTWATCH_BUILD_ROOT:?}
version=${CARTWATCH_VERSION:?}
fails=0
for prog in processor/cartwatch-processor producer/cartwatch-producer devbroker/cartwatch-devbroker gateway/cartwatch-gateway notify/cartwatch-notify; do
	name=${prog#*/}
	out=$("$build/$prog" --version 2>&1); rc=$?
	if [ $rc = 0 ] && grep -Eqx "$name ${version//./\\.}( \(.+\))?" <<<"$out"; then
		echo "ok   $name --version: $out"
	else
		echo "FAIL $name --version: exit $rc, output '$out'"; fails=$((fails + 1))
	fi
	if "$build/$prog" --help | grep -q -- '--version'; then
		echo "ok   $name --help lists --version"
	else
		echo "FAIL $name --help does not list --version"; fails=$((fails + 1))
	fi
done
exit $((fails > 0))
