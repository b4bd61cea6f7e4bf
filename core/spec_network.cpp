#include "core/spec_network.hpp"

#include <nlohmann/json.hpp>

#include "core/spec.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core {

namespace {

using nlohmann::json;

Error bad(const std::string& key, const std::string& why) {
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    return Error::plain(key + " (--" + flag + "): " + why);
}

Result<std::vector<std::string>> strings_of(const json& doc, const std::string& key) {
    const json& v = doc.at(key);
    std::vector<std::string> out;
    if (v.is_string()) {
        out.push_back(v.get<std::string>());
    } else if (v.is_array()) {
        for (const auto& item : v) {
            if (!item.is_string()) return bad(key, "must be a list of strings");
            out.push_back(item.get<std::string>());
        }
    } else {
        return bad(key, "must be a list of strings");
    }
    for (const auto& s : out)
        if (s.find('\0') != std::string::npos) return bad(key, "must not contain NUL bytes");
    return out;
}

}  // namespace

Status apply_network_rules(SandboxSpec& spec, const json& doc) {
    net::EgressPolicy policy;
    if (doc.contains("allow_domain")) {
        auto list = strings_of(doc, "allow_domain");
        if (!list) return std::move(list).error();
        for (const auto& text : *list) {
            auto rule = net::parse_domain_rule(text);
            if (!rule) return bad("allow_domain", rule.error().message);
            policy.domains.push_back(std::move(*rule));
        }
    }
    if (doc.contains("allow_cidr")) {
        auto list = strings_of(doc, "allow_cidr");
        if (!list) return std::move(list).error();
        for (const auto& text : *list) {
            auto rule = net::parse_cidr_rule(text);
            if (!rule) return bad("allow_cidr", rule.error().message);
            policy.cidrs.push_back(std::move(*rule));
        }
    }
    if (doc.contains("allow_from_file")) {
        auto list = strings_of(doc, "allow_from_file");
        if (!list) return std::move(list).error();
        for (const auto& path : *list) {
            auto text = io::read_file(path, 1 << 20);
            if (!text) return bad("allow_from_file", text.error().describe());
            if (auto st = net::parse_rule_file(*text, path, policy); !st) return bad("allow_from_file", st.error().message);
        }
    }
    bool has_rules = doc.contains("allow_domain") || doc.contains("allow_cidr") || doc.contains("allow_from_file");
    if (has_rules && !doc.contains("network")) spec.network = net::NetworkMode::Egress;
    if (has_rules && spec.network != net::NetworkMode::Egress)
        return bad("network", std::string(net::to_string(spec.network)) +
                                  " takes no allow rules: they apply to --network egress (the default when rules are given)");
    spec.egress = std::move(policy);
    return {};
}

}  // namespace nucleus::core
