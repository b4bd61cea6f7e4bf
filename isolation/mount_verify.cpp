// Verifying from outside what the child says it set up.
//
// Between the child's Ready report and its exec, the parent reads the
// child's /proc/PID/mountinfo (paths as the child sees them, after
// pivot_root) and /proc/PID/status, and refuses to let it exec unless
// every promised mount flag and credential is in place.
#include <sstream>

#include "isolation/capabilities.hpp"
#include "isolation/launch_plan.hpp"

namespace nucleus::isolation {

std::string decode_mountinfo_field(const std::string& field) {
    std::string out;
    out.reserve(field.size());
    for (size_t i = 0; i < field.size(); ++i) {
        auto octal = [&](size_t at) { return at < field.size() && field[at] >= '0' && field[at] <= '7'; };
        if (field[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
            int value = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0');
            if (value <= 0xff) {
                out.push_back(static_cast<char>(value));
                i += 3;
                continue;
            }
        }
        out.push_back(field[i]);
    }
    return out;
}

namespace {

struct MountEntry {
    std::string point;
    std::string options;  // per-mount options: "ro,nosuid,nodev,noexec,relatime"
};

std::vector<MountEntry> parse_mountinfo(const std::string& mountinfo) {
    std::vector<MountEntry> entries;
    std::istringstream lines(mountinfo);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        std::string id, parent, devno, root, point, options;
        if (fields >> id >> parent >> devno >> root >> point >> options)
            entries.push_back({decode_mountinfo_field(point), options});
    }
    return entries;
}

bool has_option(const std::string& options, const char* option) {
    std::istringstream list(options);
    std::string item;
    while (std::getline(list, item, ','))
        if (item == option) return true;
    return false;
}

std::string status_field(const std::string& status, const std::string& key) {
    auto pos = status.find("\n" + key + ":");
    if (pos == std::string::npos) return "";
    pos += key.size() + 2;
    while (pos < status.size() && (status[pos] == '\t' || status[pos] == ' ')) ++pos;
    auto end = status.find('\n', pos);
    return status.substr(pos, end - pos);
}

}  // namespace

Status verify_mounts(const std::string& mountinfo, const std::vector<MountExpectation>& expectations) {
    auto entries = parse_mountinfo(mountinfo);
    for (const auto& want : expectations) {
        // The topmost mount at a path is the last one listed for it.
        const MountEntry* found = nullptr;
        for (const auto& e : entries)
            if (e.point == want.path) found = &e;
        if (!found) return Error::plain("mount " + want.path + " is missing");
        auto require = [&](bool wanted, const char* option) -> Status {
            if (wanted && !has_option(found->options, option))
                return Error::plain("mount " + want.path + " lacks " + option + " (has " + found->options + ")");
            return {};
        };
        NUCLEUS_TRY(require(want.read_only, "ro"));
        NUCLEUS_TRY(require(want.nosuid, "nosuid"));
        NUCLEUS_TRY(require(want.nodev, "nodev"));
        NUCLEUS_TRY(require(want.noexec, "noexec"));
    }
    return {};
}

Status verify_child(pid_t pid, const LaunchPlan& plan) {
    std::string proc = "/proc/" + std::to_string(pid);
    auto mountinfo = io::read_file(proc + "/mountinfo", 4 << 20);
    if (!mountinfo) return std::move(mountinfo).error();
    NUCLEUS_TRY(verify_mounts(*mountinfo, plan.expectations));

    auto status = io::read_file(proc + "/status", 64 << 10);
    if (!status) return std::move(status).error();
    if (status_field(*status, "NoNewPrivs") != "1") return Error::plain("no_new_privs is not set");
    char keep[17], bounding[17];
    std::snprintf(keep, sizeof keep, "%016llx", static_cast<unsigned long long>(plan.child.caps_keep));
    std::snprintf(bounding, sizeof bounding, "%016llx", static_cast<unsigned long long>(plan.child.caps_bounding));
    for (const char* set : {"CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"}) {
        const char* expected = std::string(set) == "CapBnd" ? bounding : keep;
        std::string have = status_field(*status, set);
        if (have != expected)
            return Error::plain(std::string(set) + " is " + have + ", expected " + expected + " (" +
                                (plan.child.caps_keep ? capability_list(plan.child.caps_keep) : "none") + ")");
    }
    return {};
}

}  // namespace nucleus::isolation
