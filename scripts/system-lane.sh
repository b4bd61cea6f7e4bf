#!/bin/bash
# The system lane: the test sets that need a real Linux host of the kind the
# product is for (a pure cgroup v2 hierarchy with every controller, Landlock,
# nftables, systemd as PID 1) run in a QEMU guest booting Debian's own
# kernel. The host's / is the guest's root (virtio-9p, read-only, under a
# tmpfs overlay), so the guest runs this build with the host's userland.
#
# usage: scripts/system-lane.sh [--systemd] [--timeout SECONDS] BUILD_DIR SET...
#   SET        tests/system/SET.sh, run inside the guest (several per boot)
#   --systemd  boot the host's systemd as PID 1 with the lane's own target
#              (default: a plain init script)
#   --timeout  hard limit on the guest's life (default 900 s)
# Environment:
#   NUCLEUS_LANE_CACHE   downloads and the initramfs, reused across runs
#                        (default /var/cache/nucleus/system-lane)
#   NUCLEUS_LANE_ACCEL   kvm or tcg (default: kvm where /dev/kvm is hardware
#                        KVM, tcg otherwise)
#   NUCLEUS_LANE_MEMORY  guest memory in MiB (default 2048)
#
# Phases, each timed: fetch (apt only: the kernel package linux-image-amd64
# depends on, kmod, busybox-static; downloaded and unpacked into the cache,
# never installed), initramfs, boot and the sets inside, report. Fails when
# a set fails, or when the guest does not come back with a result within the
# time limit; then it prints the console's tail and the guest's own log.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pid1=plain
limit=900
while [ $# -gt 0 ]; do
    case "$1" in
        --systemd) pid1=systemd; shift ;;
        --timeout) limit=$2; shift 2 ;;
        -*) echo "system lane: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || { sed -n '8,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
build=$(cd "$1" && pwd)
shift
sets=("$@")
cache=${NUCLEUS_LANE_CACHE:-/var/cache/nucleus/system-lane}
memory=${NUCLEUS_LANE_MEMORY:-2048}
lane="$build/system-lane/$(IFS=-; echo "${sets[*]}")"

say() { echo "system lane: $*"; }
die() { echo "system lane: FAILED: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f s", b - a}'; }

for set in "${sets[@]}"; do
    [ -f "$root/tests/system/$set.sh" ] || die "no test set tests/system/$set.sh"
done
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (scripts/install-deps.sh installs qemu-system-x86)"
# lane.env lists paths separated by blanks (the kernel command line and
# busybox sh have no better list).
for path in "$root" "$build" "$cache"; do
    case "$path" in *[[:space:]]*) die "'$path' contains whitespace, which the guest's set-up cannot carry" ;; esac
done

# KVM only where /dev/kvm is hardware virtualization: a paravirtual KVM
# (kvm_pvm) cannot boot a stock kernel (-cpu host fails on MSR 0x10a).
choose_accel() {
    case "${NUCLEUS_LANE_ACCEL:-auto}" in
        kvm) accel=kvm; why="NUCLEUS_LANE_ACCEL=kvm"; return ;;
        tcg) accel=tcg; why="NUCLEUS_LANE_ACCEL=tcg"; return ;;
    esac
    accel=tcg
    if [ ! -c /dev/kvm ] || [ ! -w /dev/kvm ]; then
        why="no usable /dev/kvm"
    elif [ -d /sys/module/kvm_pvm ]; then
        why="/dev/kvm is paravirtual KVM (kvm_pvm), which cannot boot a stock kernel"
    elif ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
        why="the CPU offers no vmx/svm"
    else
        accel=kvm
        why="/dev/kvm is hardware KVM"
    fi
}

# Downloads PACKAGES with apt-get and unpacks them into DIR, once.
fetch_unpacked() {  # DIR PACKAGE...
    local dir=$1 tmp
    shift
    [ -d "$dir" ] && return 0
    tmp=$(mktemp -d "$cache/fetch.XXXXXX")
    chown _apt "$tmp" 2>/dev/null || true  # apt downloads as _apt when it can
    (cd "$tmp" && apt-get download -qq "$@") || { rm -rf "$tmp"; die "apt-get download $* failed"; }
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/tree"; done
    mv "$tmp/tree" "$dir"
    rm -rf "$tmp"
}

