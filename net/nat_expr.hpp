// nftables messages through libnftnl: batch delimiters, tables, chains,
// sets, elements, and a rule builder over the kernel's expressions
// (payload, meta, cmp, bitwise, lookup, ct, fib, nat, masq, immediate).
// net/nat.cpp and net/nat_ruleset.cpp compose these; nothing here knows
// what the rules mean.
//
// Registers: NFT_REG_1 (16 bytes) for single values, and the 32-bit
// registers from NFT_REG32_00 for concatenations, where each field takes
// whole 4-byte registers (a 1-byte l4proto pads to 4, a 2-byte port to 4),
// which is also how a concatenated set key is laid out.
#pragma once

#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/address_pool.hpp"
#include "net/netlink.hpp"

struct nftnl_rule;
struct nftnl_set;

namespace nucleus::net::nft {

constexpr uint16_t family_inet = 1;  // NFPROTO_INET
constexpr uint16_t family_bridge = 7;  // NFPROTO_BRIDGE
constexpr uint16_t family_ipv4 = 2;  // NFPROTO_IPV4
constexpr uint16_t family_ipv6 = 10;  // NFPROTO_IPV6

// nft's datatype ids (nftables include/datatype.h), so that `nft list`
// shows our sets' keys as addresses and ports; concatenations shift each
// earlier type left by 6 bits (TYPE_BITS).
constexpr uint32_t type_ipv4_addr = 7;
constexpr uint32_t type_ipv6_addr = 8;
constexpr uint32_t type_inet_proto = 12;
constexpr uint32_t type_inet_service = 13;
constexpr uint32_t type_ifname = 41;
constexpr uint32_t concat(uint32_t a, uint32_t b) { return a << 6 | b; }

NetlinkMessage batch_begin();
NetlinkMessage batch_end();

// A message of the nf_tables subsystem: nlmsghdr + nfgenmsg.
NetlinkMessage message(uint16_t command, uint16_t family, uint16_t flags, std::string what);

NetlinkMessage new_table(const std::string& table, uint16_t family = family_inet);
NetlinkMessage get_table(const std::string& table, uint16_t family = family_inet);
NetlinkMessage delete_table(const std::string& table, uint16_t family = family_inet);

struct BaseChain {
    const char* type;  // "filter" or "nat"
    uint32_t hook;  // NF_INET_*
    int32_t priority;
};
NetlinkMessage new_chain(const std::string& table, const std::string& chain, std::optional<BaseChain> base,
                         uint16_t family = family_inet);
NetlinkMessage delete_chain(const std::string& table, const std::string& chain);
// Deletes every rule of a chain (NFT_MSG_DELRULE without a handle).
NetlinkMessage flush_chain(const std::string& table, const std::string& chain);
NetlinkMessage dump_chains();

struct SetSpec {
    std::string name;
    uint32_t key_type = 0;
    uint32_t key_len = 0;
    uint32_t flags = 0;  // NFT_SET_MAP, NFT_SET_TIMEOUT
    std::optional<uint32_t> data_type;  // maps: NFT_DATA_VERDICT or a value type
    uint32_t data_len = 0;  // value maps only
    uint32_t id = 0;  // unique within one batch
};
NetlinkMessage new_set(const std::string& table, const SetSpec& set, uint16_t family = family_inet);
NetlinkMessage delete_set(const std::string& table, const std::string& set);

// One element: a key, and for maps a value or a verdict (with its chain for
// jump/goto); a timeout in milliseconds for sets with NFT_SET_TIMEOUT.
struct Element {
    std::vector<uint8_t> key;
    std::vector<uint8_t> data;
    std::optional<int32_t> verdict;
    std::string chain;
    std::optional<uint64_t> timeout_ms;
};
inline Element key_element(std::vector<uint8_t> key) {
    Element e;
    e.key = std::move(key);
    return e;
}
inline Element jump_element(std::vector<uint8_t> key, std::string chain) {
    Element e = key_element(std::move(key));
    e.verdict = NFT_JUMP;
    e.chain = std::move(chain);
    return e;
}
inline Element timed_element(std::vector<uint8_t> key, uint64_t timeout_ms) {
    Element e = key_element(std::move(key));
    e.timeout_ms = timeout_ms;
    return e;
}

// NEWSETELEM (flags NLM_F_CREATE, plus NLM_F_EXCL when `exclusive`: an
// existing key is then an EEXIST error instead of a no-op).
NetlinkMessage new_elements(const std::string& table, const std::string& set, const std::vector<Element>& elements,
                            bool exclusive, std::string what, uint16_t family = family_inet);
NetlinkMessage delete_elements(const std::string& table, const std::string& set, const std::vector<Element>& elements,
                               std::string what, uint16_t family = family_inet);
NetlinkMessage get_elements(const std::string& table, const std::string& set);
// The elements of GETSETELEM dump replies.
std::vector<Element> parse_elements(const std::vector<NetlinkReply>& replies);
// (table, name) of NEWCHAIN dump replies in the inet family.
std::vector<std::pair<std::string, std::string>> parse_chains(const std::vector<NetlinkReply>& replies);

// Key bytes: each field padded to a whole 4-byte register.
struct KeyBuilder {
    std::vector<uint8_t> bytes;
    KeyBuilder& ipv4(Ipv4 a);
    KeyBuilder& ipv6(const Ipv6& a);
    KeyBuilder& proto(uint8_t p);
    KeyBuilder& port(uint16_t p);  // big endian, as on the wire
    KeyBuilder& ifname(const std::string& name);  // IFNAMSIZ bytes, NUL-padded
};

// Appends expressions to one rule.
class RuleBuilder {
public:
    RuleBuilder(const std::string& table, const std::string& chain, uint16_t family = family_inet);
    ~RuleBuilder();
    RuleBuilder(const RuleBuilder&) = delete;
    RuleBuilder& operator=(const RuleBuilder&) = delete;

