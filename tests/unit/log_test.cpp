// The daemon's own log (core/log.hpp): levels, and one line per record in
// either form whatever bytes a message holds.
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>

#include <string>

#include "core/log.hpp"
#include "io/bytes_json.hpp"

namespace nlog = nucleus::core::log;

namespace {

// What `fn` writes to stderr.
template <typename Fn>
std::string captured_stderr(Fn fn) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    int saved = ::dup(2);
    ::dup2(pipe_fds[1], 2);
    fn();
    ::dup2(saved, 2);
    ::close(saved);
    ::close(pipe_fds[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
    return out;
}

}  // namespace

TEST_CASE("log: levels and forms are checked by name") {
    CHECK_FALSE(nlog::configure("loud", "text"));
    CHECK(nlog::configure("loud", "text").error().describe().find("--log-level must be") != std::string::npos);
    CHECK(nlog::configure("info", "xml").error().describe().find("--log-format must be text or json") !=
          std::string::npos);
}

TEST_CASE("log: the JSON form is one object per record, bytes as the API carries them") {
    REQUIRE(nlog::configure("info", "json"));
    std::string bad = std::string("path /tmp/\xff\xfe") + "\nsecond line";
    auto out = captured_stderr([&] {
        nlog::debug("not shown at info");
        nlog::warning(bad);
    });
    REQUIRE(out.find('\n') == out.size() - 1);  // one line
    auto record = nlohmann::json::parse(out);
    CHECK(record["level"] == "warning");
    auto msg = nucleus::io::bytes_from_json(record["msg"], "msg");
    REQUIRE(msg);
    CHECK(*msg == bad);
    CHECK(record["time"].get<std::string>().ends_with("Z"));
}

TEST_CASE("log: the text form keeps one record on one line") {
    REQUIRE(nlog::configure("debug", "text"));
    auto out = captured_stderr([] {
        nlog::debug("first\nsecond");
        nlog::error("third");
    });
    CHECK(out.find(" debug first second\n") != std::string::npos);
    CHECK(out.find(" error third\n") != std::string::npos);
}
