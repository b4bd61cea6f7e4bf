// nucleus-check: a tiny, statically linked probe that runs *inside* a sandbox
// and reports, from the inside, which isolation it observes.
//
// The integration tests run e.g.
//     nucleus run --rootfs R -- /checker/nucleus-check status
// and parse stdout. Contract:
//   * stdout carries only `key=value` lines with stable keys (plus the raw
//     payload of `print`, `env` and whatever `exec` runs);
//   * exit 0 when every probe could be run (the tests judge the values),
//     exit 1 when the checker itself failed (e.g. fork for a probe failed),
//     exit 2 on a usage error.
//
// The binary must link statically (the rootfs may have no libc), so it only
// uses libc and kernel UAPI headers. Every probe that could change state is
// undone (or made a no-op) so the checker never leaves anything behind, even
// when someone runs it as root on a host.

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/landlock.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

struct ErrnoEntry {
    int number;
    const char* name;
};

// Explicit table rather than strerrorname_np(3): portable across libcs and
// the names are part of the output contract. ENOTSUP == EOPNOTSUPP on Linux,
// so the first entry wins and the value prints as EOPNOTSUPP.
constexpr ErrnoEntry kErrnoNames[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},
    {ENOEXEC, "ENOEXEC"},
    {EBADF, "EBADF"},
    {ECHILD, "ECHILD"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},
    {ENODEV, "ENODEV"},
    {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},
    {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},
    {ENOTTY, "ENOTTY"},
    {ETXTBSY, "ETXTBSY"},
    {EFBIG, "EFBIG"},
    {ENOSPC, "ENOSPC"},
    {ESPIPE, "ESPIPE"},
    {EROFS, "EROFS"},
    {EMLINK, "EMLINK"},
    {EPIPE, "EPIPE"},
    {ERANGE, "ERANGE"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOSYS, "ENOSYS"},
    {ENOTEMPTY, "ENOTEMPTY"},
    {ELOOP, "ELOOP"},
    {ENODATA, "ENODATA"},
    {EOVERFLOW, "EOVERFLOW"},
    {EUSERS, "EUSERS"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {ENOTSUP, "ENOTSUP"},
    {EAFNOSUPPORT, "EAFNOSUPPORT"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {ESTALE, "ESTALE"},
    {EDQUOT, "EDQUOT"},
    {ENOKEY, "ENOKEY"},
    {EKEYEXPIRED, "EKEYEXPIRED"},
    {EKEYREVOKED, "EKEYREVOKED"},
    {EKEYREJECTED, "EKEYREJECTED"},
};

// Prefixes `text` with `prefix`. Used instead of `"literal" + string`, which
// trips a g++ 12 -Wrestrict false positive at -O3 (GCC bug 105651).
std::string prefixed(std::string_view prefix, std::string_view text) {
    std::string out;
    out.reserve(prefix.size() + text.size());
    out.append(prefix).append(text);
    return out;
}

std::string errno_name(int err) {
    for (const ErrnoEntry& entry : kErrnoNames) {
        if (entry.number == err) return entry.name;
    }
    return prefixed("E", std::to_string(err));
}

std::string error_value(int err) { return prefixed("error:", errno_name(err)); }

std::string signal_name(int sig) {
    switch (sig) {
        case SIGSYS:
            return "SIGSYS";  // seccomp SECCOMP_RET_KILL_* / RET_TRAP
        case SIGKILL:
            return "SIGKILL";
        case SIGSEGV:
            return "SIGSEGV";
        case SIGABRT:
            return "SIGABRT";
        case SIGTERM:
            return "SIGTERM";
        default:
            return std::to_string(sig);
    }
}

void emit(std::string_view key, std::string_view value) {
    std::printf("%.*s=%.*s\n", static_cast<int>(key.size()), key.data(), static_cast<int>(value.size()), value.data());
}

void emit(std::string_view key, long long value) { emit(key, std::to_string(value)); }

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i != 0) out += sep;
        out += parts[i];
    }
    return out;
}

// Writes the whole buffer, retrying short writes and EINTR (write(2) may
// transfer fewer bytes than asked on pipes).
bool write_all(int fd, const char* data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

struct FileContents {
    int err = 0;  // 0 on success
    std::string data;
};

FileContents read_small_file(const char* path) {
    FileContents result;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return {errno, {}};
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) result.err = errno;
        if (n <= 0) break;
        result.data.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return result;
}

struct DirListing {
    int err = 0;  // 0 on success
    std::vector<std::string> names;  // sorted, without "." and ".."
};

DirListing list_directory(const char* path) {
    DIR* dir = opendir(path);
    if (dir == nullptr) return {errno, {}};
    DirListing listing;
    errno = 0;
    while (const dirent* entry = readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name != "." && name != "..") listing.names.emplace_back(name);
    }
    // readdir(3): NULL with errno unchanged means end of stream.
    listing.err = errno;
    closedir(dir);
    std::sort(listing.names.begin(), listing.names.end());
    return listing;
}

