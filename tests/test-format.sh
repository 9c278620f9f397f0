#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test-format.sh — every C source follows the checked-in .clang-format
# (fix with: git ls-files '*.c' '*.h' | xargs clang-format -i).
set -euo pipefail
cd "${CARTWATCH_SOURCE_ROOT:?}"
command -v clang-format >/dev/null || { echo "clang-format not found (Debian package clang-format): run scripts/bootstrap" >&2; exit 1; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
n=$(echo "$files" | wc -l)
clang-format --dry-run -Werror $files
echo "$n files formatted as .clang-format says"
