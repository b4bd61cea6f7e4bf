// The join processes' script: what runs between clone3 and execve when a
// further process enters a running sandbox (isolation/join.cpp has the
// protocol).
//
// The same rules as isolation/child.cpp (CLONE_VM: no allocation, no errno,
// only raw syscalls, noexcept, built with -fno-sanitize=all); a failing step
// writes one ChildReport {Failed, JoinStep, errno, detail} and exits.
//
//   intermediate (I): setns(pidfd, every namespace of the sandbox) at once,
//     then clone3(CLONE_PARENT | CLONE_VM | CLONE_PARENT_SETTID) the
//     grandchild (setns into a PID namespace only applies to children) and
//     exit. CLONE_PARENT makes the grandchild the daemon's own child.
//   grandchild (G): stdio, session, signals, rlimits, workdir, Landlock rules
//     (opened here, inside the sandbox's mount namespace), the workload's
//     credentials and capabilities, no_new_privs, Landlock, pdeathsig,
//     CLOEXEC on the rest, seccomp, execve.
#include <cerrno>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "isolation/join_plan.hpp"
#include "isolation/kernel_abi.hpp"
#include "isolation/raw_syscall.hpp"

extern "C" long nucleus_clone3_vm(nucleus::kabi::CloneArgs* args, size_t size, int (*fn)(void*), void* arg);

