// Who the sandbox is: its name, host name, network, namespaces and the
// identity its workload runs as.
#include <algorithm>
#include <charconv>

#include "core/spec.hpp"
#include "core/spec/values.hpp"

namespace nucleus::core {

using namespace spec_values;

namespace {

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 128 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '.' || c == '-'; });
}

Result<uint32_t> parse_id(const SpecKey& key, const std::string& text) {
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
        return bad(key, shown(text) + " is not a numeric id");
    if (value >= 65536) return bad(key, "id " + text + " is outside the sandbox's range 0-65535");
    return value;
}

Status apply_name(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto name, text(value, key));
    if (!valid_name(name)) return bad(key, shown(name) + " must be 1-128 of [A-Za-z0-9_.-], starting alphanumeric");
    spec.name = name;
    return {};
}

Status apply_hostname(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto name, text(value, key));
    if (!net::is_valid_hostname(name)) return bad(key, shown(name) + " is not a valid hostname");
    spec.hostname = name;
    return {};
}

Status apply_network(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto name, text(value, key));
    auto mode = net::parse_network_mode(name);
    if (!mode) return bad(key, "must be none, host, egress or bridge, got " + shown(name));
    spec.network = *mode;
    spec.network_given = true;
    return {};
}

Status apply_time_namespace(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.time_namespace, boolean(value, key));
    return {};
}

Status apply_user(const json& value, SandboxSpec& spec, const SpecKey& key) {
    std::string user = value.is_number_integer() ? std::to_string(value.get<int64_t>()) : "";
    if (user.empty()) {
        NUCLEUS_TRY_ASSIGN(user, text(value, key));
    }
    auto colon = user.find(':');
    NUCLEUS_TRY_ASSIGN(spec.uid, parse_id(key, user.substr(0, colon)));
    spec.gid = spec.uid;
    if (colon != std::string::npos) {
        NUCLEUS_TRY_ASSIGN(spec.gid, parse_id(key, user.substr(colon + 1)));
    }
    spec.user_given = true;
    return {};
}

Status apply_userns(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto mode, text(value, key));
    if (mode == "keep-id") spec.userns = UsernsMode::KeepId;
    else if (mode == "auto") spec.userns = UsernsMode::Auto;
    else return bad(key, "must be auto or keep-id, got " + shown(mode));
    return {};
}

constexpr SpecKey rows[] = {
    {.key = "name",
     .flags = "--name",
     .value_name = "NAME",
     .help = "Name of the sandbox (default nucleus-<id>)",
     .apply = apply_name},
    {.key = "hostname",
     .flags = "--hostname",
     .value_name = "NAME",
     .help = "Hostname inside the sandbox (default: the short id)",
     .apply = apply_hostname},
    {.key = "network",
     .flags = "--network",
     .value_name = "MODE",
     .help = "none (default: own namespace with lo), host, egress (the default with --allow-*), or bridge "
             "(veth on a host bridge with NAT)",
     .doc = "`none` (default): own network namespace with only `lo`, up; `host`: share the host's; `egress`: "
            "`none` plus deny-by-default egress through the runtime (see Egress for agents); `bridge`: a veth "
            "on a host bridge with NAT and published ports (see Bridge networking)",
     .apply = apply_network},
    {.key = "time_namespace",
     .flags = "--time-namespace",
     .help = "Give the sandbox its own time namespace",
     .shape = KeyShape::Switch,
     .apply = apply_time_namespace},
    {.key = "user",
     .flags = "-u,--user",
     .value_name = "UID[:GID]",
     .help = "UID[:GID] of the workload inside the sandbox (default 1000:1000)",
     .doc = "workload ids inside (default 1000:1000, user `agent`, home `/home/agent`)",
     .apply = apply_user},
    {.key = "userns",
     .flags = "--userns",
     .value_name = "MODE",
     .help = "auto (default) or keep-id: map the workload's uid to the same host uid",
     .doc = "`keep-id`: map the workload uid to the same host uid (for bind-mounted data owned by a host user)",
     .apply = apply_userns},
};

}  // namespace

std::span<const SpecKey> sandbox_keys() { return rows; }

}  // namespace nucleus::core
