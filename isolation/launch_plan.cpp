#include "isolation/launch_plan.hpp"

#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string.h>
#include <set>

#include "isolation/capabilities.hpp"
#include "isolation/kernel_abi.hpp"

namespace nucleus::isolation {

namespace {

constexpr uint64_t ro_attrs = kabi::mount_attr_rdonly | kabi::mount_attr_nosuid | kabi::mount_attr_nodev;

// Host directories that make up the default agent root (read-only binds).
constexpr const char* system_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/nix/store"};
// Host /etc entries the default root needs; files and directories, bound read-only.
constexpr const char* etc_entries[] = {"resolv.conf",  "nsswitch.conf", "ld.so.cache",     "ld.so.conf",
                                       "ld.so.conf.d", "ssl",           "ca-certificates", "ca-certificates.conf",
                                       "alternatives", "localtime",     "mime.types"};
// Names in a --rootfs top level that the runtime provides itself.
const std::set<std::string> reserved_top_level = {"proc", "dev", "sys", "tmp", "home", "workspace", "context", "run"};

constexpr const char* masked_files[] = {"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug"};
constexpr const char* masked_dirs[] = {"acpi", "asound", "scsi"};
constexpr const char* readonly_proc[] = {"bus", "fs", "irq", "sys", "sysrq-trigger"};

bool is_under(const std::string& path, const std::string& dir) {
    return path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

}  // namespace

std::optional<std::string> root_conflict(const std::optional<std::string>& rootfs, const std::string& target) {
    // The read-only entries of the root the plan builds, found on the host as
    // plan_default_root() and plan_rootfs() find them: {path inside, always
    // present (generated files)}.
    std::vector<std::pair<std::string, bool>> entries;
    if (rootfs) {
        if (DIR* dir = ::opendir(rootfs->c_str())) {
            while (dirent* entry = ::readdir(dir)) {
                std::string name = entry->d_name;
                if (name != "." && name != ".." && !reserved_top_level.count(name))
                    entries.push_back({"/" + name, false});
            }
            ::closedir(dir);
        }
    } else {
        for (const char* dir : system_dirs) entries.push_back({dir, false});
        for (const char* entry : etc_entries) entries.push_back({std::string("/etc/") + entry, false});
        for (const char* file : {"/etc/passwd", "/etc/group", "/etc/hostname", "/etc/hosts"})
            entries.push_back({file, true});
    }
    auto host_path = [&](const std::string& inside) { return rootfs ? *rootfs + inside : inside; };
    const std::string what = rootfs ? "the rootfs's read-only " : "the read-only system bind ";
    for (const auto& [entry, generated] : entries) {
        struct stat st {};
        if (!generated && ::lstat(host_path(entry).c_str(), &st) < 0) continue;  // not in this root
        // Over a parent of a bound entry (/nix over /nix/store) would hide it.
        if (is_under(entry, target) && entry != target) return "target " + target + " would cover " + what + entry;
        if (!is_under(target, entry)) continue;
        if (!generated && S_ISLNK(st.st_mode)) {
            char link[4096];
            ssize_t n = ::readlink(host_path(entry).c_str(), link, sizeof link - 1);
            std::string to = n > 0 ? std::string(link, static_cast<size_t>(n)) : "?";
            return "target " + target + " is " + (target == entry ? "" : "inside ") + entry + ", a symlink to " + to +
                   " in the sandbox's root (no mount point can be made through it)";
        }
        if (target == entry) return "target " + target + " would replace " + what + entry;
        if (!rootfs) return "target " + target + " is inside " + what + entry;
        // Inside a rootfs directory: only where the mount point already exists
        // there, reached without symlinks (nothing can be created in a
        // read-only bind).
        std::string path = *rootfs;
        for (size_t from = 1; from <= target.size();) {
            size_t slash = std::min(target.find('/', from), target.size());
            path += "/" + target.substr(from, slash - from);
            struct stat part {};
            if (::lstat(path.c_str(), &part) < 0)
                return "target " + target + " is inside " + what + entry +
                       " and does not exist there (its mount point cannot be created)";
            if (S_ISLNK(part.st_mode))
                return "target " + target + " goes through a symlink in the rootfs (" + path + ")";
            from = slash + 1;
        }
        return std::nullopt;
    }
    return std::nullopt;
}

// Assembles a LaunchPlan; one method per part of the sandbox.
class PlanBuilder {
public:
    PlanBuilder(const LaunchRequest& request, LaunchPlan& plan) : req_(request), plan_(plan) {}

