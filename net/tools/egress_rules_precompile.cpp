// Build-time tool: writes the egress sandbox's netlink messages (routes and
// the nftables batch described in net/egress_rules.hpp) as a C++ source
// file. Linked with libnftnl and libmnl as shared libraries; only this
// tool needs them (Debian ships no libmnl.a, and the `nucleus` binary links
// statically), and the messages are the same for every sandbox.
//
// usage: nucleus-egress-rules-precompile OUTPUT.cpp
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "net/egress_rules.hpp"

namespace {

constexpr const char* table_name = "nucleus";
constexpr const char* nat_chain = "egress_nat";
constexpr const char* filter_chain = "egress_filter";
constexpr uint32_t loopback_ifindex = 1;  // LOOPBACK_IFINDEX: lo is 1 in every network namespace

struct Messages {
    std::vector<uint8_t> bytes;
    unsigned acks = 0;
};

class Rule {
public:
    explicit Rule(const char* chain) : rule_(nftnl_rule_alloc()) {
        nftnl_rule_set_u32(rule_, NFTNL_RULE_FAMILY, NFPROTO_INET);
        nftnl_rule_set_str(rule_, NFTNL_RULE_TABLE, table_name);
        nftnl_rule_set_str(rule_, NFTNL_RULE_CHAIN, chain);
    }
    ~Rule() { nftnl_rule_free(rule_); }
    nftnl_rule* get() { return rule_; }

    Rule& meta(uint32_t key) {
        auto* e = expr("meta");
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
        return *this;
    }
    Rule& cmp(uint32_t op, const void* data, uint32_t len) {
        auto* e = expr("cmp");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
        return *this;
    }
    Rule& payload(uint32_t base, uint32_t offset, uint32_t len) {
        auto* e = expr("payload");
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
        return *this;
    }
    Rule& ct_state_bits(uint32_t mask) {
        auto* e = expr("ct");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
        auto* b = expr("bitwise");
        uint32_t zero = 0;
        nftnl_expr_set_u32(b, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(b, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(b, NFTNL_EXPR_BITWISE_LEN, sizeof mask);
        nftnl_expr_set(b, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof mask);
        nftnl_expr_set(b, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof zero);
        return cmp(NFT_CMP_NEQ, &zero, sizeof zero);
    }
    Rule& l4proto(uint8_t proto) { return meta(NFT_META_L4PROTO).cmp(NFT_CMP_EQ, &proto, 1); }
    Rule& nfproto(uint8_t proto) { return meta(NFT_META_NFPROTO).cmp(NFT_CMP_EQ, &proto, 1); }
    Rule& dport(uint16_t port) {
        uint16_t be = htons(port);
        return payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2).cmp(NFT_CMP_EQ, &be, 2);
    }
    // ip daddr 127.0.0.0/8: the first byte of the destination address.
    Rule& v4_loopback() {
        uint8_t net = 127;
        return nfproto(NFPROTO_IPV4).payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 1).cmp(NFT_CMP_EQ, &net, 1);
    }
    Rule& v6_loopback() {
        in6_addr lo = IN6ADDR_LOOPBACK_INIT;
        return nfproto(NFPROTO_IPV6).payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16).cmp(NFT_CMP_EQ, &lo, 16);
    }
    Rule& redirect(uint16_t port) {
        uint16_t be = htons(port);
        auto* imm = expr("immediate");
        nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
        nftnl_expr_set(imm, NFTNL_EXPR_IMM_DATA, &be, sizeof be);
        auto* r = expr("redir");
        nftnl_expr_set_u32(r, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
        nftnl_expr_set_u32(r, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
        return *this;
    }
    Rule& verdict(int v) {
        auto* imm = expr("immediate");
        nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(v));
        return *this;
    }

private:
    nftnl_expr* expr(const char* name) {
        nftnl_expr* e = nftnl_expr_alloc(name);
        nftnl_rule_add_expr(rule_, e);  // the rule owns it
        return e;
    }
    nftnl_rule* rule_;
};

class Batch {
public:
    Batch() : batch_(mnl_nlmsg_batch_start(buf_, sizeof buf_)) {
        nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
        mnl_nlmsg_batch_next(batch_);
    }
    ~Batch() { mnl_nlmsg_batch_stop(batch_); }

    void table() {
        nftnl_table* t = nftnl_table_alloc();
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, table_name);
        nftnl_table_nlmsg_build_payload(header(NFT_MSG_NEWTABLE), t);
        nftnl_table_free(t);
        mnl_nlmsg_batch_next(batch_);
    }
    void chain(const char* name, const char* type, int priority, uint32_t policy) {
        nftnl_chain* c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table_name);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_OUT);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, priority);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, policy);
        nftnl_chain_nlmsg_build_payload(header(NFT_MSG_NEWCHAIN), c);
        nftnl_chain_free(c);
        mnl_nlmsg_batch_next(batch_);
    }
    void rule(Rule& r) {
        nftnl_rule_nlmsg_build_payload(header(NFT_MSG_NEWRULE, NLM_F_APPEND), r.get());
        mnl_nlmsg_batch_next(batch_);
    }

    Messages finish() {
        nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
        mnl_nlmsg_batch_next(batch_);
        auto* head = static_cast<uint8_t*>(mnl_nlmsg_batch_head(batch_));
        return {std::vector<uint8_t>(head, head + mnl_nlmsg_batch_size(batch_)), acks_};
    }

