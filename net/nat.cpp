// Per-sandbox objects in the runtime's nftables table (net/nat.hpp):
// published-port elements, egress chains and sets, allowed destinations.
#include "net/nat.hpp"

#include <netinet/in.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <functional>
#include <set>

#include "net/nat_expr.hpp"
#include "net/nat_ports.hpp"

namespace nucleus::net {

// ---- Published ports --------------------------------------------------------

namespace {

struct PortElement {
    std::string map;
    nft::Element element;
};

// The map and element for one published port of the sandbox at `a`.
Result<PortElement> port_element(const BridgeConfig& c, const SandboxAddress& a, const PublishedPort& p) {
    PortElement out;
    nft::KeyBuilder key, value;
    uint8_t proto = static_cast<uint8_t>(p.protocol);
    if (p.family == AF_INET6) {
        if (!a.v6 || !c.plan.subnet6)
            return Error::plain("publishing " + to_string(p) + ": bridge " + c.name + " has no IPv6 subnet");
        if (p.host_v6) key.ipv6(*p.host_v6);
        value.ipv6(*a.v6).port(p.container_port);
        out.map = p.host_v6 ? "publish6" : "publish6_any";
    } else {
        if (p.host_v4) key.ipv4(*p.host_v4);
        value.ipv4(a.v4).port(p.container_port);
        out.map = p.host_v4 ? "publish4" : "publish4_any";
    }
    key.proto(proto).port(p.host_port);
    out.element.key = std::move(key.bytes);
    out.element.data = std::move(value.bytes);
    return out;
}

Status run_batch(NetlinkSession& nf, std::vector<NetlinkMessage> body) {
    std::vector<NetlinkMessage> batch;
    batch.reserve(body.size() + 2);
    batch.push_back(nft::batch_begin());
    for (auto& m : body) batch.push_back(std::move(m));
    batch.push_back(nft::batch_end());
    auto done = nf.execute(batch);
    if (!done) return std::move(done).error();
    return {};
}

// Deletions: one transaction, or, when something in it is gone already
// (ENOENT aborts the whole transaction), each deletion on its own, with
// ENOENT counted as done. `make` builds the messages afresh each time.
Status delete_all(NetlinkSession& nf, const std::function<std::vector<NetlinkMessage>()>& make) {
    auto st = run_batch(nf, make());
    if (st || st.error().code != ENOENT) return st;
    for (auto& m : make()) {
        std::vector<NetlinkMessage> one;
        one.push_back(std::move(m));
        auto each = run_batch(nf, std::move(one));
        if (!each && each.error().code != ENOENT) return each;
    }
    return {};
}

}  // namespace

Status add_published_ports(NetlinkSession& nf, const BridgeConfig& c, const SandboxAddress& a,
                           const std::vector<PublishedPort>& ports) {
    std::vector<NetlinkMessage> body;
    for (const auto& p : ports) {
        auto e = port_element(c, a, p);
        if (!e) return std::move(e).error();
        body.push_back(nft::new_elements(c.table(), e->map, {e->element}, true, "publishing " + to_string(p)));
    }
    if (body.empty()) return {};
    auto st = run_batch(nf, std::move(body));
    if (!st && st.error().code == EEXIST)
        return Error{EEXIST, st.error().message + ": another sandbox publishes that port already"};
    return st;
}

Status remove_published_ports(NetlinkSession& nf, const BridgeConfig& c, const SandboxAddress& a,
                              const std::vector<PublishedPort>& ports) {
    if (ports.empty()) return {};
    return delete_all(nf, [&] {
        std::vector<NetlinkMessage> body;
        for (const auto& p : ports) {
            auto e = port_element(c, a, p);
            if (!e) continue;  // never added
            body.push_back(nft::delete_elements(c.table(), e->map, {e->element}, "unpublishing " + to_string(p)));
        }
        return body;
    });
}

// ---- Egress limits ----------------------------------------------------------

std::string egress_chain_name(const SandboxAddress& a) {
    char name[16];
    std::snprintf(name, sizeof name, "sb-%08x", a.v4.value);
    return name;
}

namespace {

std::string allow_set(const SandboxAddress& a, int family) {
    char name[16];
    std::snprintf(name, sizeof name, "a%d-%08x", family == AF_INET6 ? 6 : 4, a.v4.value);
    return name;
}

constexpr uint32_t reg32(int n) { return NFT_REG32_00 + n; }

void cidr_rules(std::vector<NetlinkMessage>& out, const std::string& table, const std::string& chain,
                const EgressCidr& rule) {
    std::vector<uint16_t> ports = rule.ports;
    if (ports.empty()) ports.push_back(0);  // any port
    for (uint16_t port : ports) {
        nft::RuleBuilder r(table, chain);
        if (rule.v4) r.nfproto(nft::family_ipv4).ipv4_in(false, *rule.v4, true);
        else if (rule.v6) r.nfproto(nft::family_ipv6).ipv6_in(false, *rule.v6, true);
        else continue;
        r.l4proto(static_cast<uint8_t>(rule.protocol));
        if (port != 0) r.dport(port);
        r.verdict(NFT_RETURN);
        out.push_back(r.message("adding an egress CIDR rule to " + chain));
    }
}

// The sandbox's chain: see net/nat.hpp.
void chain_rules(std::vector<NetlinkMessage>& out, const BridgeConfig& c, const SandboxAddress& a,
                 const EgressLimit& limit) {
    const std::string t = c.table(), chain = egress_chain_name(a);
    {
        nft::RuleBuilder r(t, chain);
        r.ct_state_any(NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED), false).verdict(NFT_RETURN);
        out.push_back(r.message("adding the established rule to " + chain));
    }
    {
        nft::RuleBuilder r(t, chain);
        r.nfproto(nft::family_ipv4)
            .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, reg32(0))
            .meta(NFT_META_L4PROTO, reg32(1))
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg32(2))
            .lookup(allow_set(a, AF_INET), reg32(0))
            .verdict(NFT_RETURN);
        out.push_back(r.message("adding the IPv4 allowed-destination rule to " + chain));
    }
    if (a.v6) {
        // Neighbour discovery with the gateway (ICMPv6 types 133-137) is not
        // tracked as a connection; without it the sandbox has no IPv6 at all.
        uint8_t first = 133, last = 137;
        nft::RuleBuilder nd(t, chain);
        nd.nfproto(nft::family_ipv6)
            .l4proto(IPPROTO_ICMPV6)
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1)
            .cmp(NFT_CMP_GTE, NFT_REG_1, &first, 1)
            .cmp(NFT_CMP_LTE, NFT_REG_1, &last, 1)
            .verdict(NFT_RETURN);
        out.push_back(nd.message("adding the neighbour discovery rule to " + chain));
        nft::RuleBuilder r(t, chain);
        r.nfproto(nft::family_ipv6)
            .payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16, reg32(0))
            .meta(NFT_META_L4PROTO, reg32(4))
            .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg32(5))
            .lookup(allow_set(a, AF_INET6), reg32(0))
            .verdict(NFT_RETURN);
        out.push_back(r.message("adding the IPv6 allowed-destination rule to " + chain));
    }
    for (const auto& rule : limit.rules) cidr_rules(out, t, chain, rule);
    nft::RuleBuilder drop(t, chain);
    drop.counter().verdict(NF_DROP);
    out.push_back(drop.message("adding the final drop rule to " + chain));
}

}  // namespace

