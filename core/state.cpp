#include "core/state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "isolation/cgroup.hpp"

namespace nucleus::core {

namespace {

Status make_dir(const std::string& path, mode_t mode) {
    if (::mkdir(path.c_str(), mode) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + path);
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) return Error::from_errno("stat " + path);
    if (!S_ISDIR(st.st_mode)) return Error::plain(path + " is not a directory");
    if (st.st_uid != ::geteuid()) return Error::plain(path + " is owned by uid " + std::to_string(st.st_uid) + ", not us");
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
    for (const auto* dir : {&paths.root, &paths.staging, &paths.sandboxes})
        NUCLEUS_TRY(make_dir(*dir, dir == &paths.staging ? 0755 : 0711).wrap("preparing the state directory"));
    return paths;
}

Result<SandboxRecord> SandboxRecord::create(const RuntimePaths& paths, const std::string& id) {
    SandboxRecord record;
    record.dir_ = paths.sandboxes + "/" + id;
    if (::mkdir(record.dir_.c_str(), 0711) < 0) return Error::from_errno("mkdir " + record.dir_);
    auto lock = io::open_fd(record.dir_ + "/owner.lock", O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (!lock || ::flock(lock->get(), LOCK_EX | LOCK_NB) < 0) {
        ::rmdir(record.dir_.c_str());
        return Error::from_errno("locking " + record.dir_);
    }
    record.lock_ = std::move(*lock);
    return record;
}

Status SandboxRecord::write(const nlohmann::json& record) const {
    std::string tmp = dir_ + "/record.json.tmp";
    auto fd = io::open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    NUCLEUS_TRY(io::write_all(fd->get(), record.dump(2) + "\n"));
    if (::fsync(fd->get()) < 0) return Error::from_errno("fsync " + tmp);
    if (::rename(tmp.c_str(), (dir_ + "/record.json").c_str()) < 0) return Error::from_errno("rename " + tmp);
    return {};
}

Status SandboxRecord::remove() {
    if (dir_.empty()) return {};
    for (const char* entry : {"workspace", "context"}) NUCLEUS_TRY(remove_tree(dir_ + "/" + entry));
    ::unlink((dir_ + "/record.json").c_str());
    ::unlink((dir_ + "/owner.lock").c_str());
    if (::rmdir(dir_.c_str()) < 0 && errno != ENOENT) return Error::from_errno("rmdir " + dir_);
    lock_.reset();
    dir_.clear();
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

// Cleans one sandbox directory if its supervisor is gone (its flock is
// free). Returns whether it cleaned. Runs before the reactor starts, so the
// short blocking retry on rmdir below never stalls supervision.
Result<bool> clean_one(const std::string& dir) {
    auto lock = io::open_fd(dir + "/owner.lock", O_RDWR | O_NOFOLLOW);
    if (lock && ::flock(lock->get(), LOCK_EX | LOCK_NB) < 0) return false;  // its supervisor is alive
    if (auto text = io::read_file(dir + "/record.json", 1 << 20)) {
        auto record = nlohmann::json::parse(*text, nullptr, false);
        if (record.is_object() && record.contains("cgroup") && record["cgroup"].is_string()) {
            std::string path = record["cgroup"];
            auto slash = path.rfind('/');
            if (slash != std::string::npos) {
                // Kill whatever is left, then remove; rmdir fails (EBUSY)
                // until the kernel has reaped the processes, so retry briefly.
                (void)io::write_file(path + "/cgroup.kill", "1");
                for (int i = 0; i < 200 && ::rmdir(path.c_str()) < 0 && errno == EBUSY; ++i) ::usleep(10000);
            }
        }
    }
    for (const char* entry : {"workspace", "context"}) NUCLEUS_TRY(remove_tree(dir + "/" + entry));
    ::unlink((dir + "/record.json").c_str());
    ::unlink((dir + "/record.json.tmp").c_str());
    ::unlink((dir + "/owner.lock").c_str());
    if (::rmdir(dir.c_str()) < 0 && errno != ENOENT) return Error::from_errno("rmdir " + dir);
    return true;
}

}  // namespace

CleanupReport collect_stale_sandboxes(const RuntimePaths& paths) {
    CleanupReport report;
    DIR* dir = ::opendir(paths.sandboxes.c_str());
    if (!dir) return report;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(dir)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
    for (const auto& name : names) {
        std::string path = paths.sandboxes + "/" + name;
        struct stat st {};
        if (::lstat(path.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) continue;
        auto cleaned = clean_one(path);
        if (!cleaned) report.errors.push_back(cleaned.error().describe());
        else if (*cleaned) ++report.sandboxes;
    }
    return report;
}

}  // namespace nucleus::core
