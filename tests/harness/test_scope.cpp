#include "test_scope.hpp"

#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "isolation/cgroup.hpp"

namespace nucleus::tests {

namespace {

int count_entries(const std::string& dir, bool dirs_only) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return 0;
    int n = 0;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (!dirs_only || e->d_type == DT_DIR) ++n;
    }
    ::closedir(d);
    return n;
}

// Every process in a cgroup subtree (cgroup.procs of each directory).
int processes_below(const std::filesystem::path& dir) {
    int n = 0;
    std::ifstream procs(dir / "cgroup.procs");
    for (std::string line; std::getline(procs, line);) ++n;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        if (entry.is_directory(ec)) n += processes_below(entry.path());
    return n;
}

struct TestScope {
    std::string cgroup_parent;
    std::string made_state_dir;  // removed at exit
    pid_t owner = ::getpid();

    TestScope() {
        cgroup_parent = "nucleus-test-" + std::to_string(owner);
        ::setenv("NUCLEUS_CGROUP_PARENT", cgroup_parent.c_str(), 1);
        if (const char* given = std::getenv("NUCLEUS_STATE_DIR"); !given || !*given) {
            char tmpl[] = "/tmp/nucleus-test-state-XXXXXX";
            // 0711 as /run/nucleus: the sandbox's setup identity must pass
            // through it to the staging directory.
            if (::mkdtemp(tmpl) && ::chmod(tmpl, 0711) == 0) {
                made_state_dir = tmpl;
                ::setenv("NUCLEUS_STATE_DIR", tmpl, 1);
            }
        }
        // Still one thread (before main): a mount namespace of our own.
        if (::geteuid() == 0 && ::unshare(CLONE_NEWNS) == 0)
            (void)::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    }
    ~TestScope() {
        if (::getpid() != owner) return;  // a forked child on its way out
        if (auto mount = isolation::find_cgroup2_mount()) (void)::rmdir((*mount + "/" + cgroup_parent).c_str());
        std::error_code ec;
        if (!made_state_dir.empty()) std::filesystem::remove_all(made_state_dir, ec);
    }
};

TestScope& scope() {
    static TestScope s;
    return s;
}

// Made before main(), while the process has one thread.
[[maybe_unused]] const TestScope& made_early = scope();

std::optional<std::string> parent_dir() {
    auto mount = isolation::find_cgroup2_mount();
    if (!mount) return std::nullopt;
    return *mount + "/" + test_cgroup_parent();
}

}  // namespace

const std::string& test_cgroup_parent() { return scope().cgroup_parent; }

std::string test_state_dir() {
    const char* state = std::getenv("NUCLEUS_STATE_DIR");
    return state && *state ? state : "/run/nucleus";
}

int scope_cgroups() {
    auto dir = parent_dir();
    return dir ? count_entries(*dir, true) : 0;
}

int scope_processes() {
    auto dir = parent_dir();
    return dir ? processes_below(*dir) : 0;
}

int scope_mounts() {
    int n = 0;
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);) ++n;
    return n;
}

int scope_records(const std::string& records_dir) {
    return count_entries(records_dir.empty() ? test_state_dir() + "/sandboxes" : records_dir, false);
}

}  // namespace nucleus::tests
