// --network bridge end to end, through the nucleus binary, in namespaces
// the test creates (tests/integration/bridge_world.hpp): the bridge, its
// nftables table, the forwarding sysctls and the veths live in the test's
// own host namespace and never touch the machine's network.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <set>

#include "bridge_world.hpp"
#include "harness.hpp"

using namespace nit;

namespace {

std::string address_of(const nlohmann::json& start) {
    std::string a = start["bridge"]["address"];
    return a.substr(0, a.find('/'));
}

}  // namespace

TEST_CASE("bridge: a sandbox reaches the world through MASQUERADE, over IPv4 and IPv6", "[bridge]") {
    require_bridge_tools();
    BridgeWorld w;
    // The world has no route to the bridge's subnets: an answer means the
    // sandbox's address was rewritten to the host's.
    auto r4 = w.nucleus({"--network", "bridge"}, {"bash", "-c", "cat </dev/tcp/203.0.113.10/8080"});
    INFO(r4.describe());
    REQUIRE(r4.exit_code == 0);
    CHECK(r4.out == "world 198.51.100.1\n");
    auto r6 = w.nucleus({"--network", "bridge"}, {"bash", "-c", "cat </dev/tcp/2001:db8:2::10/8080"});
    INFO(r6.describe());
    REQUIRE(r6.exit_code == 0);
    CHECK(r6.out == "world 2001:db8:1::1\n");
    // Nothing of either sandbox is left: no veth, no lease.
    CHECK(w.veths_gone());
    CHECK(w.leases() == 0);
}

TEST_CASE("bridge: --allow-cidr limits a bridged sandbox's egress to its rules, on the host side", "[bridge]") {
    require_bridge_tools();
    BridgeWorld w;
    // Only the IPv4 world server's port is allowed: the same server over
    // IPv6 is not, and nothing else is.
    auto allowed = w.nucleus({"--network", "bridge", "--allow-cidr", "203.0.113.10/32:8080"},
                             {"bash", "-c", "cat </dev/tcp/203.0.113.10/8080"});
    INFO(allowed.describe());
    CHECK(allowed.exit_code == 0);
    CHECK(allowed.out == "world 198.51.100.1\n");
    auto denied = w.nucleus({"--network", "bridge", "--allow-cidr", "203.0.113.10/32:8080"},
                            {"bash", "-c", "timeout 3 bash -c 'cat </dev/tcp/2001:db8:2::10/8080'"});
    INFO(denied.describe());
    CHECK(denied.exit_code != 0);
    CHECK(denied.out.empty());
    auto names = w.nucleus({"--network", "bridge", "--allow-domain", "example.com"}, {"true"});
    CHECK(names.exit_code == 125);
    CHECK(contains(names.err, "--network bridge takes --allow-cidr rules only"));
    CHECK(w.veths_gone());
    CHECK(w.leases() == 0);
}

