// `--network bridge` as root: the host bridge, one veth pair per sandbox,
// its addresses and routes over rtnetlink, its entries in the runtime's
// nftables table (net/nat.hpp), and the clean-up of all of it.
//
// One sandbox's network, in the order of its lifecycle:
//   prepare  (plain blocking code, before clone; the daemon's worker thread)
//            under <state>/net/<bridge>.lock: the bridge (created up with the
//            gateway addresses .1 and the forwarding sysctls) and the nftables
//            table, when missing; then an address lease (net/address_pool.hpp),
//            the published ports reserved by binding them on the host (a
//            host service on that port is a conflict, reported now, and none
//            can bind it later), and the sandbox's published-port and
//            egress-limit entries in the table.
//   attach   (after clone, before the child may exec; on the reactor: every
//            netlink request completes inside its syscall, net/netlink.hpp)
//            the veth pair with its peer created inside the sandbox's network
//            namespace; from a netlink socket opened in that namespace, the
//            peer's addresses and default routes.
//   release  (teardown) the table entries, the port reservations, then the
//            lease. The veth goes with the sandbox's network namespace (the
//            kernel removes it asynchronously, tens of ms after the sandbox's
//            last process; its name keeps the address from being leased
//            again until then).
//   sweep    (`nucleus gc`, every `nucleus run`, daemon recovery) what a
//            supervisor killed with SIGKILL left: table entries and lease
//            files of addresses whose lease is free and whose veth is gone.
//
// State on the host: <state>/net/<bridge>/<IPv4 address> (leases),
// <state>/net/<bridge>.lock, <state>/net/<bridge>.conf (the subnets, so a
// sweep knows them for any bridge used on this host).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "io/unique_fd.hpp"
#include "net/address_pool.hpp"
#include "net/bridge_config.hpp"
#include "net/nat.hpp"
#include "net/netlink.hpp"

namespace nucleus::net {

struct SandboxNetworkRequest {
    std::string sandbox_id;
    std::vector<PublishedPort> publish;
    EgressLimit egress;
};

// The bridge, made ready (created if missing, checked if present). Holds
// the bridge's lock while it works. Returns the bridge's ifindex.
Result<int> ensure_bridge(NetlinkSession& rt, NetlinkSession& nf, const BridgeConfig& config,
                          const std::string& state_root);

// A netlink socket inside the network namespace `netns_fd`: this thread
// enters it with setns(2) (CAP_SYS_ADMIN in its owning user namespace;
// root has that over every sandbox), creates the socket, which keeps that
// namespace for its life, and goes back to its own namespace at once.
Result<io::unique_fd> netlink_socket_in(int netns_fd, int bus);

// The veth pair and the sandbox side's configuration; `inner` talks to the
// sandbox's own namespace. Split out of SandboxBridge::attach for tests.
Status configure_sandbox_link(NetlinkSession& host, NetlinkSession& inner, const BridgeConfig& config, int bridge_index,
                              const SandboxAddress& address, int netns_fd);

class SandboxBridge {
public:
    static Result<std::unique_ptr<SandboxBridge>> prepare(const BridgeConfig& config, const std::string& state_root,
                                                          SandboxNetworkRequest request);
    // The same address again, for a sandbox re-adopted after a daemon
    // restart: its veth and table entries are still there.
    static Result<std::unique_ptr<SandboxBridge>> readopt(const BridgeConfig& config, const std::string& state_root,
                                                          uint32_t index, SandboxNetworkRequest request);
    ~SandboxBridge();

    // After clone: `pid` is the sandbox's first process (our child, not yet
    // reaped, so its pid cannot be reused).
    Status attach(pid_t pid);
    // Idempotent; every step is tried, the first failure reported.
    Status release();

    const SandboxAddress& address() const { return lease_.address(); }
    const BridgeConfig& config() const { return config_; }
    const std::string& host_veth() const { return veth_; }
    const std::vector<PublishedPort>& published() const { return request_.publish; }

private:
    SandboxBridge() = default;
    Status install_entries(NetlinkSession& nf);

    BridgeConfig config_;
    SandboxNetworkRequest request_;
    AddressLease lease_;
    std::string veth_;
    int bridge_index_ = 0;
    std::vector<io::unique_fd> reservations_;
    bool published_ = false;
    bool limited_ = false;
    bool released_ = false;
};

struct BridgeSweepReport {
    int addresses = 0;  // addresses whose leftovers were removed
    std::vector<std::string> errors;
};
// Clean-up after supervisors that died, for every bridge this host used.
BridgeSweepReport sweep_bridge_leftovers(const std::string& state_root);

}  // namespace nucleus::net
