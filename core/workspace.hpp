// Private copies of host directories: --workspace-mode copy-in-out and
// --context. Copies never follow symlinks (they are copied as links), drop
// setuid/setgid bits and skip device nodes, fifos and sockets.
#pragma once

#include <sys/types.h>

#include <string>

#include "io/error.hpp"

namespace nucleus::core {

struct CopyOwner {
    uid_t uid;
    gid_t gid;
    bool change = false;  // lchown every entry (needs privilege)
};

// Copies the contents of `from` into the existing directory `to`.
Status copy_tree(const std::string& from, const std::string& to, const CopyOwner& owner);

// Makes `to` mirror `from` (the sandbox's copy): files added or changed in
// `from` are copied, entries gone from `from` are removed from `to`. Entries
// written into `to` get `owner` (the workspace owner's ids). The sandbox's
// copy is hostile input: a symlink in it is recreated as a symlink, never
// followed, and `to` is walked with lstat so no write goes through a link.
Status sync_tree_back(const std::string& from, const std::string& to, const CopyOwner& owner);

}  // namespace nucleus::core
