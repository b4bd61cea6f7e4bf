// nucleus kill [-s SIGNAL] ID...
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"

namespace nucleus::core::cli {

namespace {
struct KillOptions {
    std::vector<std::string> ids;
    std::string signal = "KILL";
};
}  // namespace

Command add_kill_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("kill", "Send a signal to sandboxes")->group("Daemon commands");
    auto o = std::make_shared<KillOptions>();
    app->add_option("-s,--signal", o->signal, "Signal name or number (default KILL)");
    app->add_option("ids", o->ids, "Sandbox ids, id prefixes or names")->required();
    add_socket_option(*app, invocation);
    return {.app = app, .run = [o, &invocation] {
                auto number = parse_signal(o->signal);
                if (!number) return fail(number.error());
                DaemonClient daemon(invocation.socket);
                return for_each_id(o->ids, [&](const std::string& id) -> Status {
                    auto r = daemon.call("POST", sandbox_target(id, "/kill") + "?signal=" + std::to_string(*number));
                    return r ? Status{} : Status(std::move(r).error());
                });
            }};
}

}  // namespace nucleus::core::cli
