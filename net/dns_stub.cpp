#include "net/dns_stub.hpp"

#include "net/dns_message.hpp"

namespace nucleus::net {

namespace {

IpAddress offset_in(const Cidr& range, size_t n) {
    IpAddress a = range.network;
    // Add n to the low bytes of the network address (n stays far below the range's size).
    for (size_t i = a.size(); i-- > 0 && n > 0;) {
        size_t sum = a.bytes[i] + (n & 0xff);
        a.bytes[i] = static_cast<uint8_t>(sum);
        n = (n >> 8) + (sum >> 8);
    }
    return a;
}

std::vector<uint8_t> rdata_of(const IpAddress& a) {
    return {a.bytes.begin(), a.bytes.begin() + static_cast<ptrdiff_t>(a.size())};
}

}  // namespace

SyntheticPool::SyntheticPool(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

const Cidr& SyntheticPool::v4_range() {
    static const Cidr range = *Cidr::parse("198.18.0.0/15");
    return range;
}

const Cidr& SyntheticPool::v6_range() {
    static const Cidr range = *Cidr::parse("fd6e:7563:6c65:7573::/64");
    return range;
}

SyntheticPool::Addresses SyntheticPool::addresses_of(size_t slot) const {
    // +1: the range's first address (198.18.0.0, the subnet's own) is never handed out.
    return {offset_in(v4_range(), slot + 1), offset_in(v6_range(), slot + 1)};
}

SyntheticPool::Addresses SyntheticPool::assign(const std::string& name) {
    if (auto it = by_name_.find(name); it != by_name_.end()) return addresses_of(it->second);
    size_t slot;
    if (slots_.size() < capacity_) {
        slot = slots_.size();
        slots_.push_back(name);
    } else {
        slot = next_;
        next_ = (next_ + 1) % capacity_;
        by_name_.erase(slots_[slot]);
        slots_[slot] = name;
    }
    by_name_[name] = slot;
    return addresses_of(slot);
}

std::optional<std::string> SyntheticPool::name_of(const IpAddress& address) const {
    const Cidr& range = address.family == AF_INET ? v4_range() : v6_range();
    if (!range.contains(address)) return std::nullopt;
    // The slot + 1 is the offset from the range's network address, in its last 4 bytes.
    uint32_t low = 0, base = 0;
    for (size_t i = address.size() - 4; i < address.size(); ++i) {
        low = low << 8 | address.bytes[i];
        base = base << 8 | range.network.bytes[i];
    }
    size_t n = low - base;
    IpAddress expected = offset_in(range, n);
    if (n == 0 || n > slots_.size() || !(expected == address)) return std::nullopt;
    return slots_[n - 1];
}

StubAnswer answer_stub_query(std::span<const uint8_t> query, const EgressPolicy& policy, SyntheticPool& pool) {
    StubAnswer out;
    auto header = dns::parse_header(query);
    if (!header || header->response) return out;  // not a query: never answer (no loops)
    auto parsed = dns::parse(query, true);
    if (!parsed || parsed->questions.size() != 1) {
        out.response = dns::build_error(*header, dns::FormErr);
        out.reason = "malformed query";
        return out;
    }
    const dns::Question& q = parsed->questions[0];
    out.has_question = true;
    out.name = q.name;
    out.type = q.type;
    if (header->opcode != 0) {
        out.response = dns::build_error(*header, dns::NotImp);
        out.reason = "not a standard query";
        return out;
    }
    auto name = canonical_name(q.name);
    if (!name || q.klass != dns::IN || !policy.allows_name(*name)) {
        out.reason = !name ? "not a host name" : q.klass != dns::IN ? "not class IN" : "no rule allows the name";
        out.response = dns::build_answer(query, *parsed, dns::NXDomain, {}, 0);
        return out;
    }
    out.allowed = true;
    std::vector<std::vector<uint8_t>> addresses;
    if (q.type == dns::A || q.type == dns::AAAA) {
        auto assigned = pool.assign(*name);
        addresses.push_back(rdata_of(q.type == dns::A ? assigned.v4 : assigned.v6));
    }
    out.response = dns::build_answer(query, *parsed, dns::NoError, addresses, synthetic_ttl);
    return out;
}

std::string egress_resolv_conf() {
    // The stub; queries to any other resolver address are redirected to it
    // as well, so a workload with its own resolver list still lands here.
    return "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n";
}

}  // namespace nucleus::net
