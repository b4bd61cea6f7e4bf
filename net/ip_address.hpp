// IPv4/IPv6 addresses and CIDR prefixes as plain values.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it maps:
// a socket connecting to one sends IPv4 packets (ipv6(7)), so policy must
// see it as what it reaches. parse() accepts only the canonical dotted quad
// for IPv4 (inet_pton(3)): "3221225985" or "0xc0.0.2.1" are not addresses
// here, as they are not for curl's resolver either once it reaches us.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nucleus::net {

struct IpAddress {
    int family = AF_INET;  // AF_INET or AF_INET6
    std::array<uint8_t, 16> bytes{};  // network order; IPv4 in the first 4

    static IpAddress v4(uint32_t host_order);
    static IpAddress v6(const std::array<uint8_t, 16>& bytes);
    // Text form (inet_pton); an IPv4-mapped IPv6 address becomes IPv4.
    static std::optional<IpAddress> parse(std::string_view text);
    // From a sockaddr_in/sockaddr_in6 (mapped IPv6 becomes IPv4).
    static std::optional<IpAddress> from_sockaddr(const sockaddr* sa, socklen_t len);

    size_t size() const { return family == AF_INET ? 4 : 16; }
    std::string to_string() const;
    bool operator==(const IpAddress&) const = default;
};

// sockaddr_in/sockaddr_in6 for (address, port).
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    static SocketAddress of(const IpAddress& address, uint16_t port);
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

struct Cidr {
    IpAddress network;  // host bits cleared
    int prefix = 0;  // 0..32 or 0..128

    // "a.b.c.d/N", "x::/N", or a bare address (a /32 or /128).
    static std::optional<Cidr> parse(std::string_view text);
    bool contains(const IpAddress& address) const;
    // Whether every address of `inner` lies in this prefix.
    bool covers(const Cidr& inner) const;
    std::string to_string() const;
    bool operator==(const Cidr&) const = default;
};

}  // namespace nucleus::net