std::optional<long long> parse_integer(const char* text, long long min, long long max) {
    if (text == nullptr || *text == '\0') return std::nullopt;
    errno = 0;
    char* end = nullptr;
    long long value = std::strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max) {
        return std::nullopt;
    }
    return value;
}

std::optional<double> parse_seconds(const char* text) {
    if (text == nullptr || *text == '\0') return std::nullopt;
    errno = 0;
    char* end = nullptr;
    double value = std::strtod(text, &end);
    // Bounded so the conversion to time_t in sleep_for() cannot overflow.
    constexpr double kMaxSeconds = 1e9;
    if (errno != 0 || *end != '\0' || !(value >= 0 && value <= kMaxSeconds)) {
        return std::nullopt;
    }
    return value;
}

// nanosleep(2) reports the unslept remainder when a handled signal
// interrupts it; keep sleeping so `sleep N` lasts N seconds unless killed.
void sleep_for(double seconds) {
    timespec remaining{};
    remaining.tv_sec = static_cast<time_t>(seconds);
    remaining.tv_nsec = static_cast<long>((seconds - static_cast<double>(remaining.tv_sec)) * 1e9);
    while (nanosleep(&remaining, &remaining) < 0 && errno == EINTR) {}
}

// Reaps a specific child, retrying EINTR. Returns false if waitpid failed.
bool wait_for_child(pid_t pid, int* status) {
    while (waitpid(pid, status, __WALL) < 0) {
        if (errno != EINTR) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------
// `status`: identity, credentials and namespaces
// ---------------------------------------------------------------------------

void report_identity() {
    emit("pid", getpid());
    emit("ppid", getppid());
    emit("uid", getuid());
    emit("gid", getgid());
    emit("euid", geteuid());
    emit("egid", getegid());
    // getgroups(2): size 0 returns the number of supplementary groups.
    emit("groups", getgroups(0, nullptr));
}

// Value of a "Name:\tvalue" line in /proc/self/status (proc(5)).
std::optional<std::string> status_field(const std::string& status, std::string_view field) {
    std::string needle = prefixed("\n", field) + ":";
    std::string text = prefixed("\n", status);
    size_t pos = text.find(needle);
    if (pos == std::string::npos) return std::nullopt;
    pos += needle.size();
    size_t end = text.find('\n', pos);
    std::string value = text.substr(pos, end - pos);
    size_t first = value.find_first_not_of(" \t");
    return first == std::string::npos ? std::string() : value.substr(first);
}

void report_process_status() {
    static constexpr std::pair<const char*, const char*> kFields[] = {
        {"cap_inh", "CapInh"},  {"cap_prm", "CapPrm"},
        {"cap_eff", "CapEff"},  {"cap_bnd", "CapBnd"},
        {"cap_amb", "CapAmb"},  {"no_new_privs", "NoNewPrivs"},
        {"seccomp", "Seccomp"}, {"seccomp_filters", "Seccomp_filters"},
    };
    FileContents status = read_small_file("/proc/self/status");
    for (const auto& [key, field] : kFields) {
        if (status.err != 0) {
            emit(key, error_value(status.err));
            continue;
        }
        // Seccomp_filters only exists since Linux 5.9; keep the key stable.
        emit(key, status_field(status.data, field).value_or("absent"));
    }
}

// user_namespaces(7) map files hold one "inside outside count" line per
// extent, padded with spaces; normalise to "a b c;d e f".
std::string format_id_map(const std::string& raw) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < raw.size()) {
        size_t end = raw.find('\n', start);
        if (end == std::string::npos) end = raw.size();
        std::vector<std::string> fields;
        size_t pos = start;
        while (pos < end) {
            size_t word = raw.find_first_not_of(" \t", pos);
            if (word == std::string::npos || word >= end) break;
            size_t word_end = std::min(raw.find_first_of(" \t", word), end);
            fields.push_back(raw.substr(word, word_end - word));
            pos = word_end;
        }
        if (!fields.empty()) lines.push_back(join(fields, " "));
        start = end + 1;
    }
    return join(lines, ";");
}

void report_id_maps() {
    for (const char* which : {"uid_map", "gid_map"}) {
        std::string path = std::string("/proc/self/") + which;
        FileContents map = read_small_file(path.c_str());
        emit(which, map.err != 0 ? error_value(map.err) : format_id_map(map.data));
    }
}

void report_hostname() {
    utsname uts{};
    emit("hostname", uname(&uts) == 0 ? std::string(uts.nodename) : error_value(errno));
}

// With a private PID namespace and its own procfs, only the sandbox's own
// processes show up as numeric /proc entries.
void report_proc_pids() {
    DirListing proc = list_directory("/proc");
    if (proc.err != 0) {
        emit("proc_pids", error_value(proc.err));
        return;
    }
    long long count = std::count_if(proc.names.begin(), proc.names.end(), [](const std::string& name) {
        return name.find_first_not_of("0123456789") == std::string::npos;
    });
    emit("proc_pids", count);
}

