// Filesystems made by the parent, attached nowhere: a descriptor is the only
// way in until the sandbox's child attaches it in its own mount namespace
// (MountKind::AttachFd, move_mount(2)). Nothing is mounted in the host's
// namespace, so nothing is left to unmount after a crash, and the parent
// keeps reaching the files through the descriptor after the sandbox is gone
// (a copy-in-out workspace is synced back from it).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "io/unique_fd.hpp"

namespace nucleus::isolation {

struct TmpfsOptions {
    uint64_t size_bytes = 0;  // 0: the kernel's default (half of RAM)
    uid_t uid = 0;  // owner of the root directory (host ids)
    gid_t gid = 0;
    mode_t mode = 0755;
    bool noexec = true;  // nosuid and nodev always
};

// fsopen("tmpfs") + fsconfig + fsmount. Needs CAP_SYS_ADMIN in the initial
// user namespace (root); an unprivileged caller gets EPERM.
Result<io::unique_fd> detached_tmpfs(const TmpfsOptions& options);

// A directory descriptor for reading and writing inside a detached mount
// (the mount's own descriptor is an O_PATH one).
Result<io::unique_fd> open_mount_root(int mount_fd);

// Makes a detached mount read-only (mount_setattr on the descriptor).
Status make_read_only(int mount_fd);

}  // namespace nucleus::isolation
