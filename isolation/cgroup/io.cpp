// io controller: io.weight ("default N") and io.max per device
// ("MAJ:MIN rbps=N wbps=N riops=N wiops=N").
#include "io/unique_fd.hpp"
#include "isolation/cgroup/controllers.hpp"

namespace nucleus::isolation::cgroup {

bool io_wanted(const CgroupLimits& l) { return l.io_weight || !l.io_max.empty(); }

Status apply_io(int dirfd, const CgroupLimits& l) {
    if (l.io_weight) NUCLEUS_TRY(io::write_file_at(dirfd, "io.weight", "default " + std::to_string(*l.io_weight)));
    for (const auto& m : l.io_max) {
        std::string line = std::to_string(m.major) + ":" + std::to_string(m.minor);
        auto add = [&](const char* key, const std::optional<uint64_t>& v) {
            if (v) line += std::string(" ") + key + "=" + std::to_string(*v);
        };
        add("rbps", m.rbps);
        add("wbps", m.wbps);
        add("riops", m.riops);
        add("wiops", m.wiops);
        NUCLEUS_TRY(io::write_file_at(dirfd, "io.max", line));
    }
    return {};
}

}  // namespace nucleus::isolation::cgroup
