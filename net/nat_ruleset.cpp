// The static part of the runtime's nftables table (see net/nat.hpp for
// its layout and the reasons): created once, in one transaction.
#include <netinet/in.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/rtnetlink.h>

#include "net/nat.hpp"
#include "net/nat_expr.hpp"
#include "net/nat_ports.hpp"

namespace nucleus::net {

namespace {

using nft::RuleBuilder;

constexpr uint32_t reg32(int n) { return NFT_REG32_00 + n; }

// Hook priorities (enum nf_ip_hook_priorities, linux/netfilter_ipv4.h,
// whose linux/in.h clashes with glibc's netinet/in.h).
constexpr int32_t priority_raw = -300;
constexpr int32_t priority_dstnat = -100;
constexpr int32_t priority_filter = 0;
constexpr int32_t priority_srcnat = 100;

// Published ports: one map keyed by host address, one for "every local
// address" (fib daddr type local), per family. Registers: the key's
// fields from reg32(0); the lookup writes the value (address . port) back
// from reg32(0), which the nat expression then reads.
void publish_rules(std::vector<NetlinkMessage>& out, const BridgeConfig& c, const std::string& chain) {
    const std::string& t = c.table();
    {
        RuleBuilder r(t, chain);
        r.nfproto(nft::family_ipv4)
            .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, reg32(0))
            .meta(NFT_META_L4PROTO, reg32(1))
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg32(2))
            .lookup("publish4", reg32(0), reg32(0))
            .nat(NFT_NAT_DNAT, nft::family_ipv4, reg32(0), reg32(1));
        out.push_back(r.message("adding the IPv4 published-port rule to " + chain));
    }
    {
        uint32_t local = RTN_LOCAL;
        RuleBuilder r(t, chain);
        r.nfproto(nft::family_ipv4)
            .fib(NFTA_FIB_F_DADDR, NFT_FIB_RESULT_ADDRTYPE, NFT_REG_1)
            .cmp(NFT_CMP_EQ, NFT_REG_1, &local, 4)
            .meta(NFT_META_L4PROTO, reg32(0))
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg32(1))
            .lookup("publish4_any", reg32(0), reg32(0))
            .nat(NFT_NAT_DNAT, nft::family_ipv4, reg32(0), reg32(1));
        out.push_back(r.message("adding the IPv4 any-address published-port rule to " + chain));
    }
    if (!c.plan.subnet6) return;
    {
        RuleBuilder r(t, chain);
        r.nfproto(nft::family_ipv6)
            .payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16, reg32(0))
            .meta(NFT_META_L4PROTO, reg32(4))
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg32(5))
            .lookup("publish6", reg32(0), reg32(0))
            .nat(NFT_NAT_DNAT, nft::family_ipv6, reg32(0), reg32(4));
        out.push_back(r.message("adding the IPv6 published-port rule to " + chain));
    }
    {
        uint32_t local = RTN_LOCAL;
        RuleBuilder r(t, chain);
        r.nfproto(nft::family_ipv6)
            .fib(NFTA_FIB_F_DADDR, NFT_FIB_RESULT_ADDRTYPE, NFT_REG_1)
            .cmp(NFT_CMP_EQ, NFT_REG_1, &local, 4)
            .meta(NFT_META_L4PROTO, reg32(0))
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg32(1))
            .lookup("publish6_any", reg32(0), reg32(0))
            .nat(NFT_NAT_DNAT, nft::family_ipv6, reg32(0), reg32(4));
        out.push_back(r.message("adding the IPv6 any-address published-port rule to " + chain));
    }
}

void sets(std::vector<NetlinkMessage>& out, const BridgeConfig& c) {
    using nft::concat;
    const auto v4 = nft::type_ipv4_addr, v6 = nft::type_ipv6_addr, proto = nft::type_inet_proto,
               service = nft::type_inet_service;
    uint32_t id = 1;
    auto map = [&](const char* name, uint32_t key_type, uint32_t key_len, uint32_t data_type, uint32_t data_len) {
        out.push_back(nft::new_set(c.table(), {.name = name,
                                               .key_type = key_type,
                                               .key_len = key_len,
                                               .flags = NFT_SET_MAP,
                                               .data_type = data_type,
                                               .data_len = data_len,
                                               .id = id++}));
    };
    map("publish4", concat(concat(v4, proto), service), 12, concat(v4, service), 8);
    map("publish4_any", concat(proto, service), 8, concat(v4, service), 8);
    map("egress4", v4, 4, NFT_DATA_VERDICT, 0);
    if (!c.plan.subnet6) return;
    map("publish6", concat(concat(v6, proto), service), 24, concat(v6, service), 20);
    map("publish6_any", concat(proto, service), 8, concat(v6, service), 20);
    map("egress6", v6, 16, NFT_DATA_VERDICT, 0);
}

void chains(std::vector<NetlinkMessage>& out, const BridgeConfig& c) {
    const std::string& t = c.table();
    out.push_back(nft::new_chain(t, "guard", nft::BaseChain{"filter", NF_INET_PRE_ROUTING, priority_raw}));
    out.push_back(nft::new_chain(t, "dnat_pre", nft::BaseChain{"nat", NF_INET_PRE_ROUTING, priority_dstnat}));
    out.push_back(nft::new_chain(t, "dnat_out", nft::BaseChain{"nat", NF_INET_LOCAL_OUT, priority_dstnat}));
    out.push_back(nft::new_chain(t, "snat", nft::BaseChain{"nat", NF_INET_POST_ROUTING, priority_srcnat}));
    out.push_back(nft::new_chain(t, "forward", nft::BaseChain{"filter", NF_INET_FORWARD, priority_filter}));
    out.push_back(nft::new_chain(t, "input", nft::BaseChain{"filter", NF_INET_LOCAL_IN, priority_filter}));
}

