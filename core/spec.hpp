// SandboxSpec: one plain-data request for one sandbox.
//
// Every entry point (CLI flags, --config FILE.json|.toml, --config-fd, the
// daemon's API) produces a spec *document*: a JSON object whose keys are the
// long flag names in snake_case, each declared once in the table of spec
// keys (core/spec/keys.hpp). A document is first *resolved* against the
// host (paths made canonical, files read, environment values taken), then
// *applied*, purely, to a SandboxSpec. The resolved document is what the
// daemon records: recovery rebuilds the spec from it without the host.
// Nothing else reads flags.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/error.hpp"
#include "core/closure_manifest.hpp"
#include "core/modes.hpp"
#include "core/policies.hpp"
#include "isolation/cgroup/limits.hpp"
#include "isolation/child_plan.hpp"
#include "net/nat.hpp"
#include "net/egress_policy.hpp"
#include "net/network.hpp"

namespace nucleus::core {

enum class WorkspaceMode { BindRw, BindRo, CopyInOut };
enum class UsernsMode { Auto, KeepId };
enum class SeccompMode { Enforce, Trace };

struct SecretSpec {
    std::string source;  // host file
    std::string name;  // file name under /run/secrets
};

struct VolumeSpec {
    std::string source;
    std::string target;
    bool writable = true;
};

struct UlimitSpec {
    std::string name;  // "nofile"
    int resource = 0;  // RLIMIT_*
    uint64_t soft = 0;
    uint64_t hard = 0;
};

struct SandboxSpec {
    ServiceMode mode = ServiceMode::Agent;
    bool allow_degraded_security = false;
    std::string name;  // empty: derived from the id
    std::optional<std::string> rootfs;  // absolute, canonical
    std::optional<ClosureManifest> rootfs_closure;  // a Nix store closure as the root (core/closure_spec.hpp)
    net::NetworkMode network = net::NetworkMode::None;
    std::vector<net::PublishedPort> publish;  // --network bridge only (core/spec/keys_network.cpp)
    bool network_given = false;  // `network` was set (else allow rules mean egress)
    net::EgressPolicy egress;  // --allow-* rules (core/spec/keys_network.cpp)
    bool time_namespace = false;
    std::optional<std::string> hostname;
    uint32_t uid = 1000;
    uint32_t gid = 1000;
    bool user_given = false;
    UsernsMode userns = UsernsMode::Auto;

    std::optional<std::string> workspace;  // absolute, canonical
    WorkspaceMode workspace_mode = WorkspaceMode::BindRw;
    bool workspace_exec = false;
    uint64_t workspace_size = uint64_t(1) << 30;  // copy-in-out's private copy
    std::vector<VolumeSpec> volumes;
    std::optional<std::string> context;  // absolute, canonical
    std::optional<std::string> workdir;

    std::vector<std::string> env;  // final KEY=VALUE list (-e, --env-file merged)
    uint64_t cap_add = 0;  // capability mask kept
    std::vector<UlimitSpec> ulimits;

    // Resources (cgroup v2). `requested` lists the flags the user gave, for
    // messages when a controller is missing; the pids default is not in it.
    isolation::CgroupLimits limits;
    std::vector<std::string> requested_limits;
    std::optional<uint64_t> tmpfs_size;  // /tmp and home, charged to the sandbox's memory
    std::string cgroup_parent = "nucleus";  // relative to the cgroup2 mount

    // Security policies (pinned by SHA-256 when asked).
    SeccompMode seccomp_mode = SeccompMode::Enforce;
    std::optional<std::string> seccomp_log;  // trace output (NDJSON)
    std::optional<SeccompProfile> seccomp_profile;  // nullopt: the built-in default
    bool seccomp_log_denied = false;
    std::optional<CapsPolicy> caps_policy;
    std::optional<LandlockPolicy> landlock_policy;
    std::vector<SecretSpec> secrets;
    std::vector<std::string> secret_env;  // KEY=VALUE from --env-fd, never in argv
    bool verify_rootfs_attestation = false;
    bool verify_context_integrity = false;
    std::optional<std::string> require_kernel_lockdown;  // integrity | confidentiality
    std::optional<std::string> audit_log;

    std::optional<double> timeout_seconds;
    std::optional<std::string> log_dir;
    std::optional<std::string> events_jsonl;
    std::optional<int> events_fd;

    std::vector<std::string> command;

    // The keys the document set (switches only when true), for the rules
    // of modes that refuse a setting outright.
    std::vector<std::string> settings_given;
};

// Agent sandboxes get this pids.max unless --pids says otherwise: enough for
// compilers and test runners, small enough that a fork bomb stays contained.
constexpr uint64_t default_agent_pids_max = 1024;

// The keys a spec document may hold (the long flag names in snake_case).
const std::vector<std::string>& spec_document_keys();

// Who sends the document: `nucleus run` may name descriptors and files the
// supervisor writes; the daemon's API may not.
enum class DocumentSource { Run, Daemon };

// The document with every host reference resolved (see above). Rejects
// unknown keys and values it cannot resolve, naming the key. Resolving a
// resolved document changes nothing. `for_daemon`: a client resolving for
// the daemon leaves out the checks that depend on who runs the sandbox.
Result<nlohmann::json> resolve_document(const nlohmann::json& document, DocumentSource source = DocumentSource::Run,
                                        bool for_daemon = false);

// Resolved document -> spec, without touching the host. Rejects wrong
// types and invalid values with a message naming the key.
Result<SandboxSpec> spec_from_resolved(const nlohmann::json& resolved, DocumentSource source = DocumentSource::Run);

// Both: resolve_document, then spec_from_resolved. Creates nothing.
Result<SandboxSpec> spec_from_document(const nlohmann::json& document, DocumentSource source = DocumentSource::Run);

// Parses a config file's text as JSON or TOML (by `format`: "json"/"toml").
Result<nlohmann::json> parse_config_text(const std::string& text, const std::string& format, const std::string& origin);

// Reads a config file (at most 1 MiB, nested at most 64 levels), JSON or
// TOML by its extension.
Result<nlohmann::json> load_config_file(const std::string& path);

std::string_view to_string(WorkspaceMode mode);

}  // namespace nucleus::core
