#include "net/egress_service.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "net/egress_rules.hpp"
#include "net/egress_state.hpp"

namespace nucleus::net {

std::vector<isolation::ListenSocket> egress_listen_sockets() {
    return {
        {AF_INET, SOCK_DGRAM, egress_stub_port},
        {AF_INET6, SOCK_DGRAM, egress_stub_port},
        {AF_INET, SOCK_STREAM, egress_capture_port},
        {AF_INET6, SOCK_STREAM, egress_capture_port},
    };
}

namespace {

EgressSockets from_fds(int* fds) {
    EgressSockets s;
    s.dns4.reset(fds[0]);
    s.dns6.reset(fds[1]);
    s.capture4.reset(fds[2]);
    s.capture6.reset(fds[3]);
    return s;
}

}  // namespace

Result<EgressSockets> receive_egress_sockets(int channel) {
    constexpr size_t count = 4;
    char byte = 0;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * isolation::max_listen_sockets)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    // The child sent before Ready, so the message is queued: never waits.
    ssize_t n = ::recvmsg(channel, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return Error::from_errno("receiving the egress sockets from the sandbox");
    std::vector<int> fds;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            fds.push_back(fd);
        }
    }
    if (fds.size() != count || (msg.msg_flags & MSG_CTRUNC)) {
        for (int fd : fds) ::close(fd);
        return Error::plain("the sandbox passed " + std::to_string(fds.size()) + " egress sockets, expected 4");
    }
    return from_fds(fds.data());
}

