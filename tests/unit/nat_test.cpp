// The runtime's nftables table against a fake kernel: what is sent, in
// which transactions, and how errors read. The rules' effect on packets is
// tested for real in tests/integration/bridge_test.cpp.
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>

#include <catch2/catch_test_macros.hpp>

#include <libnftnl/set.h>

#include "net/nat.hpp"
#include "net/nat_expr.hpp"
#include "tests/unit/fake_netlink.hpp"

using namespace nucleus;
using namespace nucleus::net;
using nucleus::tests::Answer;
using nucleus::tests::FakeNetlink;
using nucleus::tests::SentMessage;

namespace {

uint16_t command(const SentMessage& m) { return m.type() & 0xff; }
bool is_nft(const SentMessage& m) { return (m.type() >> 8) == NFNL_SUBSYS_NFTABLES; }

BridgeConfig config(bool v6 = true) {
    auto c = make_bridge_config("nucleus0", "10.201.0.0/16", v6 ? "fd4e:7563:6c65::/64" : "none");
    REQUIRE(c);
    return *c;
}

struct ParsedElements {
    std::string set;
    std::vector<nft::Element> elements;
};

ParsedElements elements_of(const SentMessage& m) {
    ParsedElements out;
    nftnl_set* s = nftnl_set_alloc();
    REQUIRE(nftnl_set_elems_nlmsg_parse(m.header(), s) >= 0);
    out.set = nftnl_set_get_str(s, NFTNL_SET_NAME);
    nftnl_set_free(s);
    NetlinkReply r{m.bytes};
    out.elements = nft::parse_elements({r});
    return out;
}

std::vector<uint8_t> bytes(std::initializer_list<int> v) {
    std::vector<uint8_t> out;
    for (int b : v) out.push_back(static_cast<uint8_t>(b));
    return out;
}

}  // namespace

TEST_CASE("the table is created once, in one transaction between batch delimiters") {
    FakeNetlink kernel;
    kernel.script = [](const SentMessage& m) {
        Answer a;
        if (is_nft(m) && command(m) == NFT_MSG_GETTABLE) a.error = ENOENT;
        return a;
    };
    NetlinkSession session(kernel);
    REQUIRE(ensure_nat_table(session, config()).ok());
    REQUIRE(kernel.datagrams.size() == 3);  // the lookups (inet, bridge), then the transaction
    const auto& batch = kernel.datagrams[2];
    REQUIRE(batch.size() > 20);
    CHECK(batch.front().type() == NFNL_MSG_BATCH_BEGIN);
    CHECK(batch.back().type() == NFNL_MSG_BATCH_END);
    // nfnetlink_rcv_batch never acks the delimiters: asking would leave the
    // session waiting for answers that do not come.
    CHECK_FALSE((batch.front().flags() & NLM_F_ACK));
    CHECK_FALSE((batch.back().flags() & NLM_F_ACK));
    CHECK(command(batch[1]) == NFT_MSG_NEWTABLE);
    int chains = 0, sets = 0, rules = 0;
    for (const auto& m : batch) {
        if (!is_nft(m)) continue;
        chains += command(m) == NFT_MSG_NEWCHAIN;
        sets += command(m) == NFT_MSG_NEWSET;
        rules += command(m) == NFT_MSG_NEWRULE;
    }
    CHECK(chains == 6 + 2);
    CHECK(sets == 6 + 3);
    // inet: guard 1, snat 3, dnat 4+4, forward 1+2, input 2; bridge: forward 2, prerouting 5
    CHECK(rules == 17 + 7);

    // Present already: nothing more is sent.
    FakeNetlink present;
    NetlinkSession s2(present);
    REQUIRE(ensure_nat_table(s2, config()).ok());
    CHECK(present.all().size() == 2);
}

TEST_CASE("an IPv4-only bridge has no IPv6 maps or rules") {
    FakeNetlink kernel;
    kernel.script = [](const SentMessage& m) {
        Answer a;
        if (is_nft(m) && command(m) == NFT_MSG_GETTABLE) a.error = ENOENT;
        return a;
    };
    NetlinkSession session(kernel);
    REQUIRE(ensure_nat_table(session, config(false)).ok());
    int sets = 0, rules = 0;
    for (const auto& m : kernel.datagrams[2]) {
        sets += is_nft(m) && command(m) == NFT_MSG_NEWSET;
        rules += is_nft(m) && command(m) == NFT_MSG_NEWRULE;
    }
    CHECK(sets == 3 + 3);
    CHECK(rules == 10 + 7);  // inet: guard 1, snat 2, dnat 2+2, forward 1+1, input 1; bridge as before
}