void report_mountinfo_count() {
    FileContents info = read_small_file("/proc/self/mountinfo");
    if (info.err != 0) {
        emit("mountinfo_count", error_value(info.err));
        return;
    }
    emit("mountinfo_count", static_cast<long long>(std::count(info.data.begin(), info.data.end(), '\n')));
}

// ---------------------------------------------------------------------------
// `status`: filesystem view
// ---------------------------------------------------------------------------

constexpr const char* kProbeFileName = ".nucleus-check-probe";

// Returns 0 if a file could be created in `dir` (and removed again), else
// the errno of the failed creation.
int try_create_file_in(const std::string& dir) {
    if (dir.empty()) return ENOENT;
    std::string path = dir;
    if (path.back() != '/') path += '/';
    path += kProbeFileName;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return errno;
    close(fd);
    unlink(path.c_str());
    return 0;
}

void report_writability(const std::string& prefix, const std::string& dir) {
    int err = try_create_file_in(dir);
    emit(prefix + "_writable", err == 0 ? 1 : 0);
    emit(prefix + "_write_errno", err == 0 ? std::string("0") : errno_name(err));
}

void report_home() {
    const char* env_home = std::getenv("HOME");
    std::string home = env_home != nullptr ? env_home : "";
    emit("home", home);
    report_writability("home", home);
    struct stat st {};
    if (home.empty() || stat(home.c_str(), &st) != 0) {
        std::string err = error_value(home.empty() ? ENOENT : errno);
        emit("home_mode", err);
        emit("home_owner", err);
        return;
    }
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    emit("home_mode", mode);
    emit("home_owner", st.st_uid);
}

// Classifies an already opened path as "empty" or "readable". OCI runtimes
// mask files by bind-mounting /dev/null over them (reads 0 bytes) and
// directories by mounting an empty read-only tmpfs over them.
std::string classify_open_path(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return prefixed("denied:", errno_name(err));
    }
    if (S_ISDIR(st.st_mode)) {
        DIR* dir = fdopendir(fd);  // takes ownership of fd
        if (dir == nullptr) {
            int err = errno;
            close(fd);
            return prefixed("denied:", errno_name(err));
        }
        bool has_entries = false;
        while (const dirent* entry = readdir(dir)) {
            std::string_view name = entry->d_name;
            if (name != "." && name != "..") has_entries = true;
        }
        closedir(dir);
        return has_entries ? "readable" : "empty";
    }
    char buf[512];
    ssize_t n;
    do {
        n = read(fd, buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0) return prefixed("denied:", errno_name(err));
    return n == 0 ? "empty" : "readable";
}

std::string classify_masked_path(const char* path) {
    // O_NONBLOCK: never hang on a FIFO or device someone put in that place.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        return errno == ENOENT ? "absent" : prefixed("denied:", errno_name(errno));
    }
    return classify_open_path(fd);
}

// Default masked paths of the OCI runtime spec (config-linux.md, runc).
void report_masked_paths() {
    static constexpr const char* kMaskedPaths[] = {
        "/proc/kcore", "/proc/keys",          "/proc/timer_list", "/proc/sched_debug", "/proc/acpi",
        "/proc/scsi",  "/proc/latency_stats", "/proc/asound",     "/sys/firmware",
    };
    for (const char* path : kMaskedPaths) {
        emit(std::string("masked:") + path, classify_masked_path(path));
    }
}

// statvfs(3) sets ST_RDONLY in f_flag when the mount containing the path is
// read-only (mount flag or superblock), which is how OCI read-only paths are
// implemented (read-only bind mounts over themselves).
std::string read_only_state(const char* path) {
    struct statvfs vfs {};
    if (statvfs(path, &vfs) != 0) {
        return errno == ENOENT ? "absent" : error_value(errno);
    }
    return (vfs.f_flag & ST_RDONLY) != 0 ? "1" : "0";
}

void report_readonly_paths() {
    static constexpr const char* kReadonlyPaths[] = {
        "/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq",
    };
    for (const char* path : kReadonlyPaths) {
        emit(std::string("readonly:") + path, read_only_state(path));
    }
}

void report_dev_entries() {
    DirListing dev = list_directory("/dev");
    emit("dev_entries", dev.err != 0 ? error_value(dev.err) : join(dev.names, ","));
}

void report_sys() {
    DirListing sys = list_directory("/sys");
    if (sys.err == ENOENT || (sys.err == 0 && sys.names.empty())) {
        emit("sys", "absent");
        return;
    }
    if (sys.err != 0) {
        emit("sys", error_value(sys.err));
        return;
    }
    std::string state = read_only_state("/sys");
    emit("sys", state == "1" ? "ro" : state == "0" ? "rw" : state);
}

// ---------------------------------------------------------------------------
// `status`: network and LSM
// ---------------------------------------------------------------------------

