#include "net/nat_expr.hpp"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include <algorithm>
#include <cstring>

namespace nucleus::net::nft {

namespace {

struct TableDeleter {
    void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainDeleter {
    void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct SetDeleter {
    void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
using TablePtr = std::unique_ptr<nftnl_table, TableDeleter>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainDeleter>;
using SetPtr = std::unique_ptr<nftnl_set, SetDeleter>;

NetlinkMessage delimiter(uint16_t type, const char* what) {
    // The batch delimiters carry the subsystem in res_id and take no ack
    // (nfnetlink_rcv_batch never acks them).
    NetlinkMessage m(type, 0, what, false);
    auto& nfg = m.family_header<nfgenmsg>();
    nfg.nfgen_family = AF_UNSPEC;
    nfg.version = NFNETLINK_V0;
    nfg.res_id = htons(NFNL_SUBSYS_NFTABLES);
    return m;
}

SetPtr set_named(const std::string& table, const std::string& name) {
    SetPtr s(nftnl_set_alloc());
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name.c_str());
    return s;
}

void add_elements(nftnl_set* s, const std::vector<Element>& elements) {
    for (const auto& e : elements) {
        nftnl_set_elem* el = nftnl_set_elem_alloc();
        nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, e.key.data(), static_cast<uint32_t>(e.key.size()));
        if (!e.data.empty())
            nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, e.data.data(), static_cast<uint32_t>(e.data.size()));
        if (e.verdict) {
            nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(*e.verdict));
            if (!e.chain.empty()) nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, e.chain.c_str());
        }
        if (e.timeout_ms) nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, *e.timeout_ms);
        nftnl_set_elem_add(s, el);  // the set owns it now
    }
}

}  // namespace

NetlinkMessage batch_begin() { return delimiter(NFNL_MSG_BATCH_BEGIN, "nftables batch begin"); }
NetlinkMessage batch_end() { return delimiter(NFNL_MSG_BATCH_END, "nftables batch end"); }

NetlinkMessage message(uint16_t command, uint16_t family, uint16_t flags, std::string what) {
    NetlinkMessage m(static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | command), flags, std::move(what));
    auto& nfg = m.family_header<nfgenmsg>();
    nfg.nfgen_family = static_cast<uint8_t>(family);
    nfg.version = NFNETLINK_V0;
    return m;
}

NetlinkMessage new_table(const std::string& table, uint16_t family) {
    auto m = message(NFT_MSG_NEWTABLE, family, NLM_F_CREATE | NLM_F_EXCL, "creating nftables table " + table);
    TablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nftnl_table_nlmsg_build_payload(m.header(), t.get());
    return m;
}

NetlinkMessage get_table(const std::string& table, uint16_t family) {
    auto m = message(NFT_MSG_GETTABLE, family, 0, "looking up nftables table " + table);
    TablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nftnl_table_nlmsg_build_payload(m.header(), t.get());
    return m;
}

NetlinkMessage delete_table(const std::string& table, uint16_t family) {
    auto m = message(NFT_MSG_DELTABLE, family, 0, "deleting nftables table " + table);
    TablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nftnl_table_nlmsg_build_payload(m.header(), t.get());
    return m;
}

NetlinkMessage new_chain(const std::string& table, const std::string& chain, std::optional<BaseChain> base,
                         uint16_t family) {
    auto m = message(NFT_MSG_NEWCHAIN, family, NLM_F_CREATE | NLM_F_EXCL, "creating nftables chain " + chain);
    ChainPtr c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.c_str());
    if (base) {
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, base->type);
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, base->hook);
        nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, base->priority);
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    nftnl_chain_nlmsg_build_payload(m.header(), c.get());
    return m;
}

NetlinkMessage delete_chain(const std::string& table, const std::string& chain) {
    auto m = message(NFT_MSG_DELCHAIN, family_inet, 0, "deleting nftables chain " + chain);
    ChainPtr c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.c_str());
    nftnl_chain_nlmsg_build_payload(m.header(), c.get());
    return m;
}