    Status build() {
        abi_ = req_.landlock ? landlock_abi() : 0;
        NUCLEUS_TRY(plan_root());
        plan_home_and_tmp();
        plan_secrets();
        plan_proc();
        plan_dev();
        plan_sys();
        NUCLEUS_TRY(plan_binds());
        NUCLEUS_TRY(plan_landlock());
        plan_seccomp();
        NUCLEUS_TRY(plan_program());
        fill_child();
        return {};
    }

private:
    const char* keep(std::string s) { return plan_.strings_.emplace_back(std::move(s)).c_str(); }
    std::string staged(const std::string& inside) const { return req_.staging_dir + inside; }

    MountOp& add(MountKind kind, const std::string& inside) {
        MountOp op{};
        op.kind = kind;
        op.target = keep(staged(inside));
        return plan_.mounts_.emplace_back(op);
    }
    void mkdir(const std::string& inside, uint32_t mode = 0755) { add(MountKind::Mkdir, inside).mode = mode; }
    void symlink(const std::string& inside, const std::string& target) {
        add(MountKind::Symlink, inside).source = keep(target);
    }
    MountOp& bind(const std::string& host, const std::string& inside, uint64_t attrs, bool is_file) {
        MountOp& op = add(MountKind::Bind, inside);
        op.source = keep(host);
        op.attr_set = attrs;
        op.target_is_file = is_file;
        return op;
    }
    void write_file(const std::string& inside, std::string content, uint32_t mode = 0644) {
        MountOp& op = add(MountKind::WriteFile, inside);
        op.data_len = content.size();
        op.data = keep(std::move(content));
        op.mode = mode;
    }
    MountOp& tmpfs(const std::string& inside, std::string options, unsigned long flags) {
        MountOp& op = add(MountKind::Tmpfs, inside);
        op.data = keep(std::move(options));
        op.flags = flags;
        return op;
    }
    void set_attr(const std::string& inside, uint64_t attrs, bool recursive) {
        MountOp& op = add(MountKind::SetAttr, inside);
        op.attr_set = attrs;
        op.recursive = recursive;
    }
    void expect(MountExpectation expectation) { plan_.expectations.push_back(std::move(expectation)); }
    void rule(const std::string& path, LandlockAccess access) {
        uint64_t rights = landlock_rights(access, abi_);
        if (rights) plan_.landlock_rules_.push_back({keep(path), rights});
    }

    // Binds a host entry (dir or file) read-only, or recreates it when it is
    // a symlink (merged-/usr hosts: /bin -> usr/bin).
    Status mirror(const std::string& host, const std::string& inside, bool executable) {
        struct stat st {};
        if (::lstat(host.c_str(), &st) < 0) {
            if (errno == ENOENT) return {};
            return Error::from_errno("lstat " + host);
        }
        if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = ::readlink(host.c_str(), target, sizeof target - 1);
            if (n < 0) return Error::from_errno("readlink " + host);
            symlink(inside, std::string(target, static_cast<size_t>(n)));
        } else if (S_ISDIR(st.st_mode)) {
            bind(host, inside, ro_attrs, false).recursive = true;
            expect({.path = inside, .read_only = true, .nosuid = true, .nodev = true, .noexec = false});
            plan_.mount_summary.push_back(inside + " (ro, from " + host + ")");
            if (executable) rule(inside, LandlockAccess::ReadExec);
        } else if (S_ISREG(st.st_mode)) {
            bind(host, inside, ro_attrs, true).recursive = false;
        }
        return {};
    }

