// HTTP/1.1 over a unix socket, client side: how the `nucleus` CLI talks to
// `nucleus daemon`. Blocking and one request per connection (Connection:
// close): it serves a short-lived command, never the reactor. Responses are
// parsed by http-parser, as requests are on the server side.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/error.hpp"

namespace nucleus::io::http {

struct Response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    // The first header of that name (case-insensitive), or "" when absent.
    std::string header(std::string_view name) const;
};

// Bodies larger than this are refused (a daemon answer never is).
constexpr size_t max_response_body = 64 << 20;

// One request, the whole response. A daemon that is not there fails with a
// message naming the socket ("... is `nucleus daemon` running?").
Result<Response> request(const std::string& socket_path, std::string_view method, std::string_view target,
                         std::string_view body = {}, std::string_view content_type = "application/json");

// For long responses (logs --follow, events): a 2xx response's body is handed
// to on_data piece by piece as it arrives (chunked framing removed) and not
// kept; on_data returning false ends the request early (not an error). Any
// other status's body is collected into the Response instead (an error
// document), and on_data is not called.
Result<Response> request_stream(const std::string& socket_path, std::string_view method, std::string_view target,
                                const std::function<bool(std::string_view)>& on_data, std::string_view body = {},
                                std::string_view content_type = "application/json");

}  // namespace nucleus::io::http
