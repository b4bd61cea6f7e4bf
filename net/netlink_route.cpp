#include "net/netlink_route.hpp"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace nucleus::net::rt {

namespace {

ifinfomsg& link_header(NetlinkMessage& m, int family = AF_UNSPEC) {
    auto& ifi = m.family_header<ifinfomsg>();
    ifi.ifi_family = static_cast<unsigned char>(family);
    return ifi;
}

void put_up(ifinfomsg& ifi) {
    ifi.ifi_flags |= IFF_UP;
    ifi.ifi_change |= IFF_UP;
}

void put_kind(NetlinkMessage& m, const char* kind) {
    nlattr* info = m.begin_nest(IFLA_LINKINFO);
    m.put_strz(IFLA_INFO_KIND, kind);
    m.end_nest(info);
}

NetlinkMessage address_message(int index, int family, int prefix, const void* bytes, size_t len,
                               const std::string& text) {
    NetlinkMessage m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, "adding address " + text + "/" + std::to_string(prefix));
    auto& ifa = m.family_header<ifaddrmsg>();
    ifa.ifa_family = static_cast<unsigned char>(family);
    ifa.ifa_prefixlen = static_cast<unsigned char>(prefix);
    ifa.ifa_index = static_cast<unsigned>(index);
    ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    if (family == AF_INET6) {
        ifa.ifa_flags = IFA_F_NODAD;
        m.put_u32(IFA_FLAGS, IFA_F_NODAD);
    }
    m.put(IFA_LOCAL, bytes, len);
    m.put(IFA_ADDRESS, bytes, len);
    return m;
}

NetlinkMessage route_message(int index, int family, const void* gateway, size_t len, const std::string& text) {
    NetlinkMessage m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, "adding the default route via " + text);
    auto& rtm = m.family_header<rtmsg>();
    rtm.rtm_family = static_cast<unsigned char>(family);
    rtm.rtm_table = RT_TABLE_MAIN;
    rtm.rtm_protocol = RTPROT_STATIC;
    rtm.rtm_scope = RT_SCOPE_UNIVERSE;
    rtm.rtm_type = RTN_UNICAST;
    rtm.rtm_dst_len = 0;
    m.put(RTA_GATEWAY, gateway, len);
    m.put_u32(RTA_OIF, static_cast<uint32_t>(index));
    return m;
}

}  // namespace

NetlinkMessage get_link(const std::string& name) {
    NetlinkMessage m(RTM_GETLINK, 0, "looking up link " + name);
    link_header(m);
    m.put_strz(IFLA_IFNAME, name);
    return m;
}

NetlinkMessage new_bridge(const std::string& name, const std::array<uint8_t, 6>& mac) {
    NetlinkMessage m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, "creating bridge " + name);
    put_up(link_header(m));
    m.put_strz(IFLA_IFNAME, name);
    m.put(IFLA_ADDRESS, mac.data(), mac.size());
    put_kind(m, "bridge");
    return m;
}

NetlinkMessage set_up(int index, const std::string& name) {
    NetlinkMessage m(RTM_NEWLINK, 0, "setting link " + name + " up");
    auto& ifi = link_header(m);
    ifi.ifi_index = index;
    put_up(ifi);
    return m;
}

NetlinkMessage new_veth(const VethRequest& r) {
    NetlinkMessage m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, "creating veth pair " + r.host_name);
    put_up(link_header(m));
    m.put_strz(IFLA_IFNAME, r.host_name);
    m.put_u32(IFLA_MASTER, static_cast<uint32_t>(r.master_index));
    nlattr* info = m.begin_nest(IFLA_LINKINFO);
    m.put_strz(IFLA_INFO_KIND, "veth");
    nlattr* data = m.begin_nest(IFLA_INFO_DATA);
    // VETH_INFO_PEER holds a struct ifinfomsg followed by the peer's own
    // link attributes (drivers/net/veth.c, veth_newlink).
    nlattr* peer = m.begin_nest(VETH_INFO_PEER);
    // Not IFF_UP: veth_open() fails with ENOTCONN until both ends exist,
    // and the peer is configured before the first end is registered.
    ifinfomsg peer_header{};
    peer_header.ifi_family = AF_UNSPEC;
    std::memcpy(mnl_nlmsg_get_payload_tail(m.header()), &peer_header, sizeof peer_header);
    m.header()->nlmsg_len += MNL_ALIGN(sizeof peer_header);
    m.put_strz(IFLA_IFNAME, r.peer_name);
    m.put_u32(IFLA_NET_NS_FD, static_cast<uint32_t>(r.peer_netns_fd));
    m.end_nest(peer);
    m.end_nest(data);
    m.end_nest(info);
    return m;
}

NetlinkMessage delete_link(const std::string& name) {
    NetlinkMessage m(RTM_DELLINK, 0, "deleting link " + name);
    link_header(m);
    m.put_strz(IFLA_IFNAME, name);
    return m;
}

