// One captured connection of an egress sandbox, from accept to close:
//
//   1. its original destination (SO_ORIGINAL_DST: what the sandbox dialled
//      before the redirect) maps back to a name through the sandbox's
//      synthetic pool, or is a literal address;
//   2. the policy decides on (name, port), or on (address, port) for a
//      literal address, which only CIDR rules open; denied: reset at once;
//   3. for a name, the first bytes must agree: a TLS ClientHello's SNI must
//      be the name (no SNI: reset), an HTTP request goes through HttpGuard
//      (every request's Host), anything else on port 80 or 443 is reset;
//      on other ports a protocol where the server speaks first gets
//      through once the client has been silent for first_bytes_grace;
//   4. the runtime resolves the name itself (net/upstream_resolver.hpp) and
//      refuses special addresses it resolves to (DNS rebinding onto
//      metadata or loopback);
//   5. it dials from the supervisor's side and relays both ways: splice(2)
//      through a pipe, so the payload never crosses user space, each step
//      driven by an io_uring readiness wait on the reactor. Plaintext HTTP
//      from the sandbox is the exception: it is read and parsed (HttpGuard)
//      before it is forwarded.
// Port 53 is DNS over TCP: served by the stub, never relayed.
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "isolation/kernel_abi.hpp"
#include "net/first_bytes.hpp"
#include "net/http_guard.hpp"
#include "net/egress_state.hpp"

namespace nucleus::net {

using namespace asio::experimental::awaitable_operators;
using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto first_bytes_timeout = std::chrono::seconds(10);
constexpr auto first_bytes_grace = std::chrono::milliseconds(300);
constexpr auto connect_timeout = std::chrono::seconds(10);
constexpr auto dns_idle_timeout = std::chrono::seconds(10);
constexpr size_t pipe_capacity = 256 * 1024;
constexpr int splices_per_wakeup = 16;  // then yield to the other sandboxes

// A deadline for the pending operation on a socket: a plain timer whose
// handler cancels the operation (cheaper than racing two coroutines with
// `||` on the path every connection takes). The handler may already be
// queued when the operation completes first, so it checks, through state
// it shares, that the awaiting code still holds the deadline.
class Deadline {
public:
    template <class Socket>
    Deadline(Socket& socket, std::chrono::steady_clock::duration after)
        : state_(std::make_shared<State>()), timer_(socket.get_executor(), after) {
        timer_.async_wait([state = state_, &socket](std::error_code ec) {
            if (ec || !state->armed) return;
            state->expired = true;
            std::error_code ignored;
            socket.cancel(ignored);
        });
    }
    ~Deadline() {
        state_->armed = false;
        timer_.cancel();
    }
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;
    bool expired() const { return state_->expired; }

private:
    struct State {
        bool armed = true;
        bool expired = false;
    };
    std::shared_ptr<State> state_;
    asio::steady_timer timer_;
};

struct Destination {
    IpAddress address;
    uint16_t port = 0;
};

std::optional<Destination> original_destination(int fd, int family) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int rc = family == AF_INET ? ::getsockopt(fd, SOL_IP, kabi::so_original_dst, &ss, &len)
                               : ::getsockopt(fd, SOL_IPV6, kabi::ip6t_so_original_dst, &ss, &len);
    if (rc < 0) return std::nullopt;
    auto address = IpAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    if (!address) return std::nullopt;
    uint16_t port = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                            : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return Destination{*address, port};
}

tcp::endpoint endpoint_of(const IpAddress& a, uint16_t port) {
    auto sa = SocketAddress::of(a, port);
    tcp::endpoint ep;
    std::memcpy(ep.data(), sa.get(), sa.length);
    return ep;
}

std::string bracketed(const IpAddress& a) { return a.family == AF_INET6 ? "[" + a.to_string() + "]" : a.to_string(); }

// Both ends of a relay direction, and the pipe the payload moves through.
struct Direction {
    tcp::socket* src = nullptr;
    tcp::socket* dst = nullptr;
    io::PipePair pipe;
    size_t in_pipe = 0;
    bool eof = false;
    bool done = false;
    uint64_t bytes = 0;
    std::unique_ptr<HttpGuard> guard;  // set: read, check, write (no splice)
    std::vector<uint8_t> buffer;
};

}  // namespace

class EgressConnection : public std::enable_shared_from_this<EgressConnection> {
public:
    EgressConnection(std::shared_ptr<EgressState> state, tcp::socket client, int family)
        : state_(std::move(state)), client_(std::move(client)), upstream_(state_->executor), family_(family) {}
    ~EgressConnection() { state_->remove_connection(id_); }

