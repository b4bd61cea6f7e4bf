// A supervisor that dies without tearing down: its sandbox dies with it
// (PR_SET_PDEATHSIG), the cgroup and the state record stay, and `nucleus gc`
// (or the next `nucleus run`) removes them.
//
// These tests give nucleus a private NUCLEUS_STATE_DIR: with a shared one
// any concurrent `nucleus run` (another suite, a colleague) could clean the
// record up before the test looks at it. The cgroup lives under the test
// process's own cgroup parent and is counted as a leftover.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <thread>

#include "harness.hpp"

using namespace nit;

namespace {

struct Crashable {
    TempDir dir{"crash"};
    fs::path state = dir / "state";  // created by nucleus (it must own it)
    fs::path events = dir / "events.jsonl";
    std::string records() const { return (state / "sandboxes").string(); }
    SpawnOptions options() const {
        SpawnOptions o;
        o.env = {"NUCLEUS_STATE_DIR=" + state.string()};
        o.deadline = 30s;
        return o;
    }
};

void require_cgroup2() {
    if (!cgroup2_mount()) SKIP("no cgroup2 mount on this host");
}

}  // namespace

TEST_CASE("the next nucleus run cleans up after a killed supervisor", "[crash][host-state]") {
    require_root();
    require_cgroup2();
    Crashable c;
    auto baseline = settled_leftovers();
    auto p = Process::start(
        nucleus_argv(with_checker({"--events-jsonl", c.events.string()}), {kChecker, "sleep", "30"}), c.options());
    auto start = wait_for_start_event(c.events, p);
    REQUIRE(start.is_object());
    std::string cgroup = start.value("cgroup", "");
    fs::path record = fs::path(c.records()) / (start.value("id", std::string()) + ".json");
    p.signal(SIGKILL);
    p.wait();
    auto base = map_base(start["user"].value("uid_map", ""));
    REQUIRE(base.has_value());
    CHECK(wait_until_range_empty(*base, kLeaseSize, 10s));
    CHECK(fs::exists(record));

    auto next = run_nucleus({}, {"/bin/true"}, c.options());
    INFO(next.describe());
    CHECK(next.exit_code == 0);
    CHECK_FALSE(fs::exists(cgroup));
    CHECK_FALSE(fs::exists(record));
    auto after = wait_for_leftovers(baseline);
    INFO("before: " << baseline.describe() << "\nafter:  " << after.describe());
    CHECK(after == baseline);
}

TEST_CASE("nucleus gc leaves a live sandbox alone", "[crash][host-state]") {
    require_root();
    require_cgroup2();
    Crashable c;
    auto baseline = settled_leftovers();
    auto p = Process::start(
        nucleus_argv(with_checker({"--events-jsonl", c.events.string()}), {kChecker, "sleep", "30"}), c.options());
    auto start = wait_for_start_event(c.events, p);
    REQUIRE(start.is_object());
    std::string cgroup = start.value("cgroup", "");
    fs::path record = fs::path(c.records()) / (start.value("id", std::string()) + ".json");

    auto gc = run({kNucleus, "gc"}, c.options());
    CHECK(gc.exit_code == 0);
    CHECK(contains(gc.out, "removed 0 stale sandboxes"));
    CHECK(fs::is_directory(cgroup));
    CHECK(fs::exists(record));
    CHECK_FALSE(p.exited());
    CHECK(pid_alive(start.value("pid", 0)));

    p.signal(SIGTERM);
    auto r = p.wait();
    CHECK(r.exit_code == 143);
    CHECK_FALSE(fs::exists(cgroup));
    CHECK_FALSE(fs::exists(record));
    auto after = wait_for_leftovers(baseline);
    INFO("before: " << baseline.describe() << "\nafter:  " << after.describe());
    CHECK(after == baseline);
}

