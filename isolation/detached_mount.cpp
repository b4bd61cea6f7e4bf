#include "isolation/detached_mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "isolation/kernel_abi.hpp"

namespace nucleus::isolation {

Result<io::unique_fd> detached_tmpfs(const TmpfsOptions& options) {
    int fs = ::fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return Error::from_errno("fsopen tmpfs");
    io::unique_fd context(fs);
    auto set = [&](const char* key, const std::string& value) -> Status {
        if (::fsconfig(fs, FSCONFIG_SET_STRING, key, value.c_str(), 0) < 0)
            return Error::from_errno(std::string("tmpfs option ") + key + "=" + value);
        return {};
    };
    if (options.size_bytes) NUCLEUS_TRY(set("size", std::to_string(options.size_bytes)));
    char mode[8];
    std::snprintf(mode, sizeof mode, "%o", static_cast<unsigned>(options.mode & 07777));
    NUCLEUS_TRY(set("mode", mode));
    NUCLEUS_TRY(set("uid", std::to_string(options.uid)));
    NUCLEUS_TRY(set("gid", std::to_string(options.gid)));
    if (::fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) return Error::from_errno("creating a tmpfs");
    unsigned attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (options.noexec ? MOUNT_ATTR_NOEXEC : 0);
    int mount_fd = ::fsmount(fs, FSMOUNT_CLOEXEC, attrs);
    if (mount_fd < 0) return Error::from_errno("fsmount tmpfs");
    return io::unique_fd(mount_fd);
}

Result<io::unique_fd> open_mount_root(int mount_fd) {
    int fd = ::openat(mount_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Error::from_errno("opening the root of a detached mount");
    return io::unique_fd(fd);
}

Status make_read_only(int mount_fd) {
    kabi::MountAttr attr{kabi::mount_attr_rdonly, 0, 0, 0};
    if (::syscall(kabi::sys_mount_setattr, mount_fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        return Error::from_errno("making a detached mount read-only");
    return {};
}

}  // namespace nucleus::isolation
