// Private copies of host directories: --workspace-mode copy-in-out and
// --context. Copies never follow symlinks (they are copied as links), keep
// modes (without setuid/setgid), mtimes and hard links within the tree, and
// skip device nodes, fifos and sockets.
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

// Copies the contents of `from` into the existing directory `to`, and
// records what it copied in `<to>.manifest` (beside the copy, out of the
// sandbox's reach) for sync_tree_back.
Status copy_tree(const std::string& from, const std::string& to, const CopyOwner& owner);

// Makes `to` mirror `from` (the sandbox's copy): files added or changed in
// `from` are copied, entries gone from `from` are removed from `to`. Only
// what changed is written: a file of the same size and mtime (or the same
// bytes) stays as it is, with its inode, links and owner; hard links in the
// copy stay hard links. What the sandbox never saw is left alone: host
// fifos, sockets and devices, and entries not in the manifest (created on
// the host meanwhile). New entries get `owner` (the workspace owner's ids),
// replaced files keep their host owner. The sandbox's copy is hostile
// input: a symlink in it is recreated as a symlink, never followed, special
// files in it are not synced, and `to` is walked with lstat so no write
// goes through a link.
Status sync_tree_back(const std::string& from, const std::string& to, const CopyOwner& owner);

}  // namespace nucleus::core
