// The default agent seccomp policy: an allowlist.
//
// Action for everything not listed: ENOSYS, not EPERM. Programs and libc
// probe for newer syscalls and fall back only on ENOSYS (glibc's clone3 ->
// clone, faccessat2, close_range; libuv's io_uring): EPERM would break those
// fallbacks without adding safety, since the call fails either way.
//
// Syscalls that an attacker reaches for first (new namespaces, mounts, the
// keyring, BPF, perf, ptrace, module and kexec loading, userfaultfd, raw
// handles) are listed explicitly with EPERM, so a refusal is unambiguous.
// clone3 gets ENOSYS because its flags sit behind a pointer seccomp cannot
// read; glibc then uses clone, whose namespace flags *are* checked. io_uring
// is refused (ENOSYS) because its syscalls bypass per-syscall filtering.
#include "isolation/seccomp.hpp"

#include <linux/sched.h>
#include <sys/personality.h>

#include "isolation/kernel_abi.hpp"

namespace nucleus::isolation {

namespace {

constexpr const char* allowed_syscalls[] = {
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "cachestat", "capget", "capset",
    "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fallocate", "fanotify_mark", "fchdir",
    "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate", "futex",
    "futex_requeue", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "get_mempolicy",
    "get_robust_list", "get_thread_area", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "geteuid",
    "getgid", "getgroups", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "getsockname",
    "getsockopt", "gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
    "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen",
    "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise", "map_shadow_stack",
    "mbind", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "nanosleep", "newfstatat", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
    "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
    "sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg",
    "sendmsg", "sendto", "set_mempolicy", "set_robust_list", "set_thread_area", "set_tid_address",
    "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer", "setpgid", "setpriority", "setregid",
    "setresgid", "setresuid", "setreuid", "setrlimit", "setsid", "setsockopt", "setuid", "setxattr", "shmat",
    "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socket", "socketpair",
    "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate",
    "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4",
    "waitid", "write", "writev",
};

constexpr const char* refused_syscalls[] = {
    "acct", "add_key", "adjtimex", "bpf", "chroot", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
    "lookup_dcookie", "memfd_secret", "modify_ldt", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pidfd_getfd",
    "pivot_root", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace", "query_module",
    "quotactl", "quotactl_fd", "reboot", "request_key", "setdomainname", "sethostname", "setns",
    "settimeofday", "swapoff", "swapon", "syslog", "umount2", "unshare", "uselib", "userfaultfd", "vhangup",
    "_sysctl",
};

constexpr const char* unavailable_syscalls[] = {"clone3", "io_uring_enter", "io_uring_register", "io_uring_setup"};

constexpr uint64_t namespace_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                     CLONE_NEWNET | CLONE_NEWCGROUP | kabi::clone_newtime;

// personality(2) values that only change emulation details (Docker's list).
constexpr uint64_t per_linux32 = PER_LINUX32, uname26 = UNAME26;
constexpr uint64_t allowed_personalities[] = {PER_LINUX, per_linux32, uname26, per_linux32 | uname26,
                                              kabi::personality_query};

constexpr int eperm = EPERM;
constexpr int enosys = ENOSYS;

SeccompPolicy build_default_policy() {
    using Kind = SeccompAction::Kind;
    using Op = SeccompArgCondition::Op;
    SeccompPolicy policy;
    policy.default_action = {Kind::Errno, enosys};
    for (const char* name : allowed_syscalls) policy.rules.push_back({name, {Kind::Allow, 0}, {}});
    for (const char* name : refused_syscalls) policy.rules.push_back({name, {Kind::Errno, eperm}, {}});
    for (const char* name : unavailable_syscalls) policy.rules.push_back({name, {Kind::Errno, enosys}, {}});
    // clone: threads and plain forks yes, new namespaces no.
    policy.rules.push_back({"clone", {Kind::Allow, 0}, {{0, Op::MaskedEqual, namespace_flags, 0}}});
    for (uint64_t bit = 1; bit != 0; bit <<= 1) {
        if (namespace_flags & bit)
            policy.rules.push_back({"clone", {Kind::Errno, eperm}, {{0, Op::MaskedEqual, bit, bit}}});
    }
    for (uint64_t persona : allowed_personalities)
        policy.rules.push_back({"personality", {Kind::Allow, 0}, {{0, Op::Equal, persona, 0}}});
    return policy;
}

}  // namespace

bool default_policy_allows(const std::string& name) {
    for (const auto& rule : default_seccomp_policy().rules)
        if (rule.syscall == name && rule.action.kind == SeccompAction::Kind::Allow) return true;
    return false;
}

const SeccompPolicy& default_seccomp_policy() {
    static const SeccompPolicy policy = build_default_policy();
    return policy;
}

}  // namespace nucleus::isolation
