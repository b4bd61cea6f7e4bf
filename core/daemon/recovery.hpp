// A restarted daemon reading its records back (Daemon::recover, in
// recovery.cpp): each recorded sandbox that was running is re-adopted when
// its pid still has the recorded start time and cgroup, else ended
// ("exited_unobserved") after killing what remains of it; cleanup records
// that no daemon record names are collected. A re-adopted sandbox is not
// the daemon's child: its exit shows as its pidfd becoming readable, its
// status went to whoever reaped it (Daemon::watch_adopted).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "core/daemon/sandbox_record.hpp"
#include "core/spec.hpp"

namespace nucleus::core::daemon {

// The spec a recorded sandbox runs with, from the resolved document its
// record keeps (core/spec.hpp): the host is not read again, so a sandbox
// whose env file, secret or volume source is gone is still re-adopted.
Result<SandboxSpec> spec_from_record(const PersistedSandbox& stored);

// The start time of `pid` in clock ticks since boot (proc(5) stat field
// 22): with the pid, it names one process for good.
std::optional<unsigned long long> process_start_ticks(pid_t pid);

// Whether `pid` is in the cgroup at `cgroup_path` (its /proc/PID/cgroup
// entry for the v2 hierarchy ends that path).
bool process_in_cgroup(pid_t pid, const std::string& cgroup_path);

}  // namespace nucleus::core::daemon
