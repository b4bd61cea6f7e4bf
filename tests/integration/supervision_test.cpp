// Supervision: exit codes, signals, timeouts, lifecycle events, logs, the
// workload's environment, output, and that a sandbox's processes end with it.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <algorithm>

#include "harness.hpp"

using namespace nit;

namespace {

struct ExitCase {
    const char* name;
    std::vector<std::string> flags;
    std::vector<std::string> command;
    int exit_code;
    const char* reason;
};

}  // namespace

TEST_CASE("SIGTERM/SIGINT/SIGHUP to nucleus reach PID 1 and unhandled end the sandbox with 128+N",
          "[supervision][signals][host-state]") {
    require_root();
    auto sig = GENERATE(SIGTERM, SIGINT, SIGHUP);
    TempDir dir("sig");
    auto baseline = settled_leftovers();
    DYNAMIC_SECTION("signal " << sig) {
        auto p = Process::start(
            nucleus_argv(with_checker({"--events-jsonl", (dir / "events").string()}), {kChecker, "sleep", "30"}),
            with_deadline(25s));
        REQUIRE(wait_for_start_event(dir / "events", p).is_object());
        p.signal(sig);
        // Promptly: long before the 30 s sleep would end (the harness
        // deadline is 25 s; no timing is asserted beyond that).
        auto r = p.wait();
        INFO(r.describe());
        CHECK_FALSE(r.timed_out);
        CHECK(r.exit_code == 128 + sig);
        auto exit = find_event(read_events(dir / "events"), "exit");
        REQUIRE(exit.is_object());
        CHECK(exit.value("exit_code", -1) == 128 + sig);
        CHECK(exit.value("reason", "") == "signal");
        CHECK(exit.value("signal", 0) == sig);
        CHECK(exit["cleanup"].value("ok", false));
        auto after = wait_for_leftovers(baseline);
        INFO("before: " << baseline.describe() << "\nafter:  " << after.describe());
        CHECK(after == baseline);
    }
}

TEST_CASE("a forwarded signal PID 1 handles is the workload's business", "[supervision][signals]") {
    require_root();
    auto p = Process::start(
        nucleus_argv({},
                     {"/bin/sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done"}),
        with_deadline(25s));
    REQUIRE(p.wait_for_output("ready\n", 20s));
    p.signal(SIGTERM);
    auto r = p.wait();
    INFO(r.describe());
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 7);
    CHECK(contains(r.out, "got-term"));
}

TEST_CASE("events fd: the same records on an inherited descriptor", "[supervision][events]") {
    require_root();
    TempDir dir("evfd");
    fs::path events = dir / "fd3.jsonl";
    SpawnOptions options;
    options.fd_files.push_back({3, events.string(), O_WRONLY | O_CREAT | O_TRUNC});
    auto r = run_checker({"--events-fd", "3"}, {"exit", "5"}, options);
    INFO(r.describe());
    REQUIRE(r.exit_code == 5);
    auto records = read_events(events);
    REQUIRE(records.size() == 2);
    CHECK(records[0].value("event", "") == "start");
    CHECK(records[1].value("event", "") == "exit");
    CHECK(records[1].value("exit_code", -1) == 5);
    CHECK(records[0].value("id", "") == records[1].value("id", "?"));
    // Nothing of it on stdout.
    CHECK(r.out.empty());
}

TEST_CASE("the workload's stdin is not the supervisor's", "[supervision]") {
    require_root();
    SpawnOptions options;
    options.stdin_data = "should not arrive\n";
    options.deadline = 20s;
    auto r = run_nucleus({}, {"/bin/cat"}, options);
    INFO(r.describe());
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK_FALSE(contains(r.out, "should not arrive"));
}
