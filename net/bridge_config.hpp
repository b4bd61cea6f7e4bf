// The runtime-wide settings of bridge networking: which bridge, which
// subnets. Every sandbox on a host that uses one bridge must agree on them,
// so they are not per-sandbox spec keys: `nucleus run` takes them from the
// environment and `nucleus daemon` from its flags (which default to the
// same environment variables).
//
//   NUCLEUS_BRIDGE          bridge name            (default nucleus0)
//   NUCLEUS_BRIDGE_SUBNET   IPv4 subnet, /8-/30    (default 10.201.0.0/16)
//   NUCLEUS_BRIDGE_SUBNET6  IPv6 subnet, /64-/120, or "none"
//                                                  (default fd4e:7563:6c65::/64)
//
// The defaults avoid the ranges other runtimes take by default (Docker
// 172.17.0.0/16, Podman 10.88.0.0/16 and 10.89.0.0/24 upwards, libvirt
// 192.168.122.0/24, LXD's random 10.x.y.0/24 are /24s that may collide
// and are then reported when the bridge is set up). The IPv6 prefix is a
// unique local address (RFC 4193): fd + "Nucle" in ASCII hex.
#pragma once

#include <optional>
#include <string>

#include "io/error.hpp"
#include "net/address_pool.hpp"

namespace nucleus::net {

struct BridgeConfig {
    std::string name = "nucleus0";
    AddressPlan plan;

    // Our nftables table: "nucleus-<bridge>", in the inet family.
    std::string table() const { return "nucleus-" + name; }
};

inline constexpr const char* default_bridge_name = "nucleus0";
inline constexpr const char* default_bridge_subnet = "10.201.0.0/16";
inline constexpr const char* default_bridge_subnet6 = "fd4e:7563:6c65::/64";

// Validates the three settings (empty: the default; subnet6 "none": IPv4
// only). The name must be a valid interface name of at most 15 bytes, and
// the IPv6 subnet must hold at least as many addresses as the IPv4 one
// (host index i names both of a sandbox's addresses).
Result<BridgeConfig> make_bridge_config(const std::string& name, const std::string& subnet4,
                                        const std::string& subnet6);

// From NUCLEUS_BRIDGE, NUCLEUS_BRIDGE_SUBNET and NUCLEUS_BRIDGE_SUBNET6.
Result<BridgeConfig> bridge_config_from_environment();

// The process-wide setting (the daemon sets it from its flags at start-up;
// otherwise the environment's, read once).
Result<BridgeConfig> runtime_bridge_config();
void set_runtime_bridge_config(BridgeConfig config);

// The host-side end of a sandbox's veth pair: "nv" + its IPv4 address in
// hex ("nv0ac90002"). Named after the address so that the kernel, which
// keeps the name taken while the sandbox's network namespace lives, tells
// whether an address is still in use (net/address_pool.hpp).
std::string host_veth_name(const SandboxAddress& address);
// The sandbox's end, inside its namespace.
inline constexpr const char* sandbox_interface = "eth0";

}  // namespace nucleus::net
