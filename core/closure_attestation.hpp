// Verifying a Nix store closure against its manifest, as `nucleus rootfs
// verify` verifies a directory against its attestation: every listed store
// path is serialised as Nix serialises it (the NAR format, Eelco Dolstra's
// thesis, section 5.2.1; Nix's src/libutil/archive.cc) and its SHA-256 and
// size compared with the manifest's nar_hash and nar_size. Nothing is
// written; the walk never follows a symlink.
#pragma once

#include <string>
#include <vector>

#include "core/closure_manifest.hpp"
#include "io/error.hpp"

namespace nucleus::core {

struct NarDigest {
    std::string sha256_hex;
    std::string sha256_nix32;  // Nix's base32 (what "sha256:" + 52 characters means)
    std::string sha256_base64;  // SRI ("sha256-" + base64)
    uint64_t size = 0;
};

// The NAR serialisation's SHA-256 and length for one path (streamed).
Result<NarDigest> nar_digest(const std::string& path);

// Nix's base32 of a digest (its own alphabet, least significant bits first).
std::string nix_base32(const unsigned char* bytes, size_t size);

// Differences in path order, empty when the closure matches:
//   missing: /nix/store/...-x
//   modified: /nix/store/...-x (nar hash differs)
//   modified: /nix/store/...-x (nar size 1024 -> 2048)
Result<std::vector<std::string>> verify_closure(const ClosureManifest& manifest);

}  // namespace nucleus::core
