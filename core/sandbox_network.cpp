#include "core/sandbox_network.hpp"

#include <sys/socket.h>
#include <unistd.h>

namespace nucleus::core {

using nlohmann::json;

namespace {

// An --allow-cidr rule as the bridge's nftables sets take it (TCP; no
// ports: any).
net::EgressCidr bridge_rule(const net::CidrRule& rule) {
    net::EgressCidr out;
    const auto& b = rule.cidr.network.bytes;
    if (rule.cidr.network.family == AF_INET) {
        uint32_t value = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
        out.v4 = net::Ipv4Subnet{.network = net::Ipv4{value}, .prefix = rule.cidr.prefix};
    } else {
        out.v6 = net::Ipv6Subnet{.network = net::Ipv6{b}, .prefix = rule.cidr.prefix};
    }
    if (!rule.ports.any) out.ports = rule.ports.ports;
    return out;
}

}  // namespace

net::EgressLimit egress_limit(const SandboxSpec& spec) {
    net::EgressLimit limit;
    limit.limited = spec.mode == ServiceMode::Production || !spec.egress.cidrs.empty();
    for (const auto& rule : spec.egress.cidrs) limit.rules.push_back(bridge_rule(rule));
    return limit;
}

namespace {

json record_entry(const net::SandboxBridge& b) {
    const auto& c = b.config();
    const auto& a = b.address();
    return {{"mode", "bridge"},
            {"bridge", c.name},
            {"subnet", to_string(c.plan.subnet4)},
            {"subnet6", c.plan.subnet6 ? to_string(*c.plan.subnet6) : "none"},
            {"index", a.index},
            {"address", to_string(a.v4)}};
}

}  // namespace

Result<std::optional<SandboxNetwork>> prepare_bridge(const SandboxSpec& spec, const std::string& sandbox_id,
                                                     const std::string& state_root, json& record_extra) {
    if (spec.network != net::NetworkMode::Bridge) return std::optional<SandboxNetwork>();
    SandboxNetwork network;
    if (::geteuid() != 0) {
        if (egress_limit(spec).limited)
            return Error::plain(
                "--network bridge with an egress limit (production mode denies all egress without "
                "allow rules) needs root for nftables on the host; as a non-root user, use "
                "--network none or run as root");
        auto plan = net::plan_pasta(spec.publish);
        if (!plan) return std::move(plan).error();
        network.pasta_plan = std::move(*plan);
        record_extra["network"] = {{"mode", "pasta"}};
        return std::optional<SandboxNetwork>(std::move(network));
    }
    auto config = net::runtime_bridge_config();
    if (!config) return std::move(config).error();
    net::SandboxNetworkRequest request{sandbox_id, spec.publish, egress_limit(spec)};
    auto bridge = net::SandboxBridge::prepare(*config, state_root, std::move(request));
    if (!bridge) return std::move(bridge).error();
    network.bridge = std::move(*bridge);
    record_extra["network"] = record_entry(*network.bridge);
    return std::optional<SandboxNetwork>(std::move(network));
}

asio::awaitable<Status> attach_bridge(SandboxNetwork* network, pid_t pid) {
    if (network->bridge) co_return network->bridge->attach(pid);
    if (network->pasta_plan) {
        auto started = co_await net::start_pasta(*network->pasta_plan, pid);
        if (!started) co_return std::move(started).error().wrap("connecting the sandbox with pasta");
        network->pasta = std::move(*started);
    }
    co_return Status{};
}

asio::awaitable<void> stop_bridge(SandboxNetwork* network) {
    if (network->pasta.valid()) co_await net::stop_pasta(std::move(network->pasta));
    network->pasta = io::ProcessHandle();
}

bool release_bridge(SandboxNetwork& network, json& cleanup, std::string& warning) {
    if (!network.bridge) return true;
    auto st = network.bridge->release();
    cleanup["network_released"] = st.ok();
    if (!st) warning = "releasing the sandbox's network: " + st.error().describe() + " (the next gc retries)";
    return st.ok();
}

json bridge_summary(const SandboxNetwork& network) {
    json published = json::array();
    if (network.pasta_plan) {
        for (const auto& p : network.pasta_plan->publish) published.push_back(net::to_string(p));
        return {{"mode", "pasta"}, {"published", published}};
    }
    if (!network.bridge) return nullptr;
    const auto& b = *network.bridge;
    json out = {{"mode", "bridge"},
                {"bridge", b.config().name},
                {"address", to_string(b.address().v4) + "/" + std::to_string(b.config().plan.subnet4.prefix)},
                {"gateway", to_string(b.config().plan.gateway().v4)},
                {"veth", b.host_veth()},
                {"published", published}};
    for (const auto& p : b.published()) out["published"].push_back(net::to_string(p));
    if (b.address().v6) {
        out["address6"] = to_string(*b.address().v6) + "/" + std::to_string(b.config().plan.subnet6->prefix);
        out["gateway6"] = to_string(*b.config().plan.gateway().v6);
    }
    return out;
}

std::optional<SandboxNetwork> readopt_bridge(const SandboxSpec& spec, const std::string& sandbox_id,
                                             const std::string& state_root, const json& record, std::string& warning) {
    const json& n = record.is_object() ? record.value("network", json()) : json();
    if (!n.is_object() || n.value("mode", "") != "bridge" || !n["index"].is_number_unsigned()) return std::nullopt;
    auto config = net::make_bridge_config(n.value("bridge", ""), n.value("subnet", ""), n.value("subnet6", ""));
    if (!config) {
        warning = "re-adopting sandbox " + sandbox_id + ": its network record: " + config.error().describe();
        return std::nullopt;
    }
    net::SandboxNetworkRequest request{sandbox_id, spec.publish, egress_limit(spec)};
    auto bridge = net::SandboxBridge::readopt(*config, state_root, n["index"].get<uint32_t>(), std::move(request));
    if (!bridge) {
        warning = "re-adopting sandbox " + sandbox_id + ": " + bridge.error().describe();
        return std::nullopt;
    }
    SandboxNetwork network;
    network.bridge = std::move(*bridge);
    return network;
}

}  // namespace nucleus::core
