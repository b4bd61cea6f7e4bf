#include "net/egress_policy.hpp"

#include <algorithm>
#include <charconv>

namespace nucleus::net {

namespace {

struct SpecialRange {
    const char* cidr;
    const char* what;
};

// Addresses no ordinary rule opens (see the header).
constexpr SpecialRange special_ranges[] = {
    {"0.0.0.0/8", "unspecified (this network)"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local (cloud metadata)"},
    {"100.100.100.200/32", "cloud metadata (Alibaba)"},
    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved and broadcast"},
    {"::/128", "unspecified"},
    {"::1/128", "loopback"},
    {"fe80::/10", "link-local"},
    {"fd00:ec2::254/128", "cloud metadata (EC2)"},
    {"ff00::/8", "multicast"},
};

const std::vector<std::pair<Cidr, std::string_view>>& specials() {
    static const auto table = [] {
        std::vector<std::pair<Cidr, std::string_view>> out;
        for (const auto& s : special_ranges) out.emplace_back(*Cidr::parse(s.cidr), s.what);
        return out;
    }();
    return table;
}

std::optional<Cidr> special_cidr(const IpAddress& address) {
    for (const auto& [cidr, what] : specials())
        if (cidr.contains(address)) return cidr;
    return std::nullopt;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

Result<PortList> parse_ports(std::string_view text, std::string_view whole) {
    PortList list;
    if (text == "*") {
        list.any = true;
        return list;
    }
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        auto item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        unsigned port = 0;
        auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), port);
        if (item.empty() || ec != std::errc{} || end != item.data() + item.size() || port == 0 || port > 65535)
            return Error::plain("\"" + std::string(whole) + "\": ports must be 1-65535, comma-separated, or *");
        list.ports.push_back(static_cast<uint16_t>(port));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    std::sort(list.ports.begin(), list.ports.end());
    list.ports.erase(std::unique(list.ports.begin(), list.ports.end()), list.ports.end());
    return list;
}

PortList default_ports() { return PortList{false, {80, 443}}; }

bool name_matches(const DomainRule& rule, std::string_view name) {
    if (!rule.wildcard) return name == rule.name;
    return name.size() > rule.name.size() + 1 && name.ends_with(rule.name) &&
           name[name.size() - rule.name.size() - 1] == '.';
}

Verdict allowed_by(const std::string& rule) { return {true, "allowed by " + rule}; }

}  // namespace

bool PortList::contains(uint16_t port) const { return any || std::binary_search(ports.begin(), ports.end(), port); }

std::string PortList::to_string() const {
    if (any) return "*";
    std::string out;
    for (auto p : ports) out += (out.empty() ? "" : ",") + std::to_string(p);
    return out;
}

std::string DomainRule::to_string() const { return (wildcard ? "*." : "") + name + ":" + ports.to_string(); }

std::string CidrRule::to_string() const {
    if (cidr.network.family == AF_INET6) return "[" + cidr.to_string() + "]:" + ports.to_string();
    return cidr.to_string() + ":" + ports.to_string();
}

std::optional<std::string> canonical_name(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > 253) return std::nullopt;
    std::string out;
    out.reserve(name.size());
    size_t label = 0;
    for (char c : name) {
        if (c == '.') {
            if (label == 0) return std::nullopt;
            label = 0;
        } else {
            bool ok =
                (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
            if (!ok || ++label > 63) return std::nullopt;
        }
        out.push_back(lower(c));
    }
    return out;
}

Result<DomainRule> parse_domain_rule(std::string_view text) {
    DomainRule rule;
    auto colon = text.find(':');
    std::string_view name = text.substr(0, colon);
    if (colon != std::string_view::npos) {
        auto ports = parse_ports(text.substr(colon + 1), text);
        if (!ports) return std::move(ports).error();
        rule.ports = std::move(*ports);
    } else {
        rule.ports = default_ports();
    }
    if (name.starts_with("*.")) {
        rule.wildcard = true;
        name.remove_prefix(2);
    }
    auto canonical = canonical_name(name);
    if (!canonical || canonical->find('*') != std::string::npos)
        return Error::plain("\"" + std::string(text) +
                            "\" is not a domain name (NAME or *.NAME, optionally :PORT[,PORT])");
    if (IpAddress::parse(*canonical))
        return Error::plain("\"" + std::string(text) + "\" is an address: use --allow-cidr");
    rule.name = std::move(*canonical);
    return rule;
}

Result<CidrRule> parse_cidr_rule(std::string_view text) {
    std::string_view cidr_text = text, ports_text;
    bool has_ports = false;
    auto bad = [&] {
        return Error::plain("\"" + std::string(text) +
                            "\" is not an address or prefix (a.b.c.d/N[:PORTS], [x::/N]:PORTS or x::/N)");
    };
    if (text.starts_with("[")) {
        auto close = text.find(']');
        if (close == std::string_view::npos) return bad();
        cidr_text = text.substr(1, close - 1);
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') return bad();
            ports_text = rest.substr(1);
            has_ports = true;
        }
    } else if (std::count(text.begin(), text.end(), ':') >= 2) {
        // Unbracketed IPv6: ports only after a prefix length ("x::/32:443").
        auto slash = text.find('/');
        if (slash != std::string_view::npos) {
            auto colon = text.find(':', slash);
            if (colon != std::string_view::npos) {
                cidr_text = text.substr(0, colon);
                ports_text = text.substr(colon + 1);
                has_ports = true;
            }
        }
    } else if (auto colon = text.find(':'); colon != std::string_view::npos) {
        cidr_text = text.substr(0, colon);
        ports_text = text.substr(colon + 1);
        has_ports = true;
    }
    auto cidr = Cidr::parse(cidr_text);
    if (!cidr) return bad();
    CidrRule rule{*cidr, default_ports()};
    if (has_ports) {
        auto ports = parse_ports(ports_text, text);
        if (!ports) return std::move(ports).error();
        rule.ports = std::move(*ports);
    }
    return rule;
}

