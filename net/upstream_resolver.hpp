// The runtime's own resolver for names an egress sandbox connects to: the
// stub never sends anything upstream; only once a connection to an allowed
// name is captured does the runtime resolve that name, here, on the
// reactor (no thread, no blocking getaddrinfo(3)).
//
// Queries A and AAAA together over UDP to the nameservers of the host's
// resolv.conf (as seen by the supervisor, i.e. its own network namespace),
// in order, retrying over TCP when an answer is truncated; answers are
// matched by id and question, CNAME chains followed within the answer.
// Results are cached for their TTL clamped to [5 s, 300 s] (negative ones
// for the SOA minimum clamped to [5 s, 60 s]), at most max_cache names.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include "io/error.hpp"
#include "net/ip_address.hpp"

namespace nucleus::net {

struct ResolverConfig {
    std::vector<IpAddress> servers;  // port 53 each
    uint16_t port = 53;
    std::chrono::milliseconds timeout{1500};  // per server and attempt
    int attempts = 2;  // rounds over the server list

    // resolv.conf(5): "nameserver ADDR" lines (at most 3 used, as glibc);
    // none means 127.0.0.1.
    static ResolverConfig from_resolv_conf(std::string_view text);
};

class UpstreamResolver {
public:
    static constexpr size_t max_cache = 4096;

    UpstreamResolver(asio::any_io_executor executor, ResolverConfig config);

    // Addresses of `name` (canonical, lower case), IPv6 and IPv4 in the
    // order the answers gave them; an empty list when the name does not
    // exist or has no address. Errors: no server answered.
    asio::awaitable<Result<std::vector<IpAddress>>> resolve(std::string name);

    // Ends every query in flight now (they fail): a `nucleus run` whose
    // sandbox has exited must not wait for a slow nameserver.
    void cancel_pending();

    const ResolverConfig& config() const { return config_; }
    size_t upstream_queries() const { return queries_; }

private:
    using Clock = std::chrono::steady_clock;
    struct Entry {
        std::vector<IpAddress> addresses;
        Clock::time_point expires;
    };
    struct Answer;

    asio::awaitable<Result<Answer>> query_server(const IpAddress& server, const std::string& name);
    asio::awaitable<Result<std::vector<uint8_t>>> query_tcp(const IpAddress& server, std::vector<uint8_t> query);
    void remember(const std::string& name, std::vector<IpAddress> addresses, uint32_t ttl);

    asio::any_io_executor executor_;
    ResolverConfig config_;
    std::map<std::string, Entry> cache_;
    std::set<asio::steady_timer*> deadlines_;  // of the queries in flight
    size_t queries_ = 0;
    bool cancelled_ = false;
};

// Reads the host's resolv.conf now (a small local file, read once per
// resolver).
ResolverConfig host_resolver_config(const std::string& path = "/etc/resolv.conf");

}  // namespace nucleus::net
