// Resource limits, tested for real where the kernel has the controllers:
// in the system lane (scripts/system-lane.sh, set tests/system/resources.sh).
// On a host without them (hybrid cgroups) every test here says SKIPPED and
// names the lane.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>

#include "sandbox_run.hpp"

using namespace nucleus::kernel_lane;

namespace {

void require_controller(const char* controller) {
    const std::string lane = "; scripts/system-lane.sh runs this test on a pure cgroup v2 kernel";
    if (::geteuid() != 0) SKIP("needs root" + lane);
    std::string mount;
    auto controllers = root_controllers(mount);
    if (mount.empty()) SKIP("no cgroup2 filesystem is mounted" + lane);
    if (std::find(controllers.begin(), controllers.end(), controller) == controllers.end())
        SKIP(std::string("the ") + controller + " controller is not available at " + mount + " (hybrid cgroup host)" +
             lane);
}

uint64_t stat_value(const SandboxRun& run, const char* key) {
    const auto& stats = run.final_event.at("stats");
    return stats.contains(key) ? stats.at(key).get<uint64_t>() : 0;
}

}  // namespace

TEST_CASE("a memory hog under --memory 32M is OOM-killed and reported, the kernel stays healthy") {
    require_controller("memory");
    auto run = run_sandbox({"--memory", "32M", "--", "/checker/nucleus-check", "hog", "256"});
    INFO(run.err);
    CHECK(run.exit_code == 137);
    CHECK(run.final_event.value("reason", "") == "oom_kill");
    CHECK(run.final_event.at("limit_events").at("memory_oom_kill").get<uint64_t>() >= 1);
    CHECK(checker_value(run.out, "hog") != "done");
    // The next sandbox starts and exits normally.
    auto after = run_sandbox({"--memory", "32M", "--", "/checker/nucleus-check", "hog", "8"});
    CHECK(after.exit_code == 0);
    CHECK(checker_value(after.out, "hog") == "done");
}

TEST_CASE("a fork bomb under --pids 64 is contained and counted") {
    require_controller("pids");
    auto run = run_sandbox({"--pids", "64", "--", "/checker/nucleus-check", "forkbomb", "1"});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 3);  // the checker's "fork failed" exit
    CHECK(checker_value(run.out, "fork_error") == "error:EAGAIN");
    auto forked = std::stoll(checker_value(run.out, "forked"));
    CHECK(forked > 0);
    CHECK(forked < 64);
    CHECK(run.final_event.at("limit_events").at("pids_max").get<uint64_t>() >= 1);
    CHECK(run.final_event.value("reason", "") == "pids_limit");
    if (run.final_event.at("stats").contains("pids_peak")) CHECK(stat_value(run, "pids_peak") <= 64);
}

TEST_CASE("cpus 0.5 throttles a busy loop to half a core (cpu.stat)") {
    require_controller("cpu");
    auto run = run_sandbox({"--cpus", "0.5", "--timeout", "3", "--", "/checker/nucleus-check", "spin"});
    INFO(run.final_event.dump());
    CHECK(run.exit_code == 124);
    // Within each 100 ms period the sandbox may run 50 ms: its usage over the
    // periods it was active must be half of their length, within 20%.
    uint64_t periods = stat_value(run, "cpu_nr_periods");
    uint64_t usage = stat_value(run, "cpu_usage_usec");
    REQUIRE(periods > 10);
    double ratio = static_cast<double>(usage) / (static_cast<double>(periods) * 50000.0);
    CHECK(ratio > 0.8);
    CHECK(ratio < 1.2);
    CHECK(stat_value(run, "cpu_nr_throttled") > 0);
}

TEST_CASE("tmpfs-size stops a disk filler with ENOSPC") {
    require_controller("memory");
    auto run =
        run_sandbox({"--tmpfs-size", "8m", "--memory", "64m", "--", "/checker/nucleus-check", "fill", "/tmp/filler"});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    CHECK(checker_value(run.out, "fill") == "error:ENOSPC");
    CHECK(std::stoll(checker_value(run.out, "filled_bytes")) <= 8 * 1024 * 1024);
}

TEST_CASE("limits are written before the workload starts and stats are reported") {
    require_controller("memory");
    auto run = run_sandbox({"--memory", "48m", "--pids", "32", "--", "/bin/sh", "-c",
                            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>/dev/null || true"});
    INFO(run.err);
    CHECK(run.exit_code == 0);
    REQUIRE_FALSE(run.events.empty());
    const auto& start = run.events.front();
    CHECK(start.at("limits").at("memory_max").get<uint64_t>() == 48ull * 1024 * 1024);
    CHECK(start.at("limits").at("pids_max").get<uint64_t>() == 32);
    CHECK(run.final_event.at("stats").contains("memory_peak"));
}
