// The `nucleus` command line. Flags become a spec document (core/spec.hpp);
// nothing else reads them.
#pragma once

namespace nucleus::core {

// Parses argv, dispatches the subcommand, returns the process exit code.
int main_cli(int argc, char** argv);

}  // namespace nucleus::core
