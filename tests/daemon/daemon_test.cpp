// The daemon's API contract, recovery, hostile clients and churn, against a
// real `nucleus daemon` process and real sandboxes (the default agent root:
// the host's /bin/sh and /bin/sleep).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>

#include "daemon_harness.hpp"
#include "io/http_client.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/idmap.hpp"

using nlohmann::json;
namespace http = nucleus::io::http;

namespace {

using namespace nucleus::tests;

// The host uid that container uid 0 of process `pid` maps to (the base of
// its leased range), from the first line of /proc/PID/uid_map; 0 if unread.
uint64_t host_id_base(const json& pid) {
    if (!pid.is_number_integer()) return 0;
    std::ifstream map("/proc/" + std::to_string(pid.get<int>()) + "/uid_map");
    uint64_t inside = 1, outside = 0, count = 0;
    map >> inside >> outside >> count;
    return inside == 0 ? outside : 0;
}

// Whether someone holds the lease on the id range starting at `base`
// (flock on <state>/ids/slot-N, as the runtime takes it).
bool id_range_leased(uint64_t base) {
    if (base < nucleus::isolation::id_range_base) return false;
    uint64_t slot = (base - nucleus::isolation::id_range_base) / nucleus::isolation::id_range_size;
    const char* state = std::getenv("NUCLEUS_STATE_DIR");
    std::string dir = std::string(state && *state ? state : "/run/nucleus") + "/ids";
    int fd = ::open((dir + "/slot-" + std::to_string(slot)).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool held = ::flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return held;
}

}  // namespace

TEST_CASE("daemon: create, wait, logs and inspect a sandbox", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;
    auto created = d.create(sh("echo out; echo err >&2; exit 7"));
    std::string id = created["id"];
    CHECK(id.size() == 32);
    CHECK((created["state"] == "running" || created["state"] == "exited"));
    auto waited = d.wait(id.substr(0, 8));  // an id prefix names it too
    CHECK(waited["exit_code"] == 7);
    CHECK(waited["reason"] == "exit");
    CHECK(d.call("GET", "/v1/sandboxes/" + id + "/logs").body == "out\n");
    CHECK(d.call("GET", "/v1/sandboxes/" + id + "/logs?stream=stderr").body == "err\n");
    auto inspect = json::parse(d.call("GET", "/v1/sandboxes/" + id).body);
    CHECK(inspect["state"] == "exited");
    CHECK(inspect["exit_code"] == 7);
    CHECK(inspect["start"]["namespaces"].size() >= 6);
    CHECK(inspect["final"]["cleanup"]["ok"] == true);
    // Listed only with all=true once exited.
    auto running = json::parse(d.call("GET", "/v1/sandboxes").body);
    CHECK(running["sandboxes"].empty());
    auto all = json::parse(d.call("GET", "/v1/sandboxes?all=true").body);
    CHECK(all["sandboxes"].size() == 1);
    CHECK(d.call("DELETE", "/v1/sandboxes/" + id).status == 204);
    CHECK(d.call("GET", "/v1/sandboxes/" + id).status == 404);
}

TEST_CASE("daemon: a sandbox flooding its output stays within the log cap and the daemon's memory", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;  // --log-max-bytes 65536
    auto rss_kib = [&] {
        auto status = nucleus::io::read_file("/proc/" + std::to_string(d.pid()) + "/status", 1 << 16);
        REQUIRE(status.ok());
        auto at = status->find("VmRSS:");
        return std::strtol(status->c_str() + at + 6, nullptr, 10);
    };
    auto warm = d.create(sh("echo warm"));
    d.wait(warm["id"]);
    long before = rss_kib();
    // 32 MiB through the pipe: 512 times the cap.
    auto flood = d.create(sh("head -c 33554432 /dev/zero"));
    std::string id = flood["id"];
    CHECK(d.wait(id)["exit_code"] == 0);
    std::string log = d.state() + "/logs/" + id + ".stdout.log";
    struct stat current {
    }, previous{};
    REQUIRE(::stat(log.c_str(), &current) == 0);
    REQUIRE(::stat((log + ".1").c_str(), &previous) == 0);
    CHECK(current.st_size <= 65536);
    CHECK(previous.st_size <= 65536);
    CHECK(rss_kib() - before < 4096);
    CHECK(d.call("GET", "/v1/sandboxes/" + id + "/logs").body.size() == static_cast<size_t>(current.st_size));
}

TEST_CASE("daemon: a sandbox that writes nothing gets no log files, and reads as empty", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;
    std::string logs = d.state() + "/logs";
    int before = count_dir(logs);
    auto quiet = d.create(sh("exit 0"));
    std::string id = quiet["id"];
    CHECK(d.wait(id)["exit_code"] == 0);
    CHECK(count_dir(logs) == before);
    auto r = d.call("GET", "/v1/sandboxes/" + id + "/logs");
    CHECK(r.status == 200);
    CHECK(r.body.empty());
    // Output on one stream creates that stream's file only.
    auto loud = d.create(sh("echo hello"));
    CHECK(d.wait(loud["id"])["exit_code"] == 0);
    CHECK(count_dir(logs) == before + 1);
    CHECK(d.call("GET", "/v1/sandboxes/" + loud["id"].get<std::string>() + "/logs").body == "hello\n");
    CHECK(d.call("DELETE", "/v1/sandboxes/" + loud["id"].get<std::string>()).status == 204);
    CHECK(count_dir(logs) == before);
}

TEST_CASE("daemon: a signal's exit, tail, created-then-started, names", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;
    // (PID 1 itself would not receive a signal it has no handler for.)
    auto killed = d.create(sh("/bin/sh -c 'kill -USR1 $$'"));
    CHECK(d.wait(killed["id"])["exit_code"] == 128 + SIGUSR1);

    auto lines = d.create(sh("for i in 1 2 3 4 5; do echo line$i; done"));
    d.wait(lines["id"]);
    CHECK(d.call("GET", "/v1/sandboxes/" + lines["id"].get<std::string>() + "/logs?tail=2").body == "line4\nline5\n");

    json doc = sh("exit 0");
    doc["name"] = "later";
    auto r = d.call("POST", "/v1/sandboxes?start=false", doc.dump());
    REQUIRE(r.status == 201);
    CHECK(json::parse(r.body)["state"] == "created");
    CHECK(d.call("POST", "/v1/sandboxes/later/wait").status == 409);
    CHECK(d.call("POST", "/v1/sandboxes/later/start").status == 200);
    CHECK(d.wait("later")["exit_code"] == 0);
    CHECK(d.call("POST", "/v1/sandboxes/later/start").status == 409);
    // Names are unique.
    CHECK(d.call("POST", "/v1/sandboxes", doc.dump()).status == 409);
}

TEST_CASE("daemon: stop, kill and remove a running sandbox", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;
    auto before = nucleus::tests::host_state();
    auto a = d.create({{"command", {"/bin/sleep", "60"}}});
    std::string id = a["id"];
    REQUIRE(a["state"] == "running");
    auto stats = d.call("GET", "/v1/sandboxes/" + id + "/stats");
    CHECK(stats.status == 200);
    CHECK(json::parse(stats.body).contains("cpu_usage_usec"));
    // Without force, a running sandbox is not removed.
    CHECK(d.call("DELETE", "/v1/sandboxes/" + id).status == 409);
    // sleep as PID 1 has no SIGTERM handler: the kernel would drop it, so the
    // daemon ends the sandbox, as `nucleus run` does.
    auto t0 = std::chrono::steady_clock::now();
    auto stopped = d.call("POST", "/v1/sandboxes/" + id + "/stop?timeout=20");
    REQUIRE(stopped.status == 200);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(15));
    CHECK(json::parse(stopped.body)["state"] == "exited");
    CHECK(json::parse(stopped.body)["exit_code"] == 128 + SIGTERM);

