#!/bin/bash
# Checks that every C++ source follows .clang-format (bench/ its own), with
# Debian 12's clang-format 14. With --fix, rewrites the files instead.
#
# usage: scripts/check-format.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."
format=$(command -v clang-format-14 || command -v clang-format)
mapfile -t files < <(find io isolation net core tests bench \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) | sort)
if [ "${1:-}" = --fix ]; then
    "$format" -i "${files[@]}"
    echo "format: ${#files[@]} files formatted"
    exit 0
fi
if ! "$format" --dry-run -Werror "${files[@]}" 2>/tmp/check-format.$$; then
    grep -E '^[^ ].*: error:' /tmp/check-format.$$ | cut -d: -f1 | sort -u | sed 's/$/: not formatted (scripts\/check-format.sh --fix)/'
    rm -f /tmp/check-format.$$
    exit 1
fi
rm -f /tmp/check-format.$$
echo "format: ${#files[@]} files follow .clang-format"
