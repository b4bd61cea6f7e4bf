// The daemon's HTTP transport: a real server on a temporary unix socket,
// its reactor on a background thread, talked to by the blocking client and
// by raw sockets for what a well-behaved client would never send.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <catch2/catch_test_macros.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "io/http.hpp"
#include "io/http_client.hpp"
#include "io/unique_fd.hpp"

using namespace nucleus;
using namespace nucleus::io;
using namespace asio::experimental::awaitable_operators;
using nlohmann::json;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct Observed {
    std::atomic<int> handled{0};
    std::atomic<bool> gone_fired{false};
    std::atomic<bool> send_failed_after_gone{false};
    std::atomic<bool> follow_done{false};
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(use_tuple);
}

// The test's API: a few routes that exercise each Responder call.
asio::awaitable<void> handle(Observed* seen, const http::Request& req, http::Responder& r) {
    ++seen->handled;
    if (req.path == "/echo") {
        json query = json::object();
        for (const auto& [k, v] : req.query) query[k] = v;
        // Built before the co_await: GCC 12 miscompiles braced temporaries
        // in a co_await's operands ("array used as initializer").
        json answer = {{"method", req.method}, {"path", req.path}, {"target", req.target},
                       {"query", query},       {"body", req.body}, {"x_test", req.header("X-TEST")}};
        (void)co_await r.send_json(200, answer);
    } else if (req.path == "/stream") {
        if (!co_await r.begin_stream(200, "text/plain")) co_return;
        for (int i = 0; i < 5; ++i) {
            co_await sleep_for(std::chrono::milliseconds(2));
            if (!co_await r.send_chunk("line " + std::to_string(i) + "\n")) co_return;
        }
        (void)co_await r.end_stream();
    } else if (req.path == "/follow") {
        // Streams until the client goes away, as `logs --follow` will.
        if (!co_await r.begin_stream(200, "text/plain")) co_return;
        while (true) {
            auto woke = co_await (sleep_for(std::chrono::milliseconds(5)) || r.client_gone());
            if (woke.index() == 1) {
                seen->gone_fired = true;
                // A fully closed unix peer makes every write fail (EPIPE).
                auto st = co_await r.send_chunk("after\n");
                seen->send_failed_after_gone = !st.ok();
                break;
            }
            if (!co_await r.send_chunk("tick\n")) break;
        }
        seen->follow_done = true;
    } else if (req.path == "/file") {
        // The file named by ?path, from ?offset, ?length bytes.
        auto fd = open_fd(req.query.at("path"), O_RDONLY);
        if (!fd) co_return (void) co_await r.send_error(404, fd.error().describe());
        (void)co_await r.send_file(200, "application/octet-stream", fd->get(), std::stoll(req.query.at("offset")),
                                   std::stoull(req.query.at("length")));
    } else if (req.path == "/big") {
        (void)co_await r.send(200, "text/plain", std::string(std::stoull(req.query.at("bytes")), 'x'));
    } else if (req.path == "/park") {
        // A long wait that is not a stream.
        if (!r.enter_long_lived()) co_return (void) co_await r.send_error(503, "no place");
        co_await r.client_gone();
    } else if (req.path == "/bytes") {
        (void)co_await r.send_error(404, "no sandbox '\xff\xfe'");
    } else if (req.path == "/slow") {
        co_await (sleep_for(std::chrono::milliseconds(300)) || r.client_gone());
        (void)co_await r.send(200, "text/plain", "slow");
    } else if (req.path == "/throw") {
        throw std::runtime_error("boom");
    } else if (req.path == "/silent") {
        co_return;
    } else if (req.path == "/empty") {
        (void)co_await r.send_empty(204);
    } else {
        (void)co_await r.send_error(404, "no route for " + req.path);
    }
}

std::string make_temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "nucleus-http-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    return pattern;
}

// A server with its own reactor thread; stopped and joined on destruction.
struct TestServer {
    explicit TestServer(http::Limits limits = {}, std::string at = {}) {
        dir = make_temp_dir();
        path = at.empty() ? dir + "/api.sock" : at;
        auto s = http::Server::listen(ctx.get_executor(), path, 0660, std::nullopt, limits);
        if (!s) FAIL(s.error().describe());
        server.emplace(std::move(*s));
        Observed* observed = &seen;
        asio::co_spawn(ctx, server->serve([observed](const http::Request& req, http::Responder& r) {
            return handle(observed, req, r);
        }),
                       [](std::exception_ptr e) {
                           if (e) std::rethrow_exception(e);
                       });
        thread = std::thread([this] { ctx.run(); });
    }
    ~TestServer() {
        asio::post(ctx, [this] { server->stop(); });
        thread.join();
        server.reset();
        std::filesystem::remove_all(dir);
    }

