#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/attestation.hpp"
#include "core/spec.hpp"
#include "core/spec_network.hpp"
#include "core/toml.hpp"
#include "io/unique_fd.hpp"
#include "isolation/capabilities.hpp"
#include "isolation/launch_plan.hpp"

namespace nucleus::core {

using nlohmann::json;

namespace {

// "workspace_mode" -> "workspace_mode (--workspace-mode)", for messages
// that make sense to both config-file and command-line users.
std::string key_label(const std::string& key) {
    if (key == "command") return "command";
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    return key + " (--" + flag + ")";
}

Error bad(const std::string& key, const std::string& why) { return Error::plain(key_label(key) + ": " + why); }

Result<std::string> get_string(const json& doc, const std::string& key) {
    const json& v = doc.at(key);
    if (!v.is_string()) return bad(key, "must be a string");
    std::string s = v.get<std::string>();
    if (s.find('\0') != std::string::npos) return bad(key, "must not contain NUL bytes");
    return s;
}

Result<bool> get_bool(const json& doc, const std::string& key) {
    const json& v = doc.at(key);
    if (!v.is_boolean()) return bad(key, "must be true or false");
    return v.get<bool>();
}

Result<std::vector<std::string>> get_strings(const json& doc, const std::string& key) {
    const json& v = doc.at(key);
    std::vector<std::string> out;
    if (v.is_string()) {
        out.push_back(v.get<std::string>());
        return out;
    }
    if (!v.is_array()) return bad(key, "must be a list of strings");
    for (const auto& item : v) {
        if (!item.is_string()) return bad(key, "must be a list of strings");
        out.push_back(item.get<std::string>());
        if (out.back().find('\0') != std::string::npos) return bad(key, "must not contain NUL bytes");
    }
    return out;
}

// An existing directory, made absolute and canonical (symlinks resolved
// now, so that what we check is what we mount).
Result<std::string> existing_dir(const std::string& key, const std::string& path) {
    if (path.empty()) return bad(key, "must not be empty");
    std::error_code ec;
    auto canonical = std::filesystem::canonical(path, ec);
    if (ec) return bad(key, "\"" + path + "\": " + ec.message());
    if (!std::filesystem::is_directory(canonical, ec)) return bad(key, "\"" + path + "\" is not a directory");
    return canonical.string();
}

// The first directory on the way to `path` (itself included) that the
// sandbox's setup identity cannot search, with why; nullopt when all can be.
// Its mounts are made by that identity: for a root caller a uid and gid from
// a leased range that own nothing on the host, so only the "other" bits let
// it through (or the group bits for the runtime's supplementary groups,
// which it keeps while it sets up); for an unprivileged caller, the caller.
std::optional<std::string> untraversable(const std::string& path) {
    std::vector<gid_t> groups(static_cast<size_t>(std::max(::getgroups(0, nullptr), 0)));
    int n = groups.empty() ? 0 : ::getgroups(static_cast<int>(groups.size()), groups.data());
    groups.resize(static_cast<size_t>(std::max(n, 0)));
    std::string prefix;
    std::filesystem::path whole(path);
    for (const auto& part : whole) {
        if (part == "/") {
            prefix = "/";
        } else {
            if (prefix.size() > 1) prefix += "/";
            prefix += part.string();
        }
        struct stat st {};
        if (::stat(prefix.c_str(), &st) < 0) return std::nullopt;  // reported elsewhere
        bool searchable;
        if (::geteuid() != 0) {
            searchable = ::faccessat(AT_FDCWD, prefix.c_str(), X_OK, AT_EACCESS) == 0;
        } else {
            bool in_group = std::find(groups.begin(), groups.end(), st.st_gid) != groups.end();
            searchable = (st.st_mode & S_IXOTH) || (in_group && (st.st_mode & S_IXGRP));
        }
        if (!searchable) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
            return "\"" + prefix + "\" (mode " + mode + ", owner " + std::to_string(st.st_uid) + ":" +
                   std::to_string(st.st_gid) + ")";
        }
    }
    return std::nullopt;
}

Result<std::string> sandbox_path(const std::string& key, const std::string& path) {
    if (path.empty() || path[0] != '/') return bad(key, "\"" + path + "\" must be an absolute path in the sandbox");
    std::string normal = std::filesystem::path(path).lexically_normal().string();
    if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
    if (normal.find("/../") != std::string::npos || normal.ends_with("/..")) return bad(key, "\"" + path + "\" escapes /");
    return normal;
}

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 128 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '.' || c == '-';
    });
}

Result<uint32_t> parse_id(const std::string& key, const std::string& text) {
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
        return bad(key, "\"" + text + "\" is not a numeric id");
    if (value >= 65536) return bad(key, "id " + text + " is outside the sandbox's range 0-65535");
    return value;
}

