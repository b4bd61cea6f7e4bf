// nucleus inspect ID
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core::cli {

Command add_inspect_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("inspect", "Show a sandbox as JSON")->group("Daemon commands");
    auto id = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    app->add_option("id", *id, "Sandbox id, id prefix or name")->required();
    app->add_flag("--json", *as_json, "JSON output (the default and only format)");
    add_socket_option(*app, invocation);
    return {.app = app, .run = [id, as_json, &invocation] {
                auto r = DaemonClient(invocation.socket).call("GET", sandbox_target(*id));
                if (!r) return fail(r.error());
                std::printf("%s\n", io::dump_json(*r, 2).c_str());
                return 0;
            }};
}

}  // namespace nucleus::core::cli
