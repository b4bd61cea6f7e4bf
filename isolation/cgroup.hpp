// A sandbox's cgroup v2 directory: created before clone, entered with
// CLONE_INTO_CGROUP, killed and removed at teardown.
//
// Works wherever cgroup2 is mounted (a pure v2 host at /sys/fs/cgroup, or a
// hybrid host's /sys/fs/cgroup/unified): the mount is found in
// /proc/self/mountinfo.
#pragma once

#include <optional>
#include <string>

#include "io/unique_fd.hpp"

namespace nucleus::isolation {

// The cgroup2 mount point, if any.
std::optional<std::string> find_cgroup2_mount(const std::string& mountinfo);
Result<std::string> find_cgroup2_mount();

class SandboxCgroup {
public:
    // mkdir <parent>/<name> and open it O_PATH for CLONE_INTO_CGROUP.
    static Result<SandboxCgroup> create(const std::string& parent, const std::string& name);

    const std::string& path() const noexcept { return path_; }
    int dirfd() const noexcept { return dir_.get(); }

    // cgroup.kill: SIGKILL to every process in the cgroup (Linux >= 5.14).
    Status kill() const;
    // Reads "populated" from cgroup.events.
    Result<bool> populated() const;
    // rmdir; EBUSY while populated.
    Status remove();
    bool removed() const noexcept { return removed_; }

private:
    std::string path_;
    io::unique_fd dir_;
    bool removed_ = false;
};

}  // namespace nucleus::isolation
