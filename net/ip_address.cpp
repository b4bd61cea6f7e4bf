#include "net/ip_address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace nucleus::net {

namespace {

bool is_v4_mapped(const std::array<uint8_t, 16>& b) {
    for (int i = 0; i < 10; ++i)
        if (b[i] != 0) return false;
    return b[10] == 0xff && b[11] == 0xff;
}

IpAddress unmap(const std::array<uint8_t, 16>& b) {
    if (!is_v4_mapped(b)) return IpAddress::v6(b);
    IpAddress a;
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), b.data() + 12, 4);
    return a;
}

}  // namespace

IpAddress IpAddress::v4(uint32_t host_order) {
    IpAddress a;
    a.family = AF_INET;
    uint32_t n = htonl(host_order);
    std::memcpy(a.bytes.data(), &n, 4);
    return a;
}

IpAddress IpAddress::v6(const std::array<uint8_t, 16>& bytes) {
    IpAddress a;
    a.family = AF_INET6;
    a.bytes = bytes;
    return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
    char buf[INET6_ADDRSTRLEN + 1];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = 0;
    IpAddress a;
    if (::inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
    std::array<uint8_t, 16> b{};
    if (::inet_pton(AF_INET6, buf, b.data()) == 1) return unmap(b);
    return std::nullopt;
}

std::optional<IpAddress> IpAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
    if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
        IpAddress a;
        std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
        return a;
    }
    if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        std::array<uint8_t, 16> b{};
        std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
        return unmap(b);
    }
    return std::nullopt;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, bytes.data(), buf, sizeof buf);
    return buf;
}

SocketAddress SocketAddress::of(const IpAddress& address, uint16_t port) {
    SocketAddress out;
    if (address.family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        std::memcpy(&in->sin_addr, address.bytes.data(), 4);
        out.length = sizeof(sockaddr_in);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        std::memcpy(&in6->sin6_addr, address.bytes.data(), 16);
        out.length = sizeof(sockaddr_in6);
    }
    return out;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
    auto slash = text.find('/');
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) return std::nullopt;
    int max = address->family == AF_INET ? 32 : 128;
    int prefix = max;
    if (slash != std::string_view::npos) {
        auto digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3) return std::nullopt;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
        // "::ffff:0:0/96" written as mapped IPv6 is an IPv4 prefix.
        bool mapped = address->family == AF_INET && text.substr(0, slash).find(':') != std::string_view::npos;
        if (mapped) prefix -= 96;
        if (prefix < 0 || prefix > max) return std::nullopt;
    }
    Cidr c;
    c.prefix = prefix;
    c.network = *address;
    for (int bit = prefix; bit < max; ++bit) c.network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    return c;
}

bool Cidr::contains(const IpAddress& address) const {
    if (address.family != network.family) return false;
    int full = prefix / 8;
    if (std::memcmp(address.bytes.data(), network.bytes.data(), static_cast<size_t>(full)) != 0) return false;
    if (prefix % 8 == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - prefix % 8));
    return (address.bytes[full] & mask) == network.bytes[full];
}

bool Cidr::covers(const Cidr& inner) const {
    return inner.network.family == network.family && inner.prefix >= prefix && contains(inner.network);
}

std::string Cidr::to_string() const { return network.to_string() + "/" + std::to_string(prefix); }

}  // namespace nucleus::net
