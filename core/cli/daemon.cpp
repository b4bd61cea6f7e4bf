// nucleus daemon [FLAGS]: its flags and start-up live with the daemon
// (core/daemon/startup.cpp).
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/daemon.hpp"

namespace nucleus::core::cli {

Command add_daemon_command(CLI::App& root, Invocation&) {
    auto* app =
        root.add_subcommand("daemon", "Supervise sandboxes for API clients (docs/API.md), on one reactor thread");
    auto config = std::make_shared<DaemonConfig>();
    add_daemon_flags(*app, *config);
    return {.app = app, .run = [config] { return run_daemon(std::move(*config)); }};
}

}  // namespace nucleus::core::cli
