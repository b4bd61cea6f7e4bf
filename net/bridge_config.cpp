#include "net/bridge_config.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace nucleus::net {

namespace {

// dev_valid_name(): at most IFNAMSIZ-1 bytes, not "." or "..", no '/',
// ':' or whitespace. We also keep to [A-Za-z0-9_.-] so the name is safe in
// paths (the lease directory) and in nft's syntax.
bool valid_interface_name(const std::string& name) {
    if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                  c == '.';
        if (!ok) return false;
    }
    return true;
}

std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

std::mutex config_mutex;
std::optional<BridgeConfig> runtime_config;

}  // namespace

Result<BridgeConfig> make_bridge_config(const std::string& name, const std::string& subnet4,
                                        const std::string& subnet6) {
    BridgeConfig c;
    c.name = name.empty() ? default_bridge_name : name;
    if (!valid_interface_name(c.name))
        return Error::plain("bridge name \"" + c.name + "\" must be 1-15 of [A-Za-z0-9_.-]");
    auto v4 = parse_ipv4_subnet(subnet4.empty() ? default_bridge_subnet : subnet4);
    if (!v4) return std::move(v4).error().wrap("bridge subnet");
    c.plan.subnet4 = *v4;
    std::string six = subnet6.empty() ? default_bridge_subnet6 : subnet6;
    if (six != "none") {
        auto v6 = parse_ipv6_subnet(six);
        if (!v6) return std::move(v6).error().wrap("bridge IPv6 subnet");
        if (128 - v6->prefix < 32 - v4->prefix)
            return Error::plain("bridge IPv6 subnet " + six + " holds fewer addresses than the IPv4 subnet " +
                                to_string(*v4) + " (each sandbox gets one of each)");
        c.plan.subnet6 = *v6;
    }
    return c;
}

Result<BridgeConfig> bridge_config_from_environment() {
    auto c = make_bridge_config(env_or_empty("NUCLEUS_BRIDGE"), env_or_empty("NUCLEUS_BRIDGE_SUBNET"),
                                env_or_empty("NUCLEUS_BRIDGE_SUBNET6"));
    if (!c) return std::move(c).error().wrap("NUCLEUS_BRIDGE, NUCLEUS_BRIDGE_SUBNET or NUCLEUS_BRIDGE_SUBNET6");
    return c;
}

Result<BridgeConfig> runtime_bridge_config() {
    std::lock_guard lock(config_mutex);
    if (runtime_config) return *runtime_config;
    auto c = bridge_config_from_environment();
    if (c) runtime_config = *c;
    return c;
}

void set_runtime_bridge_config(BridgeConfig config) {
    std::lock_guard lock(config_mutex);
    runtime_config = std::move(config);
}

std::string host_veth_name(const SandboxAddress& address) {
    char name[16];
    std::snprintf(name, sizeof name, "nv%08x", address.v4.value);
    return name;
}

}  // namespace nucleus::net