    std::string passwd() const {
        std::string out = "root:x:0:0:root:/root:/usr/sbin/nologin\n";
        if (req_.uid != 0)
            out += req_.user_name + ":x:" + std::to_string(req_.uid) + ":" + std::to_string(req_.gid) + ":" +
                   req_.user_name + ":" + req_.home + ":/bin/sh\n";
        out += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        return out;
    }
    std::string group() const {
        std::string out = "root:x:0:\n";
        if (req_.gid != 0) out += req_.user_name + ":x:" + std::to_string(req_.gid) + ":\n";
        out += "nogroup:x:65534:\n";
        return out;
    }

    Status plan_default_root() {
        mkdir("/nix", 0755);
        for (const char* dir : system_dirs) NUCLEUS_TRY(mirror(dir, dir, true));
        mkdir("/etc");
        for (const char* entry : etc_entries) {
            if (!req_.resolv_conf.empty() && std::string_view(entry) == "resolv.conf") continue;
            NUCLEUS_TRY(mirror(std::string("/etc/") + entry, std::string("/etc/") + entry, false));
        }
        if (!req_.resolv_conf.empty()) write_file("/etc/resolv.conf", req_.resolv_conf);
        write_file("/etc/passwd", passwd());
        write_file("/etc/group", group());
        write_file("/etc/hostname", req_.hostname + "\n");
        if (!req_.hosts_file.empty()) write_file("/etc/hosts", req_.hosts_file);
        return {};
    }

    Status plan_rootfs(const std::string& rootfs) {
        DIR* dir = ::opendir(rootfs.c_str());
        if (!dir) return Error::from_errno("opening rootfs " + rootfs);
        std::vector<std::string> names;
        while (dirent* entry = ::readdir(dir)) {
            std::string name = entry->d_name;
            if (name == "." || name == ".." || reserved_top_level.count(name)) continue;
            names.push_back(name);
        }
        ::closedir(dir);
        std::sort(names.begin(), names.end());  // deterministic plans
        for (const auto& name : names) NUCLEUS_TRY(mirror(rootfs + "/" + name, "/" + name, true));
        return {};
    }

    // A store closure (isolation/closure_root.hpp): the store bound
    // read-only without a right of its own, read+execute on the closure's
    // paths, /etc read-only, and no rule on / (it would reach the store).
    Status plan_closure_root(const ClosureRoot& closure) {
        for (const auto& dir : store_parents(closure.store_dir)) mkdir(dir);
        NUCLEUS_TRY(mirror(closure.store_dir, closure.store_dir, false));
        for (const auto& path : closure.paths)
            if (uint64_t rights = closure_path_rights(path, abi_))
                plan_.landlock_rules_.push_back({keep(path), rights});
        mkdir("/etc");
        for (const auto& entry : closure_host_etc_entries())
            NUCLEUS_TRY(mirror("/etc/" + entry, "/etc/" + entry, false));
        write_file("/etc/passwd", passwd());
        write_file("/etc/group", group());
        write_file("/etc/hostname", req_.hostname + "\n");
        write_file("/etc/nsswitch.conf", std::string(closure_nsswitch_conf()));
        if (!req_.hosts_file.empty()) write_file("/etc/hosts", req_.hosts_file);
        rule("/etc", LandlockAccess::ReadOnly);
        expect({.path = "/", .read_only = true, .nosuid = false, .nodev = false, .noexec = false});
        plan_.mount_summary.push_back("/ (tmpfs, ro; closure of " + std::to_string(closure.paths.size()) +
                                      " store paths)");
        return {};
    }

    Status plan_root() {
        if (req_.closure) return plan_closure_root(*req_.closure);
        if (req_.rootfs) NUCLEUS_TRY(plan_rootfs(*req_.rootfs));
        else NUCLEUS_TRY(plan_default_root());
        expect({.path = "/", .read_only = true, .nosuid = false, .nodev = false, .noexec = false});
        plan_.mount_summary.push_back("/ (tmpfs, ro)");
        rule("/", LandlockAccess::ReadOnly);
        return {};
    }