TEST_CASE("bridge: a published port is reachable from the host's loopback and not from elsewhere", "[bridge]") {
    require_bridge_tools();
    BridgeWorld w;
    fs::path events = w.srv() / "events.jsonl";
    auto server = w.start({"--network", "bridge", "-p", "8080:8000", "-p", "0.0.0.0:8081:8000", "--events-jsonl",
                           events.string(), "-v", w.srv().string() + ":/srv:ro"},
                          {"python3", "/srv/peer_server.py", "::", "8000", "sandbox"});
    REQUIRE(server.wait_for_output("listening", 20s));
    auto start = wait_for_start_event(events, server);
    REQUIRE(start.is_object());
    const std::string sandbox = address_of(start);

    // 127.0.0.1:8080 from the host: DNAT in the output hook, the loopback
    // source masqueraded to the bridge's address.
    auto loopback = BridgeWorld::connect(w.host(), "127.0.0.1", 8080);
    INFO(loopback.describe());
    CHECK(loopback.out == "sandbox 10.201.0.1\n");
    // Not on the host's other addresses, not from the world.
    CHECK(BridgeWorld::connect(w.host(), "198.51.100.1", 8080).out.empty());
    CHECK(BridgeWorld::connect(w.world(), "198.51.100.1", 8080).out.empty());
    // Published on 0.0.0.0 it is reachable from the world, which shows the
    // negative checks above are not a broken path.
    auto from_world = BridgeWorld::connect(w.world(), "198.51.100.1", 8081);
    INFO(from_world.describe());
    CHECK(from_world.out == "sandbox 198.51.100.2\n");
    // The sandbox's own address, routed to from the world, is forwarded
    // only for what a published port let in.
    REQUIRE(run({"ip", "-n", w.world(), "route", "add", "10.201.0.0/16", "via", "198.51.100.1"}).exit_code == 0);
    CHECK(BridgeWorld::connect(w.world(), sandbox, 8000).out.empty());
    auto counters = w.nft({"list", "chain", "inet", "nucleus-nucleus0", "forward"});
    CHECK_FALSE(contains(counters.out, "counter packets 0 bytes 0 drop"));

    server.signal(SIGTERM);
    auto done = server.wait();
    INFO(done.describe());
    CHECK(done.exit_code == 128 + SIGTERM);
    // Its teardown removed its entries, veth and lease at once.
    CHECK_FALSE(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4"}).out, "elements"));
    CHECK_FALSE(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4_any"}).out, "elements"));
    CHECK(w.veths_gone());
    CHECK(w.leases() == 0);
}

TEST_CASE("bridge: concurrent sandboxes get distinct addresses", "[bridge]") {
    require_bridge_tools();
    BridgeWorld w;
    std::vector<Process> sandboxes;
    for (int i = 0; i < 4; ++i)
        sandboxes.push_back(
            w.start({"--network", "bridge"},
                    {"bash", "-c", "ip -4 -o addr show eth0; cat </dev/tcp/203.0.113.10/8080; sleep 2"}));
    std::set<std::string> addresses;
    for (auto& p : sandboxes) {
        auto r = p.wait();
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        CHECK(contains(r.out, "world 198.51.100.1"));
        auto at = r.out.find("inet ");
        REQUIRE(at != std::string::npos);
        addresses.insert(r.out.substr(at + 5, r.out.find('/', at) - at - 5));
    }
    CHECK(addresses.size() == 4);
    for (const auto& a : addresses) CHECK(a.rfind("10.201.", 0) == 0);
    CHECK(w.leases() == 0);
}

TEST_CASE("bridge: what a supervisor killed with SIGKILL left is removed by gc", "[bridge]") {
    require_bridge_tools();
    BridgeWorld w;
    fs::path events = w.srv() / "events.jsonl";
    auto p = w.start({"--network", "bridge", "-p", "8080:8000", "--events-jsonl", events.string()}, {"sleep", "60"});
    auto start = wait_for_start_event(events, p);
    REQUIRE(start.is_object());
    const std::string veth = start["bridge"]["veth"];
    CHECK(w.veths() == std::vector<std::string>{veth});
    CHECK(w.leases() == 1);

    p.signal(SIGKILL);
    (void)p.wait();
    // The sandbox dies with its supervisor (PR_SET_PDEATHSIG), and its veth
    // with its network namespace, which the kernel tears down shortly after.
    CHECK(w.veths_gone());
    // Its published port and lease are what gc is for.
    CHECK(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4"}).out, address_of(start)));
    CHECK(w.leases() == 1);
    auto gc = w.gc();
    INFO(gc.describe());
    CHECK(gc.exit_code == 0);
    CHECK_FALSE(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4"}).out, "elements"));
    CHECK(w.leases() == 0);
    CHECK(fs::is_empty(w.state() / "sandboxes"));
    // Its address is free for the next sandbox.
    auto next = w.nucleus({"--network", "bridge", "-p", "8080:8000"}, {"true"});
    CHECK(next.exit_code == 0);
}

TEST_CASE("bridge: a host port in use, or published twice, is refused before the sandbox starts", "[bridge]") {
    require_bridge_tools();
    BridgeWorld w;
    fs::path events = w.srv() / "events.jsonl";
    auto first =
        w.start({"--network", "bridge", "-p", "0.0.0.0:8080:8000", "--events-jsonl", events.string()}, {"sleep", "30"});
    REQUIRE(wait_for_start_event(events, first).is_object());
    auto second = w.nucleus({"--network", "bridge", "-p", "127.0.0.1:8080:8000"}, {"true"});
    INFO(second.describe());
    CHECK(second.exit_code == 125);
    CHECK(contains(second.err, "8080"));
    CHECK(contains(second.err, "in use"));
    first.signal(SIGTERM);
    (void)first.wait();
    CHECK(w.leases() == 0);
    CHECK(w.veths_gone());
}

// ---- Non-root: pasta ---------------------------------------------------------

namespace {

// `nucleus run` as uid 65534 inside the host namespace. pasta opens
// /dev/net/tun, which a Debian host's udev makes 0666; where it is 0600
// (this project's machines run no udev) the run gets a 0666 node of its
// own, bound over /dev/net/tun in a mount namespace the test creates.
struct Unprivileged {
    TempDir dir{"bridge-nonroot", 0777};
    fs::path state = dir / "state";

    std::vector<std::string> argv(const BridgeWorld& w, const std::vector<std::string>& flags,
                                  const std::vector<std::string>& command, const std::string& path) const {
        std::string script = "set -e; mkdir -p " + (dir / "tun").string() + "; mount -t tmpfs -o mode=0755 tun " +
                             (dir / "tun").string() + "; mknod -m 0666 " + (dir / "tun" / "tun").string() +
                             " c 10 200; mount --bind " + (dir / "tun" / "tun").string() + " /dev/net/tun; exec \"$@\"";
        std::vector<std::string> inner{"/usr/bin/setpriv",
                                       "--reuid",
                                       "65534",
                                       "--regid",
                                       "65534",
                                       "--clear-groups",
                                       "/usr/bin/env",
                                       "NUCLEUS_STATE_DIR=" + state.string(),
                                       "PATH=" + path};
        auto nucleus = nucleus_argv(flags, command);
        inner.insert(inner.end(), nucleus.begin(), nucleus.end());
        std::vector<std::string> out{"/usr/bin/unshare", "-m", "--propagation", "private",
                                     "/bin/sh",          "-c", script,          "sh"};
        out.insert(out.end(), inner.begin(), inner.end());
        return BridgeWorld::in(w.host(), out);
    }
};

void require_pasta() {
    if (::access("/usr/bin/setpriv", X_OK) != 0) SKIP("needs setpriv(1) (util-linux)");
    if (::access("/usr/bin/pasta", X_OK) != 0) SKIP("needs pasta (apt-get install passt)");
    if (::access("/dev/net/tun", F_OK) != 0) SKIP("needs /dev/net/tun (the tun module)");
}

constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";

}  // namespace

TEST_CASE("bridge as a non-root user: pasta connects the sandbox and its published port", "[bridge][nonroot]") {
    require_bridge_tools();
    require_pasta();
    BridgeWorld w;
    Unprivileged u;
    auto out = run(u.argv(w, {"--network", "bridge"}, {"bash", "-c", "cat </dev/tcp/203.0.113.10/8080"}, kDefaultPath),
                   with_deadline(30s));
    INFO(out.describe());
    REQUIRE(out.exit_code == 0);
    // pasta makes the connection from the host's namespace, as the host.
    CHECK(out.out == "world 198.51.100.1\n");

    fs::path events = u.dir / "events.jsonl";
    auto server = Process::start(u.argv(w,
                                        {"--network", "bridge", "-p", "8080:8000", "--events-jsonl", events.string(),
                                         "-v", w.srv().string() + ":/srv:ro"},
                                        {"python3", "/srv/peer_server.py", "::", "8000", "sandbox"}, kDefaultPath),
                                 with_deadline(60s));
    bool listening = server.wait_for_output("listening", 20s);
    INFO(server.out() << server.err());
    REQUIRE(listening);
    auto start = wait_for_start_event(events, server);
    REQUIRE(start.is_object());
    CHECK(start["bridge"]["mode"] == "pasta");
    auto loopback = BridgeWorld::connect(w.host(), "127.0.0.1", 8080);
    INFO(loopback.describe());
    CHECK(loopback.out.rfind("sandbox ", 0) == 0);
    CHECK(BridgeWorld::connect(w.world(), "198.51.100.1", 8080).out.empty());  // 127.0.0.1 only

    // Killed with its supervisor: pasta goes too (PR_SET_PDEATHSIG).
    const std::string marker = "pasta --config-net --foreground";
    CHECK(pids_with_cmdline(marker).size() == 1);
    server.signal(SIGKILL);
    (void)server.wait();
    for (int i = 0; i < 100 && !pids_with_cmdline(marker).empty(); ++i) ::usleep(50000);
    CHECK(pids_with_cmdline(marker).empty());
    CHECK(BridgeWorld::connect(w.host(), "127.0.0.1", 8080).out.empty());
}

TEST_CASE("bridge as a non-root user without pasta: refused, saying what to install", "[bridge][nonroot]") {
    require_bridge_tools();
    if (::access("/usr/bin/setpriv", X_OK) != 0) SKIP("needs setpriv(1) (util-linux)");
    BridgeWorld w;
    Unprivileged u;
    // pasta hidden from PATH (nucleus itself is named by its absolute path).
    auto r = run(u.argv(w, {"--network", "bridge"}, {"/bin/true"}, "/nonexistent"), with_deadline(30s));
    INFO(r.describe());
    CHECK(r.exit_code == 125);
    CHECK(contains(r.err, "needs pasta"));
    CHECK(contains(r.err, "apt-get install passt"));
    std::error_code ec;
    CHECK((!fs::exists(u.state / "sandboxes") || fs::is_empty(u.state / "sandboxes")));
}

// ---- The daemon --------------------------------------------------------------

namespace {

// `nucleus daemon` in the host namespace, driven with curl.
class BridgeDaemon {
public:
    explicit BridgeDaemon(const BridgeWorld& w) : w_(w) { start(); }
    void start() {
        process_.emplace(Process::start(
            BridgeWorld::in(w_.host(), {kNucleus, "daemon", "--socket", socket_.string(), "--state-dir", state_.str()}),
            w_.options(120s)));
        for (int i = 0; i < 200 && !contains(call("GET", "/v1/health").out, "\"ok\""); ++i) ::usleep(25000);
    }
    void kill() {
        process_->signal(SIGKILL);
        (void)process_->wait();
        process_.reset();
    }
    Result call(const std::string& method, const std::string& path, const std::string& body = "") const {
        std::vector<std::string> argv{"curl", "-s", "--unix-socket", socket_.string(), "-X", method};
        if (!body.empty()) argv.insert(argv.end(), {"-d", body});
        argv.push_back("http://nucleus" + path);
        return run(argv, with_deadline(20s));
    }
    nlohmann::json get(const std::string& id) const {
        return nlohmann::json::parse(call("GET", "/v1/sandboxes/" + id).out, nullptr, false);
    }

private:
    const BridgeWorld& w_;
    TempDir state_{"bridge-daemon", 0700};
    fs::path socket_ = state_ / "nucleus.sock";
    std::optional<Process> process_;
};

}  // namespace

TEST_CASE("bridge through the daemon: a sandbox survives a daemon SIGKILL with its address, then leaves nothing",
          "[bridge]") {
    require_bridge_tools();
    if (::access("/usr/bin/curl", X_OK) != 0) SKIP("needs curl");
    BridgeWorld w;
    BridgeDaemon d(w);
    auto created =
        d.call("POST", "/v1/sandboxes",
               R"({"command":["python3","/srv/peer_server.py","::","8000","svc"],"name":"svc","network":"bridge",)"
               R"("publish":["8080:8000"],"volume":[")" +
                   w.srv().string() + R"(:/srv:ro"]})");
    INFO(created.describe());
    REQUIRE(contains(created.out, "\"running\""));
    for (int i = 0; i < 100 && BridgeWorld::connect(w.host(), "127.0.0.1", 8080).out.empty(); ++i) ::usleep(50000);
    CHECK(BridgeWorld::connect(w.host(), "127.0.0.1", 8080).out.rfind("svc ", 0) == 0);
    const std::string address = address_of(d.get("svc")["start"]);

    d.kill();
    // The sandbox serves on; a gc meanwhile takes nothing from it: its
    // veth still exists.
    CHECK(BridgeWorld::connect(w.host(), "127.0.0.1", 8080).out.rfind("svc ", 0) == 0);
    CHECK(w.gc().exit_code == 0);
    CHECK(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4"}).out, address));

    d.start();
    auto adopted = d.get("svc");
    CHECK(adopted["adopted"] == true);
    // Re-adopted, it holds its address again: a new sandbox gets another.
    auto other = w.nucleus({"--network", "bridge"}, {"bash", "-c", "ip -4 -o addr show eth0"});
    CHECK_FALSE(contains(other.out, address + "/"));

    d.call("POST", "/v1/sandboxes/svc/stop?timeout=2");
    CHECK(d.get("svc")["state"] == "exited");
    CHECK_FALSE(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4"}).out, "elements"));
    CHECK(w.veths_gone());
    CHECK(w.leases() == 0);
}

TEST_CASE("bridge through the daemon: a sandbox that ended while no daemon ran is cleaned up on restart", "[bridge]") {
    require_bridge_tools();
    if (::access("/usr/bin/curl", X_OK) != 0) SKIP("needs curl");
    BridgeWorld w;
    BridgeDaemon d(w);
    auto created = d.call("POST", "/v1/sandboxes",
                          R"({"command":["sleep","600"],"name":"gone","network":"bridge","publish":["8080:8000"]})");
    REQUIRE(contains(created.out, "\"running\""));
    pid_t pid = d.get("gone")["pid"].get<pid_t>();
    d.kill();
    ::kill(pid, SIGKILL);
    for (int i = 0; i < 200 && !w.veths().empty(); ++i) ::usleep(50000);
    CHECK(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4"}).out, "elements"));
    d.start();
    CHECK(d.get("gone")["reason"] == "exited_unobserved");
    CHECK_FALSE(contains(w.nft({"list", "map", "inet", "nucleus-nucleus0", "publish4"}).out, "elements"));
    CHECK(w.leases() == 0);
}
