#include "daemon_harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace nucleus::tests {

namespace http = io::http;

TestDaemon::TestDaemon(std::vector<std::string> extra) : extra_(std::move(extra)) {
    char tmpl[] = "/tmp/nucleus-daemon-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ + "/api.sock";
    start();
}

TestDaemon::~TestDaemon() {
    if (pid_ > 0) stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

std::string TestDaemon::log() const {
    std::ifstream in(dir_ + "/daemon.log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void TestDaemon::start() {
    std::vector<std::string> args = {NUCLEUS_BINARY, "daemon", "--socket", socket_, "--state-dir", dir_ + "/state"};
    if (std::find(extra_.begin(), extra_.end(), "--log-max-bytes") == extra_.end())
        args.insert(args.end(), {"--log-max-bytes", "65536"});
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string log_path = dir_ + "/daemon.log";
    pid_t parent = ::getpid();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
        // A test that dies must not leave its daemon running (nor holding
        // ctest's output pipe open).
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ::_exit(127);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
        auto r = http::request(socket_, "GET", "/v1/health");
        if (r && r->status == 200) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("the daemon did not answer on " << socket_ << "; its log:\n" << log());
}

void TestDaemon::kill9() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

int TestDaemon::stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (::waitpid(pid_, &status, WNOHANG) == 0) {  // still there after 5 s
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        status = -1;
    }
    pid_ = -1;
    return status;
}

http::Response TestDaemon::call(std::string_view method, std::string_view target, std::string_view body) const {
    auto r = http::request(socket_, method, target, body);
    REQUIRE(r.ok());
    return *r;
}

json TestDaemon::create(const json& doc, int expect) const {
    auto r = call("POST", "/v1/sandboxes", doc.dump());
    INFO(r.body);
    REQUIRE(r.status == expect);
    return json::parse(r.body);
}

json TestDaemon::wait(const std::string& id) const {
    auto r = call("POST", "/v1/sandboxes/" + id + "/wait?timeout=30");
    INFO(r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body);
}

int TestDaemon::open_fds() const { return count_dir("/proc/" + std::to_string(pid_) + "/fd"); }

long TestDaemon::rss_kib() const {
    auto status = io::read_file("/proc/" + std::to_string(pid_) + "/status", 1 << 16);
    REQUIRE(status.ok());
    auto at = status->find("VmRSS:");
    return std::strtol(status->c_str() + at + 6, nullptr, 10);
}

bool skip_without_root() {
    if (::geteuid() == 0) return false;
    SKIP("the daemon tests run as root (the daemon's default paths and cgroup parent)");
    return true;
}

int count_dir(const std::string& path) {
    int n = 0;
    if (DIR* d = ::opendir(path.c_str())) {
        while (auto* e = ::readdir(d))
            if (e->d_name[0] != '.') ++n;
        ::closedir(d);
    }
    return n;
}

json sh(const std::string& script) { return {{"command", {"/bin/sh", "-c", script}}}; }

int quiet_fds(const std::function<int()>& measure) {
    int low = measure();
    for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        low = std::min(low, measure());
    }
    return low;
}

std::string settled_host_state(const HostState& before) {
    return settled([] { return host_state().describe(); }, before.describe());
}

io::unique_fd raw_connect(const std::string& socket, int timeout_s) {
    io::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval timeout{timeout_s, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

std::string raw_read(int fd) {
    std::string reply;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR);)
        if (n > 0) reply.append(buf, static_cast<size_t>(n));
    return reply;
}

std::string raw_exchange(const std::string& socket, const std::string& bytes) {
    auto fd = raw_connect(socket);
    REQUIRE(::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    ::shutdown(fd.get(), SHUT_WR);
    return raw_read(fd.get());
}

TimedResponse timed_call(const std::string& socket, std::string_view method, std::string_view target,
                         std::string_view body, int timeout_s) {
    auto fd = raw_connect(socket, timeout_s);
    std::string request = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: nucleus\r\n" +
                          "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                          std::string(body);
    if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
        return {};
    std::string reply = raw_read(fd.get());
    TimedResponse out;
    auto head_end = reply.find("\r\n\r\n");
    if (!reply.starts_with("HTTP/1.1 ") || head_end == std::string::npos) return out;
    out.status = std::atoi(reply.c_str() + 9);
    out.body = reply.substr(head_end + 4);
    return out;
}

CliResult run_cli(const std::string& socket, const std::vector<std::string>& args) {
    int out[2], err[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
    std::vector<std::string> all = {NUCLEUS_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string env = "NUCLEUS_SOCKET=" + socket;
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::putenv(env.data());
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    CliResult result;
    result.out = raw_read(out[0]);  // (small outputs: read one, then the other)
    result.err = raw_read(err[0]);
    ::close(out[0]);
    ::close(err[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

}  // namespace nucleus::tests
