// nucleus gc: clean up after supervisors that died without tearing down.
#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/run.hpp"
#include "core/state.hpp"

namespace nucleus::core::cli {

Command add_gc_command(CLI::App& root, Invocation&) {
    auto* app = root.add_subcommand("gc", "Clean up after supervisors that died without tearing down");
    return {.app = app, .run = [] {
                auto paths = prepare_runtime_paths();
                if (!paths) return fail(paths.error());
                auto report = collect_stale_sandboxes(*paths);
                std::printf("removed %d stale sandbox%s\n", report.sandboxes, report.sandboxes == 1 ? "" : "es");
                for (const auto& e : report.errors) std::fprintf(stderr, "nucleus: warning: %s\n", e.c_str());
                return report.errors.empty() ? 0 : exit_runtime_error;
            }};
}

}  // namespace nucleus::core::cli
