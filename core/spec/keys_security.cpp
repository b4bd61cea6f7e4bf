// Modes, policies (pinned by SHA-256), secrets and integrity checks.
#include <algorithm>
#include <filesystem>
#include <set>

#include "core/attestation.hpp"
#include "core/policies.hpp"
#include "core/spec.hpp"
#include "core/spec/resolve.hpp"
#include "core/spec/values.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core {

using namespace spec_values;

namespace {

Status apply_service_mode(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto name, text(value, key));
    auto mode = parse_service_mode(name);
    if (!mode) return bad(key, "must be agent, strict-agent or production, got " + shown(name));
    spec.mode = *mode;
    return {};
}

Status apply_strict_agent(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(bool strict, boolean(value, key));
    if (!strict) return {};
    if (spec.mode == ServiceMode::Production) return bad(key, "conflicts with --service-mode production");
    spec.mode = ServiceMode::StrictAgent;
    return {};
}

Status apply_allow_degraded(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.allow_degraded_security, boolean(value, key));
    return {};
}

// A resolved policy: {"path": ..., "content": ...}.
struct PolicyText {
    std::string path, content;
};

Result<PolicyText> policy_text(const json& value, const SpecKey& key) {
    if (!value.is_object() || !value.contains("content") || !value["content"].is_string())
        return bad(key, "internal: the policy was not resolved");
    PolicyText out{.path = "(inline)", .content = value["content"].get<std::string>()};
    if (value.contains("path")) {
        NUCLEUS_TRY_ASSIGN(out.path, text(value["path"], key));
    }
    return out;
}

Status apply_caps_policy(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto policy, policy_text(value, key));
    auto parsed = parse_caps_policy(policy.content, policy.path);
    if (!parsed) return bad(key, parsed.error().describe());
    parsed->path = policy.path;
    parsed->sha256 = sha256_hex(policy.content);
    spec.caps_policy = std::move(*parsed);
    return {};
}

Status apply_landlock_policy(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto policy, policy_text(value, key));
    auto parsed = parse_landlock_policy(policy.content, policy.path);
    if (!parsed) return bad(key, parsed.error().describe());
    parsed->path = policy.path;
    parsed->sha256 = sha256_hex(policy.content);
    spec.landlock_policy = std::move(*parsed);
    return {};
}

// After cap_add and caps_policy: Docker profiles include rules by the
// capabilities the container keeps.
Status apply_seccomp_profile(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto policy, policy_text(value, key));
    uint64_t kept = spec.cap_add | (spec.caps_policy ? spec.caps_policy->ambient : 0);
    auto parsed = parse_seccomp_profile(policy.content, policy.path, kept);
    if (!parsed) return bad(key, parsed.error().describe());
    parsed->path = policy.path;
    parsed->sha256 = sha256_hex(policy.content);
    if (parsed->log_denied) spec.seccomp_log_denied = true;
    spec.seccomp_profile = std::move(*parsed);
    return {};
}

// The pin itself was checked against the content at resolution; here only
// its form, and that it pins something.
Status apply_pin(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto hex, text(value, key));
    bool valid =
        hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c); });
    if (!valid) return bad(key, "must be 64 hexadecimal digits (a SHA-256)");
    std::string_view pinned = key.key.substr(0, key.key.size() - 7);
    bool present = pinned == "seccomp_profile" ? spec.seccomp_profile.has_value()
                   : pinned == "caps_policy"   ? spec.caps_policy.has_value()
                                               : spec.landlock_policy.has_value();
    if (!present) return bad(key, "needs " + long_flag(*find_spec_key(pinned)));
    return {};
}

Status apply_seccomp_mode(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto mode, text(value, key));
    if (mode == "trace") spec.seccomp_mode = SeccompMode::Trace;
    else if (mode == "enforce") spec.seccomp_mode = SeccompMode::Enforce;
    else return bad(key, "must be enforce or trace, got " + shown(mode));
    return {};
}