TEST_CASE("a published port is one exclusive element: host address, proto, port to sandbox address, port") {
    FakeNetlink kernel;
    NetlinkSession session(kernel);
    auto c = config();
    auto port = parse_published_port("8080:80");
    REQUIRE(port);
    REQUIRE(add_published_ports(session, c, c.plan.address(5), {*port}).ok());
    auto sent = kernel.all();
    REQUIRE(sent.size() == 3);
    CHECK(command(sent[1]) == NFT_MSG_NEWSETELEM);
    CHECK((sent[1].flags() & NLM_F_EXCL));
    auto parsed = elements_of(sent[1]);
    CHECK(parsed.set == "publish4");
    REQUIRE(parsed.elements.size() == 1);
    CHECK(parsed.elements[0].key == bytes({127, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0}));
    CHECK(parsed.elements[0].data == bytes({10, 201, 0, 5, 0, 80, 0, 0}));

    auto any6 = parse_published_port("[::]:53:5353/udp");
    REQUIRE(any6);
    FakeNetlink k2;
    NetlinkSession s2(k2);
    REQUIRE(add_published_ports(s2, c, c.plan.address(5), {*any6}).ok());
    auto p6 = elements_of(k2.all()[1]);
    CHECK(p6.set == "publish6_any");
    CHECK(p6.elements[0].key == bytes({17, 0, 0, 0, 0, 53, 0, 0}));
    REQUIRE(p6.elements[0].data.size() == 20);
    CHECK(p6.elements[0].data[15] == 5);
    CHECK(p6.elements[0].data[17] == 0xe9);  // 5353 = 0x14e9
}

TEST_CASE("a port another sandbox publishes is refused by name") {
    FakeNetlink kernel;
    kernel.script = [](const SentMessage& m) {
        Answer a;
        if (is_nft(m) && command(m) == NFT_MSG_NEWSETELEM) a.error = EEXIST;
        return a;
    };
    NetlinkSession session(kernel);
    auto c = config();
    auto st = add_published_ports(session, c, c.plan.address(5), {parse_published_port("0.0.0.0:8080:80").value()});
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == EEXIST);
    CHECK(st.error().message == "publishing 0.0.0.0:8080:80/tcp: another sandbox publishes that port already");
}

TEST_CASE("an IPv6 port on an IPv4-only bridge is refused before anything is sent") {
    FakeNetlink kernel;
    NetlinkSession session(kernel);
    auto c = config(false);
    auto st = add_published_ports(session, c, c.plan.address(5), {parse_published_port("[2001:db8::1]:80:80").value()});
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message.find("has no IPv6 subnet") != std::string::npos);
    CHECK(kernel.all().empty());
}

TEST_CASE("a limited sandbox gets its chain, its allow sets and its egress map entries in one transaction") {
    FakeNetlink kernel;
    NetlinkSession session(kernel);
    auto c = config();
    EgressLimit limit;
    limit.limited = true;
    EgressCidr rule;
    rule.v4 = parse_ipv4_subnet("203.0.113.0/24").value();
    rule.ports = {443, 80};
    limit.rules.push_back(rule);
    REQUIRE(add_egress_limit(session, c, c.plan.address(5), limit).ok());
    REQUIRE(kernel.datagrams.size() == 1);
    const auto& batch = kernel.datagrams[0];
    int sets = 0, chains = 0, rules = 0;
    std::vector<std::string> maps;
    for (const auto& m : batch) {
        if (!is_nft(m)) continue;
        sets += command(m) == NFT_MSG_NEWSET;
        chains += command(m) == NFT_MSG_NEWCHAIN;
        rules += command(m) == NFT_MSG_NEWRULE;
        if (command(m) == NFT_MSG_NEWSETELEM) {
            auto parsed = elements_of(m);
            maps.push_back(parsed.set);
            REQUIRE(parsed.elements.size() == 1);
            if (parsed.set.rfind("egress", 0) != 0) continue;
            CHECK(parsed.elements[0].verdict == NFT_JUMP);
            CHECK(parsed.elements[0].chain == "sb-0ac90005");
        }
    }
    CHECK(sets == 2);
    CHECK(chains == 1);
    // established, IPv4 set, neighbour discovery, IPv6 set, 2 CIDR ports, drop
    CHECK(rules == 7);
    // Its bridge port is guarded too (net/nat_ports.hpp), in the same transaction.
    CHECK(maps == std::vector<std::string>{"egress4", "egress6", "limited", "bound4", "bound6"});

    FakeNetlink unlimited;
    NetlinkSession s2(unlimited);
    REQUIRE(add_egress_limit(s2, c, c.plan.address(5), EgressLimit{}).ok());
    CHECK(unlimited.all().empty());
}

