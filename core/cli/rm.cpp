// nucleus rm [-f] ID...
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"

namespace nucleus::core::cli {

namespace {
struct RmOptions {
    std::vector<std::string> ids;
    bool force = false;
};
}  // namespace

Command add_rm_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("rm", "Remove sandboxes")->group("Daemon commands");
    auto o = std::make_shared<RmOptions>();
    app->add_flag("-f,--force", o->force, "Kill a running sandbox first");
    app->add_option("ids", o->ids, "Sandbox ids, id prefixes or names")->required();
    add_socket_option(*app, invocation);
    return {.app = app, .run = [o, &invocation] {
                DaemonClient daemon(invocation.socket);
                return for_each_id(o->ids, [&](const std::string& id) -> Status {
                    auto r = daemon.call("DELETE", sandbox_target(id) + (o->force ? "?force=true" : ""));
                    return r ? Status{} : Status(std::move(r).error());
                });
            }};
}

}  // namespace nucleus::core::cli
