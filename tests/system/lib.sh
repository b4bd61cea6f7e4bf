# shellcheck shell=bash
# Helpers for the system lane's test sets (sourced by tests/system/*.sh).
# A set is a bash script run inside the guest by scripts/system-lane.sh (and
# by ctest on the host, where a set that needs the lane exits 77: SKIPPED).
# It prints what it checks and exits non-zero when anything failed.

# The build directory: the lane's, or the first argument (ctest).
build=${1:-${LANE_BUILD:-}}
[ -n "$build" ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$build" && pwd)
failures=0

# skip_set REASON: the set cannot run here (ctest counts exit 77 as SKIPPED).
skip_set() {
    echo "SKIPPED: $*"
    exit 77
}

# run_catch2 [--may-skip] BINARY [ARGS...]: a Catch2 binary of the build.
# Every test case is expected to run: a SKIP inside the lane is a failure,
# since the lane exists to run what the host skips, unless --may-skip says
# the binary holds tests for what this lane lacks (they SKIP with the reason).
run_catch2() {
    local may_skip=0 binary report code
    [ "$1" = --may-skip ] && { may_skip=1; shift; }
    binary=$1
    shift
    report=$(mktemp)
    echo "== $binary $*"
    local started=$SECONDS
    "$build/tests/$binary" "$@" >"$report" 2>&1
    code=$?
    cat "$report"
    echo "($binary: $((SECONDS - started)) s)"
    if [ "$code" != 0 ]; then
        echo "FAILED: $binary exited $code"
        failures=$((failures + 1))
    elif [ "$may_skip" = 0 ] && grep -Eq '^test cases:.*skipped' "$report"; then
        echo "FAILED: $binary skipped tests inside the lane (reasons above)"
        failures=$((failures + 1))
    fi
    rm -f "$report"
}

# check DESCRIPTION COMMAND...: COMMAND must succeed.
check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAILED: $what"
        failures=$((failures + 1))
    fi
}

# finish: the set's exit code.
finish() {
    if [ "$failures" = 0 ]; then
        echo "set passed"
        exit 0
    fi
    echo "set FAILED: $failures failure(s)"
    exit 1
}

# wait_until SECONDS COMMAND...: polls COMMAND until it succeeds or time is up.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# event_field FILE EVENT KEY: a string or number field of the first EVENT
# record in an --events-jsonl file (the records are compact JSON).
event_field() {
    grep -F "\"event\":\"$2\"" "$1" 2>/dev/null | head -n 1 | grep -o "\"$3\":[^,}]*" | head -n 1 | cut -d: -f2- | tr -d '"'
}

started() { [ -n "$(event_field "$1" start id)" ]; }