    void plan_home_and_tmp() {
        auto ids = ",uid=" + std::to_string(req_.uid) + ",gid=" + std::to_string(req_.gid);
        // tmpfs pages are charged to the memory cgroup of the writer, i.e.
        // the sandbox; size= bounds each mount on top of that.
        std::string size = req_.tmpfs_size ? ",size=" + std::to_string(*req_.tmpfs_size) : "";
        // Parents of the home directory on the root tmpfs.
        for (size_t pos = req_.home.find('/', 1); pos != std::string::npos; pos = req_.home.find('/', pos + 1))
            mkdir(req_.home.substr(0, pos));
        tmpfs(req_.home, "mode=0700" + ids + size, MS_NOSUID | MS_NODEV);
        expect({.path = req_.home, .read_only = false, .nosuid = true, .nodev = true, .noexec = false});
        rule(req_.home, LandlockAccess::ReadWriteExec);
        tmpfs("/tmp", "mode=1777" + size, MS_NOSUID | MS_NODEV);
        expect({.path = "/tmp", .read_only = false, .nosuid = true, .nodev = true, .noexec = false});
        rule("/tmp", LandlockAccess::ReadWriteExec);
        plan_.mount_summary.push_back(req_.home + " (tmpfs, 0700)");
        plan_.mount_summary.push_back("/tmp (tmpfs)");
    }

    // Secrets live on a tmpfs of their own (memory only, never on disk),
    // 0400 and owned by the workload user, then the mount is made read-only.
    void plan_secrets() {
        mkdir("/run");
        if (req_.secrets.empty()) return;
        tmpfs("/run/secrets",
              "mode=0500,size=1m,nr_inodes=1024,uid=" + std::to_string(req_.uid) + ",gid=" + std::to_string(req_.gid),
              MS_NOSUID | MS_NODEV | MS_NOEXEC);
        for (const auto& secret : req_.secrets) {
            MountOp& op = add(MountKind::WriteFile, "/run/secrets/" + secret.name);
            std::string& stored = plan_.strings_.emplace_back(secret.content);
            plan_.secret_buffers_.push_back(&stored);
            op.data = stored.c_str();
            op.data_len = stored.size();
            op.mode = 0400;
            op.chown = true;
            op.owner_uid = req_.uid;
            op.owner_gid = req_.gid;
        }
        set_attr("/run/secrets", kabi::mount_attr_rdonly, false);
        expect({.path = "/run/secrets", .read_only = true, .nosuid = true, .nodev = true, .noexec = true});
        rule("/run/secrets", LandlockAccess::ReadOnly);
        plan_.mount_summary.push_back("/run/secrets (tmpfs, ro, " + std::to_string(req_.secrets.size()) + " secrets)");
    }

    void plan_proc() {
        MountOp& proc = add(MountKind::Proc, "/proc");
        proc.flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
        for (const char* name : masked_files) {
            MountOp& op = add(MountKind::MaskFile, std::string("/proc/") + name);
            op.optional = true;
        }
        for (const char* name : masked_dirs) add(MountKind::MaskDir, std::string("/proc/") + name).optional = true;
        for (const char* name : readonly_proc) add(MountKind::ReadOnly, std::string("/proc/") + name).optional = true;
        expect({.path = "/proc", .read_only = false, .nosuid = true, .nodev = true, .noexec = true});
        expect({.path = "/proc/sys", .read_only = true, .nosuid = true, .nodev = true, .noexec = false});
        rule("/proc", LandlockAccess::Device);
        plan_.mount_summary.push_back("/proc (masked: OCI defaults)");
    }