Status apply_seccomp_log(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.seccomp_log, text(value, key));
    return {};
}

Status apply_seccomp_log_denied(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.seccomp_log_denied, boolean(value, key));
    return {};
}

Status apply_secret(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto list, text_list(value, key));
    std::set<std::string> names;
    for (const auto& entry : list) {
        auto colon = entry.rfind(':');
        SecretSpec secret{.source = entry.substr(0, colon),
                          .name = colon == std::string::npos ? "" : entry.substr(colon + 1)};
        if (secret.name.empty()) secret.name = std::filesystem::path(secret.source).filename().string();
        bool plain = !secret.name.empty() && secret.name != "." && secret.name != ".." &&
                     secret.name.find('/') == std::string::npos;
        if (!plain) return bad(key, shown(entry) + ": DST must be a file name under /run/secrets");
        if (!names.insert(secret.name).second) return bad(key, "two secrets named " + shown(secret.name));
        spec.secrets.push_back(std::move(secret));
    }
    return {};
}

Status apply_verify_rootfs(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.verify_rootfs_attestation, boolean(value, key));
    if (spec.verify_rootfs_attestation && !spec.rootfs && !spec.rootfs_closure)
        return bad(key, "needs --rootfs or --rootfs-closure");
    return {};
}

Status apply_verify_context(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.verify_context_integrity, boolean(value, key));
    if (spec.verify_context_integrity && !spec.context) return bad(key, "needs --context");
    return {};
}

Status apply_lockdown(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto level, text(value, key));
    if (level != "integrity" && level != "confidentiality")
        return bad(key, "must be integrity or confidentiality, got " + shown(level));
    spec.require_kernel_lockdown = level;
    return {};
}

Status apply_audit_log(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.audit_log, text(value, key));
    return {};
}

