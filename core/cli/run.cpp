// nucleus run [FLAGS] [--] CMD [ARGS...]
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/cli/spec_flags.hpp"
#include "core/run.hpp"
#include "core/spec.hpp"

namespace nucleus::core::cli {

Command add_run_command(CLI::App& root, Invocation& invocation) {
    auto* app = root.add_subcommand("run", "Run a command in a new sandbox");
    auto flags = std::make_shared<SpecFlags>();
    add_spec_flags(*app, *flags);
    app->footer(
        "Usage: nucleus run [FLAGS] [--] COMMAND [ARG...]\n"
        "The sandbox is removed when it exits (there is nothing to --rm).");
    return {.app = app, .positionals_before_command = 0, .run = [app, flags, &invocation] {
                auto document = spec_document(*flags, *app, invocation.command);
                if (!document) return fail(document.error());
                auto spec = spec_from_document(*document, DocumentSource::Run);
                if (!spec) return fail(spec.error());
                return run_sandbox(*spec);
            }};
}

}  // namespace nucleus::core::cli