    auto b = d.create(sh("trap 'exit 42' USR2; while :; do sleep 0.05; done"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the trap be set
    CHECK(d.call("POST", "/v1/sandboxes/" + b["id"].get<std::string>() + "/kill?signal=USR2").status == 204);
    CHECK(d.wait(b["id"])["exit_code"] == 42);
    CHECK(d.call("POST", "/v1/sandboxes/" + b["id"].get<std::string>() + "/kill").status == 409);
    CHECK(d.call("POST", "/v1/sandboxes/" + id + "/kill?signal=NOPE").status == 400);

    auto c = d.create({{"command", {"/bin/sleep", "60"}}});
    CHECK(d.call("DELETE", "/v1/sandboxes/" + c["id"].get<std::string>() + "?force=true").status == 204);
    for (auto& x : {a, b}) d.call("DELETE", "/v1/sandboxes/" + x["id"].get<std::string>());
    CHECK(settled_host_state(before) == before.describe());
}

TEST_CASE("daemon: exec runs inside the sandbox under its limits", "[daemon][exec]") {
    if (skip_without_root()) return;
    TestDaemon d;
    auto a = d.create({{"command", {"/bin/sleep", "60"}}});
    std::string id = a["id"];
    auto exec = [&](const json& body) { return d.call("POST", "/v1/sandboxes/" + id + "/exec", body.dump()); };
    auto r = exec({{"command",
                    {"/bin/sh", "-c",
                     "cat /proc/1/cmdline | tr '\\0' ' '; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
                     "echo oops >&2; exit 5"}}});
    REQUIRE(r.status == 200);
    auto out = json::parse(r.body);
    CHECK(out["exit_code"] == 5);
    std::string text = out["stdout"];
    CHECK(text.find("/bin/sleep 60") != std::string::npos);  // PID 1 is the sandbox's
    CHECK(text.find("CapEff:\t0000000000000000") != std::string::npos);
    CHECK(text.find("NoNewPrivs:\t1") != std::string::npos);
    CHECK(text.find("Seccomp:\t2") != std::string::npos);
    CHECK(out["stderr"] == "oops\n");
    // Same namespaces as PID 1, seen from the host (inside, Landlock keeps
    // the exec'd process from reading PID 1's links: another domain).
    auto ns =
        exec({{"command",
               {"/bin/sh", "-c", "for n in mnt pid user net uts ipc cgroup; do readlink /proc/self/ns/$n; done"}}});
    std::string expected;
    for (const char* n : {"mnt", "pid", "user", "net", "uts", "ipc", "cgroup"})
        expected +=
            std::filesystem::read_symlink("/proc/" + std::to_string(a["pid"].get<int>()) + "/ns/" + n).string() + "\n";
    CHECK(json::parse(ns.body)["stdout"] == expected);
    CHECK(exec({{"command", {"/no/such/program"}}}).status == 404);
    CHECK(exec({{"command", {"/bin/true"}}, {"tty", true}}).status == 400);
    CHECK(exec({{"command", json::array()}}).status == 400);
    d.call("DELETE", "/v1/sandboxes/" + id + "?force=true");
    auto gone = d.create(sh("exit 0"));
    d.wait(gone["id"]);
    CHECK(d.call("POST", "/v1/sandboxes/" + gone["id"].get<std::string>() + "/exec", R"({"command":["/bin/true"]})")
              .status == 409);
}

TEST_CASE("daemon: hostile requests get 4xx and change nothing", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;
    auto count = [&] { return json::parse(d.call("GET", "/v1/sandboxes?all=true").body)["sandboxes"].size(); };
    auto bad = [&](std::string_view body, int status, std::string_view says) {
        auto r = d.call("POST", "/v1/sandboxes", body);
        INFO(r.body);
        CHECK(r.status == status);
        CHECK(json::parse(r.body)["error"].get<std::string>().find(says) != std::string::npos);
    };
    bad("{not json", 400, "JSON object");
    bad("[1,2]", 400, "JSON object");
    bad(R"({"command":["/bin/true"],"bogus":1})", 400, "bogus");
    bad(R"({"command":[]})", 400, "command");
    bad(R"({"command":["/bin/true"],"memory":"lots"})", 400, "memory");
    bad(R"({"command":["/bin/true"],"events_fd":3})", 400, "events_fd");
    bad(R"({"command":["/bin/true"],"network":"bridge0"})", 400, "network");
    CHECK(count() == 0);
    CHECK(d.call("GET", "/v1/nope").status == 404);
    CHECK(d.call("PUT", "/v1/sandboxes").status == 405);
    CHECK(d.call("GET", "/v1/sandboxes/0000").status == 404);
    // Malformed HTTP and an oversized body, on raw sockets.
    CHECK(raw_exchange(d.socket(), "THIS IS NOT HTTP\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
    std::string huge = "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{";
    CHECK(raw_exchange(d.socket(), huge).rfind("HTTP/1.1 413", 0) == 0);
    CHECK(count() == 0);
    CHECK(d.call("GET", "/v1/health").status == 200);
}

TEST_CASE("daemon: log follow and the event stream, and clients that go away", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;
    int fds_before = quiet_fds([&] { return d.open_fds(); });
    auto a = d.create(sh("for i in 1 2 3; do echo tick$i; sleep 0.1; done"));
    std::string followed;
    auto r =
        http::request_stream(d.socket(), "GET", "/v1/sandboxes/" + a["id"].get<std::string>() + "/logs?follow=true",
                             [&](std::string_view data) {
                                 followed.append(data);
                                 return true;
                             });
    REQUIRE(r.ok());
    CHECK(followed == "tick1\ntick2\ntick3\n");

    // A follower that hangs up early costs nothing.
    auto b = d.create({{"command", {"/bin/sleep", "30"}}});
    std::string bid = b["id"];
    {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", d.socket().c_str());
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        std::string follow = "GET /v1/sandboxes/" + bid + "/logs?follow=true HTTP/1.1\r\nHost: x\r\n\r\n";
        REQUIRE(::write(fd, follow.data(), follow.size()) == static_cast<ssize_t>(follow.size()));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ::close(fd);
    }
    std::thread waiter([&] {
        (void)http::request_stream(d.socket(), "GET", "/v1/events", [&](std::string_view data) {
            return std::string(data).find("\"event\":\"exit\"") == std::string::npos;
        });
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(d.call("DELETE", "/v1/sandboxes/" + bid + "?force=true").status == 204);
    waiter.join();
    d.call("DELETE", "/v1/sandboxes/" + a["id"].get<std::string>());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(settled([&] { return std::max(d.open_fds(), fds_before); }, fds_before) == fds_before);
}

TEST_CASE("daemon: SIGTERM ends the daemon promptly with requests in flight; its sandboxes live on", "[daemon]") {
    if (skip_without_root()) return;
    TestDaemon d;
    auto a = d.create({{"command", {"/bin/sleep", "30"}}});
    std::string id = a["id"];
    std::thread follower([&] {
        (void)http::request_stream(d.socket(), "GET", "/v1/sandboxes/" + id + "/logs?follow=true",
                                   [](std::string_view) { return true; });
    });
    std::thread waiter([&] { (void)http::request(d.socket(), "POST", "/v1/sandboxes/" + id + "/wait"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    int status = d.stop();
    follower.join();
    waiter.join();
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    CHECK(::kill(a["pid"].get<pid_t>(), 0) == 0);  // the sandbox outlives its daemon
    d.start();  // re-adopted, then removed
    CHECK(json::parse(d.call("GET", "/v1/sandboxes/" + id).body)["adopted"] == true);
    CHECK(d.call("DELETE", "/v1/sandboxes/" + id + "?force=true").status == 204);
    // Its PID 1 was orphaned with the first daemon: the host's init reaps it.
    std::string proc = "/proc/" + std::to_string(a["pid"].get<pid_t>());
    CHECK(settled([&] { return ::access(proc.c_str(), F_OK) == 0; }, false) == false);
}

TEST_CASE("daemon: a SIGKILLed daemon re-adopts 100 live sandboxes and reports those that ended",
          "[daemon][recovery]") {
    if (skip_without_root()) return;
    auto before = nucleus::tests::host_state();
    {
        TestDaemon d;
        std::vector<std::string> long_ids, short_ids;
        for (int i = 0; i < 100; ++i) long_ids.push_back(d.create({{"command", {"/bin/sleep", "120"}}})["id"]);
        for (int i = 0; i < 3; ++i) short_ids.push_back(d.create({{"command", {"/bin/sleep", "0.3"}}})["id"]);
        d.kill9();
        std::this_thread::sleep_for(std::chrono::milliseconds(800));  // the short ones end unwatched
        d.start();
        auto list = json::parse(d.call("GET", "/v1/sandboxes?all=true").body)["sandboxes"];
        int adopted_running = 0, ended = 0;
        for (auto& s : list) {
            if (s["state"] == "running" && s["adopted"] == true) ++adopted_running;
            if (s["state"] == "exited" && s["reason"] == "exited_unobserved") ++ended;
        }
        CHECK(adopted_running == 100);
        CHECK(ended == 3);
        // The old daemon's leases on their uid/gid ranges died with it; the
        // new one holds them again, so a sandbox created now gets another.
        std::set<uint64_t> adopted_bases;
        int leased = 0;
        for (auto& s : list) {
            if (s["state"] != "running") continue;
            uint64_t base = host_id_base(s["pid"]);
            adopted_bases.insert(base);
            if (id_range_leased(base)) ++leased;
        }
        CHECK(adopted_bases.size() == 100);
        CHECK(leased == 100);
        auto fresh = d.create({{"command", {"/bin/sleep", "120"}}});
        auto fresh_base =
            host_id_base(json::parse(d.call("GET", "/v1/sandboxes/" + fresh["id"].get<std::string>()).body)["pid"]);
        CHECK(fresh_base != 0);
        CHECK(adopted_bases.count(fresh_base) == 0);
        CHECK(d.call("DELETE", "/v1/sandboxes/" + fresh["id"].get<std::string>() + "?force=true").status == 204);
        // Adopted sandboxes can still be stopped, and leave nothing behind.
        for (auto& id : long_ids) CHECK(d.call("DELETE", "/v1/sandboxes/" + id + "?force=true").status == 204);
        for (auto& id : short_ids) CHECK(d.call("DELETE", "/v1/sandboxes/" + id).status == 204);
        CHECK(count_dir(d.state() + "/sandboxes") == 0);
        CHECK(count_dir(d.state() + "/daemon") == 0);
    }
    CHECK(settled_host_state(before) == before.describe());
}

TEST_CASE("daemon: records survive a SIGKILL: appended exits are read back, a torn last line is ignored",
          "[daemon][recovery]") {
    if (skip_without_root()) return;
    auto before = nucleus::tests::host_state();
    {
        TestDaemon d;
        std::string done = d.create({{"command", {"/bin/sh", "-c", "exit 7"}}})["id"];
        CHECK(d.wait(done)["exit_code"] == 7);
        std::string live = d.create({{"command", {"/bin/sleep", "120"}}})["id"];
        const std::string done_record = d.state() + "/daemon/" + done + ".json";
        const std::string live_record = d.state() + "/daemon/" + live + ".json";
        d.kill9();
        // The exited sandbox's file holds its start and its exit, one record
        // per line; the live one's only its start. A daemon killed in the
        // middle of appending leaves a line without its newline.
        auto lines = [](const std::string& path) {
            std::ifstream in(path);
            std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            return all;
        };
        auto done_text = lines(done_record);
        CHECK(std::count(done_text.begin(), done_text.end(), '\n') == 2);
        std::ofstream(live_record, std::ios::app) << R"({"id":")" << live << R"(","state":"exited","exit_c)";
        d.start();
        auto done_now = json::parse(d.call("GET", "/v1/sandboxes/" + done).body);
        CHECK(done_now["state"] == "exited");
        CHECK(done_now["exit_code"] == 7);
        CHECK(done_now["reason"] == "exit");
        auto live_now = json::parse(d.call("GET", "/v1/sandboxes/" + live).body);
        CHECK(live_now["state"] == "running");
        CHECK(live_now["adopted"] == true);
        // Re-adoption rewrote the torn file: every line whole and valid.
        auto live_text = lines(live_record);
        REQUIRE_FALSE(live_text.empty());
        CHECK(live_text.back() == '\n');
        std::istringstream in(live_text);
        for (std::string line; std::getline(in, line);) CHECK(json::parse(line, nullptr, false).is_object());
        CHECK(d.call("DELETE", "/v1/sandboxes/" + live + "?force=true").status == 204);
        CHECK(d.call("DELETE", "/v1/sandboxes/" + done).status == 204);
        CHECK(count_dir(d.state() + "/daemon") == 0);
    }
    CHECK(settled_host_state(before) == before.describe());
}

TEST_CASE("daemon: a re-adopted sandbox's output goes on into its log", "[daemon][recovery]") {
    if (skip_without_root()) return;
    auto before = nucleus::tests::host_state();
    {
        TestDaemon d;
        // PID 1 writes (a shell builtin): a namespace's init survives the
        // EPIPE of the moment no daemon reads.
        std::string id = d.create({{"command",
                                    {"/bin/sh", "-c",
                                     "i=0; while [ $i -lt 150 ]; do i=$((i+1)); echo tick $i; "
                                     "echo err $i >&2; sleep 0.01; done; echo done"}}})["id"];
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        d.kill9();
        d.start();
        auto waited = d.wait(id);
        CHECK(waited["reason"] == "exited_unobserved");
        auto out = d.call("GET", "/v1/sandboxes/" + id + "/logs?stream=stdout");
        REQUIRE(out.status == 200);
        CHECK(out.body.find("tick 150\n") != std::string::npos);
        CHECK(out.body.find("done\n") != std::string::npos);
        auto err = d.call("GET", "/v1/sandboxes/" + id + "/logs?stream=stderr");
        REQUIRE(err.status == 200);
        CHECK(err.body.find("err 150\n") != std::string::npos);
        CHECK(d.call("DELETE", "/v1/sandboxes/" + id).status == 204);
    }
    CHECK(settled_host_state(before) == before.describe());
}

TEST_CASE("daemon: churn leaks no fd, cgroup, mount or process", "[daemon][churn]") {
    if (skip_without_root()) return;
    auto before = nucleus::tests::host_state();
    TestDaemon d;
    // Warm-up: the first sandbox opens what the daemon keeps (ring, pool).
    d.wait(d.create({{"command", {"/bin/true"}}})["id"]);
    auto warm = json::parse(d.call("GET", "/v1/sandboxes?all=true").body);
    for (auto& s : warm["sandboxes"]) d.call("DELETE", "/v1/sandboxes/" + s["id"].get<std::string>());
    int fds = quiet_fds([&] { return d.open_fds(); });
    const int rounds = std::getenv("NUCLEUS_CHURN") ? std::atoi(std::getenv("NUCLEUS_CHURN")) : 300;
    for (int i = 0; i < rounds; ++i) {
        auto s = d.create({{"command", {"/bin/true"}}});
        std::string id = s["id"];
        REQUIRE(d.wait(id)["exit_code"] == 0);
        REQUIRE(d.call("DELETE", "/v1/sandboxes/" + id).status == 204);
    }
    CHECK(settled([&] { return std::max(d.open_fds(), fds); }, fds) == fds);
    auto metrics = d.call("GET", "/v1/metrics").body;
    CHECK(metrics.find("nucleus_sandbox_exits_total{reason=\"exit\"} " + std::to_string(rounds + 1)) !=
          std::string::npos);
    d.stop();
    CHECK(settled_host_state(before) == before.describe());
}
