// The `nucleus` command line: one CLI11 app, one file per subcommand.
//
// Each core/cli/<name>.cpp adds its subcommand to the app and returns how to
// run it once parsed. main.cpp lists them, splits off the workload's command
// for those that take one (core/cli/command_split.hpp), parses once and runs
// the one that was chosen.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/error.hpp"

namespace CLI {
class App;
}

namespace nucleus::core::cli {

// What main.cpp hands every subcommand.
struct Invocation {
    std::vector<std::string> command;  // the workload's command, split off before parsing
    std::string socket;  // the daemon's socket (--socket, $NUCLEUS_SOCKET, the default)
};

struct Command {
    CLI::App* app = nullptr;
    // Positional arguments before the workload's command (exec's id), or -1
    // when the subcommand takes no command.
    int positionals_before_command = -1;
    std::function<int()> run;
};

// Prints "nucleus: error: ..." and returns 125, the runtime's error code.
int fail(const Error& error);

// For stop, kill, rm: each id in turn; the ids done are printed, failures
// reported, and the exit code says whether all went well.
int for_each_id(const std::vector<std::string>& ids, const std::function<Status(const std::string&)>& action);

// Adds --socket to a subcommand that talks to the daemon.
void add_socket_option(CLI::App& app, Invocation& invocation);

Command add_run_command(CLI::App& root, Invocation& invocation);
Command add_create_command(CLI::App& root, Invocation& invocation);
Command add_start_command(CLI::App& root, Invocation& invocation);
Command add_ps_command(CLI::App& root, Invocation& invocation);
Command add_inspect_command(CLI::App& root, Invocation& invocation);
Command add_logs_command(CLI::App& root, Invocation& invocation);
Command add_stop_command(CLI::App& root, Invocation& invocation);
Command add_kill_command(CLI::App& root, Invocation& invocation);
Command add_rm_command(CLI::App& root, Invocation& invocation);
Command add_exec_command(CLI::App& root, Invocation& invocation);
Command add_stats_command(CLI::App& root, Invocation& invocation);
Command add_wait_command(CLI::App& root, Invocation& invocation);
Command add_daemon_command(CLI::App& root, Invocation& invocation);
Command add_gc_command(CLI::App& root, Invocation& invocation);
Command add_seccomp_command(CLI::App& root, Invocation& invocation);
Command add_rootfs_command(CLI::App& root, Invocation& invocation);
Command add_docs_command(CLI::App& root, Invocation& invocation);

}  // namespace nucleus::core::cli
