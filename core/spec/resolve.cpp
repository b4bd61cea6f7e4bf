#include "core/spec/resolve.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/attestation.hpp"
#include "core/policies.hpp"
#include "core/spec/ulimits.hpp"
#include "core/spec/values.hpp"
#include "io/bytes_json.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core::spec_resolve {

namespace fs = std::filesystem;
using spec_values::bad;
using spec_values::shown;

namespace {

json& value_of(json& document, const SpecKey& key) { return document[std::string(key.key)]; }

Result<std::string> canonical_dir(const std::string& path, const SpecKey& key) {
    if (path.empty()) return bad(key, "must not be empty");
    std::error_code ec;
    auto canonical = fs::canonical(path, ec);
    if (ec) return bad(key, shown(path) + ": " + ec.message());
    if (!fs::is_directory(canonical, ec)) return bad(key, shown(path) + " is not a directory");
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
    for (const auto& part : fs::path(path)) {
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
            return shown(prefix) + " (mode " + mode + ", owner " + std::to_string(st.st_uid) + ":" +
                   std::to_string(st.st_gid) + ")";
        }
    }
    return std::nullopt;
}

// Rewrites each "SRC<sep>REST" entry's SRC (the part before the first
// ':'), checked by `check`.
template <class Check>
Status rewrite_sources(json& document, const SpecKey& key, Check check) {
    auto list = spec_values::text_list(value_of(document, key), key);
    if (!list) return std::move(list).error();
    json out = json::array();
    for (const auto& entry : *list) {
        auto colon = entry.find(':');
        std::string source = entry.substr(0, colon);
        auto resolved = check(source, entry);
        if (!resolved) return std::move(resolved).error();
        out.push_back(io::bytes_json(*resolved + (colon == std::string::npos ? "" : entry.substr(colon))));
    }
    value_of(document, key) = std::move(out);
    return {};
}

bool valid_env_name(const std::string& name) {
    return !name.empty() && name.find('=') == std::string::npos &&
           std::none_of(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c); });
}

Result<std::string> descriptor_text(int fd, const SpecKey& key) {
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return bad(key, "reading descriptor " + std::to_string(fd) + ": " + std::strerror(errno));
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > (1 << 20)) return bad(key, "more than 1 MiB");
    }
    return text;
}

}  // namespace

Status host_dir(json& document, const SpecKey& key, const ResolveContext&) {
    auto path = spec_values::text(value_of(document, key), key);
    if (!path) return std::move(path).error();
    auto dir = canonical_dir(*path, key);
    if (!dir) return std::move(dir).error();
    value_of(document, key) = io::bytes_json(*dir);
    return {};
}

Status rootfs_dir(json& document, const SpecKey& key, const ResolveContext& context) {
    auto given = spec_values::text(value_of(document, key), key);
    if (!given) return std::move(given).error();
    auto dir = canonical_dir(*given, key);
    if (!dir) return std::move(dir).error();
    if (*dir == "/") return bad(key, "the host's / cannot be a rootfs (omit --rootfs for the default agent root)");
    if (!context.for_daemon) {
        if (auto blocked = untraversable(*dir)) {
            std::string why = ::geteuid() == 0
                                  ? " cannot be searched by it (the sandbox's ids own nothing on the host: "
                                    "its mounts need o+x there)"
                                  : " cannot be searched by you (its mounts are made with your ids)";
            return bad(key, shown(*given) + " is not traversable by the sandbox's uid: " + *blocked + why);
        }
    }
    value_of(document, key) = io::bytes_json(*dir);
    return {};
}

Status volume_sources(json& document, const SpecKey& key, const ResolveContext&) {
    return rewrite_sources(document, key, [&](const std::string& source, const std::string&) -> Result<std::string> {
        std::error_code ec;
        auto canonical = fs::canonical(source, ec);
        if (ec) return bad(key, "source " + shown(source) + ": " + ec.message());
        return canonical.string();
    });
}

Status secret_sources(json& document, const SpecKey& key, const ResolveContext&) {
    return rewrite_sources(document, key, [&](const std::string& source, const std::string&) -> Result<std::string> {
        std::error_code ec;
        auto canonical = fs::canonical(source, ec);
        if (ec || !fs::is_regular_file(canonical, ec))
            return bad(key, shown(source) + " is not a readable regular file");
        return canonical.string();
    });
}

