// nucleus create [FLAGS] [--] CMD [ARGS...]: a sandbox through the daemon.
#include <unistd.h>

#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/cli/spec_flags.hpp"
#include "core/client.hpp"
#include "core/spec.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core::cli {

namespace {

using nlohmann::json;

// Follows both outputs, then exits with the sandbox's code, as `docker run`
// does.
int attach(const DaemonClient& daemon, const std::string& id) {
    Status streams[2];
    auto follow = [&](int index, const char* stream, int fd) {
        streams[index] = daemon.stream(sandbox_target(id, "/logs") + "?stream=" + stream + "&follow=true",
                                       [fd](std::string_view data) { return write_out(fd, data); });
    };
    std::thread err(follow, 1, "stderr", STDERR_FILENO);
    follow(0, "stdout", STDOUT_FILENO);
    err.join();
    for (const auto& st : streams)
        if (!st) std::fprintf(stderr, "nucleus: warning: following the output: %s\n", st.error().describe().c_str());
    auto result = daemon.call("POST", sandbox_target(id, "/wait"));
    if (!result) return fail(result.error());
    return exit_status_of(*result);
}

struct CreateOptions {
    SpecFlags flags;
    bool detach = false;
    bool no_start = false;
};

int create(const CLI::App& app, const CreateOptions& options, const Invocation& invocation) {
    auto document = spec_document(options.flags, app, invocation.command);
    if (!document) return fail(document.error());
    // Resolved here, against this user's working directory, environment and
    // files; the daemon resolves again (a resolved document stays as it is)
    // and checks what depends on the identity it runs sandboxes with.
    auto resolved = resolve_document(*document, DocumentSource::Daemon, /*for_daemon=*/true);
    if (!resolved) return fail(resolved.error());
    if (auto spec = spec_from_resolved(*resolved, DocumentSource::Daemon); !spec) return fail(spec.error());

    DaemonClient daemon(invocation.socket);
    std::string target = std::string("/v1/sandboxes") + (options.no_start ? "?start=false" : "");
    auto created = daemon.call("POST", target, io::dump_json(*resolved));
    if (!created) return fail(created.error());
    std::string id = string_field(*created, "id");
    if (id.empty()) return fail(Error::plain("the daemon's answer has no sandbox id"));
    if (options.detach || options.no_start) {
        std::printf("%s\n", id.c_str());
        return 0;
    }
    return attach(daemon, id);
}

}  // namespace

Command add_create_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("create", "Create (and start) a sandbox through the daemon; attach unless -d");
    auto options = std::make_shared<CreateOptions>();
    add_spec_flags(*app, options->flags);
    app->add_flag("-d,--detach", options->detach, "Print the id and return instead of following the output");
    app->add_flag("--no-start", options->no_start, "Only create the sandbox (start it with `nucleus start`)");
    add_socket_option(*app, invocation);
    app->group("Daemon commands");
    app->footer("Usage: nucleus create [FLAGS] [--] COMMAND [ARG...]");
    return {.app = app, .positionals_before_command = 0, .run = [app, options, &invocation] {
                return create(*app, *options, invocation);
            }};
}

}  // namespace nucleus::core::cli