Status add_egress_limit(NetlinkSession& nf, const BridgeConfig& c, const SandboxAddress& a, const EgressLimit& limit) {
    if (!limit.limited) return {};
    using nft::concat;
    const std::string t = c.table(), chain = egress_chain_name(a);
    std::vector<NetlinkMessage> body;
    const uint32_t proto = nft::type_inet_proto, service = nft::type_inet_service;
    body.push_back(nft::new_set(t, {.name = allow_set(a, AF_INET),
                                    .key_type = concat(concat(nft::type_ipv4_addr, proto), service),
                                    .key_len = 12,
                                    .flags = NFT_SET_TIMEOUT,
                                    .data_type = std::nullopt,
                                    .data_len = 0,
                                    .id = 1}));
    if (a.v6)
        body.push_back(nft::new_set(t, {.name = allow_set(a, AF_INET6),
                                        .key_type = concat(concat(nft::type_ipv6_addr, proto), service),
                                        .key_len = 24,
                                        .flags = NFT_SET_TIMEOUT,
                                        .data_type = std::nullopt,
                                        .data_len = 0,
                                        .id = 2}));
    body.push_back(nft::new_chain(t, chain, std::nullopt));
    chain_rules(body, c, a, limit);
    nft::Element jump4 = nft::jump_element(nft::KeyBuilder().ipv4(a.v4).bytes, chain);
    body.push_back(nft::new_elements(t, "egress4", {jump4}, true, "limiting the egress of " + to_string(a.v4)));
    if (a.v6) {
        nft::Element jump6 = nft::jump_element(nft::KeyBuilder().ipv6(*a.v6).bytes, chain);
        body.push_back(nft::new_elements(t, "egress6", {jump6}, true, "limiting the egress of " + to_string(*a.v6)));
    }
    nft::add_port_guard(body, c, a);
    return run_batch(nf, std::move(body));
}

