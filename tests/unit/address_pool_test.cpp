// Subnets, the bridge's settings, and address leases (files only: no root).
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "net/address_pool.hpp"
#include "net/bridge_config.hpp"
#include "net/bridge_pasta.hpp"

using namespace nucleus;
using namespace nucleus::net;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/nucleus-pool-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

AddressPlan small_plan() {
    auto c = make_bridge_config("t0", "10.201.7.0/29", "fd4e:7563:6c65:7::/64");
    REQUIRE(c);
    return c->plan;
}

const auto nothing_in_use = [](const SandboxAddress&) { return false; };

}  // namespace

TEST_CASE("subnets parse strictly") {
    auto s = parse_ipv4_subnet("10.201.0.0/16");
    REQUIRE(s);
    CHECK(s->contains(*parse_ipv4("10.201.255.255")));
    CHECK_FALSE(s->contains(*parse_ipv4("10.202.0.0")));
    CHECK(s->last_index() == 65534);
    CHECK(to_string(s->at(2)) == "10.201.0.2");
    auto host_bits = parse_ipv4_subnet("10.201.0.1/16");
    REQUIRE_FALSE(host_bits);
    CHECK(host_bits.error().message.find("did you mean 10.201.0.0/16") != std::string::npos);
    for (const char* bad :
         {"10.201.0.0", "10.201.0.0/7", "10.201.0.0/31", "10.201/16", "010.201.0.0/16", "x/16", "10.201.0.0/16x"}) {
        INFO(bad);
        CHECK_FALSE(parse_ipv4_subnet(bad));
    }
    auto v6 = parse_ipv6_subnet("fd4e:7563:6c65::/64");
    REQUIRE(v6);
    CHECK(to_string(v6->at(0x0102)) == "fd4e:7563:6c65::102");
    CHECK_FALSE(parse_ipv6_subnet("fd4e:7563:6c65::1/64"));
    CHECK_FALSE(parse_ipv6_subnet("fd4e::/48"));  // the host index must fit beside the prefix
}

TEST_CASE("the bridge's settings: defaults, validation, the environment") {
    auto d = make_bridge_config("", "", "");
    REQUIRE(d);
    CHECK(d->name == "nucleus0");
    CHECK(to_string(d->plan.subnet4) == "10.201.0.0/16");
    CHECK(to_string(*d->plan.subnet6) == "fd4e:7563:6c65::/64");
    CHECK(d->table() == "nucleus-nucleus0");
    CHECK(to_string(d->plan.gateway().v4) == "10.201.0.1");
    CHECK(host_veth_name(d->plan.address(2)) == "nv0ac90002");
    CHECK_FALSE(make_bridge_config("sixteen-letters!", "", ""));
    CHECK_FALSE(make_bridge_config("a/b", "", ""));
    CHECK_FALSE(make_bridge_config("", "", "fd4e:7563:6c65::/120"));  // fewer IPv6 than IPv4 addresses
    CHECK(make_bridge_config("", "", "fd4e:7563:6c65::/112"));
    CHECK_FALSE(make_bridge_config("", "", "none")->plan.subnet6);

    ::setenv("NUCLEUS_BRIDGE_SUBNET", "10.0.0.0/33", 1);
    auto env = bridge_config_from_environment();
    ::unsetenv("NUCLEUS_BRIDGE_SUBNET");
    REQUIRE_FALSE(env);
    CHECK(env.error().message.find("NUCLEUS_BRIDGE_SUBNET") != std::string::npos);
}