# Which packages, in which versions: the kernel package linux-image-amd64
# depends on, kmod and busybox-static. The candidate versions name the
# cache's directories. apt-cache loads the whole package cache on every call
# (several seconds here), and its answer changes only with apt's lists or
# configuration, so the answer is kept until one of them changes.
resolve_packages() {
    local resolved="$cache/resolved.env" versions
    if [ -s "$resolved" ] && [ -z "$(find /var/lib/apt/lists /etc/apt -newer "$resolved" -print -quit)" ]; then
        # shellcheck source=/dev/null
        . "$resolved"
        return
    fi
    kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$kernel_pkg" ] || die "apt does not know linux-image-amd64 (apt-get update?)"
    release=${kernel_pkg#linux-image-}
    versions=$(apt-cache policy "$kernel_pkg" kmod busybox-static |
        awk '/^[^ ]/ {sub(":$", ""); pkg = $1} /Candidate:/ {print pkg "-" $2}')
    kernel_tree="$cache/$(grep "^$kernel_pkg-" <<<"$versions")"
    kmod_tree="$cache/$(grep '^kmod-' <<<"$versions")"
    busybox_tree="$cache/$(grep '^busybox-static-' <<<"$versions")"
    printf '%s=%q\n' kernel_pkg "$kernel_pkg" release "$release" kernel_tree "$kernel_tree" \
        kmod_tree "$kmod_tree" busybox_tree "$busybox_tree" >"$resolved"
}

fetch() {
    resolve_packages
    fetch_unpacked "$kmod_tree" kmod libkmod2
    fetch_unpacked "$busybox_tree" busybox-static
    if [ ! -d "$kernel_tree" ]; then
        fetch_unpacked "$kernel_tree.tmp" "$kernel_pkg"
        # The package ships no modules.dep: its postinst runs depmod.
        kmod depmod -b "$kernel_tree.tmp" "$release"
        mv "$kernel_tree.tmp" "$kernel_tree"
    fi
    [ -e "$kernel_tree/boot/vmlinux-$release" ] || extract_vmlinux "$kernel_tree/boot"
    kernel_image="$kernel_tree/boot/vmlinux-$release"
    [ -s "$kernel_image" ] || kernel_image="$kernel_tree/boot/vmlinuz-$release"
}

# The uncompressed kernel, booted through its PVH entry point: under TCG,
# decompressing the xz bzImage and the BIOS's boot path cost ~10 s a boot.
extract_vmlinux() {  # BOOT_DIR
    local image="$1/vmlinuz-$release" offset
    grep -q '^CONFIG_PVH=y' "$1/config-$release" || return 0
    offset=$(grep -abo $'\xfd7zXZ\x00' "$image" | head -n 1 | cut -d: -f1)
    [ -n "$offset" ] || return 0
    # xz complains about the bzImage's data after the stream; the ELF check says whether it worked.
    tail -c "+$((offset + 1))" "$image" | xz -dcq >"$1/vmlinux-$release" 2>/dev/null || true
    [ "$(head -c 4 "$1/vmlinux-$release" | od -An -c | tr -d ' ')" = '177ELF' ] || rm -f "$1/vmlinux-$release"
}

kmod() {  # PERSONALITY ARGS...: kmod's tools are one binary, told apart by argv[0]
    local tool=$1
    shift
    LD_LIBRARY_PATH="$kmod_tree/usr/lib/x86_64-linux-gnu" bash -c 'exec -a "$0" "$@"' "$tool" "$kmod_tree/bin/kmod" "$@"
}

# The initramfs: static busybox, the 9p and overlayfs modules with their
# dependencies in load order, and stage 1 (system-lane/initramfs-init.sh).
# Cached under a hash of what goes in.
build_initramfs() {
    local modules stage1 key dir
    modules=$(kmod modprobe -d "$kernel_tree" -S "$release" --show-depends -a \
        virtio_pci 9pnet_virtio 9p overlay | awk '$1 == "insmod" && !seen[$2]++ {print $2}')
    stage1="$root/scripts/system-lane/initramfs-init.sh"
    key=$({ echo "$modules"; cat "$stage1"; echo "$busybox_tree"; } | sha256sum | cut -c1-16)
    initramfs="$cache/initramfs-$release-$key.cpio.gz"
    [ -f "$initramfs" ] && return 0
    dir=$(mktemp -d "$cache/initramfs.XXXXXX")
    mkdir -p "$dir"/{bin,modules,proc,sys,dev}
    cp "$busybox_tree/bin/busybox" "$dir/bin/"
    for applet in $("$dir/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
    done
    for module in $modules; do
        cp "$module" "$dir/modules/"
        basename "$module" >>"$dir/modules/order"
    done
    install -m 0755 "$stage1" "$dir/init"
    (cd "$dir" && find . | "$busybox_tree/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -6 >"$initramfs.tmp")
    mv "$initramfs.tmp" "$initramfs"
    rm -rf "$dir"
}

# What a run uses is touched; what no run used for a week (an older kernel,
# an initramfs of an older stage 1) is removed.
prune_cache() {
    touch "$kernel_tree" "$kmod_tree" "$busybox_tree" "$initramfs"
    find "$cache" -mindepth 1 -maxdepth 1 ! -name lock ! -name resolved.env -mtime +7 -exec rm -rf {} +
}

# The paths the guest must see through its fresh /run and /tmp; nested
# ones are covered by their parent.
keep_paths() {
    printf '%s\n' "$root" "$build" "$cache" | sort -u | awk '
        { for (i = 1; i <= n; i++) if (index($0 "/", kept[i] "/") == 1) next; kept[++n] = $0; print }'
}

write_lane_env() {
    rm -rf "$lane"
    mkdir -p "$lane"
    {
        printf 'LANE_%s=%q\n' \
            ROOT "$root" BUILD "$build" RESULTS "$lane" PID1 "$pid1" SETS "${sets[*]}" \
            KEEP "$(keep_paths | tr '\n' ' ')" INIT "$root/scripts/system-lane/guest-init.sh" \
            KERNEL_RELEASE "$release" KERNEL_TREE "$kernel_tree" KMOD_TREE "$kmod_tree"
    } >"$lane/lane.env"
}

boot() {
    local accel_args cpus cmdline
    if [ "$accel" = kvm ]; then
        accel_args=(-accel kvm -cpu host)
    else
        accel_args=(-accel "tcg,thread=multi" -cpu max)
    fi
    cpus=$(nproc)
    [ "$cpus" -le 4 ] || cpus=4
    cmdline="console=ttyS0 panic=-1 quiet loglevel=4"
    # The host's fstab and partitions are not the guest's: no mount units
    # for them, nothing for local-fs.target to wait on.
    [ "$pid1" = systemd ] && cmdline+=" systemd.show_status=error fstab=0 systemd.gpt_auto=0"
    # timeout(1) runs in a process group of its own: when this script is
    # interrupted, the trap below is what stops the guest.
    timeout -k 10 "$limit" qemu-system-x86_64 -nodefaults -no-user-config -machine q35 "${accel_args[@]}" \
        -smp "$cpus" -m "$memory" -display none -serial "file:$lane/console.log" -nic none -no-reboot \
        -kernel "$kernel_image" -initrd "$initramfs" -append "$cmdline" \
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$lane,mount_tag=results,security_model=none,multidevs=remap" \
        </dev/null >"$lane/qemu.log" 2>&1 &
    guest=$!
    trap 'kill -TERM "$guest" 2>/dev/null' EXIT
    qemu_status=0
    wait "$guest" || qemu_status=$?
    trap - EXIT
}

# What the guest left behind, when it did not come back with a result.
print_cause() {
    echo "--- console (last 60 lines of $lane/console.log)" >&2
    tail -n 60 "$lane/console.log" >&2 2>/dev/null || true
    [ -s "$lane/qemu.log" ] && { echo "--- qemu" >&2; cat "$lane/qemu.log" >&2; }
    for log in guest.log journal.log; do
        [ -s "$lane/$log" ] || continue
        echo "--- the guest's $log (last 80 lines)" >&2
        tail -n 80 "$lane/$log" >&2
    done
    for set in "${sets[@]}"; do
        [ -s "$lane/$set.log" ] && { echo "--- $set.log (last 40 lines)" >&2; tail -n 40 "$lane/$set.log" >&2; }
    done
    return 0
}

mkdir -p "$cache"
choose_accel
say "accelerator: $accel ($why); PID 1: $pid1; sets: ${sets[*]}"
started=$(now)
exec 9>"$cache/lock"
flock 9  # one fetch at a time: two checkouts may share the cache
fetch
say "fetch: $(since "$started") (kernel $release, cached in $cache)"
phase=$(now)
build_initramfs
prune_cache
flock -u 9
say "initramfs: $(since "$phase") ($(du -k "$initramfs" | cut -f1) KiB)"
write_lane_env
phase=$(now)
boot
say "guest: $(since "$phase") (limit ${limit} s)"
[ -s "$lane/timings.txt" ] && sed 's/^/system lane:   guest clock: /' "$lane/timings.txt"

if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
    print_cause
    die "the guest hit the time limit of $limit s"
fi
if [ ! -s "$lane/exit-code" ]; then
    print_cause
    die "the guest did not come back with a result (qemu exit $qemu_status)"
fi
cat "$lane/guest-info.txt"
code=$(cat "$lane/exit-code")
for set in "${sets[@]}"; do
    echo "--- $set"
    cat "$lane/$set.log"
done
if [ "$code" != 0 ]; then
    [ "$pid1" = systemd ] && { echo "--- the guest's journal (last 80 lines)" >&2; tail -n 80 "$lane/journal.log" >&2 || true; }
    die "$code test set(s) failed inside the guest; results in $lane"
fi
say "passed in $(since "$started")"
