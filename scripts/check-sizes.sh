#!/bin/bash
# The tree's size targets, measured with universal-ctags: no source file of
# io/, isolation/, net/ or core/ over 800 lines and no function over 100.
# Prints every offender and exits 1 if there is one.
#
# usage: scripts/check-sizes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
max_file=800
max_function=100
status=0
while read -r lines file; do
    [ "$file" = total ] && continue
    if [ "$lines" -gt "$max_file" ]; then
        echo "$file: $lines lines (at most $max_file)"
        status=1
    fi
done < <(find io isolation net core -name '*.cpp' -o -name '*.hpp' -o -name '*.h' | sort | xargs wc -l)
offenders=$(ctags --fields=+ne --kinds-C++=f --output-format=json -R -o - io isolation net core |
    python3 -c '
import json, sys
for line in sys.stdin:
    tag = json.loads(line)
    if "end" in tag and tag["end"] - tag["line"] + 1 > '"$max_function"':
        print("%s:%d: %s is %d lines (at most '"$max_function"')" % (tag["path"], tag["line"], tag["name"], tag["end"] - tag["line"] + 1))
')
if [ -n "$offenders" ]; then
    echo "$offenders"
    status=1
fi
[ "$status" -eq 0 ] && echo "sizes: every file <= $max_file lines, every function <= $max_function"
exit "$status"
