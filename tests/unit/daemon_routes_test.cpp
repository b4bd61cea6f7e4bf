// The daemon's routing, query parameters and sandbox lookup: pure parts of
// core/daemon/, without a socket.
#include <catch2/catch_test_macros.hpp>

#include "core/daemon/query.hpp"
#include "core/daemon/routes.hpp"
#include "core/daemon/sandbox_table.hpp"

#include <asio/io_context.hpp>

using namespace nucleus::core::daemon;
namespace http = nucleus::io::http;

namespace {

http::Request with_query(std::map<std::string, std::string> query) {
    http::Request req;
    req.query = std::move(query);
    return req;
}

}  // namespace

TEST_CASE("daemon routes: patterns capture one non-empty segment") {
    CHECK(match_pattern("/v1/health", "/v1/health") == "");
    CHECK(!match_pattern("/v1/health", "/v1/health/"));
    CHECK(match_pattern("/v1/sandboxes/{id}", "/v1/sandboxes/abcd") == "abcd");
    CHECK(match_pattern("/v1/sandboxes/{id}/logs", "/v1/sandboxes/job/logs") == "job");
    CHECK(!match_pattern("/v1/sandboxes/{id}", "/v1/sandboxes/"));
    CHECK(!match_pattern("/v1/sandboxes/{id}/logs", "/v1/sandboxes//logs"));
    CHECK(!match_pattern("/v1/sandboxes/{id}", "/v1/sandboxes/a/b"));
    CHECK(!match_pattern("/v1/sandboxes/{id}/logs", "/v1/sandboxes/a/b/logs"));
    CHECK(match_pattern("/v1/sandboxes/{id}", "/v1/sandboxes/\xff\xfe") == "\xff\xfe");
}

TEST_CASE("daemon routes: each endpoint by method and path; 404 and 405 otherwise") {
    auto route = [](std::string_view method, std::string_view path) { return find_route(method, path); };
    CHECK(route("GET", "/v1/health").status == 0);
    CHECK(route("POST", "/v1/sandboxes").route->pattern == "/v1/sandboxes");
    CHECK(route("GET", "/v1/sandboxes").route->method == "GET");
    auto logs = route("GET", "/v1/sandboxes/job/logs");
    REQUIRE(logs.status == 0);
    CHECK(logs.id == "job");
    CHECK(logs.route->pattern == "/v1/sandboxes/{id}/logs");
    CHECK(route("DELETE", "/v1/sandboxes/x").route->method == "DELETE");
    CHECK(route("PUT", "/v1/sandboxes").status == 405);
    CHECK(route("GET", "/v1/sandboxes/x/wait").status == 405);
    CHECK(route("GET", "/v1/nope").status == 404);
    CHECK(route("GET", "/v1/sandboxes/x/nope").status == 404);
    CHECK(route("GET", "/v2/health").status == 404);
}

TEST_CASE("daemon query: flags, seconds, counts and choices are read strictly") {
    CHECK(query_flag(with_query({}), "force").value() == false);
    CHECK(query_flag(with_query({}), "start", true).value() == true);
    CHECK(query_flag(with_query({{"force", "true"}}), "force").value());
    CHECK(query_flag(with_query({{"force", "1"}}), "force").value());
    CHECK(!query_flag(with_query({{"force", "0"}}), "force").value());
    for (const char* bad : {"yes", "TRUE", "", "2", "true "}) {
        auto r = query_flag(with_query({{"force", bad}}), "force");
        REQUIRE(!r);
        CHECK(r.error().message.find("force") != std::string::npos);
    }
    CHECK(!query_seconds(with_query({}), "timeout").value());
    CHECK(query_seconds(with_query({{"timeout", "2.5"}}), "timeout").value() == 2.5);
    CHECK(query_seconds(with_query({{"timeout", "0"}}), "timeout").value() == 0);
    for (const char* bad : {"-1", "inf", "nan", "1e3", " 5", "5s", "", ".", "99999999999"})
        CHECK(!query_seconds(with_query({{"timeout", bad}}), "timeout"));
    CHECK(query_count(with_query({{"tail", "20"}}), "tail", 100, "all").value() == 20u);
    CHECK(!query_count(with_query({{"tail", "all"}}), "tail", 100, "all").value());
    for (const char* bad : {"101", "-1", "+5", "5 ", "all", "0x10"})
        CHECK(!query_count(with_query({{"tail", bad}}), "tail", 100, bad == std::string("all") ? "" : "all"));
    CHECK(query_choice(with_query({}), "stream", {"stdout", "stderr"}, "stdout").value() == "stdout");
    CHECK(query_choice(with_query({{"stream", "stderr"}}), "stream", {"stdout", "stderr"}, "stdout").value() ==
          "stderr");
    CHECK(!query_choice(with_query({{"stream", "stdin"}}), "stream", {"stdout", "stderr"}, "stdout"));
    std::array<std::string_view, 3> accepted{"stream", "tail", ""};
    CHECK(check_query_keys(with_query({{"tail", "1"}}), accepted).ok());
    auto unknown = check_query_keys(with_query({{"follw", "1"}}), accepted);
    REQUIRE(!unknown);
    CHECK(unknown.error().message.find("'follw'") != std::string::npos);
    CHECK(unknown.error().message.find("stream, tail") != std::string::npos);
}

TEST_CASE("daemon sandbox table: ids, unique prefixes and names; a name never answers for an id prefix") {
    asio::io_context io;
    SandboxTable table;
    auto add = [&](std::string id, std::string name) {
        auto e = std::make_unique<Entry>(io.get_executor());
        e->record.id = std::move(id);
        e->record.name = std::move(name);
        return &table.add(std::move(e));
    };
    Entry* a = add("aaaa1111000000000000000000000000", "job");
    Entry* b = add("aaaa2222000000000000000000000000", "other");
    // A record from before names were checked, named like a's prefix.
    Entry* legacy = add("bbbb0000000000000000000000000000", "aaaa1111");
    CHECK(table.find("aaaa1111000000000000000000000000").value() == a);
    CHECK(table.find("aaaa1").value() == a);
    CHECK(table.find("aaaa1111").value() == a);  // the id prefix, not the legacy name
    CHECK(table.find("job").value() == a);
    CHECK(table.find("other").value() == b);
    CHECK(table.find("bbbb").value() == legacy);
    auto ambiguous = table.find("aaaa");
    REQUIRE(!ambiguous);
    CHECK(ambiguous.error().message.find("more than one") != std::string::npos);
    CHECK(!table.find("aaa"));  // too short for a prefix, and no such name
    CHECK(!table.find("cccc"));
    CHECK(!table.find("\xff\xfe"));
    CHECK(table.name_taken("job"));
    CHECK(!table.name_taken("nobody"));
    CHECK(table.count(Phase::Created) == 3);
}
