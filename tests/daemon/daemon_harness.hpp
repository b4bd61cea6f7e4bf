// A real `nucleus daemon` for the daemon tests: its own socket and state
// directory under /tmp, started, SIGKILLed and restarted on demand, stopped
// at the end; and the helpers the tests share.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>

#include "io/http_client.hpp"
#include "io/unique_fd.hpp"
#include "../supervision/host_state.hpp"

namespace nucleus::tests {

using nlohmann::json;

class TestDaemon {
public:
    // `extra` flags after the defaults (--log-max-bytes 65536 unless given).
    explicit TestDaemon(std::vector<std::string> extra = {});
    ~TestDaemon();
    TestDaemon(const TestDaemon&) = delete;
    TestDaemon& operator=(const TestDaemon&) = delete;

    void start();
    void kill9();
    // SIGTERM; the daemon must exit promptly even with requests in flight.
    // Returns the wait status (-1 when it had to be SIGKILLed).
    int stop();

    pid_t pid() const { return pid_; }
    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }
    std::string state() const { return dir_ + "/state"; }
    std::string log() const;

    io::http::Response call(std::string_view method, std::string_view target, std::string_view body = {}) const;
    json create(const json& doc, int expect = 201) const;
    json wait(const std::string& id) const;
    int open_fds() const;
    long rss_kib() const;

private:
    std::string dir_;
    std::string socket_;
    std::vector<std::string> extra_;
    pid_t pid_ = -1;
};

bool skip_without_root();
int count_dir(const std::string& path);
json sh(const std::string& script);

// Some effects land asynchronously: the daemon closes a finished
// connection on its next turn, and orphans of a killed daemon are reaped by
// the host's init whenever it gets to them. Retries for up to 10 s.
template <typename F, typename T>
T settled(F measure, const T& expected) {
    T now = measure();
    for (int i = 0; i < 200 && !(now == expected); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        now = measure();
    }
    return now;
}

// The daemon's fd count once connections from earlier requests are closed:
// the lowest of a few readings.
int quiet_fds(const std::function<int()>& measure);
std::string settled_host_state(const HostState& before);

// A connected unix socket with a receive timeout (5 s unless given).
io::unique_fd raw_connect(const std::string& socket, int timeout_s = 5);
// Raw bytes to the socket; the reply as text.
std::string raw_exchange(const std::string& socket, const std::string& bytes);
// Reads until EOF or the receive timeout.
std::string raw_read(int fd);

// One request on its own connection (Connection: close) that gives up
// after `timeout_s`: status 0 when no answer came in time, so that a
// daemon that hangs fails the test instead of hanging it.
struct TimedResponse {
    int status = 0;
    std::string body;
};
TimedResponse timed_call(const std::string& socket, std::string_view method, std::string_view target,
                         std::string_view body = {}, int timeout_s = 10);

// Runs the nucleus CLI with NUCLEUS_SOCKET set; its exit status and output.
struct CliResult {
    int status = -1;
    std::string out, err;
};
CliResult run_cli(const std::string& socket, const std::vector<std::string>& args);

}  // namespace nucleus::tests
