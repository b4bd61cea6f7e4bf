// Checks every HTTP/1.x request a sandbox sends on a captured plaintext
// connection: each must name the host the connection was allowed for (its
// Host header, or the authority of an absolute-form target, RFC 9112 3.2).
// Checking only the first request would let a keep-alive or pipelined
// second request front another site on the same address.
//
// Fed the client's bytes in order, before they are forwarded; a chunk that
// holds a refused request is not forwarded at all. CONNECT is refused (the
// upstream could be a proxy). After an accepted Upgrade (WebSocket) the
// rest of the stream is not HTTP and passes unchecked.
#pragma once

#include <memory>
#include <span>
#include <string>

namespace nucleus::net {

class HttpGuard {
public:
    // `host`: the allowed name (lower case); `port`: the port connected to.
    HttpGuard(std::string host, uint16_t port);
    ~HttpGuard();
    HttpGuard(const HttpGuard&) = delete;
    HttpGuard& operator=(const HttpGuard&) = delete;

    // Whether `chunk` may be forwarded; once refused, always refused.
    bool accept(std::span<const uint8_t> chunk);
    const std::string& refusal() const { return refusal_; }
    size_t requests() const { return requests_; }

private:
    struct Parser;
    std::unique_ptr<Parser> parser_;
    std::string host_;
    uint16_t port_;
    std::string refusal_;
    size_t requests_ = 0;
    bool passthrough_ = false;
    friend struct Parser;
};

// Bytes from the sandbox (a Host, an SNI) as they may appear in an event
// or error: printable ASCII, anything else as \xHH, at most 256 bytes.
std::string printable(std::string_view text);

// "Example.com:443" -> "example.com" when the port (if any) is `port` or
// the scheme's default; nullopt-like empty string when it is not a host.
std::string host_of_authority(std::string_view authority, uint16_t port);

}  // namespace nucleus::net
