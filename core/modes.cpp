#include "core/modes.hpp"

#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "core/spec.hpp"
#include "core/spec/keys.hpp"
#include "io/unique_fd.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/landlock.hpp"

namespace nucleus::core {

std::optional<ServiceMode> parse_service_mode(std::string_view text) {
    if (text == "agent") return ServiceMode::Agent;
    if (text == "strict-agent") return ServiceMode::StrictAgent;
    if (text == "production") return ServiceMode::Production;
    return std::nullopt;
}

std::string_view to_string(ServiceMode mode) {
    switch (mode) {
        case ServiceMode::Agent:
            return "agent";
        case ServiceMode::StrictAgent:
            return "strict-agent";
        case ServiceMode::Production:
            return "production";
    }
    return "agent";
}

bool is_fail_closed(ServiceMode mode) { return mode != ServiceMode::Agent; }

namespace {

// securityfs is often not mounted; reading the lockdown level then needs a
// mount, made in a throw-away child's private mount namespace so the host's
// mount table is never touched.
std::string read_lockdown() {
    if (auto text = io::read_file("/sys/kernel/security/lockdown", 256)) return *text;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) return "";
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
            ::mount("securityfs", "/sys/kernel/security", "securityfs", 0, nullptr) == 0) {
            if (auto text = io::read_file("/sys/kernel/security/lockdown", 256)) (void)io::write_all(fds[1], *text);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string out;
    char buf[256];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
    return out;
}

// "none [integrity] confidentiality" -> "integrity"
std::string selected_lockdown(const std::string& text) {
    auto open = text.find('['), close = text.find(']');
    if (open == std::string::npos || close == std::string::npos || close < open) return "";
    return text.substr(open + 1, close - open - 1);
}

int lockdown_rank(const std::string& level) {
    if (level == "integrity") return 1;
    if (level == "confidentiality") return 2;
    return 0;
}

std::string mode_name(const SandboxSpec& s) { return std::string(to_string(s.mode)); }

std::string list_or_none(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : " ") + i;
    return out.empty() ? "(none)" : out;
}

using Verdict = std::optional<std::string>;

Verdict no_host_network(const SandboxSpec& s, const HostFacts&) {
    if (s.network != net::NetworkMode::Host) return std::nullopt;
    return mode_name(s) + " mode refuses --network host: the sandbox would share the host's network namespace";
}

Verdict no_seccomp_trace(const SandboxSpec& s, const HostFacts&) {
    if (s.seccomp_mode != SeccompMode::Trace) return std::nullopt;
    return mode_name(s) + " mode refuses --seccomp-mode trace: tracing allows every syscall";
}

Verdict cgroup_required(const SandboxSpec& s, const HostFacts& h) {
    if (h.cgroup2_mount) return std::nullopt;
    return mode_name(s) + " mode needs a cgroup v2 hierarchy, and none is mounted";
}

// Every *requested* limit must apply; the agent default pids limit is not a
// request (where the pids controller is missing it is skipped and noted).
Verdict limits_applicable(const SandboxSpec& s, const HostFacts& h) {
    if (!h.cgroup2_mount) return std::nullopt;  // cgroup_required says it
    auto requested = s.limits;
    if (std::find(s.requested_limits.begin(), s.requested_limits.end(), "pids") == s.requested_limits.end())
        requested.pids_max.reset();
    for (const auto& c : requested.controllers())
        if (std::find(h.controllers.begin(), h.controllers.end(), c) == h.controllers.end())
            return mode_name(s) + " mode needs the " + c + " controller for its limits, but " + *h.cgroup2_mount +
                   " offers: " + list_or_none(h.controllers);
    return std::nullopt;
}

Verdict landlock_required(const SandboxSpec& s, const HostFacts& h) {
    if (h.landlock_abi > 0) return std::nullopt;
    return mode_name(s) + " mode needs Landlock, and this kernel does not offer it (not in the LSM list)";
}

Verdict landlock_min_abi(const SandboxSpec& s, const HostFacts& h) {
    if (!s.landlock_policy || s.landlock_policy->min_abi <= h.landlock_abi) return std::nullopt;
    return mode_name(s) + " mode: the Landlock policy needs ABI " + std::to_string(s.landlock_policy->min_abi) +
           ", the kernel offers " + std::to_string(h.landlock_abi);
}

Verdict memory_required(const SandboxSpec& s, const HostFacts&) {
    if (s.limits.memory_max) return std::nullopt;
    return "production mode needs --memory: a service must declare its memory limit";
}

Verdict rootfs_required(const SandboxSpec& s, const HostFacts&) {
    if (s.rootfs || s.rootfs_closure) return std::nullopt;
    return "production mode needs an immutable --rootfs (mounted read-only) or --rootfs-closure; the default agent "
           "root shares the host's system directories";
}

Verdict no_writable_exec_workspace(const SandboxSpec& s, const HostFacts&) {
    if (!s.workspace || !s.workspace_exec || s.workspace_mode == WorkspaceMode::BindRo) return std::nullopt;
    return "production mode refuses a writable executable workspace: drop --workspace-exec or use "
           "--workspace-mode bind-ro";
}

