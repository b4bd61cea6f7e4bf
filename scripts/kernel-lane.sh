#!/bin/bash
# The kernel lane: boots a user-mode Linux guest (Debian's user-mode-linux,
# kernel 6.1 with the memory, pids, cpu and io controllers) with the host's /
# as its root filesystem, mounts a pure cgroup v2 hierarchy, and runs the
# resource tests (tests/kernel) inside it for real.
#
# Fails when a test fails inside, or when the guest does not come back with
# a result (crash, hang: the guest gets a hard time limit).
#
# usage: scripts/kernel-lane.sh [--bench] [BUILD_DIR]
#   --bench: instead of the tests, measure inside the guest what a sandbox's
#            cgroup costs with controllers enabled (bench/micro), and a whole
#            `nucleus run` with and without limits (hyperfine).
set -euo pipefail
mode=tests
if [ "${1:-}" = "--bench" ]; then
    mode=bench
    shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
tests="$build/tests/kernel_tests"
uml=$(command -v linux.uml || true)

if [ -z "$uml" ]; then
    echo "kernel lane: linux.uml not found (apt-get install user-mode-linux)" >&2
    exit 1
fi
[ -x "$tests" ] || { echo "kernel lane: $tests is not built" >&2; exit 1; }

lane="$build/kernel-lane"
rm -rf "$lane"
mkdir -p "$lane"

# The guest's init: its files land on the host through hostfs.
cat >"$lane/init.sh" <<INIT
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
{
    echo "guest kernel: \$(uname -r)"
    echo "cgroup controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
} >"$lane/guest-info.txt"
cd "$build"
export NUCLEUS_STATE_DIR=/run/nucleus
if [ "$mode" = bench ]; then
    mkdir -p /tmp/rootfs/bin && cp /bin/busybox /tmp/rootfs/bin/ && ln -s busybox /tmp/rootfs/bin/true
    {
        ./bench/micro/nucleus-micro-bench --benchmark_filter='Cgroup|Directory' --benchmark_min_time=0.5
        hyperfine -N -w 10 -r 100 \
            "./nucleus run --network host --rootfs /tmp/rootfs -- /bin/true" \
            "./nucleus run --network host --rootfs /tmp/rootfs --memory 256m --pids 1024 --cpus 1 -- /bin/true"
    } >"$lane/report.txt" 2>&1
else
    "$tests" --reporter console::out="$lane/report.txt" >"$lane/tests.log" 2>&1
fi
echo \$? >"$lane/exit-code"
sync
echo o >/proc/sysrq-trigger
sleep 30
INIT
chmod +x "$lane/init.sh"

echo "kernel lane: booting user-mode Linux ($uml)"
started=$(date +%s)
timeout 900 "$uml" mem=1024M root=/dev/root rootfstype=hostfs rootflags=/ rw \
    init="$lane/init.sh" con=null con0=fd:0,fd:1 </dev/null >"$lane/console.log" 2>&1 || true
echo "kernel lane: guest ran for $(( $(date +%s) - started )) s"

if [ ! -s "$lane/exit-code" ]; then
    echo "kernel lane: FAILED: the guest did not come back with a result; console:" >&2
    tail -40 "$lane/console.log" >&2
    exit 1
fi
cat "$lane/guest-info.txt"
cat "$lane/report.txt"
code=$(cat "$lane/exit-code")
if [ "$code" != 0 ]; then
    echo "kernel lane: FAILED (tests exited $code)" >&2
    cat "$lane/tests.log" >&2
    exit 1
fi
echo "kernel lane: passed"
