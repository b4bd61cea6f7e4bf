// nucleus stop [-t SECONDS] ID...
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"

namespace nucleus::core::cli {

namespace {
struct StopOptions {
    std::vector<std::string> ids;
    double timeout = -1;
};
}  // namespace

Command add_stop_command(CLI::App& root, Invocation& invocation) {
    auto* app =
        root.add_subcommand("stop", "Stop sandboxes: SIGTERM, then SIGKILL after a timeout")->group("Daemon commands");
    auto o = std::make_shared<StopOptions>();
    app->add_option("-t,--timeout", o->timeout, "Seconds between SIGTERM and SIGKILL (daemon default 10)");
    app->add_option("ids", o->ids, "Sandbox ids, id prefixes or names")->required();
    add_socket_option(*app, invocation);
    return {.app = app, .run = [o, &invocation] {
                std::string query = o->timeout >= 0 ? "?timeout=" + std::to_string(static_cast<long>(o->timeout)) : "";
                DaemonClient daemon(invocation.socket);
                return for_each_id(o->ids, [&](const std::string& id) -> Status {
                    auto r = daemon.call("POST", sandbox_target(id, "/stop") + query);
                    return r ? Status{} : Status(std::move(r).error());
                });
            }};
}

}  // namespace nucleus::core::cli
