// The runtime's nftables table for one bridge, "inet nucleus-<bridge>":
// MASQUERADE for the bridge's subnets, published ports as DNAT, forwarding
// only what those allow, and per-sandbox egress limits. Nothing outside
// this table is touched; `nft list table inet nucleus-nucleus0` shows it.
//
//   table inet nucleus-<bridge> {
//     map publish4 / publish6        { host address . proto . port : sandbox address . port }
//     map publish4_any / publish6_any { proto . port : sandbox address . port }   (0.0.0.0 / [::])
//     map egress4 / egress6           { sandbox address : jump sb-<hex> }        (limited sandboxes)
//     chain guard     prerouting, raw:    from the bridge to 127.0.0.0/8: drop
//     chain dnat_pre  prerouting, dstnat: published ports of packets from elsewhere
//     chain dnat_out  output, dstnat:     published ports of the host's own connections
//     chain snat      postrouting, srcnat: the subnets leaving by another interface: masquerade;
//                                         loopback sources going to the bridge: masquerade
//     chain forward   forward, filter:    to the bridge from elsewhere, a new connection
//                                         that is not a published port: drop; from the
//                                         bridge: egress4/6
//     chain input     input, filter:      from the bridge: egress4/6 (the host is a destination too)
//     chain sb-<hex>  one per limited sandbox, with its sets a4-<hex> / a6-<hex>:
//                     established/related, IPv6 neighbour discovery, the allowed
//                     (address . proto . port) elements and CIDR rules return; the rest is dropped
//   }
//   table bridge nucleus-<bridge>: limited sandboxes' ports (net/nat_ports.hpp)
//
// Loopback. Published ports bind to 127.0.0.1 by default. A connection
// from the host to 127.0.0.1:PORT goes through the output hook, so
// dnat_out rewrites it to the sandbox; the route lookup that follows has a
// loopback source on a non-loopback device, which the kernel allows only
// with route_localnet on that device (net/bridge.cpp sets it on the bridge,
// nowhere else), and snat masquerades the loopback source to the bridge's
// address so the sandbox's reply comes back. route_localnet alone would
// also let a neighbour on the bridge send to 127.0.0.1 (CVE-2020-8558): the
// guard chain drops anything arriving from the bridge for 127.0.0.0/8
// before routing. The alternative, a user-space proxy per port as Docker's
// docker-proxy, costs a process or a relayed copy per connection. IPv6 has
// no route_localnet: ::1 never leaves the loopback device, so publishing on
// [::1] is refused (publish on 127.0.0.1 or on a non-loopback IPv6 address).
//
// The host's firewall. Everything here is an accept-by-default base chain
// that only drops: nftables runs every base chain of a hook, and a drop in
// any of them is final, so an accept here never overrides the host's own
// rules (an iptables or nft forward chain with policy drop, ufw's
// DEFAULT_FORWARD_POLICY="DROP"). A published port therefore reaches its
// sandbox only if the host's firewall forwards it (`ufw route allow ...`,
// or `ct status dnat accept` in the host's forward chain); connections to
// 127.0.0.1 never take the forward path.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"
#include "net/address_pool.hpp"
#include "net/bridge_config.hpp"
#include "net/netlink.hpp"

namespace nucleus::net {

enum class Protocol : uint8_t { Tcp = 6, Udp = 17 };
std::string_view to_string(Protocol p);

// -p/--publish [IP:]HOST:CONTAINER[/tcp|udp]
struct PublishedPort {
    int family = 2;  // AF_INET or AF_INET6 (of the host address)
    std::optional<Ipv4> host_v4;  // AF_INET: nullopt = every local IPv4 address (0.0.0.0)
    std::optional<Ipv6> host_v6;  // AF_INET6: nullopt = every local IPv6 address ([::])
    uint16_t host_port = 0;
    uint16_t container_port = 0;
    Protocol protocol = Protocol::Tcp;
    bool operator==(const PublishedPort&) const = default;
};
// Without an address, 127.0.0.1. IPv6 addresses in brackets:
// "[2001:db8::1]:8080:80". Ports 1-65535.
Result<PublishedPort> parse_published_port(std::string_view text);
std::string to_string(const PublishedPort& p);

// A static egress rule: a destination CIDR and its ports (empty: any).
struct EgressCidr {
    std::optional<Ipv4Subnet> v4;
    std::optional<Ipv6Subnet> v6;
    std::vector<uint16_t> ports;
    Protocol protocol = Protocol::Tcp;
};

// A sandbox's egress: unlimited, or limited to what `rules` and the
// elements added later (allow_destination) allow. Limited with no rules
// and no elements is deny-all, DNS included.
struct EgressLimit {
    bool limited = false;
    std::vector<EgressCidr> rules;
};

// Creates the table (chains, maps, rules) if it is not there; an existing
// table is left as it is. Callers serialise on the bridge's lock.
Status ensure_nat_table(NetlinkSession& nf, const BridgeConfig& config);
// Removes the whole table (tests, and the documented reset).
Status delete_nat_table(NetlinkSession& nf, const BridgeConfig& config);

// The sandbox's published ports, in one transaction. A port another
// sandbox publishes already fails with EEXIST, naming it.
Status add_published_ports(NetlinkSession& nf, const BridgeConfig& config, const SandboxAddress& address,
                           const std::vector<PublishedPort>& ports);
Status remove_published_ports(NetlinkSession& nf, const BridgeConfig& config, const SandboxAddress& address,
                              const std::vector<PublishedPort>& ports);

// A limited sandbox's chain, sets and egress map entries, in one
// transaction (nothing to do for an unlimited one).
Status add_egress_limit(NetlinkSession& nf, const BridgeConfig& config, const SandboxAddress& address,
                        const EgressLimit& limit);
Status remove_egress_limit(NetlinkSession& nf, const BridgeConfig& config, const SandboxAddress& address);

// TTLs are clamped to [30 s, 1 h]: shorter would expire before a client
// connects (its resolver caches the answer), longer would keep an address
// the name moved away from.
inline constexpr std::chrono::seconds min_allow_ttl{30};
inline constexpr std::chrono::seconds max_allow_ttl{3600};
std::chrono::seconds clamp_allow_ttl(std::chrono::seconds ttl);

// Lets a limited sandbox open connections to `destination` on (proto,
// port) until the clamped TTL passes; an element already there gets the
// new timeout. For the DNS stub's forwarded answers.
struct AllowedDestination {
    std::optional<Ipv4> v4;
    std::optional<Ipv6> v6;
    Protocol protocol = Protocol::Tcp;
    uint16_t port = 0;
};
Status allow_destination(NetlinkSession& nf, const BridgeConfig& config, const SandboxAddress& sandbox,
                         const AllowedDestination& destination, std::chrono::seconds ttl);

// What the table holds per sandbox, by host index (for clean-up after a
// supervisor that died).
struct NatObjects {
    std::vector<uint32_t> egress_chains;  // sb-<hex> chains
    std::vector<uint32_t> published;  // sandboxes with published-port elements
};
Result<NatObjects> list_nat_objects(NetlinkSession& nf, const BridgeConfig& config);
// Removes every published-port element that points at `address`.
Status remove_all_published_ports(NetlinkSession& nf, const BridgeConfig& config, const SandboxAddress& address);

// Names, for tests and messages.
std::string egress_chain_name(const SandboxAddress& address);

}  // namespace nucleus::net
