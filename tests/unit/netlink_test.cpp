// Netlink sessions and rtnetlink messages against a fake kernel
// (tests/unit/fake_netlink.hpp): no root needed.
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>

#include <catch2/catch_test_macros.hpp>

#include "net/bridge.hpp"
#include "net/netlink_route.hpp"
#include "tests/unit/fake_netlink.hpp"

using namespace nucleus;
using namespace nucleus::net;
using nucleus::tests::Answer;
using nucleus::tests::FakeNetlink;
using nucleus::tests::SentMessage;

namespace {

std::vector<NetlinkMessage> three() {
    std::vector<NetlinkMessage> m;
    m.push_back(rt::set_up(2, "a"));
    m.push_back(rt::set_up(3, "b"));
    m.push_back(rt::set_up(4, "c"));
    return m;
}

int ifi_index(const SentMessage& m) {
    return static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(m.header()))->ifi_index;
}

// An RTM_NEWLINK answer for a link named `name` with index `index`.
std::vector<char> link_reply(int index, const std::string& name, const char* kind) {
    NetlinkMessage m(RTM_NEWLINK, 0, "reply", false);
    auto& ifi = m.family_header<ifinfomsg>();
    ifi.ifi_index = index;
    ifi.ifi_flags = IFF_UP;
    m.put_strz(IFLA_IFNAME, name);
    if (kind) {
        nlattr* info = m.begin_nest(IFLA_LINKINFO);
        m.put_strz(IFLA_INFO_KIND, kind);
        m.end_nest(info);
    }
    auto bytes = m.bytes();
    return std::vector<char>(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("a netlink session sends one datagram and checks every ack") {
    FakeNetlink kernel;
    NetlinkSession session(kernel);
    auto batch = three();
    auto done = session.execute(batch);
    REQUIRE(done.ok());
    REQUIRE(kernel.datagrams.size() == 1);
    REQUIRE(kernel.datagrams[0].size() == 3);
    // Sequence numbers are consecutive and every request asked for an ack.
    for (size_t i = 0; i < 3; ++i) {
        CHECK(kernel.datagrams[0][i].header()->nlmsg_seq == kernel.datagrams[0][0].header()->nlmsg_seq + i);
        CHECK(kernel.datagrams[0][i].flags() & NLM_F_ACK);
        CHECK(kernel.datagrams[0][i].flags() & NLM_F_REQUEST);
    }
}

TEST_CASE("a netlink error names the failed request and the kernel's reason") {
    FakeNetlink kernel;
    kernel.script = [](const SentMessage& m) {
        Answer a;
        if (ifi_index(m) == 3) {
            a.error = EPERM;
            a.ext_ack = "not allowed here";
        }
        return a;
    };
    NetlinkSession session(kernel);
    auto batch = three();
    auto done = session.execute(batch);
    REQUIRE_FALSE(done.ok());
    CHECK(done.error().code == EPERM);
    CHECK(done.error().message == "setting link b up (not allowed here)");
}

TEST_CASE("a request the kernel never answers is an error, not a wait") {
    FakeNetlink kernel;
    kernel.script = [](const SentMessage& m) {
        Answer a;
        a.ack = ifi_index(m) != 4;
        return a;
    };
    NetlinkSession session(kernel);
    auto batch = three();
    auto done = session.execute(batch);
    REQUIRE_FALSE(done.ok());
    CHECK(done.error().message.find("did not answer") != std::string::npos);
}

TEST_CASE("replies to an earlier exchange are ignored") {
    FakeNetlink kernel;
    NetlinkSession session(kernel);
    REQUIRE(session.execute(rt::set_up(2, "a")).ok());
    // A stray error for the first request's sequence number arrives late:
    // the next exchange must not take it for its own.
    auto stale = FakeNetlink::message(NLMSG_ERROR, "\xf3\xff\xff\xff", 4);  // -13
    reinterpret_cast<nlmsghdr*>(stale.data())->nlmsg_seq = kernel.datagrams[0][0].header()->nlmsg_seq;
    reinterpret_cast<nlmsghdr*>(stale.data())->nlmsg_pid = kernel.port_id();
    kernel.queue_raw(stale);
    CHECK(session.execute(rt::set_up(3, "b")).ok());
}

TEST_CASE("a dump collects every part until NLMSG_DONE") {
    FakeNetlink kernel;
    kernel.script = [](const SentMessage& m) {
        Answer a;
        REQUIRE(FakeNetlink::is_dump(m));
        a.data = {link_reply(1, "lo", nullptr), link_reply(2, "nucleus0", "bridge")};
        a.done = true;
        return a;
    };
    NetlinkSession session(kernel);
    auto replies = session.dump(rt::dump_addresses(AF_UNSPEC));
    REQUIRE(replies.ok());
    REQUIRE(replies->size() == 2);
    auto link = rt::parse_link((*replies)[1]);
    REQUIRE(link);
    CHECK(link->index == 2);
    CHECK(link->name == "nucleus0");
    CHECK(link->kind == "bridge");
    CHECK((link->flags & IFF_UP));
}

TEST_CASE("the veth request creates the peer inside the sandbox's namespace, down") {
    auto m = rt::new_veth({.host_name = "nv0ac90002", .peer_name = "eth0", .peer_netns_fd = 17, .master_index = 5});
    const nlmsghdr* nlh = m.header();
    CHECK(nlh->nlmsg_type == RTM_NEWLINK);
    CHECK((nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) == (NLM_F_CREATE | NLM_F_EXCL));
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    CHECK((ifi->ifi_flags & IFF_UP));  // the host end comes up at once
    auto attrs = nucleus::tests::attributes(nlh, sizeof(ifinfomsg));
    CHECK(nucleus::tests::attr_str(nucleus::tests::find(attrs, IFLA_IFNAME)) == "nv0ac90002");
    CHECK(mnl_attr_get_u32(nucleus::tests::find(attrs, IFLA_MASTER)) == 5);
    auto info = nucleus::tests::nested(nucleus::tests::find(attrs, IFLA_LINKINFO));
    CHECK(nucleus::tests::attr_str(nucleus::tests::find(info, IFLA_INFO_KIND)) == "veth");
    auto data = nucleus::tests::nested(nucleus::tests::find(info, IFLA_INFO_DATA));
    const nlattr* peer = nucleus::tests::find(data, VETH_INFO_PEER);
    REQUIRE(peer);
    const auto* peer_ifi = static_cast<const ifinfomsg*>(mnl_attr_get_payload(peer));
    // veth_open() answers ENOTCONN while the pair is being made: the peer
    // must be set up later, from inside.
    CHECK_FALSE((peer_ifi->ifi_flags & IFF_UP));
    auto peer_attrs = nucleus::tests::nested(peer, sizeof(ifinfomsg));
    CHECK(nucleus::tests::attr_str(nucleus::tests::find(peer_attrs, IFLA_IFNAME)) == "eth0");
    CHECK(mnl_attr_get_u32(nucleus::tests::find(peer_attrs, IFLA_NET_NS_FD)) == 17);
}

TEST_CASE("IPv6 addresses skip duplicate address detection; routes name their gateway and link") {
    Ipv6 v6 = *parse_ipv6("fd4e:7563:6c65::5");
    auto addr = rt::new_address(7, v6, 64);
    const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(addr.header()));
    CHECK(ifa->ifa_family == AF_INET6);
    CHECK(ifa->ifa_prefixlen == 64);
    CHECK(ifa->ifa_index == 7);
    auto attrs = nucleus::tests::attributes(addr.header(), sizeof(ifaddrmsg));
    CHECK((mnl_attr_get_u32(nucleus::tests::find(attrs, IFA_FLAGS)) & IFA_F_NODAD));
    CHECK(std::memcmp(mnl_attr_get_payload(nucleus::tests::find(attrs, IFA_LOCAL)), v6.bytes.data(), 16) == 0);

    auto route = rt::new_default_route(7, *parse_ipv4("10.201.0.1"));
    const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(route.header()));
    CHECK(rtm->rtm_dst_len == 0);
    CHECK(rtm->rtm_table == RT_TABLE_MAIN);
    auto rattrs = nucleus::tests::attributes(route.header(), sizeof(rtmsg));
    CHECK(mnl_attr_get_u32(nucleus::tests::find(rattrs, RTA_OIF)) == 7);
    CHECK(ntohl(mnl_attr_get_u32(nucleus::tests::find(rattrs, RTA_GATEWAY))) == 0x0ac90001);
}

