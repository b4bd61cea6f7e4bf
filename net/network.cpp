#include "net/network.hpp"

#include <cctype>

namespace nucleus::net {

std::optional<NetworkMode> parse_network_mode(std::string_view text) {
    if (text == "none") return NetworkMode::None;
    if (text == "host") return NetworkMode::Host;
    if (text == "bridge") return NetworkMode::Bridge;
    if (text == "egress") return NetworkMode::Egress;
    return std::nullopt;
}

std::string_view to_string(NetworkMode mode) {
    switch (mode) {
        case NetworkMode::Host:
            return "host";
        case NetworkMode::Bridge:
            return "bridge";
        case NetworkMode::Egress:
            return "egress";
        case NetworkMode::None:
            break;
    }
    return "none";
}

bool needs_network_namespace(NetworkMode mode) { return mode != NetworkMode::Host; }

std::string hosts_file(const std::string& hostname) {
    return "127.0.0.1\tlocalhost\n"
           "::1\tlocalhost ip6-localhost ip6-loopback\n"
           "127.0.1.1\t" +
           hostname + "\n";
}

bool is_valid_hostname(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    size_t label = 0;
    for (size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        if (c == '.') {
            if (label == 0 || name[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        bool ok = std::isalnum(static_cast<unsigned char>(c)) || (c == '-' && label > 0);
        if (!ok || ++label > 63) return false;
    }
    return name.back() != '-' && name.back() != '.';
}

}  // namespace nucleus::net
