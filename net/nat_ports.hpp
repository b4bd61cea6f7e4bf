// The bridge-family half of the runtime's nftables (table bridge
// nucleus-<bridge>): what the inet table cannot see, because frames
// between two ports of a bridge are switched, not routed (unless
// br_netfilter hands them to the inet hooks, which hosts may or may not
// have). Only limited sandboxes' ports are touched:
//
//   set limited { ifname }                  their host-side veths
//   set bound4  { ifname . ipv4_addr }      each one's own addresses
//   set bound6  { ifname . ipv6_addr }
//   chain forward     bridge forward:    frames from or to a limited port: drop
//                                        (it reaches other sandboxes only by
//                                        routing, where its chain applies)
//   chain prerouting  bridge prerouting: from a limited port, IPv4 and ARP
//                                        from another address than its own: drop;
//                                        IPv6 other than neighbour discovery
//                                        from another address (link-local
//                                        included): drop; neighbour
//                                        advertisements for another address: drop
//
// The inet table dispatches a limited sandbox's egress by source address,
// so without these a sandbox holding CAP_NET_ADMIN or CAP_NET_RAW in its
// namespace could leave by another sandbox's address, or talk to the host
// by a link-local one.
#pragma once

#include <vector>

#include "net/address_pool.hpp"
#include "net/bridge_config.hpp"
#include "net/netlink.hpp"

namespace nucleus::net::nft {

// The table's static part (one transaction's messages, after new_table).
void port_guard_ruleset(std::vector<NetlinkMessage>& out, const BridgeConfig& config);
// A limited sandbox's elements in it.
void add_port_guard(std::vector<NetlinkMessage>& out, const BridgeConfig& config, const SandboxAddress& address);
void delete_port_guard(std::vector<NetlinkMessage>& out, const BridgeConfig& config, const SandboxAddress& address);

}  // namespace nucleus::net::nft
