#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include "isolation/cgroup.hpp"

using namespace nucleus::isolation;

TEST_CASE("the cgroup2 mount is found in mountinfo, hybrid or pure") {
    const std::string hybrid =
        "25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
        "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw\n"
        "27 25 0:24 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n";
    CHECK(find_cgroup2_mount(hybrid) == "/sys/fs/cgroup/unified");
    const std::string pure = "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    CHECK(find_cgroup2_mount(pure) == "/sys/fs/cgroup");
    // A bind of a sub-tree is not the hierarchy's root.
    const std::string bound = "31 1 0:26 /user.slice /mnt/cg rw - cgroup2 cgroup2 rw\n";
    CHECK_FALSE(find_cgroup2_mount(bound));
    CHECK_FALSE(find_cgroup2_mount(""));
    // cgroup2 mounted over the hybrid tmpfs hides .../unified: the last one is reachable.
    CHECK(find_cgroup2_mount(hybrid + "40 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n") == "/sys/fs/cgroup");
}

TEST_CASE("a sandbox cgroup is created, reports emptiness and is removed") {
    if (::geteuid() != 0) SKIP("needs root to create cgroups");
    auto mount = find_cgroup2_mount();
    if (!mount) SKIP("no cgroup2 mount: " + mount.error().describe());
    auto cg = SandboxCgroup::create(*mount, "nucleus-unit-" + std::to_string(::getpid()));
    REQUIRE(cg);
    CHECK(cg->dirfd() >= 0);
    auto populated = cg->populated();
    REQUIRE(populated);
    CHECK_FALSE(*populated);
    CHECK(cg->kill());
    REQUIRE(cg->remove());
    CHECK(::access(cg->path().c_str(), F_OK) != 0);
}

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <asio/co_spawn.hpp>
#include <optional>

#include "core/supervise.hpp"
#include "io/reactor.hpp"

namespace {

asio::awaitable<void> freeze_then_thaw(SandboxCgroup& cg, std::optional<bool>* frozen_seen,
                                       std::optional<bool>* thawed_seen) {
    auto st = co_await nucleus::core::set_frozen(cg, true);
    if (st) *frozen_seen = cg.frozen().value();
    st = co_await nucleus::core::set_frozen(cg, false);
    if (st) *thawed_seen = cg.frozen().value();
}

}  // namespace

TEST_CASE("freeze and thaw complete through cgroup.events") {
    if (::geteuid() != 0) SKIP("needs root to create cgroups");
    auto mount = find_cgroup2_mount();
    if (!mount) SKIP("no cgroup2 mount: " + mount.error().describe());
    auto cg = SandboxCgroup::create(*mount, "nucleus-freeze-" + std::to_string(::getpid()));
    REQUIRE(cg);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::pause();
        ::_exit(0);
    }
    REQUIRE(nucleus::io::write_file(cg->path() + "/cgroup.procs", std::to_string(pid)));
    std::optional<bool> frozen, thawed;
    auto reactor = nucleus::io::make_reactor();
    asio::co_spawn(reactor, freeze_then_thaw(*cg, &frozen, &thawed), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    reactor.run();
    CHECK(frozen == true);
    CHECK(thawed == false);
    CHECK(cg->kill());
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    for (int i = 0; i < 100 && !cg->remove(); ++i) ::usleep(10000);
    CHECK(cg->removed());
}
