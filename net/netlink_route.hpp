// rtnetlink requests for bridge networking (rtnetlink(7)): links (a
// bridge, a veth pair), addresses and default routes; and parsers for the
// kernel's answers. Pure message builders: net/bridge.cpp sends them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "net/address_pool.hpp"
#include "net/netlink.hpp"

namespace nucleus::net::rt {

// RTM_GETLINK by name; the answer is an RTM_NEWLINK (parse_link), or
// ENODEV when there is no such link.
NetlinkMessage get_link(const std::string& name);
// A bridge, created up (RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL), with a
// MAC address of its own: otherwise the bridge takes the lowest of its
// ports' addresses, which changes as sandboxes come and go and leaves the
// others' neighbour entries for their gateway stale.
NetlinkMessage new_bridge(const std::string& name, const std::array<uint8_t, 6>& mac);
// Sets IFF_UP on a link.
NetlinkMessage set_up(int index, const std::string& name);

// A veth pair: `host_name` up and enslaved to the bridge `master_index`;
// the peer `peer_name` created directly inside the network namespace of
// `peer_netns_fd` (IFLA_NET_NS_FD in VETH_INFO_PEER), down (set it up from
// inside: veth_open() refuses while the pair is being made). Creating the peer
// there, rather than moving it afterwards, saves a request and never shows
// the peer in the host's namespace.
struct VethRequest {
    std::string host_name;
    std::string peer_name;
    int peer_netns_fd = -1;
    int master_index = 0;
};
NetlinkMessage new_veth(const VethRequest& request);
// RTM_DELLINK by name (deleting either end of a veth removes both).
NetlinkMessage delete_link(const std::string& name);
// Bridge port flags (AF_BRIDGE RTM_SETLINK with IFLA_PROTINFO): an
// isolated port's frames reach only non-isolated ports (the bridge itself).
NetlinkMessage set_port_isolated(int index, const std::string& name, bool isolated);

// Addresses. IPv6 ones carry IFA_F_NODAD: the subnet is the runtime's own,
// so duplicate address detection would only delay the sandbox by a second.
NetlinkMessage new_address(int index, Ipv4 address, int prefix);
NetlinkMessage new_address(int index, const Ipv6& address, int prefix);
NetlinkMessage dump_addresses(int family);
// Default routes through `gateway` on link `index`.
NetlinkMessage new_default_route(int index, Ipv4 gateway);
NetlinkMessage new_default_route(int index, const Ipv6& gateway);

struct LinkInfo {
    int index = 0;
    std::string name;
    std::string kind;  // IFLA_INFO_KIND: "bridge", "veth", ... ("" for none)
    unsigned flags = 0;
    int master = 0;
};
std::optional<LinkInfo> parse_link(const NetlinkReply& reply);

struct AddressInfo {
    int index = 0;
    int family = 0;
    int prefix = 0;
    std::optional<Ipv4> v4;
    std::optional<Ipv6> v6;
};
std::optional<AddressInfo> parse_address(const NetlinkReply& reply);

}  // namespace nucleus::net::rt
