#include "bridge_world.hpp"

#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <atomic>

namespace nit {

namespace {

// TCP: answers every connection with "<tag> <peer address>" (IPv4-mapped
// addresses shown as IPv4) and closes it; "::" takes IPv4 too. UDP (tag
// "udp"): echoes, bound to one address so that the answer leaves from the
// address that was asked (the world has several).
constexpr const char* kPeerServer = R"(import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[3] == "udp" else socket.SOCK_STREAM
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if sys.argv[1] == "::":
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
if kind == socket.SOCK_DGRAM:
    while True:
        data, a = s.recvfrom(2048)
        s.sendto(data, a)
s.listen(64)
while True:
    c, a = s.accept()
    peer = a[0][7:] if a[0].startswith("::ffff:") else a[0]
    c.sendall(("%s %s\n" % (sys.argv[3], peer)).encode())
    c.close()
)";

// Sends one datagram and prints the answer, or nothing after 2 s.
constexpr const char* kUdpClient = R"(import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    print(s.recvfrom(2048)[0].decode())
except OSError:
    pass
)";

std::atomic<int> counter{0};

}  // namespace

void require_bridge_tools() {
    require_root();
    for (const char* tool : {"/usr/sbin/ip", "/usr/bin/nsenter", "/usr/bin/python3", "/usr/sbin/nft", "/bin/bash"})
        if (::access(tool, X_OK) != 0) SKIP("needs " << tool);
}

BridgeWorld::BridgeWorld() {
    std::string tag = std::to_string(::getpid()) + "-" + std::to_string(counter++);
    host_ = "nbr-h-" + tag;
    world_ = "nbr-w-" + tag;
    write_file(srv_ / "peer_server.py", kPeerServer);
    write_file(srv_ / "udp_client.py", kUdpClient);
    must({"ip", "netns", "add", host_});
    must({"ip", "netns", "add", world_});
    must({"ip", "-n", host_, "link", "set", "lo", "up"});
    must({"ip", "-n", world_, "link", "set", "lo", "up"});
    must({"ip", "-n", host_, "link", "add", "uplink", "type", "veth", "peer", "name", "w0", "netns", world_});
    must({"ip", "-n", host_, "addr", "add", "198.51.100.1/24", "dev", "uplink"});
    must({"ip", "-n", host_, "addr", "add", "2001:db8:1::1/64", "dev", "uplink", "nodad"});
    must({"ip", "-n", world_, "addr", "add", "198.51.100.2/24", "dev", "w0"});
    must({"ip", "-n", world_, "addr", "add", "2001:db8:1::2/64", "dev", "w0", "nodad"});
    must({"ip", "-n", world_, "addr", "add", "203.0.113.10/32", "dev", "lo"});
    must({"ip", "-n", world_, "addr", "add", "2001:db8:2::10/128", "dev", "lo"});
    must({"ip", "-n", host_, "link", "set", "uplink", "up"});
    must({"ip", "-n", world_, "link", "set", "w0", "up"});
    must({"ip", "-n", host_, "route", "add", "default", "via", "198.51.100.2"});
    must({"ip", "-n", host_, "-6", "route", "add", "default", "via", "2001:db8:1::2"});
    const std::string script = (srv_ / "peer_server.py").string();
    const std::vector<std::vector<std::string>> servers = {{"::", "8080", "world"},
                                                           {"::", "8081", "world8081"},
                                                           {"203.0.113.10", "53", "udp"},
                                                           {"2001:db8:2::10", "53", "udp"}};
    for (const auto& args : servers) {
        servers_.push_back(Process::start(in(world_, {"python3", script, args[0], args[1], args[2]})));
        REQUIRE(servers_.back().wait_for_output("listening", 10s));
    }
}

BridgeWorld::~BridgeWorld() {
    servers_.clear();
    (void)run({"ip", "netns", "del", host_});
    (void)run({"ip", "netns", "del", world_});
}

std::vector<std::string> BridgeWorld::in(const std::string& ns, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"nsenter", "--net=/run/netns/" + ns});
    return argv;
}

SpawnOptions BridgeWorld::options(std::chrono::milliseconds deadline) const {
    SpawnOptions o;
    o.env = {"NUCLEUS_STATE_DIR=" + state_.str()};
    o.deadline = deadline;
    return o;
}

Result BridgeWorld::nucleus(const std::vector<std::string>& flags, const std::vector<std::string>& command) const {
    return run(in(host_, nucleus_argv(flags, command)), options());
}

Process BridgeWorld::start(const std::vector<std::string>& flags, const std::vector<std::string>& command) const {
    return Process::start(in(host_, nucleus_argv(flags, command)), options(60s));
}

Result BridgeWorld::gc() const { return run(in(host_, {kNucleus, "gc"}), options()); }

Result BridgeWorld::nft(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"nft"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(in(host_, argv));
}

Result BridgeWorld::connect(const std::string& ns, const std::string& address, int port) {
    return run(in(ns, {"timeout", "3", "bash", "-c", "cat </dev/tcp/" + address + "/" + std::to_string(port)}),
               with_deadline(10s));
}

Result BridgeWorld::connect_pid(pid_t pid, const std::string& address, int port) {
    return run({"nsenter", "-t", std::to_string(pid), "-n", "timeout", "3", "bash", "-c",
                "cat </dev/tcp/" + address + "/" + std::to_string(port)},
               with_deadline(10s));
}

Result BridgeWorld::udp_echo_pid(pid_t pid, const std::string& address, int port) {
    // The client script is read from the test's srv directory: nsenter -n
    // keeps our mount namespace.
    return run({"nsenter", "-t", std::to_string(pid), "-n", "python3", "-c", kUdpClient, address, std::to_string(port)},
               with_deadline(10s));
}

std::vector<std::string> BridgeWorld::veths() const {
    auto r = run({"ip", "-n", host_, "-o", "link", "show"});
    std::vector<std::string> out;
    for (const auto& line : split_lines(r.out)) {
        auto at = line.find(": nv");
        if (at != std::string::npos) out.push_back(line.substr(at + 2, line.find_first_of("@:", at + 2) - at - 2));
    }
    return out;
}

bool BridgeWorld::veths_gone() const {
    for (int i = 0; i < 100; ++i) {
        if (veths().empty()) return true;
        ::usleep(50000);
    }
    return false;
}

int BridgeWorld::leases() const {
    std::error_code ec;
    int n = 0;
    for (auto it = fs::directory_iterator(state() / "net" / "nucleus0", ec); !ec && it != fs::directory_iterator();
         ++it)
        ++n;
    return n;
}

void BridgeWorld::must(const std::vector<std::string>& argv) {
    auto r = run(argv, with_deadline(10s));
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
}

}  // namespace nit
