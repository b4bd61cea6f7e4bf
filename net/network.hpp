// Network modes and the files that describe a sandbox's network.
//
//   none (default): a new network namespace holding only `lo`, brought up by
//                   the child (isolation/child.cpp); no route out.
//   host:           the host's network namespace, shared. Only for trusted
//                   workloads; the fail-closed modes refuse it.
//   bridge:         a network namespace of its own behind a veth on a host
//                   bridge, with NAT and published ports (net/bridge.hpp); as
//                   a non-root user, connected by pasta (net/bridge_pasta.hpp).
//   egress:         `none`'s namespace, plus rules that send every TCP
//                   connection to a capture socket and DNS to a stub, both
//                   served by the supervisor under an EgressPolicy
//                   (net/egress_service.hpp). The default when allow rules
//                   are given.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nucleus::net {

enum class NetworkMode { None, Host, Egress, Bridge };

std::optional<NetworkMode> parse_network_mode(std::string_view text);
std::string_view to_string(NetworkMode mode);
// Whether the sandbox gets a network namespace of its own.
bool needs_network_namespace(NetworkMode mode);

// /etc/hosts for a sandbox: loopback names and its own hostname.
std::string hosts_file(const std::string& hostname);

// A valid hostname per RFC 1123 labels, at most 64 bytes (sethostname(2)).
bool is_valid_hostname(std::string_view name);

}  // namespace nucleus::net
