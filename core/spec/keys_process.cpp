// The workload's process: command, environment, capabilities, rlimits.
#include <algorithm>

#include "core/spec.hpp"
#include "core/spec/resolve.hpp"
#include "core/spec/ulimits.hpp"
#include "core/spec/values.hpp"
#include "io/bytes_json.hpp"
#include "isolation/capabilities.hpp"

namespace nucleus::core {

using namespace spec_values;

namespace {

bool valid_env_name(const std::string& name) {
    return !name.empty() && name.find('=') == std::string::npos &&
           std::none_of(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c); });
}

// Resolution has merged --env-file into env and taken bare KEYs' values.
Status apply_env(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto list, text_list(value, key));
    for (auto& entry : list) {
        auto eq = entry.find('=');
        if (eq == std::string::npos || !valid_env_name(entry.substr(0, eq)))
            return bad(key, shown(entry) + " is not KEY=VALUE");
        spec.env.push_back(std::move(entry));
    }
    return {};
}

Status unresolved(const json&, SandboxSpec&, const SpecKey& key) {
    // env_file is folded into env when the document is resolved.
    return bad(key, "internal: the document was not resolved");
}

Status apply_env_fd(const json& value, SandboxSpec& spec, const SpecKey& key) {
    if (!value.is_object()) return bad(key, "internal: the descriptor was not read");
    for (const auto& [name, item] : value.items()) {
        auto bytes = io::bytes_from_json(item, name);
        if (!valid_env_name(name) || !bytes || bytes->find('\0') != std::string::npos)
            return bad(key, shown(name) + " must map to a string");
        spec.secret_env.push_back(name + "=" + *bytes);
    }
    return {};
}

Status apply_cap_add(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto names, text_list(value, key));
    for (const auto& name : names) {
        if (name == "ALL" || name == "all") {
            for (int cap = 0; cap <= isolation::last_capability(); ++cap) spec.cap_add |= 1ULL << cap;
            continue;
        }
        auto cap = isolation::capability_from_name(name);
        if (!cap) return bad(key, "unknown capability " + shown(name));
        spec.cap_add |= 1ULL << *cap;
    }
    return {};
}

Status apply_ulimit(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto list, text_list(value, key));
    for (const auto& entry : list) {
        NUCLEUS_TRY_ASSIGN(auto limit, parse_ulimit(entry));
        spec.ulimits.push_back(std::move(limit));
    }
    return {};
}

Status apply_command(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.command, text_list(value, key));
    return {};
}

constexpr SpecKey rows[] = {
    {.key = "env_file",
     .flags = "--env-file",
     .value_name = "FILE",
     .help = "Read KEY=VALUE lines from a file (repeatable)",
     .shape = KeyShape::List,
     .resolve = spec_resolve::env_files,
     .apply = unresolved},
    {.key = "env",
     .flags = "-e,--env",
     .value_name = "KEY[=VALUE]",
     .help = "Set KEY=VALUE, or pass KEY from the host (repeatable)",
     .doc = "environment (a bare KEY takes the host's value; `--env-file` lines come first, `-e` overrides them)",
     .shape = KeyShape::List,
     .resolve = spec_resolve::env_from_host,
     .apply = apply_env},
    {.key = "env_fd",
     .flags = "--env-fd",
     .value_name = "N",
     .help = "Read secret environment variables as a JSON object from descriptor N",
     .doc = "secret environment variables as a JSON object read from descriptor N: never in argv or "
            "`/proc/*/cmdline`",
     .surfaces = on_run,
     .resolve = spec_resolve::env_fd,
     .apply = apply_env_fd},
    {.key = "cap_add",
     .flags = "--cap-add",
     .value_name = "CAP",
     .help = "Keep a capability, e.g. NET_BIND_SERVICE (repeatable; default: none)",
     .shape = KeyShape::List,
     .apply = apply_cap_add},
    {.key = "ulimit",
     .flags = "--ulimit",
     .value_name = "NAME=SOFT[:HARD]",
     .help = "Resource limit NAME=SOFT[:HARD], e.g. nofile=1024:2048; -1 or unlimited = no limit (not for nofile) "
             "(repeatable)",
     .doc = "rlimit, e.g. `nofile=1024:2048`; `-1` or `unlimited` means unlimited, as in Docker (not for `nofile`, "
            "which the kernel caps at `fs.nr_open`), and a hard limit cannot exceed the runtime's own",
     .shape = KeyShape::List,
     .resolve = spec_resolve::ulimits,
     .apply = apply_ulimit},
    {.key = "command", .help = "The command and its arguments", .shape = KeyShape::List, .apply = apply_command},
};

}  // namespace

std::span<const SpecKey> process_keys() { return rows; }

}  // namespace nucleus::core
