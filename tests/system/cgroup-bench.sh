#!/bin/bash
# Not a test: what a sandbox's cgroup costs where the controllers exist
# (scripts/system-lane.sh BUILD cgroup-bench). The cgroup micro benchmarks
# (create, limit, remove) and a whole `nucleus run` with and without limits
# (hyperfine). Under TCG emulation guest code runs 10-30x slower than
# native: compare the rows of one run with each other, never with the host.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
rootfs=$(mktemp -d)
mkdir -p "$rootfs/bin"
cp /bin/busybox "$rootfs/bin/"
ln -s busybox "$rootfs/bin/true"
check "the cgroup micro benchmarks" "$build/bench/micro/nucleus-micro-bench" \
    --benchmark_filter='Cgroup|Directory' --benchmark_min_time=0.5
check "nucleus run with and without limits" hyperfine -N -w 5 -r 30 \
    "$build/nucleus run --network host --rootfs $rootfs -- /bin/true" \
    "$build/nucleus run --network host --rootfs $rootfs --memory 256m --pids 1024 --cpus 1 -- /bin/true"
rm -rf "$rootfs"
finish
