// Resource limits (cgroup v2) and where the sandbox's cgroup lives.
#include <cmath>
#include <filesystem>

#include "core/spec.hpp"
#include "core/spec/resolve.hpp"
#include "core/spec/values.hpp"

namespace nucleus::core {

using namespace spec_values;

namespace {

void requested(SandboxSpec& spec, const SpecKey& key) { spec.requested_limits.emplace_back(key.key); }

Status apply_memory(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto bytes, size(value, key));
    if (bytes < 4 * 1024 * 1024) return bad(key, "must be at least 4m");
    spec.limits.memory_max = bytes;
    requested(spec, key);
    return {};
}

Status apply_memory_high(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto bytes, size(value, key));
    if (spec.limits.memory_max && bytes > *spec.limits.memory_max) return bad(key, "must not exceed --memory");
    spec.limits.memory_high = bytes;
    requested(spec, key);
    return {};
}

// Docker's meaning: memory plus swap together; -1 is unlimited swap.
Status apply_memory_swap(const json& value, SandboxSpec& spec, const SpecKey& key) {
    auto& l = spec.limits;
    if (!l.memory_max) return bad(key, "needs --memory");
    bool unlimited = (value.is_number_integer() && value.get<int64_t>() == -1) || (value.is_string() && value == "-1");
    if (unlimited) {
        l.swap_max = std::nullopt;
    } else {
        NUCLEUS_TRY_ASSIGN(auto total, size(value, key));
        if (total < *l.memory_max) return bad(key, "must be at least --memory (it includes it), or -1");
        l.swap_max = total - *l.memory_max;
    }
    requested(spec, key);
    return {};
}

Status apply_cpus(const json& value, SandboxSpec& spec, const SpecKey& key) {
    auto cpus = number(value, key);
    if (!cpus || !std::isfinite(*cpus) || *cpus < 0.01 || *cpus > 4096)
        return bad(key, "must be a number of CPUs from 0.01");
    spec.limits.cpu_quota_us =
        static_cast<uint64_t>(std::llround(*cpus * static_cast<double>(spec.limits.cpu_period_us)));
    requested(spec, key);
    return {};
}

Status apply_cpu_weight(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto weight, integer(value, key, 1, 10000));
    spec.limits.cpu_weight = static_cast<uint64_t>(weight);
    requested(spec, key);
    return {};
}

Status apply_pids(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto pids, integer(value, key, 1, 4194304));
    spec.limits.pids_max = static_cast<uint64_t>(pids);
    requested(spec, key);
    return {};
}

Status apply_io_weight(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto weight, integer(value, key, 1, 10000));
    spec.limits.io_weight = static_cast<uint64_t>(weight);
    requested(spec, key);
    return {};
}

Status apply_io_max(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto list, text_list(value, key));
    for (const auto& entry : list) {
        if (!entry.empty() && entry[0] == '/') return bad(key, "internal: the device path was not resolved");
        auto limit = isolation::parse_io_max(entry);
        if (!limit) return bad(key, limit.error().describe());
        spec.limits.io_max.push_back(*limit);
    }
    requested(spec, key);
    return {};
}

bool is_sandbox_cgroup(const std::string& component) {
    if (component.size() != 8 + 32 || !component.starts_with("sandbox-")) return false;
    return component.find_first_not_of("0123456789abcdef", 8) == std::string::npos;
}

Status apply_cgroup_parent(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto parent, text(value, key));
    std::string normal = std::filesystem::path(parent).lexically_normal().string();
    while (!normal.empty() && normal.back() == '/') normal.pop_back();
    if (normal.empty() || normal[0] == '/' || normal.starts_with("..") || normal.find("/..") != std::string::npos)
        return bad(key, shown(parent) + " must be a path relative to the cgroup2 mount, inside it");
    // Inside another sandbox's cgroup, a sandbox would be killed with it and
    // keep its cgroup from ever being removed.
    for (const auto& component : std::filesystem::path(normal))
        if (is_sandbox_cgroup(component.string()))
            return bad(key, shown(parent) + " is inside the cgroup of sandbox " + component.string().substr(8) +
                                "; a sandbox's cgroup holds only that sandbox");
    spec.cgroup_parent = normal;
    return {};
}

constexpr SpecKey rows[] = {
    {.key = "memory",
     .flags = "--memory",
     .value_name = "SIZE",
     .help = "Memory limit (memory.max), e.g. 512m; OOM kills the whole sandbox (exit 137)",
     .doc = "memory.max (an OOM kill takes the whole sandbox: exit 137, reason `oom_kill`)",
     .apply = apply_memory},
    {.key = "memory_high",
     .flags = "--memory-high",
     .value_name = "SIZE",
     .help = "Memory throttling threshold (memory.high)",
     .apply = apply_memory_high},
    {.key = "memory_swap",
     .flags = "--memory-swap",
     .value_name = "SIZE",
     .help = "Memory plus swap limit, as Docker (-1: unlimited swap)",
     .apply = apply_memory_swap},
    {.key = "cpus",
     .flags = "--cpus",
     .value_name = "N",
     .help = "CPU bandwidth in CPUs, e.g. 0.5 (cpu.max)",
     .apply = apply_cpus},
    {.key = "cpu_weight",
     .flags = "--cpu-weight",
     .value_name = "W",
     .help = "CPU share 1-10000 (cpu.weight, default 100)",
     .apply = apply_cpu_weight},
    {.key = "pids",
     .flags = "--pids",
     .value_name = "N",
     .help = "Maximum tasks (pids.max; default 1024 for agent sandboxes)",
     .apply = apply_pids},
    {.key = "io_weight",
     .flags = "--io-weight",
     .value_name = "W",
     .help = "IO share 1-10000 (io.weight)",
     .apply = apply_io_weight},
    {.key = "io_max",
     .flags = "--io-max",
     .value_name = "DEV:rbps=N,wbps=N,riops=N,wiops=N",
     .help = "IO limit (DEV a block device path or MAJ:MIN; repeatable)",
     .shape = KeyShape::List,
     .resolve = spec_resolve::io_devices,
     .apply = apply_io_max},
    {.key = "cgroup_parent",
     .flags = "--cgroup-parent",
     .value_name = "PATH",
     .help = "Parent cgroup, relative to the cgroup2 mount (default: $NUCLEUS_CGROUP_PARENT, else nucleus)",
     .apply = apply_cgroup_parent},
};

}  // namespace

std::span<const SpecKey> resource_keys() { return rows; }

}  // namespace nucleus::core
