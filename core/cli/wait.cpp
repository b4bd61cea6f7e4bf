// nucleus wait ID
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"

namespace nucleus::core::cli {

Command add_wait_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("wait",
                                    "Wait for a sandbox to exit; print and exit with its code "
                                    "(\"unknown\" and 123 when a daemon restart lost it)")
                    ->group("Daemon commands");
    auto id = std::make_shared<std::string>();
    app->add_option("id", *id, "Sandbox id, id prefix or name")->required();
    add_socket_option(*app, invocation);
    return {.app = app, .run = [id, &invocation] {
                auto r = DaemonClient(invocation.socket).call("POST", sandbox_target(*id, "/wait"));
                if (!r) return fail(r.error());
                int code = exit_status_of(*r);
                bool unknown = r->is_object() && r->contains("exit_known") && (*r)["exit_known"] == false;
                std::printf("%s\n", unknown ? "unknown" : std::to_string(code).c_str());
                return code;
            }};
}

}  // namespace nucleus::core::cli