// As root the private copy lives on a detached tmpfs held only by the
// supervisor's descriptors: a SIGKILL takes it with it, nothing is on disk.
TEST_CASE("a killed copy-in-out run: nothing synced back and nothing left on disk", "[crash][host-state]") {
    require_root();
    require_cgroup2();
    Crashable c;
    fs::path ws = c.dir / "ws";
    fs::create_directories(ws);
    write_file(ws / "data.txt", "original\n");
    auto baseline = settled_leftovers();
    auto p =
        Process::start(nucleus_argv(with_checker({"--events-jsonl", c.events.string(), "--workspace", ws.string(),
                                                  "--workspace-mode", "copy-in-out"}),
                                    {"/bin/sh", "-c", "echo changed > /workspace/data.txt; echo ready; exec sleep 30"}),
                       c.options());
    REQUIRE(p.wait_for_output("ready\n", 20s));
    auto start = wait_for_start_event(c.events, p);
    REQUIRE(start.is_object());
    fs::path private_dir = fs::path(c.records()) / start.value("id", std::string());
    CHECK_FALSE(fs::exists(private_dir));

    p.signal(SIGKILL);
    p.wait();
    auto base = map_base(start["user"].value("uid_map", ""));
    REQUIRE(base.has_value());
    CHECK(wait_until_range_empty(*base, kLeaseSize, 10s));
    // The workload's change was never synced back.
    CHECK(read_file(ws / "data.txt") == "original\n");
    CHECK_FALSE(fs::exists(private_dir));

    auto gc = run({kNucleus, "gc"}, c.options());
    CHECK(gc.exit_code == 0);
    CHECK(count_leftovers(c.records()).records == 0);
    auto after = wait_for_leftovers(baseline);
    INFO("before: " << baseline.describe() << "\nafter:  " << after.describe());
    CHECK(after == baseline);
}

// A SIGTERM during setup, before supervision watches signals, once killed
// nucleus with the default action and left its record and cgroup (and,
// with unlucky timing, a child blocked in its setup script holding the
// record's flock). Forwarded signals are blocked during setup now.
TEST_CASE("SIGTERM to nucleus during setup is handled and leaves no orphan and no state",
          "[crash][signals][host-state]") {
    require_root();
    require_cgroup2();
    Crashable c;
    const std::string marker = "it-setup-term-" + std::to_string(::getpid());
    // Whatever happens, the orphans go and gc runs before the next test.
    struct Reaper {
        const Crashable& c;
        std::string marker;
        ~Reaper() {
            for (pid_t pid : pids_with_cmdline(marker)) ::kill(pid, SIGKILL);
            auto until = std::chrono::steady_clock::now() + 5s;
            while (!pids_with_cmdline(marker).empty() && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            (void)run({kNucleus, "gc"}, c.options());
        }
    } reaper{c, marker};
    auto baseline = settled_leftovers(c.records());

    int died_of_sigterm = 0;
    constexpr int kAttempts = 6;
    for (int i = 0; i < kAttempts; ++i) {
        auto p = Process::start(
            nucleus_argv(with_checker({"--name", marker + "-" + std::to_string(i)}), {kChecker, "sleep", "30"}),
            c.options());
        // Signal the moment the sandbox's state exists: its record (even
        // attempts) or its first process in the cgroup (odd attempts).
        auto until = std::chrono::steady_clock::now() + 10s;
        bool triggered = false;
        while (!triggered && std::chrono::steady_clock::now() < until && !p.exited()) {
            std::error_code ec;
            for (const auto& e : fs::directory_iterator(c.records(), ec)) {
                if (e.path().extension() != ".json") continue;
                if (i % 2 == 0) {
                    triggered = true;
                } else {
                    auto record = nlohmann::json::parse(read_file(e.path()), nullptr, false);
                    if (record.is_object() && record.contains("cgroup") && record["cgroup"].is_string())
                        triggered = !read_file(fs::path(record["cgroup"].get<std::string>()) / "cgroup.procs").empty();
                }
            }
        }
        INFO("attempt " << i);
        REQUIRE(triggered);
        p.signal(SIGTERM);
        // Only nucleus's own exit matters here; its output pipes may be held
        // open by exactly the orphans this test is about.
        auto r = p.wait(std::chrono::milliseconds(0));
        CHECK_FALSE(r.timed_out);
        if (r.signal == SIGTERM) ++died_of_sigterm;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO("nucleus died of SIGTERM itself " << died_of_sigterm << " times out of " << kAttempts);
    CHECK(died_of_sigterm == 0);

    // No process of any of these sandboxes may survive its supervisor.
    auto until = std::chrono::steady_clock::now() + 5s;
    auto orphans = pids_with_cmdline(marker);
    while (!orphans.empty() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        orphans = pids_with_cmdline(marker);
    }
    INFO("orphaned sandbox children: " << orphans.size());
    CHECK(orphans.empty());
    // And nothing may be left for gc.
    auto after = wait_for_leftovers(baseline, 5s, c.records());
    INFO("before: " << baseline.describe() << "\nafter:  " << after.describe());
    CHECK(after.records == baseline.records);
    CHECK(after.cgroups == baseline.cgroups);
}
