// Egress allow rules (--network egress): `allow_domain`, `allow_cidr` and
// `allow_from_file` make the sandbox's EgressPolicy (net/egress_policy.hpp);
// `publish` takes the ports a --network bridge sandbox publishes.
// Applied right after `network` (core/spec/keys.cpp): with rules and no
// `network` key the sandbox gets `--network egress`; `none` or `host`
// with rules is refused, since the rules would silently mean nothing.
#include "core/spec.hpp"
#include "core/spec/values.hpp"
#include "io/bytes_json.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core {

using namespace spec_values;

namespace {

constexpr size_t max_rule_file = 1 << 20;

// Rules settle the mode: egress unless `network` named another one. A
// bridged sandbox's egress is limited on the host side, in nftables sets
// (net/nat.hpp), to literal addresses: names would need a DNS forwarder that
// fills those sets from its answers, which the bridge does not have.
Status network_for_rules(SandboxSpec& spec, const SpecKey& key) {
    if (!spec.network_given) spec.network = net::NetworkMode::Egress;
    if (spec.network == net::NetworkMode::Egress) return {};
    if (spec.network == net::NetworkMode::Bridge) {
        if (spec.egress.domains.empty()) return {};
        return bad(key,
                   "--network bridge takes --allow-cidr rules only; allowing names needs --network egress, "
                   "whose DNS stub answers for them");
    }
    return bad(key, "--network " + std::string(net::to_string(spec.network)) +
                        " takes no allow rules: they apply to --network egress (the default when rules are given)");
}

Status apply_allow_domain(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto rules, text_list(value, key));
    for (const auto& text : rules) {
        auto rule = net::parse_domain_rule(text);
        if (!rule) return bad(key, rule.error().message);
        spec.egress.domains.push_back(std::move(*rule));
    }
    return network_for_rules(spec, key);
}

Status apply_allow_cidr(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto rules, text_list(value, key));
    for (const auto& text : rules) {
        auto rule = net::parse_cidr_rule(text);
        if (!rule) return bad(key, rule.error().message);
        spec.egress.cidrs.push_back(std::move(*rule));
    }
    return network_for_rules(spec, key);
}

// Resolution: each file read now, so the recorded document holds its rules
// ([{"path", "content"}], bytes through io/bytes_json.hpp).
Status resolve_rule_files(json& document, const SpecKey& key, const ResolveContext&) {
    json& value = document[std::string(key.key)];
    json items = value.is_array() ? value : json::array({value});
    json resolved = json::array();
    for (auto& item : items) {
        if (item.is_object() && item.contains("content")) {
            resolved.push_back(item);
            continue;
        }
        NUCLEUS_TRY_ASSIGN(auto path, text(item, key));
        auto content = io::read_file(path, max_rule_file);
        if (!content) return bad(key, content.error().describe());
        resolved.push_back({{"path", io::bytes_json(path)}, {"content", io::bytes_json(*content)}});
    }
    value = std::move(resolved);
    return {};
}

Status apply_allow_from_file(const json& value, SandboxSpec& spec, const SpecKey& key) {
    if (!value.is_array()) return bad(key, "internal: the rule files were not resolved");
    for (const auto& item : value) {
        if (!item.is_object() || !item.contains("content"))
            return bad(key, "internal: the rule files were not resolved");
        NUCLEUS_TRY_ASSIGN(auto content, text(item["content"], key));
        std::string origin = "(inline)";
        if (item.contains("path")) {
            NUCLEUS_TRY_ASSIGN(origin, text(item["path"], key));
        }
        if (auto st = net::parse_rule_file(content, shown(origin), spec.egress); !st)
            return bad(key, st.error().message);
    }
    return network_for_rules(spec, key);
}

// -p/--publish: [IP:]HOST:CONTAINER[/tcp|udp], needs --network bridge.
Status apply_publish(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto texts, text_list(value, key));
    for (const auto& text : texts) {
        auto port = net::parse_published_port(text);
        if (!port) return bad(key, port.error().describe());
        for (const auto& other : spec.publish)
            if (other.host_port == port->host_port && other.protocol == port->protocol &&
                other.family == port->family && other.host_v4 == port->host_v4 && other.host_v6 == port->host_v6)
                return bad(key, shown(text) + " publishes host port " + std::to_string(port->host_port) + "/" +
                                    std::string(net::to_string(port->protocol)) + " twice");
        spec.publish.push_back(*port);
    }
    if (!spec.publish.empty() && spec.network != net::NetworkMode::Bridge)
        return bad(key, "needs --network bridge (a sandbox without its own routed network has no port to publish)");
    return {};
}

constexpr SpecKey rows[] = {
    {.key = "allow_domain",
     .flags = "--allow-domain",
     .value_name = "NAME[:PORTS]",
     .help = "Egress: allow NAME, or every name below it with *.NAME (ports default to 443,80; :* for any)",
     .doc = "egress to NAME, or to every name below it with `*.NAME`, on `:PORT[,PORT]` (default 443 and 80, `:*` "
            "for any); makes `--network egress` the default",
     .shape = KeyShape::List,
     .apply = apply_allow_domain},
    {.key = "allow_cidr",
     .flags = "--allow-cidr",
     .value_name = "CIDR[:PORTS]",
     .help = "Egress: allow literal addresses, a.b.c.d/N[:PORTS] or [x::/N]:PORTS",
     .doc = "egress to literal addresses, `a.b.c.d/N:443` or `[2001:db8::/32]:443` (link-local and metadata "
            "addresses only under a rule inside their range)",
     .shape = KeyShape::List,
     .apply = apply_allow_cidr},
    {.key = "allow_from_file",
     .flags = "--allow-from-file",
     .value_name = "FILE",
     .help = "Egress: allow rules from FILE, one NAME or CIDR rule per line, # comments",
     .shape = KeyShape::List,
     .resolve = resolve_rule_files,
     .apply = apply_allow_from_file},
    {.key = "publish",
     .flags = "-p,--publish",
     .value_name = "[IP:]HOST:CONTAINER[/PROTO]",
     .help = "Publish a port with --network bridge (IP default 127.0.0.1; tcp or udp, default tcp)",
     .shape = KeyShape::List,
     .apply = apply_publish},
};

}  // namespace

std::span<const SpecKey> network_keys() { return rows; }

}  // namespace nucleus::core
