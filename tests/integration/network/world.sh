#!/bin/sh
# The egress tests' network: two namespaces of the test's own, never the
# machine's.
#
#   world.sh up DIR TAG     create them, start the world's servers
#   world.sh down DIR TAG   stop the servers, delete both namespaces
#
# "nuc-h-TAG" stands for the host: the supervisor runs in it (run-in-host),
# with 198.51.100.1 and 2001:db8:1::1 on a veth to the world and the
# world's name server in its resolv.conf (DIR/host-resolv.conf).
# "nuc-w-TAG" is the world: 198.51.100.2 and 2001:db8:1::2 on its veth end,
# its services on addresses of its lo (203.0.113.0/24, 2001:db8:2::/64,
# see world.py), and nftables counters on everything that arrives from the
# host side: "allowed" (the web servers' ports), "dns" (the authoritative
# server), "plumbing" (IPv6 neighbour discovery and MLD), "other" (the
# rest, which a test expects to stay at zero).
set -eu
cmd=$1 dir=$2 tag=$3
host=nuc-h-$tag world=nuc-w-$tag vh=nh$tag vw=nw$tag
here=$(cd "$(dirname "$0")" && pwd)

case "$cmd" in
up)
    ip netns add "$host"
    ip netns add "$world"
    ip link add "$vh" netns "$host" type veth peer name "$vw" netns "$world"
    ip -n "$host" link set lo up
    ip -n "$host" link set "$vh" up
    ip -n "$host" addr add 198.51.100.1/24 dev "$vh"
    ip -n "$host" addr add 2001:db8:1::1/64 dev "$vh" nodad
    ip -n "$host" route add default via 198.51.100.2
    ip -n "$host" -6 route add default via 2001:db8:1::2
    ip -n "$world" link set lo up
    ip -n "$world" link set "$vw" up
    ip -n "$world" addr add 198.51.100.2/24 dev "$vw"
    ip -n "$world" addr add 2001:db8:1::2/64 dev "$vw" nodad
    for a in 203.0.113.10 203.0.113.53 203.0.113.54; do ip -n "$world" addr add "$a/32" dev lo; done
    for a in 2001:db8:2::10 2001:db8:2::53 2001:db8:2::54; do ip -n "$world" addr add "$a/128" dev lo; done
    ip netns exec "$world" nft -f - <<NFT
table inet world {
    counter allowed {}
    counter dns {}
    counter plumbing {}
    counter other {}
    chain count {
        type filter hook prerouting priority -300; policy accept;
        iifname != "$vw" return
        ip daddr 203.0.113.10 tcp dport { 80, 443, 2222 } counter name "allowed" return
        ip6 daddr 2001:db8:2::10 tcp dport { 80, 443, 2222 } counter name "allowed" return
        ip daddr 203.0.113.53 meta l4proto { tcp, udp } th dport 53 counter name "dns" return
        ip6 daddr 2001:db8:2::53 meta l4proto { tcp, udp } th dport 53 counter name "dns" return
        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert, mld2-listener-report } counter name "plumbing" return
        counter name "other"
    }
}
NFT
    # A test CA and one certificate for every name the world serves.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=nucleus test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=allowed.test" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:allowed.test,DNS:www.allowed.test,DNS:other.test,DNS:denied.test,DNS:bulk.test\n' > "$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
        -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null
    chmod 644 "$dir"/*
    echo "nameserver 203.0.113.53" > "$dir/host-resolv.conf"
    ip netns exec "$world" setsid python3 "$here/world.py" "$dir" </dev/null >"$dir/world.out" 2>&1 &
    echo $! > "$dir/world.pid"
    i=0
    while [ ! -e "$dir/ready" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then cat "$dir/world.out" >&2; exit 1; fi
        sleep 0.1
    done
    ;;
down)
    [ -f "$dir/world.pid" ] && kill "$(cat "$dir/world.pid")" 2>/dev/null || true
    ip netns del "$world" 2>/dev/null || true
    ip netns del "$host" 2>/dev/null || true
    ;;
counters)
    ip netns exec "$world" nft list counters table inet world | awk '/counter/ {name=$2} /packets/ {print name, $2}'
    ;;
*)
    echo "usage: $0 up|down|counters DIR TAG" >&2
    exit 2
    ;;
esac
