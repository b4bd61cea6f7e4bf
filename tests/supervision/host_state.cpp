#include "host_state.hpp"

#include "test_scope.hpp"

namespace nucleus::tests {

HostState host_state() {
    return {.cgroups = scope_cgroups(),
            .mounts = scope_mounts(),
            .sandbox_processes = scope_processes(),
            .records = scope_records()};
}

std::string HostState::describe() const {
    return "cgroups=" + std::to_string(cgroups) + " mounts=" + std::to_string(mounts) +
           " sandbox_processes=" + std::to_string(sandbox_processes) + " records=" + std::to_string(records);
}

}  // namespace nucleus::tests
