// Counting what a sandbox could leave on the host, before and after.
#pragma once

#include <string>

namespace nucleus::tests {

struct HostState {
    int cgroups = 0;          // directories under <cgroup2>/nucleus
    int mounts = 0;           // lines in /proc/self/mountinfo
    int sandbox_processes = 0;  // processes whose uid is in the leased ranges
    int records = 0;          // entries in the state directory's sandboxes/
    bool operator==(const HostState&) const = default;
    std::string describe() const;
};

HostState host_state();

}  // namespace nucleus::tests
