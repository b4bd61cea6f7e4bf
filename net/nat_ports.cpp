#include "net/nat_ports.hpp"

#include <netinet/in.h>

#include <linux/netfilter.h>

#include "net/nat_expr.hpp"

namespace nucleus::net::nft {

namespace {

constexpr uint32_t reg32(int n) { return NFT_REG32_00 + n; }
constexpr int32_t priority_bridge_filter = -200;  // NF_BR_PRI_FILTER_BRIDGED
constexpr uint32_t hook_bridge_prerouting = 0;  // NF_BR_PRE_ROUTING
constexpr uint32_t hook_bridge_forward = 2;  // NF_BR_FORWARD
constexpr uint16_t ethertype_ipv4 = 0x0800, ethertype_arp = 0x0806, ethertype_ipv6 = 0x86dd;

// iifname in @limited
RuleBuilder& from_limited(RuleBuilder& r) {
    r.meta(NFT_META_IIFNAME, NFT_REG_1);
    return r.lookup("limited", NFT_REG_1);
}

// (iifname . <16 or 4 bytes at the network/transport header offset>)
// not in @bound4/@bound6: drop.
void not_bound(RuleBuilder& r, uint32_t base, uint32_t offset, bool v6) {
    r.meta(NFT_META_IIFNAME, reg32(0))
        .payload(base, offset, v6 ? 16 : 4, reg32(4))
        .lookup(v6 ? "bound6" : "bound4", reg32(0), std::nullopt, true)
        .counter()
        .verdict(NF_DROP);
}

}  // namespace

void port_guard_ruleset(std::vector<NetlinkMessage>& out, const BridgeConfig& c) {
    const std::string t = c.table();
    auto set = [&](const char* name, uint32_t type, uint32_t len, uint32_t id) {
        out.push_back(new_set(t,
                              {.name = name,
                               .key_type = type,
                               .key_len = len,
                               .flags = 0,
                               .data_type = std::nullopt,
                               .data_len = 0,
                               .id = id},
                              family_bridge));
    };
    set("limited", type_ifname, 16, 101);
    set("bound4", concat(type_ifname, type_ipv4_addr), 20, 102);
    set("bound6", concat(type_ifname, type_ipv6_addr), 32, 103);
    out.push_back(
        new_chain(t, "forward", BaseChain{"filter", hook_bridge_forward, priority_bridge_filter}, family_bridge));
    out.push_back(
        new_chain(t, "prerouting", BaseChain{"filter", hook_bridge_prerouting, priority_bridge_filter}, family_bridge));
    for (uint32_t key : {NFT_META_IIFNAME, NFT_META_OIFNAME}) {
        RuleBuilder r(t, "forward", family_bridge);
        r.meta(key, NFT_REG_1).lookup("limited", NFT_REG_1).counter().verdict(NF_DROP);
        out.push_back(r.message("adding a limited-port forward rule"));
    }
    {
        RuleBuilder r(t, "prerouting", family_bridge);
        from_limited(r).ethertype(ethertype_ipv4);
        not_bound(r, NFT_PAYLOAD_NETWORK_HEADER, 12, false);
        out.push_back(r.message("adding the IPv4 source guard"));
    }
    {
        // ARP's sender protocol address, after htype, ptype, hlen, plen,
        // oper and the sender's hardware address (RFC 826).
        RuleBuilder r(t, "prerouting", family_bridge);
        from_limited(r).ethertype(ethertype_arp);
        not_bound(r, NFT_PAYLOAD_NETWORK_HEADER, 14, false);
        out.push_back(r.message("adding the ARP source guard"));
    }
    uint8_t icmpv6 = IPPROTO_ICMPV6, nd_first = 133, nd_last = 137, advert = 136;
    {
        RuleBuilder r(t, "prerouting", family_bridge);
        from_limited(r)
            .ethertype(ethertype_ipv6)
            .meta(NFT_META_L4PROTO, NFT_REG_1)
            .cmp(NFT_CMP_NEQ, NFT_REG_1, &icmpv6, 1);
        not_bound(r, NFT_PAYLOAD_NETWORK_HEADER, 8, true);
        out.push_back(r.message("adding the IPv6 source guard"));
    }
    {
        RuleBuilder r(t, "prerouting", family_bridge);
        from_limited(r)
            .ethertype(ethertype_ipv6)
            .l4proto(icmpv6)
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1)
            .range(false, NFT_REG_1, &nd_first, &nd_last, 1);
        not_bound(r, NFT_PAYLOAD_NETWORK_HEADER, 8, true);
        out.push_back(r.message("adding the ICMPv6 source guard"));
    }
    {
        // A neighbour advertisement's target (RFC 4861 4.4) must be one of
        // its own addresses or link-local.
        uint8_t mask[16] = {0xff, 0xc0}, zero[16] = {}, link_local[16] = {0xfe, 0x80};
        RuleBuilder r(t, "prerouting", family_bridge);
        from_limited(r)
            .ethertype(ethertype_ipv6)
            .l4proto(icmpv6)
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1)
            .cmp(NFT_CMP_EQ, NFT_REG_1, &advert, 1)
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 8, 16, NFT_REG_1)
            .bitwise(NFT_REG_1, 16, mask, zero)
            .cmp(NFT_CMP_NEQ, NFT_REG_1, link_local, 16);
        not_bound(r, NFT_PAYLOAD_TRANSPORT_HEADER, 8, true);
        out.push_back(r.message("adding the neighbour advertisement guard"));
    }
}

void add_port_guard(std::vector<NetlinkMessage>& out, const BridgeConfig& c, const SandboxAddress& a) {
    const std::string veth = host_veth_name(a), t = c.table();
    out.push_back(new_elements(t, "limited", {key_element(KeyBuilder().ifname(veth).bytes)}, true,
                               "guarding bridge port " + veth, family_bridge));
    out.push_back(new_elements(t, "bound4", {key_element(KeyBuilder().ifname(veth).ipv4(a.v4).bytes)}, true,
                               "binding bridge port " + veth + " to " + to_string(a.v4), family_bridge));
    if (a.v6)
        out.push_back(new_elements(t, "bound6", {key_element(KeyBuilder().ifname(veth).ipv6(*a.v6).bytes)}, true,
                                   "binding bridge port " + veth + " to " + to_string(*a.v6), family_bridge));
}

void delete_port_guard(std::vector<NetlinkMessage>& out, const BridgeConfig& c, const SandboxAddress& a) {
    const std::string veth = host_veth_name(a), t = c.table();
    out.push_back(delete_elements(t, "limited", {key_element(KeyBuilder().ifname(veth).bytes)},
                                  "unguarding bridge port " + veth, family_bridge));
    out.push_back(delete_elements(t, "bound4", {key_element(KeyBuilder().ifname(veth).ipv4(a.v4).bytes)},
                                  "unbinding bridge port " + veth, family_bridge));
    if (a.v6)
        out.push_back(delete_elements(t, "bound6", {key_element(KeyBuilder().ifname(veth).ipv6(*a.v6).bytes)},
                                      "unbinding bridge port " + veth, family_bridge));
}

}  // namespace nucleus::net::nft