    void plan_dev() {
        tmpfs("/dev", "mode=755,size=64k", MS_NOSUID | MS_NOEXEC);
        // The nodes' binds take nosuid and noexec below, all in one call.
        for (const char* node : {"null", "zero", "full", "random", "urandom", "tty"})
            bind(std::string("/dev/") + node, std::string("/dev/") + node, 0, true).recursive = false;
        MountOp& pts = add(MountKind::Devpts, "/dev/pts");
        pts.flags = MS_NOSUID | MS_NOEXEC;
        pts.data = "newinstance,ptmxmode=0666,mode=0620";
        symlink("/dev/ptmx", "pts/ptmx");
        tmpfs("/dev/shm", "mode=1777", MS_NOSUID | MS_NODEV | MS_NOEXEC);
        mkdir("/dev/mqueue");
        symlink("/dev/fd", "/proc/self/fd");
        symlink("/dev/stdin", "/proc/self/fd/0");
        symlink("/dev/stdout", "/proc/self/fd/1");
        symlink("/dev/stderr", "/proc/self/fd/2");
        symlink("/dev/core", "/proc/kcore");
        // Every mount under /dev (the nodes, pts, shm) nosuid and noexec: one
        // recursive mount_setattr(2) instead of one per node.
        set_attr("/dev", kabi::mount_attr_nosuid | kabi::mount_attr_noexec, true);
        expect({.path = "/dev", .read_only = false, .nosuid = true, .nodev = false, .noexec = true});
        expect({.path = "/dev/shm", .read_only = false, .nosuid = true, .nodev = true, .noexec = true});
        rule("/dev", LandlockAccess::Device);
        rule("/dev/shm", LandlockAccess::ReadWrite);
        plan_.mount_summary.push_back("/dev (minimal)");
    }

    void plan_sys() {
        // A fresh sysfs needs a network namespace owned by our user namespace
        // (sysfs_get_tree); with the host's network, /sys stays absent.
        if (!req_.new_network_namespace) return;
        MountOp& sys = add(MountKind::Sysfs, "/sys");
        sys.flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
        add(MountKind::MaskDir, "/sys/firmware").optional = true;
        add(MountKind::MaskDir, "/sys/devices/virtual/powercap").optional = true;
        expect({.path = "/sys", .read_only = true, .nosuid = true, .nodev = true, .noexec = true});
        plan_.mount_summary.push_back("/sys (ro)");
    }

    Status bind_request(const BindRequest& b, const char* what) {
        struct stat st {};
        bool attach = b.mount_fd >= 0;
        if (!attach && ::stat(b.source.c_str(), &st) < 0)
            return Error::from_errno(std::string(what) + " source " + b.source);
        bool is_file = !attach && !S_ISDIR(st.st_mode);
        for (size_t pos = b.target.find('/', 1); pos != std::string::npos; pos = b.target.find('/', pos + 1))
            mkdir(b.target.substr(0, pos));
        uint64_t attrs = kabi::mount_attr_nosuid | kabi::mount_attr_nodev;
        if (!b.writable) attrs |= kabi::mount_attr_rdonly;
        if (!b.exec) attrs |= kabi::mount_attr_noexec;
        if (attach) add(MountKind::AttachFd, b.target).fd = b.mount_fd;  // its attributes were set when it was made
        else bind(b.source, b.target, attrs, is_file).recursive = true;
        expect({.path = b.target, .read_only = !b.writable, .nosuid = true, .nodev = true, .noexec = !b.exec});
        LandlockAccess access = b.writable ? (b.exec ? LandlockAccess::ReadWriteExec : LandlockAccess::ReadWrite)
                                           : (b.exec ? LandlockAccess::ReadExec : LandlockAccess::ReadOnly);
        if (!is_file) rule(b.target, access);
        plan_.mount_summary.push_back(b.target + " (" + (b.writable ? "rw" : "ro") + (b.exec ? "" : ",noexec") +
                                      ", from " + b.source + ")");
        return {};
    }

