// Runs `nucleus run ...` for the kernel-lane tests and reads its final event.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nucleus::kernel_lane {

struct SandboxRun {
    int exit_code = -1;
    std::string out;
    std::string err;
    nlohmann::json final_event;  // the "exit" record
    std::vector<nlohmann::json> events;
};

// nucleus run --events-jsonl <tmp> -v <checker dir>:/checker:ro ARGS...
SandboxRun run_sandbox(const std::vector<std::string>& args, int deadline_seconds = 120);

// Runs ARGV as given (no flags added).
SandboxRun run_sandbox_raw(const std::vector<std::string>& argv, int deadline_seconds = 120);

// The cgroup2 mount's controllers; empty when there is no cgroup2.
std::vector<std::string> root_controllers(std::string& mount);

// key=value lines from the checker.
std::string checker_value(const std::string& out, const std::string& key);

}  // namespace nucleus::kernel_lane
