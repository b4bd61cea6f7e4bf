#include "net/upstream_resolver.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <set>

#include <asio/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "io/unique_fd.hpp"
#include "net/dns_message.hpp"
#include "net/egress_policy.hpp"

namespace nucleus::net {

using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

uint16_t random_id() {
    uint16_t id = 0;
    if (::getrandom(&id, sizeof id, GRND_NONBLOCK) != sizeof id)
        id = static_cast<uint16_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    return id;
}

asio::ip::address to_asio(const IpAddress& a) {
    if (a.family == AF_INET) {
        asio::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), a.bytes.data(), 4);
        return asio::ip::address_v4(b);
    }
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), a.bytes.data(), 16);
    return asio::ip::address_v6(b);
}

bool same_name(std::string_view a, std::string_view b) {
    auto ca = canonical_name(a), cb = canonical_name(b);
    return ca && cb && *ca == *cb;
}

uint32_t clamp(uint32_t v, uint32_t low, uint32_t high) { return std::min(std::max(v, low), high); }

// Registers a query's deadline for cancel_pending() while it exists.
class Tracked {
public:
    Tracked(std::set<asio::steady_timer*>& set, asio::steady_timer& timer) : set_(set), timer_(&timer) {
        set_.insert(timer_);
    }
    ~Tracked() { set_.erase(timer_); }
    Tracked(const Tracked&) = delete;
    Tracked& operator=(const Tracked&) = delete;

private:
    std::set<asio::steady_timer*>& set_;
    asio::steady_timer* timer_;
};

}  // namespace

struct UpstreamResolver::Answer {
    std::vector<IpAddress> addresses;
    uint32_t ttl = 300;
    bool negative_ttl_known = false;
};

ResolverConfig ResolverConfig::from_resolv_conf(std::string_view text) {
    ResolverConfig config;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (!line.starts_with("nameserver")) continue;
        line.remove_prefix(10);
        if (line.empty() || (line[0] != ' ' && line[0] != '\t')) continue;
        while (!line.empty() && (line[0] == ' ' || line[0] == '\t')) line.remove_prefix(1);
        auto stop = line.find_first_of(" \t\r#;%");  // "%eth0" scope ids are not supported
        auto address = IpAddress::parse(line.substr(0, stop));
        if (address && config.servers.size() < 3) config.servers.push_back(*address);
    }
    if (config.servers.empty()) config.servers.push_back(*IpAddress::parse("127.0.0.1"));
    return config;
}

ResolverConfig host_resolver_config(const std::string& path) {
    auto text = io::read_file(path, 64 << 10);
    return ResolverConfig::from_resolv_conf(text ? *text : "");
}

UpstreamResolver::UpstreamResolver(asio::any_io_executor executor, ResolverConfig config)
    : executor_(std::move(executor)), config_(std::move(config)) {}

void UpstreamResolver::cancel_pending() {
    cancelled_ = true;
    for (auto* timer : deadlines_) timer->cancel();
}

void UpstreamResolver::remember(const std::string& name, std::vector<IpAddress> addresses, uint32_t ttl) {
    auto now = Clock::now();
    if (cache_.size() >= max_cache) {
        std::erase_if(cache_, [&](const auto& e) { return e.second.expires <= now; });
        if (cache_.size() >= max_cache) cache_.erase(cache_.begin());
    }
    cache_[name] = Entry{std::move(addresses), now + std::chrono::seconds(ttl)};
}

asio::awaitable<Result<std::vector<IpAddress>>> UpstreamResolver::resolve(std::string name) {
    if (auto it = cache_.find(name); it != cache_.end()) {
        if (it->second.expires > Clock::now()) co_return it->second.addresses;
        cache_.erase(it);
    }
    std::string last_error = "no nameserver configured";
    for (int attempt = 0; attempt < config_.attempts; ++attempt) {
        for (const auto& server : config_.servers) {
            if (cancelled_) co_return Error::plain("resolving " + name + ": cancelled");
            auto answer = co_await query_server(server, name);
            if (!answer) {
                last_error = answer.error().describe();
                continue;
            }
            uint32_t ttl = answer->addresses.empty() ? clamp(answer->ttl, 5, 60) : clamp(answer->ttl, 5, 300);
            remember(name, answer->addresses, ttl);
            co_return std::move(answer->addresses);
        }
    }
    co_return Error::plain("resolving " + name + ": " + last_error);
}

