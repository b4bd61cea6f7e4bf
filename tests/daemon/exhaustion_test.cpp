// Socket users trying to exhaust the daemon: its memory (clients that ask
// for a large log and never read), its long-lived places (event streams),
// its connections (idle sockets). Each attack runs against a real daemon;
// the daemon's RSS and the answer to an ordinary request must stay bounded.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "daemon_harness.hpp"

using namespace nucleus::tests;
using nlohmann::json;
namespace io = nucleus::io;

namespace {

// Connected, with a small receive buffer (set before connect, so the
// kernel's receive window stays small): a client that reads nothing.
io::unique_fd stalled_client(const std::string& socket) {
    io::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    int small = 4096;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
}

// An ordinary request answers, and soon.
void check_ordinary_request(const TestDaemon& d) {
    auto start = std::chrono::steady_clock::now();
    auto r = timed_call(d.socket(), "GET", "/v1/sandboxes?all=true", {}, 5);
    CHECK(r.status == 200);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

}  // namespace

TEST_CASE("daemon: 100 clients that ask for an 8 MB log and never read leave its memory bounded",
          "[daemon][exhaustion]") {
    if (skip_without_root()) return;
    TestDaemon d({"--log-max-bytes", "16777216"});
    std::string id = d.create(sh("head -c 8388608 /dev/zero"))["id"];
    CHECK(d.wait(id)["exit_code"] == 0);
    REQUIRE(d.call("GET", "/v1/sandboxes/" + id + "/logs").body.size() == 8388608);
    long before = d.rss_kib();
    std::vector<io::unique_fd> clients;
    std::string request = "GET /v1/sandboxes/" + id + "/logs HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 100; ++i) {
        clients.push_back(stalled_client(d.socket()));
        REQUIRE(::write(clients.back().get(), request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    long grown = d.rss_kib() - before;
    INFO("RSS grew by " << grown << " KiB");
    CHECK(grown < 32 * 1024);  // it was ~770 MiB: every client held the whole log
    check_ordinary_request(d);
}

TEST_CASE("daemon: 520 event streams do not starve ordinary requests", "[daemon][exhaustion]") {
    if (skip_without_root()) return;
    TestDaemon d;
    std::vector<io::unique_fd> streams;
    int ok = 0, refused = 0;
    for (int i = 0; i < 520; ++i) {
        auto fd = raw_connect(d.socket(), 5);
        std::string request = "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
        if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) {
            ++refused;
            continue;
        }
        char head[64] = {};
        ssize_t n = ::read(fd.get(), head, sizeof head - 1);
        if (n > 0 && std::strncmp(head, "HTTP/1.1 200", 12) == 0) ++ok;
        else ++refused;
        streams.push_back(std::move(fd));
    }
    CHECK(ok == 256);  // the daemon's budget for streams and waits
    CHECK(refused == 520 - 256);
    check_ordinary_request(d);
    // Creating and inspecting are ordinary requests; a wait that must park
    // needs a place, one for a sandbox that has exited does not.
    std::string id = d.create(sh("exit 3"))["id"];
    CHECK(settled([&] { return json::parse(d.call("GET", "/v1/sandboxes/" + id).body)["state"]; }, json("exited")) ==
          "exited");
    CHECK(d.wait(id)["exit_code"] == 3);
    std::string sleeper = d.create({{"command", {"/bin/sleep", "60"}}})["id"];
    CHECK(d.call("POST", "/v1/sandboxes/" + sleeper + "/wait?timeout=0.1").status == 503);
    streams.clear();  // their places come back
    CHECK(settled([&] { return d.call("POST", "/v1/sandboxes/" + sleeper + "/wait?timeout=0.1").status; }, 408) == 408);
    CHECK(d.call("DELETE", "/v1/sandboxes/" + sleeper + "?force=true").status == 204);
}

TEST_CASE("daemon: 2,000 idle connections do not lock out a request", "[daemon][exhaustion]") {
    if (skip_without_root()) return;
    TestDaemon d;
    int fds_before = d.open_fds();
    std::vector<io::unique_fd> idle;
    for (int i = 0; i < 2000; ++i) idle.push_back(raw_connect(d.socket(), 5));
    check_ordinary_request(d);
    // The oldest idle connections were closed to make room: the daemon
    // holds at most its connection limit.
    CHECK(settled([&] { return d.open_fds() <= fds_before + 512 + 8; }, true));
}
