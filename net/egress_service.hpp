// One egress sandbox's network service on the reactor: its DNS stub and
// its capture socket, both listening inside the sandbox's network
// namespace and served from the supervisor's side. One reactor serves any
// number of them; an idle one costs four pending io_uring operations.
//
// The sockets are made in the sandbox's namespace by its first process
// (isolation/child_net.hpp; the list is egress_listen_sockets()) and come
// back over a socketpair (receive_egress_sockets), or, for a sandbox a
// restarted daemon re-adopts, are made again from outside
// (create_egress_sockets_in, through setns(2) on the namespace).
//
// Every decision is an event ({"event": "egress", ...}), at most
// event_burst at once and event_rate per second after that; what the
// limit drops is counted and reported with the next event and in stats.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include "io/unique_fd.hpp"
#include "isolation/child_net.hpp"
#include "net/egress_policy.hpp"
#include "net/upstream_resolver.hpp"

namespace nucleus::net {

struct EgressSockets {
    io::unique_fd dns4, dns6;  // UDP 127.0.0.1:53, [::1]:53
    io::unique_fd capture4, capture6;  // TCP listeners on egress_capture_port
};

// The listening sockets the child makes, in the order they arrive.
std::vector<isolation::ListenSocket> egress_listen_sockets();
// After the child's Ready: the one SCM_RIGHTS message on `channel`.
Result<EgressSockets> receive_egress_sockets(int channel);
// Re-creates the sockets inside the network namespace `netns_fd` (needs
// CAP_SYS_ADMIN over it: the daemon, as root). Switches the calling
// thread's namespace and back; blocking only for those few syscalls.
Result<EgressSockets> create_egress_sockets_in(int netns_fd);

struct EgressStats {
    uint64_t dns_answered = 0;  // allowed names (A/AAAA and empty answers)
    uint64_t dns_refused = 0;  // NXDOMAIN for names no rule allows, malformed queries
    uint64_t connections_allowed = 0;
    uint64_t connections_denied = 0;
    uint64_t connections_open = 0;
    uint64_t bytes_out = 0;  // sandbox -> world, relayed
    uint64_t bytes_in = 0;  // world -> sandbox
    uint64_t events_suppressed = 0;  // decisions the rate limit kept out of the event log
    nlohmann::json to_json() const;
};

using EgressEventSink = std::function<void(nlohmann::json)>;

class EgressService {
public:
    static constexpr double event_rate = 20;  // per second, after the burst
    static constexpr double event_burst = 100;

    struct Options {
        EgressPolicy policy;
        std::shared_ptr<UpstreamResolver> resolver;
        bool owns_resolver = true;  // stop() cancels its pending queries
        EgressEventSink on_event;  // may be empty
    };

    // Starts serving; the returned handle stops it. Nothing it holds outlives
    // stop(): the sockets (which keep the sandbox's namespace alive) close.
    static std::shared_ptr<EgressService> start(asio::any_io_executor executor, EgressSockets sockets, Options options);
    virtual ~EgressService() = default;

    // Closes the listeners and every relayed connection (reset). Idempotent.
    virtual void stop() = 0;
    virtual EgressStats stats() const = 0;
};

}  // namespace nucleus::net