Status parse_rule_file(std::string_view text, const std::string& origin, EgressPolicy& into) {
    size_t line_no = 0, start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++line_no;
        if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
            line.remove_suffix(1);
        if (line.empty()) continue;
        std::string where = origin + ":" + std::to_string(line_no);
        // A line that reads as an address or prefix is a CIDR rule; anything else must be a name.
        auto cidr = parse_cidr_rule(line);
        if (cidr) {
            into.cidrs.push_back(std::move(*cidr));
            continue;
        }
        auto domain = parse_domain_rule(line);
        if (!domain) return std::move(domain).error().wrap(where);
        into.domains.push_back(std::move(*domain));
    }
    return {};
}

std::optional<std::string_view> special_range(const IpAddress& address) {
    for (const auto& [cidr, what] : specials())
        if (cidr.contains(address)) return what;
    return std::nullopt;
}

bool EgressPolicy::allows_name(std::string_view name) const {
    return std::any_of(domains.begin(), domains.end(), [&](const DomainRule& r) { return name_matches(r, name); });
}

Verdict EgressPolicy::check_name(std::string_view name, uint16_t port) const {
    bool named = false;
    for (const auto& rule : domains) {
        if (!name_matches(rule, name)) continue;
        named = true;
        if (rule.ports.contains(port)) return allowed_by("--allow-domain " + rule.to_string());
    }
    std::string target = std::string(name) + ":" + std::to_string(port);
    if (named) return {false, "port not allowed: " + target};
    return {false, "no rule allows " + target};
}

Verdict EgressPolicy::check_address(const IpAddress& address, uint16_t port) const {
    auto special = special_cidr(address);
    bool matched = false;
    for (const auto& rule : cidrs) {
        if (!rule.cidr.contains(address)) continue;
        if (special && !special->covers(rule.cidr)) continue;
        matched = true;
        if (rule.ports.contains(port)) return allowed_by("--allow-cidr " + rule.to_string());
    }
    std::string target = (address.family == AF_INET6 ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
                         std::to_string(port);
    if (matched) return {false, "port not allowed: " + target};
    if (special) return {false, std::string(*special_range(address)) + " address not allowed: " + target};
    return {false, "no rule allows " + target};
}

Verdict EgressPolicy::check_resolved(const IpAddress& address) const {
    auto special = special_cidr(address);
    if (!special) return {true, ""};
    for (const auto& rule : cidrs)
        if (rule.cidr.contains(address) && special->covers(rule.cidr))
            return allowed_by("--allow-cidr " + rule.to_string());
    return {false, "resolves to a " + std::string(*special_range(address)) + " address (" + address.to_string() + ")"};
}

std::vector<std::string> EgressPolicy::describe() const {
    std::vector<std::string> out;
    for (const auto& d : domains) out.push_back("--allow-domain " + d.to_string());
    for (const auto& c : cidrs) out.push_back("--allow-cidr " + c.to_string());
    return out;
}

}  // namespace nucleus::net