// /proc/net/dev (proc(5)): two header lines, then "  name: counters...".
// It reflects the network namespace of the reading process.
std::optional<std::vector<std::string>> interfaces_from_proc() {
    FileContents dev = read_small_file("/proc/net/dev");
    if (dev.err != 0) return std::nullopt;
    std::vector<std::string> names;
    size_t start = 0;
    for (int line = 0; start < dev.data.size(); ++line) {
        size_t end = dev.data.find('\n', start);
        if (end == std::string::npos) end = dev.data.size();
        std::string text = dev.data.substr(start, end - start);
        size_t colon = text.find(':');
        size_t first = text.find_first_not_of(' ');
        if (line >= 2 && colon != std::string::npos && first < colon) {
            names.push_back(text.substr(first, colon - first));
        }
        start = end + 1;
    }
    std::sort(names.begin(), names.end());
    return names;
}

void report_interfaces() {
    if (auto names = interfaces_from_proc()) {
        emit("netns_ifaces", join(*names, ","));
        return;
    }
    DirListing sys = list_directory("/sys/class/net");
    emit("netns_ifaces", sys.err != 0 ? error_value(sys.err) : join(sys.names, ","));
}

// netdevice(7): SIOCGIFFLAGS works on any socket; a fresh network namespace
// has "lo" but leaves it down until someone sets IFF_UP.
void report_loopback_up() {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        emit("lo_up", error_value(errno));
        return;
    }
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(sock, SIOCGIFFLAGS, &request) != 0) {
        emit("lo_up", error_value(errno));
    } else {
        emit("lo_up", (request.ifr_flags & IFF_UP) != 0 ? 1 : 0);
    }
    close(sock);
}

// landlock_create_ruleset(2): with LANDLOCK_CREATE_RULESET_VERSION and no
// attr it returns the highest supported ABI instead of a ruleset fd.
void report_landlock_abi() {
    long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    emit("landlock_abi", abi < 0 ? error_value(errno) : std::to_string(abi));
}

int run_status() {
    report_identity();
    report_process_status();
    report_id_maps();
    report_hostname();
    report_proc_pids();
    report_writability("root", "/");
    report_writability("tmp", "/tmp");
    report_home();
    report_masked_paths();
    report_readonly_paths();
    report_dev_entries();
    report_sys();
    report_interfaces();
    report_loopback_up();
    report_landlock_abi();
    report_mountinfo_count();
    return 0;
}

// ---------------------------------------------------------------------------
// `syscalls`: one probe per privileged operation.
//
// Each probe runs in its own forked child and returns 0 (allowed) or the
// errno. The child keeps namespace/root/keyring changes (unshare, setns,
// chroot, ...) away from the other probes, and a seccomp kill only takes
// the child down. Probes whose success would have global effects either undo
// them or are shaped so the kernel stops right after its permission checks.
// ---------------------------------------------------------------------------

struct ProbeContext {
    pid_t ptrace_target;  // the checker's parent (or 1 when there is none)
};

int result_of(long rc) { return rc < 0 ? errno : 0; }

int probe_mount(const ProbeContext&) {
    long rc = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0UL, nullptr);
    if (rc == 0) syscall(SYS_umount2, "/tmp", MNT_DETACH);  // undo at once
    return result_of(rc);
}

// A real umount2("/proc", MNT_DETACH) run as root on a host would detach the
// host's /proc. umount(2): MNT_EXPIRE cannot be combined with MNT_DETACH, and
// the kernel (fs/namespace.c do_umount) checks that *after* may_mount() and
// the LSM hook. So: EPERM = forbidden, EINVAL = permitted, nothing unmounted.
int probe_umount2(const ProbeContext&) { return result_of(syscall(SYS_umount2, "/proc", MNT_DETACH | MNT_EXPIRE)); }

int probe_unshare_newuser(const ProbeContext&) { return result_of(syscall(SYS_unshare, CLONE_NEWUSER)); }

int probe_unshare_newns(const ProbeContext&) { return result_of(syscall(SYS_unshare, CLONE_NEWNS)); }

int probe_setns(const ProbeContext&) {
    int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = result_of(syscall(SYS_setns, fd, CLONE_NEWNS));
    close(fd);
    return err;
}

// ptrace(2): PTRACE_ATTACH sends SIGSTOP to the tracee. Wait for that stop
// (re-injecting any other signal that arrives first) and detach with signal
// 0, otherwise the tracee would stay stopped after we exit.
void detach_after_attach_stop(pid_t target) {
    for (;;) {
        int status = 0;
        if (!wait_for_child(target, &status) || !WIFSTOPPED(status)) return;
        int sig = WSTOPSIG(status);
        if (sig == SIGSTOP) {
            syscall(SYS_ptrace, PTRACE_DETACH, target, nullptr, nullptr);
            return;
        }
        syscall(SYS_ptrace, PTRACE_CONT, target, nullptr, static_cast<long>(sig));
    }
}

int probe_ptrace(const ProbeContext& context) {
    pid_t target = context.ptrace_target;
    if (syscall(SYS_ptrace, PTRACE_ATTACH, target, nullptr, nullptr) < 0) {
        return errno;
    }
    detach_after_attach_stop(target);
    return 0;
}