NetlinkMessage flush_chain(const std::string& table, const std::string& chain) {
    auto m = message(NFT_MSG_DELRULE, family_inet, 0, "flushing nftables chain " + chain);
    m.put_strz(NFTA_RULE_TABLE, table);
    m.put_strz(NFTA_RULE_CHAIN, chain);
    return m;
}

NetlinkMessage dump_chains() { return message(NFT_MSG_GETCHAIN, family_inet, 0, "listing nftables chains"); }

NetlinkMessage new_set(const std::string& table, const SetSpec& spec, uint16_t family) {
    auto m = message(NFT_MSG_NEWSET, family, NLM_F_CREATE | NLM_F_EXCL, "creating nftables set " + spec.name);
    SetPtr s = set_named(table, spec.name);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, spec.flags);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.key_type);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.key_len);
    if (spec.data_type) {
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, *spec.data_type);
        if (*spec.data_type != NFT_DATA_VERDICT) nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, spec.data_len);
    }
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, spec.id);
    nftnl_set_nlmsg_build_payload(m.header(), s.get());
    return m;
}

NetlinkMessage delete_set(const std::string& table, const std::string& set) {
    auto m = message(NFT_MSG_DELSET, family_inet, 0, "deleting nftables set " + set);
    SetPtr s = set_named(table, set);
    nftnl_set_nlmsg_build_payload(m.header(), s.get());
    return m;
}

NetlinkMessage new_elements(const std::string& table, const std::string& set, const std::vector<Element>& elements,
                            bool exclusive, std::string what, uint16_t family) {
    auto m = message(NFT_MSG_NEWSETELEM, family, static_cast<uint16_t>(NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0)),
                     std::move(what));
    SetPtr s = set_named(table, set);
    add_elements(s.get(), elements);
    nftnl_set_elems_nlmsg_build_payload(m.header(), s.get());
    return m;
}

NetlinkMessage delete_elements(const std::string& table, const std::string& set, const std::vector<Element>& elements,
                               std::string what, uint16_t family) {
    auto m = message(NFT_MSG_DELSETELEM, family, 0, std::move(what));
    SetPtr s = set_named(table, set);
    add_elements(s.get(), elements);
    nftnl_set_elems_nlmsg_build_payload(m.header(), s.get());
    return m;
}

NetlinkMessage get_elements(const std::string& table, const std::string& set) {
    auto m = message(NFT_MSG_GETSETELEM, family_inet, 0, "listing nftables set " + set);
    SetPtr s = set_named(table, set);
    nftnl_set_elems_nlmsg_build_payload(m.header(), s.get());
    return m;
}

namespace {

int collect_element(nftnl_set_elem* el, void* data) {
    auto* out = static_cast<std::vector<Element>*>(data);
    Element e;
    uint32_t len = 0;
    if (nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_KEY)) {
        const auto* p = static_cast<const uint8_t*>(nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &len));
        e.key.assign(p, p + len);
    }
    if (nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_DATA)) {
        const auto* p = static_cast<const uint8_t*>(nftnl_set_elem_get(el, NFTNL_SET_ELEM_DATA, &len));
        e.data.assign(p, p + len);
    }
    if (nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_VERDICT))
        e.verdict = static_cast<int32_t>(nftnl_set_elem_get_u32(el, NFTNL_SET_ELEM_VERDICT));
    if (nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_CHAIN)) e.chain = nftnl_set_elem_get_str(el, NFTNL_SET_ELEM_CHAIN);
    if (nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_TIMEOUT))
        e.timeout_ms = nftnl_set_elem_get_u64(el, NFTNL_SET_ELEM_TIMEOUT);
    out->push_back(std::move(e));
    return 0;
}

}  // namespace

