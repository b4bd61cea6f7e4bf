// Running a program to completion and collecting what it wrote: the one
// process harness of the test suites (tests/kernel/sandbox_run.hpp) and the
// benchmarks (bench/e2e/process.hpp).
//
// Blocking by design (poll(2) on the two pipes, waitpid(2) at the end): it
// runs in test and benchmark drivers, never in the runtime's reactor.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nucleus::harness {

struct Credentials {
    uid_t uid = 0;
    gid_t gid = 0;
};

struct RunOptions {
    std::optional<Credentials> as;  // drop to these ids before exec (root only)
    std::string cwd;  // empty: ours
    double timeout_s = 0;  // 0: none; then SIGKILL
    std::function<void()> tick;  // called about every 250 ms while it runs
    std::function<void(pid_t)> started;  // once, right after the fork
    std::size_t max_output = SIZE_MAX;  // per stream; beyond it the last bytes are kept
};

struct RunResult {
    int status = -1;  // waitpid(2) status; -1 if it could not be started
    bool timed_out = false;  // killed at RunOptions::timeout_s
    std::string out;
    std::string err;

    bool ok() const;  // exited with 0
    int exit_code() const;  // as a shell reports it: the status, 128 + signal, -1 if not started
    std::string failure() const;  // "exit status 1: <stderr (else stdout) on one line>"
};

// Runs argv (argv[0] an absolute path; no PATH search) with stdin on
// /dev/null, collecting stdout and stderr.
RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// "exit status 1", "killed by signal Killed".
std::string describe_wait_status(int status);
// Multi-line output as one line, at most `max` characters (its end kept:
// errors come last).
std::string one_line(const std::string& text, std::size_t max = 400);

}  // namespace nucleus::harness
