#include "net/bridge_pasta.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include <asio/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

extern char** environ;

namespace nucleus::net {

using namespace asio::experimental::awaitable_operators;

Result<PastaPlan> plan_pasta(const std::vector<PublishedPort>& publish) {
    const char* path = std::getenv("PATH");
    std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        std::string dir = dirs.substr(start, end - start);
        if (!dir.empty() && dir.front() == '/') {
            std::string candidate = dir + "/pasta";
            if (::access(candidate.c_str(), X_OK) == 0) return PastaPlan{candidate, publish};
        }
        start = end + 1;
    }
    return Error::plain(
        "--network bridge as a non-root user needs pasta, which was not found on PATH: install it with "
        "`apt-get install passt` (or run as root for a host bridge)");
}

std::vector<std::string> pasta_arguments(const PastaPlan& plan, pid_t pid) {
    std::vector<std::string> argv{plan.binary, "--config-net", "--foreground", "--quiet", "--no-map-gw",
                                  "-T",        "none",         "-U",           "none"};
    bool tcp = false, udp = false;
    for (const auto& p : plan.publish) {
        std::string spec;
        if (p.family == AF_INET && p.host_v4) spec = to_string(*p.host_v4) + "/";
        if (p.family == AF_INET6 && p.host_v6) spec = to_string(*p.host_v6) + "/";
        spec += std::to_string(p.host_port) + ":" + std::to_string(p.container_port);
        argv.push_back(p.protocol == Protocol::Udp ? "-u" : "-t");
        argv.push_back(spec);
        (p.protocol == Protocol::Udp ? udp : tcp) = true;
    }
    if (!tcp) argv.insert(argv.end(), {"-t", "none"});
    if (!udp) argv.insert(argv.end(), {"-u", "none"});
    argv.insert(argv.end(), {"-P", "/dev/fd/3", std::to_string(pid)});
    return argv;
}

namespace {

// vfork + exec with PR_SET_PDEATHSIG, which posix_spawn(3) cannot set.
// Everything is prepared before vfork: the child only makes system calls.
// Signals stay blocked across vfork so that no handler of ours runs on the
// child (which shares our memory); the child resets every disposition
// (its handler table is its own copy) before it restores the mask.
Result<pid_t> spawn_with_death_signal(std::vector<std::string>& argv, int ready_fd, int err_fd, int null_fd) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    const pid_t parent = ::getpid();
    pid_t pid = ::vfork();
    if (pid == 0) {
        for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || ::getppid() != parent) ::_exit(126);
        if (::dup2(null_fd, 0) < 0 || ::dup2(null_fd, 1) < 0 || ::dup2(err_fd, 2) < 0 || ::dup2(ready_fd, 3) < 0)
            ::_exit(126);
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        ::execve(args[0], args.data(), environ);
        ::_exit(127);
    }
    int err = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) return Error::from_errno("starting pasta", err);
    return pid;
}

// What pasta said on stderr before it exited (bounded).
std::string drain(int fd) {
    std::string text;
    char buf[1024];
    ssize_t n;
    while (text.size() < 4096 && (n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    // pasta reports a missing syslog on every message; that is noise here.
    std::string out;
    size_t at = 0;
    while (at < text.size()) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(at, end - at);
        if (line.find("Failed to send") == std::string::npos && !line.empty()) out += (out.empty() ? "" : "; ") + line;
        at = end + 1;
    }
    return out;
}

}  // namespace

asio::awaitable<Result<io::ProcessHandle>> start_pasta(PastaPlan plan, pid_t pid) {
    auto ex = co_await asio::this_coro::executor;
    auto ready = io::make_pipe();
    auto err = io::make_pipe(O_NONBLOCK);
    auto null = io::open_fd("/dev/null", O_RDWR);
    if (!ready || !err || !null) co_return Error::from_errno("starting pasta: pipes");
    auto argv = pasta_arguments(plan, pid);
    auto child = spawn_with_death_signal(argv, ready->write.get(), err->write.get(), null->get());
    if (!child) co_return std::move(child).error();
    ready->write.reset();
    err->write.reset();
    auto pidfd = io::pidfd_open(*child);
    if (!pidfd) {
        ::kill(*child, SIGKILL);
        co_return std::move(pidfd).error().wrap("starting pasta");
    }
    io::ProcessHandle process(*child, std::move(*pidfd));
    asio::posix::stream_descriptor pipe(ex, ready->read.release());
    asio::steady_timer deadline(ex, std::chrono::seconds(30));
    char buf[32];
    auto outcome = co_await (pipe.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable)) ||
                             deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
    bool is_ready = false;
    if (outcome.index() == 0) {
        auto [ec, n] = std::get<0>(outcome);
        is_ready = !ec && n > 0;
    }
    if (is_ready) co_return process;
    (void)process.send_signal(SIGKILL);
    auto status = co_await process.wait_exit();
    std::string said = drain(err->read.get());
    std::string how = outcome.index() == 1 ? "did not configure the namespace within 30 s"
                      : status             ? "exited with " + std::to_string(status->shell_code())
                                           : "failed";
    co_return Error::plain("pasta " + how + (said.empty() ? "" : ": " + said));
}

asio::awaitable<void> stop_pasta(io::ProcessHandle process) {
    if (!process.valid()) co_return;
    (void)process.send_signal(SIGKILL);
    (void)co_await process.wait_exit();
}

}  // namespace nucleus::net
