// nucleus start ID
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"

namespace nucleus::core::cli {

Command add_start_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("start", "Start a created sandbox")->group("Daemon commands");
    auto id = std::make_shared<std::string>();
    app->add_option("id", *id, "Sandbox id, id prefix or name")->required();
    add_socket_option(*app, invocation);
    return {.app = app, .run = [id, &invocation] {
                auto r = DaemonClient(invocation.socket).call("POST", sandbox_target(*id, "/start"));
                if (!r) return fail(r.error());
                std::printf("%s\n", id->c_str());
                return 0;
            }};
}

}  // namespace nucleus::core::cli
