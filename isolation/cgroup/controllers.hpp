// The per-controller halves of isolation/cgroup/limits.hpp.
#pragma once

#include "isolation/cgroup/limits.hpp"

namespace nucleus::isolation::cgroup {

bool memory_wanted(const CgroupLimits&);
Status apply_memory(int dirfd, const CgroupLimits&);
bool cpu_wanted(const CgroupLimits&);
Status apply_cpu(int dirfd, const CgroupLimits&);
bool pids_wanted(const CgroupLimits&);
Status apply_pids(int dirfd, const CgroupLimits&);
bool io_wanted(const CgroupLimits&);
Status apply_io(int dirfd, const CgroupLimits&);

}  // namespace nucleus::isolation::cgroup
