#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "isolation/idmap.hpp"

using namespace nucleus::isolation;

TEST_CASE("maps are formatted for /proc/PID/uid_map and translate ids") {
    std::vector<IdMapping> keep{{0, 1000000000, 999}, {999, 999, 1}, {1000, 1000001000, 64536}};
    CHECK(format_map(keep) == "0 1000000000 999\n999 999 1\n1000 1000001000 64536\n");
    CHECK(map_to_host(keep, 0) == 1000000000);
    CHECK(map_to_host(keep, 999) == 999);
    CHECK(map_to_host(keep, 1000) == 1000001000);
    CHECK(map_to_host(keep, 70000) == -1);
}

TEST_CASE("id range leases are exclusive across processes and freed on exit") {
    auto dir = std::filesystem::temp_directory_path() / ("nucleus-ids-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    // Eight processes lease at once; each reports its slot through a pipe.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < 8; ++i) {
        pid_t pid = ::fork();
        if (pid == 0) {
            auto lease = lease_id_range(dir.string());
            uint32_t slot = lease ? lease->slot() : 0xffffffff;
            (void)!::write(fds[1], &slot, sizeof slot);
            ::usleep(200000);  // hold the lease while the others take theirs
            ::_exit(lease ? 0 : 1);
        }
        children.push_back(pid);
    }
    ::close(fds[1]);
    std::set<uint32_t> slots;
    uint32_t slot;
    while (::read(fds[0], &slot, sizeof slot) == sizeof slot) slots.insert(slot);
    ::close(fds[0]);
    for (pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        CHECK(WEXITSTATUS(status) == 0);
    }
    CHECK(slots.size() == 8);
    CHECK_FALSE(slots.count(0xffffffff));
    // All holders exited: a new lease may take any slot again, including theirs.
    auto again = lease_id_range(dir.string());
    REQUIRE(again);
    CHECK(again->base() == id_range_base + again->slot() * id_range_size);
    std::filesystem::remove_all(dir);
}

TEST_CASE("a given id range can be leased again only when nobody holds it") {
    auto dir = std::filesystem::temp_directory_path() / ("nucleus-ids-slot-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        auto held = lease_id_range(dir.string());
        REQUIRE(held);
        auto same = lease_id_slot(dir.string(), held->slot());
        REQUIRE_FALSE(same);
        CHECK(same.error().describe().find("another sandbox holds it") != std::string::npos);
        auto other = lease_id_slot(dir.string(), (held->slot() + 1) % id_range_slots);
        REQUIRE(other);
        CHECK(other->base() == id_range_base + other->slot() * id_range_size);
    }
    // Both released with their leases.
    auto again = lease_id_slot(dir.string(), 7);
    REQUIRE(again);
    CHECK(again->slot() == 7);
    CHECK_FALSE(lease_id_slot(dir.string(), id_range_slots));
    std::filesystem::remove_all(dir);
}

TEST_CASE("subordinate ranges are read from /etc/subuid-style files") {
    auto file = std::filesystem::temp_directory_path() / ("nucleus-subuid-" + std::to_string(::getpid()));
    std::ofstream(file) << "alice:100000:65536\n1001:200000:1000\nbroken line\n";
    auto alice = find_subordinate_range(file.string(), "alice", 1000);
    REQUIRE(alice);
    CHECK(alice->start == 100000);
    CHECK(alice->count == 65536);
    auto by_id = find_subordinate_range(file.string(), "bob", 1001);
    REQUIRE(by_id);
    CHECK(by_id->start == 200000);
    CHECK_FALSE(find_subordinate_range(file.string(), "carol", 1002));
    std::filesystem::remove(file);
}
