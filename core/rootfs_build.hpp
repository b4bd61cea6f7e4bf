// `nucleus rootfs build --from-host PROGRAM... [--add PATH]... -o DIR`: a
// minimal root filesystem for `nucleus run --rootfs DIR`, made of host
// files, for hosts without Nix.
//
// What goes in, each at its host path:
//   - every PROGRAM and its ELF closure (isolation/elf_closure.hpp: the
//     interpreter and each DT_NEEDED library, found by the loader's rules,
//     never by running anything);
//   - every --add PATH (a file, or a directory copied whole), and the
//     closure of each ELF file in it (a library it needs and no search finds
//     is a warning: plugins with optional dependencies are common);
//   - symlinks as symlinks, with what they point to: /lib64/ld-linux... ->
//     /lib/x86_64-linux-gnu/..., and a merged-/usr /lib -> usr/lib as the
//     same link;
//   - a minimal /etc: passwd and group as the default agent root generates
//     them (root, agent 1000, nobody), nsswitch.conf for files only, hosts
//     for localhost, and the host's ld.so.cache (it maps sonames to the very
//     paths copied);
//   - the attestation manifest, as `nucleus rootfs attest` writes it.
// Files keep their permission bits minus setuid/setgid (the rootfs is
// mounted nosuid anyway) and belong to the caller; devices, fifos and
// sockets inside --add trees are skipped with a warning.
//
// Nothing half-written: the tree is built in a hidden temporary sibling of
// DIR and renamed to DIR at the end (over an empty DIR, never a non-empty
// one); any failure removes the temporary tree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/error.hpp"

namespace nucleus::core {

struct RootfsBuildRequest {
    std::vector<std::string> programs;  // --from-host
    std::vector<std::string> adds;  // --add
    std::string output;  // -o
};

struct RootfsBuildSummary {
    uint64_t files = 0, symlinks = 0, directories = 0, bytes = 0;
    uint64_t elf_objects = 0;  // programs and libraries resolved
    std::vector<std::string> warnings;  // skipped special files, unresolved plugin libraries
    std::string manifest_sha256;
};

Result<RootfsBuildSummary> build_rootfs_from_host(const RootfsBuildRequest& request);

// The command: prints the summary, returns the exit code (125 on error).
int rootfs_build_command(const RootfsBuildRequest& request);

}  // namespace nucleus::core
