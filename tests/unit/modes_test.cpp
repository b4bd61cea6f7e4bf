#include <catch2/catch_test_macros.hpp>
#include <set>

#include "core/modes.hpp"
#include "core/spec.hpp"

using namespace nucleus::core;

namespace {

// A host that offers everything.
HostFacts full_host() {
    HostFacts h;
    h.cgroup2_mount = "/sys/fs/cgroup";
    h.controllers = {"cpu", "io", "memory", "pids"};
    h.landlock_abi = 7;
    h.lockdown = "integrity";
    return h;
}

SandboxSpec production_ready() {
    SandboxSpec s;
    s.mode = ServiceMode::Production;
    s.rootfs = "/srv/rootfs";
    s.limits.memory_max = 256ull << 20;
    s.limits.pids_max = 1024;
    s.command = {"/bin/true"};
    return s;
}

// The rule that refused, from "... [rule NAME]".
std::string refusing_rule(const SandboxSpec& s, const HostFacts& h) {
    auto st = check_mode_rules(s, h);
    if (st) return "";
    const auto& m = st.error().message;
    auto open = m.rfind("[rule ");
    return open == std::string::npos ? m : m.substr(open + 6, m.size() - open - 7);
}

}  // namespace

TEST_CASE("every rule is listed once with a stable name") {
    std::set<std::string> names;
    for (const auto& r : mode_rules()) CHECK(names.insert(r.name).second);
    CHECK(names.size() == 12);
}

TEST_CASE("agent mode runs degraded where strict modes refuse") {
    SandboxSpec s;
    s.command = {"/bin/true"};
    s.network = nucleus::net::NetworkMode::Host;
    s.allow_degraded_security = true;
    s.settings_given = {"allow_degraded_security"};
    s.seccomp_mode = SeccompMode::Trace;
    HostFacts bare;  // no cgroup2, no Landlock
    CHECK(check_mode_rules(s, bare));
    s.mode = ServiceMode::StrictAgent;
    CHECK(refusing_rule(s, bare) == "no-allow-degraded-security");
    s.allow_degraded_security = false;
    s.settings_given.clear();
    CHECK(refusing_rule(s, bare) == "no-host-network");
    s.network = nucleus::net::NetworkMode::None;
    CHECK(refusing_rule(s, bare) == "no-seccomp-trace");
    s.seccomp_mode = SeccompMode::Enforce;
    CHECK(refusing_rule(s, bare) == "cgroup-required");
    HostFacts hybrid = bare;
    hybrid.cgroup2_mount = "/sys/fs/cgroup/unified";
    s.limits.pids_max = 1024;  // the agent default: not a request
    CHECK(refusing_rule(s, hybrid) == "landlock-required");
    s.requested_limits = {"pids"};
    CHECK(refusing_rule(s, hybrid) == "limits-applicable");
    auto st = check_mode_rules(s, hybrid);
    CHECK(st.error().message.find("needs the pids controller") != std::string::npos);
    CHECK(st.error().message.find("offers: (none)") != std::string::npos);
    hybrid.controllers = {"pids"};
    CHECK(refusing_rule(s, hybrid) == "landlock-required");
    hybrid.landlock_abi = 2;
    s.landlock_policy = LandlockPolicy{"p.toml", "", 3, {}};
    CHECK(refusing_rule(s, hybrid) == "landlock-min-abi");
    hybrid.landlock_abi = 3;
    CHECK(check_mode_rules(s, hybrid));
}

TEST_CASE("production needs memory, a rootfs, no writable exec workspace and caps from its policy") {
    auto host = full_host();
    CHECK(check_mode_rules(production_ready(), host));

    auto s = production_ready();
    s.limits.memory_max.reset();
    CHECK(refusing_rule(s, host) == "memory-required");

    s = production_ready();
    s.rootfs.reset();
    CHECK(refusing_rule(s, host) == "rootfs-required");

    s = production_ready();
    s.workspace = "/srv/data";
    s.workspace_exec = true;
    CHECK(refusing_rule(s, host) == "no-writable-exec-workspace");
    s.workspace_mode = WorkspaceMode::BindRo;
    CHECK(check_mode_rules(s, host));

    s = production_ready();
    s.cap_add = 1ULL << 10;  // NET_BIND_SERVICE
    CHECK(refusing_rule(s, host) == "caps-within-policy");
    s.caps_policy = CapsPolicy{"caps.toml", "", 1ULL << 10, 0};
    CHECK(check_mode_rules(s, host));

    // strict-agent does not ask for production's declarations.
    s = production_ready();
    s.mode = ServiceMode::StrictAgent;
    s.rootfs.reset();
    s.limits.memory_max.reset();
    CHECK(check_mode_rules(s, host));
}

TEST_CASE("a required kernel lockdown level applies in every mode") {
    SandboxSpec s;
    s.command = {"/bin/true"};
    s.require_kernel_lockdown = "integrity";
    auto host = full_host();
    CHECK(check_mode_rules(s, host));
    s.require_kernel_lockdown = "confidentiality";
    CHECK(refusing_rule(s, host) == "kernel-lockdown");
    host.lockdown = "none";
    s.require_kernel_lockdown = "integrity";
    CHECK(refusing_rule(s, host) == "kernel-lockdown");
}

TEST_CASE("service modes parse") {
    CHECK(parse_service_mode("agent") == ServiceMode::Agent);
    CHECK(parse_service_mode("strict-agent") == ServiceMode::StrictAgent);
    CHECK(parse_service_mode("production") == ServiceMode::Production);
    CHECK_FALSE(parse_service_mode("prod"));
    CHECK(is_fail_closed(ServiceMode::Production));
    CHECK_FALSE(is_fail_closed(ServiceMode::Agent));
}
