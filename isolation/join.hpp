// Executing a further process inside a running sandbox (`exec`).
//
// The new process enters the sandbox's user, mount, PID, IPC, UTS, network,
// cgroup (and time, if any) namespaces and its cgroup, and runs under the
// limits the sandbox's first process took: the workload's uid/gid/groups,
// the same capability sets (caps_keep, bounding), rlimits, no_new_privs, the
// same seccomp program and a Landlock ruleset with the same handled rights
// and rules, resolved inside the sandbox's mount namespace.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "io/process.hpp"
#include "isolation/launch_plan.hpp"

namespace nucleus::isolation {

struct JoinRequest {
    int target_pidfd = -1;  // pidfd of the sandbox's PID 1 (borrowed)
    pid_t target_pid = -1;  // its pid, for messages
    int cgroup_fd = -1;  // O_PATH dirfd of the sandbox's cgroup (CLONE_INTO_CGROUP), -1: none
    // The plan the sandbox was launched with; must stay alive for the call.
    // Trace-mode plans (seccomp listener) cannot be joined.
    const LaunchPlan* plan = nullptr;
    std::vector<std::string> argv;  // argv[0] without '/': searched in env's PATH
    std::optional<std::vector<std::string>> env;  // nullopt: the workload's PATH and HOME
    std::string workdir;  // empty: the workload's
    int stdio[3] = {-1, -1, -1};  // borrowed; the caller keeps them open
};

// How a join failed: the step (JoinStep, 0 when not a child step) and errno,
// so the caller can pick 126/127 for Exec failures.
struct JoinFailure {
    Error error;
    uint32_t step = 0;
    int child_errno = 0;
};

// Returns once the new process has exec'd. It is the caller's own child
// (CLONE_PARENT), so the handle's wait_exit() reaps it. Never blocks the
// reactor: the only waits are the report pipe and pidfd polls.
asio::awaitable<Result<io::ProcessHandle>> spawn_joined(JoinRequest request, JoinFailure* failure = nullptr);

}  // namespace nucleus::isolation
