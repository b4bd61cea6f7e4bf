#!/bin/sh
# Stage 1 of the system lane's guest: the initramfs's /init (busybox sh).
# It assembles the guest's root and hands over to stage 2
# (scripts/system-lane/guest-init.sh) with switch_root:
#
#   1. load the modules 9p and overlayfs need (listed in /modules/order by
#      scripts/system-lane.sh, dependencies first);
#   2. the host's / over virtio-9p, read-only, under a tmpfs overlay: the
#      guest may write anywhere, and nothing it writes reaches the host;
#   3. read the run's settings from the writable "results" share
#      (lane.env, written by the host: LANE_RESULTS, LANE_KEEP, LANE_INIT);
#   4. fresh tmpfs over /run, /tmp, /var/tmp and /var/lib/nucleus, as on a
#      booted machine (the host's /run belongs to the host's services, its
#      state directory to its sandboxes), keeping the paths in
#      LANE_KEEP (the checkout, the build, the cache) visible under them: a
#      checkout under /tmp or /run works like any other;
#   5. the results share at the same path as on the host;
#   6. switch_root into stage 2.
# Any failure powers the guest off at once; the host prints the console.
export PATH=/bin
set -f  # LANE_KEEP is split on blanks, never globbed

fail() {
    echo "system lane stage 1: $*" >/dev/console
    echo o >/proc/sysrq-trigger
    sleep 60
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /modules/order); do
    insmod "/modules/$module" || fail "insmod $module failed"
done

p9="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /lower /rw /newroot /results
# cache=loose: the host's / does not change under a run, and without a
# cache every lookup is a round trip to the host.
mount -t 9p -o "$p9,ro,cache=loose" hostroot /lower || fail "mounting the host's / over 9p failed"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
    fail "mounting the overlay failed"

mount -t 9p -o "$p9" results /results || fail "mounting the results share failed"
[ -r /results/lane.env ] || fail "the results share has no lane.env"
set -a
. /results/lane.env
set +a
umount /results

# Paths that must stay reachable under a fresh tmpfs are bound aside first,
# then moved back onto directories made in the new tmpfs.
fresh_tmpfs() {  # DIR MODE
    dir=$1
    n=0
    for keep in $LANE_KEEP; do
        case "$keep/" in
            "$dir"/*)
                n=$((n + 1))
                mkdir -p "/kept/$n"
                mount -o bind "/newroot$keep" "/kept/$n" || fail "keeping $keep failed"
                ;;
        esac
    done
    mount -t tmpfs -o "mode=$2,nosuid,nodev" tmpfs "/newroot$dir" || fail "tmpfs on $dir failed"
    n=0
    for keep in $LANE_KEEP; do
        case "$keep/" in
            "$dir"/*)
                n=$((n + 1))
                mkdir -p "/newroot$keep"
                mount -o move "/kept/$n" "/newroot$keep" || fail "restoring $keep failed"
                ;;
        esac
    done
}
fresh_tmpfs /run 0755
fresh_tmpfs /tmp 1777
fresh_tmpfs /var/tmp 1777
# The daemon's default state directory: the guest starts without the host's records.
mkdir -p /newroot/var/lib/nucleus
fresh_tmpfs /var/lib/nucleus 0700

mkdir -p "/newroot$LANE_RESULTS"
mount -t 9p -o "$p9" results "/newroot$LANE_RESULTS" || fail "mounting the results share at $LANE_RESULTS failed"

for fs in dev proc sys; do
    mount -o move "/$fs" "/newroot/$fs"
done
exec switch_root /newroot "$LANE_INIT"