int probe_keyctl(const ProbeContext&) {
    return result_of(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
}

// The session keyring may be the per-user one that outlives us, so the key
// is invalidated (keyctl(2) KEYCTL_INVALIDATE) right after creation.
int probe_add_key(const ProbeContext&) {
    long serial = syscall(SYS_add_key, "user", "nucleus-check", "x", 1, KEY_SPEC_SESSION_KEYRING);
    if (serial < 0) return errno;
    if (syscall(SYS_keyctl, KEYCTL_INVALIDATE, serial) != 0) {
        syscall(SYS_keyctl, KEYCTL_UNLINK, serial, KEY_SPEC_SESSION_KEYRING);
    }
    return 0;
}

// request_key(2): a NULL callout_info never upcalls /sbin/request-key; an
// allowed call for a missing key fails with ENOKEY.
int probe_request_key(const ProbeContext&) {
    return result_of(syscall(SYS_request_key, "user", "nucleus-check-absent", nullptr, 0));
}

int close_if_fd(long rc) {
    if (rc < 0) return errno;
    close(static_cast<int>(rc));
    return 0;
}

// A zeroed attr is BPF_PROG_TYPE_UNSPEC: if bpf() is allowed at all the
// verifier rejects it with EINVAL, nothing gets loaded.
int probe_bpf(const ProbeContext&) {
    bpf_attr attr{};
    return close_if_fd(syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
}

// User-space-only counting so the default perf_event_paranoid=2 would permit
// it; only a sandbox policy (or paranoid>=3) makes this fail.
int probe_perf_event_open(const ProbeContext&) {
    perf_event_attr attr{};
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    return close_if_fd(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0UL));
}

// init_module(2)/finit_module(2) check CAP_SYS_MODULE first; allowed calls
// then fail on the empty image (ENOEXEC) or the bad fd (EBADF).
int probe_init_module(const ProbeContext&) { return result_of(syscall(SYS_init_module, nullptr, 0UL, "")); }

int probe_finit_module(const ProbeContext&) { return result_of(syscall(SYS_finit_module, -1, "", 0)); }

// kexec_load(2) with zero segments would *unload* a loaded crash/kexec
// kernel. More than KEXEC_SEGMENT_MAX (16) segments is rejected with EINVAL
// after the CAP_SYS_BOOT check (kernel/kexec.c kexec_load_check).
int probe_kexec_load(const ProbeContext&) {
    constexpr unsigned long kTooManySegments = 17;
    return result_of(syscall(SYS_kexec_load, 0UL, kTooManySegments, nullptr, 0UL));
}

// reboot(2) CAD_OFF only flips the Ctrl-Alt-Del behaviour (and returns
// EINVAL inside a child PID namespace). Restore the previous setting, read
// from /proc/sys/kernel/ctrl-alt-del, if the call went through.
int probe_reboot(const ProbeContext&) {
    FileContents previous = read_small_file("/proc/sys/kernel/ctrl-alt-del");
    bool was_on = previous.err != 0 || std::atoi(previous.data.c_str()) != 0;
    long rc = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, nullptr);
    if (rc == 0 && was_on) {
        syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_ON, nullptr);
    }
    return result_of(rc);
}

int probe_swapon(const ProbeContext&) { return result_of(syscall(SYS_swapon, "/nonexistent", 0)); }

int probe_chroot(const ProbeContext&) { return result_of(syscall(SYS_chroot, "/")); }

// pivot_root(".", ".") from "/" can never succeed: new_root would be the
// current root mount (EBUSY) — so a permitted call is harmless. Without the
// chdir a cwd that is some other mount's root would really pivot the whole
// mount namespace.
int probe_pivot_root(const ProbeContext&) {
    if (chdir("/") != 0) return errno;
    return result_of(syscall(SYS_pivot_root, ".", "."));
}

// Setting the hostname to its current value passes the same CAP_SYS_ADMIN
// check (kernel/sys.c) without changing anything.
int probe_sethostname(const ProbeContext&) {
    utsname uts{};
    if (uname(&uts) != 0) return errno;
    return result_of(syscall(SYS_sethostname, uts.nodename, std::strlen(uts.nodename)));
}

// settimeofday(2) with both arguments NULL runs the CAP_SYS_TIME check
// (security_settime64) and then does nothing.
int probe_settimeofday(const ProbeContext&) { return result_of(syscall(SYS_settimeofday, nullptr, nullptr)); }

// No no-op form exists for clock_settime(2); "now" keeps the step to the
// few nanoseconds between the two calls.
int probe_clock_settime(const ProbeContext&) {
    timespec now{};
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) return errno;
    return result_of(syscall(SYS_clock_settime, CLOCK_REALTIME, &now));
}

// Since Linux 6.12 the mount fd is resolved before the CAP_DAC_READ_SEARCH
// check, so an unconfined call reports EBADF; EPERM means a policy said no.
int probe_open_by_handle_at(const ProbeContext&) {
    alignas(file_handle) unsigned char storage[sizeof(file_handle) + 16] = {};
    auto* handle = reinterpret_cast<file_handle*>(storage);
    handle->handle_bytes = 16;
    return close_if_fd(syscall(SYS_open_by_handle_at, -1, handle, O_RDONLY));
}