Status apply_user(SandboxSpec& spec, const std::string& text) {
    auto colon = text.find(':');
    auto uid = parse_id("user", text.substr(0, colon));
    if (!uid) return std::move(uid).error();
    spec.uid = *uid;
    spec.gid = *uid;
    if (colon != std::string::npos) {
        auto gid = parse_id("user", text.substr(colon + 1));
        if (!gid) return std::move(gid).error();
        spec.gid = *gid;
    }
    spec.user_given = true;
    return {};
}

bool valid_env_key(const std::string& key) {
    return !key.empty() && key.find('=') == std::string::npos &&
           std::none_of(key.begin(), key.end(), [](unsigned char c) { return std::isspace(c); });
}

Status apply_env(std::vector<std::string>& env, const std::string& key, const std::string& entry) {
    auto eq = entry.find('=');
    std::string name = entry.substr(0, eq);
    if (!valid_env_key(name)) return bad(key, "\"" + entry + "\" is not KEY=VALUE or KEY");
    if (eq == std::string::npos) {
        // Docker's convention: a bare KEY takes the host's value, if any.
        if (const char* host = ::getenv(name.c_str())) env.push_back(name + "=" + host);
        return {};
    }
    env.push_back(entry);
    return {};
}

Status apply_env_file(std::vector<std::string>& env, const std::string& path) {
    auto text = io::read_file(path, 1 << 20);
    if (!text) return bad("env_file", text.error().describe());
    std::istringstream lines(*text);
    std::string line;
    int number = 0;
    while (std::getline(lines, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        auto st = apply_env(env, "env_file", line.substr(first));
        if (!st) return bad("env_file", path + ":" + std::to_string(number) + ": \"" + line + "\" is not KEY=VALUE");
    }
    return {};
}

Result<VolumeSpec> parse_volume(const std::string& text) {
    // SRC:DST[:ro|rw]
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, ':')) parts.push_back(part);
    if (parts.size() < 2 || parts.size() > 3) return bad("volume", "\"" + text + "\" is not SRC:DST[:ro|rw]");
    VolumeSpec v;
    std::error_code ec;
    auto source = std::filesystem::canonical(parts[0], ec);
    if (ec) return bad("volume", "source \"" + parts[0] + "\": " + ec.message());
    v.source = source.string();
    auto target = sandbox_path("volume", parts[1]);
    if (!target) return std::move(target).error();
    v.target = *target;
    if (parts.size() == 3) {
        if (parts[2] == "ro") v.writable = false;
        else if (parts[2] != "rw") return bad("volume", "\"" + text + "\": mode must be ro or rw, got \"" + parts[2] + "\"");
    }
    return v;
}

struct UlimitName {
    const char* name;
    int resource;
};
constexpr UlimitName ulimit_names[] = {
    {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},         {"data", RLIMIT_DATA},
    {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},     {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},     {"nofile", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},         {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
    {"as", RLIMIT_AS},
};

// Docker's convention: -1 (or "unlimited") is RLIM_INFINITY.
Result<uint64_t> parse_limit_value(const std::string& text, const std::string& whole, const char* which) {
    auto fail = [&](const std::string& why) { return bad("ulimit", "\"" + whole + "\": " + which + " limit " + why); };
    if (text.empty()) return fail("is missing (NAME=SOFT[:HARD], e.g. nofile=1024:2048)");
    if (text == "unlimited" || text == "-1") return uint64_t(RLIM_INFINITY);
    if (text[0] == '-') return fail("\"" + text + "\" is negative (only -1, meaning unlimited, is)");
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::result_out_of_range) return fail("\"" + text + "\" is out of range");
    if (ec != std::errc{} || end != text.data() + text.size())
        return fail("\"" + text + "\" is not a whole number, -1 or \"unlimited\"");
    if (v == RLIM_INFINITY) return fail("\"" + text + "\" is out of range");
    return v;
}

std::string limit_text(uint64_t v) { return v == RLIM_INFINITY ? "unlimited" : std::to_string(v); }

