#include "harness.hpp"

#include "test_scope.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_case_info.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/reporters/catch_reporter_event_listener.hpp>
#include <catch2/reporters/catch_reporter_registrars.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace nit {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what, int err) {
    throw std::system_error(err, std::generic_category(), what);
}

// The harness hands the child exactly fds 0-2 plus what the test asks for;
// if our own 0-2 were closed, a pipe could land there and be clobbered.
void ensure_std_fds_open() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int null = ::open("/dev/null", O_RDWR);
            if (null >= 0 && null != fd) {
                ::dup2(null, fd);
                ::close(null);
            }
        }
    }
}

std::vector<std::string> build_environment(const SpawnOptions& options) {
    auto name_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
    std::vector<std::string> removed = options.unset_env;
    for (const auto& entry : options.env) removed.push_back(name_of(entry));
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string entry = *e;
        if (std::find(removed.begin(), removed.end(), name_of(entry)) == removed.end()) env.push_back(entry);
    }
    env.insert(env.end(), options.env.begin(), options.env.end());
    return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (auto& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

int decode_status(int status, int* signal) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        *signal = WTERMSIG(status);
        return 128 + WTERMSIG(status);
    }
    return -1;
}

std::string truncated(const std::string& text, size_t limit = 4000) {
    if (text.size() <= limit) return text;
    return text.substr(0, limit) + "... [" + std::to_string(text.size()) + " bytes]";
}

// Real uid and state letter from /proc/PID/status.
struct ProcInfo {
    unsigned long long uid = 0;
    char state = '?';
};

std::optional<ProcInfo> proc_info(const std::string& pid) {
    std::ifstream status("/proc/" + pid + "/status");
    if (!status) return std::nullopt;
    ProcInfo info;
    bool have_uid = false;
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("State:", 0) == 0) {
            size_t pos = line.find_first_not_of(" \t", 6);
            if (pos != std::string::npos) info.state = line[pos];
        } else if (line.rfind("Uid:", 0) == 0) {
            info.uid = std::strtoull(line.c_str() + 4, nullptr, 10);
            have_uid = true;
        }
    }
    if (!have_uid) return std::nullopt;
    return info;
}

template <typename Fn>
void for_each_process(Fn fn) {
    DIR* d = ::opendir("/proc");
    if (d == nullptr) return;
    while (const dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        if (auto info = proc_info(name)) fn(static_cast<pid_t>(std::stol(name)), *info);
    }
    ::closedir(d);
}

}  // namespace

// ---------------------------------------------------------------------------
// Process
// ---------------------------------------------------------------------------

std::string Result::describe() const {
    std::ostringstream s;
    s << "exit_code=" << exit_code << " signal=" << signal << (timed_out ? " TIMED OUT" : "")
      << (pipes_left_open ? " (its stdout/stderr stayed open after it exited)" : "") << "\n--- stdout ---\n"
      << truncated(out) << "\n--- stderr ---\n"
      << truncated(err);
    return s.str();
}

Process Process::start(const std::vector<std::string>& argv, const SpawnOptions& options) {
    if (argv.empty()) throw std::invalid_argument("Process::start: empty argv");
    ensure_std_fds_open();

    int out_pipe[2];
    int err_pipe[2];
    int in_pipe[2] = {-1, -1};
    if (::pipe2(out_pipe, O_CLOEXEC) < 0) throw_errno("pipe2", errno);
    if (::pipe2(err_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        throw_errno("pipe2", e);
    }
    auto close_all = [&] {
        for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], in_pipe[0], in_pipe[1]})
            if (fd >= 0) ::close(fd);
    };
    if (options.stdin_data) {
        if (options.stdin_data->size() > 65536) {
            close_all();
            throw std::invalid_argument("stdin_data is limited to 64 KiB");
        }
        if (::pipe2(in_pipe, O_CLOEXEC) < 0) {
            int e = errno;
            close_all();
            throw_errno("pipe2", e);
        }
        // Fits into the pipe buffer: write it all now, then EOF.
        const std::string& data = *options.stdin_data;
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::write(in_pipe[1], data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                int e = errno;
                close_all();
                throw_errno("writing stdin", e);
            }
            done += static_cast<size_t>(n);
        }
        ::close(in_pipe[1]);
        in_pipe[1] = -1;
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (in_pipe[0] >= 0) posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    else posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    for (const auto& f : options.fd_files)
        posix_spawn_file_actions_addopen(&actions, f.child_fd, f.path.c_str(), f.flags, 0600);

    // Default dispositions and an empty mask: whatever the test runner
    // ignores or blocks must not leak into nucleus (signal forwarding tests).
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all;
    sigset_t none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    std::vector<std::string> args = argv;
    std::vector<std::string> env = build_environment(options);
    auto c_args = c_strings(args);
    auto c_env = c_strings(env);

    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, c_args[0], &actions, &attr, c_args.data(), c_env.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;
    if (in_pipe[0] >= 0) {
        ::close(in_pipe[0]);
        in_pipe[0] = -1;
    }
    if (rc != 0) {
        close_all();
        throw_errno("posix_spawn " + argv[0], rc);
    }
    Process p;
    p.pid_ = pid;
    p.out_fd_ = out_pipe[0];
    p.err_fd_ = err_pipe[0];
    p.deadline_ = Clock::now() + options.deadline;
    return p;
}

