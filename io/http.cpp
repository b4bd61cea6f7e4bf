#include "io/http.hpp"

#include <fcntl.h>
#include <http_parser.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <cstdio>
#include <list>
#include <span>

#include <asio/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/deferred.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "io/bytes_json.hpp"
#include "io/http_request.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::io::http {

using asio::local::stream_protocol;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

int errno_of(const std::error_code& ec) { return ec.category() == std::system_category() ? ec.value() : EPIPE; }

std::string status_line(int status) {
    const char* reason = http_status_str(static_cast<http_status>(status));
    return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
}

// Messages may quote bytes from the request or the host (a path, an id
// given as %ff): dump_json replaces what is not UTF-8 instead of throwing.
std::string error_body(std::string_view message) { return dump_json(nlohmann::json{{"error", message}}); }

// Bounds the bytes read ahead while a handler runs (pipelined requests).
constexpr size_t max_read_ahead = 64 << 10;

}  // namespace

struct Server::State {
    State(asio::any_io_executor ex, std::string socket_path, Limits l)
        : executor(ex),
          acceptor(ex),
          drained(ex, asio::steady_timer::time_point::max()),
          path(std::move(socket_path)),
          limits(l) {}

    asio::any_io_executor executor;
    stream_protocol::acceptor acceptor;
    asio::steady_timer drained;  // cancelled when the last connection ends
    std::string path;
    Limits limits;
    Handler handler;
    std::list<detail::Connection> connections;
    size_t closing = 0;  // connections shut down to make room, not yet ended
    size_t long_lived = 0;  // requests in a long-lived place
    bool stopping = false;
    bool path_owned = true;  // the socket at `path` is ours to unlink
};

namespace detail {

class Connection {
public:
    using Clock = std::chrono::steady_clock;

    Connection(Server::State& server, stream_protocol::socket socket)
        : server_(server),
          socket_(std::move(socket)),
          parser_(server.limits),
          gone_event_(server.executor, asio::steady_timer::time_point::max()),
          tokens_(server.limits.request_burst),
          refilled_(Clock::now()) {}

    asio::awaitable<void> run();

    // From Server::stop(), or to make room: wakes every wait on this connection.
    void shut_down() {
        std::error_code ec;
        socket_.shutdown(stream_protocol::socket::shutdown_both, ec);
        socket_.cancel(ec);
        mark_gone();
    }

    // Waiting for (the rest of) a request, so it may be closed to make room
    // for a new connection; the time it started waiting, for oldest-first.
    bool evictable() const { return waiting_ && !evicted_; }
    Clock::time_point waiting_since() const { return waiting_since_; }
    void evict() {
        evicted_ = true;
        ++server_.closing;
        shut_down();
    }
    bool evicted() const { return evicted_; }

    bool enter_long_lived() {
        if (long_lived_) return true;
        if (server_.long_lived >= server_.limits.max_long_lived) return false;
        ++server_.long_lived;
        long_lived_ = true;
        return true;
    }
    void leave_long_lived() {
        if (!long_lived_) return;
        --server_.long_lived;
        long_lived_ = false;
    }

    asio::awaitable<Status> write(std::span<const asio::const_buffer> buffers);
    // The response could not be completed as framed: no further request.
    void abandon() {
        keep_alive_ = false;
        write_failed_ = true;
        mark_gone();
    }
    const Limits& limits() const { return server_.limits; }

    asio::awaitable<void> client_gone() {
        if (gone_) co_return;
        co_await gone_event_.async_wait(use_tuple);
    }
    bool gone() const { return gone_; }
    bool keep_alive() const { return keep_alive_ && !server_.stopping; }

private:
    enum class Outcome { Complete, Rejected, Closed };

    void mark_gone() {
        gone_ = true;
        gone_event_.cancel();
    }
    bool take_token();
    asio::awaitable<Outcome> read_request();
    asio::awaitable<void> watch_peer();
    asio::awaitable<void> guarded_handler(Responder& responder, std::string& failure);
    asio::awaitable<void> call_handler(Responder& responder);

