// The plain data the two join processes execute (isolation/join_child.cpp).
//
// Built in the parent by spawn_joined (isolation/join.cpp); every pointer
// points into storage the parent keeps alive until the grandchild has exec'd
// or died. The children only read it, except grandchild_pid, which the
// kernel writes (CLONE_PARENT_SETTID) before the grandchild can run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/types.h>

#include "isolation/child_plan.hpp"

namespace nucleus::isolation {

// A join's steps are ChildSteps (isolation/child_report.hpp): the two it
// alone takes (JoinNamespaces, CloneIntoPidNamespace, in the intermediate)
// and those it shares with the sandbox's first process. The old name stays
// for callers that compare a JoinFailure's step.
using JoinStep = ChildStep;

struct JoinChildPlan {
    int report_fd = -1;  // write end, CLOEXEC: children -> parent
    int report_peer_fd = -1;  // the parent's read end, closed by the intermediate
    int target_pidfd = -1;  // setns(2) target: the sandbox's PID 1
    uint64_t namespaces = 0;  // CLONE_NEW* to join (those the sandbox was created with)
    void* grandchild_stack = nullptr;
    size_t grandchild_stack_size = 0;
    pid_t grandchild_pid = 0;  // written by clone3 (CLONE_PARENT_SETTID): the host pid
    int stdio[3] = {-1, -1, -1};

    // The sandbox's first-process plan: identity, capabilities, rlimits,
    // Landlock rules, seccomp program, parent-death signal.
    const ChildPlan* sandbox = nullptr;
    int landlock_ruleset_fd = -1;  // a fresh ruleset with the sandbox's handled rights; -1: none

    const char* workdir = nullptr;
    ExecProgram program;
};

// The intermediate's entry point, run on its own stack by the clone3
// trampoline: joins the namespaces, clones the grandchild and returns.
extern "C" int nucleus_join_main(void* plan) noexcept;

}  // namespace nucleus::isolation