    asio::awaitable<void> run();
    void close(bool reset);

private:
    asio::awaitable<void> serve_dns();
    asio::awaitable<bool> read_first_bytes(uint16_t port);
    asio::awaitable<std::vector<IpAddress>> targets(const std::optional<std::string>& name, const Destination& dest,
                                                    std::string& why_none);
    asio::awaitable<std::optional<IpAddress>> dial(const std::vector<IpAddress>& addresses, uint16_t port);
    std::string first_bytes_refusal(const std::string& name, uint16_t port);
    void deny(nlohmann::json record, const std::string& reason);
    Status start_relay();
    void pump(Direction& d);
    void pump_guarded(Direction& d);
    void finish(Direction& d);
    void fail();

    std::shared_ptr<EgressState> state_;
    tcp::socket client_;
    tcp::socket upstream_;
    int family_;
    uint64_t id_ = 0;
    bool closed_ = false;
    std::vector<uint8_t> first_;
    std::unique_ptr<HttpGuard> guard_;
    Direction out_, in_;  // sandbox -> world, world -> sandbox
};

void close_connection(EgressConnection& connection) { connection.close(true); }

void start_connection(std::shared_ptr<EgressState> state, tcp::socket client, int family) {
    auto connection = std::make_shared<EgressConnection>(state, std::move(client), family);
    // The completion handler holds the connection until its set-up returns;
    // the relay's pending waits hold it after that.
    asio::co_spawn(state->executor, connection->run(), [connection](std::exception_ptr e) {
        if (e) connection->close(true);  // e.g. bad_alloc: this connection ends, the service goes on
    });
}

