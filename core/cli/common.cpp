#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/run.hpp"

namespace nucleus::core::cli {

int fail(const Error& error) {
    std::fprintf(stderr, "nucleus: error: %s\n", error.describe().c_str());
    return exit_runtime_error;
}

int for_each_id(const std::vector<std::string>& ids, const std::function<Status(const std::string&)>& action) {
    int status = 0;
    for (const auto& id : ids) {
        if (auto st = action(id); !st) status = fail(st.error());
        else std::printf("%s\n", id.c_str());
    }
    return status;
}

void add_socket_option(CLI::App& app, Invocation& invocation) {
    app.add_option("--socket", invocation.socket,
                   "The daemon's socket (default: $NUCLEUS_SOCKET, else /run/nucleus/nucleus.sock)")
        ->type_name("PATH");
}

}  // namespace nucleus::core::cli