    RuleBuilder& meta(uint32_t key, uint32_t dreg);
    RuleBuilder& payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg);
    RuleBuilder& cmp(uint32_t op, uint32_t sreg, const void* data, uint32_t len);
    RuleBuilder& range(bool inside, uint32_t sreg, const void* from, const void* to, uint32_t len);
    RuleBuilder& bitwise(uint32_t reg, uint32_t len, const void* mask, const void* xor_value);
    RuleBuilder& lookup(const std::string& set, uint32_t sreg, std::optional<uint32_t> dreg = std::nullopt,
                        bool invert = false);
    RuleBuilder& ct(uint32_t key, uint32_t dreg);
    RuleBuilder& fib(uint32_t flags, uint32_t result, uint32_t dreg);
    RuleBuilder& nat(uint32_t type, uint32_t family, uint32_t reg_addr, uint32_t reg_proto);
    RuleBuilder& masquerade();
    RuleBuilder& counter();
    RuleBuilder& verdict(int32_t code, const std::string& chain = "");

    // Composites used throughout the ruleset.
    RuleBuilder& nfproto(uint8_t family);  // meta nfproto == family
    RuleBuilder& l4proto(uint8_t proto);  // meta l4proto == proto
    RuleBuilder& ifname(bool input, const std::string& name, bool equal);  // iifname/oifname ==/!=
    RuleBuilder& ipv4_in(bool source, const Ipv4Subnet& subnet, bool equal);
    RuleBuilder& ipv6_in(bool source, const Ipv6Subnet& subnet, bool equal);
    RuleBuilder& ct_state_any(uint32_t bits, bool equal_zero);  // ct state & bits ==/!= 0
    RuleBuilder& ct_status_any(uint32_t bits, bool equal_zero);
    RuleBuilder& dport(uint16_t port);  // th dport == port
    RuleBuilder& ethertype(uint16_t type);  // meta protocol == type (bridge family)

    NetlinkMessage message(std::string what);

private:
    nftnl_rule* rule_;
    std::string table_;
    std::string chain_;
    uint16_t family_;
};

}  // namespace nucleus::net::nft