private:
    nlmsghdr* header(uint16_t type, uint16_t extra = 0) {
        auto* nlh = nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), type, NFPROTO_INET,
                                          NLM_F_CREATE | NLM_F_ACK | extra, seq_++);
        ++acks_;
        return nlh;
    }

    char buf_[16384];
    mnl_nlmsg_batch* batch_;
    uint32_t seq_ = 1;
    unsigned acks_ = 0;
};

Messages nft_batch() {
    using nucleus::net::egress_capture_port;
    using nucleus::net::egress_stub_port;
    Batch b;
    b.table();
    b.chain(nat_chain, "nat", -100, NF_ACCEPT);
    b.chain(filter_chain, "filter", 0, NF_DROP);
    Rule udp_dns(nat_chain), tcp_dns(nat_chain), lo4(nat_chain), lo6(nat_chain), tcp(nat_chain);
    udp_dns.l4proto(IPPROTO_UDP).dport(53).redirect(egress_stub_port);
    tcp_dns.l4proto(IPPROTO_TCP).dport(53).redirect(egress_capture_port);
    lo4.v4_loopback().verdict(NFT_RETURN);
    lo6.v6_loopback().verdict(NFT_RETURN);
    tcp.l4proto(IPPROTO_TCP).redirect(egress_capture_port);
    for (Rule* r : {&udp_dns, &tcp_dns, &lo4, &lo6, &tcp}) b.rule(*r);
    Rule replies(filter_chain), accept4(filter_chain), accept6(filter_chain);
    replies.ct_state_bits(NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)).verdict(NF_ACCEPT);
    accept4.v4_loopback().verdict(NF_ACCEPT);
    accept6.v6_loopback().verdict(NF_ACCEPT);
    for (Rule* r : {&replies, &accept4, &accept6}) b.rule(*r);
    return b.finish();
}

// RTM_NEWROUTE: local <any>/0 dev lo table local.
void local_default_route(std::vector<uint8_t>& out, uint8_t family, uint32_t seq) {
    alignas(nlmsghdr) char buf[256] = {};
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_NEWROUTE;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    rtm->rtm_family = family;
    rtm->rtm_dst_len = 0;
    rtm->rtm_table = RT_TABLE_LOCAL;
    rtm->rtm_protocol = RTPROT_STATIC;
    rtm->rtm_scope = RT_SCOPE_HOST;
    rtm->rtm_type = RTN_LOCAL;
    mnl_attr_put_u32(nlh, RTA_OIF, loopback_ifindex);
    mnl_attr_put_u32(nlh, RTA_TABLE, RT_TABLE_LOCAL);
    auto* bytes = reinterpret_cast<uint8_t*>(nlh);
    out.insert(out.end(), bytes, bytes + nlh->nlmsg_len);
}

Messages routes() {
    Messages m;
    local_default_route(m.bytes, AF_INET, 1);
    local_default_route(m.bytes, AF_INET6, 2);
    m.acks = 2;
    return m;
}

std::string array(const char* name, const Messages& m) {
    std::string out = "const uint8_t " + std::string(name) + "[] = {";
    for (size_t i = 0; i < m.bytes.size(); ++i) {
        if (i % 16 == 0) out += "\n   ";
        char hex[8];
        std::snprintf(hex, sizeof hex, " 0x%02x,", m.bytes[i]);
        out += hex;
    }
    return out + "\n};\n";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTPUT.cpp\n", argv[0]);
        return 2;
    }
    Messages nft = nft_batch(), route = routes();
    std::string text =
        "// Generated by nucleus-egress-rules-precompile (net/tools/egress_rules_precompile.cpp).\n"
        "#include <linux/netlink.h>\n\n#include \"net/egress_rules.hpp\"\n\nnamespace nucleus::net {\n\nnamespace "
        "{\n\n" +
        array("nft_bytes", nft) + "\n" + array("route_bytes", route) +
        "\n}  // namespace\n\n"
        "NetlinkMessages egress_route_messages() { return {NETLINK_ROUTE, route_bytes, sizeof route_bytes, " +
        std::to_string(route.acks) +
        "}; }\n"
        "NetlinkMessages egress_nft_batch() { return {NETLINK_NETFILTER, nft_bytes, sizeof nft_bytes, " +
        std::to_string(nft.acks) + "}; }\n\n}  // namespace nucleus::net\n";
    FILE* f = std::fopen(argv[1], "w");
    if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0) {
        std::perror(argv[1]);
        return 1;
    }
    return 0;
}