    Server::State& server_;
    stream_protocol::socket socket_;
    detail::RequestParser parser_;
    std::string pending_;  // read but not yet parsed
    std::array<char, 16 << 10> buffer_;  // one read
    asio::steady_timer gone_event_;  // never expires; cancelled when the peer is gone
    bool gone_ = false;  // EOF, error, or stop()
    bool write_failed_ = false;
    bool keep_alive_ = true;
    bool waiting_ = false;  // in read_request()
    bool evicted_ = false;
    bool long_lived_ = false;
    Clock::time_point waiting_since_;
    double tokens_;
    Clock::time_point refilled_;
};

// Writes everything or fails. Each partial write must complete within
// write_timeout: a peer that stops reading fills its socket buffer, and its
// connection is then closed instead of holding the response forever.
asio::awaitable<Status> Connection::write(std::span<const asio::const_buffer> buffers) {
    if (write_failed_) co_return Error::from_errno("writing the response", EPIPE);
    std::vector<asio::const_buffer> parts(buffers.begin(), buffers.end());
    const size_t count = parts.size();
    asio::steady_timer stall(server_.executor);
    size_t first = 0;
    while (first < count) {
        stall.expires_after(server_.limits.write_timeout);
        auto [order, ec, n, timer_ec] =
            co_await asio::experimental::make_parallel_group(
                socket_.async_write_some(std::span(parts.data() + first, count - first), asio::deferred),
                stall.async_wait(asio::deferred))
                .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
        int err = order[0] == 1 ? ETIMEDOUT : ec ? errno_of(ec) : 0;
        if (err != 0) {
            write_failed_ = true;
            shut_down();
            co_return Error::from_errno(
                err == ETIMEDOUT ? "writing the response: the client stopped reading" : "writing the response", err);
        }
        for (; first < count && n >= parts[first].size(); ++first) n -= parts[first].size();
        if (first < count) parts[first] += n;
    }
    co_return Status{};
}

bool Connection::take_token() {
    auto now = Clock::now();
    double elapsed = std::chrono::duration<double>(now - refilled_).count();
    refilled_ = now;
    tokens_ = std::min(server_.limits.request_burst, tokens_ + elapsed * server_.limits.requests_per_second);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

asio::awaitable<void> Connection::run() {
    while (!server_.stopping) {
        parser_.reset();
        waiting_ = true;
        waiting_since_ = Clock::now();
        Outcome outcome = co_await read_request();
        waiting_ = false;
        if (outcome == Outcome::Closed) break;
        Responder responder(*this);
        if (outcome == Outcome::Rejected) {
            keep_alive_ = false;
            (void)co_await responder.send_error(parser_.reject_status, parser_.reject_message);
            break;
        }
        keep_alive_ = parser_.keep_alive();
        if (!take_token()) {
            (void)co_await responder.send_error(429, "too many requests on this connection");
        } else {
            co_await call_handler(responder);
            if (!responder.started()) (void)co_await responder.send_error(500, "the handler sent no response");
        }
        leave_long_lived();
        if (responder.state_ != Responder::State::Done || !keep_alive()) break;
    }
    std::error_code ec;
    socket_.shutdown(stream_protocol::socket::shutdown_both, ec);
    socket_.close(ec);
}

// Reads until one whole request is parsed, within the request timeout.
asio::awaitable<Connection::Outcome> Connection::read_request() {
    asio::steady_timer deadline(server_.executor, server_.limits.request_timeout);
    bool continue_sent = false;
    while (true) {
        if (!pending_.empty()) {
            size_t n = parser_.feed(pending_);
            pending_.erase(0, n);
            if (parser_.reject_status != 0) co_return Outcome::Rejected;
            if (parser_.complete()) co_return Outcome::Complete;
            if (parser_.headers_done() && parser_.expects_continue && !continue_sent) {
                // curl waits for this before sending a body larger than 1 KiB.
                static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
                std::array<asio::const_buffer, 1> buffers{asio::buffer(go_on)};
                if (!co_await write(buffers)) co_return Outcome::Closed;
                continue_sent = true;
            }
        }
        if (gone_) co_return Outcome::Closed;
        auto result =
            co_await (socket_.async_read_some(asio::buffer(buffer_), use_tuple) || deadline.async_wait(use_tuple));
        if (result.index() == 1) co_return Outcome::Closed;  // too slow: slow-loris or idle keep-alive
        auto [ec, n] = std::get<0>(result);
        if (ec || n == 0) {
            mark_gone();
            co_return Outcome::Closed;
        }
        pending_.append(buffer_.data(), n);
    }
}

// While a handler runs: notices the peer closing (for client_gone()) and
// keeps pipelined bytes, up to a bound. Ends only when cancelled.
asio::awaitable<void> Connection::watch_peer() {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto cancelled = [&]() -> asio::awaitable<bool> {
        auto state = co_await asio::this_coro::cancellation_state;
        co_return state.cancelled() != asio::cancellation_type::none;
    };
    // Checked before every wait too: a cancellation emitted before this
    // coroutine first suspends reaches no operation, only this state.
    while (!(co_await cancelled()) && !gone_ && pending_.size() < max_read_ahead) {
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer_), use_tuple);
        // Kept even when cancelled: the read may have completed before the
        // cancellation reached the kernel, and these are the next request's bytes.
        if (!ec) pending_.append(buffer_.data(), n);
        if (co_await cancelled()) co_return;
        if (ec || n == 0) {
            mark_gone();
            break;
        }
    }
    if (co_await cancelled()) co_return;
    asio::steady_timer forever(server_.executor, asio::steady_timer::time_point::max());
    co_await forever.async_wait(use_tuple);
}