    Status plan_binds() {
        if (req_.workspace) NUCLEUS_TRY(bind_request(*req_.workspace, "workspace"));
        for (const auto& v : req_.volumes) NUCLEUS_TRY(bind_request(v, "volume"));
        if (req_.context_dir)
            NUCLEUS_TRY(bind_request({.source = *req_.context_dir,
                                      .target = "/context",
                                      .writable = false,
                                      .exec = req_.context_exec,
                                      .mount_fd = req_.context_mount_fd},
                                     "context"));
        return {};
    }

    Status plan_landlock() {
        if (req_.landlock_rules) {
            plan_.landlock_rules_.clear();
            for (const auto& [path, access] : *req_.landlock_rules)
                plan_.landlock_rules_.push_back({keep(path), access & landlock_handled_rights(abi_)});
            if (abi_ < req_.landlock_min_abi) {
                plan_.landlock.reason = "the Landlock policy needs ABI " + std::to_string(req_.landlock_min_abi) +
                                        ", the kernel offers " + std::to_string(abi_);
                plan_.landlock_rules_.clear();
                return {};
            }
        }
        if (!req_.landlock) {
            plan_.landlock.reason = "disabled by request";
            plan_.landlock_rules_.clear();
            return {};
        }
        if (abi_ == 0) {
            plan_.landlock.reason = "the kernel does not offer Landlock (not in the LSM list)";
            plan_.landlock_rules_.clear();
            return {};
        }
        auto ruleset = create_landlock_ruleset(abi_);
        if (!ruleset) return std::move(ruleset).error().wrap("preparing Landlock");
        plan_.landlock = {.enforced = true, .abi = abi_, .scoped = ruleset->scoped, .reason = ""};
        plan_.ruleset_ = std::move(*ruleset);
        return {};
    }

    void plan_seccomp() {
        if (!req_.seccomp) return;
        seccomp_ = precompiled_default_seccomp();
        if (req_.seccomp_filter) {
            plan_.seccomp_filter_ = *req_.seccomp_filter;
            seccomp_ = plan_.seccomp_filter_;
        }
        plan_.seccomp_instructions = seccomp_.size();
        plan_.seccomp_digest = seccomp_digest(seccomp_);
    }

    std::string env_value(const std::string& key) const {
        for (const auto& e : req_.env)
            if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
                return e.substr(key.size() + 1);
        return "";
    }

    Status plan_program() {
        if (req_.argv.empty()) return Error::plain("no command given");
        const std::string& command = req_.argv[0];
        if (command.find('/') != std::string::npos) {
            plan_.exec_candidates_.push_back(keep(command));
        } else {
            std::string path = env_value("PATH");
            size_t start = 0;
            while (start <= path.size()) {
                size_t end = path.find(':', start);
                if (end == std::string::npos) end = path.size();
                std::string dir = path.substr(start, end - start);
                if (dir.empty()) dir = ".";
                plan_.exec_candidates_.push_back(keep(dir + "/" + command));
                start = end + 1;
            }
        }
        for (const auto& a : req_.argv) plan_.argv_.push_back(const_cast<char*>(keep(a)));
        plan_.argv_.push_back(nullptr);
        for (const auto& e : req_.env) plan_.envp_.push_back(const_cast<char*>(keep(e)));
        plan_.envp_.push_back(nullptr);
        return {};
    }

