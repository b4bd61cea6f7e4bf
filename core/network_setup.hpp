// A sandbox's network, beyond what the launch plan does for every mode:
// for `--network egress`, the child's netlink messages and listening
// sockets (prepare_network), the sockets taken back after the child's
// Ready (receive_network, inside the spawn's verify step, so a failure
// stops the sandbox before it execs), and the EgressService that serves
// them until the sandbox has exited (serve_network).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <asio/any_io_executor.hpp>

#include "core/events.hpp"
#include "io/unique_fd.hpp"
#include "isolation/launch_plan.hpp"
#include "net/egress_service.hpp"

namespace nucleus::core {

struct SandboxSpec;

struct NetworkSetup {
    io::unique_fd channel;  // ours: the child's sockets arrive here
    io::unique_fd channel_child;  // the child's end, closed once it has sent
    std::optional<net::EgressSockets> sockets;
};

Status prepare_network(const SandboxSpec& spec, NetworkSetup& setup, isolation::LaunchRequest& request);
Status receive_network(NetworkSetup& setup);

// Starts serving egress (null for other modes). Events carry the sandbox
// id; `resolver` may be shared (the daemon's), else the service makes and
// owns one over the host's resolv.conf.
std::shared_ptr<net::EgressService> serve_network(const SandboxSpec& spec, NetworkSetup& setup,
                                                  asio::any_io_executor executor,
                                                  std::shared_ptr<net::UpstreamResolver> resolver, EventLog* events,
                                                  const std::string& id);

}  // namespace nucleus::core