TEST_CASE("a sandbox's link: veth from the host, then up, addresses and routes from inside") {
    auto config = make_bridge_config("nucleus0", "10.201.0.0/16", "fd4e:7563:6c65::/64");
    REQUIRE(config);
    SandboxAddress a = config->plan.address(5);
    FakeNetlink host, inner;
    inner.script = [](const SentMessage& m) {
        Answer ans;
        if (m.type() == RTM_GETLINK) ans.data = {link_reply(9, "eth0", "veth")};
        return ans;
    };
    NetlinkSession hs(host), is(inner);
    REQUIRE(configure_sandbox_link(hs, is, *config, 3, a, 42).ok());

    auto sent_host = host.all();
    REQUIRE(sent_host.size() == 1);
    CHECK(sent_host[0].type() == RTM_NEWLINK);
    auto attrs = nucleus::tests::attributes(sent_host[0].header(), sizeof(ifinfomsg));
    CHECK(nucleus::tests::attr_str(nucleus::tests::find(attrs, IFLA_IFNAME)) == "nv0ac90005");

    auto sent = inner.all();
    REQUIRE(sent.size() == 6);
    CHECK(sent[0].type() == RTM_GETLINK);
    CHECK(inner.datagrams.size() == 2);  // the lookup, then everything else in one datagram
    CHECK(sent[1].type() == RTM_NEWLINK);
    CHECK(ifi_index(sent[1]) == 9);
    CHECK(sent[2].type() == RTM_NEWADDR);
    CHECK(sent[3].type() == RTM_NEWADDR);
    CHECK(sent[4].type() == RTM_NEWROUTE);
    CHECK(sent[5].type() == RTM_NEWROUTE);
    const auto* v4 = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(sent[2].header()));
    CHECK(v4->ifa_index == 9);
    CHECK(v4->ifa_prefixlen == 16);
    auto v4attrs = nucleus::tests::attributes(sent[2].header(), sizeof(ifaddrmsg));
    CHECK(ntohl(mnl_attr_get_u32(nucleus::tests::find(v4attrs, IFA_LOCAL))) == 0x0ac90005);
}

