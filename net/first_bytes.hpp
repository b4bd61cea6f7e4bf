// What a captured connection starts with, read before it is dialled out:
// a TLS ClientHello (and the server name it asks for) or an HTTP request
// line. The egress proxy resets TLS whose SNI is not the name the sandbox
// connected to (domain fronting onto an allowed name's address), and TLS
// without SNI; HTTP requests go through HttpGuard, which checks every
// request's Host. The bytes come from the sandbox: everything is bounded
// (max_first_bytes), and a ClientHello split across several TLS records is
// reassembled within that bound.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace nucleus::net {

constexpr size_t max_first_bytes = 16 * 1024;

enum class StreamKind {
    NeedMore,  // not enough bytes to tell yet
    Tls,  // a complete ClientHello; `host` is its SNI host_name, if any
    Http,  // an HTTP/1.x request line begins
    Other,  // neither: some other protocol
    Invalid,  // looks like TLS but is malformed, or too long
};

struct FirstBytes {
    StreamKind kind = StreamKind::NeedMore;
    std::optional<std::string> host;  // TLS SNI, as sent
};

FirstBytes inspect_first_bytes(std::span<const uint8_t> data);

}  // namespace nucleus::net
