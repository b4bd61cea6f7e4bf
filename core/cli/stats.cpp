// nucleus stats [--json] ID
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core::cli {

namespace {

// Flattened "a.b: value" lines for people.
void flatten(const nlohmann::json& value, const std::string& prefix, std::string& out) {
    if (value.is_object()) {
        for (const auto& [key, item] : value.items()) flatten(item, prefix.empty() ? key : prefix + "." + key, out);
    } else {
        out += prefix + ": " + (value.is_string() ? value.get<std::string>() : value.dump()) + "\n";
    }
}

struct StatsOptions {
    std::string id;
    bool as_json = false;
};

}  // namespace

Command add_stats_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("stats", "Show a sandbox's resource usage")->group("Daemon commands");
    auto o = std::make_shared<StatsOptions>();
    app->add_option("id", o->id, "Sandbox id, id prefix or name")->required();
    app->add_flag("--json", o->as_json, "Print the stats as JSON");
    add_socket_option(*app, invocation);
    return {.app = app, .run = [o, &invocation] {
                auto r = DaemonClient(invocation.socket).call("GET", sandbox_target(o->id, "/stats"));
                if (!r) return fail(r.error());
                std::string out;
                if (o->as_json) out = io::dump_json(*r, 2) + "\n";
                else flatten(*r, "", out);
                std::fputs(out.c_str(), stdout);
                return 0;
            }};
}

}  // namespace nucleus::core::cli
