// What the child-side scripts report to their parent: the numbered steps
// and the fixed-size record a step's failure (or a script's progress) is
// written as. Shared by the sandbox's first process (isolation/child.cpp,
// protocol in isolation/spawn.cpp) and a process joining a running sandbox
// (isolation/join_child.cpp, protocol in isolation/join.cpp).
#pragma once

#include <cstdint>

namespace nucleus::isolation {

// Every step of both scripts, in the order they run; a step both scripts
// take has one number and one name. A new step is one line here, one in
// child_step_name() (the compiler insists: -Wswitch) and one in the script.
enum class ChildStep : uint32_t {
    // The sandbox's first process, before its root exists.
    WaitMaps = 1,
    SetupIdentity,
    // A joining process: the intermediate, before the grandchild exists.
    JoinNamespaces,
    CloneIntoPidNamespace,
    // Both.
    Stdio,
    Session,
    Signals,
    // The sandbox's first process: its root, hostname and network.
    Propagation,
    StagingRoot,
    Mount,
    PivotRoot,
    RootReadOnly,
    Hostname,
    Loopback,
    Network,
    // Both: limits, then the credential drop (isolation/child_steps.cpp).
    Rlimits,
    Workdir,
    LandlockRules,
    BoundingSet,
    KeepCaps,
    Groups,
    SetGid,
    SetUid,
    Capabilities,
    AmbientCaps,
    NoNewPrivs,
    LandlockRestrict,
    ParentDeath,
    CloseFds,
    // The sandbox's first process waits here for the parent's verification.
    Ready,
    // Both.
    Seccomp,
    Exec,
};

// "setting the uid": what the parent's error message says the child was doing.
const char* child_step_name(ChildStep step) noexcept;

// The fixed-size record a child writes on its report pipe. 128 bytes: below
// PIPE_BUF, so each write is atomic (pipe(7)).
struct ChildReport {
    enum Kind : uint32_t { Ready = 1, Failed = 2, Listener = 3 };  // Listener: err holds the fd
    uint32_t kind;
    uint32_t step;  // ChildStep
    int32_t err;  // errno
    char detail[116];
};
static_assert(sizeof(ChildReport) == 128);

}  // namespace nucleus::isolation
