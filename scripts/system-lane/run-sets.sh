#!/bin/bash
# Inside the system lane's guest: runs the test sets named in LANE_SETS
# (tests/system/<set>.sh, each a bash script that exits non-zero when a test
# failed) and leaves in the results share, at the same path as on the host:
#   guest-info.txt   kernel, PID 1, cgroup controllers, LSMs
#   <set>.log        each set's output
#   timings.txt      seconds since boot at each phase (the guest's clock)
#   exit-code        0 when every set passed
#   journal.log      (under systemd) the journal, written as it grows
# Run by guest-init.sh (plain) or the lane's service (systemd); powering
# off is the caller's job.
set -u
# shellcheck source=/dev/null
. "$1"
export PATH=/run/nucleus-lane/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANE_ROOT LANE_BUILD LANE_RESULTS LANE_PID1
results=$LANE_RESULTS
uptime_s() { cut -d' ' -f1 /proc/uptime; }

echo "sets start: $(uptime_s)" >>"$results/timings.txt"
# systemd mounts securityfs only when a unit needs it.
[ -e /sys/kernel/security/lsm ] || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
{
    echo "guest kernel: $(uname -r)"
    echo "PID 1: $(cat /proc/1/comm)"
    echo "cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
    echo "LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null)"
    echo "CPUs: $(nproc), memory: $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
} >"$results/guest-info.txt"

cd "$LANE_BUILD" || exit 1
failed=0
for set in $LANE_SETS; do
    script="$LANE_ROOT/tests/system/$set.sh"
    started=$(uptime_s)
    if [ ! -f "$script" ]; then
        echo "no such test set: $script" >"$results/$set.log"
        code=2
    else
        bash "$script" </dev/null >"$results/$set.log" 2>&1
        code=$?
    fi
    echo "set $set: exit $code, $(awk -v a="$started" -v b="$(uptime_s)" 'BEGIN {printf "%.1f", b - a}') s" \
        >>"$results/timings.txt"
    [ "$code" = 0 ] || failed=$((failed + 1))
done
echo "sets end: $(uptime_s)" >>"$results/timings.txt"
dmesg >"$results/dmesg.txt" 2>&1
echo "$failed" >"$results/exit-code"
sync
[ "$failed" = 0 ]
