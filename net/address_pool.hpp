// The bridge's address pool: its IPv4 subnet (and optional IPv6 /64-/120),
// and leases on sandbox addresses in them.
//
// Host index i names one sandbox's pair of addresses: subnet4 + i and
// subnet6 + i. Index 1 is the bridge (the sandboxes' gateway); 0 and the
// IPv4 broadcast are never handed out.
//
// A lease is an flock(2) on <dir>/<IPv4 address>, held by the process that
// supervises the sandbox (as isolation/idmap.cpp leases id ranges): two
// concurrent `nucleus run`s, or a run and the daemon, never get the same
// address, and a supervisor that dies frees it with its last descriptor.
// A lock alone cannot cover a sandbox that outlives its supervisor (the
// daemon's, across a daemon restart), so the caller also checks that the
// address's host-side veth (named after the address, net/bridge.hpp) does
// not exist: the kernel keeps that name taken for as long as the sandbox's
// network namespace lives.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "io/error.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::net {

struct Ipv4 {
    uint32_t value = 0;  // host byte order
    bool operator==(const Ipv4&) const = default;
    uint32_t network_order() const { return htonl(value); }
};

struct Ipv6 {
    std::array<uint8_t, 16> bytes{};
    bool operator==(const Ipv6&) const = default;
};

std::string to_string(Ipv4 a);
std::string to_string(Ipv6 a);
std::optional<Ipv4> parse_ipv4(std::string_view text);
std::optional<Ipv6> parse_ipv6(std::string_view text);

struct Ipv4Subnet {
    Ipv4 network;
    int prefix = 0;
    bool operator==(const Ipv4Subnet&) const = default;
    Ipv4 mask() const { return Ipv4{prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix)}; }
    bool contains(Ipv4 a) const { return (a.value & mask().value) == network.value; }
    Ipv4 at(uint32_t index) const { return Ipv4{network.value + index}; }
    // Sandbox indices are 2 .. last_index() (1 is the gateway).
    uint32_t last_index() const { return (uint32_t{1} << (32 - prefix)) - 2; }
    std::optional<uint32_t> index_of(Ipv4 a) const;
};

struct Ipv6Subnet {
    Ipv6 network;
    int prefix = 0;
    bool operator==(const Ipv6Subnet&) const = default;
    bool contains(const Ipv6& a) const;
    Ipv6 at(uint32_t index) const;
};

// "10.201.0.0/16": prefix 8-30, no host bits set.
Result<Ipv4Subnet> parse_ipv4_subnet(std::string_view text);
// "fd4e:7563:6c65::/64": prefix 64-120, no host bits set.
Result<Ipv6Subnet> parse_ipv6_subnet(std::string_view text);
std::string to_string(const Ipv4Subnet& s);
std::string to_string(const Ipv6Subnet& s);

// One sandbox's addresses.
struct SandboxAddress {
    uint32_t index = 0;
    Ipv4 v4;
    std::optional<Ipv6> v6;
};

struct AddressPlan {
    Ipv4Subnet subnet4;
    std::optional<Ipv6Subnet> subnet6;
    SandboxAddress address(uint32_t index) const;
    SandboxAddress gateway() const { return address(1); }
};

class AddressLease {
public:
    AddressLease() = default;
    const SandboxAddress& address() const { return address_; }
    bool held() const { return lock_.valid(); }
    // The lease file named an owner before we took it: its supervisor
    // died without releasing it, and may have left table entries behind.
    bool inherited() const { return inherited_; }
    // Removes the lease file, then unlocks it. Lockers check after flock
    // that the path still names the file they locked, so an unlinked lease
    // is never taken.
    void release();

private:
    friend Result<AddressLease> lease_address(const AddressPlan&, const std::string&, const std::string&,
                                              const std::function<bool(const SandboxAddress&)>&);
    friend Result<AddressLease> lease_this_address(const AddressPlan&, const std::string&, uint32_t,
                                                   const std::string&);
    io::unique_fd lock_;
    std::string path_;
    SandboxAddress address_;
    bool inherited_ = false;
};

// A free address: the first index from a random start whose lease file
// <dir>/<v4> can be locked and for which `in_use` says no (the caller's
// check that nothing else still has it, e.g. a veth of that name). The
// lease file holds `owner` (a sandbox id) for people reading the directory.
Result<AddressLease> lease_address(const AddressPlan& plan, const std::string& dir, const std::string& owner,
                                   const std::function<bool(const SandboxAddress&)>& in_use);

// That address again (a daemon re-adopting a sandbox after a restart, or
// clean-up taking what a dead supervisor left). Fails with EWOULDBLOCK if
// another process holds it. An empty `owner` leaves the file's content as
// it is (clean-up looking at an address it may give back untouched).
Result<AddressLease> lease_this_address(const AddressPlan& plan, const std::string& dir, uint32_t index,
                                        const std::string& owner);

// Parses a lease file's name back into its index (for clean-up, which
// leases what a dead supervisor left before removing it).
std::optional<uint32_t> lease_index(const AddressPlan& plan, std::string_view file_name);

}  // namespace nucleus::net
