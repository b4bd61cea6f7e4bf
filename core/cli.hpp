// The `nucleus` command line (core/cli/): one CLI11 app, a file per
// subcommand. Flags become a spec document (core/spec.hpp); nothing else
// reads them.
#pragma once

namespace nucleus::core {

// Parses argv, runs the subcommand, returns the process exit code.
int main_cli(int argc, char** argv);

}  // namespace nucleus::core
