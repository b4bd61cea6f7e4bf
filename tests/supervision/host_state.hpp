// Counting what a sandbox could leave behind, before and after: only what
// this test process's own sandboxes could leave (tests/harness/test_scope.hpp).
#pragma once

#include <string>

namespace nucleus::tests {

struct HostState {
    int cgroups = 0;  // directories under this process's cgroup parent
    int mounts = 0;  // lines in this mount namespace's mountinfo
    int sandbox_processes = 0;  // processes below this process's cgroup parent
    int records = 0;  // entries in the state directory's sandboxes/
    bool operator==(const HostState&) const = default;
    std::string describe() const;
};

HostState host_state();

}  // namespace nucleus::tests