TEST_CASE("an allowed destination is a timed element; TTLs are clamped and refreshed") {
    auto c = config();
    AllowedDestination d;
    d.v4 = *parse_ipv4("203.0.113.7");
    d.port = 443;
    {
        FakeNetlink kernel;
        NetlinkSession session(kernel);
        REQUIRE(allow_destination(session, c, c.plan.address(5), d, std::chrono::seconds(5)).ok());
        auto parsed = elements_of(kernel.all()[1]);
        CHECK(parsed.set == "a4-0ac90005");
        CHECK(parsed.elements[0].timeout_ms == 30000u);
        CHECK(parsed.elements[0].key == bytes({203, 0, 113, 7, 6, 0, 0, 0, 1, 0xbb, 0, 0}));
    }
    CHECK(clamp_allow_ttl(std::chrono::seconds(86400)) == std::chrono::seconds(3600));
    CHECK(clamp_allow_ttl(std::chrono::seconds(300)) == std::chrono::seconds(300));
    {
        // Already there: replaced in one transaction so the new TTL counts.
        FakeNetlink kernel;
        int attempts = 0;
        kernel.script = [&](const SentMessage& m) {
            Answer a;
            if (is_nft(m) && command(m) == NFT_MSG_NEWSETELEM && attempts++ == 0) a.error = EEXIST;
            return a;
        };
        NetlinkSession session(kernel);
        REQUIRE(allow_destination(session, c, c.plan.address(5), d, std::chrono::seconds(600)).ok());
        REQUIRE(kernel.datagrams.size() == 2);
        const auto& second = kernel.datagrams[1];
        REQUIRE(second.size() == 4);
        CHECK(command(second[1]) == NFT_MSG_DELSETELEM);
        CHECK(command(second[2]) == NFT_MSG_NEWSETELEM);
        CHECK(elements_of(second[2]).elements[0].timeout_ms == 600000u);
    }
}

TEST_CASE("removing a limit that is partly gone removes the rest one by one") {
    FakeNetlink kernel;
    int calls = 0;
    kernel.script = [&](const SentMessage& m) {
        Answer a;
        // The egress4 element is gone already: ENOENT, which aborts the
        // first (whole) transaction and is tolerated alone.
        if (is_nft(m) && command(m) == NFT_MSG_DELSETELEM && elements_of(m).set == "egress4") a.error = ENOENT;
        ++calls;
        return a;
    };
    NetlinkSession session(kernel);
    auto c = config();
    REQUIRE(remove_egress_limit(session, c, c.plan.address(5)).ok());
    // one whole transaction, then one per deletion (egress4, egress6, flush, chain, 2 sets, 3 port guards)
    CHECK(kernel.datagrams.size() == 10);
    CHECK(command(kernel.datagrams.back()[1]) == NFT_MSG_DELSETELEM);
}

TEST_CASE("published ports: -p/--publish parses Docker's forms and refuses the rest with a reason") {
    auto p = parse_published_port("8080:80");
    REQUIRE(p);
    CHECK(p->family == AF_INET);
    CHECK(*p->host_v4 == *parse_ipv4("127.0.0.1"));  // loopback unless an address is given
    CHECK(p->host_port == 8080);
    CHECK(p->container_port == 80);
    CHECK(p->protocol == Protocol::Tcp);

    auto any = parse_published_port("0.0.0.0:53:53/udp");
    REQUIRE(any);
    CHECK_FALSE(any->host_v4);
    CHECK(any->protocol == Protocol::Udp);
    CHECK(to_string(*any) == "0.0.0.0:53:53/udp");

    auto v6 = parse_published_port("[2001:db8::1]:443:8443/tcp");
    REQUIRE(v6);
    CHECK(v6->family == AF_INET6);
    CHECK(to_string(*v6) == "[2001:db8::1]:443:8443/tcp");

    auto loop6 = parse_published_port("[::1]:8080:80");
    REQUIRE_FALSE(loop6);
    CHECK(loop6.error().message.find("route_localnet") != std::string::npos);
    for (const char* bad : {"", "80", ":80", "80:", "0:80", "65536:80", "80:80/sctp", "1.2.3:80:80", "[::1:80:80",
                            "2001:db8::1:80:80", "a:80:80", "80:80:80:80", "8080:80/", "\xff\xfe:80:80"}) {
        INFO(bad);
        CHECK_FALSE(parse_published_port(bad));
    }
}
