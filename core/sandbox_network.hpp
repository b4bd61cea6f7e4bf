// A sandbox's `--network bridge` through its lifecycle (core/lifecycle.hpp):
// as root a veth on the host bridge (net/bridge.hpp), otherwise pasta
// (net/bridge_pasta.hpp). Every step here is one hook in the lifecycle:
//
//   prepare_bridge   in prepare(), before the state record is written, so
//                     that the record names the leased address
//   attach_bridge    SpawnRequest::attach_bridge, after clone, before exec
//   stop_bridge      after supervision (pasta is killed and reaped)
//   release_bridge   in teardown()
//   readopt_bridge   daemon recovery, for a sandbox that is still running
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>

#include <asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "core/spec.hpp"
#include "io/process.hpp"
#include "net/bridge.hpp"
#include "net/bridge_pasta.hpp"

namespace nucleus::core {

struct SandboxNetwork {
    std::unique_ptr<net::SandboxBridge> bridge;  // root
    std::optional<net::PastaPlan> pasta_plan;  // non-root
    io::ProcessHandle pasta;
};

// The egress a bridged sandbox gets from its spec: unlimited in agent mode
// without rules; limited to its --allow-cidr rules when it has any; in
// production mode without rules, nothing at all, DNS included.
net::EgressLimit egress_limit(const SandboxSpec& spec);

// Nothing for other network modes. `record_extra` gets the leased address.
Result<std::optional<SandboxNetwork>> prepare_bridge(const SandboxSpec& spec, const std::string& sandbox_id,
                                                     const std::string& state_root, nlohmann::json& record_extra);

// Takes a plain pointer: the network outlives the spawn that awaits this.
asio::awaitable<Status> attach_bridge(SandboxNetwork* network, pid_t pid);
asio::awaitable<void> stop_bridge(SandboxNetwork* network);
// Adds "network_released" to the cleanup summary; false and a warning
// when something could not be removed (the next gc retries it).
bool release_bridge(SandboxNetwork& network, nlohmann::json& cleanup, std::string& warning);

// For the start event: bridge, addresses, published ports (null if none).
nlohmann::json bridge_summary(const SandboxNetwork& network);

// A daemon re-adopting a running sandbox leases its address again, from
// the "network" entry prepare_bridge put in its state record.
std::optional<SandboxNetwork> readopt_bridge(const SandboxSpec& spec, const std::string& sandbox_id,
                                             const std::string& state_root, const nlohmann::json& record,
                                             std::string& warning);

}  // namespace nucleus::core
