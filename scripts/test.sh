#!/bin/bash
# Builds Nucleus and runs every test lane:
#   1. the release build: unit tests, integration tests (real sandboxes);
#   2. the system lane: a QEMU guest booting Debian's kernel with the host's
#      / as its root (a pure cgroup v2 hierarchy with every controller,
#      Landlock, systemd): the resource, strict-agent, production and escape
#      tests, then systemd as PID 1 for delegation, a non-root user's scope
#      and the daemon's unit (on the host, these tests say SKIPPED and name
#      the lane);
#   3. the same tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. the policy-parser fuzz target (clang libFuzzer), briefly;
#   5. smoke runs of nucleus-bench coldstart, pgbench, spawn and density
#      (numbers printed, never asserted).
# First, two checks of the source: .clang-format is followed
# (scripts/check-format.sh) and no file or function is over its size target
# (scripts/check-sizes.sh).
# Needs root for the integration lane (user namespaces with full id maps,
# cgroups); tests that cannot run say SKIPPED with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
step() { printf '\n==> %s\n' "$*"; }

step "source checks: format and sizes"
scripts/check-format.sh
scripts/check-sizes.sh

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j "$jobs"

step "tests (release)"
ctest --test-dir build --output-on-failure -j 1 --timeout 300

step "system lane: resources, strict-agent, production, escape (QEMU, pure cgroup v2, Landlock)"
scripts/system-lane.sh build resources modes

step "system lane under systemd: delegated scope and service, a non-root user's scope, the daemon's unit"
scripts/system-lane.sh --systemd build systemd

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNUCLEUS_SANITIZE=ON -DNUCLEUS_BENCH=OFF >/dev/null
ninja -C build-asan -j "$jobs"

step "tests (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j 1 --timeout 600

step "fuzzing the policy parsers (libFuzzer, 30 s)"
scripts/fuzz.sh 30

if [ -x build/bench/nucleus-bench ]; then
    step "benchmarks: coldstart, pgbench, spawn and density (smoke runs, no assertions)"
    build/bench/nucleus-bench coldstart --quick || echo "coldstart smoke run failed (not a test)"
    build/bench/nucleus-bench pgbench --quick || echo "pgbench smoke run failed (not a test)"
    build/bench/nucleus-bench spawn --quick || echo "spawn smoke run failed (not a test)"
    build/bench/nucleus-bench density --quick || echo "density smoke run failed (not a test)"
fi