Status env_files(json& document, const SpecKey& key, const ResolveContext&) {
    auto files = spec_values::text_list(value_of(document, key), key);
    if (!files) return std::move(files).error();
    json entries = json::array();
    for (const auto& path : *files) {
        auto text = io::read_file(path, 1 << 20);
        if (!text) return bad(key, text.error().describe());
        size_t start = 0;
        for (int number = 1; start < text->size(); ++number) {
            size_t end = text->find('\n', start);
            if (end == std::string::npos) end = text->size();
            std::string line = text->substr(start, end - start);
            start = end + 1;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            auto where = [&] { return path + ":" + std::to_string(number) + ": "; };
            // The kernel cuts environment strings at NUL; -e refuses it, so
            // does a file (it used to cut the value silently).
            if (line.find('\0') != std::string::npos) return bad(key, where() + "contains a NUL byte");
            auto first = line.find_first_not_of(" \t");
            if (first == std::string::npos || line[first] == '#') continue;
            line.erase(0, first);
            auto eq = line.find('=');
            if (!valid_env_name(line.substr(0, eq))) return bad(key, where() + shown(line) + " is not KEY=VALUE");
            entries.push_back(io::bytes_json(line));
        }
    }
    // Docker's order: the files first, so -e overrides them.
    auto env = document.find("env");
    if (env != document.end()) {
        auto given = spec_values::text_list(*env, *find_spec_key("env"));
        if (!given) return std::move(given).error();
        for (const auto& e : *given) entries.push_back(io::bytes_json(e));
    }
    document["env"] = std::move(entries);
    document.erase(std::string(key.key));
    return {};
}

Status env_from_host(json& document, const SpecKey& key, const ResolveContext&) {
    auto list = spec_values::text_list(value_of(document, key), key);
    if (!list) return std::move(list).error();
    json out = json::array();
    for (const auto& entry : *list) {
        if (!valid_env_name(entry.substr(0, entry.find('='))))
            return bad(key, shown(entry) + " is not KEY=VALUE or KEY");
        if (entry.find('=') != std::string::npos) {
            out.push_back(io::bytes_json(entry));
            continue;
        }
        if (const char* host = ::getenv(entry.c_str())) out.push_back(io::bytes_json(entry + "=" + host));
    }
    value_of(document, key) = std::move(out);
    return {};
}

Status env_fd(json& document, const SpecKey& key, const ResolveContext&) {
    json& value = value_of(document, key);
    if (value.is_object()) return {};  // read already
    auto fd = spec_values::integer(value, key, 0, INT32_MAX);
    if (!fd) return bad(key, "must be a file descriptor number");
    auto text = descriptor_text(static_cast<int>(*fd), key);
    if (!text) return std::move(text).error();
    auto parsed = json::parse(*text, nullptr, false);
    explicit_bzero(text->data(), text->size());
    if (!parsed.is_object()) return bad(key, "must carry a JSON object of \"KEY\": \"VALUE\" strings");
    value = std::move(parsed);
    return {};
}

Status policy_file(json& document, const SpecKey& key, const ResolveContext&) {
    json& value = value_of(document, key);
    std::optional<std::string> pin;
    auto pin_key = std::string(key.key) + "_sha256";
    if (auto it = document.find(pin_key); it != document.end() && it->is_string()) pin = it->get<std::string>();
    std::string what = key.key == "seccomp_profile" ? "seccomp profile"
                       : key.key == "caps_policy"   ? "capability policy"
                                                    : "Landlock policy";
    if (value.is_object() && value.contains("content")) {
        if (!value["content"].is_string()) return bad(key, "\"content\" must be a string");
        std::string content = value["content"].get<std::string>();
        std::string origin = value.contains("path") && value["path"].is_string() ? value["path"].get<std::string>()
                                                                                 : std::string("(inline)");
        if (pin) {
            std::string want = *pin;
            std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
            if (sha256_hex(content) != want)
                return bad(key, what + " " + origin + ": SHA-256 is " + sha256_hex(content) + ", pinned " + want);
        }
        return {};
    }
    auto path = spec_values::text(value, key);
    if (!path) return bad(key, "must be a path or {\"path\": ..., \"content\": ...}");
    auto text = read_policy_file(*path, pin, what);
    if (!text) return bad(key, text.error().describe());
    std::error_code ec;
    auto absolute = fs::absolute(*path, ec);
    value = json{{"path", io::bytes_json(ec ? *path : absolute.string())}, {"content", std::move(*text)}};
    return {};
}

