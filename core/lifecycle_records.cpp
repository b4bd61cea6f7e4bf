// What one sandbox's lifecycle reports: the start and exit events, the
// audit records of the request and of what was applied, and the JSON forms
// of cgroup limits, statistics and limit events they carry.
#include <sstream>

#include "core/lifecycle.hpp"
#include "core/modes.hpp"
#include "io/bytes_json.hpp"
#include "isolation/capabilities.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/launch_plan.hpp"

namespace nucleus::core::lifecycle {

using nlohmann::json;

// "0 1000 1\n1 2000 5\n" -> "0 1000 1; 1 2000 5"
std::string one_line(std::string map) {
    while (!map.empty() && map.back() == '\n') map.pop_back();
    for (size_t pos; (pos = map.find('\n')) != std::string::npos;) map.replace(pos, 1, "; ");
    return map;
}

json limits_json(const isolation::CgroupLimits& l) {
    json out = json::object();
    if (l.memory_max) out["memory_max"] = *l.memory_max;
    if (l.memory_high) out["memory_high"] = *l.memory_high;
    if (l.swap_max) out["swap_max"] = *l.swap_max;
    if (l.cpu_quota_us) out["cpu_max"] = std::to_string(*l.cpu_quota_us) + " " + std::to_string(l.cpu_period_us);
    if (l.cpu_weight) out["cpu_weight"] = *l.cpu_weight;
    if (l.pids_max) out["pids_max"] = *l.pids_max;
    if (l.io_weight) out["io_weight"] = *l.io_weight;
    if (!l.io_max.empty()) out["io_max_devices"] = l.io_max.size();
    return out;
}

json policy_json(const SandboxSpec& spec) {
    json seccomp = spec.seccomp_profile ? json{{"source", io::bytes_json(spec.seccomp_profile->path)},
                                               {"sha256", spec.seccomp_profile->sha256}}
                                        : json{{"source", "built-in default"}};
    seccomp["mode"] = spec.seccomp_mode == SeccompMode::Trace ? "trace" : "enforce";
    seccomp["log_denied"] = spec.seccomp_log_denied;
    json out = {{"seccomp", seccomp}};
    if (spec.caps_policy)
        out["caps"] = {{"source", io::bytes_json(spec.caps_policy->path)},
                       {"sha256", spec.caps_policy->sha256},
                       {"bounding", isolation::capability_list(spec.caps_policy->bounding)},
                       {"ambient", isolation::capability_list(spec.caps_policy->ambient)}};
    if (spec.landlock_policy)
        out["landlock"] = {{"source", io::bytes_json(spec.landlock_policy->path)},
                           {"sha256", spec.landlock_policy->sha256},
                           {"min_abi", spec.landlock_policy->min_abi},
                           {"rules", spec.landlock_policy->rules.size()}};
    return out;
}

json request_audit(const SandboxSpec& spec) {
    return {
        {"audit", "request"},
        {"mode", std::string(to_string(spec.mode))},
        {"policies", policy_json(spec)},
        {"cap_add", isolation::capability_list(spec.cap_add)},
        {"network", std::string(net::to_string(spec.network))},
        {"rootfs", spec.rootfs ? io::bytes_json(*spec.rootfs) : json(nullptr)},
        {"rootfs_closure", spec.rootfs_closure ? json{{"manifest", io::bytes_json(spec.rootfs_closure->file)},
                                                      {"sha256", spec.rootfs_closure->sha256},
                                                      {"paths", spec.rootfs_closure->paths.size()}}
                                               : json(nullptr)},
        {"verify_rootfs_attestation", spec.verify_rootfs_attestation},
        {"verify_context_integrity", spec.verify_context_integrity},
        {"require_kernel_lockdown", spec.require_kernel_lockdown ? json(*spec.require_kernel_lockdown) : json(nullptr)},
        {"secrets", spec.secrets.size()},
        {"secret_env", spec.secret_env.size()}};
}

json applied_audit(const SandboxSpec& spec, const Sandbox& sb, const isolation::LaunchPlan& plan) {
    return {{"audit", "applied"},
            {"id", sb.id},
            {"mode", std::string(to_string(spec.mode))},
            {"seccomp",
             {{"enforced", plan.seccomp_instructions > 0},
              {"instructions", plan.seccomp_instructions},
              {"digest", plan.seccomp_digest}}},
            {"landlock",
             {{"enforced", plan.landlock.enforced}, {"abi", plan.landlock.abi}, {"reason", plan.landlock.reason}}},
            {"capabilities",
             {{"kept", isolation::capability_list(plan.child.caps_keep)},
              {"bounding", isolation::capability_list(plan.child.caps_bounding)}}},
            {"no_new_privs", true},
            {"user_namespace", {{"uid_map", one_line(isolation::format_map(plan.maps.uid))}}},
            {"mount_verification", "before exec"},
            {"limits", limits_json(sb.applied_limits)},
            {"degraded", io::bytes_json_array(sb.degraded)}};
}

// Trace mode's output: the NDJSON trace, and an audit record of the
// syscalls the default policy would have refused.
void record_trace(const SandboxSpec& spec, const isolation::SyscallTrace& trace, EventLog& audit) {
    if (auto st = trace.write_ndjson(*spec.seccomp_log); !st) report_warning(st.error().describe());
    std::vector<std::string> denied;
    for (const auto& name : trace.names())
        if (!isolation::default_policy_allows(name)) denied.push_back(name);
    (void)audit.emit({{"audit", "seccomp_trace"},
                      {"log", *spec.seccomp_log},
                      {"syscalls", trace.names().size()},
                      {"denied_by_default_policy", denied}});
}

json start_record(const Sandbox& sb, const isolation::LaunchPlan& plan, pid_t pid, const SandboxSpec& spec) {
    json namespaces = json::array({"user", "mount", "pid", "ipc", "uts", "cgroup"});
    if (plan.namespaces & CLONE_NEWNET) namespaces.push_back("network");
    if (spec.time_namespace) namespaces.push_back("time");
    return json{
        {"event", "start"},
        {"id", sb.id},
        {"name", sb.name},
        {"pid", pid},
        {"cgroup", sb.cgroup ? io::bytes_json(sb.cgroup->path()) : json(nullptr)},
        {"namespaces", namespaces},
        {"network", std::string(net::to_string(spec.network))},
        {"egress_rules", spec.egress.describe()},
        {"mounts", io::bytes_json_array(plan.mount_summary)},
        {"user",
         {{"uid", spec.uid},
          {"gid", spec.gid},
          {"uid_map", one_line(isolation::format_map(plan.maps.uid))},
          {"gid_map", one_line(isolation::format_map(plan.maps.gid))}}},
        {"seccomp",
         {{"enforced", plan.seccomp_instructions > 0},
          {"profile", "default"},
          {"default_action", "errno(ENOSYS)"},
          {"instructions", plan.seccomp_instructions},
          {"digest", plan.seccomp_digest}}},
        {"landlock",
         {{"enforced", plan.landlock.enforced},
          {"abi", plan.landlock.abi},
          {"scoped", plan.landlock.scoped},
          {"reason", plan.landlock.reason}}},
        {"capabilities", {{"kept", isolation::capability_list(spec.cap_add)}, {"no_new_privs", true}}},
        {"degraded", io::bytes_json_array(sb.degraded)},
        {"notes", io::bytes_json_array(sb.notes)},
        {"limits", limits_json(sb.applied_limits)},
    };
}

json counts_json(const isolation::CgroupEventCounts& c) {
    return {{"memory_high", c.memory_high},
            {"memory_max", c.memory_max},
            {"memory_oom", c.memory_oom},
            {"memory_oom_kill", c.memory_oom_kill},
            {"pids_max", c.pids_max}};
}

json stats_json(const isolation::CgroupStats& s) {
    json out = json::object();
    auto put = [&](const char* key, const std::optional<uint64_t>& v) {
        if (v) out[key] = *v;
    };
    put("memory_current", s.memory_current);
    put("memory_peak", s.memory_peak);
    put("swap_current", s.swap_current);
    put("cpu_usage_usec", s.cpu_usage_usec);
    put("cpu_user_usec", s.cpu_user_usec);
    put("cpu_system_usec", s.cpu_system_usec);
    put("cpu_nr_periods", s.cpu_nr_periods);
    put("cpu_nr_throttled", s.cpu_nr_throttled);
    put("cpu_throttled_usec", s.cpu_throttled_usec);
    put("pids_current", s.pids_current);
    put("pids_peak", s.pids_peak);
    put("io_rbytes", s.io_rbytes);
    put("io_wbytes", s.io_wbytes);
    put("io_rios", s.io_rios);
    put("io_wios", s.io_wios);
    return out;
}

json cpu_usage(const Outcome& o) {
    // cgroup v2's cpu.stat always has usage/user/system (even with no cpu
    // controller enabled); without a cgroup, PID 1's rusage is what we have.
    json cpu = json::object();
    if (o.stats && o.stats->cpu_usage_usec) {
        cpu["usage_ms"] = *o.stats->cpu_usage_usec / 1000.0;
        cpu["user_ms"] = o.stats->cpu_user_usec.value_or(0) / 1000.0;
        cpu["system_ms"] = o.stats->cpu_system_usec.value_or(0) / 1000.0;
        cpu["source"] = "cgroup";
    } else if (o.supervision) {
        const auto& ru = o.supervision->status.usage;
        cpu["user_ms"] = ru.ru_utime.tv_sec * 1000.0 + ru.ru_utime.tv_usec / 1000.0;
        cpu["system_ms"] = ru.ru_stime.tv_sec * 1000.0 + ru.ru_stime.tv_usec / 1000.0;
        cpu["source"] = "rusage";
    }
    return cpu;
}

json final_record(const Sandbox& sb, const Outcome& outcome, const json& cleanup) {
    json record = {{"event", "exit"},
                   {"id", sb.id},
                   {"name", sb.name},
                   {"exit_code", outcome.exit_code},
                   {"reason", outcome.reason.empty() ? "setup_failed" : outcome.reason},
                   {"signal", outcome.signal ? json(*outcome.signal) : json(nullptr)},
                   {"wall_ms", outcome.wall_ms},
                   {"cpu", cpu_usage(outcome)},
                   {"cleanup", cleanup}};
    if (outcome.stats) record["stats"] = stats_json(*outcome.stats);
    if (outcome.counts) record["limit_events"] = counts_json(*outcome.counts);
    if (!outcome.egress.is_null()) record["egress"] = outcome.egress;
    if (!outcome.error.empty()) record["error"] = io::bytes_json(outcome.error);
    return record;
}

}  // namespace nucleus::core::lifecycle
