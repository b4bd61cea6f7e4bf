// The server's request parser (private to io/http*.cpp): one request at a
// time, from the bytes a connection has read, by http-parser's callbacks.
// The parser pauses at the end of each message, so pipelined bytes after
// it stay unconsumed for the next request. Why a request is refused (400,
// 413, 431) is recorded for the connection to answer.
#pragma once

#include <http_parser.h>

#include <string>
#include <string_view>

#include "io/http.hpp"

namespace nucleus::io::http::detail {

// ASCII case-insensitive equality (header names and values).
bool iequals(std::string_view a, std::string_view b);

class RequestParser {
public:
    explicit RequestParser(const Limits& limits);
    RequestParser(const RequestParser&) = delete;
    RequestParser& operator=(const RequestParser&) = delete;

    void reset();
    // Parses as much of `data` as belongs to the current request; returns
    // the bytes consumed. `data` must not be empty (empty means EOF).
    size_t feed(std::string_view data);

    bool complete() const { return complete_; }
    bool headers_done() const { return headers_done_; }
    bool keep_alive() const { return http_should_keep_alive(&parser_) != 0; }

    Request request;
    bool expects_continue = false;
    int reject_status = 0;  // 400, 413, 431: answer and close
    std::string reject_message;

private:
    static RequestParser& self(http_parser* p) { return *static_cast<RequestParser*>(p->data); }
    void reject(int status, std::string message);
    void header_too_large();
    bool charge_header(size_t length);
    Status split_target();

    static int on_url(http_parser* p, const char* at, size_t length);
    static int on_header_field(http_parser* p, const char* at, size_t length);
    static int on_header_value(http_parser* p, const char* at, size_t length);
    static int on_headers_complete(http_parser* p);
    static int on_body(http_parser* p, const char* at, size_t length);
    static int on_message_complete(http_parser* p);

    const Limits& limits_;
    http_parser parser_;
    http_parser_settings settings_;
    size_t header_bytes_ = 0;
    size_t message_bytes_ = 0;
    bool in_value_ = false;
    bool headers_done_ = false;
    bool complete_ = false;
};

}  // namespace nucleus::io::http::detail
