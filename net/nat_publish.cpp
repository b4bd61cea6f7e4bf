// -p/--publish: parsing and printing published ports (net/nat.hpp).
// Apart from the nftables code so that spec parsing, and its fuzz target,
// need none of it.
#include <sys/socket.h>

#include <charconv>

#include "net/nat.hpp"

namespace nucleus::net {

std::string_view to_string(Protocol p) { return p == Protocol::Udp ? "udp" : "tcp"; }

// ---- -p/--publish -----------------------------------------------------------

namespace {

std::optional<uint16_t> parse_port(std::string_view text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) return std::nullopt;
    return static_cast<uint16_t>(value);
}

Error bad_publish(std::string_view text, const std::string& why) {
    return Error::plain("\"" + std::string(text) + "\" " + why + " (expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp])");
}

// Fills p.family/host_v4/host_v6 from the address part ("" = 127.0.0.1).
Status parse_host_address(std::string_view text, std::string_view address, PublishedPort& p) {
    if (address.empty()) {
        p.host_v4 = Ipv4{0x7f000001};
        return {};
    }
    if (address.front() == '[') {
        if (address.back() != ']') return bad_publish(text, "has an unclosed [");
        auto v6 = parse_ipv6(address.substr(1, address.size() - 2));
        if (!v6) return bad_publish(text, "has no valid IPv6 address in brackets");
        p.family = AF_INET6;
        if (v6->bytes == Ipv6{}.bytes) return {};  // [::]: every local IPv6 address
        Ipv6 loopback;
        loopback.bytes[15] = 1;
        if (*v6 == loopback)
            return Error::plain(
                "\"" + std::string(text) +
                "\": a port cannot be published on [::1]: the kernel never routes ::1 off the loopback "
                "device (there is no IPv6 route_localnet); publish on 127.0.0.1 or a non-loopback address");
        p.host_v6 = *v6;
        return {};
    }
    auto v4 = parse_ipv4(address);
    if (!v4) return bad_publish(text, "has no valid IPv4 address (IPv6 goes in brackets)");
    if (v4->value != 0) p.host_v4 = *v4;  // 0.0.0.0: every local IPv4 address
    return {};
}

}  // namespace

Result<PublishedPort> parse_published_port(std::string_view text) {
    PublishedPort p;
    std::string_view rest = text;
    if (auto slash = rest.rfind('/'); slash != std::string_view::npos) {
        std::string_view proto = rest.substr(slash + 1);
        if (proto == "udp") p.protocol = Protocol::Udp;
        else if (proto != "tcp") return bad_publish(text, "names protocol \"" + std::string(proto) + "\"");
        rest = rest.substr(0, slash);
    }
    auto last = rest.rfind(':');
    if (last == std::string_view::npos) return bad_publish(text, "has no HOST_PORT:CONTAINER_PORT");
    auto container = parse_port(rest.substr(last + 1));
    rest = rest.substr(0, last);
    auto before = rest.rfind(':');
    // "[v6]:host" has its last ':' after the bracket; a bare v6 address
    // without brackets would be ambiguous and is refused by the parser.
    if (before != std::string_view::npos && rest.find(']') != std::string_view::npos && before < rest.rfind(']'))
        before = std::string_view::npos;
    std::string_view host_port = before == std::string_view::npos ? rest : rest.substr(before + 1);
    std::string_view address = before == std::string_view::npos ? std::string_view() : rest.substr(0, before);
    auto host = parse_port(host_port);
    if (!host || !container) return bad_publish(text, "has a port that is not a number in 1-65535");
    p.host_port = *host;
    p.container_port = *container;
    NUCLEUS_TRY(parse_host_address(text, address, p));
    return p;
}

std::string to_string(const PublishedPort& p) {
    std::string address = p.family == AF_INET6 ? "[" + (p.host_v6 ? to_string(*p.host_v6) : std::string("::")) + "]"
                                               : (p.host_v4 ? to_string(*p.host_v4) : std::string("0.0.0.0"));
    return address + ":" + std::to_string(p.host_port) + ":" + std::to_string(p.container_port) + "/" +
           std::string(to_string(p.protocol));
}

}  // namespace nucleus::net
