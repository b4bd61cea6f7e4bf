#include "host_state.hpp"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "io/unique_fd.hpp"
#include "isolation/cgroup.hpp"

namespace nucleus::tests {

namespace {

int count_entries(const std::string& dir, bool dirs_only) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return 0;
    int n = 0;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (!dirs_only || e->d_type == DT_DIR) ++n;
    }
    ::closedir(d);
    return n;
}

int processes_in_leased_ranges() {
    DIR* d = ::opendir("/proc");
    int n = 0;
    while (dirent* e = d ? ::readdir(d) : nullptr) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream status(std::string("/proc/") + e->d_name + "/status");
        for (std::string line; std::getline(status, line);) {
            if (line.rfind("Uid:", 0) != 0) continue;
            if (std::strtoull(line.c_str() + 4, nullptr, 10) >= 1000000000ULL) ++n;
            break;
        }
    }
    if (d) ::closedir(d);
    return n;
}

}  // namespace

HostState host_state() {
    HostState s;
    if (auto mount = isolation::find_cgroup2_mount()) s.cgroups = count_entries(*mount + "/nucleus", true);
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);) ++s.mounts;
    s.sandbox_processes = processes_in_leased_ranges();
    const char* state = std::getenv("NUCLEUS_STATE_DIR");
    s.records = count_entries(std::string(state && *state ? state : "/run/nucleus") + "/sandboxes", false);
    return s;
}

std::string HostState::describe() const {
    return "cgroups=" + std::to_string(cgroups) + " mounts=" + std::to_string(mounts) +
           " sandbox_processes=" + std::to_string(sandbox_processes) + " records=" + std::to_string(records);
}

}  // namespace nucleus::tests
