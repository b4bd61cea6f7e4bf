#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
#include <filesystem>

#include "core/state.hpp"

using namespace nucleus::core;
namespace fs = std::filesystem;

namespace {
struct StateDir {
    fs::path path = fs::temp_directory_path() / ("nucleus-state-" + std::to_string(::getpid()));
    StateDir() {
        fs::remove_all(path);
        ::setenv("NUCLEUS_STATE_DIR", path.c_str(), 1);
    }
    ~StateDir() {
        ::unsetenv("NUCLEUS_STATE_DIR");
        fs::remove_all(path);
    }
};
}  // namespace

TEST_CASE("a live record survives clean-up, a dead one is removed") {
    StateDir state;
    auto paths = prepare_runtime_paths();
    REQUIRE(paths);
    auto live = SandboxRecord::create(*paths, "live", {{"id", "live"}});
    REQUIRE(live);
    auto dir = live->private_dir();
    REQUIRE(dir);
    // A supervisor that dies while holding its record.
    pid_t pid = ::fork();
    if (pid == 0) {
        auto dead = SandboxRecord::create(*paths, "dead", {{"id", "dead"}, {"cgroup", nullptr}});
        ::_exit(dead ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WEXITSTATUS(status) == 0);
    CHECK(fs::exists(paths->sandboxes + "/dead.json"));
    auto report = collect_stale_sandboxes(*paths);
    CHECK(report.errors.empty());
    CHECK(report.sandboxes == 1);
    CHECK_FALSE(fs::exists(paths->sandboxes + "/dead.json"));
    CHECK(fs::exists(paths->sandboxes + "/live.json"));
    REQUIRE(live->remove());
    CHECK_FALSE(fs::exists(paths->sandboxes + "/live.json"));
    CHECK_FALSE(fs::exists(*dir));
}

TEST_CASE("record ids are exclusive") {
    StateDir state;
    auto paths = prepare_runtime_paths();
    REQUIRE(paths);
    auto first = SandboxRecord::create(*paths, "same", {});
    REQUIRE(first);
    CHECK_FALSE(SandboxRecord::create(*paths, "same", {}));
    REQUIRE(first->remove());
}

TEST_CASE("a stale record whose cgroup cannot be removed is kept for a later gc") {
    StateDir state;
    auto paths = prepare_runtime_paths();
    REQUIRE(paths);
    // A "cgroup" that rmdir refuses (not empty), then one that is gone.
    fs::path cgroup = state.path / "cg" / "sandbox-stuck";
    fs::create_directories(cgroup / "child");
    pid_t pid = ::fork();
    if (pid == 0) {
        auto dead = SandboxRecord::create(*paths, "stuck", {{"id", "stuck"}, {"cgroup", cgroup.string()}});
        ::_exit(dead ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WEXITSTATUS(status) == 0);
    auto report = collect_stale_sandboxes(*paths);
    CHECK(report.sandboxes == 0);
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].find("sandbox-stuck") != std::string::npos);
    CHECK(report.errors[0].find("kept for a later gc") != std::string::npos);
    CHECK(fs::exists(paths->sandboxes + "/stuck.json"));
    // Once the cgroup can go, the next gc removes it and the record.
    fs::remove(cgroup / "child");
    auto retry = collect_stale_sandboxes(*paths);
    CHECK(retry.errors.empty());
    CHECK(retry.sandboxes == 1);
    CHECK_FALSE(fs::exists(cgroup));
    CHECK_FALSE(fs::exists(paths->sandboxes + "/stuck.json"));
}