asio::awaitable<Result<UpstreamResolver::Answer>> UpstreamResolver::query_server(const IpAddress& server,
                                                                                 const std::string& name) {
    using asio::ip::udp;
    udp::endpoint endpoint(to_asio(server), config_.port);
    udp::socket socket(executor_);
    std::error_code ec;
    socket.open(endpoint.protocol(), ec);
    if (!ec) socket.connect(endpoint, ec);
    if (!ec) socket.non_blocking(true, ec);
    if (ec) co_return Error{ec.value(), "connecting to nameserver " + server.to_string()};

    const uint16_t types[2] = {dns::AAAA, dns::A};
    std::vector<uint8_t> queries[2];
    uint16_t ids[2];
    for (int i = 0; i < 2; ++i) {
        ids[i] = random_id();
        auto q = dns::build_query(ids[i], name, types[i]);
        if (!q) co_return std::move(q).error();
        queries[i] = std::move(*q);
        socket.send(asio::buffer(queries[i]), 0, ec);
        if (ec) co_return Error{ec.value(), "sending to nameserver " + server.to_string()};
        ++queries_;
    }
    std::optional<std::vector<uint8_t>> responses[2];
    asio::steady_timer deadline(executor_, config_.timeout);
    Tracked tracked(deadlines_, deadline);
    std::vector<uint8_t> buf(4096);
    while (!responses[0] || !responses[1]) {
        auto result = co_await (socket.async_receive(asio::buffer(buf), use_tuple) || deadline.async_wait(use_tuple));
        if (result.index() == 1) co_return Error::plain("no answer from nameserver " + server.to_string());
        auto [rec, n] = std::get<0>(result);
        if (rec) continue;  // e.g. ECONNREFUSED from an ICMP error: wait for the deadline or another answer
        std::vector<uint8_t> wire(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n));
        auto header = dns::parse_header(wire);
        if (!header || !header->response) continue;
        for (int i = 0; i < 2; ++i) {
            if (responses[i] || header->id != ids[i]) continue;
            auto m = dns::parse(wire, true);
            if (!m || m->questions.size() != 1 || m->questions[0].type != types[i] ||
                !same_name(m->questions[0].name, name))
                continue;
            if (header->truncated) {
                auto tcp = co_await query_tcp(server, queries[i]);
                if (!tcp) co_return std::move(tcp).error();
                wire = std::move(*tcp);
            }
            responses[i] = std::move(wire);
            break;
        }
    }

    Answer answer;
    uint32_t min_ttl = UINT32_MAX;
    bool any_positive = false;
    for (int i = 0; i < 2; ++i) {
        auto m = dns::parse(*responses[i]);
        if (!m) co_return Error::plain("malformed answer from nameserver " + server.to_string());
        uint8_t rcode = m->header.rcode;
        if (rcode != dns::NoError && rcode != dns::NXDomain)
            co_return Error::plain("nameserver " + server.to_string() + " answered rcode " + std::to_string(rcode));
        // The names that stand for `name`: itself and its CNAME targets.
        std::set<std::string> aliases = {*canonical_name(name)};
        for (size_t round = 0; round < m->answers.size(); ++round)
            for (const auto& r : m->answers)
                if (r.type == dns::CNAME && aliases.count(canonical_name(r.name).value_or("")))
                    if (auto t = canonical_name(r.target)) aliases.insert(*t);
        for (const auto& r : m->answers) {
            if (!aliases.count(canonical_name(r.name).value_or(""))) continue;
            if ((r.type == dns::A && r.data.size() == 4) || (r.type == dns::AAAA && r.data.size() == 16)) {
                IpAddress a;
                a.family = r.type == dns::A ? AF_INET : AF_INET6;
                std::copy(r.data.begin(), r.data.end(), a.bytes.begin());
                if (a.family == AF_INET6) a = IpAddress::parse(a.to_string()).value_or(a);  // mapped -> IPv4
                answer.addresses.push_back(a);
                min_ttl = std::min(min_ttl, r.ttl);
                any_positive = true;
            }
        }
        if (!any_positive)
            for (const auto& r : m->authority)
                if (r.type == dns::SOA) min_ttl = std::min(min_ttl, std::min(r.ttl, r.soa_minimum));
    }
    answer.ttl = min_ttl == UINT32_MAX ? 30 : min_ttl;
    co_return answer;
}

asio::awaitable<Result<std::vector<uint8_t>>> UpstreamResolver::query_tcp(const IpAddress& server,
                                                                          std::vector<uint8_t> query) {
    using asio::ip::tcp;
    tcp::socket socket(executor_);
    asio::steady_timer deadline(executor_, config_.timeout);
    Tracked tracked(deadlines_, deadline);
    auto connected = co_await (socket.async_connect(tcp::endpoint(to_asio(server), config_.port), use_tuple) ||
                               deadline.async_wait(use_tuple));
    if (connected.index() == 1 || std::get<0>(std::get<0>(connected)))
        co_return Error::plain("no TCP connection to nameserver " + server.to_string());
    std::vector<uint8_t> framed(2 + query.size());
    framed[0] = static_cast<uint8_t>(query.size() >> 8);
    framed[1] = static_cast<uint8_t>(query.size());
    std::copy(query.begin(), query.end(), framed.begin() + 2);
    auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(framed), use_tuple);
    if (wec) co_return Error{wec.value(), "writing to nameserver " + server.to_string()};
    uint8_t length[2];
    auto got = co_await (asio::async_read(socket, asio::buffer(length), use_tuple) || deadline.async_wait(use_tuple));
    if (got.index() == 1 || std::get<0>(std::get<0>(got)))
        co_return Error::plain("no TCP answer from nameserver " + server.to_string());
    std::vector<uint8_t> body(static_cast<size_t>(length[0]) << 8 | length[1]);
    auto read = co_await (asio::async_read(socket, asio::buffer(body), use_tuple) || deadline.async_wait(use_tuple));
    if (read.index() == 1 || std::get<0>(std::get<0>(read)))
        co_return Error::plain("short TCP answer from nameserver " + server.to_string());
    co_return body;
}

}  // namespace nucleus::net
