// The join processes' script: what runs between clone3 and execve when a
// further process enters a running sandbox (isolation/join.cpp has the
// protocol).
//
// The same rules as isolation/child.cpp (CLONE_VM: no allocation, no errno,
// only raw syscalls, noexcept, built with -fno-sanitize=all); a failing step
// writes one ChildReport {Failed, ChildStep, errno, detail} and exits.
//
//   intermediate (I): setns(pidfd, every namespace of the sandbox) at once,
//     then clone3(CLONE_PARENT | CLONE_VM | CLONE_PARENT_SETTID) the
//     grandchild (setns into a PID namespace only applies to children) and
//     exit. CLONE_PARENT makes the grandchild the daemon's own child.
//   grandchild (G): stdio, session, signals, rlimits, workdir, Landlock rules
//     (opened here, inside the sandbox's mount namespace), the workload's
//     credentials and capabilities, no_new_privs, Landlock, pdeathsig,
//     closing the rest, seccomp, execve: the steps of the sandbox's first
//     process (isolation/child_steps.hpp), over the sandbox's own plan.
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>

#include "isolation/child_steps.hpp"
#include "isolation/join_plan.hpp"
#include "isolation/kernel_abi.hpp"
#include "isolation/raw_syscall.hpp"

extern "C" long nucleus_clone3_vm(nucleus::kabi::CloneArgs* args, size_t size, int (*fn)(void*), void* arg);

namespace nucleus::isolation {

namespace {

using raw::call;
using steps::Outcome;
using steps::require;

// With a pidfd, setns(2) enters every namespace at once, the user namespace
// first, so the others are checked against the new caps.
Outcome join_namespaces(const JoinChildPlan& plan) noexcept {
    return {ChildStep::JoinNamespaces, call(SYS_setns, plan.target_pidfd, plan.namespaces)};
}

int join_grandchild_main(void* opaque) noexcept;

// We stay in the host's PID namespace; the grandchild is the first of our
// children in the sandbox's. CLONE_PARENT makes it the daemon's child (so
// the daemon's pidfd wait reaps it); CLONE_PARENT_SETTID stores its host
// pid in the plan before it can run.
Outcome clone_grandchild(JoinChildPlan& plan) noexcept {
    kabi::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_PARENT | CLONE_PARENT_SETTID;
    args.parent_tid = reinterpret_cast<uint64_t>(&plan.grandchild_pid);
    args.exit_signal = 0;  // CLONE_PARENT: the kernel takes ours (SIGCHLD)
    args.stack = reinterpret_cast<uint64_t>(plan.grandchild_stack);
    args.stack_size = plan.grandchild_stack_size;
    long rc = nucleus_clone3_vm(&args, sizeof args, join_grandchild_main, &plan);
    return {ChildStep::CloneIntoPidNamespace, rc < 0 ? rc : 0};
}

int join_grandchild_main(void* opaque) noexcept {
    const JoinChildPlan& plan = *static_cast<const JoinChildPlan*>(opaque);
    const ChildPlan& sandbox = *plan.sandbox;
    const int out = plan.report_fd;
    require(out, steps::stdio(plan.stdio));
    require(out, steps::new_session());
    require(out, steps::default_signals());
    require(out, steps::rlimits(sandbox));
    require(out, steps::workdir(plan.workdir));
    require(out, steps::landlock_rules(sandbox, plan.landlock_ruleset_fd));
    require(out, steps::drop_privileges(sandbox, plan.landlock_ruleset_fd));
    require(out, steps::parent_death_signal(sandbox));
    require(out, steps::close_inherited(out, -1));  // the report pipe closes at exec (CLOEXEC)
    require(out, steps::seccomp(sandbox));
    steps::fail(out, steps::exec(plan.program));
}

}  // namespace

extern "C" int nucleus_join_main(void* opaque) noexcept {
    JoinChildPlan& plan = *static_cast<JoinChildPlan*>(opaque);
    call(SYS_close, plan.report_peer_fd);
    require(plan.report_fd, join_namespaces(plan));
    require(plan.report_fd, clone_grandchild(plan));
    return 0;
}

}  // namespace nucleus::isolation