Process::Process(Process&& other) noexcept
    : pid_(other.pid_),
      out_fd_(other.out_fd_),
      err_fd_(other.err_fd_),
      reaped_(other.reaped_),
      status_(other.status_),
      deadline_(other.deadline_),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)) {
    other.pid_ = -1;
    other.out_fd_ = other.err_fd_ = -1;
    other.reaped_ = true;
}

Process::~Process() {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        reap_blocking();
    }
    close_fds();
}

void Process::close_fds() {
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
    out_fd_ = err_fd_ = -1;
}

void Process::reap_blocking() {
    while (!reaped_) {
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, 0);
        if (r == pid_) {
            status_ = status;
            reaped_ = true;
        } else if (r < 0 && errno != EINTR) {
            reaped_ = true;  // not our child any more; nothing to reap
        }
    }
}

void Process::signal(int sig) const {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

void Process::pump(std::chrono::milliseconds timeout) {
    pollfd fds[2];
    int n = 0;
    if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
    if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
    if (n == 0) {
        if (timeout.count() > 0) std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(20)));
        return;
    }
    int ready = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(timeout.count()));
    if (ready <= 0) return;
    char buf[65536];
    for (int i = 0; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        bool is_out = fds[i].fd == out_fd_;
        if (got <= 0) {
            ::close(fds[i].fd);
            (is_out ? out_fd_ : err_fd_) = -1;
            continue;
        }
        (is_out ? out_ : err_).append(buf, static_cast<size_t>(got));
    }
}

bool Process::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout) {
    auto until = std::min(Clock::now() + timeout, deadline_);
    while (out_.find(needle) == std::string::npos) {
        if (out_fd_ < 0 && err_fd_ < 0) return false;
        auto now = Clock::now();
        if (now >= until) return false;
        pump(std::min(std::chrono::duration_cast<std::chrono::milliseconds>(until - now),
                      std::chrono::milliseconds(50)));
    }
    return true;
}

void Process::close_stdout() {
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
}

bool Process::exited() {
    if (reaped_) return true;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        status_ = status;
        reaped_ = true;
    }
    return reaped_;
}

