// The API's route table: {method, pattern, query parameters, endpoint},
// one line per endpoint (routes.cpp), matched by find_route(). A pattern's
// `{id}` segment names a sandbox (id, unique id prefix or name); it is
// resolved before the endpoint runs, which then finds it in Call::entry.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>

#include "io/http.hpp"

namespace nucleus::core::daemon {

class Daemon;
struct Entry;

struct Call {
    const io::http::Request& req;
    io::http::Responder& res;
    Entry* entry = nullptr;  // the {id} of the pattern
    // Its full id: an entry may be removed while an endpoint waits, so
    // after a suspension it is looked up again by this.
    std::string id;
};

using Endpoint = asio::awaitable<void> (*)(Daemon&, Call&);

struct Route {
    std::string_view method;
    std::string_view pattern;  // "/v1/sandboxes/{id}/logs"
    std::array<std::string_view, 3> query;  // the parameters it takes
    Endpoint endpoint;
};

// The `{id}` segment of `path` when it matches `pattern` ("" for a pattern
// without one); nullopt when it does not match. A segment never matches
// empty, and never spans a '/'.
std::optional<std::string> match_pattern(std::string_view pattern, std::string_view path);

struct RouteLookup {
    const Route* route = nullptr;
    std::string id;  // the {id} segment as given
    int status = 0;  // 0: found; 404: no pattern matches; 405: not this method
};
RouteLookup find_route(std::string_view method, std::string_view path);

}  // namespace nucleus::core::daemon
