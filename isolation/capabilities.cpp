#include "isolation/capabilities.hpp"

#include <algorithm>
#include <cctype>

#include "io/unique_fd.hpp"

namespace nucleus::isolation {

namespace {
constexpr const char* names[] = {
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
};
constexpr int known = static_cast<int>(std::size(names));
}  // namespace

std::optional<int> capability_from_name(std::string_view name) {
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.starts_with("cap_")) lower.erase(0, 4);
    for (int i = 0; i < known; ++i)
        if (lower == names[i]) return i;
    return std::nullopt;
}

std::string capability_name(int cap) {
    if (cap < 0 || cap >= known) return "CAP_" + std::to_string(cap);
    std::string upper = names[cap];
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    return "CAP_" + upper;
}

int last_capability() {
    // Fixed for the life of the kernel; read once.
    static const int last = [] {
        auto text = io::read_file("/proc/sys/kernel/cap_last_cap", 64);
        if (!text) return known - 1;
        try {
            return std::stoi(*text);
        } catch (...) {
            return known - 1;
        }
    }();
    return last;
}

std::string capability_list(uint64_t mask) {
    std::string out;
    for (int cap = 0; cap < 64; ++cap) {
        if (!(mask & (1ULL << cap))) continue;
        if (!out.empty()) out += ",";
        out += capability_name(cap);
    }
    return out;
}

}  // namespace nucleus::isolation