// The handler's exception, caught: `||` waits for one branch to *succeed*,
// so a throwing handler would otherwise leave the watcher running forever.
asio::awaitable<void> Connection::guarded_handler(Responder& responder, std::string& failure) {
    try {
        co_await server_.handler(parser_.request, responder);
    } catch (const std::exception& e) {
        failure = e.what();
    } catch (...) {
        failure = "unknown exception";
    }
}

asio::awaitable<void> Connection::call_handler(Responder& responder) {
    std::string failure;
    co_await (guarded_handler(responder, failure) || watch_peer());
    if (failure.empty()) co_return;
    if (!responder.started()) {
        keep_alive_ = false;
        (void)co_await responder.send_error(500, "internal error: " + failure);
    }
    responder.state_ = Responder::State::Failed;
}

}  // namespace detail

// --- Responder ---------------------------------------------------------------

asio::awaitable<Status> Responder::write_head(int status, std::string_view content_type, std::string_view framing) {
    std::string head = status_line(status);
    if (!content_type.empty()) head.append("Content-Type: ").append(content_type).append("\r\n");
    head.append(framing);
    if (!connection_.keep_alive()) head.append("Connection: close\r\n");
    head.append("\r\n");
    std::array<asio::const_buffer, 1> buffers{asio::buffer(head)};
    co_return co_await connection_.write(buffers);
}

asio::awaitable<Status> Responder::send(int status, std::string_view content_type, std::string_view body) {
    if (state_ != State::Idle) co_return Error::plain("a response was already sent");
    if (body.size() > connection_.limits().max_response_bytes) {
        // A bug in the handler, not the client's doing: it must stream.
        co_return co_await send(500, "application/json",
                                error_body("internal error: a response of " + std::to_string(body.size()) +
                                           " bytes is over the limit for one held in memory"));
    }
    state_ = State::Failed;
    std::string head = status_line(status);
    head.append("Content-Type: ").append(content_type).append("\r\n");
    head.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    if (!connection_.keep_alive()) head.append("Connection: close\r\n");
    head.append("\r\n");
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
    if (auto st = co_await connection_.write(buffers); !st) co_return st;
    state_ = State::Done;
    co_return Status{};
}

asio::awaitable<Status> Responder::send_file(int status, std::string_view content_type, int fd, off_t offset,
                                             size_t length) {
    if (state_ != State::Idle) co_return Error::plain("a response was already sent");
    state_ = State::Failed;
    std::string framing = "Content-Length: " + std::to_string(length) + "\r\n";
    if (auto st = co_await write_head(status, content_type, framing); !st) co_return st;
    // One chunk in memory at a time, whatever the file's size.
    std::string chunk(64 << 10, '\0');
    while (length > 0) {
        // A regular file's pread completes at once: not a wait worth a ring entry.
        ssize_t n = ::pread(fd, chunk.data(), std::min(chunk.size(), length), offset);
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            connection_.abandon();  // the client would wait for bytes that never come
            co_return Error::from_errno("reading the file being sent", err);
        }
        std::array<asio::const_buffer, 1> buffers{asio::buffer(chunk.data(), static_cast<size_t>(n))};
        if (auto st = co_await connection_.write(buffers); !st) co_return st;
        offset += n;
        length -= static_cast<size_t>(n);
    }
    state_ = State::Done;
    co_return Status{};
}

bool Responder::enter_long_lived() { return connection_.enter_long_lived(); }

asio::awaitable<Status> Responder::send_json(int status, const nlohmann::json& body) {
    co_return co_await send(status, "application/json", dump_json(body));
}

asio::awaitable<Status> Responder::send_error(int status, std::string_view message) {
    co_return co_await send(status, "application/json", error_body(message));
}

