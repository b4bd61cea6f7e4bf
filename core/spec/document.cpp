// Documents to specs: resolution against the host, then pure application
// of every key in table order, then the checks that span keys.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/spec.hpp"
#include "core/spec/keys.hpp"
#include "core/spec/values.hpp"
#include "core/toml.hpp"
#include "io/bytes_json.hpp"
#include "io/unique_fd.hpp"
#include "isolation/capabilities.hpp"
#include "isolation/launch_plan.hpp"

namespace nucleus::core {

using nlohmann::json;
using spec_values::bad;

namespace {

Status check_keys(const json& document, DocumentSource source) {
    if (!document.is_object()) return Error::plain("a sandbox spec must be an object of settings");
    for (const auto& [name, value] : document.items()) {
        const SpecKey* key = find_spec_key(name);
        if (!key) return Error::plain("unknown setting \"" + name + "\"");
        if (source == DocumentSource::Daemon && !(key->surfaces & on_daemon))
            return Error::plain("'" + name +
                                "' cannot be used through the daemon (file descriptors and the files the "
                                "supervisor writes are the daemon's own)");
    }
    return {};
}

// Where a volume may not go: runtime-managed mounts, the root's read-only
// binds, and the inside of the other mounts a sandbox gets (/workspace,
// /context, /run/secrets), whose mount points would have to be made in a
// host directory or a staging copy.
Status check_volume_targets(const SandboxSpec& spec) {
    std::set<std::string> taken = {"/", "/proc", "/dev", "/sys", "/tmp", "/etc", "/home", "/home/agent"};
    std::vector<std::pair<std::string, const char*>> inside_forbidden = {
        {"/proc", "a runtime-managed mount"}, {"/dev", "a runtime-managed mount"}, {"/sys", "a runtime-managed mount"}};
    if (spec.workspace) {
        taken.insert("/workspace");
        inside_forbidden.emplace_back("/workspace", "the workspace (its mount points would be made in the workspace)");
    }
    if (spec.context) {
        taken.insert("/context");
        inside_forbidden.emplace_back("/context", "the read-only context");
    }
    if (!spec.secrets.empty()) {
        taken.insert("/run/secrets");
        inside_forbidden.emplace_back("/run/secrets", "the secrets' read-only tmpfs");
    }
    for (const auto& v : spec.volumes) {
        for (const auto& [mount, what] : inside_forbidden) {
            if (v.target == mount && mount != "/workspace" && mount != "/context" && mount != "/run/secrets")
                return bad("volume", "target " + v.target + " is a runtime-managed mount");
            if (v.target.starts_with(mount + "/")) return bad("volume", "target " + v.target + " is inside " + what);
        }
        if (auto conflict = isolation::root_conflict(spec.rootfs, v.target)) return bad("volume", *conflict);
        if (!taken.insert(v.target).second) return bad("volume", "target " + v.target + " is reserved or used twice");
    }
    return {};
}

// Checks that span keys, once all are applied.
Status check_spec(SandboxSpec& spec) {
    NUCLEUS_TRY(check_volume_targets(spec));
    if (spec.command.empty()) return bad("command", "no command given (nucleus run [FLAGS] -- CMD [ARGS...])");
    if (spec.command[0].empty()) return bad("command", "the command name is empty");
    if (spec.caps_policy && (spec.cap_add & ~spec.caps_policy->bounding))
        return bad("cap_add", isolation::capability_list(spec.cap_add & ~spec.caps_policy->bounding) +
                                  " is outside --caps-policy's bounding list");
    if (spec.seccomp_mode == SeccompMode::Trace && !spec.seccomp_log)
        return bad("seccomp_mode", "trace needs --seccomp-log FILE.ndjson");
    if (spec.seccomp_log && spec.seccomp_mode != SeccompMode::Trace)
        return bad("seccomp_log", "is written only with --seccomp-mode trace");
    if (spec.userns == UsernsMode::KeepId && spec.uid == 0 && ::geteuid() == 0)
        return bad("userns", "keep-id with uid 0 would map the host's root into the sandbox; pass --user UID");
    return {};
}

// The deepest nesting of [ and { outside strings: nlohmann/json and toml++
// recurse per level, and 100,000 levels overflow the stack.
size_t nesting_depth(std::string_view text) {
    size_t depth = 0, deepest = 0;
    char quote = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (quote) {
            if (c == '\\' && quote == '"') ++i;
            else if (c == quote) quote = 0;
            continue;
        }
        if (c == '"' || c == '\'') quote = c;
        else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
        else if ((c == ']' || c == '}') && depth > 0) --depth;
    }
    return deepest;
}

constexpr size_t max_document_depth = 64;

}  // namespace

const std::vector<std::string>& spec_document_keys() {
    static const std::vector<std::string> keys = [] {
        std::vector<std::string> out;
        for (const auto& k : spec_keys()) out.emplace_back(k.key);
        return out;
    }();
    return keys;
}

std::string_view to_string(WorkspaceMode mode) {
    switch (mode) {
        case WorkspaceMode::BindRw:
            return "bind-rw";
        case WorkspaceMode::BindRo:
            return "bind-ro";
        case WorkspaceMode::CopyInOut:
            return "copy-in-out";
    }
    return "bind-rw";
}

Result<json> resolve_document(const json& document, DocumentSource source, bool for_daemon) {
    NUCLEUS_TRY(check_keys(document, source));
    json resolved = document;
    // The host's default parent cgroup, recorded like any other setting.
    if (!resolved.contains("cgroup_parent"))
        if (const char* parent = std::getenv("NUCLEUS_CGROUP_PARENT"); parent && *parent)
            resolved["cgroup_parent"] = io::bytes_json(parent);
    ResolveContext context{.for_daemon = for_daemon};
    for (const auto& key : spec_keys()) {
        if (!key.resolve || !resolved.contains(std::string(key.key))) continue;
        NUCLEUS_TRY(key.resolve(resolved, key, context));
    }
    return resolved;
}

Result<SandboxSpec> spec_from_resolved(const json& resolved, DocumentSource source) {
    NUCLEUS_TRY(check_keys(resolved, source));
    SandboxSpec spec;
    spec.limits.pids_max = default_agent_pids_max;  // --pids overrides; not a request
    for (const auto& key : spec_keys()) {
        auto it = resolved.find(std::string(key.key));
        if (it == resolved.end()) continue;
        NUCLEUS_TRY(key.apply(*it, spec, key));
        if (!(key.shape == KeyShape::Switch && it->is_boolean() && !it->get<bool>()))
            spec.settings_given.emplace_back(key.key);
    }
    NUCLEUS_TRY(check_spec(spec));
    return spec;
}

Result<SandboxSpec> spec_from_document(const json& document, DocumentSource source) {
    NUCLEUS_TRY_ASSIGN(auto resolved, resolve_document(document, source));
    return spec_from_resolved(resolved, source);
}

Result<json> parse_config_text(const std::string& text, const std::string& format, const std::string& origin) {
    if (nesting_depth(text) > max_document_depth)
        return Error::plain(origin + ": nested more than " + std::to_string(max_document_depth) + " levels deep");
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
