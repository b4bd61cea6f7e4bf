// pids controller: pids.max bounds every task (processes and threads) in the
// sandbox; fork/clone fail with EAGAIN beyond it and pids.events counts it.
#include "io/unique_fd.hpp"
#include "isolation/cgroup/controllers.hpp"

namespace nucleus::isolation::cgroup {

bool pids_wanted(const CgroupLimits& l) { return l.pids_max.has_value(); }

Status apply_pids(int dirfd, const CgroupLimits& l) {
    return io::write_file_at(dirfd, "pids.max", std::to_string(*l.pids_max));
}

}  // namespace nucleus::isolation::cgroup
