#!/bin/sh
# Builds a store closure without nixpkgs and without a Nix daemon, in a
# throw-away store under DIR (NIX_STORE_DIR=DIR/store), from
# tests/nix/e2e.nix: static busybox, and lib.mkRootfs's manifest of it
# (nix/mk-rootfs.nix). Prints the manifest's path. For nucleus-bench
# (`coldstart --closure`, `density --closure`) on machines without Nix
# installed as a system service; run nucleus with NIX_STATE_DIR=DIR/var so
# that sandboxes keep their gc roots in that store.
#
# usage: nix/scratch-closure.sh DIR [ATTR (default bench)] [NUCLEUS (default build/nucleus)]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
attr=${2:-bench}
nucleus=${3:-$src/build/nucleus}
case "$dir" in /tmp|/tmp/*) echo "scratch-closure.sh: $dir: a store under /tmp is hidden by the sandbox's own /tmp" >&2; exit 2;; esac
mkdir -p "$dir/etc" "$dir/in/nucleus/bin" "$dir/in/busybox"
chmod 755 "$dir"
printf 'sandbox = false\nbuild-users-group =\nsubstituters =\n' > "$dir/etc/nix.conf"
cp "$nucleus" "$dir/in/nucleus/bin/nucleus"
cp /bin/busybox "$dir/in/busybox/busybox"
export NIX_STORE_DIR="$dir/store" NIX_STATE_DIR="$dir/var" NIX_LOG_DIR="$dir/var/log" NIX_CONF_DIR="$dir/etc"
exec nix-build "$src/tests/nix/e2e.nix" --arg nucleusDir "$dir/in/nucleus" --arg busyboxDir "$dir/in/busybox" \
    -A "$attr" -o "$dir/result-$attr"
