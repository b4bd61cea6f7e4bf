// A test's own network: a "host" network namespace in which nucleus runs
// (nsenter --net), and a "world" namespace behind a veth with servers on
// TEST-NET addresses and no route back to the bridge's subnets.
//
//   sandbox --veth-- nucleus0 [host: 198.51.100.1, 2001:db8:1::1] --veth-- [world: 198.51.100.2, 2001:db8:1::2]
//                                                                  203.0.113.10, 2001:db8:2::10 on its lo:
//                                                                  TCP 8080 and 8081 answer "<tag> <peer>",
//                                                                  UDP 53 echoes
// Both namespaces, and everything nucleus made in them, go with the
// fixture (ip netns del).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace nit {

// Needs root and ip, nsenter, python3, nft, bash; SKIPs otherwise.
void require_bridge_tools();

class BridgeWorld {
public:
    BridgeWorld();
    ~BridgeWorld();
    BridgeWorld(const BridgeWorld&) = delete;
    BridgeWorld& operator=(const BridgeWorld&) = delete;

    const std::string& host() const { return host_; }
    const std::string& world() const { return world_; }
    fs::path state() const { return state_.path(); }
    fs::path srv() const { return srv_.path(); }  // holds peer_server.py (0755, for sandboxes: -v srv:/srv:ro)

    // argv run inside namespace `ns`.
    static std::vector<std::string> in(const std::string& ns, std::vector<std::string> argv);
    SpawnOptions options(std::chrono::milliseconds deadline = 30s) const;  // NUCLEUS_STATE_DIR=state()
    Result nucleus(const std::vector<std::string>& flags, const std::vector<std::string>& command) const;
    Process start(const std::vector<std::string>& flags, const std::vector<std::string>& command) const;
    Result gc() const;
    Result nft(const std::vector<std::string>& args) const;  // in the host namespace

    // One TCP connection from namespace `ns` (or `nsenter_args`): what the
    // server said, "" if it could not connect within 3 s.
    static Result connect(const std::string& ns, const std::string& address, int port);
    static Result connect_pid(pid_t pid, const std::string& address, int port);
    // One UDP datagram to address:port from the network namespace of
    // `pid`: the echo, "" if none came within 2 s.
    static Result udp_echo_pid(pid_t pid, const std::string& address, int port);

    std::vector<std::string> veths() const;  // host-side nv... links
    // Waits (up to 5 s) until no nv... link is left: the kernel removes a
    // sandbox's veth with its network namespace, asynchronously.
    bool veths_gone() const;
    int leases() const;  // lease files of bridge nucleus0

private:
    static void must(const std::vector<std::string>& argv);

    std::string host_, world_;
    TempDir state_{"bridge-state", 0711};
    TempDir srv_{"bridge-srv", 0755};
    std::vector<Process> servers_;
};

}  // namespace nit
