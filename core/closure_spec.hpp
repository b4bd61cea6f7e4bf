// The `rootfs_closure` spec key (--rootfs-closure MANIFEST): a Nix store
// closure as the sandbox's root (core/closure_manifest.hpp for the
// manifest, isolation/closure_root.hpp for the root it becomes).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "core/spec/keys.hpp"
#include "io/error.hpp"
#include "isolation/closure_root.hpp"

namespace nucleus::core {

struct SandboxSpec;
struct ClosureManifest;

// Reads and checks the manifest named by the document's rootfs_closure,
// before the command and environment are read: the manifest's entrypoint
// becomes the command when the document gives none, its env comes before
// the document's (which overrides it). Refuses it with --rootfs, a store
// directory under a mount the runtime makes, and volumes on the store.
// The rootfs_closure spec key (core/spec/keys_filesystem.cpp): resolution
// reads the manifest (and checks its store paths are here) and inlines its
// text; application parses it, purely.
Status resolve_rootfs_closure(nlohmann::json& document, const SpecKey& key, const ResolveContext& context);
Status apply_rootfs_closure(const nlohmann::json& value, SandboxSpec& spec, const SpecKey& key);

// --verify-rootfs-attestation for a closure: every path's NAR hash and size
// against the manifest (core/closure_attestation.hpp).
Status verify_closure_integrity(const ClosureManifest& manifest);

// What the launch plan needs: the store directory and the paths to grant.
isolation::ClosureRoot closure_root_of(const ClosureManifest& manifest);

}  // namespace nucleus::core