std::vector<Element> parse_elements(const std::vector<NetlinkReply>& replies) {
    std::vector<Element> out;
    for (const auto& r : replies) {
        SetPtr s(nftnl_set_alloc());
        if (nftnl_set_elems_nlmsg_parse(r.header(), s.get()) < 0) continue;
        nftnl_set_elem_foreach(s.get(), collect_element, &out);
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> parse_chains(const std::vector<NetlinkReply>& replies) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : replies) {
        ChainPtr c(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(r.header(), c.get()) < 0) continue;
        if (nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY) != family_inet) continue;
        const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
        const char* name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
        if (table && name) out.emplace_back(table, name);
    }
    return out;
}

// ---- Keys -------------------------------------------------------------------

KeyBuilder& KeyBuilder::ipv4(Ipv4 a) {
    uint32_t raw = a.network_order();
    const auto* p = reinterpret_cast<const uint8_t*>(&raw);
    bytes.insert(bytes.end(), p, p + 4);
    return *this;
}

KeyBuilder& KeyBuilder::ipv6(const Ipv6& a) {
    bytes.insert(bytes.end(), a.bytes.begin(), a.bytes.end());
    return *this;
}

KeyBuilder& KeyBuilder::ifname(const std::string& name) {
    uint8_t padded[16] = {};
    std::memcpy(padded, name.data(), std::min<size_t>(name.size(), 15));
    bytes.insert(bytes.end(), padded, padded + 16);
    return *this;
}

KeyBuilder& KeyBuilder::proto(uint8_t p) {
    bytes.insert(bytes.end(), {p, 0, 0, 0});
    return *this;
}

KeyBuilder& KeyBuilder::port(uint16_t p) {
    bytes.insert(bytes.end(), {uint8_t(p >> 8), uint8_t(p), 0, 0});
    return *this;
}

// ---- Rules ------------------------------------------------------------------

namespace {

nftnl_expr* expr(const char* name) { return nftnl_expr_alloc(name); }

}  // namespace

RuleBuilder::RuleBuilder(const std::string& table, const std::string& chain, uint16_t family)
    : rule_(nftnl_rule_alloc()), table_(table), chain_(chain), family_(family) {
    nftnl_rule_set_str(rule_, NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(rule_, NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_set_u32(rule_, NFTNL_RULE_FAMILY, family);
}

RuleBuilder::~RuleBuilder() { nftnl_rule_free(rule_); }

RuleBuilder& RuleBuilder::meta(uint32_t key, uint32_t dreg) {
    nftnl_expr* e = expr("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
    nftnl_expr* e = expr("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::cmp(uint32_t op, uint32_t sreg, const void* data, uint32_t len) {
    nftnl_expr* e = expr("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::range(bool inside, uint32_t sreg, const void* from, const void* to, uint32_t len) {
    nftnl_expr* e = expr("range");
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, sreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, inside ? NFT_RANGE_EQ : NFT_RANGE_NEQ);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, from, len);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, to, len);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::bitwise(uint32_t reg, uint32_t len, const void* mask, const void* xor_value) {
    nftnl_expr* e = expr("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor_value, len);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::lookup(const std::string& set, uint32_t sreg, std::optional<uint32_t> dreg, bool invert) {
    nftnl_expr* e = expr("lookup");
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
    if (dreg) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, *dreg);
    if (invert) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::ct(uint32_t key, uint32_t dreg) {
    nftnl_expr* e = expr("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::fib(uint32_t flags, uint32_t result, uint32_t dreg) {
    nftnl_expr* e = expr("fib");
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, flags);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, result);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, dreg);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::nat(uint32_t type, uint32_t family, uint32_t reg_addr, uint32_t reg_proto) {
    nftnl_expr* e = expr("nat");
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, type);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, family);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, reg_addr);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, reg_proto);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FLAGS, 1 /* NF_NAT_RANGE_MAP_IPS */ | 2 /* NF_NAT_RANGE_PROTO_SPECIFIED */);
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::masquerade() {
    nftnl_rule_add_expr(rule_, expr("masq"));
    return *this;
}

RuleBuilder& RuleBuilder::counter() {
    nftnl_rule_add_expr(rule_, expr("counter"));
    return *this;
}

