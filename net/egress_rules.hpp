// The netlink messages that set up an egress sandbox's network namespace,
// compiled at build time (net/tools/egress_rules_precompile.cpp, with
// libnftnl and libmnl) and embedded: the ruleset is the same for every
// sandbox (the policy is enforced by the proxy, not in the kernel), so the
// parent hands the child constant bytes and the child only sends them
// (isolation/child_net.cpp).
//
// Routes (NETLINK_ROUTE): every IPv4 and IPv6 destination is local
// (`local 0.0.0.0/0 dev lo`, `local ::/0 dev lo`, table local). A namespace
// with only `lo` has no route out, so connect(2) would fail with
// ENETUNREACH before any netfilter hook saw the packet; and the kernel
// turns a unicast IPv6 route via lo into a reject route
// (ip6_route_info_create), so only a local route lets IPv6 reach the hook.
//
// nftables (NETLINK_NETFILTER), table inet "nucleus":
//   chain egress_nat    type nat hook output priority -100; policy accept;
//     udp dport 53 redirect to :53                   the stub, any resolver address
//     tcp dport 53 redirect to :<capture>           DNS over TCP, served by the capture
//     ip daddr 127.0.0.0/8 return                    the sandbox's own loopback
//     ip6 daddr ::1 return
//     meta l4proto tcp redirect to :<capture>        every other TCP connection
//   chain egress_filter type filter hook output priority 0; policy drop;
//     ct state established,related accept            replies of redirected flows
//     ip daddr 127.0.0.0/8 accept                    after NAT: the stub, the capture, lo
//     ip6 daddr ::1 accept
// Everything else (other UDP, QUIC, ICMP) is dropped: sendmsg(2) fails
// with EPERM at once instead of timing out.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nucleus::net {

// Privileged ports, so the workload (no CAP_NET_BIND_SERVICE) can never
// bind them, not even in the gap while a restarted daemon re-creates them.
constexpr uint16_t egress_stub_port = 53;
constexpr uint16_t egress_capture_port = 1;

struct NetlinkMessages {
    int protocol;  // NETLINK_ROUTE or NETLINK_NETFILTER
    const uint8_t* bytes;
    size_t length;
    unsigned acks;  // messages that carry NLM_F_ACK
};

NetlinkMessages egress_route_messages();
NetlinkMessages egress_nft_batch();

}  // namespace nucleus::net
