#include <cstdlib>
#include <cstring>

#include <CLI/CLI.hpp>

#include "core/cli.hpp"
#include "core/cli/command_split.hpp"
#include "core/cli/commands.hpp"
#include "core/client.hpp"
#include "core/run.hpp"
#include "core/state.hpp"

namespace nucleus::core {

namespace {

constexpr const char* version_text = "nucleus 0.1.0";

constexpr const char* exit_codes_text =
    "Exit codes: the workload's own; 122 the copy-in-out workspace could not be synced back (the copy is kept);\n"
    "123 the exit status is unknown (a sandbox re-adopted after a daemon restart); 124 timeout;\n"
    "125 runtime or usage error; 126 cannot execute; 127 command not found; 128+N killed by signal N.";

// The first token that is not a global flag: the subcommand's name.
int subcommand_index(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (argv[i][0] != '-') return i;
    return argc;
}

std::string command_list(const CLI::App& app) {
    std::string out;
    for (const CLI::App* sub : app.get_subcommands({})) {
        std::string name = sub->get_name();
        out += "  " + name + std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') + sub->get_description() + "\n";
    }
    return out;
}

}  // namespace

int main_cli(int argc, char** argv) {
    CLI::App app{"Nucleus: a Linux sandbox runtime for agents and services.", "nucleus"};
    app.set_version_flag("--version", version_text);
    app.footer(exit_codes_text);
    app.require_subcommand(0, 1);

    cli::Invocation invocation;
    invocation.socket = default_daemon_socket;
    if (const char* env = std::getenv("NUCLEUS_SOCKET"); env && *env) invocation.socket = env;

    std::vector<cli::Command> commands;
    for (auto add : {cli::add_run_command, cli::add_create_command, cli::add_start_command, cli::add_ps_command,
                     cli::add_inspect_command, cli::add_logs_command, cli::add_stop_command, cli::add_kill_command,
                     cli::add_rm_command, cli::add_exec_command, cli::add_stats_command, cli::add_wait_command,
                     cli::add_daemon_command, cli::add_gc_command, cli::add_seccomp_command, cli::add_rootfs_command,
                     cli::add_docs_command})
        commands.push_back(add(app, invocation));
    app.add_subcommand("version", "Print the version")->callback([] { std::puts(version_text); });

    int sub = subcommand_index(argc, argv);
    int parse_argc = argc;
    if (sub < argc) {
        std::string name = argv[sub];
        CLI::App* chosen = nullptr;
        for (CLI::App* candidate : app.get_subcommands({}))
            if (candidate->get_name() == name) chosen = candidate;
        if (!chosen) {
            std::fprintf(stderr, "nucleus: error: unknown command '%s'\nCommands:\n%sSee 'nucleus --help'.\n",
                         name.c_str(), command_list(app).c_str());
            return exit_runtime_error;
        }
        for (const auto& command : commands) {
            if (command.app != chosen || command.positionals_before_command < 0) continue;
            auto split = cli::split_command(argc, argv, sub, cli::options_taking_values(*chosen),
                                            command.positionals_before_command);
            parse_argc = split.parse_argc;
            invocation.command = std::move(split.command);
        }
    }
    try {
        app.parse(parse_argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string where = sub < argc ? std::string(" ") + argv[sub] : "";
        std::fprintf(stderr, "nucleus: error: %s\nSee 'nucleus%s --help'.\n", e.what(), where.c_str());
        return exit_runtime_error;
    }
    for (const auto& command : commands)
        if (command.app->parsed()) return command.run();
    if (sub >= argc) std::fputs(app.help().c_str(), stdout);  // bare `nucleus`: the help, as docker does
    return 0;
}

}  // namespace nucleus::core
