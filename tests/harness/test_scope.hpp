// What one test process may count as its own. Each test process (ctest
// runs one per test case) gets, before main():
//   - its own cgroup parent, `nucleus-test-<pid>` ($NUCLEUS_CGROUP_PARENT,
//     the default of every `nucleus run` and daemon it starts);
//   - its own state directory under /tmp ($NUCLEUS_STATE_DIR), unless the
//     caller set one;
//   - as root, its own mount namespace, so that a mount leaked by one of its
//     sandboxes shows in its mountinfo and nobody else's does;
// all removed at exit. So suites, lanes, benchmarks and other users of the
// machine can run side by side without moving each other's counts.
#pragma once

#include <string>

namespace nucleus::tests {

// This process's cgroup parent, relative to the cgroup2 mount.
const std::string& test_cgroup_parent();
// Its state directory ($NUCLEUS_STATE_DIR as it is now).
std::string test_state_dir();

// Directories under the cgroup parent, processes anywhere below it, lines
// in this mount namespace's mountinfo, and entries in `records_dir`
// (default: the state directory's sandboxes/).
int scope_cgroups();
int scope_processes();
int scope_mounts();
int scope_records(const std::string& records_dir = "");

}  // namespace nucleus::tests
