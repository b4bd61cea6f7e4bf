#!/bin/bash
# Builds the fuzz targets (policy parsers; the daemon's records read back) with clang's libFuzzer (+ ASan, UBSan),
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
    tests/fuzz/policy_fuzz.cpp core/policies.cpp core/spec/*.cpp core/modes.cpp core/attestation.cpp
    io/bytes_json.cpp isolation/seccomp.cpp isolation/seccomp_default.cpp isolation/capabilities.cpp
    isolation/cgroup.cpp isolation/landlock.cpp isolation/cgroup/limits.cpp isolation/cgroup/memory.cpp
    isolation/cgroup/cpu.cpp isolation/cgroup/pids.cpp isolation/cgroup/io.cpp isolation/launch_plan.cpp
    isolation/mount_verify.cpp isolation/idmap.cpp net/network.cpp io/error.cpp io/unique_fd.cpp
    core/closure_spec.cpp core/closure_manifest.cpp core/closure_attestation.cpp isolation/closure_root.cpp
    net/egress_policy.cpp net/ip_address.cpp net/nat_publish.cpp net/address_pool.cpp
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

# The root filesystem inputs (ELF files, ld.so.cache, closure manifests):
# their own target and corpus, the same sanitizers, the same time.
mkdir -p "$out/corpus-elf"
cp -n "$root"/tests/fuzz/corpus-elf/* "$out/corpus-elf/" 2>/dev/null || true
echo "fuzz: building $out/elf_fuzz"
(cd "$root" && clang++ -std=c++20 -O1 -g -DNDEBUG -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I. tests/fuzz/elf_fuzz.cpp isolation/elf.cpp core/closure_manifest.cpp core/attestation.cpp \
    io/bytes_json.cpp io/unique_fd.cpp io/error.cpp -lmd -o "$out/elf_fuzz")
echo "fuzz: running elf_fuzz for ${seconds}s"
"$out/elf_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$out/corpus-elf" 2>&1 | tail -15
# The mountinfo parser: text the kernel writes but a sandbox's mount points shape.
mkdir -p "$out/corpus-mountinfo"
cp -n "$root"/tests/fuzz/corpus-mountinfo/* "$out/corpus-mountinfo/" 2>/dev/null || true
echo "fuzz: building $out/mountinfo_fuzz"
(cd "$root" && clang++ -std=c++20 -O1 -g -DNDEBUG -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I. tests/fuzz/mountinfo_fuzz.cpp isolation/mountinfo.cpp isolation/cgroup.cpp isolation/cgroup/limits.cpp \
    isolation/cgroup/memory.cpp isolation/cgroup/cpu.cpp isolation/cgroup/pids.cpp isolation/cgroup/io.cpp \
    io/error.cpp io/unique_fd.cpp -o "$out/mountinfo_fuzz")
echo "fuzz: running mountinfo_fuzz for ${seconds}s"
"$out/mountinfo_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$out/corpus-mountinfo" 2>&1 | tail -15
# The daemon's records as recovery reads them back.
mkdir -p "$out/records"
cp -n "$root"/tests/fuzz/records/* "$out/records/" 2>/dev/null || true
echo "fuzz: building $out/record_fuzz"
(cd "$root" && clang++ -std=c++20 -O1 -g -DNDEBUG -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I. tests/fuzz/record_fuzz.cpp core/daemon/record_store.cpp core/daemon/sandbox_record.cpp \
    io/bytes_json.cpp io/error.cpp io/unique_fd.cpp -o "$out/record_fuzz")
echo "fuzz: running record_fuzz for ${seconds}s"
"$out/record_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$out/records" 2>&1 | tail -15
# The egress parsers (allow rules, DNS messages, the first bytes of a
# captured connection): their own target and corpus, half the time each.
egress_sources=(tests/fuzz/egress_fuzz.cpp net/egress_policy.cpp net/ip_address.cpp net/dns_message.cpp
    net/dns_stub.cpp net/first_bytes.cpp net/http_guard.cpp io/error.cpp)
mkdir -p "$out/corpus-egress"
cp -n "$root"/tests/fuzz/corpus-egress/* "$out/corpus-egress/" 2>/dev/null || true
echo "fuzz: building $out/egress_fuzz"
(cd "$root" && clang++ -std=c++20 -O1 -g -DNDEBUG -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I. "${egress_sources[@]}" -lhttp_parser -o "$out/egress_fuzz")
echo "fuzz: running egress_fuzz for ${seconds}s"
"$out/egress_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$out/corpus-egress" 2>&1 | tail -15
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
