// The child's setup script: what runs between clone3 and execve.
//
// Rules for this file (it runs in the parent's address space, CLONE_VM):
//   - no allocation, no libc call that touches errno or locks: only the raw
//     syscalls of isolation/raw_syscall.hpp;
//   - no exceptions, every function noexcept;
//   - built without sanitizers (CMake sets -fno-sanitize=all for this file):
//     their runtimes are not safe on a thread the runtime does not know;
//   - a failing step writes one ChildReport and exits; the parent turns it
//     into an Error naming the step, the errno and the detail.
// The script is a straight sequence; the numbered steps are ChildStep.
#include <cerrno>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "isolation/child_plan.hpp"
#include "isolation/kernel_abi.hpp"
#include "isolation/raw_syscall.hpp"

namespace nucleus::isolation {

const char* child_step_name(ChildStep step) noexcept {
    switch (step) {
        case ChildStep::WaitMaps: return "waiting for the user namespace maps";
        case ChildStep::ClosePeers: return "closing the parent's handshake ends";
        case ChildStep::SetupIdentity: return "taking the setup identity";
        case ChildStep::Stdio: return "setting up stdio";
        case ChildStep::Session: return "creating a new session";
        case ChildStep::Signals: return "resetting signal handlers";
        case ChildStep::Propagation: return "making mounts private";
        case ChildStep::StagingRoot: return "mounting the root tmpfs";
        case ChildStep::Mount: return "mounting";
        case ChildStep::PivotRoot: return "pivot_root";
        case ChildStep::RootReadOnly: return "making the root read-only";
        case ChildStep::Hostname: return "setting the hostname";
        case ChildStep::Loopback: return "bringing up lo";
        case ChildStep::Network: return "setting up the network namespace:";
        case ChildStep::Rlimits: return "setting rlimits";
        case ChildStep::Workdir: return "changing to the working directory";
        case ChildStep::LandlockRules: return "adding Landlock rules";
        case ChildStep::BoundingSet: return "dropping the capability bounding set";
        case ChildStep::KeepCaps: return "keeping capabilities across setuid";
        case ChildStep::Groups: return "setting supplementary groups";
        case ChildStep::SetGid: return "setting the gid";
        case ChildStep::SetUid: return "setting the uid";
        case ChildStep::Capabilities: return "setting capabilities";
        case ChildStep::AmbientCaps: return "setting ambient capabilities";
        case ChildStep::NoNewPrivs: return "setting no_new_privs";
        case ChildStep::LandlockRestrict: return "enforcing Landlock";
        case ChildStep::ParentDeath: return "setting the parent-death signal";
        case ChildStep::CloseFds: return "closing inherited descriptors";
        case ChildStep::Ready: return "reporting readiness";
        case ChildStep::Seccomp: return "loading the seccomp filter";
        case ChildStep::Exec: return "executing the command";
    }
    return "unknown step";
}

namespace {

using raw::call;

// Exit code for the trampoline's exit(2) when setup fails; the parent
// reports the real reason from the ChildReport.
constexpr int setup_failed_exit = 125;

// A step's outcome: 0 or -errno, plus the path it concerned.
struct StepResult {
    long rc = 0;
    const char* detail = nullptr;
};

size_t bounded_length(const char* s, size_t max) noexcept {
    size_t n = 0;
    while (s && n < max && s[n]) ++n;
    return n;
}

void write_report(const ChildPlan& plan, ChildReport::Kind kind, ChildStep step, long err,
                  const char* detail) noexcept {
    ChildReport report;
    report.kind = kind;
    report.step = static_cast<uint32_t>(step);
    report.err = static_cast<int32_t>(err);
    size_t n = bounded_length(detail, sizeof report.detail - 1);
    for (size_t i = 0; i < n; ++i) report.detail[i] = detail[i];
    for (size_t i = n; i < sizeof report.detail; ++i) report.detail[i] = 0;
    long rc;
    do {
        rc = call(SYS_write, plan.report_fd, &report, sizeof report);
    } while (rc == -EINTR);
}

[[noreturn]] void fail(const ChildPlan& plan, ChildStep step, long rc, const char* detail) noexcept {
    write_report(plan, ChildReport::Failed, step, -rc, detail);
    call(SYS_exit_group, setup_failed_exit);
    __builtin_unreachable();
}

// Reads the parent's one-byte go-ahead. EOF means the parent is gone.
long wait_for_parent(const ChildPlan& plan) noexcept {
    char byte;
    long rc;
    do {
        rc = call(SYS_read, plan.control_fd, &byte, 1);
    } while (rc == -EINTR);
    if (rc == 0) return -EPIPE;
    return rc < 0 ? rc : 0;
}

// close_range(2) over [3, ~0U] except the control and report pipes.
long close_all_but_handshake(const ChildPlan& plan) noexcept {
    unsigned a = static_cast<unsigned>(plan.control_fd), b = static_cast<unsigned>(plan.report_fd);
    if (a > b) {
        unsigned t = a;
        a = b;
        b = t;
    }
    long rc = 0;
    if (a > 3 && (rc = call(kabi::sys_close_range, 3, a - 1, 0)) < 0) return rc;
    if (b > a + 1 && (rc = call(kabi::sys_close_range, a + 1, b - 1, 0)) < 0) return rc;
    return call(kabi::sys_close_range, b + 1, ~0U, 0);
}

long setup_stdio(const ChildPlan& plan) noexcept {
    for (int target = 0; target < 3; ++target) {
        long rc = call(SYS_dup3, plan.stdio[target], target, 0);
        // dup3 refuses oldfd == newfd; then only clear CLOEXEC.
        if (rc == -EINVAL) rc = call(SYS_fcntl, target, F_SETFD, 0);
        if (rc < 0) return rc;
    }
    return 0;
}

// The kernel's struct sigaction for rt_sigaction(2) on x86_64.
struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
};

// The parent blocked every signal around clone3; handlers it installed
// (Asio's signal_set) must not run here, so reset all to default before
// unblocking. execve would reset caught ones anyway, but not ignored ones.
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

long make_dir(const char* path, uint32_t mode) noexcept {
    long rc = call(SYS_mkdir, path, mode);
    return rc == -EEXIST ? 0 : rc;
}

long make_file(const char* path, uint32_t mode) noexcept {
    long fd = call(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return fd;
    call(SYS_close, fd);
    return 0;
}

long set_attr(const char* path, uint64_t attr_set, bool recursive) noexcept {
    if (attr_set == 0) return 0;
    kabi::MountAttr attr{attr_set, 0, 0, 0};
    return call(kabi::sys_mount_setattr, AT_FDCWD, path, recursive ? kabi::at_recursive : 0u, &attr,
                sizeof attr);
}

long bind_mount(const MountOp& op) noexcept {
    long rc = op.target_is_file ? make_file(op.target, 0644) : make_dir(op.target, 0755);
    if (rc < 0) return rc;
    unsigned long flags = MS_BIND | (op.recursive ? MS_REC : 0);
    rc = call(SYS_mount, op.source, op.target, nullptr, flags, nullptr);
    if (rc < 0) return rc;
    return set_attr(op.target, op.attr_set, op.recursive);
}

long write_file(const MountOp& op) noexcept {
    long fd = call(SYS_openat, AT_FDCWD, op.target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                   op.mode);
    if (fd < 0) return fd;
    size_t done = 0;
    while (done < op.data_len) {
        long n = call(SYS_write, fd, op.data + done, op.data_len - done);
        if (n == -EINTR) continue;
        if (n < 0) {
            call(SYS_close, fd);
            return n;
        }
        done += static_cast<size_t>(n);
    }
    long rc = op.chown ? call(SYS_fchown, fd, op.owner_uid, op.owner_gid) : 0;
    if (rc == 0) rc = call(SYS_fchmod, fd, op.mode);  // exact mode, whatever the umask
    call(SYS_close, fd);
    return rc;
}

long mount_fs(const MountOp& op, const char* fstype) noexcept {
    long rc = make_dir(op.target, 0755);
    if (rc < 0) return rc;
    rc = call(SYS_mount, fstype, op.target, fstype, op.flags, op.data);
    if (rc < 0) return rc;
    return set_attr(op.target, op.attr_set, false);
}

long apply_mount(const MountOp& op) noexcept {
    switch (op.kind) {
        case MountKind::Mkdir: return make_dir(op.target, op.mode);
        case MountKind::Bind: return bind_mount(op);
        case MountKind::Tmpfs: return mount_fs(op, "tmpfs");
        case MountKind::Proc: return mount_fs(op, "proc");
        case MountKind::Sysfs: return mount_fs(op, "sysfs");
        case MountKind::Devpts: return mount_fs(op, "devpts");
        case MountKind::Symlink: {
            long rc = call(SYS_symlink, op.source, op.target);
            return rc == -EEXIST ? 0 : rc;
        }
        case MountKind::WriteFile: return write_file(op);
        case MountKind::MaskFile:
            return call(SYS_mount, "/dev/null", op.target, nullptr, MS_BIND, nullptr);
        case MountKind::MaskDir:
            return call(SYS_mount, "tmpfs", op.target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        "size=0,nr_inodes=1,mode=555");
        case MountKind::SetReadOnly: return set_attr(op.target, kabi::mount_attr_rdonly, false);
        case MountKind::ReadOnly: {
            long rc = call(SYS_mount, op.target, op.target, nullptr, MS_BIND | MS_REC, nullptr);
            if (rc < 0) return rc;
            return set_attr(op.target, kabi::mount_attr_rdonly | kabi::mount_attr_nosuid | kabi::mount_attr_nodev,
                            true);
        }
    }
    return -EINVAL;
}

StepResult build_root(const ChildPlan& plan) noexcept {
    // Nothing we mount may propagate back to the host (mount_namespaces(7)).
    long rc = call(SYS_mount, "none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    if (rc < 0) fail(plan, ChildStep::Propagation, rc, "/");
    rc = call(SYS_mount, "tmpfs", plan.staging, "tmpfs", MS_NOSUID | MS_NODEV, plan.staging_options);
    if (rc < 0) fail(plan, ChildStep::StagingRoot, rc, plan.staging);
    for (size_t i = 0; i < plan.mount_count; ++i) {
        const MountOp& op = plan.mounts[i];
        rc = apply_mount(op);
        if (rc == -ENOENT && op.optional) continue;
        if (rc < 0) return {rc, op.target};
    }
    return {};
}

// pivot_root(".", ".") stacks the old root under the new one; detaching
// "." then drops it without needing a put_old directory (pivot_root(2)).
long enter_root(const ChildPlan& plan) noexcept {
    long rc = call(SYS_chdir, plan.staging);
    if (rc < 0) return rc;
    rc = call(SYS_pivot_root, ".", ".");
    if (rc < 0) return rc;
    rc = call(SYS_umount2, ".", MNT_DETACH);
    if (rc < 0) return rc;
    return call(SYS_chdir, "/");
}

long bring_up_loopback() noexcept {
    long fd = call(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fd;
    struct ifreq req {};
    req.ifr_name[0] = 'l';
    req.ifr_name[1] = 'o';
    long rc = call(SYS_ioctl, fd, SIOCGIFFLAGS, &req);
    if (rc == 0) {
        req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
        rc = call(SYS_ioctl, fd, SIOCSIFFLAGS, &req);
    }
    call(SYS_close, fd);
    return rc;
}

StepResult apply_rlimits(const ChildPlan& plan) noexcept {
    for (size_t i = 0; i < plan.rlimit_count; ++i) {
        struct {
            uint64_t cur, max;
        } limit{plan.rlimits[i].soft, plan.rlimits[i].hard};
        long rc = call(SYS_prlimit64, 0, plan.rlimits[i].resource, &limit, nullptr);
        if (rc < 0) return {rc, nullptr};
    }
    return {};
}

StepResult add_landlock_rules(const ChildPlan& plan) noexcept {
    for (size_t i = 0; i < plan.landlock_rule_count; ++i) {
        const LandlockRule& rule = plan.landlock_rules[i];
        long fd = call(SYS_openat, AT_FDCWD, rule.path, O_PATH | O_CLOEXEC);
        if (fd == -ENOENT) continue;  // rules name paths that may not exist in this root
        if (fd < 0) return {fd, rule.path};
        kabi::LandlockPathBeneathAttr attr{rule.access, static_cast<int32_t>(fd)};
        long rc = call(kabi::sys_landlock_add_rule, plan.landlock_ruleset_fd, kabi::landlock_rule_path_beneath,
                       &attr, 0);
        call(SYS_close, fd);
        if (rc < 0) return {rc, rule.path};
    }
    return {};
}

long drop_bounding_set(const ChildPlan& plan) noexcept {
    for (int cap = 0; cap <= plan.cap_last; ++cap) {
        if (plan.caps_bounding & (1ULL << cap)) continue;
        long rc = call(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
        if (rc < 0 && rc != -EINVAL) return rc;
    }
    return 0;
}

long set_capabilities(const ChildPlan& plan) noexcept {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    for (int i = 0; i < 2; ++i) {
        auto word = static_cast<uint32_t>(plan.caps_keep >> (32 * i));
        data[i].effective = data[i].permitted = data[i].inheritable = word;
    }
    return call(SYS_capset, &header, data);
}

long set_ambient(const ChildPlan& plan) noexcept {
    long rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (rc < 0) return rc;
    for (int cap = 0; cap <= plan.cap_last; ++cap) {
        if (!(plan.caps_keep & (1ULL << cap))) continue;
        rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
        if (rc < 0) return rc;
    }
    return 0;
}

void become_workload_user(const ChildPlan& plan) noexcept {
    long rc = drop_bounding_set(plan);
    if (rc < 0) fail(plan, ChildStep::BoundingSet, rc, nullptr);
    if (plan.caps_keep) {
        rc = call(SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0);
        if (rc < 0) fail(plan, ChildStep::KeepCaps, rc, nullptr);
    }
    if (plan.may_setgroups) {
        rc = call(SYS_setgroups, plan.group_count, plan.groups);
        if (rc < 0) fail(plan, ChildStep::Groups, rc, nullptr);
    }
    rc = call(SYS_setresgid, plan.gid, plan.gid, plan.gid);
    if (rc < 0) fail(plan, ChildStep::SetGid, rc, nullptr);
    rc = call(SYS_setresuid, plan.uid, plan.uid, plan.uid);
    if (rc < 0) fail(plan, ChildStep::SetUid, rc, nullptr);
    rc = set_capabilities(plan);
    if (rc < 0) fail(plan, ChildStep::Capabilities, rc, nullptr);
    rc = set_ambient(plan);
    if (rc < 0) fail(plan, ChildStep::AmbientCaps, rc, nullptr);
}

void exec_program(const ChildPlan& plan) noexcept {
    long first_error = -ENOENT;
    for (size_t i = 0; i < plan.exec_candidate_count; ++i) {
        long rc = call(SYS_execve, plan.exec_candidates[i], plan.argv, plan.envp);
        // execvp(3)'s rule: keep looking after ENOENT/ENOTDIR, but remember
        // that a candidate existed and could not be executed.
        if (rc != -ENOENT && rc != -ENOTDIR && first_error == -ENOENT) first_error = rc;
    }
    fail(plan, ChildStep::Exec, first_error, plan.argv[0]);
}

}  // namespace

extern "C" int nucleus_child_main(void* opaque) noexcept {
    const ChildPlan& plan = *static_cast<const ChildPlan*>(opaque);

    // Without this, a parent killed during setup would leave us blocked on a
    // pipe whose other end we hold ourselves (no CLONE_FILES: a copied table).
    call(SYS_close, plan.control_peer_fd);
    call(SYS_close, plan.report_peer_fd);
    long rc = wait_for_parent(plan);  // 1: the parent has written our id maps
    if (rc < 0) fail(plan, ChildStep::WaitMaps, rc, nullptr);
    if ((rc = call(SYS_setresgid, plan.setup_gid, plan.setup_gid, plan.setup_gid)) < 0 ||
        (rc = call(SYS_setresuid, plan.setup_uid, plan.setup_uid, plan.setup_uid)) < 0)
        fail(plan, ChildStep::SetupIdentity, rc, nullptr);
    if ((rc = setup_stdio(plan)) < 0) fail(plan, ChildStep::Stdio, rc, nullptr);
    if ((rc = call(SYS_setsid)) < 0) fail(plan, ChildStep::Session, rc, nullptr);
    if ((rc = reset_signals()) < 0) fail(plan, ChildStep::Signals, rc, nullptr);

    StepResult step = build_root(plan);
    if (step.rc < 0) fail(plan, ChildStep::Mount, step.rc, step.detail);
    if ((rc = enter_root(plan)) < 0) fail(plan, ChildStep::PivotRoot, rc, plan.staging);
    if ((rc = set_attr("/", kabi::mount_attr_rdonly, false)) < 0) fail(plan, ChildStep::RootReadOnly, rc, "/");

    if (plan.hostname) {
        rc = call(SYS_sethostname, plan.hostname, bounded_length(plan.hostname, 64));
        if (rc < 0) fail(plan, ChildStep::Hostname, rc, plan.hostname);
    }
    if (plan.bring_up_loopback && (rc = bring_up_loopback()) < 0) fail(plan, ChildStep::Loopback, rc, "lo");
    if (plan.network && (rc = setup_child_network(*plan.network, &step.detail)) < 0)
        fail(plan, ChildStep::Network, rc, step.detail);
    step = apply_rlimits(plan);
    if (step.rc < 0) fail(plan, ChildStep::Rlimits, step.rc, nullptr);
    if ((rc = call(SYS_chdir, plan.workdir)) < 0) fail(plan, ChildStep::Workdir, rc, plan.workdir);
    if (plan.landlock_ruleset_fd >= 0) {
        step = add_landlock_rules(plan);
        if (step.rc < 0) fail(plan, ChildStep::LandlockRules, step.rc, step.detail);
    }

    become_workload_user(plan);

    if ((rc = call(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0) fail(plan, ChildStep::NoNewPrivs, rc, nullptr);
    if (plan.landlock_ruleset_fd >= 0) {
        rc = call(kabi::sys_landlock_restrict_self, plan.landlock_ruleset_fd, 0);
        if (rc < 0) fail(plan, ChildStep::LandlockRestrict, rc, nullptr);
        call(SYS_close, plan.landlock_ruleset_fd);
    }
    // After the credential changes above, which would clear it (prctl(2)).
    if (plan.die_with_parent && (rc = call(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) < 0)
        fail(plan, ChildStep::ParentDeath, rc, nullptr);
    // Everything but stdio and the handshake pipes (both CLOEXEC) closes
    // now, not at exec: while the parent verifies it, the child must not
    // hold the supervisor's descriptors, such as other sandboxes' output
    // pipes, whose readers would see EOF only once it has exec'd.
    if ((rc = close_all_but_handshake(plan)) < 0) fail(plan, ChildStep::CloseFds, rc, nullptr);

    // 2: tell the parent we are set up; it verifies mounts and credentials
    // from outside and sends the second byte (EOF if it died or refused).
    write_report(plan, ChildReport::Ready, ChildStep::Ready, 0, nullptr);
    if ((rc = wait_for_parent(plan)) < 0) fail(plan, ChildStep::Ready, rc, nullptr);

    if (plan.seccomp_filter) {
        sock_fprog prog{plan.seccomp_len, const_cast<sock_filter*>(static_cast<const sock_filter*>(plan.seccomp_filter))};
        rc = call(SYS_seccomp, SECCOMP_SET_MODE_FILTER, plan.seccomp_flags, &prog);
        if (rc < 0) fail(plan, ChildStep::Seccomp, rc, nullptr);
        // The trace filter lets exactly this write through (write on the
        // report fd); everything after it, execve included, waits for the
        // parent to answer on the listener.
        if (plan.seccomp_listener) write_report(plan, ChildReport::Listener, ChildStep::Seccomp, rc, nullptr);
    }
    exec_program(plan);  // 3: the report pipe closes on exec: EOF tells the parent
    return setup_failed_exit;
}

}  // namespace nucleus::isolation