Result<UlimitSpec> parse_ulimit(const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos) return bad("ulimit", "\"" + text + "\" is not NAME=SOFT[:HARD]");
    UlimitSpec u;
    u.name = text.substr(0, eq);
    auto it = std::find_if(std::begin(ulimit_names), std::end(ulimit_names),
                           [&](const UlimitName& n) { return u.name == n.name; });
    if (it == std::end(ulimit_names)) {
        std::string known;
        for (const auto& n : ulimit_names) known += std::string(known.empty() ? "" : ", ") + n.name;
        return bad("ulimit", "unknown limit \"" + u.name + "\" (known: " + known + ")");
    }
    u.resource = it->resource;
    std::string values = text.substr(eq + 1);
    auto colon = values.find(':');
    if (colon != std::string::npos && values.find(':', colon + 1) != std::string::npos)
        return bad("ulimit", "\"" + text + "\" has more than SOFT:HARD");
    auto soft = parse_limit_value(values.substr(0, colon), text, "soft");
    if (!soft) return std::move(soft).error();
    u.soft = u.hard = *soft;
    if (colon != std::string::npos) {
        auto hard = parse_limit_value(values.substr(colon + 1), text, "hard");
        if (!hard) return std::move(hard).error();
        u.hard = *hard;
    }
    if (u.soft > u.hard)
        return bad("ulimit", "\"" + text + "\": soft limit above hard limit (" + limit_text(u.soft) + " > " +
                                 limit_text(u.hard) + ")");
    // The kernel never lets the number of open files be unlimited: it is
    // capped by fs.nr_open (setrlimit(2) fails with EPERM).
    if (u.resource == RLIMIT_NOFILE && u.hard == RLIM_INFINITY) {
        std::string cap = "fs.nr_open";
        if (auto nr_open = io::read_file("/proc/sys/fs/nr_open", 64)) {
            std::string value = *nr_open;
            while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
            cap += " = " + value;
        }
        return bad("ulimit", "\"" + text + "\": nofile cannot be unlimited (-1): the kernel caps open files at " +
                                 cap + "; give a number");
    }
    // Raising a hard limit needs CAP_SYS_RESOURCE in the initial user
    // namespace (setrlimit(2)), which a sandbox never has.
    struct rlimit current {};
    if (::getrlimit(u.resource, &current) == 0 && u.hard > current.rlim_max)
        return bad("ulimit", "\"" + text + "\": hard limit " + limit_text(u.hard) +
                                 " is above the runtime's own hard limit (" + limit_text(current.rlim_max) +
                                 "), which a sandbox cannot raise");
    return u;
}

}  // namespace

const std::vector<std::string>& spec_document_keys() {
    static const std::vector<std::string> keys = {
        "name", "rootfs", "network", "time_namespace", "hostname", "user", "userns", "workspace",
        "workspace_mode", "workspace_exec", "volume", "context", "workdir", "env", "env_file", "cap_add",
        "ulimit", "timeout", "log_dir", "events_jsonl", "events_fd", "command", "memory", "memory_high",
        "memory_swap", "cpus", "cpu_weight", "pids", "io_weight", "io_max", "tmpfs_size", "cgroup_parent",
        "service_mode", "allow_degraded_security", "seccomp_mode", "seccomp_log", "seccomp_profile",
        "seccomp_profile_sha256", "seccomp_log_denied", "caps_policy", "caps_policy_sha256", "landlock_policy",
        "landlock_policy_sha256", "secret", "env_fd", "verify_rootfs_attestation", "verify_context_integrity",
        "require_kernel_lockdown", "audit_log", "publish",
    };
    return keys;
}

std::string_view to_string(WorkspaceMode mode) {
    switch (mode) {
        case WorkspaceMode::BindRw: return "bind-rw";
        case WorkspaceMode::BindRo: return "bind-ro";
        case WorkspaceMode::CopyInOut: return "copy-in-out";
    }
    return "bind-rw";
}