asio::awaitable<Status> Responder::send_empty(int status) {
    if (state_ != State::Idle) co_return Error::plain("a response was already sent");
    state_ = State::Failed;
    if (auto st = co_await write_head(status, "", status == 204 || status == 304 ? "" : "Content-Length: 0\r\n"); !st)
        co_return st;
    state_ = State::Done;
    co_return Status{};
}

asio::awaitable<Status> Responder::begin_stream(int status, std::string_view content_type) {
    if (state_ != State::Idle) co_return Error::plain("a response was already sent");
    if (!enter_long_lived()) {
        (void)co_await send_error(503, "too many streams and waits open (" +
                                           std::to_string(connection_.limits().max_long_lived) + "); try again later");
        co_return Error{EBUSY, "no place for another long-lived request"};
    }
    state_ = State::Failed;
    if (auto st = co_await write_head(status, content_type, "Transfer-Encoding: chunked\r\n"); !st) co_return st;
    state_ = State::Streaming;
    co_return Status{};
}

asio::awaitable<Status> Responder::send_chunk(std::string_view data) {
    if (state_ != State::Streaming) co_return Error::plain("send_chunk outside a stream");
    if (data.empty()) co_return Status{};
    char size[32];
    int length = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    std::array<asio::const_buffer, 3> buffers{asio::buffer(size, static_cast<size_t>(length)), asio::buffer(data),
                                              asio::buffer("\r\n", 2)};
    auto st = co_await connection_.write(buffers);
    if (!st) state_ = State::Failed;
    co_return st;
}

asio::awaitable<Status> Responder::end_stream() {
    if (state_ != State::Streaming) co_return Error::plain("end_stream outside a stream");
    state_ = State::Failed;
    std::array<asio::const_buffer, 1> buffers{asio::buffer("0\r\n\r\n", 5)};
    if (auto st = co_await connection_.write(buffers); !st) co_return st;
    state_ = State::Done;
    co_return Status{};
}

asio::awaitable<void> Responder::client_gone() { return connection_.client_gone(); }
bool Responder::is_client_gone() const { return connection_.gone(); }

// --- Server ------------------------------------------------------------------

namespace {

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path)
        return Error::plain("socket path \"" + path + "\" is empty or longer than " +
                            std::to_string(sizeof address.sun_path - 1) + " bytes");
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

Result<unique_fd> unix_socket() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::from_errno("socket(AF_UNIX)");
    return unique_fd(fd);
}

// An existing socket file is replaced only when nothing listens on it.
Status clear_stale_socket(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) {
        if (errno == ENOENT) return {};
        return Error::from_errno("stat " + path);
    }
    if (!S_ISSOCK(st.st_mode)) return Error::plain(path + " exists and is not a socket; refusing to replace it");
    auto address = unix_address(path);
    if (!address) return std::move(address).error();
    // A daemon killed a moment ago can still take connections: its pending
    // io_uring accept holds the listening socket until the kernel has torn
    // the ring down, which it does asynchronously after the process is
    // gone. So only a socket that stays connectable for 2 s counts as
    // another daemon's. (Runs once, at start-up, before any reactor.)
    int refused = 0;
    for (int attempt = 0;; ++attempt) {
        auto probe = unix_socket();
        if (!probe) return std::move(probe).error();
        if (::connect(probe->get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) < 0) {
            refused = errno;
            break;
        }
        if (attempt == 100) return Error::plain("another daemon is already listening on " + path);
        ::usleep(20000);
    }
    if (refused != ECONNREFUSED) return Error::from_errno("probing the existing socket " + path, refused);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) return Error::from_errno("removing the stale socket " + path);
    return {};
}

}  // namespace

