#include "isolation/cgroup.hpp"

#include <mutex>
#include <optional>

#include "isolation/mountinfo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

namespace nucleus::isolation {

std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo) {
    // The last matching line wins: a later mount may cover an earlier one
    // (cgroup2 mounted over a hybrid host's /sys/fs/cgroup hides .../unified).
    std::optional<std::string> found;
    for (auto& entry : parse_mountinfo(mountinfo)) {
        // root "/": the hierarchy's root, not a bind of a sub-tree.
        if (entry.fstype == "cgroup2" && entry.root == "/") found = std::move(entry.mount_point);
    }
    return found;
}

Result<std::string> find_cgroup2_mount() {
    // Every sandbox asks; the daemon would reread and parse its mountinfo
    // twice per create. Where cgroup2 is mounted does not change under a
    // running process in practice, so a found mount point is remembered (a
    // miss is not: it may be mounted later).
    static std::mutex mutex;
    static std::optional<std::string> found;
    {
        std::lock_guard lock(mutex);
        if (found) return *found;
    }
    auto mountinfo = io::read_file("/proc/self/mountinfo", 4 << 20);
    if (!mountinfo) return std::move(mountinfo).error();
    auto mount = find_cgroup2_mount(*mountinfo);
    if (!mount) return Error::plain("no cgroup2 filesystem is mounted (see /proc/self/mountinfo)");
    std::lock_guard lock(mutex);
    found = *mount;
    return *mount;
}

Result<SandboxCgroup> SandboxCgroup::create(const std::string& parent, const std::string& name) {
    SandboxCgroup cgroup;
    cgroup.path_ = parent + "/" + name;
    if (::mkdir(cgroup.path_.c_str(), 0755) < 0) return Error::from_errno("mkdir " + cgroup.path_);
    auto dir = io::open_fd(cgroup.path_, O_PATH | O_DIRECTORY);
    if (!dir) {
        ::rmdir(cgroup.path_.c_str());
        return std::move(dir).error();
    }
    cgroup.dir_ = std::move(*dir);
    return cgroup;
}

Result<SandboxCgroup> SandboxCgroup::open(const std::string& path) {
    SandboxCgroup cgroup;
    cgroup.path_ = path;
    auto dir = io::open_fd(path, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!dir) return std::move(dir).error();
    cgroup.dir_ = std::move(*dir);
    return cgroup;
}

Result<std::vector<std::string>> available_controllers(const std::string& path) {
    auto text = io::read_file(path + "/cgroup.controllers", 4096);
    if (!text) return std::move(text).error();
    std::vector<std::string> out;
    std::istringstream words(*text);
    for (std::string w; words >> w;) out.push_back(w);
    return out;
}

namespace {

bool has_processes(const std::string& path) {
    auto procs = io::read_file(path + "/cgroup.procs", 1 << 20);
    return procs && procs->find_first_not_of(" \n") != std::string::npos;
}

// The runtime's own cgroup path relative to the v2 root ("0::/x/y").
std::string own_cgroup() {
    auto self = io::read_file("/proc/self/cgroup", 64 << 10);
    if (!self) return "";
    auto pos = self->find("0::");
    if (pos == std::string::npos) return "";
    return self->substr(pos + 3, self->find('\n', pos) - pos - 3);
}

Status move_self_to_leaf(const std::string& cgroup) {
    std::string leaf = cgroup + "/supervisor";
    if (::mkdir(leaf.c_str(), 0755) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + leaf);
    return io::write_file(leaf + "/cgroup.procs", "0");
}

}  // namespace

Status delegate_controllers(const std::string& mount, const std::string& parent,
                            const std::vector<std::string>& controllers) {
    if (controllers.empty()) return {};
    if (parent.compare(0, mount.size(), mount) != 0) return Error::plain(parent + " is not under " + mount);
    std::string own = mount + own_cgroup();
    std::string rel = parent.substr(mount.size());
    std::string level = mount;
    size_t pos = 0;
    for (;;) {
        // Enable at `level` for its children, if not already.
        auto enabled = io::read_file(level + "/cgroup.subtree_control", 4096);
        if (!enabled) return std::move(enabled).error();
        std::istringstream words(*enabled);
        std::vector<std::string> on;
        for (std::string w; words >> w;) on.push_back(w);
        std::string wanted;
        for (const auto& c : controllers)
            if (std::find(on.begin(), on.end(), c) == on.end()) wanted += (wanted.empty() ? "+" : " +") + c;
        if (!wanted.empty()) {
            if (level != mount && has_processes(level)) {
                if (level != own)
                    return Error::plain(level + " has processes; cannot enable controllers for its children");
                NUCLEUS_TRY(move_self_to_leaf(level));
            }
            NUCLEUS_TRY(
                io::write_file(level + "/cgroup.subtree_control", wanted).wrap("enabling " + wanted + " in " + level));
        }
        if (pos >= rel.size()) break;
        auto next = rel.find('/', pos + 1);
        level = mount + rel.substr(0, next);
        pos = next == std::string::npos ? rel.size() : next;
    }
    return {};
}

