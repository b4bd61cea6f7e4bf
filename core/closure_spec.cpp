#include "core/closure_spec.hpp"

#include <nlohmann/json.hpp>

#include "core/closure_attestation.hpp"
#include "core/closure_manifest.hpp"
#include "core/spec.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core {

namespace {

constexpr const char* label = "rootfs_closure (--rootfs-closure)";

Error bad(const std::string& why) { return Error::plain(std::string(label) + ": " + why); }

bool is_under(const std::string& path, const std::string& dir) {
    return path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

}  // namespace

Status resolve_rootfs_closure(nlohmann::json& document, const SpecKey&, const ResolveContext&) {
    auto& value = document["rootfs_closure"];
    if (value.is_object()) return {};  // resolved already: {"path", "content"}
    if (!value.is_string() || value.get<std::string>().empty()) return bad("must be the path of a closure manifest");
    auto manifest = load_closure_manifest(value.get<std::string>());
    if (!manifest) return bad(manifest.error().describe());
    // Inline, so that recovery rebuilds the spec without the file.
    value = nlohmann::json{{"path", io::bytes_json(manifest->file)}, {"content", closure_manifest_text(*manifest)}};
    return {};
}

Status apply_rootfs_closure(const nlohmann::json& value, SandboxSpec& spec, const SpecKey&) {
    if (!value.is_object() || !value.contains("content") || !value["content"].is_string())
        return bad("internal: the manifest was not resolved");
    std::string origin =
        value.contains("path") && value["path"].is_string() ? value["path"].get<std::string>() : "(inline)";
    if (spec.rootfs) return bad("cannot be combined with --rootfs (a sandbox has one root)");
    auto manifest = parse_closure_manifest(value["content"].get<std::string>(), origin);
    if (!manifest) return bad(manifest.error().describe());
    manifest->file = origin;
    // The runtime mounts its own tmpfs, proc, dev and sys over these: a store
    // beneath one would be hidden, one above it would hide them.
    for (const char* managed : {"/tmp", "/proc", "/dev", "/sys", "/home", "/run", "/etc", "/workspace", "/context"})
        if (is_under(manifest->store_dir, managed) || is_under(managed, manifest->store_dir))
            return bad("the store directory " + manifest->store_dir + " collides with the runtime's " + managed);
    for (const auto& v : spec.volumes)
        if (is_under(v.target, manifest->store_dir) || is_under(manifest->store_dir, v.target))
            return Error::plain("volume (--volume): target " + v.target + " is on or over the read-only store " +
                                manifest->store_dir);
    // The entrypoint is the command unless one is given (applied later);
    // the manifest's environment comes before -e.
    spec.command = manifest->entrypoint;
    std::vector<std::string> env;
    for (const auto& [key, val] : manifest->env) env.push_back(key + "=" + val);
    spec.env.insert(spec.env.begin(), env.begin(), env.end());
    spec.rootfs_closure = std::move(*manifest);
    return {};
}

Status verify_closure_integrity(const ClosureManifest& manifest) {
    auto diffs = verify_closure(manifest);
    if (!diffs) return std::move(diffs).error().wrap("verifying closure " + manifest.file);
    if (diffs->empty()) return {};
    std::string text = "closure " + manifest.file + " differs from its manifest (" + std::to_string(diffs->size()) +
                       " difference" + (diffs->size() == 1 ? "" : "s") + "):";
    for (size_t i = 0; i < diffs->size() && i < 5; ++i) text += "\n  " + (*diffs)[i];
    if (diffs->size() > 5) text += "\n  ...";
    return Error::plain(text);
}

isolation::ClosureRoot closure_root_of(const ClosureManifest& manifest) {
    isolation::ClosureRoot root{manifest.store_dir, {}};
    for (const auto& p : manifest.paths) root.paths.push_back(p.path);
    return root;
}

}  // namespace nucleus::core
