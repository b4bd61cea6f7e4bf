// cpu controller: cpu.max "QUOTA PERIOD" (bandwidth: --cpus 0.5 is 50 ms of
// CPU per 100 ms) and cpu.weight (proportional share, 1..10000).
#include "io/unique_fd.hpp"
#include "isolation/cgroup/controllers.hpp"

namespace nucleus::isolation::cgroup {

bool cpu_wanted(const CgroupLimits& l) { return l.cpu_quota_us || l.cpu_weight; }

Status apply_cpu(int dirfd, const CgroupLimits& l) {
    if (l.cpu_quota_us)
        NUCLEUS_TRY(io::write_file_at(dirfd, "cpu.max",
                                      std::to_string(*l.cpu_quota_us) + " " + std::to_string(l.cpu_period_us)));
    if (l.cpu_weight) NUCLEUS_TRY(io::write_file_at(dirfd, "cpu.weight", std::to_string(*l.cpu_weight)));
    return {};
}

}  // namespace nucleus::isolation::cgroup
