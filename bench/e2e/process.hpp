// Running other programs: timed one-shot runs (cold start), captured runs
// (tools, pgbench) and long-lived servers, plus interrupt handling so that
// Ctrl-C stops between steps and every scratch directory is removed.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "run_process.hpp"

namespace nucleus::bench {

// Set by SIGINT, SIGTERM and SIGHUP; loops check it and unwind normally.
extern volatile std::sig_atomic_t g_interrupted;
void install_interrupt_handlers();

struct RunOutcome {
  bool success = false;
  double elapsed_ms = 0;  // posix_spawn .. waitpid, CLOCK_MONOTONIC
  std::string failure;  // why it was not a success, e.g. "exit status 1"
  std::string stderr_text;  // only filled when captured (probe runs)
};

// Runs argv[0] (no PATH search, so lookup cost is never timed) with
// stdin/stdout on /dev/null; stderr too unless `capture_stderr`.
RunOutcome run_once(const std::vector<std::string>& argv, bool capture_stderr = false);

using harness::Credentials;
using harness::describe_wait_status;
using harness::one_line;
// Everything a captured run collects (harness::RunResult): status, out, err.
using Captured = harness::RunResult;

struct CaptureOptions {
  std::optional<Credentials> as;  // drop to these ids (root only)
  std::string cwd = "/";
  double timeout_s = 0;  // 0: none; then SIGKILL
  std::function<void()> tick;  // called about every 250 ms while it runs
};

// Runs argv (argv[0] absolute), collecting stdout and stderr (the last MiB
// of each). While it runs, an interrupt of nucleus-bench is passed on to it
// as SIGINT.
Captured run_capture(const std::vector<std::string>& argv, const CaptureOptions& options = {});

// A background process in its own process group (a terminal's Ctrl-C reaches
// only nucleus-bench, which then stops it in order), output to `log_path`.
class Server {
public:
  Server() = default;
  Server(const std::vector<std::string>& argv, const std::optional<Credentials>& as, const std::string& log_path);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  pid_t pid() const { return pid_; }
  bool running();  // false once it has exited (status kept)
  std::string exit_description() const;  // after it has exited
  // `signal` (default SIGINT: postgres's fast shutdown; nucleus forwards it),
  // then SIGKILL after `grace_s`. Returns whether it exited within the grace
  // period.
  bool stop(double grace_s = 20, int signal = SIGINT);

private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
};

std::optional<std::string> find_executable(const std::string& name);
std::string shell_quote(const std::string& word);
std::string join_command(const std::vector<std::string>& argv);
std::vector<std::string> split(const std::string& text, char separator);
// First line of `tool ARGS` output (stdout, else stderr), or "".
std::string tool_version(const std::vector<std::string>& argv);

}  // namespace nucleus::bench
