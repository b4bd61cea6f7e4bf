// The steps both child-side scripts are made of: a sandbox's first process
// (isolation/child.cpp) and a process joining a running sandbox
// (isolation/join_child.cpp). The credential drop, stdio, signals, rlimits,
// Landlock, seccomp and exec exist here once; each script is the straight
// sequence of calls that says in which order.
//
// Everything here runs on a CLONE_VM child: the rules at the top of
// isolation/child.cpp hold (no allocation, no libc call that touches errno,
// raw syscalls only, noexcept, built with -fno-sanitize=all).
#pragma once

#include <cstddef>

#include "isolation/child_plan.hpp"

namespace nucleus::isolation::steps {

// What a step did. rc is -errno on failure, else 0 or the step's result
// (seccomp(): the listener's fd). On failure, `step` is the sub-step that
// failed (drop_privileges() has ten) and `detail` the path it concerned.
struct Outcome {
    ChildStep step;
    long rc = 0;
    const char* detail = nullptr;
    bool failed() const noexcept { return rc < 0; }
};

// The scripts' single failure path: one ChildReport {Failed, step, errno,
// detail} on report_fd, then exit_group(125).
[[noreturn]] void fail(int report_fd, Outcome failed) noexcept;
inline void require(int report_fd, Outcome outcome) noexcept {
    if (outcome.failed()) fail(report_fd, outcome);
}
// One record on report_fd (Ready, Listener); a write of 128 bytes to a pipe
// is atomic, and EINTR is retried.
void report(int report_fd, ChildReport::Kind kind, ChildStep step, long value, const char* detail) noexcept;

// 0, 1, 2 from `fds`, without CLOEXEC.
Outcome stdio(const int (&fds)[3]) noexcept;
// setsid(2): no controlling terminal, a process group of its own.
Outcome new_session() noexcept;
// Every handler back to SIG_DFL, then an empty signal mask.
Outcome default_signals() noexcept;
Outcome rlimits(const ChildPlan& plan) noexcept;
Outcome workdir(const char* path) noexcept;
// The plan's rules into `ruleset_fd`, each path opened where the script
// stands (after pivot_root or setns); nothing when ruleset_fd < 0.
Outcome landlock_rules(const ChildPlan& plan, int ruleset_fd) noexcept;
// The workload's credentials, in the one order that works: bounding set,
// keepcaps, groups, gid, uid, capset, ambient, no_new_privs, then Landlock
// (restrict_self needs no_new_privs or CAP_SYS_ADMIN). Closes ruleset_fd.
Outcome drop_privileges(const ChildPlan& plan, int ruleset_fd) noexcept;
// After drop_privileges(): a credential change clears it (prctl(2)).
Outcome parent_death_signal(const ChildPlan& plan) noexcept;
// close_range(2) over every fd from 3 up but `keep_a` and `keep_b` (-1: none).
Outcome close_inherited(int keep_a, int keep_b) noexcept;
// The plan's filter, if any; rc is the listener's fd in trace mode.
Outcome seccomp(const ChildPlan& plan) noexcept;
// Returns only on failure: execve(2) of each candidate, as execvp(3) would.
Outcome exec(const ExecProgram& program) noexcept;

// strnlen(3) without libc.
size_t bounded_length(const char* s, size_t max) noexcept;

}  // namespace nucleus::isolation::steps
