#include "sandbox_run.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/unique_fd.hpp"
#include "isolation/cgroup.hpp"

extern char** environ;

namespace nucleus::kernel_lane {

namespace {

void drain(int fd, std::string& into, bool& open) {
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) into.append(buf, static_cast<size_t>(n));
    else if (n == 0 || (errno != EINTR && errno != EAGAIN)) open = false;
}

}  // namespace

SandboxRun run_sandbox(const std::vector<std::string>& args, int deadline_seconds) {
    char events_path[] = "/tmp/nucleus-kernel-events-XXXXXX";
    int events_fd = ::mkstemp(events_path);
    ::close(events_fd);
    std::vector<std::string> argv = {NUCLEUS_BINARY, "run", "--events-jsonl", events_path,
                                     "-v", std::string(NUCLEUS_CHECKER_DIR) + ":/checker:ro"};
    argv.insert(argv.end(), args.begin(), args.end());
    SandboxRun run = run_sandbox_raw(argv, deadline_seconds);
    std::ifstream events(events_path);
    for (std::string line; std::getline(events, line);) {
        auto record = nlohmann::json::parse(line, nullptr, false);
        if (record.is_discarded()) continue;
        run.events.push_back(record);
        if (record.value("event", "") == "exit") run.final_event = record;
    }
    ::unlink(events_path);
    return run;
}

SandboxRun run_sandbox_raw(const std::vector<std::string>& args, int deadline_seconds) {
    std::vector<std::string> argv = args;
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);

    int out[2], err[2];
    (void)!::pipe2(out, O_CLOEXEC);
    (void)!::pipe2(err, O_CLOEXEC);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    pid_t pid = -1;
    SandboxRun run;
    if (::posix_spawn(&pid, raw[0], &actions, nullptr, raw.data(), environ) != 0) return run;
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    bool out_open = true, err_open = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(deadline_seconds);
    while (out_open || err_open) {
        pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
        ::poll(fds, 2, 1000);
        if (fds[0].revents) drain(out[0], run.out, out_open);
        if (fds[1].revents) drain(err[0], run.err, err_open);
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);  // a hung run must not hang the lane
            break;
        }
    }
    ::close(out[0]);
    ::close(err[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return run;
}

std::vector<std::string> root_controllers(std::string& mount) {
    auto found = isolation::find_cgroup2_mount();
    if (!found) return {};
    mount = *found;
    auto controllers = isolation::available_controllers(*found);
    return controllers ? *controllers : std::vector<std::string>{};
}

std::string checker_value(const std::string& out, const std::string& key) {
    std::istringstream lines(out);
    std::string line, value;
    while (std::getline(lines, line))
        if (line.compare(0, key.size() + 1, key + "=") == 0) value = line.substr(key.size() + 1);
    return value;
}

}  // namespace nucleus::kernel_lane
