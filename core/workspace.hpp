// Private copies of host directories: --workspace-mode copy-in-out and
// --context. Copies never follow symlinks (they are copied as links), keep
// modes (without setuid/setgid), mtimes and hard links within the tree, and
// skip device nodes, fifos and sockets.
//
// Every walk goes from directory descriptor to directory descriptor, one
// path component at a time (openat, fstatat, mkdirat, unlinkat with
// O_NOFOLLOW / AT_SYMLINK_NOFOLLOW): a tree deeper than PATH_MAX syncs like
// any other, and no write goes through a link planted on either side.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "io/error.hpp"

namespace nucleus::core {

struct CopyOwner {
    uid_t uid;
    gid_t gid;
    bool change = false;  // chown every new entry (needs privilege)
};

// The relative paths ("a/b/c") the copy-in gave the sandbox: the entries
// sync_tree_back may remove or replace on the host.
using Manifest = std::set<std::string>;

// Directories nested deeper than this are refused, both ways (each level
// holds a descriptor while it is walked).
inline constexpr int max_copy_depth = 1024;

// Copies the contents of the directory `from_dir` into the empty directory
// `to_dir` (both open directory descriptors, owned by the caller).
Result<Manifest> copy_tree(int from_dir, int to_dir, const CopyOwner& owner);

struct SyncReport {
    // What could not be synced, each "path: why"; the sync is incomplete
    // when this is not empty.
    std::vector<std::string> conflicts;
    size_t written = 0;  // entries created or replaced on the host
    size_t removed = 0;  // entries removed from the host
};

// Makes the host directory `host_dir` mirror the sandbox's copy `copy_dir`.
// Only what changed is written: a file of the same size and mtime (or the
// same bytes) stays as it is, with its inode, links and owner; hard links
// in the copy stay hard links. What the sandbox never saw is left alone:
// host fifos, sockets and devices, and entries not in `given` (created on
// the host meanwhile). An entry the sandbox replaced by another kind whose
// host side holds such unseen entries is a conflict: the host's entries are
// kept and the conflict reported. New entries get `owner` (the workspace
// owner's ids), replaced files keep their host owner. The copy is hostile
// input: a symlink in it is recreated as a symlink, never followed, and
// special files in it are not synced.
Result<SyncReport> sync_tree_back(int copy_dir, int host_dir, const Manifest& given, const CopyOwner& owner);

}  // namespace nucleus::core
