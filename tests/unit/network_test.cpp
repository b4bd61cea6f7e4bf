#include <catch2/catch_test_macros.hpp>

#include "net/network.hpp"

using namespace nucleus::net;

TEST_CASE("network modes parse and decide the namespace") {
    CHECK(parse_network_mode("none") == NetworkMode::None);
    CHECK(parse_network_mode("host") == NetworkMode::Host);
    CHECK(parse_network_mode("bridge") == NetworkMode::Bridge);
    CHECK_FALSE(parse_network_mode("egress-or-not"));
    CHECK(to_string(NetworkMode::Bridge) == "bridge");
    CHECK(needs_network_namespace(NetworkMode::Bridge));
    CHECK(needs_network_namespace(NetworkMode::None));
    CHECK_FALSE(needs_network_namespace(NetworkMode::Host));
}

TEST_CASE("hostnames follow RFC 1123 and sethostname's length") {
    CHECK(is_valid_hostname("sandbox-1"));
    CHECK(is_valid_hostname("a.b.c"));
    CHECK_FALSE(is_valid_hostname(""));
    CHECK_FALSE(is_valid_hostname("-x"));
    CHECK_FALSE(is_valid_hostname("x-"));
    CHECK_FALSE(is_valid_hostname("a..b"));
    CHECK_FALSE(is_valid_hostname("has space"));
    CHECK_FALSE(is_valid_hostname(std::string(65, 'a')));
    CHECK(hosts_file("box").find("127.0.1.1\tbox\n") != std::string::npos);
}
