// The network keys of a spec document: `allow_domain`, `allow_cidr` and
// `allow_from_file` (flags --allow-domain, --allow-cidr,
// --allow-from-file), which make an EgressPolicy, and how they settle the
// network mode: with any allow rule and no `network` key the sandbox gets
// `--network egress`; `none` or `host` with allow rules is refused (the
// rules would be silently meaningless).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "io/error.hpp"

namespace nucleus::core {

struct SandboxSpec;

// Applied after the `network` key (spec_document.cpp).
Status apply_network_rules(SandboxSpec& spec, const nlohmann::json& document);

}  // namespace nucleus::core
