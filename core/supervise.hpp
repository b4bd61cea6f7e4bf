// Supervising one running sandbox on the reactor: exit, output, signals,
// timeout. Each is an io_uring wait; nothing polls.
#pragma once

#include <signal.h>

#include <functional>
#include <optional>
#include <string>

#include <asio/awaitable.hpp>

#include "io/process.hpp"
#include "io/pump.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/seccomp_trace.hpp"

namespace nucleus::core {

struct SupervisionResult {
    io::ExitStatus status;
    bool timed_out = false;
    // A forwarded SIGINT/SIGTERM/SIGHUP that PID 1 does not handle: the
    // kernel would ignore it for an init process, so the runtime kills the
    // sandbox instead and reports the signal as the cause (128 + N).
    int forwarded_fatal_signal = 0;
    io::PumpResult stdout_pump;
    io::PumpResult stderr_pump;
    Status wait_error;
};

struct SupervisionInput {
    io::ProcessHandle* process;
    isolation::SandboxCgroup* cgroup;  // null when running without one
    std::optional<double> timeout_seconds;
    int stdout_read;  // owned by the caller until adopted here
    int stderr_read;
    io::OutputSink* stdout_sink;
    io::OutputSink* stderr_sink;
    // Called when memory.events or pids.events counters change.
    std::function<void(const isolation::CgroupEventCounts&)> on_cgroup_events;
    // Trace mode: keep answering seccomp notifications on this listener.
    int seccomp_listener = -1;
    isolation::SyscallTrace* trace = nullptr;
    // `nucleus run` forwards SIGINT/SIGTERM/SIGHUP (blocked during setup,
    // unblocked here once the handlers exist); the daemon does not.
    bool forward_signals = true;
    // The daemon's thousands of sandboxes share one read buffer (io::pump_shared).
    bool shared_pump_buffer = false;
};

asio::awaitable<SupervisionResult> supervise(SupervisionInput input);

// The signals `nucleus run` forwards to its sandbox: every one whose default
// action would end the supervisor from outside (SIGHUP, SIGINT, SIGQUIT,
// SIGUSR1/2, SIGALRM, SIGTERM, the real-time signals...), so that no signal
// kills it and strands the sandbox or loses a copy-in-out workspace. Faults
// (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP) are the
// supervisor's own and keep their default.
const sigset_t& forwarded_signals();

// Whether `pid` (a PID namespace's init) has a handler for, or ignores, `sig`
// (SigCgt/SigIgn in proc(5) status): the kernel drops any other signal sent
// to it, so the runtime ends the sandbox instead. procfs reads complete
// immediately.
bool init_handles_signal(pid_t pid, int sig);

// Kills and removes the cgroup, waiting on cgroup.events for the kernel to
// finish reaping (rmdir fails with EBUSY until then).
asio::awaitable<Status> remove_cgroup(isolation::SandboxCgroup& cgroup);

// Freezes or thaws the sandbox and waits until cgroup.events says it is done.
asio::awaitable<Status> set_frozen(isolation::SandboxCgroup& cgroup, bool frozen);

}  // namespace nucleus::core