void EgressConnection::close(bool reset) {
    if (closed_) return;
    closed_ = true;
    // Counted here, not at destruction: stop() reads the stats right after
    // closing, while handlers may still hold the connection.
    state_->stats_.bytes_out += out_.bytes;
    state_->stats_.bytes_in += in_.bytes;
    std::error_code ec;
    if (reset) {
        // SO_LINGER 0: close(2) sends RST, so the client sees a reset, not an EOF.
        linger l{1, 0};
        ::setsockopt(client_.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
        if (upstream_.is_open()) ::setsockopt(upstream_.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    client_.close(ec);
    upstream_.close(ec);
}

void EgressConnection::deny(nlohmann::json record, const std::string& reason) {
    ++state_->stats_.connections_denied;
    record["action"] = "deny";
    record["protocol"] = "tcp";
    record["reason"] = reason;
    state_->emit(std::move(record));
    close(true);
}

asio::awaitable<void> EgressConnection::run() {
    id_ = state_->add_connection(weak_from_this());
    if (state_->stats_.connections_open > max_connections_per_sandbox) {
        deny(nlohmann::json::object(),
             "more than " + std::to_string(max_connections_per_sandbox) + " connections open");
        co_return;
    }
    auto dest = original_destination(client_.native_handle(), family_);
    if (!dest) {
        deny(nlohmann::json::object(), "no original destination (not a redirected connection)");
        co_return;
    }
    if (dest->port == 53) {
        co_await serve_dns();
        co_return;
    }
    nlohmann::json record = {{"address", dest->address.to_string()}, {"port", dest->port}};
    auto name = state_->pool.name_of(dest->address);
    Verdict verdict =
        name ? state_->policy.check_name(*name, dest->port) : state_->policy.check_address(dest->address, dest->port);
    if (name) record["name"] = *name;
    if (!verdict.allowed) {
        deny(std::move(record), verdict.reason);
        co_return;
    }
    if (name) {
        if (!co_await read_first_bytes(dest->port)) co_return;
        if (auto refusal = first_bytes_refusal(*name, dest->port); !refusal.empty()) {
            deny(std::move(record), refusal);
            co_return;
        }
    }
    std::string unresolved;
    auto addresses = co_await targets(name, *dest, unresolved);
    if (closed_) co_return;
    if (addresses.empty()) {
        deny(std::move(record), unresolved);
        co_return;
    }
    auto upstream = co_await dial(addresses, dest->port);
    if (closed_) co_return;
    if (!upstream) {
        deny(std::move(record),
             "upstream unreachable: " + bracketed(addresses.front()) + ":" + std::to_string(dest->port));
        co_return;
    }
    if (auto st = start_relay(); !st) {
        deny(std::move(record), st.error().describe());
        co_return;
    }
    ++state_->stats_.connections_allowed;
    record["action"] = "allow";
    record["protocol"] = "tcp";
    record["upstream"] = upstream->to_string();
    record["reason"] = verdict.reason;
    state_->emit(std::move(record));
}

// Reads what the client sends first, until it can be classified (or, for
// HTTP, until the end of the first request's headers). False: closed.
asio::awaitable<bool> EgressConnection::read_first_bytes(uint16_t port) {
    bool web_port = port == 80 || port == 443;
    Deadline deadline(client_, web_port ? std::chrono::steady_clock::duration(first_bytes_timeout)
                                        : std::chrono::steady_clock::duration(first_bytes_grace));
    std::array<uint8_t, 4096> buf;
    for (;;) {
        auto seen = inspect_first_bytes(first_);
        bool headers_done = seen.kind != StreamKind::Http ||
                            std::search(first_.begin(), first_.end(), "\r\n\r\n", "\r\n\r\n" + 4) != first_.end();
        if ((seen.kind != StreamKind::NeedMore && headers_done) || first_.size() >= max_first_bytes) co_return true;
        auto [ec, n] = co_await client_.async_read_some(asio::buffer(buf), use_tuple);
        if (closed_) co_return false;
        if (deadline.expired()) co_return true;  // silent: classified as it stands
        if (ec) {
            close(true);
            co_return false;
        }
        first_.insert(first_.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n));
    }
}

std::string EgressConnection::first_bytes_refusal(const std::string& name, uint16_t port) {
    auto seen = inspect_first_bytes(first_);
    switch (seen.kind) {
        case StreamKind::Tls: {
            if (!seen.host) return "TLS without SNI on a connection to " + name;
            auto sni = canonical_name(*seen.host);
            if (!sni || *sni != name) return "TLS SNI " + printable(*seen.host) + " on a connection to " + name;
            return "";
        }
        case StreamKind::Http:
            guard_ = std::make_unique<HttpGuard>(name, port);
            if (!guard_->accept(first_)) return guard_->refusal();
            return "";
        case StreamKind::Invalid:
            return "malformed TLS ClientHello on a connection to " + name;
        case StreamKind::NeedMore:
            // A ClientHello or request that stopped half-way is not let
            // through on the grace period meant for server-first protocols.
            if (!first_.empty()) return "incomplete TLS ClientHello or HTTP request on a connection to " + name;
            [[fallthrough]];
        case StreamKind::Other:
            if (port == 80 || port == 443)
                return first_.empty() ? "no TLS ClientHello or HTTP request on port " + std::to_string(port)
                                      : "neither TLS nor HTTP on port " + std::to_string(port);
            return "";
    }
    return "";
}

asio::awaitable<std::vector<IpAddress>> EgressConnection::targets(const std::optional<std::string>& name,
                                                                  const Destination& dest, std::string& why_none) {
    if (!name) co_return std::vector<IpAddress>{dest.address};
    auto resolved = co_await state_->resolver->resolve(*name);
    std::vector<IpAddress> same, other;
    if (!resolved) {
        why_none = resolved.error().describe();
        co_return same;
    }
    why_none = *name + " does not resolve";
    for (const auto& a : *resolved) {
        auto verdict = state_->policy.check_resolved(a);
        if (!verdict.allowed) {
            why_none = *name + " " + verdict.reason;
            continue;
        }
        (a.family == dest.address.family ? same : other).push_back(a);
    }
    // The family the sandbox chose first, then the other.
    same.insert(same.end(), other.begin(), other.end());
    co_return same;
}

asio::awaitable<std::optional<IpAddress>> EgressConnection::dial(const std::vector<IpAddress>& addresses,
                                                                 uint16_t port) {
    for (const auto& address : addresses) {
        if (closed_) co_return std::nullopt;
        std::error_code ec;
        if (upstream_.is_open()) upstream_.close(ec);
        upstream_.open(address.family == AF_INET ? tcp::v4() : tcp::v6(), ec);
        if (ec) continue;
        Deadline deadline(upstream_, connect_timeout);
        auto [connect_ec] = co_await upstream_.async_connect(endpoint_of(address, port), use_tuple);
        if (closed_) co_return std::nullopt;
        if (!connect_ec && !deadline.expired()) co_return address;
    }
    co_return std::nullopt;
}

// DNS over TCP (RFC 7766 framing): each message answered by the stub.
asio::awaitable<void> EgressConnection::serve_dns() {
    for (int served = 0; served < 256 && !closed_; ++served) {
        asio::steady_timer idle(state_->executor, dns_idle_timeout);
        uint8_t length[2];
        auto got = co_await (asio::async_read(client_, asio::buffer(length), use_tuple) || idle.async_wait(use_tuple));
        if (closed_ || got.index() == 1 || std::get<0>(std::get<0>(got))) break;
        size_t n = static_cast<size_t>(length[0]) << 8 | length[1];
        if (n < 12 || n > 4096) break;
        std::vector<uint8_t> query(n);
        auto body = co_await (asio::async_read(client_, asio::buffer(query), use_tuple) || idle.async_wait(use_tuple));
        if (closed_ || body.index() == 1 || std::get<0>(std::get<0>(body))) break;
        auto answer = answer_stub_query(query, state_->policy, state_->pool);
        if (answer.response.empty()) break;
        if (answer.allowed) {
            ++state_->stats_.dns_answered;
        } else {
            ++state_->stats_.dns_refused;
            state_->emit({{"action", "deny"},
                          {"protocol", "dns-tcp"},
                          {"name", answer.name},
                          {"type", answer.type},
                          {"reason", answer.reason}});
        }
        std::vector<uint8_t> framed(2 + answer.response.size());
        framed[0] = static_cast<uint8_t>(answer.response.size() >> 8);
        framed[1] = static_cast<uint8_t>(answer.response.size());
        std::copy(answer.response.begin(), answer.response.end(), framed.begin() + 2);
        auto [ec, w] = co_await asio::async_write(client_, asio::buffer(framed), use_tuple);
        if (ec) break;
    }
    close(false);
}

Status EgressConnection::start_relay() {
    int one = 1;
    ::setsockopt(client_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(upstream_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::error_code ec;
    client_.native_non_blocking(true, ec);
    upstream_.native_non_blocking(true, ec);
    out_.src = &client_;
    out_.dst = &upstream_;
    in_.src = &upstream_;
    in_.dst = &client_;
    for (Direction* d : {&out_, &in_}) {
        if (d == &out_ && guard_) continue;
        auto pipe = io::make_pipe(O_NONBLOCK);
        if (!pipe) return std::move(pipe).error().wrap("creating a relay pipe");
        d->pipe = std::move(*pipe);
        // A larger pipe moves more per splice; the kernel may give less
        // (pipe-user-pages-soft), which only costs wake-ups.
        ::fcntl(d->pipe.write.get(), F_SETPIPE_SZ, static_cast<int>(pipe_capacity));
    }
    // The bytes read for inspection go first, written as they are.
    if (!first_.empty()) {
        asio::write(upstream_, asio::buffer(first_), ec);
        if (ec) return Error{ec.value(), "writing the first bytes upstream"};
        out_.bytes += first_.size();
        first_.clear();
        first_.shrink_to_fit();
    }
    if (guard_) {
        out_.guard = std::move(guard_);
        out_.buffer.resize(64 * 1024);
        pump_guarded(out_);
    } else {
        pump(out_);
    }
    pump(in_);
    return {};
}

void EgressConnection::pump(Direction& d) {
    int src = d.src->native_handle(), dst = d.dst->native_handle();
    for (int round = 0; round < splices_per_wakeup && !closed_; ++round) {
        while (d.in_pipe > 0) {
            ssize_t n =
                ::splice(d.pipe.read.get(), nullptr, dst, nullptr, d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                d.in_pipe -= static_cast<size_t>(n);
                d.bytes += static_cast<uint64_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                d.dst->async_wait(tcp::socket::wait_write, [self = shared_from_this(), &d](std::error_code ec) {
                    if (ec || self->closed_) return self->fail();
                    self->pump(d);
                });
                return;
            }
            return fail();
        }
        if (d.eof) return finish(d);
        ssize_t n =
            ::splice(src, nullptr, d.pipe.write.get(), nullptr, pipe_capacity, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d.in_pipe += static_cast<size_t>(n);
            continue;
        }
        if (n == 0) {
            d.eof = true;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
            d.src->async_wait(tcp::socket::wait_read, [self = shared_from_this(), &d](std::error_code ec) {
                if (ec || self->closed_) return self->fail();
                self->pump(d);
            });
            return;
        }
        return fail();
    }
    if (closed_) return;
    // A busy stream yields after splices_per_wakeup rounds.
    asio::post(state_->executor, [self = shared_from_this(), &d] {
        if (!self->closed_) self->pump(d);
    });
}

void EgressConnection::pump_guarded(Direction& d) {
    d.src->async_read_some(asio::buffer(d.buffer), [self = shared_from_this(), &d](std::error_code ec, size_t n) {
        if (self->closed_) return;
        if (ec == asio::error::eof) return self->finish(d);
        if (ec) return self->fail();
        if (!d.guard->accept(std::span<const uint8_t>(d.buffer.data(), n))) {
            ++self->state_->stats_.connections_denied;
            self->state_->emit({{"action", "deny"}, {"protocol", "http"}, {"reason", d.guard->refusal()}});
            return self->close(true);
        }
        asio::async_write(*d.dst, asio::buffer(d.buffer.data(), n), [self, &d](std::error_code wec, size_t w) {
            if (wec || self->closed_) return self->fail();
            d.bytes += w;
            self->pump_guarded(d);
        });
    });
}

void EgressConnection::finish(Direction& d) {
    if (d.done) return;
    d.done = true;
    std::error_code ec;
    d.dst->shutdown(tcp::socket::shutdown_send, ec);
    if (out_.done && in_.done) close(false);
}

void EgressConnection::fail() {
    if (!closed_) close(true);
}

}  // namespace nucleus::net