// One helper per group of keys keeps spec_from_document a readable list.
namespace {

Status apply_identity(SandboxSpec& spec, const json& doc) {
    if (doc.contains("name")) {
        auto name = get_string(doc, "name");
        if (!name) return std::move(name).error();
        if (!valid_name(*name)) return bad("name", "\"" + *name + "\" must be 1-128 of [A-Za-z0-9_.-], starting alphanumeric");
        spec.name = *name;
    }
    if (doc.contains("hostname")) {
        auto h = get_string(doc, "hostname");
        if (!h) return std::move(h).error();
        if (!net::is_valid_hostname(*h)) return bad("hostname", "\"" + *h + "\" is not a valid hostname");
        spec.hostname = *h;
    }
    if (doc.contains("user")) {
        const json& v = doc.at("user");
        std::string text = v.is_number_integer() ? std::to_string(v.get<int64_t>()) : "";
        if (text.empty()) {
            auto s = get_string(doc, "user");
            if (!s) return std::move(s).error();
            text = *s;
        }
        NUCLEUS_TRY(apply_user(spec, text));
    }
    if (doc.contains("userns")) {
        auto u = get_string(doc, "userns");
        if (!u) return std::move(u).error();
        if (*u == "keep-id") spec.userns = UsernsMode::KeepId;
        else if (*u != "auto") return bad("userns", "must be auto or keep-id, got \"" + *u + "\"");
    }
    if (doc.contains("network")) {
        auto n = get_string(doc, "network");
        if (!n) return std::move(n).error();
        auto mode = net::parse_network_mode(*n);
        if (!mode) return bad("network", "must be none, host or bridge, got \"" + *n + "\"");
        spec.network = *mode;
    }
    if (doc.contains("time_namespace")) {
        auto b = get_bool(doc, "time_namespace");
        if (!b) return std::move(b).error();
        spec.time_namespace = *b;
    }
    return {};
}

Status apply_filesystem(SandboxSpec& spec, const json& doc) {
    if (doc.contains("rootfs")) {
        auto r = get_string(doc, "rootfs");
        if (!r) return std::move(r).error();
        auto dir = existing_dir("rootfs", *r);
        if (!dir) return std::move(dir).error();
        if (*dir == "/") return bad("rootfs", "the host's / cannot be a rootfs (omit --rootfs for the default agent root)");
        if (auto blocked = untraversable(*dir)) {
            std::string why = ::geteuid() == 0
                                  ? " cannot be searched by it (the sandbox's ids own nothing on the host: "
                                    "its mounts need o+x there)"
                                  : " cannot be searched by you (its mounts are made with your ids)";
            return bad("rootfs", "\"" + *r + "\" is not traversable by the sandbox's uid: " + *blocked + why);
        }
        spec.rootfs = *dir;
    }
    if (doc.contains("workspace")) {
        auto w = get_string(doc, "workspace");
        if (!w) return std::move(w).error();
        auto dir = existing_dir("workspace", *w);
        if (!dir) return std::move(dir).error();
        spec.workspace = *dir;
    }
    if (doc.contains("workspace_mode")) {
        auto m = get_string(doc, "workspace_mode");
        if (!m) return std::move(m).error();
        if (*m == "bind-rw") spec.workspace_mode = WorkspaceMode::BindRw;
        else if (*m == "bind-ro") spec.workspace_mode = WorkspaceMode::BindRo;
        else if (*m == "copy-in-out") spec.workspace_mode = WorkspaceMode::CopyInOut;
        else return bad("workspace_mode", "must be bind-rw, bind-ro or copy-in-out, got \"" + *m + "\"");
        if (!doc.contains("workspace")) return bad("workspace_mode", "needs --workspace");
    }
    if (doc.contains("workspace_exec")) {
        auto b = get_bool(doc, "workspace_exec");
        if (!b) return std::move(b).error();
        spec.workspace_exec = *b;
        if (*b && !doc.contains("workspace")) return bad("workspace_exec", "needs --workspace");
    }
    if (doc.contains("context")) {
        auto c = get_string(doc, "context");
        if (!c) return std::move(c).error();
        auto dir = existing_dir("context", *c);
        if (!dir) return std::move(dir).error();
        spec.context = *dir;
    }
    if (doc.contains("workdir")) {
        auto w = get_string(doc, "workdir");
        if (!w) return std::move(w).error();
        auto path = sandbox_path("workdir", *w);
        if (!path) return std::move(path).error();
        spec.workdir = *path;
    }
    if (doc.contains("volume")) {
        auto list = get_strings(doc, "volume");
        if (!list) return std::move(list).error();
        for (const auto& text : *list) {
            auto v = parse_volume(text);
            if (!v) return std::move(v).error();
            spec.volumes.push_back(std::move(*v));
        }
    }
    return {};
}

Status check_volume_targets(const SandboxSpec& spec) {
    std::set<std::string> taken = {"/", "/proc", "/dev", "/sys", "/tmp", "/etc", "/home", "/home/agent"};
    if (spec.workspace) taken.insert("/workspace");
    if (spec.context) taken.insert("/context");
    for (const auto& v : spec.volumes) {
        for (const char* managed : {"/proc", "/dev", "/sys"}) {
            if (v.target == managed) return bad("volume", "target " + v.target + " is a runtime-managed mount");
            if (v.target.starts_with(std::string(managed) + "/"))
                return bad("volume", "target " + v.target + " is inside a runtime-managed mount");
        }
        // On, inside or over the root's read-only binds (/usr, /bin ->
        // usr/bin, /etc's files, a rootfs's entries): the mount would fail
        // in the child, or hide what the root needs.
        if (auto conflict = isolation::root_conflict(spec.rootfs, v.target)) return bad("volume", *conflict);
        if (!taken.insert(v.target).second)
            return bad("volume", "target " + v.target + " is reserved or used twice");
    }
    return {};
}

Status apply_process(SandboxSpec& spec, const json& doc) {
    if (doc.contains("env_file")) {
        auto files = get_strings(doc, "env_file");
        if (!files) return std::move(files).error();
        for (const auto& f : *files) NUCLEUS_TRY(apply_env_file(spec.env, f));
    }
    if (doc.contains("env")) {
        auto list = get_strings(doc, "env");
        if (!list) return std::move(list).error();
        for (const auto& e : *list) NUCLEUS_TRY(apply_env(spec.env, "env", e));
    }
    if (doc.contains("cap_add")) {
        auto list = get_strings(doc, "cap_add");
        if (!list) return std::move(list).error();
        for (const auto& name : *list) {
            if (name == "ALL" || name == "all") {
                for (int cap = 0; cap <= isolation::last_capability(); ++cap) spec.cap_add |= 1ULL << cap;
                continue;
            }
            auto cap = isolation::capability_from_name(name);
            if (!cap) return bad("cap_add", "unknown capability \"" + name + "\"");
            spec.cap_add |= 1ULL << *cap;
        }
    }
    if (doc.contains("ulimit")) {
        auto list = get_strings(doc, "ulimit");
        if (!list) return std::move(list).error();
        for (const auto& text : *list) {
            auto u = parse_ulimit(text);
            if (!u) return std::move(u).error();
            spec.ulimits.push_back(*u);
        }
    }
    if (doc.contains("command")) {
        auto cmd = get_strings(doc, "command");
        if (!cmd) return std::move(cmd).error();
        spec.command = *cmd;
    }
    if (spec.command.empty()) return bad("command", "no command given (nucleus run [FLAGS] -- CMD [ARGS...])");
    if (spec.command[0].empty()) return bad("command", "the command name is empty");
    return {};
}

Status apply_supervision(SandboxSpec& spec, const json& doc) {
    if (doc.contains("timeout")) {
        const json& v = doc.at("timeout");
        if (!v.is_number()) return bad("timeout", "must be a number of seconds");
        double t = v.get<double>();
        if (!std::isfinite(t) || t <= 0 || t > 1e8) return bad("timeout", "must be a positive number of seconds");
        spec.timeout_seconds = t;
    }
    if (doc.contains("log_dir")) {
        auto d = get_string(doc, "log_dir");
        if (!d) return std::move(d).error();
        if (d->empty()) return bad("log_dir", "must not be empty");
        std::error_code ec;
        if (std::filesystem::exists(*d, ec) && !std::filesystem::is_directory(*d, ec))
            return bad("log_dir", "\"" + *d + "\" exists and is not a directory");
        spec.log_dir = *d;
    }
    if (doc.contains("events_jsonl")) {
        auto p = get_string(doc, "events_jsonl");
        if (!p) return std::move(p).error();
        auto parent = std::filesystem::path(*p).parent_path();
        std::error_code ec;
        if (p->empty() || (!parent.empty() && !std::filesystem::is_directory(parent, ec)))
            return bad("events_jsonl", "the directory of \"" + *p + "\" does not exist");
        spec.events_jsonl = *p;
    }
    if (doc.contains("events_fd")) {
        const json& v = doc.at("events_fd");
        if (!v.is_number_integer()) return bad("events_fd", "must be a file descriptor number");
        int fd = v.get<int>();
        if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) return bad("events_fd", std::to_string(fd) + " is not an open descriptor");
        spec.events_fd = fd;
    }
    return {};
}

