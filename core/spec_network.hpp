// The spec keys of bridge networking, applied by spec_from_document:
//
//   publish (-p, --publish)  [IP:]HOST:CONTAINER[/tcp|udp], repeatable; needs
//                            network = "bridge"; without IP, 127.0.0.1
//
// The bridge's name and subnets are runtime-wide, not per sandbox
// (net/bridge_config.hpp).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "core/spec.hpp"

namespace nucleus::core {

Status apply_network_keys(SandboxSpec& spec, const nlohmann::json& doc);

}  // namespace nucleus::core
