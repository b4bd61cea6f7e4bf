#include <catch2/catch_test_macros.hpp>

#include "net/egress_policy.hpp"

using namespace nucleus::net;

namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

EgressPolicy policy_of(std::initializer_list<const char*> domains, std::initializer_list<const char*> cidrs = {}) {
    EgressPolicy p;
    for (const char* d : domains) p.domains.push_back(parse_domain_rule(d).value());
    for (const char* c : cidrs) p.cidrs.push_back(parse_cidr_rule(c).value());
    return p;
}

}  // namespace

TEST_CASE("addresses: mapped IPv6 is the IPv4 address it reaches; only dotted quads are IPv4") {
    CHECK(ip("::ffff:192.0.2.1") == ip("192.0.2.1"));
    CHECK(ip("::ffff:192.0.2.1").family == AF_INET);
    CHECK(ip("2001:db8::1").family == AF_INET6);
    CHECK_FALSE(IpAddress::parse("3221225985"));
    CHECK_FALSE(IpAddress::parse("0xc0.0.2.1"));
    CHECK_FALSE(IpAddress::parse("192.0.2"));
    CHECK_FALSE(IpAddress::parse(""));
    CHECK(ip("2001:db8::1").to_string() == "2001:db8::1");
}

TEST_CASE("CIDR prefixes parse, clear host bits and match") {
    auto c = *Cidr::parse("203.0.113.77/24");
    CHECK(c.to_string() == "203.0.113.0/24");
    CHECK(c.contains(ip("203.0.113.1")));
    CHECK_FALSE(c.contains(ip("203.0.114.1")));
    CHECK_FALSE(c.contains(ip("2001:db8::1")));
    auto v6 = *Cidr::parse("2001:db8::/33");
    CHECK(v6.contains(ip("2001:db8:7fff::1")));
    CHECK_FALSE(v6.contains(ip("2001:db8:8000::1")));
    CHECK(Cidr::parse("::ffff:198.51.100.0/120")->to_string() == "198.51.100.0/24");
    CHECK(Cidr::parse("192.0.2.1")->prefix == 32);
    CHECK_FALSE(Cidr::parse("192.0.2.0/33"));
    CHECK_FALSE(Cidr::parse("192.0.2.0/"));
    CHECK_FALSE(Cidr::parse("192.0.2.0/-1"));
    CHECK(Cidr::parse("0.0.0.0/0")->covers(*Cidr::parse("192.0.2.0/24")));
    CHECK_FALSE(Cidr::parse("192.0.2.0/24")->covers(*Cidr::parse("0.0.0.0/0")));
}

TEST_CASE("domain rules: exact, wildcard, ports, case and trailing dots") {
    auto exact = parse_domain_rule("Example.COM.").value();
    CHECK(exact.name == "example.com");
    CHECK_FALSE(exact.wildcard);
    CHECK(exact.ports.to_string() == "80,443");
    auto wild = parse_domain_rule("*.example.com:8443,443,8443").value();
    CHECK(wild.wildcard);
    CHECK(wild.ports.to_string() == "443,8443");
    CHECK(parse_domain_rule("pypi.org:*").value().ports.any);
    for (const char* bad : {"", "*", "*.", "a..b", "exa mple.com", "example.com:0", "example.com:65536",
                            "example.com:", "example.com:80,", "*.*.com", "192.0.2.1", "a\\.b"}) {
        INFO(bad);
        CHECK_FALSE(parse_domain_rule(bad));
    }
    CHECK_FALSE(parse_domain_rule(std::string(64, 'a') + ".com"));
}

TEST_CASE("CIDR rules: IPv4 and IPv6 with and without ports") {
    CHECK(parse_cidr_rule("198.51.100.0/24:443").value().to_string() == "198.51.100.0/24:443");
    CHECK(parse_cidr_rule("198.51.100.7").value().to_string() == "198.51.100.7/32:80,443");
    CHECK(parse_cidr_rule("[2001:db8::/32]:22,443").value().to_string() == "[2001:db8::/32]:22,443");
    CHECK(parse_cidr_rule("2001:db8::/32:8080").value().to_string() == "[2001:db8::/32]:8080");
    CHECK(parse_cidr_rule("2001:db8::1").value().to_string() == "[2001:db8::1/128]:80,443");
    for (const char* bad : {"", "example.com", "[2001:db8::/32", "[2001:db8::/32]443", "198.51.100.0/24:x", "300.1.1.1",
                            "198.51.100.0/24:443:80"}) {
        INFO(bad);
        CHECK_FALSE(parse_cidr_rule(bad));
    }
}

TEST_CASE("names match their rules and ports") {
    auto p = policy_of({"pypi.org", "*.example.com:443"});
    CHECK(p.allows_name("pypi.org"));
    CHECK(p.allows_name("a.b.example.com"));
    CHECK_FALSE(p.allows_name("example.com"));
    CHECK_FALSE(p.allows_name("badexample.com"));
    CHECK_FALSE(p.allows_name("pypi.org.evil.test"));
    CHECK(p.check_name("pypi.org", 80).allowed);
    CHECK(p.check_name("files.example.com", 443).allowed);
    auto port = p.check_name("files.example.com", 80);
    CHECK_FALSE(port.allowed);
    CHECK(port.reason == "port not allowed: files.example.com:80");
    CHECK(p.check_name("evil.test", 443).reason == "no rule allows evil.test:443");
}

TEST_CASE("raw addresses pass only under CIDR rules; metadata and loopback only under rules inside them") {
    auto p = policy_of({"pypi.org"}, {"0.0.0.0/0:443", "::/0:443", "198.51.100.0/24:22"});
    CHECK(p.check_address(ip("203.0.113.9"), 443).allowed);
    CHECK_FALSE(p.check_address(ip("203.0.113.9"), 80).allowed);
    CHECK(p.check_address(ip("198.51.100.9"), 22).allowed);
    for (const char* special : {"169.254.169.254", "127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "fe80::1",
                                "fd00:ec2::254", "::1", "::", "ff02::1", "::ffff:169.254.169.254", "100.100.100.200"}) {
        INFO(special);
        CHECK_FALSE(p.check_address(ip(special), 443).allowed);
        CHECK_FALSE(p.check_resolved(ip(special)).allowed);
    }
    CHECK(p.check_resolved(ip("203.0.113.9")).allowed);
    auto meta = policy_of({}, {"169.254.169.254/32:80"});
    CHECK(meta.check_address(ip("169.254.169.254"), 80).allowed);
    CHECK_FALSE(meta.check_address(ip("169.254.169.253"), 80).allowed);
    CHECK(meta.check_resolved(ip("169.254.169.254")).allowed);
    CHECK(EgressPolicy{}.check_address(ip("169.254.169.254"), 80).reason ==
          "link-local (cloud metadata) address not allowed: 169.254.169.254:80");
}

TEST_CASE("rule files: names and prefixes, comments, errors name the line") {
    EgressPolicy p;
    REQUIRE(
        parse_rule_file("# index\npypi.org\n  *.pythonhosted.org:443  # files\n\r\n203.0.113.0/24:22\n"
                        "[2001:db8::/32]:443\n",
                        "allow.txt", p));
    CHECK(p.domains.size() == 2);
    CHECK(p.cidrs.size() == 2);
    EgressPolicy bad;
    auto st = parse_rule_file("pypi.org\nnot a name\n", "allow.txt", bad);
    REQUIRE_FALSE(st);
    CHECK(st.error().message.starts_with("allow.txt:2: "));
    CHECK(p.describe().front() == "--allow-domain pypi.org:80,443");
}
