#include <catch2/catch_test_macros.hpp>

#include "net/dns_message.hpp"

using namespace nucleus::net;

namespace {

std::vector<uint8_t> header(uint16_t qd, uint16_t an = 0) {
    return {0x12, 0x34, 0x01, 0x00, 0, static_cast<uint8_t>(qd), 0, static_cast<uint8_t>(an), 0, 0, 0, 0};
}

}  // namespace

TEST_CASE("dns: a query round-trips through the builder and parser") {
    auto q = dns::build_query(0xbeef, "Files.Example.com.", dns::AAAA);
    REQUIRE(q);
    auto m = dns::parse(*q);
    REQUIRE(m);
    CHECK(m->header.id == 0xbeef);
    CHECK(m->header.recursion_desired);
    REQUIRE(m->questions.size() == 1);
    CHECK(m->questions[0].name == "Files.Example.com");
    CHECK(m->questions[0].type == dns::AAAA);
    CHECK(m->questions[0].klass == dns::IN);
    CHECK_FALSE(dns::build_query(1, "a..b", dns::A));
    CHECK_FALSE(dns::build_query(1, std::string(64, 'a') + ".b", dns::A));
}

TEST_CASE("dns: answers carry A/AAAA records under a pointer to the question") {
    auto q = dns::build_query(7, "pypi.org", dns::A).value();
    auto parsed = dns::parse(q, true).value();
    auto r = dns::build_answer(q, parsed, dns::NoError, {{198, 18, 0, 1}}, 5);
    auto m = dns::parse(r);
    REQUIRE(m);
    CHECK(m->header.response);
    CHECK(m->header.id == 7);
    CHECK(m->header.rcode == dns::NoError);
    REQUIRE(m->answers.size() == 1);
    CHECK(m->answers[0].name == "pypi.org");
    CHECK(m->answers[0].ttl == 5);
    CHECK(m->answers[0].data == std::vector<uint8_t>{198, 18, 0, 1});
    auto nx = dns::parse(dns::build_answer(q, parsed, dns::NXDomain, {}, 0));
    REQUIRE(nx);
    CHECK(nx->header.rcode == dns::NXDomain);
    CHECK(nx->answers.empty());
}

TEST_CASE("dns: labels outside hostname bytes are escaped, never merged") {
    auto wire = header(1);
    for (int b : std::initializer_list<int>{3, 'a', '.', 'b', 1, 0x00, 0}) wire.push_back(static_cast<uint8_t>(b));
    for (int b : std::initializer_list<int>{0, 16, 0, 1}) wire.push_back(static_cast<uint8_t>(b));
    auto m = dns::parse(wire);
    REQUIRE(m);
    CHECK(m->questions[0].name == "a\\.b.\\000");
    CHECK(m->questions[0].type == dns::TXT);
}

TEST_CASE("dns: compression pointers must point backwards; loops and overruns are refused") {
    // A pointer to itself.
    auto self = header(1);
    for (int b : std::initializer_list<int>{0xc0, 12, 0, 1, 0, 1}) self.push_back(static_cast<uint8_t>(b));
    CHECK_FALSE(dns::parse(self));
    // Forward pointer.
    auto forward = header(1);
    for (int b : std::initializer_list<int>{0xc0, 14, 1, 'a', 0, 0, 1, 0, 1})
        forward.push_back(static_cast<uint8_t>(b));
    CHECK_FALSE(dns::parse(forward));
    // A valid backwards pointer in the answer.
    auto ok = header(1, 1);
    for (int b :
         std::initializer_list<int>{1, 'a', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 192, 0, 2, 1})
        ok.push_back(static_cast<uint8_t>(b));
    auto m = dns::parse(ok);
    REQUIRE(m);
    CHECK(m->answers[0].name == "a");
    // Truncated everywhere.
    for (size_t cut = 0; cut < ok.size(); ++cut) {
        INFO(cut);
        CHECK_FALSE(dns::parse(std::span<const uint8_t>(ok.data(), cut)));
    }
    // A name longer than 255 wire bytes.
    auto longname = header(1);
    for (int i = 0; i < 5; ++i) {
        longname.push_back(63);
        for (int j = 0; j < 63; ++j) longname.push_back('x');
    }
    longname.push_back(0);
    for (int b : std::initializer_list<int>{0, 1, 0, 1}) longname.push_back(static_cast<uint8_t>(b));
    CHECK_FALSE(dns::parse(longname));
}

TEST_CASE("dns: CNAME targets and SOA minimum are decoded") {
    auto w = header(0, 2);
    w[5] = 0;
    // www.a CNAME b.a ; then a SOA in authority is not needed: check CNAME.
    for (int b :
         std::initializer_list<int>{3, 'w', 'w', 'w', 1, 'a', 0, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 'b', 0xc0, 16})
        w.push_back(static_cast<uint8_t>(b));
    for (int b : std::initializer_list<int>{0xc0, 29, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 203, 0, 113, 5})
        w.push_back(static_cast<uint8_t>(b));
    auto m = dns::parse(w);
    REQUIRE(m);
    REQUIRE(m->answers.size() == 2);
    CHECK(m->answers[0].target == "b.a");
    CHECK(m->answers[1].name == "b.a");
}
