#!/bin/sh
# Installs everything Nucleus needs to build, test and benchmark on Debian 12.
#
# Three packages come from outside bookworm proper, each pinned so that nothing
# else is ever taken from those suites:
#   - libasio-dev 1.30 from trixie: Debian 12's Asio 1.22 has two io_uring
#     backend bugs that corrupt I/O (fixed in >= 1.28). It is header-only,
#     architecture all, with no dependencies.
#   - catch2 3.x from bookworm-backports (bookworm ships 2.x).
#   - libmnl-dev 1.0.5 from trixie (with its libmnl0, a drop-in of the same
#     soname that iproute2 and nftables use): bookworm's 1.0.4 ships no
#     static archive, and the nucleus binary links statically (netlink for
#     --network bridge, net/netlink.cpp).
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: must run as root (it calls apt-get)" >&2
    exit 1
fi

SRC=/etc/apt/sources.list.d/nucleus-extra.sources
PIN=/etc/apt/preferences.d/nucleus-extra.pref

# The extra suites come from the archive this machine already uses for
# Debian itself: the URI of the source that serves this release, as apt
# reads it (sources.list lines and deb822 .sources files alike). By the
# suite as written in the sources; else (a source written as "stable") by
# the codename in the Release file of a source apt has already fetched.
codename=bookworm
archive=$(apt-get indextargets --no-release-info --format '$(REPO_URI)' "Release: $codename" 'Target-Of: deb' \
    2>/dev/null | sort -u | head -n 1)
[ -n "$archive" ] || archive=$(apt-get indextargets --format '$(REPO_URI)' "Codename: $codename" 'Target-Of: deb' \
    2>/dev/null | sort -u | head -n 1)
if [ -z "$archive" ]; then
    echo "install-deps.sh: no apt source serves Debian 12 ($codename); configure one first" >&2
    exit 1
fi
sources="Types: deb
URIs: $archive
Suites: trixie bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
if [ "$(cat "$SRC" 2>/dev/null)" != "$sources" ]; then
    printf '%s\n' "$sources" >"$SRC"
fi

# trixie below 100: never chosen automatically, only with -t trixie.
cat >"$PIN" <<'PREF'
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
PREF

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq

apt-get install -y -qq --no-install-recommends \
    build-essential cmake ninja-build pkg-config git \
    libnftnl-dev libmnl-dev nftables curl openssl \
    liburing-dev libseccomp-dev nlohmann-json3-dev libspdlog-dev \
    libcli11-dev libbenchmark-dev libtomlplusplus-dev libmd-dev libhttp-parser-dev \
    busybox-static uidmap iproute2 procps util-linux ca-certificates qemu-system-x86 xz-utils passt \
    clang libclang-rt-14-dev clang-format-14 universal-ctags hyperfine \
    python3 nix-bin >/dev/null

apt-get install -y -qq --no-install-recommends -t trixie libasio-dev libmnl-dev >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports catch2 >/dev/null

# Test fixture: Docker's default seccomp profile (to prove it loads), taken
# from Debian's package of the Docker sources; only that JSON file is kept.
fixture=/usr/local/share/nucleus/docker-default-seccomp.json
if [ ! -f "$fixture" ]; then
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    if (cd "$tmp" && apt-get download -qq golang-github-docker-docker-dev >/dev/null 2>&1 &&
        dpkg-deb -x golang-github-docker-docker-dev_*.deb x); then
        install -D -m 0644 "$tmp/x/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json" "$fixture"
    fi
    rm -rf "$tmp"
fi

# Peers and workloads for nucleus-bench (bench/ only; optional): the OCI
# runtimes crun, runc and gVisor's runsc, bubblewrap and podman for
# `coldstart` (Docker is used only when a daemon already answers);
# PostgreSQL 15 (postgres, initdb, pgbench) for `pgbench`; gnuplot for --plot.
if [ "${NUCLEUS_WITH_PEERS:-0}" = 1 ]; then
    apt-get install -y -qq --no-install-recommends \
        crun runc runsc bubblewrap podman \
        postgresql-15 postgresql-contrib gnuplot-nox >/dev/null
fi

echo "install-deps.sh: dependencies installed"