void guard_and_snat(std::vector<NetlinkMessage>& out, const BridgeConfig& c) {
    const std::string& t = c.table();
    const Ipv4Subnet loopback{Ipv4{0x7f000000}, 8};
    {
        RuleBuilder r(t, "guard");
        r.ifname(true, c.name, true)
            .nfproto(nft::family_ipv4)
            .ipv4_in(false, loopback, true)
            .counter()
            .verdict(NF_DROP);
        out.push_back(r.message("adding the loopback guard rule"));
    }
    {
        RuleBuilder r(t, "snat");
        r.nfproto(nft::family_ipv4).ipv4_in(true, c.plan.subnet4, true).ifname(false, c.name, false).masquerade();
        out.push_back(r.message("adding the IPv4 masquerade rule"));
    }
    if (c.plan.subnet6) {
        RuleBuilder r(t, "snat");
        r.nfproto(nft::family_ipv6).ipv6_in(true, *c.plan.subnet6, true).ifname(false, c.name, false).masquerade();
        out.push_back(r.message("adding the IPv6 masquerade rule"));
    }
    {
        RuleBuilder r(t, "snat");
        r.nfproto(nft::family_ipv4).ifname(false, c.name, true).ipv4_in(true, loopback, true).masquerade();
        out.push_back(r.message("adding the loopback-source masquerade rule"));
    }
}

// Egress of limited sandboxes, by source address, towards other hosts
// (forward) and towards this one (input).
void egress_dispatch(std::vector<NetlinkMessage>& out, const BridgeConfig& c, const std::string& chain) {
    const std::string& t = c.table();
    {
        RuleBuilder r(t, chain);
        r.ifname(true, c.name, true)
            .nfproto(nft::family_ipv4)
            .payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1)
            .lookup("egress4", NFT_REG_1, NFT_REG_VERDICT);
        out.push_back(r.message("adding the IPv4 egress dispatch rule to " + chain));
    }
    if (c.plan.subnet6) {
        RuleBuilder r(t, chain);
        r.ifname(true, c.name, true)
            .nfproto(nft::family_ipv6)
            .payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16, NFT_REG_1)
            .lookup("egress6", NFT_REG_1, NFT_REG_VERDICT);
        out.push_back(r.message("adding the IPv6 egress dispatch rule to " + chain));
    }
}

void forward_rules(std::vector<NetlinkMessage>& out, const BridgeConfig& c) {
    // Towards the sandboxes, only what a published port let in (DNAT'd)
    // or what answers a connection they made.
    // (Frames between two sandboxes come in from the bridge too when
    // br_netfilter passes bridged traffic to these hooks: not ours to drop.)
    RuleBuilder r(c.table(), "forward");
    r.ifname(false, c.name, true)
        .ifname(true, c.name, false)
        .ct_state_any(NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED), true)
        .ct_status_any(IPS_DST_NAT, true)
        .counter()
        .verdict(NF_DROP);
    out.push_back(r.message("adding the inbound forward rule"));
    egress_dispatch(out, c, "forward");
    egress_dispatch(out, c, "input");
}

}  // namespace

namespace {

// Whether the table exists in `family`.
Result<bool> table_exists(NetlinkSession& nf, const std::string& table, uint16_t family) {
    auto found = nf.execute(nft::get_table(table, family));
    if (found) return true;
    if (found.error().code == ENOENT) return false;
    return std::move(found).error();
}

}  // namespace

Status ensure_nat_table(NetlinkSession& nf, const BridgeConfig& config) {
    auto inet = table_exists(nf, config.table(), nft::family_inet);
    if (!inet) return std::move(inet).error();
    auto bridge = table_exists(nf, config.table(), nft::family_bridge);
    if (!bridge) return std::move(bridge).error();
    if (*inet && *bridge) return {};
    std::vector<NetlinkMessage> batch;
    batch.push_back(nft::batch_begin());
    if (!*inet) {
        batch.push_back(nft::new_table(config.table()));
        sets(batch, config);
        chains(batch, config);
        guard_and_snat(batch, config);
        publish_rules(batch, config, "dnat_pre");
        publish_rules(batch, config, "dnat_out");
        forward_rules(batch, config);
    }
    if (!*bridge) {
        batch.push_back(nft::new_table(config.table(), nft::family_bridge));
        nft::port_guard_ruleset(batch, config);
    }
    batch.push_back(nft::batch_end());
    auto done = nf.execute(batch);
    if (!done && done.error().code == EEXIST) return {};  // made meanwhile by a process not holding our lock
    if (!done) return std::move(done).error().wrap("creating nftables table " + config.table());
    return {};
}

Status delete_nat_table(NetlinkSession& nf, const BridgeConfig& config) {
    std::vector<NetlinkMessage> batch;
    batch.push_back(nft::batch_begin());
    batch.push_back(nft::delete_table(config.table()));
    batch.push_back(nft::batch_end());
    auto done = nf.execute(batch);
    if (!done && done.error().code != ENOENT) return std::move(done).error();
    std::vector<NetlinkMessage> bridge;
    bridge.push_back(nft::batch_begin());
    bridge.push_back(nft::delete_table(config.table(), nft::family_bridge));
    bridge.push_back(nft::batch_end());
    done = nf.execute(bridge);
    if (!done && done.error().code != ENOENT) return std::move(done).error();
    return {};
}

}  // namespace nucleus::net
