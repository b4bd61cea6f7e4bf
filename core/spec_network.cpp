#include "core/spec_network.hpp"

#include <nlohmann/json.hpp>

namespace nucleus::core {

namespace {

Error bad_publish(const std::string& why) { return Error::plain("publish (--publish): " + why); }

}  // namespace

Status apply_network_keys(SandboxSpec& spec, const nlohmann::json& doc) {
    if (!doc.contains("publish")) return {};
    const nlohmann::json& v = doc.at("publish");
    std::vector<std::string> texts;
    if (v.is_string()) texts.push_back(v.get<std::string>());
    else if (v.is_array()) {
        for (const auto& item : v) {
            if (!item.is_string()) return bad_publish("must be a list of strings");
            texts.push_back(item.get<std::string>());
        }
    } else {
        return bad_publish("must be a list of strings");
    }
    for (const auto& text : texts) {
        auto port = net::parse_published_port(text);
        if (!port) return bad_publish(port.error().describe());
        for (const auto& other : spec.publish)
            if (other.host_port == port->host_port && other.protocol == port->protocol && other.family == port->family &&
                other.host_v4 == port->host_v4 && other.host_v6 == port->host_v6)
                return bad_publish("\"" + text + "\" publishes host port " + std::to_string(port->host_port) + "/" +
                                   std::string(net::to_string(port->protocol)) + " twice");
        spec.publish.push_back(*port);
    }
    if (!spec.publish.empty() && spec.network != net::NetworkMode::Bridge)
        return bad_publish("needs --network bridge (a sandbox without its own routed network has no port to publish)");
    return {};
}

}  // namespace nucleus::core