int probe_userfaultfd(const ProbeContext&) { return close_if_fd(syscall(SYS_userfaultfd, 0)); }

int probe_io_uring_setup(const ProbeContext&) {
    io_uring_params params{};
    return close_if_fd(syscall(SYS_io_uring_setup, 1, &params));
}

// Child of a fork-like clone: leave immediately, parent reaps it.
int reap_clone_result(long rc) {
    if (rc < 0) return errno;
    if (rc == 0) _exit(0);
    int status = 0;
    wait_for_child(static_cast<pid_t>(rc), &status);
    return 0;
}

// clone3(2): exit_signal SIGCHLD so the child is an ordinary waitable child.
int probe_clone3(const ProbeContext&) {
    clone_args args{};
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    return reap_clone_result(syscall(SYS_clone3, &args, CLONE_ARGS_SIZE_VER0));
}

// With a NULL stack clone(2) behaves like fork; the remaining arguments are
// zero, so the per-architecture argument order does not matter.
int probe_clone_newuser(const ProbeContext&) {
    return reap_clone_result(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0UL));
}

// mknodat rather than mknod: SYS_mknod does not exist on e.g. arm64.
int probe_mknod(const ProbeContext&) {
    const char* path = "/tmp/nc-dev";
    long rc = syscall(SYS_mknodat, AT_FDCWD, path, S_IFCHR | 0600, makedev(1, 3));
    if (rc == 0) unlink(path);
    return result_of(rc);
}

struct SyscallProbe {
    const char* name;
    int (*run)(const ProbeContext&);
};

constexpr SyscallProbe kSyscallProbes[] = {
    {"mount", probe_mount},
    {"umount2", probe_umount2},
    {"unshare_newuser", probe_unshare_newuser},
    {"unshare_newns", probe_unshare_newns},
    {"setns", probe_setns},
    {"ptrace", probe_ptrace},
    {"keyctl", probe_keyctl},
    {"add_key", probe_add_key},
    {"request_key", probe_request_key},
    {"bpf", probe_bpf},
    {"perf_event_open", probe_perf_event_open},
    {"init_module", probe_init_module},
    {"finit_module", probe_finit_module},
    {"kexec_load", probe_kexec_load},
    {"reboot", probe_reboot},
    {"swapon", probe_swapon},
    {"chroot", probe_chroot},
    {"pivot_root", probe_pivot_root},
    {"sethostname", probe_sethostname},
    {"settimeofday", probe_settimeofday},
    {"clock_settime", probe_clock_settime},
    {"open_by_handle_at", probe_open_by_handle_at},
    {"userfaultfd", probe_userfaultfd},
    {"io_uring_setup", probe_io_uring_setup},
    {"clone3", probe_clone3},
    {"mknod", probe_mknod},
    {"clone_newuser", probe_clone_newuser},
};

// Runs one probe in a child. The exit status carries the errno (all errno
// values fit in 8 bits); death by signal (seccomp kill) is reported as such.
std::optional<std::string> run_probe_in_child(const SyscallProbe& probe, const ProbeContext& context) {
    std::fflush(stdout);  // the child must not inherit unflushed output
    pid_t pid = fork();
    if (pid < 0) return std::nullopt;
    if (pid == 0) _exit(probe.run(context));
    int status = 0;
    if (!wait_for_child(pid, &status)) return std::nullopt;
    if (WIFSIGNALED(status)) return prefixed("killed:", signal_name(WTERMSIG(status)));
    int err = WEXITSTATUS(status);
    return err == 0 ? std::string("ok") : errno_name(err);
}

int run_syscalls() {
    pid_t parent = getppid();
    ProbeContext context{parent > 0 ? parent : 1};
    int exit_code = 0;
    for (const SyscallProbe& probe : kSyscallProbes) {
        std::optional<std::string> result = run_probe_in_child(probe, context);
        if (!result) {
            result = prefixed("error:fork:", errno_name(errno));
            exit_code = 1;
        }
        emit(std::string("sys:") + probe.name, *result);
    }
    return exit_code;
}

// ---------------------------------------------------------------------------
// Action subcommands
// ---------------------------------------------------------------------------

// Returned by a subcommand whose arguments do not parse; becomes exit 2.
constexpr int kUsageError = -1;

struct Invocation {
    const char* self;  // argv[0]
    std::span<char* const> args;  // arguments after the subcommand
};

int run_exec(const Invocation& call) {
    char* const argv[] = {call.args[0], nullptr};
    execve(call.args[0], argv, environ);
    emit("exec", errno_name(errno));
    return 0;
}

