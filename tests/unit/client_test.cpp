// The CLI's daemon commands: the parts that need no daemon. End-to-end
// tests against `nucleus daemon` live with the daemon.
#include <signal.h>

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>

#include "core/client.hpp"

using namespace nucleus;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("client: signals by name, SIG-name, lower case, number and real-time offset") {
    CHECK(core::parse_signal("TERM").value() == SIGTERM);
    CHECK(core::parse_signal("SIGKILL").value() == SIGKILL);
    CHECK(core::parse_signal("hup").value() == SIGHUP);
    CHECK(core::parse_signal("sigusr1").value() == SIGUSR1);
    CHECK(core::parse_signal("15").value() == 15);
    CHECK(core::parse_signal("RTMIN").value() == SIGRTMIN);
    CHECK(core::parse_signal("RTMIN+2").value() == SIGRTMIN + 2);
    CHECK(core::parse_signal("SIGRTMAX-1").value() == SIGRTMAX - 1);
    CHECK(!core::parse_signal("0"));
    CHECK(!core::parse_signal("999"));
    CHECK(!core::parse_signal("TERMINATE"));
    CHECK(!core::parse_signal(""));
    CHECK(!core::parse_signal("RTMIN+99"));
}

TEST_CASE("client: ages read like docker ps") {
    CHECK(core::time_ago(300ms) == "Less than a second ago");
    CHECK(core::time_ago(1s) == "1 second ago");
    CHECK(core::time_ago(3s) == "3 seconds ago");
    CHECK(core::time_ago(59s) == "59 seconds ago");
    CHECK(core::time_ago(90s) == "About a minute ago");
    CHECK(core::time_ago(5min) == "5 minutes ago");
    CHECK(core::time_ago(61min) == "About an hour ago");
    CHECK(core::time_ago(3h) == "3 hours ago");
    CHECK(core::time_ago(72h) == "3 days ago");
    CHECK(core::time_ago(24h * 21) == "3 weeks ago");
    CHECK(core::time_ago(24h * 120) == "4 months ago");
    CHECK(core::time_ago(24h * 365 * 3) == "3 years ago");
}

TEST_CASE("client: API timestamps parse as UTC, with or without a fraction") {
    auto t = core::parse_timestamp("2026-12-02T02:40:00.123Z");
    REQUIRE(t);
    auto base = core::parse_timestamp("2026-12-02T02:40:00Z");
    REQUIRE(base);
    CHECK(*t - *base == 123ms);
    CHECK(std::chrono::system_clock::to_time_t(*base) == 1796179200);
    CHECK(!core::parse_timestamp("yesterday"));
    CHECK(!core::parse_timestamp("2026-12-02T02:40:00+01:00"));
}

TEST_CASE("client: ps table columns, truncation and alignment") {
    auto now = core::parse_timestamp("2026-12-02T02:40:10Z").value();
    json list = json::array({
        {{"id", "ad5620bff6b7bb995b8d9791dc8bc7ab"},
         {"name", "nucleus-ad5620bff6b7"},
         {"state", "running"},
         {"pid", 4242},
         {"created_at", "2026-12-02T02:40:07.000Z"},
         {"exit_code", nullptr},
         {"command", {"/bin/sh", "-c", "echo hi; sleep 1000 && echo a very long tail"}}},
        {{"id", "0123456789abcdef0123456789abcdef"},
         {"name", "web"},
         {"state", "exited"},
         {"pid", nullptr},
         {"created_at", "2026-12-02T02:35:00Z"},
         {"exit_code", 137},
         {"command", {"true"}}},
    });
    std::string table = core::format_sandbox_table(list, now);
    std::string expected =
        "ID             NAME                   STATE     PID    CREATED         EXIT   COMMAND\n"
        "ad5620bff6b7   nucleus-ad5620bff6b7   running   4242   3 seconds ago   -      /bin/sh -c 'echo hi; sleep 10…\n"
        "0123456789ab   web                    exited    -      5 minutes ago   137    true\n";
    CHECK(table == expected);

    std::string full = core::format_sandbox_table(list, now, false);
    CHECK(full.find("ad5620bff6b7bb995b8d9791dc8bc7ab") != std::string::npos);
    CHECK(full.find("echo a very long tail'") != std::string::npos);

    CHECK(core::format_sandbox_table(json::array(), now) == "ID   NAME   STATE   PID   CREATED   EXIT   COMMAND\n");
}

TEST_CASE("client: a finished sandbox's exit status") {
    CHECK(core::exit_status_of({{"exit_code", 3}, {"signal", nullptr}}) == 3);
    CHECK(core::exit_status_of({{"exit_code", nullptr}, {"signal", 9}}) == 137);
    CHECK(core::exit_status_of({{"exit_code", nullptr}, {"signal", nullptr}}) == 125);
    CHECK(core::exit_status_of(json()) == 125);
}