    void fill_child() {
        std::string workdir = req_.workdir;
        if (workdir.empty()) workdir = req_.workspace ? "/workspace" : req_.home;
        plan_.rlimits_ = req_.rlimits;
        const bool landlock = plan_.ruleset_.has_value();
        plan_.child = ChildPlan{
            // The handshake's ends are spawn_sandbox's (isolation/spawn.cpp).
            .control_fd = -1,
            .report_fd = -1,
            .control_peer_fd = -1,
            .report_peer_fd = -1,
            .stdio = {req_.stdio[0], req_.stdio[1], req_.stdio[2]},
            .staging = keep(req_.staging_dir),
            .staging_options = "mode=755,size=4m,nr_inodes=4096",
            .mounts = plan_.mounts_.data(),
            .mount_count = plan_.mounts_.size(),
            // Container root when it is mapped, else the workload's own ids.
            .setup_uid = isolation::map_to_host(req_.maps.uid, 0) >= 0 ? 0 : req_.uid,
            .setup_gid = isolation::map_to_host(req_.maps.gid, 0) >= 0 ? 0 : req_.gid,
            .hostname = keep(req_.hostname),
            .bring_up_loopback = req_.new_network_namespace,
            .network = nullptr,
            .uid = req_.uid,
            .gid = req_.gid,
            .may_setgroups = req_.maps.method != UserNamespaceMaps::Method::DirectDenySetgroups,
            .groups = plan_.groups_.data(),
            .group_count = 0,
            .rlimits = plan_.rlimits_.data(),
            .rlimit_count = plan_.rlimits_.size(),
            .cap_last = last_capability(),
            .caps_keep = req_.caps_keep,
            .die_with_parent = req_.die_with_supervisor,
            .caps_bounding = req_.caps_bounding.value_or(req_.caps_keep) | req_.caps_keep,
            .landlock_ruleset_fd = landlock ? plan_.ruleset_->fd.get() : -1,
            .landlock_rules = landlock ? plan_.landlock_rules_.data() : nullptr,
            .landlock_rule_count = landlock ? plan_.landlock_rules_.size() : 0,
            .seccomp_filter = seccomp_.empty() ? nullptr : seccomp_.data(),
            .seccomp_len = static_cast<unsigned short>(seccomp_.size()),
            .seccomp_flags = seccomp_.empty() ? 0u : req_.seccomp_flags,
            .seccomp_listener = false,  // trace mode: set by spawn_sandbox with its own filter
            // The built-in allowlist lets read and write through; a profile
            // from a user might not.
            .seccomp_before_ready = !seccomp_.empty() && !req_.seccomp_filter,
            .workdir = keep(workdir),
            .program = {.candidates = plan_.exec_candidates_.data(),
                        .candidate_count = plan_.exec_candidates_.size(),
                        .argv = plan_.argv_.data(),
                        .envp = plan_.envp_.data()},
        };

        if (req_.new_network_namespace && (!req_.netlink_scripts.empty() || !req_.listen_sockets.empty())) {
            plan_.netlink_scripts_ = req_.netlink_scripts;
            plan_.listen_sockets_ = req_.listen_sockets;
            plan_.network_ =
                ChildNetwork{plan_.netlink_scripts_.data(), plan_.netlink_scripts_.size(), plan_.listen_sockets_.data(),
                             plan_.listen_sockets_.size(), req_.network_channel_fd};
            plan_.child.network = &plan_.network_;
        }

        plan_.namespaces = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
        if (req_.new_network_namespace) plan_.namespaces |= CLONE_NEWNET;
        if (req_.time_namespace) plan_.namespaces |= kabi::clone_newtime;
        plan_.maps = req_.maps;
    }

    const LaunchRequest& req_;
    LaunchPlan& plan_;
    int abi_ = 0;
    std::span<const sock_filter> seccomp_;  // the filter the child loads; empty: none
};

void LaunchPlan::wipe_secrets() {
    for (std::string* buffer : secret_buffers_) explicit_bzero(buffer->data(), buffer->size());
}

void LaunchPlan::release_setup() {
    std::vector<MountOp>().swap(mounts_);
    std::vector<MountExpectation>().swap(expectations);
    std::vector<std::string>().swap(mount_summary);
    child.mounts = nullptr;
    child.mount_count = 0;
}

Result<std::unique_ptr<LaunchPlan>> LaunchPlan::build(const LaunchRequest& request) {
    std::unique_ptr<LaunchPlan> plan(new LaunchPlan());
    PlanBuilder builder(request, *plan);
    NUCLEUS_TRY(builder.build());
    return plan;
}

}  // namespace nucleus::isolation
