// Egress limits of bridged sandboxes, on the real kernel: the deny rules,
// the per-sandbox allow sets the DNS stub will fill, and their removal,
// driven through the library (net/bridge.hpp, net/nat.hpp) as `nucleus
// run` and the daemon drive it. Sandboxes here are `unshare -n` processes
// attached to the bridge of a test's own host namespace (the test process
// enters it), with the world of tests/integration/bridge_world.hpp.
// Production mode, which limits bridged sandboxes, cannot run on a host
// without the memory controller, so these tests do not go through it.
#include <fcntl.h>
#include <signal.h>
#include <linux/netlink.h>
#include <sched.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <memory>

#include "bridge_world.hpp"
#include "harness.hpp"
#include "net/bridge.hpp"
#include "net/nat.hpp"

using namespace nit;
namespace net = nucleus::net;

namespace {

// This thread in the network namespace /run/netns/<name> for a scope.
class InNamespace {
public:
    explicit InNamespace(const std::string& name) {
        own_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(own_ >= 0);
        REQUIRE(fd >= 0);
        REQUIRE(::setns(fd, CLONE_NEWNET) == 0);
        ::close(fd);
    }
    ~InNamespace() {
        if (::setns(own_, CLONE_NEWNET) != 0) std::abort();
        ::close(own_);
    }

private:
    int own_ = -1;
};

// A process in a network namespace of its own, attached to the bridge.
struct Attached {
    Process process;
    std::unique_ptr<net::SandboxBridge> bridge;
    pid_t pid() const { return process.pid(); }
    std::string address() const { return net::to_string(bridge->address().v4); }
    std::string address6() const { return net::to_string(*bridge->address().v6); }
};

net::BridgeConfig default_config() {
    auto c = net::make_bridge_config("", "", "");
    REQUIRE(c);
    return *c;
}

Attached attach(const BridgeWorld& w, net::EgressLimit limit, const std::string& id) {
    Attached a{Process::start({"unshare", "-n", "sh", "-c", "echo ready; exec sleep 120"}), nullptr};
    REQUIRE(a.process.wait_for_output("ready", 10s));
    auto bridge = net::SandboxBridge::prepare(default_config(), w.state().string(), {id, {}, std::move(limit)});
    INFO((bridge ? "" : bridge.error().describe()));
    REQUIRE(bridge);
    auto attached = (*bridge)->attach(a.pid());
    INFO((attached ? "" : attached.error().describe()));
    REQUIRE(attached);
    a.bridge = std::move(*bridge);
    return a;
}

net::EgressLimit limited(std::vector<net::EgressCidr> rules = {}) {
    net::EgressLimit l;
    l.limited = true;
    l.rules = std::move(rules);
    return l;
}

Process listen_in(pid_t pid, const BridgeWorld& w, int port, const std::string& tag) {
    Process p = Process::start({"nsenter", "-t", std::to_string(pid), "-n", "python3",
                                (w.srv() / "peer_server.py").string(), "::", std::to_string(port), tag});
    REQUIRE(p.wait_for_output("listening", 10s));
    return p;
}

bool reaches(pid_t pid, const std::string& address, int port) {
    return !BridgeWorld::connect_pid(pid, address, port).out.empty();
}

}  // namespace

TEST_CASE("bridge egress: a limited sandbox without allow rules reaches nothing, DNS included", "[bridge][egress]") {
    require_bridge_tools();
    BridgeWorld w;
    InNamespace host(w.host());
    auto open = attach(w, {}, "unlimited");
    auto open2 = attach(w, {}, "unlimited-2");
    auto closed = attach(w, limited(), "limited");
    auto host_service = Process::start({"python3", (w.srv() / "peer_server.py").string(), "::", "9000", "host"});
    REQUIRE(host_service.wait_for_output("listening", 10s));
    auto neighbour = listen_in(open.pid(), w, 7000, "neighbour");
    // Unlimited sandboxes reach each other on the bridge (whether or not
    // br_netfilter hands bridged frames to the inet hooks).
    CHECK(reaches(open2.pid(), open.address(), 7000));

    // The unlimited sandbox on the same bridge reaches all of it: the
    // paths exist, so every refusal below is the limit's.
    CHECK(reaches(open.pid(), "203.0.113.10", 8080));
    CHECK(reaches(open.pid(), "2001:db8:2::10", 8080));
    CHECK(BridgeWorld::udp_echo_pid(open.pid(), "203.0.113.10", 53).out == "ping\n");
    CHECK(reaches(open.pid(), "10.201.0.1", 9000));

    CHECK_FALSE(reaches(closed.pid(), "203.0.113.10", 8080));
    CHECK_FALSE(reaches(closed.pid(), "2001:db8:2::10", 8080));
    CHECK(BridgeWorld::udp_echo_pid(closed.pid(), "203.0.113.10", 53).out.empty());
    CHECK(BridgeWorld::udp_echo_pid(closed.pid(), "2001:db8:2::10", 53).out.empty());
    CHECK_FALSE(reaches(closed.pid(), "10.201.0.1", 9000));  // the host is a destination too
    // Other sandboxes on the bridge are reached without routing (frames
    // between bridge ports): the bridge's own table stops those.
    CHECK_FALSE(reaches(closed.pid(), open.address(), 7000));
    CHECK_FALSE(reaches(closed.pid(), open.address6(), 7000));
    auto chain = w.nft({"list", "chain", "inet", "nucleus-nucleus0", net::egress_chain_name(closed.bridge->address())});
    CHECK_FALSE(contains(chain.out, "counter packets 0 bytes 0 drop"));
}

