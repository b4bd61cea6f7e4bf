// copy-in-out end to end: what the sync back may and may not do, its bound,
// its failures, and the signals that used to lose it.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include "harness.hpp"

using namespace nit;

namespace {

std::vector<std::string> copy_in_out(const fs::path& ws, std::vector<std::string> more = {}) {
    std::vector<std::string> flags = {"--workspace", ws.string(), "--workspace-mode", "copy-in-out"};
    flags.insert(flags.end(), more.begin(), more.end());
    return flags;
}

// The state directory's entries for sandboxes: copies must not land there.
size_t private_dirs() {
    size_t n = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(default_records(), ec)) n += entry.is_directory(ec);
    return n;
}

}  // namespace

TEST_CASE("copy-in-out: a directory the sandbox replaced keeps what the host put in it, and the run fails with 122",
          "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws-unseen");
    fs::path ws = dir / "ws";
    fs::create_directories(ws / "d");
    fs::permissions(ws / "d", fs::perms::all);  // so that the sandbox can play the host's part through /host
    write_file(ws / "d" / "seen.txt", "given\n");
    REQUIRE(::mkfifo((ws / "d" / "fifo").c_str(), 0644) == 0);
    // The host writes into d/ while the sandbox replaces d/ by a symlink.
    auto r = run_nucleus(copy_in_out(ws, {"-v", dir.str() + ":/host"}),
                         {"sh", "-c",
                          "echo during > /host/ws/d/written-during-run; rm -rf /workspace/d; "
                          "ln -s /x /workspace/d; echo changed > /workspace/other.txt"});
    INFO(r.describe());
    CHECK(r.exit_code == 122);
    CHECK(contains(r.err, "the workspace could not be synced back (d: the sandbox replaced this directory"));
    CHECK(contains(r.err, "the workload itself exited 0"));
    // Nothing the host made is gone; the rest of the sync happened.
    CHECK(fs::is_directory(fs::symlink_status(ws / "d")));
    CHECK(fs::is_fifo(fs::symlink_status(ws / "d" / "fifo")));
    CHECK(read_file(ws / "d" / "written-during-run") == "during\n");
    CHECK(read_file(ws / "other.txt") == "changed\n");
    // The sandbox's copy is kept where the message says.
    auto at = r.err.find("the sandbox's copy is kept in ");
    REQUIRE(at != std::string::npos);
    std::string kept = r.err.substr(at + 30, r.err.find_first_of(";\n", at + 30) - at - 30);
    CHECK(fs::is_symlink(fs::path(kept) / "d"));
    CHECK(read_file(fs::path(kept) / "other.txt") == "changed\n");
    fs::remove_all(fs::path(kept).parent_path());
}

TEST_CASE("copy-in-out: a tree deeper than PATH_MAX on the host syncs back", "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws-deep");
    fs::path ws = dir / "ws";
    fs::create_directories(ws);
    std::string level(25, 'n');
    auto r = run_nucleus(copy_in_out(ws), {"sh", "-c",
                                           "cd /workspace && i=0; while [ $i -lt 155 ]; do mkdir " + level + " && cd " +
                                               level + " || exit 9; i=$((i+1)); done; echo bottom > f.txt"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    int fd = ::open(ws.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < 155 && fd >= 0; ++i) {
        int next = ::openat(fd, level.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ::close(fd);
        fd = next;
    }
    REQUIRE(fd >= 0);
    struct stat st {};
    CHECK(::fstatat(fd, "f.txt", &st, 0) == 0);
    CHECK(st.st_size == 7);
    ::close(fd);
    std::string cleanup = "rm -rf " + (ws / level).string();
    CHECK(std::system(cleanup.c_str()) == 0);
}

TEST_CASE("copy-in-out: the private copy is bounded by --workspace-size and never touches the state disk",
          "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws-size");
    fs::path ws = dir / "ws";
    fs::create_directories(ws);
    write_file(ws / "small.txt", "kept\n");
    size_t before = private_dirs();
    auto p = Process::start(nucleus_argv(copy_in_out(ws, {"--workspace-size", "8m"}),
                                         {"sh", "-c",
                                          "dd if=/dev/zero of=/workspace/big bs=1M count=64 2>&1; "
                                          "echo dd=$?; echo ready; sleep 1"}));
    CHECK(p.wait_for_output("ready", 30s));
    CHECK(private_dirs() == before);  // the copy lives on the detached tmpfs
    auto r = p.wait();
    INFO(r.describe());
    CHECK(contains(r.out, "No space left on device"));
    CHECK_FALSE(contains(r.out, "dd=0"));
    CHECK(r.exit_code == 0);
    // What fitted is synced back, as for any run that ended normally.
    CHECK(fs::file_size(ws / "big") <= 8u << 20);
    CHECK(read_file(ws / "small.txt") == "kept\n");

    auto too_big = run_nucleus(copy_in_out(ws, {"--workspace-size", "1m"}), {"/bin/true"});
    INFO(too_big.describe());
    CHECK(too_big.exit_code == 125);
    CHECK(contains(too_big.err, "holds more than --workspace-size (1 MiB)"));
}

TEST_CASE("signals that used to kill nucleus run are forwarded, and the workspace is synced",
          "[supervision][workspace]") {
    require_root();
    for (int sig : {SIGQUIT, SIGUSR1, SIGALRM}) {
        DYNAMIC_SECTION("signal " << sig) {
            TempDir dir("ws-signal");
            fs::path ws = dir / "ws";
            fs::create_directories(ws);
            // PID 1 is sh with no trap for it: the sandbox ends as if killed by it.
            auto p = Process::start(nucleus_argv(copy_in_out(ws), {"sh", "-c",
                                                                   "echo work > /workspace/result.txt; "
                                                                   "echo ready; while :; do sleep 0.1; done"}));
            REQUIRE(p.wait_for_output("ready", 30s));
            p.signal(sig);
            auto r = p.wait();
            INFO(r.describe());
            CHECK(r.signal == 0);  // nucleus itself survived
            CHECK(r.exit_code == 128 + sig);
            CHECK(read_file(ws / "result.txt") == "work\n");
        }
    }
    SECTION("a PID 1 that handles it decides the exit code") {
        TempDir dir("ws-trap");
        fs::path ws = dir / "ws";
        fs::create_directories(ws);
        auto p = Process::start(nucleus_argv(copy_in_out(ws), {"sh", "-c",
                                                               "trap 'echo bye > /workspace/t; exit 3' USR1; "
                                                               "echo ready; while :; do sleep 0.1; done"}));
        REQUIRE(p.wait_for_output("ready", 30s));
        p.signal(SIGUSR1);
        auto r = p.wait();
        INFO(r.describe());
        CHECK(r.exit_code == 3);
        CHECK(read_file(ws / "t") == "bye\n");
    }
}