RuleBuilder& RuleBuilder::verdict(int32_t code, const std::string& chain) {
    nftnl_expr* e = expr("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(code));
    if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
    nftnl_rule_add_expr(rule_, e);
    return *this;
}

RuleBuilder& RuleBuilder::nfproto(uint8_t family) {
    meta(NFT_META_NFPROTO, NFT_REG_1);
    return cmp(NFT_CMP_EQ, NFT_REG_1, &family, 1);
}

RuleBuilder& RuleBuilder::l4proto(uint8_t proto) {
    meta(NFT_META_L4PROTO, NFT_REG_1);
    return cmp(NFT_CMP_EQ, NFT_REG_1, &proto, 1);
}

RuleBuilder& RuleBuilder::ifname(bool input, const std::string& name, bool equal) {
    // The meta key loads IFNAMSIZ bytes, NUL-padded: compare all of them so
    // that "nucleus0" does not also match "nucleus01".
    char padded[16] = {};
    std::memcpy(padded, name.data(), std::min<size_t>(name.size(), 15));
    meta(input ? NFT_META_IIFNAME : NFT_META_OIFNAME, NFT_REG_1);
    return cmp(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, NFT_REG_1, padded, sizeof padded);
}

RuleBuilder& RuleBuilder::ipv4_in(bool source, const Ipv4Subnet& subnet, bool equal) {
    uint32_t mask = subnet.mask().network_order(), zero = 0, net = subnet.network.network_order();
    payload(NFT_PAYLOAD_NETWORK_HEADER, source ? 12 : 16, 4, NFT_REG_1);
    bitwise(NFT_REG_1, 4, &mask, &zero);
    return cmp(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, NFT_REG_1, &net, 4);
}

RuleBuilder& RuleBuilder::ipv6_in(bool source, const Ipv6Subnet& subnet, bool equal) {
    uint8_t mask[16] = {}, zero[16] = {};
    for (int bit = 0; bit < subnet.prefix; ++bit) mask[bit / 8] |= uint8_t(0x80u >> (bit % 8));
    payload(NFT_PAYLOAD_NETWORK_HEADER, source ? 8 : 24, 16, NFT_REG_1);
    bitwise(NFT_REG_1, 16, mask, zero);
    return cmp(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, NFT_REG_1, subnet.network.bytes.data(), 16);
}

RuleBuilder& RuleBuilder::ct_state_any(uint32_t bits, bool equal_zero) {
    uint32_t zero = 0;
    ct(NFT_CT_STATE, NFT_REG_1);
    bitwise(NFT_REG_1, 4, &bits, &zero);
    return cmp(equal_zero ? NFT_CMP_EQ : NFT_CMP_NEQ, NFT_REG_1, &zero, 4);
}

RuleBuilder& RuleBuilder::ct_status_any(uint32_t bits, bool equal_zero) {
    uint32_t zero = 0;
    ct(NFT_CT_STATUS, NFT_REG_1);
    bitwise(NFT_REG_1, 4, &bits, &zero);
    return cmp(equal_zero ? NFT_CMP_EQ : NFT_CMP_NEQ, NFT_REG_1, &zero, 4);
}

RuleBuilder& RuleBuilder::dport(uint16_t port) {
    uint16_t be = htons(port);
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1);
    return cmp(NFT_CMP_EQ, NFT_REG_1, &be, 2);
}

RuleBuilder& RuleBuilder::ethertype(uint16_t type) {
    uint16_t be = htons(type);
    meta(NFT_META_PROTOCOL, NFT_REG_1);
    return cmp(NFT_CMP_EQ, NFT_REG_1, &be, 2);
}

NetlinkMessage RuleBuilder::message(std::string what) {
    auto m = nft::message(NFT_MSG_NEWRULE, family_, NLM_F_CREATE | NLM_F_APPEND, std::move(what));
    nftnl_rule_nlmsg_build_payload(m.header(), rule_);
    return m;
}

}  // namespace nucleus::net::nft
