// Garbage-collector roots for the closures sandboxes run on.
//
// While a sandbox runs on a closure, `nix-collect-garbage` must not delete
// it. Each such sandbox gets a root under Nix's gcroots directory,
//   <NIX_STATE_DIR, default /nix/var/nix>/gcroots/nucleus/<sandbox-id>
// Nix scans gcroots recursively and treats each symlink into the store as a
// root, which keeps its whole closure (nix-store(1), "Garbage collector
// roots"). When the manifest lives in the store (lib.mkRootfs's does, and
// Nix recorded every path it lists among its references) the root is one
// symlink to it; otherwise a directory with a symlink to each of the
// closure's roots (every path when the manifest names no roots). It is
// made after the sandbox's state record (so a crash leaves something gc can
// act on) and removed at teardown, by `nucleus gc` for a dead supervisor's
// record, and by daemon recovery for a sandbox that ended while no daemon
// ran: the path follows from the id.
#pragma once

#include <string>

#include "core/closure_manifest.hpp"
#include "io/error.hpp"

namespace nucleus::core {

// <state>/gcroots/nucleus; "" when <state>/gcroots does not exist (no Nix
// on this host, so nothing can collect the store either).
std::string closure_gcroots_dir();

// Returns the root made, or "" when this host has no gcroots directory.
Result<std::string> add_closure_gcroot(const std::string& sandbox_id, const ClosureManifest& manifest);

// Removes the sandbox's roots if there are any; absent is not an error.
Status remove_closure_gcroot(const std::string& sandbox_id);

}  // namespace nucleus::core