int run_write(const Invocation& call) {
    int fd = open(call.args[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        if (!write_all(fd, "x", 1)) err = errno;
        if (close(fd) != 0 && err == 0) err = errno;
    }
    emit("write", err == 0 ? std::string("ok") : errno_name(err));
    return 0;
}

int run_read(const Invocation& call) {
    int fd = open(call.args[0], O_RDONLY | O_CLOEXEC | O_NOCTTY);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        char buf[4096];
        if (read(fd, buf, sizeof buf) < 0) err = errno;
        close(fd);
    }
    emit("read", err == 0 ? std::string("ok") : errno_name(err));
    return 0;
}

// Copies src into a new dst; returns 0 or errno.
int copy_file_contents(int src, int dst) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(src, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return 0;
        if (!write_all(dst, buf, static_cast<size_t>(n))) return errno;
    }
}

// /proc/self/exe is the reliable way to find our own image; fall back to
// argv[0] when procfs is not mounted in the sandbox.
int copy_self_to(const char* self, const std::string& destination) {
    int src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (src < 0) src = open(self, O_RDONLY | O_CLOEXEC);
    if (src < 0) return errno;
    int dst = open(destination.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (dst < 0) {
        int err = errno;
        close(src);
        return err;
    }
    int err = copy_file_contents(src, dst);
    // The umask may have stripped bits from the open(2) mode.
    if (err == 0 && fchmod(dst, 0755) != 0) err = errno;
    if (close(dst) != 0 && err == 0) err = errno;
    close(src);
    return err;
}

int run_copyself(const Invocation& call) {
    std::string destination = std::string(call.args[0]) + "/nucleus-check-copy";
    int err = copy_self_to(call.self, destination);
    emit("copy", err == 0 ? std::string("ok") : errno_name(err));
    return 0;
}

int run_sleep(const Invocation& call) {
    std::optional<double> seconds = parse_seconds(call.args[0]);
    if (!seconds) return kUsageError;
    sleep_for(*seconds);
    return 0;
}

int run_exit(const Invocation& call) {
    std::optional<long long> code = parse_integer(call.args[0], 0, 255);
    if (!code) return kUsageError;
    return static_cast<int>(*code);
}

// signal(7): restore SIG_DFL and unblock, since the sandbox may have
// inherited an ignored or blocked disposition. A PID-namespace init ignores
// default-action signals sent by itself, so surviving is reported.
int run_kill_self(const Invocation& call) {
    std::optional<long long> sig = parse_integer(call.args[0], 1, SIGRTMAX);
    if (!sig) return kUsageError;
    int signo = static_cast<int>(*sig);
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigaction(signo, &action, nullptr);  // fails harmlessly for KILL/STOP
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    std::fflush(stdout);
    raise(signo);
    emit("kill-self", "survived");
    return 1;
}

int run_spin(const Invocation&) {
    for (;;) {
        asm volatile("" ::: "memory");  // keeps the loop from being optimised out
    }
}

int run_fork_sleep(const Invocation& call) {
    std::optional<long long> count = parse_integer(call.args[0], 0, 4096);
    std::optional<double> seconds = parse_seconds(call.args[1]);
    if (!count || !seconds) return kUsageError;
    std::vector<pid_t> children;
    int exit_code = 0;
    std::fflush(stdout);
    for (long long i = 0; i < *count; ++i) {
        pid_t pid = fork();
        if (pid == 0) {
            sleep_for(*seconds);
            _exit(0);
        }
        if (pid < 0) {
            emit("fork", error_value(errno));
            exit_code = 1;
            break;
        }
        children.push_back(pid);
    }
    std::vector<std::string> pid_texts;
    for (pid_t child : children) pid_texts.push_back(std::to_string(child));
    emit("forked", static_cast<long long>(children.size()));
    emit("child_pids", join(pid_texts, ","));
    std::fflush(stdout);  // the tests may read this while we sleep
    sleep_for(*seconds);
    for (pid_t child : children) {
        int status = 0;
        wait_for_child(child, &status);
    }
    return exit_code;
}

int run_print(const Invocation& call) {
    std::optional<long long> total = parse_integer(call.args[0], 0, LLONG_MAX);
    if (!total) return kUsageError;
    static char chunk[64 * 1024];
    std::memset(chunk, 'x', sizeof chunk);
    unsigned long long remaining = static_cast<unsigned long long>(*total);
    while (remaining > 0) {
        size_t n = static_cast<size_t>(std::min<unsigned long long>(remaining, sizeof chunk));
        if (!write_all(STDOUT_FILENO, chunk, n)) return 1;
        remaining -= n;
    }
    return write_all(STDOUT_FILENO, "\n", 1) ? 0 : 1;
}

int run_stderr(const Invocation& call) {
    std::string line = std::string(call.args[0]) + "\n";
    return write_all(STDERR_FILENO, line.data(), line.size()) ? 0 : 1;
}

int run_env(const Invocation&) {
    for (char** entry = environ; *entry != nullptr; ++entry) std::puts(*entry);
    return 0;
}

int run_cwd(const Invocation&) {
    char buf[PATH_MAX];
    emit("cwd", getcwd(buf, sizeof buf) != nullptr ? std::string(buf) : error_value(errno));
    return 0;
}

int run_ids(const Invocation&) {
    emit("uid", getuid());
    emit("gid", getgid());
    emit("groups", getgroups(0, nullptr));
    return 0;
}

// Resource workloads for the kernel lane (tests/kernel/).

// Allocates and touches MB mebibytes, one page at a time, reporting progress
// every 8 MiB so a test can see how far it got before an OOM kill.
int run_hog(const Invocation& call) {
    std::optional<long long> mebibytes = parse_integer(call.args[0], 1, 1 << 20);
    if (!mebibytes) return kUsageError;
    std::vector<char*> blocks;
    for (long long i = 0; i < *mebibytes; ++i) {
        char* block = static_cast<char*>(std::malloc(1 << 20));
        if (block == nullptr) {
            emit("hog", error_value(ENOMEM));
            return 1;
        }
        for (size_t off = 0; off < (1 << 20); off += 4096) block[off] = 1;
        blocks.push_back(block);
        if ((i + 1) % 8 == 0) {
            emit("hog_mib", i + 1);
            std::fflush(stdout);
        }
    }
    emit("hog", "done");
    return 0;
}

// Forks children that each sleep, until fork fails; reports how many it
// made and the errno that stopped it, then waits SECONDS and exits (its
// children die with the PID namespace).
int run_forkbomb(const Invocation& call) {
    std::optional<double> seconds = parse_seconds(call.args[0]);
    if (!seconds) return kUsageError;
    long long made = 0;
    int stopped_by = 0;
    for (; made < 100000; ++made) {
        pid_t pid = fork();
        if (pid == 0) {
            pause();
            _exit(0);
        }
        if (pid < 0) {
            stopped_by = errno;
            break;
        }
    }
    emit("forked", made);
    emit("fork_error", stopped_by ? error_value(stopped_by) : std::string("none"));
    std::fflush(stdout);
    sleep_for(*seconds);
    return stopped_by ? 3 : 0;
}

// Writes 1 MiB chunks into PATH until the filesystem refuses; reports the
// bytes written and the errno (ENOSPC expected under --tmpfs-size).
int run_fill(const Invocation& call) {
    int fd = open(call.args[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        emit("fill", error_value(errno));
        return 1;
    }
    static char chunk[1 << 20];
    long long written = 0;
    int err = 0;
    for (;;) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n < 0) {
            err = errno;
            break;
        }
        written += n;
        if (written > (1LL << 34)) break;  // 16 GiB: something is wrong, stop
    }
    close(fd);
    emit("filled_bytes", written);
    emit("fill", err ? error_value(err) : std::string("no_error"));
    return 0;
}