Status ulimits(json& document, const SpecKey& key, const ResolveContext&) {
    auto list = spec_values::text_list(value_of(document, key), key);
    if (!list) return std::move(list).error();
    for (const auto& text : *list) {
        auto eq = text.find('=');
        if (eq == std::string::npos) continue;  // apply names the error
        std::string values = text.substr(eq + 1);
        std::string hard = values.substr(values.find(':') == std::string::npos ? 0 : values.find(':') + 1);
        std::string name = text.substr(0, eq);
        if (name == "nofile" && (hard == "-1" || hard == "unlimited")) {
            std::string cap = "fs.nr_open";
            if (auto nr_open = io::read_file("/proc/sys/fs/nr_open", 64)) {
                std::string v = *nr_open;
                while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
                cap += " = " + v;
            }
            return bad(key, shown(text) + ": nofile cannot be unlimited (-1): the kernel caps open files at " + cap +
                                "; give a number");
        }
        auto limit = ulimit_hard_value(name, hard);
        if (!limit) continue;  // apply names the error
        // Raising a hard limit needs CAP_SYS_RESOURCE in the initial user
        // namespace (setrlimit(2)), which a sandbox never has.
        struct rlimit current {};
        if (::getrlimit(limit->first, &current) == 0 && limit->second > current.rlim_max) {
            auto show = [](uint64_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v); };
            return bad(key, shown(text) + ": hard limit " + show(limit->second) +
                                " is above the runtime's own hard limit (" + show(current.rlim_max) +
                                "), which a sandbox cannot raise");
        }
    }
    return {};
}

Status io_devices(json& document, const SpecKey& key, const ResolveContext&) {
    auto list = spec_values::text_list(value_of(document, key), key);
    if (!list) return std::move(list).error();
    json out = json::array();
    for (const auto& text : *list) {
        auto eq = text.find('=');
        auto sep = eq == std::string::npos ? std::string::npos : text.rfind(':', eq);
        if (sep == std::string::npos || text[0] != '/') {
            out.push_back(text);
            continue;
        }
        std::string device = text.substr(0, sep);
        struct stat st {};
        if (::stat(device.c_str(), &st) < 0) return bad(key, "stat " + device + ": " + std::strerror(errno));
        if (!S_ISBLK(st.st_mode)) return bad(key, device + " is not a block device");
        out.push_back(std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)) + text.substr(sep));
    }
    value_of(document, key) = std::move(out);
    return {};
}

Status output_path(json& document, const SpecKey& key, const ResolveContext&) {
    auto path = spec_values::text(value_of(document, key), key);
    if (!path) return std::move(path).error();
    if (path->empty()) return bad(key, "must not be empty");
    std::error_code ec;
    fs::path absolute = fs::absolute(*path, ec);
    if (ec) return bad(key, shown(*path) + ": " + ec.message());
    if (key.key == "log_dir") {
        if (fs::exists(absolute, ec) && !fs::is_directory(absolute, ec))
            return bad(key, shown(*path) + " exists and is not a directory");
    } else if (!fs::is_directory(absolute.parent_path(), ec)) {
        return bad(key, "the directory of " + shown(*path) + " does not exist");
    }
    value_of(document, key) = io::bytes_json(absolute.lexically_normal().string());
    return {};
}

Status open_descriptor(json& document, const SpecKey& key, const ResolveContext&) {
    auto fd = spec_values::integer(value_of(document, key), key, INT32_MIN, INT32_MAX);
    if (!fd) return bad(key, "must be a file descriptor number");
    if (*fd < 0 || ::fcntl(static_cast<int>(*fd), F_GETFD) < 0)
        return bad(key, std::to_string(*fd) + " is not an open descriptor");
    value_of(document, key) = *fd;
    return {};
}

}  // namespace nucleus::core::spec_resolve
