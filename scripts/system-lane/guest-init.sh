#!/bin/bash
# Stage 2 of the system lane's guest: PID 1 after switch_root, on the host's
# own userland (read-only 9p under a tmpfs overlay, see initramfs-init.sh).
#
# Common to both modes: the guest kernel's modules at
# /usr/lib/modules/$(uname -r) with a modprobe from the unpacked kmod
# package (the host has none), so the kernel's request_module() (nftables,
# veth) and systemd-udevd load them. Then, by LANE_PID1 (from lane.env):
#   plain:   mount what a booted system has, run the test sets
#            (run-sets.sh) and power off;
#   systemd: install the lane's units in the overlay's /etc (a target of
#            its own as default.target, the units that cannot work here
#            masked) and exec the host's systemd as PID 1; the lane's
#            service powers the guest off when the sets are done.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

poweroff_now() {
    sync
    echo o >/proc/sysrq-trigger
    sleep 60
}

fail() {
    echo "system lane stage 2: $*" | tee -a "$LANE_RESULTS/guest.log" >/dev/console
    poweroff_now
}

install_modules() {
    local release
    release=$(uname -r)
    [ "$release" = "$LANE_KERNEL_RELEASE" ] || fail "booted $release, expected $LANE_KERNEL_RELEASE"
    mkdir -p "/usr/lib/modules/$release" /run/nucleus-lane/bin
    mount -o bind,ro "$LANE_KERNEL_TREE/lib/modules/$release" "/usr/lib/modules/$release" ||
        fail "binding the kernel's modules failed"
    # kmod picks its personality from argv[0].
    for tool in modprobe depmod lsmod modinfo; do
        cat >"/run/nucleus-lane/bin/$tool" <<EOF
#!/bin/bash
LD_LIBRARY_PATH=$LANE_KMOD_TREE/usr/lib/x86_64-linux-gnu exec -a $tool $LANE_KMOD_TREE/bin/kmod "\$@"
EOF
        chmod 0755 "/run/nucleus-lane/bin/$tool"
    done
    echo /run/nucleus-lane/bin/modprobe >/proc/sys/kernel/modprobe
}

# What a booted system has mounted, for the plain mode (systemd mounts the
# same itself).
mount_api_filesystems() {
    mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
    mount -t securityfs securityfs /sys/kernel/security
    mkdir -p /dev/pts /dev/shm
    mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    hostname nucleus-lane
    ip link set lo up
}

install_units() {
    local units=/etc/systemd/system
    mkdir -p "$units"
    # Units that fail or wait without the devices and services of a real
    # machine, would start the host's own services in the guest, or only
    # cost boot time under emulation.
    for unit in kmod-static-nodes.service podman.service podman.socket podman-auto-update.service \
        podman-auto-update.timer podman-restart.service podman-clean-transient.service \
        systemd-networkd-wait-online.service getty@tty1.service serial-getty@ttyS0.service \
        apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
        dpkg-db-backup.timer systemd-tmpfiles-clean.timer docker.service docker.socket containerd.service \
        postgresql.service cron.service ssh.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
        sys-kernel-debug.mount sys-kernel-tracing.mount modprobe@.service systemd-journal-flush.service \
        systemd-update-utmp.service; do
        ln -sf /dev/null "$units/$unit"
    done
    cat >"$units/nucleus-lane.target" <<EOF
[Unit]
Description=Nucleus system lane
Requires=basic.target nucleus-lane.service nucleus-lane-journal.service
After=basic.target
AllowIsolate=yes
EOF
    # The guest's own log, written to the results share as it grows, so a
    # guest that hangs still leaves it behind.
    cat >"$units/nucleus-lane-journal.service" <<EOF
[Unit]
Description=Nucleus system lane: the journal to the results share
After=systemd-journald.service
DefaultDependencies=no
[Service]
ExecStart=/bin/sh -c 'exec journalctl --follow --boot -o short-monotonic --no-pager >"$LANE_RESULTS/journal.log" 2>&1'
EOF
    # SuccessAction=/FailureAction= belong in [Unit]; poweroff-force stops
    # no units, kills what is left and unmounts (the results share's writes
    # are synchronous: 9p without a cache).
    cat >"$units/nucleus-lane.service" <<EOF
[Unit]
Description=Nucleus system lane: the test sets
After=basic.target nucleus-lane-journal.service
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
Environment=PATH=/run/nucleus-lane/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=$LANE_ROOT/scripts/system-lane/run-sets.sh $LANE_RESULTS/lane.env
StandardOutput=journal+console
StandardError=journal+console
EOF
    ln -sf nucleus-lane.target "$units/default.target"
}

# LANE_* come from lane.env, exported by stage 1.
echo "system lane: stage 2 at $(cut -d' ' -f1 /proc/uptime) s after boot" >/dev/console
install_modules
case "$LANE_PID1" in
    plain)
        mount_api_filesystems
        export PATH=/run/nucleus-lane/bin:$PATH
        "$LANE_ROOT/scripts/system-lane/run-sets.sh" "$LANE_RESULTS/lane.env" </dev/null >>"$LANE_RESULTS/guest.log" 2>&1
        poweroff_now
        ;;
    systemd)
        install_units
        exec /lib/systemd/systemd --log-target=kmsg
        ;;
    *) fail "unknown LANE_PID1 '$LANE_PID1'" ;;
esac
