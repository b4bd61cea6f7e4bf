// A sandbox's cgroup v2 directory: created before clone, entered with
// CLONE_INTO_CGROUP, killed and removed at teardown.
//
// Works wherever cgroup2 is mounted (a pure v2 host at /sys/fs/cgroup, or a
// hybrid host's /sys/fs/cgroup/unified): the mount is found in
// /proc/self/mountinfo.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>
#include <string>
#include <string_view>

#include "io/unique_fd.hpp"

namespace nucleus::isolation {

// The cgroup2 mount point in a mountinfo text, if any.
std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo);
Result<std::string> find_cgroup2_mount();

// Controllers the cgroup at `path` can hand to its children (cgroup.controllers).
Result<std::vector<std::string>> available_controllers(const std::string& path);

// Makes `controllers` available to children of `parent` (a directory under
// the cgroup2 mount `mount`), enabling them in cgroup.subtree_control at every
// level from the mount's root down. cgroup v2's no-internal-process rule
// forbids that on a non-root cgroup that has processes: when the runtime's
// own cgroup is on the path, the runtime first moves itself into a leaf
// ("<cgroup>/supervisor"), as systemd does for delegated subtrees.
Status delegate_controllers(const std::string& mount, const std::string& parent,
                            const std::vector<std::string>& controllers);

struct CgroupStats {
    std::optional<uint64_t> memory_current, memory_peak, swap_current;
    std::optional<uint64_t> cpu_usage_usec, cpu_user_usec, cpu_system_usec;
    std::optional<uint64_t> cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec;
    std::optional<uint64_t> pids_current, pids_peak;
    std::optional<uint64_t> io_rbytes, io_wbytes, io_rios, io_wios;  // summed over devices
};

struct CgroupEventCounts {
    uint64_t memory_high = 0, memory_max = 0, memory_oom = 0, memory_oom_kill = 0;
    uint64_t pids_max = 0;
    bool operator==(const CgroupEventCounts&) const = default;
};

// Reads what the cgroup's files say now. Fields a kernel or a disabled
// controller does not provide stay empty. The files are written by the
// kernel, but their size is still bounded.
CgroupStats read_cgroup_stats(const std::string& path);
CgroupEventCounts read_cgroup_event_counts(const std::string& path);
// "key value" lines (cpu.stat, memory.events, ...): the value of `key`.
std::optional<uint64_t> keyed_value(const std::string& text, const std::string& key);

class SandboxCgroup {
public:
    // mkdir <parent>/<name> and open it O_PATH for CLONE_INTO_CGROUP.
    static Result<SandboxCgroup> create(const std::string& parent, const std::string& name);
    // Opens an existing one (a daemon re-adopting its sandboxes).
    static Result<SandboxCgroup> open(const std::string& path);

    const std::string& path() const noexcept { return path_; }
    int dirfd() const noexcept { return dir_.get(); }

    // cgroup.kill: SIGKILL to every process in the cgroup (Linux >= 5.14).
    Status kill() const;
    // Reads "populated" from cgroup.events.
    Result<bool> populated() const;
    // cgroup.freeze: 1 stops every task, 0 resumes; completion shows as
    // "frozen 1/0" in cgroup.events (core awaits it on the reactor).
    Status request_freeze(bool frozen) const;
    Result<bool> frozen() const;
    // rmdir; EBUSY while populated.
    Status remove();
    bool removed() const noexcept { return removed_; }

private:
    std::string path_;
    io::unique_fd dir_;
    bool removed_ = false;
};

}  // namespace nucleus::isolation
