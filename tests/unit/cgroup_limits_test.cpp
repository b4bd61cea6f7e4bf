#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>

#include "io/unique_fd.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/cgroup/limits.hpp"

using namespace nucleus::isolation;
namespace fs = std::filesystem;

TEST_CASE("sizes use binary units as Docker does") {
    CHECK(parse_size("1024").value() == 1024);
    CHECK(parse_size("32M").value() == 32ull << 20);
    CHECK(parse_size("32mb").value() == 32ull << 20);
    CHECK(parse_size("1.5g").value() == 3ull << 29);
    CHECK(parse_size("2k").value() == 2048);
    CHECK_FALSE(parse_size("12x"));
    CHECK_FALSE(parse_size("-1m"));
    CHECK_FALSE(parse_size(""));
}

TEST_CASE("io.max entries name a device and known keys") {
    auto m = parse_io_max("8:16:rbps=1m,wiops=100");
    REQUIRE(m);
    CHECK(m->major == 8);
    CHECK(m->minor == 16);
    CHECK(m->rbps == 1u << 20);
    CHECK(m->wiops == 100u);
    CHECK_FALSE(m->wbps);
    CHECK_FALSE(parse_io_max("8:16:speed=1"));
    CHECK_FALSE(parse_io_max("/etc/passwd:rbps=1"));  // not a block device
    CHECK_FALSE(parse_io_max("nodevice"));
}

TEST_CASE("limits name their controllers and are written in the kernel's formats") {
    CgroupLimits l;
    CHECK(l.controllers().empty());
    l.memory_max = 64ull << 20;
    l.memory_high = 48ull << 20;
    l.cpu_quota_us = 50000;
    l.cpu_weight = 200;
    l.pids_max = 64;
    l.io_weight = 300;
    l.io_max.push_back({8, 0, 1048576, std::nullopt, std::nullopt, 10});
    CHECK(l.controllers() == std::vector<std::string>{"memory", "cpu", "pids", "io"});

    // A plain directory with the control files stands in for the cgroup.
    auto dir = fs::temp_directory_path() / ("nucleus-limits-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    for (const char* f :
         {"memory.max", "memory.high", "memory.oom.group", "cpu.max", "cpu.weight", "pids.max", "io.weight", "io.max"})
        std::ofstream(dir / f);
    auto fd = nucleus::io::open_fd(dir.string(), O_PATH | O_DIRECTORY);
    REQUIRE(fd);
    REQUIRE(apply_cgroup_limits(fd->get(), l));
    auto read = [&](const char* f) { return nucleus::io::read_file((dir / f).string()).value(); };
    CHECK(read("memory.max") == std::to_string(64ull << 20));
    CHECK(read("memory.high") == std::to_string(48ull << 20));
    CHECK(read("memory.oom.group") == "1");
    CHECK(read("cpu.max") == "50000 100000");
    CHECK(read("cpu.weight") == "200");
    CHECK(read("pids.max") == "64");
    CHECK(read("io.weight") == "default 300");
    CHECK(read("io.max") == "8:0 rbps=1048576 wiops=10");
    fs::remove_all(dir);
}

TEST_CASE("stats and event counters are parsed from cgroup files") {
    auto dir = fs::temp_directory_path() / ("nucleus-stats-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "memory.current") << "4096\n";
    std::ofstream(dir / "memory.peak") << "8192\n";
    std::ofstream(dir / "cpu.stat") << "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 30\n"
                                       "nr_throttled 12\nthrottled_usec 900\n";
    std::ofstream(dir / "pids.current") << "3\n";
    std::ofstream(dir / "io.stat") << "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"
                                      "8:16 rbytes=5 wbytes=5 rios=1 wios=1 dbytes=0 dios=0\n";
    std::ofstream(dir / "memory.events") << "low 0\nhigh 4\nmax 2\noom 1\noom_kill 1\noom_group_kill 1\n";
    std::ofstream(dir / "pids.events") << "max 7\n";
    auto s = read_cgroup_stats(dir.string());
    CHECK(s.memory_current == 4096u);
    CHECK(s.memory_peak == 8192u);
    CHECK(s.cpu_usage_usec == 1500u);
    CHECK(s.cpu_nr_throttled == 12u);
    CHECK(s.pids_current == 3u);
    CHECK_FALSE(s.pids_peak);
    CHECK(s.io_rbytes == 15u);
    CHECK(s.io_wios == 3u);
    auto c = read_cgroup_event_counts(dir.string());
    CHECK(c.memory_high == 4);
    CHECK(c.memory_oom_kill == 1);  // not confused with oom_group_kill
    CHECK(c.pids_max == 7);
    fs::remove_all(dir);
}
