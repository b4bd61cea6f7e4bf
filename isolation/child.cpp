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
// The same rules hold for isolation/child_steps.cpp, the steps this script
// shares with a process joining the sandbox (isolation/join_child.cpp).
// The script is a straight sequence; the numbered steps are ChildStep.
#include <cerrno>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "isolation/child_plan.hpp"
#include "isolation/child_steps.hpp"
#include "isolation/kernel_abi.hpp"
#include "isolation/raw_syscall.hpp"

namespace nucleus::isolation {

namespace {

using raw::call;
using steps::Outcome;
using steps::require;

// Reads the parent's one-byte go-ahead. EOF means the parent is gone.
Outcome wait_for_parent(const ChildPlan& plan, ChildStep step) noexcept {
    char byte;
    long rc;
    do {
        rc = call(SYS_read, plan.control_fd, &byte, 1);
    } while (rc == -EINTR);
    if (rc == 0) return {step, -EPIPE};
    return {step, rc < 0 ? rc : 0};
}

// A mapped id, so that files the child creates on its own tmpfs have an
// fsuid the user namespace can represent (else EOVERFLOW).
Outcome setup_identity(const ChildPlan& plan) noexcept {
    long rc = call(SYS_setresgid, plan.setup_gid, plan.setup_gid, plan.setup_gid);
    if (rc == 0) rc = call(SYS_setresuid, plan.setup_uid, plan.setup_uid, plan.setup_uid);
    return {ChildStep::SetupIdentity, rc};
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
    kabi::MountAttr attr{.attr_set = attr_set, .attr_clr = 0, .propagation = 0, .userns_fd = 0};
    return call(kabi::sys_mount_setattr, AT_FDCWD, path, recursive ? kabi::at_recursive : 0u, &attr, sizeof attr);
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
    long fd = call(SYS_openat, AT_FDCWD, op.target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, op.mode);
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
        case MountKind::Mkdir:
            return make_dir(op.target, op.mode);
        case MountKind::AttachFd: {
            long rc = make_dir(op.target, 0755);
            if (rc < 0) return rc;
            return call(kabi::sys_move_mount, op.fd, "", AT_FDCWD, op.target, kabi::move_mount_f_empty_path);
        }
        case MountKind::Bind:
            return bind_mount(op);
        case MountKind::Tmpfs:
            return mount_fs(op, "tmpfs");
        case MountKind::Proc:
            return mount_fs(op, "proc");
        case MountKind::Sysfs:
            return mount_fs(op, "sysfs");
        case MountKind::Devpts:
            return mount_fs(op, "devpts");
        case MountKind::Symlink: {
            long rc = call(SYS_symlink, op.source, op.target);
            return rc == -EEXIST ? 0 : rc;
        }
        case MountKind::WriteFile:
            return write_file(op);
        case MountKind::MaskFile:
            return call(SYS_mount, "/dev/null", op.target, nullptr, MS_BIND, nullptr);
        case MountKind::MaskDir:
            return call(SYS_mount, "tmpfs", op.target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        "size=0,nr_inodes=1,mode=555");
        case MountKind::SetAttr:
            return set_attr(op.target, op.attr_set, op.recursive);
        case MountKind::ReadOnly: {
            long rc = call(SYS_mount, op.target, op.target, nullptr, MS_BIND | MS_REC, nullptr);
            if (rc < 0) return rc;
            return set_attr(op.target, kabi::mount_attr_rdonly | kabi::mount_attr_nosuid | kabi::mount_attr_nodev,
                            true);
        }
    }
    return -EINVAL;
}

Outcome build_root(const ChildPlan& plan) noexcept {
    // Nothing we mount may propagate back to the host (mount_namespaces(7)).
    long rc = call(SYS_mount, "none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    if (rc < 0) return {ChildStep::Propagation, rc, "/"};
    rc = call(SYS_mount, "tmpfs", plan.staging, "tmpfs", MS_NOSUID | MS_NODEV, plan.staging_options);
    if (rc < 0) return {ChildStep::StagingRoot, rc, plan.staging};
    for (size_t i = 0; i < plan.mount_count; ++i) {
        const MountOp& op = plan.mounts[i];
        rc = apply_mount(op);
        if (rc == -ENOENT && op.optional) continue;
        if (rc < 0) return {ChildStep::Mount, rc, op.target};
    }
    return {ChildStep::Mount};
}

// pivot_root(".", ".") stacks the old root under the new one; detaching
// "." then drops it without needing a put_old directory (pivot_root(2)).
Outcome enter_root(const ChildPlan& plan) noexcept {
    long rc = call(SYS_chdir, plan.staging);
    if (rc == 0) rc = call(SYS_pivot_root, ".", ".");
    if (rc == 0) rc = call(SYS_umount2, ".", MNT_DETACH);
    if (rc == 0) rc = call(SYS_chdir, "/");
    return {ChildStep::PivotRoot, rc, plan.staging};
}

Outcome root_read_only() noexcept {
    return {ChildStep::RootReadOnly, set_attr("/", kabi::mount_attr_rdonly, false), "/"};
}

Outcome set_hostname(const ChildPlan& plan) noexcept {
    if (!plan.hostname) return {ChildStep::Hostname};
    long rc = call(SYS_sethostname, plan.hostname, steps::bounded_length(plan.hostname, 64));
    return {ChildStep::Hostname, rc, plan.hostname};
}

// SIOCSIFFLAGS on "lo" (netdevice(7)): a new network namespace starts with
// its loopback down.
// --network egress/bridge: addresses, routes and rules inside the new
// network namespace (isolation/child_net.hpp).
Outcome set_up_network(const ChildPlan& plan) noexcept {
    if (!plan.network) return {ChildStep::Network};
    const char* detail = nullptr;
    long rc = setup_child_network(*plan.network, &detail);
    return {ChildStep::Network, rc, detail};
}

Outcome bring_up_loopback(const ChildPlan& plan) noexcept {
    if (!plan.bring_up_loopback) return {ChildStep::Loopback};
    long fd = call(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return {ChildStep::Loopback, fd, "lo"};
    struct ifreq req {};
    req.ifr_name[0] = 'l';
    req.ifr_name[1] = 'o';
    long rc = call(SYS_ioctl, fd, SIOCGIFFLAGS, &req);
    if (rc == 0) {
        req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
        rc = call(SYS_ioctl, fd, SIOCSIFFLAGS, &req);
    }
    call(SYS_close, fd);
    return {ChildStep::Loopback, rc, "lo"};
}

}  // namespace

extern "C" int nucleus_child_main(void* opaque) noexcept {
    const ChildPlan& plan = *static_cast<const ChildPlan*>(opaque);
    const int out = plan.report_fd;

    // Without this, a parent killed during setup would leave us blocked on a
    // pipe whose other end we hold ourselves (no CLONE_FILES: a copied table).
    call(SYS_close, plan.control_peer_fd);
    call(SYS_close, plan.report_peer_fd);
    require(out, wait_for_parent(plan, ChildStep::WaitMaps));  // 1: the parent has written our id maps
    require(out, setup_identity(plan));
    require(out, steps::stdio(plan.stdio));
    require(out, steps::new_session());
    require(out, steps::default_signals());

    require(out, build_root(plan));
    require(out, enter_root(plan));
    require(out, root_read_only());
    require(out, set_hostname(plan));
    require(out, bring_up_loopback(plan));
    require(out, set_up_network(plan));

    require(out, steps::rlimits(plan));
    require(out, steps::workdir(plan.workdir));
    require(out, steps::landlock_rules(plan, plan.landlock_ruleset_fd));
    require(out, steps::drop_privileges(plan, plan.landlock_ruleset_fd));
    require(out, steps::parent_death_signal(plan));
    // Everything but stdio and the handshake pipes (both CLOEXEC) closes
    // now, not at exec: while the parent verifies it, the child must not
    // hold the supervisor's descriptors, such as other sandboxes' output
    // pipes, whose readers would see EOF only once it has exec'd.
    require(out, steps::close_inherited(plan.control_fd, plan.report_fd));
    // The built-in filter goes on now, while the parent verifies; any other
    // (a user's profile, the trace filter) after the go-ahead, when execve is
    // all that is left for it to allow.
    if (plan.seccomp_before_ready) require(out, steps::seccomp(plan));

    // 2: tell the parent we are set up; it verifies mounts and credentials
    // from outside and sends the second byte (EOF if it died or refused).
    steps::report(out, ChildReport::Ready, ChildStep::Ready, 0, nullptr);
    require(out, wait_for_parent(plan, ChildStep::Ready));

    if (!plan.seccomp_before_ready) {
        Outcome filter = steps::seccomp(plan);
        require(out, filter);
        // The trace filter lets exactly this write through (write on the
        // report fd); everything after it, execve included, waits for the
        // parent to answer on the listener.
        if (plan.seccomp_listener) steps::report(out, ChildReport::Listener, ChildStep::Seccomp, filter.rc, nullptr);
    }
    steps::fail(out, steps::exec(plan.program));  // 3: the report pipe closes on exec: EOF tells the parent
}

}  // namespace nucleus::isolation
