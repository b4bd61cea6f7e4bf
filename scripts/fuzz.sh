#!/bin/bash
# Builds every libFuzzer target (tests/fuzz/*_fuzz.cpp) with clang (+ ASan,
# UBSan) and runs each for SECONDS (default 30) from its seed corpus. Exits
# non-zero on any crash, leak, timeout or sanitizer report.
#
# Each target compiles the parsers it exercises straight in, with NDEBUG as
# the shipped build has it (toml++ 3.3 asserts internally on some malformed
# keys; without NDEBUG that assert, not our code, aborts). A target is one
# line of the table below: name, seed corpus, sources, libraries.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
shift || true
out="$root/build-fuzz"
mkdir -p "$out"
cd "$root"

# Volume validation asks the launch planner, which embeds the default
# seccomp filter the release build precompiles (scripts/test.sh builds it first).
generated="$root/build/isolation/default_seccomp_filter.cpp"
[ -f "$generated" ] || ninja -C "$root/build" isolation/default_seccomp_filter.cpp

# Every policy and spec document parser: capability, Landlock and seccomp
# policies, spec documents in JSON and TOML, egress rules, published ports.
policy_sources="core/policies.cpp core/spec/*.cpp core/modes.cpp core/attestation.cpp io/bytes_json.cpp
    isolation/seccomp.cpp isolation/seccomp_default.cpp isolation/capabilities.cpp isolation/cgroup.cpp
    isolation/landlock.cpp isolation/cgroup/limits.cpp isolation/cgroup/memory.cpp isolation/cgroup/cpu.cpp
    isolation/cgroup/pids.cpp isolation/cgroup/io.cpp isolation/launch_plan.cpp isolation/mount_verify.cpp
    isolation/idmap.cpp core/closure_spec.cpp core/closure_manifest.cpp core/closure_attestation.cpp
    isolation/closure_root.cpp isolation/mountinfo.cpp net/network.cpp net/egress_policy.cpp net/ip_address.cpp
    $generated"
[ -f net/nat_publish.cpp ] && policy_sources+=" net/nat_publish.cpp net/address_pool.cpp"
cgroup_sources="isolation/cgroup.cpp isolation/cgroup/limits.cpp isolation/cgroup/memory.cpp
    isolation/cgroup/cpu.cpp isolation/cgroup/pids.cpp isolation/cgroup/io.cpp"

# name | corpus (tests/fuzz/...) | sources besides the target, io/error.cpp and io/unique_fd.cpp | libraries
targets=(
    "policy_fuzz|corpus|$policy_sources|-lseccomp -lmd"
    "elf_fuzz|corpus-elf|isolation/elf.cpp core/closure_manifest.cpp core/attestation.cpp io/bytes_json.cpp|-lmd"
    "mountinfo_fuzz|corpus-mountinfo|isolation/mountinfo.cpp $cgroup_sources|"
    "record_fuzz|records|core/daemon/record_store.cpp core/daemon/sandbox_record.cpp io/bytes_json.cpp|"
    "egress_fuzz|corpus-egress|net/egress_policy.cpp net/ip_address.cpp net/dns_message.cpp net/dns_stub.cpp
        net/first_bytes.cpp net/http_guard.cpp|-lhttp_parser"
    "http_fuzz|corpus-http|io/http_request.cpp core/daemon/query.cpp|-lhttp_parser"
    "network_fuzz|corpus-network|net/nat_publish.cpp net/address_pool.cpp net/bridge_config.cpp net/netlink.cpp
        net/netlink_route.cpp|-lmnl"
)

wanted=("$@")
failed=()
for row in "${targets[@]}"; do
    # A row may span lines (the source lists): one line for read.
    IFS='|' read -r name corpus sources libs <<<"$(tr '\n' ' ' <<<"$row")"
    [ -f "tests/fuzz/$name.cpp" ] || continue
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then continue; fi
    mkdir -p "$out/$corpus"
    cp -n tests/fuzz/"$corpus"/* "$out/$corpus/" 2>/dev/null || true
    echo "fuzz: building $name"
    # shellcheck disable=SC2086 # the lists are words
    clang++ -std=c++20 -O1 -g -DNDEBUG -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I. "tests/fuzz/$name.cpp" $sources io/error.cpp io/unique_fd.cpp $libs -o "$out/$name"
    echo "fuzz: running $name for ${seconds}s"
    if ! "$out/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/$name-" \
        "$out/$corpus" >"$out/$name.log" 2>&1; then
        failed+=("$name")
    fi
    tail -12 "$out/$name.log"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (logs and crash inputs in $out)" >&2
    exit 1
fi
echo "fuzz: every target ran ${seconds}s clean"
