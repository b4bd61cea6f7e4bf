// What a sandbox may reach: one policy type for both enforcement points
// (the egress proxy of `--network egress`, and nftables sets filled by DNS
// answers in bridge mode). Plain data: parsing and matching only.
//
// Rules, from flags, document keys or a file:
//   --allow-domain NAME[:PORT[,PORT...]]   exact name, or *.example.com for
//                                          every name below example.com
//                                          (not example.com itself)
//   --allow-cidr CIDR[:PORT[,PORT...]]     a.b.c.d/N, or [x::/N]:PORTS for
//                                          IPv6 with ports; a bare address
//                                          is a /32 or /128
//   --allow-from-file FILE                 one NAME or CIDR rule per line,
//                                          '#' starts a comment
// Ports default to 443 and 80; "*" allows every port.
//
// Never by default: loopback, link-local (169.254.0.0/16, fe80::/10, where
// cloud metadata services live), fd00:ec2::254 (EC2's IPv6 metadata), the
// unspecified, multicast and broadcast addresses. Such an address is
// reachable only through a CIDR rule that lies entirely inside its special
// range (e.g. --allow-cidr 169.254.169.254/32); a wide rule such as
// 0.0.0.0/0 never opens them, and neither does a name that resolves there.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"
#include "net/ip_address.hpp"

namespace nucleus::net {

struct PortList {
    bool any = false;  // ":*"
    std::vector<uint16_t> ports;  // sorted, unique; {80, 443} by default
    bool contains(uint16_t port) const;
    std::string to_string() const;
    bool operator==(const PortList&) const = default;
};

struct DomainRule {
    std::string name;  // lower case, no trailing dot; without "*." when wildcard
    bool wildcard = false;  // matches names strictly below `name`
    PortList ports;
    std::string to_string() const;
    bool operator==(const DomainRule&) const = default;
};

struct CidrRule {
    Cidr cidr;
    PortList ports;
    std::string to_string() const;
    bool operator==(const CidrRule&) const = default;
};

// A decision and, when denied, why (for events and errors).
struct Verdict {
    bool allowed = false;
    std::string reason;  // "allowed by --allow-domain *.example.com:443", "no rule allows ..."
};

class EgressPolicy {
public:
    std::vector<DomainRule> domains;
    std::vector<CidrRule> cidrs;

    bool empty() const { return domains.empty() && cidrs.empty(); }
    // Whether some rule names `name` (any port): the DNS stub answers it.
    bool allows_name(std::string_view name) const;
    // A connection to `name` (a synthetic address the stub gave out) on `port`.
    Verdict check_name(std::string_view name, uint16_t port) const;
    // A connection to a literal address (no name): CIDR rules only.
    Verdict check_address(const IpAddress& address, uint16_t port) const;
    // Whether a name's upstream address may be dialled: anything but the
    // special ranges, which need a CIDR rule inside them (DNS rebinding onto
    // metadata or loopback).
    Verdict check_resolved(const IpAddress& address) const;

    // The rules as flag arguments, for events and audit records.
    std::vector<std::string> describe() const;
};

// Names are compared in lower case without a trailing dot; nullopt when
// `name` is not a valid DNS name (labels 1-63 bytes of [A-Za-z0-9_-], at
// most 253 bytes in all).
std::optional<std::string> canonical_name(std::string_view name);

Result<DomainRule> parse_domain_rule(std::string_view text);
Result<CidrRule> parse_cidr_rule(std::string_view text);
// One rule per line, NAME or CIDR (with optional ports) told apart by
// whether it parses as an address; `origin` names the file in errors.
Status parse_rule_file(std::string_view text, const std::string& origin, EgressPolicy& into);

// The special range that `address` lies in, if any ("link-local", ...).
std::optional<std::string_view> special_range(const IpAddress& address);

}  // namespace nucleus::net
