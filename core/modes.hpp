// Service modes and every rule they impose, in one place.
//
//   agent         (default) runs on what the host offers; a missing layer is
//                 a warning on stderr and a `degraded` entry in the events.
//   strict-agent  fail-closed: every layer must apply, or nothing starts.
//   production    strict-agent, plus what a long-running service must
//                 declare: a memory limit, an immutable rootfs, no writable
//                 executable workspace, capabilities only from its policy.
//
// Rules are checked against the spec and a cheap probe of the host, before
// any kernel object for the sandbox exists; a refusal is exit 125 with the
// rule's own message.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"

namespace nucleus::core {

struct SandboxSpec;

enum class ServiceMode { Agent, StrictAgent, Production };

std::optional<ServiceMode> parse_service_mode(std::string_view text);
std::string_view to_string(ServiceMode mode);
bool is_fail_closed(ServiceMode mode);

// What the host offers, read without creating anything.
struct HostFacts {
    std::optional<std::string> cgroup2_mount;
    std::vector<std::string> controllers;  // offered where the sandbox's cgroup will be made
    int landlock_abi = 0;
    std::string lockdown;  // "none", "integrity", "confidentiality", or "" if unknown
};

HostFacts probe_host(const SandboxSpec& spec);

struct ModeRule {
    const char* name;  // stable id, used in tests and audit records
    bool agent, strict_agent, production;  // where the rule applies
    // Returns the refusal message when the rule is violated.
    std::optional<std::string> (*check)(const SandboxSpec&, const HostFacts&);
};

const std::vector<ModeRule>& mode_rules();

// The first violated rule for the spec's mode, as an error naming it.
Status check_mode_rules(const SandboxSpec& spec, const HostFacts& host);

}  // namespace nucleus::core
