// Harness for the nucleus integration tests.
//
// * Process / run(): posix_spawn a command with stdout and stderr captured
//   through pipes, a deadline (SIGKILL when it passes, so a broken nucleus
//   cannot hang the suite) and the exit code (128+N for signal N).
// * TempDir / BusyboxRootfs: scratch directories that clean up after
//   themselves, and a minimal busybox root filesystem.
// * Leftovers: what a sandbox could leave behind on the host (cgroups,
//   mounts, processes in the leased id ranges, state records), to compare
//   before and after.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace nit {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Absolute paths, from CMake.
inline constexpr const char* kNucleus = NUCLEUS_BINARY;
inline constexpr const char* kCheckerDir = NUCLEUS_CHECKER_DIR;
// Where the checker lands inside a sandbox (see with_checker()).
inline constexpr const char* kChecker = "/checker/nucleus-check";

// First host id of the leased ranges (1000000000 + slot * 65536).
inline constexpr unsigned long long kLeaseBase = 1000000000ULL;
inline constexpr unsigned long long kLeaseSize = 65536ULL;

// ---------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------

struct FdFile {
    int child_fd;  // descriptor number in the child
    std::string path;  // file opened for it
    int flags;  // open(2) flags, e.g. O_RDONLY or O_WRONLY|O_CREAT|O_TRUNC
};

struct SpawnOptions {
    std::vector<std::string> env;  // KEY=VALUE added to (or replacing in) our environment
    std::vector<std::string> unset_env;  // names removed from the inherited environment
    std::optional<std::string> stdin_data;  // else stdin is /dev/null (at most 64 KiB)
    std::vector<FdFile> fd_files;  // extra descriptors for the child
    std::chrono::milliseconds deadline = 60s;
};

// Default options with another deadline.
inline SpawnOptions with_deadline(std::chrono::milliseconds deadline) {
    SpawnOptions options;
    options.deadline = deadline;
    return options;
}

struct Result {
    int exit_code = -1;  // WEXITSTATUS, or 128+N when killed by signal N
    int signal = 0;  // N when killed by a signal
    bool timed_out = false;  // the harness deadline passed and it SIGKILLed the process
    bool pipes_left_open = false;  // it exited, but something kept its stdout/stderr open
    std::string out;
    std::string err;
    std::string describe() const;  // for INFO()/CAPTURE() in failing tests
};

// A child process with captured output. Movable, not copyable; the
// destructor SIGKILLs and reaps a child that is still running.
class Process {
public:
    static Process start(const std::vector<std::string>& argv, const SpawnOptions& options = {});
    Process(Process&& other) noexcept;
    Process& operator=(Process&&) = delete;
    Process(const Process&) = delete;
    ~Process();

    pid_t pid() const { return pid_; }
    void signal(int sig) const;
    // Reads what is available for up to `timeout`.
    void pump(std::chrono::milliseconds timeout);
    // Pumps until stdout contains `needle`; false on timeout or EOF.
    bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout);
    // True once the process has exited (reaps it, without blocking).
    bool exited();
    // Closes our end of its stdout pipe (the reader goes away: EPIPE/SIGPIPE).
    void close_stdout();
    // Waits for EOF on both pipes and the exit, up to the deadline; after
    // the exit, for at most `grace` more for EOF.
    Result wait(std::chrono::milliseconds grace = 2s);
    const std::string& out() const { return out_; }
    const std::string& err() const { return err_; }

private:
    Process() = default;
    void close_fds();
    void reap_blocking();

    pid_t pid_ = -1;
    int out_fd_ = -1;
    int err_fd_ = -1;
    bool reaped_ = false;
    int status_ = 0;
    std::chrono::steady_clock::time_point deadline_;
    std::string out_;
    std::string err_;
};

