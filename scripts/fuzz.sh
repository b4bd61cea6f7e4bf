#!/bin/bash
# Builds the policy-parser fuzz target with clang's libFuzzer (+ ASan, UBSan),
# with NDEBUG as the shipped build has it (toml++ 3.3 asserts internally on
# some malformed keys; without NDEBUG that assert, not our code, aborts),
# and runs it for SECONDS (default 30) from the seed corpus. Exits non-zero
# on any crash, leak or sanitizer report.
#
# usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
out="$root/build-fuzz"
mkdir -p "$out/corpus"
cp -n "$root"/tests/fuzz/corpus/* "$out/corpus/" 2>/dev/null || true

# The parsers and what they use, compiled straight into the target.
sources=(
    tests/fuzz/policy_fuzz.cpp core/policies.cpp core/spec_document.cpp core/spec_network.cpp core/modes.cpp core/attestation.cpp
    isolation/seccomp.cpp isolation/seccomp_default.cpp isolation/capabilities.cpp isolation/cgroup.cpp
    isolation/landlock.cpp isolation/cgroup/limits.cpp isolation/cgroup/memory.cpp isolation/cgroup/cpu.cpp
    isolation/cgroup/pids.cpp isolation/cgroup/io.cpp isolation/launch_plan.cpp isolation/mount_verify.cpp
    isolation/idmap.cpp net/network.cpp net/nat_publish.cpp net/address_pool.cpp io/error.cpp io/unique_fd.cpp
)
# Volume validation asks the launch planner, which embeds the default
# seccomp filter the release build precompiles (scripts/test.sh builds it first).
generated="$root/build/isolation/default_seccomp_filter.cpp"
[ -f "$generated" ] || ninja -C "$root/build" isolation/default_seccomp_filter.cpp
sources+=("$generated")
echo "fuzz: building $out/policy_fuzz"
(cd "$root" && clang++ -std=c++20 -O1 -g -DNDEBUG -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I. "${sources[@]}" -lseccomp -lmd -o "$out/policy_fuzz")
echo "fuzz: running for ${seconds}s"
"$out/policy_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$out/corpus" 2>&1 | tail -15

# --network bridge's parsers (tests/fuzz/network_fuzz.cpp): -p/--publish,
# the bridge's subnets, netlink replies as a session reads them.
mkdir -p "$out/corpus-network"
cp -n "$root"/tests/fuzz/corpus-network/* "$out/corpus-network/" 2>/dev/null || true
echo "fuzz: building $out/network_fuzz"
(cd "$root" && clang++ -std=c++20 -O1 -g -DNDEBUG -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I. tests/fuzz/network_fuzz.cpp net/nat_publish.cpp net/address_pool.cpp net/bridge_config.cpp net/netlink.cpp \
    net/netlink_route.cpp io/error.cpp io/unique_fd.cpp -lmnl -o "$out/network_fuzz")
echo "fuzz: running for ${seconds}s"
"$out/network_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$out/corpus-network" 2>&1 | tail -15
