// Internal to net/egress_*.cpp: the state one egress sandbox's stub,
// capture and relayed connections share. All of it lives on the reactor
// thread; nothing here locks.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <memory>

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>

#include "net/dns_stub.hpp"
#include "net/egress_service.hpp"

namespace nucleus::net {

class EgressConnection;

class EgressState final : public EgressService, public std::enable_shared_from_this<EgressState> {
public:
    EgressState(asio::any_io_executor executor, EgressSockets sockets, Options options);

    void begin();  // arms the first waits
    void stop() override;
    EgressStats stats() const override { return stats_; }

    // Decisions: counted by the caller, evented here through the rate limit.
    void emit(nlohmann::json record);

    asio::any_io_executor executor;
    EgressPolicy policy;
    std::shared_ptr<UpstreamResolver> resolver;
    SyntheticPool pool;
    EgressStats stats_;
    bool stopped = false;

    // Connections register themselves so that stop() can reset them.
    uint64_t add_connection(std::weak_ptr<EgressConnection> connection);
    void remove_connection(uint64_t id);

private:
    struct DnsSocket {
        asio::ip::udp::socket socket;
        asio::ip::udp::endpoint peer;
        std::array<uint8_t, 4096> buffer{};
    };

    void serve_dns(DnsSocket& dns);
    void answer_dns(DnsSocket& dns, size_t length);
    void accept_next(asio::ip::tcp::acceptor& acceptor, int family);

    bool owns_resolver_;
    EgressEventSink on_event_;
    std::unique_ptr<DnsSocket> dns4_, dns6_;
    asio::ip::tcp::acceptor capture4_, capture6_;
    asio::steady_timer accept_backoff_;  // after EMFILE/ENFILE/ENOMEM, instead of spinning
    std::map<uint64_t, std::weak_ptr<EgressConnection>> connections_;
    uint64_t next_connection_ = 1;
    double tokens_ = EgressService::event_burst;
    std::chrono::steady_clock::time_point refilled_ = std::chrono::steady_clock::now();
    uint64_t suppressed_since_last_ = 0;
};

// Connections one sandbox may have open at once; more are reset (each
// costs the supervisor six descriptors: two sockets, two pipes).
constexpr uint64_t max_connections_per_sandbox = 512;

// Serves one captured connection: decides, resolves, dials, relays
// (net/egress_connection.cpp). Runs until both directions end or the
// service stops.
void start_connection(std::shared_ptr<EgressState> state, asio::ip::tcp::socket client, int family);

}  // namespace nucleus::net
