#include "core/spec/keys.hpp"

#include <algorithm>
#include <vector>

namespace nucleus::core {

std::string_view group_title(KeyGroup group) {
    switch (group) {
        case KeyGroup::Sandbox:
            return "Sandbox";
        case KeyGroup::Filesystem:
            return "Filesystem";
        case KeyGroup::Process:
            return "Process";
        case KeyGroup::Resources:
            return "Resources";
        case KeyGroup::Security:
            return "Modes, policies and integrity";
        case KeyGroup::Output:
            return "Supervision and output";
    }
    return "Other";
}

std::span<const SpecKey> spec_keys() {
    // The groups in application order; each row takes its group from the
    // list it is declared in.
    static const std::vector<SpecKey> keys = [] {
        std::vector<SpecKey> all;
        auto add = [&](std::span<const SpecKey> rows, KeyGroup group) {
            for (SpecKey row : rows) {
                row.group = group;
                all.push_back(row);
            }
        };
        add(sandbox_keys(), KeyGroup::Sandbox);
        add(network_keys(), KeyGroup::Sandbox);
        add(filesystem_keys(), KeyGroup::Filesystem);
        add(process_keys(), KeyGroup::Process);
        add(resource_keys(), KeyGroup::Resources);
        add(security_keys(), KeyGroup::Security);
        add(output_keys(), KeyGroup::Output);
        return all;
    }();
    return keys;
}

const SpecKey* find_spec_key(std::string_view key) {
    auto keys = spec_keys();
    auto it = std::find_if(keys.begin(), keys.end(), [&](const SpecKey& k) { return k.key == key; });
    return it == keys.end() ? nullptr : &*it;
}

std::string long_flag(const SpecKey& key) {
    std::string flag(key.key);
    std::replace(flag.begin(), flag.end(), '_', '-');
    return "--" + flag;
}

std::string key_label(const SpecKey& key) {
    if (key.flags.empty()) return std::string(key.key);
    return std::string(key.key) + " (" + long_flag(key) + ")";
}

std::string key_label(std::string_view key) {
    if (const SpecKey* known = find_spec_key(key)) return key_label(*known);
    return std::string(key);
}

}  // namespace nucleus::core
