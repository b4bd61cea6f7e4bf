// The steps both child-side scripts share (see isolation/child_steps.hpp).
//
// The rules of isolation/child.cpp apply to every function in this file: it
// runs in the parent's address space (CLONE_VM), so no allocation, no libc
// call that touches errno or takes a lock, only the raw syscalls of
// isolation/raw_syscall.hpp; every function noexcept; compiled without
// sanitizers. child_step_name() is here too, the one table of step names,
// read by the parent when it turns a report into an error.
#include "isolation/child_steps.hpp"

#include <cerrno>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "isolation/kernel_abi.hpp"
#include "isolation/raw_syscall.hpp"

namespace nucleus::isolation {

const char* child_step_name(ChildStep step) noexcept {
    switch (step) {
        case ChildStep::WaitMaps:
            return "waiting for the user namespace maps";
        case ChildStep::SetupIdentity:
            return "taking the setup identity";
        case ChildStep::JoinNamespaces:
            return "joining the sandbox's namespaces";
        case ChildStep::CloneIntoPidNamespace:
            return "cloning into the sandbox's PID namespace";
        case ChildStep::Stdio:
            return "setting up stdio";
        case ChildStep::Session:
            return "creating a new session";
        case ChildStep::Signals:
            return "resetting signal handlers";
        case ChildStep::Propagation:
            return "making mounts private";
        case ChildStep::StagingRoot:
            return "mounting the root tmpfs";
        case ChildStep::Mount:
            return "mounting";
        case ChildStep::PivotRoot:
            return "pivot_root";
        case ChildStep::RootReadOnly:
            return "making the root read-only";
        case ChildStep::Hostname:
            return "setting the hostname";
        case ChildStep::Loopback:
            return "bringing up lo";
        case ChildStep::Network:
            return "setting up the network namespace:";
        case ChildStep::Rlimits:
            return "setting rlimits";
        case ChildStep::Workdir:
            return "changing to the working directory";
        case ChildStep::LandlockRules:
            return "adding Landlock rules";
        case ChildStep::BoundingSet:
            return "dropping the capability bounding set";
        case ChildStep::KeepCaps:
            return "keeping capabilities across setuid";
        case ChildStep::Groups:
            return "setting supplementary groups";
        case ChildStep::SetGid:
            return "setting the gid";
        case ChildStep::SetUid:
            return "setting the uid";
        case ChildStep::Capabilities:
            return "setting capabilities";
        case ChildStep::AmbientCaps:
            return "setting ambient capabilities";
        case ChildStep::NoNewPrivs:
            return "setting no_new_privs";
        case ChildStep::LandlockRestrict:
            return "enforcing Landlock";
        case ChildStep::ParentDeath:
            return "setting the parent-death signal";
        case ChildStep::CloseFds:
            return "closing inherited descriptors";
        case ChildStep::Ready:
            return "reporting readiness";
        case ChildStep::Seccomp:
            return "loading the seccomp filter";
        case ChildStep::Exec:
            return "executing the command";
    }
    return "unknown step";
}

namespace steps {

using raw::call;

namespace {

// Exit code for exit_group(2) when setup fails; the parent reports the real
// reason from the ChildReport.
constexpr int setup_failed_exit = 125;

// The kernel's struct sigaction for rt_sigaction(2) on x86_64.
struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
};

bool has_cap(uint64_t set, int cap) noexcept { return (set & (1ULL << cap)) != 0; }

long drop_bounding_set(const ChildPlan& plan) noexcept {
    for (int cap = 0; cap <= plan.cap_last; ++cap) {
        if (has_cap(plan.caps_bounding, cap)) continue;
        long rc = call(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
        if (rc < 0 && rc != -EINVAL) return rc;  // EINVAL: a capability this kernel lacks
    }
    return 0;
}

// effective = permitted = inheritable = caps_keep (capset(2), version 3:
// two 32-bit words per set).
long set_capabilities(const ChildPlan& plan) noexcept {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    for (int i = 0; i < 2; ++i) {
        auto word = static_cast<uint32_t>(plan.caps_keep >> (32 * i));
        data[i].effective = data[i].permitted = data[i].inheritable = word;
    }
    return call(SYS_capset, &header, data);
}

// Ambient = caps_keep, so that they survive execve of a file without file
// capabilities (capabilities(7)); each must be permitted and inheritable.
long set_ambient(const ChildPlan& plan) noexcept {
    long rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (int cap = 0; rc >= 0 && cap <= plan.cap_last; ++cap)
        if (has_cap(plan.caps_keep, cap)) rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    return rc;
}

long close_range(unsigned first, unsigned last) noexcept {
    return first > last ? 0 : call(kabi::sys_close_range, first, last, 0);
}

}  // namespace

size_t bounded_length(const char* s, size_t max) noexcept {
    size_t n = 0;
    while (s && n < max && s[n]) ++n;
    return n;
}

void report(int report_fd, ChildReport::Kind kind, ChildStep step, long value, const char* detail) noexcept {
    ChildReport record;
    record.kind = kind;
    record.step = static_cast<uint32_t>(step);
    record.err = static_cast<int32_t>(value);
    size_t n = bounded_length(detail, sizeof record.detail - 1);
    for (size_t i = 0; i < n; ++i) record.detail[i] = detail[i];
    for (size_t i = n; i < sizeof record.detail; ++i) record.detail[i] = 0;
    long rc;
    do {
        rc = call(SYS_write, report_fd, &record, sizeof record);
    } while (rc == -EINTR);
}

void fail(int report_fd, Outcome failed) noexcept {
    report(report_fd, ChildReport::Failed, failed.step, -failed.rc, failed.detail);
    call(SYS_exit_group, setup_failed_exit);
    __builtin_unreachable();
}

Outcome stdio(const int (&fds)[3]) noexcept {
    for (int target = 0; target < 3; ++target) {
        long rc = call(SYS_dup3, fds[target], target, 0);
        // dup3 refuses oldfd == newfd; then only clear CLOEXEC.
        if (rc == -EINVAL) rc = call(SYS_fcntl, target, F_SETFD, 0);
        if (rc < 0) return {ChildStep::Stdio, rc};
    }
    return {ChildStep::Stdio};
}

Outcome new_session() noexcept {
    long rc = call(SYS_setsid);
    return {ChildStep::Session, rc < 0 ? rc : 0};
}

// The parent blocked every signal around clone3; handlers it installed
// (Asio's signal_set) must not run here, so all go back to default before
// the mask is cleared. execve resets caught ones anyway, but not ignored
// ones (SIGPIPE: ignored by the supervisor).
Outcome default_signals() noexcept {
    KernelSigaction dfl{.handler = SIG_DFL, .flags = 0, .restorer = nullptr, .mask = 0};
    for (int sig = 1; sig < 65; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        long rc = call(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(unsigned long));
        if (rc < 0 && rc != -EINVAL) return {ChildStep::Signals, rc};
    }
    unsigned long empty = 0;
    return {ChildStep::Signals, call(SYS_rt_sigprocmask, SIG_SETMASK, &empty, nullptr, sizeof empty)};
}

Outcome rlimits(const ChildPlan& plan) noexcept {
    for (size_t i = 0; i < plan.rlimit_count; ++i) {
        struct {
            uint64_t cur, max;
        } limit{plan.rlimits[i].soft, plan.rlimits[i].hard};
        long rc = call(SYS_prlimit64, 0, plan.rlimits[i].resource, &limit, nullptr);
        if (rc < 0) return {ChildStep::Rlimits, rc};
    }
    return {ChildStep::Rlimits};
}

Outcome workdir(const char* path) noexcept { return {ChildStep::Workdir, call(SYS_chdir, path), path}; }

Outcome landlock_rules(const ChildPlan& plan, int ruleset_fd) noexcept {
    if (ruleset_fd < 0) return {ChildStep::LandlockRules};
    for (size_t i = 0; i < plan.landlock_rule_count; ++i) {
        const LandlockRule& rule = plan.landlock_rules[i];
        long fd = call(SYS_openat, AT_FDCWD, rule.path, O_PATH | O_CLOEXEC);
        if (fd == -ENOENT) continue;  // rules name paths that may not exist in this root
        if (fd < 0) return {ChildStep::LandlockRules, fd, rule.path};
        kabi::LandlockPathBeneathAttr attr{rule.access, static_cast<int32_t>(fd)};
        long rc = call(kabi::sys_landlock_add_rule, ruleset_fd, kabi::landlock_rule_path_beneath, &attr, 0);
        call(SYS_close, fd);
        if (rc < 0) return {ChildStep::LandlockRules, rc, rule.path};
    }
    return {ChildStep::LandlockRules};
}

Outcome drop_privileges(const ChildPlan& plan, int ruleset_fd) noexcept {
    long rc;
    if ((rc = drop_bounding_set(plan)) < 0) return {ChildStep::BoundingSet, rc};
    // Keep the permitted set across the uid change below; capset then
    // trims it to caps_keep.
    if (plan.caps_keep && (rc = call(SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0)) < 0) return {ChildStep::KeepCaps, rc};
    if (plan.may_setgroups && (rc = call(SYS_setgroups, plan.group_count, plan.groups)) < 0)
        return {ChildStep::Groups, rc};
    if ((rc = call(SYS_setresgid, plan.gid, plan.gid, plan.gid)) < 0) return {ChildStep::SetGid, rc};
    if ((rc = call(SYS_setresuid, plan.uid, plan.uid, plan.uid)) < 0) return {ChildStep::SetUid, rc};
    if ((rc = set_capabilities(plan)) < 0) return {ChildStep::Capabilities, rc};
    if ((rc = set_ambient(plan)) < 0) return {ChildStep::AmbientCaps, rc};
    if ((rc = call(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0) return {ChildStep::NoNewPrivs, rc};
    if (ruleset_fd < 0) return {ChildStep::LandlockRestrict};
    if ((rc = call(kabi::sys_landlock_restrict_self, ruleset_fd, 0)) < 0) return {ChildStep::LandlockRestrict, rc};
    call(SYS_close, ruleset_fd);
    return {ChildStep::LandlockRestrict};
}

Outcome parent_death_signal(const ChildPlan& plan) noexcept {
    if (!plan.die_with_parent) return {ChildStep::ParentDeath};
    return {ChildStep::ParentDeath, call(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)};
}

Outcome close_inherited(int keep_a, int keep_b) noexcept {
    // Both sorted, -1 (none) first: [3, a) (a, b) (b, ~0U].
    unsigned a = keep_a < 3 ? 2u : static_cast<unsigned>(keep_a);
    unsigned b = keep_b < 3 ? 2u : static_cast<unsigned>(keep_b);
    if (a > b) {
        unsigned t = a;
        a = b;
        b = t;
    }
    long rc = a > 2 ? close_range(3, a - 1) : 0;
    if (rc >= 0 && b > a + 1) rc = close_range(a > 2 ? a + 1 : 3, b - 1);
    if (rc >= 0) rc = close_range(b + 1, ~0U);
    return {ChildStep::CloseFds, rc};
}

Outcome seccomp(const ChildPlan& plan) noexcept {
    if (!plan.seccomp_filter) return {ChildStep::Seccomp};
    sock_fprog prog{plan.seccomp_len, const_cast<sock_filter*>(static_cast<const sock_filter*>(plan.seccomp_filter))};
    return {ChildStep::Seccomp, call(SYS_seccomp, SECCOMP_SET_MODE_FILTER, plan.seccomp_flags, &prog)};
}

Outcome exec(const ExecProgram& program) noexcept {
    long first_error = -ENOENT;
    for (size_t i = 0; i < program.candidate_count; ++i) {
        long rc = call(SYS_execve, program.candidates[i], program.argv, program.envp);
        // execvp(3)'s rule: keep looking after ENOENT/ENOTDIR, but remember
        // that a candidate existed and could not be executed.
        if (rc != -ENOENT && rc != -ENOTDIR && first_error == -ENOENT) first_error = rc;
    }
    return {ChildStep::Exec, first_error, program.argv[0]};
}

}  // namespace steps
}  // namespace nucleus::isolation
