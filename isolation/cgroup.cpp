#include "isolation/cgroup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

namespace nucleus::isolation {

std::optional<std::string> find_cgroup2_mount(const std::string& mountinfo) {
    // proc(5): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
    std::istringstream lines(mountinfo);
    std::string line;
    while (std::getline(lines, line)) {
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream after(line.substr(dash + 3));
        std::string fstype;
        after >> fstype;
        if (fstype != "cgroup2") continue;
        std::istringstream before(line.substr(0, dash));
        std::string id, parent, devno, root, mount_point;
        before >> id >> parent >> devno >> root >> mount_point;
        if (root != "/") continue;  // a bind of a sub-tree, not the hierarchy's root
        return mount_point;
    }
    return std::nullopt;
}

Result<std::string> find_cgroup2_mount() {
    auto mountinfo = io::read_file("/proc/self/mountinfo", 4 << 20);
    if (!mountinfo) return std::move(mountinfo).error();
    auto mount = find_cgroup2_mount(*mountinfo);
    if (!mount) return Error::plain("no cgroup2 filesystem is mounted (see /proc/self/mountinfo)");
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
