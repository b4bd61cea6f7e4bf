// Spawning a sandbox's first process: clone3 and the parent/child handshake.
#pragma once

#include <functional>

#include <asio/awaitable.hpp>

#include "io/process.hpp"
#include "isolation/child_plan.hpp"
#include "isolation/idmap.hpp"
#include "isolation/seccomp_trace.hpp"

namespace nucleus::isolation {

struct SpawnRequest {
    ChildPlan* plan = nullptr;  // control/report fds are filled in by spawn_sandbox
    uint64_t namespaces = 0;  // CLONE_NEW* flags
    int cgroup_fd = -1;  // O_PATH dirfd of the sandbox's cgroup, or -1
    const UserNamespaceMaps* maps = nullptr;
    // Called once the child has reported Ready, before it may exec: checks
    // from outside what the child claims to have set up (mounts, creds).
    std::function<Status(pid_t)> verify;
    // Network set-up from outside (core/sandbox_network.hpp): run once the
    // child has its maps and is released into its setup, so both proceed
    // together; the child cannot exec before it completes.
    std::function<asio::awaitable<Status>(pid_t)> attach_network;
    // Trace mode: the filter notifies every syscall; `trace` records them.
    SyscallTrace* trace = nullptr;
};

// How a spawn failed, so the caller can pick the exit code (125 for a runtime
// error, 126 for a command that cannot be executed, 127 for one not found).
struct SpawnFailure {
    Error error;
    ChildStep step = ChildStep::WaitMaps;
    int child_errno = 0;
};

struct Spawned {
    io::ProcessHandle process;
    io::unique_fd seccomp_listener;  // trace mode: keep answering on it
};

class SpawnResult {
public:
    SpawnResult(Spawned s) : spawned_(std::move(s)), ok_(true) {}
    SpawnResult(SpawnFailure f) : failure_(std::move(f)) {}
    bool ok() const { return ok_; }
    Spawned& value() { return spawned_; }
    const SpawnFailure& failure() const { return failure_; }

private:
    Spawned spawned_;
    SpawnFailure failure_;
    bool ok_ = false;
};

// Clones the child into its namespaces and cgroup, writes its id maps,
// lets it run its setup script, verifies, and returns once it has exec'd.
// Never blocks the reactor: every wait is an io_uring completion.
asio::awaitable<SpawnResult> spawn_sandbox(SpawnRequest request);

}  // namespace nucleus::isolation
