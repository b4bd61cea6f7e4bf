// Seccomp policies and their compilation to classic BPF.
//
// The parent compiles; the child only loads (seccomp(2) SECCOMP_SET_MODE_FILTER).
// The default agent policy is compiled at build time and embedded, so the
// spawn path does no libseccomp work at all for it.
#pragma once

#include <linux/filter.h>

#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/error.hpp"

namespace nucleus::isolation {

struct SeccompArgCondition {
    enum class Op { NotEqual, Less, LessOrEqual, Equal, GreaterOrEqual, Greater, MaskedEqual };
    unsigned index = 0;  // syscall argument 0..5
    Op op = Op::Equal;
    uint64_t value = 0;
    uint64_t value_two = 0;  // MaskedEqual: the expected value after masking with `value`
};

struct SeccompAction {
    enum class Kind { Allow, Errno, KillProcess, KillThread, Log, Trap, Notify };
    Kind kind = Kind::Allow;
    int errno_value = 0;
};

struct SeccompRule {
    std::string syscall;
    SeccompAction action;
    std::vector<SeccompArgCondition> conditions;  // all must hold
};

struct SeccompPolicy {
    SeccompAction default_action{SeccompAction::Kind::Errno, ENOSYS};
    std::vector<SeccompRule> rules;
    // Names the installed libseccomp does not know are skipped (true) or an
    // error (false, for user-supplied profiles).
    bool skip_unknown_syscalls = true;
};

// Whether the installed libseccomp knows `name` for this architecture.
bool seccomp_knows_syscall(const std::string& name);

// Whether the default agent policy lets `name` through (possibly with
// argument conditions, as for clone).
bool default_policy_allows(const std::string& name);

// The default agent policy (isolation/seccomp_default.cpp documents why).
const SeccompPolicy& default_seccomp_policy();

// How libseccomp lays out the syscall dispatch. Both decide identically;
// the tree is cheaper to install and to run. Linear exists for the benchmark
// that shows why.
enum class SeccompLayout { BinaryTree, Linear };

// Compiles with libseccomp for the native architecture.
Result<std::vector<sock_filter>> compile_seccomp(const SeccompPolicy& policy,
                                                 SeccompLayout layout = SeccompLayout::BinaryTree);

// The default policy, compiled at build time.
std::span<const sock_filter> precompiled_default_seccomp();

// SHA-256 of nothing here: the filter's identity for events is its length
// and a short FNV-1a digest of its instructions.
std::string seccomp_digest(std::span<const sock_filter> filter);

}  // namespace nucleus::isolation
