#include "sandbox_run.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "isolation/cgroup.hpp"
#include "run_process.hpp"

namespace nucleus::kernel_lane {

SandboxRun run_sandbox(const std::vector<std::string>& args, int deadline_seconds) {
    char events_path[] = "/tmp/nucleus-kernel-events-XXXXXX";
    int events_fd = ::mkstemp(events_path);
    ::close(events_fd);
    std::vector<std::string> argv = {NUCLEUS_BINARY, "run", "--events-jsonl",
                                     events_path,    "-v",  std::string(NUCLEUS_CHECKER_DIR) + ":/checker:ro"};
    argv.insert(argv.end(), args.begin(), args.end());
    SandboxRun run = run_sandbox_raw(argv, deadline_seconds);
    std::ifstream events(events_path);
    for (std::string line; std::getline(events, line);) {
        auto record = nlohmann::json::parse(line, nullptr, false);
        if (record.is_discarded()) continue;
        run.events.push_back(record);
        if (record.value("event", "") == "exit") run.final_event = record;
    }
    ::unlink(events_path);
    return run;
}

SandboxRun run_sandbox_raw(const std::vector<std::string>& argv, int deadline_seconds) {
    harness::RunOptions options;
    options.timeout_s = deadline_seconds;  // a hung run must not hang the lane
    harness::RunResult result = harness::run(argv, options);
    SandboxRun run;
    run.exit_code = result.exit_code();
    run.out = std::move(result.out);
    run.err = std::move(result.err);
    return run;
}

std::vector<std::string> root_controllers(std::string& mount) {
    auto found = isolation::find_cgroup2_mount();
    if (!found) return {};
    mount = *found;
    auto controllers = isolation::available_controllers(*found);
    return controllers ? *controllers : std::vector<std::string>{};
}

std::string checker_value(const std::string& out, const std::string& key) {
    std::istringstream lines(out);
    std::string line, value;
    while (std::getline(lines, line))
        if (line.compare(0, key.size() + 1, key + "=") == 0) value = line.substr(key.size() + 1);
    return value;
}

}  // namespace nucleus::kernel_lane
