// nucleus logs [-f] [-n N] [--stderr] ID
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"

namespace nucleus::core::cli {

namespace {

struct LogsOptions {
    std::string id;
    bool follow = false, from_stderr = false;
    int tail = -1;
};

}  // namespace

Command add_logs_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("logs", "Print a sandbox's output")->group("Daemon commands");
    auto o = std::make_shared<LogsOptions>();
    app->add_flag("-f,--follow", o->follow, "Keep printing output until the sandbox exits");
    app->add_option("-n,--tail", o->tail, "Only the last N lines");
    app->add_flag("--stderr", o->from_stderr, "The sandbox's stderr instead of its stdout");
    app->add_option("id", o->id, "Sandbox id, id prefix or name")->required();
    add_socket_option(*app, invocation);
    return {.app = app, .run = [o, &invocation] {
                std::string target =
                    sandbox_target(o->id, "/logs") + "?stream=" + (o->from_stderr ? "stderr" : "stdout");
                if (o->tail >= 0) target += "&tail=" + std::to_string(o->tail);
                if (o->follow) target += "&follow=true";
                auto st = DaemonClient(invocation.socket).stream(target, [](std::string_view data) {
                    return write_out(STDOUT_FILENO, data);
                });
                return st ? 0 : fail(st.error());
            }};
}

}  // namespace nucleus::core::cli