    std::string dir;
    std::string path;
    asio::io_context ctx{1};
    std::optional<http::Server> server;
    Observed seen;
    std::thread thread;
};

unique_fd raw_connect(const std::string& path) {
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    timeval timeout{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

void raw_send(int fd, std::string_view bytes) {
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

// Reads until EOF (or the 5 s receive timeout, which fails the test), or
// until `until` has been seen.
std::string raw_read(int fd, std::string_view until = {}) {
    std::string out;
    char buf[4096];
    while (until.empty() || out.find(until) == std::string::npos) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) break;
        // The server's io_uring ring was set up on this thread, so its
        // completions can arrive here as task work and interrupt the read
        // (EINTR, not a restart, because SO_RCVTIMEO is set).
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ECONNRESET) break;
        INFO("read: " << std::strerror(errno));
        REQUIRE(n > 0);
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string raw_exchange(const std::string& path, std::string_view bytes) {
    auto fd = raw_connect(path);
    raw_send(fd.get(), bytes);
    return raw_read(fd.get());
}

size_t count(const std::string& text, std::string_view what) {
    size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("http: GET and POST with a body, headers and a decoded query") {
    TestServer t;
    auto get = http::request(t.path, "GET", "/echo?name=a%20b&sum=1+2&flag&path=%2Fx");
    REQUIRE(get);
    CHECK(get->status == 200);
    CHECK(get->header("content-type") == "application/json");
    auto doc = json::parse(get->body);
    CHECK(doc["method"] == "GET");
    CHECK(doc["path"] == "/echo");
    CHECK(doc["query"]["name"] == "a b");
    CHECK(doc["query"]["sum"] == "1 2");
    CHECK(doc["query"]["flag"] == "");
    CHECK(doc["query"]["path"] == "/x");

    auto post = http::request(t.path, "POST", "/echo", R"({"command":["true"]})");
    REQUIRE(post);
    CHECK(post->status == 200);
    CHECK(json::parse(post->body)["body"] == R"({"command":["true"]})");
    CHECK(json::parse(post->body)["method"] == "POST");

    auto missing = http::request(t.path, "GET", "/nope");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(json::parse(missing->body)["error"] == "no route for /nope");

    auto empty = http::request(t.path, "DELETE", "/empty");
    REQUIRE(empty);
    CHECK(empty->status == 204);
    CHECK(empty->body.empty());
}

TEST_CASE("http: percent decoding rejects bad escapes and NUL") {
    CHECK(http::percent_decode("a%41%2f+", false).value() == "aA/+");
    CHECK(http::percent_decode("a+b", true).value() == "a b");
    CHECK(!http::percent_decode("%4", false));
    CHECK(!http::percent_decode("%zz", false));
    CHECK(!http::percent_decode("%00", false));
    CHECK(http::percent_encode("a b/é") == "a%20b%2F%C3%A9");
}

TEST_CASE("http: keep-alive serves two requests on one connection, and pipelined ones in order") {
    TestServer t;
    auto fd = raw_connect(t.path);
    raw_send(fd.get(), "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    auto first = raw_read(fd.get(), "}");
    CHECK(first.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(first.find("Connection: close") == std::string::npos);
    raw_send(fd.get(), "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n");
    auto second = raw_read(fd.get(), "}");
    CHECK(second.find("\"n\":\"2\"") != std::string::npos);

    // Two more in one write; the last asks to close.
    raw_send(fd.get(),
             "POST /echo?n=3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
             "GET /echo?n=4 HTTP/1.1\r\nConnection: close\r\n\r\n");
    auto rest = raw_read(fd.get());
    CHECK(count(rest, "HTTP/1.1 200 OK") == 2);
    auto three = rest.find("\"n\":\"3\"");
    auto four = rest.find("\"n\":\"4\"");
    CHECK(three != std::string::npos);
    CHECK(four != std::string::npos);
    CHECK(three < four);
    CHECK(rest.find("\"body\":\"abc\"") != std::string::npos);
    CHECK(rest.find("Connection: close") != std::string::npos);
}

TEST_CASE("http: a chunked request body is accepted within the limit") {
    TestServer t;
    auto reply = raw_exchange(t.path,
                              "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                              "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    CHECK(reply.starts_with("HTTP/1.1 200"));
    CHECK(reply.find("\"body\":\"abcde\"") != std::string::npos);
}

TEST_CASE("http: Expect 100-continue is answered before the body is sent") {
    TestServer t;
    auto fd = raw_connect(t.path);
    raw_send(fd.get(), "POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n");
    CHECK(raw_read(fd.get(), "\r\n\r\n") == "HTTP/1.1 100 Continue\r\n\r\n");
    raw_send(fd.get(), "hi");
    auto reply = raw_read(fd.get());
    CHECK(reply.starts_with("HTTP/1.1 200"));
    CHECK(reply.find("\"body\":\"hi\"") != std::string::npos);
}

TEST_CASE("http: a chunked response is streamed to the client piece by piece") {
    TestServer t;
    std::string received;
    int pieces = 0;
    auto response = http::request_stream(t.path, "GET", "/stream", [&](std::string_view data) {
        received.append(data);
        ++pieces;
        return true;
    });
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->header("transfer-encoding") == "chunked");
    CHECK(received == "line 0\nline 1\nline 2\nline 3\nline 4\n");
    CHECK(pieces >= 2);
    CHECK(response->body.empty());

    // An error status is collected, not streamed.
    bool called = false;
    auto missing = http::request_stream(t.path, "GET", "/nope", [&](std::string_view) { return called = true; });
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(!called);
    CHECK(json::parse(missing->body)["error"] == "no route for /nope");
}

TEST_CASE("http: a client that leaves mid-stream costs nothing: client_gone fires and writes fail") {
    TestServer t;
    int ticks = 0;
    auto response = http::request_stream(t.path, "GET", "/follow", [&](std::string_view) { return ++ticks < 3; });
    REQUIRE(response);
    CHECK(response->status == 200);
    for (int i = 0; i < 500 && !t.seen.follow_done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(t.seen.follow_done);
    CHECK(t.seen.gone_fired);
    CHECK(t.seen.send_failed_after_gone);
    // And the connection is gone from the server's books.
    for (int i = 0; i < 100; ++i) {
        size_t live = 1;
        asio::post(t.ctx, [&] { live = t.server->connection_count(); });
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (live == 0) break;
        if (i == 99) FAIL("the connection was not released");
    }
}

TEST_CASE("http: malformed requests get 400 and never reach the handler") {
    TestServer t;
    for (std::string_view bad :
         {"GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "GET /a%zz HTTP/1.1\r\n\r\n",
          "GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"}) {
        auto reply = raw_exchange(t.path, bad);
        INFO(bad);
        CHECK(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        CHECK(reply.find("Connection: close") != std::string::npos);
        auto body = reply.substr(reply.find("\r\n\r\n") + 4);
        CHECK(json::parse(body).contains("error"));
    }
    CHECK(t.seen.handled == 0);
}

TEST_CASE("http: oversized header gets 431, oversized body 413 before it is sent") {
    http::Limits limits;
    limits.max_header_bytes = 1024;
    limits.max_body_bytes = 100;
    TestServer t(limits);
    auto big_header = raw_exchange(t.path, "GET /echo HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
    CHECK(big_header.starts_with("HTTP/1.1 431 "));
    std::string many;
    for (int i = 0; i < 300; ++i) many += "a:\r\n";
    auto many_headers = raw_exchange(t.path, "GET /echo HTTP/1.1\r\n" + many + "\r\n");
    CHECK(many_headers.starts_with("HTTP/1.1 431 "));

    // Only the headers are sent: the answer must not wait for the body.
    auto big_body = raw_exchange(t.path, "POST /echo HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
    CHECK(big_body.starts_with("HTTP/1.1 413 "));
    auto big_chunked = raw_exchange(t.path,
                                    "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "65\r\n" +
                                        std::string(101, 'b') + "\r\n0\r\n\r\n");
    CHECK(big_chunked.starts_with("HTTP/1.1 413 "));
    CHECK(t.seen.handled == 0);

    auto fits = http::request(t.path, "POST", "/echo", std::string(100, 'c'));
    REQUIRE(fits);
    CHECK(fits->status == 200);
}

TEST_CASE("http: a request that does not arrive in time closes the connection (slow-loris)") {
    http::Limits limits;
    limits.request_timeout = std::chrono::milliseconds(200);
    TestServer t(limits);
    auto fd = raw_connect(t.path);
    raw_send(fd.get(), "GET /echo HTTP/1.1\r\nHost: x\r\n");
    auto start = std::chrono::steady_clock::now();
    CHECK(raw_read(fd.get()).empty());
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
    CHECK(t.seen.handled == 0);
}

TEST_CASE("http: connections over the limit close the longest-idle one; 503 only when all are busy") {
    http::Limits limits;
    limits.max_connections = 2;
    TestServer t(limits);
    // Two idle connections: a third closes the one that waited longest.
    auto a = raw_connect(t.path);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto b = raw_connect(t.path);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto served = http::request(t.path, "GET", "/echo");
    REQUIRE(served);
    CHECK(served->status == 200);
    CHECK(raw_read(a.get()).empty());  // closed without a reply
    raw_send(b.get(), "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(raw_read(b.get()).starts_with("HTTP/1.1 200 "));

    // Two connections busy with requests: a third is answered 503 and closed.
    auto c = raw_connect(t.path);
    raw_send(c.get(), "GET /follow HTTP/1.1\r\n\r\n");
    raw_read(c.get(), "tick");
    auto d = raw_connect(t.path);
    raw_send(d.get(), "GET /follow HTTP/1.1\r\n\r\n");
    raw_read(d.get(), "tick");
    // The refusal may be written and the socket closed before the request
    // is sent, so the send may fail with EPIPE; the answer is still there.
    auto e = raw_connect(t.path);
    std::string_view request = "GET /echo HTTP/1.1\r\n\r\n";
    ssize_t sent = ::send(e.get(), request.data(), request.size(), MSG_NOSIGNAL);
    CHECK((sent == static_cast<ssize_t>(request.size()) || (sent < 0 && errno == EPIPE)));
    auto reply = raw_read(e.get());
    CHECK(reply.starts_with("HTTP/1.1 503 "));
    CHECK(reply.find("too many connections") != std::string::npos);
    // The client reads the refusal too, even if it was refused before writing.
    auto via_client = http::request(t.path, "GET", "/echo");
    REQUIRE(via_client);
    CHECK(via_client->status == 503);
    // Freeing a slot lets the next one in.
    c.reset();
    for (int i = 0; i < 100; ++i) {
        auto ok = http::request(t.path, "GET", "/echo");
        REQUIRE(ok);
        if (ok->status == 200) break;
        if (i == 99) FAIL("the freed slot was never reused");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

TEST_CASE("http: a thousand idle connections do not lock out a request") {
    http::Limits limits;
    limits.max_connections = 64;
    TestServer t(limits);
    std::vector<unique_fd> idle;
    for (int i = 0; i < 1000; ++i) idle.push_back(raw_connect(t.path));
    auto start = std::chrono::steady_clock::now();
    auto r = http::request(t.path, "GET", "/echo");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("http: long-lived requests have their own budget; ordinary ones still get through") {
    http::Limits limits;
    limits.max_connections = 8;
    limits.max_long_lived = 3;
    TestServer t(limits);
    std::vector<unique_fd> streams;
    for (int i = 0; i < 3; ++i) {
        streams.push_back(raw_connect(t.path));
        raw_send(streams.back().get(), i == 0 ? "GET /park HTTP/1.1\r\n\r\n" : "GET /follow HTTP/1.1\r\n\r\n");
        if (i > 0) raw_read(streams.back().get(), "tick");
    }
    for (int i = 0; i < 100 && t.server->long_lived_count() < 3; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto fourth = http::request(t.path, "GET", "/follow");
    REQUIRE(fourth);
    CHECK(fourth->status == 503);
    CHECK(json::parse(fourth->body)["error"].get<std::string>().find("too many streams") != std::string::npos);
    auto parked = http::request(t.path, "GET", "/park");
    REQUIRE(parked);
    CHECK(parked->status == 503);
    for (int i = 0; i < 20; ++i) {
        auto ok = http::request(t.path, "GET", "/echo");
        REQUIRE(ok);
        CHECK(ok->status == 200);
    }
    streams.clear();  // their places come back
    bool freed = false;
    for (int i = 0; i < 100 && !freed; ++i) {
        freed = t.server->long_lived_count() == 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(freed);
}

TEST_CASE("http: a client that stops reading is closed after the write timeout") {
    http::Limits limits;
    limits.write_timeout = std::chrono::milliseconds(300);
    TestServer t(limits);
    std::string file = t.dir + "/big";
    { std::ofstream(file) << std::string(8 << 20, 'z'); }
    auto fd = raw_connect(t.path);
    int small = 4096;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    raw_send(fd.get(), "GET /file?path=" + http::percent_encode(file) + "&offset=0&length=8388608 HTTP/1.1\r\n\r\n");
    // Never read: the server's write stalls, and the connection goes.
    for (int i = 0; i < 300 && t.server->connection_count() > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(t.server->connection_count() == 0);
}

TEST_CASE("http: send_file streams a range of a file with its length") {
    TestServer t;
    std::string file = t.dir + "/data";
    std::string content;
    for (int i = 0; i < 300000; ++i) content += static_cast<char>(i % 251);
    { std::ofstream(file, std::ios::binary) << content; }
    auto r = http::request(t.path, "GET", "/file?path=" + http::percent_encode(file) + "&offset=100&length=200000");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("content-length") == "200000");
    CHECK(r->body == content.substr(100, 200000));
    // A file shorter than promised: the connection is closed, not left hanging.
    auto cut = http::request(t.path, "GET", "/file?path=" + http::percent_encode(file) + "&offset=299990&length=100");
    CHECK(!cut);
}

TEST_CASE("http: a body over the in-memory cap is refused with a 500, an error naming bytes is still JSON") {
    http::Limits limits;
    limits.max_response_bytes = 1000;
    TestServer t(limits);
    auto small = http::request(t.path, "GET", "/big?bytes=1000");
    REQUIRE(small);
    CHECK(small->status == 200);
    auto big = http::request(t.path, "GET", "/big?bytes=1001");
    REQUIRE(big);
    CHECK(big->status == 500);
    auto bytes = http::request(t.path, "GET", "/bytes");
    REQUIRE(bytes);
    CHECK(bytes->status == 404);
    CHECK(json::parse(bytes->body)["error"] == "no sandbox '\xEF\xBF\xBD\xEF\xBF\xBD'");
}

TEST_CASE("http: requests beyond a connection's rate are answered 429") {
    http::Limits limits;
    limits.requests_per_second = 0.001;
    limits.request_burst = 2;
    TestServer t(limits);
    auto reply = raw_exchange(t.path,
                              "GET /echo HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\n\r\n"
                              "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(count(reply, "HTTP/1.1 200 ") == 2);
    CHECK(count(reply, "HTTP/1.1 429 ") == 1);
    CHECK(t.seen.handled == 2);
}

TEST_CASE("http: a handler that throws or sends nothing yields a 500") {
    TestServer t;
    auto thrown = http::request(t.path, "GET", "/throw");
    REQUIRE(thrown);
    CHECK(thrown->status == 500);
    CHECK(json::parse(thrown->body)["error"] == "internal error: boom");
    auto silent = http::request(t.path, "GET", "/silent");
    REQUIRE(silent);
    CHECK(silent->status == 500);
}

TEST_CASE("http: the socket is created 0660; a stale one is replaced, a live one refused") {
    std::string dir = make_temp_dir();
    std::string path = dir + "/api.sock";
    {
        // Stale: a socket file nobody listens on (a daemon that crashed).
        unique_fd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        REQUIRE(::bind(stale.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    }
    {
        TestServer t({}, path);
        struct stat st;
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 07777) == 0660);
        CHECK(!std::filesystem::exists(path + ".new"));
        auto ok = http::request(path, "GET", "/echo");
        REQUIRE(ok);
        CHECK(ok->status == 200);

        asio::io_context other;
        auto second = http::Server::listen(other.get_executor(), path, 0660, std::nullopt, {});
        REQUIRE(!second);
        CHECK(second.error().message.find("already listening on " + path) != std::string::npos);
        // The refused second daemon left the live socket alone.
        auto still = http::request(path, "GET", "/echo");
        REQUIRE(still);
        CHECK(still->status == 200);
    }
    // stop() removed the socket.
    CHECK(!std::filesystem::exists(path));

    // Not a socket: never unlinked.
    { std::ofstream(path) << "precious"; }
    asio::io_context ctx;
    auto refused = http::Server::listen(ctx.get_executor(), path, 0660, std::nullopt, {});
    REQUIRE(!refused);
    CHECK(refused.error().message.find("is not a socket") != std::string::npos);
    CHECK(std::filesystem::exists(path));
    std::filesystem::remove_all(dir);
}

TEST_CASE("http client: no daemon is a clear error naming the socket") {
    auto r = http::request("/nonexistent/nucleus.sock", "GET", "/v1/health");
    REQUIRE(!r);
    CHECK(r.error().message.find("/nonexistent/nucleus.sock") != std::string::npos);
    CHECK(r.error().message.find("is `nucleus daemon` running?") != std::string::npos);
}

TEST_CASE("http: stop() ends a waiting handler and serve() returns") {
    auto t = std::make_unique<TestServer>();
    std::thread client([path = t->path] {
        auto r = http::request(path, "GET", "/slow");
        // Either the handler's answer or a closed connection: never a hang.
        (void)r;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto start = std::chrono::steady_clock::now();
    t.reset();  // stop + join the reactor thread: serve() must have returned
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    client.join();
}
