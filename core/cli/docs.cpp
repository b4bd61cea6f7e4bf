// nucleus docs flags: the README's flag tables, from the spec keys.
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/spec/markdown.hpp"

namespace nucleus::core::cli {

Command add_docs_command(CLI::App& root, Invocation&) {
    auto* app = root.add_subcommand("docs", "Print reference documentation generated from the code");
    app->add_subcommand("flags", "The flag tables of the README (Markdown)");
    app->require_subcommand(1);
    return {.app = app, .run = [] {
                std::fputs(flag_tables_markdown().c_str(), stdout);
                return 0;
            }};
}

}  // namespace nucleus::core::cli
