// The `nucleus` command line. Flags become a spec document (core/spec.hpp);
// nothing else reads them.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/error.hpp"

namespace CLI {
class App;
}

namespace nucleus::core {

// Parses argv, dispatches the subcommand, returns the process exit code.
int main_cli(int argc, char** argv);

// `nucleus run`'s flags, shared with `nucleus create` (core/client.cpp) so
// both build the same spec document.
struct RunFlags {
    // Flag values as CLI11 fills them; only those given reach the document.
    std::map<std::string, std::string> strings;
    std::map<std::string, std::vector<std::string>> lists;
    std::map<std::string, bool> bools;
    double timeout = 0;
    int events_fd = -1;
    std::string config;
    int config_fd = -1;
    int env_fd = -1;
    std::set<std::string> takes_value;  // "-e", "--env", ...: the next token is the value
};

// Adds every run flag to `app` (the run or create subcommand), bound to `flags`.
void add_run_flags(CLI::App& app, RunFlags& flags);

// Where the command starts in `nucleus run|create ...` (argv[run_index] is
// the subcommand): the index of "--", or of the first token that is neither
// a flag nor a flag's value (Docker's rule: flags after the command belong
// to the command); argc when there is none.
size_t command_start(int argc, char** argv, int run_index, const RunFlags& flags);

// The spec document of a parsed run/create: --config / --config-fd, then
// the flags given on the command line over it, then `command` if not empty.
Result<nlohmann::json> run_document(const RunFlags& flags, const CLI::App& app, const std::vector<std::string>& command);

}  // namespace nucleus::core