// start() + wait().
Result run(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// {nucleus, "run", flags..., "--", command...}; no "--" if command is empty.
std::vector<std::string> nucleus_argv(const std::vector<std::string>& flags, const std::vector<std::string>& command);
// Flags that put the checker directory at /checker (read-only), then `flags`.
std::vector<std::string> with_checker(std::vector<std::string> flags);
Result run_nucleus(const std::vector<std::string>& flags, const std::vector<std::string>& command,
                   const SpawnOptions& options = {});
// nucleus run -v <checker>:/checker:ro FLAGS -- /checker/nucleus-check ARGS...
Result run_checker(const std::vector<std::string>& flags, const std::vector<std::string>& checker_args,
                   const SpawnOptions& options = {});

// ---------------------------------------------------------------------------
// Output parsing
// ---------------------------------------------------------------------------

// The checker's key=value lines (split at the first '='; other lines ignored).
std::map<std::string, std::string> parse_kv(const std::string& out);
// Value for `key`, or "<missing>".
std::string kv(const std::map<std::string, std::string>& values, const std::string& key);
// The JSON lines of an events file (or stream); unparsable lines fail the test.
std::vector<nlohmann::json> parse_events(const std::string& text);
std::vector<nlohmann::json> read_events(const fs::path& path);
// The record with "event" == name, or null.
nlohmann::json find_event(const std::vector<nlohmann::json>& events, const std::string& name);
// Polls `path` until it holds a start record (pumping `process` meanwhile);
// null if the process exits or `timeout` passes first.
nlohmann::json wait_for_start_event(const fs::path& path, Process& process, std::chrono::milliseconds timeout = 20s);

// ---------------------------------------------------------------------------
// Files and directories
// ---------------------------------------------------------------------------

std::string read_file(const fs::path& path);
void write_file(const fs::path& path, const std::string& contents);
bool contains(std::string_view haystack, std::string_view needle);
std::vector<std::string> split_lines(const std::string& text);

// A fresh directory under /tmp (mkdtemp), chmod'ed to `mode` so that a
// sandbox's user namespace (whose root is not the host's root) can reach it.
// Removed recursively by the destructor.
class TempDir {
public:
    explicit TempDir(const std::string& tag = "dir", mode_t mode = 0755);
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& name) const { return path_ / name; }
    std::string str() const { return path_.string(); }

private:
    fs::path path_;
};

// A root filesystem made from the static /bin/busybox:
//   bin/{busybox,sh,true,echo,cat,sleep,ls}  etc/{passwd,group}
class BusyboxRootfs {
public:
    BusyboxRootfs();
    std::string str() const { return dir_.str(); }
    const fs::path& path() const { return dir_.path(); }

private:
    TempDir dir_;
};

// ---------------------------------------------------------------------------
// Host state
// ---------------------------------------------------------------------------

// The cgroup2 mount point from /proc/self/mountinfo.
std::optional<std::string> cgroup2_mount();

// Only what this test process's sandboxes could leave: its own cgroup
// parent, mount namespace and state directory (tests/harness/test_scope.hpp).
struct Leftovers {
    int cgroups = 0;  // directories under this process's cgroup parent
    int mounts = 0;  // lines in this mount namespace's mountinfo
    int processes = 0;  // processes below this process's cgroup parent
    int records = 0;  // entries in the records directory
    bool operator==(const Leftovers&) const = default;
    std::string describe() const;
};

// The state directory's records: this process's own (test_scope.hpp).
std::string default_records();

Leftovers count_leftovers(const std::string& records_dir = default_records());
// A baseline: two identical readings in a row (other sandboxes on this host
// may come and go while the suite runs).
Leftovers settled_leftovers(const std::string& records_dir = default_records());
// Polls until the counts equal `baseline` or `timeout` passes; returns the
// last reading. Processes of a sandbox that just ended may linger a moment
// as zombies until the host's init reaps them.
Leftovers wait_for_leftovers(const Leftovers& baseline, std::chrono::milliseconds timeout = 10s,
                             const std::string& records_dir = default_records());

// Host pids whose real uid lies in [first, first + count).
std::vector<pid_t> pids_with_uid_in(unsigned long long first, unsigned long long count);
// The host uid behind container uid 0 in a "0 BASE COUNT;..." map, if any.
std::optional<unsigned long long> map_base(const std::string& uid_map);
// Polls until none of the processes in the host uid range is alive (zombies
// count as dead); false on timeout.
bool wait_until_range_empty(unsigned long long first, unsigned long long count,
                            std::chrono::milliseconds timeout = 10s);
// True while /proc/PID exists and is not a zombie.
bool pid_alive(pid_t pid);
// Live (non-zombie) processes whose command line contains `marker`.
std::vector<pid_t> pids_with_cmdline(const std::string& marker);

// ---------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------

// SKIP()s the current test when not running as root.
void require_root();
// SKIP()s when /bin/busybox is missing.
void require_busybox();

}  // namespace nit
