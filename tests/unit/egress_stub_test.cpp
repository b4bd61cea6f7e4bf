#include <catch2/catch_test_macros.hpp>

#include "net/dns_message.hpp"
#include "net/dns_stub.hpp"
#include "net/first_bytes.hpp"
#include "net/http_guard.hpp"

using namespace nucleus::net;

namespace {

EgressPolicy allow(std::initializer_list<const char*> names) {
    EgressPolicy p;
    for (const char* n : names) p.domains.push_back(parse_domain_rule(n).value());
    return p;
}

dns::Message ask(const EgressPolicy& policy, SyntheticPool& pool, const std::string& name, uint16_t type,
                 StubAnswer* out = nullptr) {
    auto q = dns::build_query(99, name, type).value();
    auto a = answer_stub_query(q, policy, pool);
    if (out) *out = a;
    return dns::parse(a.response).value();
}

// A minimal TLS 1.2 ClientHello with an optional SNI, split into records of `record` bytes.
std::vector<uint8_t> client_hello(const std::string& sni, size_t record = 16384) {
    std::vector<uint8_t> body = {0x03, 0x03};
    body.insert(body.end(), 32, 0x11);  // random
    body.push_back(0);  // session id
    for (uint8_t b : {0, 2, 0x13, 0x01}) body.push_back(b);  // one cipher suite
    for (uint8_t b : {1, 0}) body.push_back(b);  // null compression
    std::vector<uint8_t> ext;
    if (!sni.empty()) {
        size_t n = sni.size();
        std::vector<uint8_t> e = {0,
                                  0,
                                  static_cast<uint8_t>((n + 5) >> 8),
                                  static_cast<uint8_t>(n + 5),
                                  static_cast<uint8_t>((n + 3) >> 8),
                                  static_cast<uint8_t>(n + 3),
                                  0,
                                  static_cast<uint8_t>(n >> 8),
                                  static_cast<uint8_t>(n)};
        e.insert(e.end(), sni.begin(), sni.end());
        ext = e;
    }
    body.push_back(static_cast<uint8_t>(ext.size() >> 8));
    body.push_back(static_cast<uint8_t>(ext.size()));
    body.insert(body.end(), ext.begin(), ext.end());
    std::vector<uint8_t> hs = {1, 0, static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
    hs.insert(hs.end(), body.begin(), body.end());
    std::vector<uint8_t> out;
    for (size_t at = 0; at < hs.size(); at += record) {
        size_t n = std::min(record, hs.size() - at);
        for (uint8_t b : {0x16, 0x03, 0x01, static_cast<int>(n >> 8), static_cast<int>(n & 0xff)}) out.push_back(b);
        out.insert(out.end(), hs.begin() + static_cast<ptrdiff_t>(at), hs.begin() + static_cast<ptrdiff_t>(at + n));
    }
    return out;
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("stub: allowed names get synthetic addresses, stable per name") {
    auto policy = allow({"pypi.org", "*.example.com:443"});
    SyntheticPool pool;
    StubAnswer info;
    auto a = ask(policy, pool, "PyPI.org", dns::A, &info);
    CHECK(info.allowed);
    CHECK(a.header.rcode == dns::NoError);
    REQUIRE(a.answers.size() == 1);
    CHECK(a.answers[0].data == std::vector<uint8_t>{198, 18, 0, 1});
    CHECK(a.answers[0].ttl == synthetic_ttl);
    CHECK(a.questions[0].name == "PyPI.org");  // echoed as asked (0x20 case randomisation survives)
    auto aaaa = ask(policy, pool, "pypi.org", dns::AAAA);
    REQUIRE(aaaa.answers.size() == 1);
    CHECK(aaaa.answers[0].data.size() == 16);
    auto second = ask(policy, pool, "files.example.com", dns::A);
    CHECK(second.answers[0].data == std::vector<uint8_t>{198, 18, 0, 2});
    CHECK(pool.name_of(*IpAddress::parse("198.18.0.1")) == "pypi.org");
    CHECK(pool.name_of(*IpAddress::parse("fd6e:7563:6c65:7573::2")) == "files.example.com");
    CHECK_FALSE(pool.name_of(*IpAddress::parse("198.18.0.3")));
    CHECK_FALSE(pool.name_of(*IpAddress::parse("198.18.0.0")));
    CHECK_FALSE(pool.name_of(*IpAddress::parse("203.0.113.1")));
}

TEST_CASE("stub: denied names get NXDOMAIN, other types of allowed names an empty answer") {
    auto policy = allow({"pypi.org"});
    SyntheticPool pool;
    for (uint16_t type : {dns::A, dns::AAAA, dns::TXT, dns::NULL_RR, dns::HTTPS, dns::ANY}) {
        StubAnswer info;
        auto m = ask(policy, pool, "c2VjcmV0.exfil.test", type, &info);
        CHECK(m.header.rcode == dns::NXDomain);
        CHECK(m.answers.empty());
        CHECK_FALSE(info.allowed);
    }
    for (uint16_t type : {dns::TXT, dns::NULL_RR, dns::HTTPS, dns::MX}) {
        auto m = ask(policy, pool, "pypi.org", type);
        CHECK(m.header.rcode == dns::NoError);
        CHECK(m.answers.empty());
    }
    // A name with bytes no hostname has is never allowed, even under a wildcard.
    auto wild = allow({"*.example.com"});
    std::vector<uint8_t> q = {0,   1,   1,   0,   0,   1,   0,   0, 0,   0,   0,   0, 3, 'a', 0, 'b', 7,
                              'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1,   0, 1};
    auto a = answer_stub_query(q, wild, pool);
    CHECK_FALSE(a.allowed);
    CHECK(dns::parse(a.response).value().header.rcode == dns::NXDomain);
}

TEST_CASE("stub: responses and garbage get no answer; bad queries FORMERR") {
    auto policy = allow({"pypi.org"});
    SyntheticPool pool;
    auto q = dns::build_query(5, "pypi.org", dns::A).value();
    auto response = answer_stub_query(q, policy, pool).response;
    CHECK(answer_stub_query(response, policy, pool).response.empty());  // never answers an answer
    CHECK(answer_stub_query(std::vector<uint8_t>{1, 2, 3}, policy, pool).response.empty());
    std::vector<uint8_t> two = q;
    two[5] = 2;  // qdcount 2, one question present
    auto formerr = dns::parse_header(answer_stub_query(two, policy, pool).response);
    REQUIRE(formerr);
    CHECK(formerr->rcode == dns::FormErr);
}

TEST_CASE("stub: the pool is bounded and reuses the oldest slot") {
    auto policy = allow({"*.example.com"});
    SyntheticPool pool(3);
    for (int i = 0; i < 3; ++i) pool.assign("n" + std::to_string(i) + ".example.com");
    auto fourth = pool.assign("n3.example.com");
    CHECK(fourth.v4 == *IpAddress::parse("198.18.0.1"));
    CHECK(pool.name_of(fourth.v4) == "n3.example.com");
    CHECK(pool.assign("n1.example.com").v4 == *IpAddress::parse("198.18.0.2"));
}

TEST_CASE("first bytes: TLS ClientHello SNI, also across records; HTTP; other protocols") {
    auto hello = client_hello("Allowed.TEST");
    auto seen = inspect_first_bytes(hello);
    CHECK(seen.kind == StreamKind::Tls);
    CHECK(seen.host == "Allowed.TEST");
    auto split = client_hello("allowed.test", 20);
    CHECK(inspect_first_bytes(split).host == "allowed.test");
    CHECK(inspect_first_bytes(std::span(split.data(), split.size() - 1)).kind == StreamKind::NeedMore);
    auto none = inspect_first_bytes(client_hello(""));
    CHECK(none.kind == StreamKind::Tls);
    CHECK_FALSE(none.host);
    for (size_t cut = 1; cut < hello.size(); ++cut)
        CHECK(inspect_first_bytes(std::span(hello.data(), cut)).kind == StreamKind::NeedMore);
    auto broken = hello;
    broken[6] = 0xff;  // a handshake length far beyond any record
    CHECK(inspect_first_bytes(broken).kind != StreamKind::Tls);
    CHECK(inspect_first_bytes(bytes("GET / HTTP/1.1\r\n")).kind == StreamKind::Http);
    CHECK(inspect_first_bytes(bytes("GE")).kind == StreamKind::NeedMore);
    CHECK(inspect_first_bytes(bytes("SSH-2.0-x\r\n")).kind == StreamKind::Other);
}

TEST_CASE("HTTP guard: every request's Host must be the allowed name") {
    HttpGuard ok("allowed.test", 80);
    CHECK(ok.accept(
        bytes("GET /a HTTP/1.1\r\nHost: Allowed.Test\r\n\r\nGET /b HTTP/1.1\r\nHost: allowed.test:80\r\n\r\n")));
    CHECK(ok.requests() == 2);
    HttpGuard pipelined("allowed.test", 80);
    CHECK_FALSE(pipelined.accept(
        bytes("GET /a HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /b HTTP/1.1\r\nHost: denied.test\r\n\r\n")));
    CHECK(pipelined.refusal() == "HTTP Host denied.test on a connection to allowed.test");
    HttpGuard later("allowed.test", 80);
    CHECK(later.accept(bytes("POST /a HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n\r\nhel")));
    CHECK(later.accept(bytes("lo")));
    CHECK_FALSE(later.accept(bytes("GET / HTTP/1.1\r\nHost: denied.test\r\n\r\n")));
    for (const char* bad : {"GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\nHost: allowed.test\r\n\r\n",
                            "GET http://denied.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
                            "CONNECT denied.test:443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
                            "GET / HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n", "NOT HTTP AT ALL\r\n\r\n"}) {
        INFO(bad);
        HttpGuard g("allowed.test", 80);
        CHECK_FALSE(g.accept(bytes(bad)));
    }
    HttpGuard absolute("allowed.test", 80);
    CHECK(absolute.accept(bytes("GET http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n")));
    HttpGuard upgrade("allowed.test", 80);
    CHECK(upgrade.accept(bytes(
        "GET /ws HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")));
    CHECK(upgrade.accept(bytes("\x81\x03GET / HTTP/1.1\r\nHost: denied.test\r\n\r\n")));  // not HTTP any more
}