Result<uint64_t> size_value(const json& doc, const std::string& key) {
    const json& v = doc.at(key);
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) return v.get<uint64_t>();
    if (!v.is_string()) return bad(key, "must be a size such as 512m or 2g");
    auto size = isolation::parse_size(v.get<std::string>());
    if (!size) return bad(key, size.error().message);
    return *size;
}

Result<uint64_t> ranged_integer(const json& doc, const std::string& key, uint64_t low, uint64_t high) {
    const json& v = doc.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < static_cast<int64_t>(low) ||
        v.get<int64_t>() > static_cast<int64_t>(high))
        return bad(key, "must be an integer from " + std::to_string(low) + " to " + std::to_string(high));
    return v.get<uint64_t>();
}

Status apply_memory_limits(SandboxSpec& spec, const json& doc) {
    auto& l = spec.limits;
    if (doc.contains("memory")) {
        auto v = size_value(doc, "memory");
        if (!v) return std::move(v).error();
        if (*v < 4 * 1024 * 1024) return bad("memory", "must be at least 4m");
        l.memory_max = *v;
        spec.requested_limits.push_back("memory");
    }
    if (doc.contains("memory_high")) {
        auto v = size_value(doc, "memory_high");
        if (!v) return std::move(v).error();
        l.memory_high = *v;
        spec.requested_limits.push_back("memory_high");
    }
    if (doc.contains("memory_swap")) {
        // Docker: memory + swap together; -1 unlimited swap.
        const json& v = doc.at("memory_swap");
        if (!l.memory_max) return bad("memory_swap", "needs --memory");
        if (v.is_number_integer() && v.get<int64_t>() == -1) {
            l.swap_max = std::nullopt;
        } else {
            auto total = size_value(doc, "memory_swap");
            if (!total) return std::move(total).error();
            if (*total < *l.memory_max) return bad("memory_swap", "must be at least --memory (it includes it), or -1");
            l.swap_max = *total - *l.memory_max;
        }
        spec.requested_limits.push_back("memory_swap");
    }
    if (l.memory_high && l.memory_max && *l.memory_high > *l.memory_max)
        return bad("memory_high", "must not exceed --memory");
    if (doc.contains("tmpfs_size")) {
        auto v = size_value(doc, "tmpfs_size");
        if (!v) return std::move(v).error();
        if (*v < 4096) return bad("tmpfs_size", "must be at least 4k");
        spec.tmpfs_size = *v;
    }
    return {};
}