namespace {

std::vector<NetlinkMessage> egress_deletions(const BridgeConfig& c, const SandboxAddress& a) {
    const std::string t = c.table(), chain = egress_chain_name(a);
    std::vector<NetlinkMessage> body;
    body.push_back(nft::delete_elements(t, "egress4", {nft::key_element(nft::KeyBuilder().ipv4(a.v4).bytes)},
                                        "removing the egress limit of " + to_string(a.v4)));
    if (a.v6)
        body.push_back(nft::delete_elements(t, "egress6", {nft::key_element(nft::KeyBuilder().ipv6(*a.v6).bytes)},
                                            "removing the egress limit of " + to_string(*a.v6)));
    body.push_back(nft::flush_chain(t, chain));
    body.push_back(nft::delete_chain(t, chain));
    body.push_back(nft::delete_set(t, allow_set(a, AF_INET)));
    if (a.v6) body.push_back(nft::delete_set(t, allow_set(a, AF_INET6)));
    nft::delete_port_guard(body, c, a);
    return body;
}

}  // namespace

Status remove_egress_limit(NetlinkSession& nf, const BridgeConfig& c, const SandboxAddress& a) {
    return delete_all(nf, [&] { return egress_deletions(c, a); });
}

std::chrono::seconds clamp_allow_ttl(std::chrono::seconds ttl) { return std::clamp(ttl, min_allow_ttl, max_allow_ttl); }

Status allow_destination(NetlinkSession& nf, const BridgeConfig& c, const SandboxAddress& a,
                         const AllowedDestination& d, std::chrono::seconds ttl) {
    nft::KeyBuilder key;
    int family = AF_INET;
    if (d.v4) {
        key.ipv4(*d.v4);
    } else if (d.v6 && a.v6) {
        key.ipv6(*d.v6);
        family = AF_INET6;
    } else {
        return Error::plain("allowing a destination: no address, or IPv6 on a bridge without IPv6");
    }
    key.proto(static_cast<uint8_t>(d.protocol)).port(d.port);
    auto ms =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(clamp_allow_ttl(ttl)).count());
    const std::string set = allow_set(a, family);
    const std::string what = "allowing " + (d.v4 ? to_string(*d.v4) : to_string(*d.v6)) + " port " +
                             std::to_string(d.port) + " for " + to_string(a.v4);
    nft::Element e = nft::timed_element(key.bytes, ms);
    std::vector<NetlinkMessage> body;
    body.push_back(nft::new_elements(c.table(), set, {e}, true, what));
    auto st = run_batch(nf, std::move(body));
    if (st || st.error().code != EEXIST) return st;
    // Already allowed: replace it so the new TTL counts (an "add" of an
    // existing element keeps its old expiry), in one transaction.
    body.clear();
    body.push_back(nft::delete_elements(c.table(), set, {nft::key_element(key.bytes)}, what));
    body.push_back(nft::new_elements(c.table(), set, {e}, false, what));
    return run_batch(nf, std::move(body));
}