namespace nucleus::isolation {

const char* join_step_name(JoinStep step) noexcept {
    switch (step) {
        case JoinStep::SetNs: return "joining the sandbox's namespaces";
        case JoinStep::CloneGrandchild: return "cloning into the sandbox's PID namespace";
        case JoinStep::Stdio: return "setting up stdio";
        case JoinStep::Session: return "creating a new session";
        case JoinStep::Signals: return "resetting signal handlers";
        case JoinStep::Rlimits: return "setting rlimits";
        case JoinStep::Workdir: return "changing to the working directory";
        case JoinStep::LandlockRules: return "adding Landlock rules";
        case JoinStep::BoundingSet: return "dropping the capability bounding set";
        case JoinStep::KeepCaps: return "keeping capabilities across setuid";
        case JoinStep::Groups: return "setting supplementary groups";
        case JoinStep::SetGid: return "setting the gid";
        case JoinStep::SetUid: return "setting the uid";
        case JoinStep::Capabilities: return "setting capabilities";
        case JoinStep::AmbientCaps: return "setting ambient capabilities";
        case JoinStep::NoNewPrivs: return "setting no_new_privs";
        case JoinStep::LandlockRestrict: return "enforcing Landlock";
        case JoinStep::ParentDeath: return "setting the parent-death signal";
        case JoinStep::CloseFds: return "closing inherited descriptors";
        case JoinStep::Seccomp: return "loading the seccomp filter";
        case JoinStep::Exec: return "executing the command";
    }
    return "unknown step";
}

namespace {

using raw::call;

constexpr int setup_failed_exit = 125;

size_t bounded_length(const char* s, size_t max) noexcept {
    size_t n = 0;
    while (s && n < max && s[n]) ++n;
    return n;
}

[[noreturn]] void fail(const JoinChildPlan& plan, JoinStep step, long rc, const char* detail) noexcept {
    ChildReport report;
    report.kind = ChildReport::Failed;
    report.step = static_cast<uint32_t>(step);
    report.err = static_cast<int32_t>(-rc);
    size_t n = bounded_length(detail, sizeof report.detail - 1);
    for (size_t i = 0; i < n; ++i) report.detail[i] = detail[i];
    for (size_t i = n; i < sizeof report.detail; ++i) report.detail[i] = 0;
    long w;
    do {
        w = call(SYS_write, plan.report_fd, &report, sizeof report);
    } while (w == -EINTR);
    call(SYS_exit_group, setup_failed_exit);
    __builtin_unreachable();
}

long setup_stdio(const JoinChildPlan& plan) noexcept {
    for (int target = 0; target < 3; ++target) {
        long rc = call(SYS_dup3, plan.stdio[target], target, 0);
        if (rc == -EINVAL) rc = call(SYS_fcntl, target, F_SETFD, 0);  // oldfd == newfd
        if (rc < 0) return rc;
    }
    return 0;
}

struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
};

// The parent blocked every signal around clone3 and its handlers were
// copied: reset all to default, then unblock (as isolation/child.cpp does).
long reset_signals() noexcept {
    KernelSigaction dfl{SIG_DFL, 0, nullptr, 0};
    for (int sig = 1; sig < 65; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        long rc = call(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(unsigned long));
        if (rc < 0 && rc != -EINVAL) return rc;
    }
    unsigned long empty = 0;
    return call(SYS_rt_sigprocmask, SIG_SETMASK, &empty, nullptr, sizeof empty);
}

long apply_rlimits(const ChildPlan& sb) noexcept {
    for (size_t i = 0; i < sb.rlimit_count; ++i) {
        struct {
            uint64_t cur, max;
        } limit{sb.rlimits[i].soft, sb.rlimits[i].hard};
        long rc = call(SYS_prlimit64, 0, sb.rlimits[i].resource, &limit, nullptr);
        if (rc < 0) return rc;
    }
    return 0;
}

void add_landlock_rules(const JoinChildPlan& plan) noexcept {
    const ChildPlan& sb = *plan.sandbox;
    for (size_t i = 0; i < sb.landlock_rule_count; ++i) {
        const LandlockRule& rule = sb.landlock_rules[i];
        long fd = call(SYS_openat, AT_FDCWD, rule.path, O_PATH | O_CLOEXEC);
        if (fd == -ENOENT) continue;  // as for the first process
        if (fd < 0) fail(plan, JoinStep::LandlockRules, fd, rule.path);
        kabi::LandlockPathBeneathAttr attr{rule.access, static_cast<int32_t>(fd)};
        long rc = call(kabi::sys_landlock_add_rule, plan.landlock_ruleset_fd, kabi::landlock_rule_path_beneath,
                       &attr, 0);
        call(SYS_close, fd);
        if (rc < 0) fail(plan, JoinStep::LandlockRules, rc, rule.path);
    }
}

void become_workload_user(const JoinChildPlan& plan) noexcept {
    const ChildPlan& sb = *plan.sandbox;
    for (int cap = 0; cap <= sb.cap_last; ++cap) {
        if (sb.caps_bounding & (1ULL << cap)) continue;
        long rc = call(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
        if (rc < 0 && rc != -EINVAL) fail(plan, JoinStep::BoundingSet, rc, nullptr);
    }
    long rc;
    if (sb.caps_keep && (rc = call(SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0)) < 0)
        fail(plan, JoinStep::KeepCaps, rc, nullptr);
    if (sb.may_setgroups && (rc = call(SYS_setgroups, sb.group_count, sb.groups)) < 0)
        fail(plan, JoinStep::Groups, rc, nullptr);
    if ((rc = call(SYS_setresgid, sb.gid, sb.gid, sb.gid)) < 0) fail(plan, JoinStep::SetGid, rc, nullptr);
    if ((rc = call(SYS_setresuid, sb.uid, sb.uid, sb.uid)) < 0) fail(plan, JoinStep::SetUid, rc, nullptr);

    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    for (int i = 0; i < 2; ++i) {
        auto word = static_cast<uint32_t>(sb.caps_keep >> (32 * i));
        data[i].effective = data[i].permitted = data[i].inheritable = word;
    }
    if ((rc = call(SYS_capset, &header, data)) < 0) fail(plan, JoinStep::Capabilities, rc, nullptr);
    if ((rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) < 0)
        fail(plan, JoinStep::AmbientCaps, rc, nullptr);
    for (int cap = 0; cap <= sb.cap_last; ++cap) {
        if (!(sb.caps_keep & (1ULL << cap))) continue;
        if ((rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)) < 0)
            fail(plan, JoinStep::AmbientCaps, rc, nullptr);
    }
}

int join_grandchild_main(void* opaque) noexcept {
    const JoinChildPlan& plan = *static_cast<const JoinChildPlan*>(opaque);
    const ChildPlan& sb = *plan.sandbox;
    long rc;
    if ((rc = setup_stdio(plan)) < 0) fail(plan, JoinStep::Stdio, rc, nullptr);
    if ((rc = call(SYS_setsid)) < 0) fail(plan, JoinStep::Session, rc, nullptr);
    if ((rc = reset_signals()) < 0) fail(plan, JoinStep::Signals, rc, nullptr);
    if ((rc = apply_rlimits(sb)) < 0) fail(plan, JoinStep::Rlimits, rc, nullptr);
    if ((rc = call(SYS_chdir, plan.workdir)) < 0) fail(plan, JoinStep::Workdir, rc, plan.workdir);
    if (plan.landlock_ruleset_fd >= 0) add_landlock_rules(plan);

    become_workload_user(plan);

    if ((rc = call(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0) fail(plan, JoinStep::NoNewPrivs, rc, nullptr);
    if (plan.landlock_ruleset_fd >= 0) {
        if ((rc = call(kabi::sys_landlock_restrict_self, plan.landlock_ruleset_fd, 0)) < 0)
            fail(plan, JoinStep::LandlockRestrict, rc, nullptr);
        call(SYS_close, plan.landlock_ruleset_fd);
    }
    if (sb.die_with_parent && (rc = call(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) < 0)
        fail(plan, JoinStep::ParentDeath, rc, nullptr);
    if ((rc = call(kabi::sys_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */)) < 0)
        fail(plan, JoinStep::CloseFds, rc, nullptr);
    if (sb.seccomp_filter) {
        sock_fprog prog{sb.seccomp_len, const_cast<sock_filter*>(static_cast<const sock_filter*>(sb.seccomp_filter))};
        if ((rc = call(SYS_seccomp, SECCOMP_SET_MODE_FILTER, sb.seccomp_flags, &prog)) < 0)
            fail(plan, JoinStep::Seccomp, rc, nullptr);
    }
    long first_error = -ENOENT;
    for (size_t i = 0; i < plan.exec_candidate_count; ++i) {
        rc = call(SYS_execve, plan.exec_candidates[i], plan.argv, plan.envp);
        if (rc != -ENOENT && rc != -ENOTDIR && first_error == -ENOENT) first_error = rc;
    }
    fail(plan, JoinStep::Exec, first_error, plan.argv[0]);
}

}  // namespace

extern "C" int nucleus_join_main(void* opaque) noexcept {
    JoinChildPlan& plan = *static_cast<JoinChildPlan*>(opaque);
    call(SYS_close, plan.report_peer_fd);

    // With a pidfd, setns(2) enters every namespace at once, the user
    // namespace first, so the others are checked against the new caps.
    long rc = call(SYS_setns, plan.target_pidfd, plan.namespaces);
    if (rc < 0) fail(plan, JoinStep::SetNs, rc, nullptr);

    // We stay in the host's PID namespace; the grandchild is the first of
    // our children in the sandbox's. CLONE_PARENT makes it the daemon's
    // child (so the daemon's pidfd wait reaps it); CLONE_PARENT_SETTID
    // stores its host pid in the plan before it can run.
    kabi::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_PARENT | CLONE_PARENT_SETTID;
    args.parent_tid = reinterpret_cast<uint64_t>(&plan.grandchild_pid);
    args.exit_signal = 0;  // CLONE_PARENT: the kernel takes ours (SIGCHLD)
    args.stack = reinterpret_cast<uint64_t>(plan.grandchild_stack);
    args.stack_size = plan.grandchild_stack_size;
    rc = nucleus_clone3_vm(&args, sizeof args, join_grandchild_main, &plan);
    if (rc < 0) fail(plan, JoinStep::CloneGrandchild, rc, nullptr);
    return 0;
}

}  // namespace nucleus::isolation