Status apply_cpu_pids_io_limits(SandboxSpec& spec, const json& doc) {
    auto& l = spec.limits;
    if (doc.contains("cpus")) {
        const json& v = doc.at("cpus");
        double cpus = v.is_number() ? v.get<double>() : -1;
        if (v.is_string()) {
            try {
                cpus = std::stod(v.get<std::string>());
            } catch (...) {
            }
        }
        if (!std::isfinite(cpus) || cpus < 0.01 || cpus > 4096) return bad("cpus", "must be a number of CPUs from 0.01");
        l.cpu_quota_us = static_cast<uint64_t>(std::llround(cpus * static_cast<double>(l.cpu_period_us)));
        spec.requested_limits.push_back("cpus");
    }
    if (doc.contains("cpu_weight")) {
        auto v = ranged_integer(doc, "cpu_weight", 1, 10000);
        if (!v) return std::move(v).error();
        l.cpu_weight = *v;
        spec.requested_limits.push_back("cpu_weight");
    }
    if (doc.contains("pids")) {
        auto v = ranged_integer(doc, "pids", 1, 4194304);
        if (!v) return std::move(v).error();
        l.pids_max = *v;
        spec.requested_limits.push_back("pids");
    } else {
        l.pids_max = default_agent_pids_max;
    }
    if (doc.contains("io_weight")) {
        auto v = ranged_integer(doc, "io_weight", 1, 10000);
        if (!v) return std::move(v).error();
        l.io_weight = *v;
        spec.requested_limits.push_back("io_weight");
    }
    if (doc.contains("io_max")) {
        auto list = get_strings(doc, "io_max");
        if (!list) return std::move(list).error();
        for (const auto& text : *list) {
            auto m = isolation::parse_io_max(text);
            if (!m) return bad("io_max", m.error().describe());
            l.io_max.push_back(*m);
        }
        spec.requested_limits.push_back("io_max");
    }
    if (doc.contains("cgroup_parent")) {
        auto p = get_string(doc, "cgroup_parent");
        if (!p) return std::move(p).error();
        std::string normal = std::filesystem::path(*p).lexically_normal().string();
        while (!normal.empty() && normal.back() == '/') normal.pop_back();
        if (normal.empty() || normal[0] == '/' || normal.starts_with("..") || normal.find("/..") != std::string::npos)
            return bad("cgroup_parent", "\"" + *p + "\" must be a path relative to the cgroup2 mount, inside it");
        spec.cgroup_parent = normal;
    }
    return {};
}

Result<std::optional<std::string>> pin(const json& doc, const std::string& key) {
    if (!doc.contains(key)) return std::optional<std::string>{};
    auto v = get_string(doc, key);
    if (!v) return std::move(v).error();
    bool hex = v->size() == 64 && std::all_of(v->begin(), v->end(), [](unsigned char c) { return std::isxdigit(c); });
    if (!hex) return bad(key, "must be 64 hexadecimal digits (a SHA-256)");
    return std::optional<std::string>{*v};
}

Status apply_mode(SandboxSpec& spec, const json& doc) {
    if (doc.contains("service_mode")) {
        auto m = get_string(doc, "service_mode");
        if (!m) return std::move(m).error();
        auto mode = parse_service_mode(*m);
        if (!mode) return bad("service_mode", "must be agent, strict-agent or production, got \"" + *m + "\"");
        spec.mode = *mode;
    }
    if (doc.contains("allow_degraded_security")) {
        auto b = get_bool(doc, "allow_degraded_security");
        if (!b) return std::move(b).error();
        spec.allow_degraded_security = *b;
    }
    return {};
}

