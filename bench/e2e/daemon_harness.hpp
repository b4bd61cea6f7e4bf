// What `spawn` and `density` share: a private `nucleus daemon` on a scratch
// socket and state directory, its API (io/http_client.hpp), and host-side
// counts that show what a run left behind.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <string>
#include <vector>

#include "process.hpp"
#include "report.hpp"

namespace nucleus::bench {

// The spec document both subcommands send: full isolation on the busybox
// rootfs, without a network namespace.
json sandbox_spec(const std::filesystem::path& rootfs, const std::vector<std::string>& command);
// The same on a Nix closure manifest: PROGRAM from its first root's bin/.
json closure_spec(const std::string& manifest, const std::string& program, const std::vector<std::string>& args);

struct ApiResult {
  int status = 0;  // HTTP status; 0 when the request itself failed
  json body;  // parsed JSON body (null when empty or not JSON)
  std::string error;  // transport error, or the daemon's "error" text
  bool ok(int expected) const { return status == expected; }
  std::string describe() const;  // "HTTP 500: starting sandbox ...: ..."
};

// A `nucleus daemon --socket S --state-dir D` of its own, in its own process
// group, output to D/../daemon.log. The destructor force-removes whatever
// sandboxes it still holds, then stops it with SIGTERM (SIGKILL after 10 s):
// a daemon that exits leaves its sandboxes running for a successor.
class BenchDaemon {
public:
  // Starts the daemon (socket, log and, unless `state_dir` is given, its
  // --state-dir under `scratch`) and waits (up to 15 s) until GET
  // /v1/health answers 200; throws std::runtime_error with the end of its
  // log otherwise.
  // `prefix` runs before the daemon's argv (e.g. `unshare --net`), each
  // part exec'ing the next so that pid() stays the daemon's.
  BenchDaemon(const std::string& nucleus_binary, const std::filesystem::path& scratch,
              const std::filesystem::path& state_dir = {}, const std::vector<std::string>& prefix = {});
  ~BenchDaemon();
  BenchDaemon(const BenchDaemon&) = delete;
  BenchDaemon& operator=(const BenchDaemon&) = delete;

  pid_t pid() const { return server_->pid(); }
  const std::string& socket() const { return socket_; }
  ApiResult call(const std::string& method, const std::string& target, const std::string& body = {}) const;

  // Every sandbox id the daemon knows (GET /v1/sandboxes?all=true).
  std::vector<std::string> list_ids() const;
  // DELETE ?force=true of everything it holds; the number that failed.
  std::size_t remove_all() const;
  // remove_all(), then SIGTERM; whether it exited within the grace period.
  bool stop();
  std::string log_tail() const;

private:
  std::string socket_;
  std::string log_path_;
  std::unique_ptr<Server> server_;
  bool stopped_ = false;
};

// ---- /proc and cgroup2 probes ---------------------------------------------

// The cgroup2 hierarchy's mount point from /proc/self/mountinfo (the last
// one mounted with root "/": /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
// hybrid host).
std::optional<std::string> cgroup2_mount();

// A field of /proc/PID/status ("VmRSS", "voluntary_ctxt_switches"), its
// first number; -1 when unreadable.
long long proc_status_value(pid_t pid, const std::string& field);
// The same summed over every thread of PID (/proc/PID/task/*/status).
long long proc_status_value_all_threads(pid_t pid, const std::string& field);
// CPU seconds from /proc/PID/stat: utime + stime of PID itself, and
// cutime + cstime of its reaped children (the sandboxes); {-1, -1} when
// unreadable.
std::pair<double, double> proc_cpu_seconds(pid_t pid);
// Entries of /proc/PID/fd; -1 when unreadable.
long long count_fds(pid_t pid);
// MemAvailable from /proc/meminfo in KiB (median of 5 readings over 0.2 s);
// -1 when unreadable.
long long mem_available_kib();
// Sum of Pss (/proc/PID/smaps_rollup) of the processes in `counts` whose
// sandbox id is in `ids`, in KiB, and how many there were.
std::pair<long long, long long> sandbox_pss_kib(const struct HostCounts& counts, const std::set<std::string>& ids);
// A cgroup's memory.current in bytes; -1 when there is none.
long long cgroup_memory_current(const std::string& cgroup_path);

// What the leak check counts; sandboxes are recognised by the 32-hex-digit
// id in "sandbox-<id>".
struct HostCounts {
  long long daemon_fds = -1;  // entries of /proc/PID/fd
  long long mounts = -1;  // lines of /proc/self/mountinfo
  std::set<std::string> cgroups;  // ids of <cgroup2>/nucleus/sandbox-* dirs
  std::set<std::string> processes;  // "pid:id" of processes in /nucleus/sandbox-<id> cgroups
};
HostCounts count_host(pid_t daemon_pid, const std::optional<std::string>& cgroup2);

// After minus before. Cgroups and processes count only ids in `ours` (every
// sandbox this run created: other users of the host may run sandboxes too);
// fds and mounts are plain differences, floored at 0.
struct Leaks {
  long long fds = 0;
  long long cgroups = 0;
  long long mounts = 0;
  long long processes = 0;
  bool any() const { return fds || cgroups || mounts || processes; }
  json to_json() const;
  std::string describe() const;  // "fds 0, cgroups 0, mounts 0, processes 0"
};
Leaks compare_counts(const HostCounts& before, const HostCounts& after, const std::set<std::string>& ours);

// Counts until nothing is left over or `settle_s` has passed (removal of a
// cgroup or a mount may trail the API's answer by a moment).
Leaks measure_leaks(pid_t daemon_pid, const std::optional<std::string>& cgroup2, const HostCounts& before,
                    const std::set<std::string>& ours, HostCounts& after, double settle_s = 3);

// RLIMIT_NOFILE: soft raised to the hard limit, the hard limit raised to
// `wanted` when it is lower (root); the daemon inherits it. Returns the new
// soft limit.
unsigned long long raise_nofile_limit(unsigned long long wanted);

double monotonic_ms();

// The kind of filesystem `path` is on, from statfs(2): "ext2/3/4", "tmpfs",
// "xfs", "btrfs", "overlay", or the magic number in hex.
std::string filesystem_name(const std::filesystem::path& path);

// Calls work(i) for every i in [0, count) from `threads` threads (each takes
// the next index), stopping early once interrupted; meanwhile the calling
// thread calls tick(finished) about every 250 ms. Returns how many finished.
unsigned parallel_for(unsigned count, unsigned threads, const std::function<void(unsigned)>& work,
                      const std::function<void(unsigned)>& tick);

}  // namespace nucleus::bench
