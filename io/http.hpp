// HTTP/1.1 over a unix socket, server side: the transport under `nucleus daemon`.
//
// Requests are parsed by nodejs http-parser (Debian's libhttp-parser 2.9),
// never by hand. Every connection is one coroutine on the reactor, owned by
// the Server (stop() closes them and serve() returns once all have ended).
// Hostile clients are bounded: header bytes (431), body bytes (413, checked
// against Content-Length before any body is read), request rate per
// connection (429), the time a request may take to arrive (the connection is
// closed: slow-loris), and what a connection may hold on the way out (a
// response body held in memory is capped; larger bodies are streamed from
// their file in chunks; a write that makes no progress for write_timeout
// closes the connection). Malformed requests get a 400 and the connection is
// closed; the handler never sees them.
//
// Connections are budgeted so that neither idle sockets nor long-lived
// requests can starve ordinary ones: at most max_connections are open; a
// request that parks (a stream, a long wait) must first enter one of
// max_long_lived places (else it is answered 503); and when a new
// connection finds every place taken, the connection that has waited longest
// for its next request is closed to make room. Only when every connection is
// busy with a request is a new one answered 503 and closed.
//
// Responses from the handler are written in order; pipelined requests wait
// for the previous response. Keep-alive follows the request (HTTP/1.1
// default, "Connection: close", HTTP/1.0).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <nlohmann/json_fwd.hpp>

#include "io/error.hpp"

namespace nucleus::io::http {

struct Request {
    std::string method;  // "GET"
    std::string target;  // as sent: "/v1/sandboxes?all=true"
    std::string path;  // percent-decoded: "/v1/sandboxes"
    std::map<std::string, std::string> query;  // percent-decoded ('+' is a space); last one wins
    std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
    std::string body;  // Content-Length or (bounded) chunked

    // The first header of that name (case-insensitive), or "" when absent.
    std::string header(std::string_view name) const;
};

namespace detail {
class Connection;
}

// Writes the response to one request. Exactly one of send*/begin_stream is
// called per request; a handler that returns without one gets a 500 sent for
// it. Every call fails (EPIPE, ECONNRESET, ECANCELED...) once the client is
// gone or the server is stopping; it never throws for that.
class Responder {
public:
    Responder(const Responder&) = delete;
    Responder& operator=(const Responder&) = delete;

    // A complete response with Content-Length.
    asio::awaitable<Status> send(int status, std::string_view content_type, std::string_view body);
    // application/json.
    asio::awaitable<Status> send_json(int status, const nlohmann::json& body);
    // {"error": message}, application/json.
    asio::awaitable<Status> send_error(int status, std::string_view message);
    // A 204-style response with neither body nor Content-Type.
    asio::awaitable<Status> send_empty(int status);

    // `length` bytes of `fd` from `offset` (pread, so the file position is
    // untouched), with Content-Length, read and written in chunks: a file
    // of any size costs the connection one chunk buffer. The caller keeps
    // `fd` open until this completes. A file that turns out shorter than
    // `length` closes the connection (the promised length cannot be kept).
    asio::awaitable<Status> send_file(int status, std::string_view content_type, int fd, off_t offset, size_t length);

    // Marks this request long-lived (it may park for minutes: a stream, a
    // wait for an exit): it takes one of Limits::max_long_lived places
    // until it ends. False when they are all taken; the handler then
    // answers 503. begin_stream() enters by itself.
    bool enter_long_lived();

    // Transfer-Encoding: chunked. Then send_chunk() any number of times
    // (an empty chunk is skipped, not the terminator) and end_stream().
    // Enters a long-lived place first; when none is free, answers 503 itself
    // and fails with EBUSY.
    asio::awaitable<Status> begin_stream(int status, std::string_view content_type);
    asio::awaitable<Status> send_chunk(std::string_view data);
    asio::awaitable<Status> end_stream();

    // Completes when the peer closes or half-closes its end (or the server
    // stops): for long waits and follows,
    //     co_await (work() || responder.client_gone());
    // Cancellation-safe; any number of waits.
    asio::awaitable<void> client_gone();
    bool is_client_gone() const;

    // A status line has been written (send* or begin_stream called).
    bool started() const { return state_ != State::Idle; }

private:
    friend class detail::Connection;
    enum class State { Idle, Streaming, Done, Failed };
    explicit Responder(detail::Connection& connection) : connection_(connection) {}
    asio::awaitable<Status> write_head(int status, std::string_view content_type, std::string_view framing);

    detail::Connection& connection_;
    State state_ = State::Idle;
};

// One coroutine per request; the Request and Responder outlive it.
using Handler = std::function<asio::awaitable<void>(const Request&, Responder&)>;

struct Limits {
    size_t max_header_bytes = 16 << 10;  // request line + headers -> 431
    size_t max_body_bytes = 1 << 20;  // -> 413 (Content-Length checked first)
    // Open connections. A new one beyond this closes the connection that
    // has waited longest for its next request; when every connection is
    // busy with one, the new one is answered 503 and closed.
    size_t max_connections = 512;
    // Requests that park (streams, long waits): beyond this, 503. Kept below
    // max_connections so that ordinary requests always find a place.
    size_t max_long_lived = 256;
    double requests_per_second = 200;  // per connection, token bucket -> 429
    double request_burst = 400;
    // From the end of the previous response (or accept) until the whole
    // request has arrived; then the connection is closed without a reply.
    std::chrono::milliseconds request_timeout = std::chrono::seconds(10);
    // A write that moves no byte for this long (a client that stopped
    // reading) closes the connection; the handler sees its writes fail.
    std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
    // The largest body send() holds in memory for one response; larger
    // ones must be streamed (send_file, begin_stream). -> 500.
    size_t max_response_bytes = 16 << 20;
};

class Server {
public:
    // Binds and listens on `socket_path` with `mode` (e.g. 0660) and, when
    // given, `group` as the socket's group; the socket is created under a
    // temporary name, given its mode and group, then renamed into place, so
    // it never exists with looser permissions. An existing socket at the path
    // is replaced only when nothing answers on it; a live listener (another
    // daemon) and a non-socket file are refused with an error saying so.
    // Blocking (a connect(2) probe): call before the reactor runs.
    static Result<Server> listen(asio::any_io_executor executor, const std::string& socket_path, mode_t mode,
                                 std::optional<gid_t> group, Limits limits = {});

    Server(Server&&) noexcept;
    Server& operator=(Server&&) noexcept;
    ~Server();  // unlinks the socket path if still listening

    // The accept loop: each connection is a coroutine owned by the server.
    // Returns after stop(), once every connection has ended. Call once.
    asio::awaitable<void> serve(Handler handler);
    // Stops accepting, unlinks the socket path, shuts every connection down
    // (handlers see their writes fail and client_gone() complete). Idempotent.
    void stop();

    size_t connection_count() const;
    size_t long_lived_count() const;
    const std::string& socket_path() const;

    struct State;

private:
    explicit Server(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// "%41b" -> "Ab"; with plus_is_space, '+' -> ' ' (query strings). Fails on a
// truncated or non-hex escape, and on an encoded NUL.
Result<std::string> percent_decode(std::string_view text, bool plus_is_space);
// Escapes everything but unreserved characters (RFC 3986 2.3).
std::string percent_encode(std::string_view text);

}  // namespace nucleus::io::http
