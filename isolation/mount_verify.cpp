// Verifying from outside what the child says it set up.
//
// Between the child's Ready report and its exec, the parent reads the
// child's /proc/PID/mountinfo (paths as the child sees them, after
// pivot_root) and /proc/PID/status, and refuses to let it exec unless
// every promised mount flag and credential is in place.
#include <cstdio>

#include "isolation/capabilities.hpp"
#include "isolation/launch_plan.hpp"
#include "isolation/mountinfo.hpp"

namespace nucleus::isolation {

namespace {

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
        const MountInfoEntry* found = nullptr;
        for (const auto& e : entries)
            if (e.mount_point == want.path) found = &e;
        if (!found) return Error::plain("mount " + want.path + " is missing");
        auto require = [&](bool wanted, const char* option) -> Status {
            if (wanted && !found->has_option(option))
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
