// nucleus ps [-a] [--json] [-q] [--no-trunc]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core::cli {

namespace {

struct PsOptions {
    bool all = false, as_json = false, quiet = false, no_trunc = false;
};

int ps(const PsOptions& o, const Invocation& invocation) {
    auto r = DaemonClient(invocation.socket).call("GET", std::string("/v1/sandboxes") + (o.all ? "?all=true" : ""));
    if (!r) return fail(r.error());
    auto list = r->is_object() ? r->value("sandboxes", nlohmann::json::array()) : nlohmann::json::array();
    if (o.as_json) {
        std::printf("%s\n", io::dump_json(list, 2).c_str());
    } else if (o.quiet) {
        for (const auto& s : list) {
            std::string id = string_field(s, "id");
            std::printf("%s\n", (o.no_trunc ? id : id.substr(0, 12)).c_str());
        }
    } else {
        std::fputs(format_sandbox_table(list, std::chrono::system_clock::now(), !o.no_trunc).c_str(), stdout);
    }
    return 0;
}

}  // namespace

Command add_ps_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("ps", "List sandboxes")->group("Daemon commands");
    auto o = std::make_shared<PsOptions>();
    app->add_flag("-a,--all", o->all, "Include exited sandboxes");
    app->add_flag("--json", o->as_json, "Print the sandbox objects as JSON");
    app->add_flag("-q,--quiet", o->quiet, "Print only the ids");
    app->add_flag("--no-trunc", o->no_trunc, "Do not shorten ids and commands");
    add_socket_option(*app, invocation);
    return {.app = app, .run = [o, &invocation] { return ps(*o, invocation); }};
}

}  // namespace nucleus::core::cli
