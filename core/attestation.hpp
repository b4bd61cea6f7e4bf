// Root filesystem attestation: a manifest of every entry in a tree (type,
// mode, owner, size, SHA-256), and verification of a tree against it.
//
// Manifest (DIR/.nucleus-rootfs-sha256), sorted bytewise by path:
//   # nucleus rootfs attestation v1
//   <type> <mode, 4 octal digits> <uid> <gid> <size> <sha256 or -> <path>
// type: f file (hash of content), d directory, l symlink (hash of the target
// string, size = its length), c b p s for devices, fifos, sockets. Paths are
// relative and escaped (\\ \n, \xHH for control bytes and spaces), so any
// name fits on one line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"

namespace nucleus::core {

constexpr const char* attestation_file = ".nucleus-rootfs-sha256";

struct AttestSummary {
    uint64_t entries = 0;
    uint64_t bytes_hashed = 0;
    std::string manifest_path;
    std::string manifest_sha256;
};

// Writes the manifest atomically (temporary file, fsync, rename).
Result<AttestSummary> attest_rootfs(const std::string& dir);
// Differences between DIR and its manifest; empty means verified. Extra
// setuid/setgid files are called out as such.
Result<std::vector<std::string>> verify_rootfs(const std::string& dir, const std::string& manifest_path = "");

std::string sha256_hex(std::string_view data);
Result<std::string> sha256_file(const std::string& path);

}  // namespace nucleus::core
