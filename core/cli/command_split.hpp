// Where the workload's command starts in `nucleus run|create|exec ...`.
//
// Docker's rule: the command starts after "--", or at the first token that
// is neither a flag nor a flag's value, once the subcommand's positional
// arguments (exec's sandbox id) are taken; flags after it belong to the
// command. CLI11 must not see the command (its prefix_command mishandles
// "--"), so it is split off before parsing.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace nucleus::core::cli {

struct CommandSplit {
    int parse_argc;  // argv[0 .. parse_argc) goes to CLI11
    std::vector<std::string> command;  // the rest, without a leading "--"
};

// The names of `app`'s options that take a value ("-e", "--env", ...): the
// token after one of them is its value, not the command.
std::set<std::string> options_taking_values(const CLI::App& app);

// `sub_index`: argv index of the subcommand; `positionals`: how many
// positional arguments precede the command.
CommandSplit split_command(int argc, char** argv, int sub_index, const std::set<std::string>& takes_value,
                           int positionals);

}  // namespace nucleus::core::cli