TEST_CASE("leases are distinct, skip what is in use, and free their file on release") {
    TempDir dir;
    auto plan = small_plan();  // indices 2..6
    std::vector<AddressLease> held;
    std::set<uint32_t> seen;
    for (int i = 0; i < 5; ++i) {
        auto lease = lease_address(plan, dir.path, "sb" + std::to_string(i), nothing_in_use);
        REQUIRE(lease);
        CHECK(seen.insert(lease->address().index).second);
        CHECK(lease->address().index >= 2);
        CHECK(lease->address().index <= 6);
        CHECK_FALSE(lease->inherited());
        held.push_back(std::move(*lease));
    }
    auto full = lease_address(plan, dir.path, "one-too-many", nothing_in_use);
    REQUIRE_FALSE(full);
    CHECK(full.error().message.find("all 5 addresses of 10.201.7.0/29 are in use") != std::string::npos);

    std::string file = dir.path + "/" + to_string(held[0].address().v4);
    CHECK(std::filesystem::exists(file));
    held[0].release();
    CHECK_FALSE(std::filesystem::exists(file));

    // The one free address is in use by something the lock cannot see
    // (a veth of a sandbox that outlived its supervisor).
    auto busy = lease_address(plan, dir.path, "x", [](const SandboxAddress&) { return true; });
    CHECK_FALSE(busy);
}

TEST_CASE("a lease left by a dead holder is taken again and marked inherited") {
    TempDir dir;
    auto plan = small_plan();
    uint32_t index = 0;
    {
        auto lease = lease_address(plan, dir.path, "dead", nothing_in_use);
        REQUIRE(lease);
        index = lease->address().index;
        // Dropped without release(): as when its process is killed.
    }
    auto again = lease_this_address(plan, dir.path, index, "next");
    REQUIRE(again);
    CHECK(again->inherited());
    auto twice = lease_this_address(plan, dir.path, index, "other");
    REQUIRE_FALSE(twice);
    CHECK(twice.error().code == EWOULDBLOCK);
    CHECK(lease_index(plan, to_string(again->address().v4)) == index);
    CHECK_FALSE(lease_index(plan, "10.201.7.1"));  // the gateway
    CHECK_FALSE(lease_index(plan, "junk"));
}

TEST_CASE("concurrent processes never share an address") {
    TempDir dir;
    auto plan = small_plan();
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < 5; ++i) {
        pid_t pid = ::fork();
        if (pid == 0) {
            auto lease = lease_address(plan, dir.path, "child", nothing_in_use);
            uint32_t index = lease ? lease->address().index : 0;
            (void)!::write(fds[1], &index, sizeof index);
            ::usleep(300000);  // hold it while the others lease
            ::_exit(0);
        }
        children.push_back(pid);
    }
    ::close(fds[1]);
    std::set<uint32_t> got;
    uint32_t index;
    while (::read(fds[0], &index, sizeof index) == sizeof index) got.insert(index);
    ::close(fds[0]);
    for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
    CHECK(got.size() == 5);
    CHECK_FALSE(got.count(0));
}

TEST_CASE("without pasta on PATH, bridge mode for a non-root user says what to install") {
    const char* old = std::getenv("PATH");
    std::string saved = old ? old : "";
    ::setenv("PATH", "/nonexistent", 1);
    auto plan = plan_pasta({});
    ::setenv("PATH", saved.c_str(), 1);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().message.find("apt-get install passt") != std::string::npos);
}

TEST_CASE("pasta's arguments forward only the published ports and none of the host's loopback") {
    PastaPlan plan{"/usr/bin/pasta", {}};
    auto none = pasta_arguments(plan, 42);
    auto has = [](const std::vector<std::string>& v, std::vector<std::string> seq) {
        return std::search(v.begin(), v.end(), seq.begin(), seq.end()) != v.end();
    };
    CHECK(has(none, {"-t", "none"}));
    CHECK(has(none, {"-u", "none"}));
    CHECK(has(none, {"-T", "none"}));
    CHECK(has(none, {"-U", "none"}));
    CHECK(has(none, {"--no-map-gw"}));
    CHECK(none.back() == "42");
    plan.publish = {parse_published_port("8080:80").value(), parse_published_port("0.0.0.0:53:5353/udp").value()};
    auto some = pasta_arguments(plan, 42);
    CHECK(has(some, {"-t", "127.0.0.1/8080:80"}));
    CHECK(has(some, {"-u", "53:5353"}));
    CHECK_FALSE(has(some, {"-t", "none"}));
}
