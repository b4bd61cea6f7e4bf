// What the sandbox sees of the filesystem: its root, workspace, volumes,
// context and working directory.
#include <sstream>

#include "core/closure_spec.hpp"
#include "core/spec.hpp"
#include "core/spec/resolve.hpp"
#include "core/spec/values.hpp"

namespace nucleus::core {

using namespace spec_values;

namespace {

Status apply_rootfs(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.rootfs, text(value, key));
    return {};
}

Status apply_workspace(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.workspace, text(value, key));
    return {};
}

Status apply_workspace_mode(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto mode, text(value, key));
    if (mode == "bind-rw") spec.workspace_mode = WorkspaceMode::BindRw;
    else if (mode == "bind-ro") spec.workspace_mode = WorkspaceMode::BindRo;
    else if (mode == "copy-in-out") spec.workspace_mode = WorkspaceMode::CopyInOut;
    else return bad(key, "must be bind-rw, bind-ro or copy-in-out, got " + shown(mode));
    if (!spec.workspace) return bad(key, "needs --workspace");
    return {};
}

Status apply_workspace_exec(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.workspace_exec, boolean(value, key));
    if (spec.workspace_exec && !spec.workspace) return bad(key, "needs --workspace");
    return {};
}

Status apply_workspace_size(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto bytes, size(value, key));
    if (bytes < (1 << 20)) return bad(key, "must be at least 1m");
    spec.workspace_size = bytes;
    return {};
}

Status apply_volume(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto list, text_list(value, key));
    for (const auto& entry : list) {
        // SRC:DST[:ro|rw]; SRC was made canonical at resolution.
        std::vector<std::string> parts;
        std::stringstream stream(entry);
        for (std::string part; std::getline(stream, part, ':');) parts.push_back(part);
        if (parts.size() < 2 || parts.size() > 3) return bad(key, shown(entry) + " is not SRC:DST[:ro|rw]");
        VolumeSpec v{.source = parts[0], .target = {}, .writable = true};
        if (v.source.empty() || v.source[0] != '/') return bad(key, "source " + shown(v.source) + " must be absolute");
        NUCLEUS_TRY_ASSIGN(v.target, sandbox_path(parts[1], key));
        if (parts.size() == 3) {
            if (parts[2] == "ro") v.writable = false;
            else if (parts[2] != "rw")
                return bad(key, shown(entry) + ": mode must be ro or rw, got " + shown(parts[2]));
        }
        spec.volumes.push_back(std::move(v));
    }
    return {};
}

Status apply_context(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(spec.context, text(value, key));
    return {};
}

Status apply_workdir(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto path, text(value, key));
    NUCLEUS_TRY_ASSIGN(spec.workdir, sandbox_path(path, key));
    return {};
}

Status apply_tmpfs_size(const json& value, SandboxSpec& spec, const SpecKey& key) {
    NUCLEUS_TRY_ASSIGN(auto bytes, size(value, key));
    if (bytes < 4096) return bad(key, "must be at least 4k");
    spec.tmpfs_size = bytes;
    return {};
}

constexpr SpecKey rows[] = {
    {.key = "rootfs",
     .flags = "--rootfs",
     .value_name = "DIR",
     .help = "Root filesystem directory, mounted read-only (default: the host's /usr, /bin, /lib... read-only)",
     .doc = "root filesystem, read-only (default: the host's /usr, /bin, /sbin, /lib*, /nix/store read-only and a "
            "minimal /etc)",
     .resolve = spec_resolve::rootfs_dir,
     .apply = apply_rootfs},
    {.key = "workspace",
     .flags = "--workspace",
     .value_name = "DIR",
     .help = "Host directory mounted at /workspace",
     .resolve = spec_resolve::host_dir,
     .apply = apply_workspace},
    {.key = "workspace_mode",
     .flags = "--workspace-mode",
     .value_name = "MODE",
     .help = "bind-rw (default), bind-ro or copy-in-out (synced back on exit)",
     .doc = "`bind-rw` (default), `bind-ro` or `copy-in-out`: a private copy synced back on exit (only what changed "
            "is rewritten; hard links, mtimes and modes are kept, setuid/setgid dropped; fifos, sockets and devices "
            "are not copied and are left alone on the host, as is anything created on the host meanwhile; a sync "
            "that cannot complete exits 122 and keeps the copy)",
     .apply = apply_workspace_mode},
    {.key = "workspace_exec",
     .flags = "--workspace-exec",
     .help = "Allow executing files from /workspace (default noexec)",
     .shape = KeyShape::Switch,
     .apply = apply_workspace_exec},
    {.key = "workspace_size",
     .flags = "--workspace-size",
     .value_name = "SIZE",
     .help = "Bound of a copy-in-out workspace's private copy (default 1g)",
     .doc = "bound of a `copy-in-out` workspace's private copy (default `1g`): an in-memory filesystem charged to the "
            "sandbox's memory; writes beyond it fail with ENOSPC inside",
     .apply = apply_workspace_size},
    {.key = "volume",
     .flags = "-v,--volume",
     .value_name = "SRC:DST[:ro|rw]",
     .help = "Bind mount SRC:DST[:ro|rw] (repeatable)",
     .shape = KeyShape::List,
     .resolve = spec_resolve::volume_sources,
     .apply = apply_volume},
    {.key = "rootfs_closure",
     .flags = "--rootfs-closure",
     .value_name = "MANIFEST",
     .help =
         "A Nix store closure's manifest (lib.mkRootfs) as the root: the store read-only, only the closure readable",
     .doc =
         "a Nix store closure's manifest (`lib.mkRootfs`, or `nucleus rootfs closure-manifest`) as the root: a tmpfs "
         "root, the store bound read-only, Landlock read+execute only on the closure's paths; its entrypoint and "
         "environment are the defaults of the command and `-e`",
     .resolve = resolve_rootfs_closure,
     .apply = apply_rootfs_closure},
    {.key = "context",
     .flags = "--context",
     .value_name = "DIR",
     .help = "Host directory copied to a read-only /context",
     .resolve = spec_resolve::host_dir,
     .apply = apply_context},
    {.key = "workdir",
     .flags = "-w,--workdir",
     .value_name = "DIR",
     .help = "Working directory inside the sandbox (default /workspace, else home)",
     .apply = apply_workdir},
    {.key = "tmpfs_size",
     .flags = "--tmpfs-size",
     .value_name = "SIZE",
     .help = "Size of /tmp and the home tmpfs, e.g. 64m (charged to the sandbox's memory)",
     .apply = apply_tmpfs_size},
};

}  // namespace

std::span<const SpecKey> filesystem_keys() { return rows; }

}  // namespace nucleus::core