Result Process::wait(std::chrono::milliseconds grace) {
    Result result;
    // Output until EOF on both pipes (or the deadline). Once the process
    // itself has exited, allow a short grace for the rest of its output:
    // anything still holding the pipes open after that (a leaked sandbox
    // process, say) must not stall the test until the deadline.
    std::optional<Clock::time_point> grace_end;
    while (out_fd_ >= 0 || err_fd_ >= 0) {
        auto now = Clock::now();
        if (now >= deadline_) {
            result.timed_out = true;
            break;
        }
        if (!grace_end && exited()) grace_end = now + grace;
        if (grace_end && now >= *grace_end) {
            result.pipes_left_open = true;
            break;
        }
        pump(std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now),
                      std::chrono::milliseconds(50)));
    }
    // Then the exit.
    while (!result.timed_out && !exited()) {
        if (Clock::now() >= deadline_) {
            result.timed_out = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (result.timed_out && !reaped_) {
        ::kill(pid_, SIGKILL);
        reap_blocking();
    }
    pump(std::chrono::milliseconds(0));
    close_fds();
    result.exit_code = decode_status(status_, &result.signal);
    result.out = out_;
    result.err = err_;
    return result;
}

Result run(const std::vector<std::string>& argv, const SpawnOptions& options) {
    return Process::start(argv, options).wait();
}

std::vector<std::string> nucleus_argv(const std::vector<std::string>& flags, const std::vector<std::string>& command) {
    std::vector<std::string> argv = {kNucleus, "run"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    if (!command.empty()) {
        argv.emplace_back("--");
        argv.insert(argv.end(), command.begin(), command.end());
    }
    return argv;
}

std::vector<std::string> with_checker(std::vector<std::string> flags) {
    std::string volume = kCheckerDir;
    volume += ":/checker:ro";
    flags.insert(flags.begin(), {"-v", volume});
    return flags;
}

Result run_nucleus(const std::vector<std::string>& flags, const std::vector<std::string>& command,
                   const SpawnOptions& options) {
    return run(nucleus_argv(flags, command), options);
}

Result run_checker(const std::vector<std::string>& flags, const std::vector<std::string>& checker_args,
                   const SpawnOptions& options) {
    std::vector<std::string> command = {kChecker};
    command.insert(command.end(), checker_args.begin(), checker_args.end());
    return run_nucleus(with_checker(flags), command, options);
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

std::map<std::string, std::string> parse_kv(const std::string& out) {
    std::map<std::string, std::string> values;
    for (const auto& line : split_lines(out)) {
        size_t eq = line.find('=');
        if (eq == std::string::npos || eq == 0) continue;
        values[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return values;
}

std::string kv(const std::map<std::string, std::string>& values, const std::string& key) {
    auto it = values.find(key);
    return it == values.end() ? std::string("<missing>") : it->second;
}

std::vector<nlohmann::json> parse_events(const std::string& text) {
    std::vector<nlohmann::json> events;
    for (const auto& line : split_lines(text)) {
        if (line.empty()) continue;
        auto record = nlohmann::json::parse(line, nullptr, false);
        INFO("event line: " << line);
        REQUIRE_FALSE(record.is_discarded());
        events.push_back(std::move(record));
    }
    return events;
}

std::vector<nlohmann::json> read_events(const fs::path& path) { return parse_events(read_file(path)); }

nlohmann::json find_event(const std::vector<nlohmann::json>& events, const std::string& name) {
    for (const auto& e : events)
        if (e.is_object() && e.value("event", "") == name) return e;
    return nullptr;
}

nlohmann::json wait_for_start_event(const fs::path& path, Process& process, std::chrono::milliseconds timeout) {
    auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
        std::ifstream in(path);
        for (std::string line; std::getline(in, line);) {
            auto record = nlohmann::json::parse(line, nullptr, false);
            if (record.is_object() && record.value("event", "") == "start") return record;
        }
        if (process.exited()) return nullptr;
        process.pump(std::chrono::milliseconds(20));
    }
    return nullptr;
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& path, const std::string& contents) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << contents;
    out.close();
    if (!out) throw std::runtime_error("writing " + path.string());
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

TempDir::TempDir(const std::string& tag, mode_t mode) {
    std::string pattern = "/tmp/nucleus-it-";
    pattern += tag;
    pattern += "-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw_errno("mkdtemp " + pattern, errno);
    path_ = buf.data();
    if (::chmod(buf.data(), mode) < 0) throw_errno("chmod " + path_.string(), errno);
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

BusyboxRootfs::BusyboxRootfs() : dir_("rootfs") {
    fs::path bin = dir_ / "bin";
    fs::path etc = dir_ / "etc";
    fs::create_directories(bin);
    fs::create_directories(etc);
    fs::copy_file("/bin/busybox", bin / "busybox");
    fs::permissions(bin / "busybox", fs::perms(0755));
    for (const char* applet : {"sh", "true", "echo", "cat", "sleep", "ls"}) fs::create_symlink("busybox", bin / applet);
    write_file(etc / "passwd",
               "root:x:0:0:root:/root:/bin/sh\n"
               "agent:x:1000:1000:agent:/home/agent:/bin/sh\n");
    write_file(etc / "group", "root:x:0:\nagent:x:1000:\n");
    for (const auto& p : {bin, etc}) fs::permissions(p, fs::perms(0755));
    fs::permissions(etc / "passwd", fs::perms(0644));
    fs::permissions(etc / "group", fs::perms(0644));
}

// ---------------------------------------------------------------------------
// Host state
// ---------------------------------------------------------------------------

std::optional<std::string> cgroup2_mount() {
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);) {
        // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        size_t dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype;
        tail >> fstype;
        if (fstype != "cgroup2") continue;
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, devno, root, point;
        if (head >> id >> parent >> devno >> root >> point) return point;
    }
    return std::nullopt;
}

std::string Leftovers::describe() const {
    return "cgroups=" + std::to_string(cgroups) + " mounts=" + std::to_string(mounts) +
           " processes=" + std::to_string(processes) + " records=" + std::to_string(records);
}

std::string default_records() { return nucleus::tests::test_state_dir() + "/sandboxes"; }

Leftovers count_leftovers(const std::string& records_dir) {
    return {.cgroups = nucleus::tests::scope_cgroups(),
            .mounts = nucleus::tests::scope_mounts(),
            .processes = nucleus::tests::scope_processes(),
            .records = nucleus::tests::scope_records(records_dir)};
}

Leftovers settled_leftovers(const std::string& records_dir) {
    Leftovers previous = count_leftovers(records_dir);
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        Leftovers now = count_leftovers(records_dir);
        if (now == previous) return now;
        previous = now;
    }
    return previous;
}

Leftovers wait_for_leftovers(const Leftovers& baseline, std::chrono::milliseconds timeout,
                             const std::string& records_dir) {
    auto until = Clock::now() + timeout;
    Leftovers now = count_leftovers(records_dir);
    while (!(now == baseline) && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
        now = count_leftovers(records_dir);
    }
    return now;
}

std::vector<pid_t> pids_with_uid_in(unsigned long long first, unsigned long long count) {
    std::vector<pid_t> pids;
    for_each_process([&](pid_t pid, const ProcInfo& info) {
        if (info.uid >= first && info.uid < first + count && info.state != 'Z') pids.push_back(pid);
    });
    return pids;
}

std::optional<unsigned long long> map_base(const std::string& uid_map) {
    // "0 BASE COUNT" possibly followed by ";..." extents.
    std::istringstream in(uid_map);
    unsigned long long inside = 0;
    unsigned long long base = 0;
    if (!(in >> inside >> base) || inside != 0) return std::nullopt;
    return base;
}

bool wait_until_range_empty(unsigned long long first, unsigned long long count, std::chrono::milliseconds timeout) {
    auto until = Clock::now() + timeout;
    while (!pids_with_uid_in(first, count).empty()) {
        if (Clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return true;
}

bool pid_alive(pid_t pid) {
    auto info = proc_info(std::to_string(pid));
    return info && info->state != 'Z';
}

std::vector<pid_t> pids_with_cmdline(const std::string& marker) {
    std::vector<pid_t> pids;
    for_each_process([&](pid_t pid, const ProcInfo& info) {
        if (info.state == 'Z' || pid == ::getpid()) return;
        std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
        for (char& ch : cmdline)
            if (ch == '\0') ch = ' ';
        if (contains(cmdline, marker)) pids.push_back(pid);
    });
    return pids;
}

void require_root() {
    if (::geteuid() != 0) SKIP("needs root: nucleus leases host id ranges and creates cgroups only as root");
}

void require_busybox() {
    if (::access("/bin/busybox", X_OK) != 0) SKIP("needs /bin/busybox (Debian package busybox-static)");
}

// ---------------------------------------------------------------------------
// Serializing the tests that depend on host-wide state
// ---------------------------------------------------------------------------

namespace {

// ctest -j runs each test case in its own process. Tests tagged
// [host-state] compare host-wide counts (cgroups, mounts, processes,
// records) or leave such state behind on purpose for a moment (a killed
// supervisor); they hold an exclusive flock for their whole run, every other
// test a shared one. Within one process the lock is uncontended.
class HostStateLockListener : public Catch::EventListenerBase {
public:
    using Catch::EventListenerBase::EventListenerBase;

    void testCaseStarting(const Catch::TestCaseInfo& info) override {
        bool exclusive = false;
        for (const auto& tag : info.tags)
            if (tag.original == Catch::StringRef("host-state")) exclusive = true;
        fd_ = ::open("/tmp/nucleus-integration-tests.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd_ < 0) return;  // best effort: without it the tests still run
        ::fchmod(fd_, 0666);
        while (::flock(fd_, exclusive ? LOCK_EX : LOCK_SH) < 0 && errno == EINTR) {}
    }

    void testCaseEnded(const Catch::TestCaseStats&) override {
        if (fd_ >= 0) ::close(fd_);  // releases the lock
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

}  // namespace

CATCH_REGISTER_LISTENER(HostStateLockListener)

}  // namespace nit
