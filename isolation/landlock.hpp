// Landlock: the kernel's unprivileged filesystem access control.
//
// The parent probes the ABI and creates the ruleset (handled rights for the
// best ABI the kernel offers); the child, inside its new root, opens each
// rule's path and adds it, then restricts itself after no_new_privs.
#pragma once

#include <cstdint>
#include <string>

#include "io/unique_fd.hpp"

namespace nucleus::isolation {

// 0 when Landlock is unavailable (not built, or not in the LSM list).
int landlock_abi();

// The rights we grant, by intent; masked to what the ABI handles.
enum class LandlockAccess { ReadOnly, ReadExec, ReadWrite, ReadWriteExec, Device };
uint64_t landlock_rights(LandlockAccess access, int abi);
uint64_t landlock_handled_rights(int abi);

struct LandlockRuleset {
    io::unique_fd fd;
    int abi = 0;
    bool scoped = false;  // ABI >= 6: abstract unix sockets and signals scoped to the sandbox
};

Result<LandlockRuleset> create_landlock_ruleset(int abi);

}  // namespace nucleus::isolation
