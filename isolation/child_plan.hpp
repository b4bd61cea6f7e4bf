// The plain data the child executes after clone3.
//
// Built and validated entirely in the parent (isolation/launch_plan.cpp);
// every pointer here points into storage the parent's LaunchPlan owns and
// keeps alive until the child has exec'd or exited. The child only reads it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/types.h>

#include "isolation/child_report.hpp"
#include "isolation/child_net.hpp"

namespace nucleus::isolation {

enum class MountKind : uint8_t {
    Mkdir,  // mkdir target (mode), EEXIST is fine
    AttachFd,  // move_mount the detached mount `fd` (made by the parent) to target
    Bind,  // bind source -> target (created as dir or file), then setattr
    Tmpfs,  // tmpfs at target with data as options
    Proc,  // a new procfs for the sandbox's PID namespace
    Sysfs,  // a read-only sysfs (needs the sandbox's own netns)
    Devpts,  // a new devpts instance (newinstance,ptmxmode=0666)
    Symlink,  // symlink(source, target)
    WriteFile,  // create target (mode) with data[0..data_len)
    MaskFile,  // bind /dev/null over a file (OCI maskedPaths)
    MaskDir,  // empty read-only tmpfs over a directory (OCI maskedPaths)
    ReadOnly,  // bind target onto itself and make it read-only (OCI readonlyPaths)
    SetAttr,  // mount_setattr(target, attr_set), recursively if asked: flags set after filling a mount
};

struct MountOp {
    MountKind kind;
    bool recursive = true;  // MS_REC / AT_RECURSIVE
    bool optional = false;  // a missing source or target is not an error
    bool target_is_file = false;
    uint32_t mode = 0755;
    bool chown = false;  // WriteFile: give the file to owner_uid/owner_gid
    uint32_t owner_uid = 0;
    uint32_t owner_gid = 0;
    unsigned long flags = 0;  // extra MS_* for mount(2)
    uint64_t attr_set = 0;  // MOUNT_ATTR_* applied after mounting
    const char* source = nullptr;
    const char* target = nullptr;  // absolute, under the staging root
    const char* data = nullptr;
    size_t data_len = 0;
    int fd = -1;  // AttachFd: owned by the parent, open in the child by inheritance
};

struct LandlockRule {
    const char* path;  // inside the sandbox (after pivot_root)
    uint64_t access;
};

struct RlimitSetting {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

// The program a script execs: execvp(3)'s search done in the parent.
struct ExecProgram {
    const char* const* candidates = nullptr;  // full paths to try in order
    size_t candidate_count = 0;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
};

struct ChildPlan {
    // Handshake (see isolation/spawn.cpp for the protocol).
    int control_fd = -1;  // read end: parent -> child
    int report_fd = -1;  // write end, CLOEXEC: child -> parent
    // The parent's ends, which the child's copied fd table also holds: the
    // child closes them first, or it would never see EOF when the parent dies.
    int control_peer_fd = -1;
    int report_peer_fd = -1;
    int stdio[3] = {-1, -1, -1};

    // Filesystem
    const char* staging = nullptr;  // host path where the new root is assembled
    const char* staging_options = nullptr;
    const MountOp* mounts = nullptr;
    size_t mount_count = 0;

    // Identity and host. The setup identity is a mapped id the child takes
    // right after the maps are written: files it creates on its own tmpfs
    // need an fsuid mapped in the user namespace (else EOVERFLOW).
    uid_t setup_uid = 0;
    gid_t setup_gid = 0;
    const char* hostname = nullptr;
    bool bring_up_loopback = false;
    const ChildNetwork* network = nullptr;  // routes, rules, sockets (isolation/child_net.hpp)
    uid_t uid = 0;
    gid_t gid = 0;
    bool may_setgroups = true;  // false when setgroups is "deny"
    const gid_t* groups = nullptr;
    size_t group_count = 0;

    // Privileges
    const RlimitSetting* rlimits = nullptr;
    size_t rlimit_count = 0;
    int cap_last = 40;  // /proc/sys/kernel/cap_last_cap
    uint64_t caps_keep = 0;  // effective = permitted = inheritable = ambient
    bool die_with_parent = true;  // PR_SET_PDEATHSIG(SIGKILL) before exec
    uint64_t caps_bounding = 0;  // bounding set (a superset of caps_keep)
    int landlock_ruleset_fd = -1;  // -1: Landlock not applied
    const LandlockRule* landlock_rules = nullptr;
    size_t landlock_rule_count = 0;
    const void* seccomp_filter = nullptr;  // struct sock_filter[]
    unsigned short seccomp_len = 0;
    unsigned seccomp_flags = 0;
    // Trace mode: the filter notifies a listener (SECCOMP_FILTER_FLAG_NEW_LISTENER)
    // and the child reports the listener's fd number before exec.
    bool seccomp_listener = false;
    // The filter allows what the child still does before exec (the
    // handshake's write and read): it is loaded before the Ready report, while
    // the parent verifies, instead of after the go-ahead.
    bool seccomp_before_ready = false;

    // Program
    const char* workdir = nullptr;
    ExecProgram program;
};

// The child's entry point (isolation/child.cpp), run on its own stack by the
// clone3 trampoline. Never returns on success (execve); returns the exit
// code for the trampoline's exit(2) on failure.
extern "C" int nucleus_child_main(void* plan) noexcept;

}  // namespace nucleus::isolation
