// Security policy files: capability and Landlock policies (TOML) and seccomp
// profiles (the OCI/Docker JSON format). Each is parsed and validated
// completely before launch, optionally pinned by SHA-256, and errors name
// the file and the line or entry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/error.hpp"
#include "isolation/seccomp.hpp"

namespace nucleus::core {

struct CapsPolicy {
    std::string path, sha256;
    uint64_t bounding = 0;  // capabilities the sandbox may ever hold (--cap-add must stay inside)
    uint64_t ambient = 0;  // kept and raised for the workload
};

struct LandlockPolicyRule {
    std::string path;  // inside the sandbox
    uint64_t access;  // LANDLOCK_ACCESS_FS_* bits
};

struct LandlockPolicy {
    std::string path, sha256;
    int min_abi = 1;
    std::vector<LandlockPolicyRule> rules;  // replace the default rules
};

struct SeccompProfile {
    std::string path, sha256;
    bool log_denied = false;  // "flags": ["SECCOMP_FILTER_FLAG_LOG"]
    isolation::SeccompPolicy policy;
    std::vector<std::string> architectures;
};

// Reads a policy file (bounded) and checks its SHA-256 when `pinned` is set.
Result<std::string> read_policy_file(const std::string& path, const std::optional<std::string>& pinned,
                                     const std::string& what);

Result<CapsPolicy> parse_caps_policy(const std::string& text, const std::string& origin);
Result<LandlockPolicy> parse_landlock_policy(const std::string& text, const std::string& origin);
// `kept_caps`: Docker profiles include some rules only when the container
// holds certain capabilities ("includes": {"caps": [...]}).
Result<SeccompProfile> parse_seccomp_profile(const std::string& text, const std::string& origin, uint64_t kept_caps);

// A minimal allowlist profile (OCI/Docker JSON) for the syscalls in a
// trace: those are allowed, everything else fails with EPERM.
std::string profile_from_trace(const std::vector<std::string>& syscalls);

// Landlock access right names ("read_file", ...) and the ABI each needs.
std::optional<std::pair<uint64_t, int>> landlock_access_from_name(const std::string& name);

}  // namespace nucleus::core
