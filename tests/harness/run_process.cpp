#include "run_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace nucleus::harness {

namespace {

double now_s() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// After a kill at the deadline, how long output may still drain: a process
// that inherited the pipes and outlived the kill must not hang the caller.
constexpr double drain_after_kill_s = 5;

void write_message(const char* a, const char* b) {
    (void)!::write(STDERR_FILENO, a, std::strlen(a));
    (void)!::write(STDERR_FILENO, b, std::strlen(b));
    (void)!::write(STDERR_FILENO, "\n", 1);
}

// In the forked child: only async-signal-safe calls (the caller may have
// threads, whose locks a fork copies held), everything prepared before.
[[noreturn]] void exec_child(char* const* argv, const char* cwd, const std::optional<Credentials>& as, int devnull,
                             int out, int err) {
    if (::dup2(devnull, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 || ::dup2(err, STDERR_FILENO) < 0)
        ::_exit(126);
    if (cwd && ::chdir(cwd) != 0) {
        write_message("harness: chdir failed: ", cwd);
        ::_exit(126);
    }
    if (as && (::setgroups(0, nullptr) != 0 || ::setgid(as->gid) != 0 || ::setuid(as->uid) != 0)) {
        write_message("harness: cannot drop privileges for ", argv[0]);
        ::_exit(126);
    }
    ::execve(argv[0], argv, environ);
    write_message("harness: exec failed: ", argv[0]);
    ::_exit(127);
}

void append_bounded(std::string& sink, const char* data, std::size_t n, std::size_t max) {
    sink.append(data, n);
    if (sink.size() > max) sink.erase(0, sink.size() - max);
}

// Reads both pipes until EOF on each (or the drain limit after a kill).
void collect(pid_t pid, int out_fd, int err_fd, const RunOptions& options, RunResult& result) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    const double deadline = options.timeout_s > 0 ? now_s() + options.timeout_s : 0;
    double give_up = 0;
    int open_pipes = 2;
    while (open_pipes > 0) {
        const int ready = ::poll(fds, 2, 250);
        if (ready < 0 && errno != EINTR) break;
        for (int i = 0; i < 2 && ready > 0; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buffer[65536];
            const ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
            if (got > 0) {
                append_bounded(*sinks[i], buffer, static_cast<std::size_t>(got), options.max_output);
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_pipes;
            }
        }
        if (options.tick) options.tick();
        if (deadline > 0 && !result.timed_out && now_s() > deadline) {
            ::kill(pid, SIGKILL);
            result.timed_out = true;
            give_up = now_s() + drain_after_kill_s;
        }
        if (give_up > 0 && now_s() > give_up) break;
    }
    for (auto& fd : fds)
        if (fd.fd >= 0) ::close(fd.fd);
}

}  // namespace

RunResult run(const std::vector<std::string>& argv, const RunOptions& options) {
    RunResult result;
    std::vector<char*> raw;
    for (const auto& arg : argv) raw.push_back(const_cast<char*>(arg.c_str()));
    raw.push_back(nullptr);
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
        result.err = std::string("pipe2: ") + std::strerror(errno);
        return result;
    }
    if (::pipe2(err, O_CLOEXEC) != 0) {
        result.err = std::string("pipe2: ") + std::strerror(errno);
        ::close(out[0]);
        ::close(out[1]);
        return result;
    }
    const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t pid = ::fork();
    if (pid == 0)
        exec_child(raw.data(), options.cwd.empty() ? nullptr : options.cwd.c_str(), options.as, devnull, out[1],
                   err[1]);
    const int fork_errno = errno;
    ::close(out[1]);
    ::close(err[1]);
    if (devnull >= 0) ::close(devnull);
    if (pid < 0) {
        ::close(out[0]);
        ::close(err[0]);
        result.err = std::string("fork: ") + std::strerror(fork_errno);
        return result;
    }
    if (options.started) options.started(pid);
    collect(pid, out[0], err[0], options, result);
    while (::waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {}
    return result;
}

bool RunResult::ok() const { return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

int RunResult::exit_code() const {
    if (status < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string RunResult::failure() const {
    std::string text = status < 0 ? "could not start" : describe_wait_status(status);
    if (timed_out) text += " (timed out)";
    const std::string detail = one_line(err.empty() ? out : err);
    return detail.empty() ? text : text + ": " + detail;
}

std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
    return "wait status " + std::to_string(status);
}

std::string one_line(const std::string& text, std::size_t max) {
    std::string line;
    bool space = false;
    for (char c : text) {
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = !line.empty();
            continue;
        }
        if (space) line += ' ';
        space = false;
        line += c;
    }
    if (line.size() > max) line = "..." + line.substr(line.size() - max);
    return line;
}

}  // namespace nucleus::harness