// ---- Listing, for clean-up --------------------------------------------------

namespace {

std::optional<uint32_t> hex_suffix(const std::string& name, const std::string& prefix) {
    if (name.size() != prefix.size() + 8 || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    uint32_t v = 0;
    auto [end, ec] = std::from_chars(name.data() + prefix.size(), name.data() + name.size(), v, 16);
    if (ec != std::errc{} || end != name.data() + name.size()) return std::nullopt;
    return v;
}

std::optional<uint32_t> index_of_value(const BridgeConfig& c, const std::vector<uint8_t>& data) {
    if (data.size() == 8) {
        Ipv4 a{uint32_t(data[0]) << 24 | uint32_t(data[1]) << 16 | uint32_t(data[2]) << 8 | data[3]};
        return c.plan.subnet4.index_of(a);
    }
    if (data.size() == 20 && c.plan.subnet6) {
        Ipv6 a;
        std::copy(data.begin(), data.begin() + 16, a.bytes.begin());
        if (!c.plan.subnet6->contains(a)) return std::nullopt;
        Ipv6 base = c.plan.subnet6->network;
        uint32_t low = 0, low_base = 0;
        for (int i = 12; i < 16; ++i) {
            low = low << 8 | a.bytes[i];
            low_base = low_base << 8 | base.bytes[i];
        }
        return low - low_base;
    }
    return std::nullopt;
}

std::vector<const char*> publish_maps(const BridgeConfig& c) {
    std::vector<const char*> maps{"publish4", "publish4_any"};
    if (c.plan.subnet6) maps.insert(maps.end(), {"publish6", "publish6_any"});
    return maps;
}

}  // namespace

Result<NatObjects> list_nat_objects(NetlinkSession& nf, const BridgeConfig& c) {
    NatObjects out;
    auto chains = nf.dump(nft::dump_chains());
    if (!chains) return std::move(chains).error().wrap("listing nftables chains");
    for (const auto& [table, name] : nft::parse_chains(*chains)) {
        if (table != c.table()) continue;
        if (auto v4 = hex_suffix(name, "sb-")) {
            if (auto index = c.plan.subnet4.index_of(Ipv4{*v4})) out.egress_chains.push_back(*index);
        }
    }
    std::set<uint32_t> published;
    for (const char* map : publish_maps(c)) {
        auto elements = nf.dump(nft::get_elements(c.table(), map));
        if (!elements) return std::move(elements).error().wrap(std::string("listing nftables map ") + map);
        for (const auto& e : nft::parse_elements(*elements))
            if (auto index = index_of_value(c, e.data)) published.insert(*index);
    }
    out.published.assign(published.begin(), published.end());
    return out;
}

Status remove_all_published_ports(NetlinkSession& nf, const BridgeConfig& c, const SandboxAddress& a) {
    std::vector<NetlinkMessage> body;
    for (const char* map : publish_maps(c)) {
        auto elements = nf.dump(nft::get_elements(c.table(), map));
        if (!elements) return std::move(elements).error();
        std::vector<nft::Element> ours;
        for (auto& e : nft::parse_elements(*elements))
            if (index_of_value(c, e.data) == a.index) ours.push_back(nft::key_element(e.key));
        if (!ours.empty())
            body.push_back(nft::delete_elements(c.table(), map, ours, "unpublishing the ports of " + to_string(a.v4)));
    }
    if (body.empty()) return {};
    return run_batch(nf, std::move(body));
}

}  // namespace nucleus::net