Status apply_seccomp(SandboxSpec& spec, const json& doc) {
    if (doc.contains("seccomp_mode")) {
        auto m = get_string(doc, "seccomp_mode");
        if (!m) return std::move(m).error();
        if (*m == "trace") spec.seccomp_mode = SeccompMode::Trace;
        else if (*m != "enforce") return bad("seccomp_mode", "must be enforce or trace, got \"" + *m + "\"");
    }
    if (doc.contains("seccomp_log")) {
        auto p = get_string(doc, "seccomp_log");
        if (!p) return std::move(p).error();
        spec.seccomp_log = *p;
    }
    if (spec.seccomp_mode == SeccompMode::Trace && !spec.seccomp_log)
        return bad("seccomp_mode", "trace needs --seccomp-log FILE.ndjson");
    if (spec.seccomp_log && spec.seccomp_mode != SeccompMode::Trace)
        return bad("seccomp_log", "is written only with --seccomp-mode trace");
    if (doc.contains("seccomp_log_denied")) {
        auto b = get_bool(doc, "seccomp_log_denied");
        if (!b) return std::move(b).error();
        spec.seccomp_log_denied = *b;
    }
    auto pinned = pin(doc, "seccomp_profile_sha256");
    if (!pinned) return std::move(pinned).error();
    if (doc.contains("seccomp_profile")) {
        auto path = get_string(doc, "seccomp_profile");
        if (!path) return std::move(path).error();
        auto text = read_policy_file(*path, *pinned, "seccomp profile");
        if (!text) return bad("seccomp_profile", text.error().describe());
        auto profile = parse_seccomp_profile(*text, *path, spec.cap_add | (spec.caps_policy ? spec.caps_policy->ambient : 0));
        if (!profile) return bad("seccomp_profile", profile.error().describe());
        profile->path = *path;
        profile->sha256 = sha256_hex(*text);
        spec.seccomp_profile = std::move(*profile);
    } else if (*pinned) {
        return bad("seccomp_profile_sha256", "needs --seccomp-profile");
    }
    return {};
}

Status apply_policies(SandboxSpec& spec, const json& doc) {
    auto caps_pin = pin(doc, "caps_policy_sha256");
    if (!caps_pin) return std::move(caps_pin).error();
    if (doc.contains("caps_policy")) {
        auto path = get_string(doc, "caps_policy");
        if (!path) return std::move(path).error();
        auto text = read_policy_file(*path, *caps_pin, "capability policy");
        if (!text) return bad("caps_policy", text.error().describe());
        auto policy = parse_caps_policy(*text, *path);
        if (!policy) return bad("caps_policy", policy.error().describe());
        policy->path = *path;
        policy->sha256 = sha256_hex(*text);
        spec.caps_policy = std::move(*policy);
    } else if (*caps_pin) {
        return bad("caps_policy_sha256", "needs --caps-policy");
    }
    auto ll_pin = pin(doc, "landlock_policy_sha256");
    if (!ll_pin) return std::move(ll_pin).error();
    if (doc.contains("landlock_policy")) {
        auto path = get_string(doc, "landlock_policy");
        if (!path) return std::move(path).error();
        auto text = read_policy_file(*path, *ll_pin, "Landlock policy");
        if (!text) return bad("landlock_policy", text.error().describe());
        auto policy = parse_landlock_policy(*text, *path);
        if (!policy) return bad("landlock_policy", policy.error().describe());
        policy->path = *path;
        policy->sha256 = sha256_hex(*text);
        spec.landlock_policy = std::move(*policy);
    } else if (*ll_pin) {
        return bad("landlock_policy_sha256", "needs --landlock-policy");
    }
    return {};
}

Status apply_secrets(SandboxSpec& spec, const json& doc) {
    if (doc.contains("secret")) {
        auto list = get_strings(doc, "secret");
        if (!list) return std::move(list).error();
        std::set<std::string> names;
        for (const auto& text : *list) {
            auto colon = text.rfind(':');
            SecretSpec secret{text.substr(0, colon), colon == std::string::npos ? "" : text.substr(colon + 1)};
            if (secret.name.empty()) secret.name = std::filesystem::path(secret.source).filename().string();
            bool plain_name = !secret.name.empty() && secret.name != "." && secret.name != ".." &&
                              secret.name.find('/') == std::string::npos;
            if (!plain_name) return bad("secret", "\"" + text + "\": DST must be a file name under /run/secrets");
            std::error_code ec;
            if (!std::filesystem::is_regular_file(secret.source, ec))
                return bad("secret", "\"" + secret.source + "\" is not a readable regular file");
            if (!names.insert(secret.name).second) return bad("secret", "two secrets named \"" + secret.name + "\"");
            spec.secrets.push_back(std::move(secret));
        }
    }
    if (doc.contains("env_fd")) {
        const json& v = doc.at("env_fd");
        if (!v.is_number_integer() || v.get<int>() < 0) return bad("env_fd", "must be a file descriptor number");
        int fd = v.get<int>();
        std::string text;
        char buf[4096];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
            if (n < 0) return bad("env_fd", "reading descriptor " + std::to_string(fd) + ": " + std::strerror(errno));
            text.append(buf, static_cast<size_t>(n));
            if (text.size() > (1 << 20)) return bad("env_fd", "more than 1 MiB");
        }
        auto parsed = json::parse(text, nullptr, false);
        explicit_bzero(text.data(), text.size());
        if (!parsed.is_object()) return bad("env_fd", "must carry a JSON object of \"KEY\": \"VALUE\" strings");
        for (const auto& [key, value] : parsed.items()) {
            if (!valid_env_key(key) || !value.is_string()) return bad("env_fd", "\"" + key + "\" must map to a string");
            spec.secret_env.push_back(key + "=" + value.get<std::string>());
        }
    }
    return {};
}

