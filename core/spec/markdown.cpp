#include "core/spec/markdown.hpp"

#include "core/spec/keys.hpp"

namespace nucleus::core {

namespace {

std::string escape_cell(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '|') out += "\\|";
        else out += c;
    }
    return out;
}

// "-v,--volume" + "SRC:DST" -> "`-v, --volume SRC:DST`"
std::string flag_cell(const SpecKey& key) {
    std::string names;
    std::string_view flags = key.flags;
    while (!flags.empty()) {
        auto comma = flags.find(',');
        if (!names.empty()) names += ", ";
        names += flags.substr(0, comma);
        flags = comma == std::string_view::npos ? std::string_view{} : flags.substr(comma + 1);
    }
    if (!key.value_name.empty()) names += " " + std::string(key.value_name);
    return "`" + escape_cell(names) + "`";
}

}  // namespace

std::string flag_tables_markdown() {
    std::string out;
    bool first = true;
    for (auto group : {KeyGroup::Sandbox, KeyGroup::Filesystem, KeyGroup::Process, KeyGroup::Resources,
                       KeyGroup::Security, KeyGroup::Output}) {
        out += std::string(first ? "" : "\n") + "#### " + std::string(group_title(group)) + "\n\n";
        out += "| flag | document key | meaning |\n| --- | --- | --- |\n";
        first = false;
        for (const auto& key : spec_keys()) {
            if (key.group != group || key.flags.empty()) continue;
            std::string_view meaning = key.doc.empty() ? key.help : key.doc;
            out += "| " + flag_cell(key) + " | `" + std::string(key.key) + "` | " + escape_cell(meaning) + " |\n";
        }
    }
    return out;
}

}  // namespace nucleus::core
