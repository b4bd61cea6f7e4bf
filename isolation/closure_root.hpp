// A sandbox rooted in a Nix store closure (`--rootfs-closure MANIFEST`).
//
// The root is the usual fresh tmpfs. The whole store directory is bound
// read-only at its own path (one bind, zero copies: every sandbox shares the
// store's page cache), and Landlock grants read+execute on the closure's
// paths only; the store directory itself and every other store path get no
// right at all, so the workload can neither list the store nor open
// anything outside its closure (EACCES). Landlock rules are hierarchical,
// so the root directory gets no rule either (a read right on / would reach
// the store through the bind): /etc gets read-only, the runtime's own
// mounts (/tmp, home, /dev, /proc, /run/secrets) get their usual rights.
// Where Landlock is missing the store stays readable as a whole, and the
// plan says so (landlock.reason, a `degraded` entry in agent mode; the
// fail-closed modes refuse to start without Landlock).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nucleus::isolation {

struct ClosureRoot {
    std::string store_dir;  // absolute, e.g. /nix/store
    std::vector<std::string> paths;  // store paths granted read+execute
};

// Host /etc entries bound read-only into a closure's root (network and TLS
// set-up the host owns); passwd, group, hostname and hosts are generated as
// for the default root, and nsswitch.conf is closure_nsswitch_conf(): the
// host's may name NSS modules the closure does not have.
const std::vector<std::string>& closure_host_etc_entries();
std::string_view closure_nsswitch_conf();

// The Landlock rights read+execute means for one store path at this ABI: a
// directory's for a directory, only read_file and execute for a file (the
// kernel refuses directory rights on a file rule with EINVAL); 0 when the
// path is neither (or gone).
uint64_t closure_path_rights(const std::string& path, int abi);

// The directories to create on the root for the store's mount point:
// "/nix" for "/nix/store" (every proper ancestor, outermost first).
std::vector<std::string> store_parents(const std::string& store_dir);

}  // namespace nucleus::isolation