int run_status_command(const Invocation&) { return run_status(); }
int run_syscalls_command(const Invocation&) { return run_syscalls(); }

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

struct Subcommand {
    const char* name;
    size_t arg_count;
    const char* usage;
    int (*run)(const Invocation&);
};

constexpr Subcommand kSubcommands[] = {
    {"status", 0, "", run_status_command},
    {"syscalls", 0, "", run_syscalls_command},
    {"exec", 1, "PATH", run_exec},
    {"write", 1, "PATH", run_write},
    {"read", 1, "PATH", run_read},
    {"copyself", 1, "DIR", run_copyself},
    {"sleep", 1, "SECONDS", run_sleep},
    {"exit", 1, "N", run_exit},
    {"kill-self", 1, "SIGNUM", run_kill_self},
    {"spin", 0, "", run_spin},
    {"fork-sleep", 2, "N SECONDS", run_fork_sleep},
    {"print", 1, "BYTES", run_print},
    {"stderr", 1, "TEXT", run_stderr},
    {"env", 0, "", run_env},
    {"cwd", 0, "", run_cwd},
    {"ids", 0, "", run_ids},
    {"hog", 1, "MEBIBYTES", run_hog},
    {"forkbomb", 1, "SECONDS", run_forkbomb},
    {"fill", 1, "PATH", run_fill},
};

int usage(const char* self) {
    std::fprintf(stderr, "usage: %s SUBCOMMAND [ARGS]\nsubcommands:\n", self);
    for (const Subcommand& command : kSubcommands) {
        std::fprintf(stderr, "  %s%s%s\n", command.name, *command.usage ? " " : "", command.usage);
    }
    return 2;
}

int dispatch(int argc, char** argv) {
    const char* self = argc > 0 ? argv[0] : "nucleus-check";
    if (argc < 2) return usage(self);
    std::string_view name = argv[1];
    for (const Subcommand& command : kSubcommands) {
        if (name != command.name) continue;
        if (static_cast<size_t>(argc - 2) != command.arg_count) return usage(self);
        Invocation call{self, std::span<char* const>(argv + 2, command.arg_count)};
        int code = command.run(call);
        return code == kUsageError ? usage(self) : code;
    }
    return usage(self);
}

}  // namespace

int main(int argc, char** argv) {
    int code = dispatch(argc, argv);
    if (std::fflush(stdout) != 0 && code == 0) code = 1;
    return code;
}
