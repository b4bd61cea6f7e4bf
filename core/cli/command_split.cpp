#include "core/cli/command_split.hpp"

#include <CLI/CLI.hpp>

namespace nucleus::core::cli {

std::set<std::string> options_taking_values(const CLI::App& app) {
    std::set<std::string> names;
    for (const CLI::Option* option : app.get_options()) {
        if (option->get_expected_max() == 0) continue;  // a switch
        for (const auto& l : option->get_lnames()) names.insert("--" + l);
        for (const auto& s : option->get_snames()) names.insert("-" + s);
    }
    return names;
}

CommandSplit split_command(int argc, char** argv, int sub_index, const std::set<std::string>& takes_value,
                           int positionals) {
    int start = argc;
    int seen = 0;
    for (int i = sub_index + 1; i < argc; ++i) {
        std::string token = argv[i];
        if (token == "--") {
            start = i;
            break;
        }
        if (token.size() >= 2 && token[0] == '-') {
            if (token.find('=') == std::string::npos && takes_value.count(token)) ++i;
            continue;
        }
        if (seen++ == positionals) {
            start = i;
            break;
        }
    }
    CommandSplit split{.parse_argc = start, .command = {}};
    int first = start < argc && std::string(argv[start]) == "--" ? start + 1 : start;
    for (int i = first; i < argc; ++i) split.command.emplace_back(argv[i]);
    return split;
}

}  // namespace nucleus::core::cli
