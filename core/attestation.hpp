// Root filesystem attestation: a manifest of every entry in a tree (type,
// mode, owner, size, SHA-256), and verification of a tree against it.
//
// Manifest (DIR/.nucleus-rootfs-sha256), one line per entry below DIR (the
// manifest itself excluded), sorted bytewise by path:
//   # nucleus rootfs attestation v1
//   <type> <mode, 4 octal digits> <uid> <gid> <size> <sha256 or -> <path>
// type: f regular file (size and hash of the content), d directory (0, -),
// l symlink (size = target length, hash of the target string), c b p s for
// char and block devices, fifos, sockets (0, -). Paths are relative and
// escaped (\\, \n, and \xHH for bytes < 0x20, 0x7f and space), so any name
// round-trips and stays on one line. The same tree gives the same bytes.
//
// The walk never follows a symlink (the root DIR itself excepted: the caller
// named it) and does descend into mount points below DIR.
//
// A manifest stored inside the tree it describes is only as trustworthy as
// the tree: pin AttestSummary::manifest_sha256, or keep the manifest outside
// and pass its path to verify_rootfs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"

namespace nucleus::core {

inline constexpr const char* attestation_file = ".nucleus-rootfs-sha256";
inline constexpr size_t max_manifest_bytes = size_t{256} << 20;

struct AttestSummary {
    uint64_t entries = 0;  // lines written, header excluded
    uint64_t bytes_hashed = 0;  // regular-file content read
    std::string manifest_path;  // DIR/.nucleus-rootfs-sha256
    std::string manifest_sha256;  // of the manifest's bytes, for pinning
};

// Writes DIR/.nucleus-rootfs-sha256 atomically (temporary file in DIR,
// fsync, rename, fsync DIR).
Result<AttestSummary> attest_rootfs(const std::string& dir);

// Re-walks DIR and compares it with the manifest (default
// DIR/.nucleus-rootfs-sha256, never read through a symlink). Returns the
// differences in path order, paths escaped as in the manifest; empty means
// verified:
//   missing: etc/hosts
//   extra file: tmp/x (mode 0644)
//   extra setuid binary: usr/bin/evil (mode 4755)
//   modified: etc/passwd (sha256 differs)
//   modified: usr/bin/su (mode 0755 -> 4755, now setuid)
// A malformed or oversized (> 256 MiB) manifest is an Error naming the line.
Result<std::vector<std::string>> verify_rootfs(const std::string& dir, const std::string& manifest_path = "");

// Lowercase hex SHA-256 (libmd). Returns "" only if the digest itself
// fails, which matches no pin, so a comparison with a pin fails closed.
std::string sha256_hex(std::string_view data);
// SHA-256 of a regular file's content, streamed in 64 KiB chunks. Follows
// symlinks in `path` (the caller named it); refuses non-regular files, so a
// fifo or /dev/zero cannot hang or run forever.
Result<std::string> sha256_file(const std::string& path);

}  // namespace nucleus::core