TEST_CASE("a veth name already taken fails the attach with EEXIST") {
    auto config = make_bridge_config("", "", "none");
    REQUIRE(config);
    FakeNetlink host, inner;
    host.script = [](const SentMessage&) {
        Answer a;
        a.error = EEXIST;
        return a;
    };
    NetlinkSession hs(host), is(inner);
    auto st = configure_sandbox_link(hs, is, *config, 3, config->plan.address(5), 42);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == EEXIST);
    CHECK(inner.all().empty());  // nothing is configured inside
}

TEST_CASE("address replies parse IPv4 from IFA_LOCAL and IPv6 from IFA_ADDRESS") {
    auto m4 = rt::new_address(4, *parse_ipv4("10.201.0.1"), 16);
    NetlinkReply r4{std::vector<char>(m4.bytes().begin(), m4.bytes().end())};
    auto a4 = rt::parse_address(r4);
    REQUIRE(a4);
    CHECK(a4->index == 4);
    CHECK(a4->prefix == 16);
    CHECK(*a4->v4 == *parse_ipv4("10.201.0.1"));
    NetlinkReply junk{std::vector<char>(sizeof(nlmsghdr), 0)};
    CHECK_FALSE(rt::parse_address(junk));
    CHECK_FALSE(rt::parse_link(junk));
}