NetlinkMessage set_port_isolated(int index, const std::string& name, bool isolated) {
    NetlinkMessage m(RTM_SETLINK, 0, std::string(isolated ? "isolating" : "unisolating") + " bridge port " + name);
    auto& ifi = link_header(m, AF_BRIDGE);
    ifi.ifi_index = index;
    nlattr* prot = m.begin_nest(IFLA_PROTINFO | NLA_F_NESTED);
    m.put_u8(IFLA_BRPORT_ISOLATED, isolated ? 1 : 0);
    m.end_nest(prot);
    return m;
}

NetlinkMessage new_address(int index, Ipv4 address, int prefix) {
    uint32_t raw = address.network_order();
    return address_message(index, AF_INET, prefix, &raw, sizeof raw, to_string(address));
}

NetlinkMessage new_address(int index, const Ipv6& address, int prefix) {
    return address_message(index, AF_INET6, prefix, address.bytes.data(), address.bytes.size(), to_string(address));
}

NetlinkMessage dump_addresses(int family) {
    NetlinkMessage m(RTM_GETADDR, 0, "listing addresses");
    auto& ifa = m.family_header<ifaddrmsg>();
    ifa.ifa_family = static_cast<unsigned char>(family);
    return m;
}

NetlinkMessage new_default_route(int index, Ipv4 gateway) {
    uint32_t raw = gateway.network_order();
    return route_message(index, AF_INET, &raw, sizeof raw, to_string(gateway));
}

NetlinkMessage new_default_route(int index, const Ipv6& gateway) {
    return route_message(index, AF_INET6, gateway.bytes.data(), gateway.bytes.size(), to_string(gateway));
}

// ---- Parsing ----------------------------------------------------------------

namespace {

// Attributes of a message after its family header, by type (the last of
// each type wins; types above `max` are ignored).
template <size_t N>
bool collect(const nlmsghdr* nlh, size_t header_len, std::array<const nlattr*, N>& out) {
    out.fill(nullptr);
    if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(header_len)) return false;
    // The message's own end: mnl_nlmsg_get_payload_tail() rounds nlmsg_len
    // up to 4 bytes, past the end of a reply whose length is not aligned.
    const char* tail = reinterpret_cast<const char*>(nlh) + nlh->nlmsg_len;
    for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, header_len));
         mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a)) {
        uint16_t type = mnl_attr_get_type(a);
        if (type < N) out[type] = a;
    }
    return true;
}

std::string attr_string(const nlattr* a) {
    const char* s = static_cast<const char*>(mnl_attr_get_payload(a));
    return std::string(s, strnlen(s, mnl_attr_get_payload_len(a)));
}

}  // namespace

std::optional<LinkInfo> parse_link(const NetlinkReply& reply) {
    const nlmsghdr* nlh = reply.header();
    if (nlh->nlmsg_type != RTM_NEWLINK) return std::nullopt;
    std::array<const nlattr*, IFLA_MAX + 1> tb{};
    if (!collect(nlh, sizeof(ifinfomsg), tb)) return std::nullopt;
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    LinkInfo link;
    link.index = ifi->ifi_index;
    link.flags = ifi->ifi_flags;
    if (tb[IFLA_IFNAME]) link.name = attr_string(tb[IFLA_IFNAME]);
    if (tb[IFLA_MASTER] && mnl_attr_get_payload_len(tb[IFLA_MASTER]) >= 4)
        link.master = static_cast<int>(mnl_attr_get_u32(tb[IFLA_MASTER]));
    if (const nlattr* info = tb[IFLA_LINKINFO]) {
        const char* end = reinterpret_cast<const char*>(info) + info->nla_len;
        for (auto* a = static_cast<const nlattr*>(mnl_attr_get_payload(info));
             mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a))
            if (mnl_attr_get_type(a) == IFLA_INFO_KIND) link.kind = attr_string(a);
    }
    return link;
}

std::optional<AddressInfo> parse_address(const NetlinkReply& reply) {
    const nlmsghdr* nlh = reply.header();
    if (nlh->nlmsg_type != RTM_NEWADDR) return std::nullopt;
    std::array<const nlattr*, IFA_MAX + 1> tb{};
    if (!collect(nlh, sizeof(ifaddrmsg), tb)) return std::nullopt;
    const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    AddressInfo info;
    info.index = static_cast<int>(ifa->ifa_index);
    info.family = ifa->ifa_family;
    info.prefix = ifa->ifa_prefixlen;
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS the peer's on
    // point-to-point links); IPv6 sends only IFA_ADDRESS.
    const nlattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (!a) return std::nullopt;
    size_t len = mnl_attr_get_payload_len(a);
    if (info.family == AF_INET && len == 4) {
        uint32_t raw;
        std::memcpy(&raw, mnl_attr_get_payload(a), 4);
        info.v4 = Ipv4{ntohl(raw)};
    } else if (info.family == AF_INET6 && len == 16) {
        Ipv6 v6;
        std::memcpy(v6.bytes.data(), mnl_attr_get_payload(a), 16);
        info.v6 = v6;
    } else {
        return std::nullopt;
    }
    return info;
}

}  // namespace nucleus::net::rt