Server::Server(std::unique_ptr<State> state) : state_(std::move(state)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;

Server::~Server() {
    if (state_ && state_->path_owned) ::unlink(state_->path.c_str());
}

Result<Server> Server::listen(asio::any_io_executor executor, const std::string& socket_path, mode_t mode,
                              std::optional<gid_t> group, Limits limits) {
    NUCLEUS_TRY(clear_stale_socket(socket_path));
    // Bound under a temporary name and renamed into place once its mode and
    // group are right. fchmod before bind narrows the mode bind gives the
    // file (unix_bind uses the socket inode's mode under the umask).
    std::string temporary = socket_path + ".new";
    auto address = unix_address(temporary);
    if (!address) return std::move(address).error();
    auto fd = unix_socket();
    if (!fd) return std::move(fd).error();
    ::unlink(temporary.c_str());
    if (::fchmod(fd->get(), mode) < 0) return Error::from_errno("fchmod on the listening socket");
    if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) < 0)
        return Error::from_errno("bind " + temporary);
    auto placed = [&]() -> Status {
        if (::chmod(temporary.c_str(), mode) < 0) return Error::from_errno("chmod " + temporary);
        if (group && ::chown(temporary.c_str(), static_cast<uid_t>(-1), *group) < 0)
            return Error::from_errno("chown " + temporary + " to group " + std::to_string(*group));
        if (::listen(fd->get(), SOMAXCONN) < 0) return Error::from_errno("listen on " + temporary);
        if (::rename(temporary.c_str(), socket_path.c_str()) < 0)
            return Error::from_errno("rename " + temporary + " to " + socket_path);
        return {};
    }();
    if (!placed) {
        ::unlink(temporary.c_str());
        return std::move(placed).error();
    }
    auto state = std::make_unique<State>(executor, socket_path, limits);
    std::error_code ec;
    state->acceptor.assign(stream_protocol(), fd->release(), ec);
    if (ec) return Error::from_errno("adopting the listening socket", ec.value());
    return Server(std::move(state));
}

namespace {

// Over the connection limit: answered without a coroutine, by one
// non-blocking write (a short response fits any socket buffer), then closed.
void refuse_busy(stream_protocol::socket& socket) {
    static const std::string response = [] {
        std::string body = error_body("too many connections");
        return status_line(503) + "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nConnection: close\r\n\r\n" + body;
    }();
    std::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(response), ec);
    socket.shutdown(stream_protocol::socket::shutdown_both, ec);
    socket.close(ec);
}

// Closes the connection that has waited longest for its next request (an
// idle keep-alive, a slow or silent client), so that a new one can be
// served. False when every connection is busy with a request.
bool make_room(Server::State& s) {
    detail::Connection* oldest = nullptr;
    for (auto& c : s.connections)
        if (c.evictable() && (!oldest || c.waiting_since() < oldest->waiting_since())) oldest = &c;
    if (!oldest) return false;
    oldest->evict();
    return true;
}

bool transient_accept_error(const std::error_code& ec) {
    if (ec.category() != std::system_category()) return false;
    switch (ec.value()) {
        case ECONNABORTED:
        case EINTR:
        case EPROTO:
        case EPERM:
        case EAGAIN:
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            return true;
        default:
            return false;
    }
}

}  // namespace

asio::awaitable<void> Server::serve(Handler handler) {
    State& s = *state_;
    s.handler = std::move(handler);
    while (!s.stopping) {
        auto [ec, socket] = co_await s.acceptor.async_accept(use_tuple);
        if (s.stopping) break;
        if (ec) {
            if (!transient_accept_error(ec)) {
                stop();
                break;
            }
            // Out of descriptors or memory: back off rather than spin.
            asio::steady_timer pause(s.executor, std::chrono::milliseconds(100));
            co_await pause.async_wait(use_tuple);
            continue;
        }
        // Asio accepts with accept(2), not accept4: set CLOEXEC before
        // anything on this (only) thread can spawn.
        ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
        if (s.connections.size() - s.closing >= s.limits.max_connections && !make_room(s)) {
            refuse_busy(socket);
            continue;
        }
        auto it = s.connections.emplace(s.connections.end(), s, std::move(socket));
        State* state = &s;
        asio::co_spawn(s.executor, it->run(), [state, it](std::exception_ptr e) {
            if (it->evicted()) --state->closing;
            state->connections.erase(it);
            if (state->connections.empty()) state->drained.cancel();
            // Connection::run catches the handler's exceptions; anything
            // else is a bug in this file and must not pass silently.
            if (e) std::rethrow_exception(e);
        });
    }
    while (!s.connections.empty()) co_await s.drained.async_wait(use_tuple);
}

void Server::stop() {
    State& s = *state_;
    if (s.stopping) return;
    s.stopping = true;
    std::error_code ec;
    s.acceptor.close(ec);
    if (s.path_owned) {
        ::unlink(s.path.c_str());
        s.path_owned = false;
    }
    for (auto& connection : s.connections) connection.shut_down();
    if (s.connections.empty()) s.drained.cancel();
}

size_t Server::connection_count() const { return state_->connections.size(); }
size_t Server::long_lived_count() const { return state_->long_lived; }
const std::string& Server::socket_path() const { return state_->path; }

}  // namespace nucleus::io::http
