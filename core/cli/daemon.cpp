// nucleus daemon [FLAGS]: its flags are the daemon's own (core/daemon.cpp).
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/daemon.hpp"

namespace nucleus::core::cli {

Command add_daemon_command(CLI::App& root, Invocation&) {
    auto* app = root.add_subcommand("daemon", "Supervise sandboxes for API clients (docs/API.md)");
    // Its flags are parsed by daemon_main, which sees the original argv.
    app->prefix_command();
    app->set_help_flag();
    auto args = std::make_shared<std::vector<std::string>>();
    return {.app = app, .run = [app, args] {
        std::vector<std::string> words = {"nucleus", "daemon"};
        for (const auto& extra : app->remaining()) words.push_back(extra);
        std::vector<char*> argv;
        for (auto& w : words) argv.push_back(w.data());
        argv.push_back(nullptr);
        return daemon_main(static_cast<int>(words.size()), argv.data());
    }};
}

}  // namespace nucleus::core::cli
