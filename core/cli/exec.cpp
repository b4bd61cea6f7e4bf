// nucleus exec [-e K=V] [-w DIR] ID [--] CMD [ARGS...]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/client.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core::cli {

namespace {

struct ExecOptions {
    std::string id;
    std::vector<std::string> env;
    std::string workdir;
};

int exec(const ExecOptions& o, const Invocation& invocation) {
    if (invocation.command.empty()) return fail(Error::plain("exec: no command given (nucleus exec ID -- COMMAND...)"));
    nlohmann::json body = {{"command", io::bytes_json_array(invocation.command)}};
    if (!o.env.empty()) body["env"] = io::bytes_json_array(o.env);
    if (!o.workdir.empty()) body["workdir"] = io::bytes_json(o.workdir);
    auto r = DaemonClient(invocation.socket).call("POST", sandbox_target(o.id, "/exec"), io::dump_json(body));
    if (!r) return fail(r.error());
    for (auto [field, fd] : {std::pair{"stdout", STDOUT_FILENO}, {"stderr", STDERR_FILENO}}) {
        auto it = r->find(field);
        if (it == r->end() || it->is_null()) continue;
        auto bytes = io::bytes_from_json(*it, field);
        write_out(fd, bytes ? *bytes : string_field(*r, field));
    }
    return exit_status_of(*r);
}

}  // namespace

Command add_exec_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("exec", "Run a command in a running sandbox")->group("Daemon commands");
    auto o = std::make_shared<ExecOptions>();
    app->add_option("-e,--env", o->env, "Set KEY=VALUE (repeatable)");
    app->add_option("-w,--workdir", o->workdir, "Working directory inside the sandbox");
    app->add_option("id", o->id, "Sandbox id, id prefix or name")->required();
    add_socket_option(*app, invocation);
    app->footer("Usage: nucleus exec [FLAGS] ID [--] COMMAND [ARG...]");
    return {.app = app, .positionals_before_command = 1, .run = [o, &invocation] { return exec(*o, invocation); }};
}

}  // namespace nucleus::core::cli
