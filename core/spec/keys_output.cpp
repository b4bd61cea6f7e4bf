// Supervision: the timeout, and where output and events go.
#include <cmath>

#include "core/spec.hpp"
#include "core/spec/resolve.hpp"
#include "core/spec/values.hpp"

namespace nucleus::core {

using namespace spec_values;

namespace {

Status apply_timeout(const json& value, SandboxSpec& spec, const SpecKey& key) {
    auto seconds = number(value, key);
    if (!seconds) return bad(key, "must be a number of seconds");
    if (!std::isfinite(*seconds) || *seconds <= 0 || *seconds > 1e8)
        return bad(key, "must be a positive number of seconds");
    spec.timeout_seconds = *seconds;
    return {};
}

Status apply_log_dir(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.log_dir, text(value, key));
    return {};
}

Status apply_events_jsonl(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.events_jsonl, text(value, key));
    return {};
}

Status apply_events_fd(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto fd, integer(value, key, 0, INT32_MAX));
    spec.events_fd = static_cast<int>(fd);
    return {};
}

constexpr SpecKey rows[] = {
    {.key = "timeout",
     .flags = "--timeout",
     .value_name = "SECONDS",
     .help = "Kill the sandbox after SECONDS; exit code 124",
     .apply = apply_timeout},
    {.key = "log_dir",
     .flags = "--log-dir",
     .value_name = "DIR",
     .help = "Write stdout/stderr to DIR/<name>.stdout.log and .stderr.log",
     .doc = "write output to `DIR/<name>.stdout.log` and `.stderr.log` instead of streaming it",
     .surfaces = on_run,
     .resolve = spec_resolve::output_path,
     .apply = apply_log_dir},
    {.key = "events_jsonl",
     .flags = "--events-jsonl",
     .value_name = "PATH",
     .help = "Append lifecycle events (JSON lines) to PATH",
     .doc = "lifecycle events as JSON lines: `start` (id, pid, cgroup, namespaces, mounts, seccomp, Landlock, "
            "capabilities, degraded layers) and `exit` (code, reason, wall and CPU time, clean-up result)",
     .surfaces = on_run,
     .resolve = spec_resolve::output_path,
     .apply = apply_events_jsonl},
    {.key = "events_fd",
     .flags = "--events-fd",
     .value_name = "N",
     .help = "Write lifecycle events (JSON lines) to descriptor N",
     .surfaces = on_run,
     .resolve = spec_resolve::open_descriptor,
     .apply = apply_events_fd},
};

}  // namespace

std::span<const SpecKey> output_keys() { return rows; }

}  // namespace nucleus::core
