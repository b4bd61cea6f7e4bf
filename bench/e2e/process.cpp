#include "process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace fs = std::filesystem;

namespace nucleus::bench {

volatile std::sig_atomic_t g_interrupted = 0;

namespace {

volatile pid_t g_foreground_child = 0;

void on_interrupt(int) {
  g_interrupted = 1;
  if (g_foreground_child > 0) ::kill(g_foreground_child, SIGINT);
}

// Opened once, close-on-exec: posix_spawn dup2()s it onto 0/1/2, so no
// per-run open() of /dev/null lands inside the timed window.
int devnull_fd() {
  static const int fd = [] {
    const int opened = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (opened < 0) throw std::runtime_error(std::string("open /dev/null: ") + std::strerror(errno));
    return opened;
  }();
  return fd;
}

double now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> raw;
  for (const auto& arg : argv) raw.push_back(const_cast<char*>(arg.c_str()));
  raw.push_back(nullptr);
  return raw;
}

// In a forked child: become `as` (and nothing else) or die with a message.
void drop_to(const std::optional<Credentials>& as) {
  if (!as) return;
  if (::setgroups(0, nullptr) != 0 || ::setgid(as->gid) != 0 || ::setuid(as->uid) != 0) {
    const char message[] = "nucleus-bench: cannot drop privileges\n";
    (void)!::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(126);
  }
}

[[noreturn]] void exec_or_die(const std::vector<std::string>& argv) {
  auto raw = c_argv(argv);
  ::execve(raw[0], raw.data(), environ);
  const std::string message = "nucleus-bench: exec " + argv[0] + ": " + std::strerror(errno) + "\n";
  (void)!::write(STDERR_FILENO, message.data(), message.size());
  ::_exit(127);
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  action.sa_flags = 0;  // no SA_RESTART: a blocked wait returns EINTR and sees the flag
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal, &action, nullptr);
}

RunOutcome run_once(const std::vector<std::string>& argv, bool capture_stderr) {
  RunOutcome outcome;
  auto raw = c_argv(argv);
  int stderr_pipe[2] = {-1, -1};
  if (capture_stderr && ::pipe2(stderr_pipe, O_CLOEXEC) != 0) {
    outcome.failure = std::string("pipe2: ") + std::strerror(errno);
    return outcome;
  }
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, devnull_fd(), STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, devnull_fd(), STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, capture_stderr ? stderr_pipe[1] : devnull_fd(), STDERR_FILENO);

  pid_t pid = -1;
  const double start = now_ms();
  const int spawn_error = ::posix_spawn(&pid, raw[0], &actions, nullptr, raw.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (capture_stderr) {
    ::close(stderr_pipe[1]);
    if (spawn_error == 0) {
      char buffer[1024];
      for (ssize_t got; (got = ::read(stderr_pipe[0], buffer, sizeof buffer)) != 0;) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        outcome.stderr_text.append(buffer, static_cast<std::size_t>(got));
        if (outcome.stderr_text.size() > 8192) outcome.stderr_text.erase(0, outcome.stderr_text.size() - 8192);
      }
    }
    ::close(stderr_pipe[0]);
  }
  if (spawn_error != 0) {
    outcome.failure = "posix_spawn " + argv[0] + ": " + std::strerror(spawn_error);
    return outcome;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      outcome.failure = std::string("waitpid: ") + std::strerror(errno);
      return outcome;
    }
  }
  outcome.elapsed_ms = now_ms() - start;
  outcome.success = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!outcome.success) outcome.failure = describe_wait_status(status);
  return outcome;
}

Captured run_capture(const std::vector<std::string>& argv, const CaptureOptions& options) {
  Captured result = harness::run(argv, {.as = options.as,
                                        .cwd = options.cwd,
                                        .timeout_s = options.timeout_s,
                                        .tick = options.tick,
                                        .started =
                                            [](pid_t pid) {
                                              g_foreground_child = pid;
                                              if (g_interrupted) ::kill(pid, SIGINT);
                                            },
                                        .max_output = 1u << 20});
  g_foreground_child = 0;
  return result;
}

Server::Server(const std::vector<std::string>& argv, const std::optional<Credentials>& as,
               const std::string& log_path) {
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) throw std::runtime_error("open " + log_path + ": " + std::strerror(errno));
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::dup2(devnull_fd(), STDIN_FILENO);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    if (::chdir("/") != 0) ::_exit(126);
    drop_to(as);
    exec_or_die(argv);
  }
  const int fork_errno = errno;
  ::close(log);
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(fork_errno));
  ::setpgid(pid_, pid_);  // both sides, so it holds before either runs on
}

Server::~Server() {
  if (pid_ > 0) stop(10);
}

bool Server::running() {
  if (pid_ <= 0 || exited_) return false;
  if (::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
  return !exited_;
}

std::string Server::exit_description() const { return exited_ ? describe_wait_status(status_) : "running"; }

bool Server::stop(double grace_s, int signal) {
  if (pid_ <= 0) return true;
  bool clean = true;
  if (running()) {
    ::kill(pid_, signal);
    const double deadline = now_ms() + grace_s * 1000;
    while (running() && now_ms() < deadline) ::usleep(20000);
    if (running()) {
      clean = false;
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {}
      exited_ = true;
    }
  }
  pid_ = -1;
  return clean;
}

std::optional<std::string> find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return ::access(name.c_str(), X_OK) == 0 ? std::optional(name) : std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  // sbin too: runc lives in /usr/sbin, which a non-login root shell may lack.
  std::string dirs =
      std::string(path_env ? path_env : "/usr/local/bin:/usr/bin:/bin") + ":/usr/local/sbin:/usr/sbin:/sbin";
  for (const auto& dir : split(dirs, ':')) {
    const fs::path candidate = fs::path(dir) / name;
    std::error_code ec;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate, ec)) return candidate.string();
  }
  return std::nullopt;
}

std::string shell_quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_./=:,+@%") == std::string::npos) {
    return word;
  }
  std::string quoted = "'";
  for (char c : word) quoted += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& arg : argv) line += (line.empty() ? "" : " ") + shell_quote(arg);
  return line;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::string tool_version(const std::vector<std::string>& argv) {
  CaptureOptions options;
  options.timeout_s = 10;
  const Captured got = run_capture(argv, options);
  const std::string& text = got.out.empty() ? got.err : got.out;
  return got.ok() ? text.substr(0, text.find('\n')) : "";
}

}  // namespace nucleus::bench