TEST_CASE("bridge egress: allowed destinations open exactly address, protocol and port, for a time",
          "[bridge][egress]") {
    require_bridge_tools();
    BridgeWorld w;
    InNamespace host(w.host());
    net::EgressCidr rule;
    rule.v4 = net::parse_ipv4_subnet("203.0.113.0/24").value();
    rule.ports = {8081};
    auto s = attach(w, limited({rule}), "allowing");
    // The CIDR rule: 8081 on the world's network, nothing else.
    CHECK(reaches(s.pid(), "203.0.113.10", 8081));
    CHECK_FALSE(reaches(s.pid(), "203.0.113.10", 8080));

    auto nl = net::KernelNetlink::open(NETLINK_NETFILTER);
    REQUIRE(nl);
    net::NetlinkSession nf(*nl);
    net::AllowedDestination d;
    d.v4 = net::parse_ipv4("203.0.113.10");
    d.port = 8080;
    REQUIRE(net::allow_destination(nf, s.bridge->config(), s.bridge->address(), d, std::chrono::seconds(120)));
    net::AllowedDestination d6;
    d6.v6 = net::parse_ipv6("2001:db8:2::10");
    d6.port = 8080;
    REQUIRE(net::allow_destination(nf, s.bridge->config(), s.bridge->address(), d6, std::chrono::seconds(5)));
    CHECK(reaches(s.pid(), "203.0.113.10", 8080));
    CHECK(reaches(s.pid(), "2001:db8:2::10", 8080));
    // Only TCP to that port: DNS to the same address stays closed.
    CHECK(BridgeWorld::udp_echo_pid(s.pid(), "203.0.113.10", 53).out.empty());
    // The elements carry their (clamped) timeouts.
    auto set4 = w.nft(
        {"list", "set", "inet", "nucleus-nucleus0", "a4-" + net::egress_chain_name(s.bridge->address()).substr(3)});
    INFO(set4.out);
    CHECK(contains(set4.out, "203.0.113.10 . tcp . 8080 timeout 2m"));
    auto set6 = w.nft(
        {"list", "set", "inet", "nucleus-nucleus0", "a6-" + net::egress_chain_name(s.bridge->address()).substr(3)});
    INFO(set6.out);
    CHECK(contains(set6.out, "2001:db8:2::10 . tcp . 8080 timeout 30s"));
}

TEST_CASE("bridge egress: a limited sandbox cannot leave by another source address", "[bridge][egress]") {
    require_bridge_tools();
    BridgeWorld w;
    InNamespace host(w.host());
    auto open = attach(w, {}, "unlimited");
    auto closed = attach(w, limited(), "limited");
    auto host_service = Process::start({"python3", (w.srv() / "peer_server.py").string(), "::", "9000", "host"});
    REQUIRE(host_service.wait_for_output("listening", 10s));
    // With CAP_NET_ADMIN in its namespace (here: nsenter as root), the
    // sandbox takes another sandbox's address as its own source...
    const std::string pid = std::to_string(closed.pid());
    REQUIRE(run({"nsenter", "-t", pid, "-n", "ip", "addr", "add", open.address() + "/32", "dev", "eth0"}).exit_code ==
            0);
    auto spoofed = run({"nsenter", "-t", pid, "-n", "python3", "-c",
                        "import socket,sys\ns=socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))\n"
                        "s.connect(('203.0.113.10', 8080)); print(s.recv(100).decode())",
                        open.address()},
                       with_deadline(10s));
    CHECK(spoofed.out.empty());
    // ...or talks to the host by its link-local IPv6 address.
    auto link_local = run({"ip", "-n", w.host(), "-6", "-o", "addr", "show", "dev", "nucleus0", "scope", "link"});
    auto at = link_local.out.find("fe80::");
    REQUIRE(at != std::string::npos);
    std::string fe80 = link_local.out.substr(at, link_local.out.find('/', at) - at);
    CHECK_FALSE(reaches(closed.pid(), fe80 + "%eth0", 9000));
    CHECK(reaches(open.pid(), fe80 + "%eth0", 9000));
}

TEST_CASE("bridge egress: releasing a limited sandbox removes its chain, sets and map entries", "[bridge][egress]") {
    require_bridge_tools();
    BridgeWorld w;
    InNamespace host(w.host());
    auto s = attach(w, limited(), "released");
    const std::string chain = net::egress_chain_name(s.bridge->address());
    CHECK(contains(w.nft({"list", "table", "inet", "nucleus-nucleus0"}).out, chain));
    REQUIRE(s.bridge->release());
    auto table = w.nft({"list", "table", "inet", "nucleus-nucleus0"}).out;
    CHECK_FALSE(contains(table, chain));
    CHECK_FALSE(contains(table, "a4-"));
    CHECK_FALSE(contains(table, "jump"));
    CHECK(w.leases() == 0);
    // The veth goes with the namespace, when its last process does.
    s.process.signal(SIGKILL);
    (void)s.process.wait();
    CHECK(w.veths_gone());
}