constexpr SpecKey rows[] = {
    {.key = "service_mode",
     .flags = "--service-mode",
     .value_name = "MODE",
     .help = "agent (default), strict-agent (fail-closed) or production",
     .doc = "`agent` (default) runs on what the host offers and reports what it could not apply; `strict-agent` "
            "refuses to start unless every layer applies (cgroup and every requested limit, Landlock, seccomp "
            "enforced, no `--network host`, no trace mode, no `--allow-degraded-security`); `production` adds "
            "`--memory`, an immutable `--rootfs`, no writable executable workspace or volume, and `--cap-add` only "
            "within `--caps-policy`",
     .apply = apply_service_mode},
    {.key = "strict_agent",
     .flags = "--strict-agent",
     .help = "Same as --service-mode strict-agent",
     .shape = KeyShape::Switch,
     .apply = apply_strict_agent},
    {.key = "allow_degraded_security",
     .flags = "--allow-degraded-security",
     .help = "Agent mode: accept running without a layer the host lacks",
     .shape = KeyShape::Switch,
     .modes = mode_bit(ServiceMode::Agent),
     .mode_rule = "no-allow-degraded-security",
     .apply = apply_allow_degraded},
    {.key = "caps_policy",
     .flags = "--caps-policy",
     .value_name = "FILE",
     .help = "Capability policy (TOML: bounding, ambient)",
     .doc = "capability policy (TOML: `bounding`, `ambient` lists), validated completely before launch; its content "
            "is recorded with the request",
     .resolve = spec_resolve::policy_file,
     .apply = apply_caps_policy},
    {.key = "caps_policy_sha256",
     .flags = "--caps-policy-sha256",
     .value_name = "HEX",
     .help = "Refuse the capability policy unless its SHA-256 is HEX",
     .apply = apply_pin},
    {.key = "landlock_policy",
     .flags = "--landlock-policy",
     .value_name = "FILE",
     .help = "Landlock policy (TOML: min_abi, [[rule]] path, access)",
     .doc = "Landlock policy (TOML: `min_abi`, `[[rule]] path, access`), validated completely before launch",
     .resolve = spec_resolve::policy_file,
     .apply = apply_landlock_policy},
    {.key = "landlock_policy_sha256",
     .flags = "--landlock-policy-sha256",
     .value_name = "HEX",
     .help = "Refuse the Landlock policy unless its SHA-256 is HEX",
     .apply = apply_pin},
    {.key = "seccomp_mode",
     .flags = "--seccomp-mode",
     .value_name = "MODE",
     .help = "enforce (default) or trace: record every syscall into --seccomp-log",
     .doc = "`trace` records every distinct syscall the workload makes into `--seccomp-log` (through a seccomp "
            "user-notification listener answered by the runtime, no kernel log needed); then `nucleus seccomp "
            "generate FILE.ndjson -o profile.json` writes a minimal allowlist",
     .apply = apply_seccomp_mode},
    {.key = "seccomp_log",
     .flags = "--seccomp-log",
     .value_name = "FILE.ndjson",
     .help = "Where trace mode writes the syscalls seen (NDJSON)",
     .surfaces = on_run,
     .resolve = spec_resolve::output_path,
     .apply = apply_seccomp_log},
    {.key = "seccomp_profile",
     .flags = "--seccomp-profile",
     .value_name = "FILE",
     .help = "Seccomp profile in the OCI/Docker JSON format (default: the built-in allowlist)",
     .doc = "a profile in the OCI, Docker or Podman JSON format instead of the built-in allowlist (Docker's and "
            "Podman's own default profiles load)",
     .resolve = spec_resolve::policy_file,
     .apply = apply_seccomp_profile},
    {.key = "seccomp_profile_sha256",
     .flags = "--seccomp-profile-sha256",
     .value_name = "HEX",
     .help = "Refuse the profile unless its SHA-256 is HEX",
     .apply = apply_pin},
    {.key = "seccomp_log_denied",
     .flags = "--seccomp-log-denied",
     .help = "Log denied syscalls to the kernel log (SECCOMP_FILTER_FLAG_LOG)",
     .shape = KeyShape::Switch,
     .apply = apply_seccomp_log_denied},
    {.key = "secret",
     .flags = "--secret",
     .value_name = "SRC[:NAME]",
     .help = "Stage a host file read-only at /run/secrets/NAME (repeatable)",
     .doc = "the file at `/run/secrets/NAME` on its own in-memory, read-only tmpfs, mode 0400, owned by the "
            "workload user",
     .shape = KeyShape::List,
     .resolve = spec_resolve::secret_sources,
     .apply = apply_secret},
    {.key = "verify_rootfs_attestation",
     .flags = "--verify-rootfs-attestation",
     .help = "Refuse a rootfs that differs from its .nucleus-rootfs-sha256",
     .doc = "refuse a rootfs that differs from the manifest `nucleus rootfs attest DIR` wrote (`nucleus rootfs verify "
            "DIR` lists differences)",
     .shape = KeyShape::Switch,
     .apply = apply_verify_rootfs},
    {.key = "verify_context_integrity",
     .flags = "--verify-context-integrity",
     .help = "Refuse a --context that differs from its .nucleus-rootfs-sha256",
     .shape = KeyShape::Switch,
     .apply = apply_verify_context},
    {.key = "require_kernel_lockdown",
     .flags = "--require-kernel-lockdown",
     .value_name = "LEVEL",
     .help = "Refuse to run unless kernel lockdown is at least integrity|confidentiality",
     .apply = apply_lockdown},
    {.key = "audit_log",
     .flags = "--audit-log",
     .value_name = "PATH",
     .help = "Append one JSON line per security decision to PATH",
     .doc = "one JSON line per security decision: the request and its policies with their hashes, refusals with "
            "the rule, what was applied or degraded, syscalls seen in trace mode that the default policy would deny",
     .surfaces = on_run,
     .resolve = spec_resolve::output_path,
     .apply = apply_audit_log},
};

}  // namespace

std::span<const SpecKey> security_keys() { return rows; }

}  // namespace nucleus::core