Status apply_integrity(SandboxSpec& spec, const json& doc) {
    for (const char* key : {"verify_rootfs_attestation", "verify_context_integrity"}) {
        if (!doc.contains(key)) continue;
        auto b = get_bool(doc, key);
        if (!b) return std::move(b).error();
        (std::string(key) == "verify_rootfs_attestation" ? spec.verify_rootfs_attestation : spec.verify_context_integrity) = *b;
    }
    if (spec.verify_rootfs_attestation && !spec.rootfs) return bad("verify_rootfs_attestation", "needs --rootfs");
    if (spec.verify_context_integrity && !spec.context) return bad("verify_context_integrity", "needs --context");
    if (doc.contains("require_kernel_lockdown")) {
        auto l = get_string(doc, "require_kernel_lockdown");
        if (!l) return std::move(l).error();
        if (*l != "integrity" && *l != "confidentiality")
            return bad("require_kernel_lockdown", "must be integrity or confidentiality, got \"" + *l + "\"");
        spec.require_kernel_lockdown = *l;
    }
    if (doc.contains("audit_log")) {
        auto p = get_string(doc, "audit_log");
        if (!p) return std::move(p).error();
        if (p->empty()) return bad("audit_log", "must not be empty");
        spec.audit_log = *p;
    }
    return {};
}

}  // namespace

Result<SandboxSpec> spec_from_document(const json& document) {
    if (!document.is_object()) return Error::plain("a sandbox spec must be an object of settings");
    const auto& keys = spec_document_keys();
    for (const auto& [key, value] : document.items()) {
        if (std::find(keys.begin(), keys.end(), key) == keys.end())
            return Error::plain("unknown setting \"" + key + "\"");
    }
    SandboxSpec spec;
    NUCLEUS_TRY(apply_identity(spec, document));
    NUCLEUS_TRY(apply_network_keys(spec, document));
    NUCLEUS_TRY(apply_filesystem(spec, document));
    NUCLEUS_TRY(check_volume_targets(spec));
    NUCLEUS_TRY(apply_process(spec, document));
    NUCLEUS_TRY(apply_supervision(spec, document));
    NUCLEUS_TRY(apply_memory_limits(spec, document));
    NUCLEUS_TRY(apply_cpu_pids_io_limits(spec, document));
    NUCLEUS_TRY(apply_mode(spec, document));
    NUCLEUS_TRY(apply_policies(spec, document));
    if (spec.caps_policy && (spec.cap_add & ~spec.caps_policy->bounding))
        return bad("cap_add", isolation::capability_list(spec.cap_add & ~spec.caps_policy->bounding) +
                                  " is outside --caps-policy's bounding list");
    NUCLEUS_TRY(apply_seccomp(spec, document));  // after caps: Docker profiles depend on them
    NUCLEUS_TRY(apply_secrets(spec, document));
    NUCLEUS_TRY(apply_integrity(spec, document));
    if (spec.userns == UsernsMode::KeepId && spec.uid == 0 && ::geteuid() == 0)
        return bad("userns", "keep-id with uid 0 would map the host's root into the sandbox; pass --user UID");
    return spec;
}

Result<json> parse_config_text(const std::string& text, const std::string& format, const std::string& origin) {
    if (format == "json") {
        try {
            return json::parse(text);
        } catch (const json::exception& e) {  // parse_error, and out_of_range for huge numbers
            return Error::plain(origin + ": invalid JSON: " + e.what());
        }
    }
    if (format == "toml") {
        try {
            toml::table table = toml::parse(text, origin);
            std::ostringstream out;
            out << toml::json_formatter{table};
            return json::parse(out.str());
        } catch (const toml::parse_error& e) {
            const auto& where = e.source().begin;
            return Error::plain(origin + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
                                ": invalid TOML: " + std::string(e.description()));
        } catch (const json::exception& e) {
            return Error::plain(origin + ": " + e.what());
        }
    }
    return Error::plain(origin + ": unknown config format \"" + format + "\" (use .json or .toml)");
}

Result<json> load_config_file(const std::string& path) {
    auto text = io::read_file(path, 1 << 20);
    if (!text) return std::move(text).error();
    auto ext = std::filesystem::path(path).extension().string();
    return parse_config_text(*text, ext == ".toml" ? "toml" : ext == ".json" ? "json" : ext, path);
}

}  // namespace nucleus::core