Verdict caps_within_policy(const SandboxSpec& s, const HostFacts&) {
    if (s.cap_add == 0) return std::nullopt;
    uint64_t allowed = s.caps_policy ? s.caps_policy->bounding : 0;
    if ((s.cap_add & ~allowed) == 0) return std::nullopt;
    return std::string("production mode allows --cap-add only for capabilities in its --caps-policy bounding list") +
           (s.caps_policy ? "" : " (no --caps-policy given)");
}

// The egress rules live in the sandbox's own network namespace: a workload
// holding CAP_NET_ADMIN there could flush them, and CAP_NET_RAW would
// bypass them with raw packets.
Verdict egress_without_net_caps(const SandboxSpec& s, const HostFacts&) {
    if (s.network != net::NetworkMode::Egress) return std::nullopt;
    uint64_t kept = s.cap_add | (s.caps_policy ? s.caps_policy->ambient : 0);
    uint64_t net_caps = (1ULL << CAP_NET_ADMIN) | (1ULL << CAP_NET_RAW);
    if ((kept & net_caps) == 0) return std::nullopt;
    return "--network egress refuses --cap-add NET_ADMIN and NET_RAW: the workload could remove or bypass the "
           "egress rules in its network namespace";
}

Verdict lockdown_required(const SandboxSpec& s, const HostFacts& h) {
    if (!s.require_kernel_lockdown) return std::nullopt;
    if (lockdown_rank(h.lockdown) >= lockdown_rank(*s.require_kernel_lockdown)) return std::nullopt;
    return "--require-kernel-lockdown " + *s.require_kernel_lockdown + ": the kernel's lockdown is " +
           (h.lockdown.empty() ? std::string("unknown (securityfs unreadable)") : h.lockdown);
}

}  // namespace

const std::vector<ModeRule>& mode_rules() {
    //                                         agent  strict prod
    static const std::vector<ModeRule> rules = {
        {"no-host-network", false, true, true, no_host_network},
        {"no-seccomp-trace", false, true, true, no_seccomp_trace},
        {"cgroup-required", false, true, true, cgroup_required},
        {"limits-applicable", false, true, true, limits_applicable},
        {"landlock-required", false, true, true, landlock_required},
        {"landlock-min-abi", false, true, true, landlock_min_abi},
        {"memory-required", false, false, true, memory_required},
        {"rootfs-required", false, false, true, rootfs_required},
        {"no-writable-exec-workspace", false, false, true, no_writable_exec_workspace},
        // Before caps-within-policy: the more specific reason for a net cap.
        {"egress-no-net-caps", true, true, true, egress_without_net_caps},
        {"caps-within-policy", false, false, true, caps_within_policy},
        {"kernel-lockdown", true, true, true, lockdown_required},
    };
    return rules;
}

HostFacts probe_host(const SandboxSpec& spec) {
    HostFacts facts;
    if (auto mount = isolation::find_cgroup2_mount()) {
        facts.cgroup2_mount = *mount;
        std::string where = *mount;
        if (::geteuid() != 0) {
            auto self = io::read_file("/proc/self/cgroup", 64 << 10);
            auto pos = self ? self->find("0::") : std::string::npos;
            if (pos != std::string::npos) where += self->substr(pos + 3, self->find('\n', pos) - pos - 3);
        }
        if (auto controllers = isolation::available_controllers(where)) facts.controllers = *controllers;
    }
    facts.landlock_abi = isolation::landlock_abi();
    if (spec.require_kernel_lockdown) facts.lockdown = selected_lockdown(read_lockdown());
    return facts;
}

// Settings the key table declares valid only in some modes
// (core/spec/keys.hpp), refused by presence.
Status check_settings_in_mode(const SandboxSpec& spec) {
    for (const auto& name : spec.settings_given) {
        const SpecKey* key = find_spec_key(name);
        if (!key || (key->modes & mode_bit(spec.mode))) continue;
        std::string allowed;
        for (auto mode : {ServiceMode::Agent, ServiceMode::StrictAgent, ServiceMode::Production})
            if (key->modes & mode_bit(mode)) allowed += (allowed.empty() ? "" : " and ") + std::string(to_string(mode));
        return Error::plain(mode_name(spec) + " mode refuses " + long_flag(*key) + ": it is for " + allowed +
                            " mode only, and " + mode_name(spec) +
                            " fails closed when a layer cannot be applied [rule " +
                            std::string(key->mode_rule.empty() ? "setting-allowed-in-mode" : key->mode_rule) + "]");
    }
    return {};
}

Status check_mode_rules(const SandboxSpec& spec, const HostFacts& host) {
    NUCLEUS_TRY(check_settings_in_mode(spec));
    for (const auto& rule : mode_rules()) {
        bool applies = spec.mode == ServiceMode::Agent         ? rule.agent
                       : spec.mode == ServiceMode::StrictAgent ? rule.strict_agent
                                                               : rule.production;
        if (!applies) continue;
        if (auto refusal = rule.check(spec, host)) return Error::plain(*refusal + " [rule " + rule.name + "]");
    }
    return {};
}

}  // namespace nucleus::core
