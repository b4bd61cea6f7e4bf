// memory controller: memory.max (hard, OOM kill beyond), memory.high
// (throttle and reclaim), memory.swap.max. oom.group makes an OOM kill take
// the whole sandbox, so no half-killed workload lingers (cgroup-v2.rst).
#include "io/unique_fd.hpp"
#include "isolation/cgroup/controllers.hpp"

namespace nucleus::isolation::cgroup {

bool memory_wanted(const CgroupLimits& l) { return l.memory_max || l.memory_high || l.swap_max; }

Status apply_memory(int dirfd, const CgroupLimits& l) {
    if (l.memory_high) NUCLEUS_TRY(io::write_file_at(dirfd, "memory.high", std::to_string(*l.memory_high)));
    if (l.memory_max) {
        NUCLEUS_TRY(io::write_file_at(dirfd, "memory.max", std::to_string(*l.memory_max)));
        NUCLEUS_TRY(io::write_file_at(dirfd, "memory.oom.group", "1"));
    }
    // memory.swap.max exists only with swap accounting; treat its absence as
    // "no swap to limit" rather than an error.
    if (l.swap_max) {
        auto st = io::write_file_at(dirfd, "memory.swap.max", std::to_string(*l.swap_max));
        if (!st && st.error().code != ENOENT) return st;
    }
    return {};
}

}  // namespace nucleus::isolation::cgroup
