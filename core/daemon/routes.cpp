#include "core/daemon/routes.hpp"

#include "core/daemon/api.hpp"
#include "core/daemon/daemon.hpp"
#include "core/daemon/query.hpp"

namespace nucleus::core::daemon {

namespace {

// clang-format off
constexpr Route routes[] = {
    {"GET",    "/v1/health",                 {},                          api::health},
    {"GET",    "/v1/metrics",                {},                          api::metrics},
    {"GET",    "/v1/events",                 {},                          api::events},
    {"POST",   "/v1/sandboxes",              {"start"},                   api::create},
    {"GET",    "/v1/sandboxes",              {"all"},                     api::list},
    {"GET",    "/v1/sandboxes/{id}",         {},                          api::inspect},
    {"DELETE", "/v1/sandboxes/{id}",         {"force"},                   api::remove},
    {"POST",   "/v1/sandboxes/{id}/start",   {},                          api::start},
    {"POST",   "/v1/sandboxes/{id}/wait",    {"timeout"},                 api::wait},
    {"GET",    "/v1/sandboxes/{id}/logs",    {"stream", "tail", "follow"}, api::logs},
    {"POST",   "/v1/sandboxes/{id}/kill",    {"signal"},                  api::kill},
    {"POST",   "/v1/sandboxes/{id}/stop",    {"timeout"},                 api::stop},
    {"POST",   "/v1/sandboxes/{id}/exec",    {},                          api::exec},
    {"GET",    "/v1/sandboxes/{id}/stats",   {},                          api::stats},
};
// clang-format on

constexpr std::string_view id_placeholder = "{id}";

}  // namespace

std::optional<std::string> match_pattern(std::string_view pattern, std::string_view path) {
    auto at = pattern.find(id_placeholder);
    if (at == std::string_view::npos) return pattern == path ? std::optional<std::string>("") : std::nullopt;
    std::string_view before = pattern.substr(0, at), after = pattern.substr(at + id_placeholder.size());
    if (path.size() <= before.size() + after.size() || !path.starts_with(before) || !path.ends_with(after))
        return std::nullopt;
    std::string_view id = path.substr(before.size(), path.size() - before.size() - after.size());
    if (id.find('/') != std::string_view::npos) return std::nullopt;
    return std::string(id);
}

RouteLookup find_route(std::string_view method, std::string_view path) {
    RouteLookup found{.route = nullptr, .id = {}, .status = 404};
    for (const Route& route : routes) {
        auto id = match_pattern(route.pattern, path);
        if (!id) continue;
        if (route.method != method) {
            found.status = 405;
            continue;
        }
        return RouteLookup{.route = &route, .id = std::move(*id), .status = 0};
    }
    return found;
}

asio::awaitable<void> Daemon::handle(const io::http::Request& req, io::http::Responder& res) {
    ++counters_.requests_total;
    auto found = find_route(req.method, req.path);
    if (found.status == 404)
        co_return (void) co_await res.send_error(404, "no such endpoint: " + req.path + " (see docs/API.md)");
    if (found.status == 405)
        co_return (void) co_await res.send_error(405, req.method + " is not allowed on " + req.path);
    if (auto st = check_query_keys(req, found.route->query); !st)
        co_return (void) co_await res.send_error(400, st.error().message);
    Call call{.req = req, .res = res, .entry = nullptr, .id = {}};
    if (found.route->pattern.find(id_placeholder) != std::string_view::npos) {
        auto entry = table_.find(found.id);
        if (!entry) co_return (void) co_await res.send_error(404, entry.error().message);
        call.entry = *entry;
        call.id = (*entry)->record.id;
    }
    co_await found.route->endpoint(*this, call);
}

}  // namespace nucleus::core::daemon
