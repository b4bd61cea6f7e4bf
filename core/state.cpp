#include "core/state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/closure_gcroot.hpp"
#include "isolation/cgroup.hpp"
#include "net/bridge.hpp"

namespace nucleus::core {

namespace {

Status make_dir(const std::string& path, mode_t mode) {
    if (::mkdir(path.c_str(), mode) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + path);
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) return Error::from_errno("stat " + path);
    if (!S_ISDIR(st.st_mode)) return Error::plain(path + " is not a directory");
    if (st.st_uid != ::geteuid())
        return Error::plain(path + " is owned by uid " + std::to_string(st.st_uid) + ", not us");
    return {};
}

std::string default_root() {
    if (const char* dir = std::getenv("NUCLEUS_STATE_DIR"); dir && *dir) return dir;
    if (::geteuid() == 0) return "/run/nucleus";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) return std::string(xdg) + "/nucleus";
    return "/tmp/nucleus-" + std::to_string(::geteuid());
}

}  // namespace

Result<RuntimePaths> prepare_runtime_paths() {
    RuntimePaths paths;
    paths.root = default_root();
    paths.staging = paths.root + "/staging";
    paths.ids = paths.root + "/ids";
    paths.sandboxes = paths.root + "/sandboxes";
    paths.kept = paths.root + "/kept";
    for (const auto* dir : {&paths.root, &paths.staging, &paths.sandboxes})
        NUCLEUS_TRY(make_dir(*dir, dir == &paths.staging ? 0755 : 0711).wrap("preparing the state directory"));
    return paths;
}

Result<SandboxRecord> SandboxRecord::create(const RuntimePaths& paths, const std::string& id,
                                            const nlohmann::json& record) {
    SandboxRecord r;
    r.file_ = paths.sandboxes + "/" + id + ".json";
    r.dir_ = paths.sandboxes + "/" + id;
    auto fd = io::open_fd(r.file_, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    // flock before writing: a concurrent clean-up sees a locked, live record.
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) < 0) {
        ::unlink(r.file_.c_str());
        return Error::from_errno("locking " + r.file_);
    }
    r.lock_ = std::move(*fd);
    if (auto st = io::write_all(r.lock_.get(), record.dump() + "\n"); !st) {
        ::unlink(r.file_.c_str());
        return std::move(st).error().wrap("writing " + r.file_);
    }
    return r;
}

Result<SandboxRecord> SandboxRecord::adopt(const RuntimePaths& paths, const std::string& id) {
    SandboxRecord r;
    r.file_ = paths.sandboxes + "/" + id + ".json";
    r.dir_ = paths.sandboxes + "/" + id;
    auto fd = io::open_fd(r.file_, O_RDWR | O_NOFOLLOW);
    if (!fd) return std::move(fd).error();
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) < 0) return Error::from_errno("locking " + r.file_);
    r.lock_ = std::move(*fd);
    struct stat st {};
    r.dir_made_ = ::lstat(r.dir_.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    return r;
}

Result<std::string> SandboxRecord::private_dir() {
    if (!dir_made_) {
        if (::mkdir(dir_.c_str(), 0711) < 0) return Error::from_errno("mkdir " + dir_);
        dir_made_ = true;
    }
    return dir_;
}

Status SandboxRecord::remove() {
    if (file_.empty()) return {};
    if (dir_made_) NUCLEUS_TRY(remove_tree(dir_));
    if (::unlink(file_.c_str()) < 0 && errno != ENOENT) return Error::from_errno("unlink " + file_);
    lock_.reset();
    file_.clear();
    return {};
}

Status remove_tree(const std::string& path) {
    std::error_code ec;
    // remove_all does not follow symlinks (it removes the link itself).
    std::filesystem::remove_all(path, ec);
    if (ec) return Error{ec.value(), "removing " + path};
    return {};
}

namespace {

// Cleans up after one sandbox if its supervisor is gone (the record's flock
// is free). Returns whether it cleaned. Runs before any reactor starts, so
// the short blocking retry on rmdir below never stalls supervision.
Result<bool> clean_one(const std::string& file) {
    auto lock = io::open_fd(file, O_RDWR | O_NOFOLLOW);
    if (!lock) return false;  // removed meanwhile
    if (::flock(lock->get(), LOCK_EX | LOCK_NB) < 0) return false;  // its supervisor is alive
    auto text = io::read_file(file, 1 << 20);
    auto record = nlohmann::json::parse(text ? *text : "", nullptr, false);
    if (record.is_object() && record.contains("cgroup") && record["cgroup"].is_string()) {
        std::string path = record["cgroup"];
        // Only ever a directory this runtime named: "sandbox-<id>".
        if (path.find("/sandbox-") != std::string::npos && path.find("..") == std::string::npos) {
            if (auto cgroup = isolation::SandboxCgroup::open(path)) (void)cgroup->kill();
            int rc = ::rmdir(path.c_str());
            for (int i = 0; i < 200 && rc < 0 && errno == EBUSY; ++i) {
                ::usleep(10000);
                rc = ::rmdir(path.c_str());
            }
            // A cgroup that is still there keeps its record: the next gc
            // (or run) retries, and nothing is forgotten on the host.
            int err = rc < 0 ? errno : 0;
            if (err != 0 && err != ENOENT)
                return Error::from_errno(
                    "removing cgroup " + path + " (the stale record " + file + " is kept for a later gc)", err);
        }
    }
    std::string dir = file.substr(0, file.size() - 5);  // strip ".json"
    NUCLEUS_TRY(remove_closure_gcroot(dir.substr(dir.rfind('/') + 1)));
    NUCLEUS_TRY(remove_tree(dir));
    if (::unlink(file.c_str()) < 0 && errno != ENOENT) return Error::from_errno("unlink " + file);
    return true;
}

}  // namespace

CleanupReport collect_stale_sandboxes(const RuntimePaths& paths) {
    CleanupReport report;
    DIR* dir = ::opendir(paths.sandboxes.c_str());
    if (!dir) return report;
    std::vector<std::string> files;
    while (dirent* e = ::readdir(dir)) {
        std::string name = e->d_name;
        if (name.size() > 5 && name.ends_with(".json")) files.push_back(paths.sandboxes + "/" + name);
    }
    ::closedir(dir);
    for (const auto& file : files) {
        auto cleaned = clean_one(file);
        if (!cleaned) report.errors.push_back(cleaned.error().describe());
        else if (*cleaned) ++report.sandboxes;
    }
    // Bridge leftovers (table entries, leases) are found by address, not
    // by record: see net/bridge.hpp.
    auto swept = net::sweep_bridge_leftovers(paths.root);
    report.errors.insert(report.errors.end(), swept.errors.begin(), swept.errors.end());
    return report;
}

}  // namespace nucleus::core