Result<EgressSockets> create_egress_sockets_in(int netns_fd) {
    auto own = io::open_fd("/proc/thread-self/ns/net", O_RDONLY);
    if (!own) return std::move(own).error().wrap("opening this thread's network namespace");
    if (::setns(netns_fd, CLONE_NEWNET) < 0) return Error::from_errno("setns into the sandbox's network namespace");
    int fds[4] = {-1, -1, -1, -1};
    Status made;
    auto specs = egress_listen_sockets();
    for (size_t i = 0; i < specs.size() && made; ++i) {
        const auto& spec = specs[i];
        int fd = ::socket(spec.family, spec.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        bool ok = fd >= 0;
        if (ok && spec.type == SOCK_STREAM) ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0;
        if (ok && spec.family == AF_INET6) ok = ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0;
        if (ok) {
            auto loopback = IpAddress::parse(spec.family == AF_INET ? "127.0.0.1" : "::1");
            auto addr = SocketAddress::of(*loopback, spec.port);
            ok = ::bind(fd, addr.get(), addr.length) == 0;
        }
        if (ok && spec.type == SOCK_STREAM) ok = ::listen(fd, 4096) == 0;
        if (!ok) {
            made = Error::from_errno("making egress socket " + std::to_string(i) + " in the sandbox");
            if (fd >= 0) ::close(fd);
        } else {
            fds[i] = fd;
        }
    }
    // Back home whatever happened: the rest of this thread's work is ours.
    if (::setns(own->get(), CLONE_NEWNET) < 0) {
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
        return Error::from_errno("setns back into the supervisor's network namespace");
    }
    if (!made) {
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
        return std::move(made).error();
    }
    return from_fds(fds);
}

nlohmann::json EgressStats::to_json() const {
    return {{"dns_answered", dns_answered},
            {"dns_refused", dns_refused},
            {"connections_allowed", connections_allowed},
            {"connections_denied", connections_denied},
            {"bytes_out", bytes_out},
            {"bytes_in", bytes_in},
            {"events_suppressed", events_suppressed}};
}

std::shared_ptr<EgressService> EgressService::start(asio::any_io_executor executor, EgressSockets sockets,
                                                    Options options) {
    auto state = std::make_shared<EgressState>(executor, std::move(sockets), std::move(options));
    state->begin();
    return state;
}

EgressState::EgressState(asio::any_io_executor ex, EgressSockets sockets, Options options)
    : executor(ex),
      policy(std::move(options.policy)),
      resolver(std::move(options.resolver)),
      owns_resolver_(options.owns_resolver),
      on_event_(std::move(options.on_event)),
      capture4_(ex),
      capture6_(ex),
      accept_backoff_(ex) {
    std::error_code ec;
    dns4_ = std::make_unique<DnsSocket>(DnsSocket{asio::ip::udp::socket(ex), {}, {}});
    dns6_ = std::make_unique<DnsSocket>(DnsSocket{asio::ip::udp::socket(ex), {}, {}});
    dns4_->socket.assign(asio::ip::udp::v4(), sockets.dns4.release(), ec);
    dns6_->socket.assign(asio::ip::udp::v6(), sockets.dns6.release(), ec);
    capture4_.assign(asio::ip::tcp::v4(), sockets.capture4.release(), ec);
    capture6_.assign(asio::ip::tcp::v6(), sockets.capture6.release(), ec);
    // Answers are sent without waiting: a sandbox that floods the stub and
    // never reads fills its own socket buffer and loses answers, not us.
    dns4_->socket.non_blocking(true, ec);
    dns6_->socket.non_blocking(true, ec);
}

void EgressState::begin() {
    serve_dns(*dns4_);
    serve_dns(*dns6_);
    accept_next(capture4_, AF_INET);
    accept_next(capture6_, AF_INET6);
}

void EgressState::serve_dns(DnsSocket& dns) {
    dns.socket.async_receive_from(asio::buffer(dns.buffer), dns.peer,
                                  [self = shared_from_this(), &dns](std::error_code ec, size_t n) {
                                      if (self->stopped) return;
                                      if (!ec) self->answer_dns(dns, n);
                                      // Errors on a UDP socket (an ICMP error queued by a
                                      // previous send) are per datagram: keep serving.
                                      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
                                          return;
                                      self->serve_dns(dns);
                                  });
}

void EgressState::answer_dns(DnsSocket& dns, size_t length) {
    auto answer = answer_stub_query(std::span<const uint8_t>(dns.buffer.data(), length), policy, pool);
    if (answer.response.empty()) return;
    std::error_code ec;
    dns.socket.send_to(asio::buffer(answer.response), dns.peer, 0, ec);
    if (answer.allowed) {
        ++stats_.dns_answered;
        return;
    }
    ++stats_.dns_refused;
    emit({{"action", "deny"},
          {"protocol", "dns"},
          {"name", answer.name},
          {"type", answer.type},
          {"reason", answer.reason}});
}

void EgressState::accept_next(asio::ip::tcp::acceptor& acceptor, int family) {
    acceptor.async_accept(
        [self = shared_from_this(), &acceptor, family](std::error_code ec, asio::ip::tcp::socket client) {
            if (self->stopped || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return;
            if (!ec) {
                start_connection(self, std::move(client), family);
            } else if (ec != asio::error::connection_aborted) {
                // Out of descriptors or memory: the connection stays queued in
                // the backlog; try again shortly rather than spin on the error.
                self->accept_backoff_.expires_after(std::chrono::milliseconds(100));
                // Shared by both listeners: re-arming it for one aborts the
                // other's wait, which then accepts again at once.
                self->accept_backoff_.async_wait([self, &acceptor, family](std::error_code) {
                    if (!self->stopped) self->accept_next(acceptor, family);
                });
                return;
            }
            self->accept_next(acceptor, family);
        });
}

void EgressState::emit(nlohmann::json record) {
    if (!on_event_) return;
    auto now = std::chrono::steady_clock::now();
    tokens_ = std::min(EgressService::event_burst,
                       tokens_ + std::chrono::duration<double>(now - refilled_).count() * EgressService::event_rate);
    refilled_ = now;
    if (tokens_ < 1) {
        ++stats_.events_suppressed;
        ++suppressed_since_last_;
        return;
    }
    tokens_ -= 1;
    record["event"] = "egress";
    if (suppressed_since_last_) record["suppressed_before"] = suppressed_since_last_;
    suppressed_since_last_ = 0;
    on_event_(std::move(record));
}

uint64_t EgressState::add_connection(std::weak_ptr<EgressConnection> connection) {
    uint64_t id = next_connection_++;
    connections_.emplace(id, std::move(connection));
    ++stats_.connections_open;
    return id;
}

void EgressState::remove_connection(uint64_t id) {
    if (connections_.erase(id)) --stats_.connections_open;
}

void close_connection(EgressConnection& connection);  // net/egress_connection.cpp

void EgressState::stop() {
    if (stopped) return;
    stopped = true;
    std::error_code ec;
    dns4_->socket.close(ec);
    dns6_->socket.close(ec);
    capture4_.close(ec);
    capture6_.close(ec);
    accept_backoff_.cancel();
    auto open = connections_;
    for (auto& [id, weak] : open)
        if (auto c = weak.lock()) close_connection(*c);
    if (owns_resolver_ && resolver) resolver->cancel_pending();
}

}  // namespace nucleus::net