std::optional<uint64_t> keyed_value(const std::string& text, const std::string& key) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.compare(0, key.size() + 1, key + " ") != 0) continue;
        try {
            return std::stoull(line.substr(key.size() + 1));
        } catch (...) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

namespace {

std::optional<uint64_t> single_value(const std::string& path) {
    auto text = io::read_file(path, 256);
    if (!text || text->starts_with("max")) return std::nullopt;
    try {
        return std::stoull(*text);
    } catch (...) {
        return std::nullopt;
    }
}

void sum_io_stat(const std::string& text, CgroupStats& s) {
    // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device
    uint64_t totals[4] = {};
    const char* keys[4] = {"rbytes=", "wbytes=", "rios=", "wios="};
    std::istringstream words(text);
    for (std::string w; words >> w;)
        for (int i = 0; i < 4; ++i)
            if (w.starts_with(keys[i])) totals[i] += std::strtoull(w.c_str() + std::strlen(keys[i]), nullptr, 10);
    s.io_rbytes = totals[0];
    s.io_wbytes = totals[1];
    s.io_rios = totals[2];
    s.io_wios = totals[3];
}

}  // namespace

CgroupStats read_cgroup_stats(const std::string& path) {
    CgroupStats s;
    s.memory_current = single_value(path + "/memory.current");
    s.memory_peak = single_value(path + "/memory.peak");
    s.swap_current = single_value(path + "/memory.swap.current");
    if (auto cpu = io::read_file(path + "/cpu.stat", 64 << 10)) {
        s.cpu_usage_usec = keyed_value(*cpu, "usage_usec");
        s.cpu_user_usec = keyed_value(*cpu, "user_usec");
        s.cpu_system_usec = keyed_value(*cpu, "system_usec");
        s.cpu_nr_periods = keyed_value(*cpu, "nr_periods");
        s.cpu_nr_throttled = keyed_value(*cpu, "nr_throttled");
        s.cpu_throttled_usec = keyed_value(*cpu, "throttled_usec");
    }
    s.pids_current = single_value(path + "/pids.current");
    s.pids_peak = single_value(path + "/pids.peak");
    if (auto io_stat = io::read_file(path + "/io.stat", 1 << 20)) sum_io_stat(*io_stat, s);
    return s;
}

CgroupEventCounts read_cgroup_event_counts(const std::string& path) {
    CgroupEventCounts c;
    if (auto mem = io::read_file(path + "/memory.events", 4096)) {
        c.memory_high = keyed_value(*mem, "high").value_or(0);
        c.memory_max = keyed_value(*mem, "max").value_or(0);
        c.memory_oom = keyed_value(*mem, "oom").value_or(0);
        c.memory_oom_kill = keyed_value(*mem, "oom_kill").value_or(0);
    }
    if (auto pids = io::read_file(path + "/pids.events", 4096)) c.pids_max = keyed_value(*pids, "max").value_or(0);
    return c;
}

Status SandboxCgroup::request_freeze(bool frozen) const {
    return io::write_file(path_ + "/cgroup.freeze", frozen ? "1" : "0");
}

Result<bool> SandboxCgroup::frozen() const {
    auto events = io::read_file(path_ + "/cgroup.events", 4096);
    if (!events) return std::move(events).error();
    return events->find("frozen 1") != std::string::npos;
}

Status SandboxCgroup::kill() const { return io::write_file(path_ + "/cgroup.kill", "1"); }

Result<bool> SandboxCgroup::populated() const {
    auto events = io::read_file(path_ + "/cgroup.events", 4096);
    if (!events) return std::move(events).error();
    return events->find("populated 1") != std::string::npos;
}

Status SandboxCgroup::remove() {
    if (removed_) return {};
    if (::rmdir(path_.c_str()) < 0 && errno != ENOENT) return Error::from_errno("rmdir " + path_);
    removed_ = true;
    dir_.reset();
    return {};
}

}  // namespace nucleus::isolation
