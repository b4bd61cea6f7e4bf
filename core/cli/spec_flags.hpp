// The spec keys (core/spec/keys.hpp) as command-line flags of `nucleus run`
// and `nucleus create`, and the spec document they and --config make.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/spec/keys.hpp"
#include "io/error.hpp"

namespace CLI {
class App;
}

namespace nucleus::core::cli {

// Flag values as CLI11 fills them; only those given reach the document.
struct SpecFlags {
    std::map<std::string, std::string> values;
    std::map<std::string, std::vector<std::string>> lists;
    std::map<std::string, bool> switches;
    std::string config;
    std::string config_fd;
};

// Adds a flag for every spec key with a command-line name, grouped as the
// table groups them, plus --config and --config-fd.
void add_spec_flags(CLI::App& app, SpecFlags& flags);

// The document of a parsed run/create: --config / --config-fd first, the
// flags given on the command line over it, then `command` if not empty.
// Values are bytes: anything that is not UTF-8 is carried as {"base64"}.
Result<nlohmann::json> spec_document(const SpecFlags& flags, const CLI::App& app,
                                     const std::vector<std::string>& command);

}  // namespace nucleus::core::cli
