// `nucleus run`: one sandbox, from a validated spec to its exit code.
#pragma once

#include "core/spec.hpp"

namespace nucleus::core {

// Exit codes beyond the workload's own (Docker's conventions, plus timeout's).
constexpr int exit_runtime_error = 125;
constexpr int exit_cannot_execute = 126;
constexpr int exit_not_found = 127;
constexpr int exit_timeout = 124;  // as timeout(1): the sandbox hit --timeout

// Runs the sandbox, streams its output, returns the exit code to use.
// Errors are reported once, here, on stderr and in the final event.
int run_sandbox(const SandboxSpec& spec);

}  // namespace nucleus::core
